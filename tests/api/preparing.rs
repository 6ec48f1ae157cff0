//! Instant start (PRODUCT §4 `preparing`): `start` answers at once and the audience is
//! resolved in the background, chunk by chunk; pause and cancel act during it; a preparer
//! that dies leaves a campaign the beat finishes, without duplicates.

use crate::engine::{fast, immediate, world, Engine, World};
use arauto::campaigns::{preparation, repo};
use arauto::clock::{SharedClock, SystemClock};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use serde_json::json;
use std::sync::Arc;
use uuid::Uuid;

/// A campaign moved to `preparing` as `start` does, but with no preparer running (the
/// process that answered `start` died at once).
async fn started_without_preparer(w: &World, contacts: usize) -> String {
    let ids = w.contacts(contacts).await;
    started_to(w, &ids).await
}

/// A campaign to `audience` moved to `preparing` with no preparer running.
async fn started_to(w: &World, audience: &[String]) -> String {
    let c = w.campaign(audience, immediate(), fast()).await;
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

/// A campaign of `contacts` contacts cancelled after one chunk of `chunk` was written: the
/// preparation then stops, and the chunk's recipients, all cancelled, are all there is.
async fn cancelled_after_one_chunk(w: &World, contacts: usize, chunk: i64) -> String {
    let c = started_without_preparer(w, contacts).await;
    let id: Uuid = c.parse().unwrap();
    preparation::prepare_chunk(&w.app.db, &clock(), id, chunk)
        .await
        .unwrap();
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "cancelled");
    assert_eq!(
        preparation::prepare(&w.app.db, &clock(), id, chunk).await.unwrap(),
        preparation::Step::Idle
    );
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("cancelled"), Some(&chunk), "{counts:?}");
    assert_eq!(
        counts.values().sum::<i64>(),
        chunk,
        "nothing written after the cancel: {counts:?}"
    );
    c
}

