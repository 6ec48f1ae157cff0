//! Black-box API tests: one binary, one file per resource.

mod auth;
mod bad_input;
mod campaigns;
mod contacts;
mod engine;
mod engine_v2;
mod exports;
mod health;
mod helpers;
mod holidays;
mod instances;
mod key_rotation;
mod media;
mod messages;
mod metrics;
mod migrations;
mod observability;
mod openapi;
mod operator;
mod optout;
mod outbound_webhooks;
mod preparing;
mod provisioning;
mod read_replica;
mod reads;
mod receipts;
mod recurring;
mod secrets_in_logs;
mod sets;
mod shutdown;
mod users;

