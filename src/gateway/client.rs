//! The HTTP client for the Evolution API v2 subset in `EVOLUTION.md`.
//!
//! # Error classes
//!
//! Every failure is a [`GatewayError`] with an [`ErrorClass`]:
//!
//! | class | when | caller does |
//! |---|---|---|
//! | `Instance` | 401/403; "Connection Closed" anywhere in the answer (any status); 404 (unknown instance name or wrong `api_url`: the whole instance is unusable either way); an unexpected 1xx/3xx | pause the campaign |
//! | `Recipient` | `exists: false` ("number not on WhatsApp"); any other 4xx except 429 | fail that recipient |
//! | `Transient` | 429; 5xx without "Connection Closed"; connection failures; timeouts of calls that are safe to repeat | already retried here; fail or requeue |
//! | `Unknown` | **`send` only**: a timeout or a broken connection after the request may have reached the gateway; an unreadable 2xx answer | never resend: fail the recipient with `outcome_unknown`, let a receipt correct it |
//!
//! # Retries
//!
//! Only `Transient` errors are retried, up to `max_attempts` calls in total, sleeping a
//! full-jitter exponential backoff between them (`random(0 ..= min(cap, base · 2^(n-1)))`,
//! base 200 ms and cap 5 s by default).
//!
//! For `send` (at most once, `PRODUCT.md` invariant 2) a failure is retried only when the
//! gateway surely did not take the message or said it did not:
//! - the connection could not be established (refused, DNS, TLS, connect timeout): the
//!   request never left this process;
//! - the gateway answered 429 or a 5xx (without "Connection Closed"): it reported failure.
//!
//! A timeout waiting for the answer, a connection reset or closed after the request was
//! written, or a 2xx whose body cannot be read may all hide a delivered message: they are
//! `ErrorClass::Unknown` ([`GatewayError::maybe_delivered`]) and are never retried. The
//! read-only and idempotent calls (`connection_state`, `connect`, `logout`) retry those too.
//!
//! The connect phase has its own timeout (half the call timeout, at most 5 s) so that a
//! gateway that cannot be reached is told apart from one that is slow to answer.

use std::time::Duration;

use rand::Rng;
use reqwest::{header, Method, StatusCode};
use serde::Serialize;
use serde_json::Value;

use crate::config::GatewaySettings;

/// Longest body excerpt kept on results and errors, in characters.
pub const EXCERPT_CHARS: usize = 500;
const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(200);
const BACKOFF_CAP: Duration = Duration::from_secs(5);
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long an unused pooled connection is kept: below the 5 s keep-alive of Node and actix
/// servers, so that a pooled connection is not reused just as the gateway closes it.
const POOL_IDLE: Duration = Duration::from_secs(4);
/// A gateway answered less than this ago is taken to have a pooled connection open
/// ([`GatewayClient::warm`] does nothing): a second under [`POOL_IDLE`].
const WARM_FOR: Duration = Duration::from_secs(3);
/// The longest [`GatewayClient::warm`] holds a send back: a healthy gateway answers a
/// `GET /` well within it even across an ocean; one that does not answer costs a send at
/// most this before the send's own attempt (and its retries) find out.
const WARM_TIMEOUT: Duration = Duration::from_secs(1);

/// Where to reach one instance.
#[derive(Debug, Clone, Copy)]
pub struct InstanceTarget<'a> {
    /// Base URL without a trailing slash (one is tolerated), e.g. `http://evolution:8080`.
    pub api_url: &'a str,
    /// The instance **name**, used as `{instance}` in paths.
    pub instance_name: &'a str,
    /// Sent as the `apikey` header.
    pub api_key: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaType {
    Image,
    Video,
    Document,
    Audio,
}

impl MediaType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Video => "video",
            Self::Document => "document",
            Self::Audio => "audio",
        }
    }
}

/// What to send to one number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutgoingMessage {
    Text {
        text: String,
    },
    /// `url` is a URL or raw base64.
    Media {
        mediatype: MediaType,
        url: String,
        caption: Option<String>,
        file_name: Option<String>,
        mimetype: Option<String>,
    },
    /// A push-to-talk voice note (`sendWhatsAppAudio`).
    VoiceNote {
        url: String,
    },
}

/// The gateway accepted the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// `key.id`: receipts refer to it.
    pub message_id: String,
    /// `key.remoteJid` (empty if the gateway left it out).
    pub remote_jid: String,
    /// The HTTP status (201).
    pub status: u16,
    /// Calls made, including the successful one.
    pub attempts: u32,
    /// The answer body, at most [`EXCERPT_CHARS`] characters.
    pub body_excerpt: String,
}

/// Stored in `instances.connection_state` (text), mapped by sea-orm.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, utoipa::ToSchema, sea_orm::EnumIter, sea_orm::DeriveActiveEnum,
)]
#[serde(rename_all = "lowercase")]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum ConnectionState {
    #[sea_orm(string_value = "open")]
    Open,
    #[sea_orm(string_value = "connecting")]
    Connecting,
    #[sea_orm(string_value = "close")]
    Close,
}

