use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn signing_up_creates_a_tenant_and_its_admin() {
    let app = spawn_app().await;
    let body = json!({"tenant_name": "Loja da Ana", "email": "Ana@Loja.com", "password": "correct horse", "timezone": "America/Recife"});
    let r = app.call(Method::POST, "/api/v1/auth/signup", None, Some(body)).await;
    let b = r.ok(201);
    assert_eq!(b["tenant"]["name"], "Loja da Ana");
    assert_eq!(b["tenant"]["timezone"], "America/Recife");
    assert_eq!(b["tenant"]["default_country"], "BR");
    assert_eq!(b["user"]["email"], "ana@loja.com");
    assert_eq!(b["user"]["role"], "admin");
    assert!(b["user"].get("password_hash").is_none());
    let token = b["token"].as_str().unwrap();
    let me = app.call(Method::GET, "/api/v1/me", Some(token), None).await;
    assert_eq!(me.ok(200)["user"]["email"], "ana@loja.com");
    assert_eq!(me.body["tenant"]["name"], "Loja da Ana");
}

#[tokio::test]
async fn signing_up_twice_with_one_email_is_a_conflict() {
    let app = spawn_app().await;
    app.signup("Acme").await;
    let body = json!({"tenant_name": "Other", "email": "ACME@example.com", "password": "correct horse"});
    app.call(Method::POST, "/api/v1/auth/signup", None, Some(body))
        .await
        .problem(409);
}

#[tokio::test]
async fn bad_signups_name_every_bad_field_and_write_nothing() {
    let app = spawn_app().await;
    let body = json!({"tenant_name": " ", "email": "nope", "password": "short", "timezone": "Mars/Olympus", "default_country": "XX"});
    let r = app.call(Method::POST, "/api/v1/auth/signup", None, Some(body)).await;
    assert_eq!(
        r.fields(),
        ["tenant_name", "email", "password", "timezone", "default_country"]
    );
    let tenants: i64 = count(&app, "tenants").await;
    assert_eq!(tenants, 0);
}

pub async fn count(app: &crate::helpers::TestApp, table: &str) -> i64 {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let row = app
        .db
        .query_one(Statement::from_string(
            DbBackend::Postgres,
            format!("SELECT count(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

#[tokio::test]
async fn logging_in_returns_a_working_token() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": t.email, "password": "correct horse battery"})),
        )
        .await;
    let token = r.ok(200)["token"].as_str().unwrap().to_owned();
    app.call(Method::GET, "/api/v1/me", Some(&token), None).await.ok(200);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_answer_the_same_401() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let wrong = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": t.email, "password": "wrong password"})),
        )
        .await;
    let unknown = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "nobody@example.com", "password": "wrong password"})),
        )
        .await;
    wrong.problem(401);
    unknown.problem(401);
    assert_eq!(wrong.body, unknown.body);
}

#[tokio::test]
async fn routes_need_a_valid_token() {
    let app = spawn_app().await;
    app.call(Method::GET, "/api/v1/me", None, None).await.problem(401);
    app.call(Method::GET, "/api/v1/contacts", Some("not-a-jwt"), None)
        .await
        .problem(401);
    let other = arauto::tenancy::jwt::JwtKeys::new(b"another secret", 1)
        .issue(uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), chrono::Utc::now())
        .unwrap();
    app.call(Method::GET, "/api/v1/me", Some(&other), None)
        .await
        .problem(401);
}

#[tokio::test]
async fn signing_in_is_audited() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"email": t.email, "password": "correct horse battery"})),
    )
    .await
    .ok(200);
    let logs = app.get("/api/v1/audit-logs", &t).await;
    let actions: Vec<_> = logs.ok(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["auth.login", "auth.signup"]);
}

#[tokio::test]
async fn sign_ins_are_throttled_per_email_and_per_client_with_retry_after() {
    let app = crate::helpers::spawn_app_with(|s| {
        s.auth.signin_per_minute_per_ip = 6;
        s.auth.signin_per_minute_per_email = 3;
    })
    .await;
    let t = app.signup("Acme").await;
    let login = |email: &str, password: &str| {
        let body = json!({"email": email, "password": password});
        app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
    };
    login(&t.email, "correct horse battery").await.ok(200);
    login(&t.email, "wrong password").await.problem(401);
    // The email's fourth attempt within the minute, right password or not.
    let r = login(&t.email, "correct horse battery").await;
    r.problem(429);
    let raw = app
        .http
        .post(format!("{}/api/v1/auth/login", app.address))
        .json(&json!({"email": t.email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let retry: u64 = raw.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another account from the same client: allowed until the client's own limit (every
    // attempt above counted for it, refused or not, up to its sixth).
    login("someone@example.com", "whatever password").await.problem(401);
    login("other@example.com", "whatever password").await.problem(429);
}

#[tokio::test]
async fn sign_ins_are_still_counted_above_sixty_thousand_a_minute() {
    use arauto::tenancy::ratelimit::{count, hit, key, Cell};
    let app = crate::helpers::spawn_app().await;
    let keys = arauto::redis::Keys::new(app.settings.redis.prefix.clone());
    // 100,000 a minute is an emission interval under 1 ms: the limiter must still count it,
    // not fail (Redis refused an expiry of 0 ms) and let every attempt through unthrottled.
    for per_minute in [60_001, 100_000, u32::MAX] {
        for _ in 0..3 {
            let allowed = hit(&app.redis, &keys, "signin-ip", "203.0.113.7", per_minute).await;
            assert_eq!(allowed.expect("counted, not an error"), None, "{per_minute} a minute");
        }
    }
    // A sub-millisecond interval counts: with no burst, the next request at once waits for
    // what is left of its 600 µs.
    let bucket = key(&keys, "signin-ip", "203.0.113.8");
    let cell = Cell {
        interval_us: 600,
        tolerance_us: 0,
    };
    assert_eq!(count(&app.redis, &bucket, cell).await.unwrap(), None);
    let wait = count(&app.redis, &bucket, cell).await.unwrap().expect("refused");
    assert!(wait <= std::time::Duration::from_micros(600), "{wait:?}");
}
