//! Holiday rules: the TOML representation of one `[[holiday]]` entry and the
//! validated [`Rule`] that computes its date in a given year.
//!
//! The file format is documented in `holidays/README.md`.

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::{Deserialize, Serialize};

use crate::calendar::easter::easter_sunday;

/// Public holiday or optional day ("ponto facultativo").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HolidayKind {
    Public,
    Optional,
}

/// One `[[holiday]]` table exactly as written in a calendar file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHoliday {
    pub name: String,
    pub month: Option<u32>,
    pub day: Option<u32>,
    pub easter: Option<i32>,
    pub weekday: Option<String>,
    pub nth: Option<i32>,
    pub move_forward: Option<RawMove>,
    pub from_year: Option<i32>,
    pub until_year: Option<i32>,
    pub kind: Option<HolidayKind>,
    pub blocks_sending: Option<bool>,
}

/// `move_forward = { on = ["tue", "wed", "thu"], to = "fri" }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMove {
    pub on: Vec<String>,
    pub to: String,
}

/// How a holiday's date is found in a given year.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DateRule {
    /// Same month/day every year (Feb 29 only exists in leap years).
    Fixed { month: u32, day: u32 },
    /// Easter Sunday plus `offset` days (may be negative).
    Easter { offset: i32 },
    /// The `nth` (1..=5) `weekday` counted from `month`/`day` inclusive.
    /// With `within_month`, a result that leaves the month means "no holiday
    /// that year" (5th Monday of a month with four).
    NthWeekday {
        month: u32,
        day: u32,
        weekday: Weekday,
        nth: u32,
        within_month: bool,
    },
    /// The last `weekday` on or before `month`/`day` (`day` defaults to the
    /// last day of the month).
    LastWeekday {
        month: u32,
        day: Option<u32>,
        weekday: Weekday,
    },
}

/// "If the date falls on one of `on`, move it forward to the next `to`".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveForward {
    pub on: Vec<Weekday>,
    pub to: Weekday,
}

/// A validated holiday rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    pub date: DateRule,
    pub move_forward: Option<MoveForward>,
    pub from_year: Option<i32>,
    pub until_year: Option<i32>,
    pub kind: HolidayKind,
    pub blocks_sending: bool,
}

impl Rule {
    /// Whether the rule is valid in `year` (`from_year`/`until_year` inclusive).
    pub fn applies_in(&self, year: i32) -> bool {
        self.from_year.is_none_or(|f| year >= f) && self.until_year.is_none_or(|u| year <= u)
    }

    /// The holiday's date for `year`, or `None` when the rule does not apply
    /// that year (validity, Feb 29 in a common year, a 5th weekday that does
    /// not exist). The result may fall outside `year` (e.g. "first Sunday on
    /// or after Dec 28"); callers filter by the date's year.
    pub fn date_in(&self, year: i32) -> Option<NaiveDate> {
        if !self.applies_in(year) {
            return None;
        }
        let date = match self.date {
            DateRule::Fixed { month, day } => NaiveDate::from_ymd_opt(year, month, day)?,
            DateRule::Easter { offset } => {
                let easter = easter_sunday(year)?;
                if offset >= 0 {
                    easter.checked_add_days(Days::new(u64::from(offset.unsigned_abs())))?
                } else {
                    easter.checked_sub_days(Days::new(u64::from(offset.unsigned_abs())))?
                }
            }
            DateRule::NthWeekday {
                month,
                day,
                weekday,
                nth,
                within_month,
            } => {
                let base = NaiveDate::from_ymd_opt(year, month, day)?;
                let ahead = days_until(base.weekday(), weekday) + 7 * (nth - 1);
                let d = base.checked_add_days(Days::new(u64::from(ahead)))?;
                if within_month && d.month() != month {
                    return None;
                }
                d
            }
            DateRule::LastWeekday { month, day, weekday } => {
                let base = match day {
                    Some(day) => NaiveDate::from_ymd_opt(year, month, day)?,
                    None => last_day_of_month(year, month)?,
                };
                let back = days_until(weekday, base.weekday());
                base.checked_sub_days(Days::new(u64::from(back)))?
            }
        };
        match &self.move_forward {
            Some(m) if m.on.contains(&date.weekday()) => {
                let ahead = match days_until(date.weekday(), m.to) {
                    0 => 7,
                    n => n,
                };
                date.checked_add_days(Days::new(u64::from(ahead)))
            }
            _ => Some(date),
        }
    }

