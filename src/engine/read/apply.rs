//! Writing what the merge yields: each entry made through the path resolver (directories'
//! metadata set after their contents), and regular files rebuilt from their snapshot and
//! deltas, in place and sparse.

use super::merge::live_entry;
use super::resolve::{existing, symlink_at, Existing, Resolver};
use super::stream::{unwrap_io, SetStream, Wrapped};
use crate::archive::tar::{self, Header};
use crate::archive::{index_display, Index, MemberKind};
use crate::config::{Common, RestoreOpts};
use crate::count::Counting;
use crate::error::{Error, Result};
use crate::local::platform;
use crate::local::spool::tempfile_in;
use crate::local::users;
use crate::log;
use crate::rsync;
use crate::rsync::sparse::SparseWriter;
use serde_json::json;
use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::path::{Path, PathBuf};

#[cfg(unix)]
use super::fill::FillPool as Fill;
/// Where there is no pool (no threads, no positional writes), files are written inline.
#[cfg(not(unix))]
pub(crate) enum Fill {}

#[cfg(not(unix))]
impl Fill {
    fn copy(&mut self, _: &File, _: &mut dyn io::Read) -> io::Result<u64> {
        match *self {}
    }
}

/// Where restored entries go: every write goes through the path resolver, which is made
/// when the restore knows what its root is (a tree, or one non-directory with `-r`).
pub(crate) struct Writer<'c> {
    target: PathBuf,
    prefix: Index,
    opts: &'c RestoreOpts,
    common: &'c Common,
    resolver: Option<Resolver>,
    /// Directories whose owner, mode and time are set after their contents (indexes).
    pending_dirs: Vec<(Index, Header)>,
    own: bool,
    /// Writes big new files on several threads; started at the first file (`None` with
    /// `--concurrency 1`, or when no thread could be started).
    #[cfg(unix)]
    fill: Option<super::fill::FillPool>,
    #[cfg(unix)]
    fill_tried: bool,
    /// Entries made, bytes of files written, warnings given.
    pub(crate) files: u64,
    pub(crate) bytes_written: u64,
    pub(crate) warnings: u64,
}

/// Get TARGET ready to be the root directory of the restore: made when absent; when it
/// is there it must be an empty directory, unless `--force` (then entries the archive
/// describes replace what is at their paths, and nothing else is removed; a file at
/// TARGET itself is replaced by the directory).
pub(crate) fn prepare_tree(target: &Path, force: bool) -> Result<()> {
    let io_err = |e| Error::io(target.display(), e);
    // TARGET is the user's own path: a symlink to a directory is followed.
    match fs::metadata(target) {
        Ok(m) if m.is_dir() => {
            let mut rd = fs::read_dir(target).map_err(io_err)?;
            if rd.next().is_some() && !force {
                return Err(Error::Usage(format!(
                    "restore target {} is not empty; use --force to restore into it",
                    target.display()
                )));
            }
            return Ok(());
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(e)),
    }
    if existing(target).map_err(io_err)? != Existing::Nothing {
        if !force {
            return Err(Error::Usage(format!(
                "restore target {} exists and is not a directory; use --force to replace it",
                target.display()
            )));
        }
        fs::remove_file(target).map_err(io_err)?;
    }
    fs::create_dir_all(target).map_err(io_err)
}

