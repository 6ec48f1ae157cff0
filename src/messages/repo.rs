//! Writing new one-off messages and reading them (tenant first). Status changes are
//! [`super::status`]'s.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, FromQueryResult};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::{MessageStatus, MessageView};
use crate::api::cursor::{CursorPage, Keyed, Keyset, Total, COUNT_CAP};
use crate::campaigns::domain::Media;
use crate::contacts::phone::Phone;
use crate::db::{bounded_count, stmt};

/// A validated message ready to be written.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: Uuid,
    pub instance_id: Uuid,
    pub phone: Phone,
    pub text: String,
    pub template_id: Option<Uuid>,
    pub variables: Map<String, Value>,
    pub media: Option<Media>,
    pub transactional: bool,
    pub send_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// Writes `messages` as `pending`, due at their `send_at` (`now` when absent or past), in one
/// statement.
pub async fn insert(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    messages: &[NewMessage],
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    if messages.is_empty() {
        return Ok(());
    }
    let rows: Vec<Value> = messages
        .iter()
        .map(|m| {
            json!({"id": m.id, "instance_id": m.instance_id, "phone": m.phone.as_str(), "text": m.text,
                "template_id": m.template_id, "variables": m.variables, "media": m.media,
                "transactional": m.transactional, "send_at": m.send_at, "due_at": m.send_at.map_or(now, |at| at.max(now)),
                "expires_at": m.expires_at})
        })
        .collect();
    db.execute(stmt(
        "INSERT INTO messages (id, tenant_id, instance_id, phone, text, template_id, variables, media, transactional, \
           status, send_at, due_at, expires_at, created_at) \
         SELECT x.id, $2, x.instance_id, x.phone, x.text, x.template_id, COALESCE(x.variables, '{}'::jsonb), x.media, \
           x.transactional, 'pending', x.send_at, x.due_at, x.expires_at, $3 \
         FROM jsonb_to_recordset($1::jsonb) AS x(id uuid, instance_id uuid, phone text, text text, template_id uuid, \
           variables jsonb, media jsonb, transactional boolean, send_at timestamptz, due_at timestamptz, \
           expires_at timestamptz)",
        vec![Value::Array(rows).into(), tenant_id.into(), now.into()],
    ))
    .await?;
    Ok(())
}

const VIEW_COLUMNS: &str =
    "m.id, m.instance_id, m.phone, m.text, m.template_id, m.variables, m.media, m.transactional, \
  m.status, m.reason, m.outcome_unknown, m.failed_after_send, m.send_at, m.expires_at, m.planned_at, m.sent_at, m.delivered_at, m.read_at, m.replied_at, \
  m.message_id, m.rendered, m.attempts, m.created_at";

pub async fn get(db: &impl ConnectionTrait, tenant_id: Uuid, id: Uuid) -> Result<Option<MessageView>, sea_orm::DbErr> {
    MessageView::find_by_statement(stmt(
        format!("SELECT {VIEW_COLUMNS} FROM messages m WHERE m.tenant_id = $1 AND m.id = $2"),
        vec![tenant_id.into(), id.into()],
    ))
    .one(db)
    .await
}

/// The sort key of `GET /messages` (newest first: creation instant, then id, both
/// descending): what its cursors encode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageKey {
    pub created_at: DateTime<Utc>,
    pub id: Uuid,
}

impl Keyed for MessageView {
    type Key = MessageKey;

    fn key(&self) -> MessageKey {
        MessageKey {
            created_at: self.created_at,
            id: self.id,
        }
    }
}

/// `GET /messages` filters.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    pub status: Option<MessageStatus>,
    pub phone: Option<Phone>,
}

/// A page of the tenant's messages, newest first, after the cursor or at the page's offset;
/// `total` counted up to [`COUNT_CAP`].
pub async fn list(
    db: &impl ConnectionTrait,
    tenant_id: Uuid,
    filter: &MessageFilter,
    page: &Keyset<MessageKey>,
) -> Result<CursorPage<MessageView>, sea_orm::DbErr> {
    let mut clause = "m.tenant_id = $1".to_owned();
    let mut values: Vec<sea_orm::Value> = vec![tenant_id.into()];
    if let Some(status) = filter.status {
        values.push(sea_orm::ActiveEnum::to_value(&status).into());
        clause += &format!(" AND m.status = ${}", values.len());
    }
    if let Some(phone) = &filter.phone {
        values.push(phone.as_str().into());
        clause += &format!(" AND m.phone = ${}", values.len());
    }
    let total = Total::bounded(
        bounded_count(
            db,
            &format!("FROM messages m WHERE {clause}"),
            values.clone(),
            COUNT_CAP,
        )
        .await?,
        COUNT_CAP,
    );
    if let Some(after) = &page.after {
        values.push(after.created_at.into());
        values.push(after.id.into());
        clause += &format!(" AND (m.created_at, m.id) < (${}, ${})", values.len() - 1, values.len());
    }
    values.push(page.limit().into());
    values.push(page.offset().into());
    let n = values.len();
    let items = MessageView::find_by_statement(stmt(
        format!(
            "SELECT {VIEW_COLUMNS} FROM messages m WHERE {clause} ORDER BY m.created_at DESC, m.id DESC LIMIT ${} OFFSET ${n}",
            n - 1
        ),
        values,
    ))
    .all(db)
    .await?;
    Ok(page.page_of(items, total))
}
