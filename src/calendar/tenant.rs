//! The tenant's own holidays (stored) and `/holidays` routes: shipped calendar plus the
//! tenant's dates.

use actix_web::{delete, get, post, web, HttpResponse};
use chrono::{Datelike, NaiveDate};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{HolidayKind, DEFAULT_CALENDAR};
use crate::api::extract::{ApiJson, ApiQuery};
use crate::audit::{self, Event};
use crate::campaigns::repo::Replan;
use crate::db::{find_owned, scoped};
use crate::entities::{holidays, tenants};
use crate::error::{AppError, AppResult, Fields};
use crate::state::AppState;
use crate::tenancy::{auth::AuthUser, domain::parse_name};

/// Each tenant's own holiday dates, remembered by this process for
/// `server.read_cache_ttl_ms` (the API reads them for every stats, preview and campaign
/// validation). Adding or deleting a holiday through this process forgets the tenant's at
/// once; a change through another replica shows here within the TTL. The beat and the
/// workers read holidays themselves, uncached.
#[derive(Clone)]
pub struct HolidayCache {
    tenants: moka::future::Cache<Uuid, Arc<[NaiveDate]>>,
}

impl HolidayCache {
    /// Tenants remembered at most: beyond it the least used are dropped.
    const CAPACITY: u64 = 10_000;

    pub fn new(ttl: std::time::Duration) -> Self {
        Self {
            tenants: moka::future::Cache::builder()
                .max_capacity(Self::CAPACITY)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// Every date the tenant closes on, sorted: from memory, or read with [`dates`].
    pub async fn dates(
        &self,
        db: &impl sea_orm::ConnectionTrait,
        tenant_id: Uuid,
    ) -> Result<Arc<[NaiveDate]>, sea_orm::DbErr> {
        if let Some(found) = self.tenants.get(&tenant_id).await {
            return Ok(found);
        }
        let found: Arc<[NaiveDate]> = dates(db, tenant_id).await?.into();
        self.tenants.insert(tenant_id, found.clone()).await;
        Ok(found)
    }

    /// Drops the tenant's remembered dates: call after adding or deleting one.
    pub async fn forget(&self, tenant_id: Uuid) {
        self.tenants.invalidate(&tenant_id).await;
    }
}

/// Every date the tenant closes on, sorted (from the database).
pub async fn dates(db: &impl sea_orm::ConnectionTrait, tenant_id: Uuid) -> Result<Vec<NaiveDate>, sea_orm::DbErr> {
    scoped::<holidays::Entity>(tenant_id)
        .select_only()
        .column(holidays::Column::Date)
        .order_by_asc(holidays::Column::Date)
        .into_tuple()
        .all(db)
        .await
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HolidayView {
    /// Only tenant holidays have an id (to delete them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub date: NaiveDate,
    pub name: String,
    /// The calendar that defines it (`BR`, `BR-SP`, …), or `tenant`.
    pub calendar: String,
    /// `shipped` or `tenant`.
    #[schema(schema_with = holiday_source_schema)]
    pub source: &'static str,
    pub kind: HolidayKind,
    pub blocks_sending: bool,
}

impl From<holidays::Model> for HolidayView {
    fn from(h: holidays::Model) -> Self {
        Self {
            id: Some(h.id),
            date: h.date,
            name: h.name,
            calendar: "tenant".into(),
            source: "tenant",
            kind: HolidayKind::Public,
            blocks_sending: true,
        }
    }
}

fn holiday_source_schema() -> utoipa::openapi::schema::Object {
    crate::api::openapi::string_enum(&["shipped", "tenant"])
}

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
    let year = q.0.year.unwrap_or_else(|| state.clock.now().year());
    if !(1990..=2100).contains(&year) {
        return Err(AppError::field("year", "must be between 1990 and 2100"));
    }
    let code = q.0.calendar.unwrap_or_else(|| DEFAULT_CALENDAR.into());
    let shipped = if code.eq_ignore_ascii_case("none") {
        vec![]
    } else {
        state
            .calendars
            .get(&code)
            .ok_or_else(|| AppError::field("calendar", format!("unknown calendar {code:?}")))?
            .holidays_in_year(year)
    };
    let (from, to) = (
        NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default(),
        NaiveDate::from_ymd_opt(year, 12, 31).unwrap_or_default(),
    );
    let own = scoped::<holidays::Entity>(user.tenant_id)
        .filter(holidays::Column::Date.between(from, to))
        .all(&state.db)
        .await?;
    let mut items: Vec<HolidayView> = shipped
        .into_iter()
        .map(|h| HolidayView {
            id: None,
            date: h.date,
            name: h.name,
            calendar: h.calendar,
            source: "shipped",
            kind: h.kind,
            blocks_sending: h.blocks_sending,
        })
        .chain(own.into_iter().map(HolidayView::from))
        .collect();
    items.sort_by(|a, b| a.date.cmp(&b.date).then(a.source.cmp(b.source)));
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
    let txn = state.db.begin().await?;
    let created = holidays::ActiveModel {
        id: Set(Uuid::new_v4()),
        tenant_id: Set(user.tenant_id),
        date: Set(date),
        name: Set(name),
        created_at: Set(state.clock.now()),
    }
    .insert(&txn)
    .await?;
    let event = Event::new("holiday.create", "holiday", created.id).with(json!({"date": created.date}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    crate::campaigns::repo::replan(&txn, Replan::Tenant(user.tenant_id), state.clock.now()).await?;
    txn.commit().await?;
    state.holidays.forget(user.tenant_id).await;
    Ok(HttpResponse::Created().json(HolidayView::from(created)))
}

/// Removes one of the tenant's holidays.
#[utoipa::path(operation_id = "deleteHoliday", tag = "holidays", params(("id" = Uuid, Path)), responses(
    (status = 204),
    (status = 404, body = crate::error::Problem),
), security(("bearer" = [])))]
#[delete("/holidays/{id}")]
pub async fn remove(state: web::Data<AppState>, user: AuthUser, id: web::Path<Uuid>) -> AppResult<HttpResponse> {
    let found = find_owned::<holidays::Entity>(&state.db, user.tenant_id, *id, "holiday").await?;
    let txn = state.db.begin().await?;
    holidays::Entity::delete_by_id(found.id).exec(&txn).await?;
    let event = Event::new("holiday.delete", "holiday", found.id).with(json!({"date": found.date}));
    audit::record(&txn, user.tenant_id, Some(user.user_id), state.clock.now(), event).await?;
    crate::campaigns::repo::replan(&txn, Replan::Tenant(user.tenant_id), state.clock.now()).await?;
    txn.commit().await?;
    state.holidays.forget(user.tenant_id).await;
    Ok(HttpResponse::NoContent().finish())
}

/// The tenant's time zone (the default for campaign schedules).
pub async fn tenant_timezone(db: &impl sea_orm::ConnectionTrait, tenant_id: Uuid) -> AppResult<String> {
    Ok(tenants::Entity::find_by_id(tenant_id)
        .one(db)
        .await?
        .map_or_else(|| "America/Sao_Paulo".to_owned(), |t| t.timezone))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list).service(create).service(remove);
}
