//! The engine end to end: real Postgres, real Redis, the sandbox gateway over HTTP, beats
//! and workers running as they do in production (or one tick at a chosen instant).

use crate::helpers::{spawn_app, Tenant, TestApp};
use arauto::clock::{FixedClock, SharedClock, SystemClock};
use arauto::config::Settings;
use arauto::dispatch::{lock, stream, worker::Worker};
use arauto::gateway::{sandbox_server, SandboxState};
use arauto::scheduler::Beat;
use arauto::state::AppState;
use chrono::{DateTime, TimeZone, Utc};
use fred::prelude::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Sandbox {
    pub url: String,
    pub state: SandboxState,
}

pub fn start_sandbox() -> Sandbox {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let state = SandboxState::new();
    tokio::spawn(sandbox_server(listener, state.clone()).unwrap());
    Sandbox { url, state }
}

impl Sandbox {
    pub fn faults(&self, v: Value) {
        self.state.set_faults(serde_json::from_value(v).unwrap()).unwrap();
    }

    /// How many times each number was sent to.
    pub fn sends_per_number(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for s in self.state.sends(None) {
            *m.entry(s.number).or_insert(0) += 1;
        }
        m
    }

    pub fn send_times(&self, number: &str) -> Vec<DateTime<Utc>> {
        self.state
            .sends(None)
            .into_iter()
            .filter(|s| s.number == number)
            .map(|s| DateTime::parse_from_rfc3339(&s.at).unwrap().with_timezone(&Utc))
            .collect()
    }
}

/// Beats and workers running in the background until stopped.
pub struct Engine {
    shutdown: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Engine {
    pub async fn start(state: &AppState, beats: usize, workers: usize) -> Self {
        let shutdown = CancellationToken::new();
        let mut tasks = vec![];
        for _ in 0..beats {
            tasks.push(tokio::spawn(Beat::new(state).run(shutdown.clone())));
        }
        for _ in 0..workers {
            let w = Worker::new(state).await.unwrap();
            tasks.push(tokio::spawn(w.run(shutdown.clone())));
        }
        Self { shutdown, tasks }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            t.await.unwrap().unwrap();
        }
    }
}

pub struct World {
    pub app: TestApp,
    pub sandbox: Sandbox,
    pub t: Tenant,
    pub instance: String,
}

pub async fn world() -> World {
    let app = spawn_app().await;
    let sandbox = start_sandbox();
    let t = app.signup("Acme").await;
    let instance = sandbox_instance(&app, &sandbox, &t, "loja-1").await;
    World {
        app,
        sandbox,
        t,
        instance,
    }
}

/// An instance of `t` named `name` on the sandbox; returns its id.
async fn sandbox_instance(app: &TestApp, sandbox: &Sandbox, t: &Tenant, name: &str) -> String {
    app.post(
        "/api/v1/instances",
        t,
        json!({"name": name, "api_url": sandbox.url, "api_key": "k", "instance_name": name}),
    )
    .await
    .id()
}

impl World {
    /// Another instance of `t` named `name` on the sandbox; returns its id.
    pub async fn instance_for(&self, t: &Tenant, name: &str) -> String {
        sandbox_instance(&self.app, &self.sandbox, t, name).await
    }

    /// `n` contacts with phones 5511900000000 + i; returns their ids.
    pub async fn contacts(&self, n: usize) -> Vec<String> {
        let items: Vec<Value> = (0..n)
            .map(|i| json!({"phone": phone(i), "name": format!("Contato {i}")}))
            .collect();
        self.app
            .post("/api/v1/contacts/bulk", &self.t, json!({"contacts": items}))
            .await
            .ok(200);
        let mut ids = vec![];
        let mut page = 1;
        loop {
            let r = self
                .app
                .get(&format!("/api/v1/contacts?per_page=500&page={page}"), &self.t)
                .await;
            let items = r.body["items"].as_array().unwrap().clone();
            if items.is_empty() {
                break;
            }
            ids.extend(items.iter().map(|c| c["id"].as_str().unwrap().to_owned()));
            page += 1;
        }
        ids
    }

    /// A campaign to `n` new contacts that sends at once, `seconds` apart (minimum = maximum).
    pub async fn paced_campaign(&self, n: usize, seconds: f64) -> String {
        let contacts = self.contacts(n).await;
        let pacing = json!({"min_interval_seconds": seconds, "max_interval_seconds": seconds});
        self.campaign(&contacts, immediate(), pacing).await
    }

    pub async fn campaign(&self, contacts: &[String], schedule: Value, pacing: Value) -> String {
        self.campaign_on(&self.instance, contacts, schedule, pacing).await
    }

