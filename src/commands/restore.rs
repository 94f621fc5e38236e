//! `restore`: the backup pipe reversed. For each set of the chain up to `--time`: its
//! volumes in order (only those `--file-to-restore` needs), each hash-checked before it is
//! opened, read as one tar stream; the sets' streams are merged by index and each path is
//! rebuilt from its last snapshot plus the deltas after it (§7).
//!
//! Safety: member names with `..` or a leading `/` are refused by the format layer, and no
//! file is ever written through a symlink inside TARGET.

use crate::cache::{download_temp, map_read_error, open_sealed, tempfile_in, Cache, Metadata};
use crate::collection::{BackupSet, Collection};
use crate::config::{Common, RestoreOpts};
use crate::delta;
use crate::engine::read::resolve::{existing, symlink_at, Existing, Resolver};
use crate::error::{Error, Result};
use crate::format::manifest::{Filelist, Listed, Manifest};
use crate::format::tar::{self, Header, TarReader};
use crate::format::{index_display, parse_member_name, Index, MemberKind, ParsedMember};
use crate::interrupt;
use crate::log;
use crate::platform;
use crate::sparse::SparseWriter;
use crate::target::{self, Backend};
use crate::users;
use crate::volume::hex;
use serde_json::json;
use sha1::{Digest, Sha1};
use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

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
                json!(crate::format::time::rfc3339(self.set_time)),
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

pub(crate) struct Member {
    pub(crate) index: Index,
    pub(crate) kind: MemberKind,
    /// The chunk number of a `multivol_*` member.
    chunk: Option<u64>,
    pub(crate) header: Header,
}

/// One set's volumes read as a single stream of members.
pub(crate) struct SetStream<'a> {
    backend: &'a dyn Backend,
    common: &'a Common,
    suffix: crate::format::names::Suffix,
    /// Volume names with their SHA1 from the manifest.
    pub(crate) volumes: VecDeque<(String, String)>,
    tar: Option<TarReader<Box<dyn Read + 'a>>>,
    pub(crate) object: String,
    pub(crate) head: Option<Member>,
    /// Bytes of the current entry still unread in the current member.
    in_member: bool,
    /// Volumes and bytes downloaded.
    pub(crate) stats: (u64, u64),
    /// Whether the next volume is fetched on a thread of its own while this one is read.
    prefetch: bool,
    next: Option<Prefetch>,
    /// The index and chunk of the member before `head`: members must come in order.
    last: Option<(Index, Option<u64>)>,
    /// The set's Filelist, checked as the members pass (when the whole set is read).
    filelist: Option<ListCheck>,
}

/// A set's Filelist against its members: every regular file the manifest lists as stored
/// or deleted must be a member of the set, in order. The list may name fewer files than
/// the set holds (stock lists only what the last run after a resume wrote), never more.
struct ListCheck {
    list: Filelist<io::BufReader<File>>,
    next: Option<(Listed, Index)>,
    manifest: String,
}

impl ListCheck {
    fn new(mut list: Filelist<io::BufReader<File>>, manifest: &str) -> Result<ListCheck> {
        let next = list
            .next_file()
            .map_err(|m| Error::integrity(manifest, m))?;
        Ok(ListCheck {
            list,
            next,
            manifest: manifest.to_string(),
        })
    }

    fn missing(&self, listed: Listed, index: &Index) -> Error {
        let what = match listed {
            Listed::Stored => "stored",
            Listed::Deleted => "deleted",
        };
        Error::integrity(
            &self.manifest,
            format!(
                "the manifest lists {} as {what} in this set, but its volumes do not hold it",
                index_display(index)
            ),
        )
    }

