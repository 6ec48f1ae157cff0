//! The delivery loop, run by `arauto worker` beside the dispatch workers and never on the
//! send path: it takes due outbox rows (`FOR UPDATE SKIP LOCKED`, so any number of workers
//! share them), POSTs each to its subscription's URL, signed, and records the attempt:
//! `delivered` on a 2xx; otherwise the next attempt after an exponential backoff, until
//! `webhooks.give_up_hours` after the event, then `failed`.
//!
//! A claimed row is leased (its next attempt pushed past the request timeout) rather than
//! kept locked during the request: a worker that dies mid-request leaves it due again after
//! the lease. Each request runs in its own task, bounded by `webhooks.concurrency`, so a
//! slow receiver only delays its own deliveries.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseConnection, FromQueryResult};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::domain::{retry_delay, signature};
use crate::clock::SharedClock;
use crate::config::WebhookSettings;
use crate::crypto::Cipher;
use crate::db::stmt;

/// Extra lease on a claimed row beyond the request timeout.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Longest excerpt of a receiver's answer kept as `last_error`, in characters.
const ERROR_EXCERPT: usize = 300;

/// A claimed delivery: the event, where it goes and the (encrypted) secret to sign it with.
#[derive(Debug, Clone, FromQueryResult)]
pub struct Due {
    pub id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub data: Value,
    pub created_at: DateTime<Utc>,
    /// Attempts made, this one included.
    pub attempts: i32,
    pub url: String,
    pub secret_enc: String,
}

/// What one attempt got.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The receiver's status, `None` when no answer came (refused, timed out).
    pub status: Option<u16>,
    /// Why it is not delivered; `None` on a 2xx.
    pub error: Option<String>,
}

/// Delivers due webhook events; one per worker process.
pub struct Deliverer {
    db: DatabaseConnection,
    http: reqwest::Client,
    cipher: Cipher,
    clock: SharedClock,
    settings: WebhookSettings,
    /// `egress.allow_private_networks`: else only public addresses are posted to.
    allow_private: bool,
}

impl Deliverer {
    /// A deliverer with its own HTTP client (`webhooks.timeout_ms` per request, no redirects).
    pub fn new(state: &crate::state::AppState) -> anyhow::Result<Arc<Self>> {
        let settings = state.settings.webhooks.clone();
        let builder = reqwest::Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Arauto-Webhooks/", env!("CARGO_PKG_VERSION")));
        // Subscriptions are tenants' URLs: public addresses only, unless allowed.
        let http = crate::egress::guard(builder, state.settings.egress.allow_private_networks).build()?;
        Ok(Arc::new(Self {
            db: state.db.clone(),
            http,
            cipher: state.cipher.clone(),
            clock: state.clock.clone(),
            allow_private: state.settings.egress.allow_private_networks,
            settings,
        }))
    }

