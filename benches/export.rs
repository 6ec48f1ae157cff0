//! Export of a big campaign: `GET /campaigns/{id}/recipients.csv` of a campaign with
//! 1,000,000 recipients, over HTTP against the API running in-process, the body read as it
//! streams (never held whole). Prints the time to the last byte, rows and bytes, and this
//! process's peak RSS before and after (`VmHWM`: the API and the reader together) — the
//! export streams in keyset chunks, so the peak must not grow with the campaign.
//!
//! `cargo bench --bench export` (env `BENCH_RECIPIENTS`, default 1000000).

#[path = "support/mod.rs"]
mod support;

use support::env;

use futures_util::StreamExt;
use std::time::Instant;

/// This process's peak resident set so far, in MB (`VmHWM` of `/proc/self/status`).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let recipients = env("BENCH_RECIPIENTS", 1_000_000);
    let bench = support::setup(|s| s.log.level = "warn".into()).await;
    let (base, signup) = bench.api().await;
    let token = signup["token"].as_str().expect("token").to_owned();
    let tenant_id: uuid::Uuid = signup["tenant"]["id"]
        .as_str()
        .expect("tenant id")
        .parse()
        .expect("uuid");
    bench
        .exec(&format!(
            "INSERT INTO contacts (id, tenant_id, phone, name) VALUES (gen_random_uuid(), '{tenant_id}', '5511900000001', 'Ana')"
        ))
        .await;
    let campaign = bench.campaign_under_way(&base, &token, tenant_id, recipients).await;
    bench.exec("VACUUM ANALYZE").await;

    let before = peak_rss_mb();
    let started = Instant::now();
    let answer = reqwest::Client::new()
        .get(format!("{base}/campaigns/{campaign}/recipients.csv"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("export");
    assert!(answer.status().is_success(), "{}", answer.status());
    let (mut bytes, mut lines) = (0usize, 0usize);
    let mut body = answer.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    let took = started.elapsed();
    assert_eq!(lines, recipients + 1, "a header and one line per recipient");
    println!(
        "export: {recipients} recipients as CSV in {:.2} s ({:.0} rows/s, {:.1} MB); peak RSS {:.0} MB before, {:.0} MB after",
        took.as_secs_f64(),
        recipients as f64 / took.as_secs_f64(),
        bytes as f64 / 1e6,
        before,
        peak_rss_mb()
    );
    bench.teardown().await;
}
