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

impl Lease {
    pub fn new(keys: &Keys, ttl_ms: u64) -> Self {
        Self {
            holder: uuid::Uuid::new_v4().to_string(),
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
        Ok(u64::try_from(token).ok())
    }

    pub async fn release(&self, redis: &Client) -> Result<(), Error> {
        let _: i64 = redis
            .eval(RELEASE, vec![self.key.clone()], vec![self.holder.clone()])
            .await?;
        Ok(())
    }
}
