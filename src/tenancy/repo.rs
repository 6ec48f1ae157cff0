//! User and tenant queries and writes. Lookups of tenant-owned rows go through
//! [`crate::db::scoped`]; only the email lookups (sign-in, uniqueness) span tenants, since
//! an email is unique across the whole service.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, Order, PaginatorTrait, QueryFilter, Set};
use serde_json::json;
use uuid::Uuid;

use super::domain::{AuthUser, Email, Role};
use crate::db::{page_sorted, scoped};
use crate::entities::{tenants, users};
use crate::error::{AppError, AppResult};
use crate::pagination::{Page, Pagination};

/// A user row to insert: the email already parsed and the password already hashed (argon2).
pub struct NewUser {
    pub tenant_id: Uuid,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
}

/// A tenant row to insert: `timezone` an IANA zone, `default_country` ISO 3166 alpha-2.
pub struct NewTenant {
    pub name: String,
    pub timezone: String,
    pub default_country: String,
}

/// A partial change of a user; `None` keeps the stored value.
#[derive(Default)]
pub struct UserChange {
    pub email: Option<Email>,
    pub password_hash: Option<String>,
    pub role: Option<Role>,
}

fn email_taken() -> AppError {
    AppError::conflict(crate::constraints::EMAIL_TAKEN)
}

/// The user with this email, in any tenant.
pub async fn by_email(db: &impl ConnectionTrait, email: &Email) -> Result<Option<users::Model>, sea_orm::DbErr> {
    users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(db)
        .await
}

/// 409 when another user than `except` has this email.
pub async fn ensure_email_free(db: &impl ConnectionTrait, email: &Email, except: Option<Uuid>) -> AppResult<()> {
    match by_email(db, email).await? {
        Some(u) if Some(u.id) != except => Err(email_taken()),
        _ => Ok(()),
    }
}

/// 409 when the tenant has no admin but `except` (the change would leave it without one).
pub async fn ensure_other_admin(db: &impl ConnectionTrait, tenant_id: Uuid, except: Uuid) -> AppResult<()> {
    let admins = scoped::<users::Entity>(tenant_id)
        .filter(users::Column::Role.eq(Role::Admin))
        .filter(users::Column::Id.ne(except))
        .count(db)
        .await?;
    if admins == 0 {
        Err(AppError::conflict("a tenant must keep at least one admin"))
    } else {
        Ok(())
    }
}

/// The tenant row; 404 when it is gone.
pub async fn tenant(db: &impl ConnectionTrait, tenant_id: Uuid) -> AppResult<tenants::Model> {
    tenants::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found("tenant"))
}

/// Inserts a tenant with empty settings, created `now`.
pub async fn insert_tenant(
    db: &impl ConnectionTrait,
    t: NewTenant,
    now: DateTime<Utc>,
) -> Result<tenants::Model, sea_orm::DbErr> {
    tenants::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(t.name),
        timezone: Set(t.timezone),
        default_country: Set(t.default_country),
        settings: Set(json!({})),
        created_at: Set(now),
    }
    .insert(db)
    .await
}

/// Inserts a user created `now`; 409 when the email was taken meanwhile (the unique index,
/// mapped by `From<DbErr>`).
pub async fn insert_user(db: &impl ConnectionTrait, u: NewUser, now: DateTime<Utc>) -> AppResult<users::Model> {
    Ok(users::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(u.tenant_id),
        email: Set(u.email.as_str().to_owned()),
        password_hash: Set(u.password_hash),
        role: Set(u.role),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?)
}

/// Applies `change` to `user`, stamped `now`; 409 when the new email was taken meanwhile.
pub async fn update_user(
    db: &impl ConnectionTrait,
    user: users::Model,
    change: UserChange,
    now: DateTime<Utc>,
) -> AppResult<users::Model> {
    let mut active: users::ActiveModel = user.into();
    if let Some(email) = change.email {
        active.email = Set(email.as_str().to_owned());
    }
    if let Some(hash) = change.password_hash {
        active.password_hash = Set(hash);
    }
    if let Some(role) = change.role {
        active.role = Set(role);
    }
    active.updated_at = Set(now);
    Ok(active.update(db).await?)
}

/// Deletes the user row with this id.
pub async fn delete_user(db: &impl ConnectionTrait, id: Uuid) -> Result<(), sea_orm::DbErr> {
    users::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// A page of the tenant's users, oldest first.
pub async fn list_users(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    page: &Pagination,
) -> Result<Page<users::Model>, sea_orm::DbErr> {
    let query = scoped::<users::Entity>(tenant_id);
    page_sorted(db, query, users::Column::CreatedAt, Order::Asc, page).await
}

/// Users seen by this process, by id, for `server.read_cache_ttl_ms`, so that a request
/// does not read its caller's row every time. A user changed or deleted through this
/// process is forgotten at once ([`UserCache::forget`]); one changed through another replica
/// keeps its old role (or, deleted, keeps being let in) here for at most the TTL. Unknown
/// ids are remembered too, as absent.
#[derive(Clone)]
pub struct UserCache {
    users: moka::future::Cache<Uuid, Option<AuthUser>>,
}

impl UserCache {
    /// Users remembered at most: beyond it the least used are dropped.
    const CAPACITY: u64 = 100_000;

    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            users: moka::future::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The user with this id (any tenant), from memory or from the database.
    pub async fn get(&self, db: &sea_orm::DatabaseConnection, user_id: Uuid) -> Result<Option<AuthUser>, AppError> {
        if let Some(found) = self.users.get(&user_id).await {
            return Ok(found);
        }
        let found = users::Entity::find_by_id(user_id).one(db).await?.map(|u| AuthUser {
            user_id: u.id,
            tenant_id: u.tenant_id,
            role: u.role,
            email: u.email,
        });
        self.users.insert(user_id, found.clone()).await;
        Ok(found)
    }

    /// Drops what this process remembers of the user: call after changing or deleting them.
    pub async fn forget(&self, user_id: Uuid) {
        self.users.invalidate(&user_id).await;
    }
}
