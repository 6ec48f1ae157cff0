//! A number's health (issue 11, "Results a marketer can act on"): what it did in the last
//! 24 hours and a warning level when the figures trend toward a ban (`EVOLUTION.md`, "What
//! the ban reports teach": failed sends and people who ask to stop are what WhatsApp
//! punishes).
//!
//! # Figures (`GET /instances/{id}/health`)
//!
//! Over the 24 hours before now, for what the number sent: campaign recipients it was chosen
//! for (a pool's number counts only its own) and its one-off messages:
//! - `sent`: sends the gateway accepted; `failed`: sends it refused or that may not have
//!   left (`outcome_unknown`), plus accepted sends later reported `ERROR`
//!   (`failed_after_send`); `failure_rate` = `failed / (sends attempted)`;
//! - `opt_outs`: contacts who opted out by writing a keyword to this number;
//!   `opt_out_rate` = `opt_outs / sent`;
//! - `disconnects`: times the number was heard going `close`;
//! - `daily_limit`, `sent_today` and `daily_limit_use` (`sent_today / daily_limit`): today's
//!   allowance (daily limit and warm-up) in the tenant's time zone.
//!
//! # Levels
//!
//! | figure | `warning` when | `critical` when |
//! |---|---|---|
//! | `failure_rate` | over 10 % | over 25 % |
//! | `opt_out_rate` | over 2 % | over 5 % |
//! | `disconnects` | 3 or more | — |
//!
//! Rates only count once the number attempted [`MIN_SENDS`] sends in the window (one
//! failure in three sends says little). The level is the worst of the figures; `reasons`
//! names each figure past a threshold.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::Serialize;
use utoipa::ToSchema;

use super::domain::Warmup;
use crate::db::stmt;
use crate::entities::instances;
use crate::error::AppResult;
use crate::scheduler::pacing;
use crate::state::AppState;

/// Sends attempted in the window before its rates can raise the level.
pub const MIN_SENDS: u64 = 20;
/// `failure_rate` above this: warning.
pub const FAILURE_WARNING: f64 = 0.10;
/// `failure_rate` above this: critical.
pub const FAILURE_CRITICAL: f64 = 0.25;
/// `opt_out_rate` above this: warning.
pub const OPT_OUT_WARNING: f64 = 0.02;
/// `opt_out_rate` above this: critical.
pub const OPT_OUT_CRITICAL: f64 = 0.05;
/// Disconnects in the window from which the level is at least a warning.
pub const DISCONNECTS_WARNING: u64 = 3;
/// The window, in hours.
pub const WINDOW_HOURS: i64 = 24;

/// How close a number looks to a ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthLevel {
    Ok,
    Warning,
    Critical,
}

/// `GET /instances/{id}/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstanceHealth {
    /// The window's start (24 hours before now); it ends now.
    pub since: DateTime<Utc>,
    pub sent: u64,
    pub failed: u64,
    /// Of `failed`: accepted by the gateway, then reported `ERROR`.
    pub failed_after_send: u64,
    /// `failed / (sent + failed − failed_after_send)` (0–1); `null` before any send.
    pub failure_rate: Option<f64>,
    pub opt_outs: u64,
    /// `opt_outs / sent` (0–1); `null` before any send.
    pub opt_out_rate: Option<f64>,
    pub disconnects: u64,
    /// Today's allowance (daily limit with warm-up, in the tenant's time zone); `null`
    /// without a limit.
    pub daily_limit: Option<u64>,
    /// Sends since the start of today in the tenant's time zone.
    pub sent_today: u64,
    /// `sent_today / daily_limit` (0–1 and beyond); `null` without a limit.
    pub daily_limit_use: Option<f64>,
    pub level: HealthLevel,
    /// Each figure past a threshold, e.g. `failure_rate 15.0 % > 10 %`.
    pub reasons: Vec<String>,
}

#[derive(Debug, Default, FromQueryResult)]
struct Figures {
    sent: i64,
    failed: i64,
    failed_after_send: i64,
    opt_outs: i64,
    disconnects: i64,
    sent_today: i64,
}