impl ConnectionState {
    /// `open`, `connecting`, `close` (also `closed`), case-insensitive.
    pub fn parse(state: &str) -> Option<Self> {
        match state.trim().to_ascii_lowercase().as_str() {
            "open" => Some(Self::Open),
            "connecting" => Some(Self::Connecting),
            "close" | "closed" => Some(Self::Close),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Connecting => "connecting",
            Self::Close => "close",
        }
    }
}

/// The answer to `GET /instance/connect/{instance}`: a fresh QR (`base64`, `code`) and,
/// when the gateway offers one, a pairing code. All fields are `None` when the instance is
/// already connected (the gateway then answers with its state instead).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectInfo {
    pub pairing_code: Option<String>,
    pub code: Option<String>,
    pub base64: Option<String>,
    pub count: Option<u32>,
}

/// An instance the gateway created ([`GatewayClient::create_instance`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedInstance {
    /// The instance's own api key (`hash`): what Arauto stores, encrypted, to use it.
    pub api_key: String,
    /// `instance.status` as the gateway reported it.
    pub state: Option<ConnectionState>,
    /// The QR code (and pairing code) to connect the number.
    pub qrcode: ConnectInfo,
}

/// `{"pairingCode", "code", "base64", "count"}` as the gateway answers them.
fn connect_info(v: &Value) -> ConnectInfo {
    let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
    ConnectInfo {
        pairing_code: text("pairingCode"),
        code: text("code"),
        base64: text("base64"),
        count: v
            .get("count")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok()),
    }
}

/// How a failure should be handled; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// Retryable; retried here already, up to `max_attempts`.
    Transient,
    /// This recipient cannot be reached (not on WhatsApp, rejected input).
    Recipient,
    /// The instance is unusable (bad key, disconnected, unknown): pause its campaign.
    Instance,
    /// `send` only: the message may have been delivered. Never resend.
    Unknown,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Recipient => "recipient",
            Self::Instance => "instance",
            Self::Unknown => "unknown",
        }
    }
}

/// A failed gateway call, after any retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub class: ErrorClass,
    /// The HTTP status, when the gateway answered.
    pub status: Option<u16>,
    /// For people: "number not on WhatsApp", "Unauthorized", "Connection Closed",
    /// "timeout after 15000 ms", "HTTP 500: …".
    pub reason: String,
    /// The last answer's body, at most [`EXCERPT_CHARS`] characters (empty without one).
    pub body_excerpt: String,
    /// Calls made.
    pub attempts: u32,
}

impl GatewayError {
    fn new(class: ErrorClass, status: Option<u16>, reason: impl Into<String>, body: &str) -> Self {
        Self {
            class,
            status,
            reason: storable(&reason.into()),
            body_excerpt: excerpt(body),
            attempts: 1,
        }
    }

    /// True when the message may have reached WhatsApp although the call failed.
    pub fn maybe_delivered(&self) -> bool {
        self.class == ErrorClass::Unknown
    }

    pub fn is_transient(&self) -> bool {
        self.class == ErrorClass::Transient
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gateway {} error", self.class.as_str())?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.reason)?;
        if self.attempts > 1 {
            write!(f, " after {} attempts", self.attempts)?;
        }
        Ok(())
    }
}

impl std::error::Error for GatewayError {}

/// A cheap-to-clone client: one shared connection pool for every instance and tenant.
#[derive(Debug, Clone)]
pub struct GatewayClient {
    http: reqwest::Client,
    /// When each gateway (by origin, `scheme://host:port`) last answered through the pool.
    answered: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>>,
    timeout: Duration,
    max_attempts: u32,
    backoff_base: Duration,
    backoff_cap: Duration,
}

/// Whether a call may be repeated after a failure that may have reached the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Reads and idempotent commands.
    Safe,
    /// Sends: at most once.
    AtMostOnce,
}

impl GatewayClient {
    /// From `[gateway]`: `timeout_ms` per call, `max_attempts` in total, backoff base 200 ms.
    pub fn new(settings: &GatewaySettings) -> anyhow::Result<Self> {
        Self::with_options(
            Duration::from_millis(settings.timeout_ms),
            settings.max_attempts,
            DEFAULT_BACKOFF_BASE,
        )
    }

