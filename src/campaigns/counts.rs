//! A campaign's recipient counts, kept by the database (migration
//! `m20261126_000006_recipient_counts`): each statement that writes recipients appends its
//! change per campaign; `fold` merges those deltas into one running total per campaign.
//! Reading sums a campaign's rows, whatever their number, in one snapshot: the answer
//! always equals counting the recipients themselves. Rows are per campaign and message
//! variant (migration `m20261130_000013_variant_counts`), for per-variant results.

use crate::db::stmt;
use crate::recipients::RecipientStatus;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

/// Campaigns folded by one call.
const FOLD_BATCH: i64 = 5_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromQueryResult)]
pub struct Counts {
    pub pending: i64,
    pub queued: i64,
    pub sending: i64,
    pub sent: i64,
    pub failed: i64,
    pub skipped: i64,
    pub cancelled: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
    /// Sent since the instant asked about.
    pub sent_since: i64,
}

/// The summed count columns of a campaign's `recipient_counts` rows.
const SUMS: &str = "COALESCE(sum(pending), 0)::bigint AS pending, COALESCE(sum(queued), 0)::bigint AS queued, \
    COALESCE(sum(sending), 0)::bigint AS sending, COALESCE(sum(sent), 0)::bigint AS sent, \
    COALESCE(sum(failed), 0)::bigint AS failed, COALESCE(sum(skipped), 0)::bigint AS skipped, \
    COALESCE(sum(cancelled), 0)::bigint AS cancelled, COALESCE(sum(delivered), 0)::bigint AS delivered, \
    COALESCE(sum(read), 0)::bigint AS read, COALESCE(sum(replied), 0)::bigint AS replied";

impl Counts {
    /// Recipients in `status`.
    pub fn in_status(&self, status: RecipientStatus) -> i64 {
        match status {
            RecipientStatus::Pending => self.pending,
            RecipientStatus::Queued => self.queued,
            RecipientStatus::Sending => self.sending,
            RecipientStatus::Sent => self.sent,
            RecipientStatus::Failed => self.failed,
            RecipientStatus::Skipped => self.skipped,
            RecipientStatus::Cancelled => self.cancelled,
        }
    }

    /// All the campaign's recipients (every status).
    pub fn total(&self) -> i64 {
        RecipientStatus::ALL.iter().map(|s| self.in_status(*s)).sum()
    }
}

/// The campaign's counts, and how many were sent after `since`.
pub async fn of(db: &impl ConnectionTrait, campaign_id: Uuid, since: DateTime<Utc>) -> Result<Counts, sea_orm::DbErr> {
    let found = Counts::find_by_statement(stmt(
        format!(
            "SELECT {SUMS}, (SELECT count(*) FROM recipients WHERE campaign_id = $1 AND sent_at > $2) AS sent_since \
             FROM recipient_counts WHERE campaign_id = $1"
        ),
        vec![campaign_id.into(), since.into()],
    ))
    .one(db)
    .await?;
    Ok(found.unwrap_or_default())
}

/// One message variant's results (0-based `variant`, as in `messages[variant]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct VariantCounts {
    pub variant: i16,
    pub sent: i64,
    pub failed: i64,
    pub delivered: i64,
    pub read: i64,
    pub replied: i64,
}

/// What `GET /campaigns/{id}/stats` shows from the kept counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Counts by status and receipts, `sent_since` the instant asked about.
    pub counts: Counts,
    /// Results per message variant (variants planned at least once), by variant.
    pub variants: Vec<VariantCounts>,
    /// Recipients failed by an `ERROR` receipt after the gateway accepted their send (a
    /// partial index holds exactly them).
    pub failed_after_send: i64,
    /// The earliest planned instant (UTC) of a `queued` recipient: the next send the beat
    /// has planned; `None` when nothing is queued.
    pub next_queued_at: Option<DateTime<Utc>>,
}

/// The campaign's [`Summary`] in one statement (one round trip: the stats page is what a
/// dashboard polls most).
pub async fn summary(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    since: DateTime<Utc>,
) -> Result<Summary, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Extra {
        failed_after_send: i64,
        variants: serde_json::Value,
        next_queued_at: Option<DateTime<Utc>>,
    }
    let row = db
        .query_one(stmt(
            format!(
                "SELECT {SUMS}, (SELECT count(*) FROM recipients WHERE campaign_id = $1 AND sent_at > $2) AS sent_since, \
                   (SELECT count(*) FROM recipients WHERE campaign_id = $1 AND failed_after_send) AS failed_after_send, \
                   (SELECT min(planned_at) FROM recipients WHERE campaign_id = $1 AND status = 'queued') AS next_queued_at, \
                   (SELECT COALESCE(jsonb_agg(v ORDER BY v.variant), '[]'::jsonb) FROM ( \
                      SELECT variant, sum(sent)::bigint AS sent, sum(failed)::bigint AS failed, \
                             sum(delivered)::bigint AS delivered, sum(read)::bigint AS read, sum(replied)::bigint AS replied \
                      FROM recipient_counts WHERE campaign_id = $1 AND variant IS NOT NULL GROUP BY variant) v) AS variants \
                 FROM recipient_counts WHERE campaign_id = $1"
            ),
            vec![campaign_id.into(), since.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(Summary::default());
    };
    let extra = Extra::from_query_result(&row, "")?;
    Ok(Summary {
        counts: Counts::from_query_result(&row, "")?,
        variants: serde_json::from_value(extra.variants).map_err(|e| sea_orm::DbErr::Json(e.to_string()))?,
        failed_after_send: extra.failed_after_send,
        next_queued_at: extra.next_queued_at,
    })
}

/// The campaign's counts by status and receipts, without the recent pace (`sent_since` 0).
pub async fn by_status(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<Counts, sea_orm::DbErr> {
    let found = Counts::find_by_statement(stmt(
        format!("SELECT {SUMS}, 0::bigint AS sent_since FROM recipient_counts WHERE campaign_id = $1"),
        vec![campaign_id.into()],
    ))
    .one(db)
    .await?;
    Ok(found.unwrap_or_default())
}

/// Merges the deltas of up to `FOLD_BATCH` campaigns into one row per campaign and variant
/// (totals that came back to zero — the not-yet-planned rows once all are planned — are
/// dropped); returns how many running totals were written. Safe beside writers (their new deltas are left for next time) and
/// beside another fold (rows are taken by exactly one `DELETE`).
pub async fn fold(db: &impl ConnectionTrait) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "WITH touched AS (SELECT DISTINCT campaign_id FROM recipient_counts WHERE NOT folded LIMIT $1), \
             taken AS (DELETE FROM recipient_counts r USING touched t WHERE r.campaign_id = t.campaign_id RETURNING r.*) \
             INSERT INTO recipient_counts \
               (campaign_id, variant, pending, queued, sending, sent, failed, skipped, cancelled, delivered, read, replied, folded) \
             SELECT campaign_id, variant, sum(pending), sum(queued), sum(sending), sum(sent), sum(failed), sum(skipped), \
                    sum(cancelled), sum(delivered), sum(read), sum(replied), true \
             FROM taken GROUP BY campaign_id, variant \
             HAVING sum(abs(pending) + abs(queued) + abs(sending) + abs(sent) + abs(failed) + abs(skipped) \
                        + abs(cancelled) + abs(delivered) + abs(read) + abs(replied)) > 0",
            vec![FOLD_BATCH.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}
