//! Number pools with a sticky sender (PRODUCT §4, issue 12), measured where the user sees
//! it: which number each request reached the gateway on, and when (the sandbox's record).

use crate::engine::{assert_each_sent_once, fast, immediate, tick_at, world, Engine, World};
use chrono::{DateTime, TimeZone, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;

/// Clock granularity and the sandbox's own timestamping: the only slack allowed under a
/// minimum interval.
const GRANULARITY_MS: i64 = 3;

/// A campaign of `contacts` over the pool `numbers`.
async fn pool_campaign(w: &World, numbers: &[&str], contacts: &[String], pacing: Value) -> String {
    let body = json!({
        "name": "Pool", "instance_ids": numbers,
        "messages": [{"text": "Oi {{nome}}, variante A"}, {"text": "Olá {{nome}}, variante B"}],
        "audience": {"contact_ids": contacts}, "schedule": immediate(), "pacing": pacing
    });
    w.app.post("/api/v1/campaigns", &w.t, body).await.id()
}

/// `loja-1` (the world's) and `extra` more sandbox numbers `loja-2`, …; their ids in order.
async fn numbers(w: &World, extra: usize) -> Vec<String> {
    let mut ids = vec![w.instance.clone()];
    for i in 0..extra {
        ids.push(w.instance_for(&w.t, &format!("loja-{}", i + 2)).await);
    }
    ids
}

fn refs(ids: &[String]) -> Vec<&str> {
    ids.iter().map(String::as_str).collect()
}

/// The gateway's record: each phone and the number (instance name) that sent to it.
fn sender_by_phone(w: &World) -> HashMap<String, String> {
    w.sandbox
        .state
        .sends(None)
        .into_iter()
        .map(|s| (s.number, s.instance))
        .collect()
}

/// When each request to `instance` reached the gateway, in order.
fn arrivals_on(w: &World, instance: &str) -> Vec<DateTime<Utc>> {
    let mut times: Vec<DateTime<Utc>> = w
        .sandbox
        .state
        .sends(Some(instance))
        .iter()
        .map(|s| s.at.parse().unwrap())
        .collect();
    times.sort();
    times
}

/// Recipients of the campaign per number (as stored on each recipient).
async fn planned_per_number(w: &World, campaign: &str) -> HashMap<String, i64> {
    let rows = w
        .app
        .db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT instance_id::text AS i, count(*) AS n FROM recipients \
                 WHERE campaign_id = '{campaign}' AND instance_id IS NOT NULL GROUP BY instance_id"
            ),
        ))
        .await
        .unwrap();
    rows.into_iter()
        .map(|r| {
            (
                r.try_get::<String>("", "i").unwrap(),
                r.try_get::<i64>("", "n").unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn three_numbers_at_one_a_second_each_keep_the_pace_and_send_three_times_as_fast() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(90).await;
    let c = pool_campaign(
        &w,
        &refs(&pool),
        &contacts,
        json!({"min_interval_seconds": 1, "max_interval_seconds": 1}),
    )
    .await;
    assert_eq!(w.start(&c).await["status"], "active");
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(75)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 90);
    let mut first_and_last = vec![];
    for name in ["loja-1", "loja-2", "loja-3"] {
        let times = arrivals_on(&w, name);
        assert!(
            (25..=35).contains(&times.len()),
            "{name} sent {} of 90: the load is not shared",
            times.len()
        );
        let gaps: Vec<i64> = times.windows(2).map(|p| (p[1] - p[0]).num_milliseconds()).collect();
        let short: Vec<_> = gaps.iter().filter(|g| **g < 1_000 - GRANULARITY_MS).collect();
        assert!(
            short.is_empty(),
            "{name}: gaps under 1 s at the gateway: {short:?} of {gaps:?}"
        );
        first_and_last.extend([times[0], times[times.len() - 1]]);
    }
    // One number alone would take 89 s; three take about a third of that.
    let span = *first_and_last.iter().max().unwrap() - *first_and_last.iter().min().unwrap();
    assert!(
        span < chrono::Duration::seconds(45),
        "90 sends over 3 numbers took {span}"
    );
}

#[tokio::test]
async fn a_recipient_is_sent_from_the_number_that_messaged_it_last_time() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(12).await;
    let first = pool_campaign(&w, &refs(&pool), &contacts, fast()).await;
    w.start(&first).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&first, "completed", Duration::from_secs(30)).await;
    let before = sender_by_phone(&w);
    assert_eq!(before.len(), 12);
    let used: std::collections::HashSet<&String> = before.values().collect();
    assert_eq!(
        used.len(),
        3,
        "the first campaign spreads over the three numbers: {before:?}"
    );
    w.sandbox.state.clear_sends();
    // The second campaign lists the numbers in another order and the contacts reversed.
    let mut reordered = pool.clone();
    reordered.reverse();
    let mut reversed = contacts.clone();
    reversed.reverse();
    let second = pool_campaign(&w, &refs(&reordered), &reversed, fast()).await;
    w.start(&second).await;
    w.wait_for_status(&second, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let after = sender_by_phone(&w);
    assert_eq!(after, before, "every recipient hears from the same number again");
}

