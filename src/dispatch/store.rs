//! The worker's Postgres side: the conditional `queued → sending` claim (batched, committed
//! before any send), outcome recording (batched), and what follows from outcomes: pausing
//! on instance errors or an error spike, completing finished campaigns.

use crate::db::stmt;
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use uuid::Uuid;

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
}

/// Moves the given recipients `queued → sending`, but only those whose campaign is still
/// active. The campaign rows are read `FOR SHARE`, so a concurrent pause or cancel waits
/// for this statement and everything claimed here was claimed before it returned.
pub async fn claim(db: &DatabaseConnection, ids: &[Uuid], now: DateTime<Utc>) -> Result<Vec<Claimed>, sea_orm::DbErr> {
    Claimed::find_by_statement(stmt(
        "WITH wanted AS (SELECT x::uuid AS id FROM jsonb_array_elements_text($1::jsonb) AS x), \
         live AS ( \
           SELECT c.id FROM campaigns c \
           WHERE c.id IN (SELECT r.campaign_id FROM recipients r JOIN wanted w ON w.id = r.id) \
             AND c.status = 'active' \
           FOR SHARE \
         ) \
         UPDATE recipients r SET status = 'sending', sending_at = $2 \
         FROM wanted w \
         WHERE r.id = w.id AND r.status = 'queued' AND r.campaign_id IN (SELECT id FROM live) \
         RETURNING r.id, r.campaign_id, r.tenant_id, r.contact_id, r.phone, r.name, r.variant, \
           COALESCE((SELECT ct.fields FROM contacts ct WHERE ct.id = r.contact_id), '{}'::jsonb) AS fields",
        vec![json!(ids).into(), now.into()],
    ))
    .all(db)
    .await
}

/// Gives a job back to the planner (`queued → pending`) when it cannot be sent now, e.g.
/// its window closed while it waited.
pub async fn unqueue(db: &DatabaseConnection, id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET status = 'pending', planned_at = NULL, queued_at = NULL WHERE id = $1 AND status = 'queued'",
        vec![id.into()],
    ))
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Sent,
    /// The recipient cannot be reached, the gateway kept failing, or the outcome is
    /// unknown: terminal, never resent.
    Failed,
    /// The instance is unusable (bad key, disconnected): nothing was sent; the recipient
    /// goes back to `pending` and the campaign pauses.
    InstanceError,
}

/// One send attempt's result, for the recipient row and the log.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub recipient_id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub variant: Option<i16>,
    pub rendered: String,
    pub attempts: u32,
    pub gateway_status: Option<u16>,
    pub body_excerpt: String,
    pub duration_ms: u64,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// The last outcomes of a campaign (newest first) say it must stop: more than half of the
/// last 20 failed (with at least 10 sends seen), or the last 5 all failed.
pub fn error_threshold_reached(newest_first_failed: &[bool]) -> bool {
    let last20 = &newest_first_failed[..newest_first_failed.len().min(20)];
    let failures = last20.iter().filter(|f| **f).count();
    let streak = newest_first_failed.len() >= 5 && newest_first_failed[..5].iter().all(|f| *f);
    streak || (last20.len() >= 10 && failures * 2 > last20.len())
}

