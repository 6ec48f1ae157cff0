//! Reusable message templates; a campaign message `{"template_id": …}` copies one in.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{parse_message, Media, Message};
use crate::api::extract::{nullable, ApiJson, Page, Pagination};
use crate::audit::{self, Event};
use crate::db::{find_owned, scoped};
use crate::entities::templates;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::{auth::AuthUser, domain::parse_name};

#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    pub id: Uuid,
    pub name: String,
    pub text: String,
    pub media: Option<Media>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<templates::Model> for TemplateView {
    fn from(m: templates::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            text: m.text,
            media: m.media.and_then(|v| serde_json::from_value(v).ok()),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Boas-vindas", "text": "{{saudacao}}, {{nome}}! Seja bem-vindo."}))]
pub struct TemplateRequest {
    #[schema(max_length = 200)]
    pub name: String,
    /// Up to 4,096 characters (WhatsApp's limit).
    #[schema(max_length = 4096)]
    pub text: String,
    pub media: Option<Media>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateTemplateRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    #[schema(max_length = 4096)]
    pub text: Option<String>,
    /// `null` removes the media.
    #[serde(default, deserialize_with = "nullable")]
    #[schema(value_type = Option<Media>)]
    pub media: Option<Option<Media>>,
}

/// Name and message checked together; every bad field reported.
fn check(name: &str, message: &Message) -> AppResult<String> {
    let mut errors: Vec<FieldError> = vec![];
    let name = parse_name(name, crate::text::MAX_NAME)
        .map_err(|e| errors.push(FieldError::new("name", e)))
        .ok();
    if let Err(e) = parse_message(message) {
        errors.extend(e);
    }
    match name {
        Some(n) if errors.is_empty() => Ok(n),
        _ => Err(AppError::Validation(errors)),
    }
}

/// Creates a template.
#[utoipa::path(operation_id = "createTemplate", tag = "templates", request_body = TemplateRequest, responses(
    (status = 201, body = TemplateView),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/templates")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<TemplateRequest>,
) -> AppResult<HttpResponse> {
    let b = body.0;
    let message = Message {
        text: b.text,
        media: b.media,
    };
    let name = check(&b.name, &message)?;
    let now = state.clock.now();
    let created = templates::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        name: Set(name),
        text: Set(message.text),
        media: Set(message.media.map(|m| json!(m))),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await?;
    Ok(HttpResponse::Created().json(TemplateView::from(created)))
}

/// The tenant's templates, by name.
#[utoipa::path(operation_id = "listTemplates", tag = "templates", params(Pagination), responses(
    (status = 200, body = Page<TemplateView>),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/templates")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    let query = scoped::<templates::Entity>(user.tenant_id)
        .order_by_asc(templates::Column::Name)
        .order_by_asc(templates::Column::Id);
    Ok(HttpResponse::Ok().json(page.fetch(&state.db, query).await?.map(TemplateView::from)))
}

/// One template.
#[utoipa::path(operation_id = "getTemplate", tag = "templates", params(("id" = Uuid, Path)), responses(
    (status = 200, body = TemplateView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/templates/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<templates::Entity>(&state.db, user.tenant_id, *id, "template").await?;
    Ok(HttpResponse::Ok().json(TemplateView::from(found)))
}

/// Changes a template (campaigns already made from it keep their copy).
#[utoipa::path(operation_id = "updateTemplate", tag = "templates", request_body = UpdateTemplateRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = TemplateView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[patch("/templates/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<UpdateTemplateRequest>,
) -> AppResult<HttpResponse> {
    let found = find_owned::<templates::Entity>(&state.db, user.tenant_id, *id, "template").await?;
    let current = TemplateView::from(found.clone());
    let b = body.0;
    let message = Message {
        text: b.text.unwrap_or(current.text),
        media: b.media.unwrap_or(current.media),
    };
    let name = check(b.name.as_deref().unwrap_or(&current.name), &message)?;
    let mut active: templates::ActiveModel = found.into();
    active.name = Set(name);
    active.text = Set(message.text);
    active.media = Set(message.media.map(|m| json!(m)));
    active.updated_at = Set(state.clock.now());
    let updated = active.update(&state.db).await?;
    Ok(HttpResponse::Ok().json(TemplateView::from(updated)))
}

/// Deletes a template (campaigns made from it keep their copy).
#[utoipa::path(operation_id = "deleteTemplate", tag = "templates", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/templates/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<templates::Entity>(&state.db, user.tenant_id, *id, "template").await?;
    let txn = state.db.begin().await?;
    templates::Entity::delete_by_id(found.id).exec(&txn).await?;
    let event = Event::new("template.delete", "template", found.id).with(json!({"name": found.name}));
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
