//! Campaigns: definition (messages, audience, schedule, pacing), templates and previews.

pub mod domain;
pub mod routes;
pub mod service;
pub mod templates;
