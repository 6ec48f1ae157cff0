//! Set use cases that span repositories: the delete and its audit row, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::repo::SetKind;
use crate::audit::{self, Event};
use crate::error::AppResult;
use crate::tenancy::auth::AuthUser;

/// Deletes set `id` of `kind` of the caller's tenant (its contacts stay), audited as
/// `group.delete` / `tag.delete`. 404 for another tenant's id.
pub async fn delete<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    kind: &SetKind,
    by: &AuthUser,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let current = kind.get(db, by.tenant_id, id).await?;
    let txn = db.begin().await?;
    kind.delete(&txn, by.tenant_id, id).await?;
    let action = format!("{}.delete", kind.entity);
    let event = Event::new(&action, kind.entity, id).with(json!({"name": current.name}));
    audit::record_by(&txn, by, now, event).await?;
    txn.commit().await?;
    Ok(())
}
