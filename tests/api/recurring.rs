//! Recurring campaigns (PRODUCT §8, issue 12): a started parent is `scheduled`, and each
//! occurrence makes exactly one run — a child campaign with its own recipients — driven here
//! by ticks of the beat at chosen instants.

use crate::engine::{world, World};
use crate::helpers::Tenant;
use arauto::campaigns::preparation;
use arauto::clock::{FixedClock, SharedClock};
use arauto::scheduler::Beat;
use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

/// Open every day, all day, in `tz`, no holidays: only the recurrence decides.
fn always_open(tz: &str) -> Value {
    json!({"mode": "custom", "timezone": tz, "calendar": "none", "days": [1, 2, 3, 4, 5, 6, 7],
           "windows": [{"start": "00:00", "end": "24:00"}], "skip_holidays": false})
}

/// A recurring draft of `t` over `contacts`; returns its id.
async fn recurring(w: &World, t: &Tenant, contacts: &[String], tz: &str, recurrence: Value) -> String {
    let body = json!({
        "name": "Ofertas da semana", "instance_id": w.instance,
        "messages": [{"text": "Oi {{nome}}"}], "audience": {"contact_ids": contacts},
        "schedule": always_open(tz), "pacing": {"min_interval_seconds": 1, "max_interval_seconds": 1},
        "recurrence": recurrence,
    });
    w.app.post("/api/v1/campaigns", t, body).await.id()
}

/// Moves the API clock to `at` and starts campaign `c` there; returns the campaign.
async fn start_at(w: &World, c: &str, at: DateTime<Utc>) -> (Tenant, Value) {
    let t = w.app.travel(&w.t, at).await;
    let r = w.app.post(&format!("/api/v1/campaigns/{c}/start"), &t, json!({})).await;
    let body = r.ok(200).clone();
    (t, body)
}

/// A beat whose clock stands at `at` (ticks take their instant as an argument).
fn beat(w: &World, at: DateTime<Utc>) -> Beat {
    let clock: SharedClock = Arc::new(FixedClock::at(at));
    Beat::new(&w.app.engine_state(w.settings(), clock))
}