    pub async fn campaign_on(&self, instance: &str, contacts: &[String], schedule: Value, pacing: Value) -> String {
        let body = json!({
            "name": "C", "instance_id": instance,
            "messages": [{"text": "Oi {{nome}}, variante A"}, {"text": "Olá {{nome}}, variante B"}],
            "audience": {"contact_ids": contacts}, "schedule": schedule, "pacing": pacing
        });
        self.app.post("/api/v1/campaigns", &self.t, body).await.id()
    }

    /// Starts the campaign and waits for its audience to be resolved (`start` answers
    /// `preparing` at once); returns the campaign as it is then, or the start's problem.
    pub async fn start(&self, campaign: &str) -> Value {
        let started = self
            .app
            .post(&format!("/api/v1/campaigns/{campaign}/start"), &self.t, json!({}))
            .await;
        if !started.status.is_success() {
            return started.body;
        }
        self.app.prepared(campaign, &self.t).await
    }

    /// Starts the campaign on the API's clock set to `at` (not today's: a test that ticks at
    /// chosen instants must not depend on the day it runs) and waits for its audience;
    /// returns the tenant with a token valid at `at`, for the calls that follow.
    pub async fn start_on(&self, campaign: &str, at: DateTime<Utc>) -> Tenant {
        let t = self.app.travel(&self.t, at).await;
        self.app
            .post(&format!("/api/v1/campaigns/{campaign}/start"), &t, json!({}))
            .await
            .ok(200);
        self.app.prepared(campaign, &t).await;
        t
    }

    pub async fn status(&self, campaign: &str) -> String {
        let r = self.app.get(&format!("/api/v1/campaigns/{campaign}"), &self.t).await;
        r.body["status"].as_str().unwrap().to_owned()
    }

    /// Recipient count by status.
    pub async fn counts(&self, campaign: &str) -> HashMap<String, i64> {
        let rows = self
            .app
            .db
            .query_all(Statement::from_string(
                DbBackend::Postgres,
                format!(
                    "SELECT status, count(*) AS n FROM recipients WHERE campaign_id = '{campaign}' GROUP BY status"
                ),
            ))
            .await
            .unwrap();
        rows.into_iter()
            .map(|r| {
                (
                    r.try_get::<String>("", "status").unwrap(),
                    r.try_get::<i64>("", "n").unwrap(),
                )
            })
            .collect()
    }

    pub async fn wait_for_status(&self, campaign: &str, status: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let s = self.status(campaign).await;
            if s == status {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "campaign still {s}, wanted {status}: {:?}",
                self.counts(campaign).await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn settings(&self) -> Settings {
        self.app.settings.clone()
    }

    pub fn live_state(&self) -> AppState {
        self.app.engine_state(self.settings(), Arc::new(SystemClock))
    }
}

pub fn phone(i: usize) -> String {
    format!("55119{:08}", 10_000_000 + i)
}

pub fn immediate() -> Value {
    json!({"mode": "immediate"})
}

pub fn fast() -> Value {
    json!({"min_interval_seconds": 0, "max_interval_seconds": 0})
}

pub fn assert_each_sent_once(w: &World, n: usize) {
    let per = w.sandbox.sends_per_number();
    assert_eq!(per.len(), n, "every recipient got a message");
    let repeated: Vec<_> = per.iter().filter(|(_, c)| **c > 1).collect();
    assert!(repeated.is_empty(), "sent more than once: {repeated:?}");
}

#[tokio::test]
async fn a_started_campaign_sends_once_to_every_recipient_and_completes() {
    let w = world().await;
    let contacts = w.contacts(30).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    assert_eq!(w.start(&c).await["status"], "active");
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 30);
    assert_eq!(w.counts(&c).await.get("sent"), Some(&30));
    // Variants rotate in send order, and the text is personalised.
    let texts: Vec<String> = w.sandbox.state.sends(None).into_iter().filter_map(|s| s.text).collect();
    assert_eq!(texts.iter().filter(|t| t.contains("variante A")).count(), 15);
    assert!(texts.iter().all(|t| t.contains("Contato")));
    let logs = w.app.get(&format!("/api/v1/campaigns/{c}/logs"), &w.t).await;
    assert_eq!(logs.ok(200)["total"], 30);
}

#[tokio::test]
async fn three_workers_and_two_beats_send_exactly_once_even_with_duplicate_entries() {
    let w = world().await;
    let contacts = w.contacts(300).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let state = w.live_state();
    // Duplicate every job the first tick plans: a second entry must never mean a second send.
    Beat::new(&state).tick(Utc::now()).await.unwrap();
    let dup: Vec<stream::Job> = queued_jobs(&w, &c).await;
    stream::enqueue(&w.app.redis, &state.keys, &dup, Utc::now())
        .await
        .unwrap();
    let engine = Engine::start(&state, 2, 3).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 300);
}

