//! The send gate: what makes pacing and pause/cancel hold at the instant a request leaves
//! for the gateway, not at the instant a row was claimed.
//!
//! Four Redis keys per campaign, all under one hash tag (`{campaign_id}`) so each script
//! touches a single slot and runs unchanged on Redis Cluster:
//!
//! - `campaign:{id}:pace` — the last reserved send instant (Unix ms on Redis's clock, as
//!   every instant here, so workers on different hosts agree). [`reserve`] sets
//!   `next = max(now, last + gap)` atomically, `gap` the campaign's minimum plus its
//!   departure margin: two reservations of one campaign are never closer than that,
//!   whichever worker or process makes them.
//! - `campaign:{id}:departed` — the instant (Unix ms) the campaign's last request was let
//!   go by [`enter`], which holds the next one back until the minimum has passed: the
//!   reservation plans, this guarantees, measured as late as the worker can.
//! - `campaign:{id}:stop` — set by [`close`] when the campaign is paused or cancelled.
//! - `campaign:{id}:inflight` — a sorted set of attempts in progress (member: a token,
//!   score: the instant in Unix ms after which it is presumed dead).
//!
//! Before every attempt (the first and each retry) a worker calls [`enter`]: in one script
//! it refuses when the stop flag is set, else registers the attempt as in flight. After the
//! gateway answered it calls [`leave`]. `pause`/`cancel` commit the status in Postgres, then
//! [`close`] sets the flag and [`drain`] waits until no attempt is in flight. An attempt that
//! entered before the flag was set is waited for; one that tries after it is refused. So once
//! the pause call returns, no request for that campaign leaves for the gateway.
//!
//! If Redis loses the keys, the pacing restarts from now and a stop flag is lost; the
//! conditional `queued → sending` claim in Postgres still refuses any new send of a stopped
//! campaign, so only sends already claimed when the flag vanished could still leave.

use fred::prelude::*;
use uuid::Uuid;

use crate::redis::Keys;

/// A script with `now` defined as Redis's own clock in ms: every worker, on any host,
/// measures pacing on the same clock. (Redis 7 replicates a script's effects, so reading
/// `TIME` before writing is allowed.) Built at compile time, not per call.
macro_rules! with_redis_now {
    ($body:literal) => {
        concat!(
            "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n",
            $body
        )
    };
}

/// `KEYS[1]` pace key; `ARGV[1]` gap (ms), `ARGV[2]` TTL (ms), `ARGV[3]` longest acceptable
/// wait (ms, negative: any). Returns the wait (ms) until the reserved instant, or minus the
/// wait until the earliest free instant when that is longer than acceptable (nothing
/// reserved then).
const RESERVE: &str = with_redis_now!(
    r"
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
local nxt = now
if last >= 0 and last + tonumber(ARGV[1]) > now then nxt = last + tonumber(ARGV[1]) end
local within = tonumber(ARGV[3])
if within >= 0 and nxt > now + within then return -(nxt - now) end
redis.call('SET', KEYS[1], nxt, 'PX', ARGV[2])
return nxt - now"
);

/// `KEYS[1]` stop flag, `KEYS[2]` in-flight set, `KEYS[3]` last departure (ms);
/// `ARGV[1]` token, `ARGV[2]` longest an attempt may take (ms), `ARGV[3]` guarded minimum
/// interval (ms). Returns -1 when the campaign is stopped, the ms still to wait when the last
/// departure is too recent, 0 when the attempt may go (registered in flight until it is
/// presumed dead, its departure recorded).
const ENTER: &str = with_redis_now!(
    r"
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
local min = tonumber(ARGV[3])
if min > 0 then
  local last = tonumber(redis.call('GET', KEYS[3]) or '-1')
  if last >= 0 and now < last + min then return last + min - now end
  redis.call('SET', KEYS[3], now, 'PX', math.max(min * 2, 60000))
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[2], 86400000)
return 0"
);

