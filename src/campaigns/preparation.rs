//! Instant start (PRODUCT §4 `preparing`, §10: `start` answers in under 200 ms at any
//! audience size): `start` only moves the campaign `draft → preparing`; its audience is
//! resolved into recipients here, in the background, chunk by chunk.
//!
//! A preparation first sets up its lanes ([`super::lanes`]): ranges of the tenant's
//! contacts, in `(created_at, id)` order, resolved at once by as many preparers (up to
//! [`LANES`]; one lane for an audience of a few chunks, numbered densely from 1). Lane `k`
//! numbers its recipients from `k × LANE_STRIDE + 1`, so positions follow the contacts'
//! order across lanes (the send order) and never collide; they are not shown.
//!
//! Each chunk is one transaction that shares the campaign row (`FOR SHARE`), locks its lane,
//! writes the lane's next recipients after its cursor and records the new cursor, so a crash
//! resumes every lane from its last committed chunk without duplicates (and any number of
//! preparers may race: a lane is written by one at a time). Pause and cancel update the
//! campaign row, so they wait for the chunks in hand and the next chunks see them: a paused
//! campaign keeps being prepared (nothing is sent while it is resolved) and stays paused; a
//! cancelled one stops, and its recipients written so far are cancelled with it. The
//! preparer that finds every lane finished moves the campaign on ([`repo::prepared`]).
//!
//! Who prepares: the API process that answered `start` (a task it spawns), and the beat
//! leader, which takes up every unfinished preparation each tick (a restarted API's).
//! Contacts created or added to the audience while it is resolved may or may not be
//! included (the audience is the one at `start`).

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::domain::CampaignStatus;
use super::lanes;
use super::repo::{self, Hold};
use crate::audit::{self, Event};
use crate::clock::SharedClock;
use crate::constraints::{violation, Violation, ONE_RECIPIENT_PER_PHONE};
use crate::recipients::{self, RepeatedPhone};

/// Recipients written per transaction: large enough that a chunk's round trips do not
/// count, small enough that a pause or cancel waits at most a fraction of a second for the
/// chunks in hand.
pub const CHUNK: i64 = 20_000;

/// Lanes a large audience is resolved over at once: one per core Postgres can give a
/// preparation (each lane's chunk is CPU-bound in its backend: index upkeep, the key
/// check, the membership probes). Two doubled the rate on a 2-core machine.
pub const LANES: i64 = 2;

/// Positions each lane may number (lane `k` from `k × LANE_STRIDE + 1`): four lanes of
/// 536,870,912 recipients fit the `integer` column.
pub const LANE_STRIDE: i64 = 1 << 29;

/// What one step of a preparation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A chunk was written; more may follow.
    More,
    /// The audience is resolved; the campaign is now in this status (`active`, `scheduled`,
    /// `paused`, or `completed` when nobody was left to send to).
    Ready(CampaignStatus),
    /// Nothing to do: already prepared, cancelled, or every unfinished lane is held by
    /// another preparer.
    Idle,
}

