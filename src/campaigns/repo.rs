//! The campaign state machine's one owner: every statement that changes a campaign's
//! `status` or `next_send_at` is a named function here, with its guard (the from-states) in
//! its `WHERE`. `lifecycle` (the API) and the engine (beat, workers) call these; no other
//! file writes `UPDATE campaigns` (CI checks it).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, Order, QueryFilter, Set};
use serde_json::{json, Value};
use uuid::Uuid;

use super::domain::ValidCampaign;
use super::domain::{CampaignStatus, Messages};
use super::recurrence::RecurrenceSpec;
use crate::calendar::ScheduleSpec;
use crate::db::{page_sorted, scoped, stmt};
use crate::entities::campaigns;
use crate::pagination::{Page, Pagination};
use crate::recipients;
use crate::webhooks::outbox::{enqueue_cte, CAMPAIGN_DATA};
use crate::webhooks::EventType;

/// Runs `update` (an `UPDATE campaigns c …` without `RETURNING`, with `values` bound) and,
/// in the same statement, writes `event` (if any) to the webhook outbox for each campaign it
/// moved, dated by the SQL `at`. Returns how many campaigns moved.
async fn update_with_event(
    db: &impl ConnectionTrait,
    update: &str,
    mut values: Vec<sea_orm::Value>,
    event: Option<EventType>,
    at: &str,
) -> Result<u64, sea_orm::DbErr> {
    values.push(event.map(EventType::as_str).into());
    let event_sql = format!("${}::text", values.len());
    update_with_events(db, update, values, &event_sql, at).await
}

/// [`update_with_event`] with the event type as SQL over each moved row `c` (a `text`, NULL
/// for none): one statement may then write different events for different rows.
async fn update_with_events(
    db: &impl ConnectionTrait,
    update: &str,
    values: Vec<sea_orm::Value>,
    event_sql: &str,
    at: &str,
) -> Result<u64, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Moved {
        n: i64,
    }
    let source = format!("SELECT c.tenant_id, {event_sql} AS event_type, {CAMPAIGN_DATA} AS data FROM moved c");
    let moved = Moved::find_by_statement(stmt(
        format!(
            "WITH moved AS ({update} RETURNING c.*), {} SELECT count(*) AS n FROM moved",
            enqueue_cte("hooks", &source, at)
        ),
        values,
    ))
    .one(db)
    .await?;
    Ok(moved.map_or(0, |m| m.n as u64))
}

/// `draft → preparing`, started at `now`, first send not before `first`: its audience is
/// then resolved in the background ([`crate::campaigns::preparation`]). True when it moved
/// (false when it was no longer a draft). Writes `campaign.started` to the webhook outbox.
pub async fn start(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    now: DateTime<Utc>,
    first: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let moved = update_with_event(
        db,
        "UPDATE campaigns c SET status = 'preparing', started_at = $2, next_send_at = $3, paused_reason = NULL, \
           audience_on = ($3 AT TIME ZONE COALESCE(c.schedule->>'timezone', 'UTC'))::date, audience_total = NULL, audience_resolved = 0, audience_ready_at = NULL, updated_at = $2 \
         WHERE c.id = $1 AND c.status = 'draft'",
        vec![campaign_id.into(), now.into(), first.into()],
        Some(EventType::CampaignStarted),
        "$2",
    )
    .await?;
    Ok(moved == 1)
}

/// A recurring parent's start, `draft → scheduled`: it has no recipients of its own (its
/// audience counts as resolved, empty), and its first occurrence is `first`. True when it
/// moved (false when it was no longer a recurring draft). Writes `campaign.started` to the
/// webhook outbox.
pub async fn start_recurring(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    now: DateTime<Utc>,
    first: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let moved = update_with_event(
        db,
        "UPDATE campaigns c SET status = 'scheduled', started_at = $2, next_occurrence_at = $3, next_send_at = NULL, \
           paused_reason = NULL, audience_total = 0, audience_resolved = 0, audience_ready_at = $2, updated_at = $2 \
         WHERE c.id = $1 AND c.status = 'draft' AND c.recurrence IS NOT NULL",
        vec![campaign_id.into(), now.into(), first.into()],
        Some(EventType::CampaignStarted),
        "$2",
    )
    .await?;
    Ok(moved == 1)
}

