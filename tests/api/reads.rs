//! Fast reads: kept contact totals, keyset (cursor) pagination of contacts, recipients and
//! send logs, and the in-process caches of users and holidays.

use crate::helpers::{spawn_app, Tenant, TestApp};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use chrono::TimeZone;
use reqwest::Method;
use sea_orm::ConnectionTrait;
use serde_json::{json, Value};
use std::collections::HashSet;

async fn total(app: &TestApp, t: &Tenant) -> Value {
    let r = app.get("/api/v1/contacts?per_page=1", t).await;
    let b = r.ok(200);
    assert_eq!(b["total_is_estimate"], false, "{b}");
    b["total"].clone()
}

async fn exec(app: &TestApp, sql: String) {
    app.db.execute_unprepared(&sql).await.expect("SQL runs");
}

/// Every id of a list, read page after page by cursor; `between` runs after each page.
async fn walk(app: &TestApp, t: &Tenant, first: &str, mut between: impl AsyncFnMut(usize)) -> Vec<String> {
    let mut ids = vec![];
    let mut url = first.to_owned();
    for page in 0.. {
        let r = app.get(&url, t).await;
        let b = r.ok(200);
        ids.extend(b["items"].as_array().unwrap().iter().map(|i| i["id"].to_string()));
        match b["next_cursor"].as_str() {
            None => break,
            Some(c) => {
                assert!(page < 1_000, "the walk does not end");
                let sep = if first.contains('?') { '&' } else { '?' };
                url = format!("{first}{sep}cursor={c}");
            }
        }
        between(page).await;
    }
    ids
}

fn assert_each_once(ids: &[String], expected: &HashSet<String>) {
    let seen: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(seen.len(), ids.len(), "an item came twice: {ids:?}");
    assert_eq!(&seen, expected);
}