async fn queued_jobs(w: &World, campaign: &str) -> Vec<stream::Job> {
    let rows = w
        .app
        .db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT id, tenant_id, phone, planned_at FROM recipients WHERE campaign_id = '{campaign}' AND status = 'queued'"),
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| stream::Job {
            instance_id: None,
            recipient_id: r.try_get("", "id").unwrap(),
            campaign_id: campaign.parse().unwrap(),
            tenant_id: r.try_get("", "tenant_id").unwrap(),
            phone: r.try_get("", "phone").unwrap(),
            planned_at: r.try_get("", "planned_at").unwrap(),
            kind: stream::JobKind::Recipient,
        })
        .collect()
}

#[tokio::test]
async fn after_pause_returns_no_new_send_starts_and_resume_completes_without_repeats() {
    let w = world().await;
    let c = w.paced_campaign(40, 0.1).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    while w.sandbox.state.send_count() < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "paused");
    let counts = w.counts(&c).await;
    let started =
        counts.get("sending").unwrap_or(&0) + counts.get("sent").unwrap_or(&0) + counts.get("failed").unwrap_or(&0);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        w.sandbox.state.send_count() as i64 <= started,
        "a send started after pause returned"
    );
    assert_eq!(
        w.counts(&c).await.get("queued"),
        None,
        "nothing stays queued while paused"
    );
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "active");
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 40);
}

#[tokio::test]
async fn cancelling_stops_sends_and_cancels_the_rest() {
    let w = world().await;
    let c = w.paced_campaign(40, 0.2).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    while w.sandbox.state.send_count() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "cancelled");
    let counts = w.counts(&c).await;
    let started = counts.get("sending").unwrap_or(&0) + counts.get("sent").unwrap_or(&0);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.stop().await;
    assert!(w.sandbox.state.send_count() as i64 <= started);
    let counts = w.counts(&c).await;
    assert!(counts.get("cancelled").copied().unwrap_or(0) > 0);
    assert_eq!(
        counts.get("pending").copied().unwrap_or(0) + counts.get("queued").copied().unwrap_or(0),
        0
    );
    let again = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &w.t, json!({}))
        .await;
    assert_eq!(again.problem(409)["current_status"], "cancelled");
}

/// One tick at a chosen instant; returns how many sends it planned.
pub async fn tick_at(w: &World, at: DateTime<Utc>) -> u64 {
    let clock: SharedClock = Arc::new(FixedClock::at(at));
    Beat::new(&w.app.engine_state(w.settings(), clock))
        .tick(at)
        .await
        .unwrap()
        .queued
}

#[tokio::test]
async fn nothing_is_planned_while_the_window_is_closed_and_sends_start_when_it_opens() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let sched = json!({"mode": "custom", "timezone": "America/Sao_Paulo", "calendar": "BR", "days": [1,2,3,4,5], "windows": [{"start": "09:00", "end": "18:00"}]});
    let c = w
        .campaign(
            &contacts,
            sched,
            json!({"min_interval_seconds": 1, "max_interval_seconds": 1}),
        )
        .await;
    // Started on Saturday 2026-11-28 09:00 in São Paulo (the API's clock, not today's: the
    // first send is the window's next opening after the start).
    let t = w
        .app
        .travel(&w.t, Utc.with_ymd_and_hms(2026, 11, 28, 12, 0, 0).unwrap())
        .await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/start"), &t, json!({}))
        .await
        .ok(200);
    // Saturday 2026-11-28 10:00 in São Paulo.
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 11, 28, 13, 0, 0).unwrap()).await,
        0
    );
    // Monday 2026-11-30 08:59:55: still closed, and 09:00 is past this tick's horizon
    // (one tick of 1 s plus the 3 s look-ahead).
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 11, 30, 11, 59, 55).unwrap()).await,
        0
    );
    // Monday 09:00: open.
    assert!(tick_at(&w, Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()).await > 0);
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["status"], "active");
}

#[tokio::test]
async fn nothing_is_planned_on_a_holiday_of_the_calendar_or_of_the_tenant() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let sched = json!({"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR"});
    w.app
        .post(
            "/api/v1/holidays",
            &w.t,
            json!({"date": "2026-12-28", "name": "Recesso"}),
        )
        .await
        .ok(201);
    let c = w
        .campaign(
            &contacts,
            sched,
            json!({"min_interval_seconds": 1, "max_interval_seconds": 1}),
        )
        .await;
    // Started on Thursday 2026-12-24 (on the API's clock).
    w.start_on(&c, Utc.with_ymd_and_hms(2026, 12, 24, 13, 0, 0).unwrap())
        .await;
    // Christmas (Friday) 10:00, then the tenant's own Monday 28th.
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 12, 25, 13, 0, 0).unwrap()).await,
        0
    );
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 12, 28, 13, 0, 0).unwrap()).await,
        0
    );
    assert!(tick_at(&w, Utc.with_ymd_and_hms(2026, 12, 29, 13, 0, 0).unwrap()).await > 0);
}

