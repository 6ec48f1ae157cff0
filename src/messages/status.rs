//! The one-off message state machine, owned here: every change of a message's `status`
//! (and of what the engine writes on it) is one named function of this module, its guard
//! stated in its one statement. CI (`.ci/state-owners`) fails on an `UPDATE messages`
//! anywhere else.
//!
//! ```text
//! pending ──queue──▶ queued ──claim──▶ sending ──record──▶ sent | failed
//!    ▲  │              │                  │
//!    │  └─wait_until─┘ │ (opted out, not  └──record (unsent)──▶ pending, due again later
//!    │   (daily limit)  │  transactional)
//!    ├──────────────────┴──▶ skipped
//!    ├── pending | queued ──cancel──▶ cancelled (the user's; never once sending)
//!    └── pending | queued ──expire──▶ failed (`expired`, at `expires_at`)
//! sending ──time out──▶ failed (outcome_unknown);  failed (outcome_unknown) ──late 2xx,
//! receipt──▶ sent
//! sent | failed (outcome_unknown) ──ERROR receipt──▶ failed (failed_after_send)
//!   ──delivery or read receipt──▶ sent
//! ```
//! The same guarantees as a campaign recipient (`crate::recipients`): claimed once
//! (`queued → sending`, committed before the send), never resent when its outcome is
//! unknown, receipts kept when they beat the outcome (`early_receipts`), replies marked on
//! the latest send to the phone.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::db::stmt;
use crate::recipients::{early_receipts_statement, receipt_statement, Outcome, Receipt, REPLY_WINDOW_DAYS};
use crate::webhooks::outbox::enqueue_cte;

/// The `data` of a one-off message's `message.*` or `reply.received` event, as SQL over a
/// messages row aliased `m`: the shape of a recipient's (`campaign_id` and `recipient_id`
/// null) plus `one_off_message_id` and `instance_id`.
pub const ONE_OFF_DATA: &str = "jsonb_build_object('campaign_id', NULL, 'recipient_id', NULL, \
  'one_off_message_id', m.id, 'instance_id', m.instance_id, \
  'contact_id', (SELECT ct.id FROM contacts ct WHERE ct.tenant_id = m.tenant_id AND ct.phone = m.phone), \
  'phone', m.phone, 'variant', NULL, 'message_id', m.message_id, 'status', m.status, 'reason', m.reason, \
  'outcome_unknown', m.outcome_unknown, 'sent_at', m.sent_at, 'delivered_at', m.delivered_at, \
  'read_at', m.read_at, 'replied_at', m.replied_at)";

/// A message the planner queued, at its planned instant.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Queued {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub instance_id: Uuid,
    pub phone: String,
    pub planned_at: Option<DateTime<Utc>>,
}

