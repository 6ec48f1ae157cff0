use actix_web::{delete, get, patch, post, web, HttpResponse};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::{dedup, parse_contact_name, validate_fields, ContactFields, ContactRequest, NewContact};
use super::optout;
use super::phone::Phone;
use super::repo::{self, ContactFilter, ContactKey, ContactView, Owned};
use crate::api::cursor::{CursorPage, CursorParam, Keyset};
use crate::api::extract::{ApiJson, ApiQuery, BulkJson, Pagination};
use crate::audit::{self, Event};
use crate::db::find_owned;
use crate::entities::{contacts, tenants};
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

pub const MAX_BULK: usize = 10_000;

/// The tenant's default country, for phone normalisation.
pub async fn default_country(db: &impl ConnectionTrait, tenant_id: Uuid) -> AppResult<String> {
    Ok(tenants::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .map_or_else(|| "BR".to_owned(), |t| t.default_country))
}

async fn view(state: &AppState, tenant_id: Uuid, id: Uuid) -> AppResult<ContactView> {
    repo::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("contact"))
}

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
    let country = default_country(&state.db, user.tenant_id).await?;
    let contact = NewContact::parse(body.0, &country).map_err(AppError::Validation)?;
    let foreign = repo::foreign_ids(&state.db, user.tenant_id, Owned::Tags, "tag_ids", &contact.tag_ids).await?;
    if !foreign.is_empty() {
        return Err(AppError::Validation(foreign));
    }
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let created = contacts::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        phone: Set(contact.phone.into_string()),
        name: Set(contact.name),
        fields: Set(Value::Object(contact.fields)),
        opted_out_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    repo::set_tags(&txn, user.tenant_id, created.id, &contact.tag_ids).await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(view(&state, user.tenant_id, created.id).await?))
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
    Ok(HttpResponse::Ok().json(repo::list(&state.db, user.tenant_id, &filter.0, &page).await?))
}

/// One contact.
#[utoipa::path(operation_id = "getContact", tag = "contacts", params(("id" = Uuid, Path)), responses(
    (status = 200, body = ContactView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/contacts/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    Ok(HttpResponse::Ok().json(view(&state, user.tenant_id, *id).await?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "João P. Silva", "fields": {"quem_indicou": "Ana"}}))]
