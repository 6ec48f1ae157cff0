//! Tenants, users, sign-up and sign-in, roles.

pub mod auth;
pub mod domain;
pub mod jwt;
pub mod ratelimit;
pub mod repo;
pub mod routes;
pub mod service;
pub mod settings;
