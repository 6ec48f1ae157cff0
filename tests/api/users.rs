use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn an_admin_manages_the_users_of_their_tenant() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let created = app
        .post(
            "/api/v1/users",
            &admin,
            json!({"email": "bia@acme.com", "password": "12345678", "role": "member"}),
        )
        .await;
    assert_eq!(created.ok(201)["role"], "member");
    let id = created.id();
    let list = app.get("/api/v1/users", &admin).await;
    assert_eq!(list.ok(200)["total"], 2);
    let promoted = app
        .patch(&format!("/api/v1/users/{id}"), &admin, json!({"role": "admin"}))
        .await;
    assert_eq!(promoted.ok(200)["role"], "admin");
    app.delete(&format!("/api/v1/users/{id}"), &admin).await.ok(204);
    assert_eq!(app.get("/api/v1/users", &admin).await.ok(200)["total"], 1);
    let actions: Vec<String> = app.get("/api/v1/audit-logs", &admin).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(&actions[..3], ["user.delete", "user.update", "user.create"]);
}

#[tokio::test]
async fn members_cannot_manage_users_or_instances() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let member = app.member_of(&admin, "bia@acme.com").await;
    let instance = app.create_instance(&admin, "loja-1").await;
    let body = json!({"email": "x@acme.com", "password": "12345678", "role": "admin"});
    app.post("/api/v1/users", &member, body).await.problem(403);
    app.get("/api/v1/users", &member).await.problem(403);
    app.patch(
        &format!("/api/v1/users/{}", admin.user_id),
        &member,
        json!({"role": "member"}),
    )
    .await
    .problem(403);
    app.delete(&format!("/api/v1/users/{}", admin.user_id), &member)
        .await
        .problem(403);
    let inst = json!({"name": "n", "api_url": "http://x", "api_key": "k", "instance_name": "n"});
    app.post("/api/v1/instances", &member, inst).await.problem(403);
    app.patch(&format!("/api/v1/instances/{instance}"), &member, json!({"name": "m"}))
        .await
        .problem(403);
    app.delete(&format!("/api/v1/instances/{instance}"), &member)
        .await
        .problem(403);
    app.get("/api/v1/audit-logs", &member).await.problem(403);
    // Members still read instances (to pick one for a campaign) and work with contacts.
    app.get("/api/v1/instances", &member).await.ok(200);
    app.get(&format!("/api/v1/instances/{instance}"), &member).await.ok(200);
    app.post("/api/v1/contacts", &member, json!({"phone": "11987654321"}))
        .await
        .ok(201);
}

#[tokio::test]
async fn the_last_admin_cannot_be_demoted_or_deleted() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    app.patch(
        &format!("/api/v1/users/{}", admin.user_id),
        &admin,
        json!({"role": "member"}),
    )
    .await
    .problem(409);
    app.delete(&format!("/api/v1/users/{}", admin.user_id), &admin)
        .await
        .problem(409);
}

#[tokio::test]
async fn a_deleted_users_token_stops_working() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let member = app.member_of(&admin, "bia@acme.com").await;
    app.call(Method::GET, "/api/v1/me", Some(&member.token), None)
        .await
        .ok(200);
    app.delete(&format!("/api/v1/users/{}", member.user_id), &admin)
        .await
        .ok(204);
    app.call(Method::GET, "/api/v1/me", Some(&member.token), None)
        .await
        .problem(401);
}

#[tokio::test]
async fn a_changed_password_is_the_one_that_signs_in() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let member = app.member_of(&admin, "bia@acme.com").await;
    app.patch(
        &format!("/api/v1/users/{}", member.user_id),
        &admin,
        json!({"password": "new password"}),
    )
    .await
    .ok(200);
    let login = |p: &'static str| {
        app.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": "bia@acme.com", "password": p})),
        )
    };
    login("member password").await.problem(401);
    login("new password").await.ok(200);
}

#[tokio::test]
async fn an_email_in_use_cannot_be_given_to_another_user() {
    let app = spawn_app().await;
    let admin = app.signup("Acme").await;
    let other = app.signup("Other").await;
    let body = json!({"email": other.email, "password": "12345678", "role": "member"});
    app.post("/api/v1/users", &admin, body).await.problem(409);
}
