//! The audit log: who did what, when. Rows are written in the same transaction as the
//! change they describe.

pub mod routes;

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
use serde_json::Value;
use uuid::Uuid;

use crate::entities::audit_logs;

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

pub async fn record(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    user_id: Option<Uuid>,
    event: Event<'_>,
) -> Result<(), sea_orm::DbErr> {
    audit_logs::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        user_id: Set(user_id),
        action: Set(event.action.to_owned()),
        entity_type: Set(event.entity_type.to_owned()),
        entity_id: Set(event.entity_id),
        details: Set(event.details),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await?;
    Ok(())
}
