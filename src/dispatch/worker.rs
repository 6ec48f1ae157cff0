//! `arauto worker`: reads due jobs from the stream and sends them, `dispatch.concurrency`
//! at a time. Per job: wait for its planned time; take the phone lock (deferred if held);
//! take the campaign's pacing slot; claim `queued → sending` (batched, checks the campaign
//! is still active); render; send; record the outcome (batched); acknowledge.

use chrono::Utc;
use fred::prelude::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::batcher::Batcher;
use super::context::ContextCache;
use super::lock::{self, Acquired};
use super::store::{self, Claimed, Outcome, Record};
use super::stream::{self, Entry, Job};
use crate::calendar::is_open;
use crate::campaigns::domain::recipient_seed;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::gateway::{ErrorClass, GatewayClient};
use crate::redis::Keys;
use crate::templating::RenderContext;

/// Claims and outcome records are grouped per statement: at most this many, or whatever
/// arrived within the linger time.
const BATCH: usize = 64;
const CLAIM_LINGER: Duration = Duration::from_millis(2);
const RECORD_LINGER: Duration = Duration::from_millis(20);

pub struct Worker {
    consumer: String,
    db: sea_orm::DatabaseConnection,
    redis: Client,
    blocking: Client,
    keys: Keys,
    gateway: GatewayClient,
    clock: SharedClock,
    settings: Arc<Settings>,
    contexts: ContextCache,
    claimer: Batcher<Uuid, Option<Claimed>>,
    recorder: Batcher<Record, bool>,
}

