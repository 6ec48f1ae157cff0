//! Dispatch throughput through `arauto sandbox` with no added latency: beat + workers +
//! sandbox + Postgres + Redis all on this machine. Prints sends per second.
//!
//! `cargo bench --bench dispatch` (env `BENCH_SENDS`, default 20000; `BENCH_WORKERS`,
//! default 2; `BENCH_LATENCY_MS`, the sandbox's answer latency, default 0;
//! `BENCH_PARTITIONS`, `dispatch.queue_partitions`, default the configured one).

#[path = "support/mod.rs"]
mod support;

use support::env;

use arauto::dispatch::worker::Worker;
use arauto::scheduler::Beat;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let sends = env("BENCH_SENDS", 20_000);
    let workers = env("BENCH_WORKERS", 2);
    let latency_ms = env("BENCH_LATENCY_MS", 0) as u64;
    let campaigns = 4;
    let partitions = env("BENCH_PARTITIONS", 0);
    let bench = support::setup(|s| {
        if partitions > 0 {
            s.dispatch.queue_partitions = partitions as u16;
        }
        s.beat.max_batch = 100_000;
        s.dispatch.concurrency = 256;
        s.database.max_connections = 20;
    })
    .await;
    let (url, sandbox) = support::sandbox();
    sandbox
        .set_faults(arauto::gateway::sandbox::FaultsPatch {
            latency_ms: Some(latency_ms),
            ..Default::default()
        })
        .unwrap();
    let per = sends / campaigns;
    bench
        .active_campaigns(support::Fleet {
            campaigns,
            contacts: sends as u64,
            api_url: &url,
            text: "Oi {{nome}}, {tudo bem|como vai}?",
            pacing: r#"{"min_interval_seconds": 0, "max_interval_seconds": 0}"#,
            first_send: "now() - interval '1 second'",
        })
        .await;
    let total = per * campaigns;

    let shutdown = CancellationToken::new();
    let mut tasks = vec![];
    for _ in 0..workers {
        let w = Worker::new(&bench.state).await.unwrap();
        tasks.push(tokio::spawn(w.run(shutdown.clone())));
    }
    let beat = Beat::new(&bench.state);
    let started = Instant::now();
    let mut ticks = 0;
    while sandbox.send_count() < total {
        beat.tick(chrono::Utc::now()).await.unwrap();
        ticks += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if started.elapsed() > Duration::from_secs(600) {
            eprintln!("gave up after 10 minutes");
            break;
        }
    }
    let elapsed = started.elapsed();
    shutdown.cancel();
    for t in tasks {
        let _ = t.await;
    }
    let sent = sandbox.send_count();
    let per_number = {
        let mut m = std::collections::HashMap::new();
        for s in sandbox.sends(None) {
            *m.entry(s.number).or_insert(0u32) += 1;
        }
        m
    };
    println!(
        "dispatch: {sent} sends in {:.2} s = {:.0} sends/s ({workers} workers, {latency_ms} ms gateway latency, {campaigns} campaigns, {ticks} ticks; duplicates: {})",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        per_number.values().filter(|n| **n > 1).count()
    );
    bench.teardown().await;
}
