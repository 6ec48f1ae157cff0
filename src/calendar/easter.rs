//! Easter Sunday via the Computus (anonymous Gregorian algorithm, a.k.a.
//! Meeus/Jones/Butcher).

use chrono::NaiveDate;

/// Gregorian Easter Sunday of `year`.
///
/// Returns `None` for years before 1583 (the algorithm is only defined for the
/// Gregorian calendar) or outside chrono's supported range.
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    if year < 1583 {
        return None;
    }
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    // month is 3 or 4 and day 1..=31 by construction; from_ymd_opt only fails
    // for years outside chrono's range.
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn known_easter_dates_are_computed_correctly() {
        let known = [
            (1990, 4, 15),
            (2000, 4, 23),
            (2008, 3, 23),
            (2011, 4, 24),
            (2018, 4, 1),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2038, 4, 25),
            (2100, 3, 28),
        ];
        for (y, m, day) in known {
            assert_eq!(easter_sunday(y), Some(d(y, m, day)), "year {y}");
        }
    }

    #[test]
    fn easter_is_always_a_sunday_between_march_22_and_april_25() {
        for y in 1583..=3000 {
            let e = easter_sunday(y).unwrap();
            assert_eq!(chrono::Datelike::weekday(&e), chrono::Weekday::Sun);
            assert!(e >= d(y, 3, 22) && e <= d(y, 4, 25), "{e}");
        }
    }

    #[test]
    fn years_before_the_gregorian_reform_have_no_easter() {
        assert_eq!(easter_sunday(1582), None);
    }
}