#[tokio::test]
async fn a_campaign_cancelled_while_preparing_stops_and_leaves_nobody_waiting() {
    let w = world().await;
    cancelled_after_one_chunk(&w, 20, 7).await;
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

/// The campaign's recipients' contacts in position (send) order.
async fn contacts_in_send_order(w: &World, campaign: &str) -> Vec<String> {
    let sql =
        format!("SELECT contact_id::text AS id FROM recipients WHERE campaign_id = '{campaign}' ORDER BY position");
    ids_of(w, &sql).await
}

/// `contacts` sorted as the audience is walked: by `(created_at, id)`.
async fn in_contact_order(w: &World, contacts: &[String]) -> Vec<String> {
    let list = contacts.iter().map(|c| format!("'{c}'")).collect::<Vec<_>>().join(",");
    let sql = format!("SELECT id::text AS id FROM contacts WHERE id IN ({list}) ORDER BY created_at, id");
    ids_of(w, &sql).await
}

async fn ids_of(w: &World, sql: &str) -> Vec<String> {
    let rows = w
        .app
        .db
        .query_all(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .unwrap();
    rows.iter().map(|r| r.try_get::<String>("", "id").unwrap()).collect()
}

/// The count `n` that `sql` selects.
async fn count_of(w: &World, sql: &str) -> i64 {
    let row = w
        .app
        .db
        .query_one(Statement::from_string(DbBackend::Postgres, sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn lanes_of(w: &World, campaign: &str) -> i64 {
    count_of(
        w,
        &format!("SELECT count(*) AS n FROM audience_lanes WHERE campaign_id = '{campaign}'"),
    )
    .await
}

#[tokio::test]
async fn a_large_audience_is_resolved_over_lanes_in_the_contacts_order_without_duplicates() {
    let w = world().await;
    let all = w.contacts(50).await;
    // Every fifth contact is left out of the audience.
    let audience: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 5 != 0)
        .map(|(_, c)| c.clone())
        .collect();
    let c = started_to(&w, &audience).await;
    let id: Uuid = c.parse().unwrap();
    // 50 contacts fill more than 2 × LANES chunks of 5: the work is split.
    assert!(preparation::set_up(&w.app.db, id, 5).await.unwrap());
    assert_eq!(lanes_of(&w, &c).await, preparation::LANES);
    assert_eq!(
        preparation::prepare(&w.app.db, &clock(), id, 5).await.unwrap(),
        preparation::Step::Ready(arauto::campaigns::domain::CampaignStatus::Active)
    );
    let (rows, contacts, positions, first, last) = recipient_rows(&w, &c).await;
    assert_eq!((rows, contacts, positions, first), (40, 40, 40, 1));
    assert!(
        last > preparation::LANE_STRIDE,
        "the last lane numbers from its stride: {last}"
    );
    // Positions follow the contacts' order across lanes: the send order is unchanged.
    assert_eq!(
        contacts_in_send_order(&w, &c).await,
        in_contact_order(&w, &audience).await
    );
    assert_eq!(lanes_of(&w, &c).await, 0, "the lanes go with the preparation");
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["counts"]["pending"], 40);
    assert_eq!(stats.body["preparation"]["resolved"], 40);
    assert_eq!(stats.body["preparation"]["total"], 40);
}

#[tokio::test]
async fn lanes_cut_short_each_resume_where_they_stopped_without_duplicates() {
    let w = world().await;
    let c = started_without_preparer(&w, 50).await;
    let id: Uuid = c.parse().unwrap();
    // Two chunks of the first lane are committed; then, while another preparer holds the
    // first lane, one chunk of the second; then every preparer dies.
    for _ in 0..2 {
        assert_eq!(
            preparation::prepare_chunk(&w.app.db, &clock(), id, 5).await.unwrap(),
            preparation::Step::More
        );
    }
    let holder = w.app.db.begin().await.unwrap();
    holder
        .execute(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT 1 FROM audience_lanes WHERE campaign_id = '{c}' AND lane = 0 FOR UPDATE"),
        ))
        .await
        .unwrap();
    assert_eq!(
        preparation::prepare_chunk(&w.app.db, &clock(), id, 5).await.unwrap(),
        preparation::Step::More
    );
    holder.rollback().await.unwrap();
    let (rows, contacts, positions, first, last) = recipient_rows(&w, &c).await;
    assert_eq!((rows, contacts, positions, first), (15, 15, 15, 1));
    assert_eq!(
        last,
        preparation::LANE_STRIDE + 5,
        "the second lane wrote its first chunk"
    );
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["preparation"]["resolved"], 15);
    assert_eq!(stats.body["preparation"]["total"], 50);
    // Two preparers and the beat's recovery race over what is left.
    let (db, clock) = (&w.app.db, clock());
    let (a, b, _) = tokio::try_join!(
        preparation::prepare(db, &clock, id, 5),
        preparation::prepare(db, &clock, id, 5),
        preparation::resume_unfinished(db, &clock, 100),
    )
    .unwrap();
    let (rows, contacts, positions, ..) = recipient_rows(&w, &c).await;
    assert_eq!((rows, contacts, positions), (50, 50, 50), "{a:?} {b:?}");
    assert_eq!(w.status(&c).await, "active");
    let ids = ids_of(
        &w,
        &format!(
            "SELECT id::text AS id FROM contacts WHERE tenant_id = '{}'",
            w.t.tenant_id
        ),
    )
    .await;
    assert_eq!(contacts_in_send_order(&w, &c).await, in_contact_order(&w, &ids).await);
}

#[tokio::test]
async fn a_campaign_cancelled_while_its_lanes_run_stops_them_all() {
    let w = world().await;
    let c = cancelled_after_one_chunk(&w, 50, 5).await;
    // Its progress stays where it stopped; its lanes go.
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["preparation"]["resolved"], 5);
    assert_eq!(lanes_of(&w, &c).await, 0);
}

#[tokio::test]
async fn recipients_belong_to_a_campaign_of_their_tenant_and_go_with_it() {
    let w = world().await;
    let c = started_without_preparer(&w, 3).await;
    let id: Uuid = c.parse().unwrap();
    preparation::prepare(&w.app.db, &clock(), id, 10).await.unwrap();
    let other = w.app.signup("Outra").await;
    let insert = |tenant: &str, campaign: &str| {
        format!(
            "INSERT INTO recipients (id, tenant_id, campaign_id, phone, name, position, status) \
             VALUES (gen_random_uuid(), '{tenant}', '{campaign}', '5511988887777', 'X', 99, 'pending')"
        )
    };
    // A row naming another tenant, or no campaign at all, is refused as the key refused it.
    for sql in [
        insert(&other.tenant_id, &c),
        insert(&w.t.tenant_id, &Uuid::new_v4().to_string()),
    ] {
        let e = w
            .app
            .db
            .execute(Statement::from_string(DbBackend::Postgres, sql))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("recipients must belong to a campaign of their tenant"),
            "{e}"
        );
    }
    assert_eq!(recipient_rows(&w, &c).await.0, 3);
    // Deleting the campaign (as a tenant's deletion cascades to it) deletes its recipients.
    w.app
        .db
        .execute(Statement::from_string(
            DbBackend::Postgres,
            format!("DELETE FROM campaigns WHERE id = '{c}'"),
        ))
        .await
        .unwrap();
    assert_eq!(recipient_rows(&w, &c).await.0, 0);
}