    /// Takes up to `limit` deliveries due at `now`, oldest first, counting the attempt and
    /// leasing them past the request timeout.
    pub async fn claim(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Due>, sea_orm::DbErr> {
        let lease = Duration::from_millis(self.settings.timeout_ms) + LEASE_MARGIN;
        let until = now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1));
        Due::find_by_statement(stmt(
            "WITH due AS ( \
               SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
               ORDER BY next_attempt_at LIMIT $3 FOR UPDATE SKIP LOCKED) \
             UPDATE webhook_deliveries d SET attempts = d.attempts + 1, last_attempt_at = $1, next_attempt_at = $2 \
             FROM due, webhook_subscriptions s WHERE d.id = due.id AND s.id = d.subscription_id \
             RETURNING d.id, d.event_id, d.event_type, d.data, d.created_at, d.attempts, s.url, s.secret_enc",
            vec![now.into(), until.into(), (limit as i64).into()],
        ))
        .all(&self.db)
        .await
    }

    /// POSTs one delivery: body `{id, type, created_at, data}` with headers
    /// `X-Arauto-Event` (the type), `X-Arauto-Delivery` (the event id), `X-Arauto-Timestamp`
    /// (Unix seconds, `now`) and `X-Arauto-Signature` ([`signature`]).
    pub async fn attempt(&self, due: &Due, now: DateTime<Utc>) -> Attempt {
        let secret = match self.cipher.decrypt(&due.secret_enc) {
            Ok(s) => s,
            Err(e) => {
                return Attempt {
                    status: None,
                    error: Some(format!("cannot read the signing secret: {e}")),
                }
            }
        };
        if !self.allow_private {
            let checked = reqwest::Url::parse(&due.url)
                .map_err(|e| e.to_string())
                .and_then(|u| crate::egress::check_url(&u));
            if let Err(why) = checked {
                return Attempt {
                    status: None,
                    error: Some(format!("not delivered: {why}")),
                };
            }
        }
        let body = json!({
            "id": due.event_id,
            "type": due.event_type,
            "created_at": due.created_at,
            "data": due.data,
        })
        .to_string();
        let timestamp = now.timestamp();
        let sent = self
            .http
            .post(&due.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Arauto-Event", &due.event_type)
            .header("X-Arauto-Delivery", due.event_id.to_string())
            .header("X-Arauto-Timestamp", timestamp.to_string())
            .header("X-Arauto-Signature", signature(&secret, timestamp, body.as_bytes()))
            .body(body)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Attempt {
                status: Some(r.status().as_u16()),
                error: None,
            },
            Ok(r) => {
                let status = r.status().as_u16();
                let text = r.text().await.unwrap_or_default();
                let excerpt: String = text.chars().take(ERROR_EXCERPT).collect();
                Attempt {
                    status: Some(status),
                    error: Some(
                        format!("HTTP {status}: {excerpt}")
                            .trim_end_matches([' ', ':'])
                            .to_owned(),
                    ),
                }
            }
            Err(e) => Attempt {
                status: None,
                error: Some(if e.is_timeout() {
                    format!("timed out after {} ms", self.settings.timeout_ms)
                } else {
                    format!("request failed: {}", error_chain(&e))
                }),
            },
        }
    }

    /// Records an attempt finished at `now`: `delivered`, or the next attempt after
    /// [`retry_delay`], or `failed` when that would come after `webhooks.give_up_hours`.
    pub async fn finish(&self, due: &Due, attempt: &Attempt, now: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
        let (status, next) = match &attempt.error {
            None => ("delivered", None),
            Some(_) => {
                let delay = retry_delay(
                    Duration::from_millis(self.settings.base_delay_ms),
                    Duration::from_millis(self.settings.max_delay_ms),
                    due.attempts.max(1) as u32,
                );
                let next = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
                if next > due.created_at + chrono::Duration::hours(self.settings.give_up_hours) {
                    ("failed", None)
                } else {
                    ("pending", Some(next))
                }
            }
        };
        self.db
            .execute(stmt(
                "UPDATE webhook_deliveries SET status = $2, next_attempt_at = $3, last_status = $4, last_error = $5, \
                   delivered_at = CASE WHEN $2 = 'delivered' THEN $6 END \
                 WHERE id = $1 AND status = 'pending'",
                vec![
                    due.id.into(),
                    status.into(),
                    next.into(),
                    attempt.status.map(i32::from).into(),
                    attempt.error.clone().into(),
                    now.into(),
                ],
            ))
            .await?;
        Ok(())
    }

    /// One pass at `now`: claims up to `limit` due deliveries, attempts them concurrently and
    /// records the results. Returns how many were attempted. Tests drive the loop with it.
    pub async fn step(&self, now: DateTime<Utc>, limit: usize) -> Result<usize, sea_orm::DbErr> {
        let claimed = self.claim(now, limit).await?;
        let attempts = futures_util::future::join_all(claimed.iter().map(|d| self.attempt(d, now))).await;
        for (due, attempt) in claimed.iter().zip(&attempts) {
            self.finish(due, attempt, now).await?;
        }
        Ok(claimed.len())
    }

    /// Runs until `shutdown`, then waits for the requests in flight.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let slots = Arc::new(Semaphore::new(self.settings.concurrency.max(1)));
        let mut tasks = JoinSet::new();
        let poll = Duration::from_millis(self.settings.poll_ms.max(1));
        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {}
            let free = slots.available_permits();
            let claimed = if free == 0 {
                vec![]
            } else {
                match self.claim(self.clock.now(), free).await {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming webhook deliveries failed");
                        vec![]
                    }
                }
            };
            let idle = claimed.is_empty();
            for due in claimed {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let this = self.clone();
                tasks.spawn(async move {
                    let _permit = permit;
                    let attempt = this.attempt(&due, this.clock.now()).await;
                    if let Err(e) = this.finish(&due, &attempt, this.clock.now()).await {
                        tracing::warn!(error = %e, delivery_id = %due.id, "recording a webhook attempt failed");
                    }
                });
            }
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
