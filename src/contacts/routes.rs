//! HTTP handlers of `/contacts`: thin, they call [`super::service`] and [`super::repo`].

use actix_web::{delete, get, patch, post, web, HttpResponse};
use uuid::Uuid;

use super::domain::{BulkRequest, ContactRequest, UpdateContactRequest};
use super::import::ImportResult;
use super::repo::{self, ContactFilter, ContactKey, ContactView};
use super::service;
use crate::api::cursor::{CursorPage, CursorParam, Keyset};
use crate::api::extract::{ApiJson, ApiQuery, BulkJson, Pagination};
use crate::error::AppResult;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Creates a contact; a phone the tenant already has is a 409.
#[utoipa::path(operation_id = "createContact", tag = "contacts", request_body = ContactRequest, responses(
    (status = 201, body = ContactView),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/contacts")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<ContactRequest>,
) -> AppResult<HttpResponse> {
    let created = service::create(&state, &user, body.0).await?;
    Ok(HttpResponse::Created().json(created))
}

/// Lists contacts in creation order, filtered by `q` (name or phone), `tag_id` and
/// `group_id`; by page or after a cursor. Unfiltered, `total` is exact; filtered, it is
/// counted up to 10,000 (`total_is_estimate`).
#[utoipa::path(operation_id = "listContacts", tag = "contacts", params(ContactFilter, Pagination, CursorParam), responses(
    (status = 200, body = CursorPage<ContactView>),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/contacts")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    filter: ApiQuery<ContactFilter>,
    page: Keyset<ContactKey>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(repo::list(&state.reads, user.tenant_id, &filter.0, &page).await?))
}

/// One contact.
#[utoipa::path(operation_id = "getContact", tag = "contacts", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContactView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/contacts/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::view(&state, user.tenant_id, *id).await?))
}

/// Changes a contact.
#[utoipa::path(operation_id = "updateContact", tag = "contacts", request_body = UpdateContactRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContactView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[patch("/contacts/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<UpdateContactRequest>,
) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::update(&state, &user, *id, body.0).await?))
}

/// Deletes a contact (and its group and tag memberships). Campaigns keep their record of
/// what was sent to the number, without the link; sends not yet planned are cancelled.
#[utoipa::path(operation_id = "deleteContact", tag = "contacts", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/contacts/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    service::delete(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Upserts up to 10,000 contacts by phone in one transaction. Invalid items are reported
/// in `invalid` and not written; a repeated phone updates the earlier one.
#[utoipa::path(operation_id = "bulkUpsertContacts", tag = "contacts", request_body = BulkRequest, responses(
    (status = 200, body = ImportResult),
    (status = 413, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/contacts/bulk")]
pub async fn bulk(state: web::Data<AppState>, user: AuthUser, body: BulkJson<BulkRequest>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(service::bulk(&state, &user, body.0.contacts).await?))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(bulk)
        .service(super::import::import)
        .service(super::optout::opt_in)
        .service(list)
        .service(get)
        .service(update)
        .service(delete);
}
