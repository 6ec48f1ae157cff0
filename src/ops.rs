//! Operator commands (issue 13): `arauto doctor` checks what Arauto depends on and what
//! should never stay stuck; `arauto campaigns inspect <id>` shows one campaign as the engine
//! sees it. Both print one readable line per finding and fail (exit status 1) on a problem.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ConnectionTrait, EntityTrait};
use sea_orm_migration::MigratorTrait;
use std::fmt::Write as _;
use uuid::Uuid;

use crate::campaigns::domain::CampaignStatus;
use crate::db::{count, stmt};
use crate::dispatch::gate;
use crate::entities::{campaigns, instances};
use crate::gateway::ConnectionState;
use crate::instances::connectivity;
use crate::state::AppState;

/// One finding: what was checked, whether it is fine, and what was seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

impl Finding {
    fn new(check: impl Into<String>, ok: bool, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            ok,
            detail: detail.into(),
        }
    }
}

/// The findings as printed: `ok  ` or `FAIL` then the check and what was seen.
pub fn render(findings: &[Finding]) -> String {
    let width = findings.iter().map(|f| f.check.len()).max().unwrap_or(0);
    let mut out = String::new();
    for f in findings {
        let mark = if f.ok { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "{mark}  {:width$}  {}", f.check, f.detail);
    }
    out
}

/// Postgres and Redis answer, every migration is applied, a beat leads, each instance with
/// a campaign running or waiting answers its gateway as connected, and nothing is stuck
/// (`sending` past the timeout, `queued` long past its instant, non-terminal recipients of
/// finished campaigns).
pub async fn doctor(state: &AppState, now: DateTime<Utc>) -> Vec<Finding> {
    let mut found = vec![];
    match state.db.execute_unprepared("SELECT 1").await {
        Ok(_) => found.push(Finding::new("postgres", true, "answers")),
        Err(e) => {
            found.push(Finding::new("postgres", false, e.to_string()));
            return found;
        }
    }
    match migration::Migrator::get_pending_migrations(&state.db).await {
        Ok(p) if p.is_empty() => found.push(Finding::new("migrations", true, "all applied")),
        Ok(p) => found.push(Finding::new(
            "migrations",
            false,
            format!("{} pending: run `arauto migrate`", p.len()),
        )),
        Err(e) => found.push(Finding::new("migrations", false, e.to_string())),
    }
    let ping: Result<String, _> = fred::prelude::ClientLike::ping(&state.redis, None).await;
    match ping {
        Ok(_) => found.push(Finding::new("redis", true, "answers")),
        Err(e) => found.push(Finding::new("redis", false, e.to_string())),
    }
    match crate::scheduler::lease::holder(&state.redis, &state.keys).await {
        Ok(Some(h)) => found.push(Finding::new("beat", true, format!("leader {h}"))),
        Ok(None) => found.push(Finding::new("beat", false, "no beat leads: nothing is planned")),
        Err(e) => found.push(Finding::new("beat", false, e.to_string())),
    }
    found.extend(instances(state, now).await);
    found.extend(stuck(state, now).await);
    found
}

/// Each instance with a running or waiting campaign, as its gateway answers now.
async fn instances(state: &AppState, now: DateTime<Utc>) -> Vec<Finding> {
    let busy = instances::Entity::find()
        .from_raw_sql(stmt(
            "SELECT * FROM instances WHERE id IN (SELECT unnest(instance_ids) FROM campaigns \
             WHERE status IN ('active', 'scheduled', 'preparing')) ORDER BY name",
            vec![],
        ))
        .all(&state.db)
        .await;
    let busy = match busy {
        Ok(b) => b,
        Err(e) => return vec![Finding::new("instances", false, e.to_string())],
    };
    let limit = std::time::Duration::from_millis(state.settings.gateway.timeout_ms.min(5_000));
    let mut found = vec![];
    for i in busy {
        let check = format!("instance {} ({})", i.name, i.id);
        match connectivity::probe(&state.db, &state.gateway, &state.cipher, &i, limit, now).await {
            Ok(ConnectionState::Open) => found.push(Finding::new(check, true, "connected")),
            Ok(other) => found.push(Finding::new(check, false, format!("not connected: {}", other.as_str()))),
            Err(e) => found.push(Finding::new(check, false, format!("gateway unreachable: {e}"))),
        }
    }
    found
}

