//! `verify`: a restore that writes nothing. Every volume the chain needs at `--time` is
//! downloaded, hash-checked against its manifest and decrypted to the last byte; every
//! regular file is rebuilt through its deltas. The result is compared with SOURCE: metadata
//! always (type, permissions, owner, mtime, size, link target, device numbers), contents
//! with `--compare-data`. Stock's verify without `--compare-data` compares nothing (§7.4);
//! here the metadata comparison is what makes a plain `verify` worth running.
//!
//! The backup and the source are both walked in index order and zipped, so memory does not
//! grow with the number of files; contents are compared as they stream.

use super::Listing;
use crate::archive::tar::{self, Header};
use crate::archive::time::rfc3339;
use crate::archive::{index_display, Index};
use crate::backend::Access;
use crate::config::Common;
use crate::engine::read::apply::rebuild_file;
use crate::engine::read::merge::{live_entry, merge};
use crate::engine::read::progress::ReadProgress;
use crate::engine::read::stream::{fetch_ahead, set_streams, SetStream};
use crate::engine::write::members::tar_type;
use crate::engine::write::select::{RuleSpec, Selection, Verdict};
use crate::engine::write::walk::{Entry, Filter, Item, Walk};
use crate::error::{Error, Result};
use crate::local::platform::Kind;
use crate::local::users;
use crate::log;
use serde_json::{json, Value};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::iter::Peekable;
use std::path::PathBuf;

/// What `verify` compares.
pub struct VerifyOpts {
    pub source: PathBuf,
    pub time: Option<i64>,
    pub file_to_restore: Option<Index>,
    pub compare_data: bool,
    /// The selection options in the order they apply, as for the backup (stock's verify
    /// compares only the selected part of the source too).
    pub selection: Vec<RuleSpec>,
    /// Above 1, the source is walked on a thread of its own while the volumes are read.
    pub concurrency: usize,
}

/// What `verify` found.
#[derive(Default)]
pub struct Summary {
    pub files: u64,
    pub differences: u64,
    pub volumes: u64,
    pub bytes_downloaded: u64,
    pub set_time: i64,
    pub warnings: u64,
}

impl Summary {
    pub fn to_fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("set_time", json!(rfc3339(self.set_time))),
            ("files_compared", json!(self.files)),
            ("differences", json!(self.differences)),
            ("volumes", json!(self.volumes)),
            ("bytes_downloaded", json!(self.bytes_downloaded)),
            ("warnings", json!(self.warnings)),
        ]
    }
}

/// Walks only `prefix` and the directories above it.
struct Under(Index, Selection);

impl Filter for Under {
    fn select(&mut self, e: &Entry) -> Verdict {
        if e.index.starts_with(&self.0) {
            self.1.select(&e.index, &e.path, &e.stat)
        } else if self.0.starts_with(&e.index) {
            // A directory on the way to --file-to-restore.
            Verdict::Include
        } else {
            Verdict::Exclude
        }
    }
}

