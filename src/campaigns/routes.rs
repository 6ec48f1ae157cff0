use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::domain::{
    pacing_spec, Audience, CampaignRequest, CampaignStatus, Message, PacingSpec, UpdateCampaignRequest,
};
use super::recurrence::RecurrenceSpec;
use super::repo;
use super::service::{self, Preview};
use crate::api::extract::{ApiJson, ApiQuery, Page, Pagination};
use crate::calendar::ScheduleSpec;
use crate::db::find_owned;
use crate::entities::campaigns;
use crate::error::AppResult;
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// A campaign as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: Uuid,
    pub name: String,
    /// The first (or only) number it sends from.
    pub instance_id: Uuid,
    /// Every number it sends from, in order: one, or a pool of up to 50.
    pub instance_ids: Vec<Uuid>,
    pub status: CampaignStatus,
    pub messages: Vec<Message>,
    pub audience: Audience,
    /// Normalised: defaults filled in.
    pub schedule: ScheduleSpec,
    pub pacing: PacingSpec,
    pub paused_reason: Option<String>,
    pub next_send_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Why the system cancelled it: `skipped_late` for a run whose occurrence was missed by
    /// more than the recurrence's `max_lateness_minutes`.
    pub cancel_reason: Option<String>,
    /// A recurring campaign's rule (normalised); `null` for one-off campaigns and runs.
    pub recurrence: Option<RecurrenceSpec>,
    /// A started recurring campaign's next occurrence; `null` when paused or the series ended.
    pub next_occurrence_at: Option<DateTime<Utc>>,
    /// A run's recurring campaign; `null` otherwise.
    pub parent_id: Option<Uuid>,
    /// The occurrence a run was created for; `null` for campaigns that are not runs.
    pub occurrence_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<campaigns::Model> for CampaignView {
    fn from(m: campaigns::Model) -> Self {
        Self {
            id: m.id,
            name: m.name,
            instance_id: m.instance_id,
            instance_ids: m.instance_ids,
            status: m.status,
            messages: m.messages.0,
            audience: m.audience,
            schedule: m.schedule,
            pacing: pacing_spec(&m.pacing),
            paused_reason: m.paused_reason,
            next_send_at: m.next_send_at,
            started_at: m.started_at,
            completed_at: m.completed_at,
            cancelled_at: m.cancelled_at,
            cancel_reason: m.cancel_reason,
            recurrence: m.recurrence,
            next_occurrence_at: m.next_occurrence_at,
            parent_id: m.parent_id,
            occurrence_at: m.occurrence_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Creates a campaign in `draft`.
#[utoipa::path(operation_id = "createCampaign", tag = "campaigns", request_body = CampaignRequest, responses(
    (status = 201, body = CampaignView),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/campaigns")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<CampaignRequest>,
) -> AppResult<HttpResponse> {
    let created = service::create(&state, user.tenant_id, body.0).await?;
    Ok(HttpResponse::Created().json(CampaignView::from(created)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CampaignFilter {
    pub status: Option<CampaignStatus>,
}

/// The tenant's campaigns, newest first, optionally by status.
#[utoipa::path(operation_id = "listCampaigns", tag = "campaigns", params(CampaignFilter, Pagination), responses(
    (status = 200, body = Page<CampaignView>),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    filter: ApiQuery<CampaignFilter>,
    page: Pagination,
) -> AppResult<HttpResponse> {
    let page = repo::list(&state.reads, user.tenant_id, filter.0.status, &page).await?;
    Ok(HttpResponse::Ok().json(page.map(CampaignView::from)))
}

/// One campaign.
#[utoipa::path(operation_id = "getCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    Ok(HttpResponse::Ok().json(CampaignView::from(found)))
}

/// Changes a draft campaign; anything not given keeps its value.
#[utoipa::path(operation_id = "updateCampaign", tag = "campaigns", request_body = UpdateCampaignRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[patch("/campaigns/{id}")]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<UpdateCampaignRequest>,
) -> AppResult<HttpResponse> {
    let updated = service::update(&state, user.tenant_id, *id, body.0).await?;
    Ok(HttpResponse::Ok().json(CampaignView::from(updated)))
}

/// Deletes a draft campaign.
#[utoipa::path(operation_id = "deleteCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/campaigns/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    service::delete(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"contact_id": "4f1c2a9e-8d7b-4c3a-9e2f-1a2b3c4d5e6f"}))]
pub struct PreviewRequest {
    pub contact_id: Uuid,
}

/// Every variant rendered for one contact, as it would go out at the next open instant.
#[utoipa::path(operation_id = "previewCampaign", tag = "campaigns", request_body = PreviewRequest, params(("id" = Uuid, Path)), responses(
    (status = 200, body = Preview),
    (status = 404, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/campaigns/{id}/preview")]
pub async fn preview(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: ApiJson<PreviewRequest>,
) -> AppResult<HttpResponse> {
    let preview = service::preview(&state, user.tenant_id, *id, body.0.contact_id).await?;
    Ok(HttpResponse::Ok().json(preview))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(create)
        .service(list)
        .service(get)
        .service(update)
        .service(delete)
        .service(preview);
}
