//! Set use cases that span repositories: the delete and its audit row, in one transaction.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::repo::SetKind;
use crate::audit::{self, Event};
use crate::error::{AppError, AppResult};
use crate::tenancy::auth::AuthUser;

/// Deletes set `id` of `kind` of the caller's tenant (its contacts stay), audited as
/// `group.delete` / `tag.delete`. 404 for another tenant's id; 409 while a campaign not
/// finished names it in its audience (it would start, or run again, without those contacts).
pub async fn delete<C: TransactionTrait + ConnectionTrait>(
    db: &C,
    kind: &SetKind,
    by: &AuthUser,
    id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    let current = kind.get(db, by.tenant_id, id).await?;
    let txn = db.begin().await?;
    let users = kind.unfinished_campaigns_naming(&txn, by.tenant_id, id).await?;
    if !users.is_empty() {
        return Err(AppError::conflict(format!(
            "campaigns not finished have this {} in their audience ({}): finish, cancel or edit them first",
            kind.entity,
            users.join(", ")
        )));
    }
    kind.delete(&txn, by.tenant_id, id).await?;
    let action = format!("{}.delete", kind.entity);
    let event = Event::new(&action, kind.entity, id).with(json!({"name": current.name}));
    audit::record_by(&txn, by, now, event).await?;
    txn.commit().await?;
    Ok(())
}
