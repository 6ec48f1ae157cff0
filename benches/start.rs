//! Starting a campaign whose audience is 1,000,000 contacts (a tag plus a group, half
//! overlapping, some opted out): the audience becomes recipient rows in one statement.
//!
//! `cargo bench --bench start` (env `BENCH_CONTACTS`, default 1000000).

#[path = "support/mod.rs"]
mod support;

use arauto::campaigns::{domain::Audience, lifecycle::resolve_audience};
use std::time::Instant;

#[tokio::main]
async fn main() {
    let n = support::env("BENCH_CONTACTS", 1_000_000);
    let bench = support::setup(|_| {}).await;
    let tenant = bench.tenant().await;
    bench.instances(tenant, 1, "http://127.0.0.1:9").await;
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
            "INSERT INTO tags (id, tenant_id, name) VALUES ('{tag}', '{tenant}', 'T')"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO groups (id, tenant_id, name) VALUES ('{group}', '{tenant}', 'G')"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO contact_tags (tenant_id, contact_id, tag_id) \
             SELECT '{tenant}', id, '{tag}' FROM contacts WHERE (phone::bigint % 4) IN (0, 1, 2)"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO group_members (tenant_id, group_id, contact_id) \
             SELECT '{tenant}', '{group}', id FROM contacts WHERE (phone::bigint % 4) IN (2, 3)"
        ))
        .await;
    bench
        .exec(&format!(
            "INSERT INTO campaigns (id, tenant_id, name, instance_id, status, messages, audience, schedule, pacing) \
             SELECT '{campaign}', '{tenant}', 'Big', id, 'draft', '[{{\"text\": \"Oi\"}}]', '{{}}', '{}', '{{}}' FROM instances LIMIT 1",
            support::immediate_schedule()
        ))
        .await;
    bench.exec("ANALYZE").await;
    let audience = Audience {
        group_ids: vec![group],
        tag_ids: vec![tag],
        contact_ids: vec![],
    };
    let started = Instant::now();
    let rows = resolve_audience(&bench.state.db, tenant, campaign, &audience)
        .await
        .expect("resolve");
    let took = started.elapsed();
    println!(
        "start: {rows} recipients from {n} contacts (tag ∪ group, deduplicated) in {:.2} s",
        took.as_secs_f64()
    );
    bench.teardown().await;
}
