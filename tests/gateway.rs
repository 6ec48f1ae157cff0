//! The gateway client against `arauto sandbox`, both in-process over real HTTP.

use std::net::TcpListener;
use std::time::Duration;

use arauto::gateway::sandbox::FaultsPatch;
use arauto::gateway::{
    parse_webhook, sandbox_server, ConnectionState, ErrorClass, GatewayClient, GatewayEvent, InstanceTarget, MediaType,
    OutgoingMessage, ReceiptStatus, SandboxState, SendKind, SendRecord,
};
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Sandbox {
    url: String,
    state: SandboxState,
    http: reqwest::Client,
}

impl Sandbox {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = SandboxState::new();
        let server = sandbox_server(listener, state.clone()).expect("server");
        tokio::spawn(server);
        Self {
            url: format!("http://127.0.0.1:{port}"),
            state,
            http: reqwest::Client::new(),
        }
    }

    fn target<'a>(&'a self, instance: &'a str) -> InstanceTarget<'a> {
        InstanceTarget {
            api_url: &self.url,
            instance_name: instance,
            api_key: "any-key",
        }
    }

    async fn faults(&self, patch: Value) {
        let response = self
            .http
            .post(format!("{}/_sandbox/faults", self.url))
            .json(&patch)
            .send()
            .await
            .expect("faults");
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }

    async fn sends(&self, query: &str) -> Vec<SendRecord> {
        self.http
            .get(format!("{}/_sandbox/sends{query}", self.url))
            .send()
            .await
            .expect("sends")
            .json()
            .await
            .expect("json")
    }
}

fn client(timeout_ms: u64, attempts: u32) -> GatewayClient {
    GatewayClient::with_options(Duration::from_millis(timeout_ms), attempts, Duration::from_millis(1)).expect("client")
}

fn text(t: &str) -> OutgoingMessage {
    OutgoingMessage::Text { text: t.into() }
}

#[tokio::test]
async fn a_text_send_is_recorded_with_the_id_the_client_got() {
    let sb = Sandbox::start().await;
    let sent = client(2000, 3)
        .send(sb.target("loja-1"), "5511987654321", &text("Olá!"))
        .await
        .expect("sent");
    assert_eq!(sent.status, 201);
    assert_eq!(sent.attempts, 1);
    assert_eq!(sent.remote_jid, "5511987654321@s.whatsapp.net");
    let sends = sb.sends("").await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].message_id, sent.message_id);
    assert_eq!(sends[0].instance, "loja-1");
    assert_eq!(sends[0].number, "5511987654321");
    assert_eq!(sends[0].kind, SendKind::Text);
    assert_eq!(sends[0].text.as_deref(), Some("Olá!"));
    // RFC 3339 with milliseconds, UTC.
    assert!(chrono::DateTime::parse_from_rfc3339(&sends[0].at).is_ok());
    assert_eq!(sends[0].at.len(), "2026-11-25T10:00:00.000Z".len());
}

#[tokio::test]
async fn media_and_voice_notes_are_recorded_in_order_with_unique_ids() {
    let sb = Sandbox::start().await;
    let c = client(2000, 1);
    let media = OutgoingMessage::Media {
        mediatype: MediaType::Document,
        url: "https://cdn.example.com/a.pdf".into(),
        caption: Some("Veja".into()),
        file_name: Some("a.pdf".into()),
        mimetype: Some("application/pdf".into()),
    };
    let voice = OutgoingMessage::VoiceNote {
        url: "https://cdn.example.com/a.ogg".into(),
    };
    let a = c.send(sb.target("i1"), "551100", &media).await.expect("media");
    let b = c.send(sb.target("i2"), "551101", &voice).await.expect("voice");
    assert_ne!(a.message_id, b.message_id);
    let sends = sb.sends("").await;
    let kinds: Vec<_> = sends.iter().map(|s| s.kind).collect();
    assert_eq!(kinds, vec![SendKind::Media, SendKind::Audio]);
    assert_eq!(sends[0].caption.as_deref(), Some("Veja"));
    assert_eq!(sends[0].media.as_deref(), Some("https://cdn.example.com/a.pdf"));
    assert_eq!(sends[1].media.as_deref(), Some("https://cdn.example.com/a.ogg"));
    let only_i2 = sb.sends("?instance=i2").await;
    assert_eq!(only_i2.len(), 1);
    assert_eq!(only_i2[0].message_id, b.message_id);
}

