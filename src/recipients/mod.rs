//! The recipient state machine, owned here: every change of a recipient's `status` is one
//! named function of this module, with its guard (from-states, campaign states) stated in
//! its one statement.
//!
//! ```text
//! pending ──plan──▶ queued ──claim──▶ sending ──record──▶ sent | failed
//!    ▲                 │                 │
//!    └────unqueue──────┘                 └──record (unsent)──▶ pending, or cancelled when
//!                                                               the campaign was cancelled
//! pending | queued ──cancel──▶ cancelled;  pending | queued ──opt-out──▶ skipped;
//! queued ──claim of an opted-out contact──▶ skipped
//! sending ──time out──▶ failed (outcome_unknown);  failed (outcome_unknown) ──late 2xx,
//! receipt──▶ sent
//! sent | failed (outcome_unknown) ──ERROR receipt──▶ failed (failed_after_send, with its
//! reason) ──later delivery/read receipt──▶ sent
//! ```
//! Terminal: `sent`, `failed`, `skipped`, `cancelled` (PRODUCT §2.2). An outcome arriving
//! for a cancelled campaign never leaves a recipient `pending`.

use crate::db::stmt;
use crate::webhooks::outbox::{enqueue_cte, MESSAGE_DATA};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use uuid::Uuid;

/// A recipient's status (column `recipients.status`).
/// Mapped by sea-orm (text), so query rows can hold it typed.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema, sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum RecipientStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "skipped")]
    Skipped,
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl RecipientStatus {
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Queued,
        Self::Sending,
        Self::Sent,
        Self::Failed,
        Self::Skipped,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// No transition leaves a terminal status except the outcome-unknown correction.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Sent | Self::Failed | Self::Skipped | Self::Cancelled)
    }
}

/// One chunk of a campaign's audience resolution (PRODUCT §4, `preparing`): what it wrote.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Resolved {
    /// Recipient rows written by this chunk (`pending`, or `skipped` when opted out).
    pub rows: i64,
    /// The sort key `{"at": created_at, "id": id}` of the last contact written; `None`
    /// when the chunk wrote nothing.
    pub cursor: Option<Value>,
}

/// The SQL test that contact `c` (already the tenant's) is in `audience` (a
/// `jsonb` parameter `{"group_ids", "tag_ids", "contact_ids", "filters", "on"}`): the id
/// lists become arrays once per statement, and each membership is one index-only probe of
/// the membership table's primary key (`group_members (group_id, contact_id)`,
/// `contact_tags (contact_id, tag_id)`), so the cost is linear in the contacts walked,
/// whatever the size of the groups. The probes need no tenant test: `c` is already the
/// tenant's contact and the groups and tags of an audience were checked as the tenant's
/// when the campaign was written; a test on `tenant_id`, which the keys do not hold, would
/// make every probe read the table too (a sixth of the time a chunk took, measured).
/// Date `filters` (`{"field", "matches": "today"}`) keep the contacts whose field, as
/// `YYYY-MM-DD…` or `DD/MM/YYYY`, falls on the day and month of `on` (29 February on
/// 28 February when `on`'s year has no 29th).
/// `with_dates` says whether the audience has date filters ([`has_date_filters`]).
fn in_audience(audience: &str, with_dates: bool) -> String {
    // The date filters' clause only when the audience has any: evaluated per contact, it
    // doubles the cost of picking a chunk even over an empty list.
    let dates = if with_dates {
        format!(
            " AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE({audience}::jsonb -> 'filters', '[]')) AS f, \
                LATERAL (SELECT c.fields ->> (f ->> 'field') AS v, ({audience}::jsonb ->> 'on')::date AS d) x, \
                LATERAL (SELECT CASE WHEN x.v ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}' THEN substr(x.v, 6, 5) \
                                     WHEN x.v ~ '^[0-9]{{2}}/[0-9]{{2}}/[0-9]{{4}}$' THEN substr(x.v, 4, 2) || '-' || substr(x.v, 1, 2) \
                                END AS md) m \
                WHERE m.md IS NULL OR x.d IS NULL OR NOT (m.md = to_char(x.d, 'MM-DD') \
                      OR (m.md = '02-29' AND to_char(x.d, 'MM-DD') = '02-28' AND to_char(x.d + 1, 'MM-DD') = '03-01')))"
        )
    } else {
        String::new()
    };
    format!(
        "((c.id = ANY({contacts}) \
          OR EXISTS (SELECT 1 FROM group_members gm WHERE gm.group_id = ANY({groups}) AND gm.contact_id = c.id) \
          OR EXISTS (SELECT 1 FROM contact_tags ct WHERE ct.contact_id = c.id AND ct.tag_id = ANY({tags}))){dates})",
        contacts = audience_ids(audience, "contact_ids"),
        groups = audience_ids(audience, "group_ids"),
        tags = audience_ids(audience, "tag_ids"),
    )
}

/// The SQL `uuid[]` of the ids listed under `key` (`contact_ids`, `group_ids`, `tag_ids`) of
/// the `jsonb` parameter `audience` (e.g. `$3`), built once per statement.
fn audience_ids(audience: &str, key: &str) -> String {
    format!("ARRAY(SELECT x::uuid FROM jsonb_array_elements_text({audience}::jsonb -> '{key}') AS x)")
}

/// Whether the audience keeps only contacts matching date `filters`.
fn has_date_filters(audience: &Value) -> bool {
    audience
        .get("filters")
        .and_then(Value::as_array)
        .is_some_and(|f| !f.is_empty())
}

