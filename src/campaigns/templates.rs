//! Reusable message templates; a campaign message `{"template_id": …}` copies one in.

use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{Media, Message};
use crate::api::extract::{nullable, ApiJson, Page, Pagination};
use crate::db::find_owned;
use crate::entities::templates;
use crate::error::AppResult;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

pub mod repo;
pub mod service;

use service::TemplatePatch;

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
            media: service::media_of(&m),
            id: m.id,
            name: m.name,
            text: m.text,
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
    let created = service::create(&state, user.tenant_id, &b.name, message).await?;
    Ok(HttpResponse::Created().json(TemplateView::from(created)))
}

/// The tenant's templates, by name.
#[utoipa::path(operation_id = "listTemplates", tag = "templates", params(Pagination), responses(
    (status = 200, body = Page<TemplateView>),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/templates")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    let page = repo::list(&state.reads, user.tenant_id, &page).await?;
    Ok(HttpResponse::Ok().json(page.map(TemplateView::from)))
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
    let b = body.0;
    let patch = TemplatePatch {
        name: b.name,
        text: b.text,
        media: b.media,
    };
    let updated = service::update(&state, user.tenant_id, *id, patch).await?;
    Ok(HttpResponse::Ok().json(TemplateView::from(updated)))
}

/// Deletes a template (campaigns made from it keep their copy).
#[utoipa::path(operation_id = "deleteTemplate", tag = "templates", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/templates/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    service::delete(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete);
}
