use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::*;
use super::{connectivity, repo, service};
use crate::api::extract::{base_url, nullable, ApiJson, Page, Pagination};
use crate::db::find_owned;
use crate::entities::instances;
use crate::error::{AppError, AppResult, FieldError, Fields};
use crate::gateway::routes::ConnectView;
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
    /// Arauto created this instance on the gateway (`create: true`); deleting it here
    /// deletes it there too.
    pub provisioned: bool,
    /// Only in the answer to a create with `create: true`: the QR code (and pairing code)
    /// to connect the number. `POST /instances/{id}/connect` gives a fresh one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qrcode: Option<ConnectView>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<instances::Model> for InstanceView {
    fn from(m: instances::Model) -> Self {
        Self {
            id: m.id,
            webhook_path: webhook_path(&m.webhook_token),
            provisioned: m.provisioned,
            qrcode: None,
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

/// A number on a gateway: one that exists there (`api_key` given), or one Arauto creates
/// there (`create: true`, with the gateway's global key in `global_api_key` or the
/// configuration), which answers with its QR code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Loja 1", "api_url": "http://evolution:8080", "api_key": "secret", "instance_name": "loja-1", "daily_limit": 500}))]
pub struct CreateInstanceRequest {
    #[schema(max_length = 200)]
    pub name: String,
    /// Base URL of the Evolution gateway, e.g. `http://evolution:8080`.
    pub api_url: String,
    /// The instance's api key on the gateway; required unless `create` is true (the gateway
    /// then issues it). Write-only: stored encrypted, never returned.
    #[schema(max_length = 512)]
    pub api_key: Option<String>,
    /// Create the instance on the gateway (default false): its webhook is pointed at this
    /// API (`server.public_url` + `webhook_path`, events MESSAGES_UPDATE, MESSAGES_UPSERT,
    /// CONNECTION_UPDATE) and the answer carries its `qrcode`. Gateway failures answer 502
    /// with the gateway's message.
    #[serde(default)]
    pub create: bool,
    /// With `create`: the gateway's global api key, used for this call only and never
    /// stored; by default `gateway.global_api_key` from the configuration.
    #[schema(max_length = 512)]
    pub global_api_key: Option<String>,
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

impl CreateInstanceRequest {
    /// The new instance, with every bad field reported (422).
    fn parse(self) -> AppResult<InstanceInput> {
        let mut f = Fields::default();
        let name = f.check("name", parse_name(&self.name, crate::text::MAX_NAME));
        let api_url = f.check("api_url", parse_api_url(&self.api_url));
        let key = match (self.create, &self.api_key, &self.global_api_key) {
            (false, Some(key), None) => f.check("api_key", parse_api_key(key)).map(KeySource::Given),
            (false, None, _) => {
                f.push(FieldError::new("api_key", "is required (or set create: true)"));
                None
            }
            (false, Some(_), Some(_)) => {
                f.push(FieldError::new("global_api_key", "is only used with create: true"));
                None
            }
            (true, Some(_), _) => {
                f.push(FieldError::new(
                    "api_key",
                    "must be absent with create: true (the gateway issues the instance's key)",
                ));
                None
            }
            (true, None, global) => {
                let global = global.as_deref().map(|g| f.check("global_api_key", parse_api_key(g)));
                match global {
                    Some(None) => None,
                    Some(Some(g)) => Some(KeySource::Create {
                        global_api_key: Some(g),
                    }),
                    None => Some(KeySource::Create { global_api_key: None }),
                }
            }
        };
        let instance_name = f.check("instance_name", parse_instance_name(&self.instance_name));
        let daily_limit = self
            .daily_limit
            .and_then(|n| f.check("daily_limit", parse_daily_limit(n)));
        check_warmup(&mut f, self.warmup.as_ref());
        f.finish()?;
        let (Some(name), Some(api_url), Some(key), Some(instance_name)) = (name, api_url, key, instance_name) else {
            return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
        };
        Ok(InstanceInput {
            name,
            api_url,
            key,
            instance_name,
            daily_limit,
            warmup: self.warmup,
        })
    }
}

impl UpdateInstanceRequest {
    /// The change, with every bad field reported (422).
    fn parse(self) -> AppResult<InstancePatch> {
        let mut f = Fields::default();
        let name = self
            .name
            .as_deref()
            .and_then(|v| f.check("name", parse_name(v, crate::text::MAX_NAME)));
        let api_url = self
            .api_url
            .as_deref()
            .and_then(|v| f.check("api_url", parse_api_url(v)));
        let api_key = self
            .api_key
            .as_deref()
            .and_then(|v| f.check("api_key", parse_api_key(v)));
        let instance_name = self
            .instance_name
            .as_deref()
            .and_then(|v| f.check("instance_name", parse_instance_name(v)));
        let daily_limit = self
            .daily_limit
            .map(|limit| limit.and_then(|n| f.check("daily_limit", parse_daily_limit(n))));
        check_warmup(&mut f, self.warmup.and_then(|w| w).as_ref());
        f.finish()?;
        Ok(InstancePatch {
            name,
            api_url,
            api_key,
            instance_name,
            daily_limit,
            warmup: self.warmup,
        })
    }
}

/// Connects a WhatsApp number on a gateway, or creates it there with `create: true`
/// (answering its QR code; 502 with the gateway's message when the gateway refuses)
/// (admins only).
#[utoipa::path(operation_id = "createInstance", tag = "instances", request_body = CreateInstanceRequest, responses(
    (status = 201, body = InstanceView),
    (status = 403, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/instances")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: ApiJson<CreateInstanceRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let (created, qrcode) = service::create(&state, &user, body.0.parse()?, &base_url(&req)).await?;
    let view = InstanceView {
        qrcode: qrcode.map(ConnectView::from),
        ..InstanceView::from(created)
    };
    Ok(HttpResponse::Created().json(view))
}

/// The tenant's instances.
#[utoipa::path(operation_id = "listInstances", tag = "instances", params(Pagination), responses(
    (status = 200, body = Page<InstanceView>),
), security(("bearer" = [])))]
#[get("/instances")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    let page = repo::list(&state.reads, user.tenant_id, &page).await?;
    Ok(HttpResponse::Ok().json(page.map(InstanceView::from)))
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
    let updated = service::update(&state, &user, *id, body.0.parse()).await?;
    Ok(HttpResponse::Ok().json(InstanceView::from(updated)))
}

/// Removes an instance; one created on the gateway by Arauto is deleted there too (502
/// with the gateway's message when it refuses) (admins only).
#[utoipa::path(operation_id = "deleteInstance", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 502, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/instances/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    user.require_admin()?;
    service::delete(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(health);
}

/// The number's last 24 hours and how close it looks to a ban (see
/// [`super::health`] for the figures and thresholds).
#[utoipa::path(operation_id = "getInstanceHealth", tag = "instances", params(("id" = Uuid, Path)), responses(
    (status = 200, body = super::health::InstanceHealth),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/instances/{id}/health")]
pub async fn health(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<instances::Entity>(&state.db, user.tenant_id, *id, "instance").await?;
    let report = super::health::of(&state, &found).await?;
    Ok(HttpResponse::Ok().json(report))
}
