//! `arauto sandbox`: a gateway simulator speaking the Evolution API v2 subset of
//! `EVOLUTION.md` (same paths, shapes and error envelope), recording what it is asked to
//! send and injecting failures on demand. Used by tests, demos and the frontend team.
//!
//! # Gateway behaviour
//!
//! - Any instance name exists and is `open` unless told otherwise: `logout` closes it,
//!   `connect` (a fake QR and pairing code) opens it again after `pairing_ms` (default 0:
//!   at once, as if the QR were scanned immediately), `instance/create` registers it (closed,
//!   or connecting then open when `qrcode: true`), `instance/delete` forgets it.
//!   `fetchInstances` lists the instances it has heard of (created or otherwise touched).
//! - `apikey`: any non-empty key, unless the control API set `api_key` (then only that one);
//!   otherwise 401 `"Unauthorized"`.
//! - Sends answer 201 with a `key.id` unique per send (`3EB0…`), ignoring `delay` unless
//!   `honor_delay` is set. A send to an instance that is not open answers 400 with
//!   `Connection Closed`.
//! - `webhook/set` (or `instance/create` with a `webhook`) with an enabled url: after each
//!   successful send a `messages.update` receipt is POSTed there in the background (best
//!   effort, not retried): `DELIVERY_ACK`, or `ERROR` for the numbers in `error_receipts`
//!   (a send the gateway accepted, then could not deliver). By default the receipt leaves
//!   `receipt_delay_ms` (50) after the 201 was handed to the server; with
//!   `receipts_before_answer: true` it leaves before the 201, as Evolution's receipts can
//!   race its answer. `logout` and `connect` post `connection.update`.
//! - `sendMedia` of a URL served by this sandbox (`…/_sandbox/files/{name}`) whose file is
//!   missing answers 400 `Error: Request failed with status code 404`, as Evolution does
//!   when it cannot download the media.
//!
//! # Control API (no apikey)
//!
//! - `GET /_sandbox/sends[?instance=]`: the recorded sends in arrival order;
//!   `DELETE /_sandbox/sends` clears them.
//! - `GET /_sandbox/faults`; `POST /_sandbox/faults` merges a [`FaultsPatch`];
//!   `DELETE /_sandbox/faults` resets. `POST /_sandbox/reset` resets everything.
//! - `POST /_sandbox/inbound` `{"instance", "number", "text", "lid"?: bool}`: the contact
//!   `number` writes `text` to the instance: a `messages.upsert` event is POSTed to its
//!   webhook (with `lid: true` the jid is an `@lid` and the phone is in `remoteJidAlt`);
//!   answers `{"status": <the receiver's HTTP status>}`, 409 when the instance has no
//!   webhook, 502 when the receiver cannot be reached.
//! - `POST /_sandbox/files` `{"name", "content_type", "size"}` serves a file of `size` bytes
//!   at `GET /_sandbox/files/{name}` (and `HEAD`) with that `Content-Type`, honouring a
//!   `Range: bytes=a-b` header (206 with `Content-Range`); `DELETE /_sandbox/files/{name}`
//!   removes it (404 afterwards). A local media server for tests and demos.
//!
//! # Order of a send
//!
//! (`new_connection_ms`, on a connection's first request) → apikey → body validation →
//! unknown instance (404) → not open (400 Connection Closed) →
//! `fail_next` → `fail_every` → `not_on_whatsapp` (400 `exists: false`) → **recorded** →
//! `drop_connection_next` → `latency_ms` (and `delay`) → answer. Every send call that gets
//! past the instance checks counts for `fail_every`.
//!
//! A dropped connection is recorded first on purpose: it models the worst case for the
//! at-most-once promise, a message delivered whose answer never arrives. The drop itself
//! shuts the TCP socket down under actix (a duplicate of the connection's descriptor, taken
//! when the connection opens) so the client sees the connection closed with no answer. Where
//! that is impossible (non-Unix), the answer is instead held for an hour, so the client times
//! out. Latency is likewise applied after recording: a client timing out on a slow send has
//! left a message behind, as with a real gateway.

use actix_web::{
    body::MessageBody,
    dev::{Extensions, Server, ServiceRequest, ServiceResponse},
    http::StatusCode,
    middleware::{from_fn, Next},
    web, App, HttpRequest, HttpResponse, HttpServer, ResponseError,
};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::{
    any::Any,
    collections::{BTreeMap, HashMap, HashSet},
    net::TcpListener,
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
    },
    time::{Duration, Instant},
};

use super::client::ConnectionState;

/// A 1×1 PNG: the sandbox's "QR code".
const FAKE_QR_PNG: &str = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const FAKE_OWNER_JID: &str = "5500000000000@s.whatsapp.net";
/// Largest request body (base64 media can be large).
const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// When a connection cannot be dropped, the answer is held this long instead.
const HOLD_INSTEAD_OF_DROP: Duration = Duration::from_secs(3600);

/// Serves the sandbox on `listener` until stopped.
pub fn sandbox_server(listener: TcpListener, state: SandboxState) -> std::io::Result<Server> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .wrap(from_fn(handshake))
            .configure(configure)
    })
    .on_connect(remember_socket)
    .keep_alive(Duration::from_secs(75))
    .backlog(4096)
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// `arauto sandbox`: binds `host:port` (e.g. `127.0.0.1`, or `0.0.0.0` in a container) and
/// serves until stopped.
pub async fn run_sandbox(host: &str, port: u16) -> anyhow::Result<()> {
    let address = format!("{host}:{port}");
    let listener = TcpListener::bind(&address).map_err(|e| anyhow::anyhow!("cannot listen on {address}: {e}"))?;
    let port = listener.local_addr()?.port();
    let server = sandbox_server(listener, SandboxState::new())?;
    tracing::info!(host, port, "gateway sandbox listening");
    server.await?;
    Ok(())
}

