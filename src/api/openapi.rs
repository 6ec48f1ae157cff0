//! The OpenAPI 3.1 document, generated from the handlers, and Swagger UI at `/docs/`
//! (`/docs` redirects there).
//!
//! Handlers' annotations give each operation its id, tag, success answers and the errors
//! only it can give (403 for admins-only, 409). [`ProblemResponses`] adds, in one place, the
//! errors every operation of a kind can give (401 when it needs a token, 400/413/415/422
//! when it reads a body, 404 when it names a resource in its path, …) and makes every error
//! answer an `application/problem+json` [`Problem`](crate::error::Problem).

use std::sync::OnceLock;

use actix_web::{http::Method, web};
use utoipa::{
    openapi::{
        header::HeaderBuilder,
        path::{Operation, ParameterIn, PathItem},
        security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
        Content, Ref, RefOr, Response, Type,
    },
    Modify, OpenApi,
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{api, audit, calendar, campaigns, contacts, gateway, instances, messages, tenancy, webhooks};

#[derive(OpenApi)]
#[openapi(
    info(title = "Arauto API", description = "Multi-tenant WhatsApp campaign scheduler. Errors are RFC 9457 application/problem+json."),
    servers((url = "/api/v1")),
    paths(
        tenancy::routes::signup, tenancy::routes::login, tenancy::routes::me,
        tenancy::routes::create_user, tenancy::routes::list_users, tenancy::routes::update_user, tenancy::routes::delete_user,
        tenancy::settings::get_settings, tenancy::settings::update_settings,
        instances::routes::create, instances::routes::list, instances::routes::get, instances::routes::update, instances::routes::delete,
        instances::routes::health,
        contacts::routes::create, contacts::routes::list, contacts::routes::get, contacts::routes::update, contacts::routes::delete,
        contacts::routes::bulk, contacts::import::import, contacts::optout::opt_in,
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
        campaigns::runs::list, campaigns::copies::duplicate, campaigns::copies::recipients_csv, campaigns::copies::logs_csv,
        messages::routes::send, messages::routes::bulk, messages::routes::get, messages::routes::list, messages::routes::cancel,
        gateway::routes::evolution_webhook, gateway::routes::instance_state, gateway::routes::instance_connect,
        gateway::routes::instance_webhook, gateway::routes::instance_logout,
        webhooks::routes::create, webhooks::routes::list, webhooks::routes::get, webhooks::routes::delete,
        webhooks::routes::deliveries,
    ),
    components(schemas(crate::error::Problem, crate::error::FieldError)),
    tags(
        (name = "auth", description = "Sign up, sign in, the caller."),
        (name = "users", description = "Users of the caller's tenant (admins only)."),
        (name = "settings", description = "The tenant's settings, such as its opt-out keywords."),
        (name = "instances", description = "WhatsApp numbers on an Evolution gateway."),
        (name = "contacts", description = "Contacts, one by one, in bulk or from CSV."),
        (name = "groups", description = "Static lists of contacts."),
        (name = "tags", description = "Labels on contacts; dynamic audiences."),
        (name = "templates", description = "Reusable message texts."),
        (name = "campaigns", description = "Campaigns, their lifecycle, statistics, recipients and logs."),
        (name = "messages", description = "One-off messages (the transactional path), sent by the campaign engine."),
        (name = "holidays", description = "Shipped calendars and the tenant's own dates."),
        (name = "dashboard", description = "Per-tenant figures and the queue."),
        (name = "audit", description = "Who did what and when (admins only)."),
        (name = "webhooks", description = "Events from the gateway."),
        (name = "webhook subscriptions", description = "Signed deliveries of Arauto's events to the tenant's own systems (admins only)."),
        (name = "health", description = "Liveness and readiness."),
    ),
    modifiers(&BearerAuth, &ProblemResponses),
)]
pub struct ApiDoc;

/// Health routes live outside `/api/v1`; they are documented in a second document merged
/// with a server of `/`.
#[derive(OpenApi)]
#[openapi(paths(api::health::health, api::health::ready, crate::observability::metrics_route))]
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

