//! Pure parsing of the events the gateway posts to Arauto (`EVOLUTION.md`, "Webhooks").
//!
//! [`parse_webhook`] turns one POST body into zero or more [`GatewayEvent`]s. Events Arauto
//! does not act on (our own outbound messages echoed by `messages.upsert`, group and
//! broadcast chats, unknown event names, unknown receipt statuses) yield no event rather than
//! an error, so the webhook route can always answer 200 and the gateway stops retrying.
//! The gateway may deliver an event twice or out of order: callers must be idempotent and
//! use [`receipt_rank`] / [`ReceiptStatus::rank`] to never move a status backwards.

use serde_json::Value;

use super::client::ConnectionState;
use crate::contacts::phone::Phone;

/// A receipt status, ordered from least to most advanced (`Ord` follows [`Self::rank`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ReceiptStatus {
    /// The gateway could not send the message. Ranks lowest: it never overrides progress.
    Error,
    Pending,
    ServerAck,
    DeliveryAck,
    Read,
    Played,
}

impl ReceiptStatus {
    /// Parses `SERVER_ACK`, `DELIVERY_ACK`, `READ`, `PLAYED`, `PENDING`, `ERROR`
    /// (case-insensitive; `SENT`, `DELIVERED` and `FAILED` are accepted as aliases).
    pub fn parse(status: &str) -> Option<Self> {
        match status.trim().to_ascii_uppercase().as_str() {
            "ERROR" | "FAILED" => Some(Self::Error),
            "PENDING" => Some(Self::Pending),
            "SERVER_ACK" | "SENT" => Some(Self::ServerAck),
            "DELIVERY_ACK" | "DELIVERED" => Some(Self::DeliveryAck),
            "READ" => Some(Self::Read),
            "PLAYED" => Some(Self::Played),
            _ => None,
        }
    }

    /// The numeric codes of the underlying WhatsApp protocol (0 = error … 5 = played).
    pub fn from_code(code: u64) -> Option<Self> {
        match code {
            0 => Some(Self::Error),
            1 => Some(Self::Pending),
            2 => Some(Self::ServerAck),
            3 => Some(Self::DeliveryAck),
            4 => Some(Self::Read),
            5 => Some(Self::Played),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Error => "ERROR",
            Self::Pending => "PENDING",
            Self::ServerAck => "SERVER_ACK",
            Self::DeliveryAck => "DELIVERY_ACK",
            Self::Read => "READ",
            Self::Played => "PLAYED",
        }
    }

    /// `ERROR` 0 < `PENDING` 1 < `SERVER_ACK` 2 < `DELIVERY_ACK` 3 < `READ` 4 < `PLAYED` 5.
    pub fn rank(self) -> u8 {
        match self {
            Self::Error => 0,
            Self::Pending => 1,
            Self::ServerAck => 2,
            Self::DeliveryAck => 3,
            Self::Read => 4,
            Self::Played => 5,
        }
    }

    /// Whether recording `self` over `current` moves the status forward.
    pub fn advances(self, current: Option<Self>) -> bool {
        current.is_none_or(|c| self.rank() > c.rank())
    }
}

/// The rank of a receipt status string (see [`ReceiptStatus::rank`]); unknown statuses and
/// `ERROR` rank 0, so they never replace a known status. Update a stored status only when
/// the new rank is strictly greater.
pub fn receipt_rank(status: &str) -> u8 {
    ReceiptStatus::parse(status).map_or(0, ReceiptStatus::rank)
}

/// One event Arauto acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayEvent {
    /// `messages.update`: a receipt for a message we sent (`message_id` is the send's `key.id`).
    Receipt {
        instance: String,
        message_id: String,
        remote_jid: Option<String>,
        status: ReceiptStatus,
    },
    /// `messages.upsert` from a contact (never `fromMe`). `phone` is digits only.
    Inbound {
        instance: String,
        message_id: String,
        phone: String,
        push_name: Option<String>,
        /// From `message.conversation` or `message.extendedTextMessage.text`; `None` for
        /// media and other message types.
        text: Option<String>,
        timestamp: Option<i64>,
    },
    /// `connection.update`: `Close` pauses the instance's active campaign.
    Connection {
        instance: String,
        state: ConnectionState,
        status_reason: Option<u16>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("webhook body lacks `{0}`")]
    Missing(&'static str),
}

/// Parses one webhook POST body. Ignored events give an empty list, not an error.
pub fn parse_webhook(body: &[u8]) -> Result<Vec<GatewayEvent>, WebhookError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::InvalidJson(e.to_string()))?;
    parse_webhook_value(&value)
}

