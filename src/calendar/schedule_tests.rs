//! Tests of schedule parsing and evaluation, at chosen instants.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calendar::holidays::{Calendars, HolidayLookup, NoHolidays, WithExtra};
use crate::calendar::schedule::*;

fn cals() -> &'static Calendars {
    static C: OnceLock<Calendars> = OnceLock::new();
    C.get_or_init(|| Calendars::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("holidays")).unwrap())
}

fn spec(json: &str) -> ScheduleSpec {
    serde_json::from_str(json).unwrap()
}

fn sched(json: &str) -> Schedule {
    Schedule::parse(spec(json), cals()).unwrap()
}

fn errors(json: &str) -> Vec<FieldError> {
    Schedule::parse(spec(json), cals()).unwrap_err()
}

fn fields(json: &str) -> Vec<String> {
    errors(json).into_iter().map(|e| e.field).collect()
}

fn br() -> WithExtra<'static> {
    WithExtra::new(cals().get("BR"), &[])
}

fn utc(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

/// Unambiguous local wall time "YYYY-MM-DD HH:MM" in `tz`.
fn at(tz: Tz, s: &str) -> DateTime<Utc> {
    let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&naive).single().unwrap().with_timezone(&Utc)
}

fn sp(s: &str) -> DateTime<Utc> {
    at(chrono_tz::America::Sao_Paulo, s)
}

const BUSINESS: &str = r#"{"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR", "start_at": null, "days": [1,2,3,4,5], "windows": [{"start": "09:00", "end": "18:00"}], "skip_holidays": true}"#;
const DEFAULT_BUSINESS: &str = r#"{"mode": "business_hours", "timezone": "America/Sao_Paulo"}"#;

