//! `arauto worker`: moves due jobs from the due-time queue to the stream, reads them and
//! sends them, `dispatch.concurrency` at a time. Per job (due now, never waited for in a
//! slot): check the window; take the phone lock (held: back to the due-time queue at its
//! expiry); claim `queued → sending` (batched, checks the campaign is still active);
//! render; then for each attempt reserve the campaign's pacing instant and wait for it,
//! re-check the window and pass the send gate (refused once paused or cancelled), send;
//! record the outcome (batched); acknowledge.

use chrono::Utc;
use fred::prelude::Client;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::batcher::Batcher;
use super::context::{CampaignContext, ContextCache, NumberTarget};
use super::gate;
use super::lock::{self, Acquired};
use super::stream::{self, Entry, EntryId, Job, JobKind};
use crate::calendar::is_open;
use crate::campaigns::domain::recipient_seed;
use crate::campaigns::media::{MediaChecker, MEDIA_UNAVAILABLE};
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::gateway::{ConnectionState, ErrorClass, GatewayClient, InstanceTarget, OutgoingMessage};
use crate::instances::connectivity;
use crate::recipients::{self, Claimed, Outcome, Record};
use crate::redis::Keys;
use crate::templating::RenderContext;

mod message;

/// Claims and outcome records are grouped per statement: at most this many, or whatever
/// arrived within the linger time.
const BATCH: usize = 64;
/// Longest a job waits in a worker slot for its campaign's pacing instant; a job whose
/// instant is further away goes back to the due-time queue.
const SOON: Duration = Duration::from_millis(50);
/// Longest blocking read of the stream (ms): bounds how late a job that fell due in the
/// due-time queue meanwhile is moved to the stream.
pub const MAX_BLOCK_MS: u64 = 50;
/// Shortest time between two promotions by one worker's loop.
const PROMOTE_EVERY: Duration = Duration::from_millis(2);
/// Most jobs moved from the due-time queue per promotion.
const PROMOTE_BATCH: u64 = 500;
/// A job read this much (ms) before its planned instant goes back to the due-time queue.
const EARLY_TOLERANCE_MS: i64 = 20;
/// How often a worker says it is alive and keeps its in-progress entries its own.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// The pause reason when the gateway stayed unreachable past the retries (PRODUCT §7).
pub const GATEWAY_UNREACHABLE: &str = "gateway_unreachable";
/// Media sends of one campaign refused because their media could not be fetched (its URL
/// checked again by the worker) before the campaign pauses with `media_unavailable`;
/// counted across workers, forgotten after [`MEDIA_FAILURE_MEMORY_MS`] or a media send that
/// succeeds.
pub const MEDIA_FAILURES_TO_PAUSE: i64 = 3;
/// How long a campaign's media failures are remembered, in ms.
pub const MEDIA_FAILURE_MEMORY_MS: i64 = 600_000;

/// The URL of a media or voice-note message.
fn media_url(message: &OutgoingMessage) -> Option<&str> {
    match message {
        OutgoingMessage::Media { url, .. } | OutgoingMessage::VoiceNote { url } => Some(url),
        OutgoingMessage::Text { .. } => None,
    }
}

/// Live workers: a sorted set of consumers scored by their last heartbeat (wall-clock ms),
/// read with `ZCOUNT` by `GET /queue` (no `KEYS` on a shared Redis).
pub fn workers_key(keys: &Keys) -> String {
    keys.key(&["workers"])
}
const CLAIM_LINGER: Duration = Duration::from_millis(2);
const RECORD_LINGER: Duration = Duration::from_millis(20);

pub struct Worker {
    consumer: String,
    db: sea_orm::DatabaseConnection,
    redis: Client,
    blocking: Client,
    keys: Keys,
    gateway: GatewayClient,
    media: MediaChecker,
    clock: SharedClock,
    settings: Arc<Settings>,
    contexts: ContextCache,
    /// Decrypts the instance keys of one-off messages (campaigns' come with their context).
    cipher: crate::crypto::Cipher,
    claimer: Batcher<Uuid, Option<Claimed>>,
    recorder: Batcher<Record, bool>,
    /// Stream entries being processed here, kept alive against [`stream::claim_abandoned`].
    in_progress: std::sync::Mutex<std::collections::HashSet<EntryId>>,
}