#[tokio::test]
async fn consecutive_sends_are_never_closer_than_the_minimum_interval() {
    let w = world().await;
    let contacts = w.contacts(6).await;
    let c = w
        .campaign(
            &contacts,
            immediate(),
            json!({"min_interval_seconds": 0.7, "max_interval_seconds": 0.9}),
        )
        .await;
    w.start(&c).await;
    let state = w.live_state();
    // The beat plans one send now; make every recipient due at this same instant (as if
    // jobs had piled up behind a lock): the workers must still space them.
    let beat = Beat::new(&state);
    beat.tick(Utc::now()).await.unwrap();
    w.app
        .db
        .execute_unprepared(&format!(
            "UPDATE recipients SET status = 'queued', queued_at = now(), planned_at = now() \
             WHERE campaign_id = '{c}' AND status = 'pending'"
        ))
        .await
        .unwrap();
    stream::enqueue(&w.app.redis, &state.keys, &queued_jobs(&w, &c).await, Utc::now())
        .await
        .unwrap();
    let engine = Engine::start(&state, 0, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.sandbox.state.send_count() < 6 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", w.counts(&c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
    let mut times: Vec<DateTime<Utc>> = (0..6).flat_map(|i| w.sandbox.send_times(&phone(i))).collect();
    times.sort();
    assert_eq!(times.len(), 6);
    // The pacing slot is taken before each send; arrival times at the gateway add a little
    // jitter either way, never the whole interval (without the slot the gaps are ~0).
    for pair in times.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= chrono::Duration::milliseconds(500),
            "gap {gap} below the minimum interval: {times:?}"
        );
    }
}

#[tokio::test]
async fn the_phone_lock_spaces_two_campaigns_to_the_same_phone() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let second = w.instance_for(&w.t, "loja-2").await;
    let a = w.campaign(&contacts, immediate(), fast()).await;
    let b = w.campaign_on(&second, &contacts, immediate(), fast()).await;
    w.start(&a).await;
    w.start(&b).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    w.wait_for_status(&a, "completed", Duration::from_secs(30)).await;
    w.wait_for_status(&b, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let times = w.sandbox.send_times(&phone(0));
    assert_eq!(times.len(), 2);
    // The lock is taken before each send; arrival at the gateway adds a little jitter
    // either way, never most of the lock (without it both sends arrive together).
    let lock = chrono::Duration::milliseconds(w.settings().dispatch.phone_lock_ms as i64);
    assert!(
        (times[1] - times[0]).abs() >= lock - chrono::Duration::milliseconds(500),
        "{times:?}"
    );
}

#[tokio::test]
async fn an_instance_runs_one_active_campaign_at_a_time() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let a = w.campaign(&contacts, immediate(), fast()).await;
    let b = w.campaign(&contacts, immediate(), fast()).await;
    assert_eq!(w.start(&a).await["status"], "active");
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{b}/start"), &w.t, json!({}))
        .await;
    r.problem(409);
    assert_eq!(w.status(&b).await, "draft");
    // The database refuses it too, whoever tries.
    let sql = format!("UPDATE campaigns SET status = 'active' WHERE id = '{b}'");
    assert!(w.app.db.execute_unprepared(&sql).await.is_err());
}

#[tokio::test]
async fn starting_needs_a_connected_instance() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"disconnected": ["loja-1"]}));
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/start"), &w.t, json!({}))
        .await;
    let problem = r.problem(409);
    assert!(problem["detail"].as_str().unwrap().contains("not connected"));
    assert_eq!(
        problem["current_status"], "draft",
        "every lifecycle conflict says where it stands"
    );
    assert_eq!(w.status(&c).await, "draft");
}