#[tokio::test]
async fn a_number_that_disconnects_mid_run_hands_its_share_to_the_others_without_pausing() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let contacts = w.contacts(20).await;
    let c = pool_campaign(
        &w,
        &refs(&pool),
        &contacts,
        json!({"min_interval_seconds": 0.2, "max_interval_seconds": 0.2}),
    )
    .await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while arrivals_on(&w, "loja-2").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "loja-2 never sent");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    w.sandbox.faults(json!({"disconnected": ["loja-2"]}));
    w.wait_for_status(&c, "completed", Duration::from_secs(40)).await;
    engine.stop().await;
    assert_each_sent_once(&w, 20);
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("sent"), Some(&20), "{counts:?}");
    let campaign = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await;
    assert_eq!(campaign.body["paused_reason"], Value::Null);
    // What the gateway accepted on loja-2 was before it closed; loja-1 sent the rest.
    assert!(arrivals_on(&w, "loja-1").len() >= 10);
}

#[tokio::test]
async fn a_pool_pauses_only_when_none_of_its_numbers_is_connected() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let contacts = w.contacts(6).await;
    let c = pool_campaign(
        &w,
        &refs(&pool),
        &contacts,
        json!({"min_interval_seconds": 0.5, "max_interval_seconds": 0.5}),
    )
    .await;
    w.start(&c).await;
    w.sandbox.faults(json!({"disconnected": ["loja-1", "loja-2"]}));
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "paused", Duration::from_secs(20)).await;
    engine.stop().await;
    let campaign = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await;
    assert_eq!(campaign.body["paused_reason"], "instance disconnected");
    let counts = w.counts(&c).await;
    assert_eq!(
        counts.get("failed"),
        None,
        "nothing was sent, nobody failed: {counts:?}"
    );
}

#[tokio::test]
async fn a_numbers_daily_limit_holds_inside_a_pool_and_the_others_carry_on() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    w.app
        .patch(
            &format!("/api/v1/instances/{}", pool[0]),
            &w.t,
            json!({"daily_limit": 2}),
        )
        .await
        .ok(200);
    let contacts = w.contacts(10).await;
    let c = pool_campaign(&w, &refs(&pool), &contacts, fast()).await;
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
    w.start_on(&c, monday).await;
    assert_eq!(tick_at(&w, monday).await, 10);
    let per = planned_per_number(&w, &c).await;
    assert_eq!(per.get(&pool[0]), Some(&2), "{per:?}");
    assert_eq!(per.get(&pool[1]), Some(&8), "{per:?}");
}

#[tokio::test]
async fn each_number_is_paced_on_its_own_at_the_gateway_within_one_tick() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let contacts = w.contacts(8).await;
    let c = pool_campaign(
        &w,
        &refs(&pool),
        &contacts,
        json!({"min_interval_seconds": 20, "max_interval_seconds": 20}),
    )
    .await;
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
    w.start_on(&c, monday).await;
    // One tick plans the first send of each number (the next ones are 20 s later).
    assert_eq!(tick_at(&w, monday).await, 2);
    let per = planned_per_number(&w, &c).await;
    assert_eq!(per.len(), 2, "{per:?}");
    // Twenty seconds later, one more each: never two from a number within 20 s.
    assert_eq!(tick_at(&w, monday + chrono::Duration::seconds(20)).await, 2);
    assert_eq!(tick_at(&w, monday + chrono::Duration::seconds(25)).await, 0);
}

