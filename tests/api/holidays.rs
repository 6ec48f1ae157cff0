use crate::helpers::spawn_app;
use serde_json::json;

#[tokio::test]
async fn the_shipped_calendar_and_the_tenants_own_dates_are_listed_together() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let own = app
        .post("/api/v1/holidays", &t, json!({"date": "2026-12-24", "name": "Véspera"}))
        .await;
    assert_eq!(own.ok(201)["source"], "tenant");
    let r = app.get("/api/v1/holidays?year=2026&calendar=BR-SP", &t).await;
    let items = r.ok(200)["items"].as_array().unwrap().clone();
    let dates: Vec<&str> = items.iter().map(|h| h["date"].as_str().unwrap()).collect();
    let mut sorted = dates.clone();
    sorted.sort();
    assert_eq!(dates, sorted, "sorted by date");
    let find = |d: &str, src: &str| items.iter().find(|h| h["date"] == d && h["source"] == src).cloned();
    let carnival = find("2026-02-17", "shipped").expect("Carnival Tuesday");
    assert_eq!(
        (carnival["kind"].clone(), carnival["blocks_sending"].clone()),
        (json!("optional"), json!(true))
    );
    let ash = find("2026-02-18", "shipped").expect("Ash Wednesday");
    assert_eq!(ash["blocks_sending"], false);
    assert_eq!(
        find("2026-07-09", "shipped").expect("Revolução Constitucionalista (SP)")["calendar"],
        "BR-SP"
    );
    assert_eq!(
        find("2026-11-20", "shipped").expect("Consciência Negra")["kind"],
        "public"
    );
    let mine = find("2026-12-24", "tenant").expect("the tenant's own date");
    assert!(mine["id"].is_string());
    let in_2027 = app.get("/api/v1/holidays?year=2027", &t).await;
    assert!(in_2027.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["source"] == "shipped"));
}

#[tokio::test]
async fn tenant_holidays_are_validated_unique_and_deletable() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    assert_eq!(
        app.post("/api/v1/holidays", &t, json!({"date": "2026-13-01", "name": ""}))
            .await
            .fields(),
        ["date", "name"]
    );
    let id = app
        .post("/api/v1/holidays", &t, json!({"date": "2026-12-24", "name": "Véspera"}))
        .await
        .id();
    app.post("/api/v1/holidays", &t, json!({"date": "2026-12-24", "name": "De novo"}))
        .await
        .problem(409);
    app.delete(&format!("/api/v1/holidays/{id}"), &t).await.ok(204);
    app.delete(&format!("/api/v1/holidays/{id}"), &t).await.problem(404);
}

#[tokio::test]
async fn unknown_calendars_and_years_out_of_range_are_422s() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    assert_eq!(app.get("/api/v1/holidays?calendar=XX", &t).await.fields(), ["calendar"]);
    assert_eq!(app.get("/api/v1/holidays?year=1800", &t).await.fields(), ["year"]);
    assert_eq!(app.get("/api/v1/holidays?year=abc", &t).await.fields(), ["year"]);
}