impl Worker {
    pub async fn new(state: &crate::state::AppState) -> anyhow::Result<Arc<Self>> {
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
                    match recipients::claim(&db, &ids, now).await {
                        Ok(rows) => {
                            // Each claimed row goes to one job only, even if the batch
                            // holds the same recipient twice (a duplicate queue entry).
                            let mut rows: std::collections::HashMap<Uuid, Claimed> =
                                rows.into_iter().map(|r| (r.id, r)).collect();
                            ids.iter().map(|id| rows.remove(id)).collect()
                        }
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
                        match super::outcomes::record(&db, &records).await {
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
            cipher: state.cipher.clone(),
            db,
            redis: state.redis.clone(),
            blocking,
            keys: state.keys.clone(),
            gateway: state.gateway.clone(),
            media: state.media.clone(),
            clock,
            settings: state.settings.clone(),
            claimer,
            recorder,
            in_progress: Default::default(),
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
        let mut last_promote = Instant::now().checked_sub(PROMOTE_EVERY).unwrap_or_else(Instant::now);
        // The partition read first (and blocked on when all are empty), turning each round.
        let mut start: u16 = 0;
        // Beside the loop, so that it runs however long the sends in hand take.
        let beating = CancellationToken::new();
        let heart = tokio::spawn({
            let (worker, beating) = (self.clone(), beating.clone());
            async move {
                loop {
                    worker.heartbeat().await;
                    tokio::select! {
                        _ = beating.cancelled() => break,
                        _ = tokio::time::sleep(HEARTBEAT) => {}
                    }
                }
            }
        });
        tracing::info!(consumer = %self.consumer, "worker started");
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tasks.join_next() => continue,
                }
            }
            // One promotion (a script per queue partition) per few ms at most: under load the
            // loop turns once per finished send, which would otherwise repeat it each time.
            let block_ms = if last_promote.elapsed() >= PROMOTE_EVERY {
                last_promote = Instant::now();
                self.promote_due().await
            } else {
                1
            };
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
                start = start.wrapping_add(1) % self.keys.partitions();
                let read = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    r = stream::read(&self.blocking, &self.keys, &self.consumer, free as u64, block_ms, start) => r,
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
        beating.cancel();
        let _ = heart.await;
        let _: Result<i64, _> =
            fred::prelude::SortedSetsInterface::zrem(&self.redis, workers_key(&self.keys), self.consumer.as_str())
                .await;
        Ok(())
    }

    /// Moves due jobs from the due-time queue to the stream; returns how long the next
    /// read may block (ms): until the next job falls due, at most [`MAX_BLOCK_MS`].
    pub async fn promote_due(&self) -> u64 {
        let now = self.clock.now();
        match stream::promote(&self.redis, &self.keys, now, PROMOTE_BATCH).await {
            Ok(next_due) => next_due.map_or(MAX_BLOCK_MS, |t| {
                ((t - now).num_milliseconds().max(1) as u64).min(MAX_BLOCK_MS)
            }),
            Err(e) => {
                tracing::warn!(error = %e, "moving due jobs to the stream failed");
                MAX_BLOCK_MS
            }
        }
    }

    async fn heartbeat(&self) {
        use fred::prelude::SortedSetsInterface;
        let mine: Vec<EntryId> = self.in_hand().iter().cloned().collect();
        if let Err(e) = stream::keep_alive(&self.redis, &self.keys, &self.consumer, mine).await {
            tracing::warn!(error = %e, "keeping in-progress entries alive failed");
        }
        let now = Utc::now().timestamp_millis();
        let key = workers_key(&self.keys);
        let _: Result<(), _> = self
            .redis
            .zadd(&key, None, None, false, false, (now as f64, self.consumer.as_str()))
            .await;
        let stale = (now - 60_000) as f64;
        let _: Result<i64, _> = self.redis.zremrangebyscore(&key, f64::NEG_INFINITY, stale).await;
    }