/// `pending → queued` for the given messages at their planned instants (`(id, at)`).
/// Returns the rows queued (a message no longer pending is left alone).
pub async fn queue(
    db: &impl ConnectionTrait,
    plans: &[(Uuid, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Vec<Queued>, sea_orm::DbErr> {
    if plans.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Value> = plans.iter().map(|(id, at)| json!({"id": id, "at": at})).collect();
    Queued::find_by_statement(stmt(
        "UPDATE messages m SET status = 'queued', planned_at = x.at, queued_at = $2 \
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, at timestamptz) \
         WHERE m.id = x.id AND m.status = 'pending' \
         RETURNING m.id, m.tenant_id, m.instance_id, m.phone, m.planned_at",
        vec![Value::Array(rows).into(), now.into()],
    ))
    .all(db)
    .await
}

/// `pending` messages that cannot be planned now (their instance's day is used up) become
/// due again at `at` (the instance's next local day). Status unchanged.
pub async fn wait_until(db: &impl ConnectionTrait, ids: &[Uuid], at: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    db.execute(stmt(
        "UPDATE messages SET due_at = $2 \
         WHERE id IN (SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) AS x) AND status = 'pending'",
        vec![json!(ids).into(), at.into()],
    ))
    .await?;
    Ok(())
}

/// `queued` rows queued before `cutoff` (at most `limit`, oldest first) are stamped queued
/// again at `now` and returned, for their jobs to be queued again (their queue entry may be
/// lost; a duplicate is dropped at claim). Status unchanged.
pub async fn restamp_queued(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Queued>, sea_orm::DbErr> {
    Queued::find_by_statement(stmt(
        "UPDATE messages SET queued_at = $2 WHERE id IN ( \
           SELECT id FROM messages WHERE status = 'queued' AND queued_at < $1 \
           ORDER BY queued_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
         RETURNING id, tenant_id, instance_id, phone, planned_at",
        vec![cutoff.into(), now.into(), limit.into()],
    ))
    .all(db)
    .await
}

/// A message this worker now owns (`sending`), with what sending it needs: its instance's
/// gateway coordinates, its tenant's time zone, and the contact with its phone, if any.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Claimed {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub instance_id: Uuid,
    pub phone: String,
    /// The text as a template, rendered at the send instant with `variables`.
    pub text: Option<String>,
    pub variables: Value,
    pub media: Option<Value>,
    pub api_url: String,
    pub instance_name: String,
    pub api_key_enc: String,
    pub timezone: String,
    pub contact_name: Option<String>,
    pub contact_fields: Option<Value>,
    /// The instant the planner queued it for (UTC): what `arauto_pacing_lateness_seconds`
    /// counts from, however often its queue entry was deferred.
    pub planned_at: Option<DateTime<Utc>>,
}

/// `queued → sending` for message `id`, committed before it is sent. A message whose phone
/// belongs to an opted-out contact becomes `queued → skipped` (`opted_out`) instead, unless
/// it is `transactional`, and is not returned. `None`: nothing to send (already taken, a
/// stale queue entry, or skipped).
pub async fn claim(db: &impl ConnectionTrait, id: Uuid, now: DateTime<Utc>) -> Result<Option<Claimed>, sea_orm::DbErr> {
    let opted_out = "(NOT m.transactional AND EXISTS (SELECT 1 FROM contacts ct WHERE ct.tenant_id = m.tenant_id \
                     AND ct.phone = m.phone AND ct.opted_out_at IS NOT NULL))";
    Claimed::find_by_statement(stmt(
        format!(
            "WITH taken AS ( \
               UPDATE messages m SET \
                 status = CASE WHEN {opted_out} THEN 'skipped' ELSE 'sending' END, \
                 reason = CASE WHEN {opted_out} THEN 'opted_out' ELSE NULL END, \
                 sending_at = $2 \
               WHERE m.id = $1 AND m.status = 'queued' \
               RETURNING m.*) \
             SELECT t.id, t.tenant_id, t.instance_id, t.phone, t.text, t.variables, t.media, t.planned_at, \
               i.api_url, i.instance_name, i.api_key_enc, tn.timezone, ct.name AS contact_name, ct.fields AS contact_fields \
             FROM taken t JOIN instances i ON i.id = t.instance_id JOIN tenants tn ON tn.id = t.tenant_id \
               LEFT JOIN contacts ct ON ct.tenant_id = t.tenant_id AND ct.phone = t.phone \
             WHERE t.status = 'sending'"
        ),
        vec![id.into(), now.into()],
    ))
    .one(db)
    .await
}

/// One send's result for a message (see [`record`]).
#[derive(Debug, Clone)]
pub struct Record {
    pub id: Uuid,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    /// The text sent (the template rendered).
    pub rendered: String,
    /// Requests made to the gateway.
    pub attempts: u32,
    pub gateway_status: Option<u16>,
    pub at: DateTime<Utc>,
    /// For an unsent outcome: when the message is due again.
    pub retry_at: DateTime<Utc>,
}

/// Records a send's outcome: `sending → sent | failed` (`outcome_unknown` for
/// [`Outcome::Unknown`]), or back to `pending`, due again at `retry_at`, when nothing was
/// sent. A late answer (after the sending timeout) corrects a `failed`/`outcome_unknown` row
/// that has no message id yet. `sent` and `failed` write `message.sent` / `message.failed` to
/// the webhook outbox in the same statement; receipts that arrived before the outcome are
/// applied then.
pub async fn record(db: &impl ConnectionTrait, r: &Record) -> Result<(), sea_orm::DbErr> {
    let status = match r.outcome {
        Outcome::Sent => "sent",
        Outcome::Failed | Outcome::Unknown => "failed",
        Outcome::Unsent => "pending",
    };
    let events = enqueue_cte(
        "hooks",
        &format!(
            "SELECT m.tenant_id, CASE m.status WHEN 'sent' THEN 'message.sent' WHEN 'failed' THEN 'message.failed' END \
               AS event_type, {ONE_OFF_DATA} AS data FROM m"
        ),
        "$5::timestamptz",
    );
    db.execute(stmt(
        format!(
            "WITH m AS (UPDATE messages m SET status = $2, outcome_unknown = $3, reason = $4, \
               message_id = $6, rendered = $7, attempts = m.attempts + $8, gateway_status = $9, \
               sent_at = CASE WHEN $2 = 'sent' THEN $5 END, \
               due_at = CASE WHEN $2 = 'pending' THEN $10 ELSE m.due_at END, \
               sending_at = CASE WHEN $2 = 'pending' THEN NULL ELSE m.sending_at END, \
               planned_at = CASE WHEN $2 = 'pending' THEN NULL ELSE m.planned_at END, \
               queued_at = CASE WHEN $2 = 'pending' THEN NULL ELSE m.queued_at END \
             WHERE m.id = $1 AND (m.status = 'sending' \
               OR ($2 IN ('sent', 'failed') AND m.status = 'failed' AND m.outcome_unknown AND m.message_id IS NULL)) \
             RETURNING m.*), \
             {events} SELECT 1"
        ),
        vec![
            r.id.into(),
            status.into(),
            (r.outcome == Outcome::Unknown).into(),
            r.reason.clone().into(),
            r.at.into(),
            r.message_id.clone().into(),
            r.rendered.replace('\0', "").into(),
            (r.attempts as i32).into(),
            r.gateway_status.map(i32::from).into(),
            r.retry_at.into(),
        ],
    ))
    .await?;
    if let Some(message_id) = &r.message_id {
        apply_early_receipts(db, Some(std::slice::from_ref(message_id))).await?;
    }
    Ok(())
}

/// `sending → failed` with `outcome_unknown` for messages left `sending` since before
/// `cutoff` (a crash between claim and outcome): never resent; a late answer or a receipt
/// naming the message corrects it. Returns how many.
pub async fn time_out_sending(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE messages SET status = 'failed', outcome_unknown = true, reason = 'sending timed out' \
             WHERE status = 'sending' AND sending_at < $1",
            vec![cutoff.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// A receipt naming `message_id` applied to the tenant's one-off message with that id, if
/// there is one, with the same effects as on a recipient ([`crate::recipients::receipt_effects`]: monotonic,
/// duplicates harmless, an `outcome_unknown` failure proven sent, an `ERROR` after the
/// gateway accepted it `failed` with `failed_after_send`). Returns whether one was found.
/// An unknown id is kept by [`crate::recipients::apply_receipt`], which both kinds share.
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
        receipt_statement("messages", ONE_OFF_DATA),
        vec![
            tenant_id.into(),
            message_id.into(),
            delivered_at.into(),
            read_at.into(),
            at.into(),
            error.into(),
        ],
    )
    .await?;
    Ok(done > 0)
}

/// Applies kept receipts (`early_receipts`) whose one-off message now has the message id —
/// those of `message_ids`, or all when `None` (the beat's safety net) — and forgets them.
/// Returns how many were applied.
pub async fn apply_early_receipts(
    db: &impl ConnectionTrait,
    message_ids: Option<&[String]>,
) -> Result<u64, sea_orm::DbErr> {
    let done = crate::db::count(
        db,
        early_receipts_statement("messages", ONE_OFF_DATA),
        vec![message_ids.map(|ids| json!(ids)).into()],
    )
    .await?;
    Ok(done.max(0) as u64)
}

/// An inbound message from `phone` at `at`: `replied_at` on the latest one-off message sent
/// to that phone within [`REPLY_WINDOW_DAYS`], once, unless a campaign recipient was sent to
/// it later (then [`crate::recipients::record_reply`] marks that one); each such message
/// writes `reply.received` (with `text`, `received_at`, `first_reply`). Returns whether one
/// was marked.
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
            "SELECT m.tenant_id, 'reply.received' AS event_type, {ONE_OFF_DATA} || jsonb_build_object('text', $5::text, \
               'received_at', $3::timestamptz, 'first_reply', EXISTS (SELECT 1 FROM marked)) AS data FROM target m"
        ),
        "$3::timestamptz",
    );
    let done = crate::db::count(
        db,
        format!(
            "WITH target AS ( \
               SELECT * FROM messages WHERE tenant_id = $1 AND phone = $2 AND status = 'sent' AND sent_at >= $4 \
                 AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.tenant_id = $1 AND r.phone = $2 \
                                 AND r.status = 'sent' AND r.sent_at > messages.sent_at) \
               ORDER BY sent_at DESC LIMIT 1), \
             marked AS (UPDATE messages m SET replied_at = $3 FROM target t WHERE m.id = t.id AND m.replied_at IS NULL \
               RETURNING m.id), \
             {events} SELECT count(*) AS n FROM marked"
        ),
        vec![
            tenant_id.into(),
            phone.into(),
            at.into(),
            (at - chrono::Duration::days(REPLY_WINDOW_DAYS)).into(),
            text.map(|t| t.replace('\0', "")).into(),
        ],
    )
    .await?;
    Ok(done > 0)
}