/// The runs of `c`, newest first.
async fn runs(w: &World, t: &Tenant, c: &str) -> Vec<Value> {
    let r = w.app.get(&format!("/api/v1/campaigns/{c}/runs?per_page=500"), t).await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

async fn status(w: &World, t: &Tenant, c: &str) -> String {
    let r = w.app.get(&format!("/api/v1/campaigns/{c}"), t).await;
    r.ok(200)["status"].as_str().unwrap().to_owned()
}

fn instant(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// Ticks hourly (at :10) from `from` for `hours`.
async fn tick_hourly(b: &Beat, from: DateTime<Utc>, hours: i64) {
    for h in 0..hours {
        b.tick(from + Duration::hours(h) + Duration::minutes(10)).await.unwrap();
    }
}

fn assert_one_run_per_local_day_at_nine(runs: &[Value], tz: &str, days: usize) {
    let tz: Tz = tz.parse().unwrap();
    assert_eq!(runs.len(), days, "{runs:#?}");
    let dates: BTreeSet<_> = runs
        .iter()
        .map(|r| instant(&r["occurrence_at"]).with_timezone(&tz).date_naive())
        .collect();
    assert_eq!(dates.len(), days, "one run per local day");
    for r in runs {
        let local = instant(&r["occurrence_at"]).with_timezone(&tz);
        assert_eq!(local.format("%H:%M").to_string(), "09:00", "{r}");
        assert_eq!(r["status"], "preparing", "{r}");
        assert!(
            r["name"].as_str().unwrap().ends_with(&local.date_naive().to_string()),
            "{r}"
        );
    }
}

/// Daily at 09:00 in São Paulo (no DST since 2019) and New York over a week from `start`
/// (ticking hourly): one run per local day, each at 09:00 local.
async fn one_run_per_day_over_a_week_from(start: DateTime<Utc>) {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let daily = json!({"freq": "daily", "at": "09:00"});
    let sp = recurring(&w, &w.t, &contacts, "America/Sao_Paulo", daily.clone()).await;
    let ny = recurring(&w, &w.t, &contacts, "America/New_York", daily).await;
    start_at(&w, &sp, start).await;
    let (t, started) = start_at(&w, &ny, start).await;
    assert_eq!(started["status"], "scheduled");
    let parent = w.app.get(&format!("/api/v1/campaigns/{ny}/stats"), &t).await;
    assert!(
        parent.ok(200)["estimated_completion_at"].is_null(),
        "a series sends nothing itself: no end to estimate"
    );
    tick_hourly(&beat(&w, start), start, 7 * 24).await;
    assert_one_run_per_local_day_at_nine(&runs(&w, &t, &sp).await, "America/Sao_Paulo", 7);
    assert_one_run_per_local_day_at_nine(&runs(&w, &t, &ny).await, "America/New_York", 7);
    for r in runs(&w, &t, &sp).await {
        assert_eq!(instant(&r["occurrence_at"]).format("%H:%M").to_string(), "12:00");
    }
}

#[tokio::test]
async fn daily_at_nine_makes_one_run_a_day_across_the_march_2026_dst_change() {
    // New York springs forward on Sunday 8 March 2026.
    one_run_per_day_over_a_week_from(utc(2026, 3, 5, 0, 0)).await;
}

#[tokio::test]
async fn daily_at_nine_makes_one_run_a_day_across_the_november_2026_dst_change() {
    // New York falls back on Sunday 1 November 2026.
    one_run_per_day_over_a_week_from(utc(2026, 10, 29, 0, 0)).await;
}

#[tokio::test]
async fn a_started_recurring_campaign_is_scheduled_without_recipients_and_shows_its_rule() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = recurring(
        &w,
        &w.t,
        &contacts,
        "America/Sao_Paulo",
        json!({"freq": "weekly", "at": "18:30", "weekdays": [5, 1, 5]}),
    )
    .await;
    let view = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await;
    assert_eq!(
        view.ok(200)["recurrence"],
        json!({"freq": "weekly", "at": "18:30", "weekdays": [1, 5], "max_lateness_minutes": 60})
    );
    // Monday 30 November 2026, 10:00 in São Paulo: the first occurrence is that evening.
    let (t, started) = start_at(&w, &c, utc(2026, 11, 30, 13, 0)).await;
    assert_eq!(started["status"], "scheduled");
    assert_eq!(instant(&started["next_occurrence_at"]), utc(2026, 11, 30, 21, 30));
    assert!(w.counts(&c).await.is_empty(), "a parent has no recipients of its own");
    // Its audience is never prepared, and the beat never promotes it.
    beat(&w, utc(2026, 11, 30, 13, 5))
        .tick(utc(2026, 11, 30, 13, 5))
        .await
        .unwrap();
    assert_eq!(status(&w, &t, &c).await, "scheduled");
}

#[tokio::test]
async fn each_run_resolves_its_audience_then_and_waits_while_the_previous_run_holds_the_instance() {
    let w = world().await;
    let contacts = w.contacts(3).await;
    let c = recurring(
        &w,
        &w.t,
        &contacts,
        "America/Sao_Paulo",
        json!({"freq": "daily", "at": "09:00"}),
    )
    .await;
    let (t, _) = start_at(&w, &c, utc(2026, 11, 30, 10, 0)).await;
    let day1 = utc(2026, 11, 30, 12, 1);
    let b = beat(&w, day1);
    assert_eq!(b.tick(day1).await.unwrap().runs, 1);
    let clock: SharedClock = Arc::new(FixedClock::at(day1));
    preparation::resume_unfinished(&w.app.db, &clock, 100).await.unwrap();
    let first = runs(&w, &t, &c).await[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(status(&w, &t, &first).await, "active");
    assert_eq!(w.counts(&first).await.get("pending"), Some(&3));
    // The next day the first run is still sending: the second waits, `scheduled`.
    let day2 = utc(2026, 12, 1, 12, 1);
    assert_eq!(b.tick(day2).await.unwrap().runs, 1);
    let clock: SharedClock = Arc::new(FixedClock::at(day2));
    preparation::resume_unfinished(&w.app.db, &clock, 100).await.unwrap();
    let all = runs(&w, &t, &c).await;
    let second = all[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(all[1]["id"], first.as_str(), "newest first");
    assert_eq!(status(&w, &t, &second).await, "scheduled");
    assert_eq!(w.counts(&second).await.get("pending"), Some(&3));
    assert!(w.counts(&c).await.is_empty());
    let stats = w.app.get(&format!("/api/v1/campaigns/{second}/stats"), &t).await;
    assert_eq!(stats.ok(200)["counts"]["pending"], 3);
}

#[tokio::test]
async fn the_31st_runs_on_the_last_day_of_february_and_april() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let monthly = json!({"freq": "monthly", "at": "09:00", "month_day": 31});
    let c = recurring(&w, &w.t, &contacts, "America/Sao_Paulo", monthly).await;
    // 31 January 2026 10:00 in São Paulo: January's occurrence has passed.
    let (t, started) = start_at(&w, &c, utc(2026, 1, 31, 13, 0)).await;
    assert_eq!(instant(&started["next_occurrence_at"]), utc(2026, 2, 28, 12, 0));
    let b = beat(&w, utc(2026, 2, 28, 12, 5));
    for day in [
        utc(2026, 2, 28, 12, 5),
        utc(2026, 3, 31, 12, 5),
        utc(2026, 4, 30, 12, 5),
    ] {
        assert_eq!(b.tick(day).await.unwrap().runs, 1, "{day}");
    }
    let dates: Vec<DateTime<Utc>> = runs(&w, &t, &c)
        .await
        .iter()
        .map(|r| instant(&r["occurrence_at"]))
        .collect();
    assert_eq!(
        dates,
        [
            utc(2026, 4, 30, 12, 0),
            utc(2026, 3, 31, 12, 0),
            utc(2026, 2, 28, 12, 0)
        ]
    );
}

#[tokio::test]
async fn count_and_until_end_the_series_and_complete_the_parent() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let tz = "America/Sao_Paulo";
    let counted = recurring(
        &w,
        &w.t,
        &contacts,
        tz,
        json!({"freq": "daily", "at": "09:00", "count": 2}),
    )
    .await;
    let until = recurring(
        &w,
        &w.t,
        &contacts,
        tz,
        json!({"freq": "daily", "at": "09:00", "until": "2026-12-02"}),
    )
    .await;
    // A receiver that never answers: the outbox rows are what this test reads.
    let sub = w
        .app
        .post(
            "/api/v1/webhook-subscriptions",
            &w.t,
            json!({"url": "http://127.0.0.1:9/hooks", "events": ["campaign.started", "campaign.completed"]}),
        )
        .await;
    let sub = sub.ok(201)["id"].as_str().unwrap().to_owned();
    start_at(&w, &counted, utc(2026, 11, 30, 10, 0)).await;
    let (t, _) = start_at(&w, &until, utc(2026, 11, 30, 10, 0)).await;
    let b = beat(&w, utc(2026, 11, 30, 12, 1));
    for d in 0..5 {
        b.tick(utc(2026, 11, 30, 12, 1) + Duration::days(d)).await.unwrap();
    }
    // Each run the beat created is announced and audited like a start; each ended series
    // announces its parent's completion.
    let log = w
        .app
        .get(
            &format!("/api/v1/webhook-subscriptions/{sub}/deliveries?per_page=500"),
            &t,
        )
        .await;
    let events: Vec<String> = log.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event"].as_str().unwrap().to_owned())
        .collect();
    let count = |e: &str| events.iter().filter(|x| *x == e).count();
    assert_eq!(
        (count("campaign.started"), count("campaign.completed")),
        (2 + 5, 2),
        "two parents started, five runs, two series ended: {events:?}"
    );
    let audit = w.app.get("/api/v1/audit-logs?per_page=500", &t).await;
    let runs_audited = audit.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "campaign.run" && a["user_id"].is_null())
        .count();
    assert_eq!(runs_audited, 5);
    assert_eq!(runs(&w, &t, &counted).await.len(), 2);
    assert_eq!(
        runs(&w, &t, &until).await.len(),
        3,
        "30 November to 2 December inclusive"
    );
    for c in [&counted, &until] {
        let v = w.app.get(&format!("/api/v1/campaigns/{c}"), &t).await;
        assert_eq!(v.ok(200)["status"], "completed");
        assert!(v.body["next_occurrence_at"].is_null());
    }
}

