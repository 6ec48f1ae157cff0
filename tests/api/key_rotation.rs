//! Rotating `crypto.key` (issue 13): `arauto rotate-crypto-key`, a real process on the
//! test's database, re-seals instance api keys and webhook secrets with the new key,
//! batch by batch, leaves alone what is already rotated, and names what it cannot open.

use crate::helpers::{spawn_app, TestApp};
use arauto::crypto::Cipher;
use base64::Engine;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use secrecy::ExposeSecret;
use serde_json::json;
use std::process::Command;

const NEW_KEY: [u8; 32] = [42u8; 32];

fn b64(key: &[u8; 32]) -> String {
    base64::engine::general_purpose::STANDARD.encode(key)
}

/// `arauto rotate-crypto-key --batch-size 2` with `crypto.key` = [`NEW_KEY`] and the
/// test's key as the previous one: exit code and standard output.
async fn rotate(app: &TestApp) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_arauto"));
    command
        .args(["rotate-crypto-key", "--batch-size", "2"])
        .env("ARAUTO_ENV", "test")
        .env("ARAUTO__DATABASE__URL", app.settings.database.url.expose_secret())
        .env("ARAUTO__CRYPTO__KEY", b64(&NEW_KEY))
        .env(
            "ARAUTO__CRYPTO__PREVIOUS_KEYS",
            format!("{},{}", b64(&[1u8; 32]), app.settings.crypto.key.expose_secret()),
        )
        .env("RUST_LOG", "error");
    let out = tokio::task::spawn_blocking(move || command.output().expect("arauto runs"))
        .await
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn sealed(app: &TestApp, sql: &str) -> Vec<(String, String)> {
    app.db
        .query_all(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                r.try_get::<uuid::Uuid>("", "id").unwrap().to_string(),
                r.try_get("", "v").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rotating_the_crypto_key_reseals_every_secret_once_and_names_what_no_key_opens() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    for name in ["loja-1", "loja-2", "loja-3", "loja-4", "loja-5"] {
        app.create_instance(&t, name).await;
    }
    app.post(
        "/api/v1/webhook-subscriptions",
        &t,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}),
    )
    .await
    .ok(201);
    // One value sealed with a key nobody configured (a bad restore, say).
    let stray = Cipher::new(&[9u8; 32]).encrypt("stray-key").unwrap();
    let instances = sealed(&app, "SELECT id, api_key_enc AS v FROM instances ORDER BY id").await;
    let stray_id = instances[2].0.clone();
    app.db
        .execute_unprepared(&format!(
            "UPDATE instances SET api_key_enc = '{stray}' WHERE id = '{stray_id}'"
        ))
        .await
        .unwrap();

    let (code, out) = rotate(&app).await;
    assert_eq!(code, 1, "a value no key opens fails the run: {out}");
    assert!(
        out.contains("instances.api_key_enc: 4 re-sealed with crypto.key, 0 already were, 1 unreadable"),
        "{out}"
    );
    assert!(out.contains(&format!("unreadable: instances {stray_id}")), "{out}");
    assert!(out.contains("webhook_subscriptions.secret_enc: 1 re-sealed"), "{out}");
    assert!(!out.contains("secret-key") && !out.contains("stray-key"), "{out}");

    // Only the new key is needed from now on.
    let new_only = Cipher::new(&NEW_KEY);
    for (id, v) in sealed(&app, "SELECT id, api_key_enc AS v FROM instances").await {
        if id == stray_id {
            assert_eq!(v, stray, "an unreadable value is left as it was");
        } else {
            assert_eq!(new_only.decrypt(&v).unwrap(), "secret-key");
        }
    }
    let hooks = sealed(&app, "SELECT id, secret_enc AS v FROM webhook_subscriptions").await;
    assert!(new_only.decrypt(&hooks[0].1).unwrap().starts_with("whsec_"));

    // Idempotent: once the stray row is set right, a second run writes nothing.
    let fixed = new_only.encrypt("replaced-key").unwrap();
    app.db
        .execute_unprepared(&format!(
            "UPDATE instances SET api_key_enc = '{fixed}' WHERE id = '{stray_id}'"
        ))
        .await
        .unwrap();
    let before = sealed(&app, "SELECT id, api_key_enc AS v FROM instances ORDER BY id").await;
    let (code, out) = rotate(&app).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("instances.api_key_enc: 0 re-sealed with crypto.key, 5 already were, 0 unreadable"),
        "{out}"
    );
    assert!(
        out.contains("webhook_subscriptions.secret_enc: 0 re-sealed with crypto.key, 1 already were"),
        "{out}"
    );
    assert_eq!(
        sealed(&app, "SELECT id, api_key_enc AS v FROM instances ORDER BY id").await,
        before
    );
}
