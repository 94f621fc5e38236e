//! Tar members of a set: each new or changed entry becomes a snapshot, a librsync delta
//! against the chain's signature, or a run of 64 KiB multivol chunks, written into the
//! volumes; its new signature goes to the set's signature file and its line to the
//! manifest's Filelist as it is read (one pass over each file).

use super::changes::{changed_while_read, warn_unreadable, Outcome};
use super::commit::SigSink;
use super::progress::{ChunkSig, JournalTap, PartialFile, Resumed, Tap};
use crate::archive::sigtar::{SigEntry, SigWriter};
use crate::archive::tar::{self, Header};
use crate::archive::{index_display, member_name, Index, MemberKind, MULTIVOL_CHUNK};
use crate::engine::read_full;
use crate::engine::write::volumes::{ManifestWriter, Position, VolumeWriter};
use crate::engine::write::walk::Entry;
use crate::error::{Error, Result};
use crate::local::platform::Kind;
use crate::local::users;
use crate::rsync::{self, DeltaReader, SignatureBuilder};
use crate::{interrupt, log};
use serde_json::json;
use std::cell::Cell;
use std::fs::File;
use std::io::{self, BufWriter, Read};
use std::time::Instant;

/// What a backup run did, for the `summary` event.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub full: bool,
    pub set_time: i64,
    pub chain_length: usize,
    /// Entries of every kind, as duplicity's statistics count "files".
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub files_deleted: u64,
    /// The directories among them.
    pub dirs_new: u64,
    pub dirs_changed: u64,
    pub dirs_unchanged: u64,
    /// The size of every regular file in the source, read or not.
    pub total_bytes_processed: u64,
    /// The size of the regular files found unchanged (for progress: not logged).
    pub bytes_unchanged: u64,
    pub bytes_read: u64,
    pub bytes_uploaded: u64,
    pub volumes: u32,
    /// Files or directories that could not be read (their previous state was kept).
    pub warnings: u64,
    /// Files whose size or mtime changed while they were read (stored as read, read
    /// again next run). A warning each, but not a failure: a live tree always has some.
    pub changed_during_backup: u64,
    /// The stored manifest's name and SHA-256 (for the chain record; not logged).
    pub manifest: Option<(String, String)>,
    /// Volumes an interrupted run had stored, which this one continued from.
    pub volumes_resumed: u32,
}

impl Summary {
    /// Count one source entry: new (`None`), unchanged (`Some(true)`) or changed.
    pub fn count(&mut self, stat: &crate::local::platform::Stat, unchanged: Option<bool>) {
        let dir = stat.kind == crate::local::platform::Kind::Dir;
        let (files, dirs) = match unchanged {
            None => (&mut self.files_new, &mut self.dirs_new),
            Some(true) => (&mut self.files_unchanged, &mut self.dirs_unchanged),
            Some(false) => (&mut self.files_changed, &mut self.dirs_changed),
        };
        *files += 1;
        if dir {
            *dirs += 1;
        }
        if stat.kind == crate::local::platform::Kind::File {
            self.total_bytes_processed += stat.size;
            if unchanged == Some(true) {
                self.bytes_unchanged += stat.size;
            }
        }
    }

    pub fn to_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            (
                "type",
                json!(if self.full { "full" } else { "incremental" }),
            ),
            (
                "set_time",
                json!(crate::archive::time::rfc3339(self.set_time)),
            ),
            ("chain_length", json!(self.chain_length)),
            ("files_new", json!(self.files_new)),
            ("files_changed", json!(self.files_changed)),
            ("files_unchanged", json!(self.files_unchanged)),
            ("files_deleted", json!(self.files_deleted)),
            ("dirs_new", json!(self.dirs_new)),
            ("dirs_changed", json!(self.dirs_changed)),
            ("dirs_unchanged", json!(self.dirs_unchanged)),
            (
                "total_files_processed",
                json!(self.files_new + self.files_changed + self.files_unchanged),
            ),
            ("total_bytes_processed", json!(self.total_bytes_processed)),
            ("bytes_read", json!(self.bytes_read)),
            ("bytes_uploaded", json!(self.bytes_uploaded)),
            // restic's names for the same things, for dashboards made for it: the bytes
            // added to the target, and the set's identity (its time, as `--time` takes it).
            ("data_added", json!(self.bytes_uploaded)),
            (
                "snapshot_id",
                json!(crate::archive::time::rfc3339(self.set_time)),
            ),
            ("volumes", json!(self.volumes)),
            ("volumes_resumed", json!(self.volumes_resumed)),
            ("warnings", json!(self.warnings)),
            ("changed_during_backup", json!(self.changed_during_backup)),
        ]
    }
}

