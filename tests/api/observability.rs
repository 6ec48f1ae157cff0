//! Stats, recipients, logs, dashboard, queue, webhooks and instance controls.

use crate::engine::{phone, world, Engine};
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn stats_count_recipients_by_status_and_estimate_the_end() {
    let w = world().await;
    let contacts = w.contacts(4).await;
    w.app
        .patch(
            &format!("/api/v1/contacts/{}", contacts[0]),
            &w.t,
            json!({"opted_out": true}),
        )
        .await
        .ok(200);
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate"}),
            json!({"messages_per_minute": 60}),
        )
        .await;
    let draft = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(draft.ok(200)["total"], 0);
    w.start(&c).await;
    let s = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    let b = s.ok(200);
    assert_eq!(b["status"], "active");
    assert_eq!(b["total"], 4);
    assert_eq!(b["counts"]["pending"], 3);
    assert_eq!(b["counts"]["skipped"], 1, "opted-out contacts are skipped");
    assert!(b["next_send_at"].is_string());
    assert!(b["estimated_completion_at"].is_string());
    for key in ["queued", "sending", "sent", "failed", "cancelled"] {
        assert_eq!(b["counts"][key], 0, "{key}");
    }
    let skipped = w
        .app
        .get(&format!("/api/v1/campaigns/{c}/recipients?status=skipped"), &w.t)
        .await;
    assert_eq!(skipped.ok(200)["items"][0]["reason"], "opted_out");
    assert_eq!(
        w.app
            .get(&format!("/api/v1/campaigns/{c}/recipients?status=nope"), &w.t)
            .await
            .fields(),
        ["status"]
    );
}

#[tokio::test]
async fn receipts_fill_delivered_and_read_and_never_go_backwards() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate"}),
            json!({"min_interval_seconds": 0, "max_interval_seconds": 0}),
        )
        .await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    let message_id = r.body["items"][0]["message_id"].as_str().unwrap().to_owned();
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let receipt = |status: &str| {
        json!({"event": "messages.update", "instance": "loja-1",
               "data": {"keyId": message_id, "remoteJid": format!("{}@s.whatsapp.net", phone(0)), "fromMe": true, "status": status}})
    };
    let post = |body: serde_json::Value| w.app.call(reqwest::Method::POST, &hook, None, Some(body));
    post(receipt("READ")).await.ok(200);
    post(receipt("DELIVERY_ACK")).await.ok(200);
    post(receipt("READ")).await.ok(200);
    let s = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(
        (s.body["delivered"].clone(), s.body["read"].clone()),
        (json!(1), json!(1))
    );
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &w.t).await;
    assert!(r.body["items"][0]["read_at"].is_string());
    w.app
        .call(
            reqwest::Method::POST,
            "/api/v1/webhooks/evolution/not-a-token",
            None,
            Some(receipt("READ")),
        )
        .await
        .problem(404);
    w.app
        .call_raw(
            reqwest::Method::POST,
            &hook,
            None,
            "application/json",
            b"{oops".to_vec(),
        )
        .await
        .problem(400);
}

#[tokio::test]
async fn an_opt_out_reply_skips_the_contact_everywhere() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate"}),
            json!({"messages_per_minute": 1}),
        )
        .await;
    w.start(&c).await;
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let inbound = json!({"event": "messages.upsert", "instance": "loja-1",
        "data": {"key": {"remoteJid": format!("{}@s.whatsapp.net", phone(1)), "fromMe": false, "id": "X1"},
                 "pushName": "Zé", "message": {"conversation": "SAIR"}, "messageType": "conversation"}});
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(inbound))
        .await
        .ok(200);
    let contact = w.app.get(&format!("/api/v1/contacts?q={}", phone(1)), &w.t).await;
    assert!(contact.body["items"][0]["opted_out_at"].is_string());
    let skipped = w
        .app
        .get(&format!("/api/v1/campaigns/{c}/recipients?status=skipped"), &w.t)
        .await;
    assert_eq!(skipped.ok(200)["items"][0]["phone"], phone(1));
}

