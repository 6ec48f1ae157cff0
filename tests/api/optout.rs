//! Opt-out done right (issue 11): one phone normalisation across the Brazilian ninth-digit
//! variants (contacts, bulk, CSV, webhooks, the stored data), per-tenant keywords, an
//! opt-out that stops every campaign of the tenant at once, opt-in, and the settings.

use crate::engine::{fast, immediate, world, Engine, World};
use crate::helpers::{spawn_app, Tenant, TestApp};
use arauto::scheduler::Beat;
use chrono::Utc;
use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};
use std::time::Duration;

/// A Brazilian mobile in its canonical 9-digit form, and its legacy 8-digit notation.
const MOBILE: &str = "5531988887777";
const MOBILE_LEGACY: &str = "553188887777";

async fn webhook_path(w: &World, instance: &str) -> String {
    let i = w.app.get(&format!("/api/v1/instances/{instance}"), &w.t).await;
    i.ok(200)["webhook_path"].as_str().unwrap().to_owned()
}

/// Posts an inbound text message to `instance`'s webhook, from the jid `key`
/// (`{"remoteJid": …}` and whatever else the key carries).
async fn inbound(w: &World, instance: &str, key: Value, text: &str) {
    let mut key = key;
    key["fromMe"] = json!(false);
    key["id"] = json!(format!("IN{}", uuid::Uuid::new_v4().simple()));
    let body = json!({"event": "messages.upsert", "instance": "loja-1",
        "data": {"key": key, "pushName": "Zé", "message": {"conversation": text}, "messageType": "conversation"}});
    let hook = webhook_path(w, instance).await;
    w.app.call(Method::POST, &hook, None, Some(body)).await.ok(200);
}

fn jid(phone: &str) -> Value {
    json!({"remoteJid": format!("{phone}@s.whatsapp.net")})
}

async fn contact(app: &TestApp, t: &Tenant, id: &str) -> Value {
    app.get(&format!("/api/v1/contacts/{id}"), t).await.ok(200).clone()
}

async fn opted_out(app: &TestApp, t: &Tenant, id: &str) -> bool {
    contact(app, t, id).await["opted_out_at"].is_string()
}

async fn contacts_with(app: &TestApp, t: &Tenant, q: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/contacts?q={q}"), t).await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

async fn audit_actions(app: &TestApp, t: &Tenant) -> Vec<String> {
    let logs = app.get("/api/v1/audit-logs?per_page=100", t).await;
    logs.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap().to_owned())
        .collect()
}

async fn recipient_of(w: &World, campaign: &str, phone: &str) -> (String, Option<String>) {
    let row = w
        .app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT status, reason FROM recipients WHERE campaign_id = '{campaign}' AND phone = '{phone}'"),
        ))
        .await
        .unwrap()
        .expect("the contact is a recipient");
    (row.try_get("", "status").unwrap(), row.try_get("", "reason").unwrap())
}

fn sends_to(w: &World, phone: &str) -> usize {
    w.sandbox.sends_per_number().get(phone).copied().unwrap_or(0)
}

#[tokio::test]
async fn a_reply_whose_jid_lacks_the_ninth_digit_opts_out_the_contact_stored_with_it() {
    let w = world().await;
    let id = w.app.create_contact(&w.t, "(31) 98888-7777", "Zé").await;
    assert_eq!(contact(&w.app, &w.t, &id).await["phone"], MOBILE);
    inbound(&w, &w.instance, jid(MOBILE_LEGACY), "SAIR").await;
    assert!(opted_out(&w.app, &w.t, &id).await);
}

#[tokio::test]
async fn a_contact_typed_without_the_ninth_digit_is_stored_with_it_and_a_jid_with_it_opts_it_out() {
    let w = world().await;
    let id = w.app.create_contact(&w.t, "(31) 8888-7777", "Zé").await;
    assert_eq!(contact(&w.app, &w.t, &id).await["phone"], MOBILE);
    inbound(&w, &w.instance, jid(MOBILE), "sair").await;
    assert!(opted_out(&w.app, &w.t, &id).await);
}

