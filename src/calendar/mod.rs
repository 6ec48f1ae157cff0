//! Holiday calendars (data-driven, `holidays/*.toml`) and campaign sending
//! schedules (pure, clock-free: every function takes the instant).
//!
//! * [`Calendars::load_dir`] loads the shipped calendars; [`Calendar::blocks`]
//!   answers "is sending blocked on this local date" in O(1).
//! * [`WithExtra`] adds a tenant's own blocking dates to a shipped calendar.
//! * [`Schedule::parse`] validates a campaign's [`ScheduleSpec`] (JSON DTO);
//!   [`is_open`], [`next_open`], [`next_close`] and [`estimate_completion`]
//!   evaluate it against any [`HolidayLookup`].

pub mod easter;
pub mod holidays;
pub mod repo;
pub mod rules;
pub mod schedule;
pub mod service;
pub mod tenant;

#[cfg(test)]
mod fixture_tests;
#[cfg(test)]
mod schedule_tests;

pub use self::easter::easter_sunday;
pub use self::holidays::{
    Calendar, CalendarError, Calendars, Holiday, HolidayKind, HolidayLookup, NoHolidays, WithExtra, INDEXED_YEARS,
};
pub use self::schedule::{
    departure_margin_ms, estimate_completion, guarded_interval_ms, is_open, next_close, next_open, FieldError, Mode,
    Pacing, Schedule, ScheduleSpec, WindowSpec, DEFAULT_CALENDAR, HORIZON_DAYS,
};