#[tokio::test]
async fn contact_totals_follow_create_bulk_import_and_delete_per_tenant() {
    let app = spawn_app().await;
    let acme = app.signup("Acme").await;
    let other = app.signup("Other").await;
    let ana = app.create_contact(&acme, "11987654321", "Ana").await;
    app.create_contact(&other, "11987654321", "Ana elsewhere").await;
    assert_eq!(total(&app, &acme).await, 1);

    let bulk = json!({"contacts": [
        {"phone": "11987654321", "name": "Ana again"},
        {"phone": "21987654321", "name": "Bia"},
        {"phone": "31987654321", "name": "Caio"},
        {"phone": "nope"},
    ]});
    let r = app.post("/api/v1/contacts/bulk", &acme, bulk).await;
    assert_eq!(
        (r.ok(200)["created"].clone(), r.body["updated"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(total(&app, &acme).await, 3);

    let csv = "phone,name\n21987654321,Bia Lima\n41987654321,Duda\n51987654321,Edu\n";
    app.call_raw(
        Method::POST,
        "/api/v1/contacts/import",
        Some(&acme.token),
        "text/csv",
        csv.into(),
    )
    .await
    .ok(200);
    assert_eq!(total(&app, &acme).await, 5);

    app.delete(&format!("/api/v1/contacts/{ana}"), &acme).await.ok(204);
    assert_eq!(total(&app, &acme).await, 4);
    assert_eq!(total(&app, &other).await, 1);

    // The beat folds the deltas into one row per tenant; the totals do not move.
    arauto::contacts::counts::fold(&app.db).await.unwrap();
    assert_eq!(total(&app, &acme).await, 4);
    assert_eq!(total(&app, &other).await, 1);
    assert_eq!(crate::auth::count(&app, "contact_counts").await, 2);
    // A contact no longer existing counts nowhere.
    app.delete(&format!("/api/v1/contacts/{ana}"), &acme).await.problem(404);
    assert_eq!(total(&app, &acme).await, 4);
}

#[tokio::test]
async fn a_filtered_total_is_exact_up_to_ten_thousand_then_flagged_an_estimate() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    exec(
        &app,
        format!(
            "INSERT INTO contacts (id, tenant_id, phone, name) \
             SELECT gen_random_uuid(), '{}', (5511900000000 + i)::text, CASE WHEN i <= 3 THEN 'Ana ' ELSE 'Bia ' END || i \
             FROM generate_series(1, 10004) AS i",
            t.tenant_id
        ),
    )
    .await;
    assert_eq!(total(&app, &t).await, 10_004);
    let ana = app.get("/api/v1/contacts?q=ana", &t).await;
    assert_eq!(
        (ana.ok(200)["total"].clone(), ana.body["total_is_estimate"].clone()),
        (json!(3), json!(false))
    );
    let bia = app.get("/api/v1/contacts?q=bia&per_page=2", &t).await;
    assert_eq!(
        (bia.ok(200)["total"].clone(), bia.body["total_is_estimate"].clone()),
        (json!(10_000), json!(true))
    );
    assert_eq!(bia.body["items"].as_array().unwrap().len(), 2);
    assert!(bia.body["next_cursor"].is_string());
}

#[tokio::test]
async fn walking_contacts_by_cursor_sees_each_once_despite_inserts() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let mut expected = HashSet::new();
    for i in 0..7 {
        let id = app
            .create_contact(&t, &format!("1198765432{i}"), &format!("C{i}"))
            .await;
        expected.insert(format!("\"{id}\""));
    }
    let mut added = vec![];
    let ids = walk(&app, &t, "/api/v1/contacts?per_page=3", async |page| {
        if page < 2 {
            let id = app
                .create_contact(&t, &format!("2198765432{page}"), &format!("New {page}"))
                .await;
            added.push(format!("\"{id}\""));
        }
    })
    .await;
    expected.extend(added);
    assert_each_once(&ids, &expected);

    // `page` keeps working, and its answer carries the cursor to the rest.
    let second = app.get("/api/v1/contacts?page=2&per_page=4", &t).await;
    let b = second.ok(200);
    assert_eq!((b["page"].clone(), b["total"].clone()), (json!(2), json!(9)));
    assert_eq!(b["items"].as_array().unwrap().len(), 4);
    let rest = app
        .get(
            &format!(
                "/api/v1/contacts?per_page=4&cursor={}",
                b["next_cursor"].as_str().unwrap()
            ),
            &t,
        )
        .await;
    assert_eq!(rest.ok(200)["items"].as_array().unwrap().len(), 1);
    assert!(rest.body["next_cursor"].is_null());
    assert_eq!(rest.body["items"][0]["id"].to_string(), ids[8]);
}

#[tokio::test]
async fn a_filtered_walk_keeps_its_filter() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let mut souzas = HashSet::new();
    for i in 0..5 {
        let id = app
            .create_contact(&t, &format!("1198765432{i}"), &format!("Ana Souza {i}"))
            .await;
        souzas.insert(format!("\"{id}\""));
        app.create_contact(&t, &format!("2198765432{i}"), &format!("Bia Lima {i}"))
            .await;
    }
    let ids = walk(&app, &t, "/api/v1/contacts?q=souza&per_page=2", async |_| {}).await;
    assert_each_once(&ids, &souzas);
}

