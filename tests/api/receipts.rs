//! Receipts are never lost (issue 11): a receipt that reaches the webhook before the send's
//! outcome is recorded — the sandbox posts its DELIVERY_ACK before its own 201, as Evolution
//! can — is kept and applied once the outcome lands; duplicates and reorderings are harmless.

use crate::engine::{fast, immediate, phone, world, Engine, World};
use arauto::scheduler::Beat;
use chrono::Utc;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::time::Duration;

async fn webhook_path(w: &World) -> String {
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    instance.body["webhook_path"].as_str().unwrap().to_owned()
}

async fn post_receipt(w: &World, message_id: &str, status: &str) {
    let receipt = json!({"event": "messages.update", "instance": "loja-1",
        "data": {"keyId": message_id, "remoteJid": format!("{}@s.whatsapp.net", phone(0)), "fromMe": true, "status": status}});
    let hook = webhook_path(w).await;
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(receipt))
        .await
        .ok(200);
}

async fn kept_receipts(w: &World) -> i64 {
    let row = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM early_receipts".to_owned(),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn stats(w: &World, campaign: &str) -> Value {
    w.app
        .get(&format!("/api/v1/campaigns/{campaign}/stats"), &w.t)
        .await
        .ok(200)
        .clone()
}

#[tokio::test]
async fn receipts_the_gateway_posts_before_its_answer_all_count_as_delivered() {
    let w = world().await;
    // The sandbox posts each send's DELIVERY_ACK to Arauto's webhook before answering 201.
    w.sandbox.faults(json!({"receipts_before_answer": true}));
    let url = format!("{}{}", w.app.address, webhook_path(&w).await);
    let set = reqwest::Client::new()
        .post(format!("{}/webhook/set/loja-1", w.sandbox.url))
        .header("apikey", "k")
        .json(&json!({"webhook": {"enabled": true, "url": url, "events": ["MESSAGES_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success(), "{}", set.text().await.unwrap());
    let contacts = w.contacts(20).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while stats(&w, &c).await["delivered"] != 20 {
        assert!(tokio::time::Instant::now() < deadline, "{}", stats(&w, &c).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stop().await;
    assert_eq!(w.sandbox.state.send_count(), 20);
    assert_eq!(kept_receipts(&w).await, 0, "every kept receipt found its message");
    // A/B results: the two variants alternate, each with its own counts and rates.
    let texts: Vec<String> = w.sandbox.state.sends(None).into_iter().filter_map(|s| s.text).collect();
    let b_sent = texts.iter().filter(|t| t.contains("variante B")).count();
    assert_eq!(b_sent, 10, "{texts:?}");
    let s = stats(&w, &c).await;
    for (i, v) in s["variants"].as_array().unwrap().iter().enumerate() {
        assert_eq!(v["index"], i);
        assert_eq!(
            (v["sent"].clone(), v["delivered"].clone()),
            (json!(10), json!(10)),
            "{s}"
        );
        assert_eq!(v["delivery_rate"], 1.0);
        assert_eq!(v["failure_rate"], 0.0);
        assert!(v["reply_rate"] == 0.0 && v["read_rate"] == 0.0, "{v}");
    }
}

#[tokio::test]
async fn a_receipt_for_an_unknown_message_is_kept_then_applied_and_never_goes_backwards() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    // READ, then a duplicate and a late DELIVERY_ACK, all before the message is known.
    post_receipt(&w, "3EB0EARLY", "READ").await;
    post_receipt(&w, "3EB0EARLY", "READ").await;
    post_receipt(&w, "3EB0EARLY", "DELIVERY_ACK").await;
    assert_eq!(kept_receipts(&w).await, 1);
    // The send's outcome lands (here as the record of a send that named that message).
    w.app
        .db
        .execute_unprepared(&format!(
            "UPDATE recipients SET status = 'sent', sent_at = now(), message_id = '3EB0EARLY' WHERE campaign_id = '{c}'"
        ))
        .await
        .unwrap();
    Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    let s = stats(&w, &c).await;
    assert_eq!((s["delivered"].clone(), s["read"].clone()), (json!(1), json!(1)), "{s}");
    assert_eq!(kept_receipts(&w).await, 0);
    // A late DELIVERY_ACK after READ changes nothing.
    post_receipt(&w, "3EB0EARLY", "DELIVERY_ACK").await;
    let s = stats(&w, &c).await;
    assert_eq!((s["delivered"].clone(), s["read"].clone()), (json!(1), json!(1)), "{s}");
}

#[tokio::test]
async fn kept_receipts_that_never_find_their_message_go_after_a_day() {
    let w = world().await;
    post_receipt(&w, "3EB0NEVER", "DELIVERY_ACK").await;
    Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    assert_eq!(kept_receipts(&w).await, 1, "kept for a day");
    Beat::new(&w.live_state())
        .tick(Utc::now() + chrono::Duration::hours(25))
        .await
        .unwrap();
    assert_eq!(kept_receipts(&w).await, 0);
}

async fn post_reply(w: &World, hook: &str, i: usize, text: &str) {
    let inbound = json!({"event": "messages.upsert", "instance": "loja-1",
        "data": {"key": {"remoteJid": format!("{}@s.whatsapp.net", phone(i)), "fromMe": false, "id": format!("IN{i}{text}")},
                 "pushName": "Zé", "message": {"conversation": text}, "messageType": "conversation"}});
    w.app
        .call(reqwest::Method::POST, hook, None, Some(inbound))
        .await
        .ok(200);
}

#[tokio::test]
async fn a_reply_counts_once_for_the_latest_send_to_that_phone_within_seven_days() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    let hook = webhook_path(&w).await;
    post_reply(&w, &hook, 0, "Obrigado!").await;
    post_reply(&w, &hook, 0, "Quero sim").await;
    let s = stats(&w, &c).await;
    assert_eq!(
        (s["replied"].clone(), s["reply_rate"].clone()),
        (json!(1), json!(0.5)),
        "{s}"
    );
    let replied: Vec<bool> = recipients(&w, &c)
        .await
        .iter()
        .map(|r| r["replied_at"].is_string())
        .collect();
    assert_eq!(replied.iter().filter(|r| **r).count(), 1, "the list shows who replied");
    // Eight days later a message from the other contact answers nothing of this campaign.
    let later = w.app.travel(&w.t, Utc::now() + chrono::Duration::days(8)).await;
    post_reply(&w, &hook, 1, "Oi?").await;
    let s = w
        .app
        .get(&format!("/api/v1/campaigns/{c}/stats"), &later)
        .await
        .ok(200)
        .clone();
    assert_eq!(s["replied"], 1, "{s}");
}

async fn recipients(w: &World, campaign: &str) -> Vec<Value> {
    let r = w
        .app
        .get(&format!("/api/v1/campaigns/{campaign}/recipients"), &w.t)
        .await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

#[tokio::test]
async fn an_error_receipt_after_the_gateways_201_fails_the_send_as_failed_after_send() {
    let w = world().await;
    // Receipts leave after the 201 (the default), ERROR for one number.
    w.sandbox
        .faults(json!({"error_receipts": [phone(1)], "receipt_delay_ms": 20}));
    let url = format!("{}{}", w.app.address, webhook_path(&w).await);
    let set = reqwest::Client::new()
        .post(format!("{}/webhook/set/loja-1", w.sandbox.url))
        .header("apikey", "k")
        .json(&json!({"webhook": {"enabled": true, "url": url, "events": ["MESSAGES_UPDATE"]}}))
        .send()
        .await
        .unwrap();
    assert!(set.status().is_success());
    let contacts = w.contacts(3).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let s = stats(&w, &c).await;
        if s["failed_after_send"] == 1 && s["delivered"] == 2 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    engine.stop().await;
    assert_eq!(
        w.sandbox.state.send_count(),
        3,
        "all three were accepted by the gateway"
    );
    let s = stats(&w, &c).await;
    assert_eq!(
        (s["counts"]["sent"].clone(), s["counts"]["failed"].clone()),
        (json!(2), json!(1)),
        "{s}"
    );
    let failed = recipients(&w, &c)
        .await
        .into_iter()
        .find(|r| r["phone"] == phone(1).as_str())
        .unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["failed_after_send"], true, "{failed}");
    assert!(failed["reason"].as_str().unwrap().contains("ERROR"), "{failed}");
    assert!(failed["message_id"].is_string());
    // A duplicate ERROR changes nothing; a delivery receipt arriving late (reordered)
    // proves the message arrived after all.
    let id = failed["message_id"].as_str().unwrap().to_owned();
    post_receipt(&w, &id, "ERROR").await;
    assert_eq!(stats(&w, &c).await["failed_after_send"], 1);
    post_receipt(&w, &id, "DELIVERY_ACK").await;
    let s = stats(&w, &c).await;
    assert_eq!(
        (
            s["failed_after_send"].clone(),
            s["counts"]["sent"].clone(),
            s["delivered"].clone()
        ),
        (json!(0), json!(3), json!(3)),
        "{s}"
    );
}

#[tokio::test]
async fn an_error_receipt_before_the_outcome_is_kept_and_applied_with_it() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    post_receipt(&w, "3EB0EARLYERR", "ERROR").await;
    assert_eq!(kept_receipts(&w).await, 1);
    w.app
        .db
        .execute_unprepared(&format!(
            "UPDATE recipients SET status = 'sent', sent_at = now(), message_id = '3EB0EARLYERR' WHERE campaign_id = '{c}'"
        ))
        .await
        .unwrap();
    Beat::new(&w.live_state()).tick(Utc::now()).await.unwrap();
    let s = stats(&w, &c).await;
    assert_eq!(
        (s["failed_after_send"].clone(), s["counts"]["failed"].clone()),
        (json!(1), json!(1)),
        "{s}"
    );
    assert_eq!(kept_receipts(&w).await, 0);
}