/// [`parse_webhook`] for an already decoded body.
pub fn parse_webhook_value(body: &Value) -> Result<Vec<GatewayEvent>, WebhookError> {
    let event = body
        .get("event")
        .and_then(Value::as_str)
        .ok_or(WebhookError::Missing("event"))?;
    let event = normalize_event(event);
    let instance = body.get("instance").and_then(Value::as_str);
    let data = body.get("data").ok_or(WebhookError::Missing("data"))?;
    // `data` is one object; some gateway versions batch several in an array.
    let items: Vec<&Value> = match data {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    };
    let mut events = Vec::with_capacity(items.len());
    for item in items {
        let parsed = match event.as_str() {
            "messages.update" => receipt(instance, item)?,
            "messages.upsert" => inbound(instance, item)?,
            "connection.update" => connection(instance, item)?,
            _ => None,
        };
        events.extend(parsed);
    }
    Ok(events)
}

/// `MESSAGES_UPDATE` and `messages-update` (by-events URLs) → `messages.update`.
fn normalize_event(event: &str) -> String {
    event
        .trim()
        .chars()
        .map(|c| match c {
            '_' | '-' => '.',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

fn instance_name(envelope: Option<&str>, data: &Value) -> Result<String, WebhookError> {
    envelope
        .or_else(|| data.get("instance").and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or(WebhookError::Missing("instance"))
}

fn str_at<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(value, |v, key| v.get(key)).and_then(Value::as_str)
}

fn receipt(instance: Option<&str>, data: &Value) -> Result<Option<GatewayEvent>, WebhookError> {
    // Receipts about messages the contact sent us (`fromMe: false`) are not ours to track.
    if data.get("fromMe").and_then(Value::as_bool) == Some(false) {
        return Ok(None);
    }
    let message_id = str_at(data, &["keyId"])
        .or_else(|| str_at(data, &["key", "id"]))
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::Missing("data.keyId"))?;
    let status = match data.get("status") {
        Some(Value::String(s)) => ReceiptStatus::parse(s),
        Some(Value::Number(n)) => n.as_u64().and_then(ReceiptStatus::from_code),
        _ => None,
    };
    let Some(status) = status else {
        return Ok(None);
    };
    Ok(Some(GatewayEvent::Receipt {
        instance: instance_name(instance, data)?,
        message_id: message_id.to_owned(),
        remote_jid: str_at(data, &["remoteJid"])
            .or_else(|| str_at(data, &["key", "remoteJid"]))
            .map(str::to_owned),
        status,
    }))
}

fn inbound(instance: Option<&str>, data: &Value) -> Result<Option<GatewayEvent>, WebhookError> {
    let key = data.get("key").ok_or(WebhookError::Missing("data.key"))?;
    if key.get("fromMe").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    let remote_jid = str_at(key, &["remoteJid"]).ok_or(WebhookError::Missing("data.key.remoteJid"))?;
    let phone_jid = if remote_jid.ends_with("@lid") {
        // A privacy id: the phone number travels in `remoteJidAlt` (`senderPn` in older builds).
        match str_at(key, &["remoteJidAlt"]).or_else(|| str_at(key, &["senderPn"])) {
            Some(alt) => alt,
            None => return Ok(None),
        }
    } else {
        remote_jid
    };
    // Groups, broadcasts and channels are not conversations with a contact.
    let Some(phone) = phone_from_jid(phone_jid) else {
        return Ok(None);
    };
    let message = data.get("message");
    let text = message
        .and_then(|m| str_at(m, &["conversation"]).or_else(|| str_at(m, &["extendedTextMessage", "text"])))
        .map(str::to_owned);
    let timestamp = match data.get("messageTimestamp") {
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s.parse().ok(),
        _ => None,
    };
    Ok(Some(GatewayEvent::Inbound {
        instance: instance_name(instance, data)?,
        message_id: str_at(key, &["id"]).unwrap_or_default().to_owned(),
        phone,
        push_name: str_at(data, &["pushName"]).map(str::to_owned),
        text,
        timestamp,
    }))
}

fn connection(instance: Option<&str>, data: &Value) -> Result<Option<GatewayEvent>, WebhookError> {
    let Some(state) = str_at(data, &["state"]).and_then(ConnectionState::parse) else {
        return Ok(None);
    };
    Ok(Some(GatewayEvent::Connection {
        instance: instance_name(instance, data)?,
        state,
        status_reason: data
            .get("statusReason")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok()),
    }))
}

/// `5511987654321@s.whatsapp.net` (or `5511987654321:12@s.whatsapp.net`, or a bare number)
/// → `5511987654321`; `None` for groups, broadcasts, channels and anything not a phone.
/// The number is canonicalised as contacts are ([`Phone::from_international`]): a
/// Brazilian mobile reported without its ninth digit (`553188887777`) gains it
/// (`5531988887777`), even when the number is not valid otherwise (a contact stored before
/// a rule tightened still matches); other digits are returned as they are.
pub fn phone_from_jid(jid: &str) -> Option<String> {
    let (user, domain) = jid.split_once('@').unwrap_or((jid, "s.whatsapp.net"));
    if !matches!(domain, "s.whatsapp.net" | "c.us") {
        return None;
    }
    let user = user.split_once(':').map_or(user, |(u, _device)| u);
    let phone = user.strip_prefix('+').unwrap_or(user);
    if phone.is_empty() || !phone.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Phone::from_international(phone).map_or_else(
        |_| crate::contacts::phone::canonical(phone.to_owned()),
        Phone::into_string,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Vec<GatewayEvent> {
        parse_webhook(v.to_string().as_bytes()).expect("parses")
    }

    #[test]
    fn a_delivery_receipt_names_the_message_id_and_status() {
        let events = parse(json!({
            "event": "messages.update", "instance": "loja-1",
            "data": {"keyId": "3EB0C4A1F2D5B6E7", "remoteJid": "5511987654321@s.whatsapp.net",
                     "fromMe": true, "status": "DELIVERY_ACK"},
            "date_time": "2026-11-25T10:00:00.000Z"
        }));
        assert_eq!(
            events,
            vec![GatewayEvent::Receipt {
                instance: "loja-1".into(),
                message_id: "3EB0C4A1F2D5B6E7".into(),
                remote_jid: Some("5511987654321@s.whatsapp.net".into()),
                status: ReceiptStatus::DeliveryAck,
            }]
        );
    }

    #[test]
    fn upper_case_event_names_are_accepted() {
        let events = parse(json!({
            "event": "MESSAGES_UPDATE", "instance": "loja-1",
            "data": {"keyId": "A", "fromMe": true, "status": "READ"}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Receipt {
                status: ReceiptStatus::Read,
                ..
            }]
        ));
        let events = parse(json!({
            "event": "CONNECTION_UPDATE", "instance": "loja-1",
            "data": {"state": "open"}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Connection {
                state: ConnectionState::Open,
                ..
            }]
        ));
    }

    #[test]
    fn a_receipt_with_a_numeric_status_is_understood() {
        let events = parse(json!({
            "event": "messages.update", "instance": "i",
            "data": {"key": {"id": "B"}, "status": 4}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Receipt { status: ReceiptStatus::Read, message_id, .. }] if message_id == "B"
        ));
    }

    #[test]
    fn a_receipt_without_a_key_id_is_an_error_and_an_unknown_status_is_ignored() {
        let body = json!({"event": "messages.update", "instance": "i",
                          "data": {"status": "READ"}});
        assert_eq!(
            parse_webhook(body.to_string().as_bytes()),
            Err(WebhookError::Missing("data.keyId"))
        );
        assert!(parse(json!({"event": "messages.update", "instance": "i",
                             "data": {"keyId": "A", "status": "WHATEVER"}}))
        .is_empty());
    }

    #[test]
    fn an_inbound_conversation_message_yields_phone_and_text() {
        let events = parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": false, "id": "X1"},
                     "pushName": "Ana", "message": {"conversation": "SAIR"},
                     "messageType": "conversation", "messageTimestamp": 1764000000}
        }));
        assert_eq!(
            events,
            vec![GatewayEvent::Inbound {
                instance: "loja-1".into(),
                message_id: "X1".into(),
                phone: "5511987654321".into(),
                push_name: Some("Ana".into()),
                text: Some("SAIR".into()),
                timestamp: Some(1764000000),
            }]
        );
    }

    #[test]
    fn inbound_text_may_come_from_an_extended_text_message() {
        let events = parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": false, "id": "X2"},
                     "message": {"extendedTextMessage": {"text": "parar por favor"}},
                     "messageTimestamp": "1764000001"}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Inbound { text: Some(t), timestamp: Some(1764000001), .. }] if t == "parar por favor"
        ));
    }

    #[test]
    fn our_own_messages_echoed_by_upsert_are_ignored() {
        assert!(parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "5511987654321@s.whatsapp.net", "fromMe": true, "id": "X3"},
                     "message": {"conversation": "Olá!"}}
        }))
        .is_empty());
    }

    #[test]
    fn a_lid_sender_takes_the_phone_from_remote_jid_alt() {
        let events = parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "123456789012345@lid",
                             "remoteJidAlt": "5511987654321@s.whatsapp.net",
                             "fromMe": false, "id": "X4"},
                     "message": {"conversation": "stop"}}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Inbound { phone, .. }] if phone == "5511987654321"
        ));
        // Without the alternative there is no phone to act on.
        assert!(parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "123456789012345@lid", "fromMe": false, "id": "X5"},
                     "message": {"conversation": "stop"}}
        }))
        .is_empty());
    }

    #[test]
    fn group_messages_are_ignored() {
        assert!(parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "120363000000000000@g.us", "fromMe": false, "id": "G"},
                     "message": {"conversation": "SAIR"}}
        }))
        .is_empty());
    }

    #[test]
    fn a_connection_update_carries_state_and_reason() {
        let events = parse(json!({
            "event": "connection.update", "instance": "loja-1",
            "data": {"instance": "loja-1", "state": "close", "statusReason": 401}
        }));
        assert_eq!(
            events,
            vec![GatewayEvent::Connection {
                instance: "loja-1".into(),
                state: ConnectionState::Close,
                status_reason: Some(401),
            }]
        );
    }

    #[test]
    fn unknown_events_yield_nothing_and_garbage_is_an_error() {
        assert!(parse(json!({"event": "presence.update", "instance": "i", "data": {}})).is_empty());
        assert!(matches!(parse_webhook(b"not json"), Err(WebhookError::InvalidJson(_))));
        assert_eq!(parse_webhook(br#"{"data": {}}"#), Err(WebhookError::Missing("event")));
    }

    #[test]
    fn batched_data_arrays_yield_one_event_each() {
        let events = parse(json!({
            "event": "messages.update", "instance": "i",
            "data": [{"keyId": "A", "status": "SERVER_ACK"}, {"keyId": "B", "status": "PLAYED"}]
        }));
        assert_eq!(events.len(), 2);
    }

    #[test]
    fn receipt_ranks_never_let_a_status_move_backwards() {
        assert!(receipt_rank("SERVER_ACK") < receipt_rank("DELIVERY_ACK"));
        assert!(receipt_rank("DELIVERY_ACK") < receipt_rank("READ"));
        assert!(receipt_rank("READ") < receipt_rank("PLAYED"));
        assert_eq!(receipt_rank("ERROR"), 0);
        assert_eq!(receipt_rank("nonsense"), 0);
        assert_eq!(receipt_rank("read"), receipt_rank("READ"));
        assert!(!ReceiptStatus::DeliveryAck.advances(Some(ReceiptStatus::Read)));
        assert!(ReceiptStatus::Read.advances(Some(ReceiptStatus::DeliveryAck)));
        assert!(ReceiptStatus::ServerAck.advances(None));
        assert!(ReceiptStatus::ServerAck < ReceiptStatus::Played);
    }

    #[test]
    fn phones_are_taken_from_jids_with_or_without_a_device_suffix() {
        assert_eq!(
            phone_from_jid("5511987654321:12@s.whatsapp.net").as_deref(),
            Some("5511987654321")
        );
        assert_eq!(phone_from_jid("5511987654321").as_deref(), Some("5511987654321"));
        assert_eq!(phone_from_jid("status@broadcast"), None);
    }

    #[test]
    fn a_brazilian_jid_without_the_ninth_digit_gives_the_canonical_phone() {
        assert_eq!(
            phone_from_jid("553188887777@s.whatsapp.net").as_deref(),
            Some("5531988887777")
        );
        assert_eq!(
            phone_from_jid("553133334444@s.whatsapp.net").as_deref(),
            Some("553133334444"),
            "a landline keeps 8 digits"
        );
        assert_eq!(
            phone_from_jid("552388887777@s.whatsapp.net").as_deref(),
            Some("5523988887777"),
            "even with an area code no longer taken (a contact stored before still matches)"
        );
        let events = parse(json!({
            "event": "messages.upsert", "instance": "loja-1",
            "data": {"key": {"remoteJid": "123456789012345@lid",
                             "remoteJidAlt": "553188887777@s.whatsapp.net",
                             "fromMe": false, "id": "X6"},
                     "message": {"conversation": "SAIR"}}
        }));
        assert!(matches!(
            events.as_slice(),
            [GatewayEvent::Inbound { phone, .. }] if phone == "5531988887777"
        ));
    }
}