impl<'c> Writer<'c> {
    /// A writer for a restore of the entries under `prefix`; `resolver` is given for a
    /// tree restore (TARGET prepared), and made at the first entry otherwise.
    pub(crate) fn new(
        opts: &'c RestoreOpts,
        common: &'c Common,
        prefix: &Index,
        resolver: Option<Resolver>,
    ) -> Writer<'c> {
        Writer {
            target: opts.target.clone(),
            prefix: prefix.clone(),
            opts,
            common,
            resolver,
            pending_dirs: Vec::new(),
            own: opts.restore_ownership && platform::is_root(),
            #[cfg(unix)]
            fill: None,
            #[cfg(unix)]
            fill_tried: false,
            files: 0,
            bytes_written: 0,
            warnings: 0,
        }
    }

    /// The resolver for an entry at `rel` (relative to the restore's root) of tar type
    /// `typ`, made at the first entry. A tree restore's root is a directory, and only a
    /// `--file-to-restore` of a non-directory makes a single-entry restore: into a
    /// directory TARGET it goes to TARGET/<its name>, as `cp` does, and it never replaces
    /// a directory.
    fn resolver(&mut self, rel: &[Vec<u8>], typ: u8, object: &str) -> Result<&mut Resolver> {
        if self.resolver.is_none() {
            let single = !self.prefix.is_empty() && rel.is_empty() && typ != tar::DIRTYPE;
            let r = if single {
                self.single_resolver()?
            } else {
                prepare_tree(&self.target, self.opts.force)?;
                Resolver::tree(&self.target)?
            };
            self.resolver = Some(r);
        }
        let Some(r) = self.resolver.as_mut() else {
            return Err(Error::Internal("no resolver".into()));
        };
        if rel.is_empty() && typ != tar::DIRTYPE && !r.is_single() {
            return Err(Error::UnsafeMember {
                object: object.into(),
                member: ".".into(),
                why: format!(
                    "the archive's root is a {}; only a directory can be restored as {}, \
                     and anything else could lead the entries below it outside the target",
                    type_name(typ),
                    self.target.display()
                ),
            });
        }
        Ok(r)
    }

    fn single_resolver(&self) -> Result<Resolver> {
        let target = &self.target;
        let io_err = |e| Error::io(target.display(), e);
        let name = self.prefix.last().cloned().unwrap_or_default();
        if fs::metadata(target).is_ok_and(|m| m.is_dir()) {
            let inside = platform::join_name(target, &name);
            match existing(&inside).map_err(io_err)? {
                Existing::Nothing => {}
                Existing::Dir => {
                    return Err(Error::Usage(format!(
                        "{} is a directory; a restore does not replace a directory with a file",
                        inside.display()
                    )))
                }
                Existing::Other if !self.opts.force => {
                    return Err(Error::Usage(format!(
                        "{} exists; use --force to replace it",
                        inside.display()
                    )))
                }
                Existing::Other => {}
            }
            return Resolver::single(target, name);
        }
        if existing(target).map_err(io_err)? != Existing::Nothing && !self.opts.force {
            return Err(Error::Usage(format!(
                "restore target {} exists; use --force to replace it",
                target.display()
            )));
        }
        let (Some(parent), Some(file)) = (target.parent(), target.file_name()) else {
            return Err(Error::Usage(format!(
                "restore target {} names no file",
                target.display()
            )));
        };
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        Resolver::single(parent, platform::name_bytes(file))
    }

    pub(crate) fn flush_dirs(&mut self, upto: Option<&Index>) -> Result<()> {
        while let Some((idx, _)) = self.pending_dirs.last() {
            if upto.is_some_and(|u| u.starts_with(idx) && u != idx) {
                break;
            }
            let Some((idx, h)) = self.pending_dirs.pop() else {
                break;
            };
            let rel = idx[self.prefix.len()..].to_vec();
            self.set_meta(&rel, "", &h, false)?;
        }
        Ok(())
    }

    /// Owner (as root), mode (not for symlinks) and time of the entry at `rel`, none of
    /// them through a symlink. Owner and time failures are warnings; a mode that cannot be
    /// set is an error (the file would be more open than it was).
    fn set_meta(&mut self, rel: &[Vec<u8>], object: &str, h: &Header, symlink: bool) -> Result<()> {
        let owner = self.own.then(|| {
            (
                users::resolve_uid(h.uid, &h.uname, self.opts.numeric_owner),
                users::resolve_gid(h.gid, &h.gname, self.opts.numeric_owner),
            )
        });
        let r = self
            .resolver
            .as_mut()
            .ok_or_else(|| Error::Internal("no resolver".into()))?;
        let (owned, mode, time) = r.at(rel, object, |at, name| {
            (
                owner.map(|(u, g)| platform::set_owner_at(at, name, u, g)),
                (!symlink).then(|| platform::set_mode_at(at, name, h.mode)),
                platform::set_mtime_at(at, name, h.mtime),
            )
        })?;
        let path = r.display(rel);
        if let Some(Err(e)) = owned {
            self.warn(
                "chown",
                rel,
                format!("cannot set owner of {}: {e}", path.display()),
            );
        }
        if let Some(Err(e)) = mode {
            return Err(Error::io(path.display(), e));
        }
        if let Err(e) = time {
            self.warn(
                "utime",
                rel,
                format!("cannot set mtime of {}: {e}", path.display()),
            );
        }
        Ok(())
    }

    /// The pool that writes big new files, started on first use.
    #[cfg(unix)]
    fn fill(&mut self) -> Option<&mut super::fill::FillPool> {
        if !self.fill_tried {
            self.fill_tried = true;
            if self.opts.concurrency > 1 {
                self.fill = super::fill::FillPool::new(self.opts.concurrency);
            }
        }
        self.fill.as_mut()
    }

    #[cfg(not(unix))]
    fn fill(&mut self) -> Option<&mut Fill> {
        None
    }

    fn warn(&mut self, code: &str, rel: &[Vec<u8>], msg: String) {
        self.warnings += 1;
        let mut index = self.prefix.clone();
        index.extend_from_slice(rel);
        log::warn(
            "warning",
            &msg,
            vec![
                ("code", json!(code)),
                ("path", json!(index_display(&index))),
            ],
        );
    }
}