#[tokio::test]
async fn a_dead_workers_jobs_are_taken_over_without_duplicates() {
    let w = world().await;
    let contacts = w.contacts(20).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let state = w.live_state();
    stream::ensure_group(&w.app.redis, &state.keys).await.unwrap();
    Beat::new(&state).tick(Utc::now()).await.unwrap();
    // A worker reads every entry, then dies (SIGKILL: no ack, no outcome).
    let blocking = arauto::redis::connect(secrecy::ExposeSecret::expose_secret(&w.settings().redis.url))
        .await
        .unwrap();
    let taken = stream::read(&blocking, &state.keys, "dead-worker", 100, 100, 0)
        .await
        .unwrap();
    assert_eq!(taken.len(), 20);
    // ...and one recipient it had claimed is stuck in `sending` forever.
    let stuck = taken[0].job.clone().unwrap().recipient_id;
    w.app
        .db
        .execute_unprepared(&format!(
            "UPDATE recipients SET status = 'sending', sending_at = now() - interval '1 hour' WHERE id = '{stuck}'"
        ))
        .await
        .unwrap();
    let engine = Engine::start(&state, 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let per = w.sandbox.sends_per_number();
    assert_eq!(per.len(), 19, "the interrupted send is never blindly resent");
    assert!(per.values().all(|n| *n == 1));
    let counts = w.counts(&c).await;
    assert_eq!((counts.get("sent"), counts.get("failed")), (Some(&19), Some(&1)));
    let unknown = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT outcome_unknown FROM recipients WHERE id = '{stuck}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<bool>("", "outcome_unknown")
        .unwrap();
    assert!(unknown, "the interrupted send is failed with outcome_unknown");
}

#[tokio::test]
async fn deleting_every_redis_key_mid_run_loses_nothing_and_repeats_nothing() {
    let w = world().await;
    let c = w.paced_campaign(40, 0.05).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    while w.sandbox.state.send_count() < 10 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What FLUSHALL would do, limited to this test's keys (on every node of a cluster).
    let prefix = w.settings().redis.prefix;
    let deleted = arauto::redis::delete_prefixed(&w.app.redis, &prefix).await.unwrap();
    assert!(deleted > 0);
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 40);
    // It moved again within two ticks of the flush: no longer gap at the gateway.
    let mut times = w.sandbox.state.arrivals();
    times.sort();
    let two_ticks = chrono::Duration::seconds(2 * w.settings().beat.tick_seconds as i64);
    let stall = times.windows(2).map(|p| p[1] - p[0]).max().unwrap();
    assert!(stall <= two_ticks, "stalled {stall} after the flush");
}

#[tokio::test]
async fn a_gateway_5xx_is_retried_then_sent() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"fail_next": {"count": 2, "status": 503}}));
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_eq!(w.counts(&c).await.get("sent"), Some(&1));
    let logs = w.app.get(&format!("/api/v1/campaigns/{c}/logs"), &w.t).await;
    assert_eq!(logs.ok(200)["items"][0]["attempts"], 3);
    assert_eq!(logs.body["items"][0]["outcome"], "sent");
}

#[tokio::test]
async fn a_number_not_on_whatsapp_fails_with_the_reason() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"not_on_whatsapp": [phone(0)]}));
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let r = w
        .app
        .get(&format!("/api/v1/campaigns/{c}/recipients?status=failed"), &w.t)
        .await;
    let items = r.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["phone"], phone(0));
    assert!(
        items[0]["reason"].as_str().unwrap().contains("not on WhatsApp"),
        "{}",
        items[0]
    );
}

#[tokio::test]
async fn a_disconnected_instance_pauses_the_campaign_with_the_reason_and_loses_nothing() {
    let w = world().await;
    let c = w.paced_campaign(3, 0.2).await;
    w.start(&c).await;
    w.sandbox.faults(json!({"disconnected": ["loja-1"]}));
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "paused", Duration::from_secs(30)).await;
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert!(
        stats.ok(200)["paused_reason"]
            .as_str()
            .unwrap()
            .contains("Connection Closed"),
        "{}",
        stats.body
    );
    assert_eq!(w.sandbox.state.send_count(), 0);
    // Reconnected and resumed: everyone still gets the message, once.
    w.sandbox.state.reset_faults();
    w.app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &w.t, json!({}))
        .await
        .ok(200);
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 3);
}

#[tokio::test]
async fn a_stopping_worker_finishes_the_send_in_hand() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"latency_ms": 800}));
    w.start(&c).await;
    let state = w.live_state();
    Beat::new(&state).tick(Utc::now()).await.unwrap();
    let engine = Engine::start(&state, 0, 1).await;
    while !w.counts(&c).await.contains_key("sending") {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.stop().await; // SIGTERM: returns only when the send in hand is recorded
    assert_eq!(w.counts(&c).await.get("sent"), Some(&1));
    for p in 0..state.keys.partitions() {
        let pending: fred::types::Value = w
            .app
            .redis
            .xpending(stream::stream_key(&state.keys, p), stream::GROUP, ())
            .await
            .unwrap();
        assert_eq!(pending.into_array()[0].as_i64(), Some(0), "acknowledged");
    }
}

/// The lock at `key`, which must be free: `state` says why it is (for the failure message).
async fn acquired(app: &TestApp, key: &str, ttl_ms: u64, state: &str) -> lock::Lock {
    match lock::acquire(&app.redis, key.to_owned(), ttl_ms).await.unwrap() {
        lock::Acquired::Yes(lock) => lock,
        lock::Acquired::HeldFor(ms) => panic!("{state} lock not acquired: held for {ms} ms more"),
    }
}

