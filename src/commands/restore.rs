//! `restore`: plans a restore (the chain and sets for `--time`, TARGET checked) and runs
//! the read side of the engine (`engine::read`): each set's volumes as a stream of members,
//! merged by index, each path rebuilt from its last snapshot plus the deltas after it (§7)
//! and written through the path resolver, so nothing is written outside TARGET.

use super::Listing;
use crate::archive::collection::{BackupSet, Collection};
use crate::archive::{index_display, Index};
use crate::backend::Access;
use crate::config::{Common, RestoreOpts};
use crate::engine::read::apply::{prepare_tree, restore_entry, Writer};
use crate::engine::read::merge::merge;
use crate::engine::read::progress::ReadProgress;
use crate::engine::read::resolve::Resolver;
use crate::engine::read::stream::{fetch_ahead, set_streams};
use crate::error::{Error, Result};
use crate::log;
use serde_json::json;

/// What a restore did.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub files: u64,
    pub bytes_written: u64,
    pub volumes_read: u64,
    pub bytes_downloaded: u64,
    pub set_time: i64,
    pub chain_length: usize,
    pub warnings: u64,
}

impl Summary {
    pub fn to_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "set_time",
                json!(crate::archive::time::rfc3339(self.set_time)),
            ),
            ("chain_length", json!(self.chain_length)),
            ("files_restored", json!(self.files)),
            ("bytes_written", json!(self.bytes_written)),
            ("volumes", json!(self.volumes_read)),
            ("bytes_downloaded", json!(self.bytes_downloaded)),
            ("warnings", json!(self.warnings)),
        ]
    }
}

/// Sets a restore at `t` passes over although they are not older than `t`: a set whose
/// manifest is missing while its volumes are there (an interrupted run, or a deleted
/// manifest), and complete sets that extend no chain. Each is a warning: the restore is
/// of an older state than the listing suggests. Returns how many were reported.
fn warn_unused_sets(coll: &Collection, sets: &[&BackupSet], t: i64) -> u64 {
    let restored = sets.last().map(|s| s.end).unwrap_or(i64::MIN);
    let mut n = 0;
    let unused = coll
        .incomplete
        .iter()
        .map(|s| (s, "its manifest is missing"))
        .chain(coll.orphaned.iter().map(|s| (s, "it extends no chain")));
    for (s, why) in unused {
        if s.end <= restored || s.end > t {
            continue;
        }
        n += 1;
        let time = crate::archive::time::rfc3339(s.end);
        log::warn(
            "warning",
            &format!(
                "the {} set of {time} is not restored: {why} ({} volume(s) in the target); \
                 restoring the state of {}",
                s.type_name(),
                s.volumes.len(),
                crate::archive::time::rfc3339(restored)
            ),
            vec![
                ("code", json!("set_not_restored")),
                ("set_time", json!(time)),
                ("reason", json!(why)),
            ],
        );
    }
    n
}

pub fn run(common: &Common, opts: &RestoreOpts) -> Result<Summary> {
    let l = Listing::open(common, Access::Read)?;
    let md = l.metadata(common)?;
    let coll = &l.coll;
    let t = opts.time.unwrap_or(common.now);
    let chain = coll.chain_for(t, &log::redact(&common.url))?;
    let sets = chain.sets_until(t);
    let prefix: Index = opts.file_to_restore.clone().unwrap_or_default();

    let mut streams = set_streams(&md, &sets, &prefix, fetch_ahead(opts.concurrency))?;
    if !prefix.is_empty() && streams.iter().all(|s| s.volumes.is_empty()) {
        return Err(Error::PathNotFound(index_display(&prefix)));
    }

    // A full restore checks TARGET before anything is downloaded; a --file-to-restore
    // does when its entry arrives, as its type decides where it goes.
    if prefix.is_empty() {
        prepare_tree(&opts.target, opts.force)?;
    }
    let warnings = warn_unused_sets(coll, &sets, t);

    log::info(
        "plan",
        &format!(
            "restoring {} set(s) up to {}",
            sets.len(),
            crate::archive::time::rfc3339(sets.last().map(|s| s.end).unwrap_or(t))
        ),
        vec![
            ("type", json!("restore")),
            ("sets", json!(sets.len())),
            (
                "set_time",
                json!(crate::archive::time::rfc3339(
                    sets.last().map(|s| s.end).unwrap_or(t)
                )),
            ),
        ],
    );

    let resolver = match prefix.is_empty() {
        true => Some(Resolver::tree(&opts.target)?),
        false => None,
    };
    let mut w = Writer::new(opts, common, &prefix, resolver);
    let progress =
        ReadProgress::attach(&mut streams, "restore", common.progress_interval, &l.sizes);
    let found = merge(&mut streams, &prefix, |streams, holders, index| {
        restore_entry(streams, holders, index, &mut w)?;
        let mut p = progress.borrow_mut();
        p.files = w.files;
        p.fields = vec![("bytes_written", json!(w.bytes_written))];
        p.tick();
        Ok(())
    })?;
    progress.borrow_mut().finish();
    if prefix.is_empty() && w.files == 0 {
        // Every set has a root entry: a chain without one was cut or crafted.
        return Err(Error::integrity(
            sets.last()
                .and_then(|s| s.manifest.as_deref())
                .unwrap_or("chain"),
            "the backup holds no entry, not even its root directory",
        ));
    }
    w.flush_dirs(None)?;
    if !prefix.is_empty() && !found {
        return Err(Error::PathNotFound(index_display(&prefix)));
    }
    let mut summary = Summary {
        files: w.files,
        bytes_written: w.bytes_written,
        set_time: sets.last().map(|s| s.end).unwrap_or(t),
        chain_length: sets.len(),
        warnings: warnings + w.warnings,
        ..Summary::default()
    };
    for s in &streams {
        summary.volumes_read += s.stats.0;
        summary.bytes_downloaded += s.stats.1;
    }
    Ok(summary)
}
