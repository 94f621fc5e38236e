//! The verbs: each takes a validated `Config` part and returns what it did; `app::run` logs it.
//!
//! backup and restore move data; verify replays a restore against the source; check reads
//! what the target holds without one; status and list read the metadata; prune (forget,
//! the remove-* verbs and cleanup) deletes sets.

pub mod backup;
pub mod check;
pub mod list;
pub mod prune;
pub mod restore;
pub mod status;
pub mod verify;

use crate::archive::collection::Collection;
use crate::backend::{self, Access, Backend};
use crate::config::Common;
use crate::engine::metadata::Metadata;
use crate::error::Result;
use crate::local::cache::Cache;
use std::collections::HashMap;

/// A target opened and listed: what the read-side verbs start from.
pub struct Listing {
    pub backend: Box<dyn Backend>,
    pub names: Vec<String>,
    /// Object sizes from the listing (status reports them).
    pub sizes: HashMap<String, u64>,
    pub coll: Collection,
}

impl Listing {
    pub fn open(common: &Common, access: Access) -> Result<Listing> {
        let backend = backend::open(&common.url, access, &common.backend)?;
        let sized = backend.list_sized(&common.prefixes.file)?;
        let names: Vec<String> = sized.iter().map(|(n, _)| n.clone()).collect();
        let coll = Collection::from_names(&names, &common.prefixes);
        Ok(Listing {
            backend,
            names,
            sizes: sized.into_iter().collect(),
            coll,
        })
    }

    /// The cache in front of this target's manifests and signatures, cleared of files whose
    /// remote counterpart is gone.
    pub fn metadata<'a>(&'a self, common: &'a Common) -> Result<Metadata<'a>> {
        let md = Metadata {
            backend: self.backend.as_ref(),
            cache: Cache::open(common)?,
            common,
        };
        md.prune_spurious(&self.names)?;
        Ok(md)
    }

    pub fn size_of<'n>(&self, names: impl IntoIterator<Item = &'n String>) -> u64 {
        names
            .into_iter()
            .map(|n| self.sizes.get(n).copied().unwrap_or(0))
            .sum()
    }
}
