//! Gateway-facing and instance-facing routes: the Evolution webhook (receipts, inbound
//! messages, connection updates) and an instance's state, connect (QR) and logout.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{service, ConnectInfo, ConnectionState};
use crate::api::extract::{base_url, ApiJson};
use crate::error::AppResult;
use crate::instances::domain::WEBHOOK_EVENTS;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookResult {
    /// Events acted on.
    pub handled: usize,
}

/// A gateway event as Evolution API v2 posts it (other members are ignored).
/// Documentation only: the handler reads it with [`parse_webhook_value`].
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(example = json!({"event": "messages.update", "instance": "loja-1", "data": {"keyId": "3EB0C431C26A1916E2B1", "status": "READ"}}))]
pub struct EvolutionEvent {
    /// `messages.update` (receipts), `messages.upsert` (inbound), `connection.update`;
    /// other events are acknowledged and ignored.
    event: String,
    instance: Option<String>,
    /// One event object, or an array of them.
    #[schema(value_type = serde_json::Value)]
    data: serde_json::Value,
}

/// Receives gateway events. Idempotent: a repeated or late event never moves a status
/// backwards.
#[utoipa::path(operation_id = "receiveEvolutionWebhook", tag = "webhooks", params(("webhook_token" = String, Path)), request_body = EvolutionEvent, responses(
    (status = 200, body = WebhookResult),
))]
#[post("/webhooks/evolution/{webhook_token}")]
pub async fn evolution_webhook(
    state: web::Data<AppState>,
    token: web::Path<String>,
    body: ApiJson<serde_json::Value>,
) -> AppResult<HttpResponse> {
    let handled = service::apply_webhook(&state, &token, &body.0).await?;
    Ok(HttpResponse::Ok().json(WebhookResult { handled }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    /// open, connecting or close.
    pub state: ConnectionState,
}

/// The instance's connection state, as the gateway reports it.
#[utoipa::path(operation_id = "getInstanceState", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = StateView),
    (status = 404, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/instances/{id}/state")]
pub async fn instance_state(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let s = service::connection_state(&state, &user, *id).await?;
    Ok(HttpResponse::Ok().json(StateView { state: s }))
}

/// A QR code and/or pairing code to connect a number (all `null` when it is connected).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectView {
    pub pairing_code: Option<String>,
    pub code: Option<String>,
    /// A QR code image as a data URL.
    pub base64: Option<String>,
}

impl From<ConnectInfo> for ConnectView {
    fn from(c: ConnectInfo) -> Self {
        Self {
            pairing_code: c.pairing_code,
            code: c.code,
            base64: c.base64,
        }
    }
}

/// Asks the gateway for a fresh QR code / pairing code to connect the number (admins only;
/// 502 with the gateway's message when it fails).
#[utoipa::path(operation_id = "connectInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ConnectView),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances/{id}/connect")]
pub async fn instance_connect(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let info = service::connect(&state, &user, *id).await?;
    Ok(HttpResponse::Ok().json(ConnectView::from(info)))
}

/// The webhook an instance's gateway posts to.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Where the gateway now posts the instance's events.
    pub url: String,
    /// The events it posts (Evolution's names).
    pub events: Vec<String>,
}

/// Points the instance's webhook on the gateway at Arauto, replacing any other (Evolution
/// keeps one per instance): needed once for a number registered with its own `api_key`, or
/// no receipts, replies (opt-out keywords) or connection changes reach Arauto; one Arauto
/// created has it already (admins only; 502 with the gateway's message when it fails).
#[utoipa::path(operation_id = "setInstanceWebhook", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = WebhookView),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances/{id}/webhook")]
pub async fn instance_webhook(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let url = service::set_webhook(&state, &user, *id, &base_url(&req)).await?;
    let events = WEBHOOK_EVENTS.iter().map(|e| (*e).to_owned()).collect();
    Ok(HttpResponse::Ok().json(WebhookView { url, events }))
}

/// Logs the number out of the gateway (admins only).
#[utoipa::path(operation_id = "logoutInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances/{id}/logout")]
pub async fn instance_logout(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    service::logout(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(evolution_webhook)
        .service(instance_state)
        .service(instance_connect)
        .service(instance_webhook)
        .service(instance_logout);
}
