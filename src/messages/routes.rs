//! `POST /messages`, `POST /messages/bulk`, `GET /messages/{id}`, `GET /messages`,
//! `POST /messages/{id}/cancel`.

use actix_web::{get, post, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use super::repo::{self, MessageFilter, MessageKey};
use super::service::{self, BulkResult, MessageRequest, Route, MAX_BULK};
use super::{idempotency, Accepted, MessageStatus, MessageView};
use crate::api::cursor::{CursorPage, CursorParam, Keyset};
use crate::api::extract::{from_value, ApiJson, ApiQuery, BulkJson, Pagination};
use crate::contacts::phone::Phone;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// `POST /messages/bulk`'s body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkRequest {
    /// 1 to 1,000 messages, each checked on its own.
    #[schema(value_type = Vec<MessageRequest>, min_items = 1, max_items = 1000)]
    pub messages: Vec<Value>,
}

fn answer((status, body): (u16, Value)) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::ACCEPTED);
    HttpResponse::build(status).json(body)
}

/// Sends one message from one of the tenant's instances, now or at `send_at`, through the
/// campaign engine's queue, phone lock, pacing and daily limit. 202 `{id, status}`. With an
/// `Idempotency-Key`, the same key and body within 24 h answer the first answer and send
/// nothing new (another body: 422). 409 when the phone is an opted-out contact's (unless
/// `transactional`, admins only: 403).
#[utoipa::path(operation_id = "sendMessage", tag = "messages", request_body = MessageRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 visible ASCII characters; the first answer to a key is replayed for 24 h.")),
    responses(
    (status = 202, body = Accepted),
    (status = 403, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/messages")]
pub async fn send(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: ApiJson<Value>,
) -> AppResult<HttpResponse> {
    let key = idempotency::key_of(&req)?;
    let body = body.0;
    // Shape and types first, as a single body's errors (paths from the body's root).
    from_value::<MessageRequest>(body.clone()).map_err(|e| AppError::Validation(vec![e]))?;
    let done = service::submit(&state, &user, Route::One, &body, vec![body.clone()], key).await?;
    Ok(answer(done))
}

/// Sends up to 1,000 messages; each is checked on its own and answered in `items` (in order:
/// `id` and `status`, or `error` with the status the single route would answer and the
/// offending fields). 202 whatever the items' fates. `Idempotency-Key` as for one message.
#[utoipa::path(operation_id = "sendMessagesInBulk", tag = "messages", request_body = BulkRequest,
    params(("Idempotency-Key" = Option<String>, Header, description = "Up to 255 visible ASCII characters; the first answer to a key is replayed for 24 h.")),
    responses(
    (status = 202, body = BulkResult),
), security(("bearer" = [])))]
#[post("/messages/bulk")]
pub async fn bulk(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: BulkJson<Value>,
) -> AppResult<HttpResponse> {
    let key = idempotency::key_of(&req)?;
    let body = body.0;
    let parsed: BulkRequest = from_value(body.clone()).map_err(|e| AppError::Validation(vec![e]))?;
    if parsed.messages.is_empty() || parsed.messages.len() > MAX_BULK {
        return Err(AppError::field("messages", format!("must have 1 to {MAX_BULK} items")));
    }
    let done = service::submit(&state, &user, Route::Bulk, &body, parsed.messages, key).await?;
    Ok(answer(done))
}

/// One message, with its status, receipts and reply.
#[utoipa::path(operation_id = "getMessage", tag = "messages", params(("id" = Uuid, Path)), responses(
    (status = 200, body = MessageView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/messages/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = repo::get(&state.db, user.tenant_id, *id)
        .await?
        .ok_or_else(|| AppError::not_found("message"))?;
    Ok(HttpResponse::Ok().json(found))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MessageQuery {
    pub status: Option<MessageStatus>,
    /// Any common notation (normalised like contacts' phones).
    pub phone: Option<String>,
}

/// The tenant's one-off messages, newest first, optionally by status and phone; by page or
/// after a cursor (`total` counted up to 10,000).
#[utoipa::path(operation_id = "listMessages", tag = "messages", params(MessageQuery, Pagination, CursorParam), responses(
    (status = 200, body = CursorPage<MessageView>),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/messages")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    query: ApiQuery<MessageQuery>,
    page: Keyset<MessageKey>,
) -> AppResult<HttpResponse> {
    let q = query.0;
    let phone = match q.phone {
        None => None,
        Some(raw) => {
            let country = crate::contacts::repo::default_country(&state.db, user.tenant_id).await?;
            Some(Phone::parse(&raw, &country).map_err(|e| AppError::field("phone", e))?)
        }
    };
    let filter = MessageFilter {
        status: q.status,
        phone,
    };
    let page = repo::list(&state.db, user.tenant_id, &filter, &page).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// Cancels a message that has not left yet (`pending` or `queued`): nothing is sent once
/// this answers. 409 with `current_status` once it is sending or done.
#[utoipa::path(operation_id = "cancelMessage", tag = "messages", params(("id" = Uuid, Path)), responses(
    (status = 200, body = MessageView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/messages/{id}/cancel")]
pub async fn cancel(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    match super::status::cancel(&state.db, user.tenant_id, *id).await? {
        None => Err(AppError::not_found("message")),
        Some((false, current)) => Err(AppError::Conflict {
            detail: format!(
                "only a message that has not left can be cancelled; this one is {}",
                current.as_str()
            ),
            current_status: Some(current.as_str().into()),
        }),
        Some((true, _)) => {
            let found = repo::get(&state.db, user.tenant_id, *id)
                .await?
                .ok_or_else(|| AppError::not_found("message"))?;
            Ok(HttpResponse::Ok().json(found))
        }
    }
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(send)
        .service(bulk)
        .service(list)
        .service(get)
        .service(cancel);
}
