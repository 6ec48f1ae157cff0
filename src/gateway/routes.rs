//! Gateway-facing and instance-facing routes: the Evolution webhook (receipts, inbound
//! messages, connection updates) and an instance's state, connect (QR) and logout.

use actix_web::{get, post, web, HttpResponse};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::webhook::{parse_webhook_value, GatewayEvent, ReceiptStatus, WebhookError};
use super::{ConnectInfo, ConnectionState, GatewayError};
use crate::api::extract::ApiJson;
use crate::contacts::optout;
use crate::db::find_owned;
use crate::entities::instances;
use crate::error::{AppError, AppResult};
use crate::instances::connectivity::{self, target_of};
use crate::recipients;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;
use crate::tenancy::settings;

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
    let instance = instances::Entity::find()
        .filter(instances::Column::WebhookToken.eq(token.as_str()))
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found("webhook"))?;
    let events = parse_webhook_value(&body.0).map_err(|e| match e {
        WebhookError::InvalidJson(detail) => AppError::BadRequest(detail),
        WebhookError::Missing(field) => AppError::field(field, "is required"),
    })?;
    let now = state.clock.now();
    let mut handled = 0;
    // The tenant's opt-out keywords, read once per body and only when a text came in.
    let mut keywords = None;
    for event in events {
        handled += 1;
        let kind = match &event {
            GatewayEvent::Receipt { .. } => "messages.update",
            GatewayEvent::Inbound { .. } => "messages.upsert",
            GatewayEvent::Connection { .. } => "connection.update",
        };
        metrics::counter!("arauto_webhook_events_total", "event" => kind).increment(1);
        match event {
            GatewayEvent::Receipt { message_id, status, .. } => {
                let delivered = status.rank() >= ReceiptStatus::DeliveryAck.rank();
                let read = status.rank() >= ReceiptStatus::Read.rank();
                // A receipt proves the send: it corrects an `outcome_unknown` failure.
                recipients::apply_receipt(&state.db, instance.tenant_id, &message_id, delivered, read, now).await?;
            }
            GatewayEvent::Inbound { phone, text, .. } => {
                // `phone` is canonical (a jid without the ninth digit gains it), as contacts are.
                recipients::record_reply(&state.db, instance.tenant_id, &phone, text.as_deref(), now).await?;
                let Some(text) = text else { continue };
                let keywords = match &mut keywords {
                    Some(k) => k,
                    None => keywords.insert(settings::opt_out_keywords(&state.db, instance.tenant_id).await?),
                };
                if keywords.matches(&text) {
                    optout::opt_out_phone(&state.db, instance.tenant_id, &phone, instance.id, now).await?;
                }
            }
            GatewayEvent::Connection { state: heard, .. } => {
                connectivity::record(&state.db, instance.id, Some(heard), now).await?;
            }
        }
    }
    Ok(HttpResponse::Ok().json(WebhookResult { handled }))
}

fn gateway_problem(e: GatewayError) -> AppError {
    AppError::Conflict {
        detail: format!("the gateway refused: {e}"),
        current_status: None,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    /// open, connecting or close.
    pub state: ConnectionState,
}

async fn with_target<T, F, Fut>(state: &AppState, user: &AuthUser, id: Uuid, call: F) -> AppResult<T>
where
    F: FnOnce(super::GatewayClient, instances::Model, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
{
    let instance = find_owned::<instances::Entity>(&state.db, user.tenant_id, id, "instance").await?;
    let key = state.cipher.decrypt(&instance.api_key_enc)?;
    call(state.gateway.clone(), instance, key)
        .await
        .map_err(gateway_problem)
}

/// The instance's connection state, as the gateway reports it.
#[utoipa::path(operation_id = "getInstanceState", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = StateView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/instances/{id}/state")]
pub async fn instance_state(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    let s = with_target(&state, &user, *id, |gw, i, key| async move {
        gw.connection_state(target_of(&i, &key)).await
    })
    .await?;
    connectivity::record(&state.db, *id, Some(s), state.clock.now()).await?;
    Ok(HttpResponse::Ok().json(StateView { state: s }))
}

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

/// Asks the gateway for a QR code / pairing code to connect the number (admins only).
#[utoipa::path(operation_id = "connectInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ConnectView),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances/{id}/connect")]
pub async fn instance_connect(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let info = with_target(&state, &user, *id, |gw, i, key| async move {
        gw.connect(target_of(&i, &key)).await
    })
    .await?;
    Ok(HttpResponse::Ok().json(ConnectView::from(info)))
}

/// Logs the number out of the gateway (admins only).
#[utoipa::path(operation_id = "logoutInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances/{id}/logout")]
pub async fn instance_logout(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    with_target(&state, &user, *id, |gw, i, key| async move {
        gw.logout(target_of(&i, &key)).await
    })
    .await?;
    connectivity::record(&state.db, *id, Some(ConnectionState::Close), state.clock.now()).await?;
    let event = crate::audit::Event::new("instance.logout", "instance", *id);
    crate::audit::record(&state.db, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(evolution_webhook)
        .service(instance_state)
        .service(instance_connect)
        .service(instance_logout);
}
