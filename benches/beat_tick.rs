//! One beat tick with 10,000 active campaigns of which 1,000 are due, over a table that
//! also stores 1,000,000 finished recipients (the tick must not care). Prints the time.
//!
//! `cargo bench --bench beat_tick` (env `BENCH_CAMPAIGNS`, `BENCH_DUE`, `BENCH_STORED`).

#[path = "support/mod.rs"]
mod support;

use support::env;

use arauto::scheduler::Beat;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let campaigns = env("BENCH_CAMPAIGNS", 10_000);
    let due = env("BENCH_DUE", 1_000);
    let stored = env("BENCH_STORED", 1_000_000);
    let bench = support::setup(|s| s.beat.tick_seconds = 10).await;
    let tenant = bench.tenant().await;
    bench.instances(tenant, campaigns, "http://127.0.0.1:9").await;
    let schedule = support::immediate_schedule();
    bench
        .exec(&format!(
            "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing, next_send_at) \
             SELECT gen_random_uuid(), '{tenant}', 'C ' || i.name, i.id, ARRAY[i.id], 'active', '[{{\"text\": \"Oi\"}}]', '{{}}', '{schedule}', \
               '{{\"min_interval_seconds\": 20, \"max_interval_seconds\": 40}}', now() + interval '1 hour' \
             FROM instances i"
        ))
        .await;
    bench
        .exec(&format!(
            "UPDATE campaigns SET next_send_at = now() - interval '1 second' WHERE id IN (SELECT id FROM campaigns ORDER BY id LIMIT {due})"
        ))
        .await;
    // Every campaign has pending recipients; history of sent ones piles up in the table.
    bench
        .exec(&format!(
            "INSERT INTO recipients (id, tenant_id, campaign_id, phone, position, status) \
             SELECT gen_random_uuid(), '{tenant}', c.id, (5511900000000 + g)::text, g, 'pending' \
             FROM campaigns c CROSS JOIN generate_series(1, 3) AS g"
        ))
        .await;
    let per = stored / campaigns.max(1);
    bench
        .exec(&format!(
            "INSERT INTO recipients (id, tenant_id, campaign_id, phone, position, status, sent_at) \
             SELECT gen_random_uuid(), '{tenant}', c.id, (5521900000000 + g)::text, 100 + g, 'sent', now() - interval '1 day' \
             FROM campaigns c CROSS JOIN generate_series(1, {per}) AS g"
        ))
        .await;
    bench.exec("ANALYZE").await;
    let beat = Beat::new(&bench.state);
    let mut times = vec![];
    for round in 0..3 {
        if round > 0 {
            // Make the same campaigns due again.
            bench
                .exec("UPDATE recipients SET status = 'pending', planned_at = NULL, queued_at = NULL WHERE status = 'queued'")
                .await;
            bench
                .exec(&format!(
                    "UPDATE campaigns SET next_send_at = now() - interval '1 second' WHERE id IN (SELECT id FROM campaigns ORDER BY id LIMIT {due})"
                ))
                .await;
        }
        let started = Instant::now();
        let report = beat.tick(chrono::Utc::now()).await.unwrap();
        let took = started.elapsed();
        println!(
            "beat tick: {} campaigns due of {campaigns} active, {} sends planned, {stored} stored recipients: {:.1} ms",
            report.campaigns,
            report.queued,
            took.as_secs_f64() * 1000.0
        );
        times.push(took.as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    println!("beat tick: median {:.1} ms", times[times.len() / 2]);
    bench.teardown().await;
}