#[tokio::test]
async fn a_number_takes_part_in_one_active_campaign_at_a_time() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let contacts = w.contacts(4).await;
    let slow = json!({"min_interval_seconds": 60, "max_interval_seconds": 60});
    let pooled = pool_campaign(&w, &refs(&pool), &contacts[..2], slow.clone()).await;
    assert_eq!(w.start(&pooled).await["status"], "active");
    let single = w.campaign_on(&pool[1], &contacts[2..], immediate(), slow).await;
    let refused = w
        .app
        .post(&format!("/api/v1/campaigns/{single}/start"), &w.t, json!({}))
        .await;
    let problem = refused.problem(409);
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("already has an active campaign"));
    assert_eq!(problem["current_status"], "draft");
}

#[tokio::test]
async fn a_pool_is_shown_on_the_campaign_and_the_chosen_number_on_each_recipient() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(3).await;
    let c = pool_campaign(&w, &refs(&pool), &contacts, fast()).await;
    let shown = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await;
    assert_eq!(shown.body["instance_ids"], json!(pool));
    assert_eq!(shown.body["instance_id"], json!(pool[0]));
    let copy = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/duplicate"), &w.t, json!({}))
        .await;
    assert_eq!(copy.body["instance_ids"], json!(pool), "a copy keeps the pool");
    let monday = Utc.with_ymd_and_hms(2026, 11, 30, 15, 0, 0).unwrap();
    let t = w.start_on(&c, monday).await;
    tick_at(&w, monday).await;
    let recipients = w.app.get(&format!("/api/v1/campaigns/{c}/recipients"), &t).await;
    let chosen: Vec<&str> = recipients.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["instance_id"].as_str().expect("a chosen number"))
        .collect();
    assert_eq!(chosen.len(), 3);
    assert!(chosen.iter().all(|i| pool.iter().any(|p| p == i)), "{chosen:?}");
}

#[tokio::test]
async fn a_pool_is_validated_with_the_field_of_each_bad_number() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let other = w.app.signup("Outra").await;
    let foreign = w
        .app
        .post(
            "/api/v1/instances",
            &other,
            json!({"name": "x", "api_url": w.sandbox.url, "api_key": "k", "instance_name": "x"}),
        )
        .await
        .id();
    let contacts = w.contacts(1).await;
    let body = |numbers: Value| {
        json!({
            "name": "P", "instance_ids": numbers, "messages": [{"text": "Oi"}],
            "audience": {"contact_ids": contacts}, "schedule": immediate()
        })
    };
    let post = |b: Value| async { w.app.post("/api/v1/campaigns", &w.t, b).await.fields() };
    assert_eq!(post(body(json!([]))).await, ["instance_ids"]);
    let fifty_one: Vec<String> = (0..51).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    assert_eq!(post(body(json!(fifty_one))).await, ["instance_ids"]);
    assert_eq!(
        post(body(json!([pool[0], pool[1], pool[0]]))).await,
        ["instance_ids[2]"]
    );
    assert_eq!(post(body(json!([pool[0], foreign]))).await, ["instance_ids[1]"]);
    let mut both = body(json!(pool));
    both["instance_id"] = json!(pool[0]);
    assert_eq!(post(both).await, ["instance_ids"]);
    let mut neither = body(json!(pool));
    neither.as_object_mut().unwrap().remove("instance_ids");
    assert_eq!(post(neither).await, ["instance_id"]);
    // An edit may turn a pool into one number and back.
    let c = w.app.post("/api/v1/campaigns", &w.t, body(json!(pool))).await.id();
    let one = w
        .app
        .patch(&format!("/api/v1/campaigns/{c}"), &w.t, json!({"instance_id": pool[1]}))
        .await;
    assert_eq!(one.ok(200)["instance_ids"], json!([pool[1]]));
    let again = w
        .app
        .patch(&format!("/api/v1/campaigns/{c}"), &w.t, json!({"instance_ids": pool}))
        .await;
    assert_eq!(again.ok(200)["instance_ids"], json!(pool));
    // A pool's second number cannot be deleted from under it.
    let refused = w.app.delete(&format!("/api/v1/instances/{}", pool[1]), &w.t).await;
    assert!(refused.problem(409)["detail"]
        .as_str()
        .unwrap()
        .contains("campaigns use this instance"));
}