/// A paused recurring parent resumed at `now`: `paused → scheduled` with its next
/// occurrence `next` (the first after `now`: missed ones are not caught up), or
/// `→ completed` when the series has none left. Returns the status it ended in, `None`
/// when it was no longer a paused recurring campaign.
pub async fn resume_recurring(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    now: DateTime<Utc>,
    next: Option<DateTime<Utc>>,
) -> Result<Option<CampaignStatus>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Status {
        status: CampaignStatus,
    }
    let row = Status::find_by_statement(stmt(
        "UPDATE campaigns SET status = CASE WHEN $3::timestamptz IS NULL THEN 'completed' ELSE 'scheduled' END, \
           completed_at = CASE WHEN $3::timestamptz IS NULL THEN $2 END, next_occurrence_at = $3, \
           paused_reason = NULL, updated_at = $2 \
         WHERE id = $1 AND status = 'paused' AND recurrence IS NOT NULL RETURNING status",
        vec![campaign_id.into(), now.into(), next.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(|r| r.status))
}

/// A started recurring parent whose next occurrence has come, locked for this tick
/// (`FOR NO KEY UPDATE SKIP LOCKED`: two beats never advance one parent at once).
#[derive(Debug, Clone, FromQueryResult)]
pub struct DueParent {
    pub id: Uuid,
    pub recurrence: RecurrenceSpec,
    pub schedule: ScheduleSpec,
    pub next_occurrence_at: DateTime<Utc>,
    pub occurrence_count: i32,
}

/// Up to `limit` recurring parents whose next occurrence is at or before `now`, oldest
/// occurrence first, locked until the transaction ends.
pub async fn lock_due_parents(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    limit: u64,
) -> Result<Vec<DueParent>, sea_orm::DbErr> {
    DueParent::find_by_statement(stmt(
        "SELECT id, recurrence, schedule, next_occurrence_at, occurrence_count FROM campaigns \
         WHERE status = 'scheduled' AND recurrence IS NOT NULL AND next_occurrence_at <= $1 \
         ORDER BY next_occurrence_at LIMIT $2 FOR NO KEY UPDATE SKIP LOCKED",
        vec![now.into(), (limit as i64).into()],
    ))
    .all(db)
    .await
}

/// Creates the runs of occurrences, given as `[{parent_id, at, local_date, skipped}]`: a
/// child campaign each, with its parent's messages, audience, schedule (without `start_at`)
/// and pacing, named `<parent> — <local date>`; `preparing` from `now` (its audience is
/// resolved then), or, when `skipped`, `cancelled` with reason `skipped_late` and no
/// recipients. An occurrence that already has its run is left alone (the unique
/// `(parent_id, occurrence_at)`). Returns the runs created as `(id, status)`.
pub async fn insert_runs(
    db: &impl ConnectionTrait,
    occurrences: Vec<Value>,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, CampaignStatus)>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Run {
        id: Uuid,
        status: CampaignStatus,
    }
    if occurrences.is_empty() {
        return Ok(vec![]);
    }
    // In the statement that creates them: `campaign.started` for each run created (a
    // skipped occurrence starts nothing) and one audit row per run, by the system (no user).
    let source = format!(
        "SELECT c.tenant_id, CASE WHEN c.status = 'preparing' THEN 'campaign.started' END AS event_type, \
         {CAMPAIGN_DATA} AS data FROM created c"
    );
    let insert: &str =
        "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing, \
           parent_id, occurrence_at, started_at, next_send_at, cancelled_at, cancel_reason, audience_total, \
           audience_ready_at, audience_on, created_at, updated_at) \
         SELECT gen_random_uuid(), p.tenant_id, left(p.name, 187) || ' — ' || r.local_date, p.instance_id, p.instance_ids, \
           CASE WHEN r.skipped THEN 'cancelled' ELSE 'preparing' END, p.messages, p.audience, \
           p.schedule - 'start_at', p.pacing, p.id, r.at, \
           CASE WHEN NOT r.skipped THEN $2 END, CASE WHEN NOT r.skipped THEN $2 END, \
           CASE WHEN r.skipped THEN $2 END, CASE WHEN r.skipped THEN 'skipped_late' END, \
           CASE WHEN r.skipped THEN 0 END, CASE WHEN r.skipped THEN $2 END, r.local_date::date, $2, $2 \
         FROM jsonb_to_recordset($1::jsonb) AS r(parent_id uuid, at timestamptz, local_date text, skipped boolean) \
         JOIN campaigns p ON p.id = r.parent_id \
         ON CONFLICT (parent_id, occurrence_at) DO NOTHING RETURNING *";
    let runs = Run::find_by_statement(stmt(
        format!(
            "WITH created AS ({insert}), {}, \
             audited AS (INSERT INTO audit_logs (id, tenant_id, user_id, action, entity_type, entity_id, details, created_at) \
               SELECT gen_random_uuid(), c.tenant_id, NULL, \
                 CASE WHEN c.status = 'preparing' THEN 'campaign.run' ELSE 'campaign.run_skipped' END, 'campaign', c.id, \
                 jsonb_build_object('parent_id', c.parent_id, 'occurrence_at', c.occurrence_at), $2 \
               FROM created c RETURNING 1) \
             SELECT id, status FROM created",
            enqueue_cte("hooks", &source, "$2")
        ),
        vec![Value::Array(occurrences).into(), now.into()],
    ))
    .all(db)
    .await?;
    Ok(runs.into_iter().map(|r| (r.id, r.status)).collect())
}

