//! Campaign sending schedules: validation of the JSON DTO ([`ScheduleSpec`])
//! into a [`Schedule`], and pure, clock-free evaluation functions.
//!
//! # Semantics
//!
//! * A window `{"start": "09:00", "end": "18:00"}` is the half-open local
//!   wall-clock interval `[09:00, 18:00)`. `"24:00"` is accepted as an end
//!   (end of day). `end < start` spans midnight (`22:00`–`02:00`).
//! * A window belongs to the local date on which it **starts**: its weekday
//!   must be in `days` and (with `skip_holidays`) that start date must not be
//!   a blocking holiday. The part after midnight of a Friday 22:00–02:00
//!   window is open on Saturday even if Saturday is not in `days` or is a
//!   holiday; a holiday Friday suppresses the whole Friday-night window.
//! * Overlapping windows are allowed and simply merge.
//! * DST: a window edge at a local time that does not exist (spring-forward
//!   gap) moves to the first instant after the gap; an ambiguous local time
//!   (fall-back overlap) takes the earliest instant. A window whose both
//!   edges fall in the same gap is empty that day.
//! * `start_at`: nothing is open before it.
//! * Searches are bounded by [`HORIZON_DAYS`] local days, so they always
//!   terminate.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::calendar::holidays::{Calendars, HolidayLookup, WithExtra};

/// Calendar used when the spec has no `calendar` (absent or null).
pub const DEFAULT_CALENDAR: &str = "BR";

/// How many local days `next_open` / `next_close` look ahead before giving up.
pub const HORIZON_DAYS: u64 = 3 * 366;

/// Look-ahead of [`estimate_completion`] (it walks many stretches).
const ESTIMATE_HORIZON_DAYS: u64 = 100 * 366;

const MON_FRI: u8 = 0b0001_1111;
const ALL_DAYS: u8 = 0b0111_1111;
const DAY: u16 = 24 * 60;
const WHOLE_DAY: Window = Window { start: 0, end: DAY };
const BUSINESS_HOURS: Window = Window {
    start: 8 * 60,
    end: 18 * 60,
};

/// The schedule JSON as the API receives it. Validate with [`Schedule::parse`]. Stored
/// normalised in `campaigns.schedule` (JSON, mapped by sea-orm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, sea_orm::FromJsonQueryResult)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `immediate` | `weekdays` | `business_hours` | `custom`.
    #[schema(value_type = Mode)]
    pub mode: String,
    /// IANA zone, e.g. `America/Sao_Paulo`. Required except for `immediate`.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Calendar code (`BR`, `BR-SP`, …); absent/null = [`DEFAULT_CALENDAR`];
    /// `"none"` = no shipped calendar (tenant dates still apply).
    #[serde(default)]
    pub calendar: Option<String>,
    /// RFC 3339 instant; never open before it.
    #[serde(default)]
    pub start_at: Option<String>,
    /// ISO weekdays, 1 = Monday … 7 = Sunday.
    #[serde(default)]
    pub days: Option<Vec<i64>>,
    #[serde(default)]
    pub windows: Option<Vec<WindowSpec>>,
    #[serde(default)]
    pub skip_holidays: Option<bool>,
}

/// `{"start": "HH:MM", "end": "HH:MM"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub start: String,
    pub end: String,
}

/// Validation problems name a path relative to the schedule (`windows[0].start`,
/// `days[2]`, `timezone`, …); the API nests them under `schedule`.
pub use crate::error::FieldError;

/// A schedule's mode (PRODUCT §4): `immediate`, `weekdays`, `business_hours`, `custom`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ScheduleMode)]
pub enum Mode {
    Immediate,
    Weekdays,
    BusinessHours,
    Custom,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Immediate => "immediate",
            Mode::Weekdays => "weekdays",
            Mode::BusinessHours => "business_hours",
            Mode::Custom => "custom",
        }
    }

    fn from_name(s: &str) -> Option<Mode> {
        [Mode::Immediate, Mode::Weekdays, Mode::BusinessHours, Mode::Custom]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// Minutes from local midnight: `start` in 0..1440, `end` in 0..=1440,
/// `start != end`; `end < start` spans midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Window {
    start: u16,
    end: u16,
}