    /// Explicit per-call `timeout`, `max_attempts` (at least 1) and backoff base (the cap is
    /// 5 s, or the base if larger). Tests use millisecond backoffs.
    pub fn with_options(timeout: Duration, max_attempts: u32, backoff_base: Duration) -> anyhow::Result<Self> {
        let connect_timeout = (timeout / 2).min(MAX_CONNECT_TIMEOUT);
        let http = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true)
            .pool_idle_timeout(POOL_IDLE)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("arauto/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build the gateway HTTP client: {e}"))?;
        Ok(Self {
            http,
            answered: Default::default(),
            timeout,
            max_attempts: max_attempts.max(1),
            backoff_base,
            backoff_cap: BACKOFF_CAP.max(backoff_base),
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Opens a pooled connection to the gateway at `api_url` unless that gateway answered
    /// through this pool in the last [`WARM_FOR`] (3 s), with a `GET {api_url}/` whose
    /// answer, whatever its status, is dropped; at most [`WARM_TIMEOUT`] (1 s).
    ///
    /// Called before a paced send passes the send gate: the gate spaces requests as they
    /// leave this process, and a request that has to open its connection first (TCP, and
    /// TLS for `https`: a few round trips to a distant gateway) reaches the gateway that
    /// much later than one that finds a connection open. A campaign's first send would
    /// then arrive late and its second, on the open connection, closer to it than the
    /// minimum (PRODUCT §2.5 measures the gap at the gateway). A heuristic: "answered
    /// lately" does not prove a connection is free (another send may hold it, or the
    /// gateway may have closed it). Failures are ignored: the send then opens its
    /// connection itself, as before. The request carries no message and touches no
    /// instance (Evolution answers `GET /` with its welcome; it is outside `EVOLUTION.md`'s
    /// subset, and any answer, even 404, leaves the connection open), so it is not held by
    /// the send gate and may reach the gateway after a pause returned.
    pub async fn warm(&self, api_url: &str) {
        let base = api_url.trim_end_matches('/');
        let Some(origin) = origin(base) else {
            return;
        };
        if self.answered_within(&origin, WARM_FOR) {
            return;
        }
        metrics::counter!("arauto_gateway_warmups_total").increment(1);
        let answer = self
            .http
            .get(format!("{base}/"))
            .timeout(self.timeout.min(WARM_TIMEOUT))
            .send()
            .await;
        match answer {
            // Read to the end, so the connection goes back to the pool.
            Ok(response) => {
                if response.bytes().await.is_ok() {
                    self.note_answer(&origin);
                }
            }
            Err(e) => tracing::debug!(api_url, error = %e, "opening a connection to the gateway failed"),
        }
    }

    fn answered_within(&self, origin: &str, within: Duration) -> bool {
        let answered = self.answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        answered.get(origin).is_some_and(|at| at.elapsed() < within)
    }

    fn note_answer(&self, origin: &str) {
        let mut answered = self.answered.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        answered.insert(origin.to_owned(), std::time::Instant::now());
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Sends `msg` to `number` (digits with country code). See the module documentation for
    /// what is retried.
    pub async fn send(
        &self,
        target: InstanceTarget<'_>,
        number: &str,
        msg: &OutgoingMessage,
    ) -> Result<SentMessage, GatewayError> {
        self.send_with_delay(target, number, msg, None).await
    }

    /// [`Self::send`], asking the gateway to show "typing…" for `delay_ms` first. The
    /// gateway holds the answer for that long, so keep it well under the call timeout.
    pub async fn send_with_delay(
        &self,
        target: InstanceTarget<'_>,
        number: &str,
        msg: &OutgoingMessage,
        delay_ms: Option<u32>,
    ) -> Result<SentMessage, GatewayError> {
        self.send_up_to(target, number, msg, delay_ms, self.max_attempts).await
    }

    /// One attempt of [`Self::send`], never retried here: the dispatch worker retries
    /// itself, re-checking pause, cancel, the window and pacing before each attempt
    /// (PRODUCT §7). Pair with [`Self::backoff`] and [`Self::max_attempts`].
    pub async fn send_once(
        &self,
        target: InstanceTarget<'_>,
        number: &str,
        msg: &OutgoingMessage,
    ) -> Result<SentMessage, GatewayError> {
        self.send_up_to(target, number, msg, None, 1).await
    }

    async fn send_up_to(
        &self,
        target: InstanceTarget<'_>,
        number: &str,
        msg: &OutgoingMessage,
        delay_ms: Option<u32>,
        max_attempts: u32,
    ) -> Result<SentMessage, GatewayError> {
        let (endpoint, body) = send_body(number, msg, delay_ms);
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::new(ErrorClass::Recipient, None, format!("cannot encode: {e}"), ""))?;
        let url = url(target, endpoint);
        let answer = self
            .call_up_to(
                Method::POST,
                &url,
                target.api_key,
                Some(body),
                Repeat::AtMostOnce,
                max_attempts,
            )
            .await?;
        let parsed: Option<Value> = serde_json::from_str(&answer.body).ok();
        let key = parsed.as_ref().and_then(|v| v.get("key"));
        let message_id = key
            .and_then(|k| k.get("id"))
            .and_then(Value::as_str)
            .filter(|id| !id.is_empty());
        let Some(message_id) = message_id else {
            // Accepted but unreadable: the message may well be on its way.
            return Err(GatewayError {
                attempts: answer.attempts,
                ..GatewayError::new(
                    ErrorClass::Unknown,
                    Some(answer.status),
                    "gateway accepted the message but its answer has no key.id",
                    &answer.body,
                )
            });
        };
        Ok(SentMessage {
            message_id: storable(message_id),
            remote_jid: storable(
                key.and_then(|k| k.get("remoteJid"))
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            ),
            status: answer.status,
            attempts: answer.attempts,
            body_excerpt: excerpt(&answer.body),
        })
    }

    /// `GET /instance/connectionState/{instance}`.
    pub async fn connection_state(&self, target: InstanceTarget<'_>) -> Result<ConnectionState, GatewayError> {
        let url = url(target, "instance/connectionState");
        let answer = self.call(Method::GET, &url, target.api_key, None, Repeat::Safe).await?;
        let state = serde_json::from_str::<Value>(&answer.body).ok().and_then(|v| {
            v.pointer("/instance/state")
                .or_else(|| v.get("state"))
                .and_then(Value::as_str)
                .and_then(ConnectionState::parse)
        });
        state.ok_or_else(|| answer.unexpected("no known instance.state in the answer"))
    }

    /// `GET /instance/connect/{instance}`: a fresh QR code / pairing code.
    pub async fn connect(&self, target: InstanceTarget<'_>) -> Result<ConnectInfo, GatewayError> {
        let url = url(target, "instance/connect");
        let answer = self.call(Method::GET, &url, target.api_key, None, Repeat::Safe).await?;
        let v: Value = serde_json::from_str(&answer.body).map_err(|_| answer.unexpected("the answer is not JSON"))?;
        Ok(connect_info(&v))
    }

    /// `POST /instance/create` with the gateway's global key (`target.api_key`; its
    /// `instance_name` is the new instance's name), asking for a QR code and pointing the
    /// instance's webhook at `webhook_url` for `events` (`EVOLUTION.md`, "Instances").
    /// Never retried after the request may have reached the gateway (a second create of the
    /// same name is refused): only a refused connection or a 5xx/429 is retried.
    pub async fn create_instance(
        &self,
        target: InstanceTarget<'_>,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<CreatedInstance, GatewayError> {
        let url = format!("{}/instance/create", target.api_url.trim_end_matches('/'));
        let body = serde_json::json!({
            "instanceName": target.instance_name,
            "integration": "WHATSAPP-BAILEYS",
            "qrcode": true,
            "webhook": {"url": webhook_url, "byEvents": false, "base64": false, "events": events},
        });
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::new(ErrorClass::Recipient, None, format!("cannot encode: {e}"), ""))?;
        let answer = self
            .call(Method::POST, &url, target.api_key, Some(body), Repeat::AtMostOnce)
            .await?;
        let v: Value = serde_json::from_str(&answer.body).map_err(|_| answer.unexpected("the answer is not JSON"))?;
        // `hash` is the instance's own key: a string in 2.x, `{"apikey": …}` in some versions.
        let api_key = v
            .get("hash")
            .and_then(|h| h.as_str().or_else(|| h.get("apikey").and_then(Value::as_str)))
            .filter(|k| !k.is_empty())
            .ok_or_else(|| answer.unexpected("no hash (the instance's api key) in the answer"))?;
        let status = v
            .pointer("/instance/status")
            .and_then(Value::as_str)
            .and_then(ConnectionState::parse);
        Ok(CreatedInstance {
            api_key: api_key.to_owned(),
            state: status,
            qrcode: v.get("qrcode").map(connect_info).unwrap_or_default(),
        })
    }

    /// `DELETE /instance/delete/{instance}`.
    pub async fn delete_instance(&self, target: InstanceTarget<'_>) -> Result<(), GatewayError> {
        let url = url(target, "instance/delete");
        self.call(Method::DELETE, &url, target.api_key, None, Repeat::Safe)
            .await
            .map(|_| ())
    }

    /// `POST /webhook/set/{instance}` with the instance's key: its webhook, enabled, pointed
    /// at `webhook_url` for `events` (`EVOLUTION.md`, "Instances"). Idempotent, so retried
    /// like a read.
    pub async fn set_webhook(
        &self,
        target: InstanceTarget<'_>,
        webhook_url: &str,
        events: &[&str],
    ) -> Result<(), GatewayError> {
        let url = url(target, "webhook/set");
        let body = serde_json::json!({"webhook": {
            "enabled": true, "url": webhook_url, "byEvents": false, "base64": false,
            "headers": {}, "events": events,
        }});
        let body = serde_json::to_vec(&body)
            .map_err(|e| GatewayError::new(ErrorClass::Recipient, None, format!("cannot encode: {e}"), ""))?;
        self.call(Method::POST, &url, target.api_key, Some(body), Repeat::Safe)
            .await
            .map(|_| ())
    }

    /// `DELETE /instance/logout/{instance}`.
    pub async fn logout(&self, target: InstanceTarget<'_>) -> Result<(), GatewayError> {
        let url = url(target, "instance/logout");
        self.call(Method::DELETE, &url, target.api_key, None, Repeat::Safe)
            .await
            .map(|_| ())
    }

    /// One logical call: attempts, classification and backoff. `Ok` only for a 2xx.
    async fn call(
        &self,
        method: Method,
        url: &str,
        api_key: &str,
        body: Option<Vec<u8>>,
        repeat: Repeat,
    ) -> Result<Answer, GatewayError> {
        self.call_up_to(method, url, api_key, body, repeat, self.max_attempts)
            .await
    }

    async fn call_up_to(
        &self,
        method: Method,
        url: &str,
        api_key: &str,
        body: Option<Vec<u8>>,
        repeat: Repeat,
        max_attempts: u32,
    ) -> Result<Answer, GatewayError> {
        let mut attempt = 1;
        loop {
            let result = self.attempt(method.clone(), url, api_key, body.clone(), repeat).await;
            match result {
                Ok(answer) => {
                    return Ok(Answer {
                        attempts: attempt,
                        ..answer
                    })
                }
                Err(e) if e.class == ErrorClass::Transient && attempt < max_attempts => {
                    tracing::debug!(url, attempt, error = %e, "gateway call failed, retrying");
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(GatewayError { attempts: attempt, ..e }),
            }
        }
    }

    async fn attempt(
        &self,
        method: Method,
        url: &str,
        api_key: &str,
        body: Option<Vec<u8>>,
        repeat: Repeat,
    ) -> Result<Answer, GatewayError> {
        let mut request = self
            .http
            .request(method, url)
            .timeout(self.timeout)
            .header("apikey", api_key)
            .header(header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request.header(header::CONTENT_TYPE, "application/json").body(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&e, None, repeat))?;
        let status = response.status();
        // The URL the request already parsed: no second parse per call.
        let origin = response.url().origin().ascii_serialization();
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(&e, Some(status), repeat))?;
        self.note_answer(&origin);
        if status.is_success() {
            Ok(Answer {
                status: status.as_u16(),
                body: text,
                attempts: 1,
            })
        } else {
            Err(classify_status(status.as_u16(), &text))
        }
    }

    fn transport_error(&self, e: &reqwest::Error, status: Option<StatusCode>, repeat: Repeat) -> GatewayError {
        let status = status.map(|s| s.as_u16());
        if e.is_connect() {
            // Nothing was sent: always safe to retry.
            return GatewayError::new(
                ErrorClass::Transient,
                status,
                format!("cannot connect: {}", root_cause(e)),
                "",
            );
        }
        let reason = if e.is_timeout() {
            format!("timeout after {} ms", self.timeout.as_millis())
        } else {
            format!("connection error: {}", root_cause(e))
        };
        let class = match repeat {
            Repeat::Safe => ErrorClass::Transient,
            Repeat::AtMostOnce => ErrorClass::Unknown,
        };
        GatewayError::new(class, status, reason, "")
    }

    /// The wait before retry number `attempt` (1 for the first retry). Full jitter: uniform
    /// in `0 ..= min(cap, base · 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self.backoff_base.saturating_mul(1u32 << (attempt - 1).min(20));
        let ceiling = exp.min(self.backoff_cap).as_millis();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
    }
}

