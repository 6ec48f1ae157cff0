use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use rand::{distributions::Alphanumeric, Rng};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::connectivity;
use super::domain::*;
use crate::api::extract::{nullable, ApiJson, Page, Pagination};
use crate::audit::{self, Event};
use crate::campaigns::repo::Replan;
use crate::constraints::{violation, Violation, CAMPAIGNS_INSTANCE_FKEY};
use crate::db::{find_owned, scoped};
use crate::entities::instances;
use crate::error::{AppError, AppResult, FieldError, Fields};
use crate::gateway::ConnectionState;
use crate::state::AppState;
use crate::tenancy::{auth::AuthUser, domain::parse_name};

/// An instance as the API shows it: never its api key.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceView {
    pub id: Uuid,
    pub name: String,
    pub api_url: String,
    pub instance_name: String,
    pub daily_limit: Option<i32>,
    pub warmup: Option<Warmup>,
    /// Where to point the gateway's webhook (relative to this API's base URL).
    pub webhook_path: String,
    /// The number's connection as last heard (`open`, `connecting`, `close`); `null` before
    /// anything was heard. `GET /instances/{id}/state` asks the gateway afresh.
    pub connection_state: Option<ConnectionState>,
    /// When the gateway was last asked or heard from.
    pub state_checked_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<instances::Model> for InstanceView {
    fn from(m: instances::Model) -> Self {
        Self {
            id: m.id,
            webhook_path: format!("/api/v1/webhooks/evolution/{}", m.webhook_token),
            connection_state: connectivity::stored_state(&m),
            warmup: m.warmup.and_then(|w| serde_json::from_value(w).ok()),
            state_checked_at: m.state_checked_at,
            name: m.name,
            api_url: m.api_url,
            instance_name: m.instance_name,
            daily_limit: m.daily_limit,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Loja 1", "api_url": "http://evolution:8080", "api_key": "secret", "instance_name": "loja-1", "daily_limit": 500}))]
pub struct CreateInstanceRequest {
    #[schema(max_length = 200)]
    pub name: String,
    /// Base URL of the Evolution gateway, e.g. `http://evolution:8080`.
    pub api_url: String,
    /// Write-only: stored encrypted, never returned.
    #[schema(max_length = 512)]
    pub api_key: String,
    /// The instance's name on the gateway: letters, digits, `-`, `_` and `.`.
    #[schema(max_length = 100)]
    pub instance_name: String,
    /// Sends per local day.
    pub daily_limit: Option<i64>,
    pub warmup: Option<Warmup>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInstanceRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub api_url: Option<String>,
    #[schema(max_length = 512)]
    pub api_key: Option<String>,
    #[schema(max_length = 100)]
    pub instance_name: Option<String>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<i64>)]
    pub daily_limit: Option<Option<i64>>,
    /// `null` removes the warm-up.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Warmup>)]
    pub warmup: Option<Option<Warmup>>,
}

fn check_warmup(f: &mut Fields, w: Option<&Warmup>) {
    if let Some(Err(e)) = w.map(Warmup::validate) {
        f.push(FieldError::new("warmup", e));
    }
}

fn webhook_token() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// Connects a WhatsApp number on a gateway (admins only).
#[utoipa::path(operation_id = "createInstance", tag = "instances", request_body = CreateInstanceRequest, responses(
    (status = 201, body = InstanceView),
    (status = 403, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<CreateInstanceRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let b = body.0;
    let mut f = Fields::default();
    let name = f.check("name", parse_name(&b.name, crate::text::MAX_NAME));
    let api_url = f.check("api_url", parse_api_url(&b.api_url));
    let api_key = f.check("api_key", parse_api_key(&b.api_key));
    let instance_name = f.check("instance_name", parse_instance_name(&b.instance_name));
    let daily_limit = b.daily_limit.and_then(|n| f.check("daily_limit", parse_daily_limit(n)));
    check_warmup(&mut f, b.warmup.as_ref());
    f.finish()?;
    let (Some(name), Some(api_url), Some(api_key), Some(instance_name)) = (name, api_url, api_key, instance_name)
    else {
        return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
    };
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let created = instances::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        name: Set(name),
        api_url: Set(api_url),
        instance_name: Set(instance_name),
        api_key_enc: Set(state.cipher.encrypt(&api_key)?),
        webhook_token: Set(webhook_token()),
        daily_limit: Set(daily_limit),
        warmup: Set(b.warmup.map(|w| json!(w))),
        connection_state: Set(None),
        state_checked_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let event = Event::new("instance.create", "instance", created.id).with(json!({"name": created.name}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(InstanceView::from(created)))
}

/// The tenant's instances.
#[utoipa::path(operation_id = "listInstances", tag = "instances", params(Pagination), responses(
    (status = 200, body = Page<InstanceView>),
), security(("bearer" = [])))]
#[get("/instances")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    let query = scoped::<instances::Entity>(user.tenant_id)
        .order_by_asc(instances::Column::CreatedAt)
        .order_by_asc(instances::Column::Id);
    Ok(HttpResponse::Ok().json(page.fetch(&state.db, query).await?.map(InstanceView::from)))
}

