//! Engine v2, measured where the user sees it: arrival times and counts recorded by the
//! gateway (the sandbox over real HTTP), under ordinary timing — pacing at the moment of
//! sending, pause/cancel that hold for retries, outages that pause instead of failing,
//! late answers kept, calendar changes seen.

use crate::engine::{assert_each_sent_once, fast, immediate, phone, tick_at, world, Engine, World};
use arauto::gateway::{sandbox_server, SandboxState};
use arauto::scheduler::Beat;
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Clock granularity and the sandbox's own timestamping: the only slack allowed under a
/// minimum interval.
const GRANULARITY_MS: i64 = 3;

fn sorted_gaps(mut times: Vec<DateTime<Utc>>) -> Vec<i64> {
    times.sort();
    times.windows(2).map(|p| (p[1] - p[0]).num_milliseconds()).collect()
}

async fn post_control(w: &World, c: &str, verb: &str) -> Value {
    w.app
        .post(&format!("/api/v1/campaigns/{c}/{verb}"), &w.t, json!({}))
        .await
        .ok(200)
        .clone()
}

async fn wait_for_arrivals(w: &World, n: usize, within: Duration) {
    let deadline = tokio::time::Instant::now() + within;
    while w.sandbox.state.arrivals().len() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "fewer than {n} requests reached the gateway"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn stranded(w: &World) -> i64 {
    arauto::recipients::stranded(&w.app.db).await.unwrap()
}

// On the runtime the binary runs (`#[tokio::main]`: multi-thread). On a current-thread
// runtime a worker let through by the gate waits for whatever task holds the one thread (the
// beat planning, the other worker decoding its claim: debug code), and CI once saw a request
// leave 9 ms later than the one after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_300_a_minute_no_two_requests_reach_the_gateway_closer_than_a_fifth_of_a_second() {
    let w = world().await;
    let c = w.paced_campaign(60, 0.2).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    wait_for_arrivals(&w, 15, Duration::from_secs(30)).await;
    // A pause and an immediate resume must not produce a catch-up burst.
    post_control(&w, &c, "pause").await;
    post_control(&w, &c, "resume").await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 60);
    let gaps = sorted_gaps(w.sandbox.state.arrivals());
    let short: Vec<_> = gaps.iter().filter(|g| **g < 200 - GRANULARITY_MS).collect();
    assert!(
        short.is_empty(),
        "gaps under 200 ms at the gateway: {short:?} of {gaps:?}"
    );
}

#[tokio::test]
async fn a_first_send_that_opens_its_connection_does_not_arrive_closer_than_the_minimum_to_the_next() {
    let w = world().await;
    let c = w.paced_campaign(3, 1.0).await;
    // A distant gateway: a request that opens its connection (TCP and TLS handshakes)
    // arrives 300 ms later than one that finds it open.
    w.sandbox.faults(json!({"new_connection_ms": 300}));
    w.start(&c).await;
    // The worker in a process of its own, as `arauto worker` runs: its connection pool is
    // not warmed by the beat's questions about the instance.
    let beat = Engine::start(&w.live_state(), 1, 0).await;
    let worker = Engine::start(&w.live_state(), 0, 1).await;
    wait_for_arrivals(&w, 3, Duration::from_secs(30)).await;
    worker.stop().await;
    beat.stop().await;
    assert_each_sent_once(&w, 3);
    let gaps = sorted_gaps(w.sandbox.state.arrivals());
    assert!(
        gaps.iter().all(|g| *g >= 1_000 - GRANULARITY_MS),
        "gaps at the gateway: {gaps:?}"
    );
}