#[tokio::test]
async fn a_number_not_on_whatsapp_is_a_recipient_error_with_that_reason() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"not_on_whatsapp": ["5511900000000"]})).await;
    let e = client(2000, 3)
        .send(sb.target("loja-1"), "5511900000000", &text("oi"))
        .await
        .expect_err("not on whatsapp");
    assert_eq!(e.class, ErrorClass::Recipient);
    assert_eq!(e.reason, "number not on WhatsApp");
    assert_eq!((e.status, e.attempts), (Some(400), 1));
    assert!(sb.sends("").await.is_empty());
}

#[tokio::test]
async fn a_disconnected_instance_is_an_instance_error_and_reports_close() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"disconnected": ["loja-1"]})).await;
    let c = client(2000, 3);
    let e = c
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect_err("closed");
    assert_eq!(
        (e.class, e.reason.as_str(), e.attempts),
        (ErrorClass::Instance, "Connection Closed", 1)
    );
    assert_eq!(
        c.connection_state(sb.target("loja-1")).await,
        Ok(ConnectionState::Close)
    );
    assert_eq!(c.connection_state(sb.target("loja-2")).await, Ok(ConnectionState::Open));
}

#[tokio::test]
async fn a_wrong_api_key_is_an_instance_error() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"api_key": "right"})).await;
    let c = client(2000, 3);
    let e = c
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect_err("unauthorized");
    assert_eq!(
        (e.class, e.reason.as_str(), e.status),
        (ErrorClass::Instance, "Unauthorized", Some(401))
    );
    let right = InstanceTarget {
        api_key: "right",
        ..sb.target("loja-1")
    };
    assert!(c.send(right, "5511987654321", &text("oi")).await.is_ok());
}

#[tokio::test]
async fn two_injected_500s_are_retried_and_the_third_attempt_is_recorded_once() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"fail_next": {"count": 2, "status": 500}})).await;
    let sent = client(2000, 3)
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect("sent on the third attempt");
    assert_eq!(sent.attempts, 3);
    let sends = sb.sends("").await;
    assert_eq!(sends.len(), 1);
    assert_eq!(sends[0].message_id, sent.message_id);
}

#[tokio::test]
async fn injected_failures_beyond_max_attempts_are_transient() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"fail_next": {"count": 5, "status": 503}})).await;
    let e = client(2000, 2)
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect_err("still failing");
    assert_eq!((e.class, e.status, e.attempts), (ErrorClass::Transient, Some(503), 2));
    assert_eq!(sb.state.faults().fail_next.count, 3);
}

#[tokio::test]
async fn every_nth_send_fails_when_fail_every_is_set() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"fail_every": {"nth": 3, "status": 429}})).await;
    let c = client(2000, 1);
    let mut outcomes = Vec::new();
    for i in 0..6 {
        let r = c.send(sb.target("loja-1"), &format!("55110{i}"), &text("oi")).await;
        outcomes.push(r.map(|_| ()).map_err(|e| e.status));
    }
    assert_eq!(
        outcomes,
        vec![Ok(()), Ok(()), Err(Some(429)), Ok(()), Ok(()), Err(Some(429))]
    );
    assert_eq!(sb.sends("").await.len(), 4);
}

#[tokio::test]
async fn a_send_slower_than_the_timeout_is_unknown_and_never_resent() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"latency_ms": 1500})).await;
    let e = client(400, 3)
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect_err("times out");
    assert_eq!(e.class, ErrorClass::Unknown);
    assert!(e.maybe_delivered());
    assert_eq!(e.attempts, 1);
    assert_eq!(e.reason, "timeout after 400 ms");
    // The gateway did take it: exactly one message went out.
    assert_eq!(sb.sends("").await.len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_unknown_and_never_resent() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"drop_connection_next": 1})).await;
    let c = client(5000, 3);
    let e = c
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect_err("dropped");
    assert_eq!(e.class, ErrorClass::Unknown, "{e}");
    assert_eq!(e.attempts, 1);
    assert!(e.reason.starts_with("connection error"), "{}", e.reason);
    assert_eq!(sb.sends("").await.len(), 1);
    // Only the next one: the following send goes through.
    assert!(c
        .send(sb.target("loja-1"), "5511987654321", &text("de novo"))
        .await
        .is_ok());
    assert_eq!(sb.sends("").await.len(), 2);
}

