//! Tracing set-up (once per process) and the per-request span.

use actix_web::{
    body::MessageBody,
    dev::{ServiceRequest, ServiceResponse},
    middleware::Next,
    Error,
};
use std::time::Instant;
use tracing::Instrument;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

use crate::config::LogSettings;

/// Installs the global subscriber: text or JSON, filtered by `RUST_LOG` or `log.level`.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let registry = tracing_subscriber::registry().with(filter);
    let result = if log.format == "json" {
        registry.with(fmt::layer().json().with_current_span(true)).try_init()
    } else {
        registry.with(fmt::layer().with_target(false)).try_init()
    };
    // A second init (tests, `all`) keeps the first subscriber.
    let _ = result;
}

/// One span per request: method, route, status, latency and tenant (recorded by the auth
/// extractor when the caller is known).
pub async fn request_span(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let request_id = uuid::Uuid::new_v4();
    let span = tracing::info_span!(
        "request",
        %request_id,
        method = %req.method(),
        path = %req.path(),
        route = tracing::field::Empty,
        status = tracing::field::Empty,
        latency_ms = tracing::field::Empty,
        tenant_id = tracing::field::Empty,
    );
    let started = Instant::now();
    let result = next.call(req).instrument(span.clone()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let _enter = span.enter();
    match &result {
        Ok(res) => {
            let route = res.request().match_pattern().unwrap_or_default();
            span.record("route", route.as_str());
            span.record("status", res.status().as_u16());
            span.record("latency_ms", latency_ms);
            let route = if route.is_empty() {
                "unmatched".to_owned()
            } else {
                route
            };
            crate::observability::record_request(
                res.request().method().as_str(),
                &route,
                res.status().as_u16(),
                latency_ms / 1000.0,
            );
            tracing::info!("request finished");
        }
        Err(e) => {
            span.record("latency_ms", latency_ms);
            tracing::warn!(error = %e, "request failed");
        }
    }
    result
}
