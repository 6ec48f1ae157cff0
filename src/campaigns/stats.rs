//! What users see of a running campaign: stats, recipients, send logs; and the tenant's
//! dashboard and queue.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::counts;
use super::domain::CampaignStatus;
use super::preparation::Progress;
use super::reads;
pub use super::reads::{RecipientKey, RecipientView, SendLogKey, SendLogView};
use crate::api::cursor::{CursorPage, CursorParam, Keyset, Total, COUNT_CAP};
use crate::api::extract::{ApiQuery, Pagination};
use crate::calendar::{self, Schedule};
use crate::db::find_owned;
use crate::dispatch::{stream, worker};
use crate::entities::campaigns;
use crate::error::{AppError, AppResult};
use crate::recipients::RecipientStatus;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub pending: u64,
    pub queued: u64,
    pub sending: u64,
    pub sent: u64,
    pub failed: u64,
    pub skipped: u64,
    pub cancelled: u64,
}

/// One message variant's results (A/B): counts and rates over its sends. Rates are 0–1,
/// `null` before the variant was sent; `failure_rate` is over sent + failed.
#[derive(Debug, Serialize, ToSchema)]
pub struct VariantResult {
    /// 0-based, as in the campaign's `messages`.
    pub index: u8,
    pub sent: u64,
    pub failed: u64,
    pub delivered: u64,
    pub read: u64,
    pub replied: u64,
    pub delivery_rate: Option<f64>,
    pub read_rate: Option<f64>,
    pub reply_rate: Option<f64>,
    pub failure_rate: Option<f64>,
}