#[tokio::test]
async fn two_beats_racing_for_one_occurrence_create_one_run() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = recurring(
        &w,
        &w.t,
        &contacts,
        "America/Sao_Paulo",
        json!({"freq": "daily", "at": "09:00"}),
    )
    .await;
    let (t, _) = start_at(&w, &c, utc(2026, 11, 30, 10, 0)).await;
    let (a, b) = (beat(&w, utc(2026, 11, 30, 12, 0)), beat(&w, utc(2026, 11, 30, 12, 0)));
    for d in 0..3 {
        let at = utc(2026, 11, 30, 12, 0) + Duration::days(d);
        let (ra, rb) = tokio::join!(a.tick(at), b.tick(at));
        assert_eq!(ra.unwrap().runs + rb.unwrap().runs, 1, "{at}");
        // A beat restarted at the same instant finds the occurrence done.
        assert_eq!(beat(&w, at).tick(at).await.unwrap().runs, 0);
    }
    assert_eq!(runs(&w, &t, &c).await.len(), 3);
}

#[tokio::test]
async fn an_occurrence_missed_by_more_than_the_lateness_bound_is_skipped_not_sent_late() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = recurring(
        &w,
        &w.t,
        &contacts,
        "America/Sao_Paulo",
        json!({"freq": "daily", "at": "09:00", "max_lateness_minutes": 30}),
    )
    .await;
    let (t, _) = start_at(&w, &c, utc(2026, 11, 30, 10, 0)).await;
    // Every beat was down from before 09:00 until 09:31 (São Paulo).
    let report = beat(&w, utc(2026, 11, 30, 12, 31))
        .tick(utc(2026, 11, 30, 12, 31))
        .await
        .unwrap();
    assert_eq!((report.runs, report.skipped_runs), (0, 1));
    let skipped = &runs(&w, &t, &c).await[0];
    assert_eq!(skipped["status"], "cancelled");
    assert_eq!(skipped["cancel_reason"], "skipped_late");
    assert!(
        w.counts(skipped["id"].as_str().unwrap()).await.is_empty(),
        "nobody is sent a late run"
    );
    let parent = w.app.get(&format!("/api/v1/campaigns/{c}"), &t).await;
    assert_eq!(instant(&parent.ok(200)["next_occurrence_at"]), utc(2026, 12, 1, 12, 0));
    // Within the bound the next day: a run.
    let report = beat(&w, utc(2026, 12, 1, 12, 29))
        .tick(utc(2026, 12, 1, 12, 29))
        .await
        .unwrap();
    assert_eq!((report.runs, report.skipped_runs), (1, 0));
}

