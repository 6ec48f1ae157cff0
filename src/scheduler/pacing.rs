//! Pure planning: the instants at which a campaign's next sends fall, given its pacing,
//! its window and the tick horizon.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rand::Rng;

use crate::instances::domain::Warmup;

use crate::calendar::{is_open, next_open, HolidayLookup, Pacing, Schedule};

/// The planned instants in `[from, horizon)` (at most `max`), and the instant after the
/// last one: where the next tick continues. Closed time is skipped, never caught up.
pub fn plan(
    schedule: &Schedule,
    holidays: &dyn HolidayLookup,
    pacing: &Pacing,
    from: DateTime<Utc>,
    horizon: DateTime<Utc>,
    max: usize,
    rng: &mut impl Rng,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut times = vec![];
    let mut t = from;
    while t < horizon && times.len() < max {
        if !is_open(schedule, holidays, t) {
            match next_open(schedule, holidays, t) {
                Some(open) => {
                    t = open;
                    continue;
                }
                None => return (times, None),
            }
        }
        times.push(t);
        t += gap(pacing, rng);
    }
    (times, Some(t))
}

/// Today's send allowance of an instance: its `daily_limit`, and with warm-up
/// `start × (1 + increase)^days` where `days` counts the earlier days it sent; the smaller
/// wins. `None`: unlimited.
pub fn daily_allowance(limit: Option<u64>, warmup: Option<&Warmup>, days_sent_before: u32) -> Option<u64> {
    let warm = warmup.map(|w| {
        let growth = (1.0 + f64::from(w.increase_percent) / 100.0).powi(days_sent_before.min(365) as i32);
        (f64::from(w.start) * growth).floor().min(1e12) as u64
    });
    match (limit, warm) {
        (Some(l), Some(w)) => Some(l.min(w)),
        (l, w) => l.or(w),
    }
}

/// The start of the local day of `at` in `tz` (the earliest instant of that date).
pub fn local_midnight(tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    midnight_of(tz, at.with_timezone(&tz).date_naive()).unwrap_or(at)
}

/// The start of the next local day after `at` in `tz`.
pub fn next_local_midnight(tz: Tz, at: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = at.with_timezone(&tz).date_naive().succ_opt();
    tomorrow
        .and_then(|d| midnight_of(tz, d))
        .unwrap_or(at + Duration::days(1))
}

fn midnight_of(tz: Tz, day: NaiveDate) -> Option<DateTime<Utc>> {
    // Some zones skip midnight on DST days: take the first instant of the date that exists.
    (0..24 * 60)
        .step_by(15)
        .filter_map(|m| day.and_hms_opt(m / 60, m % 60, 0))
        .find_map(|t| tz.from_local_datetime(&t).earliest())
        .map(|t| t.with_timezone(&Utc))
}