#[tokio::test]
async fn an_lid_reply_whose_remote_jid_alt_lacks_the_ninth_digit_opts_out_the_contact() {
    let w = world().await;
    let id = w.app.create_contact(&w.t, "+55 31 98888-7777", "Zé").await;
    let key = json!({"remoteJid": "123456789012345@lid", "remoteJidAlt": format!("{MOBILE_LEGACY}@s.whatsapp.net")});
    inbound(&w, &w.instance, key, "PARAR").await;
    assert!(opted_out(&w.app, &w.t, &id).await);
}

#[tokio::test]
async fn a_landline_keeps_eight_digits_and_is_not_the_mobile_with_a_nine() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let landline = app.create_contact(&t, "(31) 3888-7777", "Loja").await;
    assert_eq!(contact(&app, &t, &landline).await["phone"], "553138887777");
    app.create_contact(&t, "(31) 93888-7777", "Outra").await;
}

#[tokio::test]
async fn bulk_rows_in_both_notations_become_one_contact() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let body = json!({"contacts": [
        {"phone": "(11) 98765-4321", "name": "Ana"},
        {"phone": "(11) 8765-4321", "name": "Ana Souza"},
        {"phone": "(11) 3765-4321", "name": "Escritório"},
    ]});
    let r = app.post("/api/v1/contacts/bulk", &t, body).await;
    assert_eq!(r.ok(200)["created"], 2);
    assert_eq!(r.body["updated"], 1);
    let ana = contacts_with(&app, &t, "5511987654321").await;
    assert_eq!(ana.len(), 1);
    assert_eq!(ana[0]["name"], "Ana Souza", "the later row wins");
    // Bulk again in the other notation updates the same contact.
    let again = json!({"contacts": [{"phone": "+55 11 8765-4321", "name": "Ana S."}]});
    let r = app.post("/api/v1/contacts/bulk", &t, again).await;
    assert_eq!(
        (r.ok(200)["created"].clone(), r.body["updated"].clone()),
        (json!(0), json!(1))
    );
    assert_eq!(crate::auth::count(&app, "contacts").await, 2);
}

#[tokio::test]
async fn csv_rows_in_both_notations_become_one_contact() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    app.create_contact(&t, "(21) 8765-4321", "Bia").await;
    let csv = "phone,name\n\
               (11) 98765-4321,Ana\n\
               11 8765-4321,Ana Souza\n\
               5521987654321,Bia Lima\n";
    let r = app
        .call_raw(
            Method::POST,
            "/api/v1/contacts/import",
            Some(&t.token),
            "text/csv",
            csv.into(),
        )
        .await;
    let b = r.ok(200);
    assert_eq!(
        (b["created"].clone(), b["updated"].clone()),
        (json!(1), json!(2)),
        "{b}"
    );
    assert_eq!(crate::auth::count(&app, "contacts").await, 2);
    assert_eq!(contacts_with(&app, &t, "5511987654321").await[0]["name"], "Ana Souza");
    assert_eq!(contacts_with(&app, &t, "5521987654321").await[0]["name"], "Bia Lima");
}

#[tokio::test]
async fn a_second_notation_of_a_known_mobile_is_a_409() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    app.create_contact(&t, "(11) 98765-4321", "Ana").await;
    app.post("/api/v1/contacts", &t, json!({"phone": "(11) 8765-4321"}))
        .await
        .problem(409);
    app.post("/api/v1/contacts", &t, json!({"phone": "551187654321"}))
        .await
        .problem(409);
    let other = app.create_contact(&t, "(11) 99999-0000", "Bia").await;
    app.patch(
        &format!("/api/v1/contacts/{other}"),
        &t,
        json!({"phone": "+55 11 8765-4321"}),
    )
    .await
    .problem(409);
    assert_eq!(crate::auth::count(&app, "contacts").await, 2);
}

#[tokio::test]
async fn keywords_match_whatever_the_case_accents_and_punctuation_but_a_sentence_does_nothing() {
    let w = world().await;
    let cases = [
        (" Sair.", true),
        ("SÁIR", true),
        ("stop!", true),
        ("Descadastrar 🙏", true),
        ("vou sair amanhã", false),
        ("sair?? não, quero continuar", false),
        ("STOPPED", false),
    ];
    for (i, (text, opts_out)) in cases.iter().enumerate() {
        let phone = format!("55319{}", 70_000_000 + i);
        let id = w.app.create_contact(&w.t, &phone, "C").await;
        inbound(&w, &w.instance, jid(&phone), text).await;
        assert_eq!(opted_out(&w.app, &w.t, &id).await, *opts_out, "{text:?}");
    }
}

