//! Expiring Redis locks: `SET key token NX PX ttl`, released only by their owner with a
//! compare-and-delete script. The per-phone lock keeps one send at a time per destination
//! (per tenant) and, left to expire after a send, spaces messages to the same phone.

use fred::prelude::*;
use fred::types::{Expiration, SetOptions};

/// Deletes the key only if it still holds our token.
const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

#[derive(Debug, Clone)]
pub struct Lock {
    pub key: String,
    pub token: String,
}

pub enum Acquired {
    Yes(Lock),
    /// Held by someone else for about this many more milliseconds.
    HeldFor(u64),
}

pub async fn acquire(redis: &Client, key: String, ttl_ms: u64) -> Result<Acquired, Error> {
    let token = uuid::Uuid::new_v4().to_string();
    let set: Option<String> = redis
        .set(
            &key,
            token.as_str(),
            Some(Expiration::PX(ttl_ms as i64)),
            Some(SetOptions::NX),
            false,
        )
        .await?;
    if set.is_some() {
        return Ok(Acquired::Yes(Lock { key, token }));
    }
    let left: i64 = redis.pttl(&key).await?;
    Ok(Acquired::HeldFor(left.max(1) as u64))
}

/// Extends the lock to `ttl_ms` from now if we still own it (compare-and-`PEXPIRE`); false
/// when it expired or another owner took it meanwhile. A sender renews its phone lock right
/// before each request leaves: a lock taken before a slow step (a claim waiting on the
/// database, a retry's backoff) may have expired, and another send to the same phone begun.
pub async fn extend(redis: &Client, lock: &Lock, ttl_ms: u64) -> Result<bool, Error> {
    let extended: i64 = redis
        .eval(
            EXTEND,
            vec![lock.key.clone()],
            vec![lock.token.clone(), ttl_ms.to_string()],
        )
        .await?;
    Ok(extended == 1)
}

/// Sets a new expiry only if the key still holds our token.
const EXTEND: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end";

/// Releases the lock if we still own it; true when it was ours.
pub async fn release(redis: &Client, lock: &Lock) -> Result<bool, Error> {
    let deleted: i64 = redis
        .eval(RELEASE, vec![lock.key.clone()], vec![lock.token.clone()])
        .await?;
    Ok(deleted == 1)
}