#[tokio::test]
async fn pausing_stops_occurrences_resume_takes_the_next_future_one_and_cancel_cascades_on_request() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let tz = "America/Sao_Paulo";
    let daily = json!({"freq": "daily", "at": "09:00"});
    let c = recurring(&w, &w.t, &contacts, tz, daily.clone()).await;
    let other = recurring(&w, &w.t, &contacts, tz, daily).await;
    start_at(&w, &c, utc(2026, 11, 30, 10, 0)).await;
    start_at(&w, &other, utc(2026, 11, 30, 10, 0)).await;
    let b = beat(&w, utc(2026, 11, 30, 12, 5));
    b.tick(utc(2026, 11, 30, 12, 5)).await.unwrap();
    let t = w.app.travel(&w.t, utc(2026, 11, 30, 15, 0)).await;
    let paused = w.app.post(&format!("/api/v1/campaigns/{c}/pause"), &t, json!({})).await;
    assert_eq!(paused.ok(200)["status"], "paused");
    assert!(paused.body["next_occurrence_at"].is_null());
    b.tick(utc(2026, 12, 1, 12, 5)).await.unwrap();
    assert_eq!(runs(&w, &t, &c).await.len(), 1, "no run while paused");
    // Resumed at 10:00 on 1 December: that day's 09:00 is not caught up.
    let t = w.app.travel(&w.t, utc(2026, 12, 1, 13, 0)).await;
    let resumed = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/resume"), &t, json!({}))
        .await;
    assert_eq!(resumed.ok(200)["status"], "scheduled");
    assert_eq!(instant(&resumed.body["next_occurrence_at"]), utc(2026, 12, 2, 12, 0));
    b.tick(utc(2026, 12, 1, 13, 5)).await.unwrap();
    assert_eq!(runs(&w, &t, &c).await.len(), 1);
    b.tick(utc(2026, 12, 2, 12, 5)).await.unwrap();
    assert_eq!(runs(&w, &t, &c).await.len(), 2);
    // Cancel without cascade: the runs in progress go on; with it, they are cancelled.
    let t = w.app.travel(&w.t, utc(2026, 12, 2, 13, 0)).await;
    let cancelled = w
        .app
        .post(&format!("/api/v1/campaigns/{other}/cancel"), &t, json!({}))
        .await;
    assert_eq!(cancelled.ok(200)["status"], "cancelled");
    let cascaded = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel?cascade=true"), &t, json!({}))
        .await;
    assert_eq!(cascaded.ok(200)["status"], "cancelled");
    b.tick(utc(2026, 12, 3, 12, 5)).await.unwrap();
    let kept: Vec<Value> = runs(&w, &t, &other).await;
    assert_eq!(kept.len(), 3, "no run after cancel");
    assert!(kept.iter().all(|r| r["status"] == "preparing"), "{kept:#?}");
    let gone: Vec<Value> = runs(&w, &t, &c).await;
    assert_eq!(gone.len(), 2);
    assert!(gone.iter().all(|r| r["status"] == "cancelled"), "{gone:#?}");
}

