//! Arauto: a multi-tenant WhatsApp campaign scheduler. The library holds everything; the
//! binary only parses arguments and calls [`cli::run`].

pub mod api;
pub mod audit;
pub mod calendar;
pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod config;
pub mod constraints;
pub mod contacts;
pub mod crypto;
pub mod db;
pub mod dispatch;
pub mod egress;
pub mod entities;
pub mod error;
pub mod gateway;
pub mod instances;
pub mod messages;
pub mod observability;
pub mod ops;
pub mod pagination;
pub mod recipients;
pub mod redis;
pub mod scheduler;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templating;
pub mod tenancy;
pub mod text;
pub mod webhooks;
