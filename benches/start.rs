//! Starting a campaign whose audience is 1,000,000 contacts (a tag plus a group, half
//! overlapping, 1 % opted out), through the API: how long `POST /campaigns/{id}/start`
//! takes to answer (PRODUCT §10: under 200 ms at any audience size), and how fast the
//! audience is then resolved into recipients in the background (`preparing`).
//!
//! `cargo bench --bench start` (env `BENCH_CONTACTS`, default 1000000; `BENCH_VACUUM=0`
//! to start before the loaded contacts are vacuumed).

#[path = "support/mod.rs"]
mod support;

use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let n = support::env("BENCH_CONTACTS", 1_000_000);
    let bench = support::setup(|_| {}).await;
    let (gateway, _sandbox) = support::sandbox();
    let (base, signup) = bench.api().await;
    let tenant: uuid::Uuid = signup["tenant"]["id"].as_str().expect("tenant id").parse().unwrap();
    let token = signup["token"].as_str().expect("token").to_owned();
    bench.instances(tenant, 1, &gateway).await;
    let (tag, group, campaign) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    bench
        .exec(&format!(
            "INSERT INTO contacts (id, tenant_id, phone, name, opted_out_at) \
             SELECT gen_random_uuid(), '{tenant}', (5511900000000 + i)::text, 'Contato ' || i, \
                    CASE WHEN i % 100 = 0 THEN now() END FROM generate_series(1, {n}) AS i"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO tags (id, tenant_id, name) VALUES ('{tag}', '{tenant}', 'T'); \
             INSERT INTO groups (id, tenant_id, name) VALUES ('{group}', '{tenant}', 'G'); \
             INSERT INTO contact_tags (tenant_id, contact_id, tag_id) \
             SELECT '{tenant}', id, '{tag}' FROM contacts WHERE (phone::bigint % 4) IN (0, 1, 2); \
             INSERT INTO group_members (tenant_id, group_id, contact_id) \
             SELECT '{tenant}', '{group}', id FROM contacts WHERE (phone::bigint % 4) IN (2, 3)"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing) \
             SELECT '{campaign}', '{tenant}', 'Big', id, ARRAY[id], 'draft', '[{{\"text\": \"Oi\"}}]', \
                    '{{\"group_ids\": [\"{group}\"], \"tag_ids\": [\"{tag}\"], \"contact_ids\": []}}', '{}', \
                    '{{\"min_interval_seconds\": 20, \"max_interval_seconds\": 40}}' FROM instances LIMIT 1",
            support::immediate_schedule()
        ))
        .await;
    // Contacts loaded a while before a campaign starts have been vacuumed by autovacuum
    // (PG 13+ vacuums after inserts; a 1,000,000-row load within its next round, a minute):
    // their visibility map lets the audience's membership probes skip the heap, and the
    // load is written out ([`support::BenchDb::settle`]).
    // `BENCH_VACUUM=0` starts right after the load instead (only `ANALYZE`).
    if support::env("BENCH_VACUUM", 1) == 1 {
        bench.settle().await;
    } else {
        bench.exec("ANALYZE").await;
    }

    let http = reqwest::Client::new();
    let started = Instant::now();
    let answer = http
        .post(format!("{base}/campaigns/{campaign}/start"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("start");
    let answered = started.elapsed();
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.expect("start body");
    assert!(status.is_success(), "start answered {status}: {body}");
    let ready = loop {
        let row = bench
            .state
            .db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT status, audience_resolved FROM campaigns WHERE id = '{campaign}' AND audience_ready_at IS NOT NULL"),
            ))
            .await
            .expect("poll");
        if let Some(row) = row {
            break (
                row.try_get::<String>("", "status").unwrap(),
                row.try_get::<i64>("", "audience_resolved").unwrap(),
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let resolved_in = started.elapsed();
    println!(
        "start: answered {status} `{}` in {:.1} ms; {} recipients from {n} contacts (tag ∪ group, deduplicated) \
         resolved in the background in {:.2} s ({:.0} recipients/s), then `{}`",
        body["status"].as_str().unwrap_or("?"),
        answered.as_secs_f64() * 1e3,
        ready.1,
        resolved_in.as_secs_f64(),
        ready.1 as f64 / resolved_in.as_secs_f64(),
        ready.0
    );
    bench.teardown().await;
}