#[tokio::test]
async fn no_request_reaches_the_gateway_after_pause_returns_not_even_a_retry() {
    let w = world().await;
    let c = w.paced_campaign(3, 0.2).await;
    // The first request is slow and then answered 503: its retry would follow the pause.
    w.sandbox
        .faults(json!({"latency_ms": 1500, "fail_next": {"count": 1, "status": 503}}));
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    wait_for_arrivals(&w, 1, Duration::from_secs(20)).await;
    post_control(&w, &c, "pause").await;
    let paused_at = Utc::now();
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let late: Vec<_> = w
        .sandbox
        .state
        .arrivals()
        .into_iter()
        .filter(|a| *a > paused_at)
        .collect();
    assert!(
        late.is_empty(),
        "requests after pause returned at {paused_at}: {late:?}"
    );
    let counts = w.counts(&c).await;
    assert_eq!(
        counts.get("failed"),
        None,
        "the 503 proved nothing was sent: {counts:?}"
    );
    assert_eq!(counts.get("sending"), None, "{counts:?}");
    w.sandbox.state.reset_faults();
    post_control(&w, &c, "resume").await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 3);
}

#[tokio::test]
async fn an_instance_error_answered_after_cancel_leaves_every_recipient_terminal() {
    let w = world().await;
    let c = w.paced_campaign(3, 0.2).await;
    w.sandbox
        .faults(json!({"latency_ms": 1000, "fail_next": {"count": 1, "status": 401}}));
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    wait_for_arrivals(&w, 1, Duration::from_secs(20)).await;
    assert_eq!(post_control(&w, &c, "cancel").await["status"], "cancelled");
    let cancelled_at = Utc::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.stop().await;
    assert!(w.sandbox.state.arrivals().iter().all(|a| *a <= cancelled_at));
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("cancelled"), Some(&3), "{counts:?}");
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["counts"]["pending"], 0);
    assert_eq!(stranded(&w).await, 0, "a non-terminal recipient in a terminal campaign");
}

/// A sandbox on a fixed port that can go down (connection refused) and come back.
struct FlakyGateway {
    port: u16,
    state: SandboxState,
    handle: actix_web::dev::ServerHandle,
}

impl FlakyGateway {
    fn up_on(port: u16, state: SandboxState) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = sandbox_server(listener, state.clone()).unwrap();
        let handle = server.handle();
        tokio::spawn(server);
        Self { port, state, handle }
    }

    async fn down(&self) {
        self.handle.stop(false).await;
    }

    fn up_again(&self) -> Self {
        Self::up_on(self.port, self.state.clone())
    }
}

#[tokio::test]
async fn a_gateway_outage_pauses_the_campaign_and_fails_nobody() {
    let w = world().await;
    let gateway = FlakyGateway::up_on(0, SandboxState::new());
    let instance = w
        .app
        .post(
            "/api/v1/instances",
            &w.t,
            json!({"name": "flaky", "api_url": format!("http://127.0.0.1:{}", gateway.port),
                   "api_key": "k", "instance_name": "flaky"}),
        )
        .await
        .id();
    let contacts = w.contacts(6).await;
    let c = w
        .campaign_on(
            &instance,
            &contacts,
            immediate(),
            json!({"min_interval_seconds": 0.3, "max_interval_seconds": 0.3}),
        )
        .await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    while gateway.state.send_count() < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gateway.down().await;
    w.wait_for_status(&c, "paused", Duration::from_secs(20)).await;
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["paused_reason"], "gateway_unreachable");
    let counts = w.counts(&c).await;
    assert_eq!(
        counts.get("failed"),
        None,
        "nothing was sent, nobody failed: {counts:?}"
    );
    let gateway = gateway.up_again();
    post_control(&w, &c, "resume").await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let per = gateway.state.sends(None);
    assert_eq!(per.len(), 6, "every recipient once: {per:?}");
    let mut numbers: Vec<_> = per.iter().map(|s| s.number.clone()).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers.len(), 6);
}

