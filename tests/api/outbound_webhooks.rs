//! Outbound webhooks (issue 11): tenants subscribe URLs to events; each delivery is signed
//! with the subscription's secret over `"{timestamp}.{body}"`, retried with backoff and
//! listed in the subscription's delivery log. A local wiremock server is the receiver.

use crate::engine::{fast, immediate, world, Engine, World};
use crate::helpers::spawn_app;
use arauto::clock::Clock;
use arauto::webhooks::delivery::Deliverer;
use arauto::webhooks::domain::signature;
use chrono::Utc;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ALL_EVENTS: [&str; 9] = [
    "message.sent",
    "message.delivered",
    "message.read",
    "message.failed",
    "reply.received",
    "contact.opted_out",
    "campaign.started",
    "campaign.paused",
    "campaign.completed",
];

async fn subscribe(w: &World, url: &str, events: &[&str]) -> Value {
    w.app
        .post(
            "/api/v1/webhook-subscriptions",
            &w.t,
            json!({"url": url, "events": events}),
        )
        .await
        .ok(201)
        .clone()
}

fn header<'a>(r: &'a Request, name: &str) -> &'a str {
    r.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Checks a received delivery as a receiver would: signature over `"{t}.{body}"` with the
/// secret, headers matching the body. Returns the body.
fn verified(r: &Request, secret: &str) -> Value {
    let t: i64 = header(r, "x-arauto-timestamp").parse().expect("timestamp header");
    assert_eq!(
        header(r, "x-arauto-signature"),
        signature(secret, t, &r.body),
        "signature"
    );
    assert!((Utc::now().timestamp() - t).abs() < 300, "a fresh timestamp");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(header(r, "x-arauto-event"), body["type"]);
    assert_eq!(header(r, "x-arauto-delivery"), body["id"]);
    assert!(body["created_at"].is_string() && body["data"].is_object(), "{body}");
    body
}

