//! Groups and tags: the same behaviour, checked for both.

use crate::auth::count;
use crate::helpers::spawn_app;
use serde_json::json;

#[tokio::test]
async fn groups_and_tags_are_created_listed_renamed_and_deleted() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    for (path, extra, value) in [
        ("/api/v1/groups", "description", "Quem comprou"),
        ("/api/v1/tags", "color", "#1e90ff"),
    ] {
        let r = app.post(path, &t, json!({"name": "Clientes", extra: value})).await;
        assert_eq!(r.ok(201)[extra], value);
        assert_eq!(r.body["contact_count"], 0);
        let id = r.id();
        app.post(path, &t, json!({"name": "clientes"})).await.problem(409);
        let list = app.get(path, &t).await;
        assert_eq!(list.ok(200)["total"], 1);
        let renamed = app
            .patch(&format!("{path}/{id}"), &t, json!({"name": "Compradores", extra: null}))
            .await;
        assert_eq!(renamed.ok(200)["name"], "Compradores");
        assert!(renamed.body[extra].is_null());
        app.get(&format!("{path}/{id}"), &t).await.ok(200);
        app.delete(&format!("{path}/{id}"), &t).await.ok(204);
        app.get(&format!("{path}/{id}"), &t).await.problem(404);
    }
    let logs = app.get("/api/v1/audit-logs", &t).await;
    assert_eq!(logs.body["items"][0]["action"], "tag.delete");
    assert_eq!(logs.body["items"][1]["action"], "group.delete");
}

#[tokio::test]
async fn contacts_are_added_to_and_removed_from_groups_and_tags() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let a = app.create_contact(&t, "11987654321", "Ana").await;
    let b = app.create_contact(&t, "21987654321", "Bia").await;
    for path in ["/api/v1/groups", "/api/v1/tags"] {
        let id = app.post(path, &t, json!({"name": "X"})).await.id();
        let added = app
            .post(&format!("{path}/{id}/contacts"), &t, json!({"contact_ids": [a, b, a]}))
            .await;
        assert_eq!(added.ok(200)["changed"], 2);
        assert_eq!(app.get(&format!("{path}/{id}"), &t).await.body["contact_count"], 2);
        let removed = app
            .call(
                reqwest::Method::DELETE,
                &format!("{path}/{id}/contacts"),
                Some(&t.token),
                Some(json!({"contact_ids": [a]})),
            )
            .await;
        assert_eq!(removed.ok(200)["changed"], 1);
        assert_eq!(app.get(&format!("{path}/{id}"), &t).await.body["contact_count"], 1);
    }
    let tagged = app.get(&format!("/api/v1/contacts/{b}"), &t).await;
    assert_eq!(tagged.body["tag_ids"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn another_tenants_contacts_cannot_join_a_group_and_nothing_is_written() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let other = app.signup("Other").await;
    let mine = app.create_contact(&t, "11987654321", "Ana").await;
    let theirs = app.create_contact(&other, "11987654321", "Zé").await;
    for path in ["/api/v1/groups", "/api/v1/tags"] {
        let id = app.post(path, &t, json!({"name": "X"})).await.id();
        let r = app
            .post(
                &format!("{path}/{id}/contacts"),
                &t,
                json!({"contact_ids": [mine, theirs]}),
            )
            .await;
        assert_eq!(r.fields(), ["contact_ids[1]"]);
    }
    assert_eq!(count(&app, "group_members").await, 0);
    assert_eq!(count(&app, "contact_tags").await, 0);
}

#[tokio::test]
async fn a_tag_of_another_tenant_cannot_be_put_on_a_contact() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let other = app.signup("Other").await;
    let foreign = app.post("/api/v1/tags", &other, json!({"name": "VIP"})).await.id();
    let r = app
        .post(
            "/api/v1/contacts",
            &t,
            json!({"phone": "11987654321", "tag_ids": [foreign]}),
        )
        .await;
    assert_eq!(r.fields(), ["tag_ids[0]"]);
    assert_eq!(count(&app, "contacts").await, 0);
}

#[tokio::test]
async fn bad_colors_and_blank_names_are_named() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let r = app
        .post("/api/v1/tags", &t, json!({"name": " ", "color": "blue"}))
        .await;
    assert_eq!(r.fields(), ["name", "color"]);
}

#[tokio::test]
async fn a_group_or_tag_in_the_audience_of_an_unfinished_campaign_is_not_deleted() {
    use crate::engine::{fast, immediate, world};
    let w = world().await;
    let contact = w.app.create_contact(&w.t, "11987654321", "Ana").await;
    for (path, key) in [("/api/v1/groups", "group_ids"), ("/api/v1/tags", "tag_ids")] {
        let set = w.app.post(path, &w.t, json!({"name": "Clientes"})).await.id();
        let body = json!({
            "name": "Black Friday", "instance_id": w.instance, "messages": [{"text": "Oi"}],
            "audience": {key: [set], "contact_ids": [contact]},
            "schedule": immediate(), "pacing": fast()
        });
        let c = w.app.post("/api/v1/campaigns", &w.t, body).await.id();
        let refused = w.app.delete(&format!("{path}/{set}"), &w.t).await;
        let detail = refused.problem(409)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains("Black Friday"), "names the campaign: {detail}");
        w.app.get(&format!("{path}/{set}"), &w.t).await.ok(200);
        // Once the campaign is finished (here cancelled), the set may go.
        w.app
            .post(&format!("/api/v1/campaigns/{c}/cancel"), &w.t, json!({}))
            .await
            .ok(200);
        w.app.delete(&format!("{path}/{set}"), &w.t).await.ok(204);
    }
}

#[tokio::test]
async fn a_campaign_whose_group_is_gone_is_not_started_and_the_problem_names_it() {
    use crate::engine::{fast, immediate, world};
    use sea_orm::ConnectionTrait;
    let w = world().await;
    let group = w
        .app
        .post("/api/v1/groups", &w.t, json!({"name": "Clientes"}))
        .await
        .id();
    let body = json!({
        "name": "Natal", "instance_id": w.instance, "messages": [{"text": "Oi"}],
        "audience": {"group_ids": [group]}, "schedule": immediate(), "pacing": fast()
    });
    let c = w.app.post("/api/v1/campaigns", &w.t, body).await.id();
    // Deleted before deletes were refused while a campaign names it (data of an earlier
    // release): straight in the database.
    w.app
        .db
        .execute_unprepared(&format!("DELETE FROM groups WHERE id = '{group}'"))
        .await
        .unwrap();
    let r = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/start"), &w.t, json!({}))
        .await;
    r.problem(422);
    assert_eq!(r.fields(), ["audience.group_ids[0]"]);
    let still = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await;
    assert_eq!(still.ok(200)["status"], "draft", "nothing written");
}