/// Registers every sandbox route (also usable with `actix_web::test`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(welcome))
        .route("/message/sendText/{instance}", web::post().to(send_text))
        .route("/message/sendMedia/{instance}", web::post().to(send_media))
        .route("/message/sendWhatsAppAudio/{instance}", web::post().to(send_audio))
        .route("/instance/connectionState/{instance}", web::get().to(connection_state))
        .route("/instance/connect/{instance}", web::get().to(connect))
        .route("/instance/logout/{instance}", web::delete().to(logout))
        .route("/instance/delete/{instance}", web::delete().to(delete))
        .route("/instance/restart/{instance}", web::post().to(restart))
        .route("/instance/restart/{instance}", web::put().to(restart))
        .route("/instance/create", web::post().to(create))
        .route("/instance/fetchInstances", web::get().to(fetch_instances))
        .route("/webhook/set/{instance}", web::post().to(set_webhook))
        .route("/webhook/find/{instance}", web::get().to(find_webhook))
        .route("/chat/whatsappNumbers/{instance}", web::post().to(whatsapp_numbers))
        .route("/_sandbox/sends", web::get().to(list_sends))
        .route("/_sandbox/sends", web::delete().to(clear_sends))
        .route("/_sandbox/faults", web::get().to(get_faults))
        .route("/_sandbox/faults", web::post().to(patch_faults))
        .route("/_sandbox/faults", web::delete().to(reset_faults))
        .route("/_sandbox/reset", web::post().to(reset_all))
        .route("/_sandbox/inbound", web::post().to(inbound))
        .route("/_sandbox/files", web::post().to(put_file))
        .route("/_sandbox/files/{name}", web::get().to(get_file))
        .route("/_sandbox/files/{name}", web::head().to(get_file))
        .route("/_sandbox/files/{name}", web::delete().to(delete_file))
        .default_service(web::to(no_route));
}

// ---------------------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------------------

/// The sandbox's memory; cheap to clone (shared).
#[derive(Clone)]
pub struct SandboxState {
    inner: Arc<Inner>,
}

struct Inner {
    sends: Mutex<Vec<SendRecord>>,
    next_id: AtomicU64,
    id_salt: u16,
    /// Send calls since `fail_every` was last set.
    send_calls: AtomicU64,
    /// When every send call that reached the instance checks arrived (wall clock),
    /// whatever it was answered: what "no request after pause" is measured against.
    arrivals: Mutex<Vec<DateTime<Utc>>>,
    faults: RwLock<FaultConfig>,
    fail_next_left: AtomicU32,
    drop_next_left: AtomicU32,
    instances: RwLock<HashMap<String, InstanceEntry>>,
    /// Files served at `/_sandbox/files/{name}`: content type and size.
    files: RwLock<HashMap<String, (String, u64)>>,
    webhook_http: Option<reqwest::Client>,
}

impl Default for SandboxState {
    fn default() -> Self {
        Self::new()
    }
}

impl SandboxState {
    pub fn new() -> Self {
        let webhook_http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .build()
            .map_err(|e| tracing::warn!(error = %e, "sandbox webhooks disabled"))
            .ok();
        Self {
            inner: Arc::new(Inner {
                sends: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(0),
                id_salt: rand::random(),
                send_calls: AtomicU64::new(0),
                arrivals: Mutex::new(Vec::new()),
                faults: RwLock::new(FaultConfig::default()),
                fail_next_left: AtomicU32::new(0),
                drop_next_left: AtomicU32::new(0),
                instances: RwLock::new(HashMap::new()),
                files: RwLock::new(HashMap::new()),
                webhook_http,
            }),
        }
    }

    /// The recorded sends, in arrival order, optionally of one instance.
    pub fn sends(&self, instance: Option<&str>) -> Vec<SendRecord> {
        let sends = lock(&self.inner.sends);
        match instance {
            Some(name) => sends.iter().filter(|s| s.instance == name).cloned().collect(),
            None => sends.clone(),
        }
    }

    /// The arrival instant of every send call past the instance checks (answered 201 or
    /// with an injected failure), in order.
    pub fn arrivals(&self) -> Vec<DateTime<Utc>> {
        lock(&self.inner.arrivals).clone()
    }

    pub fn send_count(&self) -> usize {
        lock(&self.inner.sends).len()
    }

    pub fn clear_sends(&self) {
        lock(&self.inner.sends).clear();
        lock(&self.inner.arrivals).clear();
    }

    /// Merges `patch` into the fault configuration.
    pub fn set_faults(&self, patch: FaultsPatch) -> Result<(), String> {
        patch.validate()?;
        let mut faults = write(&self.inner.faults);
        if let Some(ms) = patch.latency_ms {
            faults.latency_ms = ms;
        }
        if let Some(fail) = patch.fail_next {
            faults.fail_next_status = fail.status;
            self.inner.fail_next_left.store(fail.count, Ordering::SeqCst);
        }
        if let Some(every) = patch.fail_every {
            faults.fail_every = (every.nth > 0).then_some(every);
            self.inner.send_calls.store(0, Ordering::SeqCst);
        }
        if let Some(numbers) = patch.not_on_whatsapp {
            faults.not_on_whatsapp = numbers.iter().map(|n| digits(n)).collect();
        }
        if let Some(names) = patch.disconnected {
            faults.disconnected = names.into_iter().collect();
        }
        if let Some(names) = patch.unknown_instances {
            faults.unknown_instances = names.into_iter().collect();
        }
        if let Some(key) = patch.api_key {
            faults.api_key = (!key.is_empty()).then_some(key);
        }
        if let Some(count) = patch.drop_connection_next {
            self.inner.drop_next_left.store(count, Ordering::SeqCst);
        }
        if let Some(honor) = patch.honor_delay {
            faults.honor_delay = honor;
        }
        if let Some(ms) = patch.pairing_ms {
            faults.pairing_ms = ms;
        }
        if let Some(before) = patch.receipts_before_answer {
            faults.receipts_before_answer = before;
        }
        if let Some(ms) = patch.receipt_delay_ms {
            faults.receipt_delay_ms = ms;
        }
        if let Some(numbers) = patch.error_receipts {
            faults.error_receipts = numbers.iter().map(|n| digits(n)).collect();
        }
        if let Some(ms) = patch.new_connection_ms {
            faults.new_connection_ms = ms;
        }
        Ok(())
    }

