//! Copies and exports (issue 12): duplicate a campaign as a draft; recipients and logs as
//! CSV a spreadsheet opens (UTF-8 with BOM; `;` for Excel in Portuguese).

use crate::engine::{fast, immediate, phone, world, Engine, World};
use serde_json::json;
use std::time::Duration;

/// The raw CSV answer: status, content type, body text.
async fn csv(w: &World, path: &str, token: &str) -> (u16, String, String) {
    let r = w
        .app
        .http
        .get(format!("{}{}", w.app.address, path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, r.text().await.unwrap())
}

async fn finished_campaign(w: &World, n: usize) -> String {
    let contacts = w.contacts(n).await;
    let c = w.campaign(&contacts, immediate(), fast()).await;
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(60)).await;
    engine.stop().await;
    c
}

#[tokio::test]
async fn a_duplicate_is_a_new_draft_with_the_same_definition() {
    let w = world().await;
    let c = finished_campaign(&w, 2).await;
    let original = w.app.get(&format!("/api/v1/campaigns/{c}"), &w.t).await.ok(200).clone();
    let copy = w
        .app
        .post(&format!("/api/v1/campaigns/{c}/duplicate"), &w.t, json!({}))
        .await;
    let copy = copy.ok(201).clone();
    assert_ne!(copy["id"], original["id"]);
    assert_eq!(copy["status"], "draft");
    assert_eq!(copy["name"], format!("{} (cópia)", original["name"].as_str().unwrap()));
    for key in ["messages", "audience", "schedule", "pacing", "instance_id"] {
        assert_eq!(copy[key], original[key], "{key}");
    }
    assert!(copy["started_at"].is_null());
    // It starts like any draft.
    assert_eq!(w.start(copy["id"].as_str().unwrap()).await["status"], "active");
    // A recurring draft's copy recurs the same way.
    let draft = copy["id"].as_str().unwrap().to_owned();
    let recurring = w
        .app
        .post(&format!("/api/v1/campaigns/{draft}/duplicate"), &w.t, json!({}))
        .await;
    let recurring = recurring.ok(201)["id"].as_str().unwrap().to_owned();
    let rule = json!({"freq": "weekly", "at": "09:30", "weekdays": [1, 3]});
    let patched = w
        .app
        .patch(
            &format!("/api/v1/campaigns/{recurring}"),
            &w.t,
            json!({"recurrence": rule}),
        )
        .await;
    let patched = patched.ok(200).clone();
    let again = w
        .app
        .post(&format!("/api/v1/campaigns/{recurring}/duplicate"), &w.t, json!({}))
        .await;
    assert_eq!(again.ok(201)["recurrence"], patched["recurrence"]);
    assert!(!patched["recurrence"].is_null());
    // Another tenant's campaign is not found.
    let other = w.app.signup("Outra").await;
    w.app
        .post(&format!("/api/v1/campaigns/{c}/duplicate"), &other, json!({}))
        .await
        .problem(404);
}

#[tokio::test]
async fn recipients_export_as_csv_with_a_bom_and_the_chosen_delimiter() {
    let w = world().await;
    let c = finished_campaign(&w, 3).await;
    let (status, ct, body) = csv(&w, &format!("/api/v1/campaigns/{c}/recipients.csv"), &w.t.token).await;
    assert_eq!(status, 200);
    assert!(ct.starts_with("text/csv"), "{ct}");
    assert!(body.starts_with('\u{feff}'), "UTF-8 BOM for Excel");
    let lines: Vec<&str> = body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "phone,name,status,reason,variant,number,queued_at,sent_at,delivered_at,read_at,replied_at"
    );
    assert_eq!(lines.len(), 4, "{body}");
    let mut phones = vec![];
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        phones.push(cells[0].to_owned());
        assert_eq!((cells[2], cells[5]), ("sent", "loja-1"));
        assert!(!cells[7].is_empty(), "sent_at: {line}");
    }
    phones.sort();
    assert_eq!(phones, [phone(0), phone(1), phone(2)]);
    let (_, _, semi) = csv(
        &w,
        &format!("/api/v1/campaigns/{c}/recipients.csv?delimiter=semicolon"),
        &w.t.token,
    )
    .await;
    assert!(semi.lines().nth(1).unwrap().split(';').count() == 11, "{semi}");
    let bad = w
        .app
        .get(&format!("/api/v1/campaigns/{c}/recipients.csv?delimiter=tab"), &w.t)
        .await;
    assert_eq!(bad.fields(), ["delimiter"]);
    let other = w.app.signup("Outra").await;
    w.app
        .get(&format!("/api/v1/campaigns/{c}/recipients.csv"), &other)
        .await
        .problem(404);
}

#[tokio::test]
async fn logs_export_one_line_per_attempt_with_the_text_sent() {
    let w = world().await;
    let c = finished_campaign(&w, 2).await;
    let (status, _, body) = csv(&w, &format!("/api/v1/campaigns/{c}/logs.csv"), &w.t.token).await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = body.trim_start_matches('\u{feff}').lines().collect();
    assert_eq!(
        lines[0],
        "created_at,phone,recipient_id,variant,attempts,gateway_status,outcome,reason,duration_ms,text"
    );
    assert_eq!(lines.len(), 3, "{body}");
    // The text as sent, quoted where it holds the delimiter.
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.contains(",sent,") && l.contains(", variante ")),
        "{body}"
    );
    assert!(lines[1..].iter().any(|l| l.ends_with("variante A\"")), "{body}");
}
