//! Dispatch: the Redis stream of due jobs, per-phone locks, and the workers that claim a
//! recipient in Postgres, send through the gateway and record the outcome.

pub mod batcher;
pub mod context;
pub mod gate;
pub mod lock;
pub mod outcomes;
pub mod stream;
pub mod worker;