#[tokio::test]
async fn a_campaign_reaches_the_subscriber_signed_started_sent_and_completed() {
    let w = world().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let created = subscribe(&w, &format!("{}/hooks", receiver.uri()), &ALL_EVENTS).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let state = w.live_state();
    let engine = Engine::start(&state, 1, 1).await;
    // The delivery loop as `arauto worker` runs it, beside the workers.
    let shutdown = CancellationToken::new();
    let deliverer = tokio::spawn(Deliverer::new(&state).unwrap().run(shutdown.clone()));
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let bodies = loop {
        let got = receiver.received_requests().await.unwrap_or_default();
        if got.len() >= 5 {
            break got.iter().map(|r| verified(r, &secret)).collect::<Vec<_>>();
        }
        assert!(tokio::time::Instant::now() < deadline, "only {} deliveries", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
    engine.stop().await;

    let mut by_type: HashMap<String, Vec<&Value>> = HashMap::new();
    for b in &bodies {
        by_type
            .entry(b["type"].as_str().unwrap().to_owned())
            .or_default()
            .push(b);
    }
    assert_eq!(by_type["campaign.started"].len(), 1, "{bodies:?}");
    assert_eq!(by_type["campaign.completed"].len(), 1, "{bodies:?}");
    assert_eq!(by_type["campaign.completed"][0]["data"]["campaign_id"], c.as_str());
    let sent = &by_type["message.sent"];
    assert_eq!(sent.len(), 3, "{bodies:?}");
    let mut phones: Vec<&str> = sent.iter().map(|b| b["data"]["phone"].as_str().unwrap()).collect();
    phones.sort();
    assert_eq!(
        phones,
        [
            crate::engine::phone(0),
            crate::engine::phone(1),
            crate::engine::phone(2)
        ]
    );
    assert!(sent
        .iter()
        .all(|b| b["data"]["campaign_id"] == c.as_str() && b["data"]["message_id"].is_string()));
    assert!(!by_type.contains_key("message.failed"));
    // Event ids are unique.
    let mut ids: Vec<&str> = bodies.iter().map(|b| b["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), bodies.len());
    // The log shows every delivery delivered at the first attempt.
    let log = w
        .app
        .get(
            &format!(
                "/api/v1/webhook-subscriptions/{}/deliveries?per_page=500",
                created["id"].as_str().unwrap()
            ),
            &w.t,
        )
        .await;
    let log = log.ok(200);
    assert_eq!(log["total"], bodies.len());
    for d in log["items"].as_array().unwrap() {
        assert_eq!(
            (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
            (Some("delivered"), Some(1), Some(204)),
            "{d}"
        );
        assert!(
            d["delivered_at"].is_string() && d["next_attempt_at"].is_null() && d["last_error"].is_null(),
            "{d}"
        );
    }
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_event_on_the_third_attempt_and_the_log_says_so() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(2)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let sub = app
        .post(
            "/api/v1/webhook-subscriptions",
            &t,
            json!({"url": receiver.uri(), "events": ["contact.opted_out"]}),
        )
        .await;
    let sub_id = sub.ok(201)["id"].as_str().unwrap().to_owned();
    let secret = sub.body["secret"].as_str().unwrap().to_owned();
    let contact = app.create_contact(&t, "5511988887777", "Ana").await;
    app.patch(&format!("/api/v1/contacts/{contact}"), &t, json!({"opted_out": true}))
        .await
        .ok(200);
    // Opting out again is no new event.
    app.patch(&format!("/api/v1/contacts/{contact}"), &t, json!({"opted_out": true}))
        .await
        .ok(200);
    let log_path = format!("/api/v1/webhook-subscriptions/{sub_id}/deliveries");

    let deliverer = Deliverer::new(&app.engine_state(app.settings.clone(), Arc::new(app.clock.clone()))).unwrap();
    let t0 = app.clock.now();
    // One step at a time (webhooks.base_delay_ms is 1 ms in test, max 50 ms).
    assert_eq!(deliverer.step(t0, 10).await.unwrap(), 1);
    let d = app.get(&log_path, &t).await.ok(200)["items"][0].clone();
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("pending"), Some(1), Some(500)),
        "{d}"
    );
    assert_eq!(d["last_error"], "HTTP 500: boom");
    assert!(d["next_attempt_at"].is_string());
    assert_eq!(
        deliverer.step(t0, 10).await.unwrap(),
        0,
        "not due again before its backoff"
    );
    let t1 = t0 + chrono::Duration::seconds(1);
    assert_eq!(deliverer.step(t1, 10).await.unwrap(), 1);
    let t2 = t1 + chrono::Duration::seconds(1);
    assert_eq!(deliverer.step(t2, 10).await.unwrap(), 1);
    assert_eq!(
        deliverer.step(t2 + chrono::Duration::seconds(1), 10).await.unwrap(),
        0,
        "delivered: done"
    );

    let log = app.get(&log_path, &t).await;
    let log = log.ok(200);
    assert_eq!(log["total"], 1);
    let d = &log["items"][0];
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("delivered"), Some(3), Some(200)),
        "{d}"
    );
    assert!(
        d["last_error"].is_null() && d["next_attempt_at"].is_null() && d["delivered_at"].is_string(),
        "{d}"
    );
    assert_eq!(d["event"], "contact.opted_out");
    let got = receiver.received_requests().await.unwrap();
    assert_eq!(got.len(), 3);
    // Every attempt carries the same event id, each signed for its own instant.
    let bodies: Vec<Value> = got
        .iter()
        .map(|r| {
            let ts: i64 = header(r, "x-arauto-timestamp").parse().unwrap();
            assert_eq!(header(r, "x-arauto-signature"), signature(&secret, ts, &r.body));
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect();
    assert!(bodies
        .iter()
        .all(|b| b["id"] == bodies[0]["id"] && b["data"]["contact_id"] == contact.as_str()));
    assert_eq!(bodies[0]["data"]["source"], "api");
}

#[tokio::test]
async fn a_receiver_that_never_answers_2xx_is_given_up_after_the_retry_period() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(410))
        .mount(&receiver)
        .await;
    let sub = app
        .post(
            "/api/v1/webhook-subscriptions",
            &t,
            json!({"url": receiver.uri(), "events": ["contact.opted_out"]}),
        )
        .await;
    let sub_id = sub.ok(201)["id"].as_str().unwrap().to_owned();
    let contact = app.create_contact(&t, "5511988887777", "Ana").await;
    app.patch(&format!("/api/v1/contacts/{contact}"), &t, json!({"opted_out": true}))
        .await
        .ok(200);
    let deliverer = Deliverer::new(&app.engine_state(app.settings.clone(), Arc::new(app.clock.clone()))).unwrap();
    let t0 = app.clock.now();
    assert_eq!(deliverer.step(t0 + chrono::Duration::hours(23), 10).await.unwrap(), 1);
    assert_eq!(deliverer.step(t0 + chrono::Duration::hours(25), 10).await.unwrap(), 1);
    let d = app
        .get(
            &format!("/api/v1/webhook-subscriptions/{sub_id}/deliveries?status=failed"),
            &t,
        )
        .await;
    let d = d.ok(200)["items"][0].clone();
    assert_eq!(
        (d["status"].as_str(), d["attempts"].as_i64(), d["last_status"].as_i64()),
        (Some("failed"), Some(2), Some(410)),
        "{d}"
    );
    assert!(d["next_attempt_at"].is_null());
    assert_eq!(deliverer.step(t0 + chrono::Duration::hours(30), 10).await.unwrap(), 0);
}

#[tokio::test]
async fn subscriptions_are_created_listed_read_and_deleted_without_their_secret() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let created = app
        .post(
            "/api/v1/webhook-subscriptions",
            &t,
            json!({"url": "https://crm.example.com/arauto", "events": ["message.sent", "campaign.completed", "message.sent"], "description": " CRM "}),
        )
        .await;
    let b = created.ok(201).clone();
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["events"], json!(["message.sent", "campaign.completed"]));
    assert_eq!(b["description"], "CRM");
    assert!(b["secret"].as_str().unwrap().len() > 40);
    let one = app.get(&format!("/api/v1/webhook-subscriptions/{id}"), &t).await;
    assert_eq!(one.ok(200)["url"], "https://crm.example.com/arauto");
    assert!(
        one.body.get("secret").is_none() && one.body.get("secret_enc").is_none(),
        "{}",
        one.body
    );
    let list = app.get("/api/v1/webhook-subscriptions", &t).await;
    let list = list.ok(200);
    assert_eq!(
        (list["total"].as_u64(), list["page"].as_u64(), list["per_page"].as_u64()),
        (Some(1), Some(1), Some(50))
    );
    assert!(list["items"][0].get("secret").is_none());
    // The secret is stored encrypted.
    use sea_orm::ConnectionTrait;
    let row = app
        .db
        .query_one(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!("SELECT secret_enc FROM webhook_subscriptions WHERE id = '{id}'"),
        ))
        .await
        .unwrap()
        .unwrap();
    let stored: String = row.try_get("", "secret_enc").unwrap();
    assert!(!stored.contains(b["secret"].as_str().unwrap()));
    app.delete(&format!("/api/v1/webhook-subscriptions/{id}"), &t)
        .await
        .ok(204);
    app.get(&format!("/api/v1/webhook-subscriptions/{id}"), &t)
        .await
        .problem(404);
    app.delete(&format!("/api/v1/webhook-subscriptions/{id}"), &t)
        .await
        .problem(404);
}

