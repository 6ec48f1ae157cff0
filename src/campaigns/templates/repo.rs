//! Template queries and writes, scoped by `tenant_id` first.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Order, Set};
use serde_json::json;
use uuid::Uuid;

use crate::campaigns::domain::Message;
use crate::db::{page_sorted, scoped};
use crate::entities::templates;
use crate::error::AppResult;
use crate::pagination::{Page, Pagination};

/// Inserts a template of the tenant, created `now`. 409 when it has one of that name.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    name: String,
    message: Message,
    now: DateTime<Utc>,
) -> AppResult<templates::Model> {
    Ok(templates::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        name: Set(name),
        text: Set(message.text),
        media: Set(message.media.map(|m| json!(m))),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// Replaces the name and message of `found`, stamped `now`. 409 on a taken name.
pub async fn update(
    db: &impl ConnectionTrait,
    found: templates::Model,
    name: String,
    message: Message,
    now: DateTime<Utc>,
) -> AppResult<templates::Model> {
    let mut active: templates::ActiveModel = found.into();
    active.name = Set(name);
    active.text = Set(message.text);
    active.media = Set(message.media.map(|m| json!(m)));
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// Deletes the template row with this id.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<(), sea_orm::DbErr> {
    templates::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// A page of the tenant's templates, by name.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    page: &Pagination,
) -> Result<Page<templates::Model>, sea_orm::DbErr> {
    let query = scoped::<templates::Entity>(tenant_id);
    page_sorted(db, query, templates::Column::Name, Order::Asc, page).await
}