#[tokio::test]
async fn a_bad_cursor_is_a_422_naming_cursor() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let instance = app.create_instance(&t, "loja-1").await;
    let contact = app.create_contact(&t, "11987654321", "Ana").await;
    let campaign = app
        .post(
            "/api/v1/campaigns",
            &t,
            json!({"name": "C", "instance_id": instance, "messages": [{"text": "Oi"}], "audience": {"contact_ids": [contact]}}),
        )
        .await
        .id();
    let log_cursor = URL_SAFE_NO_PAD.encode(br#"{"log_id": 5}"#);
    let contact_cursor = URL_SAFE_NO_PAD
        .encode(br#"{"created_at": "2026-11-30T00:00:00Z", "id": "00000000-0000-0000-0000-000000000000"}"#);
    let long = "A".repeat(1_000);
    for list in [
        "/api/v1/contacts".to_owned(),
        format!("/api/v1/campaigns/{campaign}/recipients"),
        format!("/api/v1/campaigns/{campaign}/logs"),
    ] {
        let foreign = if list.ends_with("logs") {
            &contact_cursor
        } else {
            &log_cursor
        };
        for bad in ["garbage!", "e30", "%00", "", &long, foreign] {
            let r = app.get(&format!("{list}?cursor={bad}"), &t).await;
            assert_eq!(r.fields(), ["cursor"], "{list} with {bad:?}");
        }
        let r = app.get(&format!("{list}?per_page=1"), &t).await;
        r.ok(200);
        let mixed = app.get(&format!("{list}?page=2&cursor={foreign}"), &t).await;
        assert_eq!(mixed.fields(), ["cursor"], "{list} with a page");
        assert_eq!(app.get(&format!("{list}?cursor=a&cursor=b"), &t).await.status, 422);
    }
}

#[tokio::test]
async fn another_tenants_cursor_yields_nothing_of_theirs() {
    let app = spawn_app().await;
    let acme = app.signup("Acme").await;
    let other = app.signup("Other").await;
    let mut acmes = HashSet::new();
    for i in 0..4 {
        let id = app.create_contact(&acme, &format!("1198765432{i}"), "Acme's").await;
        acmes.insert(format!("\"{id}\""));
    }
    let mine = app.create_contact(&other, "11987654329", "Other's").await;
    let cursor = app.get("/api/v1/contacts?per_page=1", &acme).await.ok(200)["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .get(&format!("/api/v1/contacts?per_page=500&cursor={cursor}"), &other)
        .await;
    let items = r.ok(200)["items"].as_array().unwrap().clone();
    assert!(items.iter().all(|i| !acmes.contains(&i["id"].to_string())), "{items:?}");
    assert!(items.iter().all(|i| i["id"] == mine.as_str()), "{items:?}");
    assert_eq!(r.body["total"], 1);
}

/// A draft campaign of `t` given `n` recipients (every third `sent`) and `n` send logs
/// straight in the database, as the engine would have written them.
async fn campaign_with_history(app: &TestApp, t: &Tenant, n: u32) -> String {
    let instance = app.create_instance(t, "loja-1").await;
    let contact = app.create_contact(t, "11987654321", "Ana").await;
    let campaign = app
        .post(
            "/api/v1/campaigns",
            t,
            json!({"name": "C", "instance_id": instance, "messages": [{"text": "Oi"}], "audience": {"contact_ids": [contact]}}),
        )
        .await
        .id();
    let tenant = &t.tenant_id;
    exec(
        app,
        format!(
            "INSERT INTO recipients (id, tenant_id, campaign_id, phone, name, position, status) \
             SELECT gen_random_uuid(), '{tenant}', '{campaign}', (5521900000000 + i)::text, 'R ' || i, i, \
                    CASE WHEN i % 3 = 0 THEN 'sent' ELSE 'pending' END \
             FROM generate_series(1, {n}) AS i"
        ),
    )
    .await;
    exec(
        app,
        format!(
            "INSERT INTO send_logs (tenant_id, campaign_id, recipient_id, rendered, attempts, duration_ms, outcome) \
             SELECT '{tenant}', '{campaign}', id, 'Oi', 1, 10, 'sent' FROM recipients WHERE campaign_id = '{campaign}'"
        ),
    )
    .await;
    campaign
}

async fn recipient_ids(app: &TestApp, campaign: &str, status: Option<&str>) -> HashSet<String> {
    use sea_orm::{DbBackend, Statement};
    let filter = status.map_or_else(String::new, |s| format!(" AND status = '{s}'"));
    app.db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT id::text AS id FROM recipients WHERE campaign_id = '{campaign}'{filter}"),
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| format!("\"{}\"", r.try_get::<String>("", "id").unwrap()))
        .collect()
}

#[tokio::test]
async fn recipients_are_walked_in_send_order_by_cursor_with_exact_totals() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let c = campaign_with_history(&app, &t, 25).await;
    let first = app
        .get(&format!("/api/v1/campaigns/{c}/recipients?per_page=10"), &t)
        .await;
    let b = first.ok(200);
    assert_eq!(
        (b["total"].clone(), b["total_is_estimate"].clone()),
        (json!(25), json!(false))
    );
    assert_eq!(b["items"][0]["name"], "R 1");
    assert!(b["items"][0].get("position").is_none());

    let all = walk(
        &app,
        &t,
        &format!("/api/v1/campaigns/{c}/recipients?per_page=10"),
        async |_| {},
    )
    .await;
    assert_each_once(&all, &recipient_ids(&app, &c, None).await);
    let sent_url = format!("/api/v1/campaigns/{c}/recipients?status=sent&per_page=3");
    assert_eq!(app.get(&sent_url, &t).await.ok(200)["total"], 8);
    let sent = walk(&app, &t, &sent_url, async |_| {}).await;
    assert_each_once(&sent, &recipient_ids(&app, &c, Some("sent")).await);

    // Another tenant reaches neither the campaign nor, through a cursor, its rows.
    let other = app.signup("Other").await;
    let cursor = b["next_cursor"].as_str().unwrap();
    app.get(&format!("/api/v1/campaigns/{c}/recipients?cursor={cursor}"), &other)
        .await
        .problem(404);
}

