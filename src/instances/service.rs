//! Instance use cases: each write and its audit row share one transaction; a change of
//! limits replans the instance's waiting campaigns in it too. Instances Arauto creates on
//! the gateway (`create: true`) are deleted there with their row.

use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::connectivity::target_of;
use super::domain::{webhook_url, InstanceInput, InstancePatch, KeySource, WEBHOOK_EVENTS};
use super::repo::{self, NewRow};
use crate::audit::{self, Event};
use crate::campaigns::repo::Replan;
use crate::db::find_owned;
use crate::entities::instances;
use crate::error::{AppError, AppResult};
use crate::gateway::service::gateway_problem;
use crate::gateway::{ConnectInfo, InstanceTarget};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Stores a new instance of the caller's tenant, its key encrypted; with
/// [`KeySource::Create`], creates it on the gateway first ([`provision`]) and returns its QR
/// code too. 409 on a taken name.
pub async fn create(
    state: &AppState,
    by: &AuthUser,
    input: InstanceInput,
    base_url: &str,
) -> AppResult<(instances::Model, Option<ConnectInfo>)> {
    let api_key = match &input.key {
        KeySource::Given(key) => key.clone(),
        KeySource::Create { global_api_key } => {
            let global = global_api_key.clone();
            return provision(state, by, input, global, base_url)
                .await
                .map(|(m, qr)| (m, Some(qr)));
        }
    };
    let row = NewRow {
        api_key_enc: state.cipher.encrypt(&api_key)?,
        webhook_token: repo::webhook_token(),
        provisioned: false,
        state: None,
    };
    let txn = state.db.begin().await?;
    let created = repo::insert(&txn, by.tenant_id, &input, row, state.clock.now()).await?;
    let event = Event::new("instance.create", "instance", created.id).with(json!({"name": created.name}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok((created, None))
}

/// Creates the instance on the gateway (`POST /instance/create` with the global key:
/// `global_api_key`, else `gateway.global_api_key`; 422 on `global_api_key` without
/// either), its webhook pointed at `server.public_url` (else `base_url`, the URL the
/// request reached) + its webhook path for [`WEBHOOK_EVENTS`], then stores it with the key
/// the gateway issued (encrypted; the global key is never stored) and `provisioned`.
/// 409 on a name the tenant already has (before anything is created); 502 with the
/// gateway's message when it refuses. If storing fails after the gateway created it, the
/// gateway's instance is deleted again (best effort).
async fn provision(
    state: &AppState,
    by: &AuthUser,
    input: InstanceInput,
    global_api_key: Option<String>,
    base_url: &str,
) -> AppResult<(instances::Model, ConnectInfo)> {
    let global = global_api_key
        .or_else(|| state.settings.gateway_global_key().map(str::to_owned))
        .ok_or_else(|| {
            AppError::field(
                "global_api_key",
                "is required to create the instance on the gateway (or set gateway.global_api_key)",
            )
        })?;
    repo::ensure_name_free(&state.db, by.tenant_id, &input.name).await?;
    let token = repo::webhook_token();
    let webhook_url = webhook_url(state.settings.server.public_url.as_deref(), base_url, &token);
    let target = InstanceTarget {
        api_url: &input.api_url,
        instance_name: &input.instance_name,
        api_key: &global,
    };
    let created = state
        .gateway
        .create_instance(target, &webhook_url, &WEBHOOK_EVENTS)
        .await
        .map_err(gateway_problem)?;
    let stored = async {
        let row = NewRow {
            api_key_enc: state.cipher.encrypt(&created.api_key)?,
            webhook_token: token,
            provisioned: true,
            state: created.state,
        };
        let txn = state.db.begin().await?;
        let m = repo::insert(&txn, by.tenant_id, &input, row, state.clock.now()).await?;
        let event =
            Event::new("instance.create", "instance", m.id).with(json!({"name": m.name, "created_on_gateway": true}));
        audit::record_by(&txn, by, state.clock.now(), event).await?;
        txn.commit().await?;
        Ok::<_, AppError>(m)
    }
    .await;
    match stored {
        Ok(m) => Ok((m, created.qrcode)),
        Err(e) => {
            let target = InstanceTarget {
                api_key: &created.api_key,
                ..target
            };
            if let Err(undo) = state.gateway.delete_instance(target).await {
                tracing::warn!(error = %undo, instance = %input.instance_name, "cannot delete the gateway instance of a failed create");
            }
            Err(e)
        }
    }
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

/// Removes instance `id` of the caller's tenant; one Arauto created on the gateway
/// (`provisioned`) is deleted there too (an instance the gateway no longer knows counts as
/// deleted). 404 for another tenant's id; 409 while campaigns use it (nothing is deleted
/// anywhere); 502 with the gateway's message when the gateway refuses (the row stays).
pub async fn delete(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<instances::Entity>(&state.db, by.tenant_id, id, "instance").await?;
    let txn = state.db.begin().await?;
    repo::delete(&txn, found.id).await?;
    if found.provisioned {
        let key = state.cipher.decrypt(&found.api_key_enc)?;
        match state.gateway.delete_instance(target_of(&found, &key)).await {
            Ok(()) => {}
            Err(e) if e.status == Some(404) => {
                tracing::info!(instance = %found.instance_name, "the gateway no longer had the instance");
            }
            Err(e) => return Err(gateway_problem(e)),
        }
    }
    let event = Event::new("instance.delete", "instance", found.id)
        .with(json!({"name": found.name, "deleted_on_gateway": found.provisioned}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(())
}
