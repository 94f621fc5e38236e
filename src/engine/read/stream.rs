//! The read side's source: each set of the chain read as one stream of tar members, its
//! volumes fetched (up to `--concurrency` ahead, each on a thread and connection of its own),
//! checked against the manifest's SHA-1 (and vouched for where the bytes deciphered are
//! certainly the bytes checked, so that the MDC need not be hashed: see `fetch_checked`),
//! opened (decrypted and inflated ahead on another thread) and read in order. What is
//! checked on the way: the manifest itself before it is trusted, member order, whole
//! multivol entries, and the Filelist against the members.

use super::progress::ReadProgress;
use crate::archive::collection::BackupSet;
use crate::archive::manifest::{Filelist, Listed, Manifest};
use crate::archive::tar::{self, Header, TarReader};
use crate::archive::{index_display, parse_member_name, Index, MemberKind, ParsedMember};
use crate::backend::{self, Backend};
use crate::config::Common;
use crate::engine::metadata::Metadata;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::local::platform::ReadLease;
use crate::local::spool::{private_tempfile_in, tempfile_in};
use crate::seal::pgp::Vouch;
use crate::seal::{map_read_error, open_sealed_vouched};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::Path;

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
    suffix: crate::archive::names::Suffix,
    /// Volume names with their SHA1 from the manifest.
    pub(crate) volumes: VecDeque<(String, String)>,
    tar: Option<TarReader<Box<dyn Read + 'a>>>,
    pub(crate) object: String,
    pub(crate) head: Option<Member>,
    /// Bytes of the current entry still unread in the current member.
    in_member: bool,
    /// Volumes and bytes downloaded.
    pub(crate) stats: (u64, u64),
    /// Sealed bytes read so far from this set's volumes (a restore's progress).
    pub(crate) sealed_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The progress display, shared by the sets of one restore or verify, ticked as
    /// entries are read (so that it moves inside a big file too).
    pub(super) progress: Option<std::rc::Rc<std::cell::RefCell<ReadProgress>>>,
    /// How many of the next volumes are fetched, each on a thread of its own, while this
    /// one is read (0: none).
    ahead: usize,
    /// Those fetches, in the order of `volumes`.
    next: VecDeque<Prefetch>,
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
    fetched: std::thread::JoinHandle<Result<Fetched>>,
}

/// A volume checked against its manifest's SHA-1, at its start.
struct Fetched {
    file: File,
    size: u64,
    /// Where the bytes that will be deciphered are certainly the bytes checked: the MDC
    /// need not be hashed as well ([`Vouch`]).
    vouch: Option<Vouch>,
    /// A download in a spool of this run's own (never the user's file:// volume).
    spooled: bool,
}

/// Download volume `name` (where the target is not local) and check its bytes against the
/// manifest's SHA1 before anything is decrypted.
fn fetch_checked(backend: &dyn Backend, name: &str, want: &str, tempdir: &Path) -> Result<Fetched> {
    let (mut file, vouch, spooled) = match backend.open_local(name) {
        Some(f) => {
            let mut f = f?;
            // Read twice, to check and then to decipher: a lease taken before the first
            // read and still held after the second proves nobody could write in between.
            // Without one, the MDC is hashed as well.
            let lease = ReadLease::take(&f);
            backend::check_sha1(name, &mut f, want)?;
            crate::local::fault::checked(name, &f);
            let object = name.to_string();
            let vouch = lease.map(|lease| {
                Vouch::new(move || match lease.held() {
                    true => Ok(()),
                    false => Err(io::Error::other(crate::seal::pgp::CryptoError::Integrity(
                        format!(
                            "{object} was opened for writing or truncated by another process \
                             while it was read, after its check: run the restore again"
                        ),
                    ))),
                })
            });
            (f, vouch, false)
        }
        None => {
            // A spool that never has a name holds exactly the bytes hashed as they came
            // (only this process, or one that may read its memory too, can reach it). Any
            // other spool could be opened by name and written between its check and its
            // reading, so there the MDC is hashed as well.
            let (mut f, private) = match private_tempfile_in(tempdir) {
                Some(f) => (f, true),
                None => (tempfile_in(tempdir)?, false),
            };
            backend.get_sha1(name, &mut f, want)?;
            (f, private.then(|| Vouch::new(|| Ok(()))), true)
        }
    };
    let size = file
        .seek(io::SeekFrom::End(0))
        .and_then(|n| file.seek(io::SeekFrom::Start(0)).map(|_| n))
        .map_err(|e| Error::io(name, e))?;
    Ok(Fetched {
        file,
        size,
        vouch,
        spooled,
    })
}

