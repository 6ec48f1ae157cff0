//! Accepting one-off messages: each item checked (shape, phone, text or template,
//! variables, instance, role for `transactional`, opt-out), the accepted ones written in
//! one transaction with the `Idempotency-Key`'s answer, then planned at once when due.

use chrono::{DateTime, Datelike, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{HashMap, HashSet};
use utoipa::ToSchema;
use uuid::Uuid;

use super::idempotency;
use super::planning::Planner;
use super::repo::{self, NewMessage};
use super::{Accepted, MessageStatus};
use crate::api::extract::from_value;
use crate::campaigns::domain::{parse_message, Media, Message};
use crate::contacts::domain::validate_fields;
use crate::contacts::phone::Phone;
use crate::db::stmt;
use crate::error::{AppError, AppResult, FieldError};
use crate::state::AppState;
use crate::templating::unknown_variables;
use crate::tenancy::auth::AuthUser;
use crate::tenancy::domain::Role;

/// Most messages in one `POST /messages/bulk`.
pub const MAX_BULK: usize = 1_000;
/// How far ahead `send_at` may be, in days.
pub const MAX_AHEAD_DAYS: i64 = 365;

/// A one-off message as clients send it (`POST /messages`, each item of `/messages/bulk`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"instance_id": "0b7c…", "phone": "(11) 98765-4321", "text": "Seu código é {{codigo}}", "variables": {"codigo": "123456"}}))]
pub struct MessageRequest {
    /// The tenant's instance (WhatsApp number) that sends it.
    pub instance_id: Uuid,
    /// Any common notation; normalised to digits with country code.
    pub phone: String,
    /// Up to 4,096 characters; a template like a campaign's (`{{nome}}`, `{a|b}`), rendered
    /// when it leaves. Give `text` or `template_id` (or only `media`).
    #[schema(max_length = 4096)]
    pub text: Option<String>,
    /// One of the tenant's templates: its text (and media, unless `media` is given).
    pub template_id: Option<Uuid>,
    /// Values for the text's variables, over the contact's own fields when the phone is a
    /// contact's: `{"codigo": "123456"}` (flat; strings, numbers, booleans or null).
    #[serde(default)]
    #[schema(value_type = Option<crate::contacts::domain::ContactFields>)]
    pub variables: Option<Map<String, Value>>,
    pub media: Option<Media>,
    /// When to send it (RFC 3339), at most 365 days ahead; absent or past: at once.
    pub send_at: Option<DateTime<Utc>>,
    /// When it is no use any more (RFC 3339, after `send_at` and now): still not sent then
    /// (its number disconnected, its day used up, the gateway down), it ends `failed` with
    /// the reason `expired` instead of leaving late. Absent: it waits as long as it takes.
    pub expires_at: Option<DateTime<Utc>>,
    /// Send even to a contact who opted out (admins only: 403 otherwise). For messages the
    /// contact asked for, such as codes and receipts.
    #[serde(default)]
    pub transactional: bool,
}

/// Why one message was refused: its HTTP status (403, 409, 422) and what a problem would say.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ItemError {
    pub status: u16,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl ItemError {
    fn invalid(errors: Vec<FieldError>) -> Self {
        Self {
            status: 422,
            detail: "invalid input".into(),
            errors,
        }
    }

    /// As the single route answers it.
    pub fn into_app_error(self) -> AppError {
        match self.status {
            403 => AppError::Forbidden(self.detail),
            409 => AppError::conflict(self.detail),
            _ => AppError::Validation(self.errors),
        }
    }
}

/// One item's answer in a bulk: accepted (`id`, `status`) or refused (`error`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkItem {
    /// 0-based position in `messages`.
    pub index: usize,
    pub id: Option<Uuid>,
    pub status: Option<MessageStatus>,
    pub error: Option<ItemError>,
}

/// `POST /messages/bulk`'s answer: one item per message, in order.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct BulkResult {
    pub accepted: usize,
    pub rejected: usize,
    pub items: Vec<BulkItem>,
}

/// Which route a request came through: how its answer is shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    One,
    Bulk,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Self::One => "/messages",
            Self::Bulk => "/messages/bulk",
        }
    }
}