/// The instance's figures now and their level.
pub async fn of(state: &AppState, instance: &instances::Model) -> AppResult<InstanceHealth> {
    let now = state.clock.now();
    let since = now - Duration::hours(WINDOW_HOURS);
    let tz_name = crate::calendar::repo::tenant_timezone(&state.db, instance.tenant_id).await?;
    let tz: chrono_tz::Tz = tz_name.parse().unwrap_or(chrono_tz::America::Sao_Paulo);
    let today = pacing::local_midnight(tz, now);
    let f = figures(&state.db, instance, since, today).await?;
    // The warm-up counts the earlier days as the engine does (campaigns and one-off messages).
    let used = crate::instances::usage::used(&state.db, instance.id, tz, now).await?;
    let n = |v: i64| v.max(0) as u64;
    let warmup = instance
        .warmup
        .clone()
        .and_then(|w| serde_json::from_value::<Warmup>(w).ok());
    let daily_limit = pacing::daily_allowance(
        instance.daily_limit.map(|l| l.max(0) as u64),
        warmup.as_ref(),
        used.days,
    );
    Ok(assess(Assessed {
        since,
        sent: n(f.sent),
        refused: n(f.failed),
        failed_after_send: n(f.failed_after_send),
        opt_outs: n(f.opt_outs),
        disconnects: n(f.disconnects),
        daily_limit,
        sent_today: n(f.sent_today),
    }))
}

async fn figures(
    db: &impl ConnectionTrait,
    instance: &instances::Model,
    since: DateTime<Utc>,
    today: DateTime<Utc>,
) -> Result<Figures, sea_orm::DbErr> {
    // Campaign sends count for the number that sent them (a pool's chosen number; rows from
    // before pools have none: their campaign's only number), one-off messages for theirs.
    let found = Figures::find_by_statement(stmt(
        "WITH mine AS (SELECT id FROM campaigns WHERE tenant_id = $1 AND $2 = ANY(instance_ids)), \
         logs AS (SELECT count(*) FILTER (WHERE l.outcome = 'sent') AS sent, \
                         count(*) FILTER (WHERE l.outcome IN ('failed', 'outcome_unknown')) AS failed \
                  FROM send_logs l JOIN recipients r ON r.id = l.recipient_id \
                  WHERE l.tenant_id = $1 AND l.campaign_id IN (SELECT id FROM mine) AND l.created_at >= $3 \
                    AND COALESCE(r.instance_id, $2) = $2), \
         one_off AS (SELECT count(*) FILTER (WHERE m.sent_at >= $3) AS sent, \
                            count(*) FILTER (WHERE m.status = 'failed' AND NOT m.failed_after_send \
                                             AND m.sending_at >= $3) AS failed, \
                            count(*) FILTER (WHERE m.failed_after_send AND m.sent_at >= $3) AS failed_after_send, \
                            count(*) FILTER (WHERE m.sent_at >= $4) AS sent_today \
                     FROM messages m WHERE m.instance_id = $2 AND (m.sent_at >= LEAST($3, $4) OR m.sending_at >= $3)) \
         SELECT logs.sent + one_off.sent AS sent, logs.failed + one_off.failed AS failed, \
           one_off.failed_after_send + (SELECT count(*) FROM recipients r WHERE r.campaign_id IN (SELECT id FROM mine) \
              AND COALESCE(r.instance_id, $2) = $2 AND r.failed_after_send AND r.sent_at >= $3) AS failed_after_send, \
           (SELECT count(*) FROM audit_logs a WHERE a.tenant_id = $1 AND a.action = 'contact.opt_out' \
              AND a.details ->> 'instance_id' = $2::text AND a.created_at >= $3) AS opt_outs, \
           (SELECT count(*) FROM instance_disconnects d WHERE d.instance_id = $2 AND d.at >= $3) AS disconnects, \
           one_off.sent_today + (SELECT count(*) FROM recipients r WHERE r.campaign_id IN (SELECT id FROM mine) \
              AND COALESCE(r.instance_id, $2) = $2 AND r.sent_at >= $4) AS sent_today \
         FROM logs, one_off",
        vec![
            instance.tenant_id.into(),
            instance.id.into(),
            since.into(),
            today.into(),
        ],
    ))
    .one(db)
    .await?;
    Ok(found.unwrap_or_default())
}

/// The counted figures, before rates and levels.
#[derive(Debug, Clone, Copy)]
pub struct Assessed {
    pub since: DateTime<Utc>,
    pub sent: u64,
    /// Sends refused or left unknown (send logs).
    pub refused: u64,
    pub failed_after_send: u64,
    pub opt_outs: u64,
    pub disconnects: u64,
    pub daily_limit: Option<u64>,
    pub sent_today: u64,
}