/// A new draft `copy` with `source`'s definition (instance, messages, audience, schedule,
/// pacing, recurrence) named `name`: nothing of its run (status, counts, parent) is copied.
pub async fn insert_copy(
    db: &impl ConnectionTrait,
    source: Uuid,
    copy: Uuid,
    name: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing, \
           recurrence, created_at, updated_at) \
         SELECT $1, tenant_id, $3, instance_id, instance_ids, 'draft', messages, audience, schedule, pacing, recurrence, $4, $4 \
         FROM campaigns WHERE id = $2",
        vec![copy.into(), source.into(), name.into(), now.into()],
    ))
    .await?;
    Ok(())
}

/// Moves recurring parents on, given as `[{id, next_occurrence_at, occurrences}]`: the next
/// occurrence and how many more were seen; a parent with no next occurrence has ended its
/// series and becomes `completed` (its last run may still be sending). Only `scheduled`
/// parents move (a pause or cancel meanwhile wins).
pub async fn advance_parents(
    db: &impl ConnectionTrait,
    advanced: Vec<Value>,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    if advanced.is_empty() {
        return Ok(0);
    }
    // A parent whose series ended writes `campaign.completed` in the same statement.
    update_with_events(
        db,
        "UPDATE campaigns c SET next_occurrence_at = u.next_occurrence_at, \
               occurrence_count = c.occurrence_count + u.occurrences, updated_at = $2, \
               status = CASE WHEN u.next_occurrence_at IS NULL THEN 'completed' ELSE c.status END, \
               completed_at = CASE WHEN u.next_occurrence_at IS NULL THEN $2 ELSE c.completed_at END \
             FROM jsonb_to_recordset($1::jsonb) AS u(id uuid, next_occurrence_at timestamptz, occurrences integer) \
             WHERE c.id = u.id AND c.status = 'scheduled' AND c.recurrence IS NOT NULL",
        vec![Value::Array(advanced).into(), now.into()],
        "CASE WHEN c.status = 'completed' THEN 'campaign.completed' END",
        "$2",
    )
    .await
}

