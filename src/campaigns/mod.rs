//! Campaigns: definition (messages, audience, schedule, pacing), templates and previews.

pub mod copies;
pub mod counts;
pub mod domain;
pub mod lanes;
pub mod lifecycle;
pub mod media;
pub mod preparation;
pub mod reads;
pub mod recurrence;
pub mod repo;
pub mod routes;
pub mod runs;
pub mod service;
pub mod stats;
pub mod templates;