/// The tar type of an entry.
pub fn tar_type(k: Kind) -> u8 {
    match k {
        Kind::File => tar::REGTYPE,
        Kind::Dir => tar::DIRTYPE,
        Kind::Symlink => tar::SYMTYPE,
        Kind::Fifo => tar::FIFOTYPE,
        Kind::Char => tar::CHRTYPE,
        Kind::Block => tar::BLKTYPE,
        Kind::Socket => tar::REGTYPE,
    }
}

/// The metadata header of an entry (name and size are set per member).
fn meta_header(e: &Entry) -> Header {
    let s = &e.stat;
    Header {
        typ: tar_type(s.kind),
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        mtime: s.mtime,
        linkname: e.linkname.clone(),
        uname: users::user_name(s.uid),
        gname: users::group_name(s.gid),
        devmajor: if matches!(s.kind, Kind::Char | Kind::Block) {
            s.rdev_major
        } else {
            0
        },
        devminor: if matches!(s.kind, Kind::Char | Kind::Block) {
            s.rdev_minor
        } else {
            0
        },
        ..Header::default()
    }
}

/// Where a file's data comes from: the file itself, or standard input (a dump piped in).
enum Data {
    File(File),
    Stdin(io::Stdin),
}

impl Read for Data {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Data::File(f) => f.read(buf),
            Data::Stdin(s) => s.read(buf),
        }
    }
}

/// The size standard input's first signature is cut for, before any dump's size is known
/// (later ones take the previous dump's): 1 GiB gives 32 KiB blocks, so a dump ten times
/// that still has a signature of a few MiB, and a small one deltas at a fine grain anyway.
const STDIN_SIZE_GUESS: u64 = 1 << 30;

/// Reads a source file, computing its new signature on the way (unless a delta does it,
/// see `DeltaReader::with_signature`), and turns a read error into an early EOF (recorded
/// in `error`) so the stored member stays well-formed.
struct TeeSig<'a> {
    file: Data,
    sig: Option<&'a mut SignatureBuilder>,
    /// Bytes read so far, also seen by the progress display while the file is read.
    bytes: &'a Cell<u64>,
    error: Option<io::Error>,
    /// Where the signature's new sums go for progress objects, and how much of it went.
    journal: Option<(JournalTap, usize)>,
}

impl Read for TeeSig<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.error.is_some() {
            return Ok(0);
        }
        loop {
            match self.file.read(buf) {
                Ok(n) => {
                    if let Some(sig) = self.sig.as_deref_mut() {
                        sig.update(&buf[..n]);
                        if let Some((j, sent)) = &mut self.journal {
                            let out = sig.produced();
                            j.borrow_mut().sums(&out[*sent..], sig.covered());
                            *sent = out.len();
                        }
                    }
                    self.bytes.set(self.bytes.get() + n as u64);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.error = Some(e);
                    return Ok(0);
                }
            }
        }
    }
}

/// What reading a file came to: the file (to check it did not change under the read),
/// the bytes read, and the read error that ended it early, if any.
struct FileRead {
    file: Data,
    bytes: u64,
    error: Option<io::Error>,
    /// Bytes of it an interrupted run had stored (not read by this one).
    resumed: u64,
    /// It changed since the interrupted run read its first part.
    torn: bool,
}