/// A volume's file, counting the bytes read from it for the progress display.
/// What has been read of it is given back as it is read ([`Behind`]).
struct Metered {
    file: File,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
    behind: Option<Behind>,
}

/// Where a volume has been read to, and given back from its start to.
struct Behind {
    /// A spool of this run's own: its blocks are punched out. A user's `file://` volume
    /// is never changed: only its pages are dropped from the page cache.
    punch: bool,
    read: u64,
    given: u64,
}

impl Behind {
    fn new(punch: bool) -> Behind {
        Behind {
            punch,
            read: 0,
            given: 0,
        }
    }
}

/// Bytes of a volume given back at a time: few calls, and little of a spool ever written out.
const GIVE_STEP: u64 = 8 << 20;

impl Read for Metered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.file.read(buf)?;
        self.n
            .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        if let Some(b) = &mut self.behind {
            b.read += k as u64;
            if b.read - b.given >= GIVE_STEP {
                // Nothing is read twice from a volume once it is being deciphered: what is
                // behind only takes memory (and a spool's, the disk's time too) that the
                // files being restored can use.
                if !b.punch {
                    crate::local::platform::drop_written(&self.file, b.given, b.read - b.given);
                    b.given = b.read;
                } else if crate::local::platform::discard_before(&self.file, b.read) {
                    b.given = b.read;
                } else {
                    self.behind = None;
                }
            }
        }
        Ok(k)
    }
}

