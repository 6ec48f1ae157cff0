//! Media (issue 11): a campaign's media URLs are checked when it is saved and when it is
//! started (reachable, content type of the declared kind, under WhatsApp's size limit) —
//! 422 naming the message; sends carry the file's `mimetype` and `fileName`; media that
//! cannot be fetched at send time pauses the campaign (`media_unavailable`) instead of
//! failing its recipients. The sandbox serves the files (`/_sandbox/files`).

use crate::engine::{fast, immediate, Engine, World};
use serde_json::{json, Value};
use std::time::Duration;

fn file(w: &World, name: &str) -> String {
    format!("{}/_sandbox/files/{name}", w.sandbox.url)
}

fn campaign_body(w: &World, contacts: &[String], messages: Value) -> Value {
    json!({
        "name": "Mídia", "instance_id": w.instance, "messages": messages,
        "audience": {"contact_ids": contacts}, "schedule": immediate(), "pacing": fast()
    })
}

#[tokio::test]
async fn media_urls_are_checked_when_a_campaign_is_saved_and_again_when_it_starts() {
    let w = crate::engine::world().await;
    let sb = &w.sandbox.state;
    sb.put_file("promo.png", "image/png", 120_000);
    sb.put_file("clip.mp4", "video/mp4", 1_000_000);
    sb.put_file("huge.png", "image/png", 6 * 1024 * 1024);
    sb.put_file("tabela.pdf", "application/pdf", 300_000);
    let contacts = w.contacts(1).await;
    let bad = campaign_body(
        &w,
        &contacts,
        json!([
            {"text": "ok", "media": {"type": "image", "url": file(&w, "promo.png")}},
            {"text": "um vídeo declarado imagem", "media": {"type": "image", "url": file(&w, "clip.mp4")}},
            {"text": "grande demais", "media": {"type": "image", "url": file(&w, "huge.png")}},
            {"text": "sumiu", "media": {"type": "document", "url": file(&w, "nada.pdf")}},
        ]),
    );
    let r = w.app.post("/api/v1/campaigns", &w.t, bad).await;
    assert_eq!(
        r.fields(),
        [
            "messages[1].media.url",
            "messages[2].media.url",
            "messages[3].media.url"
        ],
        "{}",
        r.body
    );
    let errors = r.body["errors"].to_string();
    assert!(errors.contains("video/mp4") && errors.contains("HTTP 404"), "{errors}");
    let good = campaign_body(
        &w,
        &contacts,
        json!([
            {"text": "Veja", "media": {"type": "image", "url": file(&w, "promo.png")}},
            {"text": "A tabela", "media": {"type": "document", "url": file(&w, "tabela.pdf")}},
        ]),
    );
    let created = w.app.post("/api/v1/campaigns", &w.t, good).await;
    assert_eq!(created.ok(201)["messages"][1]["media"]["mimetype"], "application/pdf");
    let id = created.id();
    // The file goes away before the start: 422 naming the message, still a draft.
    assert!(sb.delete_file("promo.png"));
    let start = w
        .app
        .post(&format!("/api/v1/campaigns/{id}/start"), &w.t, json!({}))
        .await;
    assert_eq!(start.fields(), ["messages[0].media.url"], "{}", start.body);
    assert_eq!(w.status(&id).await, "draft");
}

#[tokio::test]
async fn media_sends_carry_the_files_mimetype_and_name() {
    let w = crate::engine::world().await;
    w.sandbox.state.put_file("tabela.pdf", "application/pdf", 300_000);
    let contacts = w.contacts(1).await;
    let body = campaign_body(
        &w,
        &contacts,
        json!([{"text": "A tabela", "media": {"type": "document", "url": file(&w, "tabela.pdf")}}]),
    );
    let c = w.app.post("/api/v1/campaigns", &w.t, body).await.id();
    w.start(&c).await;
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "completed", Duration::from_secs(30)).await;
    engine.stop().await;
    let sends = w.sandbox.state.sends(None);
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].mediatype.as_deref(), Some("document"));
    assert_eq!(sends[0].mimetype.as_deref(), Some("application/pdf"));
    assert_eq!(sends[0].file_name.as_deref(), Some("tabela.pdf"));
    assert_eq!(sends[0].caption.as_deref(), Some("A tabela"));
}

#[tokio::test]
async fn media_that_disappears_while_sending_pauses_the_campaign_instead_of_failing_its_recipients() {
    let w = crate::engine::world().await;
    w.sandbox.state.put_file("promo.png", "image/png", 120_000);
    let contacts = w.contacts(6).await;
    let body = campaign_body(
        &w,
        &contacts,
        json!([{"text": "Veja", "media": {"type": "image", "url": file(&w, "promo.png")}}]),
    );
    let c = w.app.post("/api/v1/campaigns", &w.t, body).await.id();
    w.start(&c).await;
    // Gone after the start's check: the gateway cannot download it.
    w.sandbox.state.delete_file("promo.png");
    let engine = Engine::start(&w.live_state(), 1, 1).await;
    w.wait_for_status(&c, "paused", Duration::from_secs(30)).await;
    engine.stop().await;
    let campaign = w.app.get(&format!("/api/v1/campaigns/{c}/stats"), &w.t).await;
    assert_eq!(
        campaign.ok(200)["paused_reason"],
        "media_unavailable",
        "{}",
        campaign.body
    );
    let counts = w.counts(&c).await;
    assert_eq!(counts.get("failed"), None, "{counts:?}");
    assert_eq!(counts.get("pending"), Some(&6), "{counts:?}");
    assert_eq!(w.sandbox.state.send_count(), 0);
}
