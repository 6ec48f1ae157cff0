use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{hash_password, verify_password, AuthUser};
use super::domain::{parse_name, Email, Password, Role};
use crate::api::extract::{ApiJson, Page, Pagination};
use crate::audit::{self, Event};
use crate::contacts::phone::calling_code;
use crate::db::{find_owned, scoped};
use crate::entities::{tenants, users};
use crate::error::{AppError, AppResult, Fields};
use crate::state::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    pub id: Uuid,
    pub name: String,
    /// IANA time zone, the default for campaigns.
    pub timezone: String,
    /// ISO 3166 alpha-2 country used to normalise national phone numbers.
    pub default_country: String,
    pub created_at: DateTime<Utc>,
}

impl From<tenants::Model> for TenantView {
    fn from(t: tenants::Model) -> Self {
        Self {
            id: t.id,
            name: t.name,
            timezone: t.timezone,
            default_country: t.default_country,
            created_at: t.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<users::Model> for UserView {
    fn from(u: users::Model) -> Self {
        Self {
            id: u.id,
            role: Role::from_db(&u.role),
            email: u.email,
            created_at: u.created_at,
            updated_at: u.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"tenant_name": "Loja da Ana", "email": "ana@loja.com", "password": "correct horse", "timezone": "America/Sao_Paulo", "default_country": "BR"}))]
pub struct SignupRequest {
    #[schema(max_length = 200)]
    pub tenant_name: String,
    #[schema(max_length = 254)]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(max_length = 128)]
    pub password: String,
    /// IANA time zone; default `America/Sao_Paulo`.
    pub timezone: Option<String>,
    /// ISO 3166 alpha-2; default `BR`.
    pub default_country: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    pub tenant: TenantView,
    pub user: UserView,
    pub token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "ana@loja.com", "password": "correct horse"}))]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub token: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub user: UserView,
    pub tenant: TenantView,
}

fn email_taken() -> AppError {
    AppError::conflict(crate::constraints::EMAIL_TAKEN)
}

async fn ensure_email_free(state: &AppState, email: &Email, except: Option<Uuid>) -> AppResult<()> {
    let existing = users::Entity::find()
        .filter(users::Column::Email.eq(email.as_str()))
        .one(&state.db)
        .await?;
    match existing {
        Some(u) if Some(u.id) != except => Err(email_taken()),
        _ => Ok(()),
    }
}

/// Creates a tenant and its first admin, and signs them in.
#[utoipa::path(operation_id = "signUp", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SignupResponse),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
))]
#[post("/auth/signup")]
pub async fn signup(state: web::Data<AppState>, body: ApiJson<SignupRequest>) -> AppResult<HttpResponse> {
    let body = body.0;
    let mut f = Fields::default();
    let name = f.check("tenant_name", parse_name(&body.tenant_name, crate::text::MAX_NAME));
    let email = f.check("email", Email::parse(&body.email));
    let password = f.check("password", Password::parse(&body.password));
    let timezone = body.timezone.unwrap_or_else(|| "America/Sao_Paulo".into());
    f.check(
        "timezone",
        chrono_tz::Tz::from_str(&timezone).map_err(|_| "must be an IANA time zone"),
    );
    let country = body.default_country.unwrap_or_else(|| "BR".into()).to_uppercase();
    f.check(
        "default_country",
        calling_code(&country).ok_or("is not a supported country"),
    );
    f.finish()?;
    let (Some(name), Some(email), Some(password)) = (name, email, password) else {
        return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
    };
    ensure_email_free(&state, &email, None).await?;
    let hash = hash_password(password.expose().to_owned()).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let tenant = tenants::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(name),
        timezone: Set(timezone),
        default_country: Set(country),
        settings: Set(json!({})),
        created_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let user = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant.id),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(hash),
        role: Set(Role::Admin.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        tenant.id,
        Some(user.id),
        now,
        Event::new("auth.signup", "tenant", tenant.id),
    )
    .await?;
    txn.commit().await?;
    let token = state.jwt.issue(user.id, tenant.id, now)?;
    Ok(HttpResponse::Created().json(SignupResponse {
        tenant: tenant.into(),
        user: user.into(),
        token,
    }))
}

/// Signs in; a wrong password and an unknown email answer the same 401.
#[utoipa::path(operation_id = "logIn", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, body = crate::error::Problem),
))]
#[post("/auth/login")]
pub async fn login(state: web::Data<AppState>, body: ApiJson<LoginRequest>) -> AppResult<HttpResponse> {
    let body = body.0;
    let user = match Email::parse(&body.email) {
        Ok(email) => {
            users::Entity::find()
                .filter(users::Column::Email.eq(email.as_str()))
                .one(&state.db)
                .await?
        }
        Err(_) => None,
    };
    let ok = verify_password(body.password, user.as_ref().map(|u| u.password_hash.clone())).await?;
    let user = user
        .filter(|_| ok)
        .ok_or_else(|| AppError::Unauthorized("wrong email or password".into()))?;
    let now = state.clock.now();
    audit::record(
        &state.db,
        user.tenant_id,
        Some(user.id),
        now,
        Event::new("auth.login", "user", user.id),
    )
    .await?;
    let token = state.jwt.issue(user.id, user.tenant_id, now)?;
    Ok(HttpResponse::Ok().json(TokenResponse { token }))
}