impl VariantResult {
    fn new(index: u8, c: counts::VariantCounts) -> Self {
        let n = |v: i64| v.max(0) as u64;
        let (sent, failed) = (n(c.sent), n(c.failed));
        let over = |part: u64, whole: u64| (whole > 0).then(|| part as f64 / whole as f64);
        Self {
            index,
            sent,
            failed,
            delivered: n(c.delivered),
            read: n(c.read),
            replied: n(c.replied),
            delivery_rate: over(n(c.delivered), sent),
            read_rate: over(n(c.read), sent),
            reply_rate: over(n(c.replied), sent),
            failure_rate: over(failed, sent + failed),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignStats {
    pub status: CampaignStatus,
    pub counts: StatusCounts,
    pub total: u64,
    pub delivered: u64,
    pub read: u64,
    pub replied: u64,
    /// Sends the gateway accepted and then reported `ERROR` for: counted in `failed`
    /// (each such recipient is `failed` with `failed_after_send: true` and the reason).
    pub failed_after_send: u64,
    /// `replied / sent` (0–1; a reply counts for the latest send to that phone within 7
    /// days); `null` before anything was sent.
    pub reply_rate: Option<f64>,
    pub sent_last_minute: u64,
    /// The next planned send (UTC): the earliest the beat has queued, or with none queued
    /// the campaign's next instant, planned at the beat's next tick at the earliest; when the
    /// window is closed then, its next opening. `null` unless active or scheduled with
    /// recipients left.
    pub next_send_at: Option<DateTime<Utc>>,
    /// When the last recipient is expected to be sent (UTC): the mean planned gap times the
    /// recipients left (a pool's number: its share of them), counted over open time from the
    /// next send; `completed_at` once done.
    pub estimated_completion_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
    /// Results per message variant, one entry per variant of `messages`, in order.
    pub variants: Vec<VariantResult>,
    /// The audience resolution after `start` (`status: preparing` while it runs); `null`
    /// for a draft.
    pub preparation: Option<Progress>,
}

/// Counts by status, receipts, recent pace, the next send and the estimated end.
#[utoipa::path(operation_id = "getCampaignStats", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CampaignStats),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/stats")]
pub async fn stats(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let now = state.clock.now();
    let counts::Summary {
        counts: t,
        variants: per_variant,
        failed_after_send,
        next_queued_at,
    } = counts::summary(&state.reads, c.id, now - Duration::minutes(1)).await?;
    let messages = c.messages.0.len().clamp(1, 5);
    let variants = (0..messages)
        .map(|i| {
            let found = per_variant.iter().find(|v| v.variant as usize == i).copied();
            VariantResult::new(i as u8, found.unwrap_or_default())
        })
        .collect();
    let n = |v: i64| v.max(0) as u64;
    let counts = StatusCounts {
        pending: n(t.pending),
        queued: n(t.queued),
        sending: n(t.sending),
        sent: n(t.sent),
        failed: n(t.failed),
        skipped: n(t.skipped),
        cancelled: n(t.cancelled),
    };
    let status = c.status;
    let remaining = counts.pending + counts.queued + counts.sending;
    let (next_send_at, estimated_completion_at) =
        if matches!(status, CampaignStatus::Active | CampaignStatus::Scheduled) {
            let (spec, pacing) = (c.schedule.clone(), c.pacing);
            match Schedule::parse(spec, &state.calendars) {
                Ok(schedule) => {
                    let dates = state.holidays.dates(&state.db, user.tenant_id).await?;
                    let lookup = schedule.holiday_lookup(&state.calendars, &dates);
                    // The first send the beat has queued; with none, the campaign's next
                    // instant, which the beat plans at its next tick at the earliest.
                    let from = match next_queued_at {
                        Some(at) => at.max(now),
                        None => c.next_send_at.unwrap_or(now).max(state.settings.beat.next_tick_at(now)),
                    };
                    let next = calendar::next_open(&schedule, &lookup, from);
                    // A pool's numbers each keep the pacing (PRODUCT §4): n numbers send n
                    // times as fast, so each has its share of the recipients left.
                    let numbers = c.instance_ids.len().max(1) as u64;
                    let per_number = remaining.div_ceil(numbers);
                    let end =
                        next.and_then(|n| calendar::estimate_completion(&schedule, &lookup, &pacing, per_number, n));
                    (next.filter(|_| remaining > 0), end.filter(|_| remaining > 0))
                }
                Err(_) => (None, None),
            }
        } else {
            (None, c.completed_at)
        };
    let resolved = match c.started_at {
        Some(_) => super::preparation::resolved(&state.db, &c).await?,
        None => 0,
    };
    Ok(HttpResponse::Ok().json(CampaignStats {
        status,
        total: counts.pending
            + counts.queued
            + counts.sending
            + counts.sent
            + counts.failed
            + counts.skipped
            + counts.cancelled,
        counts,
        delivered: n(t.delivered),
        read: n(t.read),
        replied: n(t.replied),
        failed_after_send: n(failed_after_send),
        variants,
        reply_rate: (t.sent > 0).then(|| n(t.replied) as f64 / n(t.sent) as f64),
        sent_last_minute: n(t.sent_since),
        next_send_at,
        estimated_completion_at,
        paused_reason: c.paused_reason,
        preparation: c.started_at.map(|_| Progress {
            resolved: resolved.max(0) as u64,
            total: c.audience_total.map(|t| t.max(0) as u64),
            ready_at: c.audience_ready_at,
        }),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecipientFilter {
    /// pending, queued, sending, sent, failed, skipped or cancelled.
    #[param(value_type = Option<RecipientStatus>)]
    pub status: Option<String>,
}

/// The campaign's recipients in send order, optionally by status; by page or after a
/// cursor. `total` is exact (the kept per-status counts).
#[utoipa::path(operation_id = "listCampaignRecipients", tag = "campaigns", params(("id" = Uuid, Path), RecipientFilter, Pagination, CursorParam), responses(
    (status = 200, body = CursorPage<RecipientView>),
    (status = 404, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/recipients")]
pub async fn recipients(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    filter: ApiQuery<RecipientFilter>,
    page: Keyset<RecipientKey>,
) -> AppResult<HttpResponse> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let status = match filter.0.status.as_deref() {
        None => None,
        Some(s) => Some(RecipientStatus::parse(s).ok_or_else(|| {
            let all: Vec<&str> = RecipientStatus::ALL.iter().map(|v| v.as_str()).collect();
            AppError::field("status", format!("must be one of {}", all.join(", ")))
        })?),
    };
    let counts = counts::by_status(&state.reads, c.id).await?;
    let total = status.map_or_else(|| counts.total(), |s| counts.in_status(s));
    let items = reads::recipients_page(&state.reads, user.tenant_id, c.id, status, &page).await?;
    Ok(HttpResponse::Ok().json(page.page_of(items, Total::Exact(total.max(0) as u64))))
}

/// Every send attempt of the campaign, newest first; by page or after a cursor. `total`
/// is counted up to 10,000 (`total_is_estimate`).
#[utoipa::path(operation_id = "listCampaignLogs", tag = "campaigns", params(("id" = Uuid, Path), Pagination, CursorParam), responses(
    (status = 200, body = CursorPage<SendLogView>),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/logs")]
pub async fn logs(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    page: Keyset<SendLogKey>,
) -> AppResult<HttpResponse> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let (items, counted) = reads::logs_page(&state.reads, user.tenant_id, c.id, &page).await?;
    Ok(HttpResponse::Ok().json(page.page_of(items, Total::bounded(counted, COUNT_CAP))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DashboardStats {
    /// Campaigns by status (`{"active": 2, "draft": 1}`; statuses with none are absent).
    pub campaigns: HashMap<String, u64>,
    /// Sends since the start of today (UTC), by outcome: campaign send attempts and one-off
    /// messages.
    pub messages_today: HashMap<String, u64>,
    /// Messages in the last 7 days, by outcome.
    pub messages_7_days: HashMap<String, u64>,
    pub instances: Vec<InstanceState>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceState {
    pub id: Uuid,
    pub name: String,
    /// open, connecting, close, or unknown when the gateway did not answer.
    #[schema(schema_with = probed_state_schema)]
    pub state: String,
}

/// `InstanceState::state`: a connection state or `unknown`.
fn probed_state_schema() -> utoipa::openapi::schema::Object {
    crate::api::schema::string_enum(&["open", "connecting", "close", "unknown"])
}

/// The tenant at a glance: campaigns, recent messages and instance connections.
#[utoipa::path(operation_id = "getDashboardStats", tag = "dashboard", responses((status = 200, body = DashboardStats)), security(("bearer" = [])))]
#[get("/dashboard/stats")]
pub async fn dashboard(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    let now = state.clock.now();
    let today = now.date_naive().and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let campaigns = reads::campaigns_by_status(&state.reads, user.tenant_id).await?;
    let messages_today = reads::outcomes_since(&state.reads, user.tenant_id, today).await?;
    let messages_7_days = reads::outcomes_since(&state.reads, user.tenant_id, now - Duration::days(7)).await?;
    let instances = crate::db::scoped::<crate::entities::instances::Entity>(user.tenant_id)
        .all(&state.reads)
        .await?;
    let states = futures_util::future::join_all(instances.iter().map(|i| async {
        let limit = std::time::Duration::from_secs(2);
        // The probe stores the state it learns: a write, on the primary.
        match crate::instances::connectivity::probe(&state.db, &state.gateway, &state.cipher, i, limit, now).await {
            Ok(s) => s.as_str().to_owned(),
            Err(_) => "unknown".to_owned(),
        }
    }))
    .await;
    let instances = instances
        .into_iter()
        .zip(states)
        .map(|(i, state)| InstanceState {
            id: i.id,
            name: i.name,
            state,
        })
        .collect();
    Ok(HttpResponse::Ok().json(DashboardStats {
        campaigns,
        messages_today,
        messages_7_days,
        instances,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    /// The tenant's recipients waiting in the queue.
    pub queued: u64,
    /// Age in seconds of the tenant's oldest queued job.
    pub oldest_queued_seconds: Option<f64>,
    /// The tenant's sends in flight.
    pub sending: u64,
    /// Entries in the shared dispatch stream: due jobs not yet acknowledged (all tenants).
    pub stream_length: u64,
    /// Jobs waiting for their planned instant in the due-time queue (all tenants).
    pub due_length: u64,
    /// Worker processes seen in the last 15 seconds.
    pub live_workers: u64,
    /// Whether a beat holds the leader lease.
    pub beat_leader: bool,
}

/// Queue depth, oldest queued age, sends in flight, live workers and beats.
#[utoipa::path(operation_id = "getQueue", tag = "dashboard", responses((status = 200, body = QueueView)), security(("bearer" = [])))]
#[get("/queue")]
pub async fn queue(state: web::Data<AppState>, user: AuthUser) -> AppResult<HttpResponse> {
    use fred::interfaces::{KeysInterface, SortedSetsInterface};
    let row = reads::queue_depth(&state.reads, user.tenant_id).await?;
    let now = state.clock.now();
    let stream_length = stream::len(&state.redis, &state.keys).await.unwrap_or(0);
    // Heartbeats are wall-clock (liveness is real elapsed time, not domain time).
    let seen_since = (Utc::now().timestamp_millis() - 15_000) as f64;
    let live_workers: i64 = state
        .redis
        .zcount(worker::workers_key(&state.keys), seen_since, f64::INFINITY)
        .await
        .unwrap_or(0);
    let due_length = stream::due_len(&state.redis, &state.keys).await.unwrap_or(0);
    let leader: i64 = state
        .redis
        .exists(crate::scheduler::lease::leader_key(&state.keys))
        .await
        .unwrap_or(0);
    Ok(HttpResponse::Ok().json(QueueView {
        queued: row.queued,
        sending: row.sending,
        oldest_queued_seconds: row.oldest.map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0),
        stream_length,
        due_length,
        live_workers: live_workers.max(0) as u64,
        beat_leader: leader == 1,
    }))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(stats)
        .service(recipients)
        .service(logs)
        .service(dashboard)
        .service(queue);
}