    pub fn reset_faults(&self) {
        *write(&self.inner.faults) = FaultConfig::default();
        self.inner.fail_next_left.store(0, Ordering::SeqCst);
        self.inner.drop_next_left.store(0, Ordering::SeqCst);
        self.inner.send_calls.store(0, Ordering::SeqCst);
    }

    /// Faults, sends and instances back to a fresh sandbox.
    pub fn reset(&self) {
        self.reset_faults();
        self.clear_sends();
        write(&self.inner.instances).clear();
        write(&self.inner.files).clear();
    }

    /// Serves a file of `size` bytes with `content_type` at `/_sandbox/files/{name}`.
    pub fn put_file(&self, name: &str, content_type: &str, size: u64) {
        write(&self.inner.files).insert(name.to_owned(), (content_type.to_owned(), size));
    }

    /// Whether `url` names a file of this sandbox (`…/_sandbox/files/{name}`) that it does
    /// not serve.
    fn missing_file(&self, url: &str) -> bool {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        match path.split_once("/_sandbox/files/") {
            Some((_, name)) => !read(&self.inner.files).contains_key(name),
            None => false,
        }
    }

    /// Stops serving `/_sandbox/files/{name}`; false when it was not served.
    pub fn delete_file(&self, name: &str) -> bool {
        write(&self.inner.files).remove(name).is_some()
    }

    /// The current fault configuration, with the counts still to come.
    pub fn faults(&self) -> FaultsView {
        let faults = read(&self.inner.faults);
        let sorted = |set: &HashSet<String>| {
            let mut v: Vec<String> = set.iter().cloned().collect();
            v.sort();
            v
        };
        FaultsView {
            latency_ms: faults.latency_ms,
            fail_next: FailNext {
                count: self.inner.fail_next_left.load(Ordering::SeqCst),
                status: faults.fail_next_status,
            },
            fail_every: faults.fail_every,
            not_on_whatsapp: sorted(&faults.not_on_whatsapp),
            disconnected: sorted(&faults.disconnected),
            unknown_instances: sorted(&faults.unknown_instances),
            api_key: faults.api_key.clone(),
            drop_connection_next: self.inner.drop_next_left.load(Ordering::SeqCst),
            honor_delay: faults.honor_delay,
            pairing_ms: faults.pairing_ms,
            receipts_before_answer: faults.receipts_before_answer,
            receipt_delay_ms: faults.receipt_delay_ms,
            error_receipts: sorted(&faults.error_receipts),
            new_connection_ms: faults.new_connection_ms,
        }
    }

    /// The connection state an instance reports.
    pub fn connection_state(&self, instance: &str) -> ConnectionState {
        if read(&self.inner.faults).disconnected.contains(instance) {
            return ConnectionState::Close;
        }
        read(&self.inner.instances)
            .get(instance)
            .map_or(ConnectionState::Open, InstanceEntry::state)
    }

    fn authorize(&self, req: &HttpRequest) -> Result<(), EvolutionError> {
        let given = req.headers().get("apikey").and_then(|v| v.to_str().ok()).unwrap_or("");
        let faults = read(&self.inner.faults);
        let ok = match &faults.api_key {
            Some(required) => given == required,
            None => !given.is_empty(),
        };
        if ok {
            Ok(())
        } else {
            Err(EvolutionError::new(StatusCode::UNAUTHORIZED, json!("Unauthorized")))
        }
    }

    fn check_known(&self, instance: &str) -> Result<(), EvolutionError> {
        if read(&self.inner.faults).unknown_instances.contains(instance) {
            Err(EvolutionError::new(
                StatusCode::NOT_FOUND,
                json!([format!("The \"{instance}\" instance does not exist")]),
            ))
        } else {
            Ok(())
        }
    }

    fn next_message_id(&self) -> String {
        let n = self.inner.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        format!("3EB0{:04X}{:012X}", self.inner.id_salt, n)
    }

    fn with_instance<T>(&self, name: &str, f: impl FnOnce(&mut InstanceEntry) -> T) -> T {
        let mut instances = write(&self.inner.instances);
        let entry = instances.entry(name.to_owned()).or_insert_with(InstanceEntry::new);
        f(entry)
    }

    fn webhook_of(&self, instance: &str) -> Option<(WebhookConfig, String)> {
        read(&self.inner.instances).get(instance).and_then(|e| {
            e.webhook
                .as_ref()
                .filter(|w| w.enabled)
                .map(|w| (w.clone(), e.token.clone()))
        })
    }

    /// Posts one event to the instance's webhook in the background, if it wants it.
    fn fire_webhook(&self, instance: &str, event: &'static str, data: Value) {
        self.fire_webhook_after(instance, event, data, Duration::ZERO);
    }

    /// [`Self::fire_webhook`], `after` a delay.
    fn fire_webhook_after(&self, instance: &str, event: &'static str, data: Value, after: Duration) {
        let Some(delivery) = self.webhook_delivery(instance, event, data) else {
            return;
        };
        tokio::spawn(async move {
            if !after.is_zero() {
                tokio::time::sleep(after).await;
            }
            if let Err(e) = delivery.await {
                tracing::debug!(error = %e, "sandbox webhook delivery failed");
            }
        });
    }