    /// Validate a raw `[[holiday]]` entry. The error is a human-readable
    /// message (the caller prefixes file and entry).
    pub(crate) fn from_raw(raw: RawHoliday) -> Result<Rule, String> {
        if raw.name.trim().is_empty() {
            return Err("`name` must not be empty".into());
        }
        let weekday = raw.weekday.as_deref().map(parse_weekday).transpose()?;
        if let Some(m) = raw.month {
            if !(1..=12).contains(&m) {
                return Err(format!("`month` must be 1..=12, got {m}"));
            }
        }
        if let (Some(m), Some(d)) = (raw.month, raw.day) {
            if d < 1 || d > max_days_in_month(m) {
                return Err(format!("`day` {d} does not exist in month {m}"));
            }
        }
        let date = match (raw.easter, raw.month, raw.day, weekday, raw.nth) {
            (Some(offset), None, None, None, None) => {
                if offset.abs() > 300 {
                    return Err(format!("`easter` offset {offset} is out of range (-300..=300)"));
                }
                DateRule::Easter { offset }
            }
            (Some(_), ..) => return Err("`easter` cannot be combined with month/day/weekday/nth".into()),
            (None, Some(month), Some(day), None, None) => DateRule::Fixed { month, day },
            (None, Some(month), day, Some(weekday), Some(nth)) => match nth {
                1..=5 => DateRule::NthWeekday {
                    month,
                    day: day.unwrap_or(1),
                    weekday,
                    nth: nth.unsigned_abs(),
                    within_month: day.is_none(),
                },
                -1 => DateRule::LastWeekday { month, day, weekday },
                other => return Err(format!("`nth` must be 1..=5 or -1 (last), got {other}")),
            },
            (None, Some(_), _, Some(_), None) => return Err("`weekday` needs `nth` (1..=5, or -1 for the last)".into()),
            (None, Some(_), _, None, Some(_)) => return Err("`nth` needs `weekday`".into()),
            (None, Some(_), None, None, None) => {
                return Err("`month` needs `day` (fixed date) or `weekday` + `nth`".into())
            }
            (None, None, ..) => {
                return Err("no date rule: use `month` + `day`, `easter`, or `month` + `weekday` + `nth`".into())
            }
        };
        let move_forward = match raw.move_forward {
            None => None,
            Some(m) => {
                if m.on.is_empty() {
                    return Err("`move_forward.on` must list at least one weekday".into());
                }
                let on = m.on.iter().map(|s| parse_weekday(s)).collect::<Result<Vec<_>, _>>()?;
                let to = parse_weekday(&m.to)?;
                Some(MoveForward { on, to })
            }
        };
        if let (Some(f), Some(u)) = (raw.from_year, raw.until_year) {
            if f > u {
                return Err(format!("`from_year` {f} is after `until_year` {u}"));
            }
        }
        let kind = raw.kind.unwrap_or(HolidayKind::Public);
        let blocks_sending = raw.blocks_sending.unwrap_or(kind == HolidayKind::Public);
        Ok(Rule {
            name: raw.name,
            date,
            move_forward,
            from_year: raw.from_year,
            until_year: raw.until_year,
            kind,
            blocks_sending,
        })
    }
}

/// Days to go forward from `from` to reach `to` (0..=6).
fn days_until(from: Weekday, to: Weekday) -> u32 {
    (7 + to.num_days_from_monday() - from.num_days_from_monday()) % 7
}