#[tokio::test]
async fn bad_subscriptions_are_422_naming_the_field() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let path = "/api/v1/webhook-subscriptions";
    let cases = [
        (json!({"url": "ftp://x.com/", "events": ["message.sent"]}), "url"),
        (json!({"url": "not a url", "events": ["message.sent"]}), "url"),
        (json!({"url": "https://x.com/\u{0}", "events": ["message.sent"]}), "url"),
        (
            json!({"url": format!("https://x.com/{}", "a".repeat(3000)), "events": ["message.sent"]}),
            "url",
        ),
        (json!({"url": "https://x.com/", "events": []}), "events"),
        (
            json!({"url": "https://x.com/", "events": ["message.sent", "message.bounced"]}),
            "events[1]",
        ),
        (json!({"url": "https://x.com/", "events": "message.sent"}), "events"),
        (json!({"url": 42, "events": ["message.sent"]}), "url"),
        (json!({"events": ["message.sent"]}), "url"),
        (
            json!({"url": "https://x.com/", "events": ["message.sent"], "secret": "mine"}),
            "secret",
        ),
        (
            json!({"url": "https://x.com/", "events": ["message.sent"], "description": "a\u{0}b"}),
            "description",
        ),
        (
            json!({"url": "https://x.com/", "events": ["message.sent"], "description": "x".repeat(501)}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let r = app.post(path, &t, body.clone()).await;
        assert_eq!(r.fields(), [field], "{body}");
    }
    let r = app
        .call_raw(
            reqwest::Method::POST,
            path,
            Some(&t.token),
            "application/json",
            b"{\"url\": ".to_vec(),
        )
        .await;
    r.problem(400);
    let r = app
        .call_raw(
            reqwest::Method::POST,
            path,
            Some(&t.token),
            "application/json",
            vec![b' '; 300_000],
        )
        .await;
    r.problem(413);
    let r = app.get(&format!("{path}?per_page=0"), &t).await;
    assert_eq!(r.fields(), ["per_page"]);
    assert_eq!(app.get(path, &t).await.ok(200)["total"], 0, "nothing was written");
}

#[tokio::test]
async fn members_may_not_manage_subscriptions_and_other_tenants_ids_are_404() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let other = app.signup("Globex").await;
    let member = app.member_of(&t, "ana@acme.example.com").await;
    let body = json!({"url": "https://crm.example.com/", "events": ["campaign.started"]});
    let id = app.post("/api/v1/webhook-subscriptions", &t, body.clone()).await.id();
    app.post("/api/v1/webhook-subscriptions", &member, body)
        .await
        .problem(403);
    app.get("/api/v1/webhook-subscriptions", &member).await.problem(403);
    app.get(&format!("/api/v1/webhook-subscriptions/{id}"), &member)
        .await
        .problem(403);
    app.delete(&format!("/api/v1/webhook-subscriptions/{id}"), &member)
        .await
        .problem(403);
    app.get(&format!("/api/v1/webhook-subscriptions/{id}/deliveries"), &member)
        .await
        .problem(403);
    for path in [
        format!("/api/v1/webhook-subscriptions/{id}"),
        format!("/api/v1/webhook-subscriptions/{id}/deliveries"),
    ] {
        app.get(&path, &other).await.problem(404);
    }
    app.delete(&format!("/api/v1/webhook-subscriptions/{id}"), &other)
        .await
        .problem(404);
    app.get("/api/v1/webhook-subscriptions/not-a-uuid", &t)
        .await
        .problem(404);
    assert_eq!(
        app.get("/api/v1/webhook-subscriptions", &other).await.ok(200)["total"],
        0
    );
    app.get(&format!("/api/v1/webhook-subscriptions/{id}"), &t)
        .await
        .ok(200);
}

