//! Groups and tags are both named sets of contacts; this is their one implementation: the
//! statements in [`repo`], the audited delete in [`service`], the routes in [`set_routes`].

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub mod repo;
pub mod service;

pub use repo::{SetKind, SetRow, GROUPS, TAGS};

/// `{contact_ids}` for adding to or removing from a group or tag.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contact_ids": ["4f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f"]}))]
pub struct MembersRequest {
    /// Up to 10,000 contact ids of the caller's tenant.
    pub contact_ids: Vec<Uuid>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct MembersResult {
    /// How many memberships changed.
    pub changed: u64,
}

/// The routes of one kind of set (groups, tags): CRUD plus adding and removing contacts.
/// `$extra` is the kind's own optional text field and `$parse_extra` its validation; `$One`
/// and `$Many` name the kind in operation ids (`createGroup`, `listGroups`).
#[rustfmt::skip]
macro_rules! set_routes {
    (
        kind: $kind:path, tag: $tag:tt, what: $what:tt, one: $One:tt, many: $Many:tt,
        collection: $collection:tt, item: $item:tt, members: $members:tt,
        view: $View:ident, create: $Create:ident, update: $Update:ident,
        extra: $extra:ident, parse_extra: $parse_extra:path
    ) => {
        use actix_web::{delete, get, patch, post, web, HttpResponse};
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Serialize};
        use utoipa::ToSchema;
        use uuid::Uuid;

        use $crate::api::extract::{nullable, ApiJson, BulkJson, Page, Pagination};
        use $crate::contacts::sets::{MembersRequest, MembersResult, SetRow};
        use $crate::error::{AppResult, Fields};
        use $crate::state::AppState;
        use $crate::tenancy::{auth::AuthUser, domain::parse_name};

        #[derive(Debug, Serialize, ToSchema)]
        pub struct $View {
            pub id: Uuid,
            pub name: String,
            pub $extra: Option<String>,
            /// How many contacts it holds.
            pub contact_count: i64,
            pub created_at: DateTime<Utc>,
            pub updated_at: DateTime<Utc>,
        }

        impl From<SetRow> for $View {
            fn from(r: SetRow) -> Self {
                Self {
                    id: r.id,
                    name: r.name,
                    $extra: r.extra,
                    contact_count: r.contact_count,
                    created_at: r.created_at,
                    updated_at: r.updated_at,
                }
            }
        }

        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $Create {
            #[schema(max_length = 200)]
            pub name: String,
            pub $extra: Option<String>,
        }

        #[derive(Debug, Deserialize, ToSchema)]
        #[serde(deny_unknown_fields)]
        pub struct $Update {
            #[schema(max_length = 200)]
            pub name: Option<String>,
            /// `null` clears it.
            #[serde(default, deserialize_with = "nullable")]
            #[schema(value_type = Option<String>)]
            pub $extra: Option<Option<String>>,
        }

        /// Creates one; names are unique per tenant (case-insensitive).
        #[utoipa::path(operation_id = concat!("create", $One), tag = $tag, request_body = $Create, responses(
            (status = 201, body = $View),
            (status = 409, body = $crate::error::Problem),
            (status = 422, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[post($collection)]
        pub async fn create(
            state: web::Data<AppState>,
            user: AuthUser,
            body: ApiJson<$Create>,
        ) -> AppResult<HttpResponse> {
            let mut f = Fields::default();
            let name = f.check("name", parse_name(&body.0.name, $crate::text::MAX_NAME));
            let extra = body
                .0
                .$extra
                .as_deref()
                .and_then(|v| f.check(stringify!($extra), $parse_extra(v)));
            f.finish()?;
            let row = $kind
                .create(
                    &state.db,
                    user.tenant_id,
                    name.unwrap_or_default(),
                    extra,
                    state.clock.now(),
                )
                .await?;
            Ok(HttpResponse::Created().json($View::from(row)))
        }

        /// The tenant's, by name.
        #[utoipa::path(operation_id = concat!("list", $Many), tag = $tag, params(Pagination), responses(
            (status = 200, body = Page<$View>),
            (status = 422, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[get($collection)]
        pub async fn list(state: web::Data<AppState>, user: AuthUser, page: Pagination) -> AppResult<HttpResponse> {
            let (rows, total) = $kind.list(&state.db, user.tenant_id, &page).await?;
            Ok(HttpResponse::Ok().json(page.page_of(rows.into_iter().map($View::from).collect(), total)))
        }

        /// One, with its contact count.
        #[utoipa::path(operation_id = concat!("get", $One), tag = $tag, params(("id" = Uuid, Path)), responses(
            (status = 200, body = $View),
            (status = 404, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[get($item)]
        pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
            Ok(HttpResponse::Ok().json($View::from($kind.get(&state.db, user.tenant_id, *id).await?)))
        }

        /// Renames it or changes its own field.
        #[utoipa::path(operation_id = concat!("update", $One), tag = $tag, request_body = $Update, params(("id" = Uuid, Path)), responses(
            (status = 200, body = $View),
            (status = 404, body = $crate::error::Problem),
            (status = 409, body = $crate::error::Problem),
            (status = 422, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[patch($item)]
        pub async fn update(
            state: web::Data<AppState>,
            user: AuthUser,
            id: web::Path<Uuid>,
            body: ApiJson<$Update>,
        ) -> AppResult<HttpResponse> {
            let mut f = Fields::default();
            let name = body
                .0
                .name
                .as_deref()
                .and_then(|n| f.check("name", parse_name(n, $crate::text::MAX_NAME)));
            let extra = match body.0.$extra {
                Some(Some(v)) => f.check(stringify!($extra), $parse_extra(&v)).map(Some),
                Some(None) => Some(None),
                None => None,
            };
            f.finish()?;
            let row = $kind
                .update(&state.db, user.tenant_id, *id, name, extra, state.clock.now())
                .await?;
            Ok(HttpResponse::Ok().json($View::from(row)))
        }

        /// Deletes it; its contacts stay. 409 while a campaign not finished (neither
        /// completed nor cancelled) has it in its audience.
        #[utoipa::path(operation_id = concat!("delete", $One), tag = $tag, params(("id" = Uuid, Path)), responses(
            (status = 204),
            (status = 404, body = $crate::error::Problem),
            (status = 409, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[delete($item)]
        pub async fn delete(
            state: web::Data<AppState>,
            user: AuthUser,
            id: web::Path<Uuid>,
        ) -> AppResult<HttpResponse> {
            $crate::contacts::sets::service::delete(&state.db, &$kind, &user, *id, state.clock.now()).await?;
            Ok(HttpResponse::NoContent().finish())
        }

        /// Adds contacts of the tenant.
        #[utoipa::path(operation_id = concat!("add", $One, "Contacts"), tag = $tag, request_body = MembersRequest, params(("id" = Uuid, Path)), responses(
            (status = 200, body = MembersResult),
            (status = 404, body = $crate::error::Problem),
            (status = 422, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[post($members)]
        pub async fn add_contacts(
            state: web::Data<AppState>,
            user: AuthUser,
            id: web::Path<Uuid>,
            body: BulkJson<MembersRequest>,
        ) -> AppResult<HttpResponse> {
            let changed = $kind
                .change_members(&state.db, user.tenant_id, *id, &body.0.contact_ids, true)
                .await?;
            Ok(HttpResponse::Ok().json(MembersResult { changed }))
        }

        /// Removes contacts.
        #[utoipa::path(operation_id = concat!("remove", $One, "Contacts"), tag = $tag, request_body = MembersRequest, params(("id" = Uuid, Path)), responses(
            (status = 200, body = MembersResult),
            (status = 404, body = $crate::error::Problem),
            (status = 422, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[delete($members)]
        pub async fn remove_contacts(
            state: web::Data<AppState>,
            user: AuthUser,
            id: web::Path<Uuid>,
            body: BulkJson<MembersRequest>,
        ) -> AppResult<HttpResponse> {
            let changed = $kind
                .change_members(&state.db, user.tenant_id, *id, &body.0.contact_ids, false)
                .await?;
            Ok(HttpResponse::Ok().json(MembersResult { changed }))
        }

        pub fn configure(cfg: &mut web::ServiceConfig) {
            cfg.service(create)
                .service(list)
                .service(get)
                .service(update)
                .service(delete)
                .service(add_contacts)
                .service(remove_contacts);
        }
    };
}
pub(crate) use set_routes;