/// A campaign whose audience is still to resolve (`preparing`, or paused while preparing).
/// Its `audience` carries `on`, the local date its date filters match (see
/// [`crate::recipients`]).
#[derive(Debug, Clone, FromQueryResult)]
pub struct Preparing {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub audience: Value,
    pub audience_total: Option<i64>,
}

/// How a transaction holds a campaign under preparation: [`Hold::Share`] for a chunk (any
/// number of lanes at once), [`Hold::Exclusive`] to set up the lanes, to finish, or to
/// pause, resume or cancel it (waiting for the chunks in hand, which the next chunks then
/// see).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    Share,
    Exclusive,
}

/// Takes the preparation gate of campaign `campaign_id` until the transaction ends: a
/// transaction-level advisory lock (key `(PREPARATION_GATE, hashtext(id))`), shared or
/// exclusive as `hold`. Row locks alone would starve a pause: a `FOR SHARE` request on a row
/// that is only share-locked is granted at once, ahead of an `UPDATE` already waiting, so
/// two lanes taking turns would hold a cancel off until the end of the preparation; the
/// lock manager queues an advisory lock's requests in order. Must run inside a transaction.
pub async fn preparation_gate(db: &impl ConnectionTrait, campaign_id: Uuid, hold: Hold) -> Result<(), sea_orm::DbErr> {
    let lock = match hold {
        Hold::Share => "pg_advisory_xact_lock_shared",
        Hold::Exclusive => "pg_advisory_xact_lock",
    };
    db.execute(stmt(
        format!("SELECT {lock}({PREPARATION_GATE}, hashtext($1::text))"),
        vec![campaign_id.into()],
    ))
    .await?;
    Ok(())
}

/// The first key of the preparation gates' advisory locks (`'prep'` in ASCII); the
/// two-key form keeps them apart from any single-key advisory lock.
const PREPARATION_GATE: i32 = 0x7072_6570;

/// Locks campaign `campaign_id` for a step of its preparation, behind its preparation gate
/// (see [`preparation_gate`]; waiting for a pause, cancel or other exclusive holder to
/// commit); `None` when it has nothing left to prepare or was cancelled.
pub async fn lock_preparing(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    hold: Hold,
) -> Result<Option<Preparing>, sea_orm::DbErr> {
    preparation_gate(db, campaign_id, hold).await?;
    let lock = match hold {
        Hold::Share => "FOR SHARE",
        Hold::Exclusive => "FOR NO KEY UPDATE",
    };
    Preparing::find_by_statement(stmt(
        format!(
            "SELECT id, tenant_id, audience || jsonb_build_object('on', audience_on) AS audience, audience_total \
             FROM campaigns WHERE id = $1 AND audience_ready_at IS NULL AND status IN ('preparing', 'paused') {lock}"
        ),
        vec![campaign_id.into()],
    ))
    .one(db)
    .await
}

/// Campaigns whose preparation is unfinished (oldest first, at most `limit`): a preparer
/// that died (a restarted API) leaves them for the beat to finish.
pub async fn unprepared(db: &impl ConnectionTrait, limit: u64) -> Result<Vec<Uuid>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Id {
        id: Uuid,
    }
    let ids = Id::find_by_statement(stmt(
        "SELECT id FROM campaigns WHERE audience_ready_at IS NULL AND status <> 'draft' \
           AND status IN ('preparing', 'paused') ORDER BY created_at, id LIMIT $1",
        vec![(limit as i64).into()],
    ))
    .all(db)
    .await?;
    Ok(ids.into_iter().map(|r| r.id).collect())
}

/// The preparation's size, counted when its lanes were set up: `audience_total`.
pub async fn set_audience_total(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    total: i64,
) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE campaigns SET audience_total = $2 WHERE id = $1 AND audience_ready_at IS NULL",
        vec![campaign_id.into(), total.into()],
    ))
    .await?;
    Ok(())
}

