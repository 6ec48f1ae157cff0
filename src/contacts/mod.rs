//! Contacts and their audiences: groups (static lists) and tags.

pub mod counts;
pub mod csv_format;
pub mod csv_lines;
pub mod domain;
pub mod groups;
pub mod import;
pub mod optout;
pub mod phone;
pub mod repo;
pub mod routes;
pub mod service;
pub mod sets;
pub mod tags;