    async fn ack(&self, entry: &Entry) {
        if let Err(e) = stream::done(&self.redis, &self.keys, std::slice::from_ref(&entry.id)).await {
            tracing::warn!(error = %e, "XACK failed; the entry will be claimed again and dropped");
        }
    }

    /// Puts the job back in the due-time queue for `wait_ms` later and acknowledges this
    /// entry: deferred, not dropped, and no worker slot waits for it.
    async fn defer(&self, entry: &Entry, job: &Job, wait_ms: u64) {
        let now = self.clock.now();
        let later = Job {
            planned_at: now + chrono::Duration::milliseconds(wait_ms.min(600_000) as i64 + 5),
            ..job.clone()
        };
        match stream::enqueue(&self.redis, &self.keys, &[later], now).await {
            Ok(()) => self.ack(entry).await,
            Err(e) => tracing::warn!(error = %e, "deferring failed; the entry stays pending and is reclaimed"),
        }
    }

    /// The job's destination lock: one send at a time per phone and tenant, whatever sends it.
    fn phone_key(&self, job: &Job) -> String {
        self.keys
            .key(&["lock", "phone", &job.tenant_id.to_string(), &job.phone])
    }

    /// The job's phone lock; when another send holds it, the job goes back to the due-time
    /// queue at the lock's expiry (`None`: nothing more to do with this entry).
    async fn lock_phone(&self, entry: &Entry, job: &Job) -> anyhow::Result<Option<lock::Lock>> {
        match lock::acquire(&self.redis, self.phone_key(job), self.settings.dispatch.phone_lock_ms).await? {
            Acquired::Yes(l) => Ok(Some(l)),
            Acquired::HeldFor(ms) => {
                metrics::counter!("arauto_phone_lock_busy_total").increment(1);
                self.defer(entry, job, ms).await;
                Ok(None)
            }
        }
    }

    /// The attempt holding `pass` is over (sent or not): it no longer counts in flight.
    async fn leave_gate(&self, pass: &gate::Pass) {
        if let Err(e) = gate::leave(&self.redis, &self.keys, pass).await {
            tracing::warn!(error = %e, "leaving the send gate failed; the entry expires by itself");
        }
    }

    async fn release(&self, l: &lock::Lock) {
        if let Err(e) = lock::release(&self.redis, l).await {
            tracing::warn!(error = %e, key = %l.key, "releasing a lock failed; it expires by itself");
        }
    }