fn max_days_in_month(month: u32) -> u32 {
    match month {
        2 => 29,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn last_day_of_month(year: i32, month: u32) -> Option<NaiveDate> {
    let (y, m) = if month == 12 {
        (year.checked_add(1)?, 1)
    } else {
        (year, month + 1)
    };
    NaiveDate::from_ymd_opt(y, m, 1)?.pred_opt()
}

/// Accepts English names or three-letter abbreviations, any case.
pub(crate) fn parse_weekday(s: &str) -> Result<Weekday, String> {
    let w = match s.trim().to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Mon,
        "tue" | "tuesday" => Weekday::Tue,
        "wed" | "wednesday" => Weekday::Wed,
        "thu" | "thursday" => Weekday::Thu,
        "fri" | "friday" => Weekday::Fri,
        "sat" | "saturday" => Weekday::Sat,
        "sun" | "sunday" => Weekday::Sun,
        _ => return Err(format!("unknown weekday {s:?} (use mon, tue, … sun)")),
    };
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(toml_text: &str) -> RawHoliday {
        toml::from_str(toml_text).unwrap()
    }

    fn rule(toml_text: &str) -> Rule {
        Rule::from_raw(raw(toml_text)).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn a_fixed_rule_gives_the_same_day_every_year() {
        let r = rule("name = 'Natal'\nmonth = 12\nday = 25");
        assert_eq!(r.date_in(2030), Some(d(2030, 12, 25)));
        assert!(r.blocks_sending, "public holidays block by default");
    }

    #[test]
    fn february_29_only_exists_in_leap_years() {
        let r = rule("name = 'Leap'\nmonth = 2\nday = 29");
        assert_eq!(r.date_in(2024), Some(d(2024, 2, 29)));
        assert_eq!(r.date_in(2025), None);
    }

    #[test]
    fn an_easter_offset_rule_counts_days_from_easter_sunday() {
        let r = rule("name = 'Carnaval'\neaster = -47\nkind = 'optional'");
        assert_eq!(r.date_in(2025), Some(d(2025, 3, 4)));
        assert!(!r.blocks_sending, "optional holidays do not block by default");
    }

    #[test]
    fn the_nth_weekday_of_a_month_is_found() {
        let r = rule("name = 'x'\nmonth = 3\nweekday = 'sun'\nnth = 1");
        assert_eq!(r.date_in(2015), Some(d(2015, 3, 1)));
        assert_eq!(r.date_in(2017), Some(d(2017, 3, 5)));
        // Thanksgiving: 4th Thursday of November.
        let t = rule("name = 't'\nmonth = 11\nweekday = 'thu'\nnth = 4");
        assert_eq!(t.date_in(2024), Some(d(2024, 11, 28)));
    }

    #[test]
    fn a_fifth_weekday_that_does_not_exist_gives_no_holiday() {
        let r = rule("name = 'x'\nmonth = 2\nweekday = 'mon'\nnth = 5");
        assert_eq!(r.date_in(2025), None);
    }

    #[test]
    fn the_last_weekday_of_a_month_is_found() {
        // US Memorial Day: last Monday of May.
        let r = rule("name = 'm'\nmonth = 5\nweekday = 'mon'\nnth = -1");
        assert_eq!(r.date_in(2024), Some(d(2024, 5, 27)));
        assert_eq!(r.date_in(2021), Some(d(2021, 5, 31)));
        let dec = rule("name = 'x'\nmonth = 12\nweekday = 'fri'\nnth = -1");
        assert_eq!(dec.date_in(2025), Some(d(2025, 12, 26)));
    }

    #[test]
    fn the_first_weekday_on_or_after_a_day_may_cross_into_the_next_month() {
        let r = rule("name = 'SC'\nmonth = 11\nday = 25\nweekday = 'sun'\nnth = 1");
        assert_eq!(r.date_in(2024), Some(d(2024, 12, 1)));
        assert_eq!(r.date_in(2029), Some(d(2029, 11, 25)));
    }

    #[test]
    fn move_forward_shifts_a_tuesday_to_friday_but_keeps_a_monday() {
        let r = rule("name = 'AC'\nmonth = 1\nday = 23\nmove_forward = { on = ['tue','wed','thu'], to = 'fri' }");
        assert_eq!(r.date_in(2024), Some(d(2024, 1, 26))); // Tue -> Fri
        assert_eq!(r.date_in(2023), Some(d(2023, 1, 23))); // Mon stays
    }

    #[test]
    fn validity_years_are_inclusive() {
        let r = rule("name = 'x'\nmonth = 11\nday = 20\nfrom_year = 2003\nuntil_year = 2023");
        assert_eq!(r.date_in(2002), None);
        assert!(r.date_in(2003).is_some());
        assert!(r.date_in(2023).is_some());
        assert_eq!(r.date_in(2024), None);
    }

    #[test]
    fn invalid_rules_are_rejected_with_a_message() {
        let bad = [
            ("name = 'x'\nmonth = 13\nday = 1", "month"),
            ("name = 'x'\nmonth = 4\nday = 31", "does not exist"),
            ("name = 'x'\neaster = 1\nmonth = 4", "cannot be combined"),
            ("name = 'x'\nmonth = 4", "needs `day`"),
            ("name = 'x'\nmonth = 4\nweekday = 'sun'", "needs `nth`"),
            ("name = 'x'\nmonth = 4\nweekday = 'sun'\nnth = 0", "nth"),
            (
                "name = 'x'\nmonth = 4\nweekday = 'sunday-ish'\nnth = 1",
                "unknown weekday",
            ),
            ("name = 'x'", "no date rule"),
            ("name = ''\nmonth = 1\nday = 1", "name"),
            (
                "name = 'x'\nmonth = 1\nday = 1\nfrom_year = 2000\nuntil_year = 1999",
                "after",
            ),
        ];
        for (text, needle) in bad {
            let err = Rule::from_raw(raw(text)).unwrap_err();
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }
}
