//! `cargo bench --bench calendar` (run with CARGO_BUILD_JOBS=1 on shared machines).

use std::hint::black_box;
use std::path::Path;

use arauto::calendar::{is_open, next_open, Calendars, Schedule, ScheduleSpec, WithExtra};
use chrono::{DateTime, NaiveDate, Utc};
use criterion::{criterion_group, criterion_main, Criterion};

fn setup() -> (Calendars, Schedule) {
    let cals =
        Calendars::load_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("holidays")).expect("shipped calendars load");
    let spec: ScheduleSpec = serde_json::from_str(
        r#"{"mode": "business_hours", "timezone": "America/Sao_Paulo", "calendar": "BR-SP", "days": [1,2,3,4,5], "windows": [{"start": "09:00", "end": "18:00"}], "skip_holidays": true}"#,
    )
    .expect("valid json");
    let s = Schedule::parse(spec, &cals).expect("valid schedule");
    (cals, s)
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid instant")
        .with_timezone(&Utc)
}

fn bench(c: &mut Criterion) {
    let (cals, s) = setup();
    let extra = [
        NaiveDate::from_ymd_opt(2025, 5, 2).expect("valid date"),
        NaiveDate::from_ymd_opt(2025, 12, 26).expect("valid date"),
    ];
    let cal = WithExtra::new(cals.get("BR-SP"), &extra);
    let friday_evening = t("2025-03-14T19:00:00-03:00");
    let tuesday_morning = t("2025-03-11T10:00:00-03:00");
    let mut g = c.benchmark_group("schedule");
    g.bench_function("next_open friday 19:00 -> monday", |b| {
        b.iter(|| next_open(black_box(&s), black_box(&cal), black_box(friday_evening)))
    });
    g.bench_function("next_open already open", |b| {
        b.iter(|| next_open(black_box(&s), black_box(&cal), black_box(tuesday_morning)))
    });
    g.bench_function("is_open tuesday 10:00", |b| {
        b.iter(|| is_open(black_box(&s), black_box(&cal), black_box(tuesday_morning)))
    });
    g.bench_function("is_open friday 19:00", |b| {
        b.iter(|| is_open(black_box(&s), black_box(&cal), black_box(friday_evening)))
    });
    let br = cals.get("BR").expect("BR shipped");
    let day = NaiveDate::from_ymd_opt(2025, 3, 4).expect("valid date");
    g.bench_function("calendar blocks", |b| b.iter(|| br.blocks(black_box(day))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