#[tokio::test]
async fn a_tenants_own_keywords_replace_the_defaults() {
    let w = world().await;
    let r = w
        .app
        .call(
            Method::PUT,
            "/api/v1/settings",
            Some(&w.t.token),
            Some(json!({"opt_out_keywords": ["Não quero mais", "remover"]})),
        )
        .await;
    assert_eq!(r.ok(200)["opt_out_keywords"], json!(["Não quero mais", "remover"]));
    let a = w.app.create_contact(&w.t, "31970000001", "A").await;
    let b = w.app.create_contact(&w.t, "31970000002", "B").await;
    inbound(&w, &w.instance, jid("5531970000001"), "nao QUERO mais!").await;
    inbound(&w, &w.instance, jid("5531970000002"), "SAIR").await;
    assert!(opted_out(&w.app, &w.t, &a).await);
    assert!(!opted_out(&w.app, &w.t, &b).await, "SAIR is no longer a keyword");
    // Another tenant still has the defaults.
    let other = w.app.signup("Other").await;
    let r = w.app.get("/api/v1/settings", &other).await;
    assert_eq!(
        r.ok(200)["opt_out_keywords"],
        json!(["SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR"])
    );
}

#[tokio::test]
async fn an_opt_out_on_another_number_stops_a_running_campaign_within_one_send() {
    let w = world().await;
    let loja2 = w.instance_for(&w.t, "loja-2").await;
    let mut contacts = w.contacts(12).await;
    // Created last, so sent last.
    contacts.push(w.app.create_contact(&w.t, "(31) 98888-7777", "Zé").await);
    let pacing = json!({"min_interval_seconds": 0.25, "max_interval_seconds": 0.25});
    let c = w.campaign(&contacts, immediate(), pacing).await;
    assert_eq!(w.start(&c).await["status"], "active");
    let engine = Engine::start(&w.live_state(), 1, 2).await;
    while w.sandbox.state.send_count() < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The contact answers SAIR on the tenant's other number, reported without the 9.
    inbound(&w, &loja2, jid(MOBILE_LEGACY), "Sair").await;
    let at_opt_out = sends_to(&w, MOBILE);
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    assert!(sends_to(&w, MOBILE) <= at_opt_out + 1, "at most the send in flight");
    assert_eq!(sends_to(&w, MOBILE), 0, "it was far from its turn");
    assert_eq!(
        recipient_of(&w, &c, MOBILE).await,
        ("skipped".to_owned(), Some("opted_out".to_owned()))
    );
    assert_eq!(w.counts(&c).await.get("sent"), Some(&12));
    assert!(audit_actions(&w.app, &w.t)
        .await
        .contains(&"contact.opt_out".to_owned()));
}

