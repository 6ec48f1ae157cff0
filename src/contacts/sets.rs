//! Groups and tags are both named sets of contacts; this is their one implementation.
//! Table names below are constants, never input.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::repo::{self, Owned};
use crate::api::extract::Pagination;
use crate::audit::{self, Event};
use crate::db::stmt;
use crate::error::{AppError, AppResult};
use crate::tenancy::auth::AuthUser;

pub struct SetKind {
    /// `group` or `tag`.
    pub entity: &'static str,
    pub table: &'static str,
    pub members: &'static str,
    pub member_column: &'static str,
    /// The kind's own text column: `description` or `color`.
    pub extra: &'static str,
}

pub const GROUPS: SetKind = SetKind {
    entity: "group",
    table: "groups",
    members: "group_members",
    member_column: "group_id",
    extra: "description",
};

pub const TAGS: SetKind = SetKind {
    entity: "tag",
    table: "tags",
    members: "contact_tags",
    member_column: "tag_id",
    extra: "color",
};

#[derive(Debug, FromQueryResult)]
pub struct SetRow {
    pub id: Uuid,
    pub name: String,
    pub extra: Option<String>,
    pub contact_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

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

const MAX_MEMBERS_PER_CALL: usize = 10_000;

impl SetKind {
    fn select(&self) -> String {
        format!(
            "SELECT s.id, s.name, s.{extra} AS extra, s.created_at, s.updated_at, \
             (SELECT count(*) FROM {members} m WHERE m.tenant_id = s.tenant_id AND m.{col} = s.id) AS contact_count \
             FROM {table} s",
            extra = self.extra,
            members = self.members,
            col = self.member_column,
            table = self.table
        )
    }

    pub async fn get(&self, db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> AppResult<SetRow> {
        SetRow::find_by_statement(stmt(
            format!("{} WHERE s.tenant_id = $1 AND s.id = $2", self.select()),
            vec![tenant_id.into(), id.into()],
        ))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found(self.entity))
    }

    pub async fn list(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        page: &Pagination,
    ) -> AppResult<(Vec<SetRow>, u64)> {
        #[derive(FromQueryResult)]
        struct Count {
            n: i64,
        }
        let total = Count::find_by_statement(stmt(
            format!("SELECT count(*) AS n FROM {} WHERE tenant_id = $1", self.table),
            vec![tenant_id.into()],
        ))
        .one(db)
        .await?
        .map_or(0, |c| c.n as u64);
        let items = SetRow::find_by_statement(stmt(
            format!(
                "{} WHERE s.tenant_id = $1 ORDER BY lower(s.name), s.id LIMIT $2 OFFSET $3",
                self.select()
            ),
            vec![
                tenant_id.into(),
                (page.per_page as i64).into(),
                (page.offset() as i64).into(),
            ],
        ))
        .all(db)
        .await?;
        Ok((items, total))
    }

    pub async fn create(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        name: String,
        extra: Option<String>,
        now: DateTime<Utc>,
    ) -> AppResult<SetRow> {
        let id = Uuid::new_v4();
        db.execute(stmt(
            format!(
                "INSERT INTO {} (id, tenant_id, name, {}, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
                self.table, self.extra
            ),
            vec![id.into(), tenant_id.into(), name.into(), extra.into(), now.into()],
        ))
        .await?;
        self.get(db, tenant_id, id).await
    }

    /// `extra`: absent keeps it, `Some(None)` clears it.
    pub async fn update(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        id: Uuid,
        name: Option<String>,
        extra: Option<Option<String>>,
        now: DateTime<Utc>,
    ) -> AppResult<SetRow> {
        let current = self.get(db, tenant_id, id).await?;
        let extra = extra.unwrap_or(current.extra);
        db.execute(stmt(
            format!(
                "UPDATE {} SET name = $3, {} = $4, updated_at = $5 WHERE tenant_id = $1 AND id = $2",
                self.table, self.extra
            ),
            vec![
                tenant_id.into(),
                id.into(),
                name.unwrap_or(current.name).into(),
                extra.into(),
                now.into(),
            ],
        ))
        .await?;
        self.get(db, tenant_id, id).await
    }

    pub async fn delete<C: TransactionTrait + ConnectionTrait>(
        &self,
        db: &C,
        user: &AuthUser,
        id: Uuid,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<()> {
        let current = self.get(db, user.tenant_id, id).await?;
        let txn = db.begin().await?;
        txn.execute(stmt(
            format!("DELETE FROM {} WHERE tenant_id = $1 AND id = $2", self.table),
            vec![user.tenant_id.into(), id.into()],
        ))
        .await?;
        let action = format!("{}.delete", self.entity);
        let event = Event::new(&action, self.entity, id).with(json!({"name": current.name}));
        audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Adds (or removes) the tenant's contacts to the set; any id that is not the tenant's
    /// contact is a 422 and nothing is written.
    pub async fn change_members(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        id: Uuid,
        contact_ids: &[Uuid],
        add: bool,
    ) -> AppResult<MembersResult> {
        self.get(db, tenant_id, id).await?;
        if contact_ids.len() > MAX_MEMBERS_PER_CALL {
            return Err(AppError::field(
                "contact_ids",
                format!("must have at most {MAX_MEMBERS_PER_CALL} ids"),
            ));
        }
        let foreign = repo::foreign_ids(db, tenant_id, Owned::Contacts, "contact_ids", contact_ids).await?;
        if !foreign.is_empty() {
            return Err(AppError::Validation(foreign));
        }
        let ids = json!(contact_ids);
        let sql = if add {
            format!(
                "INSERT INTO {m} (tenant_id, {col}, contact_id) \
                 SELECT $1, $2, c::uuid FROM jsonb_array_elements_text($3::jsonb) AS c ON CONFLICT DO NOTHING",
                m = self.members,
                col = self.member_column
            )
        } else {
            format!(
                "DELETE FROM {m} WHERE tenant_id = $1 AND {col} = $2 \
                 AND contact_id IN (SELECT c::uuid FROM jsonb_array_elements_text($3::jsonb) AS c)",
                m = self.members,
                col = self.member_column
            )
        };
        let done = db
            .execute(stmt(sql, vec![tenant_id.into(), id.into(), ids.into()]))
            .await?;
        Ok(MembersResult {
            changed: done.rows_affected(),
        })
    }
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

        /// Deletes it; its contacts stay.
        #[utoipa::path(operation_id = concat!("delete", $One), tag = $tag, params(("id" = Uuid, Path)), responses(
            (status = 204),
            (status = 404, body = $crate::error::Problem),
        ), security(("bearer" = [])))]
        #[delete($item)]
        pub async fn delete(
            state: web::Data<AppState>,
            user: AuthUser,
            id: web::Path<Uuid>,
        ) -> AppResult<HttpResponse> {
            $kind.delete(&state.db, &user, *id, state.clock.now()).await?;
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
            let done = $kind
                .change_members(&state.db, user.tenant_id, *id, &body.0.contact_ids, true)
                .await?;
            Ok(HttpResponse::Ok().json(done))
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
            let done = $kind
                .change_members(&state.db, user.tenant_id, *id, &body.0.contact_ids, false)
                .await?;
            Ok(HttpResponse::Ok().json(done))
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