/// An error status an operation may answer, and when.
struct ErrorStatus(u16, &'static str);

const MALFORMED: ErrorStatus = ErrorStatus(
    400,
    "Malformed request: the body is not well-formed (JSON syntax, unreadable CSV header).",
);
const UNAUTHORIZED: ErrorStatus = ErrorStatus(401, "No bearer token, or an invalid or expired one.");
const FORBIDDEN: ErrorStatus = ErrorStatus(403, "The caller's role may not do this (admins only).");
const NOT_FOUND: ErrorStatus = ErrorStatus(
    404,
    "No such resource in the caller's tenant (another tenant's id answers the same).",
);
const CONFLICT: ErrorStatus = ErrorStatus(
    409,
    "Conflict or invalid state transition; `current_status` gives the resource's status when there is one.",
);
const TOO_LARGE: ErrorStatus = ErrorStatus(413, "The body is larger than the server accepts.");
const UNSUPPORTED: ErrorStatus = ErrorStatus(415, "Wrong content type for the body.");
const INVALID: ErrorStatus = ErrorStatus(
    422,
    "Invalid input: `errors` names each offending field by its JSON path.",
);
const TOO_MANY: ErrorStatus = ErrorStatus(
    429,
    "Too many attempts from this client or for this account; retry after `Retry-After` seconds.",
);
const INTERNAL: ErrorStatus = ErrorStatus(500, "Unexpected fault; the body is opaque (the cause is logged).");
const BAD_GATEWAY: ErrorStatus = ErrorStatus(
    502,
    "The WhatsApp gateway failed or refused the call; `detail` carries the gateway's message.",
);
const UNAVAILABLE: ErrorStatus = ErrorStatus(
    503,
    "Overloaded or a dependency is unreachable; retry after `Retry-After` seconds.",
);

/// What an operation does that decides the errors it can answer: it needs a token, reads a
/// body, names a resource in its path, reads query parameters, touches the database.
struct OperationKind {
    authenticated: bool,
    body: bool,
    path_id: bool,
    query: bool,
    database: bool,
}

impl OperationKind {
    fn of(path: &str, op: &Operation) -> Self {
        let params = op.parameters.as_deref().unwrap_or_default();
        Self {
            authenticated: op.security.as_ref().is_some_and(|s| !s.is_empty()),
            body: op.request_body.is_some(),
            path_id: params.iter().any(|p| p.parameter_in == ParameterIn::Path),
            query: params.iter().any(|p| p.parameter_in == ParameterIn::Query),
            // Only liveness and the metrics answer without Postgres (no possible 503).
            database: path != "/health" && path != "/metrics",
        }
    }

    /// The errors every operation of this kind can answer (extractors, `AppError`'s
    /// mapping of database errors, the route's own lookups).
    fn errors(&self) -> Vec<ErrorStatus> {
        let mut errors = vec![];
        if self.body {
            errors.extend([MALFORMED, TOO_LARGE, UNSUPPORTED, INVALID]);
        }
        if self.query {
            errors.push(INVALID);
        }
        if self.authenticated {
            errors.push(UNAUTHORIZED);
        }
        if self.path_id {
            errors.push(NOT_FOUND);
        }
        errors.push(INTERNAL);
        if self.database {
            errors.push(UNAVAILABLE);
        }
        errors
    }
}

/// A problem+json answer: the one [`Problem`](crate::error::Problem) schema, with
/// `Retry-After` on 503.
fn problem_response(status: u16, description: &str) -> Response {
    let mut response = Response::new(description);
    response.content.insert(
        "application/problem+json".into(),
        Content::new(Some(Ref::from_schema_name("Problem"))),
    );
    if status == 503 || status == 429 {
        response.headers.insert(
            "Retry-After".into(),
            HeaderBuilder::new()
                .schema(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                )
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response
}

fn standard_description(status: u16) -> &'static str {
    [
        MALFORMED,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        CONFLICT,
        TOO_LARGE,
        UNSUPPORTED,
        INVALID,
        TOO_MANY,
        INTERNAL,
        BAD_GATEWAY,
        UNAVAILABLE,
    ]
    .into_iter()
    .find(|e| e.0 == status)
    .map_or("Error.", |e| e.1)
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

/// Adds to every operation the errors its kind can answer, and makes every error answer
/// (these and the ones a handler declares) an `application/problem+json` `Problem` with
/// a description. Declared successes are left as they are.
struct ProblemResponses;

impl Modify for ProblemResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in operations_mut(item) {
                let errors = OperationKind::of(path, op).errors();
                let responses = &mut op.responses.responses;
                for ErrorStatus(status, description) in errors {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| RefOr::T(problem_response(status, description)));
                }
                for (status, response) in responses.iter_mut() {
                    let Ok(code) = status.parse::<u16>() else { continue };
                    if code >= 400 {
                        let description = match response {
                            RefOr::T(r) if !r.description.is_empty() => r.description.clone(),
                            _ => standard_description(code).to_owned(),
                        };
                        *response = RefOr::T(problem_response(code, &description));
                    }
                }
            }
        }
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
    let mut root = RootDoc::openapi();
    ProblemResponses.modify(&mut root);
    doc.merge(root);
    doc
}

/// Each documented path template (`/api/v1/contacts/{id}`) with its methods.
fn routes() -> &'static [(Vec<String>, Vec<Method>)] {
    static ROUTES: OnceLock<Vec<(Vec<String>, Vec<Method>)>> = OnceLock::new();
    ROUTES.get_or_init(|| {
        document()
            .paths
            .paths
            .into_iter()
            .map(|(path, item)| {
                let methods = [
                    (item.get.is_some(), Method::GET),
                    (item.put.is_some(), Method::PUT),
                    (item.post.is_some(), Method::POST),
                    (item.delete.is_some(), Method::DELETE),
                    (item.patch.is_some(), Method::PATCH),
                ]
                .into_iter()
                .filter_map(|(has, m)| has.then_some(m))
                .collect();
                (path.split('/').map(str::to_owned).collect(), methods)
            })
            .collect()
    })
}

/// The methods the document lists for a request path (`/api/v1/contacts/0b7…`), or `None`
/// when no documented route has that path: a 405 (with `Allow`) rather than a 404 for a
/// known path asked with another method.
pub fn allowed_methods(path: &str) -> Option<&'static [Method]> {
    let segments: Vec<&str> = path.split('/').collect();
    routes().iter().find_map(|(template, methods)| {
        let matches = template.len() == segments.len()
            && template
                .iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()));
        matches.then_some(methods.as_slice())
    })
}

pub use super::schema::string_enum;

/// The methods of a documented path without parameters equal to `path`
/// (`/api/v1/contacts/bulk`), if there is one.
pub fn literal_route_methods(path: &str) -> Option<&'static [Method]> {
    routes().iter().find_map(|(template, methods)| {
        let literal =
            template.len() == path.split('/').count() && template.iter().zip(path.split('/')).all(|(t, s)| t == s);
        literal.then_some(methods.as_slice())
    })
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/docs", "/docs/").permanent())
        .service(SwaggerUi::new("/docs/{_:.*}").url("/api/v1/openapi.json", document()));
}