    /// A member of the set went by.
    fn member(&mut self, m: &ParsedMember, typ: u8) -> Result<()> {
        if m.chunk.is_some_and(|c| c != 1) {
            return Ok(());
        }
        let Some((listed, index)) = &self.next else {
            return Ok(());
        };
        match index.cmp(&m.index) {
            std::cmp::Ordering::Greater => return Ok(()),
            std::cmp::Ordering::Less => return Err(self.missing(*listed, index)),
            std::cmp::Ordering::Equal => {}
        }
        let regular = matches!(typ, tar::REGTYPE | b'\0' | b'7');
        let holds = match listed {
            Listed::Stored => regular && matches!(m.kind, MemberKind::Snapshot | MemberKind::Diff),
            Listed::Deleted => m.kind == MemberKind::Deleted,
        };
        if !holds {
            return Err(self.missing(*listed, index));
        }
        self.next = self
            .list
            .next_file()
            .map_err(|e| Error::integrity(&self.manifest, e))?;
        Ok(())
    }

    /// The set's members ended.
    fn end(&self) -> Result<()> {
        match &self.next {
            Some((listed, index)) => Err(self.missing(*listed, index)),
            None => Ok(()),
        }
    }
}

/// The next volume of a stream, being downloaded and checked against the manifest on a
/// thread of its own (with its own connection: backends are not `Send`), so that the
/// download and the SHA1 pass overlap the reading of the volume before it. Its result,
/// error included, is taken when the stream reaches that volume, so errors arrive in
/// volume order. Dropped unused (a restore that stopped), the thread finishes on its own
/// and its unlinked temporary file goes with it.
struct Prefetch {
    name: String,
    fetched: std::thread::JoinHandle<Result<(File, u64)>>,
}

