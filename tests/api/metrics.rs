//! `GET /metrics` (issue 13): Prometheus text, scraped and parsed as Prometheus would.
//! The recorder is per process and tests run in parallel, so figures are lower bounds.

use crate::engine::{fast, immediate, world, Engine};
use std::collections::HashMap;
use std::time::Duration;

/// `name{labels}` → value, from Prometheus' text exposition format.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample is `series value`");
            (series.to_owned(), value.parse::<f64>().expect("a numeric value"))
        })
        .collect()
}

/// The sum of the samples of `name` whose labels include every one of `labels`.
fn sum(samples: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            n == name && labels.iter().all(|l| rest.contains(l))
        })
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test]
async fn metrics_count_sends_ticks_requests_and_campaigns_in_prometheus_text() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await.ok(200);

    let r = w
        .app
        .http
        .get(format!("{}/metrics", w.app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ct = r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = r.text().await.unwrap();
    let m = parse(&text);
    assert!(sum(&m, "arauto_sends_total", &["outcome=\"sent\""]) >= 3.0, "{text}");
    assert!(sum(&m, "arauto_send_duration_seconds_count", &[]) >= 3.0);
    assert!(sum(&m, "arauto_pacing_lateness_seconds_count", &[]) >= 3.0);
    assert!(sum(&m, "arauto_beat_tick_duration_seconds_count", &[]) >= 1.0);
    assert!(m.keys().any(|k| k.starts_with("arauto_due_queue_depth")), "{text}");
    assert!(
        m.keys()
            .any(|k| k.starts_with("arauto_campaigns{status=\"completed\"}")),
        "{text}"
    );
    // Requests are labelled by route pattern, never by the raw path with its ids.
    let stats_route = "route=\"/api/v1/campaigns/{id}/stats\"";
    assert!(
        sum(&m, "arauto_http_requests_total", &[stats_route, "status=\"200\""]) >= 1.0,
        "{text}"
    );
    assert!(sum(&m, "arauto_http_request_duration_seconds_count", &[stats_route]) >= 1.0);
    assert!(!text.contains(&c), "no campaign id in any label");
}
