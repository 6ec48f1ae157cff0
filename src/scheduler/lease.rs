//! The beat's leader lease: `SET key holder NX PX ttl`, renewed by its holder only, with a
//! fencing token (a counter bumped at every acquisition) so a deposed leader can tell.
//! Both keys share the hash tag `{lease}`: one script touches them on a Redis Cluster.

use fred::prelude::*;

use crate::redis::Keys;

/// Renews our lease or takes a free one. Returns the fencing token while we lead.
const ACQUIRE: &str = r#"
local current = redis.call('GET', KEYS[1])
if current == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return tonumber(redis.call('GET', KEYS[2]) or '0')
end
if current == false then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return redis.call('INCR', KEYS[2])
end
return -1
"#;

const RELEASE: &str =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end";

pub struct Lease {
    holder: String,
    /// What the last acquisition found (0 not tried yet, 1 leading, 2 standing by): a change
    /// is logged (info), so a beat's log shows when it took the lease and when another beat
    /// took it over (after a tick longer than the lease, or a stall).
    state: std::sync::atomic::AtomicU8,
    ttl_ms: u64,
    key: String,
    fence_key: String,
}

/// The lease: the leading beat's holder id, while it leads.
pub fn leader_key(keys: &Keys) -> String {
    keys.tagged("beat", "lease", "leader")
}

/// The fencing counter, bumped at every acquisition.
fn fence_key(keys: &Keys) -> String {
    keys.tagged("beat", "lease", "fence")
}

/// The beat that leads now (its holder id), if any: for operators (`arauto doctor`).
pub async fn holder(redis: &Client, keys: &Keys) -> Result<Option<String>, Error> {
    redis.get(leader_key(keys)).await
}

/// This process's holder id: `host:pid:uuid` (host from `/proc/sys/kernel/hostname`, else
/// `$HOSTNAME`, else `unknown`), so an operator (`arauto doctor`) and the chaos test can tell
/// which beat leads; the uuid keeps two leases of one process apart.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    format!("{host}:{}:{}", std::process::id(), uuid::Uuid::new_v4())
}

/// The process id in a holder id made by this module (`host:pid:uuid`), if it has one.
pub fn holder_pid(holder: &str) -> Option<u32> {
    holder.rsplit(':').nth(1)?.parse().ok()
}

impl Lease {
    /// A lease on the beat's leader key for this process, `ttl_ms` long from each acquisition.
    pub fn new(keys: &Keys, ttl_ms: u64) -> Self {
        Self {
            holder: holder_id(),
            state: std::sync::atomic::AtomicU8::new(0),
            ttl_ms,
            key: leader_key(keys),
            fence_key: fence_key(keys),
        }
    }

    /// `Some(fencing token)` while this beat leads.
    pub async fn acquire(&self, redis: &Client) -> Result<Option<u64>, Error> {
        let token: i64 = redis
            .eval(
                ACQUIRE,
                vec![self.key.clone(), self.fence_key.clone()],
                vec![self.holder.clone(), self.ttl_ms.to_string()],
            )
            .await?;
        let fence = u64::try_from(token).ok();
        let state = if fence.is_some() { 1 } else { 2 };
        if self.state.swap(state, std::sync::atomic::Ordering::SeqCst) != state {
            match fence {
                Some(fence) => tracing::info!(holder = %self.holder, fence, "leading the beat"),
                None => tracing::info!(holder = %self.holder, "another beat leads: standing by"),
            }
        }
        Ok(fence)
    }

    /// Extends the lease by its TTL if this beat still holds it; false when it does not (it
    /// expired, or another beat took it): renewing never takes a free lease.
    /// The same compare-and-`PEXPIRE` as a phone lock's ([`crate::dispatch::lock::extend`]).
    pub async fn renew(&self, redis: &Client) -> Result<bool, Error> {
        let held = crate::dispatch::lock::Lock {
            key: self.key.clone(),
            token: self.holder.clone(),
        };
        crate::dispatch::lock::extend(redis, &held, self.ttl_ms).await
    }

    /// Runs `work` (a tick) while renewing this lease every `every` beside it, in its own
    /// task: a tick longer than the lease's TTL (a PgBouncer stall, a large round) does not
    /// hand the lease to another beat while this one is still at work, which would then tick
    /// beside it and double the load on a database already slow. The renewal only extends a
    /// lease still held ([`Self::renew`]; once lost it stops, logged) and ends with `work`,
    /// also when `work` panics or is dropped (the task is aborted on drop, and awaited, so no
    /// renewal lands after this returns). Renewal errors are logged here.
    pub async fn hold_while<T>(
        self: &std::sync::Arc<Self>,
        redis: &Client,
        every: std::time::Duration,
        work: impl std::future::Future<Output = T>,
    ) -> T {
        let (lease, redis) = (self.clone(), redis.clone());
        let mut renewal = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticker.tick().await;
                match lease.renew(&redis).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(holder = %lease.holder, "the beat's lease was lost during a tick");
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "renewing the beat's lease failed"),
                }
            }
        }));
        let out = work.await;
        renewal.abort();
        let _ = (&mut renewal).await;
        out
    }

    pub async fn release(&self, redis: &Client) -> Result<(), Error> {
        let _: i64 = redis
            .eval(RELEASE, vec![self.key.clone()], vec![self.holder.clone()])
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_id_names_this_process() {
        let id = holder_id();
        assert_eq!(holder_pid(&id), Some(std::process::id()));
        assert_ne!(id, holder_id(), "two leases of one process differ");
        assert_eq!(
            holder_pid("web-1:4242:0b5e9c1e-8a43-4a77-a4d7-1f3f0e8a8c11"),
            Some(4242)
        );
        assert_eq!(holder_pid("0b5e9c1e-8a43-4a77-a4d7-1f3f0e8a8c11"), None);
    }
}