/// What [`resolve_chunk`] does with a contact whose phone already has a recipient in the
/// campaign: possible only when a phone moved from a contact already resolved to one not yet
/// resolved while the campaign was preparing (a phone is unique among a tenant's contacts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepeatedPhone {
    /// The chunk fails with a unique violation of
    /// [`crate::constraints::ONE_RECIPIENT_PER_PHONE`]: the fast path, no conflict check.
    Refused,
    /// The contact is left out (its phone gets the message once, as the earlier contact's):
    /// `ON CONFLICT DO NOTHING`, whose speculative insertion costs every row.
    LeftOut,
}

/// A range of a tenant's contacts in `(created_at, id)` order, bounds given as sort keys
/// `{"at": created_at, "id": id}`: after `after` (exclusive; from the first contact when
/// `None`) up to `until` (inclusive; to the last when `None`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContactRange<'a> {
    pub after: Option<&'a Value>,
    pub until: Option<&'a Value>,
}

/// Writes the next `limit` recipients of a campaign's audience (groups ∪ tags ∪ contacts
/// of `audience`) within `range`: the tenant's contacts in `(created_at, id)` order that
/// belong to it, numbered from `after_position + 1`. One row per contact, so one per phone
/// (a phone is unique among a tenant's contacts); opted-out contacts are `skipped`
/// (`opted_out`). Row ids are UUIDv8 (RFC 9562) made of a hash of the campaign and the
/// position: appended in order, not scattered over the primary key, and a chunk written
/// twice would collide rather than duplicate. Per row it only computes what it writes: the
/// id's prefix once, the rows counted from the pick (not from the insert's output), the
/// cursor built for the last row only (each saved a few per cent of a chunk). `rows` counts
/// the contacts walked, a contact left out by `repeated` ([`RepeatedPhone`]) included.
#[allow(clippy::too_many_arguments)]
pub async fn resolve_chunk(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    campaign_id: Uuid,
    audience: &Value,
    range: ContactRange<'_>,
    after_position: i64,
    limit: i64,
    repeated: RepeatedPhone,
) -> Result<Resolved, sea_orm::DbErr> {
    let mut values = vec![
        tenant_id.into(),
        campaign_id.into(),
        audience.clone().into(),
        range.after.cloned().into(),
        after_position.into(),
        limit.into(),
    ];
    // The upper bound only when there is one, so that it bounds the index scan: as a
    // filter (`$7 IS NULL OR …`) a lane's last chunk would walk every contact after it.
    let until = match range.until {
        Some(until) => {
            values.push(until.clone().into());
            " AND (c.created_at, c.id) <= (($7::jsonb ->> 'at')::timestamptz, ($7::jsonb ->> 'id')::uuid)"
        }
        None => "",
    };
    let on_conflict = match repeated {
        RepeatedPhone::Refused => "",
        RepeatedPhone::LeftOut => " ON CONFLICT (campaign_id, phone) DO NOTHING",
    };
    let row = Resolved::find_by_statement(stmt(
        format!(
            "WITH picked AS MATERIALIZED ( \
               SELECT c.id, c.phone, c.name, c.opted_out_at, c.created_at, \
                      $5 + row_number() OVER (ORDER BY c.created_at, c.id) AS position \
               FROM (SELECT c.id, c.phone, c.name, c.opted_out_at, c.created_at FROM contacts c \
                     WHERE c.tenant_id = $1 \
                       AND (c.created_at, c.id) > (COALESCE(($4::jsonb ->> 'at')::timestamptz, '-infinity'), \
                             COALESCE(($4::jsonb ->> 'id')::uuid, '00000000-0000-0000-0000-000000000000')){until} \
                       AND {} \
                     ORDER BY c.created_at, c.id LIMIT $6) c), \
             written AS ( \
               INSERT INTO recipients (id, tenant_id, campaign_id, contact_id, phone, name, position, status, reason) \
               SELECT (k.prefix || lpad(to_hex(p.position), 15, '0'))::uuid, \
                      $1, $2, p.id, p.phone, p.name, p.position, \
                      CASE WHEN p.opted_out_at IS NULL THEN 'pending' ELSE 'skipped' END, \
                      CASE WHEN p.opted_out_at IS NULL THEN NULL ELSE 'opted_out' END \
               FROM picked p, (SELECT left(h, 12) || '8' || substr(h, 14, 3) || '8' AS prefix FROM md5($2::text) AS h) k{on_conflict}) \
             SELECT (SELECT count(*) FROM picked) AS rows, \
                    (SELECT jsonb_build_object('at', p.created_at, 'id', p.id) \
                     FROM (SELECT * FROM picked ORDER BY position DESC LIMIT 1) p) AS cursor",
            in_audience("$3", has_date_filters(audience))
        ),
        values,
    ))
    .one(db)
    .await?;
    Ok(row.unwrap_or(Resolved { rows: 0, cursor: None }))
}

/// Contacts in a campaign's audience (see [`resolve_chunk`]), for the progress of its
/// preparation. Without date filters the memberships are counted as sets (hashed, about
/// 0.5 s for 1,000,000; walking the contacts and probing each took ten times that).
pub async fn audience_size(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    audience: &Value,
) -> Result<i64, sea_orm::DbErr> {
    let sql = if has_date_filters(audience) {
        format!(
            "SELECT count(*) AS n FROM contacts c WHERE c.tenant_id = $1 AND {}",
            in_audience("$2", true)
        )
    } else {
        format!(
            "SELECT count(*) AS n FROM ( \
               SELECT gm.contact_id FROM group_members gm WHERE gm.group_id = ANY({groups}) \
               UNION SELECT ct.contact_id FROM contact_tags ct WHERE ct.tag_id = ANY({tags}) \
               UNION SELECT c.id FROM contacts c WHERE c.tenant_id = $1 AND c.id = ANY({contacts})) u",
            groups = audience_ids("$2", "group_ids"),
            tags = audience_ids("$2", "tag_ids"),
            contacts = audience_ids("$2", "contact_ids"),
        )
    };
    crate::db::count(db, sql, vec![tenant_id.into(), audience.clone().into()]).await
}

