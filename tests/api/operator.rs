//! Operator commands (issue 13) as an operator runs them: `arauto doctor` and `arauto
//! campaigns inspect <id>`, real processes on the test's database and Redis prefix.

use crate::engine::{fast, immediate, world, Engine, World};
use secrecy::ExposeSecret;
use std::process::Command;

/// `arauto <args>` on the test's database and Redis prefix (off the runtime's thread, so
/// an in-process engine keeps running): exit code and standard output.
async fn arauto(w: &World, args: &[&str]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arauto"));
    command
        .args(args)
        .env("ARAUTO_ENV", "test")
        .env("ARAUTO__DATABASE__URL", w.app.settings.database.url.expose_secret())
        .env("ARAUTO__REDIS__PREFIX", &w.app.settings.redis.prefix)
        .env("ARAUTO__REDIS__URL", w.app.settings.redis.url.expose_secret())
        .env("RUST_LOG", "error");
    let out = tokio::task::spawn_blocking(move || command.output().expect("arauto runs"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test]
async fn doctor_passes_on_a_healthy_deployment_and_names_what_is_wrong_otherwise() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    // An active campaign: its number must answer connected.
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 0).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (code, out) = arauto(&w, &["doctor"]).await;
    assert_eq!(code, 0, "{out}");
    for check in [
        "postgres",
        "redis",
        "migrations",
        "beat",
        "instance loja-1",
        "sending past the timeout",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with("ok") && l.contains(check)),
            "{check}: {out}"
        );
    }
    engine.stop().await;
    w.sandbox.faults(serde_json::json!({"disconnected": ["loja-1"]}));
    let (code, out) = arauto(&w, &["doctor"]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("FAIL") && l.contains("instance loja-1")),
        "{out}"
    );
}

#[tokio::test]
async fn inspect_shows_a_campaign_as_the_engine_sees_it() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, serde_json::json!({}))
        .await
        .ok(200);
    let (code, out) = arauto(&w, &["campaigns", "inspect", &c]).await;
    assert_eq!(code, 1, "a paused campaign is a finding: {out}");
    assert!(out.contains("paused (user)"), "{out}");
    assert!(out.contains("pending 3"), "{out}");
    assert!(out.contains("closed (pause)"), "{out}");
    let (code, _) = arauto(&w, &["campaigns", "inspect", &uuid::Uuid::new_v4().to_string()]).await;
    assert_eq!(code, 1);
}