fn type_name(typ: u8) -> &'static str {
    match typ {
        tar::REGTYPE | b'\0' | b'7' => "regular file",
        tar::DIRTYPE => "directory",
        tar::SYMTYPE => "symlink",
        tar::FIFOTYPE => "FIFO",
        tar::CHRTYPE | tar::BLKTYPE => "device",
        _ => "entry of an unknown type",
    }
}

pub(crate) fn restore_entry(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
    w: &mut Writer,
) -> Result<()> {
    let Some((object, header)) = live_entry(streams, holders, index)? else {
        return Ok(());
    };
    w.flush_dirs(Some(index))?;
    let rel = index[w.prefix.len()..].to_vec();
    let typ = header.typ;
    let r = w.resolver(&rel, typ, &object)?;
    if typ != tar::REGTYPE && typ != b'\0' && typ != b'7' {
        for &i in holders {
            streams[i].skip_entry()?;
        }
        let made = match typ {
            tar::DIRTYPE => {
                r.make_dir(&rel, &object)?;
                // Writable while its contents are written; the real mode is set after.
                w.pending_dirs.push((index.clone(), header));
                w.files += 1;
                return Ok(());
            }
            tar::SYMTYPE => r.make_special(&rel, &object, |at, name| {
                symlink_at(&header.linkname, at, name)
            })?,
            tar::FIFOTYPE => r.make_special(&rel, &object, |at, name| {
                platform::mkfifo_at(at, name, header.mode)
            })?,
            tar::CHRTYPE | tar::BLKTYPE => r.make_special(&rel, &object, |at, name| {
                platform::mknod_at(
                    at,
                    name,
                    typ == tar::BLKTYPE,
                    header.mode,
                    header.devmajor,
                    header.devminor,
                )
            })?,
            other => {
                w.warn(
                    "unsupported_type",
                    &rel,
                    format!(
                        "skipping {} of unsupported tar type {:?}",
                        index_display(index),
                        other as char
                    ),
                );
                return Ok(());
            }
        };
        if let Err(e) = made {
            let path = r.display(&rel);
            // A FIFO where none can be made (WASI), a device without the privilege: skipped
            // with a warning (exit 10), the rest of the tree is restored.
            let (code, what) = match typ {
                tar::SYMTYPE => return Err(Error::io(path.display(), e)),
                tar::FIFOTYPE if e.kind() != io::ErrorKind::Unsupported => {
                    return Err(Error::io(path.display(), e))
                }
                tar::FIFOTYPE => ("mkfifo", "FIFO"),
                _ => ("mknod", "device"),
            };
            w.warn(
                code,
                &rel,
                format!("cannot create {what} {}: {e}", path.display()),
            );
            return Ok(());
        }
        w.set_meta(&rel, &object, &header, typ == tar::SYMTYPE)?;
        w.files += 1;
        return Ok(());
    }

    // A regular file: base snapshot, then each delta in order, into a new file.
    let mut out = r.create_file(&rel, &object)?;
    let path = r.display(&rel);
    let tempdir = w.common.tempdir.clone();
    match rebuild_in_place(streams, holders, index, &tempdir, &mut out, &path, w.fill()) {
        Ok(n) => w.bytes_written += n,
        Err(e) => {
            // No half-written file is left to pass for the real one.
            drop(out);
            if let Some(r) = w.resolver.as_mut() {
                if r.remove(&rel, &object).is_ok() {
                    log::warn(
                        "warning",
                        &format!(
                            "removed {}, which could not be restored whole",
                            path.display()
                        ),
                        vec![
                            ("code", json!("partial_removed")),
                            ("path", json!(index_display(index))),
                        ],
                    );
                }
            }
            return Err(e);
        }
    }
    drop(out);
    w.set_meta(&rel, &object, &header, false)?;
    w.files += 1;
    Ok(())
}