async fn gateway_event(w: &World, event: Value) {
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(event))
        .await
        .ok(200);
}

#[tokio::test]
async fn receipts_replies_and_opt_outs_reach_the_subscriber_once_each_and_only_what_it_asked_for() {
    let w = world().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let events = [
        "message.delivered",
        "message.read",
        "reply.received",
        "contact.opted_out",
    ];
    let created = subscribe(&w, &receiver.uri(), &events).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    let recipients = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    let message_id = recipients.ok(200)["items"][0]["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let jid = format!("{}@s.whatsapp.net", crate::engine::phone(0));
    // Receipts, each twice: one event per first news.
    for status in ["DELIVERY_ACK", "DELIVERY_ACK", "READ", "READ"] {
        gateway_event(
            &w,
            json!({"event": "messages.update", "instance": "loja-1",
            "data": {"keyId": message_id, "remoteJid": jid, "fromMe": true, "status": status}}),
        )
        .await;
    }
    // Two inbound messages, the second an opt-out keyword.
    for (i, text) in ["Oi, quanto custa?", "SAIR"].iter().enumerate() {
        gateway_event(
            &w,
            json!({"event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": jid, "fromMe": false, "id": format!("IN{i}")},
                     "pushName": "Zé", "message": {"conversation": text}, "messageType": "conversation"}}),
        )
        .await;
    }
    let deliverer = Deliverer::new(&w.live_state()).unwrap();
    assert_eq!(
        deliverer
            .step(Utc::now() + chrono::Duration::minutes(1), 100)
            .await
            .unwrap(),
        5
    );

    let got = receiver.received_requests().await.unwrap();
    let mut bodies: Vec<Value> = got.iter().map(|r| verified(r, &secret)).collect();
    bodies.sort_by_key(|b| {
        (
            b["type"].as_str().unwrap().to_owned(),
            b["data"]["text"].as_str().map(str::to_owned),
        )
    });
    let types: Vec<&str> = bodies.iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "contact.opted_out",
            "message.delivered",
            "message.read",
            "reply.received",
            "reply.received"
        ]
    );
    let (opted, delivered, read, first, second) = (&bodies[0], &bodies[1], &bodies[2], &bodies[3], &bodies[4]);
    assert_eq!(opted["data"]["phone"], crate::engine::phone(0));
    assert_eq!(opted["data"]["source"], "keyword");
    assert!(opted["data"]["opted_out_at"].is_string());
    assert_eq!(delivered["data"]["message_id"], message_id.as_str());
    assert!(delivered["data"]["delivered_at"].is_string());
    assert!(read["data"]["read_at"].is_string());
    assert_eq!(
        (first["data"]["text"].as_str(), first["data"]["first_reply"].as_bool()),
        (Some("Oi, quanto custa?"), Some(true))
    );
    assert_eq!(
        (second["data"]["text"].as_str(), second["data"]["first_reply"].as_bool()),
        (Some("SAIR"), Some(false))
    );
    assert_eq!(first["data"]["campaign_id"], c.as_str());
}