/// Bounds that split the tenant's `contacts` contacts, in `(created_at, id)` order, into
/// `parts` ranges of about the same size: the sort keys `{"at", "id"}` of the last contact
/// of each range but the last (`parts − 1` keys, fewer when the tenant has fewer contacts).
/// One walk of the tenant's `(tenant_id, created_at, id)` index (about 0.3 s for 1,000,000).
pub async fn contact_bounds(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contacts: i64,
    parts: i64,
) -> Result<Vec<Value>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Bound {
        bound: Value,
    }
    let rows = Bound::find_by_statement(stmt(
        "SELECT jsonb_build_object('at', x.created_at, 'id', x.id) AS bound FROM ( \
           SELECT created_at, id, row_number() OVER (ORDER BY created_at, id) AS rn FROM contacts WHERE tenant_id = $1) x \
         WHERE x.rn IN (SELECT DISTINCT ($2 * k) / $3 FROM generate_series(1, $3 - 1) AS k WHERE ($2 * k) / $3 > 0) \
         ORDER BY x.rn",
        vec![tenant_id.into(), contacts.into(), parts.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|b| b.bound).collect())
}

/// A recipient the beat queued, at its planned instant.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Planned {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub phone: String,
    pub planned_at: DateTime<Utc>,
    /// The number it is sent from.
    pub instance_id: Option<Uuid>,
}

/// What the beat plans for one campaign: its next pending recipients go out at `times`
/// (UTC, in order), `planned_before` sends of it being already planned, over `variants`
/// message variants.
#[derive(Debug, Clone, Serialize)]
pub struct PlanRequest<'a> {
    pub campaign_id: Uuid,
    /// The campaign's (only) number, kept on each recipient planned.
    pub instance_id: Uuid,
    pub times: &'a [DateTime<Utc>],
    pub planned_before: i64,
    pub variants: i32,
}

/// `pending → queued` for several campaigns in one statement: each campaign's next pending
/// recipients, in order, at its planned instants, with their variant by round robin in send
/// order. Rows another beat is planning are skipped. A tick's cost is its round trips: one
/// statement for a thousand campaigns, not one each.
pub async fn plan(
    db: &impl ConnectionTrait,
    requests: &[PlanRequest<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Planned>, sea_orm::DbErr> {
    if requests.is_empty() {
        return Ok(vec![]);
    }
    Planned::find_by_statement(stmt(
        // Each pick computes its instant and variant beside its campaign's request row: a
        // join of picks and instants, or carrying the instants through a CTE, turns
        // quadratic in the size of a campaign's plan.
        "WITH req AS ( \
           SELECT * FROM jsonb_to_recordset($1::jsonb) AS r(campaign_id uuid, instance_id uuid, times jsonb, planned_before bigint, variants int)), \
         picked AS ( \
           SELECT p.id, req.instance_id, (req.times ->> (p.rn - 1)::int)::timestamptz AS at, \
                  ((req.planned_before + p.rn - 1) % GREATEST(req.variants, 1))::smallint AS variant \
           FROM req CROSS JOIN LATERAL ( \
             SELECT id, row_number() OVER (ORDER BY position) AS rn FROM ( \
               SELECT id, position FROM recipients WHERE campaign_id = req.campaign_id AND status = 'pending' \
               ORDER BY position LIMIT jsonb_array_length(req.times) FOR UPDATE SKIP LOCKED) x) p) \
         UPDATE recipients r SET status = 'queued', planned_at = picked.at, queued_at = $2, variant = picked.variant, \
           instance_id = picked.instance_id \
         FROM picked WHERE r.id = picked.id \
         RETURNING r.id, r.campaign_id, r.phone, r.planned_at, r.instance_id",
        vec![json!(requests).into(), now.into()],
    ))
    .all(db)
    .await
}

/// A pending recipient of a campaign over a pool, about to be given a number and an instant.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Candidate {
    pub id: Uuid,
    pub phone: String,
}

/// The campaign's next `limit` pending recipients in order, locked for planning (rows
/// another beat is planning are skipped).
pub async fn pending_candidates(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    limit: i64,
) -> Result<Vec<Candidate>, sea_orm::DbErr> {
    Candidate::find_by_statement(stmt(
        "SELECT id, phone FROM recipients WHERE campaign_id = $1 AND status = 'pending' \
         ORDER BY position LIMIT $2 FOR UPDATE SKIP LOCKED",
        vec![campaign_id.into(), limit.into()],
    ))
    .all(db)
    .await
}

/// The number that last messaged each of `phones` in the tenant since `since` (a campaign
/// recipient or a one-off message, whichever is newer): a pool's sticky sender
/// (PRODUCT §4). Phones with no such send are absent.
pub async fn last_senders(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    phones: &[String],
    since: DateTime<Utc>,
) -> Result<HashMap<String, Uuid>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Last {
        phone: String,
        instance_id: Uuid,
    }
    if phones.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = Last::find_by_statement(stmt(
        "SELECT DISTINCT ON (phone) phone, instance_id FROM ( \
           SELECT r.phone, COALESCE(r.instance_id, c.instance_id) AS instance_id, r.sent_at \
           FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
           WHERE r.tenant_id = $1 AND r.phone = ANY($2) AND r.sent_at >= $3 \
           UNION ALL \
           SELECT m.phone, m.instance_id, m.sent_at FROM messages m \
           WHERE m.tenant_id = $1 AND m.phone = ANY($2) AND m.sent_at >= $3) s \
         ORDER BY phone, sent_at DESC",
        vec![tenant_id.into(), phones.to_vec().into(), since.into()],
    ))
    .all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.phone, r.instance_id)).collect())
}