/// `KEYS[1]` stop flag, `KEYS[2]` in-flight set; `ARGV[1]` reason, `ARGV[2]` flag TTL (ms).
/// A flag already set for longer is kept (a short hold never shortens a pause's stop).
/// Returns how many attempts are still in flight.
const CLOSE: &str = with_redis_now!(
    r"
local left = redis.call('PTTL', KEYS[1])
if left ~= -1 and left < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return redis.call('ZCARD', KEYS[2])"
);

/// `KEYS[1]` in-flight set. Returns how many attempts are in flight and not presumed dead.
const IN_FLIGHT: &str = with_redis_now!(
    r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])"
);

/// Runs one of this module's scripts.
async fn eval(redis: &Client, script: &'static str, keys: Vec<String>, args: Vec<String>) -> Result<i64, Error> {
    redis.eval(script, keys, args).await
}

/// The campaign's gate as operators see it (`arauto campaigns inspect`): whether it is
/// closed (the reason) and how many attempts are in flight.
pub async fn inspect(redis: &Client, keys: &Keys, campaign_id: Uuid) -> Result<(Option<String>, i64), Error> {
    let stop: Option<String> = redis.get(key(keys, campaign_id, "stop")).await?;
    let in_flight = eval(redis, IN_FLIGHT, vec![key(keys, campaign_id, "inflight")], vec![]).await?;
    Ok((stop, in_flight))
}

fn key(keys: &Keys, campaign_id: Uuid, what: &str) -> String {
    keys.tagged("campaign", &campaign_id.to_string(), what)
}

/// Whose pacing a reservation or a departure counts against: a gate (a campaign, or an
/// instance's one-off lane) and, in a campaign over a pool of numbers, one of its numbers
/// (pacing applies per number, PRODUCT §4). Its keys (`pace`, `departed`, suffixed
/// `:<number>` in a pool) share the gate's hash tag; stop and in-flight stay the gate's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PaceKey {
    pub gate: Uuid,
    pub number: Option<Uuid>,
}

impl PaceKey {
    /// The whole gate paced as one (a one-number campaign, a one-off lane).
    pub fn of(gate: Uuid) -> Self {
        Self { gate, number: None }
    }

    fn key(&self, keys: &Keys, what: &str) -> String {
        match self.number {
            None => key(keys, self.gate, what),
            Some(n) => key(keys, self.gate, &format!("{what}:{}", n.simple())),
        }
    }
}

/// What [`reserve`] answered: waits measured on Redis's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Reserved: wait this long (outside any database transaction), then send.
    In(std::time::Duration),
    /// Nothing reserved: the campaign's next free instant is further away than acceptable;
    /// come back after this long (the job goes back to the due-time queue, no slot waits).
    NotBefore(std::time::Duration),
}

/// Reserves the campaign's next send instant, `max(now, last reserved + gap_ms)` on Redis's
/// clock, if it is at most `within` away (`None`: whatever it is).
pub async fn reserve(
    redis: &Client,
    keys: &Keys,
    pace: PaceKey,
    gap_ms: u64,
    within: Option<std::time::Duration>,
) -> Result<Reservation, Error> {
    // Kept a while past the gap so that a quiet spell still counts from the last send.
    let ttl = gap_ms.saturating_mul(2).max(60_000);
    let within_ms = within.map_or(-1, |w| w.as_millis().min(i64::MAX as u128) as i64);
    let wait = eval(
        redis,
        RESERVE,
        vec![pace.key(keys, "pace")],
        vec![gap_ms.to_string(), ttl.to_string(), within_ms.to_string()],
    )
    .await?;
    let ms = |n: i64| std::time::Duration::from_millis(n.unsigned_abs());
    Ok(if wait < 0 {
        Reservation::NotBefore(ms(wait))
    } else {
        Reservation::In(ms(wait))
    })
}

/// An attempt registered as in flight; give it back with [`leave`].
#[derive(Debug, Clone)]
pub struct Pass {
    campaign_id: Uuid,
    token: String,
}

