//! The worker's part for one-off messages (`crate::messages`): the same path as a
//! campaign's recipient — phone lock, conditional claim committed before the send, the
//! instance's one-off lane for pacing (reserved by the planner, guaranteed by the send gate
//! at departure), retries that re-check it, the outcome recorded, the phone left locked after
//! a send — with the message's own state machine (`crate::messages::status`).

use std::time::Duration;

use super::{Lane, Worker};
use crate::campaigns::domain::{recipient_seed, Media};
use crate::dispatch::context::outgoing;
use crate::dispatch::stream::{Entry, Job};
use crate::gateway::InstanceTarget;
use crate::messages::status::{self, Claimed, Record};
use crate::recipients::Outcome;
use crate::templating::{self, RenderContext};

/// A message that could not be sent (the gateway unreachable, the instance refusing) is due
/// again this long after.
const RETRY_UNSENT: Duration = Duration::from_secs(60);

impl Worker {
    /// One message job, due now: the phone lock (held: back to the due-time queue at its
    /// expiry), the claim (`queued → sending`; nothing to send: acknowledged), the send, the
    /// outcome, the acknowledgement.
    pub(super) async fn process_message(&self, entry: &Entry, job: &Job) -> anyhow::Result<()> {
        let Some(phone_lock) = self.lock_phone(entry, job).await? else {
            return Ok(());
        };
        let Some(m) = status::claim(&self.db, job.recipient_id, self.clock.now()).await? else {
            self.release(&phone_lock).await;
            self.ack(entry).await;
            return Ok(());
        };
        let planned_at = m.planned_at.unwrap_or(job.planned_at);
        let record = self.send_message(&m, planned_at, &phone_lock).await;
        if record.outcome == Outcome::Unsent {
            self.release(&phone_lock).await;
        }
        let mut recorded = false;
        for attempt in 1..=3u64 {
            match status::record(&self.db, &record).await {
                Ok(()) => {
                    recorded = true;
                    break;
                }
                Err(e) => {
                    tracing::error!(error = %e, attempt, "recording a message's outcome failed");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
            }
        }
        if !recorded {
            tracing::error!(message = %m.id, "outcome not recorded: the message stays `sending` and times out as outcome_unknown");
        }
        self.ack(entry).await;
        Ok(())
    }

    /// Renders (the text as a template at this instant, in the tenant's zone, with the message's
    /// variables over the contact's fields) and sends on the instance's one-off lane.
    async fn send_message(
        &self,
        m: &Claimed,
        planned_at: chrono::DateTime<chrono::Utc>,
        phone_lock: &super::lock::Lock,
    ) -> Record {
        let now = self.clock.now();
        let mut record = Record {
            id: m.id,
            outcome: Outcome::Unsent,
            reason: None,
            message_id: None,
            rendered: String::new(),
            attempts: 0,
            gateway_status: None,
            at: now,
            retry_at: now + chrono::Duration::from_std(RETRY_UNSENT).unwrap_or_default(),
        };
        let text = match templating::parse(m.text.as_deref().unwrap_or("")) {
            Ok(template) => {
                let tz: chrono_tz::Tz = m.timezone.parse().unwrap_or(chrono_tz::UTC);
                let mut fields = m
                    .contact_fields
                    .as_ref()
                    .and_then(|f| f.as_object().cloned())
                    .unwrap_or_default();
                if let Some(vars) = m.variables.as_object() {
                    fields.extend(vars.clone());
                }
                let ctx = RenderContext {
                    name: m.contact_name.as_deref().unwrap_or(""),
                    phone: &m.phone,
                    fields: Some(&fields),
                    local_time: now.with_timezone(&tz).naive_local(),
                };
                template.render(&ctx, recipient_seed(m.id, uuid::Uuid::nil()))
            }
            Err(_) => {
                // Checked when it was accepted: only a changed parser gets here.
                record.outcome = Outcome::Failed;
                record.reason = Some("the text does not parse as a template".into());
                return record;
            }
        };
        record.rendered = text.clone();
        let media: Option<Media> = m.media.clone().and_then(|v| serde_json::from_value(v).ok());
        let message = outgoing(media, text);
        let api_key = match self.cipher.decrypt(&m.api_key_enc) {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, instance = %m.instance_id, "the instance's api key does not decrypt");
                record.reason = Some("the instance's api key does not decrypt".into());
                return record;
            }
        };
        let target = InstanceTarget {
            api_url: &m.api_url,
            instance_name: &m.instance_name,
            api_key: &api_key,
        };
        let lane = Lane {
            pace: super::gate::PaceKey::of(m.instance_id),
            interval_ms: crate::calendar::guarded_interval_ms(self.settings.dispatch.message_interval_ms),
            campaign: None,
            phone: phone_lock,
        };
        // The planner reserved this message's instant on the lane: the first attempt only
        // passes the gate (which holds it back while the last departure is too recent).
        let reserved = Some(tokio::time::Instant::now());
        let d = self
            .deliver(&lane, target, &m.phone, &message, planned_at, reserved, m.id)
            .await;
        record.outcome = d.outcome;
        record.reason = match (&d.pause, d.reason) {
            (Some(pause), Some(reason)) if *pause != reason => Some(format!("{pause}: {reason}")),
            (_, reason) => reason,
        };
        record.message_id = d.message_id;
        record.attempts = d.attempts;
        record.gateway_status = d.gateway_status;
        record.at = self.clock.now();
        record.retry_at = record.at + chrono::Duration::from_std(RETRY_UNSENT).unwrap_or_default();
        record
    }
}
