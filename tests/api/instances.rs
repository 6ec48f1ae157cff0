use crate::helpers::spawn_app;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;

#[tokio::test]
async fn an_instance_keeps_its_api_key_secret_and_encrypted() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let body = json!({"name": "Loja 1", "api_url": "http://evolution:8080/", "api_key": "super-secret", "instance_name": "loja-1", "daily_limit": 200, "warmup": {"start": 20, "increase_percent": 20}});
    let r = app.post("/api/v1/instances", &t, body).await;
    let b = r.ok(201);
    assert_eq!(b["api_url"], "http://evolution:8080");
    assert_eq!(b["daily_limit"], 200);
    assert_eq!(b["warmup"]["start"], 20);
    assert!(b["webhook_path"]
        .as_str()
        .unwrap()
        .starts_with("/api/v1/webhooks/evolution/"));
    assert!(!r.body.to_string().contains("super-secret"));
    let id = r.id();
    let listed = app.get("/api/v1/instances", &t).await;
    assert!(!listed.body.to_string().contains("super-secret"));
    assert!(listed.body["items"][0].get("api_key").is_none());
    let row = app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT api_key_enc FROM instances WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get("", "api_key_enc").unwrap();
    assert!(!stored.contains("super-secret"));
    let cipher = arauto::crypto::Cipher::new(&app.settings.crypto_key().unwrap());
    assert_eq!(cipher.decrypt(&stored).unwrap(), "super-secret");
}

#[tokio::test]
async fn an_instance_is_updated_and_deleted_with_an_audit_trail() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let id = app.create_instance(&t, "loja-1").await;
    let r = app
        .patch(
            &format!("/api/v1/instances/{id}"),
            &t,
            json!({"name": "Loja Centro", "daily_limit": null, "api_key": "rotated"}),
        )
        .await;
    assert_eq!(r.ok(200)["name"], "Loja Centro");
    assert!(r.body["daily_limit"].is_null());
    app.get(&format!("/api/v1/instances/{id}"), &t).await.ok(200);
    app.delete(&format!("/api/v1/instances/{id}"), &t).await.ok(204);
    app.get(&format!("/api/v1/instances/{id}"), &t).await.problem(404);
    let logs = app.get("/api/v1/audit-logs", &t).await;
    let actions: Vec<_> = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    assert_eq!(&actions[..3], ["instance.delete", "instance.update", "instance.create"]);
    assert_eq!(logs.body["items"][1]["details"]["api_key_changed"], true);
}

#[tokio::test]
async fn instance_names_are_unique_per_tenant() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let other = app.signup("Other").await;
    app.create_instance(&t, "loja-1").await;
    app.create_instance(&other, "loja-1").await;
    let body = json!({"name": "loja-1", "api_url": "http://x", "api_key": "k", "instance_name": "x"});
    app.post("/api/v1/instances", &t, body).await.problem(409);
}

#[tokio::test]
async fn bad_instances_name_their_fields() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let body = json!({"name": "", "api_url": "ftp://x", "api_key": "", "instance_name": "a b", "daily_limit": 0, "warmup": {"start": 0, "increase_percent": 20}});
    let r = app.post("/api/v1/instances", &t, body).await;
    assert_eq!(
        r.fields(),
        ["name", "api_url", "api_key", "instance_name", "daily_limit", "warmup"]
    );
}
