//! Instances: WhatsApp numbers on an Evolution gateway. The api key is write-only and
//! encrypted at rest.

pub mod connectivity;
pub mod domain;
pub mod repo;
pub mod routes;
pub mod service;