    /// The POST of one event to the instance's webhook (the receiver's status), or `None`
    /// when the instance has no enabled webhook wanting it.
    fn webhook_delivery(
        &self,
        instance: &str,
        event: &'static str,
        data: Value,
    ) -> Option<impl std::future::Future<Output = Result<u16, reqwest::Error>> + Send + 'static> {
        let http = self.inner.webhook_http.clone()?;
        let (hook, token) = self.webhook_of(instance)?;
        let wanted = hook.events.is_empty()
            || hook
                .events
                .iter()
                .any(|e| e.replace('_', ".").eq_ignore_ascii_case(event));
        if !wanted {
            return None;
        }
        let url = if hook.by_events {
            format!("{}/{}", hook.url.trim_end_matches('/'), event.replace('.', "-"))
        } else {
            hook.url.clone()
        };
        let body = json!({
            "event": event,
            "instance": instance,
            "data": data,
            "destination": url,
            "date_time": now_rfc3339(),
            "sender": FAKE_OWNER_JID,
            "server_url": "http://arauto-sandbox",
            "apikey": token,
        });
        Some(async move {
            let mut request = http.post(&url).json(&body);
            for (name, value) in &hook.headers {
                if let Some(value) = value.as_str() {
                    request = request.header(name.as_str(), value);
                }
            }
            request.send().await.map(|r| r.status().as_u16())
        })
    }
}

#[derive(Debug, Clone)]
struct FaultConfig {
    latency_ms: u64,
    fail_next_status: u16,
    fail_every: Option<FailEvery>,
    not_on_whatsapp: HashSet<String>,
    disconnected: HashSet<String>,
    unknown_instances: HashSet<String>,
    api_key: Option<String>,
    honor_delay: bool,
    pairing_ms: u64,
    receipts_before_answer: bool,
    receipt_delay_ms: u64,
    error_receipts: HashSet<String>,
    new_connection_ms: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            fail_next_status: 0,
            fail_every: None,
            not_on_whatsapp: HashSet::new(),
            disconnected: HashSet::new(),
            unknown_instances: HashSet::new(),
            api_key: None,
            honor_delay: false,
            pairing_ms: 0,
            receipts_before_answer: false,
            receipt_delay_ms: DEFAULT_RECEIPT_DELAY_MS,
            error_receipts: HashSet::new(),
            new_connection_ms: 0,
        }
    }
}

/// How long after its 201 a send's receipt is posted, by default.
pub const DEFAULT_RECEIPT_DELAY_MS: u64 = 50;

/// The next `count` send calls answer `status` (default 500) with the error envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailNext {
    pub count: u32,
    #[serde(default = "default_fail_status")]
    pub status: u16,
}

/// Every `nth` send call (counted from when this was set) answers `status`; `nth: 0` stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailEvery {
    pub nth: u64,
    #[serde(default = "default_fail_status")]
    pub status: u16,
}

fn default_fail_status() -> u16 {
    500
}

/// The body of `POST /_sandbox/faults`: every field optional, merged into the current
/// configuration (lists replace the previous list; `api_key: ""` removes the requirement).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultsPatch {
    /// Every send waits this long before answering.
    pub latency_ms: Option<u64>,
    pub fail_next: Option<FailNext>,
    pub fail_every: Option<FailEvery>,
    /// Numbers (digits) that answer 400 `exists: false`.
    pub not_on_whatsapp: Option<Vec<String>>,
    /// Instances whose state is `close`; their sends answer 400 "Connection Closed".
    pub disconnected: Option<Vec<String>>,
    /// Instances that answer 404 "does not exist" (every other name exists).
    pub unknown_instances: Option<Vec<String>>,
    /// The one apikey accepted from now on.
    pub api_key: Option<String>,
    /// The next `n` send calls are recorded, then their connection is closed unanswered.
    pub drop_connection_next: Option<u32>,
    /// Wait for the send's `delay` too (off by default, so benchmarks are not slowed).
    pub honor_delay: Option<bool>,
    /// How long an instance stays `connecting` after a QR is issued.
    pub pairing_ms: Option<u64>,
    /// Post each send's receipt before answering 201 (as Evolution's receipts can race its
    /// answer) instead of `receipt_delay_ms` after it.
    pub receipts_before_answer: Option<bool>,
    /// How long after the 201 a send's receipt is posted (default 50 ms).
    pub receipt_delay_ms: Option<u64>,
    /// Numbers (digits) whose sends are accepted (201) and then reported `ERROR`.
    pub error_receipts: Option<Vec<String>>,
    /// The first request on each new connection (any route) waits this long before it is
    /// handled, as the TCP and TLS handshakes to a distant gateway delay it; later requests
    /// on the connection do not.
    pub new_connection_ms: Option<u64>,
}

impl FaultsPatch {
    fn validate(&self) -> Result<(), String> {
        let statuses = [self.fail_next.map(|f| f.status), self.fail_every.map(|f| f.status)];
        match statuses.into_iter().flatten().find(|s| !(400..=599).contains(s)) {
            Some(bad) => Err(format!("status {bad} must be between 400 and 599")),
            None => Ok(()),
        }
    }
}

/// `GET /_sandbox/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultsView {
    pub latency_ms: u64,
    pub fail_next: FailNext,
    pub fail_every: Option<FailEvery>,
    pub not_on_whatsapp: Vec<String>,
    pub disconnected: Vec<String>,
    pub unknown_instances: Vec<String>,
    pub api_key: Option<String>,
    pub drop_connection_next: u32,
    pub honor_delay: bool,
    pub pairing_ms: u64,
    pub receipts_before_answer: bool,
    pub receipt_delay_ms: u64,
    pub error_receipts: Vec<String>,
    pub new_connection_ms: u64,
}

#[derive(Debug, Clone)]
struct InstanceEntry {
    id: String,
    token: String,
    logged_out: bool,
    /// `connecting` until then (a QR was issued and "is being scanned").
    connecting_until: Option<Instant>,
    qr_count: u32,
    webhook: Option<WebhookConfig>,
    created_at: String,
}

