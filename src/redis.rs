//! Redis: the one client constructor and the one key helper (every key starts with
//! `redis.prefix`).

use fred::prelude::*;

#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// `prefix` + the parts joined by `:`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut k = String::with_capacity(self.prefix.len() + 32);
        k.push_str(&self.prefix);
        k.push_str(&parts.join(":"));
        k
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

/// A connected client with automatic reconnection. Fails when Redis cannot be reached
/// within a few seconds.
pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let config = Config::from_url(url)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_starts_with_the_prefix() {
        let keys = Keys::new("t1:");
        assert_eq!(keys.key(&["lock", "abc", "5511"]), "t1:lock:abc:5511");
    }
}
