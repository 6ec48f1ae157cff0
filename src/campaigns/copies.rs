//! Copies and exports (issue 12): a campaign duplicated as a new draft, and its recipients
//! and send logs as CSV for spreadsheets, streamed in keyset-ordered chunks so a million
//! rows cost the same memory as a thousand.

use actix_web::web::Bytes;
use actix_web::{get, http::header, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::{stream, StreamExt};
use sea_orm::{DatabaseConnection, FromQueryResult};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::repo;
use super::routes::CampaignView;
use crate::api::extract::ApiQuery;
use crate::audit::{self, Event};
use crate::db::{find_owned, stmt};
use crate::entities::campaigns;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// What a copy's name gets (the name stays within the 200-character limit).
pub const COPY_SUFFIX: &str = " (cópia)";
/// Rows read per query while exporting.
const EXPORT_CHUNK: i64 = 5_000;
/// UTF-8's byte order mark: Excel reads the file as UTF-8 only with it.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// A new draft with the campaign's definition (messages, audience, schedule, pacing, number);
/// its name gets ` (cópia)`. Works from any status; nothing of the run is copied.
#[utoipa::path(operation_id = "duplicateCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 201, body = CampaignView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/campaigns/{id}/duplicate")]
pub async fn duplicate(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let copy = Uuid::new_v4();
    let now = state.clock.now();
    let keep = 200 - COPY_SUFFIX.chars().count();
    let name: String = c.name.chars().take(keep).collect::<String>() + COPY_SUFFIX;
    let txn = sea_orm::TransactionTrait::begin(&state.db).await?;
    repo::insert_copy(&txn, c.id, copy, &name, now).await?;
    let event = Event::new("campaign.duplicate", "campaign", copy).with(json!({"from": c.id}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    let created = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, copy, "campaign").await?;
    Ok(HttpResponse::Created().json(CampaignView::from(created)))
}

/// The field separator of an export: `comma` (default) or `semicolon` (Excel in
/// Portuguese, where the comma is the decimal mark).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Delimiter {
    #[default]
    Comma,
    Semicolon,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `comma` (default) or `semicolon`.
    #[serde(default)]
    #[param(inline)]
    pub delimiter: Delimiter,
}

/// One CSV record per row: quoted where needed (RFC 4180), `\r\n` line ends.
fn csv_line(fields: &[String], delimiter: Delimiter) -> String {
    let sep = match delimiter {
        Delimiter::Comma => ',',
        Delimiter::Semicolon => ';',
    };
    let mut line = String::new();
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            line.push(sep);
        }
        if f.contains([sep, '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&f.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(f);
        }
    }
    line.push_str("\r\n");
    line
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// One chunk of export rows: each row's keyset key (a positive `bigint`: a recipient's
/// position, a log's id) and its CSV fields.
type Chunk = Vec<(i64, Vec<String>)>;

/// A source of export rows read in keyset order: the next chunk after `after` (the last
/// row's key; 0 before the first), as CSV fields, with their keys.
trait ExportRows: Send + 'static {
    /// What the file holds, in its name (`campaign-<id>-<WHAT>.csv`).
    const WHAT: &'static str;
    fn header() -> &'static [&'static str];
    fn next_chunk(
        db: &DatabaseConnection,
        tenant_id: Uuid,
        campaign_id: Uuid,
        after: i64,
    ) -> impl std::future::Future<Output = Result<Chunk, sea_orm::DbErr>> + Send;
}

/// The caller's campaign `id` (404 for another tenant's) as a streamed CSV answer (UTF-8
/// with BOM) of every row of `R`.
async fn export<R: ExportRows>(
    state: &AppState,
    user: &AuthUser,
    id: Uuid,
    delimiter: Delimiter,
) -> AppResult<HttpResponse> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, id, "campaign").await?;
    Ok(csv_response::<R>(state.reads.clone(), user.tenant_id, c.id, delimiter))
}

/// A streamed CSV answer (UTF-8 with BOM) of every row of `R` for the campaign.
fn csv_response<R: ExportRows>(
    db: DatabaseConnection,
    tenant_id: Uuid,
    campaign_id: Uuid,
    delimiter: Delimiter,
) -> HttpResponse {
    let header = {
        let mut head = BOM.to_vec();
        let names: Vec<String> = R::header().iter().map(|h| (*h).to_owned()).collect();
        head.extend(csv_line(&names, delimiter).into_bytes());
        Bytes::from(head)
    };
    let body =
        stream::once(async move { Ok::<_, AppError>(header) }).chain(stream::try_unfold(Some(0), move |after| {
            let db = db.clone();
            async move {
                let Some(after) = after else {
                    return Ok(None);
                };
                let rows = R::next_chunk(&db, tenant_id, campaign_id, after).await?;
                let last = rows.last().map(|(k, _)| *k);
                if rows.is_empty() {
                    return Ok(None);
                }
                let mut chunk = String::with_capacity(rows.len() * 128);
                for (_, fields) in &rows {
                    chunk.push_str(&csv_line(fields, delimiter));
                }
                let next = last.filter(|_| rows.len() as i64 == EXPORT_CHUNK);
                Ok(Some((Bytes::from(chunk), next)))
            }
        }));
    let file = format!("campaign-{campaign_id}-{}.csv", R::WHAT);
    HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{file}\"")))
        .streaming(body)
}

#[derive(FromQueryResult)]
struct RecipientRow {
    position: i64,
    phone: String,
    name: Option<String>,
    status: String,
    reason: Option<String>,
    variant: Option<i16>,
    number: String,
    queued_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    read_at: Option<DateTime<Utc>>,
    replied_at: Option<DateTime<Utc>>,
}

struct Recipients;

impl ExportRows for Recipients {
    const WHAT: &'static str = "recipients";