/// The audience is resolved: `preparing → scheduled` when its `start_at` is ahead or its
/// instance already has an active campaign (the beat promotes it when free), else
/// `→ active` with its first send at `now`; a campaign paused meanwhile stays paused (its
/// resume goes to `active`). `resolved` recipients were written. Returns the status it
/// ended in, `None` when there was nothing to finish.
pub async fn prepared(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    resolved: i64,
    now: DateTime<Utc>,
) -> Result<Option<CampaignStatus>, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Status {
        status: CampaignStatus,
    }
    let row = Status::find_by_statement(stmt(
        "WITH next AS ( \
           SELECT c.id, c.status AS was, CASE \
             WHEN c.status <> 'preparing' THEN c.status \
             WHEN COALESCE((c.schedule->>'start_at')::timestamptz, '-infinity') > $2 THEN 'scheduled' \
             WHEN EXISTS (SELECT 1 FROM active_numbers a WHERE a.instance_id = ANY(c.instance_ids) \
                          AND a.campaign_id <> c.id) THEN 'scheduled' \
             ELSE 'active' END AS status \
           FROM campaigns c WHERE c.id = $1 AND c.audience_ready_at IS NULL AND c.status IN ('preparing', 'paused')) \
         UPDATE campaigns c SET audience_ready_at = $2, audience_resolved = $3, updated_at = $2, status = next.status, \
           next_send_at = CASE WHEN next.was = 'preparing' AND next.status = 'active' THEN $2 ELSE c.next_send_at END \
         FROM next WHERE c.id = next.id RETURNING c.status",
        vec![campaign_id.into(), now.into(), resolved.into()],
    ))
    .one(db)
    .await?;
    Ok(row.map(|r| r.status))
}

/// A user's control: `from → to` for pause (`paused_reason = 'user'`), cancel
/// (`cancelled_at`, no next send) and resume (`active` or `scheduled`; pacing starts from
/// `now`, nothing is caught up; `preparing` again while its audience is unresolved).
/// Guarded by `from` being still current; from `preparing` or `paused`, behind the
/// campaign's preparation gate ([`preparation_gate`]; `db` must be a transaction). True when it moved;
/// the database error when resuming onto a busy instance. A pause writes `campaign.paused`
/// to the webhook outbox.
pub async fn control(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    from: CampaignStatus,
    to: CampaignStatus,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    // A recurring campaign paused or cancelled has no next occurrence (resume computes one).
    let effects = match to {
        CampaignStatus::Paused => ", paused_reason = 'user', next_occurrence_at = NULL",
        // A preparation cut short keeps its progress (its lanes go, see `lifecycle`).
        CampaignStatus::Cancelled => {
            ", cancelled_at = $4, next_send_at = NULL, next_occurrence_at = NULL, audience_resolved = GREATEST(c.audience_resolved, \
               (SELECT COALESCE(sum(l.resolved), 0) FROM audience_lanes l WHERE l.campaign_id = c.id))"
        }
        _ => ", paused_reason = NULL, next_send_at = $4",
    };
    // A resume before the audience is resolved goes back to `preparing`.
    let status = match to {
        CampaignStatus::Active | CampaignStatus::Scheduled => {
            "CASE WHEN audience_ready_at IS NULL THEN 'preparing' ELSE $3 END"
        }
        _ => "$3",
    };
    let event = (to == CampaignStatus::Paused).then_some(EventType::CampaignPaused);
    // Its audience may be being resolved: wait for the chunks in hand, ahead of the next.
    if matches!(from, CampaignStatus::Preparing | CampaignStatus::Paused) {
        preparation_gate(db, campaign_id, Hold::Exclusive).await?;
    }
    let moved = update_with_event(
        db,
        &format!(
            "UPDATE campaigns c SET status = {status}, updated_at = $4{effects} WHERE c.id = $1 AND c.status = $2"
        ),
        vec![campaign_id.into(), from.as_str().into(), to.as_str().into(), now.into()],
        event,
        "$4",
    )
    .await?;
    Ok(moved == 1)
}