/// Accepts `items` (raw JSON objects, checked here one by one) for the caller's tenant and
/// answers `(status, body)`: 202 `{id, status}` for [`Route::One`] (its error as the
/// problem), 202 [`BulkResult`] for [`Route::Bulk`]. With an `Idempotency-Key`, a repeat
/// within 24 h answers the first answer and writes nothing.
pub async fn submit(
    state: &AppState,
    user: &AuthUser,
    route: Route,
    body: &Value,
    items: Vec<Value>,
    key: Option<String>,
) -> AppResult<(u16, Value)> {
    let now = state.clock.now();
    let checked = check(state, user, items, now).await?;
    let txn = state.db.begin().await?;
    if let Some(key) = &key {
        let hash = idempotency::fingerprint(route.path(), body);
        if let Some(first) = idempotency::claim(&txn, user.tenant_id, key, &hash, now).await? {
            return Ok(first);
        }
    }
    let accepted: Vec<NewMessage> = checked.iter().filter_map(|c| c.as_ref().ok().cloned()).collect();
    let answer = match route {
        Route::One => match checked.into_iter().next() {
            Some(Ok(m)) => json!(Accepted {
                id: m.id,
                status: MessageStatus::Pending
            }),
            Some(Err(e)) => return Err(e.into_app_error()),
            None => return Err(AppError::field("body", "no message")),
        },
        Route::Bulk => {
            let items: Vec<BulkItem> = checked
                .into_iter()
                .enumerate()
                .map(|(index, c)| match c {
                    Ok(m) => BulkItem {
                        index,
                        id: Some(m.id),
                        status: Some(MessageStatus::Pending),
                        error: None,
                    },
                    Err(mut e) => {
                        let at = format!("messages[{index}]");
                        e.errors = e.errors.into_iter().map(|f| f.under(&at)).collect();
                        BulkItem {
                            index,
                            id: None,
                            status: None,
                            error: Some(e),
                        }
                    }
                })
                .collect();
            json!(BulkResult {
                accepted: accepted.len(),
                rejected: items.len() - accepted.len(),
                items,
            })
        }
    };
    repo::insert(&txn, user.tenant_id, &accepted, now).await?;
    if let Some(key) = &key {
        idempotency::keep(&txn, user.tenant_id, key, 202, &answer).await?;
    }
    txn.commit().await?;
    // Due now: planned at once rather than at the next tick (the beat plans it otherwise).
    let ids: Vec<Uuid> = accepted
        .iter()
        .filter(|m| m.send_at.is_none_or(|at| at <= now))
        .map(|m| m.id)
        .collect();
    if !ids.is_empty() {
        let planner = Planner {
            db: &state.db,
            redis: &state.redis,
            keys: &state.keys,
            interval_ms: state.settings.dispatch.message_interval_ms,
        };
        let horizon = now + chrono::Duration::seconds(state.settings.beat.tick_seconds as i64);
        if let Err(e) = planner.plan(now, horizon, Some(&ids)).await {
            tracing::warn!(error = %e, "planning new messages failed; the next tick plans them");
        }
    }
    Ok((202, answer))
}

/// What the checks look up once per request.
struct Lookups {
    instances: HashSet<Uuid>,
    templates: HashMap<Uuid, Message>,
    /// By phone: whether the contact opted out, and its field keys.
    contacts: HashMap<String, (bool, Vec<String>)>,
}

/// Each item checked in order; refused ones carry their error.
async fn check(
    state: &AppState,
    user: &AuthUser,
    items: Vec<Value>,
    now: DateTime<Utc>,
) -> AppResult<Vec<Result<NewMessage, ItemError>>> {
    let country = crate::contacts::repo::default_country(&state.db, user.tenant_id).await?;
    let parsed: Vec<Result<(MessageRequest, Phone), ItemError>> = items
        .into_iter()
        .map(|item| {
            let req: MessageRequest = from_value(item).map_err(|e| ItemError::invalid(vec![e]))?;
            let phone = Phone::parse(&req.phone, &country)
                .map_err(|e| ItemError::invalid(vec![FieldError::new("phone", e)]))?;
            Ok((req, phone))
        })
        .collect();
    let ok = || parsed.iter().filter_map(|p| p.as_ref().ok());
    let lookups = lookups(
        &state.db,
        user.tenant_id,
        ok().map(|(r, _)| r.instance_id).collect(),
        ok().filter_map(|(r, _)| r.template_id).collect(),
        ok().map(|(_, p)| p.as_str().to_owned()).collect(),
    )
    .await?;
    Ok(parsed
        .into_iter()
        .map(|p| p.and_then(|(req, phone)| check_one(user, req, phone, &lookups, now)))
        .collect())
}

