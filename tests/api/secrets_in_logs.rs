//! Logs never carry secrets (issue 13): a whole run of `arauto all` in JSON logs at debug
//! level — sign-up, sign-in, an instance with its api key, a campaign sent through the
//! gateway — and its output searched for every secret it was given.

use crate::engine::{phone, start_sandbox};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_full_run_logs_as_json_and_never_logs_a_password_token_or_api_key() {
    let app = crate::helpers::spawn_app().await;
    let sandbox = start_sandbox();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let log_path = std::env::temp_dir().join(format!("arauto-logs-{}.jsonl", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut all = Command::new(env!("CARGO_BIN_EXE_arauto"))
        .arg("all")
        .env("ARAUTO_ENV", "test")
        .env("ARAUTO__DATABASE__URL", app.settings.database.url.expose_secret())
        .env("ARAUTO__REDIS__PREFIX", &app.settings.redis.prefix)
        .env("ARAUTO__REDIS__URL", app.settings.redis.url.expose_secret())
        .env("ARAUTO__SERVER__PORT", port.to_string())
        .env("ARAUTO__LOG__FORMAT", "json")
        .env("RUST_LOG", "debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}/api/v1");
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_err()
    {
        assert!(tokio::time::Instant::now() < deadline, "never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let password = "s3nha-muito-secreta-42";
    let api_key = "evolution-key-7f3a9c";
    let post = |path: &str, token: Option<&str>, body: Value| {
        let mut r = http.post(format!("{base}{path}")).json(&body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        async move { r.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    post(
        "/auth/signup",
        None,
        json!({"tenant_name": "Logs", "email": "logs@example.com", "password": password}),
    )
    .await;
    let login = post(
        "/auth/login",
        None,
        json!({"email": "logs@example.com", "password": password}),
    )
    .await;
    let token = login["token"].as_str().expect("a token").to_owned();
    let instance = post(
        "/instances",
        Some(&token),
        json!({"name": "loja-1", "api_url": sandbox.url, "api_key": api_key, "instance_name": "loja-1"}),
    )
    .await;
    let contact = post("/contacts", Some(&token), json!({"phone": phone(0), "name": "Ana"})).await;
    let campaign = post(
        "/campaigns",
        Some(&token),
        json!({"name": "C", "instance_id": instance["id"], "messages": [{"text": "Oi {{nome}}"}],
               "audience": {"contact_ids": [contact["id"]]}, "schedule": {"mode": "immediate", "timezone": "UTC"},
               "pacing": {"min_interval_seconds": 0, "max_interval_seconds": 0}}),
    )
    .await;
    let id = campaign["id"].as_str().expect("a campaign").to_owned();
    post(&format!("/campaigns/{id}/start"), Some(&token), json!({})).await;
    while sandbox.state.send_count() < 1 {
        assert!(tokio::time::Instant::now() < deadline, "never sent");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Command::new("kill")
        .args(["-TERM", &all.id().to_string()])
        .status()
        .unwrap();
    let _ = all.wait();
    let logs = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(logs.lines().count() > 10, "{logs}");
    for (what, secret) in [("password", password), ("token", token.as_str()), ("api key", api_key)] {
        assert!(!logs.contains(secret), "the {what} is in the logs");
    }
    // JSON lines, requests with their id and the caller's tenant.
    let lines: Vec<Value> = logs.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert_eq!(lines.len(), logs.lines().count(), "every line is JSON");
    assert!(
        lines
            .iter()
            .any(|l| l["span"]["request_id"].is_string() && l["span"]["tenant_id"].is_string()),
        "{logs}"
    );
}