/// The chain's signature of a file, if usable; a damaged one means a full copy, with a
/// warning.
fn old_signature(e: &Entry, o: &SigEntry) -> Option<rsync::Signature> {
    if o.kind != MemberKind::Signature {
        return None;
    }
    match o.sig.as_deref().map(rsync::Signature::parse) {
        Some(Ok(s)) => Some(s),
        _ => {
            log::warn(
                "warning",
                &format!(
                    "unusable old signature for {}; storing a full copy",
                    index_display(&e.index)
                ),
                vec![
                    ("code", json!("bad_signature")),
                    ("path", json!(index_display(&e.index))),
                ],
            );
            None
        }
    }
}

pub struct SetWriter<'a> {
    pub(super) volumes: VolumeWriter<'a>,
    pub(super) sigs: SigWriter<Tap<BufWriter<SigSink>>>,
    pub(super) manifest: ManifestWriter,
    pub(super) summary: Summary,
    pub(super) buf: Vec<u8>,
    pub(super) started: Instant,
    pub(super) progress: log::Progress,
    /// The source's total size, when a pre-scan counts it (see `walk::PreScan`).
    pub(super) total: Option<std::sync::Arc<crate::engine::write::walk::PreScan>>,
    /// The wall-clock second the run started in (not `--current-time`): a file whose mtime
    /// is not older is read again next run (see `sigtar::RACY_KEY`).
    pub(super) racy_from: i64,
    /// `--stdin-min-bytes`: standard input shorter than this fails the run.
    pub(super) stdin_min_bytes: u64,
    /// What the reader hands the sealer for progress objects (a full from a directory).
    pub(super) journal: Option<JournalTap>,
    /// Where the interrupted full this run continues stopped, until the walk passes it.
    pub(super) resume: Option<Resumed>,
    /// A directory (or other entry) found where the interrupted run stopped inside a
    /// file: it and what is under it wait for the next run.
    pub(super) skip_under: Option<Index>,
}

/// The set writer is where the comparison's verdicts are stored.
impl Outcome for SetWriter<'_> {
    fn progress(&mut self) {
        self.progress_in(0);
    }

    fn entry(&mut self, e: &Entry, old: Option<&SigEntry>, same: Option<bool>) -> Result<()> {
        if let Some(under) = &self.skip_under {
            if e.index.starts_with(under) {
                return Ok(());
            }
            self.skip_under = None;
        }
        self.summary.count(&e.stat, same);
        if let Some(r) = &self.resume {
            match e.index.cmp(&r.end) {
                // Stored by the interrupted run.
                std::cmp::Ordering::Less => return Ok(()),
                std::cmp::Ordering::Equal => {
                    let r = self.resume.take();
                    match r.and_then(|r| r.partial) {
                        None => return Ok(()),
                        Some(p) if e.stat.kind == Kind::File => return self.emit_rest(e, p),
                        Some(p) => {
                            // Not a file any more: the set keeps the file's stored part,
                            // and what is there now waits for the next run (one entry
                            // per path in a set).
                            self.end_partial(&e.index, p, Some(&e.path))?;
                            self.skip_under = Some(e.index.clone());
                            return Ok(());
                        }
                    }
                }
                std::cmp::Ordering::Greater => self.pass_resume_point()?,
            }
        }
        match same {
            Some(true) => Ok(()),
            _ => self.emit(e, old),
        }
    }

    fn deleted(&mut self, index: &Index, regular: bool) -> Result<()> {
        let h = Header::deleted(member_name(MemberKind::Deleted, index, false, None, false));
        self.add_header(&h, index)?;
        self.sigs.deleted(index)?;
        if regular {
            self.manifest.file("deleted", index)?;
        }
        self.summary.files_deleted += 1;
        Ok(())
    }

    fn warn_unreadable(
        &mut self,
        index: &Index,
        path: &std::path::Path,
        err: &io::Error,
        kept: bool,
    ) {
        self.summary.warnings += 1;
        let then = match kept {
            true => "kept its previous backed-up state",
            false => "not backed up",
        };
        warn_unreadable(index, path, err, Some(then));
    }
}

