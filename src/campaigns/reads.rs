//! The read models behind the stats routes (`super::stats`): a campaign's recipients and
//! send logs by page or cursor, the tenant's dashboard counts and queue depth. Every query
//! here is a plain read, fit for the read replica (`AppState::reads`, `database.read_url`).

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::api::cursor::{Keyed, Keyset, COUNT_CAP};
use crate::db::{bounded_count, stmt};
use crate::recipients::RecipientStatus;

#[derive(Debug, Serialize, ToSchema, FromQueryResult)]
pub struct RecipientView {
    pub id: Uuid,
    pub contact_id: Option<Uuid>,
    pub phone: String,
    pub name: String,
    #[schema(value_type = RecipientStatus)]
    pub status: String,
    pub reason: Option<String>,
    /// True when the send may or may not have reached WhatsApp (a timeout after the request
    /// left, or a crash while sending): `failed`, never resent; a receipt corrects it.
    pub outcome_unknown: bool,
    /// True when the gateway accepted the send and then reported `ERROR` (`failed`, with
    /// the reason); a later delivery receipt makes it `sent` again.
    pub failed_after_send: bool,
    pub variant: Option<i16>,
    /// The number it is (or was) sent from, once planned: in a pool, the number chosen for
    /// it (PRODUCT §4).
    pub instance_id: Option<Uuid>,
    pub queued_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    /// When the contact first wrote back after the send (an inbound message on any of the
    /// tenant's numbers), as in `recipients.csv`.
    pub replied_at: Option<DateTime<Utc>>,
    pub message_id: Option<String>,
    /// Send order (the list's sort key; not shown).
    #[serde(skip)]
    pub position: i32,
}

/// The sort key of a campaign's recipients (send order, then id): what its cursors encode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientKey {
    pub position: i32,
    pub id: Uuid,
}

impl Keyed for RecipientView {
    type Key = RecipientKey;

    fn key(&self) -> RecipientKey {
        RecipientKey {
            position: self.position,
            id: self.id,
        }
    }
}

#[derive(Debug, Serialize, ToSchema, FromQueryResult)]
pub struct SendLogView {
    pub id: i64,
    pub recipient_id: Uuid,
    pub variant: Option<i16>,
    pub rendered: String,
    pub attempts: i32,
    pub gateway_status: Option<i32>,
    pub body_excerpt: String,
    pub duration_ms: i32,
    /// sent, failed, outcome_unknown (may have been sent) or unsent (nothing left for the gateway).
    #[schema(value_type = crate::recipients::Outcome)]
    pub outcome: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The sort key of a campaign's send logs (newest first, by id): what its cursors encode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendLogKey {
    pub log_id: i64,
}

impl Keyed for SendLogView {
    type Key = SendLogKey;

    fn key(&self) -> SendLogKey {
        SendLogKey { log_id: self.id }
    }
}

/// A page of campaign `campaign_id`'s recipients (of the tenant) in send order, only those
/// in `status` when given: after `page`'s cursor, or at its offset.
pub async fn recipients_page(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    campaign_id: Uuid,
    status: Option<RecipientStatus>,
    page: &Keyset<RecipientKey>,
) -> Result<Vec<RecipientView>, sea_orm::DbErr> {
    let mut clause = String::from("tenant_id = $1 AND campaign_id = $2");
    let mut values: Vec<sea_orm::Value> = vec![tenant_id.into(), campaign_id.into()];
    if let Some(s) = status {
        values.push(s.as_str().into());
        clause += &format!(" AND status = ${}", values.len());
    }
    if let Some(after) = &page.after {
        values.push(after.position.into());
        values.push(after.id.into());
        clause += &format!(" AND (position, id) > (${}, ${})", values.len() - 1, values.len());
    }
    values.push(page.limit().into());
    values.push(page.offset().into());
    let n = values.len();
    RecipientView::find_by_statement(stmt(
        format!(
            "SELECT id, contact_id, phone, name, status, reason, outcome_unknown, failed_after_send, variant, instance_id, \
                    queued_at, sent_at, delivered_at, read_at, replied_at, message_id, position \
             FROM recipients WHERE {clause} ORDER BY position, id LIMIT ${} OFFSET ${n}",
            n - 1
        ),
        values,
    ))
    .all(db)
    .await
}

