//! Pacing as the gateway sees it, at scale: 2,000 campaigns on 2,000 instances, each at 6
//! messages a minute (10 s apart, first sends spread over the first 10 s as campaigns started
//! at different moments would be), for 2 minutes, beat at the production tick (10 s) and two
//! workers, all in-process with the sandbox. Prints, from the sandbox's arrival times:
//! (actual gap − minimum interval) per instance, p50/p99/max (never negative is the promise);
//! scheduling lateness (arrival − planned instant) p50/p99/max; CPU of this process per send
//! (beat, workers and sandbox; Postgres and Redis not counted).
//!
//! `cargo bench --bench paced` (env `BENCH_CAMPAIGNS`, default 2000; `BENCH_SECONDS`, 120).

#[path = "support/mod.rs"]
mod support;

use support::env;

use arauto::dispatch::worker::Worker;
use arauto::scheduler::Beat;
use chrono::{DateTime, Utc};
use sea_orm::{FromQueryResult, Statement};
use std::collections::HashMap;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// User + system CPU seconds of this process so far (`/proc/self/stat`, clock ticks of 10 ms).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the line (utime, stime) are the 12th and 13th after the name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentiles(mut v: Vec<i64>) -> String {
    if v.is_empty() {
        return "none".into();
    }
    v.sort();
    let at = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "min {} ms, p50 {} ms, p99 {} ms, max {} ms (n = {})",
        v[0],
        at(0.5),
        at(0.99),
        v[v.len() - 1],
        v.len()
    )
}

#[derive(FromQueryResult)]
struct Planned {
    message_id: String,
    planned_at: DateTime<Utc>,
}

#[tokio::main]
async fn main() {
    let campaigns = env("BENCH_CAMPAIGNS", 2_000);
    let seconds = env("BENCH_SECONDS", 120) as u64;
    let per_campaign = seconds / 10 + 3;
    let bench = support::setup(|s| {
        s.beat.tick_seconds = 10;
        s.dispatch.concurrency = 64;
        s.database.max_connections = 20;
    })
    .await;
    let (url, sandbox) = support::sandbox();
    bench
        .active_campaigns(support::Fleet {
            campaigns,
            contacts: campaigns as u64 * per_campaign,
            api_url: &url,
            text: "Oi {{nome}}",
            pacing: r#"{"min_interval_seconds": 10, "max_interval_seconds": 10}"#,
            // First sends spread over 10 s, as campaigns started at different moments would be,
            // from 3 s on: none is already due when the beat starts (a campaign due at a tick's
            // start is planned from that start and its first send leaves as late as the tick
            // takes — a start-up burst of 2,000 first sends, not the steady state measured here).
            first_send: "now() + interval '3 seconds' + random() * interval '10 seconds'",
        })
        .await;

    let shutdown = CancellationToken::new();
    let mut tasks = vec![tokio::spawn(Beat::new(&bench.state).run(shutdown.clone()))];
    for _ in 0..2 {
        let w = Worker::new(&bench.state).await.unwrap();
        tasks.push(tokio::spawn(w.run(shutdown.clone())));
    }
    let cpu_before = cpu_seconds();
    let started = Utc::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_seconds() - cpu_before;
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }

    let sends = sandbox.sends(None);
    let mut by_instance: HashMap<String, Vec<DateTime<Utc>>> = HashMap::new();
    let mut arrived: HashMap<String, DateTime<Utc>> = HashMap::new();
    for s in &sends {
        let at: DateTime<Utc> = s.at.parse().unwrap();
        by_instance.entry(s.instance.clone()).or_default().push(at);
        arrived.insert(s.message_id.clone(), at);
    }
    let mut over_min = vec![];
    for times in by_instance.values_mut() {
        times.sort();
        over_min.extend(times.windows(2).map(|p| (p[1] - p[0]).num_milliseconds() - 10_000));
    }
    let planned = Planned::find_by_statement(Statement::from_string(
        sea_orm::DbBackend::Postgres,
        "SELECT message_id, planned_at FROM recipients WHERE message_id IS NOT NULL AND planned_at IS NOT NULL",
    ))
    .all(&bench.state.db)
    .await
    .unwrap();
    let lateness: Vec<(DateTime<Utc>, i64)> = planned
        .iter()
        .filter_map(|p| {
            arrived
                .get(&p.message_id)
                .map(|a| (p.planned_at, (*a - p.planned_at).num_milliseconds()))
        })
        .collect();
    // Steady state: sends planned after the first tick's horizon (the first tick plans
    // sends already due when the beat starts; they leave as fast as it plans them).
    let steady: Vec<i64> = lateness
        .iter()
        .filter(|(at, _)| *at >= started + chrono::Duration::seconds(15))
        .map(|(_, l)| *l)
        .collect();
    let lateness: Vec<i64> = lateness.into_iter().map(|(_, l)| l).collect();
    // Lateness of a send's own making: past both its planned instant and the earliest
    // instant the pacing let it leave (its number's previous arrival + the guarded minimum).
    // A late send delays its campaign's later sends when min = max (catching up would break
    // the minimum); this counts each delay once, where it arose.
    let guarded = arauto::calendar::guarded_interval_ms(10_000) as i64;
    let planned_of: HashMap<&str, DateTime<Utc>> =
        planned.iter().map(|p| (p.message_id.as_str(), p.planned_at)).collect();
    let mut own = vec![];
    let mut sorted: Vec<_> = sends.iter().collect();
    sorted.sort_by(|a, b| (&a.instance, &a.at).cmp(&(&b.instance, &b.at)));
    for pair in sorted.windows(2) {
        let (prev, cur) = (pair[0], pair[1]);
        let Some(plan) = planned_of.get(cur.message_id.as_str()) else {
            continue;
        };
        if prev.instance != cur.instance || *plan < started + chrono::Duration::seconds(15) {
            continue;
        }
        let (p_at, c_at): (DateTime<Utc>, DateTime<Utc>) = (prev.at.parse().unwrap(), cur.at.parse().unwrap());
        let allowed = (*plan).max(p_at + chrono::Duration::milliseconds(guarded));
        own.push((c_at - allowed).num_milliseconds());
    }
    if let Ok(path) = std::env::var("BENCH_DUMP") {
        // instance, planned, arrival (Unix ms) per send: for looking at where lateness arises.
        let rows: Vec<String> = sends
            .iter()
            .filter_map(|s| {
                let plan = planned_of.get(s.message_id.as_str())?;
                let at: DateTime<Utc> = s.at.parse().ok()?;
                Some(format!(
                    "{},{},{}",
                    s.instance,
                    plan.timestamp_millis(),
                    at.timestamp_millis()
                ))
            })
            .collect();
        std::fs::write(path, rows.join("\n")).unwrap();
    }
    let negative = over_min.iter().filter(|g| **g < 0).count();
    println!(
        "paced: {} sends from {campaigns} campaigns in {seconds} s; gap − minimum: {} ({negative} negative); \
         lateness: {} (after the first tick: {}; of the send's own making: {}); CPU {:.2} s = {:.0} µs per send (this process)",
        sends.len(),
        percentiles(over_min),
        percentiles(lateness),
        percentiles(steady),
        percentiles(own),
        cpu,
        cpu * 1e6 / sends.len().max(1) as f64
    );
    bench.teardown().await;
}
