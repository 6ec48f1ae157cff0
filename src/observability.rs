//! Prometheus metrics (issue 13, PRODUCT §3 `GET /metrics`): one process-wide recorder
//! (the `metrics` facade with `metrics-exporter-prometheus`), rendered in Prometheus' text
//! format by the API at `GET /metrics`, and by beat and worker processes on
//! `server.metrics_port` when it is set.
//!
//! | metric | type | labels | unit |
//! |---|---|---|---|
//! | `arauto_sends_total` | counter | `outcome` (sent, failed, unknown, unsent), `error_class` | sends |
//! | `arauto_send_duration_seconds` | histogram | | s, one gateway call |
//! | `arauto_pacing_lateness_seconds` | histogram | | s, request leaving − the instant the beat planned (kept in Postgres: a deferred job counts from it) |
//! | `arauto_gateway_retries_total` | counter | | retries |
//! | `arauto_gateway_warmups_total` | counter | | connections opened to a gateway before a paced send (`GatewayClient::warm`) |
//! | `arauto_phone_lock_busy_total` | counter | | jobs deferred by a held phone lock |
//! | `arauto_beat_tick_duration_seconds` | histogram | | s |
//! | `arauto_beat_ticks_skipped_total` | counter | | ticks |
//! | `arauto_due_queue_depth` | gauge | | jobs waiting for their instant |
//! | `arauto_due_queue_oldest_seconds` | gauge | | s since the oldest `queued` row was queued |
//! | `arauto_campaigns` | gauge | `status` | campaigns |
//! | `arauto_webhook_events_total` | counter | `event` | gateway events |
//! | `arauto_http_requests_total` | counter | `method`, `route`, `status` | requests |
//! | `arauto_http_request_duration_seconds` | histogram | `route` | s |

use actix_web::{get, web, App, HttpResponse, HttpServer};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Histogram buckets (s) for latencies: 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process's recorder, installed on first use (tests share one per process).
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .expect("valid buckets");
        match builder.install_recorder() {
            Ok(handle) => handle,
            // Another recorder is already global (an embedding program's): render ours
            // anyway, unused.
            Err(e) => {
                tracing::warn!(error = %e, "metrics recorder not installed");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// Installs the recorder (call once at process start so early events are counted).
pub fn init() {
    let _ = handle();
}

/// `GET /metrics`: every metric of this process in Prometheus' text format (0.0.4).
#[utoipa::path(operation_id = "getMetrics", tag = "health", responses(
    (status = 200, content_type = "text/plain", body = String, description = "Prometheus text exposition format 0.0.4"),
))]
#[get("/metrics")]
pub async fn metrics_route() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle().render())
}

/// Serves `GET /metrics` alone on `host:port` (beat and worker processes); runs until the
/// process ends.
pub fn serve(host: &str, port: u16) -> anyhow::Result<actix_web::dev::Server> {
    init();
    let server = HttpServer::new(|| App::new().service(metrics_route))
        .workers(1)
        .bind((host, port))
        .map_err(|e| anyhow::anyhow!("cannot listen for metrics on {host}:{port}: {e}"))?
        .run();
    Ok(server)
}

/// `route` label of a request: its matched pattern (`/api/v1/campaigns/{id}`), never the
/// raw path (ids would explode the label set).
pub fn record_request(method: &str, route: &str, status: u16, seconds: f64) {
    metrics::counter!("arauto_http_requests_total", "method" => method.to_owned(), "route" => route.to_owned(), "status" => status.to_string()).increment(1);
    metrics::histogram!("arauto_http_request_duration_seconds", "route" => route.to_owned()).record(seconds);
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(metrics_route);
}