impl SetWriter<'_> {
    /// A member that is its header alone (a directory, a deletion, a file's empty end).
    fn add_header(&mut self, h: &Header, index: &Index) -> Result<()> {
        self.volumes.add(
            h,
            &[],
            Position {
                index: index.clone(),
                block: None,
            },
        )
    }

    /// Progress with `in_file` bytes read of the file being stored.
    fn progress_in(&mut self, in_file: u64) {
        if !self.progress.due() {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let s = &self.summary;
        let files = s.files_new + s.files_changed + s.files_unchanged;
        // Percent and time left by the bytes gone through (read, or found unchanged) of
        // what the pre-scan counted.
        self.progress.update(log::Snapshot {
            files,
            done: s.bytes_unchanged + s.bytes_read + in_file,
            total: self.total.as_ref().and_then(|t| t.total()),
            fields: vec![
                ("bytes_read", json!(s.bytes_read + in_file)),
                ("bytes_uploaded", json!(self.volumes.bytes_uploaded())),
                (
                    "rate_bytes_per_second",
                    json!(((s.bytes_read + in_file) as f64 / secs) as u64),
                ),
            ],
        });
    }

    /// Write a new or changed entry. `old` is the signature-chain entry when there is one.
    /// Store a new or changed entry: a metadata-only member, or a file's data as a snapshot
    /// or a delta against `old`'s signature, cut into multivol chunks.
    fn emit(&mut self, e: &Entry, old: Option<&SigEntry>) -> Result<()> {
        let meta = meta_header(e);
        if e.stat.kind != Kind::File {
            return self.emit_meta(e, meta);
        }
        let opened = match e.stdin {
            true => Ok(Data::Stdin(io::stdin())),
            false => File::open(&e.path).map(Data::File),
        };
        let file = match opened {
            Ok(f) => f,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                // Vanished since the walk: treat as absent. If it was backed up before,
                // record the deletion, as stock does for such races.
                if old.is_some() {
                    self.deleted(&e.index, true)?;
                }
                return Ok(());
            }
            Err(err) => {
                self.warn_unreadable(&e.index, &e.path, &err, old.is_some());
                return Ok(());
            }
        };
        crate::local::fault::opened(&e.path);
        let old_sig = old.and_then(|o| old_signature(e, o));
        let size = match e.stdin {
            true => old
                .and_then(|o| o.recorded_size())
                .unwrap_or(STDIN_SIZE_GUESS),
            false => e.stat.size,
        };
        let block_len = rsync::block_len_for(size);
        let mut new_sig = SignatureBuilder::new(block_len);
        let seen = Cell::new(0);
        self.journal_file(Some(ChunkSig { block_len, size }), 0, None);
        let mut tee = TeeSig {
            file,
            sig: None,
            bytes: &seen,
            error: None,
            journal: self.journal.clone().map(|j| (j, 0)),
        };
        let kind = if old_sig.is_some() {
            MemberKind::Diff
        } else {
            MemberKind::Snapshot
        };
        {
            let mut delta_reader;
            let data: &mut dyn Read = match &old_sig {
                Some(s) => {
                    delta_reader = DeltaReader::new(s, &mut tee).with_signature(&mut new_sig);
                    &mut delta_reader
                }
                None => {
                    tee.sig = Some(&mut new_sig);
                    &mut tee
                }
            };
            self.write_chunks(kind, e, &meta, data, &seen, 0)?;
        }
        let TeeSig { error, file, .. } = tee;
        let read = FileRead {
            file,
            bytes: seen.get(),
            error,
            resumed: 0,
            torn: false,
        };
        self.after_read(e, meta, read, new_sig, old.is_some())
    }

    /// Tell the sealer which file the chunks sent next belong to (`None`: no file's).
    fn journal_file(&self, c: Option<ChunkSig>, covered: u64, tail: Option<Vec<u8>>) {
        if let Some(j) = &self.journal {
            j.borrow_mut().file(c, covered, tail);
        }
    }

    /// The walk went past where the interrupted run stopped without meeting the file it
    /// stopped inside (deleted, or no longer selected): that file ends with what was
    /// stored.
    pub(super) fn pass_resume_point(&mut self) -> Result<()> {
        if let Some(r) = self.resume.take() {
            if let Some(p) = r.partial {
                self.end_partial(&r.end, p, None)?;
            }
        }
        Ok(())
    }

    /// Continue the file the interrupted run stopped inside, from its next chunk, with its
    /// signature as it stood.
    fn emit_rest(&mut self, e: &Entry, mut p: PartialFile) -> Result<()> {
        let meta = meta_header(e);
        let offset = p.chunks * MULTIVOL_CHUNK as u64;
        let opened = File::open(&e.path).and_then(|mut f| {
            std::io::Seek::seek(&mut f, io::SeekFrom::Start(offset))?;
            Ok(f)
        });
        let file = match opened {
            Ok(f) => f,
            Err(err) => {
                self.warn_unreadable(&e.index, &e.path, &err, false);
                return self.end_partial(&e.index, p, Some(&e.path));
            }
        };
        let mut new_sig = p.signature(&e.index)?;
        let torn = e.stat.size != p.size || e.stat.mtime != p.header.mtime;
        let seen = Cell::new(offset);
        self.journal_file(
            Some(ChunkSig {
                block_len: p.block_len,
                size: p.size,
            }),
            new_sig.covered(),
            Some(p.tail.clone()),
        );
        let sent = new_sig.produced().len();
        let mut tee = TeeSig {
            file: Data::File(file),
            sig: Some(&mut new_sig),
            bytes: &seen,
            error: None,
            journal: self.journal.clone().map(|j| (j, sent)),
        };
        self.write_chunks(MemberKind::Snapshot, e, &meta, &mut tee, &seen, p.chunks)?;
        let TeeSig { error, file, .. } = tee;
        let read = FileRead {
            file,
            bytes: seen.get(),
            error,
            resumed: offset,
            torn,
        };
        self.after_read(e, meta, read, new_sig, false)
    }

    /// End the file the interrupted run stopped inside with what it stored: an empty last
    /// chunk, and its signature as it stood. Restored, it is the part read then; the next
    /// run reads it again.
    fn end_partial(
        &mut self,
        index: &Index,
        mut p: PartialFile,
        path: Option<&std::path::Path>,
    ) -> Result<()> {
        let bytes = p.chunks * MULTIVOL_CHUNK as u64;
        let shown = path.map_or_else(|| index_display(index), |p| p.display().to_string());
        self.summary.changed_during_backup += 1;
        log::warn(
            "warning",
            &format!(
                "{shown} could not be read on from where the interrupted backup stopped;                  the set keeps its first {bytes} bytes, read then, and the next run reads it again"
            ),
            vec![
                ("code", json!("changed_during_backup")),
                ("path", json!(index_display(index))),
            ],
        );
        let sig = p.signature(index)?;
        self.journal_file(None, 0, None);
        let mut h = p.header.clone();
        h.name = member_name(
            MemberKind::Snapshot,
            index,
            false,
            Some(p.chunks + 1),
            false,
        );
        h.size = 0;
        self.add_header(&h, index)?;
        let mut meta = p.header;
        meta.name = Vec::new();
        meta.size = 0;
        self.summary.files_new += 1;
        self.sigs
            .signature(index, &meta, &sig.finish(), bytes, true)?;
        self.manifest.file("new", index)?;
        Ok(())
    }

    /// A directory, symlink or special file: its header is all there is.
    fn emit_meta(&mut self, e: &Entry, meta: Header) -> Result<()> {
        let mut h = meta.clone();
        h.name = member_name(
            MemberKind::Snapshot,
            &e.index,
            e.stat.kind == Kind::Dir,
            None,
            false,
        );
        self.add_header(&h, &e.index)?;
        self.sigs.snapshot(&e.index, &meta)?;
        Ok(())
    }

    /// A file's data (or its delta) as one member, or as multivol chunks of 64 KiB.
    fn write_chunks(
        &mut self,
        kind: MemberKind,
        e: &Entry,
        meta: &Header,
        data: &mut dyn Read,
        seen: &Cell<u64>,
        first: u64,
    ) -> Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(MULTIVOL_CHUNK, 0);
        // Chunks an interrupted run stored (a file continued from the middle).
        let mut chunk = first;
        let res = loop {
            interrupt::check()?;
            self.progress_in(seen.get());
            let n = match read_full(data, &mut buf) {
                Ok(n) => n,
                Err(err) => {
                    break Err(Error::Internal(format!(
                        "delta of {}: {err}",
                        e.path.display()
                    )))
                }
            };
            let last = n < MULTIVOL_CHUNK;
            let mut h = meta.clone();
            h.size = n as u64;
            if chunk == 0 && last {
                h.name = member_name(kind, &e.index, false, None, false);
                break self.volumes.add(
                    &h,
                    &buf[..n],
                    Position {
                        index: e.index.clone(),
                        block: None,
                    },
                );
            }
            chunk += 1;
            h.name = member_name(kind, &e.index, false, Some(chunk), false);
            let block = if last { None } else { Some(chunk) };
            if let Err(err) = self.volumes.add(
                &h,
                &buf[..n],
                Position {
                    index: e.index.clone(),
                    block,
                },
            ) {
                break Err(err);
            }
            if last {
                break Ok(());
            }
        };
        self.buf = buf;
        res?;
        Ok(())
    }

    /// Record what the read found: a file that changed under it or a read error (a warning
    /// each, and a re-read next run), the new signature, and the manifest's Filelist line.
    fn after_read(
        &mut self,
        e: &Entry,
        meta: Header,
        read: FileRead,
        new_sig: SignatureBuilder,
        existed: bool,
    ) -> Result<()> {
        self.journal_file(None, 0, None);
        let FileRead {
            file,
            bytes,
            error,
            resumed,
            torn,
        } = read;
        if e.stdin {
            return self.after_stdin(e, meta, bytes, error, new_sig, existed);
        }
        let Data::File(file) = file else {
            return Err(Error::Internal("a file read as standard input".into()));
        };
        let mut sig_meta = meta;
        let mut racy = e.stat.mtime >= self.racy_from;
        if error.is_none() && (torn || changed_while_read(&file, e, bytes)) {
            // What was stored may be torn (part old, part new): say so, and make the
            // next run read the file again, as after a read error.
            self.summary.changed_during_backup += 1;
            log::warn(
                "warning",
                &format!(
                    "{} changed while it was read ({} bytes when listed, {bytes} read); \
                     stored as read, will be read again next run",
                    e.path.display(),
                    e.stat.size
                ),
                vec![
                    ("code", json!("changed_during_backup")),
                    ("path", json!(index_display(&e.index))),
                ],
            );
            racy = true;
        }
        if let Some(err) = error {
            self.summary.warnings += 1;
            log::warn(
                "warning",
                &format!("read error in {} after {bytes} bytes: {err}; stored what was read, will re-read next run", e.path.display()),
                vec![("code", json!("read_error")), ("path", json!(index_display(&e.index))), ("reason", json!(err.to_string()))],
            );
            // An impossible mtime makes the next run see the file as changed.
            sig_meta.mtime = 0;
        }
        self.summary.bytes_read += bytes - resumed;
        self.sigs
            .signature(&e.index, &sig_meta, &new_sig.finish(), bytes, racy)?;
        self.manifest
            .file(if existed { "changed" } else { "new" }, &e.index)?;
        Ok(())
    }

    /// Standard input ends the run unless it was read whole and long enough: a dump cut
    /// short (its producer died) or unreadable is no backup, so nothing is committed and
    /// the next run removes the volumes already uploaded.
    fn after_stdin(
        &mut self,
        e: &Entry,
        meta: Header,
        bytes: u64,
        error: Option<io::Error>,
        new_sig: SignatureBuilder,
        existed: bool,
    ) -> Result<()> {
        if let Some(err) = error {
            return Err(Error::ShortInput(format!(
                "standard input failed after {bytes} bytes: {err}; nothing was stored"
            )));
        }
        if bytes < self.stdin_min_bytes {
            return Err(Error::ShortInput(format!(
                "standard input ended after {bytes} bytes, fewer than --stdin-min-bytes {}; \
                 nothing was stored (did the command that writes it fail?)",
                self.stdin_min_bytes
            )));
        }
        self.summary.bytes_read += bytes;
        self.summary.total_bytes_processed += bytes;
        self.sigs
            .signature(&e.index, &meta, &new_sig.finish(), bytes, false)?;
        self.manifest
            .file(if existed { "changed" } else { "new" }, &e.index)?;
        Ok(())
    }
}