impl InstanceEntry {
    fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            token: uuid::Uuid::new_v4().simple().to_string().to_uppercase(),
            logged_out: false,
            connecting_until: None,
            qr_count: 0,
            webhook: None,
            created_at: now_rfc3339(),
        }
    }

    fn state(&self) -> ConnectionState {
        if self.logged_out {
            ConnectionState::Close
        } else if self.connecting_until.is_some_and(|t| Instant::now() < t) {
            ConnectionState::Connecting
        } else {
            ConnectionState::Open
        }
    }

    /// Issues a QR: the instance "pairs" after `pairing_ms`.
    fn issue_qr(&mut self, pairing_ms: u64) -> Value {
        if self.state() != ConnectionState::Open {
            self.logged_out = false;
            self.connecting_until = Some(Instant::now() + Duration::from_millis(pairing_ms));
        }
        self.qr_count += 1;
        json!({
            "pairingCode": pairing_code(),
            "code": format!("2@sandbox-{}-{}", self.id, self.qr_count),
            "base64": FAKE_QR_PNG,
            "count": self.qr_count,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookConfig {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    url: String,
    #[serde(default, alias = "webhookByEvents", alias = "webhook_by_events")]
    by_events: bool,
    #[serde(default, alias = "webhookBase64", alias = "webhook_base64")]
    base64: bool,
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    events: Vec<String>,
}

fn yes() -> bool {
    true
}

/// One recorded send (`GET /_sandbox/sends`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRecord {
    pub instance: String,
    pub number: String,
    pub kind: SendKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The media URL or base64 (media and audio).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediatype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mimetype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<u64>,
    pub message_id: String,
    /// RFC 3339 with milliseconds, UTC.
    pub at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SendKind {
    Text,
    Media,
    Audio,
}

// ---------------------------------------------------------------------------------------
// The Evolution error envelope
// ---------------------------------------------------------------------------------------

/// `{"status": 400, "error": "Bad Request", "response": {"message": …}}`.
#[derive(Debug)]
pub struct EvolutionError {
    status: StatusCode,
    message: Value,
}

impl EvolutionError {
    fn new(status: StatusCode, message: Value) -> Self {
        Self { status, message }
    }

    fn bad_request(messages: &[String]) -> Self {
        Self::new(StatusCode::BAD_REQUEST, json!(messages))
    }

    fn connection_closed() -> Self {
        Self::new(StatusCode::BAD_REQUEST, json!(["Connection Closed"]))
    }
}

impl std::fmt::Display for EvolutionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.message)
    }
}

impl ResponseError for EvolutionError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(json!({
            "status": self.status.as_u16(),
            "error": self.status.canonical_reason().unwrap_or("Error"),
            "response": {"message": self.message},
        }))
    }
}

type Reply = Result<HttpResponse, EvolutionError>;

fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, EvolutionError> {
    serde_json::from_slice(body).map_err(|e| EvolutionError::bad_request(&[e.to_string()]))
}

fn require<T>(value: Option<T>, property: &str) -> Result<T, EvolutionError> {
    value.ok_or_else(|| EvolutionError::bad_request(&[format!("instance requires property \"{property}\"")]))
}

