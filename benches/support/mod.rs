//! Bench set-up shared by the engine benchmarks: a throwaway database (dropped at the end)
//! and Redis prefix, and bulk fixtures written straight in SQL.

#![allow(dead_code)]

use arauto::clock::SystemClock;
use arauto::config::Settings;
use arauto::state::AppState;
use sea_orm::{ConnectionTrait, Database};
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;

/// A numeric setting from the environment, or its default.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub struct BenchDb {
    pub state: AppState,
    name: String,
    server_url: String,
}

pub async fn setup(tweak: impl FnOnce(&mut Settings)) -> BenchDb {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut settings = Settings::load_from(&dir.join("config"), "test", false).expect("settings");
    settings.holidays.dir = dir.join("holidays");
    // `BENCH_DATABASE_URL` runs a bench through another server, e.g. the PgBouncer that
    // `bash .ci/pgbouncer` starts (its database is created and dropped through it too).
    if let Ok(url) = std::env::var("BENCH_DATABASE_URL") {
        settings.database.url = SecretString::from(url);
    }
    let id = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("arauto_bench_{id}");
    let mut url = reqwest::Url::parse(settings.database.url.expose_secret()).expect("url");
    url.set_path("/postgres");
    let server_url = url.to_string();
    let admin = Database::connect(&server_url).await.expect("Postgres");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("create db");
    url.set_path(&format!("/{name}"));
    settings.database.url = SecretString::from(url.to_string());
    settings.redis.prefix = format!("bench:{id}:");
    // `BENCH_REDIS_URL` runs a bench against another Redis, e.g. the Redis Cluster that
    // `bash .ci/redis-cluster` starts (`redis-cluster://…`).
    if let Ok(url) = std::env::var("BENCH_REDIS_URL") {
        settings.redis.url = SecretString::from(url);
    }
    tweak(&mut settings);
    let db = arauto::state::connect_db(&settings).await.expect("db");
    migration::Migrator::up(&db, None).await.expect("migrate");
    let redis = arauto::redis::connect(settings.redis.url.expose_secret())
        .await
        .expect("Redis");
    let calendars = arauto::state::load_calendars(&settings).expect("calendars");
    let state = AppState::from_parts(settings, Arc::new(SystemClock), db, redis, calendars).expect("state");
    BenchDb {
        state,
        name,
        server_url,
    }
}

impl BenchDb {
    /// Fresh statistics after bulk fixtures, as autovacuum would have them in production.
    pub async fn analyze(&self) {
        self.exec("ANALYZE").await;
    }

    /// The fixtures as they are a few minutes after a bulk load in production: vacuumed and
    /// analyzed (autovacuum), and written out (`CHECKPOINT`). Without the checkpoint, the one
    /// a load of 1,000,000 rows sets off (`checkpoint starting: wal`, about 540 MB of WAL)
    /// spreads the load's writes over the next minute, inside the measurement: in an
    /// `api_reads` run whose stats p99 at 1,000 req/s was 50 ms, the disk took up to
    /// 136 MB/s of those writes during that phase. Needs a superuser (or `pg_checkpoint`).
    pub async fn settle(&self) {
        self.exec("VACUUM ANALYZE").await;
        self.exec("CHECKPOINT").await;
    }

    pub async fn exec(&self, sql: &str) {
        self.state
            .db
            .execute_unprepared(sql)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }

    pub async fn teardown(self) {
        let _ = arauto::redis::delete_prefixed(&self.state.redis, &self.state.settings.redis.prefix).await;
        let _ = self.state.db.clone().close().await;
        if let Ok(admin) = Database::connect(&self.server_url).await {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
                .await;
        }
    }