#[tokio::test]
async fn each_number_of_a_pool_shows_its_own_sends_in_its_health_one_off_messages_included() {
    let w = world().await;
    let pool = numbers(&w, 1).await;
    let contacts = w.contacts(6).await;
    let c = pool_campaign(&w, &refs(&pool), &contacts, fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    let message = w
        .app
        .post(
            "/api/v1/messages",
            &w.t,
            json!({"instance_id": pool[0], "phone": "5511988887777", "text": "Seu código: 123"}),
        )
        .await
        .id();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let m = w.app.get(&format!("/api/v1/messages/{message}"), &w.t).await;
        if m.body["status"] == "sent" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the message never left: {}",
            m.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.stop().await;
    let per = planned_per_number(&w, &c).await;
    for (k, id) in pool.iter().enumerate() {
        let h = w.app.get(&format!("/api/v1/instances/{id}/health"), &w.t).await;
        let own = per.get(id).copied().unwrap_or(0) + i64::from(k == 0);
        assert_eq!(h.ok(200)["sent"], own, "number {k}: {}", h.body);
        assert_eq!(h.body["sent_today"], own, "number {k}: {}", h.body);
    }
}

#[tokio::test]
async fn a_one_off_message_makes_its_number_the_sticky_sender_of_a_pool() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(6).await;
    // Contact 4 last heard from loja-3, through a one-off message.
    let message = w
        .app
        .post(
            "/api/v1/messages",
            &w.t,
            json!({"instance_id": pool[2], "phone": crate::engine::phone(4), "text": "Seu pedido saiu"}),
        )
        .await
        .id();
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while w.app.get(&format!("/api/v1/messages/{message}"), &w.t).await.body["status"] != "sent" {
        assert!(tokio::time::Instant::now() < deadline, "the message never left");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = pool_campaign(&w, &refs(&pool), &contacts, fast()).await;
    w.start(&c).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let to_four: Vec<String> = w
        .sandbox
        .state
        .sends(None)
        .into_iter()
        .filter(|s| s.number == crate::engine::phone(4))
        .map(|s| s.instance)
        .collect();
    assert_eq!(
        to_four,
        ["loja-3", "loja-3"],
        "the campaign's message came from the same number"
    );
}

#[tokio::test]
async fn a_second_pool_campaign_to_the_same_phones_completes_behind_their_phone_locks() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(30).await;
    let pace = json!({"min_interval_seconds": 1, "max_interval_seconds": 1});
    let first = pool_campaign(&w, &refs(&pool), &contacts, pace.clone()).await;
    w.start(&first).await;
    let mut settings = w.settings();
    settings.dispatch.phone_lock_ms = 5_000;
    let engine = Engine::start(
        &w.app
            .engine_state(settings, std::sync::Arc::new(arauto::clock::SystemClock)),
        1,
        2,
    )
    .await;
    w.wait_for_status(&first, "completed", Duration::from_secs(60)).await;
    let copy = w
        .app
        .post(&format!("/api/v1/campaigns/{first}/duplicate"), &w.t, json!({}))
        .await
        .id();
    w.start(&copy).await;
    w.wait_for_status(&copy, "completed", Duration::from_secs(90)).await;
    engine.stop().await;
}

#[tokio::test]
async fn a_pools_estimated_end_counts_each_numbers_share_of_the_recipients() {
    let w = world().await;
    let pool = numbers(&w, 2).await;
    let contacts = w.contacts(6).await;
    let minute = json!({"min_interval_seconds": 60, "max_interval_seconds": 60});
    let c = pool_campaign(&w, &refs(&pool), &contacts, minute).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 13, 0, 0).unwrap();
    let t = w.start_on(&c, at).await;
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &t).await;
    let b = stats.ok(200);
    let next: DateTime<Utc> = b["next_send_at"].as_str().unwrap().parse().unwrap();
    let end: DateTime<Utc> = b["estimated_completion_at"].as_str().unwrap().parse().unwrap();
    // 6 recipients over 3 numbers, each paced a minute apart (planned 60.1 s: the send gate's
    // margin and as much slack): two each, not six after one another.
    assert_eq!(end - next, chrono::Duration::milliseconds(2 * 60_100), "{b}");
}
