//! Outbound webhooks to the tenant's own systems (PRODUCT §3): subscriptions (`routes`),
//! the outbox written with the changes that cause events (`outbox`), and the signed,
//! retried delivery loop the workers run (`delivery`).

pub mod delivery;
pub mod domain;
pub mod outbox;
pub mod routes;

pub use domain::{DeliveryStatus, EventType};