/// A 2xx answer.
struct Answer {
    status: u16,
    body: String,
    attempts: u32,
}

impl Answer {
    /// A 2xx that does not say what it should: the gateway is not the API we expect.
    fn unexpected(&self, what: &str) -> GatewayError {
        GatewayError {
            attempts: self.attempts,
            ..GatewayError::new(
                ErrorClass::Instance,
                Some(self.status),
                format!("unexpected gateway answer: {what}"),
                &self.body,
            )
        }
    }
}

/// `scheme://host[:port]` of `url`; `None` when it does not parse.
fn origin(url: &str) -> Option<String> {
    reqwest::Url::parse(url).ok().map(|u| u.origin().ascii_serialization())
}

fn url(target: InstanceTarget<'_>, path: &str) -> String {
    format!(
        "{}/{}/{}",
        target.api_url.trim_end_matches('/'),
        path,
        encode_segment(target.instance_name)
    )
}

/// Percent-encodes what cannot appear raw in a path segment (instance names are usually
/// plain, but may carry spaces or accents).
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn send_body(number: &str, msg: &OutgoingMessage, delay: Option<u32>) -> (&'static str, Value) {
    let mut body = serde_json::Map::new();
    body.insert("number".into(), number.into());
    let endpoint = match msg {
        OutgoingMessage::Text { text } => {
            body.insert("text".into(), text.as_str().into());
            body.insert("linkPreview".into(), false.into());
            "message/sendText"
        }
        OutgoingMessage::Media {
            mediatype,
            url,
            caption,
            file_name,
            mimetype,
        } => {
            body.insert("mediatype".into(), mediatype.as_str().into());
            body.insert("media".into(), url.as_str().into());
            if let Some(mimetype) = mimetype {
                body.insert("mimetype".into(), mimetype.as_str().into());
            }
            if let Some(caption) = caption {
                body.insert("caption".into(), caption.as_str().into());
            }
            if let Some(file_name) = file_name {
                body.insert("fileName".into(), file_name.as_str().into());
            }
            "message/sendMedia"
        }
        OutgoingMessage::VoiceNote { url } => {
            body.insert("audio".into(), url.as_str().into());
            "message/sendWhatsAppAudio"
        }
    };
    if let Some(delay) = delay {
        body.insert("delay".into(), delay.into());
    }
    (endpoint, Value::Object(body))
}

