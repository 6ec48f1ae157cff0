//! The OpenAPI document is exact enough to generate a strict client from: unique operation
//! ids, one tag each, every error a problem+json `Problem`, typed maps, enums. Loaded
//! in-process (no server, no network); `.ci/contract/run` checks the served one against
//! the running API.

use crate::helpers::spawn_app;
use reqwest::Method;
use serde_json::{json, Value};

fn document() -> Value {
    serde_json::to_value(arauto::api::openapi::document()).unwrap()
}

/// (method, path, operation) for every operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut ops = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            ops.push((method.clone(), path.clone(), op.clone()));
        }
    }
    ops
}

fn is_camel_case(id: &str) -> bool {
    id.chars().next().is_some_and(|c| c.is_ascii_lowercase()) && id.chars().all(|c| c.is_ascii_alphanumeric())
}

#[test]
fn operation_ids_are_unique_camel_case_and_each_operation_has_one_tag() {
    let doc = document();
    let mut seen = std::collections::HashMap::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operation id"));
        assert!(is_camel_case(id), "{method} {path}: `{id}` is not camelCase");
        if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
            panic!("`{id}` names both {other} and {method} {path}");
        }
        assert_eq!(op["tags"].as_array().map(Vec::len), Some(1), "{method} {path}: one tag");
    }
    for (id, route) in [
        ("listContacts", "get /api/v1/contacts"),
        ("createCampaign", "post /api/v1/campaigns"),
        ("startCampaign", "post /api/v1/campaigns/{id}/start"),
        ("addGroupContacts", "post /api/v1/groups/{id}/contacts"),
        ("getCampaignStats", "get /api/v1/campaigns/{id}/stats"),
    ] {
        assert_eq!(seen.get(id).map(String::as_str), Some(route));
    }
}

fn problem_refs(response: &Value) -> bool {
    response["content"]["application/problem+json"]["schema"]["$ref"] == "#/components/schemas/Problem"
        && response["content"].as_object().map(|c| c.len()) == Some(1)
}

#[test]
fn every_error_answer_is_a_problem_json_problem_and_every_operation_lists_its_kind_of_errors() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let ctx = format!("{method} {path}");
        let responses = op["responses"].as_object().unwrap();
        let mut client_errors = 0;
        for (status, response) in responses {
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    problem_refs(response),
                    "{ctx} {status}: not a problem+json Problem: {response}"
                );
                assert!(
                    !response["description"].as_str().unwrap_or("").is_empty(),
                    "{ctx} {status}"
                );
                client_errors += usize::from(status.starts_with('4'));
            }
        }
        assert!(
            client_errors > 0 || ["/health", "/ready", "/metrics"].contains(&path.as_str()),
            "{ctx}: no 4xx answer"
        );
        let has = |s: &str| responses.contains_key(s);
        assert!(has("500"), "{ctx}: 500");
        if op.get("requestBody").is_some() {
            for s in ["400", "413", "415", "422"] {
                assert!(has(s), "{ctx}: a body-taking operation lacks {s}");
            }
        }
        if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
            assert!(has("401"), "{ctx}: an authenticated operation lacks 401");
            assert!(has("503"), "{ctx}: 503 (database busy)");
            assert!(
                responses["503"]["headers"]["Retry-After"].is_object(),
                "{ctx}: Retry-After"
            );
        }
        if path.contains('{') {
            assert!(has("404"), "{ctx}: an operation on one resource lacks 404");
        }
    }
    let errors = &doc["components"]["schemas"]["Problem"]["properties"]["errors"];
    assert_eq!(errors["items"]["$ref"], "#/components/schemas/FieldError");
    let field_error = &doc["components"]["schemas"]["FieldError"];
    assert_eq!(field_error["required"], json!(["field", "message"]));
}