/// One recipient of a pool planned: its number, instant and variant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assignment {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub at: DateTime<Utc>,
    pub variant: i16,
}

/// `pending → queued` for recipients of a pool campaign, each with its number, instant and
/// variant ([`crate::scheduler::pool::assign`]); rows no longer pending are left alone.
pub async fn plan_assigned(
    db: &impl ConnectionTrait,
    assignments: &[Assignment],
    now: DateTime<Utc>,
) -> Result<Vec<Planned>, sea_orm::DbErr> {
    if assignments.is_empty() {
        return Ok(vec![]);
    }
    Planned::find_by_statement(stmt(
        "UPDATE recipients r SET status = 'queued', planned_at = a.at, queued_at = $2, variant = a.variant, \
           instance_id = a.instance_id \
         FROM jsonb_to_recordset($1::jsonb) AS a(id uuid, instance_id uuid, at timestamptz, variant smallint) \
         WHERE r.id = a.id AND r.status = 'pending' \
         RETURNING r.id, r.campaign_id, r.phone, r.planned_at, r.instance_id",
        vec![json!(assignments).into(), now.into()],
    ))
    .all(db)
    .await
}

/// A `queued` row whose queue entry may be lost.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Queued {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub phone: String,
    pub planned_at: Option<DateTime<Utc>>,
    /// The number it was planned on.
    pub instance_id: Option<Uuid>,
}

/// `queued` rows queued before `cutoff` (at most `limit`, oldest first) are stamped queued
/// again at `now` and returned, for their jobs to be queued again (status unchanged).
pub async fn restamp_queued(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Queued>, sea_orm::DbErr> {
    Queued::find_by_statement(stmt(
        "UPDATE recipients SET queued_at = $2 WHERE id IN ( \
           SELECT id FROM recipients WHERE status = 'queued' AND queued_at < $1 \
           ORDER BY queued_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, campaign_id, tenant_id, phone, planned_at, instance_id",
        vec![cutoff.into(), now.into(), limit.into()],
    ))
    .all(db)
    .await
}

/// A recipient this worker now owns (`sending`), with what rendering needs.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Claimed {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub contact_id: Option<Uuid>,
    pub phone: String,
    pub name: String,
    pub variant: Option<i16>,
    pub fields: Value,
    /// The instant the beat planned it for (UTC; `None` only for a row queued before the
    /// column was kept): what `arauto_pacing_lateness_seconds` counts from, however often
    /// its queue entry was deferred.
    pub planned_at: Option<DateTime<Utc>>,
}

/// `queued → sending` for the given recipients whose campaign is still `active`, in one
/// statement committed before any of them is sent. It takes no lock on the campaign rows
/// (the beat's planning would skip them): a pause that commits meanwhile is enforced at
/// the send instant by the send gate (`dispatch::gate`), and the recipient's outcome then
/// returns it to `pending` (or `cancelled`). A recipient whose contact has opted out
/// meanwhile becomes `queued → skipped` (`opted_out`) instead and is not returned: an
/// opt-out on any of the tenant's numbers stops the sends of every campaign at once.
pub async fn claim(db: &DatabaseConnection, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<Claimed>, sea_orm::DbErr> {
    // Driven by the primary key (`= ANY`), the campaign and the contact checked per row
    // (scalar subqueries): a join would let the planner scan every queued row of the campaign.
    let opted_out = "EXISTS (SELECT 1 FROM contacts ct WHERE ct.id = r.contact_id AND ct.opted_out_at IS NOT NULL)";
    Claimed::find_by_statement(stmt(
        format!(
            "WITH taken AS ( \
               UPDATE recipients r SET \
                 status = CASE WHEN {opted_out} THEN 'skipped' ELSE 'sending' END, \
                 reason = CASE WHEN {opted_out} THEN 'opted_out' ELSE r.reason END, \
                 sending_at = CASE WHEN {opted_out} THEN r.sending_at ELSE $2 END \
               WHERE r.id = ANY(ARRAY(SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) AS x)) \
                 AND r.status = 'queued' \
                 AND (SELECT c.status FROM campaigns c WHERE c.id = r.campaign_id) = 'active' \
               RETURNING r.id, r.campaign_id, r.tenant_id, r.contact_id, r.phone, r.name, r.variant, r.status, r.planned_at) \
             SELECT t.id, t.campaign_id, t.tenant_id, t.contact_id, t.phone, t.name, t.variant, t.planned_at, \
               COALESCE((SELECT ct.fields FROM contacts ct WHERE ct.id = t.contact_id), '{{}}'::jsonb) AS fields \
             FROM taken t WHERE t.status = 'sending'"
        ),
        vec![json!(ids).into(), now.into()],
    ))
    .all(db)
    .await
}

/// `queued → pending` for one job that cannot be sent now (its window closed while it
/// waited): the planner takes it again.
pub async fn unqueue(db: &DatabaseConnection, id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET status = 'pending', planned_at = NULL, queued_at = NULL WHERE id = $1 AND status = 'queued'",
        vec![id.into()],
    ))
    .await?;
    Ok(())
}

