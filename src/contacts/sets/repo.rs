//! The statements of named sets of contacts (groups, tags): one implementation for both
//! kinds, scoped by `tenant_id` first. Table and column names are the kind's constants,
//! never input.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::json;
use uuid::Uuid;

use crate::contacts::repo::{self, Owned};
use crate::db::stmt;
use crate::error::{AppError, AppResult};
use crate::pagination::Pagination;

/// One kind of set: its table, its membership table and its own text column.
pub struct SetKind {
    /// `group` or `tag`.
    pub entity: &'static str,
    pub table: &'static str,
    pub members: &'static str,
    pub member_column: &'static str,
    /// The kind's own text column: `description` or `color`.
    pub extra: &'static str,
    /// The key of a campaign's `audience` that lists sets of this kind.
    pub audience_key: &'static str,
}

/// Groups: static lists of contacts.
pub const GROUPS: SetKind = SetKind {
    entity: "group",
    table: "groups",
    members: "group_members",
    member_column: "group_id",
    extra: "description",
    audience_key: "group_ids",
};

/// Tags: labels on contacts.
pub const TAGS: SetKind = SetKind {
    entity: "tag",
    table: "tags",
    members: "contact_tags",
    member_column: "tag_id",
    extra: "color",
    audience_key: "tag_ids",
};

/// A set with its own text (`extra`) and how many contacts it holds.
#[derive(Debug, FromQueryResult)]
pub struct SetRow {
    pub id: Uuid,
    pub name: String,
    pub extra: Option<String>,
    pub contact_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Most contact ids one membership change may name.
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

    /// The tenant's set `id`; 404 for another tenant's id.
    pub async fn get(&self, db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> AppResult<SetRow> {
        SetRow::find_by_statement(stmt(
            format!("{} WHERE s.tenant_id = $1 AND s.id = $2", self.select()),
            vec![tenant_id.into(), id.into()],
        ))
        .one(db)
        .await?
        .ok_or_else(|| AppError::not_found(self.entity))
    }

    /// One page of the tenant's sets by name (case-insensitive), and how many it has.
    pub async fn list(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        page: &Pagination,
    ) -> AppResult<(Vec<SetRow>, u64)> {
        let total = crate::db::count(
            db,
            format!("SELECT count(*) AS n FROM {} WHERE tenant_id = $1", self.table),
            vec![tenant_id.into()],
        )
        .await?
        .max(0) as u64;
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

    /// Inserts a set of the tenant, created `now`. 409 when it has one of that name.
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

    /// Renames set `id` or changes its own text, stamped `now`; `extra`: absent keeps it,
    /// `Some(None)` clears it. 404 for another tenant's id; 409 on a taken name.
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

    /// Names (the first 5, oldest first) of the tenant's campaigns not finished (neither
    /// `completed` nor `cancelled`) whose audience lists set `id`: they still resolve it (at
    /// start, or at each run of a recurring one).
    pub async fn unfinished_campaigns_naming(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        id: Uuid,
    ) -> Result<Vec<String>, sea_orm::DbErr> {
        #[derive(FromQueryResult)]
        struct Named {
            name: String,
        }
        let rows = Named::find_by_statement(stmt(
            format!(
                "SELECT name FROM campaigns WHERE tenant_id = $1 AND status NOT IN ('completed', 'cancelled') \
                 AND audience -> '{}' @> jsonb_build_array($2::text) ORDER BY created_at, id LIMIT 5",
                self.audience_key
            ),
            vec![tenant_id.into(), id.to_string().into()],
        ))
        .all(db)
        .await?;
        Ok(rows.into_iter().map(|r| r.name).collect())
    }

    /// Deletes the set row (its memberships go with it).
    pub async fn delete(&self, db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> Result<(), sea_orm::DbErr> {
        db.execute(stmt(
            format!("DELETE FROM {} WHERE tenant_id = $1 AND id = $2", self.table),
            vec![tenant_id.into(), id.into()],
        ))
        .await?;
        Ok(())
    }

    /// Adds (or removes) the tenant's contacts to the set; any id that is not the tenant's
    /// contact is a 422 and nothing is written. Returns how many memberships changed.
    pub async fn change_members(
        &self,
        db: &impl ConnectionTrait,
        tenant_id: Uuid,
        id: Uuid,
        contact_ids: &[Uuid],
        add: bool,
    ) -> AppResult<u64> {
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
        Ok(done.rows_affected())
    }
}
