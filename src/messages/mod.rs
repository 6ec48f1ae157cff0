//! One-off messages (the transactional path, PRODUCT §3 "messages"): `POST /messages` and
//! `/messages/bulk` accept sends to one phone from one instance, now or at `send_at`; they go
//! through the same engine as campaign recipients — planned into the due-time queue
//! ([`planning`]), claimed by the workers through the same job kind
//! (`dispatch::stream::JobKind::Message`), the per-phone lock, pacing on the instance's
//! one-off lane, the instance's daily limit and warm-up shared with its campaigns, retries,
//! at-most-once, receipts and replies — with their own state machine ([`status`], the only
//! writer of message status changes).

pub mod idempotency;
pub mod planning;
pub mod repo;
pub mod routes;
pub mod service;
pub mod status;

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A one-off message's status (column `messages.status`): `pending → queued → sending →
/// sent | failed`, or `skipped` (`opted_out`) when its contact opted out before it left.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    serde::Deserialize,
    ToSchema,
    sea_orm::EnumIter,
    sea_orm::DeriveActiveEnum,
)]
#[serde(rename_all = "snake_case")]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum MessageStatus {
    #[sea_orm(string_value = "pending")]
    Pending,
    #[sea_orm(string_value = "queued")]
    Queued,
    #[sea_orm(string_value = "sending")]
    Sending,
    #[sea_orm(string_value = "sent")]
    Sent,
    #[sea_orm(string_value = "failed")]
    Failed,
    #[sea_orm(string_value = "skipped")]
    Skipped,
    /// Cancelled by the user before it left (`POST /messages/{id}/cancel`).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

impl MessageStatus {
    /// As stored and shown (`pending`, …).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Skipped => "skipped",
            Self::Cancelled => "cancelled",
        }
    }
}

/// `POST /messages`'s answer (202), also each accepted item of a bulk answer.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema)]
pub struct Accepted {
    pub id: Uuid,
    pub status: MessageStatus,
}

/// A one-off message as `GET /messages/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sea_orm::FromQueryResult)]
pub struct MessageView {
    pub id: Uuid,
    pub instance_id: Uuid,
    /// Canonical digits with country code.
    pub phone: String,
    /// The text as given (or the template's), a template rendered at the send instant.
    pub text: Option<String>,
    pub template_id: Option<Uuid>,
    #[schema(value_type = Object)]
    pub variables: serde_json::Value,
    #[schema(value_type = Option<crate::campaigns::domain::Media>)]
    pub media: Option<serde_json::Value>,
    pub transactional: bool,
    pub status: MessageStatus,
    /// Why it failed, was skipped, or waits to be tried again.
    pub reason: Option<String>,
    /// It may have been sent (a timeout after the request left): never resent.
    pub outcome_unknown: bool,
    /// The gateway accepted it and then reported `ERROR` (`failed`, with the reason); a
    /// later delivery or read receipt makes it `sent` again.
    pub failed_after_send: bool,
    /// When it was asked to leave (`null`: at once).
    pub send_at: Option<DateTime<Utc>>,
    /// When it stops being worth sending (`null`: never); still waiting then, it ends
    /// `failed` with the reason `expired`.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the engine planned it to leave.
    pub planned_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub read_at: Option<DateTime<Utc>>,
    pub replied_at: Option<DateTime<Utc>>,
    /// The gateway's message id.
    pub message_id: Option<String>,
    /// The text as sent.
    pub rendered: Option<String>,
    /// Requests made to the gateway so far.
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}
