//! The dispatch queue: a due-time queue (a Redis sorted set scored by the planned instant,
//! Unix ms) in front of one Redis stream of due jobs read by a consumer group. Jobs wait
//! for their instant in the sorted set, never in a worker's slot: one atomic script
//! ([`promote`]) moves the due ones to the stream, and workers only ever read jobs that are
//! due now. A job blocked by a phone lock goes back to the sorted set at the lock's expiry.
//!
//! Both keys share the hash tag `{dispatch}`, so the script touches one slot and runs on a
//! Redis Cluster as it is. Postgres stays the truth: a lost entry is re-queued by the beat
//! (all of them when the `alive` marker is gone, i.e. Redis lost its data), a duplicate
//! entry is harmless (the worker's conditional claim drops it).

use chrono::{DateTime, TimeZone, Utc};
use fred::prelude::*;
use fred::types::streams::XReadResponse;
use std::collections::HashMap;
use uuid::Uuid;

use crate::redis::Keys;

pub const GROUP: &str = "workers";

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub recipient_id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub phone: String,
    pub planned_at: DateTime<Utc>,
}

impl Job {
    /// `recipient|campaign|tenant|phone|planned ms`: the sorted-set member and the stream
    /// entry's one field `j`.
    fn encode(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}",
            self.recipient_id.simple(),
            self.campaign_id.simple(),
            self.tenant_id.simple(),
            self.phone,
            self.planned_at.timestamp_millis()
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split('|');
        let mut uuid = || parts.next().and_then(|v| Uuid::parse_str(v).ok());
        let (recipient_id, campaign_id, tenant_id) = (uuid()?, uuid()?, uuid()?);
        let phone = parts.next()?.to_owned();
        let planned_at = Utc.timestamp_millis_opt(parts.next()?.parse().ok()?).single()?;
        Some(Self {
            recipient_id,
            campaign_id,
            tenant_id,
            phone,
            planned_at,
        })
    }

    fn from_fields(f: &HashMap<String, String>) -> Option<Self> {
        f.get("j").and_then(|j| Self::decode(j))
    }
}

/// A job read from the stream, with the entry id to acknowledge.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub job: Option<Job>,
}

pub fn stream_key(keys: &Keys) -> String {
    keys.key(&["{dispatch}"])
}

/// The due-time queue: jobs not due yet, scored by their planned instant (Unix ms).
pub fn due_key(keys: &Keys) -> String {
    keys.key(&["{dispatch}", "due"])
}

/// Set by the beat once it has (re)built the queue from Postgres; gone means Redis lost
/// its data and every `queued` row must be queued again.
fn alive_key(keys: &Keys) -> String {
    keys.key(&["{dispatch}", "alive"])
}

/// Jobs due by `now` go straight to the stream; later ones wait in the due-time queue.
pub async fn enqueue(redis: &Client, keys: &Keys, jobs: &[Job], now: DateTime<Utc>) -> Result<(), Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let (stream, due) = (stream_key(keys), due_key(keys));
    let pipeline = redis.pipeline();
    for job in jobs {
        // Compared in ms, the queue's unit (Postgres keeps µs, rounding up sometimes).
        if job.planned_at.timestamp_millis() <= now.timestamp_millis() {
            let _: () = pipeline
                .xadd(&stream, false, None, "*", vec![("j", job.encode())])
                .await?;
        } else {
            let _: () = pipeline
                .zadd(
                    &due,
                    None,
                    None,
                    false,
                    false,
                    (job.planned_at.timestamp_millis() as f64, job.encode()),
                )
                .await?;
        }
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}

/// `KEYS[1]` due-time queue, `KEYS[2]` stream; `ARGV[1]` now (ms), `ARGV[2]` most to move.
/// Moves the due jobs to the stream; returns the next due instant (ms), or -1.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', m)
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return tonumber(nxt[2]) end
return -1";