#[tokio::test]
async fn a_success_answered_after_the_sending_timeout_is_kept_and_a_receipt_then_marks_it_delivered() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.sandbox.faults(json!({"latency_ms": 2500}));
    w.start(&c).await;
    let mut settings = w.settings();
    settings.dispatch.sending_timeout_seconds = 1;
    let engine = Engine::start(
        &w.app.engine_state(settings, Arc::new(arauto::clock::SystemClock)),
        1,
        1,
    )
    .await;
    // The beat gives up on the silent send first...
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !w.counts(&c).await.contains_key("failed") {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", w.counts(&c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    assert_eq!(r.ok(200)["items"][0]["outcome_unknown"], true);
    // ...then the gateway's 201 arrives: the message id is kept, the recipient is sent.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !w.counts(&c).await.contains_key("sent") {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", w.counts(&c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    let item = r.ok(200)["items"][0].clone();
    let message_id = item["message_id"].as_str().expect("message id kept").to_owned();
    assert_eq!(message_id, w.sandbox.state.sends(None)[0].message_id);
    assert_eq!(item["outcome_unknown"], false);
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let receipt = json!({"event": "messages.update", "instance": "loja-1",
        "data": {"keyId": message_id, "remoteJid": format!("{}@s.whatsapp.net", phone(0)), "fromMe": true, "status": "DELIVERY_ACK"}});
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(receipt))
        .await
        .ok(200);
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    assert_eq!(r.body["items"][0]["status"], "sent");
    assert!(r.body["items"][0]["delivered_at"].is_string());
}

#[tokio::test]
async fn deleting_the_holiday_a_campaign_waits_for_lets_it_send_at_the_next_tick() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let holiday = w
        .app
        .post(
            "/api/v1/holidays",
            &w.t,
            json!({"date": "2026-12-29", "name": "Recesso"}),
        )
        .await
        .id();
    let sched = json!({"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR"});
    let c = w
        .campaign(
            &contacts,
            sched,
            json!({"min_interval_seconds": 1, "max_interval_seconds": 1}),
        )
        .await;
    // Tuesday 2026-12-29 10:00 in São Paulo: the tenant's holiday, nothing planned, and
    // the campaign waits for Wednesday (started that morning, on the API's clock).
    let tuesday = Utc.with_ymd_and_hms(2026, 12, 29, 13, 0, 0).unwrap();
    let t = w.start_on(&c, tuesday - chrono::Duration::hours(1)).await;
    assert_eq!(tick_at(&w, tuesday).await, 0);
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &t).await;
    let waiting: DateTime<Utc> = stats.ok(200)["next_send_at"].as_str().unwrap().parse().unwrap();
    assert!(waiting > tuesday + chrono::Duration::hours(12), "{waiting}");
    let t = w.app.travel(&w.t, tuesday + chrono::Duration::seconds(5)).await;
    assert_eq!(
        w.app.delete(&format!("/api/v1/holidays/{holiday}"), &t).await.status,
        204
    );
    assert!(tick_at(&w, tuesday + chrono::Duration::seconds(10)).await > 0);
}

#[tokio::test]
async fn stopping_the_queue_and_restarting_redis_from_nothing_moves_again_within_two_ticks() {
    // The `alive` marker says Redis lost its data: the next tick queues every job again.
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let state = w.live_state();
    let beat = Beat::new(&state);
    assert_eq!(beat.tick(Utc::now()).await.unwrap().queued, 3);
    // Every key of this test's prefix deleted, then a worker starts first and recreates
    // the stream (as after FLUSHALL): the beat must still notice.
    let prefix = w.settings().redis.prefix;
    arauto::redis::delete_prefixed(&w.app.redis, &prefix).await.unwrap();
    arauto::dispatch::stream::ensure_group(&w.app.redis, &state.keys)
        .await
        .unwrap();
    assert_eq!(beat.tick(Utc::now()).await.unwrap().requeued, 3);
    let engine = Engine::start(&state, 0, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(20)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 3);
}

#[tokio::test]
async fn a_stranded_recipient_is_found_by_the_operator_check_and_cancelled_by_the_next_tick() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    assert_eq!(stranded(&w).await, 0);
    w.app
        .db
        .execute(Statement::from_string(
            DbBackend::Postgres,
            format!("UPDATE campaigns SET status = 'cancelled', cancelled_at = now() WHERE id = '{c}'"),
        ))
        .await
        .unwrap();
    assert_eq!(stranded(&w).await, 1);
    // The beat's safety net: the next tick cancels what a race left waiting.
    let report = Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    assert_eq!(report.stranded, 1);
    assert_eq!(stranded(&w).await, 0);
}

