//! Instant start (PRODUCT §4 `preparing`): `start` answers at once and the audience is
//! resolved in the background, chunk by chunk; pause and cancel act during it; a preparer
//! that dies leaves a campaign the beat finishes, without duplicates.

use crate::engine::{fast, immediate, world, Engine, World};
use arauto::campaigns::{preparation, repo};
use arauto::clock::{SharedClock, SystemClock};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// A campaign moved to `preparing` as `start` does, but with no preparer running (the
/// process that answered `start` died at once).
async fn started_without_preparer(w: &World, contacts: usize) -> String {
    let ids = w.contacts(contacts).await;
    let c = w.campaign(&ids, immediate(), fast()).await;
    let id: Uuid = c.parse().unwrap();
    let now = chrono::Utc::now();
    assert!(repo::start(&w.app.db, id, now, now).await.unwrap());
    c
}

fn clock() -> SharedClock {
    Arc::new(SystemClock)
}

/// (rows, distinct contacts, distinct positions, min position, max position).
async fn recipient_rows(w: &World, campaign: &str) -> (i64, i64, i64, i64, i64) {
    let row = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT count(*) AS n, count(DISTINCT contact_id) AS contacts, count(DISTINCT position) AS positions, \
                        COALESCE(min(position), 0)::bigint AS lo, COALESCE(max(position), 0)::bigint AS hi \
                 FROM recipients WHERE campaign_id = '{campaign}'"
            ),
        ))
        .await
        .unwrap()
        .unwrap();
    let get = |c: &str| row.try_get::<i64>("", c).unwrap();
    (get("n"), get("contacts"), get("positions"), get("lo"), get("hi"))
}

#[tokio::test]
async fn start_answers_preparing_at_once_and_the_audience_is_resolved_behind_it() {
    let w = world().await;
    let ids = w.contacts(30).await;
    let c = w.campaign(&ids, immediate(), fast()).await;
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/start"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "preparing");
    assert_eq!(w.app.prepared(&c, &w.t).await["status"], "active");
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    let s = stats.ok(200);
    assert_eq!(s["counts"]["pending"], 30);
    assert_eq!(s["preparation"]["resolved"], 30);
    assert_eq!(s["preparation"]["total"], 30);
    assert!(s["preparation"]["ready_at"].is_string(), "{s}");
    assert_eq!(recipient_rows(&w, &c).await, (30, 30, 30, 1, 30));
}

#[tokio::test]
async fn a_preparation_cut_short_resumes_where_it_stopped_without_duplicates() {
    let w = world().await;
    let c = started_without_preparer(&w, 25).await;
    let id: Uuid = c.parse().unwrap();
    // One chunk of 10 is committed, then the preparer dies.
    assert_eq!(
        preparation::prepare_chunk(&w.app.db, &clock(), id, 10).await.unwrap(),
        preparation::Step::More
    );
    assert_eq!(recipient_rows(&w, &c).await, (10, 10, 10, 1, 10));
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["status"], "preparing");
    assert_eq!(stats.body["preparation"]["resolved"], 10);
    assert_eq!(stats.body["preparation"]["total"], 25);
    assert!(stats.body["preparation"]["ready_at"].is_null());
    // The beat takes the unfinished preparation up on its first tick.
    let engine = Engine::start(&w.live_state(), 1, 0).await;
    assert_eq!(w.app.prepared(&c, &w.t).await["status"], "active");
    engine.stop().await;
    assert_eq!(recipient_rows(&w, &c).await, (25, 25, 25, 1, 25));
}

#[tokio::test]
async fn a_campaign_paused_while_preparing_stays_paused_and_resumes_to_active() {
    let w = world().await;
    let c = started_without_preparer(&w, 12).await;
    let id: Uuid = c.parse().unwrap();
    preparation::prepare_chunk(&w.app.db, &clock(), id, 5).await.unwrap();
    let paused = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, json!({}))
        .await;
    assert_eq!(paused.ok(200)["status"], "paused");
    // Resolution goes on while paused, and the campaign stays paused.
    assert_eq!(
        preparation::prepare(&w.app.db, &clock(), id, 5).await.unwrap(),
        preparation::Step::Ready(arauto::campaigns::domain::CampaignStatus::Paused)
    );
    assert_eq!(recipient_rows(&w, &c).await, (12, 12, 12, 1, 12));
    let resumed = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &w.t, json!({}))
        .await;
    assert_eq!(resumed.ok(200)["status"], "active");
}

#[tokio::test]
async fn resuming_before_the_audience_is_resolved_goes_back_to_preparing() {
    let w = world().await;
    let c = started_without_preparer(&w, 8).await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/pause"), &w.t, json!({}))
        .await
        .ok(200);
    let resumed = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &w.t, json!({}))
        .await;
    assert_eq!(resumed.ok(200)["status"], "preparing");
    // The resume started a preparer again.
    assert_eq!(w.app.prepared(&c, &w.t).await["status"], "active");
    assert_eq!(recipient_rows(&w, &c).await, (8, 8, 8, 1, 8));
}

#[tokio::test]
async fn a_campaign_cancelled_while_preparing_stops_and_leaves_nobody_waiting() {
    let w = world().await;
    let c = started_without_preparer(&w, 20).await;
    let id: Uuid = c.parse().unwrap();
    preparation::prepare_chunk(&w.app.db, &clock(), id, 7).await.unwrap();
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "cancelled");
    assert_eq!(
        preparation::prepare(&w.app.db, &clock(), id, 7).await.unwrap(),
        preparation::Step::Idle
    );
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("cancelled"), Some(&7), "{counts:?}");
    assert_eq!(
        counts.values().sum::<i64>(),
        7,
        "nothing written after the cancel: {counts:?}"
    );
}

#[tokio::test]
async fn an_instance_preparing_a_campaign_refuses_a_second_start() {
    let w = world().await;
    let ids = w.contacts(3).await;
    let first = w.campaign(&ids, immediate(), fast()).await;
    let now = chrono::Utc::now();
    assert!(repo::start(&w.app.db, first.parse().unwrap(), now, now).await.unwrap());
    let second = w.campaign(&ids, immediate(), fast()).await;
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{second}/start"), &w.t, json!({}))
        .await;
    assert!(
        r.problem(409)["detail"].as_str().unwrap().contains(&first),
        "{}",
        r.body
    );
    assert_eq!(w.status(&second).await, "draft");
}
