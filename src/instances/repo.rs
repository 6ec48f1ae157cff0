//! Instance queries and writes. Lookups by id go through [`crate::db::find_owned`]; only
//! the webhook lookup (by its secret token) spans tenants.

use chrono::{DateTime, Utc};
use rand::{distributions::Alphanumeric, Rng};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Order, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::domain::{InstanceInput, InstancePatch};
use crate::constraints::{violation, Violation, CAMPAIGNS_INSTANCE_FKEY};
use crate::db::{page_sorted, scoped, stmt};
use crate::entities::instances;
use crate::error::{AppError, AppResult};
use crate::gateway::ConnectionState;
use crate::pagination::{Page, Pagination};

/// 40 random alphanumerics: the secret part of the instance's webhook URL.
pub fn webhook_token() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

/// What a new row holds besides the input: its key (`crypto::Cipher` output), webhook
/// token, whether Arauto created it on the gateway and the state heard then.
pub struct NewRow {
    pub api_key_enc: String,
    pub webhook_token: String,
    pub provisioned: bool,
    pub state: Option<ConnectionState>,
}

/// Inserts an instance of the tenant (`row.state` heard at `now`, if any). 409 when the
/// tenant has one of that name.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    input: &InstanceInput,
    row: NewRow,
    now: DateTime<Utc>,
) -> AppResult<instances::Model> {
    Ok(instances::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        name: Set(input.name.clone()),
        api_url: Set(input.api_url.clone()),
        instance_name: Set(input.instance_name.clone()),
        api_key_enc: Set(row.api_key_enc),
        webhook_token: Set(row.webhook_token),
        daily_limit: Set(input.daily_limit),
        warmup: Set(input.warmup.map(|w| json!(w))),
        connection_state: Set(row.state),
        state_checked_at: Set(row.state.map(|_| now)),
        provisioned: Set(row.provisioned),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// 409 when the tenant already has an instance named `name`.
pub async fn ensure_name_free(db: &impl ConnectionTrait, tenant_id: Uuid, name: &str) -> AppResult<()> {
    let taken = scoped::<instances::Entity>(tenant_id)
        .filter(instances::Column::Name.eq(name))
        .one(db)
        .await?;
    match taken {
        Some(_) => Err(AppError::conflict("an instance with this name already exists")),
        None => Ok(()),
    }
}

/// Applies `patch` (its `api_key` already encrypted into `api_key_enc`), stamped `now`; a
/// new target forgets the connection state heard of the old one. 409 on a taken name.
pub async fn update(
    db: &impl ConnectionTrait,
    found: instances::Model,
    patch: InstancePatch,
    api_key_enc: Option<String>,
    now: DateTime<Utc>,
) -> AppResult<instances::Model> {
    let target_changed = patch.changes_target();
    let mut active: instances::ActiveModel = found.into();
    if let Some(v) = patch.name {
        active.name = Set(v);
    }
    if let Some(v) = patch.api_url {
        active.api_url = Set(v);
    }
    if let Some(v) = api_key_enc {
        active.api_key_enc = Set(v);
    }
    if let Some(v) = patch.instance_name {
        active.instance_name = Set(v);
    }
    if let Some(v) = patch.daily_limit {
        active.daily_limit = Set(v);
    }
    if let Some(v) = patch.warmup {
        active.warmup = Set(v.map(|w| json!(w)));
    }
    if target_changed {
        // What was heard was about the old number or gateway.
        active.connection_state = Set(None);
        active.state_checked_at = Set(None);
    }
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// Deletes the instance row. 409 while campaigns use it.
pub async fn delete(db: &impl ConnectionTrait, id: Uuid) -> AppResult<()> {
    // A pool's other numbers have no foreign key (an array cannot carry one): asked here,
    // and the foreign key still guards the first.
    let in_pool = db
        .query_one(stmt(
            "SELECT 1 FROM campaigns WHERE $1 = ANY(instance_ids) LIMIT 1",
            vec![id.into()],
        ))
        .await?;
    if in_pool.is_some() {
        return Err(AppError::conflict(
            "campaigns use this instance: delete or finish them first",
        ));
    }
    instances::Entity::delete_by_id(id)
        .exec(db)
        .await
        .map_err(|e| match violation(&e) {
            Some(Violation::ForeignKey(CAMPAIGNS_INSTANCE_FKEY)) => {
                AppError::conflict("campaigns use this instance: delete or finish them first")
            }
            _ => e.into(),
        })?;
    Ok(())
}

/// A page of the tenant's instances, oldest first.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    page: &Pagination,
) -> Result<Page<instances::Model>, sea_orm::DbErr> {
    let query = scoped::<instances::Entity>(tenant_id);
    page_sorted(db, query, instances::Column::CreatedAt, Order::Asc, page).await
}

/// The instance whose webhook URL carries `token`, in any tenant.
pub async fn by_webhook_token(
    db: &impl ConnectionTrait,
    token: &str,
) -> Result<Option<instances::Model>, sea_orm::DbErr> {
    instances::Entity::find()
        .filter(instances::Column::WebhookToken.eq(token))
        .one(db)
        .await
}