/// A page of campaign `campaign_id`'s send logs (of the tenant), newest first, after
/// `page`'s cursor or at its offset; and how many there are, counted up to [`COUNT_CAP`].
pub async fn logs_page(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    campaign_id: Uuid,
    page: &Keyset<SendLogKey>,
) -> Result<(Vec<SendLogView>, u64), sea_orm::DbErr> {
    let scope = "FROM send_logs WHERE tenant_id = $1 AND campaign_id = $2";
    let mut values: Vec<sea_orm::Value> = vec![tenant_id.into(), campaign_id.into()];
    let counted = bounded_count(db, scope, values.clone(), COUNT_CAP).await?;
    let mut clause = String::new();
    if let Some(after) = &page.after {
        values.push(after.log_id.into());
        clause = format!(" AND id < ${}", values.len());
    }
    values.push(page.limit().into());
    values.push(page.offset().into());
    let n = values.len();
    let items = SendLogView::find_by_statement(stmt(
        format!(
            "SELECT id, recipient_id, variant, rendered, attempts, gateway_status, body_excerpt, duration_ms, outcome, reason, created_at \
             {scope}{clause} ORDER BY id DESC LIMIT ${} OFFSET ${n}",
            n - 1
        ),
        values,
    ))
    .all(db)
    .await?;
    Ok((items, counted))
}

#[derive(FromQueryResult)]
struct KeyCount {
    key: String,
    n: i64,
}

async fn key_counts(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<HashMap<String, u64>, sea_orm::DbErr> {
    Ok(KeyCount::find_by_statement(stmt(sql, values))
        .all(db)
        .await?
        .into_iter()
        .map(|k| (k.key, k.n.max(0) as u64))
        .collect())
}

/// The tenant's campaigns by status (`{"active": 2}`; statuses with none absent).
pub async fn campaigns_by_status(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
) -> Result<HashMap<String, u64>, sea_orm::DbErr> {
    key_counts(
        db,
        "SELECT status AS key, count(*) AS n FROM campaigns WHERE tenant_id = $1 GROUP BY status",
        vec![tenant_id.into()],
    )
    .await
}

/// The tenant's sends since `from` (UTC), by outcome (`sent`, `failed`, `outcome_unknown`,
/// `unsent`): campaign send attempts (their logs) and one-off messages that left or failed
/// since then (a message accepted and later reported `ERROR` counts as `sent`, as a
/// campaign's attempt does).
pub async fn outcomes_since(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    from: DateTime<Utc>,
) -> Result<HashMap<String, u64>, sea_orm::DbErr> {
    key_counts(
        db,
        "SELECT key, sum(n)::bigint AS n FROM ( \
           SELECT outcome AS key, count(*) AS n FROM send_logs WHERE tenant_id = $1 AND created_at >= $2 GROUP BY outcome \
           UNION ALL \
           SELECT CASE WHEN m.status = 'sent' OR m.failed_after_send THEN 'sent' \
                       WHEN m.outcome_unknown THEN 'outcome_unknown' ELSE 'failed' END, count(*) \
           FROM messages m WHERE m.tenant_id = $1 AND m.status IN ('sent', 'failed') \
             AND COALESCE(m.sent_at, m.sending_at) >= $2 GROUP BY 1) x \
         GROUP BY key",
        vec![tenant_id.into(), from.into()],
    )
    .await
}

/// The tenant's recipients waiting in the queue and in flight, and when the oldest queued
/// one was queued.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub queued: u64,
    pub sending: u64,
    pub oldest: Option<DateTime<Utc>>,
}

/// The tenant's [`QueueDepth`] now.
pub async fn queue_depth(db: &impl ConnectionTrait, tenant_id: Uuid) -> Result<QueueDepth, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct QueueRow {
        queued: i64,
        sending: i64,
        oldest: Option<DateTime<Utc>>,
    }

    let row = QueueRow::find_by_statement(stmt(
        "SELECT count(*) FILTER (WHERE status = 'queued') AS queued, count(*) FILTER (WHERE status = 'sending') AS sending, \
                min(queued_at) FILTER (WHERE status = 'queued') AS oldest \
         FROM recipients WHERE tenant_id = $1 AND status IN ('queued', 'sending')",
        vec![tenant_id.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map_or(QueueDepth::default(), |r| QueueDepth {
        queued: r.queued.max(0) as u64,
        sending: r.sending.max(0) as u64,
        oldest: r.oldest,
    }))
}