/// `queued → pending` for every job of a stopped (paused) campaign: they are planned afresh,
/// with fresh pacing, when it resumes; any queue entry left for them is dropped at claim.
pub async fn unqueue_campaign(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET status = 'pending', planned_at = NULL, queued_at = NULL \
         WHERE campaign_id = $1 AND status = 'queued'",
        vec![campaign_id.into()],
    ))
    .await?;
    Ok(())
}

/// `pending | queued → cancelled` (reason `campaign_cancelled`) for a cancelled campaign.
pub async fn cancel_campaign(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET status = 'cancelled', reason = 'campaign_cancelled' \
         WHERE campaign_id = $1 AND status IN ('pending', 'queued')",
        vec![campaign_id.into()],
    ))
    .await?;
    Ok(())
}

/// `pending | queued → cancelled` for campaigns cancelled since `since`: the safety net for
/// an unsent outcome recorded while the cancel committed (the outcome's statement read the
/// campaign still active, the cancel's statement the row still `sending`). Returns how many.
pub async fn cancel_stranded(db: &impl ConnectionTrait, since: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE recipients SET status = 'cancelled', reason = 'campaign_cancelled' \
             WHERE status IN ('pending', 'queued') AND campaign_id IN ( \
               SELECT id FROM campaigns WHERE status = 'cancelled' AND cancelled_at >= $1)",
            vec![since.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// `sending → failed` with `outcome_unknown` for rows left `sending` since before `cutoff`
/// (a crash between claim and outcome): never resent; a late answer or a receipt naming
/// the message corrects it. Returns how many.
pub async fn time_out_sending(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE recipients SET status = 'failed', outcome_unknown = true, reason = 'sending timed out' \
             WHERE status = 'sending' AND sending_at < $1",
            vec![cutoff.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// What became of one claimed recipient (a send log's `outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = SendOutcome)]
pub enum Outcome {
    /// The gateway accepted it (a message id).
    Sent,
    /// The recipient cannot be reached (not on WhatsApp, rejected): terminal.
    Failed,
    /// It may have been sent (a timeout after the request left, an unreadable 2xx): `failed`
    /// with `outcome_unknown`, never resent.
    #[serde(rename = "outcome_unknown")]
    Unknown,
    /// Nothing was sent (the campaign stopped, the window closed, the instance or the
    /// gateway was unusable): back to `pending`, or `cancelled` with a cancelled campaign.
    Unsent,
}

impl Outcome {
    /// As stored in a send log's `outcome` (and as serialised).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Unknown => "outcome_unknown",
            Self::Unsent => "unsent",
        }
    }
}

/// One send's result, for the recipient row and the log.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub recipient_id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub variant: Option<i16>,
    pub rendered: String,
    /// Requests made to the gateway (0: none left; no log row is written).
    pub attempts: u32,
    pub gateway_status: Option<u16>,
    pub body_excerpt: String,
    pub duration_ms: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Pause the campaign with this reason (instance errors, `gateway_unreachable`).
    pub pause: Option<String>,
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// Records a batch of outcomes: the `sending →` transitions and the log rows (the caller
/// runs it in the transaction that also applies their consequences to the campaigns).
///
/// Guards: a row must still be `sending`; or, for a late answer (after
/// `dispatch.sending_timeout_seconds`), `failed` with `outcome_unknown` and no message id,
/// which a `sent` or `failed` answer corrects. An unsent outcome for a cancelled campaign
/// ends `cancelled`. Each `sent` or `failed` transition writes `message.sent` /
/// `message.failed` to the webhook outbox in the same statement.
pub async fn record(db: &impl ConnectionTrait, records: &[Record]) -> Result<(), sea_orm::DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.recipient_id,
                "status": match r.outcome {
                    Outcome::Sent => RecipientStatus::Sent,
                    Outcome::Failed | Outcome::Unknown => RecipientStatus::Failed,
                    Outcome::Unsent => RecipientStatus::Pending,
                },
                "unknown": r.outcome == Outcome::Unknown,
                "reason": r.reason,
                "message_id": r.message_id,
                "at": r.at,
                "tenant_id": r.tenant_id,
                "campaign_id": r.campaign_id,
                "variant": r.variant,
                "rendered": r.rendered,
                "attempts": r.attempts,
                "gateway_status": r.gateway_status,
                "body_excerpt": r.body_excerpt,
                "duration_ms": r.duration_ms,
                "outcome": r.outcome,
            })
        })
        .collect();
    let rows = Value::Array(rows);
    let events = enqueue_cte(
        "hooks",
        &format!(
            "SELECT m.tenant_id, CASE m.status WHEN 'sent' THEN 'message.sent' WHEN 'failed' THEN 'message.failed' END \
               AS event_type, {MESSAGE_DATA} AS data, m.at FROM m"
        ),
        "s.at",
    );
    db.execute(stmt(
        format!("WITH x AS ( \
           SELECT x.*, CASE WHEN x.status = 'pending' AND c.status = 'cancelled' THEN 'cancelled' ELSE x.status END AS next \
           FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, campaign_id uuid, status text, unknown boolean, reason text, \
             message_id text, at timestamptz) \
           JOIN campaigns c ON c.id = x.campaign_id), \
         m AS (UPDATE recipients r SET status = x.next, \
           reason = CASE x.next WHEN 'pending' THEN NULL WHEN 'cancelled' THEN 'campaign_cancelled' ELSE x.reason END, \
           outcome_unknown = x.unknown, \
           message_id = x.message_id, \
           sent_at = CASE WHEN x.next = 'sent' THEN x.at END, \
           sending_at = CASE WHEN x.next = 'pending' THEN NULL ELSE r.sending_at END, \
           planned_at = CASE WHEN x.next = 'pending' THEN NULL ELSE r.planned_at END, \
           queued_at = CASE WHEN x.next = 'pending' THEN NULL ELSE r.queued_at END \
         FROM x \
         WHERE r.id = x.id AND (r.status = 'sending' \
           OR (x.status IN ('sent', 'failed') AND r.status = 'failed' AND r.outcome_unknown AND r.message_id IS NULL)) \
         RETURNING r.*, x.at), \
         {events} SELECT 1"),
        vec![rows.clone().into()],
    ))
    .await?;
    // Receipts that arrived before these outcomes are applied now.
    let message_ids: Vec<String> = records.iter().filter_map(|r| r.message_id.clone()).collect();
    if !message_ids.is_empty() {
        apply_early_receipts(db, Some(&message_ids)).await?;
    }
    db.execute(stmt(
        "INSERT INTO send_logs (tenant_id, campaign_id, recipient_id, variant, rendered, attempts, gateway_status, \
           body_excerpt, duration_ms, outcome, reason, created_at) \
         SELECT x.tenant_id, x.campaign_id, x.id, x.variant, x.rendered, x.attempts, x.gateway_status, \
           x.body_excerpt, x.duration_ms, x.outcome, x.reason, x.at \
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, tenant_id uuid, campaign_id uuid, variant smallint, \
           rendered text, attempts integer, gateway_status integer, body_excerpt text, duration_ms integer, \
           outcome text, reason text, at timestamptz) \
         WHERE x.attempts > 0",
        vec![rows.into()],
    ))
    .await?;
    Ok(())
}