/// Writes a batch of outcomes in one transaction, then applies their consequences.
pub async fn record(db: &DatabaseConnection, records: &[Record]) -> Result<(), sea_orm::DbErr> {
    if records.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = records
        .iter()
        .map(|r| {
            json!({
                "id": r.recipient_id,
                "status": match r.outcome { Outcome::Sent => "sent", Outcome::Failed => "failed", Outcome::InstanceError => "pending" },
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
    let txn = db.begin().await?;
    txn.execute(stmt(
        "UPDATE recipients r SET status = x.status, \
           reason = CASE WHEN x.status = 'pending' THEN NULL ELSE x.reason END, \
           message_id = x.message_id, \
           sent_at = CASE WHEN x.status = 'sent' THEN x.at END, \
           sending_at = CASE WHEN x.status = 'pending' THEN NULL ELSE r.sending_at END, \
           planned_at = CASE WHEN x.status = 'pending' THEN NULL ELSE r.planned_at END, \
           queued_at = CASE WHEN x.status = 'pending' THEN NULL ELSE r.queued_at END \
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, status text, reason text, message_id text, at timestamptz) \
         WHERE r.id = x.id AND r.status = 'sending'",
        vec![rows.clone().into()],
    ))
    .await?;
    txn.execute(stmt(
        "INSERT INTO send_logs (tenant_id, campaign_id, recipient_id, variant, rendered, attempts, gateway_status, \
           body_excerpt, duration_ms, outcome, reason, created_at) \
         SELECT x.tenant_id, x.campaign_id, x.id, x.variant, x.rendered, x.attempts, x.gateway_status, \
           x.body_excerpt, x.duration_ms, x.outcome, x.reason, x.at \
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, tenant_id uuid, campaign_id uuid, variant smallint, \
           rendered text, attempts integer, gateway_status integer, body_excerpt text, duration_ms integer, \
           outcome text, reason text, at timestamptz)",
        vec![rows.into()],
    ))
    .await?;
    for r in records.iter().filter(|r| r.outcome == Outcome::InstanceError) {
        pause_if_active(&txn, r.campaign_id, r.reason.as_deref().unwrap_or("instance_error")).await?;
    }
    let failed: BTreeSet<Uuid> = records
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .map(|r| r.campaign_id)
        .collect();
    for campaign in failed {
        #[derive(FromQueryResult)]
        struct O {
            failed: bool,
        }
        let recent: Vec<bool> = O::find_by_statement(stmt(
            "SELECT outcome = 'failed' AS failed FROM send_logs WHERE campaign_id = $1 \
             AND outcome IN ('sent', 'failed') ORDER BY id DESC LIMIT 20",
            vec![campaign.into()],
        ))
        .all(&txn)
        .await?
        .into_iter()
        .map(|o| o.failed)
        .collect();
        if error_threshold_reached(&recent) {
            pause_if_active(&txn, campaign, "error_threshold").await?;
        }
    }
    let touched: BTreeSet<Uuid> = records.iter().map(|r| r.campaign_id).collect();
    complete_finished(&txn, &touched.into_iter().collect::<Vec<_>>(), records[0].at).await?;
    txn.commit().await
}

pub async fn pause_if_active(db: &impl ConnectionTrait, campaign_id: Uuid, reason: &str) -> Result<(), sea_orm::DbErr> {
    let paused = db
        .execute(stmt(
            "UPDATE campaigns SET status = 'paused', paused_reason = $2, updated_at = now() \
             WHERE id = $1 AND status IN ('active', 'scheduled')",
            vec![campaign_id.into(), reason.into()],
        ))
        .await?;
    if paused.rows_affected() > 0 {
        tracing::warn!(%campaign_id, reason, "campaign paused");
        requeue_to_pending(db, campaign_id).await?;
    }
    Ok(())
}

/// Queued jobs of a stopped campaign go back to `pending`: they are planned afresh (with
/// fresh pacing) when it resumes, and any stream entry left for them is dropped.
pub async fn requeue_to_pending(db: &impl ConnectionTrait, campaign_id: Uuid) -> Result<(), sea_orm::DbErr> {
    db.execute(stmt(
        "UPDATE recipients SET status = 'pending', planned_at = NULL, queued_at = NULL \
         WHERE campaign_id = $1 AND status = 'queued'",
        vec![campaign_id.into()],
    ))
    .await?;
    Ok(())
}

/// Active campaigns whose every recipient is terminal become `completed`.
pub async fn complete_finished(
    db: &impl ConnectionTrait,
    campaign_ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    if campaign_ids.is_empty() {
        return Ok(0);
    }
    let done = db
        .execute(stmt(
            "UPDATE campaigns c SET status = 'completed', completed_at = $2, next_send_at = NULL, updated_at = $2 \
             WHERE c.id IN (SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) AS x) AND c.status = 'active' \
               AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.campaign_id = c.id \
                               AND r.status IN ('pending', 'queued', 'sending'))",
            vec![json!(campaign_ids).into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected())
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