    fn header() -> &'static [&'static str] {
        &[
            "phone",
            "name",
            "status",
            "reason",
            "variant",
            "number",
            "queued_at",
            "sent_at",
            "delivered_at",
            "read_at",
            "replied_at",
        ]
    }

    async fn next_chunk(
        db: &DatabaseConnection,
        tenant_id: Uuid,
        campaign_id: Uuid,
        after: i64,
    ) -> Result<Chunk, sea_orm::DbErr> {
        let rows = RecipientRow::find_by_statement(stmt(
            "SELECT r.position::bigint AS position, r.phone, r.name, r.status, r.reason, r.variant, i.name AS number, \
                    r.queued_at, r.sent_at, r.delivered_at, r.read_at, r.replied_at \
             FROM recipients r JOIN campaigns c ON c.id = r.campaign_id \
               JOIN instances i ON i.id = COALESCE(r.instance_id, c.instance_id) \
             WHERE r.tenant_id = $1 AND r.campaign_id = $2 AND r.position > $3 ORDER BY r.position LIMIT $4",
            vec![tenant_id.into(), campaign_id.into(), after.into(), EXPORT_CHUNK.into()],
        ))
        .all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let fields = vec![
                    r.phone,
                    r.name.unwrap_or_default(),
                    r.status,
                    r.reason.unwrap_or_default(),
                    r.variant.map(|v| v.to_string()).unwrap_or_default(),
                    r.number,
                    time(r.queued_at),
                    time(r.sent_at),
                    time(r.delivered_at),
                    time(r.read_at),
                    time(r.replied_at),
                ];
                (r.position, fields)
            })
            .collect())
    }
}

#[derive(FromQueryResult)]
struct LogRow {
    id: i64,
    created_at: DateTime<Utc>,
    phone: Option<String>,
    recipient_id: Uuid,
    variant: Option<i16>,
    attempts: i32,
    gateway_status: Option<i32>,
    outcome: String,
    reason: Option<String>,
    duration_ms: i32,
    rendered: String,
}

struct Logs;

impl ExportRows for Logs {
    const WHAT: &'static str = "logs";

    fn header() -> &'static [&'static str] {
        &[
            "created_at",
            "phone",
            "recipient_id",
            "variant",
            "attempts",
            "gateway_status",
            "outcome",
            "reason",
            "duration_ms",
            "text",
        ]
    }

    async fn next_chunk(
        db: &DatabaseConnection,
        tenant_id: Uuid,
        campaign_id: Uuid,
        after: i64,
    ) -> Result<Chunk, sea_orm::DbErr> {
        let rows = LogRow::find_by_statement(stmt(
            "SELECT l.id, l.created_at, r.phone, l.recipient_id, l.variant, l.attempts, l.gateway_status, l.outcome, \
                    l.reason, l.duration_ms, l.rendered \
             FROM send_logs l LEFT JOIN recipients r ON r.id = l.recipient_id \
             WHERE l.tenant_id = $1 AND l.campaign_id = $2 AND l.id > $3 ORDER BY l.id LIMIT $4",
            vec![tenant_id.into(), campaign_id.into(), after.into(), EXPORT_CHUNK.into()],
        ))
        .all(db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|l| {
                let fields = vec![
                    time(Some(l.created_at)),
                    l.phone.unwrap_or_default(),
                    l.recipient_id.to_string(),
                    l.variant.map(|v| v.to_string()).unwrap_or_default(),
                    l.attempts.to_string(),
                    l.gateway_status.map(|s| s.to_string()).unwrap_or_default(),
                    l.outcome,
                    l.reason.unwrap_or_default(),
                    l.duration_ms.to_string(),
                    l.rendered,
                ];
                (l.id, fields)
            })
            .collect())
    }
}

/// The campaign's recipients in send order as CSV (UTF-8 with BOM), streamed: phone, name,
/// status, reason, variant (0-based), number (the instance's name), queued_at, sent_at,
/// delivered_at, read_at, replied_at (RFC 3339, UTC).
#[utoipa::path(operation_id = "exportCampaignRecipients", tag = "campaigns", params(("id" = Uuid, Path), ExportQuery), responses(
    (status = 200, content_type = "text/csv", body = String),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/recipients.csv")]
pub async fn recipients_csv(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: ApiQuery<ExportQuery>,
) -> AppResult<HttpResponse> {
    export::<Recipients>(&state, &user, *id, query.0.delimiter).await
}

/// Every send attempt of the campaign as CSV (UTF-8 with BOM), oldest first, streamed:
/// created_at, phone, recipient_id, variant, attempts, gateway_status, outcome, reason,
/// duration_ms, text.
#[utoipa::path(operation_id = "exportCampaignLogs", tag = "campaigns", params(("id" = Uuid, Path), ExportQuery), responses(
    (status = 200, content_type = "text/csv", body = String),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/logs.csv")]
pub async fn logs_csv(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: ApiQuery<ExportQuery>,
) -> AppResult<HttpResponse> {
    export::<Logs>(&state, &user, *id, query.0.delimiter).await
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(duplicate).service(recipients_csv).service(logs_csv);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_the_separator_quotes_or_line_breaks_are_quoted() {
        let f = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(csv_line(&f(&["a", "b c"]), Delimiter::Comma), "a,b c\r\n");
        assert_eq!(csv_line(&f(&["a,b", "x"]), Delimiter::Comma), "\"a,b\",x\r\n");
        assert_eq!(csv_line(&f(&["a,b", "x;y"]), Delimiter::Semicolon), "a,b;\"x;y\"\r\n");
        assert_eq!(
            csv_line(&f(&["diz \"oi\"\nlinha"]), Delimiter::Comma),
            "\"diz \"\"oi\"\"\nlinha\"\r\n"
        );
    }
}
