//! Typed settings, loaded once: `config/default.toml` < `config/{ARAUTO_ENV}.toml` <
//! `ARAUTO__SECTION__KEY` environment variables, plus `DATABASE_URL` and `REDIS_URL`.
//! This is the only module that reads the environment.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The public key in `config/default.toml`; refused in production.
const DEVELOPMENT_CRYPTO_KEY: &str = "ZGV2LW9ubHkta2V5LWRvLW5vdC11c2UtaW4tcHJvZCE=";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub beat: BeatSettings,
    pub dispatch: DispatchSettings,
    pub gateway: GatewaySettings,
    pub auth: AuthSettings,
    pub crypto: CryptoSettings,
    pub sandbox: SandboxSettings,
    pub log: LogSettings,
    pub holidays: HolidaySettings,
    pub webhooks: WebhookSettings,
    /// Checks of campaigns' media URLs (all defaults when the section is absent).
    #[serde(default)]
    pub media: MediaSettings,
    /// Campaigns over a pool of numbers (all defaults when the section is absent).
    #[serde(default)]
    pub pool: PoolSettings,
    /// Requests to URLs users give (media, webhook subscriptions; see [`crate::egress`]).
    #[serde(default)]
    pub egress: EgressSettings,
    /// `ARAUTO_ENV` (development, test, production); not read from files.
    #[serde(skip)]
    pub environment: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// Allowed CORS origins; `["*"]` allows any origin.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Largest JSON body accepted by ordinary routes, in bytes.
    pub json_limit_bytes: usize,
    /// Largest JSON body accepted by bulk routes, in bytes.
    pub bulk_json_limit_bytes: usize,
    /// Port on which a lone `beat` or `worker` process serves `GET /metrics` (Prometheus
    /// text); none when unset. The API (and `all`) serves it on its own port.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// How long, in milliseconds, a process answers from its memory the caller's user and
    /// role and a tenant's holidays (at least 1). Changes made through this process apply
    /// at once; changes made through another replica (or in the database) within this time.
    #[serde(default = "default_read_cache_ttl_ms")]
    pub read_cache_ttl_ms: u64,
    /// The base URL the gateway reaches this API at (e.g. `https://arauto.example.com`),
    /// used for the webhook of the instances Arauto creates on the gateway. Unset: the
    /// scheme and host of the request that creates the instance.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_read_cache_ttl_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    /// A read replica (or any lagging copy) for the API's statistics and lists, which
    /// tolerate lag; claims, opt-outs, limits and every write stay on `url`. Unset: `url`
    /// serves them too.
    #[serde(default)]
    pub read_url: Option<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSettings {
    pub url: SecretString,
    pub prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeatSettings {
    /// Seconds between ticks; divides 60 (ticks fall on the clock's multiples of it).
    pub tick_seconds: u64,
    pub max_batch: u32,
    /// An instance with an active campaign whose state was not heard for this long is asked
    /// again (the gateway's `connection.update` webhook usually tells sooner).
    pub instance_check_seconds: u64,
}

impl BeatSettings {
    /// The instant (UTC) of the beat's first tick after `now`: ticks fall on the clock's
    /// multiples of `tick_seconds` (`scheduler::tick_schedule`; the epoch is on a minute and
    /// `tick_seconds` divides 60). What a campaign with nothing queued waits for before its
    /// next send is planned.
    pub fn next_tick_at(&self, now: chrono::DateTime<chrono::Utc>) -> chrono::DateTime<chrono::Utc> {
        let period = (self.tick_seconds.clamp(1, 60) * 1_000) as i64;
        let next = (now.timestamp_millis().div_euclid(period) + 1) * period;
        chrono::DateTime::from_timestamp_millis(next).unwrap_or(now)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispatchSettings {
    pub concurrency: usize,
    pub phone_lock_ms: u64,
    pub sending_timeout_seconds: u64,
    /// A job read by a worker and not acknowledged for this long is taken over by another.
    pub reclaim_idle_ms: u64,
    /// Partitions of the dispatch queue (a stream and a due-time sorted set each, under one
    /// hash tag): on a Redis Cluster they spread the queue over the nodes. Every process
    /// must use the same number; changing it strands queued jobs, which the beat queues
    /// again after a while (Postgres is the truth).
    #[serde(default = "default_queue_partitions")]
    pub queue_partitions: u16,
    /// The least gap (ms) between two one-off messages of one instance (`POST /messages`),
    /// measured at the gateway like a campaign's minimum interval; 0: as fast as it goes.
    pub message_interval_ms: u64,
}

fn default_queue_partitions() -> u16 {
    crate::redis::DEFAULT_QUEUE_PARTITIONS
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    pub timeout_ms: u64,
    pub max_attempts: u32,
    /// The gateway's global api key (Evolution's `AUTHENTICATION_API_KEY`), used only to
    /// create instances (`POST /instances` with `create: true`) when the request gives none.
    /// Never stored in the database.
    #[serde(default)]
    pub global_api_key: Option<SecretString>,
}

/// How campaigns' media URLs are checked (when a campaign is created, edited or started,
/// and when a media send fails).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaSettings {
    /// `false` skips the checks (an API with no outbound network).
    #[serde(default = "yes")]
    pub check: bool,
    /// Longest wait for a media URL's answer, in ms.
    #[serde(default = "default_media_timeout_ms")]
    pub timeout_ms: u64,
}

impl Default for MediaSettings {
    fn default() -> Self {
        Self {
            check: true,
            timeout_ms: default_media_timeout_ms(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_media_timeout_ms() -> u64 {
    5_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Empty means "random per process" (allowed outside production, with a warning).
    #[serde(default)]
    pub jwt_secret: Option<SecretString>,
    pub token_ttl_hours: i64,
    /// Sign-ins and sign-ups allowed per client IP per minute (a burst of as many); 0: no limit.
    #[serde(default = "default_signin_per_ip")]
    pub signin_per_minute_per_ip: u32,
    /// Sign-ins and sign-ups allowed per email per minute (a burst of as many); 0: no limit.
    #[serde(default = "default_signin_per_email")]
    pub signin_per_minute_per_email: u32,
}

fn default_signin_per_ip() -> u32 {
    30
}

fn default_signin_per_email() -> u32 {
    10
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CryptoSettings {
    /// Base64 of 32 bytes: the AES-256-GCM key that seals instance api keys and webhook
    /// secrets at rest.
    pub key: SecretString,
    /// Keys used before `key` (each base64 of 32 bytes): they still open stored values,
    /// never seal new ones, until `arauto rotate-crypto-key` re-sealed everything with
    /// `key`. Env: comma-separated.
    #[serde(default)]
    pub previous_keys: Vec<SecretString>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `text` or `json`.
    pub format: String,
    /// A tracing `EnvFilter` directive; `RUST_LOG` wins when set.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolidaySettings {
    /// Folder of shipped calendar files.
    pub dir: PathBuf,
}

/// Requests to URLs users give: campaigns' media URLs and tenants' webhook subscriptions
/// ([`crate::egress`]).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EgressSettings {
    /// Lets them reach loopback, private and link-local addresses (default: no — a
    /// server-side request forgery guard). On in development and tests, where the sandbox
    /// serves media and receives webhooks on 127.0.0.1.
    pub allow_private_networks: bool,
}

/// Campaigns over a pool of numbers (PRODUCT §4).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolSettings {
    /// A recipient last messaged by one of the pool's numbers within this many days (by a
    /// campaign or a one-off message) is sent from that number again, so that replies land
    /// in the same conversation (the sticky sender). 0 turns it off.
    pub sticky_days: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self { sticky_days: 30 }
    }
}

/// Outbound webhooks' delivery loop (run by `arauto worker`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// Longest wait for a receiver's answer, in ms; a slower one counts as a failed attempt.
    pub timeout_ms: u64,
    /// Delay after the first failed attempt, in ms; doubled after each further one (with
    /// jitter), up to `max_delay_ms`.
    pub base_delay_ms: u64,
    /// Longest delay between two attempts, in ms.
    pub max_delay_ms: u64,
    /// A delivery still failing this many hours after its event is given up (`failed`).
    pub give_up_hours: i64,
    /// Deliveries in flight at once per process.
    pub concurrency: usize,
    /// How often the loop looks for due deliveries when it found none, in ms.
    pub poll_ms: u64,
}

impl Settings {
    /// Loads from `ARAUTO_CONFIG_DIR` (default `config/`) for `ARAUTO_ENV` (default `development`).
    pub fn load() -> anyhow::Result<Self> {
        let dir = std::env::var("ARAUTO_CONFIG_DIR").unwrap_or_else(|_| "config".into());
        let env = std::env::var("ARAUTO_ENV").unwrap_or_else(|_| "development".into());
        Self::load_from(Path::new(&dir), &env, true)
    }

    /// Loads `default.toml` and `{env}.toml` from `dir`; environment variables on top when
    /// `with_env` (tests pass `false` to stay hermetic).
    pub fn load_from(dir: &Path, env: &str, with_env: bool) -> anyhow::Result<Self> {
        use config::{Config, Environment, File};
        let mut builder = Config::builder()
            .add_source(File::from(dir.join("default.toml")).required(true))
            .add_source(File::from(dir.join(format!("{env}.toml"))).required(false));
        if with_env {
            builder = builder.add_source(
                Environment::with_prefix("ARAUTO")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("server.cors_origins")
                    .with_list_parse_key("crypto.previous_keys"),
            );
            if let Ok(url) = std::env::var("DATABASE_URL") {
                builder = builder.set_override("database.url", url)?;
            }
            if let Ok(url) = std::env::var("REDIS_URL") {
                builder = builder.set_override("redis.url", url)?;
            }
        }
        let mut settings: Settings = builder
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| anyhow::anyhow!("configuration error: {e}"))?;
        settings.environment = env.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let fail = |key: &str, why: &str| Err(anyhow::anyhow!("configuration error: {key}: {why}"));
        if self.crypto_key().is_none() {
            return fail("crypto.key", "must be the base64 encoding of exactly 32 bytes");
        }
        if self.crypto_previous_keys().is_none() {
            return fail(
                "crypto.previous_keys",
                "each must be the base64 encoding of exactly 32 bytes",
            );
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return fail("log.format", "must be \"text\" or \"json\"");
        }
        if self.server.read_cache_ttl_ms == 0 {
            return fail("server.read_cache_ttl_ms", "must be at least 1");
        }
        if self.beat.tick_seconds == 0 || 60 % self.beat.tick_seconds != 0 {
            // The beat fires on the clock's multiples of it (`scheduler::tick_schedule`).
            return fail(
                "beat.tick_seconds",
                "must divide 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30 or 60)",
            );
        }
        if self.dispatch.concurrency == 0 {
            return fail("dispatch.concurrency", "must be at least 1");
        }
        if self.gateway.max_attempts == 0 {
            return fail("gateway.max_attempts", "must be at least 1");
        }
        if self.auth.token_ttl_hours <= 0 {
            return fail("auth.token_ttl_hours", "must be positive");
        }
        if self.redis.prefix.is_empty() {
            return fail("redis.prefix", "must not be empty");
        }
        if self.redis.prefix.contains(['{', '}']) {
            // A hash tag in the prefix would put every key in one Redis Cluster slot.
            return fail("redis.prefix", "must not contain { or }");
        }
        if !(1..=1024).contains(&self.dispatch.queue_partitions) {
            return fail("dispatch.queue_partitions", "must be between 1 and 1024");
        }
        if let Some(url) = &self.server.public_url {
            if crate::instances::domain::parse_api_url(url).is_err() {
                return fail("server.public_url", "must be an absolute http(s) URL without query");
            }
        }
        if self.media.timeout_ms == 0 {
            return fail("media.timeout_ms", "must be at least 1");
        }
        if self.environment == "production" {
            if self.jwt_secret().is_none() {
                return fail("auth.jwt_secret", "must be set in production");
            }
            if self.crypto.key.expose_secret().trim() == DEVELOPMENT_CRYPTO_KEY {
                return fail("crypto.key", "the development key must not be used in production");
            }
        }
        Ok(())
    }

    /// `database.read_url` when set and not blank.
    pub fn database_read_url(&self) -> Option<&str> {
        self.database
            .read_url
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.trim().is_empty())
    }

    /// The decoded `crypto.key`, if well-formed.
    pub fn crypto_key(&self) -> Option<[u8; 32]> {
        decode_key(&self.crypto.key)
    }

    /// The decoded `crypto.previous_keys` (blank entries ignored), if every one is
    /// well-formed.
    pub fn crypto_previous_keys(&self) -> Option<Vec<[u8; 32]>> {
        self.crypto
            .previous_keys
            .iter()
            .filter(|k| !k.expose_secret().trim().is_empty())
            .map(decode_key)
            .collect()
    }

    /// The configured global gateway key, if one is set and not blank.
    pub fn gateway_global_key(&self) -> Option<&str> {
        self.gateway
            .global_api_key
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.trim().is_empty())
    }

    /// The configured JWT secret, if one is set and not blank.
    pub fn jwt_secret(&self) -> Option<&str> {
        self.auth
            .jwt_secret
            .as_ref()
            .map(|s| s.expose_secret())
            .filter(|s| !s.trim().is_empty())
    }
}

