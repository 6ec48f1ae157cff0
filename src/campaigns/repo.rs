//! Campaign transitions the engine makes (the API's own go through `lifecycle`): pausing
//! itself, completing, with their guards in one place.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde_json::json;
use uuid::Uuid;

use crate::db::stmt;
use crate::recipients;

/// `active | scheduled → paused` with `reason`; its queued jobs go back to `pending`.
/// Returns whether it paused (false when it was no longer running).
pub async fn pause_if_active(
    db: &impl ConnectionTrait,
    campaign_id: Uuid,
    reason: &str,
) -> Result<bool, sea_orm::DbErr> {
    let paused = db
        .execute(stmt(
            "UPDATE campaigns SET status = 'paused', paused_reason = $2, updated_at = now() \
             WHERE id = $1 AND status IN ('active', 'scheduled')",
            vec![campaign_id.into(), reason.into()],
        ))
        .await?;
    if paused.rows_affected() == 0 {
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

/// The tenant's calendar changed (a holiday added or deleted): its active campaigns
/// waiting for a later instant are planned again from `now` at the next tick (a campaign
/// waiting out a deleted holiday sends within one tick; one whose day became a holiday
/// jumps to its next opening). Returns how many.
pub async fn replan_tenant(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE campaigns SET next_send_at = $2 WHERE tenant_id = $1 AND status = 'active' AND next_send_at > $2",
            vec![tenant_id.into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// The instance's limits changed (daily limit, warm-up): its active campaigns waiting for
/// a later day are planned again from `now` at the next tick.
pub async fn replan_instance(
    db: &impl ConnectionTrait,
    instance_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let done = db
        .execute(stmt(
            "UPDATE campaigns SET next_send_at = $2 WHERE instance_id = $1 AND status = 'active' AND next_send_at > $2",
            vec![instance_id.into(), now.into()],
        ))
        .await?;
    Ok(done.rows_affected())
}

/// `active → completed` for the given campaigns whose every recipient is terminal.
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
