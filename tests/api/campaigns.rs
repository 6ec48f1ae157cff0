use crate::auth::count;
use crate::helpers::{spawn_app, Tenant, TestApp};
use chrono::TimeZone;
use serde_json::{json, Value};

/// A tenant with an instance and one contact, and a valid campaign body for them; its
/// media files are served by a sandbox (media URLs are checked when a campaign is saved).
struct Setup {
    t: Tenant,
    instance: String,
    contact: String,
    files: String,
    _sandbox: crate::engine::Sandbox,
}

async fn setup(app: &TestApp) -> Setup {
    let sandbox = crate::engine::start_sandbox();
    sandbox.state.put_file("a.png", "image/png", 50_000);
    sandbox.state.put_file("a.pdf", "application/pdf", 50_000);
    let files = format!("{}/_sandbox/files", sandbox.url);
    let t = app.signup("Acme").await;
    let instance = app.create_instance(&t, "loja-1").await;
    let contact = app
        .post(
            "/api/v1/contacts",
            &t,
            json!({"phone": "11987654321", "name": "João Silva", "fields": {"quem_indicou": "Ana"}}),
        )
        .await
        .id();
    Setup {
        t,
        instance,
        contact,
        files,
        _sandbox: sandbox,
    }
}

fn body(s: &Setup) -> Value {
    json!({
        "name": "Black Friday",
        "instance_id": s.instance,
        "messages": [
            {"text": "{{saudacao}}, {{nome}}! {Temos|Preparamos} uma oferta. Indicação de {{quem_indicou}}."},
            {"text": "Oi {{nome|cliente}}, veja", "media": {"type": "image", "url": format!("{}/a.png", s.files)}}
        ],
        "audience": {"contact_ids": [s.contact]},
        "schedule": {"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR",
                     "days": [1,2,3,4,5], "windows": [{"start": "09:00", "end": "18:00"}]},
        "pacing": {"min_interval_seconds": 20, "max_interval_seconds": 40}
    })
}

#[tokio::test]
async fn a_campaign_is_created_as_a_draft_with_its_definition_normalised() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let r = app.post("/api/v1/campaigns", &s.t, body(&s)).await;
    let b = r.ok(201);
    assert_eq!(b["status"], "draft");
    assert_eq!(b["messages"].as_array().unwrap().len(), 2);
    assert_eq!(b["messages"][1]["media"]["type"], "image");
    assert_eq!(b["schedule"]["mode"], "business_hours");
    assert_eq!(b["schedule"]["skip_holidays"], true);
    assert_eq!(
        b["pacing"],
        json!({"min_interval_seconds": 20.0, "max_interval_seconds": 40.0})
    );
    let id = r.id();
    assert_eq!(
        app.get(&format!("/api/v1/campaigns/{id}"), &s.t).await.ok(200)["name"],
        "Black Friday"
    );
    let drafts = app.get("/api/v1/campaigns?status=draft", &s.t).await;
    assert_eq!(drafts.ok(200)["total"], 1);
    assert_eq!(
        app.get("/api/v1/campaigns?status=active", &s.t).await.ok(200)["total"],
        0
    );
    assert_eq!(
        app.get("/api/v1/campaigns?status=bogus", &s.t).await.fields(),
        ["status"]
    );
}

#[tokio::test]
async fn defaults_fill_a_minimal_campaign() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let r = app
        .post(
            "/api/v1/campaigns",
            &s.t,
            json!({"name": "Mínima", "instance_id": s.instance, "messages": [{"text": "Oi"}], "audience": {"contact_ids": [s.contact]}}),
        )
        .await;
    let b = r.ok(201);
    assert_eq!(b["schedule"]["mode"], "business_hours");
    assert_eq!(b["schedule"]["timezone"], "America/Sao_Paulo");
    assert_eq!(b["schedule"]["windows"], json!([{"start": "08:00", "end": "18:00"}]));
    assert_eq!(b["pacing"]["min_interval_seconds"], 20.0);
}

#[tokio::test]
async fn messages_per_minute_is_stored_as_both_intervals() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let mut b = body(&s);
    b["pacing"] = json!({"messages_per_minute": 30});
    let r = app.post("/api/v1/campaigns", &s.t, b).await;
    assert_eq!(
        r.ok(201)["pacing"],
        json!({"min_interval_seconds": 2.0, "max_interval_seconds": 2.0})
    );
}

