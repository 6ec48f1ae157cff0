//! Per-tenant settings (`GET/PUT /settings`), kept in `tenant_settings`; a tenant without a
//! row has the defaults.

use actix_web::{get, put, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::extract::ApiJson;
use crate::audit::{self, Event};
use crate::contacts::optout::OptOutKeywords;
use crate::db::stmt;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// A tenant's settings as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"opt_out_keywords": ["SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR"]}))]
pub struct SettingsView {
    /// An inbound message whose whole text is one of these (ignoring case, accents and
    /// the spaces and punctuation around it) opts its sender out on every number of the
    /// tenant. Default `SAIR, PARAR, STOP, CANCELAR, DESCADASTRAR`.
    pub opt_out_keywords: Vec<String>,
}

/// `PUT /settings`: the whole settings object.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"opt_out_keywords": ["SAIR", "PARAR", "NÃO QUERO MAIS"]}))]
pub struct SettingsRequest {
    #[schema(value_type = OptOutKeywordList)]
    pub opt_out_keywords: Vec<String>,
}

/// The OpenAPI schema of `opt_out_keywords` in [`SettingsRequest`], as
/// [`OptOutKeywords::parse`] accepts it. Documentation only.
pub struct OptOutKeywordList;

impl utoipa::PartialSchema for OptOutKeywordList {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use crate::contacts::optout::{MAX_KEYWORDS, MAX_KEYWORD_CHARS};
        use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
        let keyword = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(MAX_KEYWORD_CHARS));
        ArrayBuilder::new()
            .items(keyword)
            .min_items(Some(1))
            .max_items(Some(MAX_KEYWORDS))
            .description(Some(
                "1 to 50 keywords of 1 to 30 characters, each with a letter or a digit; kept \
                 trimmed, and once when repeated ignoring case and accents.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for OptOutKeywordList {}

#[derive(FromQueryResult)]
struct Stored {
    opt_out_keywords: Value,
}

/// The tenant's opt-out keywords: its own, or the defaults.
pub async fn opt_out_keywords(db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<OptOutKeywords, sea_orm::DbErr> {
    let stored = Stored::find_by_statement(stmt(
        "SELECT opt_out_keywords FROM tenant_settings WHERE tenant_id = $1",
        vec![tenant_id.into()],
    ))
    .one(db)
    .await?;
    Ok(stored
        .and_then(|s| serde_json::from_value::<Vec<String>>(s.opt_out_keywords).ok())
        .map(OptOutKeywords::from_stored)
        .unwrap_or_default())
}

async fn save_opt_out_keywords(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    keywords: &OptOutKeywords,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "INSERT INTO tenant_settings (tenant_id, opt_out_keywords, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id) DO UPDATE SET opt_out_keywords = EXCLUDED.opt_out_keywords, updated_at = EXCLUDED.updated_at",
        vec![tenant_id.into(), json!(keywords.as_slice()).into(), now.into()],
    ))
    .await?;
    Ok(())
}

fn view(keywords: OptOutKeywords) -> SettingsView {
    SettingsView {
        opt_out_keywords: keywords.as_slice().to_vec(),
    }
}

/// The caller's tenant settings.
#[utoipa::path(operation_id = "getSettings", tag = "settings", responses(
    (status = 200, body = SettingsView),
), security(("bearer" = [])))]
#[get("/settings")]
pub async fn get_settings(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(view(opt_out_keywords(&state.db, user.tenant_id).await?)))
}

/// Replaces the tenant's settings (admins only); audited (`settings.update`).
#[utoipa::path(operation_id = "updateSettings", tag = "settings", request_body = SettingsRequest, responses(
    (status = 200, body = SettingsView),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[put("/settings")]
pub async fn update_settings(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<SettingsRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let keywords = OptOutKeywords::parse(body.0.opt_out_keywords, "opt_out_keywords").map_err(AppError::Validation)?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    save_opt_out_keywords(&txn, user.tenant_id, &keywords, now).await?;
    let event =
        Event::new("settings.update", "tenant", user.tenant_id).with(json!({"opt_out_keywords": keywords.as_slice()}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(view(keywords)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(get_settings).service(update_settings);
}
