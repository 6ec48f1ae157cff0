//! One-off messages (the transactional path): sent by the campaign engine — due-time queue,
//! phone lock, pacing, the instance's daily limit shared with its campaigns, at most once,
//! receipts and replies — with `Idempotency-Key`, per-item bulk answers, opt-out refusal
//! and tenant isolation. Real Postgres, Redis and the sandbox over HTTP.

use crate::engine::{fast, immediate, phone, world, Engine, World};
use crate::helpers::{Resp, Tenant};
use arauto::clock::{Clock, FixedClock, SharedClock};
use arauto::scheduler::Beat;
use chrono::{DateTime, SubsecRound, Utc};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn send(w: &World, t: &Tenant, body: Value, key: Option<&str>) -> Resp {
    send_to(w, t, "/api/v1/messages", body, key).await
}

async fn send_to(w: &World, t: &Tenant, path: &str, body: Value, key: Option<&str>) -> Resp {
    let mut req = w
        .app
        .http
        .post(format!("{}{path}", w.app.address))
        .bearer_auth(&t.token)
        .json(&body);
    if let Some(k) = key {
        req = req.header("Idempotency-Key", k);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = res.json().await.unwrap_or(Value::Null);
    Resp {
        status,
        content_type,
        body,
    }
}

fn hello(w: &World, i: usize) -> Value {
    json!({"instance_id": w.instance, "phone": phone(i), "text": "Olá {{nome|cliente}}, seu código é {{codigo}}",
           "variables": {"codigo": "123456"}})
}

async fn message(w: &World, t: &Tenant, id: &str) -> Value {
    w.app.get(&format!("/api/v1/messages/{id}"), t).await.ok(200).clone()
}

/// Waits (polling, at most 20 s) until the sandbox recorded `n` sends.
async fn wait_for_sends(w: &World, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.sandbox.state.send_count() < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sandbox saw {} sends, wanted {n}",
            w.sandbox.state.send_count()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (polling, at most 20 s) until message `id` has `status`.
async fn wait_for_status(w: &World, t: &Tenant, id: &str, status: &str) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = message(w, t, id).await;
        if m["status"] == status {
            return m;
        }
        assert!(tokio::time::Instant::now() < deadline, "message still {m}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Points the sandbox's `loja-1` receipts (`MESSAGES_UPDATE`) at the instance's webhook;
/// returns the webhook's path.
async fn receipts_to_arauto(w: &World) -> String {
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let set = reqwest::Client::new()
        .post(format!("{}/webhook/set/loja-1", w.sandbox.url))
        .header("apikey", "k")
        .json(&json!({"webhook": {"enabled": true, "url": format!("{}{hook}", w.app.address), "events": ["MESSAGES_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    hook
}

/// A beat at `at` (its clock fixed there) ticks once.
async fn tick_at(w: &World, at: DateTime<Utc>) -> arauto::scheduler::TickReport {
    let clock: SharedClock = Arc::new(FixedClock::at(at));
    Beat::new(&w.app.engine_state(w.settings(), clock))
        .tick(at)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_message_is_sent_once_at_the_sandbox_with_its_variables_and_reported_sent() {
    let w = world().await;
    let r = send(&w, &w.t, hello(&w, 0), None).await;
    let accepted = r.ok(202).clone();
    assert_eq!(accepted["status"], "pending");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    wait_for_sends(&w, 1).await;
    let m = wait_for_status(&w, &w.t, &id, "sent").await;
    // Another tick and a while later: still one request at the gateway.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.stop().await;
    let sends = w.sandbox.state.sends(None);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].number, phone(0));
    assert_eq!(sends[0].text.as_deref(), Some("Olá cliente, seu código é 123456"));
    assert_eq!(m["rendered"], "Olá cliente, seu código é 123456");
    assert!(m["message_id"].is_string() && m["sent_at"].is_string(), "{m}");
    assert_eq!(m["attempts"], 1);
    let listed = w.app.get("/api/v1/messages?status=sent", &w.t).await;
    assert_eq!(listed.ok(200)["total"], 1);
    assert_eq!(listed.body["items"][0]["id"], id.as_str());
    // The dashboard counts it with the campaigns' sends.
    let d = w.app.get("/api/v1/dashboard/stats", &w.t).await;
    assert_eq!(d.ok(200)["messages_today"]["sent"], 1, "{}", d.body);
    assert_eq!(d.body["messages_7_days"]["sent"], 1, "{}", d.body);
}

#[tokio::test]
async fn a_message_with_send_at_in_the_future_waits_for_it() {
    let w = world().await;
    let now = w.app.clock.now();
    let at = (now + chrono::Duration::hours(1)).trunc_subsecs(0);
    let mut body = hello(&w, 0);
    body["send_at"] = json!(at);
    let id = send(&w, &w.t, body, None).await.id();
    assert_eq!(tick_at(&w, now).await.messages, 0);
    assert_eq!(tick_at(&w, at - chrono::Duration::minutes(1)).await.messages, 0);
    assert_eq!(message(&w, &w.t, &id).await["status"], "pending");
    assert_eq!(tick_at(&w, at).await.messages, 1);
    // A worker whose clock is at that hour sends it.
    let clock: SharedClock = Arc::new(FixedClock::at(at + chrono::Duration::seconds(1)));
    let engine = Engine::start(&w.app.engine_state(w.settings(), clock), 0, 1).await;
    wait_for_sends(&w, 1).await;
    let m = wait_for_status(&w, &w.t, &id, "sent").await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 1);
    assert_eq!(m["send_at"], json!(at));
}

#[tokio::test]
async fn a_message_cancelled_before_it_leaves_is_never_sent_and_cannot_be_cancelled_twice() {
    let w = world().await;
    let now = w.app.clock.now();
    let at = (now + chrono::Duration::hours(1)).trunc_subsecs(0);
    let mut body = hello(&w, 0);
    body["send_at"] = json!(at);
    let waiting = send(&w, &w.t, body, None).await.id();
    // Queued at once (planned by its own request), then cancelled.
    let queued = send(&w, &w.t, hello(&w, 1), None).await.id();
    assert_eq!(message(&w, &w.t, &queued).await["status"], "queued");
    for id in [&waiting, &queued] {
        let r = w
            .app
            .post(&format!("/api/v1/messages/{id}/cancel"), &w.t, json!({}))
            .await;
        assert_eq!(r.ok(200)["status"], "cancelled");
    }
    // Its hour comes and workers run: nothing leaves.
    assert_eq!(tick_at(&w, at).await.messages, 0);
    let clock: SharedClock = Arc::new(FixedClock::at(at + chrono::Duration::seconds(1)));
    let engine = Engine::start(&w.app.engine_state(w.settings(), clock), 0, 1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 0);
    let again = w
        .app
        .post(&format!("/api/v1/messages/{waiting}/cancel"), &w.t, json!({}))
        .await;
    assert_eq!(again.problem(409)["current_status"], "cancelled");
    let listed = w.app.get("/api/v1/messages?status=cancelled", &w.t).await;
    assert_eq!(listed.ok(200)["total"], 2);
    let other = w.app.signup("Outra").await;
    w.app
        .post(&format!("/api/v1/messages/{waiting}/cancel"), &other, json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn a_message_not_sent_by_its_expiry_fails_as_expired_and_never_leaves() {
    let w = world().await;
    let now = w.app.clock.now().trunc_subsecs(0);
    let (at, expires) = (now + chrono::Duration::hours(1), now + chrono::Duration::hours(2));
    let mut body = hello(&w, 0);
    body["send_at"] = json!(at);
    body["expires_at"] = json!(now + chrono::Duration::minutes(30));
    assert_eq!(send(&w, &w.t, body.clone(), None).await.fields(), ["expires_at"]);
    body["expires_at"] = json!(expires);
    let id = send(&w, &w.t, body, None).await.id();
    assert_eq!(message(&w, &w.t, &id).await["expires_at"], json!(expires));
    // Every beat was down until after its expiry: it is not sent late.
    let late = expires + chrono::Duration::seconds(1);
    let report = tick_at(&w, late).await;
    assert_eq!((report.expired_messages, report.messages), (1, 0));
    let m = message(&w, &w.t, &id).await;
    assert_eq!(
        (m["status"].clone(), m["reason"].clone()),
        (json!("failed"), json!("expired"))
    );
    let clock: SharedClock = Arc::new(FixedClock::at(late));
    let engine = Engine::start(&w.app.engine_state(w.settings(), clock), 0, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 0);
}

#[tokio::test]
async fn an_idempotent_replay_answers_the_first_answer_and_sends_nothing_new() {
    let w = world().await;
    let first = send(&w, &w.t, hello(&w, 0), Some("order-42")).await;
    let first_body = first.ok(202).clone();
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    wait_for_sends(&w, 1).await;
    wait_for_status(&w, &w.t, first_body["id"].as_str().unwrap(), "sent").await;
    // The same key and body, with keys in another order: the first answer, word for word.
    let body = hello(&w, 0);
    let reordered: Value = serde_json::from_str(&body.to_string()).unwrap();
    let again = send(&w, &w.t, reordered, Some("order-42")).await;
    assert_eq!(again.ok(202), &first_body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 1, "the replay sent nothing");
    assert_eq!(w.app.get("/api/v1/messages", &w.t).await.ok(200)["total"], 1);
    // The same key from another tenant is another key.
    let other = w.app.signup("Outra").await;
    let theirs = w.instance_for(&other, "loja-2").await;
    let mut body = hello(&w, 0);
    body["instance_id"] = json!(theirs);
    let r = send(&w, &other, body, Some("order-42")).await;
    assert_ne!(r.ok(202)["id"], first_body["id"]);
    // After 24 hours the key may be used again, for a new message.
    let later = w.app.travel(&w.t, Utc::now() + chrono::Duration::hours(25)).await;
    let fresh = send(&w, &later, hello(&w, 0), Some("order-42")).await;
    assert_ne!(fresh.ok(202)["id"], first_body["id"]);
}

#[tokio::test]
async fn the_same_key_with_another_body_is_refused_with_422() {
    let w = world().await;
    send(&w, &w.t, hello(&w, 0), Some("k-1")).await.ok(202);
    let r = send(&w, &w.t, hello(&w, 1), Some("k-1")).await;
    assert_eq!(r.fields(), ["Idempotency-Key"]);
    // The same body through the bulk route is another request too.
    let r = send_to(
        &w,
        &w.t,
        "/api/v1/messages/bulk",
        json!({"messages": [hello(&w, 0)]}),
        Some("k-1"),
    )
    .await;
    assert_eq!(r.fields(), ["Idempotency-Key"]);
    for bad in ["", &"x".repeat(256)] {
        let r = send(&w, &w.t, hello(&w, 2), Some(bad)).await;
        assert_eq!(r.fields(), ["Idempotency-Key"], "{bad:?}");
    }
    assert_eq!(w.app.get("/api/v1/messages", &w.t).await.ok(200)["total"], 1);
}

#[tokio::test]
async fn a_bulk_answers_each_item_and_sends_only_the_good_ones() {
    let w = world().await;
    let other = w.app.signup("Outra").await;
    let theirs = w.instance_for(&other, "loja-2").await;
    let items = json!([
        hello(&w, 0),
        {"instance_id": w.instance, "phone": "não é telefone", "text": "x"},
        {"instance_id": w.instance, "phone": phone(2), "text": "x", "colour": "blue"},
        hello(&w, 3),
        {"instance_id": theirs, "phone": phone(4), "text": "x"},
        {"instance_id": w.instance, "phone": phone(5), "text": "Oi {{sem_valor}}"},
        {"instance_id": w.instance, "phone": phone(6), "text": 7},
    ]);
    let r = send_to(&w, &w.t, "/api/v1/messages/bulk", json!({"messages": items}), None).await;
    let b = r.ok(202).clone();
    assert_eq!(
        (b["accepted"].clone(), b["rejected"].clone()),
        (json!(2), json!(5)),
        "{b}"
    );
    let items = b["items"].as_array().unwrap();
    let field = |i: usize| items[i]["error"]["errors"][0]["field"].as_str().unwrap().to_owned();
    assert_eq!(items[0]["status"], "pending");
    assert_eq!(items[1]["error"]["status"], 422);
    assert_eq!(field(1), "messages[1].phone");
    assert_eq!(field(2), "messages[2].colour");
    assert_eq!(items[3]["status"], "pending");
    assert_eq!(
        field(4),
        "messages[4].instance_id",
        "another tenant's instance is no instance"
    );
    assert_eq!(field(5), "messages[5].text");
    assert_eq!(field(6), "messages[6].text");
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    wait_for_sends(&w, 2).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    engine.stop().await;
    let mut numbers: Vec<String> = w.sandbox.state.sends(None).into_iter().map(|s| s.number).collect();
    numbers.sort();
    assert_eq!(numbers, [phone(0), phone(3)]);
    // Too many or none at all: the whole request is refused.
    let many: Vec<Value> = (0..1001).map(|i| hello(&w, i)).collect();
    let r = send_to(&w, &w.t, "/api/v1/messages/bulk", json!({"messages": many}), None).await;
    assert_eq!(r.fields(), ["messages"]);
    let r = send_to(&w, &w.t, "/api/v1/messages/bulk", json!({"messages": []}), None).await;
    assert_eq!(r.fields(), ["messages"]);
}

#[tokio::test]
async fn an_opted_out_contact_is_409_unless_an_admin_sends_a_transactional_message() {
    let w = world().await;
    let contact = w.app.create_contact(&w.t, &phone(0), "Ana Souza").await;
    w.app
        .patch(&format!("/api/v1/contacts/{contact}"), &w.t, json!({"opted_out": true}))
        .await
        .ok(200);
    let r = send(&w, &w.t, hello(&w, 0), None).await;
    assert!(r.problem(409)["detail"].as_str().unwrap().contains("opted out"));
    // In any notation.
    let mut typed = hello(&w, 0);
    typed["phone"] = json!("+55 (11) 91000-0000");
    send(&w, &w.t, typed, None).await.problem(409);
    let member = w.app.member_of(&w.t, "bia@example.com").await;
    let mut transactional = hello(&w, 0);
    transactional["transactional"] = json!(true);
    send(&w, &member, transactional.clone(), None).await.problem(403);
    // A member may send ordinary messages.
    send(&w, &member, hello(&w, 1), None).await.ok(202);
    let id = send(&w, &w.t, transactional, None).await.ok(202)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    let m = wait_for_status(&w, &w.t, &id, "sent").await;
    wait_for_sends(&w, 2).await;
    engine.stop().await;
    assert_eq!(m["transactional"], true);
    // Rendered with the contact's name.
    let to_ana: Vec<_> = w
        .sandbox
        .state
        .sends(None)
        .into_iter()
        .filter(|s| s.number == phone(0))
        .collect();
    assert_eq!(to_ana.len(), 1);
    assert_eq!(to_ana[0].text.as_deref(), Some("Olá Ana, seu código é 123456"));
}

#[tokio::test]
async fn a_message_to_a_contact_who_opts_out_before_it_leaves_is_skipped() {
    let w = world().await;
    let contact = w.app.create_contact(&w.t, &phone(0), "Ana").await;
    let id = send(&w, &w.t, hello(&w, 0), None).await.id();
    w.app
        .patch(&format!("/api/v1/contacts/{contact}"), &w.t, json!({"opted_out": true}))
        .await
        .ok(200);
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    let m = wait_for_status(&w, &w.t, &id, "skipped").await;
    engine.stop().await;
    assert_eq!(m["reason"], "opted_out");
    assert_eq!(w.sandbox.state.send_count(), 0);
}

#[tokio::test]
async fn the_daily_limit_is_shared_by_campaigns_and_one_off_messages() {
    let w = world().await;
    w.app
        .patch(
            &format!("/api/v1/instances/{}", w.instance),
            &w.t,
            json!({"daily_limit": 3}),
        )
        .await
        .ok(200);
    // Two one-off messages take two of the day's three sends.
    let first = send(&w, &w.t, hello(&w, 10), None).await.id();
    let second = send(&w, &w.t, hello(&w, 11), None).await.id();
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let now = Utc::now();
    let report = tick_at(&w, now).await;
    assert_eq!(report.queued, 1, "the campaign gets what the messages left: {report:?}");
    // The day is used up: a third message waits for the next local day.
    let third = send(&w, &w.t, hello(&w, 12), None).await.id();
    tick_at(&w, now + chrono::Duration::seconds(1)).await;
    let engine = Engine::start(&w.live_state(), 0, 2).await;
    wait_for_sends(&w, 3).await;
    wait_for_status(&w, &w.t, &first, "sent").await;
    wait_for_status(&w, &w.t, &second, "sent").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 3);
    let waiting = message(&w, &w.t, &third).await;
    assert_eq!(waiting["status"], "pending", "{waiting}");
    assert_eq!(w.counts(&c).await.get("sent"), Some(&1));
    assert_eq!(tick_at(&w, now + chrono::Duration::seconds(5)).await.queued, 0);
}

#[tokio::test]
async fn receipts_before_the_outcome_and_replies_reach_the_latest_send_to_the_phone() {
    let w = world().await;
    // The sandbox posts each send's DELIVERY_ACK before its own 201.
    let hook = receipts_to_arauto(&w).await;
    // A campaign reaches the phone first, then a one-off message.
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    let id = send(&w, &w.t, hello(&w, 0), None).await.id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let m = loop {
        let m = message(&w, &w.t, &id).await;
        if m["delivered_at"].is_string() {
            break m;
        }
        assert!(tokio::time::Instant::now() < deadline, "no receipt applied: {m}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    engine.stop().await;
    assert_eq!(m["status"], "sent");
    let inbound = json!({"event": "messages.upsert", "instance": "loja-1",
        "data": {"key": {"remoteJid": format!("{}@s.whatsapp.net", phone(0)), "fromMe": false, "id": "IN1"},
                 "pushName": "Zé", "message": {"conversation": "Obrigado!"}, "messageType": "conversation"}});
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(inbound))
        .await
        .ok(200);
    assert!(message(&w, &w.t, &id).await["replied_at"].is_string());
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["replied"], 0, "the reply answers the later message");
}

#[tokio::test]
async fn an_error_receipt_after_the_gateways_201_fails_the_message_as_failed_after_send() {
    let w = world().await;
    let hook = receipts_to_arauto(&w).await;
    // The gateway accepts the send (201) and then reports ERROR for it.
    w.sandbox
        .faults(json!({"error_receipts": [phone(1)], "receipt_delay_ms": 20}));
    let id = send(&w, &w.t, hello(&w, 1), None).await.id();
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    let failed = wait_for_status(&w, &w.t, &id, "failed").await;
    engine.stop().await;
    assert_eq!(failed["failed_after_send"], true, "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("ERROR"), "{failed}");
    assert_eq!(w.sandbox.state.send_count(), 1, "never resent");
    // A delivery receipt arriving after it (reordered) proves it arrived after all.
    let late = json!({"event": "messages.update", "instance": "loja-1",
        "data": {"keyId": failed["message_id"], "remoteJid": format!("{}@s.whatsapp.net", phone(1)), "fromMe": true, "status": "DELIVERY_ACK"}});
    w.app.call(reqwest::Method::POST, &hook, None, Some(late)).await.ok(200);
    let m = message(&w, &w.t, &id).await;
    assert_eq!(m["status"], "sent", "{m}");
    assert_eq!(m["failed_after_send"], false, "{m}");
}

#[tokio::test]
async fn another_tenants_messages_are_404_and_unlisted() {
    let w = world().await;
    let id = send(&w, &w.t, hello(&w, 0), None).await.id();
    let other = w.app.signup("Outra").await;
    w.app.get(&format!("/api/v1/messages/{id}"), &other).await.problem(404);
    w.app
        .get(&format!("/api/v1/messages/{}", uuid::Uuid::new_v4()), &w.t)
        .await
        .problem(404);
    assert_eq!(w.app.get("/api/v1/messages", &other).await.ok(200)["total"], 0);
    // Their phone filter finds nothing either; ours finds it in any notation.
    let mine = w.app.get("/api/v1/messages?phone=(11)%2091000-0000", &w.t).await;
    assert_eq!(mine.ok(200)["total"], 1);
    let r = send(&w, &other, hello(&w, 0), None).await;
    assert_eq!(r.fields(), ["instance_id"]);
}

#[tokio::test]
async fn the_list_walks_newest_first_by_cursor() {
    let w = world().await;
    let mut ids = vec![];
    for i in 0..5 {
        w.app.clock.advance(chrono::Duration::seconds(1));
        let mut body = hello(&w, i);
        body["send_at"] = json!(Utc::now() + chrono::Duration::days(1));
        ids.push(send(&w, &w.t, body, None).await.id());
    }
    ids.reverse();
    let mut seen = vec![];
    let mut url = "/api/v1/messages?per_page=2".to_owned();
    loop {
        let page = w.app.get(&url, &w.t).await.ok(200).clone();
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/messages?per_page=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(
        w.app.get("/api/v1/messages?status=queued", &w.t).await.ok(200)["total"],
        0
    );
}

#[tokio::test]
async fn bad_input_is_a_4xx_naming_the_field_and_writes_nothing() {
    let w = world().await;
    let cases = [
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "a\u{0}b"}),
            "text",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "x".repeat(4097)}),
            "text",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "priority": 1}),
            "priority",
        ),
        (json!({"instance_id": w.instance, "text": "oi"}), "phone"),
        (
            json!({"instance_id": "nope", "phone": phone(0), "text": "oi"}),
            "instance_id",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "send_at": "amanhã"}),
            "send_at",
        ),
        (json!({"instance_id": w.instance, "phone": phone(0)}), "text"),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "template_id": uuid::Uuid::new_v4()}),
            "template_id",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "template_id": uuid::Uuid::new_v4()}),
            "template_id",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "variables": {"a": [1]}}),
            "variables.a",
        ),
        (
            json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "media": {"type": "image", "url": "ftp://x"}}),
            "media.url",
        ),
    ];
    for (body, field) in cases {
        let r = send(&w, &w.t, body.clone(), None).await;
        assert_eq!(r.fields(), [field], "{body}");
    }
    let r = w
        .app
        .call_raw(
            reqwest::Method::POST,
            "/api/v1/messages",
            Some(&w.t.token),
            "application/json",
            b"{\"phone\":".to_vec(),
        )
        .await;
    r.problem(400);
    let huge = json!({"instance_id": w.instance, "phone": phone(0), "text": "oi", "variables": {"v": "x".repeat(1000)}, "pad": vec!["y".repeat(1000); 300]});
    send(&w, &w.t, huge, None).await.problem(413);
    assert_eq!(
        w.app.get("/api/v1/messages?status=bogus", &w.t).await.fields(),
        ["status"]
    );
    assert_eq!(w.app.get("/api/v1/messages?phone=abc", &w.t).await.fields(), ["phone"]);
    assert_eq!(
        w.app.get("/api/v1/messages?cursor=zzz", &w.t).await.fields(),
        ["cursor"]
    );
    assert_eq!(
        w.app.get("/api/v1/messages", &w.t).await.ok(200)["total"],
        0,
        "nothing half-written"
    );
    // A template's text and media, rendered with the variables.
    let t = w
        .app
        .post(
            "/api/v1/templates",
            &w.t,
            json!({"name": "Código", "text": "Código: {{codigo}}"}),
        )
        .await
        .id();
    let r = send(
        &w,
        &w.t,
        json!({"instance_id": w.instance, "phone": phone(0), "template_id": t, "variables": {"codigo": 9}}),
        None,
    )
    .await;
    r.ok(202);
    let r = send(
        &w,
        &w.t,
        json!({"instance_id": w.instance, "phone": phone(0), "template_id": t}),
        None,
    )
    .await;
    assert_eq!(r.fields(), ["template_id"], "a variable without a value");
}