/// Sets up the lanes of campaign `campaign_id` unless it has them: the audience's size
/// (`audience_total`, for progress) and `LANES` ranges of the tenant's contacts when they
/// fill more than `2 × LANES` chunks of `chunk`, else one. False when the campaign has
/// nothing to prepare (already prepared, cancelled).
pub async fn set_up(db: &DatabaseConnection, campaign_id: Uuid, chunk: i64) -> Result<bool, sea_orm::DbErr> {
    if lanes::exist(db, campaign_id).await? {
        return Ok(true);
    }
    let txn = db.begin().await?;
    let Some(c) = repo::lock_preparing(&txn, campaign_id, Hold::Exclusive).await? else {
        return Ok(false);
    };
    // Another preparer may have set them up while this one waited for the row.
    if !lanes::exist(&txn, campaign_id).await? {
        crate::db::without_jit(&txn).await?;
        let total = recipients::audience_size(&txn, c.tenant_id, &c.audience).await?;
        let contacts = crate::contacts::counts::of(&txn, c.tenant_id).await? as i64;
        let bounds = if contacts > 2 * LANES * chunk {
            recipients::contact_bounds(&txn, c.tenant_id, contacts, LANES).await?
        } else {
            vec![]
        };
        lanes::create(&txn, campaign_id, &bounds, LANE_STRIDE).await?;
        repo::set_audience_total(&txn, campaign_id, total).await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// One chunk (one transaction) of campaign `campaign_id`'s preparation: at most `chunk`
/// recipients written in the first lane no other preparer holds (lanes set up first, see
/// [`set_up`]); when every lane is finished, the campaign moves on (see [`finish`]).
pub async fn prepare_chunk(
    db: &DatabaseConnection,
    clock: &SharedClock,
    campaign_id: Uuid,
    chunk: i64,
) -> Result<Step, sea_orm::DbErr> {
    if !set_up(db, campaign_id, chunk).await? {
        return Ok(Step::Idle);
    }
    match write_chunk(db, clock, campaign_id, chunk, RepeatedPhone::Refused).await {
        Err(e) if violation(&e) == Some(Violation::Unique(ONE_RECIPIENT_PER_PHONE)) => {
            // A phone moved to a contact not yet resolved from one already resolved: the
            // chunk (rolled back) is written again, leaving that contact out.
            tracing::info!(%campaign_id, "a phone of the chunk already has a recipient: written again without it");
            write_chunk(db, clock, campaign_id, chunk, RepeatedPhone::LeftOut).await
        }
        step => step,
    }
}

/// [`prepare_chunk`]'s transaction, once the lanes are set up.
async fn write_chunk(
    db: &DatabaseConnection,
    clock: &SharedClock,
    campaign_id: Uuid,
    chunk: i64,
    repeated: RepeatedPhone,
) -> Result<Step, sea_orm::DbErr> {
    let txn = db.begin().await?;
    crate::db::without_jit(&txn).await?;
    let Some(c) = repo::lock_preparing(&txn, campaign_id, Hold::Share).await? else {
        return Ok(Step::Idle);
    };
    let Some(lane) = lanes::take(&txn, campaign_id).await? else {
        let unfinished = lanes::unfinished(&txn, campaign_id).await?;
        txn.commit().await?;
        return match unfinished {
            0 => finish(db, clock, campaign_id).await,
            _ => Ok(Step::Idle),
        };
    };
    // A lane never numbers past its stride (a bound no real audience reaches).
    let limit = chunk.min(LANE_STRIDE - lane.resolved);
    let written = match recipients::resolve_chunk(
        &txn,
        c.tenant_id,
        c.id,
        &c.audience,
        lane.range(),
        lane.next_position(),
        limit,
        repeated,
    )
    .await
    {
        Ok(written) => written,
        Err(e) => {
            // Rolled back before the caller writes the chunk again: dropped, the transaction
            // would be rolled back only once its connection is back in the pool, and until
            // then it holds the lane, which the second try would skip as taken.
            let _ = txn.rollback().await;
            return Err(e);
        }
    };
    let full = lane.resolved + written.rows >= LANE_STRIDE;
    if full {
        tracing::error!(%campaign_id, lane = lane.lane, "a lane used up its positions; the rest of its range is left out");
    }
    let done = written.rows < limit || full;
    lanes::advance(&txn, c.id, lane.lane, written.rows, written.cursor, done).await?;
    txn.commit().await?;
    Ok(Step::More)
}

/// Moves campaign `campaign_id` on once every lane is finished (see [`repo::prepared`]),
/// records `campaign.prepared` and drops the lanes; `Idle` when a lane is unfinished or
/// another preparer finished it first.
pub async fn finish(db: &DatabaseConnection, clock: &SharedClock, campaign_id: Uuid) -> Result<Step, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let Some(c) = repo::lock_preparing(&txn, campaign_id, Hold::Exclusive).await? else {
        return Ok(Step::Idle);
    };
    if lanes::unfinished(&txn, campaign_id).await? > 0 {
        return Ok(Step::Idle);
    }
    let now: DateTime<Utc> = clock.now();
    let recipients = lanes::resolved(&txn, campaign_id).await?;
    let status = repo::prepared(&txn, c.id, recipients, now).await?;
    let completed = repo::complete_finished(&txn, &[c.id], now).await? > 0;
    lanes::clear(&txn, campaign_id).await?;
    let event = Event::new("campaign.prepared", "campaign", c.id).with(json!({"recipients": recipients}));
    audit::record(&txn, c.tenant_id, None, now, event).await?;
    txn.commit().await?;
    tracing::info!(%campaign_id, recipients, ?status, "audience resolved");
    Ok(match (completed, status) {
        (true, _) => Step::Ready(CampaignStatus::Completed),
        (false, Some(s)) => Step::Ready(s),
        (false, None) => Step::Idle,
    })
}

/// Resolves the audience of campaign `campaign_id` to the end, `chunk` recipients per
/// transaction, its lanes at once (see the module docs). `Ready` when this call finished
/// it; `Idle` when there was nothing to do or another preparer holds what is left. Errors
/// are the database's; what was committed stays.
pub async fn prepare(
    db: &DatabaseConnection,
    clock: &SharedClock,
    campaign_id: Uuid,
    chunk: i64,
) -> Result<Step, sea_orm::DbErr> {
    if !set_up(db, campaign_id, chunk).await? {
        return Ok(Step::Idle);
    }
    let preparers = (0..LANES).map(|_| async move {
        loop {
            match prepare_chunk(db, clock, campaign_id, chunk).await? {
                Step::More => continue,
                done => return Ok::<_, sea_orm::DbErr>(done),
            }
        }
    });
    let steps = try_join_all(preparers).await?;
    Ok(steps
        .into_iter()
        .find(|s| matches!(s, Step::Ready(_)))
        .unwrap_or(Step::Idle))
}

/// Prepares `campaign_id` in a background task (errors are logged: the beat takes the
/// campaign up again at its next tick).
pub fn spawn(db: DatabaseConnection, clock: SharedClock, campaign_id: Uuid) {
    tokio::spawn(async move {
        if let Err(e) = prepare(&db, &clock, campaign_id, CHUNK).await {
            tracing::warn!(error = %e, %campaign_id, "preparing the audience failed; the beat will retry");
        }
    });
}

/// Finishes every unfinished preparation (at most `limit` campaigns, oldest first): the
/// beat's recovery for a preparer that died. Returns how many it finished.
pub async fn resume_unfinished(
    db: &DatabaseConnection,
    clock: &SharedClock,
    limit: u64,
) -> Result<u64, sea_orm::DbErr> {
    let mut finished = 0;
    for id in repo::unprepared(db, limit).await? {
        if let Step::Ready(_) = prepare(db, clock, id, CHUNK).await? {
            finished += 1;
        }
    }
    Ok(finished)
}

/// Recipients written so far for campaign `c`: while its audience is resolved, the sum of
/// its lanes' (a preparation finished or cancelled has folded them into
/// `audience_resolved`, as have preparations from before the lanes).
pub async fn resolved(
    db: &impl sea_orm::ConnectionTrait,
    c: &crate::entities::campaigns::Model,
) -> Result<i64, sea_orm::DbErr> {
    Ok(match c.audience_ready_at {
        None => c.audience_resolved.max(lanes::resolved(db, c.id).await?),
        Some(_) => c.audience_resolved,
    })
}

/// The progress of a preparation as stats show it: `{resolved, total}` recipients (the
/// total counted when the preparation began; contacts added to the audience meanwhile may
/// make `resolved` pass it).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Progress {
    pub resolved: u64,
    pub total: Option<u64>,
    /// When the audience was resolved; `null` while it is being resolved.
    pub ready_at: Option<DateTime<Utc>>,
}