    /// Serves the API in-process on a free port and signs a tenant up through it; returns
    /// the API base (`…/api/v1`) and the signup answer (`tenant`, `user`, `token`).
    pub async fn api(&self) -> (String, serde_json::Value) {
        let s = &self.state;
        let state = AppState::from_parts(
            (*s.settings).clone(),
            s.clock.clone(),
            s.db.clone(),
            s.redis.clone(),
            s.calendars.clone(),
        )
        .expect("state");
        let app = arauto::startup::Application::with_state(state).expect("bind the API");
        let base = format!("http://127.0.0.1:{}/api/v1", app.port());
        tokio::spawn(app.run_until_stopped());
        let signup = reqwest::Client::new()
            .post(format!("{base}/auth/signup"))
            .json(&serde_json::json!({"tenant_name": "Bench", "email": "bench@example.com", "password": "bench password"}))
            .send()
            .await
            .expect("signup")
            .json()
            .await
            .expect("signup body");
        (base, signup)
    }

    /// A campaign of `tenant` well under way, created through the API at `base` with
    /// `token` (it needs one contact), then given `recipients` recipients in SQL: sent,
    /// failed, skipped and still pending ones. Returns its id.
    pub async fn campaign_under_way(
        &self,
        base: &str,
        token: &str,
        tenant_id: uuid::Uuid,
        recipients: usize,
    ) -> String {
        use serde_json::{json, Value};
        let http = reqwest::Client::new();
        let tenant = tenant_id.to_string();
        self.instances(tenant_id, 1, "http://127.0.0.1:9").await;
        let instance: Value = http
            .get(format!("{base}/instances"))
            .bearer_auth(token)
            .send()
            .await
            .expect("instances")
            .json()
            .await
            .expect("instances body");
        let contacts: Value = http
            .get(format!("{base}/contacts?per_page=1"))
            .bearer_auth(token)
            .send()
            .await
            .expect("contacts")
            .json()
            .await
            .expect("contacts body");
        let campaign: Value = http
            .post(format!("{base}/campaigns"))
            .bearer_auth(token)
            .json(&json!({
                "name": "Big", "instance_id": instance["items"][0]["id"],
                "messages": [{"text": "{{saudacao}}, {{nome}}!"}],
                "audience": {"contact_ids": [contacts["items"][0]["id"]]},
                "schedule": {"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR-SP"},
                "pacing": {"min_interval_seconds": 20, "max_interval_seconds": 40}
            }))
            .send()
            .await
            .expect("campaign")
            .json()
            .await
            .expect("campaign body");
        let campaign = campaign["id"].as_str().expect("campaign id").to_owned();
        // A campaign well under way: sent, failed, skipped and still pending recipients.
        self.exec(&format!(
            "UPDATE campaigns SET status = 'active', started_at = now() - interval '1 day' WHERE id = '{campaign}'"
        ))
        .await;
        self.exec(&format!(
                "INSERT INTO recipients (id, tenant_id, campaign_id, phone, name, position, status, reason, sent_at, delivered_at) \
                 SELECT gen_random_uuid(), '{tenant}', '{campaign}', (5521900000000 + i)::text, 'R ' || i, i, \
                        CASE WHEN i % 20 < 8 THEN 'sent' WHEN i % 20 = 8 THEN 'failed' WHEN i % 20 = 9 THEN 'skipped' ELSE 'pending' END, \
                        CASE WHEN i % 20 = 8 THEN 'not_on_whatsapp' WHEN i % 20 = 9 THEN 'opted_out' END, \
                        CASE WHEN i % 20 < 8 THEN now() - (i % 3600) * interval '1 second' END, \
                        CASE WHEN i % 20 < 6 THEN now() END \
                 FROM generate_series(1, {recipients}) AS i"
            ))
            .await;
        campaign
    }