/// A gap drawn uniformly from `[min, max]` seconds.
pub fn gap(pacing: &Pacing, rng: &mut impl Rng) -> Duration {
    let (min, max) = (
        pacing.min_interval_seconds,
        pacing.max_interval_seconds.max(pacing.min_interval_seconds),
    );
    let secs = if max > min { rng.gen_range(min..=max) } else { min };
    let drawn = (secs * 1000.0).round() as i64;
    // Never closer than what the send gate lets through (plus slack), or the plan would
    // drift behind what really leaves.
    Duration::milliseconds(drawn.max(pacing.planned_gap_floor_ms() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::{Calendars, NoHolidays, ScheduleSpec, WindowSpec};
    use chrono::TimeZone;
    use rand::SeedableRng;

    fn schedule(mode: &str, windows: Option<Vec<(&str, &str)>>) -> Schedule {
        let spec = ScheduleSpec {
            mode: mode.into(),
            timezone: Some("America/Sao_Paulo".into()),
            calendar: Some("none".into()),
            start_at: None,
            days: windows.as_ref().map(|_| vec![1, 2, 3, 4, 5]),
            windows: windows.map(|w| {
                w.into_iter()
                    .map(|(s, e)| WindowSpec {
                        start: s.into(),
                        end: e.into(),
                    })
                    .collect()
            }),
            skip_holidays: None,
        };
        let calendars = Calendars::from_files(Vec::<(String, String)>::new()).unwrap();
        Schedule::parse(spec, &calendars).unwrap()
    }

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    #[test]
    fn sub_tick_pacing_plans_every_send_of_the_tick() {
        let s = schedule("immediate", None);
        let p = Pacing {
            min_interval_seconds: 2.0,
            max_interval_seconds: 2.0,
        };
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let (times, next) = plan(&s, &NoHolidays, &p, from, from + Duration::seconds(10), 500, &mut rng());
        assert_eq!(times.len(), 5);
        // 2 s plus the send gate's margin (1 %, at least 10 ms) and as much slack: the plan
        // never outpaces the gate, and a send held up a little does not delay the next.
        let gap = Duration::milliseconds(2_040);
        assert_eq!(next, Some(from + gap * 5));
        assert!(times.windows(2).all(|w| w[1] - w[0] == gap));
    }

    #[test]
    fn the_departure_margin_is_one_percent_between_10_and_50_ms() {
        use crate::calendar::departure_margin_ms;
        assert_eq!(
            [0, 200, 2_000, 10_000, 60_000].map(departure_margin_ms),
            [0, 10, 20, 50, 50]
        );
    }

    #[test]
    fn gaps_are_never_below_the_minimum_interval() {
        let s = schedule("immediate", None);
        let p = Pacing {
            min_interval_seconds: 0.5,
            max_interval_seconds: 1.5,
        };
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let (times, _) = plan(
            &s,
            &NoHolidays,
            &p,
            from,
            from + Duration::seconds(600),
            10_000,
            &mut rng(),
        );
        assert!(times.len() > 300);
        assert!(times.windows(2).all(|w| {
            let g = w[1] - w[0];
            g >= Duration::milliseconds(500) && g <= Duration::milliseconds(1500)
        }));
    }

    #[test]
    fn a_zero_interval_plans_up_to_the_batch_limit_at_once() {
        let s = schedule("immediate", None);
        let p = Pacing {
            min_interval_seconds: 0.0,
            max_interval_seconds: 0.0,
        };
        let from = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        let (times, _) = plan(&s, &NoHolidays, &p, from, from + Duration::seconds(10), 500, &mut rng());
        assert_eq!(times.len(), 500);
    }

    #[test]
    fn closed_time_is_skipped_not_caught_up() {
        // Window 09:00–18:00 São Paulo (UTC−3): 17:59:50 local leaves one slot, then Monday.
        let s = schedule("custom", Some(vec![("09:00", "18:00")]));
        let p = Pacing {
            min_interval_seconds: 20.0,
            max_interval_seconds: 20.0,
        };
        let from = Utc.with_ymd_and_hms(2026, 11, 27, 20, 59, 50).unwrap(); // Friday
        let (times, next) = plan(&s, &NoHolidays, &p, from, from + Duration::seconds(10), 500, &mut rng());
        assert_eq!(times, [from]);
        let (times, next) = plan(
            &s,
            &NoHolidays,
            &p,
            next.unwrap(),
            next.unwrap() + Duration::seconds(10),
            500,
            &mut rng(),
        );
        assert!(times.is_empty());
        assert_eq!(next, Some(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()));
    }

    #[test]
    fn warm_up_grows_the_daily_allowance_under_the_limit() {
        let w = Warmup {
            start: 20,
            increase_percent: 20,
        };
        assert_eq!(daily_allowance(None, None, 5), None);
        assert_eq!(daily_allowance(Some(100), None, 5), Some(100));
        assert_eq!(daily_allowance(None, Some(&w), 0), Some(20));
        assert_eq!(daily_allowance(None, Some(&w), 1), Some(24));
        assert_eq!(daily_allowance(None, Some(&w), 2), Some(28));
        assert_eq!(daily_allowance(Some(25), Some(&w), 3), Some(25));
    }

    #[test]
    fn local_days_start_at_local_midnight_even_when_dst_skips_it() {
        let tz: Tz = "America/Sao_Paulo".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 15, 0, 0).unwrap();
        assert_eq!(
            local_midnight(tz, at),
            Utc.with_ymd_and_hms(2026, 11, 25, 3, 0, 0).unwrap()
        );
        assert_eq!(
            next_local_midnight(tz, at),
            Utc.with_ymd_and_hms(2026, 11, 26, 3, 0, 0).unwrap()
        );
        // 2018-11-04 had no 00:00 in São Paulo: the day began at 01:00 (−02:00).
        let dst = Utc.with_ymd_and_hms(2018, 11, 4, 12, 0, 0).unwrap();
        assert_eq!(
            local_midnight(tz, dst),
            Utc.with_ymd_and_hms(2018, 11, 4, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn nothing_is_planned_in_a_closed_window() {
        let s = schedule("custom", Some(vec![("09:00", "18:00")]));
        let p = Pacing {
            min_interval_seconds: 1.0,
            max_interval_seconds: 1.0,
        };
        let from = Utc.with_ymd_and_hms(2026, 11, 28, 15, 0, 0).unwrap(); // Saturday
        let (times, next) = plan(&s, &NoHolidays, &p, from, from + Duration::seconds(10), 500, &mut rng());
        assert!(times.is_empty());
        assert_eq!(next, Some(Utc.with_ymd_and_hms(2026, 11, 30, 12, 0, 0).unwrap()));
    }
}
