//! An instance's daily use (PRODUCT §7, daily limit and warm-up): what it sent today and on
//! how many earlier days, counting campaign recipients and one-off messages alike, so both
//! share one allowance.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use super::domain::Warmup;
use crate::db::stmt;
use crate::scheduler::pacing;

/// An instance's limits, as stored (`instances.daily_limit`, `instances.warmup`).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub daily_limit: Option<i32>,
    pub warmup: Option<Warmup>,
}

impl Limits {
    /// From the stored columns; a warm-up that no longer parses counts as none.
    pub fn from_columns(daily_limit: Option<i32>, warmup: Option<&serde_json::Value>) -> Self {
        Self {
            daily_limit,
            warmup: warmup.and_then(|w| serde_json::from_value(w.clone()).ok()),
        }
    }

    pub fn is_unlimited(&self) -> bool {
        self.daily_limit.is_none() && self.warmup.is_none()
    }
}

/// Sends instance `instance_id` may still make on the local day (in `tz`) of `now`, by its
/// `limits`; `None` when it has none. Today's use counts what is planned (`queued`,
/// `sending`) and what was sent since local midnight, of its campaigns' recipients and of
/// its one-off messages; warm-up grows with the earlier local days on which it sent.
pub async fn left_today(
    db: &impl ConnectionTrait,
    instance_id: Uuid,
    limits: &Limits,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Option<u64>, sea_orm::DbErr> {
    if limits.is_unlimited() {
        return Ok(None);
    }
    #[derive(FromQueryResult)]
    struct Usage {
        today: i64,
        days: i64,
    }
    let day_start = pacing::local_midnight(tz, now);
    let usage = Usage::find_by_statement(stmt(
        "WITH used AS ( \
           SELECT r.status, r.sent_at FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
           WHERE c.instance_id = $1 AND (r.status IN ('queued', 'sending') OR r.sent_at IS NOT NULL) \
           UNION ALL \
           SELECT m.status, m.sent_at FROM messages m \
           WHERE m.instance_id = $1 AND (m.status IN ('queued', 'sending') OR m.sent_at IS NOT NULL)) \
         SELECT count(*) FILTER (WHERE status IN ('queued', 'sending') OR sent_at >= $2) AS today, \
                count(DISTINCT (sent_at AT TIME ZONE $3)::date) FILTER (WHERE sent_at < $2) AS days \
         FROM used",
        vec![instance_id.into(), day_start.into(), tz.name().into()],
    ))
    .one(db)
    .await?;
    let (today, days) = usage.map_or((0, 0), |u| (u.today.max(0) as u64, u.days.max(0) as u32));
    let limit = pacing::daily_allowance(
        limits.daily_limit.map(|l| l.max(0) as u64),
        limits.warmup.as_ref(),
        days,
    );
    Ok(limit.map(|l| l.saturating_sub(today)))
}
