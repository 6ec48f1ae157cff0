//! Tenancy use cases: sign-up, sign-in and user administration. Each write and its audit
//! row share one transaction; passwords are hashed (argon2) off the async threads.

use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

use super::auth::{hash_password, verify_password, AuthUser};
use super::domain::{Email, Password, Role};
use super::repo::{self, NewTenant, NewUser, UserChange};
use crate::audit::{self, Event};
use crate::db::find_owned;
use crate::entities::{tenants, users};
use crate::error::{AppError, AppResult};
use crate::state::AppState;

/// What a sign-up made: the tenant, its first admin and a token for them.
pub struct SignedUp {
    pub tenant: tenants::Model,
    pub user: users::Model,
    pub token: String,
}

/// A parsed change of a user (`None`: keep).
pub struct UserPatch {
    pub email: Option<Email>,
    pub password: Option<Password>,
    pub role: Option<Role>,
}

/// Counts one sign-in or sign-up attempt from `ip` (when known) for `email` (lower-cased):
/// 429 with `Retry-After` past `auth.signin_per_minute_per_ip` or `_per_email`
/// ([`super::ratelimit`], shared by every replica through Redis). Without Redis the attempt
/// is allowed (logged): throttling must not lock every user out.
pub async fn throttle_signin(state: &AppState, ip: Option<&str>, email: &str) -> AppResult<()> {
    let auth = &state.settings.auth;
    let email = email.trim().to_lowercase();
    let buckets = [
        ("signin-ip", ip, auth.signin_per_minute_per_ip),
        ("signin-email", Some(email.as_str()), auth.signin_per_minute_per_email),
    ];
    for (bucket, subject, per_minute) in buckets {
        let Some(subject) = subject else { continue };
        match super::ratelimit::hit(&state.redis, &state.keys, bucket, subject, per_minute).await {
            Ok(None) => {}
            Ok(Some(wait)) => {
                return Err(AppError::TooManyRequests {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                })
            }
            Err(e) => tracing::warn!(error = %e, bucket, "sign-in throttling unavailable: allowing"),
        }
    }
    Ok(())
}

/// Creates `tenant` and its first admin and signs them in. 409 when the email is taken.
pub async fn signup(state: &AppState, tenant: NewTenant, email: Email, password: Password) -> AppResult<SignedUp> {
    repo::ensure_email_free(&state.db, &email, None).await?;
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let tenant = repo::insert_tenant(&txn, tenant, now).await?;
    let new = NewUser {
        tenant_id: tenant.id,
        email,
        password_hash,
        role: Role::Admin,
    };
    let user = repo::insert_user(&txn, new, now).await?;
    let event = Event::new("auth.signup", "tenant", tenant.id);
    audit::record(&txn, tenant.id, Some(user.id), now, event).await?;
    txn.commit().await?;
    let token = state.jwt.issue(user.id, tenant.id, now)?;
    Ok(SignedUp { tenant, user, token })
}

/// A token for the user with this email and password; a wrong password and an unknown (or
/// malformed) email are the same 401, in the same time.
pub async fn login(state: &AppState, email: &str, password: String) -> AppResult<String> {
    let user = match Email::parse(email) {
        Ok(email) => repo::by_email(&state.db, &email).await?,
        Err(_) => None,
    };
    let ok = verify_password(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = user
        .filter(|_| ok)
        .ok_or_else(|| AppError::Unauthorized("wrong email or password".into()))?;
    let now = state.clock.now();
    let event = Event::new("auth.login", "user", user.id);
    audit::record(&state.db, user.tenant_id, Some(user.id), now, event).await?;
    Ok(state.jwt.issue(user.id, user.tenant_id, now)?)
}

/// The caller's user row and tenant.
pub async fn me(state: &AppState, user: &AuthUser) -> AppResult<(users::Model, tenants::Model)> {
    let tenant = repo::tenant(&state.db, user.tenant_id).await?;
    let me = find_owned::<users::Entity>(&state.db, user.tenant_id, user.user_id, "user").await?;
    Ok((me, tenant))
}

/// Adds a user to the caller's tenant. 409 when the email is taken.
pub async fn create_user(
    state: &AppState,
    by: &AuthUser,
    email: Email,
    password: Password,
    role: Role,
) -> AppResult<users::Model> {
    repo::ensure_email_free(&state.db, &email, None).await?;
    let password_hash = hash_password(password.expose().to_owned()).await?;
    let new = NewUser {
        tenant_id: by.tenant_id,
        email,
        password_hash,
        role,
    };
    let txn = state.db.begin().await?;
    let created = repo::insert_user(&txn, new, state.clock.now()).await?;
    let event =
        Event::new("user.create", "user", created.id).with(json!({"email": created.email, "role": created.role}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(created)
}

/// Changes user `id` of the caller's tenant (and forgets the cached user). 404 for another tenant's id (before `patch` is
/// looked at: its parse errors, 422, come second); 409 when the email is taken or the
/// tenant would lose its last admin.
pub async fn update_user(
    state: &AppState,
    by: &AuthUser,
    id: Uuid,
    patch: AppResult<UserPatch>,
) -> AppResult<users::Model> {
    let target = find_owned::<users::Entity>(&state.db, by.tenant_id, id, "user").await?;
    let patch = patch?;
    if let Some(email) = &patch.email {
        repo::ensure_email_free(&state.db, email, Some(target.id)).await?;
    }
    if patch.role == Some(Role::Member) && target.role == Role::Admin {
        repo::ensure_other_admin(&state.db, by.tenant_id, target.id).await?;
    }
    let password_changed = patch.password.is_some();
    let password_hash = match patch.password {
        Some(p) => Some(hash_password(p.expose().to_owned()).await?),
        None => None,
    };
    let change = UserChange {
        email: patch.email,
        password_hash,
        role: patch.role,
    };
    let txn = state.db.begin().await?;
    let updated = repo::update_user(&txn, target, change, state.clock.now()).await?;
    let event = Event::new("user.update", "user", updated.id)
        .with(json!({"email": updated.email, "role": updated.role, "password_changed": password_changed}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    state.users.forget(updated.id).await;
    Ok(updated)
}

/// Removes user `id` of the caller's tenant (and forgets the cached user). 404 for another tenant's id; 409 for its last
/// admin.
pub async fn delete_user(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let target = find_owned::<users::Entity>(&state.db, by.tenant_id, id, "user").await?;
    if target.role == Role::Admin {
        repo::ensure_other_admin(&state.db, by.tenant_id, target.id).await?;
    }
    let txn = state.db.begin().await?;
    repo::delete_user(&txn, target.id).await?;
    let event = Event::new("user.delete", "user", target.id).with(json!({"email": target.email}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    txn.commit().await?;
    state.users.forget(target.id).await;
    Ok(())
}
