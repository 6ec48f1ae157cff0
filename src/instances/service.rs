//! Instance use cases: each write and its audit row share one transaction; a change of
//! limits replans the instance's waiting campaigns in it too.

use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::domain::{InstanceInput, InstancePatch};
use super::repo;
use crate::audit::{self, Event};
use crate::campaigns::repo::Replan;
use crate::db::find_owned;
use crate::entities::instances;
use crate::error::AppResult;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Stores a new instance of the caller's tenant, its key encrypted. 409 on a taken name.
pub async fn create(state: &AppState, by: &AuthUser, input: InstanceInput) -> AppResult<instances::Model> {
    let api_key_enc = state.cipher.encrypt(&input.api_key)?;
    let txn = state.db.begin().await?;
    let created = repo::insert(&txn, by.tenant_id, input, api_key_enc, state.clock.now()).await?;
    let event = Event::new("instance.create", "instance", created.id).with(json!({"name": created.name}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(created)
}

/// Changes instance `id` of the caller's tenant. 404 for another tenant's id (before `patch`
/// is looked at: its parse errors, 422, come second); 409 on a taken name.
pub async fn update(
    state: &AppState,
    by: &AuthUser,
    id: Uuid,
    patch: AppResult<InstancePatch>,
) -> AppResult<instances::Model> {
    let found = find_owned::<instances::Entity>(&state.db, by.tenant_id, id, "instance").await?;
    let patch = patch?;
    let limits_changed = patch.changes_limits();
    let api_key_enc = patch.api_key.as_deref().map(|k| state.cipher.encrypt(k)).transpose()?;
    let api_key_changed = api_key_enc.is_some();
    let txn = state.db.begin().await?;
    let updated = repo::update(&txn, found, patch, api_key_enc, state.clock.now()).await?;
    let event = Event::new("instance.update", "instance", updated.id)
        .with(json!({"name": updated.name, "api_key_changed": api_key_changed}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    if limits_changed {
        // A campaign waiting for the next day may send today under the new limits.
        crate::campaigns::repo::replan(&txn, Replan::Instance(updated.id), state.clock.now()).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

/// Removes instance `id` of the caller's tenant. 404 for another tenant's id; 409 while
/// campaigns use it.
pub async fn delete(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<instances::Entity>(&state.db, by.tenant_id, id, "instance").await?;
    let txn = state.db.begin().await?;
    repo::delete(&txn, found.id).await?;
    let event = Event::new("instance.delete", "instance", found.id).with(json!({"name": found.name}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(())
}