impl Window {
    fn spans_midnight(self) -> bool {
        self.end < self.start
    }
}

/// Sending pace: the gap between two messages is uniform in
/// `[min_interval_seconds, max_interval_seconds]`. Stored in `campaigns.pacing` (JSON, mapped
/// by sea-orm).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, sea_orm::FromJsonQueryResult)]
pub struct Pacing {
    pub min_interval_seconds: f64,
    pub max_interval_seconds: f64,
}

impl Pacing {
    /// The minimum interval in ms (rounded; 0 without a minimum).
    pub fn min_interval_ms(&self) -> u64 {
        (self.min_interval_seconds * 1000.0).round().max(0.0) as u64
    }

    /// The gap (ms) the send gate enforces between two of the campaign's sends: the minimum
    /// plus its departure margin ([`guarded_interval_ms`]); 0 when it sends as fast as it can.
    pub fn guarded_interval_ms(&self) -> u64 {
        guarded_interval_ms(self.min_interval_ms())
    }

    /// The shortest gap (ms) the beat plans between two sends: the gate's gap plus one more
    /// departure margin of slack. The gate holds a send back until the last one left a
    /// guarded gap ago; planned at exactly that gap, a send whose predecessor left a few ms
    /// late would be held and leave late too, and with `min = max` every later send of the
    /// campaign after it (the delays add up send after send). With the slack a late send is
    /// absorbed within a few sends, at the cost of one margin per gap (1 % of the minimum, at
    /// least 10 ms, at most 50 ms: below 1 s the plan spaces sends by the minimum plus 20 ms).
    pub fn planned_gap_floor_ms(&self) -> u64 {
        let min = self.min_interval_ms();
        guarded_interval_ms(min) + departure_margin_ms(min)
    }

    /// The mean gap (s) the beat plans between two sends: a gap drawn uniformly from
    /// `[min, max]` s and raised to [`Pacing::planned_gap_floor_ms`]
    /// (`scheduler::pacing::gap`), so E[max(U(min, max), floor)]. With `min = max = 1 s` it
    /// is 1.02 s; at 600 a minute (0.1 s) 0.12 s. For valid pacing (`0 ≤ min ≤ max`, finite).
    pub fn mean_planned_gap_seconds(&self) -> f64 {
        let (min, max) = (
            self.min_interval_seconds,
            self.max_interval_seconds.max(self.min_interval_seconds),
        );
        let floor = self.planned_gap_floor_ms() as f64 / 1000.0;
        if floor <= min {
            (min + max) / 2.0
        } else if floor >= max {
            floor
        } else {
            // ∫ max(x, floor) dx over [min, max], divided by its width.
            (floor * (floor - min) + (max * max - floor * floor) / 2.0) / (max - min)
        }
    }
}

/// Added to a campaign's minimum interval (ms) where it is enforced, at the send gate: what a
/// request may lose on its way to the gateway's handler (scheduling, the HTTP client, the
/// server's parsing) on a loaded machine, so that the gap the gateway sees is still the
/// minimum. 1 % of the minimum, at least 10 ms, at most 50 ms; none without a minimum.
/// (`benches/paced.rs` measured up to ~10 ms of jitter at 200 sends/s on 2 cores, and CI
/// twice recorded a request 9–10 ms later on its way than the one after it, against a floor
/// of 5 ms then. The floor counts twice in the plan ([`Pacing::planned_gap_floor_ms`]): a
/// 200 ms minimum is planned 220 ms apart, 273 sends a minute (was 285 with the 5 ms floor);
/// from 1 s up it changes nothing.)
pub fn departure_margin_ms(min_interval_ms: u64) -> u64 {
    if min_interval_ms == 0 {
        0
    } else {
        (min_interval_ms / 100).clamp(10, 50)
    }
}

/// The minimum interval as the send gate enforces it: the minimum plus its margin (ms).
pub fn guarded_interval_ms(min_interval_ms: u64) -> u64 {
    min_interval_ms + departure_margin_ms(min_interval_ms)
}

/// A validated schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    mode: Mode,
    tz: Tz,
    calendar: Option<String>,
    start_at: Option<DateTime<Utc>>,
    /// Bit `n` = weekday with `num_days_from_monday() == n`.
    days: u8,
    /// Sorted by start.
    windows: Vec<Window>,
    skip_holidays: bool,
}

