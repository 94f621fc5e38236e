//! swiftdup's fuzz targets (see fuzz/README.md): the harness bodies live in `harness.rs`,
//! which the main crate's `tests/it/fuzz_regressions.rs` also includes to replay the corpora
//! and the regression inputs under a plain `cargo test`; `alloc_limit` is for the fuzz
//! builds only.

mod harness;
pub use harness::*;

pub mod alloc_limit;
