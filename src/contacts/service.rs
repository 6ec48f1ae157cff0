//! Contact writes: create, change, delete and bulk upsert, each validated in full before
//! anything is written and committed in one transaction (audited where it changes consent
//! or removes data). The HTTP handlers in [`super::routes`] only call these.

use sea_orm::{ActiveModelTrait, EntityTrait, Set, TransactionTrait};
use serde_json::{json, Value};
use uuid::Uuid;

use super::domain::{
    dedup, describe, parse_contact_name, validate_fields, ContactRequest, NewContact, UpdateContactRequest,
};
use super::import::{ImportResult, InvalidRow};
use super::optout;
use super::phone::Phone;
use super::repo::{self, default_country, ContactView, Owned};
use crate::audit::{self, Event};
use crate::db::find_owned;
use crate::entities::contacts;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Most contacts in one `POST /contacts/bulk`.
pub const MAX_BULK: usize = 10_000;

/// The contact as the API shows it; 404 when it is not the tenant's.
pub async fn view(state: &AppState, tenant_id: Uuid, id: Uuid) -> AppResult<ContactView> {
    repo::get(&state.db, tenant_id, id)
        .await?
        .ok_or_else(|| AppError::not_found("contact"))
}

/// Creates a contact; a phone the tenant already has is a 409 (unique constraint), an
/// unknown tag or a bad field a 422 naming it.
pub async fn create(state: &AppState, user: &AuthUser, input: ContactRequest) -> AppResult<ContactView> {
    let country = default_country(&state.db, user.tenant_id).await?;
    let contact = NewContact::parse(input, &country).map_err(AppError::Validation)?;
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
    view(state, user.tenant_id, created.id).await
}

/// Changes a contact (only the fields given); opting out or back in is audited and applied
/// to the contact's sends not made yet. 404 when not the tenant's; 409 for a phone taken.
pub async fn update(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    input: UpdateContactRequest,
) -> AppResult<ContactView> {
    let found = find_owned::<contacts::Entity>(&state.db, user.tenant_id, id, "contact").await?;
    let country = default_country(&state.db, user.tenant_id).await?;
    let mut errors = vec![];
    let phone = match input.phone.as_deref().map(|p| Phone::parse(p, &country)) {
        Some(Err(e)) => {
            errors.push(FieldError::new("phone", e));
            None
        }
        other => other.and_then(Result::ok),
    };
    let name = match input.name.as_deref().map(parse_contact_name) {
        Some(Err(e)) => {
            errors.push(FieldError::new("name", e));
            None
        }
        other => other.and_then(Result::ok),
    };
    if let Some(Err(e)) = input.fields.as_ref().map(validate_fields) {
        errors.push(e);
    }
    let tag_ids = input.tag_ids.map(dedup);
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
    if let Some(f) = input.fields {
        active.fields = Set(Value::Object(f));
    }
    match input.opted_out {
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
    view(state, user.tenant_id, found.id).await
}

/// Deletes a contact and its memberships; campaigns keep what was sent, unlinked, and its
/// sends not planned yet are cancelled. Audited.
pub async fn delete(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<contacts::Entity>(&state.db, user.tenant_id, id, "contact").await?;
    let txn = state.db.begin().await?;
    contacts::Entity::delete_by_id(found.id).exec(&txn).await?;
    crate::recipients::detach_contact(&txn, user.tenant_id, found.id).await?;
    let event = Event::new("contact.delete", "contact", found.id).with(json!({"phone": found.phone}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(())
}

/// Upserts up to [`MAX_BULK`] contacts by phone in one transaction; invalid items are
/// reported by index and not written, a repeated phone updates the earlier one.
pub async fn bulk(state: &AppState, user: &AuthUser, items: Vec<ContactRequest>) -> AppResult<ImportResult> {
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
    Ok(result)
}