impl Schedule {
    /// Validate a spec. All problems are reported, each with its field path.
    ///
    /// Fields a mode fixes (`days`/`windows` for `immediate` and `weekdays`,
    /// `skip_holidays` for every mode but `custom`) may be absent, null, or
    /// equal to what the mode implies; any other value is an error (it would
    /// otherwise be silently ignored) that points to mode `custom`.
    pub fn parse(spec: ScheduleSpec, calendars: &Calendars) -> Result<Schedule, Vec<FieldError>> {
        let mut errs = Vec::new();

        let mode = Mode::from_name(&spec.mode);
        if mode.is_none() {
            errs.push(FieldError::new(
                "mode",
                format!(
                    "unknown mode {:?}; expected one of immediate, weekdays, business_hours, custom",
                    spec.mode
                ),
            ));
        }
        let immediate = mode == Some(Mode::Immediate);

        let tz = match spec.timezone.as_deref() {
            Some(name) => match name.parse::<Tz>() {
                Ok(tz) => Some(tz),
                Err(_) => {
                    errs.push(FieldError::new(
                        "timezone",
                        format!("unknown IANA time zone {name:?} (e.g. \"America/Sao_Paulo\")"),
                    ));
                    None
                }
            },
            None if immediate => Some(Tz::UTC),
            None => {
                errs.push(FieldError::new(
                    "timezone",
                    "is required (IANA name, e.g. \"America/Sao_Paulo\")",
                ));
                None
            }
        };

        let calendar = match spec.calendar.as_deref() {
            Some(c) if c.eq_ignore_ascii_case("none") => None,
            Some(c) => match calendars.get(c) {
                Some(cal) => Some(cal.code().to_string()),
                None => {
                    errs.push(FieldError::new(
                        "calendar",
                        format!("unknown calendar {c:?} (use a code such as \"BR\" or \"BR-SP\", or \"none\")"),
                    ));
                    None
                }
            },
            None => match calendars.get(DEFAULT_CALENDAR) {
                Some(cal) => Some(cal.code().to_string()),
                None if immediate => None,
                None => {
                    errs.push(FieldError::new(
                        "calendar",
                        format!("the default calendar {DEFAULT_CALENDAR:?} is not loaded; name one or use \"none\""),
                    ));
                    None
                }
            },
        };

        let start_at = spec
            .start_at
            .as_deref()
            .and_then(|s| match DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t.with_timezone(&Utc)),
                Err(e) => {
                    errs.push(FieldError::new(
                        "start_at",
                        format!("must be an RFC 3339 instant such as \"2025-03-01T09:00:00-03:00\" ({e})"),
                    ));
                    None
                }
            });

        // Syntax of days / windows (whatever the mode).
        let mut days_ok = true;
        let days = spec.days.as_ref().map(|list| {
            if list.is_empty() {
                errs.push(FieldError::new("days", "must not be empty"));
                days_ok = false;
            }
            let mut mask = 0u8;
            for (i, &d) in list.iter().enumerate() {
                if !(1..=7).contains(&d) {
                    errs.push(FieldError::new(
                        format!("days[{i}]"),
                        format!("must be an ISO weekday 1 (Monday) … 7 (Sunday), got {d}"),
                    ));
                    days_ok = false;
                    continue;
                }
                let bit = 1u8 << (d - 1);
                if mask & bit != 0 {
                    errs.push(FieldError::new(format!("days[{i}]"), format!("duplicate day {d}")));
                    days_ok = false;
                }
                mask |= bit;
            }
            mask
        });

        let mut windows_ok = true;
        let windows = spec.windows.as_ref().map(|list| {
            if list.is_empty() {
                errs.push(FieldError::new("windows", "must not be empty"));
                windows_ok = false;
            }
            let mut out = Vec::with_capacity(list.len());
            for (i, w) in list.iter().enumerate() {
                let start = parse_hhmm(&w.start, false).map_err(|m| {
                    errs.push(FieldError::new(format!("windows[{i}].start"), m));
                });
                let end = parse_hhmm(&w.end, true).map_err(|m| {
                    errs.push(FieldError::new(format!("windows[{i}].end"), m));
                });
                match (start, end) {
                    (Ok(s), Ok(e)) if s == e => {
                        errs.push(FieldError::new(
                            format!("windows[{i}]"),
                            "start and end must differ (use 00:00–24:00 for the whole day)",
                        ));
                        windows_ok = false;
                    }
                    (Ok(start), Ok(end)) => out.push(Window { start, end }),
                    _ => windows_ok = false,
                }
            }
            out.sort();
            out
        });

        // Mode rules.
        let mut final_days = ALL_DAYS;
        let mut final_windows = vec![WHOLE_DAY];
        let mut skip_holidays = false;
        if let Some(mode) = mode {
            let name = mode.as_str();
            let fixed_days = |errs: &mut Vec<FieldError>, implied: u8, what: &str| {
                if days_ok && days.is_some_and(|d| d != implied) {
                    errs.push(FieldError::new(
                        "days",
                        format!("mode {name:?} always uses {what}; omit it or use mode \"custom\""),
                    ));
                }
            };
            let fixed_windows = |errs: &mut Vec<FieldError>| {
                if windows_ok && windows.as_ref().is_some_and(|w| w.as_slice() != [WHOLE_DAY]) {
                    errs.push(FieldError::new(
                        "windows",
                        format!("mode {name:?} is open all day; omit it or use mode \"custom\""),
                    ));
                }
            };
            let fixed_skip = |errs: &mut Vec<FieldError>, implied: bool| {
                if spec.skip_holidays.is_some_and(|s| s != implied) {
                    errs.push(FieldError::new(
                        "skip_holidays",
                        format!(
                            "mode {name:?} {} holidays; omit it or use mode \"custom\"",
                            if implied { "always skips" } else { "ignores" }
                        ),
                    ));
                }
            };
            match mode {
                Mode::Immediate => {
                    fixed_days(&mut errs, ALL_DAYS, "every day");
                    fixed_windows(&mut errs);
                    fixed_skip(&mut errs, false);
                }
                Mode::Weekdays => {
                    fixed_days(&mut errs, MON_FRI, "Monday–Friday");
                    fixed_windows(&mut errs);
                    fixed_skip(&mut errs, true);
                    final_days = MON_FRI;
                    skip_holidays = true;
                }
                Mode::BusinessHours => {
                    fixed_skip(&mut errs, true);
                    final_days = days.unwrap_or(MON_FRI);
                    final_windows = windows.clone().unwrap_or_else(|| vec![BUSINESS_HOURS]);
                    skip_holidays = true;
                }
                Mode::Custom => {
                    if spec.days.is_none() {
                        errs.push(FieldError::new("days", "is required for mode \"custom\""));
                    }
                    if spec.windows.is_none() {
                        errs.push(FieldError::new("windows", "is required for mode \"custom\""));
                    }
                    final_days = days.unwrap_or(0);
                    final_windows = windows.clone().unwrap_or_default();
                    skip_holidays = spec.skip_holidays.unwrap_or(true);
                }
            }
        }

        match (mode, tz) {
            (Some(mode), Some(tz)) if errs.is_empty() => Ok(Schedule {
                mode,
                tz,
                calendar,
                start_at,
                days: final_days,
                windows: final_windows,
                skip_holidays,
            }),
            _ => Err(errs),
        }
    }

    /// The normalised spec of this schedule (defaults filled in, days
    /// sorted, `calendar` = code or `"none"`); parsing it gives the same
    /// schedule back.
    pub fn to_spec(&self) -> ScheduleSpec {
        let hhmm = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        ScheduleSpec {
            mode: self.mode.as_str().to_string(),
            timezone: Some(self.tz.name().to_string()),
            calendar: Some(self.calendar.clone().unwrap_or_else(|| "none".into())),
            start_at: self.start_at.map(|t| t.to_rfc3339()),
            days: Some(
                (0..7)
                    .filter(|b| self.days & (1 << b) != 0)
                    .map(|b| i64::from(b) + 1)
                    .collect(),
            ),
            windows: Some(
                self.windows
                    .iter()
                    .map(|w| WindowSpec {
                        start: hhmm(w.start),
                        end: hhmm(w.end),
                    })
                    .collect(),
            ),
            skip_holidays: Some(self.skip_holidays),
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// Code of the shipped calendar, `None` for `"calendar": "none"`.
    pub fn calendar_code(&self) -> Option<&str> {
        self.calendar.as_deref()
    }

    pub fn start_at(&self) -> Option<DateTime<Utc>> {
        self.start_at
    }

    pub fn skip_holidays(&self) -> bool {
        self.skip_holidays
    }

    /// The holiday lookup this schedule should be evaluated with: its shipped
    /// calendar (if any, and loaded) plus the tenant's own dates.
    pub fn holiday_lookup<'a>(&self, calendars: &'a Calendars, tenant_dates: &'a [NaiveDate]) -> WithExtra<'a> {
        WithExtra::new(self.calendar.as_deref().and_then(|c| calendars.get(c)), tenant_dates)
    }

    fn always_open(&self) -> bool {
        self.mode == Mode::Immediate
    }

    fn local_date(&self, at: DateTime<Utc>) -> NaiveDate {
        at.with_timezone(&self.tz).date_naive()
    }

    fn day_active(&self, cal: &dyn HolidayLookup, d: NaiveDate) -> bool {
        self.days & (1 << d.weekday().num_days_from_monday()) != 0 && !(self.skip_holidays && cal.blocks(d))
    }

    /// Calls `f(start, end)` for every non-empty open interval, in start
    /// order, of the windows owned by `first` and the following days
    /// (`days` owner days in all), skipping intervals that end at or before
    /// `not_before`. Stops at the first `Some` returned by `f`; `None` when
    /// the horizon is exhausted. No allocation.
    fn walk<R>(
        &self,
        cal: &dyn HolidayLookup,
        first: NaiveDate,
        days: u64,
        not_before: DateTime<Utc>,
        mut f: impl FnMut(DateTime<Utc>, DateTime<Utc>) -> Option<R>,
    ) -> Option<R> {
        let mut owner = first;
        for _ in 0..days {
            let next = owner.succ_opt()?;
            if self.day_active(cal, owner) {
                for w in &self.windows {
                    let end = if w.spans_midnight() {
                        resolve(self.tz, next, w.end)
                    } else {
                        resolve(self.tz, owner, w.end)
                    };
                    let Some(end) = end else { continue };
                    if end <= not_before {
                        continue;
                    }
                    let Some(start) = resolve(self.tz, owner, w.start) else {
                        continue;
                    };
                    if start >= end {
                        continue;
                    }
                    if let Some(r) = f(start, end) {
                        return Some(r);
                    }
                }
            }
            owner = next;
        }
        None
    }
}

/// Whether sending is allowed at `at`.
pub fn is_open(s: &Schedule, cal: &dyn HolidayLookup, at: DateTime<Utc>) -> bool {
    if s.start_at.is_some_and(|t| at < t) {
        return false;
    }
    if s.always_open() {
        return true;
    }
    let Some(first) = s.local_date(at).pred_opt() else {
        return false;
    };
    // The first interval ending after `at` is the only candidate: later ones
    // start no earlier.
    s.walk(cal, first, 2, at, |start, _| Some(start <= at)) == Some(true)
}

/// `at` if open; otherwise the earliest instant after `at` when the schedule
/// opens; `None` if it does not open within [`HORIZON_DAYS`].
pub fn next_open(s: &Schedule, cal: &dyn HolidayLookup, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let at = s.start_at.map_or(at, |t| t.max(at));
    if s.always_open() {
        return Some(at);
    }
    let first = s.local_date(at).pred_opt()?;
    s.walk(cal, first, HORIZON_DAYS + 1, at, |start, _| Some(start.max(at)))
}

/// The earliest instant ≥ `at` at which the schedule is closed: the end of
/// the current open stretch (adjacent windows and days merge), or `at`
/// itself when closed at `at`. `None` when it never closes within
/// [`HORIZON_DAYS`] (e.g. `immediate`).
pub fn next_close(s: &Schedule, cal: &dyn HolidayLookup, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if s.start_at.is_some_and(|t| at < t) {
        return Some(at);
    }
    if s.always_open() {
        return None;
    }
    let first = s.local_date(at).pred_opt()?;
    let mut cur = at;
    let found = s.walk(cal, first, HORIZON_DAYS + 1, at, |start, end| {
        if start > cur {
            Some(cur)
        } else {
            cur = cur.max(end);
            None
        }
    });
    // Horizon exhausted: closed at `at` if no interval covered it (nothing
    // opens at all), otherwise open throughout.
    found.or_else(|| (cur == at).then_some(at))
}

/// When `remaining` messages will have been sent, counting the mean planned gap
/// ([`Pacing::mean_planned_gap_seconds`]) × `remaining` seconds of *open* time from `from`
/// (windows, days, holidays and `start_at` respected). `Some(from)` for `remaining == 0`; `None` for
/// invalid pacing (negative, NaN, min > max) or when the open time is not
/// found within 100 years.
pub fn estimate_completion(
    s: &Schedule,
    cal: &dyn HolidayLookup,
    pacing: &Pacing,
    remaining: u64,
    from: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if remaining == 0 {
        return Some(from);
    }
    let (min, max) = (pacing.min_interval_seconds, pacing.max_interval_seconds);
    if !(min.is_finite() && max.is_finite() && min >= 0.0 && max >= min) {
        return None;
    }
    let total_ms = pacing.mean_planned_gap_seconds() * remaining as f64 * 1000.0;
    // ~3 million years: beyond that chrono cannot represent the result anyway.
    if !total_ms.is_finite() || total_ms > 1e20 {
        return None;
    }
    let mut needed = Duration::milliseconds(total_ms.round() as i64);
    let from = s.start_at.map_or(from, |t| t.max(from));
    if s.always_open() {
        return from.checked_add_signed(needed);
    }
    let first = s.local_date(from).pred_opt()?;
    let mut covered = from;
    s.walk(cal, first, ESTIMATE_HORIZON_DAYS, from, |start, end| {
        let begin = start.max(covered);
        if end <= begin {
            return None;
        }
        let avail = end - begin;
        if needed <= avail {
            return Some(begin + needed);
        }
        needed -= avail;
        covered = end;
        None
    })
}

/// "HH:MM", 00:00–23:59; "24:00" too when `is_end`.
pub(crate) fn parse_hhmm(s: &str, is_end: bool) -> Result<u16, String> {
    let bad = || {
        format!(
            "expected \"HH:MM\" between 00:00 and 23:59{}, got {s:?}",
            if is_end { " (or 24:00)" } else { "" }
        )
    };
    let b = s.as_bytes();
    if b.len() != 5 || b[2] != b':' || ![0, 1, 3, 4].iter().all(|&i| b[i].is_ascii_digit()) {
        return Err(bad());
    }
    let h = u16::from(b[0] - b'0') * 10 + u16::from(b[1] - b'0');
    let m = u16::from(b[3] - b'0') * 10 + u16::from(b[4] - b'0');
    if h == 24 && m == 0 {
        return if is_end {
            Ok(DAY)
        } else {
            Err("24:00 is only allowed as a window end".into())
        };
    }
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

/// The UTC instant of local `date` + `minute` (0..=1440) in `tz`, with the
/// module's DST rules (gap → first instant after it; overlap → earliest).
pub(crate) fn resolve(tz: Tz, date: NaiveDate, minute: u16) -> Option<DateTime<Utc>> {
    let (date, minute) = if minute >= DAY {
        (date.succ_opt()?, minute - DAY)
    } else {
        (date, minute)
    };
    let time = NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0)?;
    let naive = date.and_time(time);
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => gap_end(tz, naive),
    }
}

/// `naive` does not exist in `tz`: the first instant whose local time is
/// after it, i.e. the end of the gap. Binary search on the monotone
/// "local time ≥ naive" over ±15 h (UTC offsets lie within −12 h…+14 h).
fn gap_end(tz: Tz, naive: NaiveDateTime) -> Option<DateTime<Utc>> {
    let local_ge = |secs: i64| {
        DateTime::from_timestamp(secs, 0).is_some_and(|u| {
            let off = tz.offset_from_utc_datetime(&u.naive_utc()).fix();
            u.naive_utc() + off >= naive
        })
    };
    let center = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (center - 15 * 3600, center + 15 * 3600);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if local_ge(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0)
}
