//! The dispatch queue: a due-time queue (a Redis sorted set scored by the planned instant,
//! Unix ms) in front of a Redis stream of due jobs read by a consumer group. Jobs wait
//! for their instant in the sorted set, never in a worker's slot: one atomic script
//! ([`promote`]) moves the due ones to the stream, and workers only ever read jobs that are
//! due now. A job blocked by a phone lock goes back to the sorted set at the lock's expiry.
//!
//! The queue is split into `dispatch.queue_partitions` partitions ([`Keys::partitions`]); a
//! job belongs to one by its recipient id ([`Job::partition`]). A partition's keys share its
//! hash tag (`dispatch:{<n>}:…`), so the script touches one slot and runs on a Redis Cluster
//! as it is, while the partitions spread the queue over the cluster's nodes. Postgres stays
//! the truth: a lost entry is re-queued by the beat (all of them when a partition's `alive`
//! marker is gone, i.e. Redis lost its data), a duplicate entry is harmless (the worker's
//! conditional claim drops it).

use chrono::{DateTime, TimeZone, Utc};
use fred::prelude::*;
use fred::types::streams::XReadResponse;
use std::collections::HashMap;
use uuid::Uuid;

use crate::redis::Keys;

pub const GROUP: &str = "workers";

/// What a job sends: a campaign's recipient, or a one-off message (`src/messages`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JobKind {
    #[default]
    Recipient,
    /// `recipient_id` is the message's id and `campaign_id` its instance's (the lane its
    /// pacing is reserved on).
    Message,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub recipient_id: Uuid,
    pub campaign_id: Uuid,
    pub tenant_id: Uuid,
    pub phone: String,
    pub planned_at: DateTime<Utc>,
    pub kind: JobKind,
    /// The number a recipient of a campaign over a pool is sent from (chosen by the beat,
    /// PRODUCT §4); `None`: the campaign's only number (and always for one-off messages).
    pub instance_id: Option<Uuid>,
}

impl Job {
    /// `recipient|campaign|tenant|phone|planned ms`, plus `|m` for a one-off message or
    /// `|<number>` (32 hex digits) for a pool's chosen number: the sorted-set member and the
    /// stream entry's one field `j`.
    fn encode(&self) -> String {
        let last = match (self.kind, self.instance_id) {
            (JobKind::Message, _) => "|m".to_owned(),
            (JobKind::Recipient, Some(n)) => format!("|{}", n.simple()),
            (JobKind::Recipient, None) => String::new(),
        };
        format!(
            "{}|{}|{}|{}|{}{last}",
            self.recipient_id.simple(),
            self.campaign_id.simple(),
            self.tenant_id.simple(),
            self.phone,
            self.planned_at.timestamp_millis(),
        )
    }

    fn decode(s: &str) -> Option<Self> {
        let mut parts = s.split('|');
        let mut uuid = || parts.next().and_then(|v| Uuid::parse_str(v).ok());
        let (recipient_id, campaign_id, tenant_id) = (uuid()?, uuid()?, uuid()?);
        let phone = parts.next()?.to_owned();
        let planned_at = Utc.timestamp_millis_opt(parts.next()?.parse().ok()?).single()?;
        let (kind, instance_id) = match parts.next() {
            None => (JobKind::Recipient, None),
            Some("m") => (JobKind::Message, None),
            Some(n) => (JobKind::Recipient, Some(Uuid::parse_str(n).ok()?)),
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self {
            recipient_id,
            campaign_id,
            tenant_id,
            phone,
            planned_at,
            kind,
            instance_id,
        })
    }

    fn from_fields(f: &HashMap<String, String>) -> Option<Self> {
        f.get("j").and_then(|j| Self::decode(j))
    }

    /// The queue partition this job goes to, of `partitions`: by its recipient id, so the
    /// jobs spread evenly and a job's duplicates land beside it.
    pub fn partition(&self, partitions: u16) -> u16 {
        (self.recipient_id.as_u128() % u128::from(partitions.max(1))) as u16
    }
}

/// A stream entry: its partition and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryId {
    pub partition: u16,
    pub id: String,
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.partition, self.id)
    }
}

/// A job read from the stream, with the entry id to acknowledge.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub job: Option<Job>,
}

/// The partitions, `0..keys.partitions()`.
fn partitions(keys: &Keys) -> impl Iterator<Item = u16> {
    0..keys.partitions()
}

/// A partition's stream of due jobs.
pub fn stream_key(keys: &Keys, partition: u16) -> String {
    keys.tagged("dispatch", &partition.to_string(), "stream")
}

/// A partition's due-time queue: jobs not due yet, scored by their planned instant (Unix ms).
pub fn due_key(keys: &Keys, partition: u16) -> String {
    keys.tagged("dispatch", &partition.to_string(), "due")
}

