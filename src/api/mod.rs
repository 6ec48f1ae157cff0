//! The HTTP surface: `/api/v1` routes, health, OpenAPI and Swagger UI, CORS.

pub mod cursor;
pub mod extract;
pub mod health;
pub mod openapi;
pub mod schema;

use crate::error::AppError;
use actix_cors::Cors;
use actix_web::{http::header, web, HttpRequest, HttpResponse};

/// Registers every route; shared by the server and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PathConfig::default().error_handler(path_error))
        .configure(health::configure)
        .configure(crate::observability::configure)
        .configure(openapi::configure)
        .service(
            web::scope("/api/v1")
                .configure(crate::tenancy::routes::configure)
                .configure(crate::tenancy::settings::configure)
                .configure(crate::instances::routes::configure)
                .configure(crate::contacts::routes::configure)
                .configure(crate::contacts::groups::configure)
                .configure(crate::contacts::tags::configure)
                .configure(crate::audit::routes::configure)
                .configure(crate::calendar::tenant::configure)
                .configure(crate::campaigns::templates::configure)
                .configure(crate::campaigns::routes::configure)
                .configure(crate::campaigns::lifecycle::configure)
                .configure(crate::campaigns::stats::configure)
                .configure(crate::campaigns::copies::configure)
                .configure(crate::campaigns::runs::configure)
                .configure(crate::messages::routes::configure)
                .configure(crate::gateway::routes::configure)
                .configure(crate::webhooks::routes::configure),
        )
        .default_service(web::to(not_found));
}

/// Errors from actix's own `web::Path` extractor: a malformed id is a 404 naming the field,
/// unless the path is a documented one of its own that lacks the method (`PATCH
/// /contacts/bulk` reaching `/contacts/{id}`): that is a 405 with `Allow`.
pub fn path_error(err: actix_web::error::PathError, req: &HttpRequest) -> actix_web::Error {
    if let Some(allow) = openapi::literal_route_methods(req.path()) {
        if !allow.contains(req.method()) {
            return AppError::method_not_allowed(req.method(), allow).into();
        }
    }
    let detail = match &err {
        actix_web::error::PathError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    AppError::NotFound(format!("no such resource: {detail}")).into()
}

/// No route answered: 405 (with `Allow`) when the path is a documented one asked with
/// another method, else 404.
async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    match openapi::allowed_methods(req.path()) {
        Some(allow) if !allow.contains(req.method()) => Err(AppError::method_not_allowed(req.method(), allow)),
        _ => Err(AppError::NotFound("no such route".into())),
    }
}

/// Headers on every answer (OWASP Secure Headers): no MIME sniffing, no framing, no
/// referrer leaks, and API answers never cached by intermediaries (they carry tenant data).
pub fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

pub fn cors(origins: &[String]) -> Cors {
    let cors = Cors::default()
        .allow_any_method()
        .allowed_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("idempotency-key"),
        ])
        .expose_headers([header::LOCATION])
        .max_age(3600);
    if origins.iter().any(|o| o == "*") {
        cors.allow_any_origin()
    } else {
        origins.iter().fold(cors, |c, o| c.allowed_origin(o))
    }
}