/// The user's cancel of the tenant's message `id`: `pending | queued → cancelled`, in one
/// statement with the row locked. A job already queued for it is dropped at its claim
/// (`queued → sending` only), so nothing leaves once this returns. `None` when the tenant has
/// no such message; else whether it was cancelled now and the status it is in.
pub async fn cancel(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<(bool, super::MessageStatus)>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Cancelled {
        status: super::MessageStatus,
        changed: i64,
    }
    let row = Cancelled::find_by_statement(stmt(
        "WITH old AS (SELECT id, status FROM messages WHERE tenant_id = $1 AND id = $2 FOR UPDATE), \
         done AS (UPDATE messages m SET status = 'cancelled', reason = 'cancelled by the user' FROM old \
                  WHERE m.id = old.id AND old.status IN ('pending', 'queued') RETURNING m.id) \
         SELECT CASE WHEN EXISTS (SELECT 1 FROM done) THEN 'cancelled' ELSE old.status END AS status, \
                (SELECT count(*) FROM done) AS changed FROM old",
        vec![tenant_id.into(), id.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(|r| (r.changed > 0, r.status)))
}

/// The reason a message that expired before it could leave is `failed` with.
pub const EXPIRED: &str = "expired";

/// `pending | queued → failed` (`expired`) for messages whose `expires_at` has come by `now`
/// (the beat, every tick); a queued job of one is dropped at its claim. Writes
/// `message.failed` for each. Returns how many expired.
pub async fn expire(db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = crate::db::count(
        db,
        format!(
            "WITH m AS (UPDATE messages r SET status = 'failed', reason = '{EXPIRED}' \
                        WHERE r.expires_at <= $1 AND r.status IN ('pending', 'queued') RETURNING r.*), \
             {} SELECT count(*) AS n FROM m",
            enqueue_cte(
                "hooks",
                &format!("SELECT m.tenant_id, 'message.failed' AS event_type, {ONE_OFF_DATA} AS data FROM m"),
                "$1"
            )
        ),
        vec![now.into()],
    )
    .await?;
    Ok(done.max(0) as u64)
}