/// Set by the beat once it has (re)built the queue from Postgres; gone means Redis lost
/// the partition's data (a flush, a restart or a failover without persistence) and every
/// `queued` row must be queued again.
fn alive_key(keys: &Keys, partition: u16) -> String {
    keys.tagged("dispatch", &partition.to_string(), "alive")
}

/// Jobs due by `now` go straight to their partition's stream; later ones wait in its
/// due-time queue. One pipeline (on a cluster, fred sends each command to its node).
pub async fn enqueue(redis: &Client, keys: &Keys, jobs: &[Job], now: DateTime<Utc>) -> Result<(), Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let pipeline = redis.pipeline();
    for job in jobs {
        let partition = job.partition(keys.partitions());
        // Compared in ms, the queue's unit (Postgres keeps µs, rounding up sometimes).
        if job.planned_at.timestamp_millis() <= now.timestamp_millis() {
            let _: () = pipeline
                .xadd(stream_key(keys, partition), false, None, "*", vec![("j", job.encode())])
                .await?;
        } else {
            let _: () = pipeline
                .zadd(
                    due_key(keys, partition),
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

/// `KEYS[1]` due-time queue, `KEYS[2]` stream (one partition's); `ARGV[1]` now (ms),
/// `ARGV[2]` most to move. Moves the due jobs to the stream; returns the next due instant
/// (ms), or -1.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'j', m)
  redis.call('ZREM', KEYS[1], m)
end
local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if nxt[2] then return tonumber(nxt[2]) end
return -1";

/// Moves the jobs due by `now` (at most `max` per partition) from the due-time queues to
/// the streams, one atomic script per partition (all sent at once): a job is moved once, whichever
/// worker runs it. Returns the instant the earliest job still waiting falls due, if any.
pub async fn promote(
    redis: &Client,
    keys: &Keys,
    now: DateTime<Utc>,
    max: u64,
) -> Result<Option<DateTime<Utc>>, Error> {
    // Issued together: fred writes them back to back on each node's connection.
    let now_ms = now.timestamp_millis().to_string();
    let next: Vec<i64> = futures_util::future::try_join_all(partitions(keys).map(|p| {
        redis.eval::<i64, _, _, _>(
            PROMOTE,
            vec![due_key(keys, p), stream_key(keys, p)],
            vec![now_ms.clone(), max.to_string()],
        )
    }))
    .await?;
    let next = next.into_iter().filter(|n| *n >= 0).min();
    Ok(next.and_then(|n| Utc.timestamp_millis_opt(n).single()))
}

/// Creates the consumer group (and the stream) of every partition if missing. A group
/// starts at its stream's beginning (`0`), so entries appended before it existed (right
/// after a Redis flush, by a beat faster than the workers) are still read.
pub async fn ensure_group(redis: &Client, keys: &Keys) -> Result<(), Error> {
    for p in partitions(keys) {
        let result: Result<(), Error> = redis.xgroup_create(stream_key(keys, p), GROUP, "0", true).await;
        match result {
            Err(e) if !e.details().contains("BUSYGROUP") => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// True the first time it is called after Redis lost the data of any partition (and at
/// the very first start): the caller must queue every `queued` row again. Sets the markers.
pub async fn data_lost(redis: &Client, keys: &Keys) -> Result<bool, Error> {
    let pipeline = redis.pipeline();
    for p in partitions(keys) {
        let _: () = pipeline
            .set(alive_key(keys, p), "1", None, Some(fred::types::SetOptions::NX), false)
            .await?;
    }
    let set: Vec<Option<String>> = pipeline.all().await?;
    Ok(set.iter().any(Option::is_some))
}

/// Jobs waiting for their instant in the due-time queues (all tenants, all partitions).
pub async fn due_len(redis: &Client, keys: &Keys) -> Result<u64, Error> {
    let pipeline = redis.pipeline();
    for p in partitions(keys) {
        let _: () = pipeline.zcard(due_key(keys, p)).await?;
    }
    let lens: Vec<u64> = pipeline.all().await?;
    Ok(lens.iter().sum())
}

/// Entries in the streams (all partitions): due jobs not yet acknowledged.
pub async fn len(redis: &Client, keys: &Keys) -> Result<u64, Error> {
    let pipeline = redis.pipeline();
    for p in partitions(keys) {
        let _: () = pipeline.xlen(stream_key(keys, p)).await?;
    }
    let lens: Vec<u64> = pipeline.all().await?;
    Ok(lens.iter().sum())
}

/// Entries as Redis returns them: id and fields.
type RawEntries = Vec<(String, HashMap<String, String>)>;

fn entries(partition: u16, raw: RawEntries) -> Vec<Entry> {
    raw.into_iter()
        .map(|(id, fields)| Entry {
            job: Job::from_fields(&fields),
            id: EntryId { partition, id },
        })
        .collect()
}

/// One `XREADGROUP` of new entries of one partition, blocking up to `block_ms` when given.
async fn read_partition(
    client: &Client,
    keys: &Keys,
    partition: u16,
    consumer: &str,
    count: u64,
    block_ms: Option<u64>,
) -> Result<Vec<Entry>, Error> {
    let key = stream_key(keys, partition);
    // A timeout answers nil, which the typed map form cannot express: read a raw value.
    let raw: Value = client
        .xreadgroup(GROUP, consumer, Some(count), block_ms, false, &key, ">")
        .await?;
    if raw.is_null() {
        return Ok(vec![]);
    }
    let mut response: XReadResponse<String, String, String, String> = raw.into_xread_response()?;
    Ok(response
        .remove(&key)
        .map(|raw| entries(partition, raw))
        .unwrap_or_default())
}

/// Reads up to `count` new entries for this consumer: every partition in turn from
/// `start` (rotate it between calls so that none is favoured) without blocking, and if all
/// are empty, blocks on partition `start` up to `block_ms` (needs a client of its own: a
/// blocked connection serves nothing else). Empty on timeout.
pub async fn read(
    blocking: &Client,
    keys: &Keys,
    consumer: &str,
    count: u64,
    block_ms: u64,
    start: u16,
) -> Result<Vec<Entry>, Error> {
    let n = keys.partitions();
    let start = start % n;
    let mut found = vec![];
    if n > 1 {
        for p in (0..n).map(|i| (start + i) % n) {
            let left = count.saturating_sub(found.len() as u64);
            if left == 0 {
                break;
            }
            found.extend(read_partition(blocking, keys, p, consumer, left, None).await?);
        }
        if !found.is_empty() {
            return Ok(found);
        }
    }
    read_partition(blocking, keys, start, consumer, count, Some(block_ms)).await
}

/// Takes over entries another consumer read but did not acknowledge for `min_idle_ms`
/// (at most `count`, all partitions).
pub async fn claim_abandoned(
    redis: &Client,
    keys: &Keys,
    consumer: &str,
    min_idle_ms: u64,
    count: u64,
) -> Result<Vec<Entry>, Error> {
    let mut found = vec![];
    for p in partitions(keys) {
        let left = count.saturating_sub(found.len() as u64);
        if left == 0 {
            break;
        }
        let (_next, raw): (String, RawEntries) = redis
            .xautoclaim_values(
                stream_key(keys, p),
                GROUP,
                consumer,
                min_idle_ms,
                "0-0",
                Some(left),
                false,
            )
            .await?;
        found.extend(entries(p, raw));
    }
    Ok(found)
}

/// The ids grouped by partition.
fn by_partition(ids: &[EntryId]) -> HashMap<u16, Vec<String>> {
    let mut grouped: HashMap<u16, Vec<String>> = HashMap::new();
    for e in ids {
        grouped.entry(e.partition).or_default().push(e.id.clone());
    }
    grouped
}

/// Resets the idle time of entries this consumer is still working on (`XCLAIM … JUSTID` to
/// itself), so that [`claim_abandoned`] never hands a live worker's job to another one.
pub async fn keep_alive(redis: &Client, keys: &Keys, consumer: &str, ids: Vec<EntryId>) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let pipeline = redis.pipeline();
    for (p, ids) in by_partition(&ids) {
        let _: () = pipeline
            .xclaim(
                stream_key(keys, p),
                GROUP,
                consumer,
                0,
                ids,
                None,
                None,
                None,
                false,
                true,
            )
            .await?;
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}

/// Acknowledges and deletes entries, keeping the streams short.
pub async fn done(redis: &Client, keys: &Keys, ids: &[EntryId]) -> Result<(), Error> {
    if ids.is_empty() {
        return Ok(());
    }
    let pipeline = redis.pipeline();
    for (p, ids) in by_partition(ids) {
        let key = stream_key(keys, p);
        let _: () = pipeline.xack(&key, GROUP, ids.clone()).await?;
        let _: () = pipeline.xdel(&key, ids).await?;
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(kind: JobKind, instance_id: Option<Uuid>) -> Job {
        Job {
            recipient_id: Uuid::from_u128(1),
            campaign_id: Uuid::from_u128(2),
            tenant_id: Uuid::from_u128(3),
            phone: "5511987654321".into(),
            planned_at: Utc.timestamp_millis_opt(1_800_000_000_123).unwrap(),
            kind,
            instance_id,
        }
    }

    #[test]
    fn a_job_reads_back_as_it_was_written_with_or_without_its_pool_number() {
        for j in [
            job(JobKind::Recipient, None),
            job(JobKind::Recipient, Some(Uuid::from_u128(9))),
            job(JobKind::Message, None),
        ] {
            assert_eq!(Job::decode(&j.encode()), Some(j));
        }
    }

    #[test]
    fn a_malformed_entry_reads_as_nothing() {
        let good = job(JobKind::Recipient, Some(Uuid::from_u128(9))).encode();
        assert_eq!(Job::decode(&format!("{good}|extra")), None);
        assert_eq!(Job::decode(&good.replace("|5511", "|x|5511")), None);
        assert_eq!(Job::decode("not a job"), None);
    }
}
