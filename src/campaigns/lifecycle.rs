//! `start`, `pause`, `resume`, `cancel`: the status machine applied with conditional
//! updates, so concurrent calls and the engine agree on one outcome.

use actix_web::{post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{EntityTrait, FromQueryResult, TransactionTrait};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use super::domain::CampaignStatus;
use super::preparation;
use super::recurrence::{next_occurrence, Recurrence, RecurrenceSpec};
use super::repo;
use super::routes::CampaignView;
use super::runs;
use crate::api::extract::ApiQuery;
use crate::audit::{self, Event};
use crate::db::find_owned;
use crate::db::stmt;
use crate::dispatch::gate;
use crate::entities::{campaigns, instances};
use crate::error::{AppError, AppResult};
use crate::gateway::ConnectionState;
use crate::instances::connectivity;
use crate::recipients;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

fn invalid(verb: &str, current: CampaignStatus) -> AppError {
    AppError::Conflict {
        detail: format!("cannot {verb} a campaign that is {}", current.as_str()),
        current_status: Some(current.as_str().into()),
    }
}

/// 409 about campaign `c` in its current state (`current_status`, as README promises for
/// every conflict of a campaign's lifecycle).
fn conflict_in(c: &campaigns::Model, detail: impl Into<String>) -> AppError {
    AppError::Conflict {
        detail: detail.into(),
        current_status: Some(c.status.as_str().into()),
    }
}

/// 409 for a campaign another request moved while this one acted on it: with the status it
/// has now (re-read), or without one if it cannot be read.
async fn changed_meanwhile(state: &AppState, id: Uuid, detail: &str) -> AppError {
    match reload(state, id).await {
        Ok(now) => conflict_in(&now, detail),
        Err(_) => AppError::conflict(detail),
    }
}

fn start_at(c: &campaigns::Model) -> AppResult<Option<DateTime<Utc>>> {
    let spec = c.schedule.clone();
    Ok(spec
        .start_at
        .and_then(|s| DateTime::parse_from_rfc3339(&s).ok())
        .map(|t| t.with_timezone(&Utc)))
}

/// Starts a draft: the instance must be connected and free (no other campaign active or
/// preparing on it); the campaign becomes `preparing` at once and its audience is resolved
/// in the background ([`preparation`]), after which it is `scheduled` until its
/// `start_at`, else `active`.
pub async fn start(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<campaigns::Model> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, id, "campaign").await?;
    let current = c.status;
    if current != CampaignStatus::Draft {
        return Err(invalid("start", current));
    }
    // The media may have moved or changed since the campaign was saved.
    let problems = state.media.check_messages(&mut c.messages.0.clone()).await;
    if !problems.is_empty() {
        return Err(AppError::Validation(problems));
    }
    // A group or tag of the audience deleted since the campaign was saved (before deletes
    // were refused while a campaign names them): 422 naming it, not a campaign that
    // completes at once having sent nothing. (A deleted contact is simply not sent to.)
    let gone = super::service::missing_audience_ids(&state.db, user.tenant_id, &c.audience, false).await?;
    if !gone.is_empty() {
        return Err(AppError::Validation(gone));
    }
    if let Some(recurrence) = &c.recurrence {
        let rule = runs::stored(recurrence).map_err(AppError::internal)?;
        return start_recurring(state, user, &c, &rule).await;
    }
    #[derive(FromQueryResult)]
    struct Busy {
        id: Uuid,
    }
    // A number takes part in at most one active campaign (a pool's every number).
    let busy = Busy::find_by_statement(stmt(
        "SELECT id FROM campaigns WHERE instance_ids && $1 AND status IN ('active', 'preparing') AND id <> $2 LIMIT 1",
        vec![c.instance_ids.clone().into(), c.id.into()],
    ))
    .one(&state.db)
    .await?;
    if let Some(b) = busy {
        return Err(conflict_in(
            &c,
            format!("the instance already has an active campaign ({})", b.id),
        ));
    }
    ensure_connected(state, user.tenant_id, &c).await?;
    let now = state.clock.now();
    let first = start_at(&c)?.filter(|t| *t > now).unwrap_or(now);
    let txn = state.db.begin().await?;
    if !repo::start(&txn, c.id, now, first).await? {
        drop(txn); // rolled back: the re-read must not wait on it
        return Err(changed_meanwhile(state, c.id, "the campaign is no longer a draft").await);
    }
    let event = Event::new("campaign.start", "campaign", c.id);
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    // The answer shows the campaign as started (`preparing`), however fast the
    // preparation then goes.
    let started = reload(state, c.id).await?;
    preparation::spawn(state.db.clone(), state.clock.clone(), c.id);
    Ok(started)
}

