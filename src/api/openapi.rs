//! The OpenAPI 3 document, generated from the handlers, and Swagger UI at `/docs`.

use actix_web::web;
use utoipa::{
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
    Modify, OpenApi,
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{api, audit, calendar, campaigns, contacts, gateway, instances, tenancy};

#[derive(OpenApi)]
#[openapi(
    info(title = "Arauto API", description = "Multi-tenant WhatsApp campaign scheduler. Errors are RFC 9457 application/problem+json."),
    servers((url = "/api/v1")),
    paths(
        tenancy::routes::signup, tenancy::routes::login, tenancy::routes::me,
        tenancy::routes::create_user, tenancy::routes::list_users, tenancy::routes::update_user, tenancy::routes::delete_user,
        instances::routes::create, instances::routes::list, instances::routes::get, instances::routes::update, instances::routes::delete,
        contacts::routes::create, contacts::routes::list, contacts::routes::get, contacts::routes::update, contacts::routes::delete,
        contacts::routes::bulk, contacts::import::import,
        contacts::groups::create, contacts::groups::list, contacts::groups::get, contacts::groups::update, contacts::groups::delete,
        contacts::groups::add_contacts, contacts::groups::remove_contacts,
        contacts::tags::create, contacts::tags::list, contacts::tags::get, contacts::tags::update, contacts::tags::delete,
        contacts::tags::add_contacts, contacts::tags::remove_contacts,
        audit::routes::list,
        calendar::tenant::list, calendar::tenant::create, calendar::tenant::remove,
        campaigns::templates::create, campaigns::templates::list, campaigns::templates::get,
        campaigns::templates::update, campaigns::templates::delete,
        campaigns::routes::create, campaigns::routes::list, campaigns::routes::get, campaigns::routes::update,
        campaigns::routes::delete, campaigns::routes::preview,
        campaigns::lifecycle::start_route, campaigns::lifecycle::pause_route, campaigns::lifecycle::resume_route,
        campaigns::lifecycle::cancel_route,
        campaigns::stats::stats, campaigns::stats::recipients, campaigns::stats::logs, campaigns::stats::dashboard,
        campaigns::stats::queue,
        gateway::routes::evolution_webhook, gateway::routes::instance_state, gateway::routes::instance_connect,
        gateway::routes::instance_logout,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// Health routes live outside `/api/v1`; they are documented in a second document merged
/// with a server of `/`.
#[derive(OpenApi)]
#[openapi(paths(api::health::health, api::health::ready))]
struct RootDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole document: `/api/v1` routes with their prefix, plus the root routes.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.servers = None;
    let prefixed: Vec<_> = std::mem::take(&mut doc.paths.paths).into_iter().collect();
    for (path, item) in prefixed {
        doc.paths.paths.insert(format!("/api/v1{path}"), item);
    }
    doc.merge(RootDoc::openapi());
    doc
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(SwaggerUi::new("/docs/{_:.*}").url("/api/v1/openapi.json", document()));
}
