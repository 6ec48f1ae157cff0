//! Planning one-off messages (`pending → queued`), by the beat every tick and by the API
//! right after `POST /messages`: the same due-time queue as campaign sends, the instance's
//! daily limit and warm-up (shared with its campaigns, [`crate::instances::usage`]) and its
//! one-off pacing lane, reserved here so that a burst is spread over distinct instants.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, FromQueryResult, TransactionTrait};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::status;
use crate::db::stmt;
use crate::dispatch::{gate, stream, stream::Job, stream::JobKind};
use crate::gateway::ConnectionState;
use crate::instances::usage::{self, Limits};
use crate::redis::Keys;
use crate::scheduler::pacing;

/// Most messages looked at per planning round.
const MAX_PER_ROUND: i64 = 2_000;

#[derive(FromQueryResult)]
struct Due {
    id: Uuid,
    instance_id: Uuid,
    due_at: DateTime<Utc>,
    daily_limit: Option<i32>,
    warmup: Option<Value>,
    connection_state: Option<ConnectionState>,
    timezone: String,
}

/// What the engine needs to plan messages.
pub struct Planner<'a> {
    pub db: &'a DatabaseConnection,
    pub redis: &'a fred::prelude::Client,
    pub keys: &'a Keys,
    /// The least gap between two one-off messages of an instance (ms, before the gate's
    /// departure margin): `dispatch.message_interval_ms`.
    pub interval_ms: u64,
}

impl Planner<'_> {
    /// The gap the send gate enforces on an instance's one-off lane (ms): the minimum plus
    /// its departure margin, as for a campaign.
    pub fn guarded_interval_ms(&self) -> u64 {
        crate::calendar::guarded_interval_ms(self.interval_ms)
    }

    /// Plans the `pending` messages due before `horizon` (only those of `only`, when given):
    /// per instance, skipped while it is not connected (`close`, `connecting`: they wait),
    /// at most what its day still allows (the rest wait for its next local day, in the
    /// tenant's zone), each at `max(due, its lane's next free instant)` while that falls
    /// before `horizon` (the rest stay for the next round: no backlog builds in the queue).
    /// Postgres first, then Redis. Returns how many were queued.
    pub async fn plan(&self, now: DateTime<Utc>, horizon: DateTime<Utc>, only: Option<&[Uuid]>) -> anyhow::Result<u64> {
        let txn = self.db.begin().await?;
        let due = Due::find_by_statement(stmt(
            "SELECT m.id, m.instance_id, m.due_at, i.daily_limit, i.warmup, i.connection_state, t.timezone \
             FROM messages m JOIN instances i ON i.id = m.instance_id JOIN tenants t ON t.id = m.tenant_id \
             WHERE m.status = 'pending' AND m.due_at < $1 \
               AND ($3::jsonb IS NULL OR m.id IN (SELECT x::uuid FROM jsonb_array_elements_text($3::jsonb) AS x)) \
             ORDER BY m.due_at, m.id LIMIT $2 FOR UPDATE OF m SKIP LOCKED",
            vec![horizon.into(), MAX_PER_ROUND.into(), only.map(|ids| json!(ids)).into()],
        ))
        .all(&txn)
        .await?;
        let mut by_instance: BTreeMap<Uuid, Vec<&Due>> = BTreeMap::new();
        for d in &due {
            by_instance.entry(d.instance_id).or_default().push(d);
        }
        // Planned one margin over the gate's gap, as campaigns are (`Pacing::planned_gap_floor_ms`):
        // a send held up a few ms does not delay every later one.
        let gap = self.guarded_interval_ms() + crate::calendar::departure_margin_ms(self.interval_ms);
        let mut plans = vec![];
        for (instance_id, messages) in by_instance {
            let first = messages[0];
            if matches!(
                first.connection_state,
                Some(ConnectionState::Close | ConnectionState::Connecting)
            ) {
                continue;
            }
            let tz: Tz = first.timezone.parse().unwrap_or(chrono_tz::UTC);
            let limits = Limits::from_columns(first.daily_limit, first.warmup.as_ref());
            let left = usage::left_today(&txn, instance_id, &limits, tz, now).await?;
            let take = left.map_or(messages.len(), |l| (l as usize).min(messages.len()));
            if take < messages.len() {
                // The instance's day is used up: the rest wait for its next local day.
                let waiting: Vec<Uuid> = messages[take..].iter().map(|m| m.id).collect();
                status::wait_until(&txn, &waiting, pacing::next_local_midnight(tz, now)).await?;
            }
            for m in &messages[..take] {
                let mut at = m.due_at.max(now);
                if gap > 0 {
                    let within = (horizon - now).to_std().unwrap_or_default();
                    match gate::reserve(self.redis, self.keys, gate::PaceKey::of(instance_id), gap, Some(within))
                        .await?
                    {
                        gate::Reservation::In(wait) => {
                            at = at.max(now + chrono::Duration::milliseconds(wait.as_millis() as i64))
                        }
                        // The lane is full until past the horizon: the next round plans it.
                        gate::Reservation::NotBefore(_) => break,
                    }
                }
                plans.push((m.id, at));
            }
        }
        let queued = status::queue(&txn, &plans, now).await?;
        txn.commit().await?;
        let jobs: Vec<Job> = queued.into_iter().map(|q| job(q, now)).collect();
        stream::enqueue(self.redis, self.keys, &jobs, now).await?;
        Ok(jobs.len() as u64)
    }
}

/// The dispatch job of a queued message, due at its planned instant (never before `now`).
pub fn job(q: status::Queued, now: DateTime<Utc>) -> Job {
    Job {
        instance_id: None,
        recipient_id: q.id,
        campaign_id: q.instance_id,
        tenant_id: q.tenant_id,
        phone: q.phone,
        planned_at: q.planned_at.unwrap_or(now).max(now),
        kind: JobKind::Message,
    }
}