/// Arrival instants at the gateway of one instance's sends.
fn arrivals_on(w: &World, instance: &str) -> Vec<DateTime<Utc>> {
    w.sandbox
        .state
        .sends(Some(instance))
        .iter()
        .map(|s| s.at.parse().unwrap())
        .collect()
}

#[tokio::test]
async fn at_the_production_tick_sub_tick_pacing_holds_across_tick_boundaries() {
    let w = world().await;
    let contacts = w.contacts(60).await;
    let second = w.instance_for(&w.t, "loja-2").await;
    // 30 a minute (2 s apart) on one number, 1.2–1.8 s on the other: 40 s cross four ticks.
    let every_2s = w
        .campaign(&contacts[..30], immediate(), json!({"messages_per_minute": 30}))
        .await;
    let between = w
        .campaign_on(
            &second,
            &contacts[30..],
            immediate(),
            json!({"min_interval_seconds": 1.2, "max_interval_seconds": 1.8}),
        )
        .await;
    w.start(&every_2s).await;
    w.start(&between).await;
    let mut settings = w.settings();
    settings.beat.tick_seconds = 10;
    let engine = Engine::start(
        &w.app.engine_state(settings, Arc::new(arauto::clock::SystemClock)),
        1,
        2,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    engine.stop().await;
    for (name, times, min, max) in [
        ("30 a minute", arrivals_on(&w, "loja-1"), 2_000, 2_000),
        ("1.2–1.8 s", arrivals_on(&w, "loja-2"), 1_200, 1_800),
    ] {
        let gaps = sorted_gaps(times);
        assert!(gaps.len() >= 18, "{name}: too few sends in 40 s: {gaps:?}");
        let short: Vec<_> = gaps.iter().filter(|g| **g < min - GRANULARITY_MS).collect();
        assert!(
            short.is_empty(),
            "{name}: gaps under the minimum: {short:?} of {gaps:?}"
        );
        // A missed tick would show as a gap of up to 10 s; one late send (the machine busy
        // with other tests) stays within a few hundred ms.
        let long: Vec<_> = gaps.iter().filter(|g| **g > max + 300).collect();
        assert!(long.is_empty(), "{name}: gaps over the maximum: {long:?} of {gaps:?}");
        // Lateness does not add up send after send: a send held back by the pacing and
        // deferred comes back in time for its instant (it added ~80 ms to every gap before).
        let mean = gaps.iter().sum::<i64>() / gaps.len() as i64;
        assert!(
            mean <= max + 50,
            "{name}: the pace drifts: mean gap {mean} ms of {gaps:?}"
        );
    }
}

#[tokio::test]
async fn one_tenants_backlog_does_not_hold_up_another_tenants_due_send() {
    let w = world().await;
    let contacts = w.contacts(40).await;
    let second = w.instance_for(&w.t, "loja-2").await;
    // Tenant A: two campaigns to the same 40 phones at full speed (every second job meets a
    // held phone lock).
    let a1 = w.campaign(&contacts, immediate(), fast()).await;
    let a2 = w.campaign_on(&second, &contacts, immediate(), fast()).await;
    // Tenant B: one send.
    let b = w.app.signup("Beta").await;
    let b_instance = w.instance_for(&b, "beta-1").await;
    let b_contact = w.app.create_contact(&b, "5521988887777", "Bia").await;
    let b_campaign = w
        .app
        .post(
            "/api/v1/campaigns",
            &b,
            json!({"name": "B", "instance_id": b_instance, "messages": [{"text": "Oi"}],
                   "audience": {"contact_ids": [b_contact]}, "schedule": immediate(), "pacing": fast()}),
        )
        .await
        .id();
    w.start(&a1).await;
    w.start(&a2).await;
    w.app
        .post(&format!("/api/v1/campaigns/{b_campaign}/start"), &b, json!({}))
        .await
        .ok(200);
    w.app.prepared(&b_campaign, &b).await;
    let mut settings = w.settings();
    settings.dispatch.concurrency = 4;
    settings.dispatch.phone_lock_ms = 60_000;
    let engine = Engine::start(
        &w.app.engine_state(settings, Arc::new(arauto::clock::SystemClock)),
        1,
        1,
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.sandbox.state.sends(Some("beta-1")).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "tenant B never got its send out"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.stop().await;
    let arrived: DateTime<Utc> = w.sandbox.state.sends(Some("beta-1"))[0].at.parse().unwrap();
    let planned: DateTime<Utc> = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT planned_at FROM recipients WHERE campaign_id = '{b_campaign}'"),
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get("", "planned_at")
        .unwrap();
    let tick = chrono::Duration::seconds(w.settings().beat.tick_seconds as i64);
    assert!(
        arrived - planned <= tick + chrono::Duration::seconds(1),
        "tenant B's send planned at {planned} reached the gateway at {arrived}"
    );
}

#[tokio::test]
async fn a_live_workers_entry_is_never_handed_to_another_consumer() {
    use arauto::dispatch::stream;
    let w = world().await;
    let keys = arauto::redis::Keys::new(w.settings().redis.prefix);
    stream::ensure_group(&w.app.redis, &keys).await.unwrap();
    let job = |i: usize| stream::Job {
        instance_id: None,
        recipient_id: uuid::Uuid::new_v4(),
        campaign_id: uuid::Uuid::new_v4(),
        tenant_id: uuid::Uuid::new_v4(),
        phone: phone(i),
        planned_at: Utc::now(),
        kind: stream::JobKind::Recipient,
    };
    stream::enqueue(&w.app.redis, &keys, &[job(0), job(1)], Utc::now())
        .await
        .unwrap();
    let blocking = arauto::redis::connect(secrecy::ExposeSecret::expose_secret(&w.settings().redis.url))
        .await
        .unwrap();
    let taken = stream::read(&blocking, &keys, "alive", 10, 100, 0).await.unwrap();
    assert_eq!(taken.len(), 2);
    // The live consumer keeps the first entry alive; the second it abandons.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream::keep_alive(&w.app.redis, &keys, "alive", vec![taken[0].id.clone()])
            .await
            .unwrap();
    }
    let reclaimed = stream::claim_abandoned(&w.app.redis, &keys, "other", 1_000, 10)
        .await
        .unwrap();
    let ids: Vec<_> = reclaimed.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, vec![taken[1].id.clone()]);
}

