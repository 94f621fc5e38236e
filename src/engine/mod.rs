//! The engine: what runs a backup's pipe and a restore's pipe reversed, below the
//! commands that plan them.
//!
//! - `write`: the backup side (walk, select, volumes).
//! - `read`: the restore side (set streams, merge, apply, and the path resolver every
//!   write goes through).
//! - `record`: the chain records every writing run stores, and `check` compares with.

pub mod metadata;
pub mod read;
pub mod record;
pub mod write;