/// What [`enter`] answered.
#[derive(Debug, Clone)]
pub enum Entry {
    /// Go now: the attempt is registered in flight and its departure recorded.
    Go(Pass),
    /// The campaign's last request left less than its minimum interval ago: try again
    /// after this many ms.
    Wait(u64),
    /// Paused or cancelled: nothing may leave.
    Stopped,
}

/// The last check before a request leaves, in one atomic script: refused once the campaign
/// is stopped; held back while its previous request left less than `interval_ms` ago (the
/// reservation planned the instant; this makes the guarantee hold at departure, whatever
/// delayed the workers); else registered in flight. Measured on Redis's clock, so workers on
/// different hosts agree. `max_attempt` (the call timeout plus a margin) bounds how long a
/// crashed worker's registration can hold up [`drain`].
pub async fn enter(
    redis: &Client,
    keys: &Keys,
    pace: PaceKey,
    interval_ms: u64,
    max_attempt: std::time::Duration,
) -> Result<Entry, Error> {
    let token = Uuid::new_v4().simple().to_string();
    let answer = eval(
        redis,
        ENTER,
        vec![
            key(keys, pace.gate, "stop"),
            key(keys, pace.gate, "inflight"),
            pace.key(keys, "departed"),
        ],
        vec![
            token.clone(),
            max_attempt.as_millis().to_string(),
            interval_ms.to_string(),
        ],
    )
    .await?;
    Ok(match answer {
        0 => Entry::Go(Pass {
            campaign_id: pace.gate,
            token,
        }),
        n if n > 0 => Entry::Wait(n as u64),
        _ => Entry::Stopped,
    })
}

/// The attempt is over (answered, failed or timed out).
pub async fn leave(redis: &Client, keys: &Keys, pass: &Pass) -> Result<(), Error> {
    let _: i64 = redis
        .zrem(key(keys, pass.campaign_id, "inflight"), pass.token.as_str())
        .await?;
    Ok(())
}

/// Stops every further attempt of the campaign (until [`open`]); returns the attempts
/// still in flight. The flag lives an hour: long enough for any send claimed before the
/// stop to have ended (retries included); after that the campaign's status in Postgres
/// refuses every claim by itself.
pub async fn close(redis: &Client, keys: &Keys, campaign_id: Uuid, reason: &str) -> Result<u64, Error> {
    close_for(redis, keys, campaign_id, reason, STOP_TTL_MS).await
}

/// [`close`] for `ttl_ms` only: the gate opens again by itself after it (a campaign held
/// while workers learn of a change, not stopped). A stop already set for longer (a pause,
/// a cancel) is kept as it is.
pub async fn close_for(
    redis: &Client,
    keys: &Keys,
    campaign_id: Uuid,
    reason: &str,
    ttl_ms: u64,
) -> Result<u64, Error> {
    let n = eval(
        redis,
        CLOSE,
        vec![key(keys, campaign_id, "stop"), key(keys, campaign_id, "inflight")],
        vec![reason.to_owned(), ttl_ms.max(1).to_string()],
    )
    .await?;
    Ok(n.max(0) as u64)
}

/// How long a pause's or cancel's stop lasts (ms): an hour.
pub const STOP_TTL_MS: u64 = 3_600_000;

/// Lets attempts through again (resume). The last reserved instant is kept: the first
/// send after a quick resume is still no closer than the minimum to the last one before.
pub async fn open(redis: &Client, keys: &Keys, campaign_id: Uuid) -> Result<(), Error> {
    let _: i64 = redis.del(key(keys, campaign_id, "stop")).await?;
    Ok(())
}

/// Waits until no attempt of the campaign is in flight (registrations past their
/// presumed-dead instant do not count), polling every 10 ms, at most `limit`. True when
/// drained.
pub async fn drain(redis: &Client, keys: &Keys, campaign_id: Uuid, limit: std::time::Duration) -> Result<bool, Error> {
    let deadline = tokio::time::Instant::now() + limit;
    let set = key(keys, campaign_id, "inflight");
    loop {
        if eval(redis, IN_FLIGHT, vec![set.clone()], vec![]).await? == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}