#[tokio::test]
async fn a_bad_recurrence_is_a_422_naming_each_field_and_can_be_removed_from_a_draft() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let body = |recurrence: Value| {
        json!({"name": "R", "instance_id": w.instance, "messages": [{"text": "Oi"}],
               "audience": {"contact_ids": contacts}, "recurrence": recurrence})
    };
    for (recurrence, field) in [
        (json!({"freq": "daily", "at": "25:00"}), "recurrence.at"),
        (
            json!({"freq": "weekly", "at": "09:00", "weekdays": [8]}),
            "recurrence.weekdays[0]",
        ),
        (json!({"freq": "weekly", "at": "09:00"}), "recurrence.weekdays"),
        (
            json!({"freq": "monthly", "at": "09:00", "month_day": 0}),
            "recurrence.month_day",
        ),
        (json!({"freq": "daily", "at": "09:00", "count": 0}), "recurrence.count"),
        (
            json!({"freq": "daily", "at": "09:00", "max_lateness_minutes": 0}),
            "recurrence.max_lateness_minutes",
        ),
        (json!({"freq": "hourly", "at": "09:00"}), "recurrence.freq"),
        (
            json!({"freq": "daily", "at": "09:00", "until": "2026-02-30"}),
            "recurrence.until",
        ),
        (json!({"freq": "daily", "at": 9}), "recurrence.at"),
        (json!({"freq": "daily", "at": "09:00", "every": 2}), "recurrence"),
    ] {
        let r = w.app.post("/api/v1/campaigns", &w.t, body(recurrence.clone())).await;
        let fields = r.fields();
        assert!(fields.iter().any(|f| f.starts_with(field)), "{recurrence}: {fields:?}");
    }
    let c = w
        .app
        .post("/api/v1/campaigns", &w.t, body(json!({"freq": "daily", "at": "09:00"})))
        .await
        .id();
    let patched = w
        .app
        .patch(
            &format!("/api/v1/campaigns/{c}"),
            &w.t,
            json!({"recurrence": {"freq": "daily", "at": "9"}}),
        )
        .await;
    assert_eq!(patched.fields(), ["recurrence.at"]);
    let cleared = w
        .app
        .patch(&format!("/api/v1/campaigns/{c}"), &w.t, json!({"recurrence": null}))
        .await;
    assert!(cleared.ok(200)["recurrence"].is_null());
}