#[tokio::test]
async fn a_lock_is_released_only_by_its_owner() {
    let app = spawn_app().await;
    let key = format!("{}lock:test", app.settings.redis.prefix);
    let mine = acquired(&app, &key, 10_000, "free").await;
    assert!(matches!(
        lock::acquire(&app.redis, key.clone(), 10_000).await.unwrap(),
        lock::Acquired::HeldFor(_)
    ));
    let impostor = lock::Lock {
        key: key.clone(),
        token: "someone else".into(),
    };
    assert!(!lock::release(&app.redis, &impostor).await.unwrap());
    assert!(matches!(
        lock::acquire(&app.redis, key.clone(), 10_000).await.unwrap(),
        lock::Acquired::HeldFor(_)
    ));
    assert!(lock::release(&app.redis, &mine).await.unwrap());
    assert!(matches!(
        lock::acquire(&app.redis, key, 10_000).await.unwrap(),
        lock::Acquired::Yes(_)
    ));
}

#[tokio::test]
async fn one_beat_leads_and_another_takes_over_with_a_higher_fencing_token() {
    let app = spawn_app().await;
    let keys = arauto::redis::Keys::new(app.settings.redis.prefix.clone());
    let a = arauto::scheduler::lease::Lease::new(&keys, 10_000);
    let b = arauto::scheduler::lease::Lease::new(&keys, 10_000);
    let first = a.acquire(&app.redis).await.unwrap().expect("a leads");
    assert_eq!(b.acquire(&app.redis).await.unwrap(), None, "b stands by");
    assert_eq!(a.acquire(&app.redis).await.unwrap(), Some(first), "a renews");
    a.release(&app.redis).await.unwrap();
    let second = b.acquire(&app.redis).await.unwrap().expect("b takes over");
    assert!(second > first);
}

#[tokio::test]
async fn an_instance_stops_at_its_daily_limit_and_continues_the_next_day() {
    let w = world().await;
    w.app
        .patch(
            &format!("/api/v1/instances/{}", w.instance),
            &w.t,
            json!({"daily_limit": 2}),
        )
        .await
        .ok(200);
    let contacts = w.contacts(5).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate", "timezone": "America/Sao_Paulo"}),
            fast(),
        )
        .await;
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
    w.start_on(&c, monday).await;
    assert_eq!(tick_at(&w, monday).await, 2);
    assert_eq!(
        tick_at(&w, monday + chrono::Duration::minutes(1)).await,
        0,
        "the day's limit is used"
    );
    w.app
        .db
        .execute_unprepared(&format!(
            "UPDATE recipients SET status = 'sent', sent_at = '{monday}' WHERE campaign_id = '{c}' AND status = 'queued'"
        ))
        .await
        .unwrap();
    // 23:59 local (02:59 UTC Tuesday) is still Monday in São Paulo; 00:00 local is a new day.
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 12, 1, 2, 59, 0).unwrap()).await,
        0
    );
    assert_eq!(
        tick_at(&w, Utc.with_ymd_and_hms(2026, 12, 1, 3, 0, 0).unwrap()).await,
        2
    );
}

#[tokio::test]
async fn the_audience_is_the_union_of_groups_tags_and_contacts_once_per_phone() {
    let w = world().await;
    let ids = w.contacts(4).await;
    let group = w.app.post("/api/v1/groups", &w.t, json!({"name": "G"})).await.id();
    let tag = w.app.post("/api/v1/tags", &w.t, json!({"name": "T"})).await.id();
    w.app
        .post(
            &format!("/api/v1/groups/{group}/contacts"),
            &w.t,
            json!({"contact_ids": [ids[0], ids[1]]}),
        )
        .await
        .ok(200);
    w.app
        .post(
            &format!("/api/v1/tags/{tag}/contacts"),
            &w.t,
            json!({"contact_ids": [ids[1], ids[2]]}),
        )
        .await
        .ok(200);
    let body = json!({
        "name": "Union", "instance_id": w.instance, "messages": [{"text": "Oi"}],
        "audience": {"group_ids": [group], "tag_ids": [tag], "contact_ids": [ids[0]]},
        "schedule": immediate(), "pacing": fast()
    });
    let c = w.app.post("/api/v1/campaigns", &w.t, body).await.id();
    w.start(&c).await;
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    let mut got: Vec<String> = r.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["contact_id"].as_str().unwrap().to_owned())
        .collect();
    got.sort();
    let mut want = vec![ids[0].clone(), ids[1].clone(), ids[2].clone()];
    want.sort();
    assert_eq!(got, want, "the fourth contact is in no audience; the others once each");
}

