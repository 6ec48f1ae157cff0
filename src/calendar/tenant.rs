//! The `/holidays` routes: shipped calendar plus the tenant's own dates (stored by
//! [`super::repo`], changed by [`super::service`]).

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::service::{self, HolidayView};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::error::{AppError, AppResult, Fields};
use crate::state::AppState;
use crate::tenancy::{auth::AuthUser, domain::parse_name};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HolidayQuery {
    /// Default: the current year.
    #[param(minimum = 1990, maximum = 2100)]
    pub year: Option<i32>,
    /// Shipped calendar code, default `BR` (`BR-SP`, `BR-RJ`, …; `none` for only the
    /// tenant's dates).
    pub calendar: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HolidayList {
    pub items: Vec<HolidayView>,
}

/// The shipped calendar's holidays of a year plus the tenant's own, sorted by date.
#[utoipa::path(operation_id = "listHolidays", tag = "holidays", params(HolidayQuery), responses(
    (status = 200, body = HolidayList),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/holidays")]
pub async fn list(state: web::Data<AppState>, user: AuthUser, q: ApiQuery<HolidayQuery>) -> AppResult<HttpResponse> {
    let items = service::list(&state, user.tenant_id, q.0.year, q.0.calendar).await?;
    Ok(HttpResponse::Ok().json(HolidayList { items }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"date": "2026-12-24", "name": "Véspera de Natal"}))]
pub struct HolidayRequest {
    /// `YYYY-MM-DD`, in each campaign's own time zone.
    pub date: String,
    #[schema(max_length = 200)]
    pub name: String,
}

/// Adds a date on which none of the tenant's campaigns sends.
#[utoipa::path(operation_id = "createHoliday", tag = "holidays", request_body = HolidayRequest, responses(
    (status = 201, body = HolidayView),
    (status = 409, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[post("/holidays")]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: ApiJson<HolidayRequest>,
) -> AppResult<HttpResponse> {
    let mut f = Fields::default();
    let date = f.check(
        "date",
        NaiveDate::parse_from_str(body.0.date.trim(), "%Y-%m-%d")
            .map_err(|_| "must be a date like 2026-12-24")
            .and_then(|d| {
                if (1990..=2100).contains(&d.year()) {
                    Ok(d)
                } else {
                    Err("must be between 1990 and 2100")
                }
            }),
    );
    let name = f.check("name", parse_name(&body.0.name, crate::text::MAX_NAME));
    f.finish()?;
    let (Some(date), Some(name)) = (date, name) else {
        return Err(AppError::internal(anyhow::anyhow!("validated fields missing")));
    };
    let created = service::create(&state, &user, date, name).await?;
    Ok(HttpResponse::Created().json(HolidayView::from(created)))
}

/// Removes one of the tenant's holidays.
#[utoipa::path(operation_id = "deleteHoliday", tag = "holidays", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/holidays/{id}")]
pub async fn remove(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    service::remove(&state, &user, *id).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(remove);
}