/// Rebuild a regular file from its snapshot and the deltas after it (the `holders` of the
/// merge) into `out`, returning its length. Intermediate versions are spooled to anonymous
/// temporary files, so memory does not depend on the file's size. `path` names the file in
/// errors about writing `out`.
pub(crate) fn rebuild_file(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
    tempdir: &Path,
    out: &mut dyn Write,
    path: &Path,
) -> Result<u64> {
    let mut basis: Option<File> = None;
    let last = holders.len().saturating_sub(1);
    let mut written = 0;
    for (pos, &i) in holders.iter().enumerate() {
        let mut spool = if pos == last {
            None
        } else {
            Some(tempfile_in(tempdir)?)
        };
        let inner: &mut dyn Write = match spool.as_mut() {
            Some(f) => f,
            None => &mut *out,
        };
        let mut counting = Counting::new(inner);
        let obj = streams[i].object.clone();
        let kind = streams[i].head.as_ref().map(|h| h.kind);
        let mut r = streams[i].entry_reader();
        match (kind, basis.as_mut()) {
            (Some(MemberKind::Snapshot), _) => {
                let mut bw = io::BufWriter::with_capacity(1 << 16, &mut counting);
                io::copy(&mut r, &mut bw).map_err(|e| write_or_read_error(e, path))?;
                bw.flush().map_err(|e| Error::io(path.display(), e))?;
            }
            (Some(MemberKind::Diff), Some(b)) => {
                b.seek(io::SeekFrom::Start(0))
                    .map_err(|e| Error::io("restore spool", e))?;
                let mut b = io::BufReader::with_capacity(1 << 16, b);
                let mut bw = io::BufWriter::with_capacity(1 << 16, &mut counting);
                rsync::patch(&mut b, &mut r, &mut bw).map_err(|e| match e {
                    rsync::DeltaError::Io(io) => write_or_read_error(io, path),
                    other => Error::integrity(&obj, format!("{}: {other}", index_display(index))),
                })?;
                bw.flush().map_err(|e| Error::io(path.display(), e))?;
            }
            _ => {
                return Err(Error::integrity(
                    &obj,
                    format!("{}: unexpected member kind", index_display(index)),
                ))
            }
        }
        r.finish()?;
        written = counting.n;
        if spool.is_some() {
            basis = spool;
        }
    }
    Ok(written)
}

/// [`rebuild_file`] into the file itself: the snapshot is written to `file` and each delta
/// applied to it in place ([`rsync::patch_in_place`]), so that the parts of a big file that
/// did not change are written once, not once per version.
fn rebuild_in_place(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
    tempdir: &Path,
    file: &mut File,
    path: &Path,
    mut fill: Option<&mut Fill>,
) -> Result<u64> {
    // Where overwritten basis bytes go; made on the first delta.
    let mut side: Option<File> = None;
    let mut len: Option<u64> = None;
    for &i in holders {
        let obj = streams[i].object.clone();
        let kind = streams[i].head.as_ref().map(|h| h.kind);
        let mut r = streams[i].entry_reader();
        match (kind, len) {
            (Some(MemberKind::Snapshot), prev) => {
                // Only ever first (the merge starts at the latest snapshot), into the file
                // just created empty: no truncate, which on ext4 makes the close allocate
                // the file's blocks at once (auto_da_alloc).
                if prev.is_some() {
                    file.seek(io::SeekFrom::Start(0))
                        .and_then(|_| file.set_len(0))
                        .map_err(|e| Error::io(path.display(), e))?;
                }
                // Zero blocks become holes: a sparse file comes back sparse.
                len = Some(match fill.as_deref_mut() {
                    Some(pool) => pool
                        .copy(file, &mut r)
                        .map_err(|e| write_or_read_error(e, path))?,
                    None => {
                        let mut sparse = SparseWriter::new(file);
                        sparse
                            .copy_from(&mut r)
                            .map_err(|e| write_or_read_error(e, path))?;
                        sparse.finish().map_err(|e| Error::io(path.display(), e))?
                    }
                });
            }
            (Some(MemberKind::Diff), Some(_)) => {
                let side = match &mut side {
                    Some(s) => s,
                    None => side.insert(tempfile_in(tempdir)?),
                };
                let n = rsync::patch_in_place(file, &mut r, side).map_err(|e| match e {
                    rsync::DeltaError::Io(io) => write_or_read_error(io, path),
                    other => Error::integrity(&obj, format!("{}: {other}", index_display(index))),
                })?;
                // Zero blocks past the old end are holes, so a longer result may end in
                // one; a shorter one is cut. set_len only when needed (on ext4 a truncate
                // makes the close allocate the file's blocks at once).
                let on_disk = file
                    .metadata()
                    .map_err(|e| Error::io(path.display(), e))?
                    .len();
                if n != on_disk {
                    file.set_len(n).map_err(|e| Error::io(path.display(), e))?;
                }
                len = Some(n);
            }
            _ => {
                return Err(Error::integrity(
                    &obj,
                    format!("{}: unexpected member kind", index_display(index)),
                ))
            }
        }
        r.finish()?;
    }
    Ok(len.unwrap_or(0))
}

fn write_or_read_error(e: io::Error, path: &Path) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Wrapped>()) {
        return unwrap_io(e);
    }
    Error::io(path.display(), e)
}
