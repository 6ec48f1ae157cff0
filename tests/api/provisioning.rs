//! Numbers provisioned on the gateway (issue 11): `POST /instances` with `create: true`
//! creates the instance on the gateway with its global key, points its webhook here and
//! answers a QR code; `connect` gives a fresh one; `DELETE` deletes it there too; gateway
//! failures are 502 with the gateway's message. And a number's health over 24 hours. All
//! against the sandbox over HTTP.

use crate::engine::{fast, immediate, phone, start_sandbox, world, Engine, Sandbox};
use crate::helpers::{spawn_app, Tenant, TestApp};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::time::Duration;

async fn gateway_get(sb: &Sandbox, path: &str) -> Value {
    reqwest::Client::new()
        .get(format!("{}{path}", sb.url))
        .header("apikey", "any")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn provision(app: &TestApp, t: &Tenant, sb: &Sandbox, name: &str) -> crate::helpers::Resp {
    app.post(
        "/api/v1/instances",
        t,
        json!({"name": name, "api_url": sb.url, "instance_name": name, "create": true, "global_api_key": "global-key"}),
    )
    .await
}

async fn stored_key(app: &TestApp, id: &str) -> String {
    let row = app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT api_key_enc FROM instances WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    let enc: String = row.try_get("", "api_key_enc").unwrap();
    arauto::crypto::Cipher::new(&app.settings.crypto_key().unwrap())
        .decrypt(&enc)
        .unwrap()
}

async fn wait_for_state(app: &TestApp, t: &Tenant, id: &str, state: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let i = app.get(&format!("/api/v1/instances/{id}"), t).await;
        if i.body["connection_state"] == state {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "wanted {state}: {}", i.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn an_instance_created_on_the_gateway_points_its_webhook_here_answers_a_qr_and_is_deleted_there_too() {
    let app = spawn_app().await;
    let sb = start_sandbox();
    let t = app.signup("Acme").await;
    let r = provision(&app, &t, &sb, "loja-nova").await;
    let b = r.ok(201).clone();
    assert_eq!(b["provisioned"], true);
    assert!(
        b["qrcode"]["base64"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,"),
        "{b}"
    );
    assert!(
        b["qrcode"]["pairing_code"].is_string() && b["qrcode"]["code"].is_string(),
        "{b}"
    );
    assert!(!r.body.to_string().contains("global-key"));
    let id = r.id();
    // The gateway's webhook points at this API's webhook path, for the three events.
    let hook = gateway_get(&sb, "/webhook/find/loja-nova").await;
    let expected = format!("{}{}", app.address, b["webhook_path"].as_str().unwrap());
    assert_eq!(hook["url"], expected.as_str());
    assert_eq!(
        hook["events"],
        json!(["MESSAGES_UPDATE", "MESSAGES_UPSERT", "CONNECTION_UPDATE"])
    );
    // The key stored (encrypted) is the one the gateway issued, not the global key.
    let listed = gateway_get(&sb, "/instance/fetchInstances?instanceName=loja-nova").await;
    let issued = listed[0]["token"].as_str().unwrap().to_owned();
    assert_eq!(stored_key(&app, &id).await, issued);
    // The gateway's events reach this API: logged out on the gateway's side…
    let out = reqwest::Client::new()
        .delete(format!("{}/instance/logout/loja-nova", sb.url))
        .header("apikey", issued.as_str())
        .send()
        .await
        .unwrap();
    assert!(out.status().is_success());
    wait_for_state(&app, &t, &id, "close").await;
    // …then a fresh QR (the gateway counts it) is scanned: `open` again.
    let again = app
        .post(&format!("/api/v1/instances/{id}/connect"), &t, json!({}))
        .await;
    assert_eq!(again.ok(200)["base64"], b["qrcode"]["base64"]);
    assert_ne!(again.body["code"], b["qrcode"]["code"]);
    wait_for_state(&app, &t, &id, "open").await;
    // Deleting it deletes it on the gateway too, audited.
    app.delete(&format!("/api/v1/instances/{id}"), &t).await.ok(204);
    let listed = gateway_get(&sb, "/instance/fetchInstances").await;
    assert!(
        !listed.as_array().unwrap().iter().any(|i| i["name"] == "loja-nova"),
        "{listed}"
    );
    let logs = app.get("/api/v1/audit-logs", &t).await;
    let deleted = logs.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["action"] == "instance.delete")
        .cloned()
        .unwrap();
    assert_eq!(deleted["details"]["deleted_on_gateway"], true, "{deleted}");
}

#[tokio::test]
async fn gateway_refusals_answer_502_with_the_gateways_message_and_store_nothing() {
    let app = spawn_app().await;
    let sb = start_sandbox();
    let t = app.signup("Acme").await;
    provision(&app, &t, &sb, "loja-1").await.ok(201);
    // Another Arauto name, the same gateway name: the gateway refuses it.
    let taken = app
        .post(
            "/api/v1/instances",
            &t,
            json!({"name": "Outra", "api_url": sb.url, "instance_name": "loja-1", "create": true, "global_api_key": "g"}),
        )
        .await;
    let detail = taken.problem(502)["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("This name \"loja-1\" is already in use."), "{detail}");
    // A wrong global key.
    sb.faults(json!({"api_key": "the-real-global-key"}));
    let refused = provision(&app, &t, &sb, "loja-2").await;
    assert!(
        refused.problem(502)["detail"]
            .as_str()
            .unwrap()
            .contains("Unauthorized"),
        "{}",
        refused.body
    );
    let listed = app.get("/api/v1/instances", &t).await;
    assert_eq!(listed.ok(200)["total"], 1);
    // connect and delete report the gateway's refusal the same way; the row stays.
    let id = listed.body["items"][0]["id"].as_str().unwrap().to_owned();
    let connect = app
        .post(&format!("/api/v1/instances/{id}/connect"), &t, json!({}))
        .await;
    assert!(connect.problem(502)["detail"]
        .as_str()
        .unwrap()
        .contains("Unauthorized"));
    app.delete(&format!("/api/v1/instances/{id}"), &t).await.problem(502);
    app.get(&format!("/api/v1/instances/{id}"), &t).await.ok(200);
}

#[tokio::test]
async fn creating_on_the_gateway_needs_a_global_key_and_no_instance_key() {
    let app = spawn_app().await;
    let sb = start_sandbox();
    let t = app.signup("Acme").await;
    let post = |body: Value| app.post("/api/v1/instances", &t, body);
    let no_global = post(json!({"name": "A", "api_url": sb.url, "instance_name": "a", "create": true})).await;
    assert_eq!(no_global.fields(), ["global_api_key"]);
    let with_key =
        post(json!({"name": "A", "api_url": sb.url, "instance_name": "a", "create": true, "api_key": "k", "global_api_key": "g"}))
            .await;
    assert_eq!(with_key.fields(), ["api_key"]);
    let no_key = post(json!({"name": "A", "api_url": sb.url, "instance_name": "a"})).await;
    assert_eq!(no_key.fields(), ["api_key"]);
    // The global key may come from the configuration instead.
    let configured = crate::helpers::spawn_app_with(|s| {
        s.gateway.global_api_key = Some("from-config".to_owned().into());
        s.server.public_url = Some("https://arauto.example.com".into());
    })
    .await;
    let t2 = configured.signup("Beta").await;
    let r = configured
        .post(
            "/api/v1/instances",
            &t2,
            json!({"name": "B", "api_url": sb.url, "instance_name": "b", "create": true}),
        )
        .await;
    let path = r.ok(201)["webhook_path"].as_str().unwrap().to_owned();
    let hook = gateway_get(&sb, "/webhook/find/b").await;
    assert_eq!(hook["url"], format!("https://arauto.example.com{path}"));
}

#[tokio::test]
async fn the_sandbox_delivers_an_inbound_reply_on_request_to_a_provisioned_number() {
    let app = spawn_app().await;
    let sb = start_sandbox();
    let t = app.signup("Acme").await;
    provision(&app, &t, &sb, "loja-demo").await.ok(201);
    let contact = app.create_contact(&t, "5511987654321", "Ana").await;
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/inbound", sb.url))
        .json(&json!({"instance": "loja-demo", "number": "5511987654321", "text": " Sair.", "lid": true}))
        .send()
        .await
        .unwrap();
    let answer: Value = r.json().await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    let c = app.get(&format!("/api/v1/contacts/{contact}"), &t).await;
    assert!(c.ok(200)["opted_out_at"].is_string(), "{}", c.body);
}

#[tokio::test]
async fn a_registered_numbers_webhook_is_pointed_at_arauto_on_request_so_opt_outs_arrive() {
    // A number registered with its own api key (not created by Arauto): the gateway has no
    // webhook of ours, and a contact's "SAIR" would never arrive.
    let w = world().await;
    let contact = w.app.create_contact(&w.t, &phone(1), "Ana").await;
    let inbound = || async {
        reqwest::Client::new()
            .post(format!("{}/_sandbox/inbound", w.sandbox.url))
            .json(&json!({"instance": "loja-1", "number": phone(1), "text": "SAIR"}))
            .send()
            .await
            .unwrap()
    };
    assert!(
        !inbound().await.status().is_success(),
        "the sandbox has nowhere to post it"
    );
    let c = w.app.get(&format!("/api/v1/contacts/{contact}"), &w.t).await;
    assert!(c.ok(200)["opted_out_at"].is_null(), "no webhook yet: {}", c.body);
    let set = w
        .app
        .post(&format!("/api/v1/instances/{}/webhook", w.instance), &w.t, json!({}))
        .await;
    let path = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await.body["webhook_path"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(set.ok(200)["url"], format!("{}{path}", w.app.address));
    let hook = gateway_get(&w.sandbox, "/webhook/find/loja-1").await;
    assert_eq!(hook["url"], format!("{}{path}", w.app.address));
    let answer: Value = inbound().await.json().await.unwrap();
    assert_eq!(answer["status"], 200, "{answer}");
    let c = w.app.get(&format!("/api/v1/contacts/{contact}"), &w.t).await;
    assert!(c.ok(200)["opted_out_at"].is_string(), "{}", c.body);
    // A gateway that does not answer: 502, and nothing else changes.
    let unreachable = w.app.create_instance(&w.t, "loja-x").await;
    w.app
        .post(&format!("/api/v1/instances/{unreachable}/webhook"), &w.t, json!({}))
        .await
        .problem(502);
}

async fn health(app: &TestApp, t: &Tenant, id: &str) -> Value {
    app.get(&format!("/api/v1/instances/{id}/health"), t)
        .await
        .ok(200)
        .clone()
}

#[tokio::test]
async fn a_numbers_health_counts_its_last_day_and_warns_on_failures_and_opt_outs() {
    let w = world().await;
    let fresh = health(&w.app, &w.t, &w.instance).await;
    assert_eq!(
        (
            fresh["level"].clone(),
            fresh["sent"].clone(),
            fresh["failure_rate"].clone()
        ),
        (json!("ok"), json!(0), Value::Null)
    );
    w.app
        .patch(
            &format!("/api/v1/instances/{}", w.instance),
            &w.t,
            json!({"daily_limit": 100}),
        )
        .await
        .ok(200);
    // Inbound messages reach this API through the sandbox's webhook.
    let url = format!("{}{}", w.app.address, {
        let i = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
        i.body["webhook_path"].as_str().unwrap().to_owned()
    });
    let set = reqwest::Client::new()
        .post(format!("{}/webhook/set/loja-1", w.sandbox.url))
        .header("apikey", "k")
        .json(&json!({"webhook": {"enabled": true, "url": url, "events": ["MESSAGES_UPSERT", "CONNECTION_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    // 40 sends, 5 of them to numbers not on WhatsApp (spread out: no error-threshold pause).
    let broken: Vec<String> = [3, 11, 19, 27, 35].iter().map(|i| phone(*i)).collect();
    w.sandbox.faults(json!({"not_on_whatsapp": broken}));
    let contacts = w.contacts(40).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 35);
    // One person asks to stop, through the gateway.
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/inbound", w.sandbox.url))
        .json(&json!({"instance": "loja-1", "number": phone(1), "text": "PARAR"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // And the number was logged out once.
    w.app
        .call(
            Method::POST,
            &format!("/api/v1/instances/{}/logout", w.instance),
            Some(&w.t.token),
            None,
        )
        .await
        .ok(204);
    let h = health(&w.app, &w.t, &w.instance).await;
    assert_eq!(h["sent"], 35, "{h}");
    assert_eq!(h["failed"], 5, "{h}");
    assert_eq!(h["failure_rate"], 0.125, "{h}");
    assert_eq!(h["opt_outs"], 1, "{h}");
    assert_eq!(h["disconnects"], 1, "{h}");
    assert_eq!(
        (h["daily_limit"].clone(), h["sent_today"].clone()),
        (json!(100), json!(35))
    );
    assert_eq!(h["daily_limit_use"], 0.35, "{h}");
    assert_eq!(h["level"], "warning", "{h}");
    let reasons = h["reasons"].to_string();
    assert!(
        reasons.contains("failure_rate") && reasons.contains("opt_out_rate"),
        "{h}"
    );
    // Another tenant's id is a 404.
    let other = w.app.signup("Other").await;
    w.app
        .get(&format!("/api/v1/instances/{}/health", w.instance), &other)
        .await
        .problem(404);
}
