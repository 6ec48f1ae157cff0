//! Black-box API tests: one binary, one file per resource.

mod helpers;

mod auth;
mod bad_input;
mod contacts;
mod health;
mod instances;
mod migrations;
mod sets;
mod users;
