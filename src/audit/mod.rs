//! The audit log: who did what, when. Rows are written in the same transaction as the
//! change they describe.

pub mod routes;

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Order, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::db::{page_sorted, scoped};
use crate::entities::audit_logs;
use crate::pagination::{Page, Pagination};
use crate::tenancy::auth::AuthUser;

/// What happened, to what.
pub struct Event<'a> {
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<Uuid>,
    pub details: Value,
}

impl<'a> Event<'a> {
    pub fn new(action: &'a str, entity_type: &'a str, entity_id: Uuid) -> Self {
        Self {
            action,
            entity_type,
            entity_id: Some(entity_id),
            details: Value::Object(Default::default()),
        }
    }

    pub fn with(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Appends one audit row stamped `at` (UTC, from the application's injected clock, never
/// the system clock, so tests at chosen instants see consistent timestamps).
pub async fn record(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    at: DateTime<Utc>,
    event: Event<'_>,
) -> Result<(), sea_orm::DbErr> {
    audit_logs::ActiveModel {
        // Time-ordered (monotonic within a process): rows stamped the same instant by the
        // injected clock still list in the order they happened.
        id: Set(Uuid::now_v7()),
        tenant_id: Set(tenant_id),
        user_id: Set(user_id),
        action: Set(event.action.to_owned()),
        entity_type: Set(event.entity_type.to_owned()),
        entity_id: Set(event.entity_id),
        details: Set(event.details),
        created_at: Set(at),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// [`record`] for an action of `user` (their tenant, their id).
pub async fn record_by(
    db: &impl ConnectionTrait,
    user: &AuthUser,
    at: DateTime<Utc>,
    event: Event<'_>,
) -> Result<(), sea_orm::DbErr> {
    record(db, user.tenant_id, Some(user.user_id), at, event).await
}

/// A page of the tenant's audit log, newest first.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    page: &Pagination,
) -> Result<Page<audit_logs::Model>, sea_orm::DbErr> {
    let query = scoped::<audit_logs::Entity>(tenant_id);
    page_sorted(db, query, audit_logs::Column::CreatedAt, Order::Desc, page).await
}