#[tokio::test]
async fn connect_logout_and_connection_state_follow_each_other() {
    let sb = Sandbox::start().await;
    let c = client(2000, 1);
    let t = sb.target("loja-1");
    assert_eq!(c.connection_state(t).await, Ok(ConnectionState::Open));
    assert_eq!(c.logout(t).await, Ok(()));
    assert_eq!(c.connection_state(t).await, Ok(ConnectionState::Close));
    let e = c.send(t, "5511", &text("oi")).await.expect_err("closed");
    assert_eq!(e.class, ErrorClass::Instance);
    let info = c.connect(t).await.expect("qr");
    assert!(info
        .base64
        .as_deref()
        .is_some_and(|b| b.starts_with("data:image/png;base64,")));
    assert_eq!(info.pairing_code.as_deref().map(str::len), Some(8));
    assert_eq!(info.count, Some(1));
    assert!(info.code.is_some());
    // pairing_ms defaults to 0: the QR is "scanned" at once.
    assert_eq!(c.connection_state(t).await, Ok(ConnectionState::Open));
}

#[tokio::test]
async fn an_instance_stays_connecting_for_the_pairing_time() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"pairing_ms": 60000})).await;
    let c = client(2000, 1);
    let t = sb.target("loja-1");
    c.logout(t).await.expect("logout");
    c.connect(t).await.expect("qr");
    assert_eq!(c.connection_state(t).await, Ok(ConnectionState::Connecting));
}

#[tokio::test]
async fn an_unknown_instance_answers_404_and_is_an_instance_error() {
    let sb = Sandbox::start().await;
    sb.faults(json!({"unknown_instances": ["ghost"]})).await;
    let e = client(2000, 3)
        .send(sb.target("ghost"), "5511", &text("oi"))
        .await
        .expect_err("404");
    assert_eq!((e.class, e.status), (ErrorClass::Instance, Some(404)));
    assert_eq!(e.reason, "The \"ghost\" instance does not exist");
}