/// `scheduled → active` once its start has come (the beat). Fails with the database error
/// when its instance is busy with another active campaign; it then waits.
pub async fn promote(db: &impl ConnectionTrait, campaign_id: Uuid, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE campaigns SET status = 'active', next_send_at = $2, updated_at = $2 \
             WHERE id = $1 AND status = 'scheduled'",
            vec![campaign_id.into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// The campaign's next send waits until `at` (its instance's day is used up).
pub async fn wait_until(db: &impl ConnectionTrait, campaign_id: Uuid, at: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE campaigns SET next_send_at = $2 WHERE id = $1 AND status = 'active'",
        vec![campaign_id.into(), at.into()],
    ))
    .await?;
    Ok(())
}

/// After a tick planned them: each campaign's next send instant and planned count, given as
/// `[{id, next_send_at, planned, numbers?}]`, `numbers` a pool's next instant per number
/// (one statement for all: a tick's cost is its round trips).
pub async fn advance_planned(db: &impl ConnectionTrait, advanced: Vec<Value>) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE campaigns c SET next_send_at = u.next_send_at, planned_count = c.planned_count + u.planned, \
           number_next_send_at = COALESCE(u.numbers, c.number_next_send_at) \
         FROM jsonb_to_recordset($1::jsonb) AS u(id uuid, next_send_at timestamptz, planned bigint, numbers jsonb) \
         WHERE c.id = u.id",
        vec![Value::Array(advanced).into()],
    ))
    .await?;
    Ok(())
}

/// `active | scheduled → paused` with `reason`; its queued jobs go back to `pending`.
/// Returns whether it paused (false when it was no longer running). Writes
/// `campaign.paused` to the webhook outbox. Never a recurring parent: it sends nothing
/// itself, its runs are paused instead.
pub async fn pause_if_active(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    reason: &str,
) -> Result<bool, sea_orm::DbErr> {
    let paused = update_with_event(
        db,
        "UPDATE campaigns c SET status = 'paused', paused_reason = $2, updated_at = now() \
         WHERE c.id = $1 AND c.status IN ('active', 'scheduled') AND c.recurrence IS NULL",
        vec![campaign_id.into(), reason.into()],
        Some(EventType::CampaignPaused),
        "now()",
    )
    .await?;
    if paused == 0 {
        return Ok(false);
    }
    tracing::warn!(%campaign_id, reason, "campaign paused");
    recipients::unqueue_campaign(db, campaign_id).await?;
    Ok(true)
}

/// The last outcomes of a campaign (newest first) say it must stop: more than half of the
/// last 20 failed (with at least 10 sends seen), or the last 5 all failed (PRODUCT §7).
pub fn error_threshold_reached(newest_first_failed: &[bool]) -> bool {
    let last20 = &newest_first_failed[..newest_first_failed.len().min(20)];
    let failures = last20.iter().filter(|f| **f).count();
    let streak = newest_first_failed.len() >= 5 && newest_first_failed[..5].iter().all(|f| *f);
    streak || (last20.len() >= 10 && failures * 2 > last20.len())
}

/// Pauses the campaign with `error_threshold` when its last logged outcomes say so.
pub async fn pause_on_error_threshold(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<bool, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct O {
        failed: bool,
    }
    let recent: Vec<bool> = O::find_by_statement(stmt(
        "SELECT outcome <> 'sent' AS failed FROM send_logs WHERE campaign_id = $1 \
         AND outcome IN ('sent', 'failed', 'outcome_unknown') ORDER BY id DESC LIMIT 20",
        vec![campaign_id.into()],
    ))
    .all(db)
    .await?
    .into_iter()
    .map(|o| o.failed)
    .collect();
    if error_threshold_reached(&recent) {
        return pause_if_active(db, campaign_id, "error_threshold").await;
    }
    Ok(false)
}