#[tokio::test]
async fn a_worker_does_not_send_to_a_contact_opted_out_after_its_job_was_queued() {
    let w = world().await;
    let mut contacts = w.contacts(3).await;
    let ze = w.app.create_contact(&w.t, "(31) 98888-7777", "Zé").await;
    contacts.push(ze.clone());
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let state = w.live_state();
    Beat::new(&state).tick(Utc::now()).await.unwrap();
    assert_eq!(w.counts(&c).await.get("queued"), Some(&4), "every job is queued");
    // The contact opts out by a path that leaves its queued job as it is.
    w.app
        .db
        .execute_unprepared(&format!("UPDATE contacts SET opted_out_at = now() WHERE id = '{ze}'"))
        .await
        .unwrap();
    let engine = Engine::start(&state, 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    assert_eq!(sends_to(&w, MOBILE), 0);
    assert_eq!(w.sandbox.state.send_count(), 3);
    assert_eq!(
        recipient_of(&w, &c, MOBILE).await,
        ("skipped".to_owned(), Some("opted_out".to_owned()))
    );
}

#[tokio::test]
async fn opting_in_undoes_an_opt_out_and_is_audited() {
    let w = world().await;
    let ze = w.app.create_contact(&w.t, "(31) 98888-7777", "Zé").await;
    inbound(&w, &w.instance, jid(MOBILE), "SAIR").await;
    assert!(opted_out(&w.app, &w.t, &ze).await);
    let r = w
        .app
        .post(&format!("/api/v1/contacts/{ze}/opt-in"), &w.t, json!({}))
        .await;
    assert!(r.ok(200)["opted_out_at"].is_null());
    assert!(!opted_out(&w.app, &w.t, &ze).await);
    assert_eq!(audit_actions(&w.app, &w.t).await[0], "contact.opt_in");
    // Opting in twice is harmless and audits nothing new.
    w.app
        .post(&format!("/api/v1/contacts/{ze}/opt-in"), &w.t, json!({}))
        .await
        .ok(200);
    let opt_ins = audit_actions(&w.app, &w.t)
        .await
        .iter()
        .filter(|a| *a == "contact.opt_in")
        .count();
    assert_eq!(opt_ins, 1);
    // A new campaign reaches the contact again.
    let c = w.campaign(std::slice::from_ref(&ze), immediate(), fast()).await;
    w.start(&c).await;
    assert_eq!(recipient_of(&w, &c, MOBILE).await.0, "pending");
    // Another tenant's id is a 404.
    let other = w.app.signup("Other").await;
    w.app
        .post(&format!("/api/v1/contacts/{ze}/opt-in"), &other, json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn opting_out_through_patch_skips_the_contacts_pending_sends_too() {
    let w = world().await;
    let contacts = w.contacts(2).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    w.app
        .patch(
            &format!("/api/v1/contacts/{}", contacts[0]),
            &w.t,
            json!({"opted_out": true}),
        )
        .await
        .ok(200);
    assert_eq!(w.counts(&c).await.get("skipped"), Some(&1));
    let actions = audit_actions(&w.app, &w.t).await;
    assert_eq!(actions[0], "contact.opt_out");
}

#[tokio::test]
async fn settings_are_validated_and_only_admins_change_them() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let member = app.member_of(&admin, "member@example.com").await;
    let put = |t: &Tenant, body: Value| {
        let token = t.token.clone();
        let app = &app;
        async move {
            app.call(Method::PUT, "/api/v1/settings", Some(&token), Some(body))
                .await
        }
    };
    let defaults = json!(["SAIR", "PARAR", "STOP", "CANCELAR", "DESCADASTRAR"]);
    assert_eq!(
        app.get("/api/v1/settings", &member).await.ok(200)["opt_out_keywords"],
        defaults
    );
    put(&member, json!({"opt_out_keywords": ["sair"]})).await.problem(403);
    for (keywords, field) in [
        (json!([]), "opt_out_keywords"),
        (json!(vec!["k"; 51]), "opt_out_keywords"),
        (json!(["ok", "x".repeat(31)]), "opt_out_keywords[1]"),
        (json!(["  "]), "opt_out_keywords[0]"),
        (json!(["a\u{0}b"]), "opt_out_keywords[0]"),
        (json!(["?!"]), "opt_out_keywords[0]"),
        (json!([1]), "opt_out_keywords[0]"),
        (json!("SAIR"), "opt_out_keywords"),
    ] {
        let r = put(&admin, json!({ "opt_out_keywords": keywords })).await;
        assert_eq!(r.fields(), [field], "{keywords}");
    }
    assert_eq!(put(&admin, json!({})).await.fields(), ["opt_out_keywords"]);
    assert_eq!(crate::auth::count(&app, "tenant_settings").await, 0, "nothing written");
    assert_eq!(
        app.get("/api/v1/settings", &admin).await.ok(200)["opt_out_keywords"],
        defaults
    );
    let r = put(&admin, json!({"opt_out_keywords": [" Sair ", "SAÍR", "x".repeat(30)]})).await;
    assert_eq!(r.ok(200)["opt_out_keywords"], json!(["Sair", "x".repeat(30)]));
    assert_eq!(
        app.get("/api/v1/settings", &member).await.ok(200)["opt_out_keywords"],
        json!(["Sair", "x".repeat(30)])
    );
    assert_eq!(audit_actions(&app, &admin).await[0], "settings.update");
}

#[tokio::test]
async fn the_migration_rewrites_legacy_mobiles_and_merges_a_legacy_duplicate_into_its_contact() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    // Undo this change (and those after it), store what older versions stored, apply again.
    let names: Vec<String> = migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect();
    let ours = names
        .iter()
        .position(|n| n == "m20261130_000011_canonical_phones")
        .unwrap();
    migration::Migrator::down(&app.db, Some((names.len() - ours) as u32))
        .await
        .unwrap();
    let tag = app.post("/api/v1/tags", &t, json!({"name": "VIP"})).await.id();
    let tenant = &t.tenant_id;
    app.db
        .execute_unprepared(&format!(
            "INSERT INTO contacts (id, tenant_id, phone, name, fields, opted_out_at, created_at, updated_at) VALUES \
             ('00000000-0000-0000-0000-000000000001', '{tenant}', '5511987654321', 'Ana', '{{\"a\": 1}}', NULL, now(), now()), \
             ('00000000-0000-0000-0000-000000000002', '{tenant}', '551187654321', 'Ana Souza', '{{\"a\": 2, \"b\": 2}}', now(), now(), now()), \
             ('00000000-0000-0000-0000-000000000003', '{tenant}', '552188887777', 'Bia', '{{}}', NULL, now(), now()), \
             ('00000000-0000-0000-0000-000000000004', '{tenant}', '552133334444', 'Loja', '{{}}', NULL, now(), now()); \
             INSERT INTO contact_tags (tenant_id, contact_id, tag_id) VALUES \
             ('{tenant}', '00000000-0000-0000-0000-000000000002', '{tag}');"
        ))
        .await
        .unwrap();
    migration::Migrator::up(&app.db, None).await.unwrap();
    let phones: Vec<String> = {
        let r = app.get("/api/v1/contacts", &t).await;
        let mut p: Vec<String> = r.ok(200)["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["phone"].as_str().unwrap().to_owned())
            .collect();
        p.sort();
        p
    };
    assert_eq!(phones, ["5511987654321", "552133334444", "5521988887777"]);
    let ana = contact(&app, &t, "00000000-0000-0000-0000-000000000001").await;
    assert_eq!(ana["name"], "Ana", "the canonical contact keeps its name");
    assert_eq!(ana["fields"], json!({"a": 1, "b": 2}), "the duplicate fills the gaps");
    assert_eq!(ana["tag_ids"], json!([tag]));
    assert!(ana["opted_out_at"].is_string(), "an opt-out of either is kept");
    app.get("/api/v1/contacts/00000000-0000-0000-0000-000000000002", &t)
        .await
        .problem(404);
    assert_eq!(audit_actions(&app, &t).await[0], "contact.merge");
}

#[test]
fn the_new_routes_are_documented_with_their_operation_ids_and_errors() {
    let doc = serde_json::to_value(arauto::api::openapi::document()).unwrap();
    for (path, method, id, errors) in [
        ("/api/v1/settings", "get", "getSettings", &["401"][..]),
        (
            "/api/v1/settings",
            "put",
            "updateSettings",
            &["400", "401", "403", "422"][..],
        ),
        (
            "/api/v1/contacts/{id}/opt-in",
            "post",
            "optInContact",
            &["401", "404"][..],
        ),
    ] {
        let op = &doc["paths"][path][method];
        assert_eq!(op["operationId"], id, "{method} {path}");
        for status in errors {
            assert!(op["responses"][status].is_object(), "{id} lacks {status}");
        }
    }
    let reference = &doc["components"]["schemas"]["SettingsRequest"]["properties"]["opt_out_keywords"]["$ref"];
    let name = reference.as_str().unwrap().rsplit('/').next().unwrap();
    let keywords = &doc["components"]["schemas"][name];
    assert_eq!(keywords["items"]["maxLength"], 30, "{keywords}");
    assert_eq!(
        (keywords["minItems"].clone(), keywords["maxItems"].clone()),
        (json!(1), json!(50)),
        "{keywords}"
    );
}
