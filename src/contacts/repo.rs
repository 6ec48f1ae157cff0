//! Contact queries and writes. Every statement is scoped by `tenant_id` first.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, Value as DbValue};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;
use uuid::Uuid;

use super::domain::NewContact;
use crate::api::cursor::{CursorPage, Keyed, Keyset, Total, COUNT_CAP};
use crate::db::{bounded_count, stmt};
use crate::error::FieldError;

/// A contact as the API shows it.
#[derive(Debug, Serialize, ToSchema, FromQueryResult)]
pub struct ContactView {
    pub id: Uuid,
    pub phone: String,
    pub name: String,
    #[schema(value_type = super::domain::ContactFields)]
    pub fields: Value,
    #[schema(value_type = Vec<Uuid>)]
    pub tag_ids: Value,
    pub opted_out_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `GET /contacts` filters.
#[derive(Debug, Default, Clone, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ContactFilter {
    /// Part of the name (case-insensitive) or, when written as a phone (digits, spaces,
    /// `+-().`), of the phone digits.
    #[param(max_length = 1000)]
    pub q: Option<String>,
    pub tag_id: Option<Uuid>,
    pub group_id: Option<Uuid>,
}

const VIEW_COLUMNS: &str = "c.id, c.phone, c.name, c.fields, c.opted_out_at, c.created_at, c.updated_at, \
    COALESCE((SELECT jsonb_agg(ct.tag_id ORDER BY ct.tag_id) FROM contact_tags ct \
              WHERE ct.tenant_id = c.tenant_id AND ct.contact_id = c.id), '[]'::jsonb) AS tag_ids";

impl ContactFilter {
    /// The search text, when there is one (blank counts as none).
    fn query(&self) -> Option<&str> {
        self.q.as_deref().map(str::trim).filter(|q| !q.is_empty())
    }

    /// True when nothing filters: every contact of the tenant is listed.
    pub fn is_empty(&self) -> bool {
        self.query().is_none() && self.tag_id.is_none() && self.group_id.is_none()
    }
}

/// The WHERE clause of a filtered contact query, with its values ($1 is the tenant).
fn filter_clause(tenant_id: Uuid, f: &ContactFilter) -> (String, Vec<DbValue>) {
    let mut sql = String::from("c.tenant_id = $1");
    let mut values: Vec<DbValue> = vec![tenant_id.into()];
    if let Some(q) = f.query() {
        let escaped = q.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        values.push(format!("%{escaped}%").into());
        let name_param = values.len();
        // Phone digits only when `q` is written as a phone (digits, spaces, `+-().`): the
        // digits of "Cliente1" are part of a name, and would match most phones.
        let phone_like = q.chars().all(|c| c.is_ascii_digit() || " +-().".contains(c));
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() || !phone_like {
            sql += &format!(" AND c.name ILIKE ${name_param}");
        } else {
            values.push(format!("%{digits}%").into());
            sql += &format!(" AND (c.name ILIKE ${name_param} OR c.phone LIKE ${})", values.len());
        }
    }
    if let Some(tag) = f.tag_id {
        values.push(tag.into());
        sql += &format!(
            " AND EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.tenant_id = $1 AND ct.tag_id = ${} AND ct.contact_id = c.id)",
            values.len()
        );
    }
    if let Some(group) = f.group_id {
        values.push(group.into());
        sql += &format!(
            " AND EXISTS (SELECT 1 FROM group_members gm WHERE gm.tenant_id = $1 AND gm.group_id = ${} AND gm.contact_id = c.id)",
            values.len()
        );
    }
    (sql, values)
}

