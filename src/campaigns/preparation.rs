//! Instant start (PRODUCT §4 `preparing`, §10: `start` answers in under 200 ms at any
//! audience size): `start` only moves the campaign `draft → preparing`; its audience is
//! resolved into recipients here, in the background, chunk by chunk.
//!
//! Each chunk is one transaction that locks the campaign row, writes the next recipients
//! after the stored cursor and records the new cursor, so a crash resumes from the last
//! committed chunk without duplicates (and any number of preparers may race: the row lock
//! lets one work at a time). Pause and cancel act between chunks: a paused campaign keeps
//! being prepared (nothing is sent while it is resolved) and stays paused; a cancelled one
//! stops, and its recipients written so far are cancelled with it.
//!
//! Who prepares: the API process that answered `start` (a task it spawns), and the beat
//! leader, which takes up every unfinished preparation each tick (a restarted API's).

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::domain::CampaignStatus;
use super::repo;
use crate::audit::{self, Event};
use crate::clock::SharedClock;
use crate::recipients;

/// Recipients written per transaction: large enough that a chunk's round trips do not
/// count, small enough that a pause or cancel waits at most a fraction of a second for the
/// chunk in hand.
pub const CHUNK: i64 = 20_000;

/// What one step of a preparation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A chunk was written; more may follow.
    More,
    /// The audience is resolved; the campaign is now in this status (`active`, `scheduled`,
    /// `paused`, or `completed` when nobody was left to send to).
    Ready(CampaignStatus),
    /// Nothing to do: already prepared, cancelled, or another preparer holds it.
    Idle,
}

/// One chunk (one transaction) of campaign `campaign_id`'s preparation: at most `chunk`
/// recipients written after the stored cursor; when fewer were left, the campaign moves
/// on (see [`repo::prepared`]).
pub async fn prepare_chunk(
    db: &DatabaseConnection,
    clock: &SharedClock,
    campaign_id: Uuid,
    chunk: i64,
) -> Result<Step, sea_orm::DbErr> {
    let txn = db.begin().await?;
    let Some(c) = repo::lock_preparing(&txn, campaign_id).await? else {
        return Ok(Step::Idle);
    };
    let total = match c.audience_total {
        Some(total) => total,
        None => recipients::audience_size(&txn, c.tenant_id, &c.audience).await?,
    };
    let written = recipients::resolve_chunk(
        &txn,
        c.tenant_id,
        c.id,
        &c.audience,
        c.audience_cursor.as_ref(),
        c.audience_resolved,
        chunk,
    )
    .await?;
    repo::prepared_chunk(&txn, c.id, written.rows, written.cursor, total).await?;
    if written.rows == chunk {
        txn.commit().await?;
        return Ok(Step::More);
    }
    let now = clock.now();
    let status = repo::prepared(&txn, c.id, now).await?;
    let completed = repo::complete_finished(&txn, &[c.id], now).await? > 0;
    let recipients = c.audience_resolved + written.rows;
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
/// transaction (see the module docs). Errors are the database's; what was committed stays.
pub async fn prepare(
    db: &DatabaseConnection,
    clock: &SharedClock,
    campaign_id: Uuid,
    chunk: i64,
) -> Result<Step, sea_orm::DbErr> {
    loop {
        match prepare_chunk(db, clock, campaign_id, chunk).await? {
            Step::More => continue,
            done => return Ok(done),
        }
    }
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
