//! Safe shutdown (issue 13), with real signals on real processes: a worker told to stop
//! (SIGTERM) finishes the send in hand, records it and exits 0, leaving no recipient
//! `sending`; a beat releases its leader lease; an API answers the request in hand.

use crate::engine::{fast, immediate, world, World};
use arauto::scheduler::Beat;
use chrono::Utc;
use fred::prelude::*;
use secrecy::ExposeSecret;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `arauto <command>` on the test's database and Redis prefix, with `env` besides.
fn spawn(w: &World, command: &str, env: &[(&str, String)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_arauto"))
        .arg(command)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("ARAUTO_ENV", "test")
        .env("ARAUTO__DATABASE__URL", w.app.settings.database.url.expose_secret())
        .env("ARAUTO__REDIS__PREFIX", &w.app.settings.redis.prefix)
        .env("ARAUTO__REDIS__URL", w.app.settings.redis.url.expose_secret())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("arauto starts")
}

fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits (at most `within`) for the process to exit; its exit code.
async fn exit_code(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("the process did not stop within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_worker_stopped_by_sigterm_finishes_and_records_the_send_in_hand() {
    let w = world().await;
    let contacts = w.contacts(4).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    // Each send takes 1.5 s at the gateway: the signal arrives while one is in hand.
    w.sandbox.faults(serde_json::json!({"latency_ms": 1500}));
    w.start(&c).await;
    Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    let mut worker = spawn(&w, "worker", &[]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while w.sandbox.state.arrivals().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no send reached the gateway");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_hand = w.counts(&c).await.get("sending").copied().unwrap_or(0);
    assert!(in_hand >= 1, "a send is in hand when the signal comes");
    terminate(&worker);
    assert_eq!(exit_code(&mut worker, Duration::from_secs(20)).await, Some(0));
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("sending"), None, "nothing left sending: {counts:?}");
    // Every request that reached the gateway was recorded as sent.
    assert_eq!(
        counts.get("sent").copied().unwrap_or(0),
        w.sandbox.state.send_count() as i64,
        "{counts:?}"
    );
    assert!(w.sandbox.state.arrivals().len() >= in_hand as usize);
}

#[tokio::test]
async fn a_beat_stopped_by_sigterm_releases_its_lease() {
    let w = world().await;
    let mut beat = spawn(&w, "beat", &[]);
    let lease = arauto::scheduler::lease::leader_key(&arauto::redis::Keys::new(w.app.settings.redis.prefix.clone()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let holder: Option<String> = w.app.redis.get(&lease).await.unwrap();
        if holder.is_some() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the beat never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    terminate(&beat);
    assert_eq!(exit_code(&mut beat, Duration::from_secs(20)).await, Some(0));
    let holder: Option<String> = w.app.redis.get(&lease).await.unwrap();
    assert_eq!(holder, None, "the lease is released, not left to expire");
}

#[tokio::test]
async fn an_api_stopped_by_sigterm_answers_the_request_in_hand_then_exits() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut api = spawn(&w, "api", &[("ARAUTO__SERVER__PORT", port.to_string())]);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/health")).send().await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the API never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // `start` asks the gateway for the number's state: 1.5 s in hand.
    w.sandbox.faults(serde_json::json!({"latency_ms": 1500}));
    let start = tokio::spawn({
        let (http, url, token) = (
            http.clone(),
            format!("{base}/api/v1/campaigns/{c}/start"),
            w.t.token.clone(),
        );
        async move {
            http.post(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    terminate(&api);
    assert_eq!(start.await.unwrap().ok(), Some(200), "the request in hand is answered");
    assert_eq!(exit_code(&mut api, Duration::from_secs(40)).await, Some(0));
    assert!(
        http.get(format!("{base}/health")).send().await.is_err(),
        "no longer listening"
    );
}
