//! Holiday use cases: the merged list of a year, and the tenant's own dates added or
//! removed, each with its audit row and a replan of the tenant's waiting campaigns in one
//! transaction.

use chrono::{Datelike, NaiveDate};
use sea_orm::TransactionTrait;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{repo, HolidayKind, DEFAULT_CALENDAR};
use crate::audit::{self, Event};
use crate::campaigns::repo::Replan;
use crate::db::find_owned;
use crate::entities::holidays;
use crate::error::{AppError, AppResult};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

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
    crate::api::schema::string_enum(&["shipped", "tenant"])
}

/// The shipped calendar `calendar`'s holidays of `year` (default: the current year;
/// default calendar `BR`, `none` for none) plus the tenant's own, sorted by date. 422 for a
/// year outside 1990..=2100 or an unknown calendar.
pub async fn list(
    state: &AppState,
    tenant_id: Uuid,
    year: Option<i32>,
    calendar: Option<String>,
) -> AppResult<Vec<HolidayView>> {
    let year = year.unwrap_or_else(|| state.clock.now().year());
    if !(1990..=2100).contains(&year) {
        return Err(AppError::field("year", "must be between 1990 and 2100"));
    }
    let code = calendar.unwrap_or_else(|| DEFAULT_CALENDAR.into());
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
    let own = repo::between(&state.db, tenant_id, from, to).await?;
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
    Ok(items)
}

/// Adds a closing date of the caller's tenant (and forgets its cached dates). 409 when it has
/// one on that date. A running campaign whose window it closes now sends nothing more once
/// this returns ([`crate::campaigns::lifecycle::hold_for_holiday`]).
pub async fn create(state: &AppState, by: &AuthUser, date: NaiveDate, name: String) -> AppResult<holidays::Model> {
    let txn = state.db.begin().await?;
    let created = repo::insert(&txn, by.tenant_id, date, name, state.clock.now()).await?;
    let event = Event::new("holiday.create", "holiday", created.id).with(json!({"date": created.date}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    crate::campaigns::repo::replan(&txn, Replan::Tenant(by.tenant_id), state.clock.now()).await?;
    txn.commit().await?;
    state.holidays.forget(by.tenant_id).await;
    // The holiday is written: a failure to hold a campaign is logged, not answered as a 500
    // (the workers stop within their context TTL anyway).
    if let Err(e) = crate::campaigns::lifecycle::hold_for_holiday(state, by.tenant_id).await {
        tracing::error!(error = %e, tenant_id = %by.tenant_id, "holding campaigns for a new holiday failed");
    }
    Ok(created)
}

/// Removes holiday `id` of the caller's tenant (and forgets its cached dates). 404 for another tenant's id.
pub async fn remove(state: &AppState, by: &AuthUser, id: Uuid) -> AppResult<()> {
    let found = find_owned::<holidays::Entity>(&state.db, by.tenant_id, id, "holiday").await?;
    let txn = state.db.begin().await?;
    repo::delete(&txn, found.id).await?;
    let event = Event::new("holiday.delete", "holiday", found.id).with(json!({"date": found.date}));
    audit::record_by(&txn, by, state.clock.now(), event).await?;
    crate::campaigns::repo::replan(&txn, Replan::Tenant(by.tenant_id), state.clock.now()).await?;
    txn.commit().await?;
    state.holidays.forget(by.tenant_id).await;
    Ok(())
}