// ---------------------------------------------------------------------------------------
// Sends
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct TextBody {
    number: Option<String>,
    text: Option<String>,
    delay: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaBody {
    number: Option<String>,
    mediatype: Option<String>,
    mimetype: Option<String>,
    caption: Option<String>,
    media: Option<String>,
    file_name: Option<String>,
    delay: Option<u64>,
}

#[derive(Deserialize)]
struct AudioBody {
    number: Option<String>,
    audio: Option<String>,
    delay: Option<u64>,
}

async fn send_text(
    state: web::Data<SandboxState>,
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    state.authorize(&req)?;
    let b: TextBody = parse_json(&body)?;
    let number = require(b.number.filter(|n| !n.is_empty()), "number")?;
    let text = require(b.text, "text")?;
    let message = json!({"conversation": text});
    let record = SendRecord {
        instance: instance.into_inner(),
        number,
        kind: SendKind::Text,
        text: Some(text),
        caption: None,
        media: None,
        mediatype: None,
        mimetype: None,
        file_name: None,
        delay: b.delay,
        message_id: String::new(),
        at: String::new(),
    };
    send(&state, &req, record, "conversation", message).await
}

async fn send_media(
    state: web::Data<SandboxState>,
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    state.authorize(&req)?;
    let b: MediaBody = parse_json(&body)?;
    let number = require(b.number.filter(|n| !n.is_empty()), "number")?;
    let mediatype = require(b.mediatype, "mediatype")?;
    let media = require(b.media.filter(|m| !m.is_empty()), "media")?;
    let message_type = match mediatype.as_str() {
        "image" => "imageMessage",
        "video" => "videoMessage",
        "document" => "documentMessage",
        "audio" => "audioMessage",
        _ => {
            return Err(EvolutionError::bad_request(&[
                "mediatype must be one of: image, video, document, audio".to_owned(),
            ]))
        }
    };
    let message = json!({message_type: {
        "url": media, "mimetype": b.mimetype, "caption": b.caption, "fileName": b.file_name,
    }});
    let record = SendRecord {
        instance: instance.into_inner(),
        number,
        kind: SendKind::Media,
        text: None,
        caption: b.caption,
        media: Some(media),
        mediatype: Some(mediatype),
        mimetype: b.mimetype,
        file_name: b.file_name,
        delay: b.delay,
        message_id: String::new(),
        at: String::new(),
    };
    send(&state, &req, record, message_type, message).await
}

async fn send_audio(
    state: web::Data<SandboxState>,
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    state.authorize(&req)?;
    let b: AudioBody = parse_json(&body)?;
    let number = require(b.number.filter(|n| !n.is_empty()), "number")?;
    let audio = require(b.audio.filter(|a| !a.is_empty()), "audio")?;
    let message = json!({"audioMessage": {"url": audio, "ptt": true}});
    let record = SendRecord {
        instance: instance.into_inner(),
        number,
        kind: SendKind::Audio,
        text: None,
        caption: None,
        media: Some(audio),
        mediatype: None,
        mimetype: None,
        file_name: None,
        delay: b.delay,
        message_id: String::new(),
        at: String::new(),
    };
    send(&state, &req, record, "audioMessage", message).await
}

/// The common path of every send; see "Order of a send" in the module documentation.
async fn send(
    state: &SandboxState,
    req: &HttpRequest,
    mut record: SendRecord,
    message_type: &str,
    message: Value,
) -> Reply {
    let inner = &state.inner;
    state.check_known(&record.instance)?;
    if state.connection_state(&record.instance) != ConnectionState::Open {
        return Err(EvolutionError::connection_closed());
    }
    let number = digits(&record.number);
    let jid = format!("{number}@s.whatsapp.net");
    let (wait, outcome, receipt) = {
        let faults = read(&inner.faults);
        let receipt = Receipt {
            status: if faults.error_receipts.contains(&number) {
                "ERROR"
            } else {
                "DELIVERY_ACK"
            },
            before_answer: faults.receipts_before_answer,
            delay: Duration::from_millis(faults.receipt_delay_ms),
        };
        let mut wait = faults.latency_ms;
        if faults.honor_delay {
            wait += record.delay.unwrap_or(0);
        }
        let call = inner.send_calls.fetch_add(1, Ordering::Relaxed) + 1;
        lock(&inner.arrivals).push(Utc::now());
        let fail = |status: u16| {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Err(EvolutionError::new(
                status,
                json!([format!("sandbox: injected failure ({})", status.as_u16())]),
            ))
        };
        let outcome = if take_one(&inner.fail_next_left) {
            fail(faults.fail_next_status)
        } else if let Some(every) = faults.fail_every.filter(|e| call.is_multiple_of(e.nth)) {
            fail(every.status)
        } else if faults.not_on_whatsapp.contains(&number) {
            Err(EvolutionError::new(
                StatusCode::BAD_REQUEST,
                json!([{"jid": jid, "exists": false, "number": number}]),
            ))
        } else if record.media.as_deref().is_some_and(|m| state.missing_file(m)) {
            // Evolution downloads the media first; a 404 there fails the send.
            Err(EvolutionError::bad_request(&[
                "Error: Request failed with status code 404".to_owned(),
            ]))
        } else {
            Ok(())
        };
        (wait, outcome, receipt)
    };
    let mut after_answer = None;
    let answer = match outcome {
        Ok(()) => {
            record.message_id = state.next_message_id();
            record.at = now_rfc3339();
            let id = record.message_id.clone();
            let instance = record.instance.clone();
            lock(&inner.sends).push(record);
            let data = json!({"keyId": id, "remoteJid": jid, "fromMe": true, "status": receipt.status,
                              "instanceId": instance});
            if receipt.before_answer {
                state.fire_webhook(&instance, "messages.update", data);
            } else {
                after_answer = Some((instance, data, receipt.delay));
            }
            Ok(HttpResponse::Created().json(json!({
                "key": {"remoteJid": jid, "fromMe": true, "id": id},
                "pushName": "",
                "status": "PENDING",
                "message": message,
                "messageType": message_type,
                "messageTimestamp": Utc::now().timestamp(),
            })))
        }
        Err(e) => Err(e),
    };
    if take_one(&inner.drop_next_left) {
        if drop_connection(req) {
            return answer;
        }
        tokio::time::sleep(HOLD_INSTEAD_OF_DROP).await;
    }
    if wait > 0 {
        tokio::time::sleep(Duration::from_millis(wait)).await;
    }
    if let Some((instance, data, delay)) = after_answer {
        // Leaves `delay` after the answer is handed to the server.
        state.fire_webhook_after(&instance, "messages.update", data, delay);
    }
    answer
}

/// A send's receipt: its status and when it is posted.
struct Receipt {
    status: &'static str,
    before_answer: bool,
    delay: Duration,
}

/// Decrements a counter if positive; true when it did.
fn take_one(counter: &AtomicU32) -> bool {
    counter.load(Ordering::Relaxed) > 0
        && counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
}

// ---------------------------------------------------------------------------------------
// Instances, webhooks, numbers
// ---------------------------------------------------------------------------------------

async fn welcome() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": 200,
        "message": "Welcome to the Evolution API, it is working! (arauto sandbox)",
        "version": "2.3.0-sandbox",
        "clientName": "arauto-sandbox",
    }))
}

async fn connection_state(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    let current = state.connection_state(&instance);
    Ok(HttpResponse::Ok().json(json!({
        "instance": {"instanceName": instance.as_str(), "state": current.as_str()}
    })))
}

async fn connect(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    let pairing_ms = read(&state.inner.faults).pairing_ms;
    let qr = state.with_instance(&instance, |e| e.issue_qr(pairing_ms));
    let current = state.connection_state(&instance);
    state.fire_webhook(
        &instance,
        "connection.update",
        json!({"instance": instance.as_str(), "state": current.as_str(), "statusReason": 200}),
    );
    Ok(HttpResponse::Ok().json(qr))
}

async fn logout(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    state.with_instance(&instance, |e| {
        e.logged_out = true;
        e.connecting_until = None;
    });
    state.fire_webhook(
        &instance,
        "connection.update",
        json!({"instance": instance.as_str(), "state": "close", "statusReason": 401}),
    );
    Ok(HttpResponse::Ok().json(success("Instance logged out")))
}

async fn delete(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    write(&state.inner.instances).remove(instance.as_str());
    Ok(HttpResponse::Ok().json(success("Instance deleted")))
}

async fn restart(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    let current = state.connection_state(&instance);
    Ok(HttpResponse::Ok().json(json!({
        "instance": {"instanceName": instance.as_str(), "state": current.as_str()}
    })))
}

