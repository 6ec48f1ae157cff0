//! `/webhook-subscriptions`: create (the secret shown once), list, get, delete, and each
//! subscription's delivery log. Admins only.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, FromQueryResult, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::domain::{new_secret, parse_description, parse_events, parse_url, DeliveryStatus, EventType};
use crate::api::extract::{ApiJson, ApiQuery, Page, Pagination};
use crate::audit::{self, Event};
use crate::db::{find_owned, scoped, stmt};
use crate::entities::webhook_subscriptions as subs;
use crate::error::{AppError, AppResult, Fields};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// A subscription as the API shows it: never its secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    pub id: Uuid,
    /// Where deliveries are POSTed.
    pub url: String,
    pub events: Vec<EventType>,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl TryFrom<subs::Model> for SubscriptionView {
    type Error = AppError;

    fn try_from(m: subs::Model) -> AppResult<Self> {
        Ok(Self {
            id: m.id,
            url: m.url,
            events: serde_json::from_value(m.events).map_err(AppError::internal)?,
            description: m.description,
            created_at: m.created_at,
        })
    }
}

/// The answer to a creation: the subscription and its signing secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedSubscriptionView {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// The HMAC-SHA256 key of `X-Arauto-Signature`; stored encrypted, never shown again.
    pub secret: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"url": "https://crm.example.com/arauto", "events": ["message.sent", "campaign.completed"], "description": "CRM"}))]
pub struct CreateSubscriptionRequest {
    /// Absolute `http(s)` URL, at most 2048 bytes, without credentials.
    pub url: String,
    /// One or more event types.
    pub events: Vec<EventType>,
    /// Free text, at most 500 characters.
    pub description: Option<String>,
}

/// Subscribes a URL to events (admins only). The answer carries the signing secret, once.
#[utoipa::path(operation_id = "createWebhookSubscription", tag = "webhook subscriptions", request_body = CreateSubscriptionRequest, responses(
    (status = 201, body = CreatedSubscriptionView),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/webhook-subscriptions")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<CreateSubscriptionRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let b = body.0;
    let mut f = Fields::default();
    let url = f.check("url", parse_url(&b.url));
    let events = f.check("events", parse_events(&b.events));
    let description = match b.description.as_deref() {
        Some(d) => f.check("description", parse_description(d)).flatten(),
        None => None,
    };
    f.finish()?;
    let (Some(url), Some(events)) = (url, events) else {
        return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
    };
    let secret = new_secret();
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let created = subs::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        url: Set(url),
        events: Set(json!(events)),
        description: Set(description),
        secret_enc: Set(state.cipher.encrypt(&secret)?),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let event = Event::new("webhook_subscription.create", "webhook_subscription", created.id)
        .with(json!({"url": created.url, "events": created.events}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(CreatedSubscriptionView {
        subscription: SubscriptionView::try_from(created)?,
        secret,
    }))
}

/// The tenant's subscriptions, oldest first (admins only).
#[utoipa::path(operation_id = "listWebhookSubscriptions", tag = "webhook subscriptions", params(Pagination), responses(
    (status = 200, body = Page<SubscriptionView>),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/webhook-subscriptions")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let query = scoped::<subs::Entity>(user.tenant_id)
        .order_by_asc(subs::Column::CreatedAt)
        .order_by_asc(subs::Column::Id);
    let found = page.fetch(&state.reads, query).await?;
    Ok(HttpResponse::Ok().json(found.try_map(SubscriptionView::try_from)?))
}

/// One subscription (admins only).
#[utoipa::path(operation_id = "getWebhookSubscription", tag = "webhook subscriptions", params(("id" = Uuid, Path)), responses(
    (status = 200, body = SubscriptionView),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/webhook-subscriptions/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let found = find_owned::<subs::Entity>(&state.db, user.tenant_id, *id, "webhook subscription").await?;
    Ok(HttpResponse::Ok().json(SubscriptionView::try_from(found)?))
}

/// Removes a subscription and its pending deliveries and log (admins only).
#[utoipa::path(operation_id = "deleteWebhookSubscription", tag = "webhook subscriptions", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/webhook-subscriptions/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let found = find_owned::<subs::Entity>(&state.db, user.tenant_id, *id, "webhook subscription").await?;
    let txn = state.db.begin().await?;
    subs::Entity::delete_by_id(found.id).exec(&txn).await?;
    let event =
        Event::new("webhook_subscription.delete", "webhook_subscription", found.id).with(json!({"url": found.url}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One delivery of one event to the subscription, as the log shows it.
#[derive(Debug, Serialize, ToSchema, FromQueryResult)]
pub struct DeliveryView {
    pub id: Uuid,
    /// The event's id (`id` in the body, header `X-Arauto-Delivery`).
    pub event_id: Uuid,
    #[schema(value_type = EventType)]
    pub event: String,
    #[schema(value_type = DeliveryStatus)]
    pub status: String,
    /// Attempts made so far.
    pub attempts: i32,
    /// The receiver's HTTP status at the last attempt (`null`: no answer, or none yet).
    pub last_status: Option<i32>,
    /// Why the last attempt did not deliver (`null` once delivered).
    pub last_error: Option<String>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// When the next attempt is due (`null` once delivered or failed).
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// The event's `data`.
    #[schema(value_type = Object)]
    pub data: Value,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryFilter {
    /// Only deliveries in this status.
    pub status: Option<DeliveryStatus>,
}

/// The subscription's delivery log, newest first (admins only).
#[utoipa::path(operation_id = "listWebhookDeliveries", tag = "webhook subscriptions", params(("id" = Uuid, Path), DeliveryFilter, Pagination), responses(
    (status = 200, body = Page<DeliveryView>),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/webhook-subscriptions/{id}/deliveries")]
pub async fn deliveries(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    filter: ApiQuery<DeliveryFilter>,
    page: Pagination,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let found = find_owned::<subs::Entity>(&state.db, user.tenant_id, *id, "webhook subscription").await?;
    let status = filter.0.status.map(DeliveryStatus::as_str);
    let where_ = "WHERE subscription_id = $1 AND tenant_id = $2 AND ($3::text IS NULL OR status = $3)";
    let total = crate::db::count(
        &state.reads,
        format!("SELECT count(*) AS n FROM webhook_deliveries {where_}"),
        vec![found.id.into(), user.tenant_id.into(), status.into()],
    )
    .await?;
    let items = DeliveryView::find_by_statement(stmt(
        format!(
            "SELECT id, event_id, event_type AS event, status, attempts, last_status, last_error, last_attempt_at, \
               next_attempt_at, delivered_at, created_at, data FROM webhook_deliveries {where_} \
             ORDER BY created_at DESC, id DESC LIMIT $4 OFFSET $5"
        ),
        vec![
            found.id.into(),
            user.tenant_id.into(),
            status.into(),
            (page.per_page as i64).into(),
            (page.offset() as i64).into(),
        ],
    ))
    .all(&state.reads)
    .await?;
    Ok(HttpResponse::Ok().json(page.page_of(items, total.max(0) as u64)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(deliveries)
        .service(get)
        .service(delete);
}