/// Compares what is written to it with a reader, byte by byte.
struct Compare<R: Read> {
    other: R,
    buf: Vec<u8>,
    differs: bool,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if !self.differs {
            self.buf.resize(data.len(), 0);
            let mut got = 0;
            while got < data.len() {
                match self.other.read(&mut self.buf[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if got < data.len() || self.buf[..] != *data {
                self.differs = true;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<R: Read> Compare<R> {
    /// Whether the other side had exactly the bytes written, and no more.
    fn same(mut self) -> io::Result<bool> {
        if self.differs {
            return Ok(false);
        }
        let mut one = [0u8; 1];
        loop {
            match self.other.read(&mut one) {
                Ok(0) => return Ok(true),
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

struct Verifier<'o, W: Iterator<Item = Item>> {
    source: Peekable<W>,
    prefix: Index,
    compare_data: bool,
    tempdir: PathBuf,
    json: bool,
    out: &'o mut dyn Write,
    summary: Summary,
}

impl<W: Iterator<Item = Item>> Verifier<'_, W> {
    fn report(&mut self, index: &Index, what: &str, detail: &str) -> Result<()> {
        self.summary.differences += 1;
        let path = index_display(index);
        let r = if self.json {
            writeln!(
                self.out,
                "{}",
                json!({"path": path, "difference": what, "detail": detail})
            )
        } else {
            writeln!(self.out, "{what}: {path}: {detail}")
        };
        r.map_err(Error::stdout)
    }

    /// Source entries before `upto` (or all that are left) exist only in the source.
    fn source_only(&mut self, upto: Option<&Index>) -> Result<()> {
        loop {
            let index = match self.source.peek() {
                None => return Ok(()),
                Some(Item::Entry(e)) => &e.index,
                Some(Item::Unreadable { index, .. }) | Some(Item::Skipped { index, .. }) => index,
            };
            if upto.is_some_and(|u| index >= u) {
                return Ok(());
            }
            match self.source.next() {
                Some(Item::Entry(e)) if e.index.starts_with(&self.prefix) => {
                    self.report(&e.index, "new", "in the source, not in the backup")?;
                }
                Some(Item::Unreadable { index, path, error }) => {
                    self.summary.warnings += 1;
                    log::warn(
                        "warning",
                        &format!("cannot read {}: {error}", path.display()),
                        vec![
                            ("code", json!("unreadable")),
                            ("path", json!(index_display(&index))),
                        ],
                    );
                }
                _ => {}
            }
        }
    }

    /// The source's entry at exactly `index`, if any.
    fn source_at(&mut self, index: &Index) -> Option<Entry> {
        match self.source.peek() {
            Some(Item::Entry(e)) if e.index == *index => match self.source.next() {
                Some(Item::Entry(e)) => Some(e),
                _ => None,
            },
            _ => None,
        }
    }

    fn compare_meta(&mut self, index: &Index, h: &Header, e: &Entry) -> Result<bool> {
        let typ = if h.typ == b'\0' || h.typ == b'7' {
            tar::REGTYPE
        } else {
            h.typ
        };
        if tar_type(e.stat.kind) != typ {
            self.report(index, "type", "a different file type")?;
            return Ok(false);
        }
        let mut diffs: Vec<String> = Vec::new();
        if e.stat.kind == Kind::Symlink {
            if e.linkname != h.linkname {
                diffs.push(format!(
                    "link target {:?} in the backup, {:?} in the source",
                    String::from_utf8_lossy(&h.linkname),
                    String::from_utf8_lossy(&e.linkname)
                ));
            }
        } else {
            if e.stat.mode != h.mode & 0o7777 {
                diffs.push(format!(
                    "mode {:04o} in the backup, {:04o} in the source",
                    h.mode & 0o7777,
                    e.stat.mode
                ));
            }
            if e.stat.mtime != h.mtime && !(e.stat.mtime <= 0 && h.mtime <= 0) {
                diffs.push(format!(
                    "mtime {} in the backup, {} in the source",
                    rfc3339(h.mtime),
                    rfc3339(e.stat.mtime)
                ));
            }
        }
        let uid = users::resolve_uid(h.uid, &h.uname, false);
        let gid = users::resolve_gid(h.gid, &h.gname, false);
        if (uid, gid) != (e.stat.uid, e.stat.gid) && e.stat.kind != Kind::Symlink {
            diffs.push(format!(
                "owner {uid}:{gid} in the backup, {}:{} in the source",
                e.stat.uid, e.stat.gid
            ));
        }
        if matches!(e.stat.kind, Kind::Char | Kind::Block)
            && (e.stat.rdev_major, e.stat.rdev_minor) != (h.devmajor, h.devminor)
        {
            diffs.push("device numbers differ".into());
        }
        for d in &diffs {
            let what = d.split(' ').next().unwrap_or("metadata").to_string();
            self.report(index, &what, d)?;
        }
        Ok(diffs.is_empty())
    }

    fn entry(&mut self, streams: &mut [SetStream], holders: &[usize], index: &Index) -> Result<()> {
        // Deleted at this time: a source entry here is reported as new later.
        let Some((_, header)) = live_entry(streams, holders, index)? else {
            return Ok(());
        };
        self.source_only(Some(index))?;
        let src = self.source_at(index);
        self.summary.files += 1;
        let meta_same = match &src {
            Some(e) => self.compare_meta(index, &header, e)?,
            None => {
                self.report(index, "missing", "in the backup, not in the source")?;
                false
            }
        };
        let regular = matches!(header.typ, tar::REGTYPE | b'\0' | b'7');
        if !regular {
            for &i in holders {
                streams[i].skip_entry()?;
            }
            return Ok(());
        }
        // The contents are always rebuilt (that is what checks the deltas); compared only
        // with --compare-data, and only when the source is a regular file too.
        let src_file = match (&src, self.compare_data) {
            (Some(e), true) if e.stat.kind == Kind::File => match File::open(&e.path) {
                Ok(f) => Some(f),
                Err(err) => {
                    self.summary.warnings += 1;
                    log::warn(
                        "warning",
                        &format!("cannot read {}: {err}", e.path.display()),
                        vec![
                            ("code", json!("unreadable")),
                            ("path", json!(index_display(index))),
                        ],
                    );
                    None
                }
            },
            _ => None,
        };
        let path = src.as_ref().map(|e| e.path.clone()).unwrap_or_default();
        match src_file {
            Some(f) => {
                let mut cmp = Compare {
                    other: BufReader::with_capacity(1 << 16, f),
                    buf: Vec::new(),
                    differs: false,
                };
                rebuild_file(streams, holders, index, &self.tempdir, &mut cmp, &path)?;
                let same = cmp.same().map_err(|e| Error::io(path.display(), e))?;
                if !same {
                    self.report(index, "content", "the data differs")?;
                } else if !meta_same {
                    log::debug(
                        "verify",
                        &format!("{}: same data, other metadata", index_display(index)),
                        vec![],
                    );
                }
            }
            None => {
                rebuild_file(
                    streams,
                    holders,
                    index,
                    &self.tempdir,
                    &mut io::sink(),
                    &path,
                )?;
            }
        }
        Ok(())
    }
}

/// Verify the chain at `opts.time` against `opts.source`; differences go to `out`.
pub fn run(common: &Common, opts: &VerifyOpts, json: bool, out: &mut dyn Write) -> Result<Summary> {
    let prefix = opts.file_to_restore.clone().unwrap_or_default();
    if !matches!(crate::local::platform::lstat(&opts.source), Ok(s) if s.kind == Kind::Dir) {
        return Err(Error::SourceMissing(opts.source.display().to_string()));
    }
    let selection = Selection::new(&opts.source, &opts.selection, common.now)?;
    let walk = Walk::new(opts.source.clone(), Under(prefix.clone(), selection))
        .map_err(|_| Error::SourceMissing(opts.source.display().to_string()))?;
    let l = Listing::open(common, Access::Read)?;
    let md = l.metadata(common)?;
    let t = opts.time.unwrap_or(common.now);
    let chain = l.coll.chain_for(t, &log::redact(&common.url))?;
    let sets = chain.sets_until(t);
    let set_time = sets.last().map(|s| s.end).unwrap_or(t);
    let mut streams = set_streams(&md, &sets, &prefix, fetch_ahead(opts.concurrency))?;
    if !prefix.is_empty() && streams.iter().all(|s| s.volumes.is_empty()) {
        return Err(Error::PathNotFound(index_display(&prefix)));
    }
    log::info(
        "plan",
        &format!(
            "verifying {} set(s) up to {} against {}",
            sets.len(),
            rfc3339(set_time),
            opts.source.display()
        ),
        vec![
            ("type", json!("verify")),
            ("sets", json!(sets.len())),
            ("set_time", json!(rfc3339(set_time))),
            ("compare_data", json!(opts.compare_data)),
        ],
    );
    // With --compare-data every regular file the backup has is read: small ones are read
    // in ahead, as in a full backup.
    let walk = crate::engine::write::walk::ahead(walk, opts.concurrency > 1, opts.compare_data)
        .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
    let mut v = Verifier {
        source: walk.peekable(),
        prefix: prefix.clone(),
        compare_data: opts.compare_data,
        tempdir: common.tempdir.clone(),
        json,
        out,
        summary: Summary {
            set_time,
            ..Summary::default()
        },
    };
    let progress = ReadProgress::attach(&mut streams, "verify", common.progress_interval, &l.sizes);
    let found = merge(&mut streams, &prefix, |streams, holders, index| {
        v.entry(streams, holders, index)?;
        let mut p = progress.borrow_mut();
        p.files = v.summary.files;
        p.fields = vec![("differences", json!(v.summary.differences))];
        p.tick();
        Ok(())
    })?;
    progress.borrow_mut().finish();
    if !prefix.is_empty() && !found {
        return Err(Error::PathNotFound(index_display(&prefix)));
    }
    v.source_only(None)?;
    v.out.flush().map_err(Error::stdout)?;
    let mut summary = v.summary;
    for s in &streams {
        summary.volumes += s.stats.0;
        summary.bytes_downloaded += s.stats.1;
    }
    Ok(summary)
}