pub struct UpdateContactRequest {
    pub phone: Option<String>,
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Replaces all fields.
    #[schema(value_type = Option<ContactFields>)]
    pub fields: Option<Map<String, Value>>,
    /// Replaces the contact's tags.
    pub tag_ids: Option<Vec<Uuid>>,
    /// `true` opts the contact out (now: its pending and queued sends in every campaign are
    /// skipped), `false` opts them back in (as `POST /contacts/{id}/opt-in`). Audited.
    pub opted_out: Option<bool>,
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
    let found = find_owned::<contacts::Entity>(&state.db, user.tenant_id, *id, "contact").await?;
    let b = body.0;
    let country = default_country(&state.db, user.tenant_id).await?;
    let mut errors = vec![];
    let phone = match b.phone.as_deref().map(|p| Phone::parse(p, &country)) {
        Some(Err(e)) => {
            errors.push(FieldError::new("phone", e));
            None
        }
        other => other.and_then(Result::ok),
    };
    let name = match b.name.as_deref().map(parse_contact_name) {
        Some(Err(e)) => {
            errors.push(FieldError::new("name", e));
            None
        }
        other => other.and_then(Result::ok),
    };
    if let Some(Err(e)) = b.fields.as_ref().map(validate_fields) {
        errors.push(e);
    }
    let tag_ids = b.tag_ids.map(dedup);
    if let Some(ids) = &tag_ids {
        errors.extend(repo::foreign_ids(&state.db, user.tenant_id, Owned::Tags, "tag_ids", ids).await?);
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let now = state.clock.now();
    let mut active: contacts::ActiveModel = found.clone().into();
    if let Some(p) = phone {
        active.phone = Set(p.into_string());
    }
    if let Some(n) = name {
        active.name = Set(n);
    }
    if let Some(f) = b.fields {
        active.fields = Set(Value::Object(f));
    }
    match b.opted_out {
        Some(true) if found.opted_out_at.is_none() => active.opted_out_at = Set(Some(now)),
        Some(false) => active.opted_out_at = Set(None),
        _ => {}
    }
    active.updated_at = Set(now);
    let txn = state.db.begin().await?;
    let updated = active.update(&txn).await?;
    match (found.opted_out_at, updated.opted_out_at) {
        (None, Some(_)) => {
            let source = optout::Source::User { user_id: user.user_id };
            optout::opted_out(&txn, user.tenant_id, &updated, source, now).await?;
        }
        (Some(_), None) => optout::opted_in(&txn, user.tenant_id, user.user_id, &found, now).await?,
        _ => {}
    }
    if let Some(ids) = &tag_ids {
        repo::set_tags(&txn, user.tenant_id, found.id, ids).await?;
    }
    txn.commit().await?;
    Ok(HttpResponse::Ok().json(view(&state, user.tenant_id, found.id).await?))
}

/// Deletes a contact (and its group and tag memberships). Campaigns keep their record of
/// what was sent to the number, without the link; sends not yet planned are cancelled.
#[utoipa::path(operation_id = "deleteContact", tag = "contacts", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/contacts/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<contacts::Entity>(&state.db, user.tenant_id, *id, "contact").await?;
    let txn = state.db.begin().await?;
    contacts::Entity::delete_by_id(found.id).exec(&txn).await?;
    crate::recipients::detach_contact(&txn, user.tenant_id, found.id).await?;
    let event = Event::new("contact.delete", "contact", found.id).with(json!({"phone": found.phone}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contacts": [{"phone": "5511987654321", "name": "João Silva"}, {"phone": "5521987654321", "name": "Maria", "fields": {"plano": "ouro"}}]}))]
pub struct BulkRequest {
    /// Up to 10,000 contacts, upserted by phone.
    pub contacts: Vec<ContactRequest>,
}

/// A row that was not written, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct InvalidRow {
    /// Bulk: the 0-based index in `contacts`. Import: the 1-based line in the file (the
    /// header is line 1).
    pub row: u64,
    pub error: String,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ImportResult {
    pub created: u64,
    pub updated: u64,
    pub invalid: Vec<InvalidRow>,
    /// CSV import only: how the file was read (encoding, delimiter, column mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<super::csv_format::CsvFormat>,
}

pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
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
    let items = body.0.contacts;
    if items.len() > MAX_BULK {
        return Err(AppError::field(
            "contacts",
            format!("must have at most {MAX_BULK} items"),
        ));
    }
    let country = default_country(&state.db, user.tenant_id).await?;
    let mut result = ImportResult::default();
    let mut batch = Vec::with_capacity(items.len());
    let all_tags = dedup(items.iter().flat_map(|c| c.tag_ids.iter().flatten().copied()).collect());
    let foreign_tags = repo::missing_ids(&state.db, user.tenant_id, Owned::Tags, &all_tags).await?;
    for (row, item) in items.into_iter().enumerate() {
        let parsed =
            NewContact::parse(item, &country).and_then(|c| match c.tag_ids.iter().find(|t| foreign_tags.contains(t)) {
                Some(t) => Err(vec![FieldError::new("tag_ids", format!("no such tag: {t}"))]),
                None => Ok(c),
            });
        match parsed {
            Ok(c) => batch.push(c),
            Err(errors) => result.invalid.push(InvalidRow {
                row: row as u64,
                error: describe(&errors),
            }),
        }
    }
    let repeated = repo::dedup_by_phone(&mut batch);
    let txn = state.db.begin().await?;
    let (created, updated) = repo::upsert_batch(&txn, user.tenant_id, &batch, state.clock.now()).await?;
    txn.commit().await?;
    result.created = created;
    result.updated = updated + repeated;
    Ok(HttpResponse::Ok().json(result))
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
