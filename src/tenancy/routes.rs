use actix_web::{delete, get, patch, post, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::str::FromStr;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::AuthUser;
use super::domain::{parse_name, Email, Password, Role};
use super::repo::{self, NewTenant};
use super::service::{self, UserPatch};
use crate::api::extract::{ApiJson, Page, Pagination};
use crate::contacts::phone::calling_code;
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
            role: u.role,
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

impl SignupRequest {
    /// The tenant, email and password, with every bad field reported (422).
    fn parse(self) -> AppResult<(NewTenant, Email, Password)> {
        let mut f = Fields::default();
        let name = f.check("tenant_name", parse_name(&self.tenant_name, crate::text::MAX_NAME));
        let email = f.check("email", Email::parse(&self.email));
        let password = f.check("password", Password::parse(&self.password));
        let timezone = self.timezone.unwrap_or_else(|| "America/Sao_Paulo".into());
        f.check(
            "timezone",
            chrono_tz::Tz::from_str(&timezone).map_err(|_| "must be an IANA time zone"),
        );
        let default_country = self.default_country.unwrap_or_else(|| "BR".into()).to_uppercase();
        f.check(
            "default_country",
            calling_code(&default_country).ok_or("is not a supported country"),
        );
        f.finish()?;
        let (Some(name), Some(email), Some(password)) = (name, email, password) else {
            return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
        };
        let tenant = NewTenant {
            name,
            timezone,
            default_country,
        };
        Ok((tenant, email, password))
    }
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

/// The client's address as this server sees it (the TCP peer; a proxy in front makes this
/// the proxy's, so per-IP limits then count the proxy — forwarded headers are not trusted).
fn client_ip(req: &HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

/// Creates a tenant and its first admin, and signs them in.
#[utoipa::path(operation_id = "signUp", tag = "auth", request_body = SignupRequest, responses(
    (status = 201, body = SignupResponse),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
    (status = 429, body = crate::error::Problem),
))]
#[post("/auth/signup")]
pub async fn signup(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<SignupRequest>,
) -> AppResult<HttpResponse> {
    let (tenant, email, password) = body.0.parse()?;
    service::throttle_signin(&state, client_ip(&req).as_deref(), email.as_str()).await?;
    let done = service::signup(&state, tenant, email, password).await?;
    Ok(HttpResponse::Created().json(SignupResponse {
        tenant: done.tenant.into(),
        user: done.user.into(),
        token: done.token,
    }))
}

/// Signs in; a wrong password and an unknown email answer the same 401.
#[utoipa::path(operation_id = "logIn", tag = "auth", request_body = LoginRequest, responses(
    (status = 200, body = TokenResponse),
    (status = 401, body = crate::error::Problem),
    (status = 429, body = crate::error::Problem),
))]
#[post("/auth/login")]
pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: ApiJson<LoginRequest>,
) -> AppResult<HttpResponse> {
    service::throttle_signin(&state, client_ip(&req).as_deref(), &body.0.email).await?;
    let token = service::login(&state, &body.0.email, body.0.password).await?;
    Ok(HttpResponse::Ok().json(TokenResponse { token }))
}

/// The caller and their tenant.
#[utoipa::path(operation_id = "getMe", tag = "auth", responses(
    (status = 200, body = MeResponse),
    (status = 401, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/me")]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    let (me, tenant) = service::me(&state, &user).await?;
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

impl UpdateUserRequest {
    /// The change, with every bad field reported (422).
    fn parse(self) -> AppResult<UserPatch> {
        let mut f = Fields::default();
        let email = self.email.as_deref().and_then(|e| f.check("email", Email::parse(e)));
        let password = self
            .password
            .as_deref()
            .and_then(|p| f.check("password", Password::parse(p)));
        f.finish()?;
        Ok(UserPatch {
            email,
            password,
            role: self.role,
        })
    }
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
    let created = service::create_user(&state, &user, email, password, body.role).await?;
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
    let page = repo::list_users(&state.reads, user.tenant_id, &page).await?;
    Ok(HttpResponse::Ok().json(page.map(UserView::from)))
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
    let updated = service::update_user(&state, &user, *id, body.0.parse()).await?;
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
    service::delete_user(&state, &user, *id).await?;
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