/// Open a sealed volume. Where there are threads, decryption and decompression (AES,
/// the MDC's SHA-1, inflate) run on a thread of their own, beside the tar parsing and
/// file writing of this one: plaintext comes through a bounded channel (4 blocks of
/// 256 KiB), and read errors arrive in order as the same `io::Error`s, so a damaged
/// volume is reported exactly as when read inline.
fn open_volume(
    f: impl Read + Send + 'static,
    suffix: crate::archive::names::Suffix,
    keys: &crate::seal::pgp::OpenKeys,
    name: &str,
    vouch: Option<Vouch>,
) -> Result<Box<dyn Read>> {
    if cfg!(target_os = "wasi") {
        let f = io::BufReader::with_capacity(1 << 16, f);
        return open_sealed_vouched(f, suffix, keys, name, vouch);
    }
    let (opened_tx, opened_rx) = std::sync::mpsc::sync_channel::<Result<()>>(1);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Block>(4);
    // Blocks the reader is done with come back to be filled again: no allocation and
    // zeroing of 256 KiB per block.
    let (free_tx, free_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(6);
    let (keys, object) = (keys.clone(), name.to_string());
    std::thread::Builder::new()
        .name("open".into())
        .spawn(move || {
            let r = open_sealed_vouched(
                io::BufReader::with_capacity(1 << 16, f),
                suffix,
                &keys,
                &object,
                vouch,
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
                let mut b = free_rx.try_recv().unwrap_or_default();
                b.resize(READ_AHEAD_BLOCK, 0);
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
        free: Some(free_tx),
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
    /// Where read blocks go back to the opening thread.
    free: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
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
                    let done = std::mem::replace(&mut self.cur, b);
                    if let Some(free) = &self.free {
                        let _ = free.try_send(done);
                    }
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
        // A set's first volume downloads alone, and the next `ahead` once it is here:
        // nothing can be written before it, and sharing the server with the next ones
        // delays it (restores of many small files from Swift took 9-12% longer when the
        // first three volumes of a set downloaded together).
        let fetched = match self.next.pop_front() {
            Some(p) if p.name == name => p
                .fetched
                .join()
                .map_err(|_| Error::Internal("the volume-fetching thread stopped".into()))??,
            _ => fetch_checked(self.backend, &name, &sha1, &self.common.tempdir)?,
        };
        self.start_prefetch()?;
        self.stats.0 += 1;
        self.stats.1 += fetched.size;
        let f = Metered {
            file: fetched.file,
            n: self.sealed_read.clone(),
            behind: Some(Behind::new(fetched.spooled)),
        };
        let r = open_volume(
            f,
            self.suffix,
            &self.common.crypto.open,
            &name,
            fetched.vouch,
        )?;
        self.tar = Some(TarReader::new(r));
        self.object = name;
        Ok(true)
    }

    /// Keep the next `ahead` volumes after the one being opened fetching, where there are
    /// threads. Each waits on disk in `--tempdir` once fetched, so memory stays flat.
    fn start_prefetch(&mut self) -> Result<()> {
        if cfg!(target_os = "wasi") {
            return Ok(());
        }
        while self.next.len() < self.ahead {
            let Some((name, sha1)) = self.volumes.get(self.next.len()).cloned() else {
                return Ok(());
            };
            let (url, opts, tempdir) = (
                self.common.url.clone(),
                self.common.backend.clone(),
                self.common.tempdir.clone(),
            );
            let thread_name = name.clone();
            let fetched = std::thread::Builder::new()
                .name("fetch".into())
                .spawn(move || {
                    crate::local::platform::run_behind();
                    let backend = backend::open(&url, backend::Access::Read, &opts)?;
                    fetch_checked(backend.as_ref(), &thread_name, &sha1, &tempdir)
                })
                .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
            self.next.push_back(Prefetch { name, fetched });
        }
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
                        crate::seal::pgp::drain_to_end(&mut inner)
                            .map_err(|e| crate::seal::crypto_error(&self.object, e))?;
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

    pub(crate) fn advance(&mut self) -> Result<()> {
        self.head = self.next_member()?;
        self.in_member = true;
        Ok(())
    }

    /// Read the data of the current entry (all its multivol chunks), then move on. An
    /// entry that is used must be whole: it must start at its first chunk, and its last
    /// chunk must be short (§2.6: a full last chunk means the rest is missing).
    pub(crate) fn entry_reader(&mut self) -> EntryReader<'_, 'a> {
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
pub(crate) struct Wrapped(Error);
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

pub(crate) fn unwrap_io(e: io::Error) -> Error {
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
pub(crate) struct EntryReader<'s, 'a> {
    s: &'s mut SetStream<'a>,
    done: bool,
    /// Check that a multivol entry is whole (see `entry_reader`).
    whole: bool,
    started: bool,
}

impl EntryReader<'_, '_> {
    /// Leave the stream at the next entry's first member.
    pub(crate) fn finish(mut self) -> Result<()> {
        if !self.done {
            io::copy(&mut self, &mut io::sink()).map_err(unwrap_io)?;
        }
        Ok(())
    }
}

impl Read for EntryReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(p) = &self.s.progress {
            if let Ok(mut p) = p.try_borrow_mut() {
                p.tick();
            }
        }
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
                if self.whole && multivol && size >= crate::archive::MULTIVOL_CHUNK as u64 {
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

/// `check`: a set's manifest, checked against the listing as a restore checks it; the
/// volumes it lists as (number, object, SHA1).
pub(crate) fn checked_volumes(
    md: &Metadata,
    set: &BackupSet,
) -> Result<Vec<(u32, String, String)>> {
    let m = set_files(md, set)?;
    check_manifest(set, &m, md.common)?;
    Ok(m.volumes
        .iter()
        .filter_map(|(num, v)| Some((*num, set.volumes.get(num)?.clone(), v.sha1()?.to_string())))
        .collect())
}

/// `check`: download one volume, check its SHA1 against the manifest's, and open it to
/// the last byte (the OpenPGP MDC, and the signature with `--sign-key-file`). Returns the
/// bytes downloaded.
pub(crate) fn check_volume(md: &Metadata, set: &BackupSet, name: &str, sha1: &str) -> Result<u64> {
    let common = md.common;
    let fetched = fetch_checked(md.backend, name, sha1, &common.tempdir)?;
    // The MDC is hashed even so: `check` proves each volume opens as a whole message.
    let mut r = open_volume(fetched.file, set.suffix, &common.crypto.open, name, None)?;
    io::copy(&mut r, &mut io::sink()).map_err(|e| map_read_error(name, e))?;
    Ok(fetched.size)
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
            true => crate::archive::names::FileKind::FullVolume {
                time: set.end,
                vol: k,
            },
            false => crate::archive::names::FileKind::IncVolume {
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

/// How many volumes a set's stream fetches ahead of the one being read: one per
/// `--concurrency` (a connection each); none with `--concurrency 1`, which keeps every
/// stage in one thread.
pub(crate) fn fetch_ahead(concurrency: usize) -> usize {
    if concurrency > 1 {
        concurrency
    } else {
        0
    }
}

/// One stream per set up to the restore time, each with the volumes that may hold `prefix`.
pub(crate) fn set_streams<'a>(
    md: &Metadata<'a>,
    sets: &[&BackupSet],
    prefix: &Index,
    ahead: usize,
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
            sealed_read: Default::default(),
            progress: None,
            ahead,
            next: VecDeque::new(),
            last: None,
            filelist,
        });
    }
    Ok(streams)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::sync_channel;

    /// Read all of `file` through a `Metered` that gives back what it read.
    #[cfg(target_os = "linux")]
    fn read_through(
        file: File,
        n: std::sync::Arc<std::sync::atomic::AtomicU64>,
        punch: bool,
    ) -> (Vec<u8>, Metered) {
        let mut m = Metered {
            file,
            n,
            behind: Some(Behind::new(punch)),
        };
        let mut back = Vec::new();
        io::BufReader::with_capacity(1 << 16, &mut m)
            .read_to_end(&mut back)
            .unwrap();
        (back, m)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_spool_reads_whole_and_gives_its_read_bytes_back() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let dir = std::env::temp_dir();
        let mut f = tempfile_in(&dir).unwrap();
        let data: Vec<u8> = (0..3 * GIVE_STEP as usize + 12_345)
            .map(|i| (i % 253) as u8)
            .collect();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
        f.rewind().unwrap();
        let spool = f.try_clone().unwrap();
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (back, m) = read_through(f, n.clone(), true);
        assert!(back == data, "the spool read back whole");
        assert_eq!(
            n.load(std::sync::atomic::Ordering::Relaxed),
            data.len() as u64
        );
        let md = spool.metadata().unwrap();
        assert_eq!(md.len(), data.len() as u64, "the size is kept");
        if m.behind.is_some() {
            // Where the file system can punch holes, what was read is no longer stored.
            assert!(
                md.blocks() * 512 <= 2 * GIVE_STEP,
                "{} bytes kept",
                md.blocks() * 512
            );
        } else {
            eprintln!("SKIPPED: no hole punching in {}", dir.display());
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_users_volume_read_through_is_left_as_it_was() {
        use std::io::Write;
        use std::os::unix::fs::MetadataExt;
        let path = std::env::temp_dir().join(format!("swiftdup-volume-{}", std::process::id()));
        let data: Vec<u8> = (0..3 * GIVE_STEP as usize + 777)
            .map(|i| (i % 249) as u8)
            .collect();
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(&data).and_then(|_| f.sync_all()))
            .unwrap();
        let blocks = std::fs::metadata(&path).unwrap().blocks();
        let (back, m) = read_through(File::open(&path).unwrap(), Default::default(), false);
        assert!(back == data, "the volume read whole");
        assert!(m.behind.as_ref().is_some_and(|b| b.given >= 3 * GIVE_STEP));
        // Only its pages left memory: every byte and block is still there.
        let md = std::fs::metadata(&path).unwrap();
        assert_eq!((md.len(), md.blocks()), (data.len() as u64, blocks));
        assert!(std::fs::read(&path).unwrap() == data);
        std::fs::remove_file(&path).unwrap();
    }

    fn reader(blocks: Vec<Block>) -> ReadAhead {
        let (tx, rx) = sync_channel(blocks.len() + 1);
        for b in blocks {
            tx.send(b).unwrap();
        }
        ReadAhead {
            rx,
            free: None,
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
