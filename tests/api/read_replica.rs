//! `database.read_url` (issue 13): statistics and lists are served by the read pool,
//! everything else (writes, single reads, ownership checks, starts) by the primary.

use crate::helpers::{spawn_app_with_reads, Reads, Tenant, TestApp};
use sea_orm::{ConnectionTrait, Database};
use secrecy::ExposeSecret;
use serde_json::json;

/// Paths that list or count: each must answer from the read pool.
const LISTS: [&str; 8] = [
    "/api/v1/contacts",
    "/api/v1/campaigns",
    "/api/v1/instances",
    "/api/v1/templates",
    "/api/v1/users",
    "/api/v1/audit-logs",
    "/api/v1/webhook-subscriptions",
    "/api/v1/dashboard/stats",
];

/// A tenant with a contact, an instance, a template, a webhook subscription and a draft
/// campaign, all written through the API; the campaign's id.
async fn populate(app: &TestApp, t: &Tenant) -> String {
    let contact = app.create_contact(t, "5511987650001", "Ana").await;
    let instance = app.create_instance(t, "loja-1").await;
    app.post("/api/v1/templates", t, json!({"name": "A", "text": "Oi {{nome}}"}))
        .await
        .ok(201);
    app.post(
        "/api/v1/webhook-subscriptions",
        t,
        json!({"url": "http://127.0.0.1:9/hook", "events": ["message.sent"]}),
    )
    .await
    .ok(201);
    app.post(
        "/api/v1/campaigns",
        t,
        json!({"name": "C", "instance_id": instance, "messages": [{"text": "Oi"}], "audience": {"contact_ids": [contact]}}),
    )
    .await
    .id()
}

#[tokio::test]
async fn a_read_url_naming_the_primary_serves_every_list_and_stat() {
    let app = spawn_app_with_reads(Reads::SameDatabase).await;
    let t = app.signup("Acme").await;
    let c = populate(&app, &t).await;
    for path in LISTS.iter().filter(|p| !p.ends_with("/stats")) {
        let body = app.get(path, &t).await.ok(200).clone();
        assert!(!body["items"].as_array().unwrap().is_empty(), "{path}: {body}");
    }
    let dashboard = app.get("/api/v1/dashboard/stats", &t).await.ok(200).clone();
    assert_eq!(dashboard["campaigns"]["draft"], 1, "{dashboard}");
    let stats = app
        .get(&format!("/api/v1/campaigns/{c}/stats"), &t)
        .await
        .ok(200)
        .clone();
    assert_eq!(stats["status"], "draft");
    app.get(&format!("/api/v1/campaigns/{c}/recipients"), &t).await.ok(200);
    app.get(&format!("/api/v1/campaigns/{c}/logs"), &t).await.ok(200);
    app.get(&format!("/api/v1/campaigns/{c}/recipients.csv"), &t)
        .await
        .ok(200);
    app.get("/api/v1/queue", &t).await.ok(200);
}

/// A replica that has not caught up at all: a migrated database of its own, empty.
struct Lagging {
    url: String,
    server_url: String,
    name: String,
}

impl Lagging {
    async fn new() -> Self {
        let settings = crate::helpers::test_settings();
        let mut server = reqwest::Url::parse(settings.database.url.expose_secret()).unwrap();
        server.set_path("/postgres");
        let name = format!("arauto_test_{}_replica", uuid::Uuid::new_v4().simple());
        let admin = Database::connect(server.as_str()).await.unwrap();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap();
        admin.close().await.ok();
        let mut url = server.clone();
        url.set_path(&format!("/{name}"));
        let db = Database::connect(url.as_str()).await.unwrap();
        <migration::Migrator as sea_orm_migration::MigratorTrait>::up(&db, None)
            .await
            .unwrap();
        db.close().await.ok();
        Self {
            url: url.to_string(),
            server_url: server.to_string(),
            name,
        }
    }

    async fn drop_it(self) {
        let admin = Database::connect(&self.server_url).await.unwrap();
        admin
            .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn lists_and_stats_come_from_the_read_pool_and_nothing_else_does() {
    let replica = Lagging::new().await;
    let app = spawn_app_with_reads(Reads::Url(replica.url.clone())).await;
    let t = app.signup("Acme").await;
    let c = populate(&app, &t).await;

    // Lists and counts answer from the replica, which has seen nothing yet.
    for path in LISTS.iter().filter(|p| !p.ends_with("/stats")) {
        let body = app.get(path, &t).await.ok(200).clone();
        assert_eq!(body["items"], json!([]), "{path} is served by the read pool: {body}");
    }
    let dashboard = app.get("/api/v1/dashboard/stats", &t).await.ok(200).clone();
    assert_eq!(dashboard["campaigns"], json!({}), "{dashboard}");
    assert_eq!(dashboard["instances"], json!([]), "{dashboard}");
    // The campaign is found on the primary (no 404 from lag); its counts come from the replica.
    let stats = app
        .get(&format!("/api/v1/campaigns/{c}/stats"), &t)
        .await
        .ok(200)
        .clone();
    assert_eq!(stats["status"], "draft");
    let recipients = app.get(&format!("/api/v1/campaigns/{c}/recipients"), &t).await;
    assert_eq!(recipients.ok(200)["items"], json!([]));

    // Single reads, sign-ins and state changes stay on the primary.
    app.get(&format!("/api/v1/campaigns/{c}"), &t).await.ok(200);
    app.get("/api/v1/me", &t).await.ok(200);
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": t.email, "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let started = app.post(&format!("/api/v1/campaigns/{c}/start"), &t, json!({})).await;
    assert_ne!(started.status, 404, "start reads the primary: {}", started.body);
    drop(app);
    replica.drop_it().await;
}