/// The reason kept on a recipient the gateway reported `ERROR` for after accepting it,
/// when the receipt gives none.
pub const ERROR_RECEIPT: &str = "the gateway reported ERROR after accepting the message";

/// What a receipt does to its recipient — or one-off message (`src/messages/status.rs`: the
/// same columns) — `r`, given SQL for the receipt's delivered and read instants and its
/// error reason (NULL when it does not say so): `delivered_at` / `read_at`
/// filled once (monotonic: a late DELIVERY_ACK never undoes READ, duplicates change
/// nothing), and the send proven: `failed` with `outcome_unknown` → `sent`. An `ERROR`
/// receipt (only an error) for a send not known delivered or read makes it `failed` with
/// `failed_after_send` and the error as reason (`sent` or `failed`/`outcome_unknown` →
/// `failed`); a delivery or read receipt arriving after it (reordered) proves the message
/// arrived after all and makes it `sent` again.
pub(crate) fn receipt_effects(delivered: &str, read: &str, error: &str) -> String {
    let only_error = format!("({error} IS NOT NULL AND {delivered} IS NULL AND {read} IS NULL)");
    let fails = format!(
        "({only_error} AND r.delivered_at IS NULL AND r.read_at IS NULL \
          AND (r.status = 'sent' OR (r.status = 'failed' AND r.outcome_unknown)))"
    );
    let proves = format!("({delivered} IS NOT NULL OR {read} IS NOT NULL)");
    format!(
        "delivered_at = COALESCE(r.delivered_at, {delivered}), read_at = COALESCE(r.read_at, {read}), \
         status = CASE WHEN {fails} THEN 'failed' \
                       WHEN r.status = 'failed' AND r.outcome_unknown AND NOT {only_error} THEN 'sent' \
                       WHEN r.status = 'failed' AND r.failed_after_send AND {proves} THEN 'sent' \
                       ELSE r.status END, \
         reason = CASE WHEN {fails} THEN {error} WHEN r.failed_after_send AND {proves} THEN NULL ELSE r.reason END, \
         failed_after_send = CASE WHEN {fails} THEN true WHEN r.failed_after_send AND {proves} THEN false \
                                  ELSE r.failed_after_send END, \
         outcome_unknown = false, sent_at = COALESCE(r.sent_at, {delivered}, {read})"
    )
}

/// The webhook events of receipts applied by a statement's CTE `m` (updated rows with
/// their previous `was_delivered` / `was_read` / `was_failed_after_send`), each with the
/// event `data` of its kind: `message.delivered` and `message.read` the first time each is
/// known, never again for duplicates; `message.failed` (with `failed_after_send: true`)
/// when an `ERROR` receipt failed the send.
fn receipt_events(at: &str, data: &str) -> String {
    enqueue_cte(
        "hooks",
        &format!(
            "SELECT m.tenant_id, 'message.delivered' AS event_type, {data} AS data FROM m \
               WHERE m.was_delivered IS NULL AND m.delivered_at IS NOT NULL \
             UNION ALL \
             SELECT m.tenant_id, 'message.read', {data} FROM m WHERE m.was_read IS NULL AND m.read_at IS NOT NULL \
             UNION ALL \
             SELECT m.tenant_id, 'message.failed', {data} || jsonb_build_object('failed_after_send', true) \
               FROM m WHERE m.failed_after_send AND NOT m.was_failed_after_send"
        ),
        at,
    )
}

