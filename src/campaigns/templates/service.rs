//! Template use cases: name and message checked together (every bad field reported), and
//! the delete audited in its transaction.

use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::repo;
use crate::audit::{self, Event};
use crate::campaigns::domain::{parse_message, Media, Message};
use crate::db::find_owned;
use crate::entities::templates;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::tenancy::{auth::AuthUser, domain::parse_name};

/// Name and message checked together; every bad field reported (422).
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

/// The stored media of a template (`None` when it has none or it no longer reads).
pub fn media_of(t: &templates::Model) -> Option<Media> {
    t.media.clone().and_then(|v| serde_json::from_value(v).ok())
}

/// Creates a template of the tenant. 422 with every bad field; 409 on a taken name.
pub async fn create(state: &AppState, tenant_id: Uuid, name: &str, message: Message) -> AppResult<templates::Model> {
    let name = check(name, &message)?;
    repo::insert(&state.db, tenant_id, name, message, state.clock.now()).await
}

/// A change of a template: `None` keeps a field, `Some(None)` removes the media.
pub struct TemplatePatch {
    pub name: Option<String>,
    pub text: Option<String>,
    pub media: Option<Option<Media>>,
}

/// Changes template `id` of the tenant (campaigns made from it keep their copy). 404 for
/// another tenant's id; 422 with every bad field; 409 on a taken name.
pub async fn update(state: &AppState, tenant_id: Uuid, id: Uuid, patch: TemplatePatch) -> AppResult<templates::Model> {
    let found = find_owned::<templates::Entity>(&state.db, tenant_id, id, "template").await?;
    let message = Message {
        media: patch.media.unwrap_or_else(|| media_of(&found)),
        text: patch.text.unwrap_or_else(|| found.text.clone()),
    };
    let name = check(patch.name.as_deref().unwrap_or(&found.name), &message)?;
    repo::update(&state.db, found, name, message, state.clock.now()).await
}

/// Deletes template `id` of the caller's tenant, audited. 404 for another tenant's id.
pub async fn delete(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<templates::Entity>(&state.db, by.tenant_id, id, "template").await?;
    let txn = state.db.begin().await?;
    repo::delete(&txn, found.id).await?;
    let event = Event::new("template.delete", "template", found.id).with(json!({"name": found.name}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(())
}
