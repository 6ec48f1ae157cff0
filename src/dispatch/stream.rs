//! The dispatch stream: one Redis stream of jobs (a recipient due at an instant), read by
//! a consumer group. Postgres stays the truth: a lost entry is re-queued by the beat, a
//! duplicate entry is harmless (the worker's conditional claim drops it).

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
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("r", self.recipient_id.to_string()),
            ("c", self.campaign_id.to_string()),
            ("t", self.tenant_id.to_string()),
            ("p", self.phone.clone()),
            ("at", self.planned_at.timestamp_millis().to_string()),
        ]
    }

    fn from_fields(f: &HashMap<String, String>) -> Option<Self> {
        let uuid = |k: &str| f.get(k).and_then(|v| Uuid::parse_str(v).ok());
        Some(Self {
            recipient_id: uuid("r")?,
            campaign_id: uuid("c")?,
            tenant_id: uuid("t")?,
            phone: f.get("p")?.clone(),
            planned_at: Utc.timestamp_millis_opt(f.get("at")?.parse().ok()?).single()?,
        })
    }
}

/// A job read from the stream, with the entry id to acknowledge.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub job: Option<Job>,
}

pub fn stream_key(keys: &Keys) -> String {
    keys.key(&["dispatch"])
}

/// Appends jobs in one pipeline.
pub async fn enqueue(redis: &Client, keys: &Keys, jobs: &[Job]) -> Result<(), Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let key = stream_key(keys);
    let pipeline = redis.pipeline();
    for job in jobs {
        let _: () = pipeline.xadd(&key, false, None, "*", job.fields()).await?;
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}

/// Creates the consumer group (and the stream) if missing.
pub async fn ensure_group(redis: &Client, keys: &Keys) -> Result<(), Error> {
    let result: Result<(), Error> = redis.xgroup_create(stream_key(keys), GROUP, "$", true).await;
    match result {
        Err(e) if !e.details().contains("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// True when the stream exists (false after Redis lost it).
pub async fn exists(redis: &Client, keys: &Keys) -> Result<bool, Error> {
    let n: i64 = redis.exists(stream_key(keys)).await?;
    Ok(n == 1)
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