async fn stuck(state: &AppState, now: DateTime<Utc>) -> Vec<Finding> {
    let timeout = Duration::seconds(state.settings.dispatch.sending_timeout_seconds as i64);
    let checks: [(&str, &str, Vec<sea_orm::Value>); 3] = [
        (
            "sending past the timeout",
            "SELECT count(*) AS n FROM recipients WHERE status = 'sending' AND sending_at < $1",
            vec![(now - timeout).into()],
        ),
        (
            "queued over an hour past their instant",
            "SELECT count(*) AS n FROM recipients WHERE status = 'queued' AND planned_at < $1",
            vec![(now - Duration::hours(1)).into()],
        ),
        (
            "non-terminal in finished campaigns",
            "SELECT count(*) AS n FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
             WHERE c.status IN ('completed', 'cancelled') AND r.status IN ('pending', 'queued', 'sending')",
            vec![],
        ),
    ];
    let mut found = vec![];
    for (check, sql, values) in checks {
        match count(&state.db, sql, values).await {
            Ok(0) => found.push(Finding::new(check, true, "none")),
            Ok(n) => found.push(Finding::new(check, false, format!("{n} recipients"))),
            Err(e) => found.push(Finding::new(check, false, e.to_string())),
        }
    }
    found
}

/// One campaign as the engine sees it: status, counts, preparation, next send, its send
/// gate (closed or not, attempts in flight), jobs waiting; `None` when no campaign has that id.
pub async fn inspect(state: &AppState, id: Uuid) -> anyhow::Result<Option<Vec<Finding>>> {
    let Some(c) = campaigns::Entity::find_by_id(id).one(&state.db).await? else {
        return Ok(None);
    };
    let counts = crate::campaigns::counts::of(&state.db, c.id, Utc::now() - Duration::minutes(1)).await?;
    let resolved = crate::campaigns::preparation::resolved(&state.db, &c).await?;
    let mut found = vec![
        Finding::new("name", true, format!("{} (tenant {})", c.name, c.tenant_id)),
        Finding::new(
            "status",
            c.paused_reason.is_none() || c.status != CampaignStatus::Paused,
            match &c.paused_reason {
                Some(r) => format!("{} ({r})", c.status.as_str()),
                None => c.status.as_str().to_owned(),
            },
        ),
        Finding::new(
            "recipients",
            true,
            format!(
                "pending {}, queued {}, sending {}, sent {}, failed {}, skipped {}, cancelled {}",
                counts.pending,
                counts.queued,
                counts.sending,
                counts.sent,
                counts.failed,
                counts.skipped,
                counts.cancelled
            ),
        ),
        Finding::new(
            "preparation",
            true,
            match c.audience_ready_at {
                Some(at) => format!("audience resolved at {at} ({resolved} recipients)"),
                None if c.started_at.is_some() => format!(
                    "resolving: {} of {}",
                    resolved,
                    c.audience_total.map_or("?".into(), |t| t.to_string())
                ),
                None => "not started".into(),
            },
        ),
        Finding::new(
            "next send",
            true,
            c.next_send_at.map_or("none".into(), |t| t.to_string()),
        ),
    ];
    match gate::inspect(&state.redis, &state.keys, c.id).await {
        Ok((stop, in_flight)) => found.push(Finding::new(
            "send gate",
            true,
            format!(
                "{}, {in_flight} attempts in flight",
                stop.map_or("open".into(), |r| format!("closed ({r})"))
            ),
        )),
        Err(e) => found.push(Finding::new("send gate", false, e.to_string())),
    }
    let stuck = count(
        &state.db,
        "SELECT count(*) AS n FROM recipients WHERE campaign_id = $1 AND status = 'sending' AND sending_at < $2",
        vec![
            c.id.into(),
            (Utc::now() - Duration::seconds(state.settings.dispatch.sending_timeout_seconds as i64)).into(),
        ],
    )
    .await?;
    found.push(Finding::new(
        "stuck sends",
        stuck == 0,
        format!("{stuck} sending past the timeout"),
    ));
    Ok(Some(found))
}