/// The caller and their tenant.
#[utoipa::path(operation_id = "getMe", tag = "auth", responses(
    (status = 200, body = MeResponse),
    (status = 401, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    let tenant = tenants::Entity::find_by_id(user.tenant_id)
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found("tenant"))?;
    let me = find_owned::<users::Entity>(&state.db, user.tenant_id, user.user_id, "user").await?;
    Ok(HttpResponse::Ok().json(MeResponse {
        user: me.into(),
        tenant: tenant.into(),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"email": "bia@loja.com", "password": "battery staple", "role": "member"}))]
pub struct CreateUserRequest {
    pub email: String,
    pub password: String,
    pub role: Role,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    pub email: Option<String>,
    pub password: Option<String>,
    pub role: Option<Role>,
}

/// Adds a user to the caller's tenant (admins only).
#[utoipa::path(operation_id = "createUser", tag = "users", request_body = CreateUserRequest, responses(
    (status = 201, body = UserView),
    (status = 403, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/users")]
pub async fn create_user(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<CreateUserRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let body = body.0;
    let mut f = Fields::default();
    let email = f.check("email", Email::parse(&body.email));
    let password = f.check("password", Password::parse(&body.password));
    f.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
    };
    ensure_email_free(&state, &email, None).await?;
    let hash = hash_password(password.expose().to_owned()).await?;
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let created = users::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        email: Set(email.as_str().to_owned()),
        password_hash: Set(hash),
        role: Set(body.role.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    let event =
        Event::new("user.create", "user", created.id).with(json!({"email": created.email, "role": created.role}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    Ok(HttpResponse::Created().json(UserView::from(created)))
}

/// The tenant's users (admins only).
#[utoipa::path(operation_id = "listUsers", tag = "users", params(Pagination), responses(
    (status = 200, body = Page<UserView>),
    (status = 403, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/users")]
pub async fn list_users(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let query = scoped::<users::Entity>(user.tenant_id)
        .order_by_asc(users::Column::CreatedAt)
        .order_by_asc(users::Column::Id);
    Ok(HttpResponse::Ok().json(page.fetch(&state.db, query).await?.map(UserView::from)))
}

/// 409 when the change would leave the tenant without an admin.
async fn ensure_other_admin(state: &AppState, tenant_id: Uuid, except: Uuid) -> AppResult<()> {
    let admins = scoped::<users::Entity>(tenant_id)
        .filter(users::Column::Role.eq(Role::Admin.as_str()))
        .filter(users::Column::Id.ne(except))
        .count(&state.db)
        .await?;
    if admins == 0 {
        Err(AppError::conflict("a tenant must keep at least one admin"))
    } else {
        Ok(())
    }
}

/// Changes a user's email, password or role (admins only).
#[utoipa::path(operation_id = "updateUser", tag = "users", request_body = UpdateUserRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = UserView),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[patch("/users/{id}")]
pub async fn update_user(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<UpdateUserRequest>,
) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let target = find_owned::<users::Entity>(&state.db, user.tenant_id, *id, "user").await?;
    let body = body.0;
    let mut f = Fields::default();
    let email = body.email.as_deref().and_then(|e| f.check("email", Email::parse(e)));
    let password = body
        .password
        .as_deref()
        .and_then(|p| f.check("password", Password::parse(p)));
    f.finish()?;
    if let Some(email) = &email {
        ensure_email_free(&state, email, Some(target.id)).await?;
    }
    if body.role == Some(Role::Member) && target.role == Role::Admin.as_str() {
        ensure_other_admin(&state, user.tenant_id, target.id).await?;
    }
    let hash = match password {
        Some(p) => Some(hash_password(p.expose().to_owned()).await?),
        None => None,
    };
    let mut active: users::ActiveModel = target.into();
    if let Some(email) = email {
        active.email = Set(email.as_str().to_owned());
    }
    if let Some(hash) = hash {
        active.password_hash = Set(hash);
    }
    if let Some(role) = body.role {
        active.role = Set(role.as_str().to_owned());
    }
    active.updated_at = Set(state.clock.now());
    let txn = state.db.begin().await?;
    let updated = active.update(&txn).await?;
    let event = Event::new("user.update", "user", updated.id)
        .with(json!({"email": updated.email, "role": updated.role, "password_changed": body.password.is_some()}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    state.users.forget(updated.id).await;
    Ok(HttpResponse::Ok().json(UserView::from(updated)))
}

/// Removes a user (admins only; the last admin cannot be removed).
#[utoipa::path(operation_id = "deleteUser", tag = "users", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 403, body = crate::error::Problem),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/users/{id}")]
pub async fn delete_user(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    user.require_admin()?;
    let target = find_owned::<users::Entity>(&state.db, user.tenant_id, *id, "user").await?;
    if target.role == Role::Admin.as_str() {
        ensure_other_admin(&state, user.tenant_id, target.id).await?;
    }
    let txn = state.db.begin().await?;
    users::Entity::delete_by_id(target.id).exec(&txn).await?;
    let event = Event::new("user.delete", "user", target.id).with(json!({"email": target.email}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    state.users.forget(target.id).await;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(signup)
        .service(login)
        .service(me)
        .service(create_user)
        .service(list_users)
        .service(update_user)
        .service(delete_user);
}
