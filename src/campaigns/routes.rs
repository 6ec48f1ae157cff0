use actix_web::{delete, get, patch, post, web, HttpResponse};
use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set, TransactionTrait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::domain::{pacing_spec, Audience, CampaignRequest, CampaignStatus, Message, MessageSpec, PacingSpec};
use super::service::{self, Preview, ValidCampaign};
use crate::api::extract::{ApiJson, ApiQuery, Page, Pagination};
use crate::audit::{self, Event};
use crate::calendar::ScheduleSpec;
use crate::db::{find_owned, scoped};
use crate::entities::campaigns;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// A campaign as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct CampaignView {
    pub id: Uuid,
    pub name: String,
    pub instance_id: Uuid,
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<campaigns::Model> for CampaignView {
    type Error = AppError;

    fn try_from(m: campaigns::Model) -> AppResult<Self> {
        let status = CampaignStatus::parse(&m.status)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("unknown campaign status {}", m.status)))?;
        Ok(Self {
            id: m.id,
            name: m.name,
            instance_id: m.instance_id,
            status,
            messages: serde_json::from_value(m.messages).map_err(AppError::internal)?,
            audience: serde_json::from_value(m.audience).map_err(AppError::internal)?,
            schedule: serde_json::from_value(m.schedule).map_err(AppError::internal)?,
            pacing: serde_json::from_value(m.pacing).map_err(AppError::internal)?,
            paused_reason: m.paused_reason,
            next_send_at: m.next_send_at,
            started_at: m.started_at,
            completed_at: m.completed_at,
            cancelled_at: m.cancelled_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        })
    }
}

fn respond(status: actix_web::http::StatusCode, m: campaigns::Model) -> AppResult<HttpResponse> {
    Ok(HttpResponse::build(status).json(CampaignView::try_from(m)?))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Black Friday 2026", "pacing": {"messages_per_minute": 2}}))]
pub struct UpdateCampaignRequest {
    #[schema(max_length = 200)]
    pub name: Option<String>,
    pub instance_id: Option<Uuid>,
    pub messages: Option<Vec<MessageSpec>>,
    pub audience: Option<Audience>,
    pub schedule: Option<ScheduleSpec>,
    pub pacing: Option<PacingSpec>,
}

fn stored(
    v: &ValidCampaign,
) -> (
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
    serde_json::Value,
) {
    (
        json!(v.messages),
        json!(v.audience),
        json!(v.schedule),
        json!(pacing_spec(&v.pacing)),
    )
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
    let valid = service::validate(&state, user.tenant_id, body.0).await?;
    let (messages, audience, schedule, pacing) = stored(&valid);
    let now = state.clock.now();
    let created = campaigns::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        name: Set(valid.name),
        instance_id: Set(valid.instance_id),
        status: Set(CampaignStatus::Draft.as_str().into()),
        messages: Set(messages),
        audience: Set(audience),
        schedule: Set(schedule),
        pacing: Set(pacing),
        paused_reason: Set(None),
        next_send_at: Set(None),
        started_at: Set(None),
        completed_at: Set(None),
        cancelled_at: Set(None),
        planned_count: Set(0),
        audience_total: Set(None),
        audience_resolved: Set(0),
        audience_cursor: Set(None),
        audience_ready_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&state.db)
    .await?;
    respond(actix_web::http::StatusCode::CREATED, created)
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
    let mut query = scoped::<campaigns::Entity>(user.tenant_id);
    if let Some(status) = filter.0.status {
        query = query.filter(campaigns::Column::Status.eq(status.as_str()));
    }
    let query = query
        .order_by_desc(campaigns::Column::CreatedAt)
        .order_by_desc(campaigns::Column::Id);
    Ok(HttpResponse::Ok().json(page.fetch(&state.db, query).await?.try_map(CampaignView::try_from)?))
}

/// One campaign.
#[utoipa::path(operation_id = "getCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 200, body = CampaignView),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}")]
pub async fn get(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    respond(actix_web::http::StatusCode::OK, found)
}

/// 409 (with the current status) unless the campaign is a draft.
fn require_draft(c: &campaigns::Model, action: &str) -> AppResult<()> {
    if c.status == CampaignStatus::Draft.as_str() {
        Ok(())
    } else {
        Err(AppError::Conflict {
            detail: format!("only a draft campaign can be {action}; this one is {}", c.status),
            current_status: Some(c.status.clone()),
        })
    }
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
    let found = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    require_draft(&found, "edited")?;
    let current = CampaignView::try_from(found.clone())?;
    let b = body.0;
    let input = CampaignRequest {
        name: b.name.unwrap_or(current.name),
        instance_id: b.instance_id.unwrap_or(current.instance_id),
        messages: b.messages.unwrap_or_else(|| {
            current
                .messages
                .into_iter()
                .map(|m| MessageSpec {
                    text: Some(m.text),
                    media: m.media,
                    template_id: None,
                })
                .collect()
        }),
        audience: b.audience.unwrap_or(current.audience),
        schedule: Some(b.schedule.unwrap_or(current.schedule)),
        pacing: Some(b.pacing.unwrap_or(current.pacing)),
    };
    let valid = service::validate(&state, user.tenant_id, input).await?;
    let (messages, audience, schedule, pacing) = stored(&valid);
    let mut active: campaigns::ActiveModel = found.into();
    active.name = Set(valid.name);
    active.instance_id = Set(valid.instance_id);
    active.messages = Set(messages);
    active.audience = Set(audience);
    active.schedule = Set(schedule);
    active.pacing = Set(pacing);
    active.updated_at = Set(state.clock.now());
    // The status check and the write are one statement: a concurrent start wins cleanly.
    let updated = campaigns::Entity::update(active)
        .filter(campaigns::Column::Status.eq(CampaignStatus::Draft.as_str()))
        .exec(&state.db)
        .await
        .map_err(|e| match e {
            sea_orm::DbErr::RecordNotUpdated => AppError::conflict("the campaign stopped being a draft"),
            other => other.into(),
        })?;
    respond(actix_web::http::StatusCode::OK, updated)
}

/// Deletes a draft campaign.
#[utoipa::path(operation_id = "deleteCampaign", tag = "campaigns", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
    (status = 409, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/campaigns/{id}")]
pub async fn delete(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    require_draft(&found, "deleted")?;
    let txn = state.db.begin().await?;
    let done = campaigns::Entity::delete_many()
        .filter(campaigns::Column::Id.eq(found.id))
        .filter(campaigns::Column::Status.eq(CampaignStatus::Draft.as_str()))
        .exec(&txn)
        .await?;
    if done.rows_affected == 0 {
        return Err(AppError::conflict("the campaign stopped being a draft"));
    }
    let event = Event::new("campaign.delete", "campaign", found.id).with(json!({"name": found.name}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    txn.commit().await?;
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
    let found = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let preview = service::preview(&state, user.tenant_id, &found, body.0.contact_id).await?;
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
