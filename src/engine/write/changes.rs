//! Which source entries changed since the chain's last set: duplicity's rule (§6.3) on the
//! walk's `lstat` against the merged signature chain's headers, plus size for regular
//! files, symlinks' mtimes, and the racy-clean rule (a file whose mtime was not older than
//! the second the previous set started is read again). Also what a read tells afterwards:
//! a file that moved while it was read.

use super::members::tar_type;
use super::walk::{Item, Source};
use crate::archive::sigtar::SigEntries;
use crate::archive::sigtar::SigEntry;
use crate::archive::{index_display, Index, MemberKind};
use crate::engine::write::walk::Entry;
use crate::error::{Error, Result};
use crate::local::platform::{self, Kind};
use crate::local::users;
use crate::{interrupt, log};
use std::fs::File;

/// Where the comparison's verdicts go: the set writer, which stores what changed, or a
/// dry run, which only counts it.
pub(super) trait Outcome {
    /// Show progress, when it is due.
    fn progress(&mut self);
    /// A source entry: new (`same` is `None`), unchanged (`Some(true)`) or changed.
    fn entry(&mut self, e: &Entry, old: Option<&SigEntry>, same: Option<bool>) -> Result<()>;
    /// In the chain, gone from the source (or left out now).
    fn deleted(&mut self, index: &Index, regular: bool) -> Result<()>;
    /// A source entry that cannot be read: its previous state is `kept` when it had one.
    fn warn_unreadable(
        &mut self,
        index: &Index,
        path: &std::path::Path,
        err: &std::io::Error,
        kept: bool,
    );
}

/// The `unreadable` warning of a source entry; `then` says what became of it.
pub(super) fn warn_unreadable(
    index: &Index,
    path: &std::path::Path,
    err: &std::io::Error,
    then: Option<&str>,
) {
    let then = then.map(|t| format!("; {t}")).unwrap_or_default();
    log::warn(
        "warning",
        &format!("cannot read {}: {err}{then}", path.display()),
        vec![
            ("code", serde_json::json!("unreadable")),
            ("path", serde_json::json!(index_display(index))),
            ("reason", serde_json::json!(err.to_string())),
        ],
    );
}

/// A backup's `--dry-run`: what it would store, counted; nothing is written.
#[derive(Debug, Default)]
pub struct DryRun {
    pub summary: super::members::Summary,
    /// Sizes of the regular files that would be read and stored (new, changed).
    pub bytes_new: u64,
    pub bytes_changed: u64,
}

impl Outcome for DryRun {
    fn progress(&mut self) {}
    fn entry(&mut self, e: &Entry, _old: Option<&SigEntry>, same: Option<bool>) -> Result<()> {
        self.summary.count(&e.stat, same);
        if e.stat.kind == Kind::File {
            match same {
                None => self.bytes_new += e.stat.size,
                Some(false) => self.bytes_changed += e.stat.size,
                Some(true) => {}
            }
        }
        Ok(())
    }
    fn deleted(&mut self, _index: &Index, _regular: bool) -> Result<()> {
        self.summary.files_deleted += 1;
        Ok(())
    }
    fn warn_unreadable(
        &mut self,
        index: &Index,
        path: &std::path::Path,
        err: &std::io::Error,
        _kept: bool,
    ) {
        self.summary.warnings += 1;
        warn_unreadable(index, path, err, None);
    }
}

/// Whether a file's size or mtime moved between the walk's `lstat` and the end of its
/// read, or the read did not see as many bytes as the walk (stock says nothing then).
pub(super) fn changed_while_read(file: &File, e: &Entry, bytes: u64) -> bool {
    let Ok(m) = file.metadata() else {
        return false;
    };
    let mtime = platform::metadata_mtime(&m);
    bytes != e.stat.size || m.len() != e.stat.size || mtime != e.stat.mtime
}