/// Classifies a non-2xx answer per `EVOLUTION.md`.
pub fn classify_status(status: u16, body: &str) -> GatewayError {
    let envelope: Option<Value> = serde_json::from_str(body).ok();
    let message = envelope
        .as_ref()
        .and_then(|v| v.pointer("/response/message").or_else(|| v.get("message")));
    let (texts, not_on_whatsapp) = message_texts(message);
    let joined = texts.join("; ");
    let or_default = |fallback: &str| {
        if joined.is_empty() {
            fallback.to_owned()
        } else {
            joined.clone()
        }
    };
    let status_text = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error");
    let (class, reason) = if status == 401 || status == 403 {
        (ErrorClass::Instance, or_default(status_text))
    } else if body.to_ascii_lowercase().contains("connection closed") {
        (ErrorClass::Instance, "Connection Closed".to_owned())
    } else if status == 404 {
        // An unknown instance name (or an api_url that is not an Evolution API): no send
        // through this instance can succeed, so it is the instance's problem.
        (ErrorClass::Instance, or_default("Not Found"))
    } else if status == 429 {
        (ErrorClass::Transient, "rate limited (HTTP 429)".to_owned())
    } else if (500..600).contains(&status) {
        (
            ErrorClass::Transient,
            format!("HTTP {status}: {}", or_default(status_text)),
        )
    } else if not_on_whatsapp {
        (ErrorClass::Recipient, "number not on WhatsApp".to_owned())
    } else if (400..500).contains(&status) {
        (ErrorClass::Recipient, or_default(status_text))
    } else {
        (
            ErrorClass::Instance,
            format!("unexpected HTTP {status} (is api_url right?)"),
        )
    };
    GatewayError::new(class, Some(status), reason, body)
}

