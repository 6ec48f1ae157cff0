//! Instances: WhatsApp numbers on an Evolution gateway, registered or created there by
//! Arauto, and their health. The api key is write-only and encrypted at rest.

pub mod connectivity;
pub mod domain;
pub mod health;
pub mod repo;
pub mod routes;
pub mod service;
pub mod usage;
