//! `arauto beat`: every `beat.tick_seconds` the leader plans the sends that fall due before
//! the next tick. Planning claims recipients with `FOR UPDATE SKIP LOCKED`, so extra beats
//! are safe; the Redis lease only keeps them from wasting work.

pub mod lease;
pub mod pacing;
pub mod pool;
pub mod tick;

pub use tick::{Beat, TickReport};