#[test]
fn contact_fields_are_a_string_keyed_map_of_scalars_wherever_they_appear() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let fields = &schemas["ContactFields"];
    assert_eq!(fields["type"], "object");
    assert!(fields.get("properties").is_none(), "a map, not a record: {fields}");
    assert_eq!(fields["propertyNames"]["type"], "string");
    assert_eq!(fields["propertyNames"]["maxLength"], 64);
    assert_eq!(
        fields["additionalProperties"]["type"],
        json!(["string", "number", "boolean", "null"])
    );
    assert_eq!(fields["additionalProperties"]["maxLength"], 1000);
    assert_eq!(fields["maxProperties"], 50);
    let to_fields = "#/components/schemas/ContactFields";
    assert_eq!(schemas["ContactView"]["properties"]["fields"]["$ref"], to_fields);
    for request in ["ContactRequest", "UpdateContactRequest"] {
        let f = &schemas[request]["properties"]["fields"];
        let refs: Vec<_> = f["oneOf"].as_array().unwrap().iter().map(|s| &s["$ref"]).collect();
        assert!(refs.contains(&&json!(to_fields)), "{request}: {f}");
    }
}

#[test]
fn statuses_modes_and_kinds_are_enums_with_every_value() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let values = |name: &str| -> Vec<String> {
        serde_json::from_value(schemas[name]["enum"].clone()).unwrap_or_else(|_| panic!("{name} is not an enum"))
    };
    let campaign: Vec<_> = arauto::campaigns::domain::CampaignStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(values("CampaignStatus"), campaign);
    let recipient: Vec<_> = arauto::recipients::RecipientStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(values("RecipientStatus"), recipient);
    assert_eq!(
        values("ScheduleMode"),
        ["immediate", "weekdays", "business_hours", "custom"]
    );
    assert_eq!(values("Role"), ["admin", "member"]);
    assert_eq!(values("MediaKind"), ["image", "video", "document", "audio"]);
    assert_eq!(values("SendOutcome"), ["sent", "failed", "outcome_unknown", "unsent"]);
    let refs = |schema: &str, prop: &str| schemas[schema]["properties"][prop]["$ref"].clone();
    assert_eq!(refs("CampaignView", "status"), "#/components/schemas/CampaignStatus");
    assert_eq!(refs("RecipientView", "status"), "#/components/schemas/RecipientStatus");
    assert_eq!(refs("ScheduleSpec", "mode"), "#/components/schemas/ScheduleMode");
    // Request bodies carry an example a client can start from.
    for request in ["SignupRequest", "ContactRequest", "CampaignRequest", "TemplateRequest"] {
        assert!(schemas[request]["example"].is_object(), "{request} has no example");
    }
}

#[tokio::test]
async fn docs_redirects_to_the_swagger_ui() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(format!("{}/docs", app.address)).send().await.unwrap();
    assert_eq!(r.status(), 308);
    assert_eq!(r.headers()["location"], "/docs/");
    let ui = app.http.get(format!("{}/docs", app.address)).send().await.unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_is_a_405_listing_the_allowed_ones() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    for (method, path, allow) in [
        (Method::PUT, "/api/v1/contacts", "GET, POST"),
        (Method::PATCH, "/api/v1/contacts/bulk", "POST"),
        (Method::GET, "/api/v1/contacts/import", "POST"),
        (Method::TRACE, "/ready", "GET"),
    ] {
        let r = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(&t.token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(r.headers()["allow"], allow, "{method} {path}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
    }
    // A malformed id on a route that has the method stays a 404.
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/contacts/not-a-uuid",
            Some(&t.token),
            Some(json!({})),
        )
        .await;
    r.problem(404);
}

#[tokio::test]
async fn a_webhook_without_an_event_is_a_422_naming_it() {
    let app = spawn_app().await;
    let t = app.signup("Acme").await;
    let instance = app
        .post(
            "/api/v1/instances",
            &t,
            json!({"name": "n", "api_url": "http://127.0.0.1:9", "api_key": "k", "instance_name": "n"}),
        )
        .await;
    let hook = instance.body["webhook_path"].as_str().unwrap().to_owned();
    let r = app.call(Method::POST, &hook, None, Some(json!({"data": {}}))).await;
    assert_eq!(r.fields(), ["event"]);
    let r = app
        .call_raw(Method::POST, &hook, None, "text/plain", b"{}".to_vec())
        .await;
    r.problem(415);
}