fn custom(tz: &str, days: &str, windows: &[(&str, &str)], skip: bool) -> Schedule {
    let ws: Vec<String> = windows
        .iter()
        .map(|(s, e)| format!(r#"{{"start": "{s}", "end": "{e}"}}"#))
        .collect();
    sched(&format!(
        r#"{{"mode": "custom", "timezone": "{tz}", "days": {days}, "windows": [{}], "skip_holidays": {skip}}}"#,
        ws.join(",")
    ))
}

// ---------------------------------------------------------------- parsing

#[test]
fn the_api_example_parses() {
    let s = sched(BUSINESS);
    assert_eq!(s.mode(), Mode::BusinessHours);
    assert_eq!(s.timezone(), chrono_tz::America::Sao_Paulo);
    assert_eq!(s.calendar_code(), Some("BR"));
    assert!(s.skip_holidays());
}

#[test]
fn unknown_json_fields_are_rejected_when_deserialising() {
    let r: Result<ScheduleSpec, _> = serde_json::from_str(r#"{"mode": "immediate", "colour": "blue"}"#);
    assert!(r.unwrap_err().to_string().contains("colour"));
    let r: Result<ScheduleSpec, _> =
        serde_json::from_str(r#"{"mode": "custom", "windows": [{"start": "09:00", "end": "10:00", "x": 1}]}"#);
    assert!(r.is_err());
}

#[test]
fn an_hour_of_25_is_an_error_on_the_window_field() {
    let e = errors(
        r#"{"mode": "custom", "timezone": "UTC", "days": [1], "windows": [{"start": "09:00", "end": "18:00"}, {"start": "25:00", "end": "26:00"}]}"#,
    );
    let f: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(f, ["windows[1].start", "windows[1].end"]);
    assert!(e[0].message.contains("25:00"));
}

#[test]
fn twenty_four_hundred_is_allowed_only_as_an_end() {
    let s = custom("UTC", "[1]", &[("20:00", "24:00")], false);
    assert!(is_open(&s, &NoHolidays, utc("2025-03-10T23:59:00Z")));
    assert!(!is_open(&s, &NoHolidays, utc("2025-03-11T00:00:00Z")));
    assert_eq!(
        fields(
            r#"{"mode": "custom", "timezone": "UTC", "days": [1], "windows": [{"start": "24:00", "end": "02:00"}]}"#
        ),
        ["windows[0].start"]
    );
}

#[test]
fn malformed_times_are_errors() {
    for bad in ["9:00", "09:60", "0900", "09:00:00", "ab:cd", "", "-1:00"] {
        let json = format!(
            r#"{{"mode": "custom", "timezone": "UTC", "days": [1], "windows": [{{"start": "{bad}", "end": "10:00"}}]}}"#
        );
        assert_eq!(fields(&json), ["windows[0].start"], "{bad:?}");
    }
}

#[test]
fn a_window_whose_start_equals_its_end_is_an_error() {
    assert_eq!(
        fields(
            r#"{"mode": "custom", "timezone": "UTC", "days": [1], "windows": [{"start": "10:00", "end": "10:00"}]}"#
        ),
        ["windows[0]"]
    );
}

#[test]
fn days_out_of_range_and_duplicates_point_at_their_index() {
    let e = errors(
        r#"{"mode": "custom", "timezone": "UTC", "days": [1, 0, 8, 1], "windows": [{"start": "09:00", "end": "10:00"}]}"#,
    );
    let f: Vec<&str> = e.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(f, ["days[1]", "days[2]", "days[3]"]);
    assert!(e[2].message.contains("duplicate"));
}

#[test]
fn empty_days_and_windows_are_errors() {
    assert_eq!(
        fields(r#"{"mode": "custom", "timezone": "UTC", "days": [], "windows": []}"#),
        ["days", "windows"]
    );
}

#[test]
fn custom_mode_requires_days_and_windows() {
    assert_eq!(fields(r#"{"mode": "custom", "timezone": "UTC"}"#), ["days", "windows"]);
}

#[test]
fn an_unknown_timezone_or_mode_is_reported_with_every_other_error() {
    let f = fields(r#"{"mode": "sometimes", "timezone": "Mars/Olympus", "calendar": "XX", "start_at": "tomorrow"}"#);
    assert_eq!(f, ["mode", "timezone", "calendar", "start_at"]);
}

#[test]
fn a_timezone_is_required_except_for_immediate() {
    assert_eq!(fields(r#"{"mode": "weekdays"}"#), ["timezone"]);
    let s = sched(r#"{"mode": "immediate"}"#);
    assert_eq!(s.timezone(), chrono_tz::UTC);
}

#[test]
fn an_absent_or_null_calendar_means_br_and_none_means_no_shipped_calendar() {
    let absent = sched(r#"{"mode": "weekdays", "timezone": "America/Sao_Paulo"}"#);
    assert_eq!(absent.calendar_code(), Some("BR"));
    let null = sched(r#"{"mode": "weekdays", "timezone": "America/Sao_Paulo", "calendar": null}"#);
    assert_eq!(null.calendar_code(), Some("BR"));
    let none = sched(r#"{"mode": "weekdays", "timezone": "America/Sao_Paulo", "calendar": "none"}"#);
    assert_eq!(none.calendar_code(), None);
    let state = sched(r#"{"mode": "weekdays", "timezone": "America/Sao_Paulo", "calendar": "br-sp"}"#);
    assert_eq!(state.calendar_code(), Some("BR-SP"));
}

#[test]
fn fields_a_mode_fixes_are_accepted_when_they_agree_and_rejected_otherwise() {
    sched(
        r#"{"mode": "weekdays", "timezone": "UTC", "days": [5,4,3,2,1], "windows": [{"start": "00:00", "end": "24:00"}], "skip_holidays": true}"#,
    );
    sched(r#"{"mode": "immediate", "days": null, "windows": null, "skip_holidays": false}"#);
    assert_eq!(
        fields(
            r#"{"mode": "weekdays", "timezone": "UTC", "days": [1,2], "windows": [{"start": "09:00", "end": "10:00"}], "skip_holidays": false}"#
        ),
        ["days", "windows", "skip_holidays"]
    );
    assert_eq!(
        fields(r#"{"mode": "immediate", "skip_holidays": true}"#),
        ["skip_holidays"]
    );
    assert_eq!(
        fields(r#"{"mode": "business_hours", "timezone": "UTC", "skip_holidays": false}"#),
        ["skip_holidays"]
    );
}

#[test]
fn business_hours_defaults_to_monday_to_friday_8_to_18() {
    let s = sched(DEFAULT_BUSINESS);
    let cal = br();
    assert!(!is_open(&s, &cal, sp("2025-03-11 07:59")));
    assert!(is_open(&s, &cal, sp("2025-03-11 08:00")));
    assert!(is_open(&s, &cal, sp("2025-03-11 17:59")));
    assert!(!is_open(&s, &cal, sp("2025-03-11 18:00")));
    assert!(!is_open(&s, &cal, sp("2025-03-15 10:00")), "Saturday");
}

#[test]
fn field_errors_serialise_as_field_and_message() {
    let e = FieldError {
        field: "days[2]".into(),
        message: "duplicate day 3".into(),
    };
    assert_eq!(
        serde_json::to_string(&e).unwrap(),
        r#"{"field":"days[2]","message":"duplicate day 3"}"#
    );
    assert_eq!(e.to_string(), "days[2]: duplicate day 3");
}

#[test]
fn a_parsed_schedule_round_trips_through_its_normalised_spec() {
    for json in [
        BUSINESS,
        DEFAULT_BUSINESS,
        r#"{"mode": "immediate", "start_at": "2025-03-01T09:00:00-03:00"}"#,
        r#"{"mode": "weekdays", "timezone": "Europe/Lisbon", "calendar": "none"}"#,
        r#"{"mode": "custom", "timezone": "UTC", "days": [7, 1], "windows": [{"start": "22:00", "end": "02:00"}, {"start": "08:00", "end": "24:00"}], "skip_holidays": false}"#,
    ] {
        let s = sched(json);
        let back = Schedule::parse(s.to_spec(), cals()).unwrap();
        assert_eq!(back, s, "{json}");
    }
    let days = sched(DEFAULT_BUSINESS).to_spec().days.unwrap();
    assert_eq!(days, [1, 2, 3, 4, 5]);
}

// ------------------------------------------------------------- evaluation

#[test]
fn business_hours_are_open_at_10_on_a_tuesday() {
    assert!(is_open(&sched(BUSINESS), &br(), sp("2025-03-11 10:00")));
}

#[test]
fn next_open_is_the_instant_itself_when_open() {
    let t = sp("2025-03-11 10:00");
    assert_eq!(next_open(&sched(BUSINESS), &br(), t), Some(t));
}

#[test]
fn closed_on_friday_evening_opens_on_monday_morning() {
    let s = sched(BUSINESS);
    let got = next_open(&s, &br(), sp("2025-03-14 19:00"));
    assert_eq!(got, Some(sp("2025-03-17 09:00")));
    assert_eq!(got, Some(utc("2025-03-17T12:00:00Z")));
}

#[test]
fn carnival_monday_and_tuesday_are_skipped_but_ash_wednesday_is_open() {
    let s = sched(BUSINESS);
    let cal = br();
    // Carnival 2025: Mon Mar 3, Tue Mar 4; Ash Wednesday Mar 5.
    assert!(!is_open(&s, &cal, sp("2025-03-03 10:00")));
    assert!(!is_open(&s, &cal, sp("2025-03-04 10:00")));
    assert_eq!(
        next_open(&s, &cal, sp("2025-02-28 19:00")),
        Some(sp("2025-03-05 09:00"))
    );
}

#[test]
fn a_tenant_blocking_ash_wednesday_pushes_carnival_reopening_to_thursday() {
    let s = sched(BUSINESS);
    let extra = [NaiveDate::from_ymd_opt(2025, 3, 5).unwrap()];
    let cal = s.holiday_lookup(cals(), &extra);
    assert_eq!(
        next_open(&s, &cal, sp("2025-02-28 19:00")),
        Some(sp("2025-03-06 09:00"))
    );
}

#[test]
fn new_years_eve_evening_reopens_on_january_2() {
    let s = sched(BUSINESS);
    assert_eq!(
        next_open(&s, &br(), sp("2025-12-31 19:00")),
        Some(sp("2026-01-02 09:00"))
    );
}

#[test]
fn a_state_calendar_blocks_its_own_holiday() {
    let s = sched(r#"{"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR-SP"}"#);
    let cals = cals();
    let cal = s.holiday_lookup(cals, &[]);
    // July 9 2025 is a Wednesday: state holiday in São Paulo only.
    assert!(!is_open(&s, &cal, sp("2025-07-09 10:00")));
    assert!(is_open(&sched(BUSINESS), &br(), sp("2025-07-09 10:00")));
}

#[test]
fn a_window_spanning_midnight_is_open_at_1am() {
    let s = custom("America/Sao_Paulo", "[5]", &[("22:00", "02:00")], true);
    let cal = br();
    assert!(
        is_open(&s, &cal, sp("2025-03-15 01:00")),
        "Saturday 01:00 belongs to Friday"
    );
    assert!(!is_open(&s, &cal, sp("2025-03-15 02:00")));
    assert!(!is_open(&s, &cal, sp("2025-03-14 21:59")));
    assert!(is_open(&s, &cal, sp("2025-03-14 22:00")));
    assert_eq!(
        next_open(&s, &cal, sp("2025-03-14 12:00")),
        Some(sp("2025-03-14 22:00"))
    );
    assert_eq!(
        next_close(&s, &cal, sp("2025-03-14 23:00")),
        Some(sp("2025-03-15 02:00"))
    );
}

#[test]
fn a_midnight_window_starting_on_a_holiday_is_closed_even_after_midnight() {
    // Good Friday 2025-04-18.
    let s = custom("America/Sao_Paulo", "[5]", &[("22:00", "02:00")], true);
    assert!(!is_open(&s, &br(), sp("2025-04-18 23:00")));
    assert!(!is_open(&s, &br(), sp("2025-04-19 01:00")));
    assert_eq!(
        next_open(&s, &br(), sp("2025-04-18 12:00")),
        Some(sp("2025-04-25 22:00"))
    );
}

#[test]
fn a_midnight_window_from_the_eve_stays_open_into_a_holiday() {
    // Thursday 2025-04-17 22:00 -> Good Friday 02:00: owned by Thursday.
    let s = custom("America/Sao_Paulo", "[4]", &[("22:00", "02:00")], true);
    assert!(is_open(&s, &br(), sp("2025-04-18 01:30")));
}

#[test]
fn nothing_opens_before_start_at() {
    let mut json: serde_json::Value = serde_json::from_str(BUSINESS).unwrap();
    json["start_at"] = "2025-03-12T13:30:00-03:00".into();
    let s = Schedule::parse(serde_json::from_value(json).unwrap(), cals()).unwrap();
    let cal = br();
    assert!(!is_open(&s, &cal, sp("2025-03-11 10:00")));
    assert_eq!(
        next_open(&s, &cal, sp("2025-03-11 10:00")),
        Some(sp("2025-03-12 13:30"))
    );
    assert_eq!(
        next_close(&s, &cal, sp("2025-03-11 10:00")),
        Some(sp("2025-03-11 10:00"))
    );
    assert!(is_open(&s, &cal, sp("2025-03-12 13:30")));
    // start_at in the evening: next window.
    let mut json: serde_json::Value = serde_json::from_str(BUSINESS).unwrap();
    json["start_at"] = "2025-03-14T20:00:00-03:00".into();
    let s = Schedule::parse(serde_json::from_value(json).unwrap(), cals()).unwrap();
    assert_eq!(
        next_open(&s, &cal, sp("2025-03-01 10:00")),
        Some(sp("2025-03-17 09:00"))
    );
}

#[test]
fn a_schedule_whose_only_day_is_always_a_tenant_holiday_never_opens() {
    let s = custom("America/Sao_Paulo", "[3]", &[("09:00", "18:00")], true);
    let mut wednesdays = Vec::new();
    let mut d = NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(); // a Wednesday
    while d.year_ce().1 < 2030 {
        wednesdays.push(d);
        d += Duration::days(7);
    }
    let cal = WithExtra::new(cals().get("BR"), &wednesdays);
    let from = sp("2025-01-01 00:00");
    assert_eq!(next_open(&s, &cal, from), None);
    assert!(!is_open(&s, &cal, sp("2025-01-08 10:00")));
    assert_eq!(next_close(&s, &cal, from), Some(from));
    let pace = Pacing {
        min_interval_seconds: 1.0,
        max_interval_seconds: 1.0,
    };
    // The estimate looks further ahead: it opens after the tenant list ends (60 sends
    // planned 1.02 s apart: the minimum plus the send gate's margin and as much slack).
    assert_eq!(
        estimate_completion(&s, &cal, &pace, 60, from),
        Some(sp("2030-01-02 09:01") + Duration::milliseconds(1_200))
    );
}

use chrono::Datelike as _;

#[test]
fn immediate_is_always_open_even_on_holidays() {
    let s = sched(r#"{"mode": "immediate"}"#);
    let t = sp("2025-12-25 03:00");
    assert!(is_open(&s, &br(), t));
    assert_eq!(next_open(&s, &br(), t), Some(t));
    assert_eq!(next_close(&s, &br(), t), None);
}

#[test]
fn weekdays_mode_is_one_stretch_from_monday_midnight_to_saturday_midnight() {
    let s = sched(r#"{"mode": "weekdays", "timezone": "America/Sao_Paulo"}"#);
    let cal = br();
    assert!(is_open(&s, &cal, sp("2025-03-10 00:00")));
    assert!(is_open(&s, &cal, sp("2025-03-14 23:59")));
    assert!(!is_open(&s, &cal, sp("2025-03-15 00:00")));
    assert_eq!(
        next_close(&s, &cal, sp("2025-03-10 10:00")),
        Some(sp("2025-03-15 00:00"))
    );
    // Week of Good Friday: closes Friday 00:00.
    assert_eq!(
        next_close(&s, &cal, sp("2025-04-14 10:00")),
        Some(sp("2025-04-18 00:00"))
    );
}

#[test]
fn next_close_is_the_instant_itself_when_closed() {
    let t = sp("2025-03-11 20:00");
    assert_eq!(next_close(&sched(BUSINESS), &br(), t), Some(t));
}

#[test]
fn overlapping_and_adjacent_windows_merge_into_one_stretch() {
    let s = custom(
        "UTC",
        "[1,2,3,4,5]",
        &[("11:00", "14:00"), ("09:00", "12:00"), ("14:00", "15:00")],
        false,
    );
    assert_eq!(
        next_close(&s, &NoHolidays, utc("2025-03-10T10:00:00Z")),
        Some(utc("2025-03-10T15:00:00Z"))
    );
}

#[test]
fn a_custom_schedule_open_around_the_clock_never_closes_within_the_horizon() {
    let s = custom("UTC", "[1,2,3,4,5,6,7]", &[("00:00", "24:00")], false);
    assert_eq!(next_close(&s, &NoHolidays, utc("2025-03-10T10:00:00Z")), None);
}

#[test]
fn estimate_completion_counts_only_open_time() {
    let s = sched(BUSINESS);
    let cal = br();
    let pace = Pacing {
        min_interval_seconds: 30.0,
        max_interval_seconds: 90.0,
    }; // mean 60.00008 s: gaps under the planned floor (30.1 s) are raised to it
    let ms = |n: i64| Duration::milliseconds(n);
    let from = sp("2025-03-11 17:30");
    assert_eq!(estimate_completion(&s, &cal, &pace, 0, from), Some(from));
    // 60 messages = 1 h of open time: 30 min today, 30 min tomorrow.
    assert_eq!(
        estimate_completion(&s, &cal, &pace, 60, from),
        Some(sp("2025-03-12 09:30") + ms(5))
    );
    // 2 h from Friday 17:00: 1 h Friday, 1 h Monday.
    assert_eq!(
        estimate_completion(&s, &cal, &pace, 120, sp("2025-03-14 17:00")),
        Some(sp("2025-03-17 10:00") + ms(10))
    );
    // From a closed instant: starts counting when it opens.
    assert_eq!(
        estimate_completion(&s, &cal, &pace, 9 * 60, sp("2025-02-28 19:00")),
        Some(sp("2025-03-06 09:00") + ms(45)),
        "one full day after Carnival, and the 45 ms over it the next morning"
    );
}

#[test]
fn estimate_completion_rejects_nonsense_pacing() {
    let s = sched(BUSINESS);
    let from = sp("2025-03-11 10:00");
    for (min, max) in [(-1.0, 5.0), (10.0, 5.0), (f64::NAN, 1.0), (1.0, f64::INFINITY)] {
        let p = Pacing {
            min_interval_seconds: min,
            max_interval_seconds: max,
        };
        assert_eq!(estimate_completion(&s, &br(), &p, 10, from), None, "{min} {max}");
    }
}

/// How long 1,000 sends take from 2025-12-25 00:00 UTC, always open, pacing `min`–`max` s.
fn thousand_sends_always_open(min: f64, max: f64) -> Option<Duration> {
    let from = utc("2025-12-25T00:00:00Z");
    let p = Pacing {
        min_interval_seconds: min,
        max_interval_seconds: max,
    };
    estimate_completion(&sched(r#"{"mode": "immediate"}"#), &br(), &p, 1000, from).map(|at| at - from)
}

#[test]
fn estimate_completion_for_immediate_is_plain_arithmetic() {
    // Mean 1.5002 s: the gaps drawn under the planned floor (1.02 s) are raised to it.
    assert_eq!(
        thousand_sends_always_open(1.0, 2.0),
        Some(Duration::milliseconds(1_500_200))
    );
    // Without a minimum there is no floor: the mean of the range.
    assert_eq!(thousand_sends_always_open(0.0, 2.0), Some(Duration::seconds(1000)));
}

#[test]
fn estimate_completion_counts_the_gap_the_plan_keeps_not_the_bare_minimum() {
    // 600 a minute: the plan spaces sends 120 ms apart (100 ms, the send gate's 10 ms margin
    // and as much slack), so 1,000 sends take 2 minutes, not 100 s.
    assert_eq!(thousand_sends_always_open(0.1, 0.1), Some(Duration::seconds(120)));
}

// -------------------------------------------------------------------- DST

#[test]
fn a_window_starting_in_the_new_york_spring_forward_gap_opens_at_3am() {
    use chrono_tz::America::New_York;
    // 2025-03-09 02:00 EST -> 03:00 EDT.
    let s = custom("America/New_York", "[7]", &[("02:30", "05:00")], false);
    let got = next_open(&s, &NoHolidays, at(New_York, "2025-03-09 00:00"));
    assert_eq!(got, Some(utc("2025-03-09T07:00:00Z")));
    assert_eq!(got, Some(at(New_York, "2025-03-09 03:00")));
}

#[test]
fn a_window_starting_in_the_new_york_fall_back_overlap_takes_the_first_occurrence() {
    use chrono_tz::America::New_York;
    // 2025-11-02 02:00 EDT -> 01:00 EST: 01:30 happens twice.
    let s = custom("America/New_York", "[7]", &[("01:30", "03:00")], false);
    let got = next_open(&s, &NoHolidays, at(New_York, "2025-11-02 00:00"));
    assert_eq!(got, Some(utc("2025-11-02T05:30:00Z")), "01:30 EDT");
    // Open through both 01:30s until 03:00 EST: 2 h 30 min.
    assert_eq!(
        next_close(&s, &NoHolidays, utc("2025-11-02T05:30:00Z")),
        Some(utc("2025-11-02T08:00:00Z"))
    );
}

#[test]
fn lisbon_gap_and_overlap_follow_the_same_rules() {
    // 2025-03-30 01:00 WET -> 02:00 WEST; 2025-10-26 02:00 WEST -> 01:00 WET.
    let s = custom("Europe/Lisbon", "[7]", &[("01:30", "03:00")], false);
    assert_eq!(
        next_open(&s, &NoHolidays, utc("2025-03-29T12:00:00Z")),
        Some(utc("2025-03-30T01:00:00Z")),
        "02:00 WEST, the end of the gap"
    );
    assert_eq!(
        next_open(&s, &NoHolidays, utc("2025-10-25T12:00:00Z")),
        Some(utc("2025-10-26T00:30:00Z")),
        "01:30 WEST, the first 01:30"
    );
}

#[test]
fn sao_paulo_2018_midnight_gap_opens_at_1am() {
    // 2018-11-04 00:00 -03 -> 01:00 -02 (a Sunday).
    let s = custom("America/Sao_Paulo", "[7]", &[("00:00", "06:00")], false);
    let got = next_open(&s, &NoHolidays, utc("2018-11-03T15:00:00Z"));
    assert_eq!(got, Some(utc("2018-11-04T03:00:00Z")));
    assert!(!is_open(&s, &NoHolidays, utc("2018-11-04T02:59:59Z")));
    assert!(is_open(&s, &NoHolidays, utc("2018-11-04T03:00:00Z")));
    // A Saturday window ending at 24:00 ends at the same instant.
    let sat = custom("America/Sao_Paulo", "[6]", &[("23:00", "24:00")], false);
    assert_eq!(
        next_close(&sat, &NoHolidays, utc("2018-11-04T02:30:00Z")),
        Some(utc("2018-11-04T03:00:00Z"))
    );
}

#[test]
fn a_window_entirely_inside_the_sao_paulo_gap_is_empty_that_day() {
    let s = custom("America/Sao_Paulo", "[7]", &[("00:00", "00:30")], false);
    assert_eq!(
        next_open(&s, &NoHolidays, utc("2018-11-03T15:00:00Z")),
        Some(utc("2018-11-11T02:00:00Z")),
        "next Sunday 00:00 -02"
    );
}

#[test]
fn sao_paulo_2019_overlap_window_opens_at_the_first_2330() {
    // 2019-02-17 00:00 -02 -> 2019-02-16 23:00 -03: 23:xx happens twice.
    let s = custom("America/Sao_Paulo", "[6]", &[("23:30", "24:00")], false);
    let got = next_open(&s, &NoHolidays, utc("2019-02-16T20:00:00Z"));
    assert_eq!(got, Some(utc("2019-02-17T01:30:00Z")), "23:30 -02");
    assert!(
        is_open(&s, &NoHolidays, utc("2019-02-17T02:45:00Z")),
        "second 23:45 (-03)"
    );
    assert_eq!(
        next_close(&s, &NoHolidays, utc("2019-02-17T01:30:00Z")),
        Some(utc("2019-02-17T03:00:00Z")),
        "24:00 = Sunday 00:00 -03"
    );
}

// ------------------------------------------------------------ consistency

fn check_consistency(s: &Schedule, cal: &dyn HolidayLookup, from: DateTime<Utc>, hours: i64) {
    let mut t = from;
    let end = from + Duration::hours(hours);
    while t < end {
        let open = is_open(s, cal, t);
        let no = next_open(s, cal, t).unwrap();
        assert!(no >= t);
        assert_eq!(open, no == t, "is_open vs next_open at {t}");
        assert!(is_open(s, cal, no), "open at next_open({t}) = {no}");
        if no > t {
            assert!(!is_open(s, cal, no - Duration::seconds(1)), "closed before {no}");
        }
        if let Some(nc) = next_close(s, cal, t) {
            assert!(nc >= t);
            assert!(!is_open(s, cal, nc), "closed at next_close({t}) = {nc}");
            assert_eq!(open, nc > t);
            if nc > t {
                assert!(is_open(s, cal, nc - Duration::seconds(1)), "open before {nc}");
            }
        }
        t += Duration::minutes(37);
    }
}

#[test]
fn is_open_next_open_and_next_close_agree_across_weeks_holidays_and_dst() {
    let cal = br();
    check_consistency(&sched(BUSINESS), &cal, sp("2025-02-25 00:00"), 24 * 14);
    check_consistency(&sched(BUSINESS), &cal, sp("2025-12-20 00:00"), 24 * 16);
    check_consistency(
        &custom(
            "America/Sao_Paulo",
            "[5,6]",
            &[("22:00", "02:00"), ("09:00", "12:00")],
            true,
        ),
        &cal,
        sp("2025-04-10 00:00"),
        24 * 14,
    );
    check_consistency(
        &custom("America/Sao_Paulo", "[6,7]", &[("23:00", "01:30")], false),
        &NoHolidays,
        utc("2018-10-30T00:00:00Z"),
        24 * 10,
    );
    check_consistency(
        &custom("America/Sao_Paulo", "[6,7]", &[("22:30", "23:45")], false),
        &NoHolidays,
        utc("2019-02-12T00:00:00Z"),
        24 * 10,
    );
    check_consistency(
        &custom("America/New_York", "[1,2,3,4,5,6,7]", &[("01:00", "03:00")], false),
        &NoHolidays,
        utc("2025-03-06T00:00:00Z"),
        24 * 7,
    );
    check_consistency(
        &custom("America/New_York", "[1,2,3,4,5,6,7]", &[("01:00", "03:00")], false),
        &NoHolidays,
        utc("2025-10-30T00:00:00Z"),
        24 * 7,
    );
}