    /// One tenant; returns its id.
    pub async fn tenant(&self) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        self.exec(&format!("INSERT INTO tenants (id, name) VALUES ('{id}', 'Bench')"))
            .await;
        id
    }

    /// A tenant with `fleet.campaigns` active, always-open campaigns (one per instance) and
    /// their recipients, written straight in SQL, with fresh statistics. Returns the tenant.
    pub async fn active_campaigns(&self, fleet: Fleet<'_>) -> uuid::Uuid {
        let Fleet {
            campaigns,
            contacts,
            api_url,
            text,
            pacing,
            first_send,
        } = fleet;
        let tenant = self.tenant().await;
        self.instances(tenant, campaigns, api_url).await;
        self.exec(&format!(
            "INSERT INTO contacts (id, tenant_id, phone, name) \
             SELECT gen_random_uuid(), '{tenant}', (5511900000000 + i)::text, 'Contato ' || i FROM generate_series(1, {contacts}) AS i"
        ))
        .await;
        let schedule = immediate_schedule();
        self.exec(&format!(
            "INSERT INTO campaigns (id, tenant_id, name, instance_id, instance_ids, status, messages, audience, schedule, pacing, next_send_at) \
             SELECT gen_random_uuid(), '{tenant}', 'Bench ' || i.name, i.id, ARRAY[i.id], 'active', \
               '[{{\"text\": \"{text}\"}}]', '{{}}', '{schedule}', '{pacing}', {first_send} \
             FROM instances i WHERE i.tenant_id = '{tenant}'"
        ))
        .await;
        self.exec(&format!(
            "INSERT INTO recipients (id, tenant_id, campaign_id, contact_id, phone, name, position) \
             SELECT gen_random_uuid(), '{tenant}', c.id, ct.id, ct.phone, ct.name, row_number() OVER (PARTITION BY c.id ORDER BY ct.phone) \
             FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS k FROM campaigns) c \
             JOIN (SELECT id, phone, name, (row_number() OVER (ORDER BY phone) - 1) % {campaigns} AS k FROM contacts) ct ON ct.k = c.k"
        ))
        .await;
        self.analyze().await;
        // The first sends count from the moment the fleet is ready, not from the start of its
        // (seconds-long) set-up: otherwise the campaigns whose first instant passed meanwhile
        // all fall due at once when the engine starts.
        self.exec(&format!(
            "UPDATE campaigns SET next_send_at = {first_send} WHERE tenant_id = '{tenant}'"
        ))
        .await;
        tenant
    }

    /// `n` instances named `bench-<i>` pointing at `api_url`.
    pub async fn instances(&self, tenant: uuid::Uuid, n: usize, api_url: &str) {
        let key = self.state.cipher.encrypt("bench-key").expect("encrypt");
        self.exec(&format!(
            "INSERT INTO instances (id, tenant_id, name, api_url, instance_name, api_key_enc, webhook_token) \
             SELECT gen_random_uuid(), '{tenant}', 'bench-' || i, '{api_url}', 'bench-' || i, '{key}', md5(random()::text || i) \
             FROM generate_series(1, {n}) AS i"
        ))
        .await;
    }
}

/// The sandbox gateway served in-process on a free port: its base URL and its state.
pub fn sandbox() -> (String, arauto::gateway::SandboxState) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the sandbox");
    let url = format!("http://127.0.0.1:{}", listener.local_addr().expect("address").port());
    let state = arauto::gateway::SandboxState::new();
    tokio::spawn(arauto::gateway::sandbox_server(listener, state.clone()).expect("sandbox"));
    (url, state)
}

/// What [`BenchDb::active_campaigns`] creates.
pub struct Fleet<'a> {
    /// Campaigns, one per instance `bench-<i>` at `api_url`.
    pub campaigns: usize,
    /// Contacts, spread evenly over the campaigns as their recipients.
    pub contacts: u64,
    pub api_url: &'a str,
    /// The campaigns' one message text (JSON-escaped).
    pub text: &'a str,
    /// The stored pacing, e.g. `{"min_interval_seconds": 0, "max_interval_seconds": 0}`.
    pub pacing: &'a str,
    /// SQL for each campaign's first send instant, e.g. `now()`.
    pub first_send: &'a str,
}

/// The stored form of an always-open schedule.
pub fn immediate_schedule() -> String {
    "{\"mode\": \"immediate\", \"timezone\": \"UTC\", \"calendar\": \"none\", \"start_at\": null, \"days\": [1,2,3,4,5,6,7], \"windows\": [{\"start\": \"00:00\", \"end\": \"24:00\"}], \"skip_holidays\": false}".into()
}
