//! What lives on this machine, under every layer that touches a disk: the archive-dir
//! `cache` (stock's `--archive-dir`), file metadata calls that differ between unix and WASI
//! (`platform`), user and group names (`users`), holes in restored files (`sparse`) and the
//! crash points of the resume tests (`fault`).

pub mod cache;
pub mod fault;
pub mod platform;
pub mod spool;
pub mod users;