/// The sort key of `GET /contacts` (creation order, then id): what its cursors encode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContactKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyed for ContactView {
    type Key = ContactKey;

    fn key(&self) -> ContactKey {
        ContactKey {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// A page of the tenant's contacts in creation order, after the cursor or at the page's
/// offset. `total`: without filters, the tenant's kept total (`contact_counts`, exact);
/// with `q`, `tag_id` or `group_id`, the matches counted up to [`COUNT_CAP`].
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    filter: &ContactFilter,
    page: &Keyset<ContactKey>,
) -> Result<CursorPage<ContactView>, sea_orm::DbErr> {
    let (mut clause, mut values) = filter_clause(tenant_id, filter);
    let total = if filter.is_empty() {
        Total::Exact(super::counts::of(db, tenant_id).await?)
    } else {
        let from = format!("FROM contacts c WHERE {clause}");
        Total::bounded(bounded_count(db, &from, values.clone(), COUNT_CAP).await?, COUNT_CAP)
    };
    if let Some(after) = &page.after {
        values.push(after.created_at.into());
        values.push(after.id.into());
        clause += &format!(" AND (c.created_at, c.id) > (${}, ${})", values.len() - 1, values.len());
    }
    values.push(page.limit().into());
    values.push(page.offset().into());
    let n = values.len();
    let items = ContactView::find_by_statement(stmt(
        format!(
            "SELECT {VIEW_COLUMNS} FROM contacts c WHERE {clause} ORDER BY c.created_at, c.id LIMIT ${} OFFSET ${n}",
            n - 1
        ),
        values,
    ))
    .all(db)
    .await?;
    Ok(page.page_of(items, total))
}

pub async fn get(db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> Result<Option<ContactView>, sea_orm::DbErr> {
    ContactView::find_by_statement(stmt(
        format!("SELECT {VIEW_COLUMNS} FROM contacts c WHERE c.tenant_id = $1 AND c.id = $2"),
        vec![tenant_id.into(), id.into()],
    ))
    .one(db)
    .await
}

#[derive(FromQueryResult)]
struct Upserted {
    inserted: bool,
}

/// Inserts or updates contacts by phone: a new name replaces the old one (an empty name
/// keeps it), fields are merged, tags are added. Phones must be distinct within `batch`.
/// Returns (created, updated).
pub async fn upsert_batch(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    batch: &[NewContact],
    now: DateTime<Utc>,
) -> Result<(u64, u64), sea_orm::DbErr> {
    if batch.is_empty() {
        return Ok((0, 0));
    }
    let rows: Vec<Value> = batch
        .iter()
        .map(|c| json!({"id": Uuid::new_v4(), "phone": c.phone.as_str(), "name": c.name, "fields": c.fields}))
        .collect();
    let results = Upserted::find_by_statement(stmt(
        "INSERT INTO contacts (id, tenant_id, phone, name, fields, created_at, updated_at) \
         SELECT x.id, $1, x.phone, x.name, x.fields, $3, $3 \
         FROM jsonb_to_recordset($2::jsonb) AS x(id uuid, phone text, name text, fields jsonb) \
         ON CONFLICT (tenant_id, phone) DO UPDATE SET \
           name = CASE WHEN EXCLUDED.name = '' THEN contacts.name ELSE EXCLUDED.name END, \
           fields = contacts.fields || EXCLUDED.fields, \
           updated_at = EXCLUDED.updated_at \
         RETURNING (xmax = 0) AS inserted",
        vec![tenant_id.into(), Value::Array(rows).into(), now.into()],
    ))
    .all(db)
    .await?;
    let created = results.iter().filter(|r| r.inserted).count() as u64;
    let tagged: Vec<Value> = batch
        .iter()
        .flat_map(|c| {
            c.tag_ids
                .iter()
                .map(|t| json!({"phone": c.phone.as_str(), "tag_id": t}))
        })
        .collect();
    if !tagged.is_empty() {
        db.execute(stmt(
            "INSERT INTO contact_tags (tenant_id, contact_id, tag_id) \
             SELECT $1, c.id, t.tag_id FROM jsonb_to_recordset($2::jsonb) AS t(phone text, tag_id uuid) \
             JOIN contacts c ON c.tenant_id = $1 AND c.phone = t.phone \
             ON CONFLICT DO NOTHING",
            vec![tenant_id.into(), Value::Array(tagged).into()],
        ))
        .await?;
    }
    Ok((created, results.len() as u64 - created))
}

/// Replaces a contact's tags.
pub async fn set_tags(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact_id: Uuid,
    tag_ids: &[Uuid],
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "DELETE FROM contact_tags WHERE tenant_id = $1 AND contact_id = $2",
        vec![tenant_id.into(), contact_id.into()],
    ))
    .await?;
    db.execute(stmt(
        "INSERT INTO contact_tags (tenant_id, contact_id, tag_id) \
         SELECT $1, $2, t::uuid FROM jsonb_array_elements_text($3::jsonb) AS t ON CONFLICT DO NOTHING",
        vec![tenant_id.into(), contact_id.into(), json!(tag_ids).into()],
    ))
    .await?;
    Ok(())
}

