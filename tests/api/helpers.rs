//! `spawn_app`: a fresh, uniquely named Postgres database (migrated, dropped afterwards), a
//! unique Redis key prefix (deleted afterwards) and the API on a random port.

use arauto::clock::{FixedClock, SharedClock};
use arauto::config::Settings;
use arauto::{startup::Application, state::AppState};
use fred::prelude::*;
use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use sea_orm_migration::MigratorTrait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use std::sync::Arc;
use uuid::Uuid;

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub db: DatabaseConnection,
    #[allow(dead_code)] // for tests that inspect Redis
    pub redis: Client,
    pub settings: Settings,
    pub clock: FixedClock,
    db_name: String,
    server_url: String,
}

/// The response of a call: status, content type and body (JSON when it is JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub content_type: String,
    pub body: Value,
}

impl Resp {
    /// Asserts an RFC 9457 problem with this status; returns the body.
    pub fn problem(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status, body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.body);
        assert_eq!(self.body["status"], status);
        assert!(self.body["type"].is_string() && self.body["title"].is_string() && self.body["detail"].is_string());
        &self.body
    }

    /// The `field`s named in a 422 problem.
    pub fn fields(&self) -> Vec<String> {
        self.problem(422)["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["field"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn ok(&self, status: u16) -> &Value {
        assert_eq!(self.status.as_u16(), status, "unexpected status, body: {}", self.body);
        &self.body
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("response has no id: {} {}", self.status, self.body))
            .to_owned()
    }
}

/// A signed-up tenant: its admin's token and ids.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub token: String,
    pub tenant_id: String,
    pub user_id: String,
    pub email: String,
}

pub fn test_settings() -> Settings {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut s = Settings::load_from(&dir, "test", false).expect("test settings load");
    if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
        s.database.url = SecretString::from(url);
    }
    s.holidays.dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("holidays");
    if let Ok(url) = std::env::var("TEST_REDIS_URL") {
        s.redis.url = SecretString::from(url);
    }
    s
}

fn with_database(url: &str, name: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("database.url parses");
    u.set_path(&format!("/{name}"));
    u.to_string()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// [`spawn_app`] with settings changed by `tweak` first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn(tweak, Reads::Unset).await
}

/// Where the test API's read pool (`database.read_url`) points.
#[allow(dead_code)] // not every variant in every test
pub enum Reads {
    /// Unset: the primary serves reads too.
    Unset,
    /// The test's own database, through a pool of its own.
    SameDatabase,
    /// Another database (a replica that has not caught up, say).
    Url(String),
}

/// [`spawn_app`] with `database.read_url` set as `reads` says.
#[allow(dead_code)]
pub async fn spawn_app_with_reads(reads: Reads) -> TestApp {
    spawn(|_| {}, reads).await
}

async fn spawn(tweak: impl FnOnce(&mut Settings), reads: Reads) -> TestApp {
    let mut settings = test_settings();
    tweak(&mut settings);
    let id = Uuid::new_v4().simple().to_string();
    let db_name = format!("arauto_test_{id}");
    let server_url = with_database(settings.database.url.expose_secret(), "postgres");
    let admin = Database::connect(&server_url).await.expect("Postgres is reachable");
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{db_name}\""))
        .await
        .expect("create test database");
    admin.close().await.ok();
    settings.database.url = SecretString::from(with_database(&server_url, &db_name));
    settings.database.max_connections = 5;
    settings.redis.prefix = format!("test:{id}:");
    settings.database.read_url = match reads {
        Reads::Unset => None,
        Reads::SameDatabase => Some(settings.database.url.clone()),
        Reads::Url(url) => Some(SecretString::from(url)),
    };
    let db = arauto::state::connect_db(&settings)
        .await
        .expect("connect test database");
    migration::Migrator::up(&db, None).await.expect("migrations apply");
    let redis = arauto::redis::connect(settings.redis.url.expose_secret())
        .await
        .expect("Redis is reachable");
    let clock = FixedClock::at(chrono::Utc::now());
    let shared: SharedClock = Arc::new(clock.clone());
    let calendars = arauto::state::load_calendars(&settings).expect("shipped calendars load");
    let mut state =
        AppState::from_parts(settings.clone(), shared, db.clone(), redis.clone(), calendars).expect("state");
    state.connect_reads().await.expect("connect the read pool");
    let app = Application::with_state(state).expect("bind the API");
    let address = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        http: reqwest::Client::new(),
        db,
        redis,
        settings,
        clock,
        db_name,
        server_url,
    }
}