#[tokio::test]
async fn send_logs_are_walked_newest_first_by_cursor() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let c = campaign_with_history(&app, &t, 12).await;
    let url = format!("/api/v1/campaigns/{c}/logs?per_page=5");
    let first = app.get(&url, &t).await;
    assert_eq!(
        (first.ok(200)["total"].clone(), first.body["total_is_estimate"].clone()),
        (json!(12), json!(false))
    );
    let ids = walk(&app, &t, &url, async |page| {
        if page == 0 {
            // A log written during the walk is newer than the cursor: not in this walk.
            let tenant = &t.tenant_id;
            exec(
                &app,
                format!(
                    "INSERT INTO send_logs (tenant_id, campaign_id, recipient_id, rendered, attempts, duration_ms, outcome) \
                     SELECT '{tenant}', '{c}', gen_random_uuid(), 'Oi', 1, 10, 'failed' RETURNING id"
                ),
            )
            .await;
        }
    })
    .await;
    let numbers: Vec<i64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert_eq!(numbers.len(), 12);
    assert!(numbers.windows(2).all(|w| w[0] > w[1]), "{numbers:?}");
    assert_eq!(
        app.get(&url, &t).await.ok(200)["total"],
        13,
        "the new log is counted from the next read"
    );
}

#[tokio::test]
async fn a_demoted_or_deleted_user_loses_access_at_once() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let second = app.member_of(&admin, "bia@acme.com").await;
    app.patch(
        &format!("/api/v1/users/{}", second.user_id),
        &admin,
        json!({"role": "admin"}),
    )
    .await
    .ok(200);
    // Seen as an admin (and remembered so)...
    app.get("/api/v1/users", &second).await.ok(200);
    app.patch(
        &format!("/api/v1/users/{}", second.user_id),
        &admin,
        json!({"role": "member"}),
    )
    .await
    .ok(200);
    // ...yet the demotion applies to the very next request.
    app.get("/api/v1/users", &second).await.problem(403);
    app.delete(&format!("/api/v1/users/{}", second.user_id), &admin)
        .await
        .ok(204);
    app.get("/api/v1/contacts", &second).await.problem(401);
}

#[tokio::test]
async fn a_holiday_added_or_removed_shows_in_the_next_preview_at_once() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    // Wednesday 9 December 2026, 10:00 in São Paulo.
    let t = app
        .travel(&t, chrono::Utc.with_ymd_and_hms(2026, 12, 9, 13, 0, 0).unwrap())
        .await;
    let instance = app.create_instance(&t, "loja-1").await;
    let contact = app.create_contact(&t, "11987654321", "Ana").await;
    let c = app
        .post(
            "/api/v1/campaigns",
            &t,
            json!({"name": "C", "instance_id": instance, "messages": [{"text": "Oi"}],
                   "audience": {"contact_ids": [contact]},
                   "schedule": {"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR"}}),
        )
        .await
        .id();
    let at = || async {
        let r = app
            .post(
                &format!("/api/v1/campaigns/{c}/preview"),
                &t,
                json!({"contact_id": contact}),
            )
            .await;
        r.ok(200)["at"].as_str().unwrap()[..10].to_owned()
    };
    assert_eq!(at().await, "2026-12-09");
    let holiday = app
        .post("/api/v1/holidays", &t, json!({"date": "2026-12-09", "name": "Folga"}))
        .await
        .id();
    assert_eq!(at().await, "2026-12-10");
    app.delete(&format!("/api/v1/holidays/{holiday}"), &t).await.ok(204);
    assert_eq!(at().await, "2026-12-09");
}
