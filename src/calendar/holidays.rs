//! Holiday calendars loaded from data files (`holidays/*.toml`), with a
//! precomputed per-year bitset so [`Calendar::blocks`] is O(1).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

pub use crate::calendar::rules::HolidayKind;
use crate::calendar::rules::{RawHoliday, Rule};

/// First and last year whose blocking days are precomputed at load time.
/// Other years still work, through a slower path that evaluates the rules.
pub const INDEXED_YEARS: std::ops::RangeInclusive<i32> = 1990..=2100;

/// One holiday occurrence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    pub date: NaiveDate,
    pub name: String,
    /// Code of the calendar file that defined it (`"BR"` for a national
    /// holiday seen through `"BR-SP"`).
    pub calendar: String,
    pub kind: HolidayKind,
    pub blocks_sending: bool,
}

/// Loading error; every variant names the file concerned.
#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

/// Anything that can say whether sending is blocked on a local date.
pub trait HolidayLookup {
    fn blocks(&self, date: NaiveDate) -> bool;
}

/// No holidays at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHolidays;

impl HolidayLookup for NoHolidays {
    fn blocks(&self, _date: NaiveDate) -> bool {
        false
    }
}

/// A shipped calendar (optional) plus a tenant's own blocking dates.
#[derive(Debug, Clone, Copy)]
pub struct WithExtra<'a> {
    base: Option<&'a Calendar>,
    extra: &'a [NaiveDate],
    extra_sorted: bool,
}

impl<'a> WithExtra<'a> {
    /// `extra` may be in any order; when it is sorted lookups use binary
    /// search, otherwise a linear scan (fine for a few dozen dates).
    pub fn new(base: Option<&'a Calendar>, extra: &'a [NaiveDate]) -> Self {
        let extra_sorted = extra.windows(2).all(|w| w[0] <= w[1]);
        WithExtra {
            base,
            extra,
            extra_sorted,
        }
    }
}

impl HolidayLookup for WithExtra<'_> {
    fn blocks(&self, date: NaiveDate) -> bool {
        if self.base.is_some_and(|c| c.blocks(date)) {
            return true;
        }
        if self.extra_sorted {
            self.extra.binary_search(&date).is_ok()
        } else {
            self.extra.contains(&date)
        }
    }
}

/// 384 bits, indexed by `ordinal0` (0..=365).
type YearBits = [u64; 6];

/// A resolved calendar: its own rules plus those of the calendars it extends.
#[derive(Debug, Clone)]
pub struct Calendar {
    code: String,
    name: String,
    /// (code of the defining file, rule), base calendars first.
    rules: Vec<(String, Rule)>,
    /// Blocking days of each year in [`INDEXED_YEARS`].
    blocking: Vec<YearBits>,
}

impl Calendar {
    pub fn code(&self) -> &str {
        &self.code
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// All holidays (public and optional) dated in `year`, sorted by date
    /// (ties keep base-calendar-first order).
    pub fn holidays_in_year(&self, year: i32) -> Vec<Holiday> {
        let mut out = Vec::new();
        // Rules are evaluated for the neighbouring years too, because a rule
        // may land across a year boundary ("first Sunday on or after Dec 28").
        for eval_year in [year.saturating_sub(1), year, year.saturating_add(1)] {
            for (code, rule) in &self.rules {
                if let Some(date) = rule.date_in(eval_year) {
                    if date.year() == year {
                        out.push(Holiday {
                            date,
                            name: rule.name.clone(),
                            calendar: code.clone(),
                            kind: rule.kind,
                            blocks_sending: rule.blocks_sending,
                        });
                    }
                }
            }
        }
        out.sort_by_key(|h| h.date);
        out
    }

    /// Whether sending is blocked on `date` (a holiday with
    /// `blocks_sending = true`). O(1) for years in [`INDEXED_YEARS`].
    pub fn blocks(&self, date: NaiveDate) -> bool {
        let year = date.year();
        if INDEXED_YEARS.contains(&year) {
            let idx = (year - INDEXED_YEARS.start()) as usize;
            if let Some(bits) = self.blocking.get(idx) {
                let bit = date.ordinal0() as usize;
                return bits[bit / 64] >> (bit % 64) & 1 == 1;
            }
        }
        self.rules.iter().any(|(_, r)| {
            r.blocks_sending
                && [year.saturating_sub(1), year, year.saturating_add(1)]
                    .into_iter()
                    .any(|y| r.date_in(y) == Some(date))
        })
    }

    /// Heap bytes used by the blocking index (for capacity planning).
    pub fn index_bytes(&self) -> usize {
        self.blocking.capacity() * std::mem::size_of::<YearBits>()
    }

    fn build_index(&mut self) {
        let (first, last) = (*INDEXED_YEARS.start(), *INDEXED_YEARS.end());
        let mut blocking = vec![[0u64; 6]; (last - first + 1) as usize];
        for (_, rule) in self.rules.iter().filter(|(_, r)| r.blocks_sending) {
            for y in first - 1..=last + 1 {
                if let Some(date) = rule.date_in(y) {
                    if INDEXED_YEARS.contains(&date.year()) {
                        let bit = date.ordinal0() as usize;
                        let idx = (date.year() - first) as usize;
                        blocking[idx][bit / 64] |= 1 << (bit % 64);
                    }
                }
            }
        }
        self.blocking = blocking;
    }
}

impl HolidayLookup for Calendar {
    fn blocks(&self, date: NaiveDate) -> bool {
        Calendar::blocks(self, date)
    }
}

/// A calendar file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    name: String,
    extends: Option<String>,
    #[serde(default)]
    holiday: Vec<RawHoliday>,
}

