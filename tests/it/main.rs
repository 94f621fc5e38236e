//! The integration tests: one binary (a binary per theme linked the whole crate each
//! time, most of a CI build), a module per theme. Tests that need a running Swift build
//! with `--features swift-tests`, those that need wasmtime with `--features wasm-tests`;
//! `make test` runs them all. `support` holds what the themes share: scratch dirs and
//! running swiftdup and stock duplicity (`support`), the backend conformance suite, the
//! fault-injecting proxy, crafted archives (`forge`) and the wasm runner.

mod support;

mod backend_conformance; // the Backend contract, on file:// (Swift's run in `swift`)
mod bad_input; // hostile archives, damaged sets, bad keys and settings: clear errors
mod batch; // the job as a CronJob or sidecar runs it: env config, events, signals, metrics
mod check; // check: the target's integrity with the read key and no source
mod docs; // docs/ lists every option, variable, event and exit code; reads as docs
mod dump; // a database dump on standard input: deltas, both restore it, cut short fails
mod format_fixtures; // byte-level agreement with archives stock duplicity wrote
mod fuzz_regressions; // the fuzz targets' seeds and reproducers, replayed
mod interop_duplicity; // stock duplicity restores swiftdup's chains and the reverse
mod k8s; // the Kubernetes manifests agree with the binary
mod lock; // the target lock between jobs
mod records; // chain records: check finds sets deleted, replaced, rolled back
mod resume; // a run killed at every step leaves nothing that misleads the next
mod retention; // remove-* verbs, cleanup, --keep-full, full-backup rules; stock restores the rest
mod selection; // include/exclude rules as stock applies them
mod signing; // signed archives, both ways
mod status_list; // collection-status, list-current-files, --time, read-only verbs
#[cfg(feature = "swift-tests")]
mod swift; // swiftkeys:// against a real Swift, faults through a proxy
#[cfg(feature = "swift-tests")]
mod swift_interop; // stock duplicity over Swift, and chains under every fault
#[cfg(all(feature = "swift-tests", feature = "wasm-tests"))]
mod swift_wasm; // the wasm build over wasi:http
mod verify; // verify against swiftdup's and stock's chains
#[cfg(feature = "wasm-tests")]
mod wasm; // the wasm build under wasmtime on file://
