//! Recurring campaigns (PRODUCT §8): the rule a parent campaign repeats by, and the pure
//! function that finds its next occurrence. Clock-free: every function takes the instant.
//!
//! Semantics, all in the campaign's schedule time zone:
//! * One occurrence per matching local date, at the local time `at`: `daily` every date,
//!   `weekly` on the ISO `weekdays` (1 = Monday … 7 = Sunday), `monthly` on `month_day`
//!   (the month's last day when the month is shorter: the 31st is 28/29 February).
//! * DST: an `at` that does not exist that day (spring-forward gap) moves to the first
//!   instant after the gap; an ambiguous one (fall-back overlap) takes the earlier instant —
//!   the rules of [`crate::calendar::schedule`]'s windows. Either way one occurrence per day.
//! * `until` (a local date, inclusive) ends the series; so does `count` (occurrences, sent
//!   or skipped), which the beat counts — it is state, not part of the pure rule.
//! * An occurrence more than `max_lateness_minutes` in the past when a beat first sees it is
//!   skipped, never sent late.

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::calendar::schedule::{parse_hhmm, resolve};
use crate::error::FieldError;

/// Most occurrences a series may be limited to with `count`.
pub const MAX_COUNT: i64 = 100_000;
/// Default of `max_lateness_minutes`: an hour.
pub const DEFAULT_MAX_LATENESS_MINUTES: i64 = 60;
/// Largest `max_lateness_minutes`: a day.
const MAX_LATENESS_MINUTES: i64 = 1_440;
/// How many local days [`next_occurrence`] looks ahead (a monthly rule matches every month).
const LOOKAHEAD_DAYS: i64 = 400;

/// How often a recurring campaign runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Freq {
    Daily,
    Weekly,
    Monthly,
}

/// The recurrence as the API receives and shows it (shown normalised: weekdays sorted and
/// deduplicated, `max_lateness_minutes` filled in). Validate with [`Recurrence::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, sea_orm::FromJsonQueryResult)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"freq": "weekly", "at": "09:00", "weekdays": [1, 3], "until": "2027-06-30"}))]
pub struct RecurrenceSpec {
    pub freq: Freq,
    /// Local time of each occurrence, `"HH:MM"` (00:00–23:59).
    pub at: String,
    /// ISO weekdays (1 = Monday … 7 = Sunday); required with, and only with, `weekly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekdays: Option<Vec<i64>>,
    /// Day of the month, 1–31 (the month's last day when shorter); required with, and only
    /// with, `monthly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub month_day: Option<i64>,
    /// Last local date an occurrence may fall on (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, format = Date)]
    pub until: Option<NaiveDate>,
    /// Most occurrences in the series (sent or skipped), 1–100,000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// An occurrence missed by more than this (minutes, 1–1,440; default 60) is skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lateness_minutes: Option<i64>,
}

/// A validated recurrence (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recurrence {
    freq: Freq,
    /// Minutes from local midnight.
    at: u16,
    /// Bit `n - 1` set for ISO weekday `n` (weekly only).
    weekdays: u8,
    month_day: Option<u32>,
    until: Option<NaiveDate>,
    count: Option<u32>,
    max_lateness_minutes: u32,
}