#[derive(FromQueryResult)]
struct IdRow {
    id: Uuid,
}

/// Tables whose ids clients may reference in bodies.
#[derive(Debug, Clone, Copy)]
pub enum Owned {
    Contacts,
    Groups,
    Tags,
}

impl Owned {
    fn table(self) -> &'static str {
        match self {
            Owned::Contacts => "contacts",
            Owned::Groups => "groups",
            Owned::Tags => "tags",
        }
    }

    fn singular(self) -> &'static str {
        match self {
            Owned::Contacts => "contact",
            Owned::Groups => "group",
            Owned::Tags => "tag",
        }
    }
}

/// The ids among `ids` that are not the tenant's rows of `table`.
pub async fn missing_ids(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    table: Owned,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let found: HashSet<Uuid> = IdRow::find_by_statement(stmt(
        format!(
            "SELECT id FROM {} WHERE tenant_id = $1 AND id IN (SELECT t::uuid FROM jsonb_array_elements_text($2::jsonb) AS t)",
            table.table()
        ),
        vec![tenant_id.into(), json!(ids).into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|r| r.id)
    .collect();
    Ok(ids.iter().filter(|id| !found.contains(id)).copied().collect())
}

/// One 422 error per id of `ids` that is not the tenant's, named `field[i]`.
pub async fn foreign_ids(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    table: Owned,
    field: &str,
    ids: &[Uuid],
) -> Result<Vec<FieldError>, sea_orm::DbErr> {
    let missing = missing_ids(db, tenant_id, table, ids).await?;
    Ok(ids
        .iter()
        .enumerate()
        .filter(|(_, id)| missing.contains(id))
        .map(|(i, id)| FieldError::new(format!("{field}[{i}]"), format!("no such {}: {id}", table.singular())))
        .collect())
}

/// Keeps the last occurrence of each phone; returns how many earlier ones were dropped.
pub fn dedup_by_phone(batch: &mut Vec<NewContact>) -> u64 {
    let mut last: HashMap<String, usize> = HashMap::with_capacity(batch.len());
    for (i, c) in batch.iter().enumerate() {
        last.insert(c.phone.as_str().to_owned(), i);
    }
    let before = batch.len();
    let mut i = 0;
    batch.retain(|c| {
        let keep = last.get(c.phone.as_str()) == Some(&i);
        i += 1;
        keep
    });
    (before - batch.len()) as u64
}

#[derive(FromQueryResult)]
struct OptedOut {
    id: Uuid,
    changed: bool,
}

/// Marks the tenant's contact whose phone is `phone` (canonical digits) opted out at `at`;
/// an earlier opt-out keeps its instant. Returns the contact's id and whether it was not
/// opted out before; `None` when the tenant has no contact with that phone.
pub async fn opt_out_by_phone(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    phone: &str,
    at: DateTime<Utc>,
) -> Result<Option<(Uuid, bool)>, sea_orm::DbErr> {
    let row = OptedOut::find_by_statement(stmt(
        "UPDATE contacts c SET opted_out_at = COALESCE(c.opted_out_at, $3), \
           updated_at = CASE WHEN c.opted_out_at IS NULL THEN $3 ELSE c.updated_at END \
         FROM (SELECT id, opted_out_at FROM contacts WHERE tenant_id = $1 AND phone = $2 FOR UPDATE) old \
         WHERE c.id = old.id \
         RETURNING c.id, old.opted_out_at IS NULL AS changed",
        vec![tenant_id.into(), phone.into(), at.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(|r| (r.id, r.changed)))
}

/// Sets (`Some(instant)`, kept if already opted out) or clears (`None`) a contact's opt-out;
/// `now` stamps `updated_at`. Returns whether the contact's opt-out state changed.
pub async fn set_opted_out(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
    opted_out_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE contacts SET opted_out_at = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND id = $2 AND (opted_out_at IS NULL) <> ($3::timestamptz IS NULL)",
            vec![tenant_id.into(), id.into(), opted_out_at.into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected() > 0)
}

/// The tenant's default country, for phone normalisation.
pub async fn default_country(db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<String, sea_orm::DbErr> {
    use sea_orm::EntityTrait;
    Ok(crate::entities::tenants::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .map_or_else(|| "BR".to_owned(), |t| t.default_country))
}
