//! Where backups live. One small `Backend` trait, implemented by `file://` (and, in its own
//! module, `swiftkeys://`); everything above it only sees object names and byte streams.
//!
//! The shared conformance suite in `tests/backend_conformance.rs` runs against every
//! implementation.

pub mod file;

use crate::error::{Error, Result};
use std::fs::File;
use std::path::Path;

/// Object storage as swiftdup needs it: flat names in one namespace.
pub trait Backend {
    /// Store the local file `src` under `name`, replacing any object of that name. A retry
    /// reads `src` again from the start, which is why uploads come from a spooled file.
    fn put(&self, name: &str, src: &Path) -> Result<()>;
    /// Download the object into `dest` (an empty file) and return its size;
    /// `Error::NotFound` when it does not exist. A retry may truncate and rewrite `dest`.
    fn get(&self, name: &str, dest: &mut File) -> Result<u64>;
    /// Every object name that starts with `prefix` (all of them, paginated as needed).
    fn list(&self, prefix: &str) -> Result<Vec<String>>;
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// A description for logs, without secrets.
    fn describe(&self) -> String;
}

/// Open the backend a target URL names.
pub fn open(url: &str) -> Result<Box<dyn Backend>> {
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(Error::Usage(format!(
                "target URL {url:?}: file:// needs an absolute path, as in file:///srv/backup"
            )));
        }
        return Ok(Box::new(file::FileBackend::new(path)?));
    }
    Err(Error::Usage(format!(
        "target URL {url:?}: unsupported scheme (use file:///absolute/path)"
    )))
}

/// Whether a command-line argument looks like a target URL rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}
