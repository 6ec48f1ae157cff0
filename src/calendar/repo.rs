//! The tenant's own holidays and time zone, as stored. Every statement is scoped by
//! `tenant_id` first.

use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};
use std::sync::Arc;
use uuid::Uuid;

use crate::db::scoped;
use crate::entities::{holidays, tenants};
use crate::error::AppResult;

/// Each tenant's own holiday dates, remembered by this process for
/// `server.read_cache_ttl_ms` (the API reads them for every stats, preview and campaign
/// validation). Adding or deleting a holiday through this process forgets the tenant's at
/// once; a change through another replica shows here within the TTL. The beat and the
/// workers read holidays themselves, uncached.
#[derive(Clone)]
pub struct HolidayCache {
    tenants: moka::future::Cache<Uuid, Arc<[NaiveDate]>>,
}

impl HolidayCache {
    /// Tenants remembered at most: beyond it the least used are dropped.
    const CAPACITY: u64 = 10_000;

    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            tenants: moka::future::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Every date the tenant closes on, sorted: from memory, or read with [`dates`].
    pub async fn dates(&self, db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<Arc<[NaiveDate]>, sea_orm::DbErr> {
        if let Some(found) = self.tenants.get(&tenant_id).await {
            return Ok(found);
        }
        let found: Arc<[NaiveDate]> = dates(db, tenant_id).await?.into();
        self.tenants.insert(tenant_id, found.clone()).await;
        Ok(found)
    }

    /// Drops the tenant's remembered dates: call after adding or deleting one.
    pub async fn forget(&self, tenant_id: Uuid) {
        self.tenants.invalidate(&tenant_id).await;
    }
}

/// Every date the tenant closes on, sorted (from the database).
pub async fn dates(db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<Vec<NaiveDate>, sea_orm::DbErr> {
    scoped::<holidays::Entity>(tenant_id)
        .select_only()
        .column(holidays::Column::Date)
        .order_by_asc(holidays::Column::Date)
        .into_tuple()
        .all(db)
        .await
}

/// The tenant's holidays from `from` to `to` (both included), unordered.
pub async fn between(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<holidays::Model>, sea_orm::DbErr> {
    scoped::<holidays::Entity>(tenant_id)
        .filter(holidays::Column::Date.between(from, to))
        .all(db)
        .await
}

/// Inserts a holiday of the tenant, created `now`. 409 when it has one on that date.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    date: NaiveDate,
    name: String,
    now: DateTime<Utc>,
) -> AppResult<holidays::Model> {
    Ok(holidays::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        date: Set(date),
        name: Set(name),
        created_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// Deletes the holiday row with this id.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> Result<(), sea_orm::DbErr> {
    holidays::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// The tenant's time zone (the default for campaign schedules); `America/Sao_Paulo` when
/// the tenant is gone.
pub async fn tenant_timezone(db: &impl ConnectionTrait, tenant_id: Uuid) -> AppResult<String> {
    Ok(tenants::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .map_or_else(|| "America/Sao_Paulo".to_owned(), |t| t.timezone))
}