/// What the gateway's webhook would post when the number's connection changes.
async fn connection_event(w: &World, state: &str) {
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let event =
        json!({"event": "connection.update", "instance": "loja-1", "data": {"instance": "loja-1", "state": state}});
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(event))
        .await
        .ok(200);
}

#[tokio::test]
async fn the_beat_plans_nothing_while_the_number_reconnects_and_resumes_pacing_once_open() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    connection_event(&w, "connecting").await;
    let beat = Beat::new(&w.live_state());
    assert_eq!(beat.tick(Utc::now()).await.unwrap().queued, 0);
    assert_eq!(w.status(&c).await, "active", "waiting, not paused");
    connection_event(&w, "open").await;
    assert_eq!(beat.tick(Utc::now()).await.unwrap().queued, 3);
}

#[tokio::test]
async fn the_beat_asks_a_quiet_instance_for_its_state_and_a_closed_one_pauses_its_campaign() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let instance_path = format!("/api/v1/instances/{}", w.instance);
    let seen = w.app.get(&instance_path, &w.t).await;
    assert_eq!(seen.ok(200)["connection_state"], "open", "start asked the gateway");
    w.sandbox.faults(json!({"disconnected": ["loja-1"]}));
    let beat = Beat::new(&w.live_state());
    // Heard of a moment ago: not asked again yet.
    assert_eq!(beat.refresh_instances(Utc::now()).await.unwrap(), 0);
    assert_eq!(w.status(&c).await, "active");
    // Quiet for longer than `beat.instance_check_seconds`: asked, and it is closed.
    let later = Utc::now() + chrono::Duration::seconds(w.settings().beat.instance_check_seconds as i64 + 1);
    assert_eq!(beat.refresh_instances(later).await.unwrap(), 1);
    assert_eq!(w.status(&c).await, "paused");
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["paused_reason"], "instance disconnected");
    assert_eq!(beat.tick(later).await.unwrap().queued, 0);
    assert_eq!(w.counts(&c).await.get("pending"), Some(&3), "nothing lost");
    assert_eq!(w.app.get(&instance_path, &w.t).await.body["connection_state"], "close");
}

#[tokio::test]
async fn a_campaign_whose_number_was_heard_closed_is_paused_by_the_beat_before_any_send() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    // Recorded closed without the pause that normally comes with it (as a crash between the
    // two would leave it): the beat's own check still holds.
    let sql = format!(
        "UPDATE instances SET connection_state = 'close' WHERE id = '{}'",
        w.instance
    );
    w.app.db.execute_unprepared(&sql).await.unwrap();
    let report = Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    assert_eq!(report.queued, 0);
    assert_eq!(w.status(&c).await, "paused");
    assert_eq!(w.sandbox.state.send_count(), 0);
}

#[tokio::test]
async fn resuming_needs_the_number_connected_again() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    connection_event(&w, "close").await;
    assert_eq!(w.status(&c).await, "paused");
    let resume = format!("/api/v1/campaigns/{c}/resume");
    w.sandbox.faults(json!({"disconnected": ["loja-1"]}));
    let refused = w.app.post(&resume, &w.t, json!({})).await;
    assert!(
        refused.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("not connected"),
        "{}",
        refused.body
    );
    assert_eq!(w.status(&c).await, "paused");
    // Reconnected: the gateway, asked afresh, says open.
    w.sandbox.state.reset_faults();
    assert_eq!(w.app.post(&resume, &w.t, json!({})).await.ok(200)["status"], "active");
}

#[tokio::test]
async fn changing_an_instances_number_forgets_what_was_heard_of_the_old_one() {
    let w = world().await;
    let path = format!("/api/v1/instances/{}", w.instance);
    w.app.get(&format!("{path}/state"), &w.t).await.ok(200);
    assert_eq!(w.app.get(&path, &w.t).await.body["connection_state"], "open");
    let patched = w.app.patch(&path, &w.t, json!({"instance_name": "loja-2"})).await;
    assert!(patched.ok(200)["connection_state"].is_null());
    assert!(patched.body["state_checked_at"].is_null());
}

#[tokio::test]
async fn deleting_a_contact_cancels_its_unplanned_send_and_keeps_what_was_sent() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w
        .campaign(&contacts, immediate(), json!({"messages_per_minute": 1}))
        .await;
    w.start(&c).await;
    // The first recipient is planned now; the second waits a minute.
    Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    for id in &contacts {
        w.app.delete(&format!("/api/v1/contacts/{id}"), &w.t).await.ok(204);
    }
    let page = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    let items = page.ok(200)["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|r| r["contact_id"].is_null()), "{items:?}");
    assert_eq!(items[0]["status"], "queued", "already planned: left to the worker");
    assert_eq!(
        (&items[1]["status"], &items[1]["reason"]),
        (&json!("cancelled"), &json!("contact_deleted"))
    );
}

