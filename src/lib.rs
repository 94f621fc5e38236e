//! swiftdup: duplicity-compatible encrypted incremental backups to OpenStack Swift with
//! container keys, built as a batch job.
//!
//! The pipe, in module order: `source` (sorted walk, filtered by `select`) -> `signature`
//! (the chain's view of the last backup) -> `delta` (librsync) -> `format` (tar members,
//! names, manifest) -> `volume` (cut, seal with `crypto`, store in a `target`) ->
//! `commands` (backup, restore, ...).
//! `cli` and `config` turn flags and environment into one validated configuration; `error`
//! holds the exit-code table; `log` writes JSON-lines events.

pub mod cache;
pub mod cli;
pub mod collection;
pub mod commands;
pub mod config;
pub mod crypto;
pub mod deflate;
pub mod delta;
pub mod engine;
pub mod error;
pub mod fault;
pub mod format;
pub mod http;
pub mod interrupt;
pub mod lock;
pub mod log;
pub mod md4x4;
pub mod metrics;
pub mod platform;
pub mod select;
pub mod signature;
pub mod source;
pub mod sparse;
pub mod target;
pub mod users;
pub mod volume;
#[cfg(any(target_arch = "wasm32", test))]
pub mod vpaes;