#[tokio::test]
async fn a_cancel_gets_through_lanes_that_keep_writing_and_nothing_is_written_after_it() {
    let w = world().await;
    let c = started_without_preparer(&w, 6_000).await;
    let id: Uuid = c.parse().unwrap();
    // Two lanes write chunks of 300 back to back, each chunk holding the campaign shared.
    let chunk = 300;
    let (db, clock) = (w.app.db.clone(), clock());
    let preparer = tokio::spawn(async move { preparation::prepare(&db, &clock, id, chunk).await });
    let mut before = 0;
    while before < chunk {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        before = recipient_rows(&w, &c).await.0;
    }
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
        .await;
    assert_eq!(r.ok(200)["status"], "cancelled");
    // The cancel waited for the chunks in hand (and the few each lane began while it was on
    // its way), not for a lane to run out (about 5,000 more): a share lock granted ahead of
    // a waiting update would have held it off while the lanes took turns.
    let at_cancel = recipient_rows(&w, &c).await.0;
    assert!(
        at_cancel - before <= 8 * chunk,
        "{before} written before the cancel, {at_cancel} when it returned"
    );
    assert_eq!(preparer.await.unwrap().unwrap(), preparation::Step::Idle);
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("cancelled"), Some(&at_cancel), "{counts:?}");
    assert_eq!(
        counts.values().sum::<i64>(),
        at_cancel,
        "nothing written after the cancel: {counts:?}"
    );
}

#[tokio::test]
async fn a_phone_moving_between_contacts_while_preparing_is_sent_once_and_the_preparation_finishes() {
    let w = world().await;
    let ids = w.contacts(5).await;
    let c = started_to(&w, &ids).await;
    let id: Uuid = c.parse().unwrap();
    // Two contacts are resolved; then one's phone moves to a contact the preparation has
    // not reached yet.
    preparation::prepare_chunk(&w.app.db, &clock(), id, 2).await.unwrap();
    let first = ids_of(
        &w,
        &format!("SELECT contact_id::text AS id FROM recipients WHERE campaign_id = '{c}' LIMIT 1"),
    )
    .await;
    let first = &first[0];
    let first_phone = w.app.get(&format!("/api/v1/contacts/{first}"), &w.t).await.ok(200)["phone"]
        .as_str()
        .unwrap()
        .to_owned();
    let unresolved = ids_of(
        &w,
        &format!(
            "SELECT c.id::text AS id FROM contacts c WHERE c.id::text = ANY(ARRAY['{}']) \
             AND NOT EXISTS (SELECT 1 FROM recipients r WHERE r.campaign_id = '{c}' AND r.contact_id = c.id) LIMIT 1",
            ids.join("','")
        ),
    )
    .await;
    let unresolved = &unresolved[0];
    w.app
        .patch(
            &format!("/api/v1/contacts/{first}"),
            &w.t,
            json!({"phone": crate::engine::phone(9)}),
        )
        .await
        .ok(200);
    w.app
        .patch(
            &format!("/api/v1/contacts/{unresolved}"),
            &w.t,
            json!({"phone": first_phone}),
        )
        .await
        .ok(200);
    assert_eq!(
        preparation::prepare(&w.app.db, &clock(), id, 2).await.unwrap(),
        preparation::Step::Ready(arauto::campaigns::domain::CampaignStatus::Active)
    );
    // The phone already has its recipient (the first contact's): the contact it moved to is
    // not written a second one.
    let (rows, _, _, _, _) = recipient_rows(&w, &c).await;
    assert_eq!(rows, 4);
    let on_phone = count_of(
        &w,
        &format!("SELECT count(*) AS n FROM recipients WHERE campaign_id = '{c}' AND phone = '{first_phone}'"),
    )
    .await;
    assert_eq!(on_phone, 1);
    let stats = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(stats.ok(200)["counts"]["pending"], 4, "{}", stats.body);
}