#[tokio::test]
async fn every_invalid_part_of_a_campaign_is_named_by_its_path_and_nothing_is_written() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let other = app.signup("Other").await;
    let foreign_instance = app.create_instance(&other, "theirs").await;
    let foreign_group = app.post("/api/v1/groups", &other, json!({"name": "G"})).await.id();
    let b = json!({
        "name": "",
        "instance_id": foreign_instance,
        "messages": [
            {"text": "Oi {{nome"},
            {"text": " "},
            {"text": "Oi {{apelido}}"},
            {"text": "ok", "media": {"type": "image", "url": "not a url"}},
        ],
        "audience": {"group_ids": [foreign_group]},
        "schedule": {"mode": "custom", "timezone": "Mars/Base", "days": [0, 8], "windows": [{"start": "25:00", "end": "18:00"}]},
        "pacing": {"min_interval_seconds": 50, "max_interval_seconds": 10}
    });
    let r = app.post("/api/v1/campaigns", &s.t, b).await;
    let fields = r.fields();
    for expected in [
        "name",
        "instance_id",
        "messages[0].text",
        "messages[1].text",
        "messages[2].text",
        "messages[3].media.url",
        "audience.group_ids[0]",
        "schedule.timezone",
        "schedule.days[0]",
        "schedule.days[1]",
        "schedule.windows[0].start",
        "pacing.min_interval_seconds",
    ] {
        assert!(fields.iter().any(|f| f == expected), "{expected} not in {fields:?}");
    }
    assert!(
        r.body.to_string().contains("{{apelido}}"),
        "the unknown variable is named"
    );
    assert_eq!(count(&app, "campaigns").await, 0);
}

#[tokio::test]
async fn message_counts_outside_one_to_five_and_empty_audiences_are_refused() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let mut b = body(&s);
    b["messages"] = json!([]);
    b["audience"] = json!({});
    assert_eq!(
        app.post("/api/v1/campaigns", &s.t, b.clone()).await.fields(),
        ["messages", "audience"]
    );
    b["messages"] = json!((0..6).map(|_| json!({"text": "oi"})).collect::<Vec<_>>());
    b["audience"] = json!({"contact_ids": [s.contact]});
    assert_eq!(app.post("/api/v1/campaigns", &s.t, b).await.fields(), ["messages"]);
}

#[tokio::test]
async fn a_schedule_that_can_never_open_is_refused() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    // A custom schedule that sends only on Sundays, and the tenant closes on every Sunday
    // of the next three years.
    let now = arauto::clock::Clock::now(&app.clock);
    let mut d = now.date_naive();
    let mut sundays = vec![];
    while sundays.len() < 160 {
        if chrono::Datelike::weekday(&d) == chrono::Weekday::Sun {
            sundays.push(d);
        }
        d = d.succ_opt().unwrap();
    }
    for day in sundays {
        app.post(
            "/api/v1/holidays",
            &s.t,
            json!({"date": day.to_string(), "name": "Fechado"}),
        )
        .await
        .ok(201);
    }
    let mut b = body(&s);
    b["schedule"] =
        json!({"mode": "custom", "timezone": "UTC", "days": [7], "windows": [{"start": "09:00", "end": "10:00"}]});
    assert_eq!(app.post("/api/v1/campaigns", &s.t, b).await.fields(), ["schedule"]);
}

#[tokio::test]
async fn a_template_is_copied_into_the_campaign() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let tpl = app
        .post("/api/v1/templates", &s.t, json!({"name": "Boas-vindas", "text": "Bem-vindo, {{nome}}!", "media": {"type": "document", "url": format!("{}/a.pdf", s.files), "file_name": "a.pdf"}}))
        .await;
    let tpl_id = tpl.id();
    let mut b = body(&s);
    b["messages"] = json!([{"template_id": tpl_id}]);
    let c = app.post("/api/v1/campaigns", &s.t, b).await;
    assert_eq!(c.ok(201)["messages"][0]["text"], "Bem-vindo, {{nome}}!");
    assert_eq!(c.body["messages"][0]["media"]["file_name"], "a.pdf");
    // Changing the template later does not change the campaign.
    app.patch(&format!("/api/v1/templates/{tpl_id}"), &s.t, json!({"text": "Mudou"}))
        .await
        .ok(200);
    let again = app.get(&format!("/api/v1/campaigns/{}", c.id()), &s.t).await;
    assert_eq!(again.body["messages"][0]["text"], "Bem-vindo, {{nome}}!");
    let mut b = body(&s);
    b["messages"] = json!([{"template_id": uuid::Uuid::new_v4()}]);
    assert_eq!(
        app.post("/api/v1/campaigns", &s.t, b).await.fields(),
        ["messages[0].template_id"]
    );
}