/// One instance.
#[utoipa::path(operation_id = "getInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = InstanceView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/instances/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<instances::Entity>(&state.db, user.tenant_id, *id, "instance").await?;
    Ok(HttpResponse::Ok().json(InstanceView::from(found)))
}

/// Changes an instance; a new `api_key` replaces the stored one (admins only).
#[utoipa::path(operation_id = "updateInstance", tag = "instances", request_body = UpdateInstanceRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = InstanceView),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[patch("/instances/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<UpdateInstanceRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let found = find_owned::<instances::Entity>(&state.db, user.tenant_id, *id, "instance").await?;
    let b = body.0;
    let mut f = Fields::default();
    let name = b
        .name
        .as_deref()
        .and_then(|v| f.check("name", parse_name(v, crate::text::MAX_NAME)));
    let api_url = b.api_url.as_deref().and_then(|v| f.check("api_url", parse_api_url(v)));
    let api_key = b.api_key.as_deref().and_then(|v| f.check("api_key", parse_api_key(v)));
    let instance_name = b
        .instance_name
        .as_deref()
        .and_then(|v| f.check("instance_name", parse_instance_name(v)));
    let daily_limit = b
        .daily_limit
        .map(|limit| limit.and_then(|n| f.check("daily_limit", parse_daily_limit(n))));
    check_warmup(&mut f, b.warmup.and_then(|w| w).as_ref());
    f.finish()?;
    let target_changed = api_url.is_some() || api_key.is_some() || instance_name.is_some();
    let limits_changed = daily_limit.is_some() || b.warmup.is_some();
    let mut active: instances::ActiveModel = found.into();
    if let Some(v) = name {
        active.name = Set(v);
    }
    if let Some(v) = api_url {
        active.api_url = Set(v);
    }
    if let Some(v) = &api_key {
        active.api_key_enc = Set(state.cipher.encrypt(v)?);
    }
    if let Some(v) = instance_name {
        active.instance_name = Set(v);
    }
    if let Some(v) = daily_limit {
        active.daily_limit = Set(v);
    }
    if let Some(v) = b.warmup {
        active.warmup = Set(v.map(|w| json!(w)));
    }
    if target_changed {
        // What was heard was about the old number or gateway.
        active.connection_state = Set(None);
        active.state_checked_at = Set(None);
    }
    active.updated_at = Set(state.clock.now());
    let txn = state.db.begin().await?;
    let updated = active.update(&txn).await?;
    let event = Event::new("instance.update", "instance", updated.id)
        .with(json!({"name": updated.name, "api_key_changed": api_key.is_some()}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    if limits_changed {
        // A campaign waiting for the next day may send today under the new limits.
        crate::campaigns::repo::replan(&txn, Replan::Instance(updated.id), state.clock.now()).await?;
    }
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(InstanceView::from(updated)))
}

/// Removes an instance (admins only).
#[utoipa::path(operation_id = "deleteInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/instances/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let found = find_owned::<instances::Entity>(&state.db, user.tenant_id, *id, "instance").await?;
    let txn = state.db.begin().await?;
    instances::Entity::delete_by_id(found.id)
        .exec(&txn)
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey(CAMPAIGNS_INSTANCE_FKEY)) => {
                AppError::conflict("campaigns use this instance: delete or finish them first")
            }
            _ => e.into(),
        })?;
    let event = Event::new("instance.delete", "instance", found.id).with(json!({"name": found.name}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete);
}
