//! swiftdup: duplicity-compatible encrypted incremental backups to OpenStack Swift with
//! container keys, built as a batch job.
//!
//! The modules, in the order the data goes (a backup top to bottom; a restore is the same
//! pipe reversed). Imports flow one way, down this list; `error`, `log`, `config` and
//! `interrupt` are leaves every layer may use.

pub mod app; // the command line and the environment -> one validated Config, dispatch, --every
pub mod archive; // pure duplicity format: names, time, tar, manifest, sigtar, collection
pub mod backend; // where backups live: the Backend trait, file://, swiftkeys://, HTTP, lock
pub mod commands; // the verbs: backup, restore, verify, list, status, prune; plan, then call
pub mod engine; // the pipes: write (walk, select, volumes) and read (stream, merge, apply)
pub mod local; // this machine: the archive-dir cache, temp spools, file metadata, users
pub mod rsync; // librsync signatures, deltas and patches (MD4 + rollsum)
pub mod seal; // compress and encrypt: OpenPGP (rpgp), deflate, AES for wasm

pub mod config;
pub mod error;
pub mod interrupt;
pub mod log;
