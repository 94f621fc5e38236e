//! The restore side of the engine.
//!
//! - `resolve`: the path resolver, the one way a restore touches the file system.

pub(crate) mod resolve;