#[tokio::test]
async fn recipient_ids_follow_send_order_and_differ_between_campaigns() {
    let w = world().await;
    let contacts = w.contacts(20).await;
    let w = &w;
    let ids = |c: String| async move {
        w.start(&c).await;
        let page = w
            .app
            .get(&format!("/api/v1/campaigns/{c}/recipients?per_page=50"), &w.t)
            .await;
        let items = page.ok(200)["items"].as_array().unwrap().clone();
        let ids: Vec<String> = items.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
        // One active campaign per instance: make room for the next.
        w.app
            .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
            .await
            .ok(200);
        ids
    };
    let first = ids(w.campaign(&contacts, immediate(), fast()).await).await;
    let second = ids(w.campaign(&contacts, immediate(), fast()).await).await;
    assert_eq!(first.len(), 20);
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, first, "ids ascend with the send order");
    assert!(
        first.iter().all(|id| id.as_bytes()[14] == b'8'),
        "version 8: {}",
        first[0]
    );
    assert!(first.iter().all(|id| !second.contains(id)));
}

/// The stats route's counts against counting the recipients themselves.
async fn assert_stats_match_recipients(w: &World, c: &str) {
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    let stats = stats.ok(200).clone();
    let direct = w.counts(c).await;
    for status in ["pending", "queued", "sending", "sent", "failed", "skipped", "cancelled"] {
        assert_eq!(
            stats["counts"][status].as_i64().unwrap(),
            direct.get(status).copied().unwrap_or(0),
            "{status}: {stats}"
        );
    }
    assert_eq!(stats["total"].as_i64().unwrap(), direct.values().sum::<i64>());
}

#[tokio::test]
async fn stats_counts_stay_equal_to_the_recipients_through_sends_failures_and_folds() {
    let w = world().await;
    let contacts = w.contacts(12).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"not_on_whatsapp": [phone(3), phone(7)]}));
    w.start(&c).await;
    assert_stats_match_recipients(&w, &c).await;
    let state = w.live_state();
    let beat = Beat::new(&state);
    beat.tick(Utc::now()).await.unwrap();
    assert_stats_match_recipients(&w, &c).await;
    let engine = Engine::start(&state, 0, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_stats_match_recipients(&w, &c).await;
    let before = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await.body;
    assert_eq!(before["counts"]["failed"], 2);
    // Folding the deltas changes how they are stored, never what they add up to.
    let report = beat.tick(Utc::now()).await.unwrap();
    assert!(report.folded >= 2, "{report:?}");
    let rows = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM recipient_counts WHERE campaign_id = '{c}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(rows, 2, "one running total per campaign and message variant");
    let after = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await.body;
    assert_eq!(before["counts"], after["counts"]);
    assert_stats_match_recipients(&w, &c).await;
}

#[tokio::test]
async fn stats_counts_follow_pause_and_cancel() {
    let w = world().await;
    let contacts = w.contacts(6).await;
    let c = w
        .campaign(&contacts, immediate(), json!({"messages_per_minute": 1}))
        .await;
    w.start(&c).await;
    let state = w.live_state();
    Beat::new(&state).tick(Utc::now()).await.unwrap();
    w.app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, json!({}))
        .await
        .ok(200);
    assert_stats_match_recipients(&w, &c).await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
        .await
        .ok(200);
    assert_stats_match_recipients(&w, &c).await;
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await.body;
    assert_eq!(stats["counts"]["cancelled"], 6);
}

#[tokio::test]
async fn a_lock_is_renewed_only_while_its_owner_still_holds_it() {
    let app = spawn_app().await;
    let key = format!("{}lock:renewed", app.settings.redis.prefix);
    let mine = acquired(&app, &key, 50, "free").await;
    assert!(lock::extend(&app.redis, &mine, 10_000).await.unwrap());
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert!(
        matches!(lock::acquire(&app.redis, key.clone(), 10_000).await.unwrap(), lock::Acquired::HeldFor(ms) if ms > 5_000),
        "renewed to 10 s"
    );
    // Expired (a slow claim) and taken by another send: renewing it fails and leaves theirs.
    assert!(lock::release(&app.redis, &mine).await.unwrap());
    let short = acquired(&app, &key, 20, "free").await;
    tokio::time::sleep(std::time::Duration::from_millis(60)).await;
    let theirs = acquired(&app, &key, 10_000, "expired").await;
    assert!(!lock::extend(&app.redis, &short, 10_000).await.unwrap());
    assert!(lock::release(&app.redis, &theirs).await.unwrap(), "still theirs");
}