/// `response.message` as human strings (string, array of strings, array of objects), and
/// whether any entry is `exists: false`.
fn message_texts(message: Option<&Value>) -> (Vec<String>, bool) {
    let mut not_on_whatsapp = false;
    let mut texts = Vec::new();
    let mut push = |v: &Value| match v {
        Value::String(s) => texts.push(s.clone()),
        Value::Object(o) => {
            if o.get("exists").and_then(Value::as_bool) == Some(false) {
                not_on_whatsapp = true;
            }
            match o.get("message").and_then(Value::as_str) {
                Some(m) => texts.push(m.to_owned()),
                None => texts.push(v.to_string()),
            }
        }
        Value::Null => {}
        other => texts.push(other.to_string()),
    };
    match message {
        Some(Value::Array(items)) => items.iter().for_each(&mut push),
        Some(other) => push(other),
        None => {}
    }
    (texts, not_on_whatsapp)
}

/// At most [`EXCERPT_CHARS`] characters, storable: see [`storable`].
fn excerpt(body: &str) -> String {
    let cut = match body.char_indices().nth(EXCERPT_CHARS) {
        Some((cut, _)) => &body[..cut],
        None => body,
    };
    storable(cut)
}

/// Gateway text as Postgres can store it: NUL (`\0`, also from a JSON `\u0000`), which
/// Postgres refuses in `text` and `jsonb`, becomes U+FFFD. Whatever a gateway answers, its
/// outcome is still written.
fn storable(text: &str) -> String {
    text.replace('\0', "\u{FFFD}")
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{body_json, header, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    const INSTANCE: &str = "loja-1";

    fn client(attempts: u32) -> GatewayClient {
        GatewayClient::with_options(Duration::from_millis(500), attempts, Duration::from_millis(1))
            .expect("client builds")
    }

    fn target(api_url: &str) -> InstanceTarget<'_> {
        InstanceTarget {
            api_url,
            instance_name: INSTANCE,
            api_key: "secret",
        }
    }

    fn text(t: &str) -> OutgoingMessage {
        OutgoingMessage::Text { text: t.into() }
    }

    fn created(id: &str) -> ResponseTemplate {
        ResponseTemplate::new(201).set_body_json(json!({
            "key": {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": true, "id": id},
            "message": {"conversation": "Olá!"}, "messageTimestamp": 1764000000, "status": "PENDING"
        }))
    }

    fn envelope(status: u16, error: &str, message: Value) -> ResponseTemplate {
        ResponseTemplate::new(status)
            .set_body_json(json!({"status": status, "error": error, "response": {"message": message}}))
    }

    #[tokio::test]
    async fn a_text_send_posts_the_documented_body_and_parses_the_201_answer() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .and(path("/message/sendText/loja-1"))
            .and(header("apikey", "secret"))
            .and(body_json(
                json!({"number": "5511987654321", "text": "Olá!", "delay": 1200, "linkPreview": false}),
            ))
            .respond_with(created("3EB0C4A1F2D5B6E7"))
            .expect(1)
            .mount(&server)
            .await;
        let sent = client(3)
            .send_with_delay(target(&uri), "5511987654321", &text("Olá!"), Some(1200))
            .await
            .expect("sent");
        assert_eq!(sent.message_id, "3EB0C4A1F2D5B6E7");
        assert_eq!(sent.remote_jid, "5511987654321@s.whatsapp.net");
        assert_eq!(sent.status, 201);
        assert_eq!(sent.attempts, 1);
        assert!(sent.body_excerpt.contains("3EB0C4A1F2D5B6E7"));
    }

    #[tokio::test]
    async fn media_and_voice_notes_use_their_own_endpoints() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .and(path("/message/sendMedia/loja-1"))
            .and(body_json(
                json!({"number": "55119", "mediatype": "image", "mimetype": "image/png",
                                  "caption": "Veja", "media": "https://cdn/a.png", "fileName": "a.png"}),
            ))
            .respond_with(created("M1"))
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(path("/message/sendWhatsAppAudio/loja-1"))
            .and(body_json(json!({"number": "55119", "audio": "https://cdn/a.ogg"})))
            .respond_with(created("A1"))
            .mount(&server)
            .await;
        let c = client(1);
        let media = OutgoingMessage::Media {
            mediatype: MediaType::Image,
            url: "https://cdn/a.png".into(),
            caption: Some("Veja".into()),
            file_name: Some("a.png".into()),
            mimetype: Some("image/png".into()),
        };
        let voice = OutgoingMessage::VoiceNote {
            url: "https://cdn/a.ogg".into(),
        };
        assert_eq!(
            c.send(target(&uri), "55119", &media).await.map(|s| s.message_id),
            Ok("M1".into())
        );
        assert_eq!(
            c.send(target(&uri), "55119", &voice).await.map(|s| s.message_id),
            Ok("A1".into())
        );
    }

    #[tokio::test]
    async fn a_number_not_on_whatsapp_is_a_recipient_error_and_is_not_retried() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(envelope(
                400,
                "Bad Request",
                json!([{"jid": "5511999@s.whatsapp.net", "exists": false, "number": "5511999"}]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511999", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!(e.class, ErrorClass::Recipient);
        assert_eq!(e.reason, "number not on WhatsApp");
        assert_eq!(e.status, Some(400));
        assert_eq!(e.attempts, 1);
        assert!(e.body_excerpt.contains("exists"));
    }

    #[tokio::test]
    async fn validation_errors_join_the_array_of_strings_as_the_reason() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(envelope(
                400,
                "Bad Request",
                json!(["text is required", "number is invalid"]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3).send(target(&uri), "x", &text("")).await.expect_err("fails");
        assert_eq!(e.class, ErrorClass::Recipient);
        assert_eq!(e.reason, "text is required; number is invalid");
    }

    #[tokio::test]
    async fn a_wrong_api_key_is_an_instance_error_with_the_string_message() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(envelope(401, "Unauthorized", json!("Unauthorized")))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!(
            (e.class, e.reason.as_str(), e.attempts),
            (ErrorClass::Instance, "Unauthorized", 1)
        );
    }

    #[tokio::test]
    async fn a_forbidden_answer_is_an_instance_error() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(403))
            .mount(&server)
            .await;
        let e = client(3).connection_state(target(&uri)).await.expect_err("fails");
        assert_eq!((e.class, e.reason.as_str()), (ErrorClass::Instance, "Forbidden"));
    }

    #[tokio::test]
    async fn connection_closed_is_an_instance_error_even_as_a_500() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .and(path("/message/sendText/loja-1"))
            .respond_with(envelope(
                500,
                "Internal Server Error",
                json!("Error: Connection Closed"),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!(e.class, ErrorClass::Instance);
        assert_eq!(e.reason, "Connection Closed");
        assert_eq!(e.attempts, 1);
    }

    #[tokio::test]
    async fn connection_closed_in_a_400_array_is_an_instance_error() {
        let e = classify_status(
            400,
            r#"{"status":400,"error":"Bad Request","response":{"message":["Connection Closed"]}}"#,
        );
        assert_eq!(e.class, ErrorClass::Instance);
    }

    #[tokio::test]
    async fn an_unknown_instance_is_an_instance_error() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(envelope(
                404,
                "Not Found",
                json!(["The \"loja-1\" instance does not exist"]),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!(e.class, ErrorClass::Instance);
        assert_eq!(e.reason, "The \"loja-1\" instance does not exist");
    }

    #[tokio::test]
    async fn a_500_is_retried_until_max_attempts_then_reported_as_transient() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(envelope(500, "Internal Server Error", json!(["boom"])))
            .expect(3)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!(e.class, ErrorClass::Transient);
        assert_eq!(e.attempts, 3);
        assert_eq!(e.reason, "HTTP 500: boom");
        assert!(!e.maybe_delivered());
    }

    #[tokio::test]
    async fn a_429_then_a_201_succeeds_on_the_second_attempt() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(429))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .respond_with(created("OK2"))
            .expect(1)
            .mount(&server)
            .await;
        let sent = client(3).send(target(&uri), "5511", &text("oi")).await.expect("sent");
        assert_eq!((sent.message_id.as_str(), sent.attempts), ("OK2", 2));
    }

    #[tokio::test]
    async fn other_4xx_answers_are_never_retried() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(422).set_body_string("nope"))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(5)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("fails");
        assert_eq!((e.class, e.attempts, e.status), (ErrorClass::Recipient, 1, Some(422)));
        assert_eq!(e.body_excerpt, "nope");
    }

    #[tokio::test]
    async fn a_send_timeout_is_unknown_and_never_retried() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(created("late").set_delay(Duration::from_millis(1500)))
            .expect(1)
            .mount(&server)
            .await;
        let c = GatewayClient::with_options(Duration::from_millis(400), 3, Duration::from_millis(1)).expect("client");
        let e = c.send(target(&uri), "5511", &text("oi")).await.expect_err("times out");
        assert_eq!(e.class, ErrorClass::Unknown);
        assert!(e.maybe_delivered());
        assert_eq!(e.reason, "timeout after 400 ms");
        assert_eq!(e.attempts, 1);
    }

    #[tokio::test]
    async fn a_connection_state_timeout_is_transient_and_retried() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(1500)))
            .expect(2)
            .mount(&server)
            .await;
        let c = GatewayClient::with_options(Duration::from_millis(400), 2, Duration::from_millis(1)).expect("client");
        let e = c.connection_state(target(&uri)).await.expect_err("times out");
        assert_eq!((e.class, e.attempts), (ErrorClass::Transient, 2));
    }

    #[tokio::test]
    async fn a_refused_connection_is_transient_and_retried_even_for_sends() {
        // Bind then drop a listener: the port is (almost certainly) closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let api_url = format!("http://127.0.0.1:{port}");
        let target = InstanceTarget {
            api_url: &api_url,
            instance_name: INSTANCE,
            api_key: "k",
        };
        let e = client(3).send(target, "5511", &text("oi")).await.expect_err("refused");
        assert_eq!((e.class, e.attempts, e.status), (ErrorClass::Transient, 3, None));
        assert!(e.reason.starts_with("cannot connect"), "{}", e.reason);
    }

    #[tokio::test]
    async fn a_201_without_a_key_id_is_unknown_not_a_success() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(201).set_body_string("ok"))
            .expect(1)
            .mount(&server)
            .await;
        let e = client(3)
            .send(target(&uri), "5511", &text("oi"))
            .await
            .expect_err("odd");
        assert_eq!((e.class, e.status, e.attempts), (ErrorClass::Unknown, Some(201), 1));
    }

    #[tokio::test]
    async fn connection_state_connect_and_logout_parse_their_answers() {
        let server = MockServer::start().await;
        let uri = server.uri();
        Mock::given(method("GET"))
            .and(path("/instance/connectionState/loja-1"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(json!({"instance": {"instanceName": "loja-1", "state": "connecting"}})),
            )
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/instance/connect/loja-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"pairingCode": "WZYEH1YY", "code": "2@abc", "base64": "data:image/png;base64,AAA", "count": 1}),
            ))
            .mount(&server)
            .await;
        Mock::given(method("DELETE"))
            .and(path("/instance/logout/loja-1"))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"status": "SUCCESS", "error": false, "response": {"message": "Instance logged out"}}),
            ))
            .expect(1)
            .mount(&server)
            .await;
        let c = client(1);
        assert_eq!(c.connection_state(target(&uri)).await, Ok(ConnectionState::Connecting));
        assert_eq!(
            c.connect(target(&uri)).await,
            Ok(ConnectInfo {
                pairing_code: Some("WZYEH1YY".into()),
                code: Some("2@abc".into()),
                base64: Some("data:image/png;base64,AAA".into()),
                count: Some(1),
            })
        );
        assert_eq!(c.logout(target(&uri)).await, Ok(()));
    }

    #[test]
    fn error_messages_may_be_a_string_an_array_of_strings_or_an_array_of_objects() {
        let e = classify_status(
            400,
            r#"{"status":400,"error":"Bad Request","response":{"message":"just one"}}"#,
        );
        assert_eq!(e.reason, "just one");
        let e = classify_status(
            400,
            r#"{"status":400,"error":"Bad Request","response":{"message":["a","b"]}}"#,
        );
        assert_eq!(e.reason, "a; b");
        let e = classify_status(
            400,
            r#"{"status":400,"error":"Bad Request","response":{"message":[{"message":"field x"}]}}"#,
        );
        assert_eq!(e.reason, "field x");
        let e = classify_status(400, "<html>bad</html>");
        assert_eq!((e.class, e.reason.as_str()), (ErrorClass::Recipient, "Bad Request"));
        let e = classify_status(502, "");
        assert_eq!(
            (e.class, e.reason.as_str()),
            (ErrorClass::Transient, "HTTP 502: Bad Gateway")
        );
        let e = classify_status(302, "");
        assert_eq!(e.class, ErrorClass::Instance);
    }

    #[test]
    fn gateway_text_with_nul_is_made_storable() {
        let e = classify_status(400, r#"{"response": {"message": ["bad\u0000number"]}}"#);
        assert!(!e.reason.contains('\0') && !e.body_excerpt.contains('\0'), "{e:?}");
        let raw = GatewayError::new(ErrorClass::Recipient, Some(400), "a\0b", "x\0y");
        assert_eq!(
            (raw.reason.as_str(), raw.body_excerpt.as_str()),
            ("a\u{FFFD}b", "x\u{FFFD}y")
        );
    }

    #[test]
    fn body_excerpts_are_cut_at_500_characters() {
        let long = "é".repeat(800);
        let e = classify_status(500, &long);
        assert_eq!(e.body_excerpt.chars().count(), EXCERPT_CHARS);
    }

    #[test]
    fn backoff_stays_within_the_exponential_ceiling() {
        let c = GatewayClient::with_options(Duration::from_secs(1), 3, Duration::from_millis(100)).expect("client");
        for attempt in 1..=10 {
            let ceiling = Duration::from_millis(100 * (1 << (attempt - 1))).min(BACKOFF_CAP);
            assert!(c.backoff(attempt) <= ceiling);
        }
    }

    #[test]
    fn errors_display_class_status_reason_and_attempts() {
        let e = GatewayError {
            attempts: 3,
            ..classify_status(503, r#"{"response":{"message":"down"}}"#)
        };
        assert_eq!(
            e.to_string(),
            "gateway transient error (HTTP 503): HTTP 503: down after 3 attempts"
        );
    }

    #[test]
    fn instance_names_are_escaped_in_paths() {
        let t = InstanceTarget {
            api_url: "http://gw:8080/",
            instance_name: "loja 1",
            api_key: "k",
        };
        assert_eq!(url(t, "message/sendText"), "http://gw:8080/message/sendText/loja%201");
    }
}