/// Download volume `name` (where the target is not local) and check its bytes against the
/// manifest's SHA1 before anything is decrypted. Returns the file at its start and its size.
fn fetch_checked(
    backend: &dyn Backend,
    name: &str,
    want: &str,
    tempdir: &Path,
) -> Result<(File, u64)> {
    let mut f = download_temp(backend, name, tempdir)?;
    let mut h = Sha1::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(name, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    let got = hex(&h.finalize());
    if want != got {
        return Err(Error::integrity(
            name,
            format!("hash mismatch: manifest says SHA1 {want}, the stored volume has {got}"),
        ));
    }
    f.seek(io::SeekFrom::Start(0))
        .map_err(|e| Error::io(name, e))?;
    Ok((f, total))
}

/// Open a sealed volume. Where there are threads, decryption and decompression (AES,
/// the MDC's SHA-1, inflate) run on a thread of their own, beside the tar parsing and
/// file writing of this one: plaintext comes through a bounded channel (4 blocks of
/// 256 KiB), and read errors arrive in order as the same `io::Error`s, so a damaged
/// volume is reported exactly as when read inline.
fn open_volume(
    f: File,
    suffix: crate::format::names::Suffix,
    keys: &crate::crypto::OpenKeys,
    name: &str,
) -> Result<Box<dyn Read>> {
    if cfg!(target_os = "wasi") {
        return open_sealed(io::BufReader::with_capacity(1 << 16, f), suffix, keys, name);
    }
    let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(4);
    let (keys, object) = (keys.clone(), name.to_string());
    std::thread::Builder::new()
        .name("open".into())
        .spawn(move || {
            let r = open_sealed(
                io::BufReader::with_capacity(1 << 16, f),
                suffix,
                &keys,
                &object,
            );
            let mut r = match r {
                Ok(r) => {
                    let _ = opened_tx.send(Ok(()));
                    r
                }
                Err(e) => {
                    let _ = opened_tx.send(Err(e));
                    return;
                }
            };
            loop {
                let mut b = vec![0u8; READ_AHEAD_BLOCK];
                let mut n = 0;
                let end = loop {
                    if n == b.len() {
                        break Ok(false);
                    }
                    match r.read(&mut b[n..]) {
                        Ok(0) => break Ok(true),
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                b.truncate(n);
                // A send fails only when the reader was dropped: nobody wants the rest.
                if n > 0 && tx.send(Block::Data(b)).is_err() {
                    return;
                }
                let last = match end {
                    Ok(false) => continue,
                    Ok(true) => Block::End,
                    Err(e) => Block::Failed(e),
                };
                let _ = tx.send(last);
                return;
            }
        })
        .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
    opened_rx
        .recv()
        .map_err(|_| Error::Internal("the volume-opening thread stopped".into()))??;
    Ok(Box::new(ReadAhead {
        rx,
        cur: Vec::new(),
        pos: 0,
        state: ReadState::Reading,
    }))
}

const READ_AHEAD_BLOCK: usize = 256 << 10;

enum Block {
    Data(Vec<u8>),
    /// The sealed reader returned EOF: everything came through, MDC checked.
    End,
    Failed(io::Error),
}

#[derive(PartialEq)]
enum ReadState {
    Reading,
    Ended,
    Failed,
}

struct ReadAhead {
    rx: std::sync::mpsc::Receiver<Block>,
    cur: Vec<u8>,
    pos: usize,
    state: ReadState,
}

impl Read for ReadAhead {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.state {
                ReadState::Ended => return Ok(0),
                ReadState::Failed => {
                    return Err(io::Error::other(
                        "the volume could not be read (see the error before)",
                    ))
                }
                ReadState::Reading => {}
            }
            match self.rx.recv() {
                Ok(Block::Data(b)) => {
                    self.cur = b;
                    self.pos = 0;
                }
                Ok(Block::End) => self.state = ReadState::Ended,
                Ok(Block::Failed(e)) => {
                    self.state = ReadState::Failed;
                    return Err(e);
                }
                // Without End the stream is not complete: never let that pass as EOF.
                Err(_) => {
                    self.state = ReadState::Failed;
                    return Err(io::Error::other("the volume-opening thread stopped"));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<'a> SetStream<'a> {
    fn open_next_volume(&mut self) -> Result<bool> {
        let Some((name, sha1)) = self.volumes.pop_front() else {
            return Ok(false);
        };
        interrupt::check()?;
        let (f, total) = match self.next.take() {
            Some(p) if p.name == name => p
                .fetched
                .join()
                .map_err(|_| Error::Internal("the volume-fetching thread stopped".into()))??,
            _ => fetch_checked(self.backend, &name, &sha1, &self.common.tempdir)?,
        };
        self.start_prefetch()?;
        self.stats.0 += 1;
        self.stats.1 += total;
        let r = open_volume(f, self.suffix, &self.common.crypto.open, &name)?;
        self.tar = Some(TarReader::new(r));
        self.object = name;
        Ok(true)
    }

    /// Start fetching the volume after the one being opened, where there are threads.
    fn start_prefetch(&mut self) -> Result<()> {
        let Some((name, sha1)) = self.volumes.front().cloned() else {
            return Ok(());
        };
        if !self.prefetch || cfg!(target_os = "wasi") {
            return Ok(());
        }
        let (url, opts, tempdir) = (
            self.common.url.clone(),
            self.common.backend.clone(),
            self.common.tempdir.clone(),
        );
        let thread_name = name.clone();
        let fetched = std::thread::Builder::new()
            .name("fetch".into())
            .spawn(move || {
                let backend = target::open(&url, target::Access::Read, &opts)?;
                fetch_checked(backend.as_ref(), &thread_name, &sha1, &tempdir)
            })
            .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
        self.next = Some(Prefetch { name, fetched });
        Ok(())
    }

    /// Move to the next member header, crossing into the next volume as needed.
    fn next_member(&mut self) -> Result<Option<Member>> {
        loop {
            if self.tar.is_none() && !self.open_next_volume()? {
                if let Some(c) = self.filelist.take() {
                    c.end()?;
                }
                return Ok(None);
            }
            let Some(tr) = self.tar.as_mut() else {
                continue;
            };
            match tr.next_header() {
                Ok(Some(h)) => {
                    let m = parse_member_name(&h.name).map_err(|detail| {
                        if detail.starts_with("refused") {
                            Error::UnsafeMember {
                                object: self.object.clone(),
                                member: String::from_utf8_lossy(&h.name).into(),
                                why: "it would be written outside the target".into(),
                            }
                        } else {
                            Error::integrity(&self.object, detail)
                        }
                    })?;
                    if m.kind == MemberKind::Signature {
                        return Err(Error::integrity(
                            &self.object,
                            "signature member in a volume",
                        ));
                    }
                    self.check_order(&m.index, m.chunk)?;
                    if let Some(c) = self.filelist.as_mut() {
                        c.member(&m, h.typ)?;
                    }
                    return Ok(Some(Member {
                        index: m.index,
                        kind: m.kind,
                        chunk: m.chunk,
                        header: h,
                    }));
                }
                Ok(None) => {
                    // The tar stream ends at its zero blocks, but an OpenPGP message is
                    // authenticated (MDC) only at its very end: read to EOF before trusting
                    // this volume, and before moving on to the next.
                    if let Some(t) = self.tar.take() {
                        let mut inner = t.into_inner();
                        crate::crypto::drain_to_end(&mut inner)
                            .map_err(|e| crate::cache::crypto_error(&self.object, e))?;
                    }
                }
                Err(e) => return Err(tar_error(&self.object, e)),
            }
        }
    }

    /// Members come in strictly increasing index order (§2.5), and the chunks of one
    /// multivol entry are numbered one after the other: anything else is a damaged or
    /// crafted volume, whose entries could otherwise be applied over each other.
    fn check_order(&mut self, index: &Index, chunk: Option<u64>) -> Result<()> {
        let ok = match &self.last {
            None => true,
            Some((prev, prev_chunk)) if prev == index => {
                matches!((prev_chunk, chunk), (Some(a), Some(b)) if b == a + 1)
            }
            Some((prev, _)) => index > prev,
        };
        if !ok {
            let (prev, prev_chunk) = self.last.clone().unwrap_or_default();
            let show = |i: &Index, c: Option<u64>| match c {
                Some(c) => format!("{} (chunk {c})", index_display(i)),
                None => index_display(i),
            };
            return Err(Error::integrity(
                &self.object,
                format!(
                    "members out of order: {} after {}",
                    show(index, chunk),
                    show(&prev, prev_chunk)
                ),
            ));
        }
        self.last = Some((index.clone(), chunk));
        Ok(())
    }

    fn advance(&mut self) -> Result<()> {
        self.head = self.next_member()?;
        self.in_member = true;
        Ok(())
    }

    /// Read the data of the current entry (all its multivol chunks), then move on. An
    /// entry that is used must be whole: it must start at its first chunk, and its last
    /// chunk must be short (§2.6: a full last chunk means the rest is missing).
    fn entry_reader(&mut self) -> EntryReader<'_, 'a> {
        EntryReader {
            s: self,
            done: false,
            whole: true,
            started: false,
        }
    }

    /// Skip the current entry entirely. Skipped entries may be cut by the volumes a
    /// `--file-to-restore` leaves out, so they are not checked for wholeness.
    pub(crate) fn skip_entry(&mut self) -> Result<()> {
        let mut r = EntryReader {
            s: self,
            done: false,
            whole: false,
            started: false,
        };
        io::copy(&mut r, &mut io::sink()).map_err(unwrap_io)?;
        r.finish()
    }
}

impl SetStream<'_> {
    fn cut_entry(&self, index: &Index, what: &str) -> Error {
        Error::integrity(
            &self.object,
            format!(
                "{}: {what}; the file would be restored short",
                index_display(index)
            ),
        )
    }
}

fn tar_error(object: &str, e: tar::TarError) -> Error {
    match e {
        tar::TarError::Io(io) => map_read_error(object, io),
        other => Error::integrity(object, other),
    }
}

/// Our readers report `Error` through `io::Error`; get it back.
struct Wrapped(Error);
impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::fmt::Display for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
impl std::error::Error for Wrapped {}

fn wrap(e: Error) -> io::Error {
    io::Error::other(Wrapped(e))
}

fn unwrap_io(e: io::Error) -> Error {
    if e.get_ref().is_some_and(|i| i.is::<Wrapped>()) {
        if let Some(Ok(w)) = e.into_inner().map(|b| b.downcast::<Wrapped>()) {
            return w.0;
        }
        return Error::Internal("lost error".into());
    }
    Error::Io {
        path: "restore".into(),
        source: e,
    }
}

/// The data of one entry across its multivol chunks and volume boundaries.
struct EntryReader<'s, 'a> {
    s: &'s mut SetStream<'a>,
    done: bool,
    /// Check that a multivol entry is whole (see `entry_reader`).
    whole: bool,
    started: bool,
}

impl EntryReader<'_, '_> {
    /// Leave the stream at the next entry's first member.
    fn finish(mut self) -> Result<()> {
        if !self.done {
            io::copy(&mut self, &mut io::sink()).map_err(unwrap_io)?;
        }
        Ok(())
    }
}

impl Read for EntryReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.done {
                return Ok(0);
            }
            let (index, chunk, size) = match &self.s.head {
                Some(h) => (h.index.clone(), h.chunk, h.header.size),
                None => {
                    self.done = true;
                    return Ok(0);
                }
            };
            let multivol = chunk.is_some();
            if !self.started {
                self.started = true;
                if self.whole && chunk.is_some_and(|c| c != 1) {
                    return Err(wrap(
                        self.s.cut_entry(&index, "its first chunks are missing"),
                    ));
                }
            }
            if self.s.in_member {
                let object = self.s.object.clone();
                let tr = self
                    .s
                    .tar
                    .as_mut()
                    .ok_or_else(|| wrap(Error::Internal("no open volume".into())))?;
                let n = tr.read(buf).map_err(|e| wrap(map_read_error(&object, e)))?;
                if n > 0 {
                    return Ok(n);
                }
                self.s.in_member = false;
            }
            // This member is exhausted: a multivol entry continues in the next member with
            // the same index, possibly in the next volume (§2.6).
            let next = self.s.next_member().map_err(wrap)?;
            let continues = multivol
                && next
                    .as_ref()
                    .is_some_and(|m| m.chunk.is_some() && m.index == index);
            self.s.head = next;
            self.s.in_member = true;
            if !continues {
                if self.whole && multivol && size >= crate::format::MULTIVOL_CHUNK as u64 {
                    return Err(wrap(
                        self.s.cut_entry(&index, "its last chunks are missing"),
                    ));
                }
                self.done = true;
                return Ok(0);
            }
        }
    }
}

/// Where restored entries go: every write goes through the path resolver, which is made
/// when the restore knows what its root is (a tree, or one non-directory with `-r`).
struct Writer<'c> {
    target: PathBuf,
    prefix: Index,
    opts: &'c RestoreOpts,
    common: &'c Common,
    resolver: Option<Resolver>,
    /// Directories whose owner, mode and time are set after their contents (indexes).
    pending_dirs: Vec<(Index, Header)>,
    own: bool,
    summary: Summary,
}

/// Get TARGET ready to be the root directory of the restore: made when absent; when it
/// is there it must be an empty directory, unless `--force` (then entries the archive
/// describes replace what is at their paths, and nothing else is removed; a file at
/// TARGET itself is replaced by the directory).
fn prepare_tree(target: &Path, force: bool) -> Result<()> {
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

impl Writer<'_> {
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

    fn flush_dirs(&mut self, upto: Option<&Index>) -> Result<()> {
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

    fn warn(&mut self, code: &str, rel: &[Vec<u8>], msg: String) {
        self.summary.warnings += 1;
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

fn set_files(md: &Metadata, set: &BackupSet) -> Result<Manifest> {
    let name = set
        .manifest
        .as_ref()
        .ok_or_else(|| Error::Internal("complete set without manifest".into()))?;
    md.manifest(name, &set.manifest_kind())
}

/// A manifest is a set's commit record and the only list of its volumes, so it is checked
/// before it is trusted: volumes numbered 1..N without a gap, each with its SHA1, and
/// exactly the volumes the listing holds for that set. An encrypted manifest was also
/// authenticated (its MDC) when it was opened; a plaintext one has only its structure, so
/// a cut, emptied or replaced one is refused here rather than restored from in part.
fn check_manifest(set: &BackupSet, m: &Manifest, common: &Common) -> Result<()> {
    let manifest = set.manifest.as_deref().unwrap_or("manifest");
    let n = m.volumes.len() as u32;
    let broken = |detail: String| Err(Error::integrity(manifest, detail));
    if n == 0 {
        return broken(
            "the manifest lists no volume: it is empty, cut short or not a manifest".into(),
        );
    }
    if let Some(k) = (1..=n).find(|k| !m.volumes.contains_key(k)) {
        return broken(format!("the manifest lists {n} volumes but not volume {k}"));
    }
    if let Some(v) = m.volumes.values().find(|v| v.sha1().is_none()) {
        return broken(format!("the manifest has no SHA1 for volume {}", v.num));
    }
    if let Some(k) = (1..=n).find(|k| !set.volumes.contains_key(k)) {
        let kind = match set.full {
            true => crate::format::names::FileKind::FullVolume {
                time: set.end,
                vol: k,
            },
            false => crate::format::names::FileKind::IncVolume {
                start: set.start,
                end: set.end,
                vol: k,
            },
        };
        return Err(Error::NotFound(common.prefixes.name(&kind, set.suffix)));
    }
    let extra: Vec<String> = set
        .volumes
        .keys()
        .filter(|&&k| k > n)
        .map(|k| k.to_string())
        .collect();
    if !extra.is_empty() {
        return broken(format!(
            "the manifest lists {n} volumes, but the target also holds volume {} of this \
             set: the manifest was cut short or replaced",
            extra.join(", ")
        ));
    }
    Ok(())
}

/// One stream per set up to the restore time, each with the volumes that may hold `prefix`.
pub(crate) fn set_streams<'a>(
    md: &Metadata<'a>,
    sets: &[&BackupSet],
    prefix: &Index,
    prefetch: bool,
) -> Result<Vec<SetStream<'a>>> {
    let (backend, common) = (md.backend, md.common);
    let mut streams = Vec::new();
    for set in sets {
        let m = set_files(md, set)?;
        check_manifest(set, &m, common)?;
        let filelist = match (&set.manifest, prefix.is_empty()) {
            (Some(name), true) => match md.filelist(name, &set.manifest_kind())? {
                Some(list) => Some(ListCheck::new(list, name)?),
                None => None,
            },
            _ => None,
        };
        let mut vols = VecDeque::new();
        for (num, v) in &m.volumes {
            if !prefix.is_empty() && !v.may_contain(prefix) {
                continue;
            }
            if let (Some(name), Some(sha1)) = (set.volumes.get(num), v.sha1()) {
                vols.push_back((name.clone(), sha1.to_string()));
            }
        }
        streams.push(SetStream {
            backend,
            common,
            suffix: set.suffix,
            volumes: vols,
            tar: None,
            object: String::new(),
            head: None,
            in_member: true,
            stats: (0, 0),
            prefetch,
            next: None,
            last: None,
            filelist,
        });
    }
    Ok(streams)
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
        let time = crate::format::time::rfc3339(s.end);
        log::warn(
            "warning",
            &format!(
                "the {} set of {time} is not restored: {why} ({} volume(s) in the target); \
                 restoring the state of {}",
                s.type_name(),
                s.volumes.len(),
                crate::format::time::rfc3339(restored)
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
    let backend = target::open(&common.url, target::Access::Read, &common.backend)?;
    let names = backend.list(&common.prefixes.file)?;
    let coll = Collection::from_names(&names, &common.prefixes);
    let md = Metadata {
        backend: backend.as_ref(),
        cache: Cache::open(common)?,
        common,
    };
    md.prune_spurious(&names)?;
    let t = opts.time.unwrap_or(common.now);
    let chain = coll.chain_for(t, &log::redact(&common.url))?;
    let sets = chain.sets_until(t);
    let prefix: Index = opts.file_to_restore.clone().unwrap_or_default();

    let mut streams = set_streams(&md, &sets, &prefix, opts.concurrency > 1)?;
    if !prefix.is_empty() && streams.iter().all(|s| s.volumes.is_empty()) {
        return Err(Error::PathNotFound(index_display(&prefix)));
    }

    // A full restore checks TARGET before anything is downloaded; a --file-to-restore
    // does when its entry arrives, as its type decides where it goes.
    if prefix.is_empty() {
        prepare_tree(&opts.target, opts.force)?;
    }
    let mut warnings = warn_unused_sets(&coll, &sets, t);

    log::info(
        "plan",
        &format!(
            "restoring {} set(s) up to {}",
            sets.len(),
            crate::format::time::rfc3339(sets.last().map(|s| s.end).unwrap_or(t))
        ),
        vec![
            ("type", json!("restore")),
            ("sets", json!(sets.len())),
            (
                "set_time",
                json!(crate::format::time::rfc3339(
                    sets.last().map(|s| s.end).unwrap_or(t)
                )),
            ),
        ],
    );

    let resolver = match prefix.is_empty() {
        true => Some(Resolver::tree(&opts.target)?),
        false => None,
    };
    let mut w = Writer {
        target: opts.target.clone(),
        prefix: prefix.clone(),
        opts,
        common,
        resolver,
        pending_dirs: Vec::new(),
        own: opts.restore_ownership && platform::is_root(),
        summary: Summary {
            set_time: sets.last().map(|s| s.end).unwrap_or(t),
            chain_length: sets.len(),
            warnings: std::mem::take(&mut warnings),
            ..Summary::default()
        },
    };
    let found = merge(&mut streams, &prefix, |streams, holders, index| {
        restore_entry(streams, holders, index, &mut w)
    })?;
    if prefix.is_empty() && w.summary.files == 0 {
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
    for s in &streams {
        w.summary.volumes_read += s.stats.0;
        w.summary.bytes_downloaded += s.stats.1;
    }
    Ok(w.summary)
}

/// The k-way merge of the sets' streams by index: for each path under `prefix`, `entry` gets
/// the streams that hold it, from the last full copy (snapshot) to the newest delta; older
/// members are skipped. Returns whether anything under `prefix` was seen.
pub(crate) fn merge(
    streams: &mut [SetStream],
    prefix: &Index,
    mut entry: impl FnMut(&mut [SetStream], &[usize], &Index) -> Result<()>,
) -> Result<bool> {
    for s in streams.iter_mut() {
        s.advance()?;
    }
    let mut found = false;
    loop {
        interrupt::check()?;
        let Some(min) = streams
            .iter()
            .filter_map(|s| s.head.as_ref().map(|h| h.index.clone()))
            .min()
        else {
            break;
        };
        let holders: Vec<usize> = (0..streams.len())
            .filter(|&i| streams[i].head.as_ref().is_some_and(|h| h.index == min))
            .collect();
        if !min.starts_with(prefix) {
            for &i in &holders {
                streams[i].skip_entry()?;
            }
            continue;
        }
        found = true;
        // Keep entries from the newest backwards up to the first non-diff (§7.2 step 6).
        let mut keep_from = 0;
        for (pos, &i) in holders.iter().enumerate().rev() {
            if streams[i]
                .head
                .as_ref()
                .is_some_and(|h| h.kind != MemberKind::Diff)
            {
                keep_from = pos;
                break;
            }
        }
        for &i in &holders[..keep_from] {
            streams[i].skip_entry()?;
        }
        entry(streams, &holders[keep_from..], &min)?;
    }
    Ok(found)
}

/// The newest member of a merged entry, after the checks restore and verify share: the
/// chain must hold a full copy before any delta, and an entry deleted at this time is
/// skipped (`None`). Returns the newest member's volume name and header.
pub(crate) fn live_entry(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
) -> Result<Option<(String, Header)>> {
    let (Some(&first), Some(&newest)) = (holders.first(), holders.last()) else {
        return Ok(None);
    };
    let object = streams[newest].object.clone();
    let (base_kind, newest_kind, header) = match (&streams[first].head, &streams[newest].head) {
        (Some(b), Some(n)) => (b.kind, n.kind, n.header.clone()),
        _ => return Err(Error::Internal("merge head vanished".into())),
    };
    if base_kind == MemberKind::Diff {
        return Err(Error::integrity(
            &object,
            format!(
                "{}: a delta without a full copy before it in the chain",
                index_display(index)
            ),
        ));
    }
    if newest_kind == MemberKind::Deleted {
        for &i in holders {
            streams[i].skip_entry()?;
        }
        return Ok(None);
    }
    Ok(Some((object, header)))
}

fn restore_entry(
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
                w.summary.files += 1;
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
        w.summary.files += 1;
        return Ok(());
    }

    // A regular file: base snapshot, then each delta in order, into a new file.
    let mut out = r.create_file(&rel, &object)?;
    let path = r.display(&rel);
    let tempdir = w.common.tempdir.clone();
    match rebuild_in_place(streams, holders, index, &tempdir, &mut out, &path) {
        Ok(n) => w.summary.bytes_written += n,
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
    w.summary.files += 1;
    Ok(())
}

/// Counts what passes through.
struct Counting<'w> {
    inner: &'w mut dyn Write,
    n: u64,
}

impl Write for Counting<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
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
        let mut counting = Counting {
            inner: match spool.as_mut() {
                Some(f) => f,
                None => &mut *out,
            },
            n: 0,
        };
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
                delta::patch(&mut b, &mut r, &mut bw).map_err(|e| match e {
                    delta::DeltaError::Io(io) => write_or_read_error(io, path),
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
/// applied to it in place ([`delta::patch_in_place`]), so that the parts of a big file that
/// did not change are written once, not once per version.
fn rebuild_in_place(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
    tempdir: &Path,
    file: &mut File,
    path: &Path,
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
                let mut sparse = SparseWriter::new(file);
                io::copy(&mut r, &mut sparse).map_err(|e| write_or_read_error(e, path))?;
                len = Some(sparse.finish().map_err(|e| Error::io(path.display(), e))?);
            }
            (Some(MemberKind::Diff), Some(_)) => {
                let side = match &mut side {
                    Some(s) => s,
                    None => side.insert(tempfile_in(tempdir)?),
                };
                let n = delta::patch_in_place(file, &mut r, side).map_err(|e| match e {
                    delta::DeltaError::Io(io) => write_or_read_error(io, path),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    fn reader(blocks: Vec<Block>) -> ReadAhead {
        let (tx, rx) = sync_channel(blocks.len() + 1);
        for b in blocks {
            tx.send(b).unwrap();
        }
        ReadAhead {
            rx,
            cur: Vec::new(),
            pos: 0,
            state: ReadState::Reading,
        }
    }

    #[test]
    fn read_ahead_passes_data_then_eof_only_after_end() {
        let mut r = reader(vec![
            Block::Data(b"hello ".to_vec()),
            Block::Data(b"world".to_vec()),
            Block::End,
        ]);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello world");
        assert_eq!(r.read(&mut [0u8; 4]).unwrap(), 0);
    }

    #[test]
    fn read_ahead_never_turns_a_lost_thread_into_eof() {
        // The sender goes away (the opening thread died) before End: data, then an error.
        let mut r = reader(vec![Block::Data(b"partial".to_vec())]);
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
        assert_eq!(out, b"partial");
        assert!(r.read(&mut [0u8; 4]).is_err(), "and it stays failed");
    }

    #[test]
    fn read_ahead_hands_on_the_readers_own_error() {
        let e = io::Error::new(io::ErrorKind::InvalidData, "MDC mismatch");
        let mut r = reader(vec![
            Block::Data(b"x".to_vec()),
            Block::Failed(e),
            Block::End,
        ]);
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert_eq!(err.to_string(), "MDC mismatch");
        assert!(r.read(&mut [0u8; 4]).is_err(), "no EOF after a failure");
    }
}