impl Worker {
    pub async fn new(state: &crate::startup::AppState) -> anyhow::Result<Arc<Self>> {
        use secrecy::ExposeSecret;
        let blocking = crate::redis::connect(state.settings.redis.url.expose_secret()).await?;
        let db = state.db.clone();
        let clock = state.clock.clone();
        let (claimer, _) = Batcher::spawn(BATCH, CLAIM_LINGER, {
            let db = db.clone();
            let clock = clock.clone();
            move |ids: Vec<Uuid>| {
                let db = db.clone();
                let now = clock.now();
                async move {
                    match store::claim(&db, &ids, now).await {
                        Ok(rows) => ids
                            .iter()
                            .map(|id| rows.iter().find(|r| r.id == *id).cloned())
                            .collect(),
                        Err(e) => {
                            tracing::error!(error = %e, "claim failed; the jobs stay queued and are planned again");
                            vec![None; ids.len()]
                        }
                    }
                }
            }
        });
        let (recorder, _) = Batcher::spawn(BATCH, RECORD_LINGER, {
            let db = db.clone();
            move |records: Vec<Record>| {
                let db = db.clone();
                async move {
                    let n = records.len();
                    for attempt in 1..=3 {
                        match store::record(&db, &records).await {
                            Ok(()) => return vec![true; n],
                            Err(e) => {
                                tracing::error!(error = %e, attempt, "recording outcomes failed");
                                tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                            }
                        }
                    }
                    // Left in `sending`: the beat turns them into failed/outcome_unknown.
                    vec![false; n]
                }
            }
        });
        Ok(Arc::new(Self {
            consumer: format!("worker-{}", Uuid::new_v4().simple()),
            contexts: ContextCache::new(db.clone(), state.cipher.clone(), state.calendars.clone()),
            db,
            redis: state.redis.clone(),
            blocking,
            keys: state.keys.clone(),
            gateway: state.gateway.clone(),
            clock,
            settings: state.settings.clone(),
            claimer,
            recorder,
        }))
    }

    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Reads and sends until `shutdown`; then finishes the sends in hand and returns.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        stream::ensure_group(&self.redis, &self.keys).await?;
        let permits = Arc::new(Semaphore::new(self.settings.dispatch.concurrency));
        let mut tasks = JoinSet::new();
        let mut last_reclaim = Instant::now();
        tracing::info!(consumer = %self.consumer, "worker started");
        while !shutdown.is_cancelled() {
            self.heartbeat().await;
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tasks.join_next() => continue,
                }
            }
            let mut entries = vec![];
            if last_reclaim.elapsed()
                > Duration::from_millis(self.settings.dispatch.reclaim_idle_ms / 2).max(Duration::from_millis(500))
            {
                last_reclaim = Instant::now();
                match stream::claim_abandoned(
                    &self.redis,
                    &self.keys,
                    &self.consumer,
                    self.settings.dispatch.reclaim_idle_ms,
                    free as u64,
                )
                .await
                {
                    Ok(found) => entries = found,
                    Err(e) => tracing::warn!(error = %e, "XAUTOCLAIM failed"),
                }
            }
            if entries.is_empty() {
                let read = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = stream::read(&self.blocking, &self.keys, &self.consumer, free as u64, 1000) => r,
                };
                match read {
                    Ok(found) => entries = found,
                    Err(e) => {
                        // The group (or the whole stream) is gone after a Redis flush: recreate it.
                        tracing::warn!(error = %e, "reading the dispatch stream failed");
                        let _ = stream::ensure_group(&self.redis, &self.keys).await;
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                }
            }
            for entry in entries {
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    break;
                };
                let worker = self.clone();
                tasks.spawn(async move {
                    worker.process(entry).await;
                    drop(permit);
                });
            }
        }
        tracing::info!(consumer = %self.consumer, in_flight = tasks.len(), "worker stopping: finishing sends in hand");
        while tasks.join_next().await.is_some() {}
        let _: Result<i64, _> = fred::prelude::KeysInterface::del(&self.redis, self.heartbeat_key()).await;
        Ok(())
    }

    fn heartbeat_key(&self) -> String {
        self.keys.key(&["workers", &self.consumer])
    }

    async fn heartbeat(&self) {
        use fred::prelude::KeysInterface;
        let _: Result<(), _> = self
            .redis
            .set(
                self.heartbeat_key(),
                Utc::now().to_rfc3339(),
                Some(fred::types::Expiration::EX(15)),
                None,
                false,
            )
            .await;
    }

    async fn ack(&self, entry: &Entry) {
        if let Err(e) = stream::done(&self.redis, &self.keys, std::slice::from_ref(&entry.id)).await {
            tracing::warn!(error = %e, "XACK failed; the entry will be claimed again and dropped");
        }
    }

    /// Puts the job back on the stream for later and acknowledges this entry: deferred,
    /// not dropped.
    async fn defer(&self, entry: &Entry, job: &Job, wait_ms: u64) {
        let later = Job {
            planned_at: self.clock.now() + chrono::Duration::milliseconds(wait_ms.min(60_000) as i64 + 5),
            ..job.clone()
        };
        match stream::enqueue(&self.redis, &self.keys, &[later]).await {
            Ok(()) => self.ack(entry).await,
            Err(e) => tracing::warn!(error = %e, "deferring failed; the entry stays pending and is reclaimed"),
        }
    }

    async fn release(&self, l: &lock::Lock) {
        if let Err(e) = lock::release(&self.redis, l).await {
            tracing::warn!(error = %e, key = %l.key, "releasing a lock failed; it expires by itself");
        }
    }

    #[tracing::instrument(skip_all, fields(entry = %entry.id, campaign_id, tenant_id))]
    pub async fn process(&self, entry: Entry) {
        let Some(job) = entry.job.clone() else {
            tracing::warn!("malformed stream entry dropped");
            return self.ack(&entry).await;
        };
        let span = tracing::Span::current();
        span.record("campaign_id", tracing::field::display(job.campaign_id));
        span.record("tenant_id", tracing::field::display(job.tenant_id));
        if let Err(e) = self.try_process(&entry, &job).await {
            tracing::error!(error = ?e, "job failed; it stays pending in the stream and is reclaimed");
        }
    }

    async fn try_process(&self, entry: &Entry, job: &Job) -> anyhow::Result<()> {
        let wait = job.planned_at - self.clock.now();
        if wait > chrono::Duration::zero() {
            let max_wait = Duration::from_secs(self.settings.beat.tick_seconds * 2 + 1);
            tokio::time::sleep(wait.to_std().unwrap_or_default().min(max_wait)).await;
        }
        let Some(ctx) = self.contexts.get(job.campaign_id).await? else {
            self.ack(entry).await;
            return Ok(());
        };
        let now = self.clock.now();
        let holidays = ctx
            .schedule
            .holiday_lookup(self.contexts.calendars(), &ctx.tenant_holidays);
        if !is_open(&ctx.schedule, &holidays, now) {
            store::unqueue(&self.db, job.recipient_id).await?;
            self.ack(entry).await;
            return Ok(());
        }
        let phone_key = self
            .keys
            .key(&["lock", "phone", &job.tenant_id.to_string(), &job.phone]);
        let phone_lock = match lock::acquire(&self.redis, phone_key, self.settings.dispatch.phone_lock_ms).await? {
            Acquired::Yes(l) => l,
            Acquired::HeldFor(ms) => {
                self.defer(entry, job, ms).await;
                return Ok(());
            }
        };
        let pace_lock = if ctx.min_interval_ms > 0 {
            let key = self.keys.key(&["pace", &job.campaign_id.to_string()]);
            match lock::acquire(&self.redis, key, ctx.min_interval_ms).await? {
                Acquired::Yes(l) => Some(l),
                Acquired::HeldFor(ms) => {
                    self.release(&phone_lock).await;
                    self.defer(entry, job, ms).await;
                    return Ok(());
                }
            }
        } else {
            None
        };
        let Some(r) = self.claimer.submit(job.recipient_id).await.flatten() else {
            // Paused, cancelled, already sent or already taken: nothing to send.
            self.release(&phone_lock).await;
            if let Some(p) = &pace_lock {
                self.release(p).await;
            }
            self.ack(entry).await;
            return Ok(());
        };
        let record = self.send(&ctx, &r).await;
        if record.outcome == Outcome::InstanceError {
            // Nothing went out: free the phone for the campaign's resumption.
            self.release(&phone_lock).await;
        }
        if self.recorder.submit(record).await != Some(true) {
            tracing::error!(recipient = %r.id, "outcome not recorded: the recipient stays `sending` and times out as outcome_unknown");
        }
        self.ack(entry).await;
        Ok(())
    }

    async fn send(&self, ctx: &super::context::CampaignContext, r: &Claimed) -> Record {
        let n = ctx.variants.len().max(1);
        let variant = r.variant.map_or(0, |v| v.max(0) as usize) % n;
        let local_time = self.clock.now().with_timezone(&ctx.schedule.timezone()).naive_local();
        let render_ctx = RenderContext {
            name: &r.name,
            phone: &r.phone,
            fields: r.fields.as_object(),
            local_time,
        };
        let seed = recipient_seed(r.campaign_id, r.contact_id.unwrap_or_default());
        let text = ctx
            .variants
            .get(variant)
            .map(|(t, _)| t.render(&render_ctx, seed))
            .unwrap_or_default();
        let message = ctx.outgoing(variant, text.clone());
        let started = Instant::now();
        let result = self.gateway.send(ctx.target(), &r.phone, &message).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let base = Record {
            recipient_id: r.id,
            campaign_id: r.campaign_id,
            tenant_id: r.tenant_id,
            variant: Some(variant as i16),
            rendered: text,
            attempts: 1,
            gateway_status: None,
            body_excerpt: String::new(),
            duration_ms,
            outcome: Outcome::Sent,
            reason: None,
            message_id: None,
            at: self.clock.now(),
        };
        match result {
            Ok(sent) => Record {
                attempts: sent.attempts,
                gateway_status: Some(sent.status),
                body_excerpt: sent.body_excerpt,
                message_id: Some(sent.message_id),
                ..base
            },
            Err(e) => {
                let (outcome, reason) = match e.class {
                    ErrorClass::Instance => (Outcome::InstanceError, e.reason.clone()),
                    ErrorClass::Unknown => (Outcome::Failed, format!("outcome_unknown: {}", e.reason)),
                    ErrorClass::Recipient | ErrorClass::Transient => (Outcome::Failed, e.reason.clone()),
                };
                tracing::info!(recipient = %r.id, class = e.class.as_str(), reason = %e.reason, "send failed");
                Record {
                    attempts: e.attempts,
                    gateway_status: e.status,
                    body_excerpt: e.body_excerpt,
                    outcome,
                    reason: Some(reason),
                    ..base
                }
            }
        }
    }
}