/// Rates, level and reasons (pure; the thresholds are in the module documentation).
pub fn assess(a: Assessed) -> InstanceHealth {
    let attempted = a.sent + a.refused;
    let failed = a.refused + a.failed_after_send;
    let ratio = |x: u64, of: u64| (of > 0).then(|| x as f64 / of as f64);
    let failure_rate = ratio(failed, attempted);
    let opt_out_rate = ratio(a.opt_outs, a.sent);
    let mut level = HealthLevel::Ok;
    let mut reasons = vec![];
    let mut raise = |to: HealthLevel, why: String| {
        level = level.max(to);
        reasons.push(why);
    };
    let pct = |r: f64| format!("{:.1} %", r * 100.0);
    if attempted >= MIN_SENDS {
        if let Some(r) = failure_rate {
            if r > FAILURE_CRITICAL {
                raise(HealthLevel::Critical, format!("failure_rate {} > 25 %", pct(r)));
            } else if r > FAILURE_WARNING {
                raise(HealthLevel::Warning, format!("failure_rate {} > 10 %", pct(r)));
            }
        }
        if let Some(r) = opt_out_rate {
            if r > OPT_OUT_CRITICAL {
                raise(HealthLevel::Critical, format!("opt_out_rate {} > 5 %", pct(r)));
            } else if r > OPT_OUT_WARNING {
                raise(HealthLevel::Warning, format!("opt_out_rate {} > 2 %", pct(r)));
            }
        }
    }
    if a.disconnects >= DISCONNECTS_WARNING {
        raise(
            HealthLevel::Warning,
            format!("{} disconnects in 24 h (≥ {DISCONNECTS_WARNING})", a.disconnects),
        );
    }
    InstanceHealth {
        since: a.since,
        sent: a.sent,
        failed,
        failed_after_send: a.failed_after_send,
        failure_rate,
        opt_outs: a.opt_outs,
        opt_out_rate,
        disconnects: a.disconnects,
        daily_limit: a.daily_limit,
        sent_today: a.sent_today,
        daily_limit_use: a.daily_limit.and_then(|l| ratio(a.sent_today, l)),
        level,
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Assessed {
        Assessed {
            since: Utc::now(),
            sent: 100,
            refused: 0,
            failed_after_send: 0,
            opt_outs: 0,
            disconnects: 0,
            daily_limit: None,
            sent_today: 0,
        }
    }

    #[test]
    fn a_quiet_number_is_ok() {
        let h = assess(base());
        assert_eq!(
            (h.level, h.failure_rate, h.opt_out_rate),
            (HealthLevel::Ok, Some(0.0), Some(0.0))
        );
        assert!(h.reasons.is_empty());
    }

    #[test]
    fn failures_over_ten_percent_warn_and_over_a_quarter_are_critical() {
        let h = assess(Assessed { refused: 12, ..base() });
        assert_eq!(h.level, HealthLevel::Warning, "{h:?}");
        let h = assess(Assessed {
            refused: 20,
            failed_after_send: 20,
            ..base()
        });
        assert_eq!(h.level, HealthLevel::Critical, "{h:?}");
        assert_eq!(h.failed, 40);
    }

    #[test]
    fn opt_outs_over_two_percent_warn_and_over_five_are_critical() {
        assert_eq!(assess(Assessed { opt_outs: 2, ..base() }).level, HealthLevel::Ok);
        assert_eq!(assess(Assessed { opt_outs: 3, ..base() }).level, HealthLevel::Warning);
        assert_eq!(assess(Assessed { opt_outs: 6, ..base() }).level, HealthLevel::Critical);
    }

    #[test]
    fn rates_of_a_few_sends_do_not_raise_the_level_but_disconnects_do() {
        let h = assess(Assessed {
            sent: 3,
            refused: 3,
            opt_outs: 1,
            ..base()
        });
        assert_eq!((h.level, h.failure_rate), (HealthLevel::Ok, Some(0.5)));
        assert_eq!(
            assess(Assessed {
                disconnects: 3,
                ..base()
            })
            .level,
            HealthLevel::Warning
        );
    }

    #[test]
    fn the_daily_limit_use_is_todays_sends_over_todays_allowance() {
        let h = assess(Assessed {
            daily_limit: Some(200),
            sent_today: 50,
            ..base()
        });
        assert_eq!(h.daily_limit_use, Some(0.25));
    }
}
