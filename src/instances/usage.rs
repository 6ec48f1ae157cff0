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

/// What an instance has used: sends planned (`queued`, `sending`) or made since local
/// midnight ("today", in the zone asked), and the earlier local days on which it sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub today: u64,
    pub days: u32,
}

/// Instance `instance_id`'s use on the local day (in `tz`) of `now`: its campaigns'
/// recipients it was chosen for (a pool's numbers each count their own) and its one-off
/// messages.
pub async fn used(
    db: &impl ConnectionTrait,
    instance_id: Uuid,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<Used, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Usage {
        today: i64,
        days: i64,
    }
    let day_start = pacing::local_midnight(tz, now);
    let usage = Usage::find_by_statement(stmt(
        "WITH used AS ( \
           SELECT r.status, r.sent_at FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
           WHERE $1 = ANY(c.instance_ids) AND COALESCE(r.instance_id, c.instance_id) = $1 \
             AND (r.status IN ('queued', 'sending') OR r.sent_at IS NOT NULL) \
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
    Ok(usage.map_or(Used::default(), |u| Used {
        today: u.today.max(0) as u64,
        days: u.days.max(0) as u32,
    }))
}

/// Sends left today under `limits` after `used`; `None` when there is no limit.
pub fn left(limits: &Limits, used: Used) -> Option<u64> {
    let limit = pacing::daily_allowance(
        limits.daily_limit.map(|l| l.max(0) as u64),
        limits.warmup.as_ref(),
        used.days,
    );
    limit.map(|l| l.saturating_sub(used.today))
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
    Ok(left(limits, used(db, instance_id, tz, now).await?))
}
