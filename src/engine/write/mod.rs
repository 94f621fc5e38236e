//! The backup side of the engine: `walk` (the source tree in duplicity's index order,
//! filtered by `select`) -> changes against the chain's signatures and tar members
//! (`commands::backup` for now) -> `volumes` (cut, seal, upload, manifest records).

pub mod select;
pub mod volumes;
pub mod walk;