/// Moves the jobs due by `now` (at most `max`) from the due-time queue to the stream, in
/// one atomic script: a job is moved once, whichever worker runs it. Returns the instant the
/// earliest job still waiting falls due, if any.
pub async fn promote(
    redis: &Client,
    keys: &Keys,
    now: DateTime<Utc>,
    max: u64,
) -> Result<Option<DateTime<Utc>>, Error> {
    let next: i64 = redis
        .eval(
            PROMOTE,
            vec![due_key(keys), stream_key(keys)],
            vec![now.timestamp_millis().to_string(), max.to_string()],
        )
        .await?;
    Ok((next >= 0).then(|| Utc.timestamp_millis_opt(next).single()).flatten())
}

/// Creates the consumer group (and the stream) if missing. The group starts at the
/// stream's beginning (`0`), so entries appended before it existed (right after a Redis
/// flush, by a beat faster than the workers) are still read.
pub async fn ensure_group(redis: &Client, keys: &Keys) -> Result<(), Error> {
    let result: Result<(), Error> = redis.xgroup_create(stream_key(keys), GROUP, "0", true).await;
    match result {
        Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// True the first time it is called after Redis lost its data (and at the very first
/// start): the caller must queue every `queued` row again. Sets the marker.
pub async fn data_lost(redis: &Client, keys: &Keys) -> Result<bool, Error> {
    let set: Option<String> = redis
        .set(alive_key(keys), "1", None, Some(fred::types::SetOptions::NX), false)
        .await?;
    Ok(set.is_some())
}

/// Jobs waiting for their instant in the due-time queue (all tenants).
pub async fn due_len(redis: &Client, keys: &Keys) -> Result<u64, Error> {
    redis.zcard(due_key(keys)).await
}

pub async fn len(redis: &Client, keys: &Keys) -> Result<u64, Error> {
    redis.xlen(stream_key(keys)).await
}

/// Entries as Redis returns them: id and fields.
type RawEntries = Vec<(String, HashMap<String, String>)>;

fn entries(raw: RawEntries) -> Vec<Entry> {
    raw.into_iter()
        .map(|(id, fields)| Entry {
            job: Job::from_fields(&fields),
            id,
        })
        .collect()
}

/// Reads new entries for this consumer, blocking up to `block_ms` (needs a client of its
/// own: a blocked connection serves nothing else). Empty on timeout.
pub async fn read(
    blocking: &Client,
    keys: &Keys,
    consumer: &str,
    count: u64,
    block_ms: u64,
) -> Result<Vec<Entry>, Error> {
    let key = stream_key(keys);
    // A timeout answers nil, which the typed map form cannot express: read a raw value.
    let raw: Value = blocking
        .xreadgroup(GROUP, consumer, Some(count), Some(block_ms), false, &key, ">")
        .await?;
    if raw.is_null() {
        return Ok(vec![]);
    }
    let mut response: XReadResponse<String, String, String, String> = raw.into_xread_response()?;
    Ok(response.remove(&key).map(entries).unwrap_or_default())
}

/// Takes over entries another consumer read but did not acknowledge for `min_idle_ms`.
pub async fn claim_abandoned(
    redis: &Client,
    keys: &Keys,
    consumer: &str,
    min_idle_ms: u64,
    count: u64,
) -> Result<Vec<Entry>, Error> {
    let (_next, raw): (String, RawEntries) = redis
        .xautoclaim_values(
            stream_key(keys),
            GROUP,
            consumer,
            min_idle_ms,
            "0-0",
            Some(count),
            false,
        )
        .await?;
    Ok(entries(raw))
}

/// Resets the idle time of entries this consumer is still working on (`XCLAIM … JUSTID` to
/// itself), so that [`claim_abandoned`] never hands a live worker's job to another one.
pub async fn keep_alive(redis: &Client, keys: &Keys, consumer: &str, ids: Vec<String>) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let _: Value = redis
        .xclaim(stream_key(keys), GROUP, consumer, 0, ids, None, None, None, false, true)
        .await?;
    Ok(())
}

/// Acknowledges and deletes entries, keeping the stream short.
pub async fn done(redis: &Client, keys: &Keys, ids: &[String]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let key = stream_key(keys);
    let pipeline = redis.pipeline();
    let _: () = pipeline.xack(&key, GROUP, ids.to_vec()).await?;
    let _: () = pipeline.xdel(&key, ids.to_vec()).await?;
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}
