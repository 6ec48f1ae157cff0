//! Runs of recurring campaigns (PRODUCT §8): the beat creates one child campaign per
//! occurrence of a started parent ([`create_due`]), and `GET /campaigns/{id}/runs` lists
//! them.
//!
//! Exactly once: the parents are locked `FOR NO KEY UPDATE SKIP LOCKED` while their runs are
//! created and their next occurrence stored, in one transaction; and a run is unique per
//! `(parent_id, occurrence_at)` (`ON CONFLICT DO NOTHING`), so beats racing or restarting
//! never create a second run for an occurrence. A run is then a campaign like any other:
//! `preparing` (its audience resolved at that moment), then `scheduled` while its window,
//! `start_at` or busy instance make it wait, `active`, `completed`.

use actix_web::{get, web, HttpResponse};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde_json::json;
use uuid::Uuid;

use super::domain::CampaignStatus;
use super::recurrence::{local_date, next_occurrence, Recurrence, RecurrenceSpec};
use super::repo;
use super::routes::CampaignView;
use crate::calendar::ScheduleSpec;
use crate::db::find_owned;
use crate::entities::campaigns;
use crate::error::AppResult;
use crate::pagination::{Page, Pagination};
use crate::state::AppState;
use crate::tenancy::auth::AuthUser;

/// Parents advanced per transaction (and most per tick: a tick runs one chunk).
const PARENTS_PER_TICK: u64 = 2_000;
/// Most occurrences one parent is moved through per tick (a long outage's skipped ones
/// are recorded over the next ticks).
const OCCURRENCES_PER_PARENT: usize = 100;

/// What one pass of [`create_due`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Created {
    /// Runs created `preparing` (their audience is to resolve).
    pub runs: Vec<Uuid>,
    /// Occurrences recorded as skipped (missed by more than their lateness bound).
    pub skipped: u64,
    /// Parents whose series ended (now `completed`).
    pub ended: u64,
}

/// The time zone a campaign's recurrence is read in: its schedule's (UTC when it has none,
/// as an `immediate` schedule may).
pub fn zone_of(schedule: &ScheduleSpec) -> Tz {
    schedule
        .timezone
        .as_deref()
        .and_then(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// Reads a stored recurrence (normalised).
pub fn stored(spec: &RecurrenceSpec) -> anyhow::Result<Recurrence> {
    Recurrence::parse(spec).map_err(|e| anyhow::anyhow!("stored recurrence does not parse: {e:?}"))
}

/// The beat's step at `now`: every started recurring parent whose occurrence has come gets
/// its run (or, missed by more than `max_lateness_minutes`, a skipped record), and its next
/// occurrence stored; `until`/`count` end the series. One transaction; safe with any number
/// of beats (see the module docs).
pub async fn create_due(db: &DatabaseConnection, now: DateTime<Utc>) -> anyhow::Result<Created> {
    let txn = db.begin().await?;
    let due = repo::lock_due_parents(&txn, now, PARENTS_PER_TICK).await?;
    let mut occurrences = vec![];
    let mut advanced = vec![];
    let mut ended = 0;
    for p in &due {
        let rule = match stored(&p.recurrence) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(campaign_id = %p.id, error = %e, "recurring campaign cannot be read: skipped");
                continue;
            }
        };
        let tz = zone_of(&p.schedule);
        let (seen, next) = occurrences_until(&rule, tz, p.next_occurrence_at, p.occurrence_count, now);
        for at in &seen {
            occurrences.push(json!({
                "parent_id": p.id,
                "at": at,
                "local_date": local_date(tz, *at).to_string(),
                "skipped": now - *at > rule.max_lateness(),
            }));
        }
        ended += u64::from(next.is_none());
        advanced.push(json!({"id": p.id, "next_occurrence_at": next, "occurrences": seen.len()}));
    }
    let created = repo::insert_runs(&txn, occurrences, now).await?;
    repo::advance_parents(&txn, advanced, now).await?;
    txn.commit().await?;
    let skipped = created.iter().filter(|(_, s)| *s == CampaignStatus::Cancelled).count() as u64;
    let runs: Vec<Uuid> = created
        .into_iter()
        .filter(|(_, s)| *s == CampaignStatus::Preparing)
        .map(|(id, _)| id)
        .collect();
    if !runs.is_empty() || skipped > 0 {
        tracing::info!(runs = runs.len(), skipped, ended, "recurring runs created");
    }
    Ok(Created { runs, skipped, ended })
}

/// The occurrences from `first` up to `now` (at most [`OCCURRENCES_PER_PARENT`]), given
/// `done` occurrences so far, and the next one after them (`None` once `until` or `count`
/// ends the series). Pure.
fn occurrences_until(
    rule: &Recurrence,
    tz: Tz,
    first: DateTime<Utc>,
    done: i32,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let limit_reached = |n: usize| {
        rule.count()
            .is_some_and(|max| i64::from(done) + n as i64 >= i64::from(max))
    };
    let mut seen = vec![];
    let mut next = Some(first);
    while let Some(at) = next.filter(|t| *t <= now && seen.len() < OCCURRENCES_PER_PARENT) {
        if limit_reached(seen.len()) {
            return (seen, None);
        }
        seen.push(at);
        next = next_occurrence(rule, tz, at);
    }
    if limit_reached(seen.len()) {
        return (seen, None);
    }
    (seen, next)
}

/// The runs of a recurring campaign, newest occurrence first; skipped occurrences are
/// `cancelled` runs with `cancel_reason` `skipped_late`.
#[utoipa::path(operation_id = "listCampaignRuns", tag = "campaigns", params(("id" = Uuid, Path), Pagination), responses(
    (status = 200, body = Page<CampaignView>),
    (status = 404, body = crate::error::Problem),
    (status = 422, body = crate::error::Problem),
), security(("bearer" = [])))]
#[get("/campaigns/{id}/runs")]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    page: Pagination,
) -> AppResult<HttpResponse> {
    let parent = find_owned::<campaigns::Entity>(&state.db, user.tenant_id, *id, "campaign").await?;
    let runs = repo::runs(&state.reads, user.tenant_id, parent.id, &page).await?;
    Ok(HttpResponse::Ok().json(runs.map(CampaignView::from)))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(list);
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use serde_json::Value;

    fn daily(extra: Value) -> Recurrence {
        let mut spec = json!({"freq": "daily", "at": "09:00"});
        spec.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        stored(&serde_json::from_value(spec).unwrap()).unwrap()
    }

    #[test]
    fn a_count_ends_the_series_at_its_last_occurrence() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let first = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let rule = daily(json!({"count": 3}));
        let (seen, next) = occurrences_until(&rule, tz, first, 0, first + Duration::days(1));
        assert_eq!(seen.len(), 2);
        assert_eq!(next, Some(first + Duration::days(2)));
        let (seen, next) = occurrences_until(&rule, tz, first + Duration::days(2), 2, first + Duration::days(9));
        assert_eq!((seen.len(), next), (1, None));
    }

    #[test]
    fn a_long_outage_is_walked_in_bounded_steps() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let first = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let (seen, next) = occurrences_until(&daily(json!({})), tz, first, 0, first + Duration::days(365));
        assert_eq!(seen.len(), OCCURRENCES_PER_PARENT);
        assert_eq!(next, Some(first + Duration::days(OCCURRENCES_PER_PARENT as i64)));
    }
}
