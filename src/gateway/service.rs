//! Gateway use cases behind the routes: applying a webhook's events, and asking the
//! gateway about one of the caller's instances (state, connect, logout).

use uuid::Uuid;

use super::webhook::{parse_webhook_value, GatewayEvent, ReceiptStatus, WebhookError};
use super::{ConnectInfo, ConnectionState, GatewayClient, GatewayError};
use crate::audit::{self, Event};
use crate::contacts::optout;
use crate::db::find_owned;
use crate::entities::instances;
use crate::error::{AppError, AppResult};
use crate::instances::connectivity::{self, target_of};
use crate::instances::domain::{webhook_url, WEBHOOK_EVENTS};
use crate::instances::repo as instances_repo;
use crate::messages::status as message_status;
use crate::recipients::{self, Receipt};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;
use crate::tenancy::settings;

/// Applies the events of one webhook call (`body` as posted) to the instance whose webhook
/// token it is; returns how many were acted on. 404 for an unknown token, 400 for a body
/// that is not an event, 422 for an event without a required member.
pub async fn apply_webhook(state: &AppState, token: &str, body: &serde_json::Value) -> AppResult<usize> {
    let instance = instances_repo::by_webhook_token(&state.db, token)
        .await?
        .ok_or_else(|| AppError::not_found("webhook"))?;
    let events = parse_webhook_value(body).map_err(|e| match e {
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
                // A receipt proves the send: it corrects an `outcome_unknown` failure; an
                // ERROR fails a send the gateway had accepted (`failed_after_send`), a
                // recipient's or a one-off message's alike. One-off messages first, then
                // recipients, which keep an unknown id as an early receipt.
                let receipt = match status {
                    ReceiptStatus::Error => Receipt::Error(recipients::ERROR_RECEIPT),
                    s if s.rank() >= ReceiptStatus::Read.rank() => Receipt::Read,
                    s if s.rank() >= ReceiptStatus::DeliveryAck.rank() => Receipt::Delivered,
                    _ => Receipt::Accepted,
                };
                let db = &state.db;
                if !message_status::apply_receipt(db, instance.tenant_id, &message_id, receipt, now).await?
                    && !recipients::apply_receipt(db, instance.tenant_id, &message_id, receipt, now).await?
                {
                    // Kept as early; a one-off message's outcome may have committed meanwhile.
                    message_status::apply_early_receipts(db, Some(std::slice::from_ref(&message_id))).await?;
                }
            }
            GatewayEvent::Inbound { phone, text, .. } => {
                // `phone` is canonical (a jid without the ninth digit gains it), as contacts are.
                recipients::record_reply(&state.db, instance.tenant_id, &phone, text.as_deref(), now).await?;
                message_status::record_reply(&state.db, instance.tenant_id, &phone, text.as_deref(), now).await?;
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
    Ok(handled)
}

/// A failed gateway call as the API answers it: 502, the detail carrying the gateway's
/// message (`gateway instance error (HTTP 401): Unauthorized`).
pub fn gateway_problem(e: GatewayError) -> AppError {
    AppError::BadGateway(e.to_string())
}

/// Calls the gateway about instance `id` of the caller's tenant with its decrypted key.
/// 404 for another tenant's id; 502 when the gateway fails or refuses.
async fn with_target<T, F, Fut>(state: &AppState, user: &AuthUser, id: Uuid, call: F) -> AppResult<T>
where
    F: FnOnce(GatewayClient, instances::Model, String) -> Fut,
    Fut: std::future::Future<Output = Result<T, GatewayError>>,
{
    let instance = find_owned::<instances::Entity>(&state.db, user.tenant_id, id, "instance").await?;
    let key = state.cipher.decrypt(&instance.api_key_enc)?;
    call(state.gateway.clone(), instance, key)
        .await
        .map_err(gateway_problem)
}

/// The instance's connection state as the gateway reports it now; recorded.
pub async fn connection_state(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<ConnectionState> {
    let heard = with_target(state, user, id, |gw, i, key| async move {
        gw.connection_state(target_of(&i, &key)).await
    })
    .await?;
    connectivity::record(&state.db, id, Some(heard), state.clock.now()).await?;
    Ok(heard)
}

/// A fresh QR code / pairing code to connect the instance's number.
pub async fn connect(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<ConnectInfo> {
    with_target(state, user, id, |gw, i, key| async move {
        gw.connect(target_of(&i, &key)).await
    })
    .await
}

/// Points the instance's webhook on the gateway at Arauto (`webhook/set`, enabled, for
/// [`WEBHOOK_EVENTS`]): receipts, replies (opt-out keywords) and connection changes. An
/// instance registered with its own `api_key` has none of ours until this is called (one
/// Arauto creates gets it at create). It replaces whatever webhook the instance had:
/// Evolution keeps one per instance. Returns the URL set: `server.public_url`, else
/// `base_url` (the scheme and host this request reached), + the instance's webhook path.
/// Audited as `instance.webhook`. 404 for another tenant's id; 502 when the gateway fails.
pub async fn set_webhook(state: &AppState, user: &AuthUser, id: Uuid, base_url: &str) -> AppResult<String> {
    let public = state.settings.server.public_url.clone();
    let url = with_target(state, user, id, |gw, i, key| async move {
        let url = webhook_url(public.as_deref(), base_url, &i.webhook_token);
        gw.set_webhook(target_of(&i, &key), &url, &WEBHOOK_EVENTS)
            .await
            .map(|()| url)
    })
    .await?;
    let event = Event::new("instance.webhook", "instance", id);
    audit::record_by(&state.db, user, state.clock.now(), event).await?;
    Ok(url)
}

/// Logs the number out of the gateway; recorded as `close` (which pauses its campaigns)
/// and audited.
pub async fn logout(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<()> {
    with_target(state, user, id, |gw, i, key| async move {
        gw.logout(target_of(&i, &key)).await
    })
    .await?;
    connectivity::record(&state.db, id, Some(ConnectionState::Close), state.clock.now()).await?;
    let event = Event::new("instance.logout", "instance", id);
    audit::record_by(&state.db, user, state.clock.now(), event).await?;
    Ok(())
}
