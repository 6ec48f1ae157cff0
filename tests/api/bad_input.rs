//! Every body-taking route against malformed JSON, wrong types, unknown and missing
//! fields and oversized bodies; every id route against other tenants' ids and bad UUIDs.
//! Always a problem+json 4xx, never a 500, nothing written.

use crate::helpers::{spawn_app, Tenant, TestApp};
use reqwest::Method;
use serde_json::{json, Value};

/// (method, path, a field that exists on the body, whether the body has required fields,
/// whether it is a bulk route with the larger limit)
const BODY_ROUTES: &[(&str, &str, &str, bool, bool)] = &[
    ("POST", "/api/v1/auth/signup", "email", true, false),
    ("POST", "/api/v1/auth/login", "email", true, false),
    ("POST", "/api/v1/users", "email", true, false),
    ("PATCH", "/api/v1/users/{user}", "email", false, false),
    ("POST", "/api/v1/instances", "name", true, false),
    ("PATCH", "/api/v1/instances/{instance}", "name", false, false),
    ("POST", "/api/v1/contacts", "phone", true, false),
    ("PATCH", "/api/v1/contacts/{contact}", "phone", false, false),
    ("POST", "/api/v1/contacts/bulk", "contacts", true, true),
    ("PUT", "/api/v1/settings", "opt_out_keywords", true, false),
    ("POST", "/api/v1/groups", "name", true, false),
    ("PATCH", "/api/v1/groups/{group}", "name", false, false),
    ("POST", "/api/v1/groups/{group}/contacts", "contact_ids", true, true),
    ("DELETE", "/api/v1/groups/{group}/contacts", "contact_ids", true, true),
    ("POST", "/api/v1/tags", "name", true, false),
    ("PATCH", "/api/v1/tags/{tag}", "name", false, false),
    ("POST", "/api/v1/tags/{tag}/contacts", "contact_ids", true, true),
    ("DELETE", "/api/v1/tags/{tag}/contacts", "contact_ids", true, true),
    ("POST", "/api/v1/holidays", "date", true, false),
    ("POST", "/api/v1/templates", "text", true, false),
    ("PATCH", "/api/v1/templates/{template}", "text", false, false),
    ("POST", "/api/v1/campaigns", "messages", true, false),
    ("POST", "/api/v1/messages", "phone", true, false),
    ("POST", "/api/v1/messages/bulk", "messages", true, true),
    ("PATCH", "/api/v1/campaigns/{campaign}", "messages", false, false),
    (
        "POST",
        "/api/v1/campaigns/{campaign}/preview",
        "contact_id",
        true,
        false,
    ),
];