#[tokio::test]
async fn errors_use_the_evolution_envelope() {
    let sb = Sandbox::start().await;
    let r = sb
        .http
        .post(format!("{}/message/sendText/loja-1", sb.url))
        .header("apikey", "k")
        .json(&json!({"number": "5511"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.expect("json");
    assert_eq!(
        body,
        json!({"status": 400, "error": "Bad Request",
               "response": {"message": ["instance requires property \"text\""]}})
    );
    let r = sb
        .http
        .get(format!("{}/instance/connectionState/x", sb.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["response"]["message"], "Unauthorized");
    let r = sb.http.get(format!("{}/nope", sb.url)).send().await.expect("answer");
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["response"]["message"], json!(["Cannot GET /nope"]));
}

#[tokio::test]
async fn the_control_api_clears_sends_and_resets_faults() {
    let sb = Sandbox::start().await;
    let c = client(2000, 1);
    c.send(sb.target("a"), "5511", &text("1")).await.expect("sent");
    let r = sb
        .http
        .delete(format!("{}/_sandbox/sends", sb.url))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 204);
    assert!(sb.sends("").await.is_empty());

    sb.faults(json!({"latency_ms": 5, "not_on_whatsapp": ["5511"]})).await;
    sb.faults(json!({"disconnected": ["b"]})).await;
    let view: Value = sb
        .http
        .get(format!("{}/_sandbox/faults", sb.url))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    // Merged, not replaced.
    assert_eq!(view["latency_ms"], 5);
    assert_eq!(view["not_on_whatsapp"], json!(["5511"]));
    assert_eq!(view["disconnected"], json!(["b"]));
    let r = sb
        .http
        .post(format!("{}/_sandbox/faults", sb.url))
        .json(&json!({"latncy_ms": 5}))
        .send()
        .await
        .expect("typo");
    assert_eq!(r.status(), 400);
    sb.http
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .await
        .expect("reset");
    assert_eq!(sb.state.faults().latency_ms, 0);
    assert!(c.send(sb.target("b"), "5511", &text("2")).await.is_ok());
}

#[tokio::test]
async fn faults_can_be_set_in_process_too() {
    let sb = Sandbox::start().await;
    sb.state
        .set_faults(FaultsPatch {
            not_on_whatsapp: Some(vec!["+55 11 5555".into()]),
            ..FaultsPatch::default()
        })
        .expect("valid");
    let e = client(2000, 1)
        .send(sb.target("a"), "55115555", &text("1"))
        .await
        .expect_err("not on whatsapp");
    assert_eq!(e.class, ErrorClass::Recipient);
    assert!(sb
        .state
        .set_faults(FaultsPatch {
            fail_next: Some(arauto::gateway::sandbox::FailNext { count: 1, status: 200 }),
            ..FaultsPatch::default()
        })
        .is_err());
}

#[tokio::test]
async fn instances_can_be_created_and_listed() {
    let sb = Sandbox::start().await;
    let created: Value = sb
        .http
        .post(format!("{}/instance/create", sb.url))
        .header("apikey", "global")
        .json(&json!({"instanceName": "loja-9", "integration": "WHATSAPP-BAILEYS", "qrcode": true}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    assert_eq!(created["instance"]["instanceName"], "loja-9");
    assert!(created["hash"].as_str().is_some_and(|h| !h.is_empty()));
    assert!(created["qrcode"]["base64"].as_str().is_some());
    let again = sb
        .http
        .post(format!("{}/instance/create", sb.url))
        .header("apikey", "global")
        .json(&json!({"instanceName": "loja-9"}))
        .send()
        .await
        .expect("create");
    assert_eq!(again.status(), 403);
    let list: Value = sb
        .http
        .get(format!("{}/instance/fetchInstances", sb.url))
        .header("apikey", "global")
        .send()
        .await
        .expect("fetch")
        .json()
        .await
        .expect("json");
    assert_eq!(list[0]["name"], "loja-9");
    assert_eq!(list[0]["connectionStatus"], "open");
    let numbers: Value = sb
        .http
        .post(format!("{}/chat/whatsappNumbers/loja-9", sb.url))
        .header("apikey", "k")
        .json(&json!({"numbers": ["5511"]}))
        .send()
        .await
        .expect("numbers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        numbers,
        json!([{"exists": true, "jid": "5511@s.whatsapp.net", "number": "5511"}])
    );
}

#[tokio::test]
async fn a_delivery_receipt_is_posted_to_the_webhook_after_a_send() {
    let sb = Sandbox::start().await;
    let hook = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&hook)
        .await;
    let r = sb
        .http
        .post(format!("{}/webhook/set/loja-1", sb.url))
        .header("apikey", "k")
        .json(
            &json!({"webhook": {"enabled": true, "url": format!("{}/hook", hook.uri()),
                                  "byEvents": false, "base64": false,
                                  "events": ["MESSAGES_UPDATE", "CONNECTION_UPDATE"]}}),
        )
        .send()
        .await
        .expect("set");
    assert_eq!(r.status(), 201);
    let sent = client(2000, 1)
        .send(sb.target("loja-1"), "5511987654321", &text("oi"))
        .await
        .expect("sent");
    let mut received = Vec::new();
    for _ in 0..100 {
        received = hook.received_requests().await.unwrap_or_default();
        if !received.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = received.first().expect("a webhook arrived");
    let events = parse_webhook(&first.body).expect("parses");
    assert_eq!(
        events,
        vec![GatewayEvent::Receipt {
            instance: "loja-1".into(),
            message_id: sent.message_id,
            remote_jid: Some("5511987654321@s.whatsapp.net".into()),
            status: ReceiptStatus::DeliveryAck,
        }]
    );
}

#[tokio::test]
async fn warming_opens_a_connection_once_and_not_again_while_the_gateway_answered_lately() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&server)
        .await;
    let c = client(1_000, 1);
    c.warm(&server.uri()).await;
    // Answered a moment ago: the pooled connection is taken to be open.
    c.warm(&format!("{}/", server.uri())).await;
    server.verify().await;
}

#[tokio::test]
async fn a_gateway_that_answered_a_send_lately_is_not_warmed() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"key": {"id": "M1"}})))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let c = client(1_000, 1);
    let target = InstanceTarget {
        api_url: &server.uri(),
        instance_name: "loja-1",
        api_key: "k",
    };
    c.send_once(target, "5511987654321", &text("oi")).await.expect("sent");
    c.warm(&server.uri()).await;
    server.verify().await;
}

#[tokio::test]
async fn set_webhook_points_the_instance_at_a_url_for_the_events_asked() {
    let sb = Sandbox::start().await;
    let c = client(2000, 1);
    let t = sb.target("loja-1");
    let events = ["MESSAGES_UPDATE", "MESSAGES_UPSERT", "CONNECTION_UPDATE"];
    assert_eq!(
        c.set_webhook(t, "https://arauto.example.com/hook", &events).await,
        Ok(())
    );
    let found: Value = sb
        .http
        .get(format!("{}/webhook/find/loja-1", sb.url))
        .header("apikey", "any-key")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found["url"], "https://arauto.example.com/hook");
    assert_eq!(found["enabled"], true);
    assert_eq!(found["events"], json!(events));
}