/// What changed, and so which active campaigns must be planned again.
#[derive(Debug, Clone, Copy)]
pub enum Replan {
    /// The tenant's calendar (a holiday added or deleted).
    Tenant(Uuid),
    /// The instance's limits (daily limit, warm-up).
    Instance(Uuid),
}

/// Active campaigns waiting for a later instant are planned again from `now` at the next
/// tick: one waiting out a deleted holiday, or the next day under a raised limit, sends within
/// one tick; one whose day became a holiday jumps to its next opening. Returns how many.
pub async fn replan(db: &impl ConnectionTrait, what: Replan, now: DateTime<Utc>) -> Result<u64, sea_orm::DbErr> {
    // A pool's numbers each wait on their own instant (`number_next_send_at`): the changed
    // numbers' instants are forgotten, so they plan from `now` too.
    let (filter, numbers, id) = match what {
        Replan::Tenant(id) => ("tenant_id = $1", "'{}'::jsonb", id),
        Replan::Instance(id) => ("$1 = ANY(instance_ids)", "number_next_send_at - $1::text", id),
    };
    let done = db
        .execute(stmt(
            format!(
                "UPDATE campaigns SET next_send_at = LEAST(next_send_at, $2), number_next_send_at = {numbers} \
                 WHERE {filter} AND status = 'active' AND (next_send_at > $2 OR number_next_send_at <> '{{}}'::jsonb)"
            ),
            vec![id.into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// `active → completed` for the given campaigns whose every recipient is terminal; writes
/// `campaign.completed` to the webhook outbox for each.
pub async fn complete_finished(
    db: &impl ConnectionTrait,
    campaign_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    if campaign_ids.is_empty() {
        return Ok(0);
    }
    update_with_event(
        db,
        "UPDATE campaigns c SET status = 'completed', completed_at = $2, next_send_at = NULL, updated_at = $2 \
         WHERE c.id IN (SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) AS x) AND c.status = 'active' \
           AND c.audience_ready_at IS NOT NULL \
           AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.campaign_id = c.id \
                           AND r.status IN ('pending', 'queued', 'sending'))",
        vec![json!(campaign_ids).into(), now.into()],
        Some(EventType::CampaignCompleted),
        "$2",
    )
    .await
}

/// Inserts `v` as a new `draft` of the tenant, created `now`.
pub async fn insert_draft(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    v: ValidCampaign,
    now: DateTime<Utc>,
) -> Result<campaigns::Model, sea_orm::DbErr> {
    campaigns::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(tenant_id),
        name: Set(v.name),
        instance_id: Set(v.instance_ids[0]),
        instance_ids: Set(v.instance_ids),
        status: Set(CampaignStatus::Draft),
        messages: Set(Messages(v.messages)),
        audience: Set(v.audience),
        schedule: Set(v.schedule),
        pacing: Set(v.pacing),
        paused_reason: Set(None),
        next_send_at: Set(None),
        started_at: Set(None),
        completed_at: Set(None),
        cancelled_at: Set(None),
        planned_count: Set(0),
        audience_total: Set(None),
        audience_resolved: Set(0),
        audience_ready_at: Set(None),
        recurrence: Set(v.recurrence.as_ref().map(|r| r.to_spec())),
        next_occurrence_at: Set(None),
        occurrence_count: Set(0),
        parent_id: Set(None),
        occurrence_at: Set(None),
        cancel_reason: Set(None),
        audience_on: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// Replaces the definition of `draft` with `v`, stamped `now`; `None` when the campaign
/// stopped being a draft meanwhile (the guard and the write are one statement, so a
/// concurrent start wins cleanly).
pub async fn update_draft(
    db: &impl ConnectionTrait,
    draft: campaigns::Model,
    v: ValidCampaign,
    now: DateTime<Utc>,
) -> Result<Option<campaigns::Model>, sea_orm::DbErr> {
    let mut active: campaigns::ActiveModel = draft.into();
    active.name = Set(v.name);
    active.instance_id = Set(v.instance_ids[0]);
    active.instance_ids = Set(v.instance_ids);
    active.messages = Set(Messages(v.messages));
    active.audience = Set(v.audience);
    active.schedule = Set(v.schedule);
    active.pacing = Set(v.pacing);
    active.recurrence = Set(v.recurrence.as_ref().map(|r| r.to_spec()));
    active.updated_at = Set(now);
    match campaigns::Entity::update(active)
        .filter(campaigns::Column::Status.eq(CampaignStatus::Draft))
        .exec(db)
        .await
    {
        Ok(updated) => Ok(Some(updated)),
        Err(sea_orm::DbErr::RecordNotUpdated) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Deletes the campaign if it is still a draft; false when it is not (any more).
pub async fn delete_draft(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<bool, sea_orm::DbErr> {
    let done = campaigns::Entity::delete_many()
        .filter(campaigns::Column::Id.eq(campaign_id))
        .filter(campaigns::Column::Status.eq(CampaignStatus::Draft))
        .exec(db)
        .await?;
    Ok(done.rows_affected > 0)
}

/// A page of the tenant's campaigns, newest first, only those in `status` when given.
pub async fn list(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    status: Option<CampaignStatus>,
    page: &Pagination,
) -> Result<Page<campaigns::Model>, sea_orm::DbErr> {
    let mut query = scoped::<campaigns::Entity>(tenant_id);
    if let Some(status) = status {
        query = query.filter(campaigns::Column::Status.eq(status));
    }
    page_sorted(db, query, campaigns::Column::CreatedAt, Order::Desc, page).await
}

/// A page of the runs of recurring campaign `parent_id` of the tenant, newest occurrence
/// first.
pub async fn runs(
    db: &sea_orm::DatabaseConnection,
    tenant_id: Uuid,
    parent_id: Uuid,
    page: &Pagination,
) -> Result<Page<campaigns::Model>, sea_orm::DbErr> {
    let query = scoped::<campaigns::Entity>(tenant_id).filter(campaigns::Column::ParentId.eq(parent_id));
    page_sorted(db, query, campaigns::Column::OccurrenceAt, Order::Desc, page).await
}

/// The runs of a recurring campaign that are still going (not completed or cancelled):
/// what `cancel?cascade=true` cancels with it.
pub async fn unfinished_runs(
    db: &impl ConnectionTrait,
    parent_id: Uuid,
) -> Result<Vec<campaigns::Model>, sea_orm::DbErr> {
    campaigns::Entity::find()
        .filter(campaigns::Column::ParentId.eq(parent_id))
        .filter(campaigns::Column::Status.is_not_in([CampaignStatus::Completed, CampaignStatus::Cancelled]))
        .all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::error_threshold_reached;

    #[test]
    fn five_failures_in_a_row_stop_a_campaign() {
        assert!(error_threshold_reached(&[true, true, true, true, true]));
        assert!(!error_threshold_reached(&[true, true, true, true, false]));
        assert!(!error_threshold_reached(&[false, true, true, true, true, true]));
    }

    #[test]
    fn more_than_half_of_the_last_twenty_failing_stops_a_campaign() {
        let mut eleven_of_twenty = vec![false; 20];
        for (i, f) in eleven_of_twenty.iter_mut().enumerate() {
            *f = i % 2 == 1 || i == 0;
        }
        eleven_of_twenty[1] = false;
        eleven_of_twenty[2] = true;
        assert_eq!(eleven_of_twenty.iter().filter(|f| **f).count(), 11);
        assert!(error_threshold_reached(&eleven_of_twenty));
        let ten_of_twenty: Vec<bool> = (0..20).map(|i| i % 2 == 1).collect();
        assert!(!error_threshold_reached(&ten_of_twenty));
    }

    #[test]
    fn a_few_early_failures_do_not_stop_a_campaign() {
        assert!(!error_threshold_reached(&[true, false, true, true]));
    }
}