fn check_one(
    user: &AuthUser,
    req: MessageRequest,
    phone: Phone,
    found: &Lookups,
    now: DateTime<Utc>,
) -> Result<NewMessage, ItemError> {
    let mut errors = vec![];
    if req
        .send_at
        .is_some_and(|at| at > now + chrono::Duration::days(MAX_AHEAD_DAYS) || at.year() < 2000)
    {
        errors.push(FieldError::new(
            "send_at",
            format!("must be within the next {MAX_AHEAD_DAYS} days (a past instant sends at once)"),
        ));
    }
    if let Some(expires) = req.expires_at {
        if expires <= req.send_at.unwrap_or(now).max(now) {
            errors.push(FieldError::new("expires_at", "must be after send_at and after now"));
        }
    }
    if !found.instances.contains(&req.instance_id) {
        errors.push(FieldError::new("instance_id", "no such instance"));
    }
    let message = match (req.template_id, req.text) {
        (Some(_), Some(_)) => {
            errors.push(FieldError::new("template_id", "give either template_id or text"));
            None
        }
        (Some(id), None) => match found.templates.get(&id) {
            Some(t) => Some(Message {
                text: t.text.clone(),
                media: req.media.or_else(|| t.media.clone()),
            }),
            None => {
                errors.push(FieldError::new("template_id", "no such template"));
                None
            }
        },
        (None, text) => Some(Message {
            text: text.unwrap_or_default(),
            media: req.media,
        }),
    };
    let variables = req.variables.unwrap_or_default();
    if let Err(mut e) = validate_fields(&variables) {
        e.field = e.field.replacen("fields", "variables", 1);
        errors.push(e);
    }
    let contact = found.contacts.get(phone.as_str());
    if let Some(m) = &message {
        match parse_message(m) {
            Ok(template) => {
                let known = |name: &str| {
                    variables.keys().any(|k| k.eq_ignore_ascii_case(name))
                        || contact.is_some_and(|(_, keys)| keys.iter().any(|k| k.eq_ignore_ascii_case(name)))
                };
                for var in unknown_variables(&template, &known) {
                    errors.push(FieldError::new(
                        if req.template_id.is_some() { "template_id" } else { "text" },
                        format!("variable {{{{{var}}}}} has no value: give it in variables (or a fallback like {{{{{var}|…}}}})"),
                    ));
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(ItemError::invalid(errors));
    }
    if req.transactional && user.role != Role::Admin {
        return Err(ItemError {
            status: 403,
            detail: "only admins may send transactional messages".into(),
            errors: vec![FieldError::new("transactional", "admins only")],
        });
    }
    if contact.is_some_and(|(opted_out, _)| *opted_out) && !req.transactional {
        return Err(ItemError {
            status: 409,
            detail: "the contact opted out; an admin may send a transactional message".into(),
            errors: vec![FieldError::new("phone", "opted out")],
        });
    }
    let message = message.unwrap_or_else(|| Message {
        text: String::new(),
        media: None,
    });
    Ok(NewMessage {
        id: Uuid::new_v4(),
        instance_id: req.instance_id,
        phone,
        text: message.text,
        template_id: req.template_id,
        variables,
        media: message.media,
        transactional: req.transactional,
        send_at: req.send_at,
        expires_at: req.expires_at,
    })
}

async fn lookups(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    instances: Vec<Uuid>,
    templates: Vec<Uuid>,
    phones: Vec<String>,
) -> Result<Lookups, sea_orm::DbErr> {
    #[derive(FromQueryResult)]
    struct Id {
        id: Uuid,
    }
    #[derive(FromQueryResult)]
    struct Template {
        id: Uuid,
        text: String,
        media: Option<Value>,
    }
    #[derive(FromQueryResult)]
    struct Contact {
        phone: String,
        opted_out: bool,
        keys: Value,
    }
    let ids = |v: &[Uuid]| json!(v);
    let found_instances = Id::find_by_statement(stmt(
        "SELECT id FROM instances WHERE tenant_id = $1 \
         AND id IN (SELECT x::uuid FROM jsonb_array_elements_text($2::jsonb) AS x)",
        vec![tenant_id.into(), ids(&instances).into()],
    ))
    .all(db)
    .await?;
    let found_templates = Template::find_by_statement(stmt(
        "SELECT id, text, media FROM templates WHERE tenant_id = $1 \
         AND id IN (SELECT x::uuid FROM jsonb_array_elements_text($2::jsonb) AS x)",
        vec![tenant_id.into(), ids(&templates).into()],
    ))
    .all(db)
    .await?;
    let found_contacts = Contact::find_by_statement(stmt(
        "SELECT phone, opted_out_at IS NOT NULL AS opted_out, \
           COALESCE((SELECT jsonb_agg(k) FROM jsonb_object_keys(fields) AS k), '[]'::jsonb) AS keys \
         FROM contacts WHERE tenant_id = $1 AND phone IN (SELECT jsonb_array_elements_text($2::jsonb))",
        vec![tenant_id.into(), json!(phones).into()],
    ))
    .all(db)
    .await?;
    Ok(Lookups {
        instances: found_instances.into_iter().map(|i| i.id).collect(),
        templates: found_templates
            .into_iter()
            .map(|t| {
                let media = t.media.and_then(|m| serde_json::from_value(m).ok());
                (t.id, Message { text: t.text, media })
            })
            .collect(),
        contacts: found_contacts
            .into_iter()
            .map(|c| {
                let keys = serde_json::from_value(c.keys).unwrap_or_default();
                (c.phone, (c.opted_out, keys))
            })
            .collect(),
    })
}
