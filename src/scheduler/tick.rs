//! One beat tick, and the loop that runs it every `beat.tick_seconds` on the leader.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult, TransactionTrait};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::lease::Lease;
use super::pacing;
use super::pool;
use crate::calendar::{Calendars, Pacing, Schedule, ScheduleSpec};
use crate::campaigns::repo as campaigns_repo;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::constraints::{violation, Violation, ONE_ACTIVE_PER_INSTANCE};
use crate::crypto::Cipher;
use crate::db::stmt;
use crate::dispatch::stream::{self, Job, JobKind};
use crate::gateway::{ConnectionState, GatewayClient};
use crate::instances::{connectivity, usage};
use crate::messages::status as message_status;
use crate::recipients;
use crate::redis::Keys;

/// What a tick did, for logs and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    pub promoted: u64,
    pub timed_out: u64,
    /// Recipients of a cancelled campaign left waiting by a race, now cancelled.
    pub stranded: u64,
    pub requeued: u64,
    pub campaigns: u64,
    pub queued: u64,
    pub completed: u64,
    /// Running totals (per campaign and variant) that recipient count deltas were folded into.
    pub folded: u64,
    /// Receipts that had arrived before their send's outcome, applied now.
    pub early_receipts: u64,
    /// Tenants whose contact total deltas were folded (and still have contacts).
    pub folded_contact_totals: u64,
    /// Runs of recurring campaigns created (`preparing`), and occurrences skipped as late.
    pub runs: u64,
    pub skipped_runs: u64,
    /// One-off messages queued (`crate::messages`).
    pub messages: u64,
    /// One-off messages whose `expires_at` came before they could leave (now `failed`).
    pub expired_messages: u64,
}

#[derive(Clone)]
pub struct Beat {
    db: DatabaseConnection,
    redis: fred::prelude::Client,
    keys: Keys,
    calendars: Arc<Calendars>,
    clock: SharedClock,
    settings: Arc<Settings>,
    gateway: GatewayClient,
    cipher: Cipher,
    /// A round of instance probes is running.
    probing: Arc<AtomicBool>,
    /// A round of audience preparations is running.
    preparing: Arc<AtomicBool>,
}

#[derive(FromQueryResult)]
struct Due {
    id: Uuid,
    tenant_id: Uuid,
    instance_id: Uuid,
    /// More than one: a pool, planned by [`Beat::plan_pool`].
    instance_ids: Vec<Uuid>,
    /// A pool's numbers' next send instants, `{instance_id: instant}`.
    number_next_send_at: Value,
    schedule: Value,
    pacing: Value,
    variants: i32,
    next_send_at: Option<DateTime<Utc>>,
    planned_count: i64,
    daily_limit: Option<i32>,
    warmup: Option<Value>,
    connection_state: Option<ConnectionState>,
    /// Jobs of the campaign already waiting (planned, not yet claimed), from the count deltas.
    queued: i64,
    /// Recipients not planned yet, from the count deltas (exact: they are transactional).
    pending: i64,
}

/// What [`Beat::plan_pool`] did with a campaign over a pool.
enum PoolPlan {
    /// Jobs to queue, and the instants to wait for next.
    Planned { jobs: Vec<Job>, next: PoolNext },
    /// Nothing left to plan: complete it once its last sends are recorded.
    Finished,
    /// Nothing planned now (paused, reconnecting, used up for the day: already recorded).
    Wait,
}

/// A pool's next instants: the campaign's (the earliest of its numbers') and each number's.
struct PoolNext {
    at: Option<DateTime<Utc>>,
    numbers: Value,
}

/// The job of a planned recipient of one of `tenant_id`'s campaigns.
fn recipient_job(p: recipients::Planned, tenant_id: Uuid) -> Job {
    Job {
        recipient_id: p.id,
        campaign_id: p.campaign_id,
        tenant_id,
        phone: p.phone,
        planned_at: p.planned_at,
        kind: JobKind::Recipient,
        instance_id: p.instance_id,
    }
}

/// Most campaigns planned by one tick.
const MAX_CAMPAIGNS_PER_TICK: i64 = 20_000;
/// Chunks planned at once (each its own transaction and connection): the cores Postgres
/// can use for a tick.
const PLAN_LANES: usize = 2;
/// Campaigns planned per transaction (see [`Beat::plan`]): a chunk takes about half a
/// second here, well inside the look-ahead.
const PLAN_CHUNK: i64 = 1_000;
/// How far past the next tick a tick plans (ms): the time a tick may take before the sends
/// it plans first would leave late (at 2,000 due campaigns a tick takes about a second here).
const LOOKAHEAD_MS: i64 = 3_000;
/// Most lost jobs re-queued by one tick.
const MAX_REQUEUE: i64 = 5_000;