    fn in_hand(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<EntryId>> {
        self.in_progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[tracing::instrument(skip_all, fields(entry = %entry.id, campaign_id, tenant_id))]
    pub async fn process(&self, entry: Entry) {
        self.in_hand().insert(entry.id.clone());
        self.process_entry(&entry).await;
        self.in_hand().remove(&entry.id);
    }

    async fn process_entry(&self, entry: &Entry) {
        let Some(job) = entry.job.clone() else {
            tracing::warn!("malformed stream entry dropped");
            return self.ack(entry).await;
        };
        let span = tracing::Span::current();
        span.record("campaign_id", tracing::field::display(job.campaign_id));
        span.record("tenant_id", tracing::field::display(job.tenant_id));
        if let Err(e) = self.try_process(entry, &job).await {
            tracing::error!(error = ?e, "job failed; it stays pending in the stream and is reclaimed");
        }
    }

    fn window_open(&self, ctx: &CampaignContext) -> bool {
        let holidays = ctx
            .schedule
            .holiday_lookup(self.contexts.calendars(), &ctx.tenant_holidays);
        is_open(&ctx.schedule, &holidays, self.clock.now())
    }

    async fn try_process(&self, entry: &Entry, job: &Job) -> anyhow::Result<()> {
        let early = job.planned_at - self.clock.now();
        if early > chrono::Duration::milliseconds(EARLY_TOLERANCE_MS) {
            // Read before its instant (a reclaimed or hand-made entry): back to the queue.
            self.defer(entry, job, early.num_milliseconds().max(0) as u64).await;
            return Ok(());
        }
        if job.kind == JobKind::Message {
            return self.process_message(entry, job).await;
        }
        let Some(ctx) = self.contexts.get(job.campaign_id).await? else {
            self.ack(entry).await;
            return Ok(());
        };
        let Some(number) = ctx.number(job.instance_id) else {
            self.ack(entry).await;
            return Ok(());
        };
        // A pool's number heard disconnected: nothing leaves from it; the recipient goes
        // back to `pending` and the beat gives it another number (PRODUCT §4).
        if !self.window_open(&ctx) || (ctx.is_pool() && number.closed) {
            recipients::unqueue(&self.db, job.recipient_id).await?;
            self.ack(entry).await;
            return Ok(());
        }
        let pace = ctx.pace(number);
        let Some(phone_lock) = self.lock_phone(entry, job).await? else {
            return Ok(());
        };
        // The campaign's pacing, before the claim: a job that could not leave soon goes back
        // to the due-time queue, so no slot waits for it. It comes back `SOON` before the
        // campaign's next free instant, so that its reservation lands on that instant: back
        // at the instant itself, the queue's pickup delay (up to `MAX_BLOCK_MS` and a loaded
        // worker's lag) would be added to every deferred send, and with `min = max` the
        // delays add up send after send until the next tick.
        let reserved = if ctx.interval_ms > 0 {
            match gate::reserve(&self.redis, &self.keys, pace, ctx.interval_ms, Some(SOON)).await? {
                gate::Reservation::In(wait) => Some(tokio::time::Instant::now() + wait),
                gate::Reservation::NotBefore(wait) => {
                    self.release(&phone_lock).await;
                    self.defer(entry, job, wait.saturating_sub(SOON).as_millis() as u64)
                        .await;
                    return Ok(());
                }
            }
        } else {
            None
        };
        let Some(r) = self.claimer.submit(job.recipient_id).await.flatten() else {
            // Paused, cancelled, already sent or already taken: nothing to send.
            self.release(&phone_lock).await;
            self.ack(entry).await;
            return Ok(());
        };
        // Lateness counts from the beat's plan: a deferred entry carries its come-back instant.
        let planned_at = r.planned_at.unwrap_or(job.planned_at);
        let record = self.send(&ctx, number, &r, planned_at, reserved, &phone_lock).await;
        if record.outcome == Outcome::Unsent {
            // Nothing went out: free the phone for the recipient's next turn.
            self.release(&phone_lock).await;
        }
        if let Some(reason) = &record.pause {
            // The campaign is about to pause itself: stop its other sends in hand at once.
            // Closed before the pause commits, so a resume that follows it reopens the gate
            // (closing after could undo that resume).
            if let Err(e) = gate::close(&self.redis, &self.keys, r.campaign_id, reason).await {
                tracing::warn!(error = %e, "closing the send gate failed");
            }
        }
        if self.recorder.submit(record).await != Some(true) {
            tracing::error!(recipient = %r.id, "outcome not recorded: the recipient stays `sending` and times out as outcome_unknown");
        }
        self.ack(entry).await;
        Ok(())
    }

    /// After a recipient-level refusal of a media send: why its media URL is unusable (it
    /// does not answer, or answers an error), checked afresh; `None` when the media is fine
    /// (or checks are off), so the refusal is the recipient's.
    async fn media_problem(&self, message: &OutgoingMessage) -> Option<crate::campaigns::media::MediaProblem> {
        let url = media_url(message)?;
        if !self.media.enabled() {
            return None;
        }
        match self.media.probe(url).await {
            Err(problem) if problem.is_unavailable() => Some(problem),
            _ => None,
        }
    }

    fn media_failures_key(&self, campaign_id: Uuid) -> String {
        self.keys.key(&["media_failures", &campaign_id.to_string()])
    }

    /// Counts one more media failure of the campaign; returns the count (0 when Redis did
    /// not answer: no pause on a guess).
    async fn count_media_failure(&self, campaign_id: Uuid) -> i64 {
        use fred::prelude::KeysInterface;
        let key = self.media_failures_key(campaign_id);
        let count: i64 = match self.redis.incr(&key).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "counting a media failure failed");
                return 0;
            }
        };
        let _: Result<bool, _> = self.redis.pexpire(&key, MEDIA_FAILURE_MEMORY_MS, None).await;
        count
    }

    async fn forget_media_failures(&self, campaign_id: Uuid) {
        use fred::prelude::KeysInterface;
        let _: Result<i64, _> = self.redis.del(self.media_failures_key(campaign_id)).await;
    }

    /// Before an attempt: on a paced lane's first attempt, a connection to the gateway at
    /// `api_url` made sure of ([`GatewayClient::warm`]: the request must not pay a handshake
    /// after the gate; a retry follows an answer, or a connection that could not be opened,
    /// and does not warm); the lane's pacing reservation (`reserved` for the first attempt,
    /// taken before the claim; a retry takes a new one), waited for here outside any
    /// transaction; the campaign's window re-checked; the phone lock renewed and a pass
    /// through the lane's send gate, nothing between the pass and the request.
    /// `Err` says why nothing may leave now.
    async fn prepare_attempt(
        &self,
        lane: &Lane<'_>,
        api_url: &str,
        reserved: Option<tokio::time::Instant>,
    ) -> Result<gate::Pass, &'static str> {
        // A first attempt's reservation is at most `SOON` away (the job was deferred
        // otherwise): the warm-up overlaps that wait, and delays the send by what it takes
        // beyond it (a round trip and the handshakes, when the pool was cold).
        if reserved.is_some() && lane.interval_ms > 0 {
            self.gateway.warm(api_url).await;
        }
        let until = match reserved {
            Some(at) => Some(at),
            None if lane.interval_ms > 0 => {
                match gate::reserve(&self.redis, &self.keys, lane.pace, lane.interval_ms, None).await {
                    Ok(gate::Reservation::In(wait) | gate::Reservation::NotBefore(wait)) => {
                        Some(tokio::time::Instant::now() + wait)
                    }
                    Err(_) => return Err("pacing reservation failed"),
                }
            }
            None => None,
        };
        if let Some(until) = until {
            tokio::time::sleep_until(until).await;
        }
        // The window as the campaign's context says now, not as the job's copy did: a retry
        // may come long after the claim, and a tenant holiday added meanwhile must hold
        // (the cache reloads within its TTL, shorter than the hold a holiday puts on the gate).
        if let Some(ctx) = lane.campaign {
            let fresh = self.contexts.get(ctx.id).await.ok().flatten();
            if !self.window_open(fresh.as_deref().unwrap_or(ctx)) {
                return Err("window closed");
            }
        }
        // An attempt is in flight for at most the call timeout (plus a margin).
        let max_attempt = self.gateway.timeout() + Duration::from_secs(2);
        loop {
            // One send at a time per phone: the lock, taken before the claim, is renewed
            // right before each try at the gate; if it expired meanwhile another send to the
            // phone may be under way, so this one waits. Before the gate, not after it: the
            // gate records the departure the next send is spaced from, and a round trip
            // between that record and the request (13 ms once, on a loaded machine) brought
            // two requests closer at the gateway than the minimum.
            match lock::extend(&self.redis, lane.phone, self.settings.dispatch.phone_lock_ms).await {
                Ok(true) => {}
                Ok(false) => return Err("phone lock lost"),
                Err(_) => return Err("phone lock unreachable"),
            }
            match gate::enter(&self.redis, &self.keys, lane.pace, lane.interval_ms, max_attempt).await {
                Ok(gate::Entry::Go(pass)) => return Ok(pass),
                Ok(gate::Entry::Wait(ms)) => tokio::time::sleep(Duration::from_millis(ms)).await,
                Ok(gate::Entry::Stopped) => return Err("campaign stopped"),
                Err(_) => return Err("send gate unreachable"),
            }
        }
    }

    /// Renders and sends a campaign's recipient from `number` ([`Self::deliver`] on the
    /// campaign's lane, paced per number in a pool). In a pool, an instance error marks the
    /// number disconnected instead of pausing the campaign: the recipient goes back to
    /// `pending` for another number, and the campaign pauses only when none is left
    /// ([`connectivity::record`]).
    async fn send(
        &self,
        ctx: &CampaignContext,
        number: &NumberTarget,
        r: &Claimed,
        planned_at: chrono::DateTime<chrono::Utc>,
        reserved: Option<tokio::time::Instant>,
        phone_lock: &lock::Lock,
    ) -> Record {
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
        let lane = Lane {
            pace: ctx.pace(number),
            interval_ms: ctx.interval_ms,
            campaign: Some(ctx),
            phone: phone_lock,
        };
        let mut d = self
            .deliver(&lane, number.target(), &r.phone, &message, planned_at, reserved, r.id)
            .await;
        if ctx.is_pool() && d.instance_error {
            let now = self.clock.now();
            match connectivity::record(&self.db, number.id, Some(ConnectionState::Close), now).await {
                Ok(()) => d.pause = None,
                Err(e) => tracing::warn!(error = %e, "recording a pool number as disconnected failed: pausing"),
            }
        }
        Record {
            recipient_id: r.id,
            campaign_id: r.campaign_id,
            tenant_id: r.tenant_id,
            variant: Some(variant as i16),
            rendered: text,
            attempts: d.attempts,
            gateway_status: d.gateway_status,
            body_excerpt: d.body_excerpt,
            duration_ms: started.elapsed().as_millis() as u64,
            outcome: d.outcome,
            reason: d.reason,
            pause: d.pause,
            message_id: d.message_id,
            at: self.clock.now(),
        }
    }

    /// Sends `message` to `phone`, retrying transient errors up to `gateway.max_attempts`
    /// with backoff; every attempt (the first and each retry) goes through
    /// [`Self::prepare_attempt`], so pacing, the window and pause/cancel hold at the instant
    /// each request leaves. Errors that prove nothing was sent never fail the send (outcome
    /// [`Outcome::Unsent`], with the reason to pause for). `id` names the send in logs.
    #[allow(clippy::too_many_arguments)]
    async fn deliver(
        &self,
        lane: &Lane<'_>,
        target: InstanceTarget<'_>,
        phone: &str,
        message: &OutgoingMessage,
        planned_at: chrono::DateTime<chrono::Utc>,
        reserved: Option<tokio::time::Instant>,
        id: Uuid,
    ) -> Delivery {
        let mut reserved = reserved;
        let mut d = Delivery {
            attempts: 0,
            gateway_status: None,
            body_excerpt: String::new(),
            outcome: Outcome::Unsent,
            reason: None,
            pause: None,
            instance_error: false,
            message_id: None,
        };
        let max_attempts = self.gateway.max_attempts();
        loop {
            if d.attempts > 0 {
                metrics::counter!("arauto_gateway_retries_total").increment(1);
                tokio::time::sleep(self.gateway.backoff(d.attempts)).await;
            }
            let pass = match self.prepare_attempt(lane, target.api_url, reserved.take()).await {
                Ok(pass) => pass,
                Err(why) => {
                    // Nothing left for this attempt: a recipient goes back to `pending` (or
                    // ends `cancelled` with its campaign), a message is due again later.
                    tracing::info!(send = %id, why, "send not attempted");
                    d.reason = Some(why.to_owned());
                    break;
                }
            };
            d.attempts += 1;
            if d.attempts == 1 {
                let late = (self.clock.now() - planned_at).num_milliseconds().max(0) as f64 / 1000.0;
                metrics::histogram!("arauto_pacing_lateness_seconds").record(late);
            }
            let call = Instant::now();
            let result = self.gateway.send_once(target, phone, message).await;
            metrics::histogram!("arauto_send_duration_seconds").record(call.elapsed().as_secs_f64());
            self.leave_gate(&pass).await;
            match result {
                Ok(sent) => {
                    if let (Some(c), Some(_)) = (lane.campaign, media_url(message)) {
                        self.forget_media_failures(c.id).await;
                    }
                    d.outcome = Outcome::Sent;
                    d.gateway_status = Some(sent.status);
                    d.body_excerpt = sent.body_excerpt;
                    d.message_id = Some(sent.message_id);
                    d.reason = None;
                    break;
                }
                Err(e) => {
                    tracing::info!(send = %id, class = e.class.as_str(), reason = %e.reason, attempt = d.attempts, "send failed");
                    d.gateway_status = e.status;
                    d.body_excerpt = e.body_excerpt;
                    d.reason = Some(e.reason.clone());
                    match e.class {
                        ErrorClass::Transient if d.attempts < max_attempts => continue,
                        // The gateway stayed unreachable or overloaded: nothing was sent.
                        ErrorClass::Transient => {
                            d.outcome = Outcome::Unsent;
                            d.pause = Some(GATEWAY_UNREACHABLE.to_owned());
                        }
                        ErrorClass::Instance => {
                            d.outcome = Outcome::Unsent;
                            d.pause = Some(e.reason);
                            d.instance_error = true;
                        }
                        ErrorClass::Unknown => d.outcome = Outcome::Unknown,
                        ErrorClass::Recipient => match self.media_problem(message).await {
                            // The media cannot be fetched: not this recipient's fault. It
                            // goes back to `pending`; repeated, the campaign pauses.
                            Some(problem) => {
                                d.outcome = Outcome::Unsent;
                                d.reason = Some(format!("{MEDIA_UNAVAILABLE}: the media {problem}"));
                                if let Some(c) = lane.campaign {
                                    if self.count_media_failure(c.id).await >= MEDIA_FAILURES_TO_PAUSE {
                                        d.pause = Some(MEDIA_UNAVAILABLE.to_owned());
                                    }
                                }
                            }
                            None => d.outcome = Outcome::Failed,
                        },
                    }
                    break;
                }
            }
        }
        let error_class = match &d.pause {
            Some(reason) if reason == GATEWAY_UNREACHABLE => "transient",
            Some(_) => "instance",
            None if d.outcome == Outcome::Failed => "recipient",
            None if d.outcome == Outcome::Unknown => "unknown",
            None => "none",
        };
        metrics::counter!("arauto_sends_total", "outcome" => d.outcome.as_str(), "error_class" => error_class)
            .increment(1);
        d
    }
}

/// Where an attempt's pacing and send gate live: a campaign's (keyed by its id, its window
/// re-checked before each attempt), or an instance's one-off lane (keyed by the instance's
/// id, no window).
struct Lane<'a> {
    /// The gate (stop flag, in-flight attempts) and whose pacing the attempt counts against:
    /// a pool's number paces on its own.
    pace: gate::PaceKey,
    /// The gap the gate enforces (ms, margin included); 0: none.
    interval_ms: u64,
    campaign: Option<&'a CampaignContext>,
    /// The destination's phone lock, renewed before each attempt (an attempt whose lock was
    /// lost does not leave).
    phone: &'a lock::Lock,
}

/// What the attempts of one send came to.
struct Delivery {
    /// Requests made to the gateway (0: none left).
    attempts: u32,
    gateway_status: Option<u16>,
    body_excerpt: String,
    outcome: Outcome,
    reason: Option<String>,
    /// Nothing was sent because the instance or the gateway is unusable: this reason.
    pause: Option<String>,
    /// The instance answered that it cannot send (`pause` holds its reason).
    instance_error: bool,
    message_id: Option<String>,
}