#[tokio::test]
async fn templates_are_created_listed_updated_and_deleted() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let r = app
        .post("/api/v1/templates", &t, json!({"name": "A", "text": "Oi {{nome}}"}))
        .await;
    let id = r.id();
    app.post("/api/v1/templates", &t, json!({"name": "a", "text": "x"}))
        .await
        .problem(409);
    assert_eq!(
        app.post("/api/v1/templates", &t, json!({"name": "B", "text": "Oi {{nome"}))
            .await
            .fields(),
        ["text"]
    );
    assert_eq!(app.get("/api/v1/templates", &t).await.ok(200)["total"], 1);
    let u = app
        .patch(
            &format!("/api/v1/templates/{id}"),
            &t,
            json!({"name": "C", "media": {"type": "image", "url": "https://x.example/i.png"}}),
        )
        .await;
    assert_eq!(u.ok(200)["name"], "C");
    let u = app
        .patch(&format!("/api/v1/templates/{id}"), &t, json!({"media": null}))
        .await;
    assert!(u.ok(200)["media"].is_null());
    app.get(&format!("/api/v1/templates/{id}"), &t).await.ok(200);
    app.delete(&format!("/api/v1/templates/{id}"), &t).await.ok(204);
    app.get(&format!("/api/v1/templates/{id}"), &t).await.problem(404);
}

#[tokio::test]
async fn a_draft_is_edited_and_deleted_but_a_started_campaign_is_not() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    let id = app.post("/api/v1/campaigns", &s.t, body(&s)).await.id();
    let r = app
        .patch(
            &format!("/api/v1/campaigns/{id}"),
            &s.t,
            json!({"name": "Cyber Monday", "pacing": {"messages_per_minute": 2}}),
        )
        .await;
    assert_eq!(r.ok(200)["name"], "Cyber Monday");
    assert_eq!(
        r.body["messages"].as_array().unwrap().len(),
        2,
        "untouched parts are kept"
    );
    assert_eq!(
        app.patch(&format!("/api/v1/campaigns/{id}"), &s.t, json!({"messages": []}))
            .await
            .fields(),
        ["messages"]
    );
    use sea_orm::ConnectionTrait;
    app.db
        .execute_unprepared(&format!("UPDATE campaigns SET status = 'active' WHERE id = '{id}'"))
        .await
        .unwrap();
    let r = app
        .patch(&format!("/api/v1/campaigns/{id}"), &s.t, json!({"name": "x"}))
        .await;
    assert_eq!(r.problem(409)["current_status"], "active");
    assert_eq!(
        app.delete(&format!("/api/v1/campaigns/{id}"), &s.t).await.problem(409)["current_status"],
        "active"
    );
    let draft = app.post("/api/v1/campaigns", &s.t, body(&s)).await.id();
    app.delete(&format!("/api/v1/campaigns/{draft}"), &s.t).await.ok(204);
    app.get(&format!("/api/v1/campaigns/{draft}"), &s.t).await.problem(404);
}

#[tokio::test]
async fn an_instance_used_by_a_campaign_cannot_be_deleted() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    app.post("/api/v1/campaigns", &s.t, body(&s)).await.ok(201);
    app.delete(&format!("/api/v1/instances/{}", s.instance), &s.t)
        .await
        .problem(409);
}

#[tokio::test]
async fn a_preview_renders_every_variant_at_the_next_open_instant() {
    let app = spawn_app().await;
    let s = setup(&app).await;
    // Friday 2026-11-27 19:00 in São Paulo (22:00 UTC): closed until Monday 09:00 (12:00 UTC).
    app.clock
        .set(chrono::Utc.with_ymd_and_hms(2026, 11, 27, 22, 0, 0).unwrap());
    let id = app.post("/api/v1/campaigns", &s.t, body(&s)).await.id();
    let r = app
        .post(
            &format!("/api/v1/campaigns/{id}/preview"),
            &s.t,
            json!({"contact_id": s.contact}),
        )
        .await;
    let b = r.ok(200);
    assert_eq!(b["at"], "2026-11-30T12:00:00Z");
    let first = b["variants"][0]["text"].as_str().unwrap();
    assert!(first.starts_with("Bom dia, João! "), "{first}");
    assert!(first.contains("uma oferta. Indicação de Ana."), "{first}");
    assert!(first.contains("Temos") || first.contains("Preparamos"));
    assert_eq!(b["variants"][1]["text"], "Oi João, veja");
    assert_eq!(b["variants"][1]["media"]["type"], "image");
    let again = app
        .post(
            &format!("/api/v1/campaigns/{id}/preview"),
            &s.t,
            json!({"contact_id": s.contact}),
        )
        .await;
    assert_eq!(again.body, r.body, "a preview is deterministic");
    let other = app.signup("Other").await;
    let theirs = app.create_contact(&other, "11912345678", "Zé").await;
    let r = app
        .post(
            &format!("/api/v1/campaigns/{id}/preview"),
            &s.t,
            json!({"contact_id": theirs}),
        )
        .await;
    assert_eq!(r.fields(), ["contact_id"]);
}
