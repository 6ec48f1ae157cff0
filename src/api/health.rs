use actix_web::{get, web, HttpResponse};
use fred::prelude::*;
use sea_orm::ConnectionTrait;
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{AppError, AppResult};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct HealthView {
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(operation_id = "getHealth", tag = "health", responses((status = 200, body = HealthView)))]
#[get("/health")]
pub async fn health() -> HttpResponse {
    HttpResponse::Ok().json(HealthView { status: "ok" })
}

/// Postgres and Redis are reachable.
#[utoipa::path(operation_id = "getReadiness", tag = "health", responses(
    (status = 200, body = HealthView),
    (status = 503, body = crate::error::Problem),
))]
#[get("/ready")]
pub async fn ready(state: web::Data<AppState>) -> AppResult<HttpResponse> {
    let timeout = std::time::Duration::from_secs(2);
    let db = tokio::time::timeout(timeout, state.db.execute_unprepared("SELECT 1")).await;
    if !matches!(db, Ok(Ok(_))) {
        return Err(AppError::Unavailable("Postgres is not reachable".into()));
    }
    let redis = tokio::time::timeout(timeout, state.redis.ping::<String>(None)).await;
    if !matches!(redis, Ok(Ok(_))) {
        return Err(AppError::Unavailable("Redis is not reachable".into()));
    }
    Ok(HttpResponse::Ok().json(HealthView { status: "ready" }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(health).service(ready);
}