#[tokio::test]
async fn a_disconnection_event_pauses_the_instances_active_campaign() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate"}),
            json!({"messages_per_minute": 1}),
        )
        .await;
    w.start(&c).await;
    let instance = w.app.get(&format!("/api/v1/instances/{}", w.instance), &w.t).await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let event = json!({"event": "connection.update", "instance": "loja-1", "data": {"instance": "loja-1", "state": "close", "statusReason": 401}});
    w.app
        .call(reqwest::Method::POST, &hook, None, Some(event))
        .await
        .ok(200);
    assert_eq!(w.status(&c).await, "paused");
}

#[tokio::test]
async fn an_instance_reports_its_state_connects_and_logs_out_through_the_gateway() {
    let w = world().await;
    let path = format!("/api/v1/instances/{}", w.instance);
    assert_eq!(w.app.get(&format!("{path}/state"), &w.t).await.ok(200)["state"], "open");
    w.app.post(&format!("{path}/logout"), &w.t, json!({})).await.ok(204);
    assert_eq!(
        w.app.get(&format!("{path}/state"), &w.t).await.ok(200)["state"],
        "close"
    );
    let qr = w.app.post(&format!("{path}/connect"), &w.t, json!({})).await;
    assert!(qr.ok(200)["base64"]
        .as_str()
        .unwrap()
        .starts_with("data:image/png;base64,"));
    let member = w.app.member_of(&w.t, "bia@acme.com").await;
    w.app
        .post(&format!("{path}/logout"), &member, json!({}))
        .await
        .problem(403);
}

#[tokio::test]
async fn the_dashboard_and_queue_describe_the_tenant() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = w
        .campaign(
            &contacts,
            json!({"mode": "immediate"}),
            json!({"messages_per_minute": 1}),
        )
        .await;
    w.start(&c).await;
    let d = w.app.get("/api/v1/dashboard/stats", &w.t).await;
    assert_eq!(d.ok(200)["campaigns"]["active"], 1);
    assert_eq!(d.body["instances"][0]["state"], "open");
    let state = w.live_state();
    arauto::scheduler::Beat::new(&state)
        .tick(chrono::Utc::now())
        .await
        .unwrap();
    let q = w.app.get("/api/v1/queue", &w.t).await;
    assert_eq!(q.ok(200)["queued"], 1, "one send planned this tick at one per minute");
    assert!(q.body["stream_length"].as_u64().unwrap() >= 1);
}

#[tokio::test]
async fn the_next_send_is_the_beats_next_tick_until_it_plans_one_then_the_first_planned() {
    use crate::engine::{immediate, tick_at};
    use chrono::{DateTime, TimeZone, Utc};
    let w = world().await;
    let contacts = w.contacts(3).await;
    let pacing = json!({"min_interval_seconds": 5, "max_interval_seconds": 5});
    let c = w.campaign(&contacts, immediate(), pacing).await;
    let at =
        |s: u32, ms: i64| Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, s).unwrap() + chrono::Duration::milliseconds(ms);
    let t = w.start_on(&c, at(3, 400)).await;
    let next_send_at = || async {
        let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &t).await;
        let at: DateTime<Utc> = stats.ok(200)["next_send_at"].as_str().unwrap().parse().unwrap();
        at
    };
    // Nothing planned yet: the beat's next tick (every second in tests), at every poll, not
    // "now" moving on with each one.
    assert_eq!(next_send_at().await, at(4, 0));
    assert_eq!(next_send_at().await, at(4, 0));
    // The tick at 13:00:06 plans the sends 5 s apart from its instant: the first is next.
    assert!(tick_at(&w, at(6, 0)).await > 0);
    assert_eq!(next_send_at().await, at(6, 0));
}