/// The statement that applies one receipt to the row of `table` naming its message id:
/// `recipients`, or `messages` for one-off messages (run by their owner,
/// `src/messages/status.rs`), which carry the same receipt columns; `data` is the event
/// data of that kind. Parameters: `$1` tenant, `$2` message id, `$3` delivered and `$4` read
/// instants, `$5` when it was heard, `$6` the error ([`Receipt::columns`]). Answers `n`, the
/// rows changed.
pub(crate) fn receipt_statement(table: &str, data: &str) -> String {
    format!(
        "WITH old AS (SELECT id, delivered_at, read_at, failed_after_send FROM {table} \
                      WHERE tenant_id = $1 AND message_id = $2 FOR UPDATE), \
         m AS (UPDATE {table} r SET {} FROM old WHERE r.id = old.id \
               RETURNING r.*, old.delivered_at AS was_delivered, old.read_at AS was_read, \
                         old.failed_after_send AS was_failed_after_send), \
         {} SELECT count(*) AS n FROM m",
        receipt_effects("$3::timestamptz", "$4::timestamptz", "$6::text"),
        receipt_events("$5::timestamptz", data)
    )
}

/// The statement that applies kept receipts (`early_receipts`) to the rows of `table` (as
/// [`receipt_statement`]) that now have their message id — those of `$1` (a JSON array of
/// message ids), or all when it is null — and forgets them. Answers `n`, the rows changed.
pub(crate) fn early_receipts_statement(table: &str, data: &str) -> String {
    format!(
        "WITH e AS ( \
           DELETE FROM early_receipts e USING {table} r \
           WHERE r.tenant_id = e.tenant_id AND r.message_id = e.message_id \
             AND ($1::jsonb IS NULL OR e.message_id IN (SELECT jsonb_array_elements_text($1::jsonb))) \
           RETURNING e.*), \
         old AS (SELECT r0.id, r0.delivered_at, r0.read_at, r0.failed_after_send, e.delivered_at AS e_delivered, \
                   e.read_at AS e_read, e.error AS e_error \
                 FROM {table} r0 JOIN e ON r0.tenant_id = e.tenant_id AND r0.message_id = e.message_id \
                 FOR UPDATE OF r0), \
         m AS (UPDATE {table} r SET {} FROM old WHERE r.id = old.id \
               RETURNING r.*, old.delivered_at AS was_delivered, old.read_at AS was_read, \
                         old.failed_after_send AS was_failed_after_send), \
         {} SELECT count(*) AS n FROM m",
        receipt_effects("old.e_delivered", "old.e_read", "old.e_error"),
        receipt_events("now()", data)
    )
}

/// What one receipt says (`EVOLUTION.md`, `messages.update`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt<'a> {
    /// The gateway took the message (`SERVER_ACK`, `PENDING`): proves the send.
    Accepted,
    Delivered,
    Read,
    /// `ERROR` after the gateway accepted the send, with the reason to keep.
    Error(&'a str),
}

impl Receipt<'_> {
    /// What it says as [`receipt_effects`] takes it, for a receipt heard `at`: the
    /// delivered and read instants and the error reason, each `None` when it does not say
    /// so (a read receipt implies delivery; Postgres text holds no NUL).
    pub fn columns(self, at: DateTime<Utc>) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<String>) {
        match self {
            Receipt::Accepted => (None, None, None),
            Receipt::Delivered => (Some(at), None, None),
            Receipt::Read => (Some(at), Some(at), None),
            Receipt::Error(reason) => (None, None, Some(reason.replace('\0', ""))),
        }
    }
}

/// A receipt naming `message_id` (at `at`), applied to its recipient (see
/// [`receipt_effects`]). When no recipient has that message id yet — the receipt beat
/// the send's outcome to the database — it is kept in `early_receipts` and applied when the
/// outcome is recorded ([`record`]) or by the next tick ([`apply_early_receipts`]): a
/// receipt is never lost. Returns whether it was applied now.
pub async fn apply_receipt(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    message_id: &str,
    receipt: Receipt<'_>,
    at: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let (delivered_at, read_at, error) = receipt.columns(at);
    let done = crate::db::count(
        db,
        receipt_statement("recipients", MESSAGE_DATA),
        vec![
            tenant_id.into(),
            message_id.into(),
            delivered_at.into(),
            read_at.into(),
            at.into(),
            error.clone().into(),
        ],
    )
    .await?;
    if done > 0 {
        return Ok(true);
    }
    db.execute(stmt(
        "INSERT INTO early_receipts (tenant_id, message_id, delivered_at, read_at, error, received_at) \
         VALUES ($1, $2, $3, $4, $6, $5) \
         ON CONFLICT (tenant_id, message_id) DO UPDATE SET \
           delivered_at = COALESCE(early_receipts.delivered_at, EXCLUDED.delivered_at), \
           read_at = COALESCE(early_receipts.read_at, EXCLUDED.read_at), \
           error = COALESCE(early_receipts.error, EXCLUDED.error)",
        vec![
            tenant_id.into(),
            message_id.into(),
            delivered_at.into(),
            read_at.into(),
            at.into(),
            error.into(),
        ],
    ))
    .await?;
    // The outcome may have committed between the two statements: apply it now if so.
    Ok(apply_early_receipts(db, Some(&[message_id.to_owned()])).await? > 0)
}

