use crate::auth::count;
use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_contact_is_stored_with_a_normalised_phone() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let tag = app.post("/api/v1/tags", &t, json!({"name": "VIP"})).await.id();
    let r = app
        .post("/api/v1/contacts", &t, json!({"phone": "+55 (11) 98765-4321", "name": "Ana Souza", "fields": {"cidade": "Recife"}, "tag_ids": [tag]}))
        .await;
    let b = r.ok(201);
    assert_eq!(b["phone"], "5511987654321");
    assert_eq!(b["name"], "Ana Souza");
    assert_eq!(b["fields"]["cidade"], "Recife");
    assert_eq!(b["tag_ids"], json!([tag]));
    assert!(b["opted_out_at"].is_null());
    let same = app.post("/api/v1/contacts", &t, json!({"phone": "011987654321"})).await;
    same.problem(409);
}

#[tokio::test]
async fn a_phone_that_cannot_be_normalised_is_a_422_naming_it() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let r = app.post("/api/v1/contacts", &t, json!({"phone": "12-34"})).await;
    assert_eq!(r.fields(), ["phone"]);
    assert_eq!(count(&app, "contacts").await, 0);
}

#[tokio::test]
async fn contacts_are_searched_filtered_and_paginated() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let ana = app.create_contact(&t, "11987654321", "Ana Souza").await;
    let bia = app.create_contact(&t, "21987654321", "Bia Lima").await;
    app.create_contact(&t, "31987654321", "Caio Souza").await;
    let tag = app.post("/api/v1/tags", &t, json!({"name": "VIP"})).await.id();
    let group = app.post("/api/v1/groups", &t, json!({"name": "Clientes"})).await.id();
    app.patch(&format!("/api/v1/contacts/{ana}"), &t, json!({"tag_ids": [tag]}))
        .await
        .ok(200);
    app.post(
        &format!("/api/v1/groups/{group}/contacts"),
        &t,
        json!({"contact_ids": [bia]}),
    )
    .await
    .ok(200);

    let names = |r: &Value| -> Vec<String> {
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(app.get("/api/v1/contacts?q=souza", &t).await.ok(200)),
        ["Ana Souza", "Caio Souza"]
    );
    assert_eq!(
        names(app.get("/api/v1/contacts?q=552198", &t).await.ok(200)),
        ["Bia Lima"]
    );
    assert_eq!(
        names(app.get(&format!("/api/v1/contacts?tag_id={tag}"), &t).await.ok(200)),
        ["Ana Souza"]
    );
    assert_eq!(
        names(app.get(&format!("/api/v1/contacts?group_id={group}"), &t).await.ok(200)),
        ["Bia Lima"]
    );
    let page = app.get("/api/v1/contacts?page=2&per_page=2", &t).await;
    let b = page.ok(200);
    assert_eq!(
        (b["page"].clone(), b["per_page"].clone(), b["total"].clone()),
        (json!(2), json!(2), json!(3))
    );
    assert_eq!(names(b), ["Caio Souza"]);
    // A wildcard in the search is literal.
    assert_eq!(names(app.get("/api/v1/contacts?q=%25", &t).await.ok(200)).len(), 0);
}

#[tokio::test]
async fn out_of_range_pagination_and_bad_filters_are_422s() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    assert_eq!(
        app.get("/api/v1/contacts?per_page=501", &t).await.fields(),
        ["per_page"]
    );
    assert_eq!(app.get("/api/v1/contacts?page=0", &t).await.fields(), ["page"]);
    assert_eq!(app.get("/api/v1/contacts?page=abc", &t).await.fields(), ["page"]);
    assert_eq!(app.get("/api/v1/contacts?tag_id=nope", &t).await.fields(), ["tag_id"]);
}

#[tokio::test]
async fn a_contact_is_updated_opted_out_and_deleted() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let id = app.create_contact(&t, "11987654321", "Ana").await;
    let r = app
        .patch(
            &format!("/api/v1/contacts/{id}"),
            &t,
            json!({"name": "Ana Maria", "phone": "(11) 91234-5678", "opted_out": true}),
        )
        .await;
    let b = r.ok(200);
    assert_eq!(b["name"], "Ana Maria");
    assert_eq!(b["phone"], "5511912345678");
    assert!(b["opted_out_at"].is_string());
    app.create_contact(&t, "11987654321", "Other").await;
    app.patch(&format!("/api/v1/contacts/{id}"), &t, json!({"phone": "11987654321"}))
        .await
        .problem(409);
    app.delete(&format!("/api/v1/contacts/{id}"), &t).await.ok(204);
    app.get(&format!("/api/v1/contacts/{id}"), &t).await.problem(404);
    let logs = app.get("/api/v1/audit-logs", &t).await;
    assert_eq!(logs.body["items"][0]["action"], "contact.delete");
}