/// Base64 of exactly 32 bytes.
fn decode_key(key: &SecretString) -> Option<[u8; 32]> {
    base64::engine::general_purpose::STANDARD
        .decode(key.expose_secret().trim())
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_tick_is_the_next_multiple_of_the_period_on_the_clock() {
        let at = |s: &str| s.parse::<chrono::DateTime<chrono::Utc>>().unwrap();
        let beat = |tick_seconds| BeatSettings {
            tick_seconds,
            ..Settings::load_from(&config_dir(), "test", false).unwrap().beat
        };
        assert_eq!(
            beat(10).next_tick_at(at("2026-12-01T10:00:03.400Z")),
            at("2026-12-01T10:00:10Z")
        );
        assert_eq!(
            beat(10).next_tick_at(at("2026-12-01T10:00:10Z")),
            at("2026-12-01T10:00:20Z")
        );
        assert_eq!(
            beat(1).next_tick_at(at("2026-12-01T10:00:59.999Z")),
            at("2026-12-01T10:01:00Z")
        );
        assert_eq!(
            beat(60).next_tick_at(at("2026-12-01T10:00:30Z")),
            at("2026-12-01T10:01:00Z")
        );
    }

    fn config_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
    }

    /// A config folder holding the shipped default.toml with `replace` applied, and `extra`
    /// as `custom.toml`.
    fn custom(replace: (&str, &str), extra: &str) -> tempdir::Dir {
        let default = std::fs::read_to_string(config_dir().join("default.toml")).unwrap();
        assert!(default.contains(replace.0), "{} not in default.toml", replace.0);
        let dir = tempdir::Dir::new();
        std::fs::write(dir.path().join("default.toml"), default.replace(replace.0, replace.1)).unwrap();
        std::fs::write(dir.path().join("custom.toml"), extra).unwrap();
        dir
    }

    mod tempdir {
        pub struct Dir(std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                let p = std::env::temp_dir().join(format!("arauto-config-{}", uuid::Uuid::new_v4()));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
            pub fn path(&self) -> &std::path::Path {
                &self.0
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn the_shipped_defaults_match_the_contract() {
        let s = Settings::load_from(&config_dir(), "development", false).unwrap();
        assert_eq!((s.server.host.as_str(), s.server.port), ("127.0.0.1", 8080));
        assert_eq!(s.redis.url.expose_secret(), "redis://127.0.0.1:6379");
        assert!(s.database.url.expose_secret().ends_with("/arauto"));
        assert_eq!(s.redis.prefix, "arauto:");
        assert_eq!((s.beat.tick_seconds, s.beat.max_batch), (10, 500));
        assert_eq!((s.dispatch.concurrency, s.dispatch.phone_lock_ms), (16, 60_000));
        assert_eq!(s.dispatch.sending_timeout_seconds, 120);
        assert_eq!((s.gateway.timeout_ms, s.gateway.max_attempts), (15_000, 3));
        assert_eq!(s.auth.token_ttl_hours, 24);
        assert!(s.jwt_secret().is_none());
        assert_eq!(s.sandbox.port, 8081);
        assert!(s.crypto_key().is_some());
    }

    #[test]
    fn the_environment_file_overrides_the_defaults() {
        let s = Settings::load_from(&config_dir(), "test", false).unwrap();
        assert_eq!(s.server.port, 0);
        assert_eq!(s.jwt_secret(), Some("test-secret-not-for-production"));
    }

    #[test]
    fn an_invalid_value_names_its_key() {
        let dir = custom(("port = 8080", "port = \"eighty\""), "");
        let e = Settings::load_from(dir.path(), "custom", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("server.port"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn a_missing_key_is_named() {
        let dir = custom(("tick_seconds = 10\n", ""), "");
        let e = Settings::load_from(dir.path(), "custom", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("tick_seconds"), "{e}");
    }

    #[test]
    fn a_malformed_crypto_key_is_refused_by_name() {
        let dir = custom(("[crypto]", "[crypto]"), "[crypto]\nkey = \"short\"\n");
        let e = Settings::load_from(dir.path(), "custom", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("crypto.key"), "{e}");
    }

    #[test]
    fn previous_crypto_keys_are_read_and_a_malformed_one_is_refused_by_name() {
        let good = "[crypto]\nkey = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\nprevious_keys = [\"AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=\"]\n";
        let dir = custom(("[crypto]", "[crypto]"), good);
        let s = Settings::load_from(dir.path(), "custom", false).unwrap();
        assert_eq!(s.crypto_previous_keys(), Some(vec![[2u8; 32]]));
        let dir = custom(
            ("[crypto]", "[crypto]"),
            &good.replace("AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=", "short"),
        );
        let e = Settings::load_from(dir.path(), "custom", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("crypto.previous_keys"), "{e}");
    }

    #[test]
    fn production_refuses_the_development_secrets() {
        let dir = custom(("jwt_secret = \"\"", "jwt_secret = \"a real secret\""), "");
        std::fs::copy(dir.path().join("custom.toml"), dir.path().join("production.toml")).unwrap();
        let e = Settings::load_from(dir.path(), "production", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("crypto.key"), "{e}");
    }
}
