//! The restore side of the engine, the backup's pipe reversed: `stream` (each set's
//! volumes fetched, checked, opened and read as one stream of members) -> `merge` (the sets
//! zipped by index) -> `apply` (entries written through `resolve`, files rebuilt in place,
//! big ones by `fill` on several threads).
//! `commands::restore` plans a restore and runs this; `commands::verify` runs the same
//! streams and merge against a source tree instead of writing.

pub(crate) mod apply;
#[cfg(unix)]
pub(crate) mod fill;
pub(crate) mod merge;
pub(crate) mod progress;
pub(crate) mod resolve;
pub(crate) mod stream;