#[tokio::test]
async fn a_pause_is_an_event_with_its_reason() {
    let w = world().await;
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let created = subscribe(&w, &receiver.uri(), &["campaign.started", "campaign.paused"]).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    let contacts = w.contacts(2).await;
    let c = w
        .campaign(
            &contacts,
            immediate(),
            json!({"min_interval_seconds": 600, "max_interval_seconds": 600}),
        )
        .await;
    w.start(&c).await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, json!({}))
        .await
        .ok(200);
    let deliverer = Deliverer::new(&w.live_state()).unwrap();
    assert_eq!(
        deliverer
            .step(Utc::now() + chrono::Duration::minutes(1), 100)
            .await
            .unwrap(),
        2
    );
    let got = receiver.received_requests().await.unwrap();
    let mut bodies: Vec<Value> = got.iter().map(|r| verified(r, &secret)).collect();
    bodies.sort_by_key(|b| b["type"].as_str().unwrap().to_owned());
    assert_eq!(
        (bodies[0]["type"].as_str(), bodies[1]["type"].as_str()),
        (Some("campaign.paused"), Some("campaign.started"))
    );
    assert_eq!(bodies[0]["data"]["paused_reason"], "user");
    assert_eq!(bodies[0]["data"]["status"], "paused");
    assert_eq!(bodies[1]["data"]["campaign_id"], c.as_str());
}

#[tokio::test]
async fn a_slow_receiver_only_delays_its_own_deliveries() {
    let w = world().await;
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&slow)
        .await;
    let fast_receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&fast_receiver)
        .await;
    let slow_sub = subscribe(&w, &slow.uri(), &["campaign.started"]).await;
    subscribe(&w, &fast_receiver.uri(), &["campaign.started"]).await;
    let contacts = w.contacts(1).await;
    let c = w
        .campaign(
            &contacts,
            immediate(),
            json!({"min_interval_seconds": 600, "max_interval_seconds": 600}),
        )
        .await;
    w.start(&c).await;
    let shutdown = CancellationToken::new();
    let deliverer = tokio::spawn(Deliverer::new(&w.live_state()).unwrap().run(shutdown.clone()));
    let began = tokio::time::Instant::now();
    while fast_receiver.received_requests().await.unwrap().is_empty() {
        assert!(
            began.elapsed() < Duration::from_millis(1500),
            "the fast receiver waited for the slow one"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The slow one times out (webhooks.timeout_ms is 2 s in test) and is retried later.
    let log = format!(
        "/api/v1/webhook-subscriptions/{}/deliveries",
        slow_sub["id"].as_str().unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let d = w.app.get(&log, &w.t).await.ok(200)["items"][0].clone();
        if d["last_error"].as_str().is_some_and(|e| e.starts_with("timed out")) {
            assert_eq!(d["status"], "pending", "{d}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{d}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    deliverer.await.unwrap().unwrap();
}
