use crate::helpers::spawn_app;
use reqwest::Method;

#[tokio::test]
async fn health_answers_without_a_token() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, "/health", None, None).await;
    assert_eq!(r.ok(200)["status"], "ok");
}

#[tokio::test]
async fn ready_checks_postgres_and_redis() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, "/ready", None, None).await;
    assert_eq!(r.ok(200)["status"], "ready");
}

#[tokio::test]
async fn unknown_routes_are_problem_json_404s() {
    let app = spawn_app().await;
    app.call(Method::GET, "/api/v1/nope", None, None).await.problem(404);
}

/// Every route the API serves, as the OpenAPI document must list it.
pub const ROUTES: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/signup"),
    ("post", "/api/v1/auth/login"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/users"),
    ("get", "/api/v1/users"),
    ("patch", "/api/v1/users/{id}"),
    ("delete", "/api/v1/users/{id}"),
    ("post", "/api/v1/instances"),
    ("get", "/api/v1/instances"),
    ("get", "/api/v1/instances/{id}"),
    ("patch", "/api/v1/instances/{id}"),
    ("delete", "/api/v1/instances/{id}"),
    ("post", "/api/v1/contacts"),
    ("get", "/api/v1/contacts"),
    ("get", "/api/v1/contacts/{id}"),
    ("patch", "/api/v1/contacts/{id}"),
    ("delete", "/api/v1/contacts/{id}"),
    ("post", "/api/v1/contacts/bulk"),
    ("post", "/api/v1/contacts/import"),
    ("post", "/api/v1/contacts/{id}/opt-in"),
    ("get", "/api/v1/settings"),
    ("put", "/api/v1/settings"),
    ("post", "/api/v1/groups"),
    ("get", "/api/v1/groups"),
    ("get", "/api/v1/groups/{id}"),
    ("patch", "/api/v1/groups/{id}"),
    ("delete", "/api/v1/groups/{id}"),
    ("post", "/api/v1/groups/{id}/contacts"),
    ("delete", "/api/v1/groups/{id}/contacts"),
    ("post", "/api/v1/tags"),
    ("get", "/api/v1/tags"),
    ("get", "/api/v1/tags/{id}"),
    ("patch", "/api/v1/tags/{id}"),
    ("delete", "/api/v1/tags/{id}"),
    ("post", "/api/v1/tags/{id}/contacts"),
    ("delete", "/api/v1/tags/{id}/contacts"),
    ("get", "/api/v1/audit-logs"),
    ("get", "/api/v1/holidays"),
    ("post", "/api/v1/holidays"),
    ("delete", "/api/v1/holidays/{id}"),
    ("post", "/api/v1/templates"),
    ("get", "/api/v1/templates"),
    ("get", "/api/v1/templates/{id}"),
    ("patch", "/api/v1/templates/{id}"),
    ("delete", "/api/v1/templates/{id}"),
    ("post", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns"),
    ("get", "/api/v1/campaigns/{id}"),
    ("patch", "/api/v1/campaigns/{id}"),
    ("delete", "/api/v1/campaigns/{id}"),
    ("post", "/api/v1/campaigns/{id}/preview"),
    ("post", "/api/v1/campaigns/{id}/start"),
    ("post", "/api/v1/campaigns/{id}/pause"),
    ("post", "/api/v1/campaigns/{id}/resume"),
    ("post", "/api/v1/campaigns/{id}/cancel"),
    ("get", "/api/v1/campaigns/{id}/stats"),
    ("get", "/api/v1/campaigns/{id}/recipients"),
    ("get", "/api/v1/campaigns/{id}/logs"),
    ("post", "/api/v1/campaigns/{id}/duplicate"),
    ("get", "/api/v1/campaigns/{id}/recipients.csv"),
    ("get", "/api/v1/campaigns/{id}/logs.csv"),
    ("get", "/api/v1/campaigns/{id}/runs"),
    ("get", "/api/v1/dashboard/stats"),
    ("get", "/api/v1/queue"),
    ("post", "/api/v1/webhooks/evolution/{webhook_token}"),
    ("get", "/api/v1/instances/{id}/state"),
    ("post", "/api/v1/instances/{id}/connect"),
    ("post", "/api/v1/instances/{id}/webhook"),
    ("post", "/api/v1/instances/{id}/logout"),
    ("get", "/api/v1/instances/{id}/health"),
    ("get", "/health"),
    ("get", "/ready"),
    ("get", "/metrics"),
    ("post", "/api/v1/messages"),
    ("post", "/api/v1/messages/bulk"),
    ("get", "/api/v1/messages"),
    ("get", "/api/v1/messages/{id}"),
    ("post", "/api/v1/messages/{id}/cancel"),
    ("post", "/api/v1/webhook-subscriptions"),
    ("get", "/api/v1/webhook-subscriptions"),
    ("get", "/api/v1/webhook-subscriptions/{id}"),
    ("delete", "/api/v1/webhook-subscriptions/{id}"),
    ("get", "/api/v1/webhook-subscriptions/{id}/deliveries"),
];

#[tokio::test]
async fn the_openapi_document_covers_every_route_with_its_schemas() {
    let app = spawn_app().await;
    let r = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
    let doc = r.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (method, path) in ROUTES {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(op["responses"].is_object(), "{method} {path} has no responses");
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(
        documented,
        ROUTES.len(),
        "the document lists routes this test does not know"
    );
    for schema in [
        "Problem",
        "ContactView",
        "SignupRequest",
        "InstanceView",
        "GroupView",
        "TagView",
        "ImportResult",
    ] {
        assert!(
            doc["components"]["schemas"][schema].is_object(),
            "schema {schema} missing"
        );
    }
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
}

#[tokio::test]
async fn swagger_ui_is_served_at_docs() {
    let app = spawn_app().await;
    let r = app.http.get(format!("{}/docs/", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn cors_allows_the_configured_origins() {
    let mut settings = crate::helpers::test_settings();
    settings.server.cors_origins = vec!["https://app.example.com".into()];
    let cors = arauto::api::cors(&settings.server.cors_origins);
    let app = actix_web::test::init_service(
        actix_web::App::new()
            .wrap(cors)
            .route("/x", actix_web::web::get().to(actix_web::HttpResponse::Ok)),
    )
    .await;
    let req = actix_web::test::TestRequest::get()
        .uri("/x")
        .insert_header(("Origin", "https://app.example.com"))
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    assert_eq!(
        res.headers().get("access-control-allow-origin").unwrap(),
        "https://app.example.com"
    );
    let req = actix_web::test::TestRequest::get()
        .uri("/x")
        .insert_header(("Origin", "https://evil.example.com"))
        .to_request();
    let res = actix_web::test::call_service(&app, req).await;
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let app = spawn_app().await;
    for path in ["/health", "/api/v1/me", "/api/v1/openapi.json"] {
        let r = app.http.get(format!("{}{path}", app.address)).send().await.unwrap();
        let h = r.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer", "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
    }
}