fn success(message: &str) -> Value {
    json!({"status": "SUCCESS", "error": false, "response": {"message": message}})
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateBody {
    instance_name: Option<String>,
    token: Option<String>,
    integration: Option<String>,
    #[serde(default)]
    qrcode: bool,
    webhook: Option<WebhookConfig>,
}

async fn create(state: web::Data<SandboxState>, req: HttpRequest, body: web::Bytes) -> Reply {
    state.authorize(&req)?;
    let b: CreateBody = parse_json(&body)?;
    let name = require(b.instance_name.filter(|n| !n.is_empty()), "instanceName")?;
    let pairing_ms = read(&state.inner.faults).pairing_ms;
    let created = {
        let mut instances = write(&state.inner.instances);
        if instances.contains_key(&name) {
            None
        } else {
            let mut entry = InstanceEntry::new();
            if let Some(token) = b.token.filter(|t| !t.is_empty()) {
                entry.token = token;
            }
            entry.webhook = b.webhook.filter(|w| !w.url.is_empty());
            entry.logged_out = true;
            let qr = b.qrcode.then(|| entry.issue_qr(pairing_ms));
            let answer = json!({
                "instance": {
                    "instanceName": name,
                    "instanceId": entry.id,
                    "integration": b.integration.as_deref().unwrap_or("WHATSAPP-BAILEYS"),
                    "status": entry.state().as_str(),
                },
                "hash": entry.token,
                "webhook": entry.webhook.as_ref().map(webhook_json),
                "qrcode": qr.unwrap_or_else(|| json!({})),
            });
            instances.insert(name.clone(), entry);
            Some(answer)
        }
    };
    match created {
        Some(answer) => Ok(HttpResponse::Created().json(answer)),
        None => Err(EvolutionError::new(
            StatusCode::FORBIDDEN,
            json!([format!("This name \"{name}\" is already in use.")]),
        )),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FetchQuery {
    instance_name: Option<String>,
}

async fn fetch_instances(state: web::Data<SandboxState>, req: HttpRequest, query: web::Query<FetchQuery>) -> Reply {
    state.authorize(&req)?;
    if let Some(name) = &query.instance_name {
        state.check_known(name)?;
        // Any name exists: make sure it is listed.
        state.with_instance(name, |_| ());
    }
    let disconnected = read(&state.inner.faults).disconnected.clone();
    let instances = read(&state.inner.instances);
    let mut list: Vec<Value> = instances
        .iter()
        .filter(|(name, _)| query.instance_name.as_ref().is_none_or(|n| n == *name))
        .map(|(name, e)| {
            let status = if disconnected.contains(name) {
                ConnectionState::Close
            } else {
                e.state()
            };
            json!({
                "id": e.id, "name": name, "connectionStatus": status.as_str(),
                "ownerJid": (status == ConnectionState::Open).then_some(FAKE_OWNER_JID),
                "profileName": null, "integration": "WHATSAPP-BAILEYS", "number": null,
                "token": e.token, "clientName": "arauto-sandbox",
                "createdAt": e.created_at, "updatedAt": e.created_at,
            })
        })
        .collect();
    list.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(HttpResponse::Ok().json(list))
}

#[derive(Deserialize)]
struct WebhookBody {
    webhook: Option<WebhookConfig>,
    #[serde(flatten)]
    flat: Option<WebhookConfig>,
}

fn webhook_json(w: &WebhookConfig) -> Value {
    json!({
        "enabled": w.enabled, "url": w.url, "webhookByEvents": w.by_events,
        "webhookBase64": w.base64, "headers": w.headers, "events": w.events,
    })
}

async fn set_webhook(
    state: web::Data<SandboxState>,
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    let b: WebhookBody = parse_json(&body)?;
    let hook = require(b.webhook.or(b.flat), "webhook")?;
    if hook.enabled && hook.url.is_empty() {
        return Err(EvolutionError::bad_request(&[
            "instance requires property \"url\"".to_owned()
        ]));
    }
    let id = state.with_instance(&instance, |e| {
        e.webhook = Some(hook.clone());
        e.id.clone()
    });
    let mut answer = webhook_json(&hook);
    if let Value::Object(fields) = &mut answer {
        fields.insert("id".into(), json!(uuid::Uuid::new_v4()));
        fields.insert("instanceId".into(), json!(id));
    }
    Ok(HttpResponse::Created().json(answer))
}

async fn find_webhook(state: web::Data<SandboxState>, req: HttpRequest, instance: web::Path<String>) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    let hook = read(&state.inner.instances)
        .get(instance.as_str())
        .and_then(|e| e.webhook.as_ref().map(webhook_json));
    Ok(HttpResponse::Ok().json(hook))
}

#[derive(Deserialize)]
struct NumbersBody {
    numbers: Option<Vec<String>>,
}

async fn whatsapp_numbers(
    state: web::Data<SandboxState>,
    req: HttpRequest,
    instance: web::Path<String>,
    body: web::Bytes,
) -> Reply {
    state.authorize(&req)?;
    state.check_known(&instance)?;
    if state.connection_state(&instance) != ConnectionState::Open {
        return Err(EvolutionError::connection_closed());
    }
    let b: NumbersBody = parse_json(&body)?;
    let numbers = require(b.numbers, "numbers")?;
    let faults = read(&state.inner.faults);
    let answer: Vec<Value> = numbers
        .iter()
        .map(|n| {
            let d = digits(n);
            json!({"exists": !faults.not_on_whatsapp.contains(&d),
                   "jid": format!("{d}@s.whatsapp.net"), "number": n})
        })
        .collect();
    Ok(HttpResponse::Ok().json(answer))
}

// ---------------------------------------------------------------------------------------
// Control API
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct SendsQuery {
    instance: Option<String>,
}

async fn list_sends(state: web::Data<SandboxState>, query: web::Query<SendsQuery>) -> HttpResponse {
    HttpResponse::Ok().json(state.sends(query.instance.as_deref()))
}

async fn clear_sends(state: web::Data<SandboxState>) -> HttpResponse {
    state.clear_sends();
    HttpResponse::NoContent().finish()
}

async fn get_faults(state: web::Data<SandboxState>) -> HttpResponse {
    HttpResponse::Ok().json(state.faults())
}

async fn patch_faults(state: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let patch: FaultsPatch = parse_json(&body)?;
    state.set_faults(patch).map_err(|e| EvolutionError::bad_request(&[e]))?;
    Ok(HttpResponse::Ok().json(state.faults()))
}

async fn reset_faults(state: web::Data<SandboxState>) -> HttpResponse {
    state.reset_faults();
    HttpResponse::Ok().json(state.faults())
}

async fn reset_all(state: web::Data<SandboxState>) -> HttpResponse {
    state.reset();
    HttpResponse::NoContent().finish()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InboundBody {
    instance: String,
    number: String,
    text: String,
    #[serde(default)]
    lid: bool,
}

/// `POST /_sandbox/inbound`: a contact writes to the instance (see the module docs).
async fn inbound(state: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let b: InboundBody = parse_json(&body)?;
    let number = digits(&b.number);
    let jid = format!("{number}@s.whatsapp.net");
    let id = state.next_message_id();
    let key = if b.lid {
        json!({"remoteJid": format!("1{number}@lid"), "remoteJidAlt": jid,
               "fromMe": false, "id": id})
    } else {
        json!({"remoteJid": jid, "fromMe": false, "id": id})
    };
    let data = json!({
        "key": key, "pushName": "Contato", "message": {"conversation": b.text},
        "messageType": "conversation", "messageTimestamp": Utc::now().timestamp(),
        "instanceId": b.instance,
    });
    let Some(delivery) = state.webhook_delivery(&b.instance, "messages.upsert", data) else {
        return Err(EvolutionError::new(
            StatusCode::CONFLICT,
            json!([format!(
                "the \"{}\" instance has no webhook for MESSAGES_UPSERT",
                b.instance
            )]),
        ));
    };
    match delivery.await {
        Ok(status) => Ok(HttpResponse::Ok().json(json!({"status": status, "id": id}))),
        Err(e) => Err(EvolutionError::new(StatusCode::BAD_GATEWAY, json!([e.to_string()]))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBody {
    name: String,
    content_type: String,
    size: u64,
}

/// `POST /_sandbox/files`: serve a file (see the module docs).
async fn put_file(state: web::Data<SandboxState>, body: web::Bytes) -> Reply {
    let b: FileBody = parse_json(&body)?;
    if b.name.is_empty() || b.name.contains('/') {
        return Err(EvolutionError::bad_request(&[
            "name must be one path segment".to_owned()
        ]));
    }
    state.put_file(&b.name, &b.content_type, b.size);
    Ok(HttpResponse::Created().json(json!({"name": b.name, "content_type": b.content_type, "size": b.size})))
}

async fn delete_file(state: web::Data<SandboxState>, name: web::Path<String>) -> HttpResponse {
    if state.delete_file(&name) {
        HttpResponse::NoContent().finish()
    } else {
        HttpResponse::NotFound().finish()
    }
}

/// `GET`/`HEAD /_sandbox/files/{name}`: zeros of the declared size, with its content type;
/// a `Range: bytes=a-b` (or `a-`) answers 206 with `Content-Range`.
async fn get_file(state: web::Data<SandboxState>, req: HttpRequest, name: web::Path<String>) -> HttpResponse {
    let Some((content_type, size)) = read(&state.inner.files).get(name.as_str()).cloned() else {
        return HttpResponse::NotFound().body("not found");
    };
    let range = req
        .headers()
        .get("range")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("bytes="))
        .and_then(|v| v.split_once('-'))
        .and_then(|(a, b)| {
            let start: u64 = a.trim().parse().ok()?;
            let end: u64 = if b.trim().is_empty() {
                size.checked_sub(1)?
            } else {
                b.trim().parse::<u64>().ok()?.min(size.checked_sub(1)?)
            };
            (start <= end).then_some((start, end))
        });
    // Bodies are capped: a declared size is for the headers, not for sending megabytes.
    let body_of = |len: u64| vec![0u8; len.min(1 << 20) as usize];
    match range {
        Some((start, end)) => HttpResponse::PartialContent()
            .content_type(content_type)
            .insert_header(("content-range", format!("bytes {start}-{end}/{size}")))
            .body(body_of(end - start + 1)),
        None => HttpResponse::Ok().content_type(content_type).body(body_of(size)),
    }
}

async fn no_route(req: HttpRequest) -> Reply {
    Err(EvolutionError::new(
        StatusCode::NOT_FOUND,
        json!([format!("Cannot {} {}", req.method(), req.path())]),
    ))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A duplicate of the connection's socket, so a handler can close it unanswered.
#[derive(Clone)]
struct ConnSocket(Arc<std::net::TcpStream>);

/// On each new connection: marks it as not having carried a request yet ([`FirstRequest`],
/// for the `new_connection_ms` fault) and keeps a duplicate of its socket ([`ConnSocket`]).
fn remember_socket(conn: &dyn Any, ext: &mut Extensions) {
    ext.insert(FirstRequest(Arc::new(AtomicBool::new(true))));
    #[cfg(unix)]
    if let Some(stream) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
        use std::os::fd::AsFd;
        if let Ok(fd) = stream.as_fd().try_clone_to_owned() {
            ext.insert(ConnSocket(Arc::new(std::net::TcpStream::from(fd))));
        }
    }
    #[cfg(not(unix))]
    let _ = (conn, ext);
}

/// Set while the connection has not carried a request yet.
#[derive(Clone)]
struct FirstRequest(Arc<AtomicBool>);

/// The `new_connection_ms` fault: holds a connection's first request back that long.
async fn handshake(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let first = req
        .conn_data::<FirstRequest>()
        .is_some_and(|f| f.0.swap(false, Ordering::SeqCst));
    if first {
        let wait = req
            .app_data::<web::Data<SandboxState>>()
            .map_or(0, |s| read(&s.inner.faults).new_connection_ms);
        if wait > 0 {
            actix_web::rt::time::sleep(Duration::from_millis(wait)).await;
        }
    }
    next.call(req).await
}

/// Shuts the request's connection down; false when it cannot.
fn drop_connection(req: &HttpRequest) -> bool {
    req.conn_data::<ConnSocket>()
        .is_some_and(|s| s.0.shutdown(std::net::Shutdown::Both).is_ok())
}

/// `+55 (11) 98765-4321` or `5511987654321@s.whatsapp.net` → `5511987654321`.
fn digits(number: &str) -> String {
    let user = number.split('@').next().unwrap_or(number);
    user.chars().filter(char::is_ascii_digit).collect()
}

fn pairing_code() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::thread_rng();
    (0..8)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}
