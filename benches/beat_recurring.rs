//! The beat tick's recurring step (PRODUCT §8, issue 12): 10,000 started recurring
//! campaigns of which 1,000 have an occurrence due. Prints the tick's time and checks that
//! each due occurrence got exactly one run (a second tick at the same instant creates none).
//!
//! `cargo bench --bench beat_recurring` (env `BENCH_PARENTS`, `BENCH_DUE`).

#[path = "support/mod.rs"]
mod support;

use support::env;

use arauto::scheduler::Beat;
use sea_orm::FromQueryResult;
use std::time::Instant;

#[derive(FromQueryResult)]
struct Count {
    n: i64,
}

#[tokio::main]
async fn main() {
    let parents = env("BENCH_PARENTS", 10_000);
    let due = env("BENCH_DUE", 1_000);
    let bench = support::setup(|s| s.beat.tick_seconds = 10).await;
    let tenant = bench.tenant().await;
    bench.instances(tenant, parents, "http://127.0.0.1:9").await;
    let schedule = support::immediate_schedule();
    bench
        .exec(&format!(
            "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing, \
               recurrence, next_occurrence_at, audience_total, audience_ready_at, started_at) \
             SELECT gen_random_uuid(), '{tenant}', 'R ' || i.name, i.id, ARRAY[i.id], 'scheduled', '[{{\"text\": \"Oi\"}}]', \
               '{{\"contact_ids\": []}}', '{schedule}', '{{\"min_interval_seconds\": 20, \"max_interval_seconds\": 40}}', \
               '{{\"freq\": \"daily\", \"at\": \"09:00\", \"max_lateness_minutes\": 60}}', now() + interval '1 hour', 0, now(), now() \
             FROM instances i"
        ))
        .await;
    bench.analyze().await;
    let beat = Beat::new(&bench.state);
    let mut times = vec![];
    for round in 0..3 {
        bench.exec("DELETE FROM campaigns WHERE parent_id IS NOT NULL").await;
        bench
            .exec(&format!(
                "UPDATE campaigns SET next_occurrence_at = now() - interval '1 minute', occurrence_count = 0 \
                 WHERE id IN (SELECT id FROM campaigns WHERE recurrence IS NOT NULL ORDER BY id LIMIT {due})"
            ))
            .await;
        let now = chrono::Utc::now();
        let started = Instant::now();
        let report = beat.tick(now).await.unwrap();
        let took = started.elapsed();
        let again = beat.tick(now).await.unwrap();
        let runs = Count::find_by_statement(arauto::db::stmt(
            "SELECT count(*) AS n FROM campaigns WHERE parent_id IS NOT NULL",
            vec![],
        ))
        .one(&bench.state.db)
        .await
        .unwrap()
        .map_or(0, |c| c.n);
        assert_eq!(
            (report.runs, again.runs, runs),
            (due as u64, 0, due as i64),
            "round {round}"
        );
        println!(
            "beat tick: {} runs created of {parents} recurring campaigns ({due} due): {:.1} ms",
            report.runs,
            took.as_secs_f64() * 1000.0
        );
        times.push(took.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!("beat tick (recurring): median {:.1} ms", times[times.len() / 2]);
    bench.teardown().await;
}