impl Recurrence {
    /// Checks every field at once; errors name paths relative to the recurrence (`at`,
    /// `weekdays[0]`, `month_day`, …): the API nests them under `recurrence`.
    pub fn parse(spec: &RecurrenceSpec) -> Result<Recurrence, Vec<FieldError>> {
        let mut errors = vec![];
        let at = parse_hhmm(&spec.at, false)
            .map_err(|e| errors.push(FieldError::new("at", e)))
            .unwrap_or(0);
        let mut weekdays = 0u8;
        match (&spec.weekdays, spec.freq) {
            (None, Freq::Weekly) => errors.push(FieldError::new("weekdays", "is required with freq weekly")),
            (Some(days), Freq::Weekly) => {
                if days.is_empty() {
                    errors.push(FieldError::new("weekdays", "must name at least one weekday"));
                }
                for (i, d) in days.iter().enumerate() {
                    if (1..=7).contains(d) {
                        weekdays |= 1 << (d - 1);
                    } else {
                        errors.push(FieldError::new(
                            format!("weekdays[{i}]"),
                            "must be an ISO weekday, 1 (Monday) to 7 (Sunday)",
                        ));
                    }
                }
            }
            (Some(_), _) => errors.push(FieldError::new("weekdays", "is only allowed with freq weekly")),
            (None, _) => {}
        }
        let month_day = match (spec.month_day, spec.freq) {
            (None, Freq::Monthly) => {
                errors.push(FieldError::new("month_day", "is required with freq monthly"));
                None
            }
            (Some(d), Freq::Monthly) if (1..=31).contains(&d) => Some(d as u32),
            (Some(_), Freq::Monthly) => {
                errors.push(FieldError::new("month_day", "must be between 1 and 31"));
                None
            }
            (Some(_), _) => {
                errors.push(FieldError::new("month_day", "is only allowed with freq monthly"));
                None
            }
            (None, _) => None,
        };
        let count = match spec.count {
            Some(n) if (1..=MAX_COUNT).contains(&n) => Some(n as u32),
            Some(_) => {
                errors.push(FieldError::new("count", format!("must be between 1 and {MAX_COUNT}")));
                None
            }
            None => None,
        };
        let lateness = spec.max_lateness_minutes.unwrap_or(DEFAULT_MAX_LATENESS_MINUTES);
        if !(1..=MAX_LATENESS_MINUTES).contains(&lateness) {
            errors.push(FieldError::new(
                "max_lateness_minutes",
                format!("must be between 1 and {MAX_LATENESS_MINUTES}"),
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Recurrence {
            freq: spec.freq,
            at,
            weekdays,
            month_day,
            until: spec.until,
            count,
            max_lateness_minutes: lateness as u32,
        })
    }

    /// The normalised spec, as stored and shown.
    pub fn to_spec(&self) -> RecurrenceSpec {
        RecurrenceSpec {
            freq: self.freq,
            at: format!("{:02}:{:02}", self.at / 60, self.at % 60),
            weekdays: (self.freq == Freq::Weekly)
                .then(|| (1..=7).filter(|d| self.weekdays & (1 << (d - 1)) != 0).collect()),
            month_day: self.month_day.map(i64::from),
            until: self.until,
            count: self.count.map(i64::from),
            max_lateness_minutes: Some(i64::from(self.max_lateness_minutes)),
        }
    }

    /// Most occurrences of the series, if limited.
    pub fn count(&self) -> Option<u32> {
        self.count
    }

    /// How late an occurrence may still be run.
    pub fn max_lateness(&self) -> Duration {
        Duration::minutes(i64::from(self.max_lateness_minutes))
    }

    /// Whether the rule has an occurrence on local date `d` (ignoring `until`).
    fn matches(&self, d: NaiveDate) -> bool {
        match self.freq {
            Freq::Daily => true,
            Freq::Weekly => self.weekdays & (1 << d.weekday().num_days_from_monday()) != 0,
            Freq::Monthly => {
                let wanted = self.month_day.unwrap_or(1);
                d.day() == wanted.min(last_day_of_month(d))
            }
        }
    }
}

fn last_day_of_month(d: NaiveDate) -> u32 {
    let (y, m) = (d.year(), d.month());
    let first_of_next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    first_of_next.and_then(|n| n.pred_opt()).map_or(28, |l| l.day())
}

/// The first occurrence of `rule` strictly after `after`, in `tz` (see the module docs for
/// DST); `None` when `until` has passed (or nothing matches within 400 local days).
pub fn next_occurrence(rule: &Recurrence, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    // From the day before: a gap-moved occurrence of yesterday may still lie ahead.
    let mut day = after.with_timezone(&tz).date_naive().pred_opt()?;
    for _ in 0..LOOKAHEAD_DAYS {
        if rule.until.is_some_and(|u| day > u) {
            return None;
        }
        if rule.matches(day) {
            if let Some(t) = resolve(tz, day, rule.at).filter(|t| *t > after) {
                return Some(t);
            }
        }
        day = day.succ_opt()?;
    }
    None
}

/// The local date of occurrence `at` in `tz` (a run's name carries it).
pub fn local_date(tz: Tz, at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&tz).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn rule(json: serde_json::Value) -> Recurrence {
        Recurrence::parse(&serde_json::from_value(json).unwrap()).unwrap()
    }

    fn fields(json: serde_json::Value) -> Vec<String> {
        let spec: RecurrenceSpec = serde_json::from_value(json).unwrap();
        Recurrence::parse(&spec)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// Every occurrence from `from` (exclusive) up to `to`.
    fn series(r: &Recurrence, tz: Tz, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = vec![];
        let mut at = from;
        while let Some(next) = next_occurrence(r, tz, at).filter(|t| *t <= to) {
            out.push(next);
            at = next;
        }
        out
    }

    fn assert_one_per_local_day_at(occ: &[DateTime<Utc>], tz: Tz, hhmm: &str, days: usize) {
        assert_eq!(occ.len(), days, "{occ:?}");
        let dates: std::collections::BTreeSet<NaiveDate> = occ.iter().map(|t| local_date(tz, *t)).collect();
        assert_eq!(dates.len(), days, "one per local day: {occ:?}");
        for t in occ {
            assert_eq!(t.with_timezone(&tz).format("%H:%M").to_string(), hhmm, "{t}");
        }
    }

    #[test]
    fn sao_paulo_has_no_dst_in_2026_so_nine_is_always_twelve_utc() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "daily", "at": "09:00"}));
        let occ = series(&r, tz, utc(2026, 1, 1, 0, 0), utc(2026, 12, 31, 23, 59));
        assert_one_per_local_day_at(&occ, tz, "09:00", 365);
        assert!(occ.iter().all(|t| t.format("%H:%M").to_string() == "12:00"));
    }

    #[test]
    fn new_york_daily_at_nine_is_one_run_a_day_across_both_2026_changes() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "daily", "at": "09:00"}));
        // Spring forward on Sunday 8 March 2026.
        let march = series(&r, tz, utc(2026, 3, 5, 0, 0), utc(2026, 3, 12, 0, 0));
        assert_one_per_local_day_at(&march, tz, "09:00", 7);
        assert_eq!(march[2], utc(2026, 3, 7, 14, 0));
        assert_eq!(march[3], utc(2026, 3, 8, 13, 0));
        // Fall back on Sunday 1 November 2026.
        let november = series(&r, tz, utc(2026, 10, 29, 0, 0), utc(2026, 11, 5, 0, 0));
        assert_one_per_local_day_at(&november, tz, "09:00", 7);
        assert_eq!(november[2], utc(2026, 10, 31, 13, 0));
        assert_eq!(november[3], utc(2026, 11, 1, 14, 0));
    }

    #[test]
    fn a_time_in_the_spring_forward_gap_moves_to_the_first_valid_instant() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "daily", "at": "02:30"}));
        let occ = series(&r, tz, utc(2026, 3, 7, 0, 0), utc(2026, 3, 10, 0, 0));
        // 7 March 02:30 EST, 8 March: 02:30 does not exist → 03:00 EDT, 9 March 02:30 EDT.
        assert_eq!(
            occ,
            [utc(2026, 3, 7, 7, 30), utc(2026, 3, 8, 7, 0), utc(2026, 3, 9, 6, 30)]
        );
    }

    #[test]
    fn an_ambiguous_fall_back_time_takes_the_first_instant_once() {
        let tz: Tz = "America/New_York".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "daily", "at": "01:30"}));
        let occ = series(&r, tz, utc(2026, 10, 31, 0, 0), utc(2026, 11, 3, 0, 0));
        // 1 November 01:30 happens twice (EDT, then EST): only the first (05:30 UTC) counts.
        assert_eq!(
            occ,
            [
                utc(2026, 10, 31, 5, 30),
                utc(2026, 11, 1, 5, 30),
                utc(2026, 11, 2, 6, 30)
            ]
        );
    }

    #[test]
    fn the_31st_falls_on_the_last_day_of_shorter_months() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "monthly", "at": "09:00", "month_day": 31}));
        let occ = series(&r, tz, utc(2026, 1, 1, 0, 0), utc(2026, 12, 31, 23, 0));
        let dates: Vec<String> = occ.iter().map(|t| local_date(tz, *t).to_string()).collect();
        assert_eq!(
            dates,
            [
                "2026-01-31",
                "2026-02-28",
                "2026-03-31",
                "2026-04-30",
                "2026-05-31",
                "2026-06-30",
                "2026-07-31",
                "2026-08-31",
                "2026-09-30",
                "2026-10-31",
                "2026-11-30",
                "2026-12-31"
            ]
        );
        let leap = series(&r, tz, utc(2028, 2, 1, 0, 0), utc(2028, 3, 1, 0, 0));
        assert_eq!(local_date(tz, leap[0]).to_string(), "2028-02-29");
    }

    #[test]
    fn weekly_runs_on_its_weekdays_only_and_until_is_inclusive() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let r =
            rule(serde_json::json!({"freq": "weekly", "at": "18:30", "weekdays": [3, 1, 3], "until": "2026-12-09"}));
        assert_eq!(r.to_spec().weekdays, Some(vec![1, 3]));
        let occ = series(&r, tz, utc(2026, 11, 30, 0, 0), utc(2027, 12, 31, 0, 0));
        let dates: Vec<String> = occ.iter().map(|t| local_date(tz, *t).to_string()).collect();
        // Mondays and Wednesdays, up to and including Wednesday 9 December.
        assert_eq!(dates, ["2026-11-30", "2026-12-02", "2026-12-07", "2026-12-09"]);
    }

    #[test]
    fn the_next_occurrence_is_strictly_after_the_given_instant() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let r = rule(serde_json::json!({"freq": "daily", "at": "09:00"}));
        let nine = utc(2026, 11, 30, 12, 0);
        assert_eq!(next_occurrence(&r, tz, nine - Duration::seconds(1)), Some(nine));
        assert_eq!(next_occurrence(&r, tz, nine), Some(nine + Duration::days(1)));
    }

    #[test]
    fn invalid_fields_are_named_by_path() {
        assert_eq!(fields(serde_json::json!({"freq": "daily", "at": "9h"})), ["at"]);
        assert_eq!(fields(serde_json::json!({"freq": "daily", "at": "24:00"})), ["at"]);
        assert_eq!(
            fields(serde_json::json!({"freq": "weekly", "at": "09:00", "weekdays": [0, 3, 8]})),
            ["weekdays[0]", "weekdays[2]"]
        );
        assert_eq!(
            fields(serde_json::json!({"freq": "weekly", "at": "09:00"})),
            ["weekdays"]
        );
        assert_eq!(
            fields(serde_json::json!({"freq": "daily", "at": "09:00", "weekdays": [1]})),
            ["weekdays"]
        );
        assert_eq!(
            fields(serde_json::json!({"freq": "monthly", "at": "09:00", "month_day": 32})),
            ["month_day"]
        );
        assert_eq!(
            fields(serde_json::json!({"freq": "monthly", "at": "09:00"})),
            ["month_day"]
        );
        assert_eq!(
            fields(serde_json::json!({"freq": "daily", "at": "09:00", "count": 0, "max_lateness_minutes": 0})),
            ["count", "max_lateness_minutes"]
        );
    }

    #[test]
    fn the_spec_is_normalised_with_the_default_lateness() {
        let r = rule(serde_json::json!({"freq": "daily", "at": "07:05"}));
        assert_eq!(r.to_spec().max_lateness_minutes, Some(60));
        assert_eq!(r.max_lateness(), Duration::hours(1));
        assert_eq!(Recurrence::parse(&r.to_spec()).unwrap(), r);
    }
}