/// Applies kept receipts ([`apply_receipt`]) whose recipient now has the message id —
/// those of `message_ids`, or all when `None` (the beat's safety net) — and forgets them.
/// Returns how many were applied.
pub async fn apply_early_receipts(
    db: &impl ConnectionTrait,
    message_ids: Option<&[String]>,
) -> Result<u64, sea_orm::DbErr> {
    let done = crate::db::count(
        db,
        early_receipts_statement("recipients", MESSAGE_DATA),
        vec![message_ids.map(|ids| json!(ids)).into()],
    )
    .await?;
    Ok(done.max(0) as u64)
}

/// Forgets kept receipts that arrived before `before` and never found their message (PRODUCT:
/// unknown ids older than a day are dropped). Returns how many.
pub async fn drop_early_receipts(db: &impl ConnectionTrait, before: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "DELETE FROM early_receipts WHERE received_at < $1",
            vec![before.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// How long after a send an inbound message still counts as a reply to it (issue 11: the
/// latest message to that phone within 7 days).
pub const REPLY_WINDOW_DAYS: i64 = 7;

/// An inbound message from `phone` at `at` (its `text`, when it has one): `replied_at` on
/// the latest recipient sent to that phone within [`REPLY_WINDOW_DAYS`] (the conversation
/// it answers), once, unless a one-off message was sent to it later (then
/// `crate::messages::status::record_reply` marks that one); every such message writes `reply.received` to the webhook outbox
/// (with `text`, `received_at` and `first_reply`). Returns whether one was marked.
pub async fn record_reply(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    phone: &str,
    text: Option<&str>,
    at: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let events = enqueue_cte(
        "hooks",
        &format!(
            "SELECT m.tenant_id, 'reply.received' AS event_type, {MESSAGE_DATA} || jsonb_build_object('text', $5::text, \
               'received_at', $3::timestamptz, 'first_reply', EXISTS (SELECT 1 FROM marked)) AS data FROM target m"
        ),
        "$3::timestamptz",
    );
    let done = crate::db::count(
        db,
        format!(
            "WITH target AS ( \
               SELECT * FROM recipients WHERE tenant_id = $1 AND phone = $2 AND sent_at IS NOT NULL \
                 AND sent_at >= $4 AND status = 'sent' \
                 AND NOT EXISTS (SELECT 1 FROM messages mm WHERE mm.tenant_id = $1 AND mm.phone = $2 \
                                 AND mm.status = 'sent' AND mm.sent_at > recipients.sent_at) \
               ORDER BY sent_at DESC LIMIT 1), \
             marked AS (UPDATE recipients r SET replied_at = $3 FROM target t WHERE r.id = t.id AND r.replied_at IS NULL \
               RETURNING r.id), \
             {events} SELECT count(*) AS n FROM marked"
        ),
        vec![
            tenant_id.into(),
            phone.into(),
            at.into(),
            (at - chrono::Duration::days(REPLY_WINDOW_DAYS)).into(),
            // Postgres text holds no NUL.
            text.map(|t| t.replace('\0', "")).into(),
        ],
    )
    .await?;
    Ok(done > 0)
}

/// `pending | queued → skipped` (`opted_out`) in every campaign of the tenant, for the
/// opted-out contact `contact_id` (whatever number each campaign sends from). A queued
/// job's stream entry is then dropped at claim. Returns how many. The recipients are found
/// by their unfinished campaigns and the contact's phone (one probe of the
/// `(campaign_id, phone)` key each; no index by contact is kept, it slowed resolution); a
/// recipient written before the contact changed phone is caught at claim, which checks
/// the contact's opt-out again.
pub async fn skip_opted_out(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE recipients r SET status = 'skipped', reason = 'opted_out' \
             FROM campaigns c, contacts ct \
             WHERE ct.id = $2 AND ct.tenant_id = $1 \
               AND c.tenant_id = $1 AND c.status IN ('preparing', 'scheduled', 'active', 'paused') \
               AND r.campaign_id = c.id AND r.phone = ct.phone AND r.contact_id = $2 \
               AND r.status IN ('pending', 'queued')",
            vec![tenant_id.into(), contact_id.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// The contact was deleted: its recipients lose the link, and those not yet planned
/// (`pending`) become `cancelled` (`contact_deleted`); what was sent stays recorded.
pub async fn detach_contact(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET contact_id = NULL, \
           reason = CASE WHEN status = 'pending' THEN 'contact_deleted' ELSE reason END, \
           status = CASE WHEN status = 'pending' THEN 'cancelled' ELSE status END \
         WHERE tenant_id = $1 AND contact_id = $2",
        vec![tenant_id.into(), contact_id.into()],
    ))
    .await?;
    Ok(())
}

/// Recipients that are not terminal although their campaign is (`completed` or
/// `cancelled`): always 0 when the state machine holds (PRODUCT §2.2). `arauto check` and
/// the tests ask.
pub async fn stranded(db: &impl ConnectionTrait) -> Result<i64, sea_orm::DbErr> {
    crate::db::count(
        db,
        "SELECT count(*) AS n FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
         WHERE c.status IN ('completed', 'cancelled') AND r.status IN ('pending', 'queued', 'sending')",
        vec![],
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::RecipientStatus;

    #[test]
    fn statuses_round_trip_and_know_which_are_terminal() {
        for s in RecipientStatus::ALL {
            assert_eq!(RecipientStatus::parse(s.as_str()), Some(s));
        }
        let terminal: Vec<_> = RecipientStatus::ALL.into_iter().filter(|s| s.is_terminal()).collect();
        assert_eq!(
            terminal,
            [
                RecipientStatus::Sent,
                RecipientStatus::Failed,
                RecipientStatus::Skipped,
                RecipientStatus::Cancelled
            ]
        );
    }
}