#[tokio::test]
async fn bulk_upserts_by_phone_and_reports_invalid_items() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    app.create_contact(&t, "11987654321", "Ana").await;
    let body = json!({"contacts": [
        {"phone": "(11) 98765-4321", "name": "Ana Souza", "fields": {"plano": "ouro"}},
        {"phone": "21987654321", "name": "Bia"},
        {"phone": "123", "name": "Bad"},
        {"phone": "31987654321"},
        {"phone": "31 98765-4321", "name": "Caio"},
    ]});
    let r = app.post("/api/v1/contacts/bulk", &t, body).await;
    let b = r.ok(200);
    assert_eq!(b["created"], 2);
    assert_eq!(b["updated"], 2);
    assert_eq!(b["invalid"][0]["row"], 2);
    assert!(b["invalid"][0]["error"].as_str().unwrap().starts_with("phone:"));
    let ana = app.get("/api/v1/contacts?q=5511987654321", &t).await;
    assert_eq!(ana.body["items"][0]["name"], "Ana Souza");
    assert_eq!(ana.body["items"][0]["fields"]["plano"], "ouro");
    let caio = app.get("/api/v1/contacts?q=5531987654321", &t).await;
    assert_eq!(caio.body["items"][0]["name"], "Caio");
}

#[tokio::test]
async fn bulk_takes_at_most_ten_thousand_contacts() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let many: Vec<Value> = (0..10_001)
        .map(|i| json!({"phone": format!("+1415555{i:04}")}))
        .collect();
    let r = app.post("/api/v1/contacts/bulk", &t, json!({"contacts": many})).await;
    assert_eq!(r.fields(), ["contacts"]);
    assert_eq!(count(&app, "contacts").await, 0);
}

#[tokio::test]
async fn ten_thousand_contacts_go_in_in_one_call() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let many: Vec<Value> = (0..10_000)
        .map(|i| json!({"phone": format!("+1415{i:07}"), "name": format!("C {i}")}))
        .collect();
    let r = app.post("/api/v1/contacts/bulk", &t, json!({"contacts": many})).await;
    assert_eq!(r.ok(200)["created"], 10_000);
}

#[tokio::test]
async fn a_csv_import_creates_updates_and_reports_bad_lines() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    app.create_contact(&t, "11987654321", "Ana").await;
    let csv = "phone,name,quem_indicou\n\
               (11) 98765-4321,Ana Souza,Bia\n\
               21987654321,\"Lima, Bia\",\n\
               not a phone,Bad,\n\
               31987654321,Caio,Ana\n";
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
    assert_eq!(b["created"], 2);
    assert_eq!(b["updated"], 1);
    assert_eq!(b["invalid"].as_array().unwrap().len(), 1);
    assert_eq!(b["invalid"][0]["row"], 4);
    let bia = app.get("/api/v1/contacts?q=5521987654321", &t).await;
    assert_eq!(bia.body["items"][0]["name"], "Lima, Bia");
    let ana = app.get("/api/v1/contacts?q=5511987654321", &t).await;
    assert_eq!(ana.body["items"][0]["fields"]["quem_indicou"], "Bia");
}

#[tokio::test]
async fn a_large_csv_import_streams_in_batches() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let mut csv = String::from("phone,name,cidade\n");
    for i in 0..25_000 {
        csv.push_str(&format!("+1415{i:07},Contato {i},Recife\n"));
    }
    let r = app
        .call_raw(
            Method::POST,
            "/api/v1/contacts/import",
            Some(&t.token),
            "text/csv",
            csv.into(),
        )
        .await;
    assert_eq!(r.ok(200)["created"], 25_000);
    assert_eq!(count(&app, "contacts").await, 25_000);
}

#[tokio::test]
async fn a_csv_without_a_phone_column_or_of_another_type_is_refused() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let r = app
        .call_raw(
            Method::POST,
            "/api/v1/contacts/import",
            Some(&t.token),
            "text/csv",
            "name\nAna\n".into(),
        )
        .await;
    assert_eq!(r.fields(), ["header"]);
    let r = app
        .call_raw(
            Method::POST,
            "/api/v1/contacts/import",
            Some(&t.token),
            "text/csv",
            "phone,bad-key\n1,2\n".into(),
        )
        .await;
    assert_eq!(r.fields(), ["header[1]"]);
    let r = app
        .call_raw(
            Method::POST,
            "/api/v1/contacts/import",
            Some(&t.token),
            "application/json",
            b"{}".to_vec(),
        )
        .await;
    r.problem(415);
    assert_eq!(count(&app, "contacts").await, 0);
}
