//! The application state: configuration, database pool, Redis, clock, keys and the
//! gateway client, built once per process and shared by the API and the engine (beat,
//! workers). Nothing here knows about HTTP routes.

use rand::RngCore;
use sea_orm::{ConnectOptions, Database, DatabaseConnection};
use secrecy::ExposeSecret;
use std::{sync::Arc, time::Duration};

use crate::calendar::repo::HolidayCache;
use crate::calendar::Calendars;
use crate::clock::SharedClock;
use crate::config::Settings;
use crate::crypto::Cipher;
use crate::gateway::GatewayClient;
use crate::redis::Keys;
use crate::tenancy::jwt::JwtKeys;
use crate::tenancy::repo::UserCache;

/// Everything a request handler may need, built once per process.
pub struct AppState {
    /// The primary: every write, claim and check that must see the latest rows.
    pub db: DatabaseConnection,
    /// For statistics and lists only (they tolerate lag): the `database.read_url` pool, or
    /// the primary's when it is unset. Never for claims, opt-outs, limits or a read that
    /// decides a write.
    pub reads: DatabaseConnection,
    pub redis: fred::prelude::Client,
    pub keys: Keys,
    pub settings: Arc<Settings>,
    pub clock: SharedClock,
    pub jwt: JwtKeys,
    pub cipher: Cipher,
    /// The shipped holiday calendars, read once at start-up from `holidays.dir`.
    pub calendars: Arc<Calendars>,
    pub gateway: GatewayClient,
    /// Probes campaigns' media URLs (`media.*`).
    pub media: crate::campaigns::media::MediaChecker,
    /// Callers' users and roles, for `server.read_cache_ttl_ms`.
    pub users: UserCache,
    /// Tenants' own holidays, for `server.read_cache_ttl_ms`.
    pub holidays: HolidayCache,
}

impl AppState {
    pub async fn build(settings: Settings, clock: SharedClock) -> anyhow::Result<Self> {
        let db = connect_db(&settings).await?;
        let redis = crate::redis::connect(settings.redis.url.expose_secret()).await?;
        let calendars = load_calendars(&settings)?;
        let mut state = Self::from_parts(settings, clock, db, redis, calendars)?;
        state.connect_reads().await?;
        Ok(state)
    }

    /// Points [`Self::reads`] at `database.read_url` when it is set (built by
    /// [`Self::from_parts`], it is the primary's pool).
    pub async fn connect_reads(&mut self) -> anyhow::Result<()> {
        if let Some(url) = self.settings.database_read_url() {
            self.reads = connect_pool(url, self.settings.database.max_connections)
                .await
                .map_err(|e| anyhow::anyhow!("database.read_url: {e}"))?;
        }
        Ok(())
    }

    pub fn from_parts(
        settings: Settings,
        clock: SharedClock,
        db: DatabaseConnection,
        redis: fred::prelude::Client,
        calendars: Arc<Calendars>,
    ) -> anyhow::Result<Self> {
        // Every process builds one state: its metrics recorder is installed first.
        crate::observability::init();
        let secret = match settings.jwt_secret() {
            Some(s) => s.as_bytes().to_vec(),
            None => {
                tracing::warn!("auth.jwt_secret is not set: using a random secret for this process only");
                let mut s = vec![0u8; 32];
                rand::thread_rng().fill_bytes(&mut s);
                s
            }
        };
        // `Settings::load` refuses a malformed key; settings built another way (tests,
        // benches, embedding) are refused here rather than encrypting with a zero key.
        let key = settings
            .crypto_key()
            .ok_or_else(|| anyhow::anyhow!("crypto.key: must be the base64 encoding of exactly 32 bytes"))?;
        let previous_keys = settings.crypto_previous_keys().ok_or_else(|| {
            anyhow::anyhow!("crypto.previous_keys: each must be the base64 encoding of exactly 32 bytes")
        })?;
        let cache_ttl = Duration::from_millis(settings.server.read_cache_ttl_ms.max(1));
        Ok(Self {
            users: UserCache::new(cache_ttl),
            holidays: HolidayCache::new(cache_ttl),
            gateway: GatewayClient::new(&settings.gateway)?,
            reads: db.clone(),
            media: crate::campaigns::media::MediaChecker::new(&settings.media, settings.egress.allow_private_networks)?,
            db,
            redis,
            keys: Keys::new(settings.redis.prefix.clone()).with_partitions(settings.dispatch.queue_partitions),
            jwt: JwtKeys::new(&secret, settings.auth.token_ttl_hours),
            cipher: Cipher::with_previous(&key, &previous_keys),
            clock,
            calendars,
            settings: Arc::new(settings),
        })
    }
}

/// The shipped calendars; a missing folder or a bad file stops the process, naming it.
pub fn load_calendars(settings: &Settings) -> anyhow::Result<Arc<Calendars>> {
    Calendars::load_dir(&settings.holidays.dir)
        .map(Arc::new)
        .map_err(|e| anyhow::anyhow!("holidays.dir ({}): {e}", settings.holidays.dir.display()))
}

pub async fn connect_db(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    connect_pool(settings.database.url.expose_secret(), settings.database.max_connections).await
}

/// A pool of at most `max_connections` to `url`.
async fn connect_pool(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(opts)
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to the database: {e}"))
}