#[tokio::test]
async fn a_series_whose_until_has_passed_cannot_start_and_runs_are_private_and_paginated() {
    let w = world().await;
    let contacts = w.contacts(1).await;
    let c = recurring(
        &w,
        &w.t,
        &contacts,
        "America/Sao_Paulo",
        json!({"freq": "daily", "at": "09:00", "until": "2026-01-01"}),
    )
    .await;
    let t = w.app.travel(&w.t, utc(2026, 11, 30, 10, 0)).await;
    let r = w.app.post(&format!("/api/v1/campaigns/{c}/start"), &t, json!({})).await;
    assert_eq!(r.problem(409)["status"], 409);
    assert_eq!(status(&w, &t, &c).await, "draft");
    let other = w.app.signup("Outra").await;
    let other = w.app.travel(&other, utc(2026, 11, 30, 10, 0)).await;
    w.app
        .get(&format!("/api/v1/campaigns/{c}/runs"), &other)
        .await
        .problem(404);
    let page = w.app.get(&format!("/api/v1/campaigns/{c}/runs?per_page=0"), &t).await;
    assert_eq!(page.fields(), ["per_page"]);
    let empty = w.app.get(&format!("/api/v1/campaigns/{c}/runs"), &t).await;
    assert_eq!(empty.ok(200)["total"], 0);
    let bad = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel?cascade=maybe"), &t, json!({}))
        .await;
    assert_eq!(bad.fields(), ["cascade"]);
}

#[tokio::test]
async fn a_birthday_filter_greets_the_contacts_whose_day_and_month_is_the_runs_local_date() {
    let w = world().await;
    let mut ids = vec![];
    for (i, birthday) in [
        Some("1990-12-01"),
        Some("01/12/1985"),
        Some("2000-02-29"),
        Some("1990-12-02"),
        Some("not a date"),
        None,
    ]
    .into_iter()
    .enumerate()
    {
        let fields = birthday.map_or(json!({}), |b| json!({"aniversario": b}));
        let body = json!({"phone": format!("55119777700{i:02}"), "name": format!("P{i}"), "fields": fields});
        ids.push(w.app.post("/api/v1/contacts", &w.t, body).await.id());
    }
    let body = |ids: &[String]| {
        json!({
            "name": "Parabéns", "instance_id": w.instance, "messages": [{"text": "Feliz aniversário, {{nome}}!"}],
            "audience": {"contact_ids": ids, "filters": [{"field": "aniversario", "matches": "today"}]},
            "schedule": always_open("America/Sao_Paulo"), "recurrence": {"freq": "daily", "at": "09:00"},
        })
    };
    let c = w.app.post("/api/v1/campaigns", &w.t, body(&ids)).await;
    assert_eq!(c.ok(201)["audience"]["filters"][0]["matches"], "today");
    let c = c.id();
    let bad = w
        .app
        .post("/api/v1/campaigns", &w.t, {
            let mut b = body(&ids);
            b["audience"]["filters"] =
                json!([{"field": "", "matches": "today"}, {"field": "x", "matches": "tomorrow"}]);
            b
        })
        .await;
    assert!(
        bad.fields().iter().all(|f| f.starts_with("audience.filters")),
        "{:?}",
        bad.body
    );
    let (t, _) = start_at(&w, &c, utc(2026, 11, 30, 10, 0)).await;
    let day = utc(2026, 12, 1, 12, 1);
    assert_eq!(beat(&w, day).tick(day).await.unwrap().runs, 1);
    let clock: SharedClock = Arc::new(FixedClock::at(day));
    preparation::resume_unfinished(&w.app.db, &clock, 100).await.unwrap();
    let run = runs(&w, &t, &c).await[0]["id"].as_str().unwrap().to_owned();
    let recipients = w.app.get(&format!("/api/v1/campaigns/{run}/recipients"), &t).await;
    let mut names: Vec<String> = recipients.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["P0", "P1"]);
    // 29 February is greeted on 28 February in a year without it (2027).
    let cancelled = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/cancel"), &t, json!({}))
        .await;
    assert_eq!(cancelled.ok(200)["status"], "cancelled");
    let leap = w.app.post("/api/v1/campaigns", &t, body(&ids)).await.id();
    let (t, _) = start_at(&w, &leap, utc(2027, 2, 27, 13, 0)).await;
    let day = utc(2027, 2, 28, 12, 1);
    assert_eq!(beat(&w, day).tick(day).await.unwrap().runs, 1);
    let clock: SharedClock = Arc::new(FixedClock::at(day));
    preparation::resume_unfinished(&w.app.db, &clock, 100).await.unwrap();
    let run = runs(&w, &t, &leap).await[0]["id"].as_str().unwrap().to_owned();
    let recipients = w.app.get(&format!("/api/v1/campaigns/{run}/recipients"), &t).await;
    let items = recipients.ok(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:#?}");
    assert_eq!(items[0]["name"], "P2");
}