/// Starts a recurring draft (PRODUCT §8): the instance must be connected (it need not be
/// free: the parent sends nothing itself); the campaign becomes `scheduled` with its first
/// occurrence after `start_at` or now, and the beat creates a run at each occurrence. 409
/// when the series has no occurrence left (its `until` has passed).
async fn start_recurring(
    state: &AppState,
    user: &AuthUser,
    c: &campaigns::Model,
    rule: &Recurrence,
) -> AppResult<campaigns::Model> {
    ensure_connected(state, user.tenant_id, c).await?;
    let now = state.clock.now();
    let from = start_at(c)?.filter(|t| *t > now).unwrap_or(now);
    let Some(first) = next_occurrence(rule, runs::zone_of(&c.schedule), from) else {
        return Err(conflict_in(
            c,
            "the recurrence has no occurrence left: its until date has passed",
        ));
    };
    let txn = state.db.begin().await?;
    if !repo::start_recurring(&txn, c.id, now, first).await? {
        drop(txn); // rolled back: the re-read must not wait on it
        return Err(changed_meanwhile(state, c.id, "the campaign is no longer a draft").await);
    }
    let event = Event::new("campaign.start", "campaign", c.id).with(json!({"first_occurrence_at": first}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    reload(state, c.id).await
}

/// Resumes a paused recurring campaign with its next occurrence after now (none missed
/// meanwhile is caught up); `completed` when its series has nothing left.
async fn resume_recurring(
    state: &AppState,
    user: &AuthUser,
    c: &campaigns::Model,
    spec: &RecurrenceSpec,
) -> AppResult<campaigns::Model> {
    let rule = runs::stored(spec).map_err(AppError::internal)?;
    let now = state.clock.now();
    let from = start_at(c)?.filter(|t| *t > now).unwrap_or(now);
    let next = next_occurrence(&rule, runs::zone_of(&c.schedule), from);
    let txn = state.db.begin().await?;
    if repo::resume_recurring(&txn, c.id, now, next).await?.is_none() {
        drop(txn); // rolled back: the re-read must not wait on it
        return Err(changed_meanwhile(state, c.id, "the campaign changed meanwhile; try again").await);
    }
    let event =
        Event::new("campaign.resume", "campaign", c.id).with(json!({"from": "paused", "next_occurrence_at": next}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), now, event).await?;
    txn.commit().await?;
    reload(state, c.id).await
}

/// Asks the gateway (and records the answer): 409 unless the number is connected.
async fn ensure_connected(state: &AppState, tenant_id: Uuid, c: &campaigns::Model) -> AppResult<()> {
    let limit = std::time::Duration::from_millis(state.settings.gateway.timeout_ms);
    let now = state.clock.now();
    let mut numbers = Vec::with_capacity(c.instance_ids.len());
    for id in &c.instance_ids {
        numbers.push(find_owned::<instances::Entity>(&state.db, tenant_id, *id, "instance").await?);
    }
    // Every number is asked at once (and what it answers recorded): a pool sends over
    // those connected, so one is enough (PRODUCT §4).
    let answers = futures_util::future::join_all(
        numbers
            .iter()
            .map(|i| connectivity::probe(&state.db, &state.gateway, &state.cipher, i, limit, now)),
    )
    .await;
    let mut first_problem = None;
    for answer in answers {
        let problem = match answer {
            Ok(ConnectionState::Open) => return Ok(()),
            Ok(other) => format!("the instance is not connected (state: {})", other.as_str()),
            Err(e) => format!("the instance cannot be reached: {e}"),
        };
        first_problem.get_or_insert(problem);
    }
    let problem = first_problem.unwrap_or_else(|| "the campaign has no instance".into());
    Err(conflict_in(
        c,
        if numbers.len() > 1 {
            format!("none of the pool's instances is connected; the first: {problem}")
        } else {
            problem
        },
    ))
}

async fn reload(state: &AppState, id: Uuid) -> AppResult<campaigns::Model> {
    campaigns::Entity::find_by_id(id)
        .one(&state.db)
        .await?
        .ok_or_else(|| AppError::not_found("campaign"))
}

/// Moves the campaign, as the caller read it, to `to` in one conditional statement; 409
/// with the current status otherwise. Pause and cancel then close the send gate.
async fn transition(
    state: &AppState,
    user: &AuthUser,
    c: campaigns::Model,
    action: &str,
    to: CampaignStatus,
) -> AppResult<campaigns::Model> {
    let current = c.status;
    if !current.can_become(to) || (to == CampaignStatus::Active && current == CampaignStatus::Scheduled) {
        return Err(invalid(action, current));
    }
    let now = state.clock.now();
    let txn = state.db.begin().await?;
    let moved = repo::control(&txn, c.id, current, to, now).await?;
    if !moved {
        drop(txn); // rolled back: the re-read must not wait on it
        return Err(changed_meanwhile(state, c.id, "the campaign changed meanwhile; try again").await);
    }
    match to {
        CampaignStatus::Paused => recipients::unqueue_campaign(&txn, c.id).await?,
        CampaignStatus::Cancelled => {
            recipients::cancel_campaign(&txn, c.id).await?;
            super::lanes::clear(&txn, c.id).await?;
        }
        _ => {}
    }
    let action_name = format!("campaign.{action}");
    let event = Event::new(&action_name, "campaign", c.id).with(json!({"from": current.as_str()}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
    match to {
        CampaignStatus::Paused | CampaignStatus::Cancelled => {
            stop_sends_in_hand(state, c.id, action, gate::STOP_TTL_MS).await
        }
        CampaignStatus::Active | CampaignStatus::Scheduled => {
            if let Err(e) = gate::open(&state.redis, &state.keys, c.id).await {
                tracing::warn!(error = %e, campaign_id = %c.id, "reopening the send gate failed");
            }
        }
        _ => {}
    }
    reload(state, c.id).await
}

/// After a pause or cancel has committed (or a holiday closed the window): closes the
/// campaign's send gate for `ttl_ms` ([`gate::close_for`]; a longer stop is kept) and waits
/// for the attempts already in flight, so that once the call returns no request for the
/// campaign leaves for the gateway, retries included (PRODUCT §2.6). Bounded by the gateway
/// call timeout; without Redis the Postgres status alone stops new claims.
async fn stop_sends_in_hand(state: &AppState, campaign_id: Uuid, reason: &str, ttl_ms: u64) {
    let limit = state.gateway.timeout() + std::time::Duration::from_secs(2);
    let result = async {
        let in_flight = gate::close_for(&state.redis, &state.keys, campaign_id, reason, ttl_ms).await?;
        if in_flight > 0 {
            gate::drain(&state.redis, &state.keys, campaign_id, limit).await?;
        }
        Ok::<_, fred::prelude::Error>(())
    };
    if let Err(e) = result.await {
        tracing::error!(error = %e, %campaign_id, reason, "closing the send gate failed: sends in hand may still leave");
    }
}

/// After a holiday of tenant `tenant_id` was added (committed): each of its active campaigns
/// whose window that closes now stops sending at once, as a pause would (PRODUCT §2.4: never
/// on a holiday), and stays active: the send gates of all of them closed together for twice
/// a worker's context TTL (workers learn of the holiday within one, and re-check the window
/// before every attempt; [`gate::close_for`] never shortens a pause's stop), their queued
/// recipients back to `pending` (the beat plans them after the holiday), and the attempts in
/// flight waited for, all at once ([`stop_sends_in_hand`], bounded by the gateway timeout).
/// Returns how many campaigns were held. Without Redis, or when a campaign's queued jobs
/// cannot be put back, it logs, and the workers stop within their context TTL.
pub async fn hold_for_holiday(state: &AppState, tenant_id: Uuid) -> AppResult<u64> {
    use sea_orm::{ColumnTrait, QueryFilter};
    let active = campaigns::Entity::find()
        .filter(campaigns::Column::TenantId.eq(tenant_id))
        .filter(campaigns::Column::Status.eq(CampaignStatus::Active))
        .all(&state.db)
        .await?;
    if active.is_empty() {
        return Ok(0);
    }
    let dates = state.holidays.dates(&state.db, tenant_id).await?;
    let now = state.clock.now();
    let closed: Vec<Uuid> = active
        .into_iter()
        .filter(
            |c| match crate::calendar::Schedule::parse(c.schedule.clone(), &state.calendars) {
                Ok(schedule) => {
                    !crate::calendar::is_open(&schedule, &schedule.holiday_lookup(&state.calendars, &dates), now)
                }
                Err(_) => false,
            },
        )
        .map(|c| c.id)
        .collect();
    // Queued jobs back to `pending` first (a claim then finds nothing), then every gate
    // closed and drained at once.
    for id in &closed {
        if let Err(e) = recipients::unqueue_campaign(&state.db, *id).await {
            tracing::error!(error = %e, campaign_id = %id, "putting a held campaign's queued jobs back failed");
        }
    }
    let hold = (2 * crate::dispatch::context::TTL).as_millis() as u64;
    futures_util::future::join_all(closed.iter().map(|id| stop_sends_in_hand(state, *id, "holiday", hold))).await;
    Ok(closed.len() as u64)
}

pub async fn pause(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<campaigns::Model> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, id, "campaign").await?;
    transition(state, user, c, "pause", CampaignStatus::Paused).await
}

/// Cancels the campaign; a recurring one has no more occurrences, and with `cascade` its
/// runs still going are cancelled too (each as its own cancel: sends in hand drained).
pub async fn cancel(state: &AppState, user: &AuthUser, id: Uuid, cascade: bool) -> AppResult<campaigns::Model> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, id, "campaign").await?;
    let recurring = c.recurrence.is_some();
    let cancelled = transition(state, user, c, "cancel", CampaignStatus::Cancelled).await?;
    if recurring && cascade {
        for run in repo::unfinished_runs(&state.db, id).await? {
            match transition(state, user, run, "cancel", CampaignStatus::Cancelled).await {
                // A run that finished or was cancelled meanwhile is left as it is.
                Ok(_) | Err(AppError::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(cancelled)
}

/// Paused → active (or back to scheduled if its start is still ahead); pacing starts
/// afresh from now, nothing is caught up in a burst.
pub async fn resume(state: &AppState, user: &AuthUser, id: Uuid) -> AppResult<campaigns::Model> {
    let c = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, id, "campaign").await?;
    let current = c.status;
    if current != CampaignStatus::Paused {
        return Err(invalid("resume", current));
    }
    if let Some(spec) = &c.recurrence {
        return resume_recurring(state, user, &c, spec).await;
    }
    ensure_connected(state, user.tenant_id, &c).await?;
    let to = match start_at(&c)? {
        Some(t) if t > state.clock.now() => CampaignStatus::Scheduled,
        _ => CampaignStatus::Active,
    };
    let resumed = transition(state, user, c, "resume", to).await?;
    if resumed.status == CampaignStatus::Preparing {
        // Paused before its audience was resolved: the preparation goes on.
        preparation::spawn(state.db.clone(), state.clock.clone(), id);
        return Ok(resumed);
    }
    repo::complete_finished(&state.db, &[id], state.clock.now()).await?;
    if to == CampaignStatus::Active {
        return reload(state, resumed.id).await;
    }
    Ok(resumed)
}

#[rustfmt::skip]
macro_rules! lifecycle_route {
    ($name:ident, $operation_id:literal, $path:literal, $action:ident, $doc:literal) => {
        #[doc = $doc]
        #[utoipa::path(operation_id = $operation_id, tag = "campaigns", params(("id" = Uuid, Path)), responses(
            (status = 200, body = CampaignView),
            (status = 404, body = crate::error::Problem),
            (status = 409, body = crate::error::Problem),
        ), security(("bearer" = [])))]
        #[post($path)]
        pub async fn $name(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
            let c = $action(&state, &user, *id).await?;
            Ok(HttpResponse::Ok().json(CampaignView::from(c)))
        }
    };
}

/// Starts a draft (409 if the instance is busy or not connected; 422 naming
/// `messages[i].media.url` when a media URL no longer serves a sendable file).
#[utoipa::path(operation_id = "startCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/campaigns/{id}/start")]
pub async fn start_route(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let c = start(&state, &user, *id).await?;
    Ok(HttpResponse::Ok().json(CampaignView::from(c)))
}
lifecycle_route!(
    pause_route,
    "pauseCampaign",
    "/campaigns/{id}/pause",
    pause,
    "Pauses: once this returns, no new send of the campaign starts."
);
lifecycle_route!(
    resume_route,
    "resumeCampaign",
    "/campaigns/{id}/resume",
    resume,
    "Resumes a paused campaign where it stopped."
);
/// `?cascade=`: on a recurring campaign, also cancel its runs still going (default false).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CancelQuery {
    #[serde(default)]
    pub cascade: bool,
}

/// Cancels: remaining recipients become `cancelled`; no new send starts. A recurring
/// campaign has no more runs; `?cascade=true` cancels its runs in progress too.
#[utoipa::path(operation_id = "cancelCampaign", tag = "campaigns", params(("id" = Uuid, Path), CancelQuery), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/campaigns/{id}/cancel")]
pub async fn cancel_route(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: ApiQuery<CancelQuery>,
) -> AppResult<HttpResponse> {
    let c = cancel(&state, &user, *id, query.0.cascade).await?;
    Ok(HttpResponse::Ok().json(CampaignView::from(c)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(start_route)
        .service(pause_route)
        .service(resume_route)
        .service(cancel_route);
}