impl Drop for TestApp {
    /// Drops the database and deletes every Redis key under the test's prefix, on a thread
    /// of its own so it works from inside the test's runtime and after a panic.
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let db_name = self.db_name.clone();
        let redis_url = self.settings.redis.url.expose_secret().to_owned();
        let prefix = self.settings.redis.prefix.clone();
        let cleanup = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(&server_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{db_name}\" WITH (FORCE)"))
                        .await;
                    let _ = admin.close().await;
                }
                if let Ok(redis) = arauto::redis::connect(&redis_url).await {
                    let _ = arauto::redis::delete_prefixed(&redis, &prefix).await;
                    let _ = redis.quit().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

impl TestApp {
    /// The application state the engine (beat, workers) runs on: same database, Redis and
    /// prefix as the API, with the given clock and settings.
    pub fn engine_state(&self, settings: Settings, clock: SharedClock) -> AppState {
        let calendars = arauto::state::load_calendars(&settings).expect("calendars");
        AppState::from_parts(settings, clock, self.db.clone(), self.redis.clone(), calendars).expect("state")
    }

    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let mut req = self.http.request(method, format!("{}{}", self.address, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    /// A raw body with a content type (malformed JSON, CSV, huge payloads).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.address, path))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        Self::read(req.send().await.expect("request sent")).await
    }

    async fn read(res: reqwest::Response) -> Resp {
        let status = res.status();
        let content_type = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = res.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Resp {
            status,
            content_type,
            body,
        }
    }

    /// Waits (polling, at most 10 s) until the started campaign's audience is resolved —
    /// `start` answers `preparing` at once — and returns the campaign then.
    pub async fn prepared(&self, campaign: &str, t: &Tenant) -> Value {
        for _ in 0..1_000 {
            let c = self.get(&format!("/api/v1/campaigns/{campaign}"), t).await.body;
            if c["status"] != "preparing" {
                return c;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("campaign {campaign} still preparing after 10 s");
    }

    pub async fn get(&self, path: &str, t: &Tenant) -> Resp {
        self.call(Method::GET, path, Some(&t.token), None).await
    }
    pub async fn post(&self, path: &str, t: &Tenant, body: Value) -> Resp {
        self.call(Method::POST, path, Some(&t.token), Some(body)).await
    }
    pub async fn patch(&self, path: &str, t: &Tenant, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(&t.token), Some(body)).await
    }
    pub async fn delete(&self, path: &str, t: &Tenant) -> Resp {
        self.call(Method::DELETE, path, Some(&t.token), None).await
    }

    /// Signs up a new tenant whose admin is `<name>@example.com`.
    pub async fn signup(&self, name: &str) -> Tenant {
        let email = format!("{}@example.com", name.to_lowercase().replace(' ', "-"));
        let body = json!({"tenant_name": name, "email": email, "password": "correct horse battery"});
        let r = self.call(Method::POST, "/api/v1/auth/signup", None, Some(body)).await;
        let b = r.ok(201);
        Tenant {
            token: b["token"].as_str().expect("token").to_owned(),
            tenant_id: b["tenant"]["id"].as_str().expect("tenant id").to_owned(),
            user_id: b["user"]["id"].as_str().expect("user id").to_owned(),
            email,
        }
    }

    /// Moves the API's clock to `to` and signs `t` in again there (tokens expire on the
    /// clock that issued them).
    pub async fn travel(&self, t: &Tenant, to: chrono::DateTime<chrono::Utc>) -> Tenant {
        self.clock.set(to);
        let login = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": t.email, "password": "correct horse battery"})),
            )
            .await;
        Tenant {
            token: login.ok(200)["token"].as_str().expect("token").to_owned(),
            ..t.clone()
        }
    }

    /// A member (non-admin) of `admin`'s tenant, signed in.
    pub async fn member_of(&self, admin: &Tenant, email: &str) -> Tenant {
        let r = self
            .post(
                "/api/v1/users",
                admin,
                json!({"email": email, "password": "member password", "role": "member"}),
            )
            .await;
        let user_id = r.ok(201)["id"].as_str().expect("id").to_owned();
        let login = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"email": email, "password": "member password"})),
            )
            .await;
        Tenant {
            token: login.ok(200)["token"].as_str().expect("token").to_owned(),
            tenant_id: admin.tenant_id.clone(),
            user_id,
            email: email.to_owned(),
        }
    }

    pub async fn create_contact(&self, t: &Tenant, phone: &str, name: &str) -> String {
        // Contacts list in creation order: give each its own instant.
        self.clock.advance(chrono::Duration::seconds(1));
        let r = self
            .post("/api/v1/contacts", t, json!({"phone": phone, "name": name}))
            .await;
        r.ok(201);
        r.id()
    }

    pub async fn create_instance(&self, t: &Tenant, name: &str) -> String {
        self.post(
            "/api/v1/instances",
            t,
            json!({"name": name, "api_url": "http://127.0.0.1:9", "api_key": "secret-key", "instance_name": name}),
        )
        .await
        .id()
    }
}