/// Every route that takes an id, with a body that would be valid for it.
const ID_ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("PATCH", "/api/v1/users/{user}", Some(r#"{"role": "admin"}"#)),
    ("DELETE", "/api/v1/users/{user}", None),
    ("GET", "/api/v1/instances/{instance}", None),
    (
        "PATCH",
        "/api/v1/instances/{instance}",
        Some(r#"{"name": "taken over"}"#),
    ),
    ("DELETE", "/api/v1/instances/{instance}", None),
    ("GET", "/api/v1/contacts/{contact}", None),
    ("PATCH", "/api/v1/contacts/{contact}", Some(r#"{"name": "taken over"}"#)),
    ("DELETE", "/api/v1/contacts/{contact}", None),
    ("POST", "/api/v1/contacts/{contact}/opt-in", None),
    ("GET", "/api/v1/groups/{group}", None),
    ("PATCH", "/api/v1/groups/{group}", Some(r#"{"name": "taken over"}"#)),
    ("DELETE", "/api/v1/groups/{group}", None),
    (
        "POST",
        "/api/v1/groups/{group}/contacts",
        Some(r#"{"contact_ids": []}"#),
    ),
    (
        "DELETE",
        "/api/v1/groups/{group}/contacts",
        Some(r#"{"contact_ids": []}"#),
    ),
    ("GET", "/api/v1/tags/{tag}", None),
    ("PATCH", "/api/v1/tags/{tag}", Some(r#"{"name": "taken over"}"#)),
    ("DELETE", "/api/v1/tags/{tag}", None),
    ("POST", "/api/v1/tags/{tag}/contacts", Some(r#"{"contact_ids": []}"#)),
    ("DELETE", "/api/v1/tags/{tag}/contacts", Some(r#"{"contact_ids": []}"#)),
    ("DELETE", "/api/v1/holidays/{holiday}", None),
    ("GET", "/api/v1/templates/{template}", None),
    (
        "PATCH",
        "/api/v1/templates/{template}",
        Some(r#"{"name": "taken over"}"#),
    ),
    ("DELETE", "/api/v1/templates/{template}", None),
    ("GET", "/api/v1/campaigns/{campaign}", None),
    (
        "PATCH",
        "/api/v1/campaigns/{campaign}",
        Some(r#"{"name": "taken over"}"#),
    ),
    ("DELETE", "/api/v1/campaigns/{campaign}", None),
    (
        "POST",
        "/api/v1/campaigns/{campaign}/preview",
        Some(r#"{"contact_id": "00000000-0000-0000-0000-000000000000"}"#),
    ),
    ("POST", "/api/v1/campaigns/{campaign}/start", None),
    ("POST", "/api/v1/campaigns/{campaign}/pause", None),
    ("POST", "/api/v1/campaigns/{campaign}/resume", None),
    ("POST", "/api/v1/campaigns/{campaign}/cancel", None),
    ("GET", "/api/v1/campaigns/{campaign}/stats", None),
    ("GET", "/api/v1/campaigns/{campaign}/recipients", None),
    ("GET", "/api/v1/campaigns/{campaign}/logs", None),
    ("GET", "/api/v1/campaigns/{campaign}/runs", None),
    ("GET", "/api/v1/instances/{instance}/state", None),
    ("POST", "/api/v1/instances/{instance}/connect", None),
    ("POST", "/api/v1/instances/{instance}/logout", None),
];

/// One of each resource, owned by `t`, keyed by the placeholder names above.
struct Owned {
    ids: Vec<(&'static str, String)>,
}

impl Owned {
    async fn create(app: &TestApp, t: &Tenant) -> Self {
        let member = app.member_of(t, &format!("member-{}@example.com", t.tenant_id)).await;
        let instance = app.create_instance(t, "loja-1").await;
        let contact = app.create_contact(t, "11987654321", "Ana").await;
        let group = app.post("/api/v1/groups", t, json!({"name": "G"})).await.id();
        let tag = app.post("/api/v1/tags", t, json!({"name": "T"})).await.id();
        let holiday = app
            .post("/api/v1/holidays", t, json!({"date": "2026-12-24", "name": "H"}))
            .await
            .id();
        let template = app
            .post("/api/v1/templates", t, json!({"name": "T", "text": "Oi"}))
            .await
            .id();
        let campaign_body = json!({"name": "C", "instance_id": instance, "messages": [{"text": "Oi"}], "audience": {"contact_ids": [contact]}});
        let campaign = app.post("/api/v1/campaigns", t, campaign_body).await.id();
        Self {
            ids: vec![
                ("{user}", member.user_id),
                ("{instance}", instance),
                ("{contact}", contact),
                ("{group}", group),
                ("{tag}", tag),
                ("{holiday}", holiday),
                ("{template}", template),
                ("{campaign}", campaign),
            ],
        }
    }

    fn path(&self, template: &str) -> String {
        self.ids.iter().fold(template.to_owned(), |p, (k, v)| p.replace(k, v))
    }
}

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

#[tokio::test]
async fn every_body_route_answers_bad_json_with_a_problem() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let owned = Owned::create(&app, &t).await;
    let limit = app.settings.server.json_limit_bytes;
    let bulk_limit = app.settings.server.bulk_json_limit_bytes;
    for &(m, template, field, has_required, bulk) in BODY_ROUTES {
        let path = owned.path(template);
        let call = |body: Vec<u8>| app.call_raw(method(m), &path, Some(&t.token), "application/json", body);
        let ctx = format!("{m} {template}");

        call(b"{".to_vec()).await.problem(400);
        call(b"{,}".to_vec()).await.problem(400);
        call(b"not json".to_vec()).await.problem(400);
        call(br#"{"a": 1} trailing"#.to_vec()).await.problem(400);

        let wrong_type = serde_json::to_vec(&json!({ field: {"nested": true} })).unwrap();
        assert_eq!(call(wrong_type).await.fields(), [field], "{ctx}: wrong type");
        assert_eq!(call(b"[]".to_vec()).await.fields(), ["body"], "{ctx}: array body");
        // serde would read a struct of optional members from any array: refused as well.
        let nulls = b"[null, null, null, null, null, null]".to_vec();
        assert_eq!(call(nulls).await.fields(), ["body"], "{ctx}: array of nulls");

        let unknown = serde_json::to_vec(&json!({"surprise": 1})).unwrap();
        assert_eq!(call(unknown).await.fields(), ["surprise"], "{ctx}: unknown field");

        if has_required {
            let missing = call(b"{}".to_vec()).await;
            assert_eq!(missing.status, 422, "{ctx}: missing fields");
            assert!(!missing.fields().is_empty(), "{ctx}: missing field is named");
        }

        let huge = format!(
            r#"{{"{field}": "{}"}}"#,
            "x".repeat(if bulk { bulk_limit } else { limit })
        );
        call(huge.into_bytes()).await.problem(413);

        let wrong_media = app
            .call_raw(method(m), &path, Some(&t.token), "text/plain", b"{}".to_vec())
            .await;
        wrong_media.problem(415);
    }
    // Nothing was written by any of it: still one contact, one group, one tag, two users.
    for (table, n) in [
        ("contacts", 1),
        ("groups", 1),
        ("tags", 1),
        ("users", 2),
        ("instances", 1),
        ("tenants", 1),
        ("tenant_settings", 0),
        ("holidays", 1),
        ("templates", 1),
        ("campaigns", 1),
        ("messages", 0),
    ] {
        assert_eq!(crate::auth::count(&app, table).await, n, "{table}");
    }
}

#[tokio::test]
async fn another_tenants_ids_are_404_on_every_route_and_verb() {
    let app = spawn_app().await;
    let attacker = app.signup("Attacker").await;
    let victim = app.signup("Victim").await;
    let theirs = Owned::create(&app, &victim).await;
    Owned::create(&app, &attacker).await;
    for &(m, template, body) in ID_ROUTES {
        let path = theirs.path(template);
        let r = match body {
            Some(b) => {
                app.call_raw(method(m), &path, Some(&attacker.token), "application/json", b.into())
                    .await
            }
            None => app.call(method(m), &path, Some(&attacker.token), None).await,
        };
        assert_eq!(r.status, 404, "{m} {template} leaked: {}", r.body);
        r.problem(404);
    }
    // The victim's resources are untouched.
    for (path, name) in [
        (theirs.path("/api/v1/instances/{instance}"), "loja-1"),
        (theirs.path("/api/v1/contacts/{contact}"), "Ana"),
        (theirs.path("/api/v1/groups/{group}"), "G"),
        (theirs.path("/api/v1/tags/{tag}"), "T"),
        (theirs.path("/api/v1/templates/{template}"), "T"),
        (theirs.path("/api/v1/campaigns/{campaign}"), "C"),
    ] {
        assert_eq!(app.get(&path, &victim).await.ok(200)["name"], name);
    }
    assert_eq!(app.get("/api/v1/users", &victim).await.ok(200)["total"], 2);
}

#[tokio::test]
async fn malformed_ids_in_paths_are_404_problems() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    for &(m, template, body) in ID_ROUTES {
        let path = [
            "{user}",
            "{instance}",
            "{contact}",
            "{group}",
            "{tag}",
            "{holiday}",
            "{template}",
            "{campaign}",
        ]
        .iter()
        .fold(template.to_owned(), |p, k| p.replace(k, "not-a-uuid"));
        let r = match body {
            Some(b) => {
                app.call_raw(method(m), &path, Some(&t.token), "application/json", b.into())
                    .await
            }
            None => app.call(method(m), &path, Some(&t.token), None).await,
        };
        assert_eq!(r.status, 404, "{m} {path}: {}", r.body);
        r.problem(404);
    }
}

#[tokio::test]
async fn an_id_that_does_not_exist_is_the_same_404() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let missing = uuid::Uuid::new_v4();
    let r: Value = app
        .get(&format!("/api/v1/contacts/{missing}"), &t)
        .await
        .problem(404)
        .clone();
    assert_eq!(r["detail"], "contact not found");
}

/// Rows in every table a body route writes, to prove a refused request wrote nothing.
async fn table_counts(app: &TestApp) -> Vec<(&'static str, i64)> {
    let mut counts = vec![];
    for table in [
        "tenants",
        "users",
        "instances",
        "contacts",
        "groups",
        "tags",
        "holidays",
        "templates",
        "campaigns",
        "audit_logs",
    ] {
        counts.push((table, crate::auth::count(app, table).await));
    }
    counts
}

/// Sends `body` to `m path` and asserts a 422 that names exactly `field`.
async fn assert_names(app: &TestApp, t: &Tenant, m: &str, path: &str, body: Value, field: &str) {
    let r = app.call(method(m), path, Some(&t.token), Some(body)).await;
    assert_eq!(r.fields(), [field], "{m} {path}: {}", r.body);
}

#[tokio::test]
async fn nul_in_any_text_is_a_422_naming_the_field_and_nothing_is_written() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let owned = Owned::create(&app, &t).await;
    let p = |template: &str| owned.path(template);
    let bad = "J\u{0}oão";
    let instance = owned.path("{instance}");
    let before = table_counts(&app).await;
    let signup = json!({"tenant_name": bad, "email": "nul@example.com", "password": "correct horse battery"});
    let r = app.call(Method::POST, "/api/v1/auth/signup", None, Some(signup)).await;
    assert_eq!(r.fields(), ["tenant_name"], "{}", r.body);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            p("/api/v1/users"),
            json!({"email": format!("a{bad}@x.com"), "password": "long enough", "role": "member"}),
            "email",
        ),
        (
            "POST",
            p("/api/v1/instances"),
            json!({"name": bad, "api_url": "http://127.0.0.1:9", "api_key": "k", "instance_name": "x"}),
            "name",
        ),
        (
            "PATCH",
            p("/api/v1/instances/{instance}"),
            json!({"api_key": bad}),
            "api_key",
        ),
        (
            "POST",
            p("/api/v1/contacts"),
            json!({"phone": "11987654322", "name": bad}),
            "name",
        ),
        (
            "POST",
            p("/api/v1/contacts"),
            json!({"phone": "11987654322", "fields": {"nota": bad}}),
            "fields.nota",
        ),
        ("PATCH", p("/api/v1/contacts/{contact}"), json!({"name": bad}), "name"),
        (
            "POST",
            p("/api/v1/contacts/bulk"),
            json!({"contacts": [{"phone": "11987654323"}, {"phone": "11987654324", "name": bad}]}),
            "contacts[1].name",
        ),
        ("POST", p("/api/v1/groups"), json!({"name": bad}), "name"),
        (
            "PATCH",
            p("/api/v1/groups/{group}"),
            json!({"description": bad}),
            "description",
        ),
        ("POST", p("/api/v1/tags"), json!({"name": bad}), "name"),
        ("PATCH", p("/api/v1/tags/{tag}"), json!({"name": bad}), "name"),
        (
            "POST",
            p("/api/v1/holidays"),
            json!({"date": "2026-12-31", "name": bad}),
            "name",
        ),
        (
            "POST",
            p("/api/v1/templates"),
            json!({"name": "Oi", "text": bad}),
            "text",
        ),
        ("PATCH", p("/api/v1/templates/{template}"), json!({"text": bad}), "text"),
        (
            "POST",
            p("/api/v1/campaigns"),
            json!({"name": "C2", "instance_id": instance, "messages": [{"text": "Oi"}, {"text": bad}], "audience": {"contact_ids": [p("{contact}")]}}),
            "messages[1].text",
        ),
        ("PATCH", p("/api/v1/campaigns/{campaign}"), json!({"name": bad}), "name"),
    ];
    for (m, path, body, field) in cases {
        assert_names(&app, &t, m, &path, body, field).await;
    }
    let r = app.get("/api/v1/contacts?q=J%00", &t).await;
    assert_eq!(r.fields(), ["q"], "{}", r.body);
    assert_eq!(table_counts(&app).await, before);
    assert_eq!(
        app.get(&p("/api/v1/contacts/{contact}"), &t).await.ok(200)["name"],
        "Ana"
    );
    assert_eq!(
        app.get(&p("/api/v1/templates/{template}"), &t).await.ok(200)["text"],
        "Oi"
    );
}

#[tokio::test]
async fn oversized_text_and_noncharacters_are_422s_naming_the_field() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let owned = Owned::create(&app, &t).await;
    let p = |template: &str| owned.path(template);
    let instance = owned.path("{instance}");
    let before = table_counts(&app).await;
    let text = "x".repeat(4097);
    let name = "é".repeat(201);
    let cases: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            p("/api/v1/templates"),
            json!({"name": "Oi", "text": text}),
            "text",
        ),
        (
            "POST",
            p("/api/v1/campaigns"),
            json!({"name": "C2", "instance_id": instance, "messages": [{"text": "Oi"}, {"text": text}], "audience": {"contact_ids": [p("{contact}")]}}),
            "messages[1].text",
        ),
        ("POST", p("/api/v1/groups"), json!({"name": name}), "name"),
        (
            "POST",
            p("/api/v1/holidays"),
            json!({"date": "2026-12-31", "name": name}),
            "name",
        ),
        (
            "PATCH",
            p("/api/v1/instances/{instance}"),
            json!({"name": name}),
            "name",
        ),
        (
            "PATCH",
            p("/api/v1/contacts/{contact}"),
            json!({"fields": {"nota": "y".repeat(1001)}}),
            "fields.nota",
        ),
        ("POST", p("/api/v1/tags"), json!({"name": "a\u{FFFF}"}), "name"),
    ];
    for (m, path, body, field) in cases {
        assert_names(&app, &t, m, &path, body, field).await;
    }
    let r = app.get(&format!("/api/v1/contacts?q={}", "a".repeat(1001)), &t).await;
    assert_eq!(r.fields(), ["q"], "{}", r.body);
    // Exactly at the limits is fine.
    let at_limit = json!({"name": "é".repeat(200), "text": "x".repeat(4096)});
    app.post("/api/v1/templates", &t, at_limit).await.ok(201);
    let added: Vec<_> = before
        .iter()
        .map(|&(table, n)| (table, if table == "templates" { n + 1 } else { n }))
        .collect();
    assert_eq!(table_counts(&app).await, added);
}
