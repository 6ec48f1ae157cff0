//! Redis: the one client constructor and the one key builder (every key starts with
//! `redis.prefix`).
//!
//! `redis.url` names a single server (`redis://host:port`) or a Redis Cluster
//! (`redis-cluster://host:port?node=host2:port2&node=…`, fred's form, or
//! `redis-cluster://host:port,host2:port2,…`): any one reachable node is enough, the others
//! are discovered. On a cluster, a script (or a pipeline inside `MULTI`) may only touch keys
//! of one hash slot, so every key that one script touches is built by [`Keys::tagged`] with
//! the same tag (the part between `{}` that Redis hashes). The keys Arauto writes:
//!
//! | key | tag | touched together by |
//! |---|---|---|
//! | `dispatch:{<partition>}:stream`, `:due`, `:alive` | the queue partition | the promote script |
//! | `campaign:{<campaign id>}:pace`, `:departed`, `:stop`, `:inflight` | the campaign | the send gate's scripts |
//! | `beat:{lease}:leader`, `:fence` | `lease` | the lease script |
//! | `lock:phone:<tenant>:<phone>` | none | alone |
//! | `ratelimit:us:<bucket>:<subject>` | none | alone |
//! | `workers` | none | alone |
//!
//! The dispatch queue is split into `dispatch.queue_partitions` partitions (a job goes to
//! one by its recipient id), so no single slot carries the whole queue.

use fred::prelude::*;

/// Queue partitions when the configuration does not say (`dispatch.queue_partitions`).
pub const DEFAULT_QUEUE_PARTITIONS: u16 = 4;

/// Builds every Redis key: the prefix, then the parts.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
    partitions: u16,
}

impl Keys {
    /// Keys under `prefix`, with [`DEFAULT_QUEUE_PARTITIONS`].
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            partitions: DEFAULT_QUEUE_PARTITIONS,
        }
    }

    /// The same keys with the dispatch queue split in `partitions` (at least 1).
    pub fn with_partitions(mut self, partitions: u16) -> Self {
        self.partitions = partitions.max(1);
        self
    }

    /// `prefix` + the parts joined by `:`: a key that no script touches with another one.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 32);
        k.push_str(&self.prefix);
        k.push_str(&parts.join(":"));
        k
    }

    /// `prefix` + `scope:{tag}:what`: keys built with one `tag` live in one Redis Cluster
    /// hash slot, so one script may touch them all. The tag is what spreads the load: one
    /// campaign, one queue partition.
    pub fn tagged(&self, scope: &str, tag: &str, what: &str) -> String {
        let mut k = String::with_capacity(self.prefix.len() + scope.len() + tag.len() + what.len() + 4);
        k.push_str(&self.prefix);
        k.push_str(scope);
        k.push_str(":{");
        k.push_str(tag);
        k.push_str("}:");
        k.push_str(what);
        k
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// How many partitions the dispatch queue is split into.
    pub fn partitions(&self) -> u16 {
        self.partitions
    }
}

/// The fred configuration for `url`; `redis-cluster://a:1,b:2,c:3` (nodes separated by
/// commas) is read as fred's `redis-cluster://a:1?node=b:2&node=c:3`.
pub fn config(url: &str) -> Result<Config, Error> {
    Config::from_url(&cluster_nodes_as_query(url))
}

fn cluster_nodes_as_query(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    if !scheme.ends_with("-cluster") {
        return url.to_owned();
    }
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((c, h)) => (format!("{c}@"), h),
        None => (String::new(), authority),
    };
    let mut nodes = hosts.split(',').filter(|h| !h.is_empty());
    let Some(first) = nodes.next() else {
        return url.to_owned();
    };
    let others: Vec<String> = nodes.map(|n| format!("node={n}")).collect();
    if others.is_empty() {
        return url.to_owned();
    }
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let query = query
        .into_iter()
        .map(str::to_owned)
        .chain(others)
        .collect::<Vec<_>>()
        .join("&");
    format!("{scheme}://{credentials}{first}{path}?{query}")
}

/// A connected client with automatic reconnection. Fails when Redis cannot be reached
/// within a few seconds.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config = config(url)?;
    let client = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = std::time::Duration::from_secs(5);
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()?;
    tokio::time::timeout(std::time::Duration::from_secs(10), client.init())
        .await
        .map_err(|_| anyhow::anyhow!("timed out connecting to Redis at {url}"))??;
    Ok(client)
}

/// Deletes every key starting with `prefix`, on every primary of a cluster (SCAN, never
/// `KEYS`); how many. For tests and tools cleaning up after themselves.
pub async fn delete_prefixed(redis: &Client, prefix: &str) -> Result<u64, Error> {
    use futures_util::TryStreamExt;
    let pattern = format!("{prefix}*");
    let found: Vec<Key> = if redis.is_clustered() {
        redis
            .scan_cluster_buffered(pattern, Some(1000), None)
            .try_collect()
            .await?
    } else {
        redis.scan_buffered(pattern, Some(1000), None).try_collect().await?
    };
    let mut deleted = 0;
    // One key per DEL: on a cluster the keys of one call must share a slot.
    for key in found {
        let n: u64 = redis.del(key).await?;
        deleted += n;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1:");
        assert_eq!(keys.key(&["lock", "abc", "5511"]), "t1:lock:abc:5511");
        assert_eq!(keys.tagged("campaign", "c1", "pace"), "t1:campaign:{c1}:pace");
    }

    #[test]
    fn keys_with_one_tag_share_a_cluster_slot_and_different_tags_spread() {
        let keys = Keys::new("arauto:");
        let slot = |k: String| fred::util::redis_keyslot(k.as_bytes());
        assert_eq!(
            slot(keys.tagged("dispatch", "0", "stream")),
            slot(keys.tagged("dispatch", "0", "due"))
        );
        let slots: std::collections::HashSet<u16> = (0..8)
            .map(|p| slot(keys.tagged("dispatch", &p.to_string(), "due")))
            .collect();
        assert_eq!(slots.len(), 8);
    }

    #[test]
    fn a_cluster_url_may_list_its_nodes_with_commas() {
        assert_eq!(
            cluster_nodes_as_query("redis-cluster://127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003"),
            "redis-cluster://127.0.0.1:7001?node=127.0.0.1:7002&node=127.0.0.1:7003"
        );
        assert_eq!(
            cluster_nodes_as_query("redis-cluster://u:p@a:1,b:2?x=1"),
            "redis-cluster://u:p@a:1?x=1&node=b:2"
        );
        assert_eq!(
            cluster_nodes_as_query("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
        assert_eq!(cluster_nodes_as_query("redis-cluster://a:1"), "redis-cluster://a:1");
        assert!(config("redis-cluster://127.0.0.1:7001,127.0.0.1:7002")
            .unwrap()
            .server
            .is_clustered());
    }
}
