//! `POST /contacts/import` of 1,000,000 CSV rows over real HTTP, the body generated as it
//! is sent; prints the time and the process's peak resident memory.
//!
//! `cargo bench --bench import` (env `BENCH_ROWS`, default 1000000).

#[path = "support/mod.rs"]
mod support;

use std::time::Instant;

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let rows = support::env("BENCH_ROWS", 1_000_000);
    let bench = support::setup(|s| s.server.port = 0).await;
    let (base, signup) = bench.api().await;
    let http = reqwest::Client::new();
    let token = signup["token"].as_str().expect("token").to_owned();
    let before = peak_rss_mb();
    // The file, generated chunk by chunk as the request streams out.
    const CHUNK: usize = 10_000;
    let chunks = futures_util::stream::iter((0..rows.div_ceil(CHUNK)).map(move |c| {
        let mut s = String::with_capacity(CHUNK * 40);
        if c == 0 {
            s.push_str("phone,name,cidade\n");
        }
        for i in c * CHUNK..((c + 1) * CHUNK).min(rows) {
            s.push_str(&format!("+1415{i:07},Contato {i},Recife\n"));
        }
        Ok::<_, std::io::Error>(s)
    }));
    let started = Instant::now();
    let result: serde_json::Value = http
        .post(format!("{base}/contacts/import"))
        .bearer_auth(&token)
        .header("content-type", "text/csv")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("import")
        .json()
        .await
        .expect("json");
    let took = started.elapsed();
    println!(
        "import: {rows} rows in {:.2} s = {:.0} rows/s (created {}, invalid {}); peak RSS {:.0} MB before, {:.0} MB after",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64(),
        result["created"],
        result["invalid"].as_array().map_or(0, Vec::len),
        before,
        peak_rss_mb()
    );
    bench.teardown().await;
}
