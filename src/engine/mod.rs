//! The engine: what runs a backup's pipe and a restore's pipe reversed, below the
//! commands that plan them.
//!
//! - `read`: the restore side (the path resolver every write goes through).

pub(crate) mod read;
