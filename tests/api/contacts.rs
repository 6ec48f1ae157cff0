use crate::auth::count;
use crate::helpers::{spawn_app, Tenant, TestApp};
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
    // Digits in a name are part of the name, not a phone search (every phone has a 1).
    app.create_contact(&t, "11912345678", "Cliente1").await;
    assert_eq!(
        names(app.get("/api/v1/contacts?q=Cliente1", &t).await.ok(200)),
        ["Cliente1"]
    );
    assert_eq!(
        names(app.get("/api/v1/contacts?q=%2B55%20(21)%209876", &t).await.ok(200)),
        ["Bia Lima"],
        "written as a phone, it searches phones"
    );
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
            "phone,Cidade,cidade\n1,2,3\n".into(),
        )
        .await;
    assert_eq!(r.fields(), ["header[2]"], "two columns would be the same field");
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

async fn import(app: &TestApp, t: &Tenant, content_type: &str, body: &[u8]) -> crate::helpers::Resp {
    app.call_raw(
        Method::POST,
        "/api/v1/contacts/import",
        Some(&t.token),
        content_type,
        body.to_vec(),
    )
    .await
}

async fn contact_by_phone(app: &TestApp, t: &Tenant, phone: &str) -> Value {
    let r = app.get(&format!("/api/v1/contacts?q={phone}"), t).await;
    r.ok(200)["items"][0].clone()
}

#[tokio::test]
async fn an_excel_export_in_portuguese_imports_in_its_declared_windows_1252() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let csv = b"telefone;nome;Cidade;Quem indicou\r\n11987654321;Jo\xe3o;S\xe3o Paulo;Concei\xe7\xe3o\r\n(21) 98765-4321;\"Lima; Bia\";;\r\n";
    let r = import(&app, &t, "text/csv; charset=windows-1252", csv).await;
    let b = r.ok(200);
    assert_eq!(b["created"], 2, "{b}");
    assert_eq!(
        b["format"],
        json!({"encoding": "windows-1252", "delimiter": ";", "columns": {
            "telefone": "phone", "nome": "name", "Cidade": "fields.cidade", "Quem indicou": "fields.quem_indicou"}})
    );
    let joao = contact_by_phone(&app, &t, "5511987654321").await;
    assert_eq!(joao["name"], "João");
    assert_eq!(
        joao["fields"],
        json!({"cidade": "São Paulo", "quem_indicou": "Conceição"})
    );
    assert_eq!(contact_by_phone(&app, &t, "5521987654321").await["name"], "Lima; Bia");
}

#[tokio::test]
async fn without_a_charset_rows_that_are_not_utf8_are_read_as_windows_1252() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let csv = b"Telefone;Nome\n11987654321;Jo\xe3o\n21987654321;Ana\n";
    let b = import(&app, &t, "text/csv", csv).await.ok(200).clone();
    assert_eq!(b["created"], 2, "{b}");
    assert_eq!(b["format"]["encoding"], "windows-1252");
    assert_eq!(contact_by_phone(&app, &t, "5511987654321").await["name"], "João");
}

#[tokio::test]
async fn a_utf8_file_with_a_byte_order_mark_imports_whatever_the_declared_charset() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let csv = "\u{feff}Número;Nome\r\n11987654321;João\r\n";
    for content_type in ["text/csv", "text/csv; charset=windows-1252"] {
        let b = import(&app, &t, content_type, csv.as_bytes()).await.ok(200).clone();
        assert_eq!(
            b["created"].as_u64().unwrap() + b["updated"].as_u64().unwrap(),
            1,
            "{b}"
        );
        assert_eq!(
            b["format"],
            json!({"encoding": "utf-8", "delimiter": ";", "columns": {"Número": "phone", "Nome": "name"}})
        );
        assert_eq!(contact_by_phone(&app, &t, "5511987654321").await["name"], "João");
    }
}

#[tokio::test]
async fn a_tab_delimited_file_imports() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let csv = "Celular\tNome completo\tObservação\n11987654321\tAna Souza\tcliente, antiga\n";
    let b = import(&app, &t, "text/csv", csv.as_bytes()).await.ok(200).clone();
    assert_eq!(b["created"], 1, "{b}");
    assert_eq!(b["format"]["delimiter"], "\t");
    assert_eq!(b["format"]["encoding"], "utf-8");
    let ana = contact_by_phone(&app, &t, "5511987654321").await;
    assert_eq!(ana["name"], "Ana Souza");
    assert_eq!(ana["fields"]["observacao"], "cliente, antiga");
}

#[tokio::test]
async fn a_cell_with_nul_makes_only_its_row_invalid() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let csv = b"telefone,nome,nota\n11987654321,A\0na,\n21987654321,Bia,ok\n31987654321,Caio,x\x01y\n";
    let b = import(&app, &t, "text/csv", csv).await.ok(200).clone();
    assert_eq!(b["created"], 1, "{b}");
    let invalid = b["invalid"].as_array().unwrap();
    assert_eq!(invalid.len(), 2, "{b}");
    assert_eq!(invalid[0]["row"], 2);
    assert!(
        invalid[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("nome: must not contain the character U+0000"),
        "{b}"
    );
    assert_eq!(invalid[1]["row"], 4);
    assert!(invalid[1]["error"].as_str().unwrap().starts_with("nota:"), "{b}");
    assert_eq!(count(&app, "contacts").await, 1);
}

#[tokio::test]
async fn an_invalid_row_is_named_by_its_line_in_the_file_with_excel_line_ends_and_blank_lines() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    // Excel's CRLF, with a BOM, a blank line and a note over two lines: the invalid phones
    // are on lines 3 and 7 (the header is line 1).
    let csv = "\u{feff}telefone;nome;nota\r\n11987654321;Ana;\r\n123;Bia;\r\n\r\n21987654321;Caio;\"duas\r\nlinhas\"\r\n456;Duda;\r\n";
    let b = import(&app, &t, "text/csv", csv.as_bytes()).await.ok(200).clone();
    assert_eq!(b["created"], 2, "{b}");
    let rows: Vec<&Value> = b["invalid"].as_array().unwrap().iter().map(|i| &i["row"]).collect();
    assert_eq!(rows, [3, 7], "{b}");
}

#[tokio::test]
async fn a_declared_charset_is_honoured_or_refused() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let latin = b"telefone,nome\n11987654321,Jo\xe3o\n21987654321,Ana\n";
    let b = import(&app, &t, "text/csv; charset=utf-8", latin).await.ok(200).clone();
    assert_eq!(b["created"], 1, "{b}");
    assert_eq!(b["invalid"][0]["row"], 2);
    import(&app, &t, "text/csv; charset=utf-16le", b"t\0")
        .await
        .problem(415);
    import(&app, &t, "text/csv; charset=klingon", latin).await.problem(415);
    import(&app, &t, "text/csv", b"\xff\xfet\0e\0l\0").await.problem(415);
    assert_eq!(count(&app, "contacts").await, 1);
}