impl Beat {
    pub fn new(state: &crate::state::AppState) -> Self {
        Self {
            db: state.db.clone(),
            redis: state.redis.clone(),
            keys: state.keys.clone(),
            calendars: state.calendars.clone(),
            clock: state.clock.clone(),
            settings: state.settings.clone(),
            gateway: state.gateway.clone(),
            cipher: state.cipher.clone(),
            probing: Arc::new(AtomicBool::new(false)),
            preparing: Arc::new(AtomicBool::new(false)),
        }
    }

    fn tick_length(&self) -> Duration {
        Duration::seconds(self.settings.beat.tick_seconds as i64)
    }

    /// What a tick at `now` plans: the sends due before the next tick, plus the look-ahead.
    fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + self.tick_length() + Duration::milliseconds(LOOKAHEAD_MS)
    }

    fn message_planner(&self) -> crate::messages::planning::Planner<'_> {
        crate::messages::planning::Planner {
            db: &self.db,
            redis: &self.redis,
            keys: &self.keys,
            interval_ms: self.settings.dispatch.message_interval_ms,
        }
    }

    /// One tick at `now`: create the runs of recurring campaigns whose occurrence has come
    /// (their audience is resolved by the preparation round), promote due scheduled campaigns, time out stuck sends, re-queue
    /// lost jobs, plan the one-off messages and every campaign send that fall before the
    /// next tick, complete finished
    /// campaigns, fold the recipient count and contact total deltas. Postgres first, then Redis: a crash in between leaves `queued` rows that
    /// a later tick re-queues.
    #[tracing::instrument(skip(self), fields(promoted, queued))]
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<TickReport> {
        // Recurring campaigns' occurrences first: their runs start preparing at once.
        let runs = crate::campaigns::runs::create_due(&self.db, now).await?;
        let mut report = TickReport {
            runs: runs.runs.len() as u64,
            skipped_runs: runs.skipped,
            promoted: self.promote_scheduled(now).await?,
            timed_out: self.time_out_sending(now).await?,
            // Campaigns cancelled in the last day: none of their recipients stays waiting.
            stranded: recipients::cancel_stranded(&self.db, now - Duration::days(1)).await?,
            requeued: self.requeue_lost(now).await?,
            ..Default::default()
        };
        // One-off messages past their `expires_at` end before anything plans them.
        report.expired_messages = message_status::expire(&self.db, now).await?;
        // One-off messages first: they take their instance's daily allowance before campaigns.
        report.messages = self.message_planner().plan(now, self.horizon(now), None).await?;
        let (queued, campaigns, completed) = self.plan(now).await?;
        report.campaigns = campaigns;
        report.completed = completed;
        report.queued = queued;
        // The safety net for receipts that beat their outcome (normally applied when the
        // outcome is recorded); those that never found their message go after a day.
        report.early_receipts = recipients::apply_early_receipts(&self.db, None).await?
            + message_status::apply_early_receipts(&self.db, None).await?;
        recipients::drop_early_receipts(&self.db, now - Duration::days(1)).await?;
        crate::messages::idempotency::forget_expired(&self.db, now).await?;
        report.folded = crate::campaigns::counts::fold(&self.db).await?;
        report.folded_contact_totals = crate::contacts::counts::fold(&self.db).await?;
        tracing::Span::current().record("queued", report.queued);
        Ok(report)
    }

    /// Scheduled campaigns whose start has come become active (unless their instance is
    /// busy with another active campaign: then they wait).
    async fn promote_scheduled(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        #[derive(FromQueryResult)]
        struct Id {
            id: Uuid,
        }
        let due = Id::find_by_statement(stmt(
            "SELECT id FROM campaigns WHERE status = 'scheduled' AND recurrence IS NULL \
             AND COALESCE((schedule->>'start_at')::timestamptz, '-infinity') <= $1 LIMIT 1000",
            vec![now.into()],
        ))
        .all(&self.db)
        .await?;
        let mut promoted = 0;
        for c in due {
            match campaigns_repo::promote(&self.db, c.id, now).await {
                Ok(done) => promoted += done,
                // Another campaign of the instance became active first: this one waits.
                Err(e) if violation(&e) == Some(Violation::Unique(ONE_ACTIVE_PER_INSTANCE)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(promoted)
    }

    /// A recipient left in `sending` past the timeout is never resent: it fails with
    /// `outcome_unknown` (a later receipt naming its message corrects it).
    async fn time_out_sending(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let cutoff = now - Duration::seconds(self.settings.dispatch.sending_timeout_seconds as i64);
        Ok(recipients::time_out_sending(&self.db, cutoff).await?
            + message_status::time_out_sending(&self.db, cutoff).await?)
    }

    /// `queued` rows whose queue entry may be gone: all of them if Redis lost its data
    /// (flushed, restarted empty: the `alive` marker is gone), else those queued long ago.
    /// A duplicate entry is harmless.
    async fn requeue_lost(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let stream_lost = stream::data_lost(&self.redis, &self.keys).await?;
        if stream_lost {
            stream::ensure_group(&self.redis, &self.keys).await?;
        }
        // Long enough that a job waiting in a backlog, or deferred behind a phone lock, is not
        // queued twice in ordinary operation (a duplicate is harmless, but costs a claim).
        let grace =
            Duration::milliseconds(self.settings.dispatch.reclaim_idle_ms.max(60_000) as i64) + self.tick_length() * 3;
        let cutoff = if stream_lost {
            now + Duration::days(1)
        } else {
            now - grace
        };
        let lost = recipients::restamp_queued(&self.db, cutoff, now, MAX_REQUEUE).await?;
        let mut jobs: Vec<Job> = lost
            .into_iter()
            .map(|q| Job {
                recipient_id: q.id,
                campaign_id: q.campaign_id,
                tenant_id: q.tenant_id,
                phone: q.phone,
                planned_at: q.planned_at.unwrap_or(now).max(now),
                kind: JobKind::Recipient,
                instance_id: q.instance_id,
            })
            .collect();
        let lost_messages = message_status::restamp_queued(&self.db, cutoff, now, MAX_REQUEUE).await?;
        jobs.extend(
            lost_messages
                .into_iter()
                .map(|q| crate::messages::planning::job(q, now)),
        );
        stream::enqueue(&self.redis, &self.keys, &jobs, now).await?;
        if !jobs.is_empty() {
            tracing::warn!(
                count = jobs.len(),
                stream_lost,
                "re-queued jobs whose stream entries were lost"
            );
        }
        Ok(jobs.len() as u64)
    }

    /// Plans the due campaigns, in chunks of [`PLAN_CHUNK`] each planned in one transaction
    /// and queued at once, [`PLAN_LANES`] chunks at a time; returns the jobs queued, the
    /// campaigns looked at and how many completed. Campaign rows are locked `FOR NO KEY
    /// UPDATE SKIP LOCKED`: two lanes (or two beats) never plan one campaign at once, while
    /// the workers' foreign-key checks (`send_logs → campaigns`, `KEY SHARE`) never wait for
    /// a tick.
    async fn plan(&self, now: DateTime<Utc>) -> anyhow::Result<(u64, u64, u64)> {
        // A little past the next tick: the sends due just after it starts are already
        // queued while it runs, so a tick's own duration never shows as a gap.
        let horizon = self.horizon(now);
        let seen = std::sync::Mutex::new(Vec::<Uuid>::new());
        let lanes = (0..PLAN_LANES).map(|_| self.plan_lane(now, horizon, &seen));
        let mut totals = (0, 0);
        for (queued, completed) in futures_util::future::try_join_all(lanes).await? {
            totals.0 += queued;
            totals.1 += completed;
        }
        let looked_at = seen.lock().unwrap_or_else(|p| p.into_inner()).len() as u64;
        Ok((totals.0, looked_at, totals.1))
    }

    /// One lane of [`Self::plan`]: chunk after chunk until no due campaign is left that this
    /// tick has not `seen` (shared by the lanes; a campaign planned twice in a tick by a
    /// race is harmless: its backlog caps it) or the tick's cap is reached. Returns the jobs
    /// queued and the campaigns completed.
    async fn plan_lane(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        seen: &std::sync::Mutex<Vec<Uuid>>,
    ) -> anyhow::Result<(u64, u64)> {
        let (mut queued, mut completed) = (0, 0);
        loop {
            let skip = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
            if skip.len() as i64 >= MAX_CAMPAIGNS_PER_TICK {
                break;
            }
            let (jobs, due, done) = self.plan_chunk(now, horizon, &skip).await?;
            if due.is_empty() {
                break;
            }
            stream::enqueue(&self.redis, &self.keys, &jobs, now).await?;
            queued += jobs.len() as u64;
            completed += done;
            let last_chunk = (due.len() as i64) < PLAN_CHUNK;
            seen.lock().unwrap_or_else(|p| p.into_inner()).extend(due);
            if last_chunk {
                break;
            }
        }
        Ok((queued, completed))
    }

    /// One chunk of [`Self::plan`]: up to [`PLAN_CHUNK`] due campaigns not `seen` yet this
    /// tick, planned in one transaction; returns the jobs, the campaigns looked at and how
    /// many completed.
    async fn plan_chunk(
        &self,
        now: DateTime<Utc>,
        horizon: DateTime<Utc>,
        seen: &[Uuid],
    ) -> anyhow::Result<(Vec<Job>, Vec<Uuid>, u64)> {
        let txn = self.db.begin().await?;
        let due = Due::find_by_statement(stmt(
            "SELECT c.id, c.tenant_id, c.instance_id, c.instance_ids, c.number_next_send_at, c.schedule, c.pacing, jsonb_array_length(c.messages) AS variants, \
               c.next_send_at, c.planned_count, i.daily_limit, i.warmup, i.connection_state, \
               (SELECT COALESCE(sum(rc.queued), 0) FROM recipient_counts rc WHERE rc.campaign_id = c.id)::bigint AS queued, \
               (SELECT COALESCE(sum(rc.pending), 0) FROM recipient_counts rc WHERE rc.campaign_id = c.id)::bigint AS pending \
             FROM campaigns c JOIN instances i ON i.id = c.instance_id \
             WHERE c.status = 'active' AND COALESCE(c.next_send_at, '-infinity') < $1 \
               AND c.id NOT IN (SELECT x::uuid FROM jsonb_array_elements_text($3::jsonb) AS x) \
             ORDER BY COALESCE(c.next_send_at, '-infinity') LIMIT $2 FOR NO KEY UPDATE OF c SKIP LOCKED",
            vec![horizon.into(), PLAN_CHUNK.into(), json!(seen).into()],
        ))
        .all(&txn)
        .await?;
        let holidays = self.tenant_holidays(&txn, &due).await?;
        let mut jobs = vec![];
        let mut finished = vec![];
        let mut advanced: Vec<Value> = Vec::with_capacity(due.len());
        let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
        // (campaign, the instants of its sends, the instant after them)
        let mut plans = Vec::with_capacity(due.len());
        for c in &due {
            let pool = c.instance_ids.len() > 1;
            match c.connection_state {
                // A pool looks at each of its numbers (`plan_pool`).
                _ if pool => {}
                // Heard disconnected: stop rather than burn through recipients.
                Some(ConnectionState::Close) => {
                    campaigns_repo::pause_if_active(&txn, c.id, connectivity::DISCONNECTED).await?;
                    continue;
                }
                // Reconnecting: wait, and start pacing afresh once it is open.
                Some(ConnectionState::Connecting) => continue,
                Some(ConnectionState::Open) | None => {}
            }
            if c.pending <= 0 {
                // Nothing left to plan: complete it once the last sends are recorded.
                finished.push(c.id);
                continue;
            }
            let spec: ScheduleSpec = serde_json::from_value(c.schedule.clone())?;
            let schedule = match Schedule::parse(spec, &self.calendars) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(campaign_id = %c.id, errors = ?e, "stored schedule does not parse: pausing");
                    campaigns_repo::pause_if_active(&txn, c.id, "invalid_schedule").await?;
                    continue;
                }
            };
            let pacing: Pacing = serde_json::from_value(c.pacing.clone())?;
            let empty = vec![];
            let lookup = schedule.holiday_lookup(&self.calendars, holidays.get(&c.tenant_id).unwrap_or(&empty));
            let from = c.next_send_at.map_or(now, |t| t.max(now));
            // Backpressure: a campaign never has more than `max_batch` jobs waiting, so a
            // backlog (workers down or slow) does not grow tick after tick and drain in a burst.
            let mut max = (self.settings.beat.max_batch as usize)
                .saturating_sub(c.queued.max(0) as usize)
                .min(c.pending as usize);
            if max == 0 {
                continue;
            }
            if pool {
                let planned = self
                    .plan_pool(&txn, c, &schedule, &lookup, &pacing, (now, horizon), max, &mut rng)
                    .await?;
                match planned {
                    PoolPlan::Planned { jobs: planned, next } => {
                        advanced.push(json!({"id": c.id, "next_send_at": next.at, "planned": planned.len(), "numbers": next.numbers}));
                        jobs.extend(planned);
                    }
                    PoolPlan::Finished => finished.push(c.id),
                    PoolPlan::Wait => {}
                }
                continue;
            }
            if let Some(left) = self.left_today(&txn, c, &schedule, now).await? {
                if left == 0 {
                    // The instance's day is used up: wait for its next local day, no catching up.
                    let tomorrow = pacing::next_local_midnight(schedule.timezone(), now);
                    campaigns_repo::wait_until(&txn, c.id, tomorrow).await?;
                    continue;
                }
                max = max.min(left as usize);
            }
            let (times, next) = pacing::plan(&schedule, &lookup, &pacing, from, horizon, max, &mut rng);
            plans.push((c, times, next));
        }
        // One statement plans every campaign of the chunk: a tick's cost is its round trips.
        let requests: Vec<recipients::PlanRequest> = plans
            .iter()
            .filter(|(_, times, _)| !times.is_empty())
            .map(|(c, times, _)| recipients::PlanRequest {
                campaign_id: c.id,
                instance_id: c.instance_id,
                times,
                planned_before: c.planned_count,
                variants: c.variants,
            })
            .collect();
        let mut by_campaign: HashMap<Uuid, Vec<recipients::Planned>> = HashMap::new();
        for p in recipients::plan(&txn, &requests, now).await? {
            by_campaign.entry(p.campaign_id).or_default().push(p);
        }
        for (c, times, next) in &plans {
            let planned = by_campaign.remove(&c.id).unwrap_or_default();
            if planned.is_empty() && !times.is_empty() {
                finished.push(c.id);
            }
            let next_send_at = times.get(planned.len()).copied().or(*next);
            advanced.push(json!({"id": c.id, "next_send_at": next_send_at, "planned": planned.len()}));
            jobs.extend(planned.into_iter().map(|p| recipient_job(p, c.tenant_id)));
        }
        // One statement for every campaign planned: a tick's cost is its round trips.
        campaigns_repo::advance_planned(&txn, advanced).await?;
        let completed = campaigns_repo::complete_finished(&txn, &finished, now).await?;
        txn.commit().await?;
        Ok((jobs, due.iter().map(|c| c.id).collect(), completed))
    }

    /// Plans a campaign over a pool of numbers (PRODUCT §4): each usable number (not heard
    /// `close` or `connecting`, not over its daily limit) is paced on its own from its own
    /// next instant, at most `max` sends in all (the earliest); the campaign's next pending
    /// recipients are then given numbers and instants by [`pool::assign`] (sticky sender
    /// first, else the earliest free number, least used first). Pauses the campaign
    /// (`instance disconnected`) only when every number is `close`; waits while the others
    /// are reconnecting or used up for the day.
    #[allow(clippy::too_many_arguments)]
    async fn plan_pool(
        &self,
        txn: &impl ConnectionTrait,
        c: &Due,
        schedule: &Schedule,
        lookup: &(dyn crate::calendar::HolidayLookup + Sync),
        pacing: &Pacing,
        (now, horizon): (DateTime<Utc>, DateTime<Utc>),
        max: usize,
        rng: &mut impl rand::Rng,
    ) -> anyhow::Result<PoolPlan> {
        #[derive(FromQueryResult)]
        struct Number {
            id: Uuid,
            daily_limit: Option<i32>,
            warmup: Option<Value>,
            connection_state: Option<ConnectionState>,
        }
        let numbers = Number::find_by_statement(stmt(
            "SELECT id, daily_limit, warmup, connection_state FROM instances WHERE id = ANY($1) \
             ORDER BY array_position($1, id)",
            vec![c.instance_ids.clone().into()],
        ))
        .all(txn)
        .await?;
        if numbers
            .iter()
            .all(|n| n.connection_state == Some(ConnectionState::Close))
        {
            campaigns_repo::pause_if_active(txn, c.id, connectivity::DISCONNECTED).await?;
            return Ok(PoolPlan::Wait);
        }
        let stored: HashMap<Uuid, DateTime<Utc>> =
            serde_json::from_value(c.number_next_send_at.clone()).unwrap_or_default();
        let tz = schedule.timezone();
        let mut next_of = stored.clone();
        let mut usable = vec![];
        let mut nexts = vec![];
        for n in numbers
            .iter()
            .filter(|n| matches!(n.connection_state, Some(ConnectionState::Open) | None))
        {
            let used = usage::used(txn, n.id, tz, now).await?;
            let limits = usage::Limits::from_columns(n.daily_limit, n.warmup.as_ref());
            let left = usage::left(&limits, used).map_or(max, |l| (l as usize).min(max));
            let from = stored
                .get(&n.id)
                .copied()
                .or(c.next_send_at)
                .map_or(now, |t| t.max(now));
            if left == 0 {
                // Used up today: this number waits for its next local day, no catching up.
                let tomorrow = pacing::next_local_midnight(tz, now);
                next_of.insert(n.id, tomorrow);
                nexts.push(Some(tomorrow));
                continue;
            }
            let (times, next) = pacing::plan(schedule, lookup, pacing, from, horizon, left, rng);
            usable.push((
                pool::NumberSlots {
                    instance_id: n.id,
                    times,
                    used_today: used.today,
                },
                next,
            ));
        }
        if usable.is_empty() {
            let Some(first) = nexts.into_iter().flatten().min() else {
                // Reconnecting: wait, and look again next tick.
                return Ok(PoolPlan::Wait);
            };
            campaigns_repo::wait_until(txn, c.id, first).await?;
            return Ok(PoolPlan::Wait);
        }
        let slots_total: usize = usable.iter().map(|(n, _)| n.times.len()).sum();
        let candidates =
            recipients::pending_candidates(txn, c.id, slots_total.min(c.pending.max(0) as usize) as i64).await?;
        let numbers_only: Vec<pool::NumberSlots> = usable.iter().map(|(n, _)| n.clone()).collect();
        let sticky_days = self.settings.pool.sticky_days;
        let last = if sticky_days > 0 {
            let phones: Vec<String> = candidates.iter().map(|r| r.phone.clone()).collect();
            recipients::last_senders(txn, c.tenant_id, &phones, now - Duration::days(sticky_days.into())).await?
        } else {
            HashMap::new()
        };
        let sticky: Vec<Option<Uuid>> = candidates.iter().map(|r| last.get(&r.phone).copied()).collect();
        // At most `max` sends in all (the backlog allowance), counted on what is given.
        let slots = pool::assign(&numbers_only, &sticky, max);
        let variants = i64::from(c.variants.max(1));
        let assignments: Vec<recipients::Assignment> = slots
            .iter()
            .enumerate()
            .map(|(k, s)| recipients::Assignment {
                id: candidates[s.candidate].id,
                instance_id: s.instance_id,
                at: s.at,
                variant: ((c.planned_count + k as i64) % variants) as i16,
            })
            .collect();
        let planned = recipients::plan_assigned(txn, &assignments, now).await?;
        if planned.is_empty() && candidates.is_empty() && slots_total > 0 {
            return Ok(PoolPlan::Finished);
        }
        let taken = pool::taken(&numbers_only, &slots);
        for ((n, next), used) in usable.iter().zip(taken) {
            let at = n.times.get(used).copied().or(*next);
            match at {
                Some(at) => next_of.insert(n.instance_id, at),
                None => next_of.remove(&n.instance_id),
            };
            nexts.push(at);
        }
        let at = nexts.into_iter().flatten().min();
        Ok(PoolPlan::Planned {
            jobs: planned.into_iter().map(|p| recipient_job(p, c.tenant_id)).collect(),
            next: PoolNext {
                at,
                numbers: json!(next_of),
            },
        })
    }

    /// Sends the campaign's instance may still make today (its local day, in the campaign's
    /// zone), by `daily_limit` and warm-up; `None` when it has no limit. One-off messages of
    /// the instance count too ([`usage::left_today`]).
    async fn left_today(
        &self,
        txn: &impl ConnectionTrait,
        c: &Due,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<u64>> {
        let limits = usage::Limits::from_columns(c.daily_limit, c.warmup.as_ref());
        Ok(usage::left_today(txn, c.instance_id, &limits, schedule.timezone(), now).await?)
    }

    /// Asks the gateway again for the state of instances with an active campaign not heard
    /// of for `beat.instance_check_seconds`; a `close` answer pauses their campaigns.
    pub async fn refresh_instances(&self, now: DateTime<Utc>) -> anyhow::Result<u64> {
        let stale_after = std::time::Duration::from_secs(self.settings.beat.instance_check_seconds);
        // A probe never holds a round up for long: the next round asks again.
        let limit = std::time::Duration::from_millis(self.settings.gateway.timeout_ms.min(5_000));
        connectivity::refresh_stale(&self.db, &self.gateway, &self.cipher, stale_after, limit, now).await
    }

    async fn tenant_holidays(
        &self,
        txn: &impl ConnectionTrait,
        due: &[Due],
    ) -> anyhow::Result<HashMap<Uuid, Vec<NaiveDate>>> {
        #[derive(FromQueryResult)]
        struct H {
            tenant_id: Uuid,
            date: NaiveDate,
        }
        let tenants: Vec<Uuid> = due.iter().map(|d| d.tenant_id).collect();
        let rows = H::find_by_statement(stmt(
            "SELECT tenant_id, date FROM holidays \
             WHERE tenant_id IN (SELECT x::uuid FROM jsonb_array_elements_text($1::jsonb) AS x) ORDER BY date",
            vec![json!(tenants).into()],
        ))
        .all(txn)
        .await?;
        let mut map: HashMap<Uuid, Vec<NaiveDate>> = HashMap::new();
        for h in rows {
            map.entry(h.tenant_id).or_default().push(h.date);
        }
        Ok(map)
    }

    /// Ticks every `beat.tick_seconds` (tokio-cron-scheduler, on the clock's multiples of
    /// it: [`tick_schedule`]) while this beat holds the lease; a tick still running when the
    /// next fires is skipped, not overlapped.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        use tokio_cron_scheduler::{Job as CronJob, JobScheduler};
        let period = std::time::Duration::from_secs(self.settings.beat.tick_seconds);
        let lease = Arc::new(Lease::new(&self.keys, period.as_millis() as u64 * 2 + 500));
        let running = Arc::new(AtomicBool::new(false));
        let mut scheduler = JobScheduler::new().await?;
        let beat = Arc::new(self);
        let job = {
            let (beat, lease, running) = (beat.clone(), lease.clone(), running.clone());
            CronJob::new_async(tick_schedule(period.as_secs()), move |_id, _lock| {
                let (beat, lease, running) = (beat.clone(), lease.clone(), running.clone());
                Box::pin(async move {
                    if running.swap(true, Ordering::SeqCst) {
                        metrics::counter!("arauto_beat_ticks_skipped_total").increment(1);
                        tracing::warn!("previous tick still running: skipping this one");
                        return;
                    }
                    // Cleared however the tick ends, a panic included: a flag left set
                    // would skip every later tick.
                    let _done = ClearOnDrop(&running);
                    beat.lead_and_tick(&lease, period).await;
                })
            })?
        };
        scheduler.add(job).await?;
        // The first tick at once, not a whole period after start (a restarted beat must not
        // leave the campaigns without a plan for a tick).
        running.store(true, Ordering::SeqCst);
        beat.lead_and_tick(&lease, period).await;
        running.store(false, Ordering::SeqCst);
        scheduler.start().await?;
        tracing::info!(tick_seconds = period.as_secs(), "beat started");
        shutdown.cancelled().await;
        scheduler.shutdown().await?;
        while running.load(Ordering::SeqCst) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let _ = lease.release(&beat.redis).await;
        tracing::info!("beat stopped");
        Ok(())
    }

    /// One firing: takes or renews the lease and, while it leads, ticks (the lease renewed
    /// every `period` beside the tick: [`Lease::hold_while`]).
    async fn lead_and_tick(self: &Arc<Self>, lease: &Arc<Lease>, period: std::time::Duration) {
        match lease.acquire(&self.redis).await {
            Ok(Some(fence)) => {
                self.spawn_probe_round();
                self.spawn_preparation_round();
                let now = self.clock.now();
                let started = std::time::Instant::now();
                match lease.hold_while(&self.redis, period, self.tick(now)).await {
                    Ok(report) => {
                        if report.runs > 0 {
                            // New runs of recurring campaigns: resolve their audiences now, not
                            // a tick later (a round already running leaves them to the next).
                            self.spawn_preparation_round();
                        }
                        tracing::debug!(fence, ?report, "tick")
                    }
                    Err(e) => tracing::error!(fence, error = ?e, "tick failed"),
                }
                metrics::histogram!("arauto_beat_tick_duration_seconds").record(started.elapsed().as_secs_f64());
                if let Err(e) = self.record_gauges(now).await {
                    tracing::debug!(error = %e, "gauges not recorded");
                }
            }
            Ok(None) => tracing::trace!("standing by: another beat leads"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot reach Redis for the lease: skipping this tick")
            }
        }
    }

    /// The leader's gauges, once per tick: due-queue depth and oldest `queued` age,
    /// campaigns by status (see [`crate::observability`]).
    async fn record_gauges(&self, now: DateTime<Utc>) -> anyhow::Result<()> {
        #[derive(FromQueryResult)]
        struct ByStatus {
            status: String,
            n: i64,
        }
        #[derive(FromQueryResult)]
        struct Oldest {
            at: Option<DateTime<Utc>>,
        }
        let depth = stream::due_len(&self.redis, &self.keys).await?;
        metrics::gauge!("arauto_due_queue_depth").set(depth as f64);
        let oldest = Oldest::find_by_statement(stmt(
            "SELECT min(queued_at) AS at FROM recipients WHERE status = 'queued'",
            vec![],
        ))
        .one(&self.db)
        .await?
        .and_then(|o| o.at);
        let age = oldest.map_or(0.0, |at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!("arauto_due_queue_oldest_seconds").set(age);
        let rows = ByStatus::find_by_statement(stmt(
            "SELECT status, count(*) AS n FROM campaigns GROUP BY status",
            vec![],
        ))
        .all(&self.db)
        .await?;
        for status in crate::campaigns::domain::CampaignStatus::ALL {
            let n = rows.iter().find(|r| r.status == status.as_str()).map_or(0, |r| r.n);
            metrics::gauge!("arauto_campaigns", "status" => status.as_str()).set(n as f64);
        }
        Ok(())
    }

    /// Takes up unfinished audience preparations (a preparer that died with its API
    /// process) beside the ticks; a round still running is not doubled.
    fn spawn_preparation_round(self: &Arc<Self>) {
        if self.preparing.swap(true, Ordering::SeqCst) {
            return;
        }
        let beat = self.clone();
        tokio::spawn(async move {
            match crate::campaigns::preparation::resume_unfinished(&beat.db, &beat.clock, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(finished = n, "took up unfinished preparations"),
                Err(e) => tracing::warn!(error = %e, "preparation round failed"),
            }
            beat.preparing.store(false, Ordering::SeqCst);
        });
    }

    /// Probes wait on gateways: they run beside the ticks, never holding one up, and a
    /// round still running when the next is due is not doubled.
    fn spawn_probe_round(self: &Arc<Self>) {
        if self.probing.swap(true, Ordering::SeqCst) {
            return;
        }
        let beat = self.clone();
        tokio::spawn(async move {
            if let Err(e) = beat.refresh_instances(beat.clock.now()).await {
                tracing::warn!(error = ?e, "instance state round failed");
            }
            beat.probing.store(false, Ordering::SeqCst);
        });
    }
}

/// Sets the flag it holds back to false when dropped.
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The beat's cron schedule (seconds field first, as tokio-cron-scheduler takes it): every
/// `tick_seconds` on the clock (`*/10 * * * * *` fires at :00, :10, …), `tick_seconds`
/// dividing 60 (`config` checks it).
///
/// A cron schedule, not tokio-cron-scheduler's repeated job: 0.13 computes a repeated job's
/// next firing as its previous one plus the period, and once a stall longer than a period
/// (a loaded machine, a tick waiting out a PgBouncer restart) left that in the past, the job
/// never fired again (tokio-cron-scheduler issue #113, fix not released): a lone beat would
/// go silent for good. A cron job's next firing is computed from now.
pub fn tick_schedule(tick_seconds: u64) -> String {
    match tick_seconds {
        0 | 1 => "* * * * * *".to_owned(),
        60.. => "0 * * * * *".to_owned(),
        n => format!("*/{n} * * * * *"),
    }
}

#[cfg(test)]
mod tick_schedule_tests {
    use super::tick_schedule;

    #[test]
    fn the_beat_fires_on_the_clocks_multiples_of_its_period() {
        assert_eq!(tick_schedule(1), "* * * * * *");
        assert_eq!(tick_schedule(10), "*/10 * * * * *");
        assert_eq!(tick_schedule(60), "0 * * * * *");
        for n in [1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60] {
            let job = tokio_cron_scheduler::Job::new_async(tick_schedule(n), |_, _| Box::pin(async {}));
            assert!(job.is_ok(), "{n}: {}", tick_schedule(n));
        }
    }
}
