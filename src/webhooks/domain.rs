//! Outbound webhooks' pure rules: the event types a tenant can subscribe to, the URL and
//! description a subscription accepts, the signature scheme and the retry schedule.

use hmac::{Hmac, Mac};
use rand::{distributions::Alphanumeric, Rng};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::time::Duration;
use utoipa::ToSchema;

/// An event a subscription can ask for (`type` in a delivery's body, header `X-Arauto-Event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub enum EventType {
    /// A campaign message was accepted by the gateway.
    #[serde(rename = "message.sent")]
    MessageSent,
    /// The gateway's first delivery receipt for a sent message.
    #[serde(rename = "message.delivered")]
    MessageDelivered,
    /// The gateway's first read receipt for a sent message.
    #[serde(rename = "message.read")]
    MessageRead,
    /// A campaign message failed (terminal; `outcome_unknown` when it may have been sent).
    #[serde(rename = "message.failed")]
    MessageFailed,
    /// An inbound message answered a message sent within the reply window.
    #[serde(rename = "reply.received")]
    ReplyReceived,
    /// A contact opted out (by keyword or through the API).
    #[serde(rename = "contact.opted_out")]
    ContactOptedOut,
    /// A draft campaign was started (`POST /campaigns/{id}/start` committed).
    #[serde(rename = "campaign.started")]
    CampaignStarted,
    /// A campaign was paused, by a user or by the engine (`paused_reason` says which).
    #[serde(rename = "campaign.paused")]
    CampaignPaused,
    /// Every recipient of a campaign reached a terminal status.
    #[serde(rename = "campaign.completed")]
    CampaignCompleted,
}

impl EventType {
    pub const ALL: [Self; 9] = [
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageRead,
        Self::MessageFailed,
        Self::ReplyReceived,
        Self::ContactOptedOut,
        Self::CampaignStarted,
        Self::CampaignPaused,
        Self::CampaignCompleted,
    ];

    /// The wire name (`message.sent`), as stored in `webhook_deliveries.event_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageRead => "message.read",
            Self::MessageFailed => "message.failed",
            Self::ReplyReceived => "reply.received",
            Self::ContactOptedOut => "contact.opted_out",
            Self::CampaignStarted => "campaign.started",
            Self::CampaignPaused => "campaign.paused",
            Self::CampaignCompleted => "campaign.completed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// A delivery's state in the log: `pending` (waiting for its next attempt), `delivered`
/// (a 2xx answer) or `failed` (given up after the retry period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

/// Longest subscription URL accepted, in bytes.
pub const MAX_URL_LEN: usize = 2048;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// A receiver URL: absolute `http` or `https` with a host, at most [`MAX_URL_LEN`] bytes, no
/// credentials, no whitespace or control characters. Errors are the 422 message.
pub fn parse_url(raw: &str) -> Result<String, &'static str> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be blank");
    }
    if s.len() > MAX_URL_LEN {
        return Err("must have at most 2048 bytes");
    }
    if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters");
    }
    let url = reqwest::Url::parse(s).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an absolute http(s) URL");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    Ok(url.to_string())
}

/// The events asked for: at least one; duplicates are dropped; sorted.
pub fn parse_events(events: &[EventType]) -> Result<Vec<EventType>, &'static str> {
    if events.is_empty() {
        return Err("must name at least one event");
    }
    let mut v = events.to_vec();
    v.sort();
    v.dedup();
    Ok(v)
}

/// An optional free text: trimmed, at most [`MAX_DESCRIPTION_CHARS`], no control characters
/// (NUL included); blank becomes `None`.
pub fn parse_description(raw: &str) -> Result<Option<String>, String> {
    let s = raw.trim();
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err("must not contain control characters".into());
    }
    if s.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(format!("must have at most {MAX_DESCRIPTION_CHARS} characters"));
    }
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// A fresh signing secret: `whsec_` and 40 random alphanumerics (shown once, stored encrypted).
pub fn new_secret() -> String {
    let random: String = rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect();
    format!("whsec_{random}")
}

/// The `X-Arauto-Signature` value for a body sent at `timestamp` (Unix seconds, also sent
/// as `X-Arauto-Timestamp`): `sha256=` and the lower-case hex HMAC-SHA256, keyed with the
/// subscription's secret, of `"{timestamp}.{body}"`. Signing the timestamp lets a receiver
/// refuse replays of old deliveries.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// How long to wait after the `attempts`-th failed attempt (1-based): `base · 2^(attempts-1)`
/// capped at `max`, plus a random jitter of up to the same again (backon's exponential
/// backoff), so receivers coming back up are not hit by every sender at once.
pub fn retry_delay(base: Duration, max: Duration, attempts: u32) -> Duration {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(base)
        .with_max_delay(max)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(attempts.saturating_sub(1) as usize)
        .unwrap_or(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types_round_trip_through_their_wire_names() {
        for e in EventType::ALL {
            assert_eq!(EventType::parse(e.as_str()), Some(e));
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
        }
        assert!(serde_json::from_str::<EventType>("\"message.bounced\"").is_err());
    }

    #[test]
    fn only_absolute_http_urls_without_credentials_are_receivers() {
        assert_eq!(
            parse_url(" https://crm.example.com/hooks?x=1 ").unwrap(),
            "https://crm.example.com/hooks?x=1"
        );
        assert!(parse_url("http://127.0.0.1:9000/").is_ok());
        for bad in [
            "",
            "ftp://x.com/",
            "/relative",
            "https://u:p@x.com/",
            "https://x.com/a b",
            "https://x.com/\0",
            "mailto:a@b.c",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
        assert!(parse_url(&format!("https://x.com/{}", "a".repeat(MAX_URL_LEN))).is_err());
    }

    #[test]
    fn events_must_be_a_non_empty_set() {
        assert!(parse_events(&[]).is_err());
        let e = parse_events(&[
            EventType::MessageSent,
            EventType::CampaignStarted,
            EventType::MessageSent,
        ])
        .unwrap();
        assert_eq!(e, [EventType::MessageSent, EventType::CampaignStarted]);
    }

    #[test]
    fn a_description_refuses_nul_and_long_text() {
        assert_eq!(parse_description("  CRM  ").unwrap().as_deref(), Some("CRM"));
        assert_eq!(parse_description("  ").unwrap(), None);
        assert!(parse_description("a\0b").is_err());
        assert!(parse_description(&"x".repeat(MAX_DESCRIPTION_CHARS + 1)).is_err());
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // Known answer: HMAC-SHA256("key", "1700000000.{}").
        let sig = signature("key", 1_700_000_000, b"{}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"key").unwrap();
        mac.update(b"1700000000.{}");
        assert_eq!(sig, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
        assert_ne!(sig, signature("key", 1_700_000_001, b"{}"));
        assert_ne!(sig, signature("other", 1_700_000_000, b"{}"));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap_with_jitter() {
        let base = Duration::from_secs(30);
        let max = Duration::from_secs(3600);
        for attempts in 1..=12u32 {
            let d = retry_delay(base, max, attempts);
            let floor = (base * 2u32.pow(attempts - 1)).min(max);
            assert!(d >= floor && d <= floor * 2, "attempt {attempts}: {d:?}");
        }
    }

    #[test]
    fn secrets_are_long_and_fresh() {
        let (a, b) = (new_secret(), new_secret());
        assert!(a.starts_with("whsec_") && a.len() == 46);
        assert_ne!(a, b);
    }
}