/// duplicity's notion of "unchanged" (§6.3), plus size for regular files.
pub(super) fn unchanged(e: &Entry, s: &SigEntry) -> bool {
    let h = &s.header;
    if tar_type(e.stat.kind) != h.typ {
        return false;
    }
    let same_mtime = e.stat.mtime == h.mtime || (e.stat.mtime <= 0 && h.mtime <= 0);
    if e.stat.kind == Kind::Symlink {
        // The mtime too: swiftdup restores symlinks' mtimes, so a touched link is stored.
        return e.linkname == h.linkname && same_mtime;
    }
    if e.stat.kind == Kind::File && s.racy() {
        return false;
    }
    let uid = users::resolve_uid(h.uid, &h.uname, false);
    let gid = users::resolve_gid(h.gid, &h.gname, false);
    if e.stat.mode != h.mode || e.stat.uid != uid || e.stat.gid != gid {
        return false;
    }
    match e.stat.kind {
        Kind::Char | Kind::Block => {
            return e.stat.rdev_major == h.devmajor && e.stat.rdev_minor == h.devminor
        }
        _ => {}
    }
    if !same_mtime {
        return false;
    }
    if e.stat.kind == Kind::File {
        return match (s.recorded_size(), s.sig.as_deref()) {
            (Some(n), _) => n == e.stat.size,
            // Written by stock: the signature's block count bounds the size.
            (None, Some(sig)) if sig.len() >= 12 => {
                let bl = u32::from_be_bytes([sig[4], sig[5], sig[6], sig[7]]) as u64;
                let blocks = (sig.len() as u64 - 12) / 12;
                bl > 0 && e.stat.size.div_ceil(bl) == blocks
            }
            _ => true,
        };
    }
    true
}

/// Walk the source and the chain's signatures side by side (both in index order) and
/// hand each entry to `run`: new or changed ones become members, unchanged ones are
/// counted, those the chain has and the source lost are recorded as deleted. Entries below
/// an unreadable directory keep their previous state. `reads_all`: every regular file
/// the walk finds will be read (a full backup), so small ones are read in ahead.
pub(super) fn compare(
    source: Source,
    mut sig_reader: SigEntries,
    run: &mut impl Outcome,
    threads: bool,
    reads_all: bool,
) -> Result<()> {
    let walk = source
        .items(threads, reads_all)
        .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
    let mut walk = walk.peekable();
    let mut old = sig_reader.next()?;
    let mut carried: Option<Index> = None;
    loop {
        interrupt::check()?;
        run.progress();
        crate::backend::lock::tick();
        // Entries below an unreadable directory keep their previous state.
        if let (Some(c), Some(o)) = (&carried, &old) {
            if o.index.starts_with(c) {
                old = sig_reader.next()?;
                continue;
            }
        }
        let src_index = match walk.peek() {
            Some(Item::Entry(e)) => Some(&e.index),
            Some(Item::Unreadable { index, .. }) | Some(Item::Skipped { index, .. }) => Some(index),
            None => None,
        };
        let order = match (src_index, &old) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(s), Some(o)) => s.cmp(&o.index),
        };
        if order == std::cmp::Ordering::Greater {
            // In the chain, gone from the source.
            let Some(o) = old.take() else { break };
            if !o.index.is_empty() {
                run.deleted(&o.index, o.kind == MemberKind::Signature)?;
            }
            old = sig_reader.next()?;
            continue;
        }
        let Some(item) = walk.next() else { break };
        let matched = if order == std::cmp::Ordering::Equal {
            old.take()
        } else {
            None
        };
        match item {
            Item::Skipped { index, reason } => {
                log::debug(
                    "skip",
                    &format!("skipping {reason} {}", index_display(&index)),
                    vec![],
                );
                if let Some(o) = matched {
                    run.deleted(&o.index, o.kind == MemberKind::Signature)?;
                }
            }
            Item::Unreadable { index, path, error } => {
                run.warn_unreadable(&index, &path, &error, matched.is_some());
                carried = Some(index);
            }
            Item::Entry(e) => {
                // Standard input is read every time: only its delta can tell it is the same.
                let same = matched.as_ref().map(|o| !e.stdin && unchanged(&e, o));
                run.entry(&e, matched.as_ref(), same)?;
            }
        }
        if order == std::cmp::Ordering::Equal {
            old = sig_reader.next()?;
        }
        crate::local::fault::point("entry");
    }
    Ok(())
}