#[tokio::test]
async fn raising_an_instances_daily_limit_lets_a_waiting_campaign_send_at_the_next_tick() {
    let w = world().await;
    w.app
        .patch(
            &format!("/api/v1/instances/{}", w.instance),
            &w.t,
            json!({"daily_limit": 1}),
        )
        .await
        .ok(200);
    let contacts = w.contacts(3).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate", "timezone": "America/Sao_Paulo"}),
            fast(),
        )
        .await;
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
    w.start_on(&c, monday).await;
    assert_eq!(tick_at(&w, monday).await, 1);
    // The day is used up: the campaign now waits for the next local midnight.
    assert_eq!(tick_at(&w, monday + chrono::Duration::seconds(2)).await, 0);
    let t = w.app.travel(&w.t, monday + chrono::Duration::seconds(3)).await;
    w.app
        .patch(
            &format!("/api/v1/instances/{}", w.instance),
            &t,
            json!({"daily_limit": 10}),
        )
        .await
        .ok(200);
    assert_eq!(tick_at(&w, monday + chrono::Duration::seconds(4)).await, 2);
}

#[tokio::test]
async fn a_window_that_opens_mid_run_starts_sending_at_the_opening_at_the_campaigns_pace() {
    let w = world().await;
    let contacts = w.contacts(5).await;
    // Monday 2026-11-30 08:59:58 in São Paulo, running in real time from there.
    let opening = Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap();
    let clock = arauto::clock::OffsetClock::starting_at(opening - chrono::Duration::seconds(2));
    let offset = opening - chrono::Duration::seconds(2) - Utc::now();
    let t = w.app.travel(&w.t, opening - chrono::Duration::seconds(2)).await;
    let sched = json!({"mode": "custom", "timezone": "America/Sao_Paulo", "calendar": "BR",
                       "days": [1, 2, 3, 4, 5], "windows": [{"start": "09:00", "end": "18:00"}]});
    let body = json!({"name": "C", "instance_id": w.instance, "messages": [{"text": "Oi {{nome}}"}],
                      "audience": {"contact_ids": contacts}, "schedule": sched,
                      "pacing": {"min_interval_seconds": 1, "max_interval_seconds": 1.5}});
    let c = w.app.post("/api/v1/campaigns", &t, body).await.id();
    w.app
        .post(&format!("/api/v1/campaigns/{c}/start"), &t, json!({}))
        .await
        .ok(200);
    w.app.prepared(&c, &t).await;
    let engine = Engine::start(&w.app.engine_state(w.settings(), Arc::new(clock)), 1, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.sandbox.state.send_count() < 5 {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", w.counts(&c).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
    let mut times = w.sandbox.state.arrivals();
    times.sort();
    // On the campaign's clock, nothing reached the gateway before 09:00, and the first send
    // came right at the opening, not a tick later.
    let first = times[0] + offset;
    assert!(first >= opening, "sent at {first}, before the window opened");
    assert!(
        first - opening < chrono::Duration::milliseconds(1_500),
        "first send at {first}"
    );
    let gaps = sorted_gaps(times);
    assert!(gaps.iter().all(|g| *g >= 1_000 - GRANULARITY_MS), "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= 1_500 + 150), "{gaps:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_reaches_the_gateway_once_a_holiday_for_today_is_added_and_it_sends_after_its_removal() {
    let w = world().await;
    let contacts = w.contacts(40).await;
    // Open all day, every day, in UTC, honouring holidays: only the holiday closes it.
    let sched = json!({"mode": "custom", "timezone": "UTC", "days": [1, 2, 3, 4, 5, 6, 7],
                       "windows": [{"start": "00:00", "end": "24:00"}], "skip_holidays": true});
    let c = w
        .campaign(
            &contacts,
            sched,
            json!({"min_interval_seconds": 0.2, "max_interval_seconds": 0.2}),
        )
        .await;
    let t = w.start_on(&c, Utc::now()).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    wait_for_arrivals(&w, 3, Duration::from_secs(20)).await;
    let today = Utc::now().date_naive();
    let holiday = w
        .app
        .post("/api/v1/holidays", &t, json!({"date": today, "name": "Recesso"}))
        .await
        .id();
    let added_at = Utc::now();
    // Past the gate's hold (10 s, twice the 5 s a worker keeps a campaign's context, which
    // knew no holiday): the workers now refuse by the window themselves.
    tokio::time::sleep(Duration::from_millis(11_500)).await;
    let late: Vec<_> = w
        .sandbox
        .state
        .arrivals()
        .into_iter()
        .filter(|a| *a > added_at)
        .collect();
    assert!(
        late.is_empty(),
        "requests after the holiday was added at {added_at}: {late:?}"
    );
    assert_eq!(w.status(&c).await, "active", "held, not paused");
    let t = w.app.travel(&w.t, Utc::now()).await;
    w.app.delete(&format!("/api/v1/holidays/{holiday}"), &t).await.ok(204);
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 40);
}

#[tokio::test]
async fn a_short_hold_on_the_send_gate_never_shortens_a_pauses_stop() {
    use arauto::dispatch::gate;
    let w = world().await;
    let keys = arauto::redis::Keys::new(w.settings().redis.prefix);
    let campaign = uuid::Uuid::new_v4();
    gate::close(&w.app.redis, &keys, campaign, "pause").await.unwrap();
    gate::close_for(&w.app.redis, &keys, campaign, "holiday", 100)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (stopped, _) = gate::inspect(&w.app.redis, &keys, campaign).await.unwrap();
    assert_eq!(stopped.as_deref(), Some("pause"), "still stopped by the pause");
    // On an open gate the hold closes it, and it opens again by itself.
    let other = uuid::Uuid::new_v4();
    gate::close_for(&w.app.redis, &keys, other, "holiday", 100)
        .await
        .unwrap();
    assert_eq!(
        gate::inspect(&w.app.redis, &keys, other).await.unwrap().0.as_deref(),
        Some("holiday")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gate::inspect(&w.app.redis, &keys, other).await.unwrap().0, None);
}