/// All loaded calendars, by code (the file name without `.toml`).
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    /// Keyed by upper-cased code; lookups are case-insensitive.
    by_code: BTreeMap<String, Calendar>,
}

impl Calendars {
    /// Read every `*.toml` in `path` (not recursive), resolve `extends` and
    /// precompute the blocking index.
    pub fn load_dir(path: &Path) -> Result<Calendars, CalendarError> {
        let io = |p: &Path, source| CalendarError::Io {
            path: p.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).map_err(|e| io(path, e))? {
            let entry = entry.map_err(|e| io(path, e))?;
            let p = entry.path();
            if p.extension().and_then(|e| e.to_str()) != Some("toml") || !p.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&p).map_err(|e| io(&p, e))?;
            let file_name = p
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((file_name, text));
        }
        if files.is_empty() {
            return Err(CalendarError::Invalid {
                file: path.display().to_string(),
                message: "no *.toml calendar files in directory".into(),
            });
        }
        Calendars::from_files(files)
    }

    /// Build from `(file name, TOML text)` pairs, e.g. `("BR.toml", "...")`.
    /// The code is the file name without `.toml`.
    pub fn from_files<I, N, T>(files: I) -> Result<Calendars, CalendarError>
    where
        I: IntoIterator<Item = (N, T)>,
        N: Into<String>,
        T: AsRef<str>,
    {
        let mut raws: HashMap<String, (String, String, RawCalendar)> = HashMap::new();
        for (file, text) in files {
            let file: String = file.into();
            let invalid = |message: String| CalendarError::Invalid {
                file: file.clone(),
                message,
            };
            let code = file.strip_suffix(".toml").unwrap_or(&file).to_string();
            if code.is_empty() || !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(invalid(format!(
                    "calendar code {code:?} (the file name) must be non-empty ASCII letters, digits, '-' or '_'"
                )));
            }
            if code.eq_ignore_ascii_case("none") {
                return Err(invalid(
                    "\"none\" is reserved (it means \"no shipped calendar\" in schedules)".into(),
                ));
            }
            let raw: RawCalendar = toml::from_str(text.as_ref()).map_err(|e| invalid(e.to_string()))?;
            let key = code.to_ascii_uppercase();
            if let Some((other, _, _)) = raws.get(&key) {
                return Err(invalid(format!("calendar code {code:?} is also defined by {other}")));
            }
            raws.insert(key, (file, code, raw));
        }

        // Validate every file's own rules first, so errors point at the file
        // that has the problem.
        let mut own: HashMap<String, Vec<Rule>> = HashMap::new();
        for (key, (file, _, raw)) in &raws {
            let mut rules = Vec::with_capacity(raw.holiday.len());
            for (i, h) in raw.holiday.iter().enumerate() {
                let rule = Rule::from_raw(h.clone()).map_err(|m| CalendarError::Invalid {
                    file: file.clone(),
                    message: format!("holiday[{i}] ({:?}): {m}", h.name),
                })?;
                rules.push(rule);
            }
            own.insert(key.clone(), rules);
        }

        let mut by_code = BTreeMap::new();
        for (key, (file, code, raw)) in &raws {
            // Walk the `extends` chain, detecting unknown bases and cycles.
            let mut chain = vec![key.clone()];
            let mut current = raw.extends.clone();
            let mut current_file = file.clone();
            while let Some(base) = current {
                let base_key = base.to_ascii_uppercase();
                let Some((base_file, _, base_raw)) = raws.get(&base_key) else {
                    return Err(CalendarError::Invalid {
                        file: current_file,
                        message: format!("extends unknown calendar {base:?}"),
                    });
                };
                if chain.contains(&base_key) {
                    return Err(CalendarError::Invalid {
                        file: file.clone(),
                        message: format!("`extends` cycle: {} -> {base}", chain.join(" -> ")),
                    });
                }
                chain.push(base_key);
                current = base_raw.extends.clone();
                current_file = base_file.clone();
            }
            let mut rules = Vec::new();
            for k in chain.iter().rev() {
                let defining_code = raws.get(k).map(|(_, c, _)| c.clone()).unwrap_or_default();
                for r in own.get(k).into_iter().flatten() {
                    rules.push((defining_code.clone(), r.clone()));
                }
            }
            let mut cal = Calendar {
                code: code.clone(),
                name: raw.name.clone(),
                rules,
                blocking: Vec::new(),
            };
            cal.build_index();
            by_code.insert(key.clone(), cal);
        }
        Ok(Calendars { by_code })
    }

    /// Case-insensitive lookup by code (`"BR"`, `"BR-SP"`).
    pub fn get(&self, code: &str) -> Option<&Calendar> {
        self.by_code.get(&code.to_ascii_uppercase())
    }

    /// Codes of all loaded calendars, sorted.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.by_code.values().map(|c| c.code())
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const XX: &str = r#"
name = "Xland"
[[holiday]]
name = "New Year"
month = 1
day = 1
[[holiday]]
name = "Optional day"
month = 3
day = 3
kind = "optional"
"#;

    fn err_of(files: &[(&str, &str)]) -> String {
        Calendars::from_files(files.iter().copied()).unwrap_err().to_string()
    }

    #[test]
    fn the_shipped_directory_loads_and_state_calendars_include_national_holidays() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("holidays");
        let cals = Calendars::load_dir(&dir).unwrap();
        let sp = cals.get("BR-SP").unwrap();
        let hs = sp.holidays_in_year(2025);
        assert!(hs.windows(2).all(|w| w[0].date <= w[1].date), "sorted");
        let jul9 = hs.iter().find(|h| h.date == d(2025, 7, 9)).unwrap();
        assert_eq!(jul9.calendar, "BR-SP");
        let xmas = hs.iter().find(|h| h.date == d(2025, 12, 25)).unwrap();
        assert_eq!(xmas.calendar, "BR", "national holidays keep their defining file");
        assert!(sp.blocks(d(2025, 7, 9)));
        assert!(!cals.get("BR").unwrap().blocks(d(2025, 7, 9)));
    }

    #[test]
    fn calendar_codes_are_looked_up_case_insensitively() {
        let cals = Calendars::from_files([("XX.toml", XX)]).unwrap();
        assert_eq!(cals.get("xx").map(|c| c.code()), Some("XX"));
        assert!(cals.get("YY").is_none());
    }

    #[test]
    fn optional_days_do_not_block_unless_the_file_says_so() {
        let cals = Calendars::from_files([("XX.toml", XX)]).unwrap();
        let xx = cals.get("XX").unwrap();
        assert!(xx.blocks(d(2030, 1, 1)));
        assert!(!xx.blocks(d(2030, 3, 3)));
        assert_eq!(xx.holidays_in_year(2030).len(), 2);
    }

    #[test]
    fn years_outside_the_index_are_computed_on_the_fly() {
        let cals = Calendars::from_files([("XX.toml", XX)]).unwrap();
        let xx = cals.get("XX").unwrap();
        assert!(xx.blocks(d(1950, 1, 1)));
        assert!(xx.blocks(d(2200, 1, 1)));
        assert!(!xx.blocks(d(2200, 1, 2)));
    }

    #[test]
    fn the_blocking_index_is_a_few_kilobytes_per_calendar() {
        let cals = Calendars::from_files([("XX.toml", XX)]).unwrap();
        // 111 years × 48 bytes.
        assert_eq!(cals.get("XX").unwrap().index_bytes(), 111 * 48);
    }

    #[test]
    fn extends_can_be_chained_and_holidays_remember_their_file() {
        let city = "name = \"City\"\nextends = \"xx-st\"\n[[holiday]]\nname = \"Anniv\"\nmonth = 1\nday = 25\n";
        let st = "name = \"State\"\nextends = \"XX\"\n[[holiday]]\nname = \"State day\"\nmonth = 7\nday = 9\n";
        let cals = Calendars::from_files([("XX.toml", XX), ("XX-ST.toml", st), ("XX-ST-C.toml", city)]).unwrap();
        let hs = cals.get("XX-ST-C").unwrap().holidays_in_year(2025);
        let by: Vec<(&str, &str)> = hs.iter().map(|h| (h.calendar.as_str(), h.name.as_str())).collect();
        assert_eq!(
            by,
            [
                ("XX", "New Year"),
                ("XX-ST-C", "Anniv"),
                ("XX", "Optional day"),
                ("XX-ST", "State day")
            ]
        );
    }

    #[test]
    fn an_unknown_extends_names_the_file_and_the_base() {
        let e = err_of(&[("A.toml", "name = \"A\"\nextends = \"ZZ\"\n")]);
        assert!(e.starts_with("A.toml:") && e.contains("\"ZZ\""), "{e}");
    }

    #[test]
    fn an_extends_cycle_is_reported() {
        let e = err_of(&[
            ("A.toml", "name = \"A\"\nextends = \"B\"\n"),
            ("B.toml", "name = \"B\"\nextends = \"A\"\n"),
        ]);
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn a_bad_rule_names_the_file_the_entry_and_the_problem() {
        let e = err_of(&[(
            "Q.toml",
            "name = \"Q\"\n[[holiday]]\nname = \"ok\"\nmonth = 1\nday = 1\n[[holiday]]\nname = \"Bad\"\nmonth = 2\nday = 30\n",
        )]);
        assert!(e.starts_with("Q.toml: holiday[1] (\"Bad\")"), "{e}");
        assert!(e.contains("does not exist"), "{e}");
    }

    #[test]
    fn unknown_keys_and_bad_kinds_are_toml_errors_naming_the_file() {
        let e = err_of(&[("Q.toml", "name = \"Q\"\ncolour = \"blue\"\n")]);
        assert!(e.starts_with("Q.toml:") && e.contains("colour"), "{e}");
        let e = err_of(&[(
            "Q.toml",
            "name = \"Q\"\n[[holiday]]\nname = \"x\"\nmonth = 1\nday = 1\nkind = \"bank\"\n",
        )]);
        assert!(e.starts_with("Q.toml:") && e.contains("bank"), "{e}");
    }

    #[test]
    fn bad_file_names_and_duplicate_codes_are_rejected() {
        assert!(err_of(&[("a b.toml", XX)]).contains("must be"));
        assert!(err_of(&[("none.toml", XX)]).contains("reserved"));
        assert!(err_of(&[("XX.toml", XX), ("xx.toml", XX)]).contains("also defined"));
    }

    #[test]
    fn a_missing_directory_is_an_io_error_naming_the_path() {
        let e = Calendars::load_dir(Path::new("/nonexistent/holidays")).unwrap_err();
        assert!(matches!(e, CalendarError::Io { .. }));
        assert!(e.to_string().contains("/nonexistent/holidays"));
    }

    #[test]
    fn tenant_dates_add_to_the_shipped_calendar() {
        let cals = Calendars::from_files([("XX.toml", XX)]).unwrap();
        let extra = [d(2025, 6, 2), d(2025, 5, 1)]; // unsorted on purpose
        let both = WithExtra::new(cals.get("XX"), &extra);
        assert!(both.blocks(d(2025, 1, 1)));
        assert!(both.blocks(d(2025, 6, 2)));
        assert!(both.blocks(d(2025, 5, 1)));
        assert!(!both.blocks(d(2025, 6, 3)));
        let sorted = [d(2025, 5, 1), d(2025, 6, 2)];
        let only_tenant = WithExtra::new(None, &sorted);
        assert!(only_tenant.blocks(d(2025, 6, 2)));
        assert!(!only_tenant.blocks(d(2025, 1, 1)));
        assert!(!NoHolidays.blocks(d(2025, 1, 1)));
    }
}
