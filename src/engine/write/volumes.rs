//! Cutting the tar stream of a set into volumes (§2.7), sealing each one (gzip or OpenPGP),
//! hashing what is uploaded, storing it, and writing the manifest records as volumes land.
//!
//! A volume is spooled to a temporary file while it is built: its SHA1 must be known before
//! the manifest record is written, and a retried upload must resend the same bytes.

use crate::archive::manifest::{self, VolumeInfo};
use crate::archive::names::FileKind;
use crate::archive::names::{Prefixes, Suffix};
use crate::archive::tar::{self, Header};
use crate::archive::Index;
use crate::backend::Backend;
use crate::config::Common;
use crate::engine::write::progress::{self, JournalTap, Ledger, Pending, ProgressSpec};
use crate::error::{Error, Result};
use crate::local::spool::{tempfile_in, TempPath};
use crate::log;
use crate::seal::pgp::{SealMode, Sealer};
use sha1::{Digest, Sha1};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

/// A writer that hashes and counts what passes through it.
pub struct HashCount<W: Write> {
    inner: W,
    sha1: Sha1,
    count: Rc<Cell<u64>>,
}

impl<W: Write> HashCount<W> {
    pub fn new(inner: W) -> Self {
        HashCount {
            inner,
            sha1: Sha1::new(),
            count: Rc::new(Cell::new(0)),
        }
    }

    pub fn counter(&self) -> Rc<Cell<u64>> {
        self.count.clone()
    }

    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            crate::archive::hex(&self.sha1.finalize()),
            self.count.get(),
        )
    }
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Seal the whole of `src` into a new temporary file; returns (path, sha1, size).
pub fn seal_file(
    src: &mut dyn Read,
    mode: &SealMode,
    common: &Common,
    what: &str,
) -> Result<(TempPath, String, u64)> {
    let mut spool = SealingSpool::new(mode, common, what)?;
    io::copy(src, &mut spool).map_err(|e| Error::io(what, e))?;
    spool.finish()
}

/// A temporary file that what is written to arrives in sealed (compressed and encrypted as
/// `mode` says), hashed and counted on the way.
pub struct SealingSpool {
    path: TempPath,
    sealer: Sealer<HashCount<BufWriter<File>>>,
    what: String,
}

impl SealingSpool {
    pub fn new(mode: &SealMode, common: &Common, what: &str) -> Result<SealingSpool> {
        Self::in_dir(mode, &common.tempdir, what)
    }

    pub fn in_dir(mode: &SealMode, tempdir: &std::path::Path, what: &str) -> Result<SealingSpool> {
        let path = TempPath::new(tempdir, what)?;
        let f = File::create(&path.0).map_err(|e| Error::io(path.0.display(), e))?;
        let sealer = Sealer::new(HashCount::new(BufWriter::with_capacity(1 << 16, f)), mode)
            .map_err(|e| Error::Internal(format!("cannot seal {what}: {e}")))?;
        Ok(SealingSpool {
            path,
            sealer,
            what: what.into(),
        })
    }

    /// Ends the sealed stream; returns (path, sha1, size) of the sealed file.
    pub fn finish(self) -> Result<(TempPath, String, u64)> {
        let what = self.what;
        let hc = self
            .sealer
            .finish()
            .map_err(|e| Error::Internal(format!("cannot seal {what}: {e}")))?;
        let (w, sha1, n) = hc.finish();
        // Flushed, not synced: the spool is read back at once and is worthless after a
        // crash; the target makes the stored object durable.
        w.into_inner()
            .map_err(|e| Error::io(self.path.0.display(), e.into_error()))?;
        Ok((self.path, sha1, n))
    }
}

impl Write for SealingSpool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sealer.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealer.flush()
    }
}

/// The manifest of the set being written: volume records go to a spool file as volumes
/// are stored, Filelist lines to another, and `finish` joins them (header, volumes,
/// Filelist), the layout stock writes.
pub struct ManifestWriter {
    volumes: Vec<u8>,
    filelist: BufWriter<File>,
    filelist_count: u64,
    hostname: Vec<u8>,
    localdir: Vec<u8>,
}

impl ManifestWriter {
    pub fn new(common: &Common, hostname: &[u8], localdir: &[u8]) -> Result<Self> {
        Ok(ManifestWriter {
            // Volume records are ~200 bytes each, one per volume: small enough to keep.
            volumes: Vec::new(),
            filelist: BufWriter::new(tempfile_in(&common.tempdir)?),
            filelist_count: 0,
            hostname: hostname.to_vec(),
            localdir: localdir.to_vec(),
        })
    }

    pub fn volume(&mut self, v: &VolumeInfo) {
        // Writing into a Vec cannot fail.
        let _ = v.write_to(&mut self.volumes);
    }

    /// Record a regular file as `new`, `changed` or `deleted` in the Filelist.
    pub fn file(&mut self, kind: &str, index: &Index) -> Result<()> {
        self.filelist_count += 1;
        manifest::write_filelist_line(&mut self.filelist, kind, index)
            .map_err(|e| Error::io("manifest spool", e))
    }

    /// The plaintext manifest, as a rewound temporary file.
    pub fn finish(self, common: &Common) -> Result<File> {
        let err = |e: io::Error| Error::io("manifest spool", e);
        let mut fl = self
            .filelist
            .into_inner()
            .map_err(|e| err(e.into_error()))?;
        fl.seek(io::SeekFrom::Start(0)).map_err(err)?;
        let mut out = tempfile_in(&common.tempdir)?;
        {
            let mut w = BufWriter::new(&mut out);
            manifest::write_header(&mut w, &self.hostname, &self.localdir).map_err(err)?;
            w.write_all(&self.volumes).map_err(err)?;
            writeln!(w, "Filelist {}", self.filelist_count).map_err(err)?;
            io::copy(&mut fl, &mut w).map_err(err)?;
            w.flush().map_err(err)?;
        }
        out.seek(io::SeekFrom::Start(0)).map_err(err)?;
        Ok(out)
    }
}

/// Where a tar block sits, for the manifest's Starting/EndingPath.
#[derive(Clone, Debug)]
pub struct Position {
    pub index: Index,
    /// The multivol chunk number, except on a file's last chunk (§4.1's block rule).
    pub block: Option<u64>,
}

struct OpenVolume {
    sealer: Sealer<HashCount<BufWriter<File>>>,
    path: TempPath,
    out_bytes: Rc<Cell<u64>>,
    plain: u64,
    first: Option<Position>,
    last: Option<Position>,
    started: Instant,
}

/// Statistics of the volumes written.
#[derive(Default, Debug, Clone)]
pub struct VolumeStats {
    pub volumes: u32,
    pub bytes_uploaded: u64,
}

/// What the volumes of one set need, owned, so that a sealing thread can hold it.
#[derive(Clone)]
pub struct VolumeSpec {
    pub full: bool,
    pub start: i64,
    pub end: i64,
    pub volsize: u64,
    pub mode: SealMode,
    pub tempdir: PathBuf,
    pub prefixes: Prefixes,
    pub suffix: Suffix,
    /// For upload threads, which open their own connections (backends are not `Send`).
    pub url: String,
    pub backend: crate::backend::Options,
    /// Uploads at once; 1 means one thread does everything, as under WASI.
    pub concurrency: usize,
    /// A progress object follows each volume (a full from a directory; see `progress`).
    pub progress: Option<ProgressSpec>,
    /// Volumes already stored by the interrupted run this one continues.
    pub first_volume: u32,
}

impl VolumeSpec {
    pub fn new(
        common: &Common,
        full: bool,
        start: i64,
        end: i64,
        volsize: u64,
        concurrency: usize,
    ) -> Self {
        VolumeSpec {
            full,
            start,
            end,
            volsize,
            mode: common.crypto.seal.clone(),
            tempdir: common.tempdir.clone(),
            prefixes: common.prefixes.clone(),
            suffix: common.crypto.suffix,
            url: common.url.clone(),
            backend: common.backend.clone(),
            concurrency: concurrency.max(1),
            progress: None,
            first_volume: 0,
        }
    }

    fn kind(&self, vol: u32) -> FileKind {
        if self.full {
            FileKind::FullVolume {
                time: self.end,
                vol,
            }
        } else {
            FileKind::IncVolume {
                start: self.start,
                end: self.end,
                vol,
            }
        }
    }
}

/// A sealed volume, spooled and hashed, ready to store.
struct Sealed {
    num: u32,
    name: String,
    path: TempPath,
    bytes: u64,
    sha1: String,
    started: Instant,
    /// The volume's progress object (name, sealed), stored after it.
    progress: Option<Box<(String, TempPath)>>,
}

/// Room kept free below `--volsize` before a volume is closed: stock's gpg rule (§2.7:
/// 50 KiB + 16 KiB + one 64 KiB block) also covers what the compressor still buffers.
const HEADROOM: u64 = (50 + 16 + 64) * 1024;

/// Cuts the tar stream into volumes and seals them; each sealed volume goes to `store`.
/// The cut depends on the sealed size, so cutting and sealing stay in one place.
struct Builder {
    spec: VolumeSpec,
    cur: Option<OpenVolume>,
    num: u32,
    /// One record per volume (~200 bytes), in order, for the manifest.
    infos: Vec<VolumeInfo>,
    /// What the next progress object holds, when there are progress objects.
    ledger: Option<Ledger>,
}

type Store<'s> = dyn FnMut(Sealed) -> Result<()> + 's;

impl Builder {
    fn new(spec: VolumeSpec) -> Self {
        Builder {
            num: spec.first_volume,
            ledger: None,
            spec,
            cur: None,
            infos: Vec::new(),
        }
    }

    /// The ledger of progress objects, made at the first block (when there are any).
    fn ledger(&mut self) -> Result<Option<&mut Ledger>> {
        if self.ledger.is_none() && self.spec.progress.is_some() {
            self.ledger = Some(Ledger::spooled(&self.spec.tempdir)?);
        }
        Ok(self.ledger.as_mut())
    }

    fn open(&mut self) -> Result<()> {
        let path = TempPath::new(&self.spec.tempdir, "volume")?;
        let f = File::create(&path.0).map_err(|e| Error::io(path.0.display(), e))?;
        let hc = HashCount::new(BufWriter::with_capacity(1 << 16, f));
        let out_bytes = hc.counter();
        let sealer = Sealer::new(hc, &self.spec.mode)
            .map_err(|e| Error::Internal(format!("cannot start a volume: {e}")))?;
        self.cur = Some(OpenVolume {
            sealer,
            path,
            out_bytes,
            plain: 0,
            first: None,
            last: None,
            started: Instant::now(),
        });
        Ok(())
    }

    fn add(
        &mut self,
        header: &[u8],
        data: &[u8],
        pos: Position,
        mut pending: Pending,
        store: &mut Store,
    ) -> Result<()> {
        if let Some(l) = self.ledger()? {
            l.before(&mut pending);
        }
        if let Some(cur) = &mut self.cur {
            let volsize = self.spec.volsize;
            if cur.first.is_some()
                && cur.out_bytes.get() + cur.sealer.pending() + HEADROOM > volsize
            {
                // Chunks still being compressed count at their plaintext size here; near the
                // limit, wait for them so that the cut is made on the exact sealed size.
                cur.sealer
                    .settle()
                    .map_err(|e| Error::io(cur.path.0.display(), e))?;
                if cur.out_bytes.get() + HEADROOM > volsize {
                    self.close(store)?;
                }
            }
        }
        if self.cur.is_none() {
            self.open()?;
        }
        let cur = self
            .cur
            .as_mut()
            .ok_or_else(|| Error::Internal("no open volume".into()))?;
        let pad = tar::padding(data.len() as u64);
        let err = |e: io::Error| Error::io(cur.path.0.display().to_string(), e);
        cur.sealer.write_all(header).map_err(err)?;
        cur.sealer
            .write_all(data)
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        cur.sealer
            .write_all(&[0u8; tar::BLOCK][..pad])
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        cur.plain += (header.len() + data.len() + pad) as u64;
        if let Some(l) = &mut self.ledger {
            l.after(header, data, &pos.index, pos.block, pending);
        }
        if cur.first.is_none() {
            cur.first = Some(pos.clone());
        }
        cur.last = Some(pos);
        Ok(())
    }

    /// Finish and seal the current volume, record it, and hand it to `store`.
    fn close(&mut self, store: &mut Store) -> Result<()> {
        let Some(mut cur) = self.cur.take() else {
            return Ok(());
        };
        let footer = tar::footer_len(cur.plain);
        cur.sealer
            .write_all(&vec![0u8; footer])
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        let hc = cur
            .sealer
            .finish()
            .map_err(|e| Error::Internal(format!("cannot finish a volume: {e}")))?;
        let (w, sha1, bytes) = hc.finish();
        // Flushed, not synced (see seal_file).
        w.into_inner()
            .map_err(|e| Error::io(cur.path.0.display(), e.into_error()))?;
        self.num += 1;
        let num = self.num;
        let name = self
            .spec
            .prefixes
            .name(&self.spec.kind(num), self.spec.suffix);
        let root = Position {
            index: Vec::new(),
            block: None,
        };
        let first = cur.first.unwrap_or_else(|| root.clone());
        let last = cur.last.unwrap_or(root);
        let mut hashes = BTreeMap::new();
        hashes.insert("SHA1".to_string(), sha1.clone());
        let info = VolumeInfo {
            num,
            start: first.index,
            start_block: first.block,
            end: last.index,
            end_block: last.block,
            hashes,
        };
        let progress = match (&mut self.ledger, &self.spec.progress) {
            (Some(ledger), Some(ps)) => {
                let mut spool =
                    SealingSpool::in_dir(&self.spec.mode, &self.spec.tempdir, "progress")?;
                ledger
                    .write_to(&mut spool, ps, self.spec.end, &info, bytes)
                    .map_err(|e| Error::io("progress object", e))?;
                let name = progress::object_name(
                    &self.spec.prefixes.file,
                    self.spec.end,
                    num,
                    self.spec.suffix,
                );
                Some(Box::new((name, spool.finish()?.0)))
            }
            _ => None,
        };
        self.infos.push(info);
        store(Sealed {
            num,
            name,
            path: cur.path,
            bytes,
            sha1,
            started: cur.started,
            progress,
        })
    }

    /// Seal the last volume (a set always has volume 1, even when empty); `pending` is
    /// what the reader wrote after the last block (the last entries' signatures).
    fn finish(mut self, mut pending: Pending, store: &mut Store) -> Result<Vec<VolumeInfo>> {
        if let Some(l) = self.ledger()? {
            l.before(&mut pending);
        }
        if self.cur.is_none() && self.num == 0 {
            self.open()?;
        }
        self.close(store)?;
        Ok(self.infos)
    }
}

/// Store one sealed volume and log it.
fn upload(backend: &dyn Backend, v: Sealed) -> Result<u64> {
    crate::interrupt::check()?;
    backend.put(&v.name, &v.path.0)?;
    // After its volume, never before: a progress object vouches for a stored volume.
    let mut extra = 0;
    if let Some((name, path)) = v.progress.as_deref() {
        crate::interrupt::check()?;
        backend.put(name, &path.0)?;
        extra = std::fs::metadata(&path.0).map_or(0, |m| m.len());
    }
    let secs = v.started.elapsed().as_secs_f64();
    log::info(
        "volume",
        &format!("stored volume {} ({} bytes)", v.num, v.bytes),
        vec![
            ("number", v.num.into()),
            ("object", v.name.into()),
            ("bytes", v.bytes.into()),
            ("sha1", v.sha1.into()),
            ("seconds", ((secs * 1000.0).round() / 1000.0).into()),
        ],
    );
    Ok(v.bytes + extra)
}

/// One tar block on its way to the sealing thread.
struct Block {
    header: Vec<u8>,
    data: Vec<u8>,
    pos: Position,
    pending: Pending,
}

/// What the sealing thread receives: blocks, then the end of the set.
enum Msg {
    Block(Box<Block>),
    End(Box<Pending>),
}

/// Blocks queued between the source reader and the sealer: 64 KiB each at most, so the
/// queue holds a few MiB whatever the size of the data.
const BLOCK_QUEUE: usize = 48;

type SealerResult = Result<(Vec<VolumeInfo>, u32)>;

/// Builds and stores the volumes of one set. With `concurrency` > 1 (and threads, so not
/// under WASI) the pipeline is: the caller's thread reads the source, computes signatures
/// and deltas and assembles tar blocks; one thread cuts and seals volumes (compression,
/// encryption, SHA-1); up to `concurrency` threads upload them, each with its own
/// connection. Queues between the stages are bounded (a few MiB of blocks; at most one
/// sealed volume waiting per upload thread, on disk in `--tempdir`), so memory stays flat.
/// The manifest records volumes in their order whatever order the uploads finish in.
pub struct VolumeWriter<'a> {
    mode: WriterMode<'a>,
    uploaded: Arc<AtomicU64>,
    /// What the reader produced besides tar blocks, for progress objects.
    journal: Option<JournalTap>,
}

enum WriterMode<'a> {
    Inline {
        builder: Box<Builder>,
        backend: &'a dyn Backend,
    },
    Threaded {
        /// Blocks, then the end of the set.
        tx: Option<SyncSender<Msg>>,
        sealer: Option<JoinHandle<SealerResult>>,
    },
}

/// The upload threads of the threaded pipeline.
struct Pool {
    tx: Option<SyncSender<Sealed>>,
    workers: Vec<JoinHandle<Result<()>>>,
    failed: Arc<AtomicBool>,
}

impl Pool {
    fn start(spec: &VolumeSpec, uploaded: Arc<AtomicU64>) -> Result<Pool> {
        let (tx, rx) = sync_channel::<Sealed>(0);
        let rx = Arc::new(Mutex::new(rx));
        let failed = Arc::new(AtomicBool::new(false));
        let mut workers = Vec::new();
        for i in 0..spec.concurrency {
            let (rx, failed, uploaded) = (rx.clone(), failed.clone(), uploaded.clone());
            let (url, opts) = (spec.url.clone(), spec.backend.clone());
            let w = std::thread::Builder::new()
                .name(format!("upload-{i}"))
                .spawn(move || -> Result<()> {
                    let backend = crate::backend::open(&url, crate::backend::Access::Write, &opts)?;
                    loop {
                        let next = rx.lock().map(|r| r.recv());
                        let Ok(Ok(v)) = next else { return Ok(()) };
                        match upload(backend.as_ref(), v) {
                            Ok(n) => {
                                uploaded.fetch_add(n, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.store(true, Ordering::SeqCst);
                                return Err(e);
                            }
                        }
                    }
                })
                .map_err(|e| Error::Internal(format!("cannot start an upload thread: {e}")))?;
            workers.push(w);
        }
        Ok(Pool {
            tx: Some(tx),
            workers,
            failed,
        })
    }

    fn submit(&mut self, v: Sealed) -> Result<()> {
        if self.failed.load(Ordering::SeqCst) {
            return Err(self.join());
        }
        let sent = self.tx.as_ref().map(|tx| tx.send(v));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.join()),
        }
    }

    /// Wait for every upload; the first failure, if any.
    fn finish(mut self) -> Result<()> {
        self.tx = None;
        let mut first = Ok(());
        for w in self.workers.drain(..) {
            let r = w
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("an upload thread panicked".into())));
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// After a failure: stop feeding, collect the error.
    fn join(&mut self) -> Error {
        self.tx = None;
        let mut err = None;
        for w in self.workers.drain(..) {
            if let Ok(Err(e)) = w.join() {
                err.get_or_insert(e);
            }
        }
        err.unwrap_or_else(|| Error::Internal("the upload threads stopped".into()))
    }
}

fn sealer_thread(spec: VolumeSpec, rx: Receiver<Msg>, uploaded: Arc<AtomicU64>) -> SealerResult {
    let mut pool = Pool::start(&spec, uploaded)?;
    let mut builder = Builder::new(spec);
    let run = (|| -> Result<Vec<VolumeInfo>> {
        let mut store = |v: Sealed| pool.submit(v);
        // `End` ends the set. A sender dropped before it abandoned the set (the run
        // failed): its last, partial volume is not stored.
        loop {
            match rx.recv() {
                Ok(Msg::Block(b)) => {
                    builder.add(&b.header, &b.data, b.pos, b.pending, &mut store)?
                }
                Ok(Msg::End(p)) => return builder.finish(*p, &mut store),
                Err(_) => return Err(Error::Internal("the set was abandoned".into())),
            }
        }
    })();
    let infos = match run {
        Ok(i) => i,
        Err(e) => {
            // An upload failure surfaces here as the first error; prefer it.
            let _ = pool.finish();
            return Err(e);
        }
    };
    pool.finish()?;
    let n = infos.len() as u32;
    Ok((infos, n))
}

impl<'a> VolumeWriter<'a> {
    /// `backend` is used when everything runs in this thread (`concurrency` 1, or no
    /// threads on this platform).
    /// `journal`: what the reader writes for progress objects (with `spec.progress`).
    pub fn new(backend: &'a dyn Backend, spec: VolumeSpec, journal: Option<JournalTap>) -> Self {
        let uploaded = Arc::new(AtomicU64::new(0));
        if spec.concurrency > 1 {
            let (tx, rx) = sync_channel::<Msg>(BLOCK_QUEUE);
            let (spec2, up) = (spec.clone(), uploaded.clone());
            if let Ok(h) = std::thread::Builder::new()
                .name("seal".into())
                .spawn(move || sealer_thread(spec2, rx, up))
            {
                return VolumeWriter {
                    mode: WriterMode::Threaded {
                        tx: Some(tx),
                        sealer: Some(h),
                    },
                    uploaded,
                    journal,
                };
            }
            // No threads here (WASI): the same stages, one after the other.
        }
        VolumeWriter {
            mode: WriterMode::Inline {
                builder: Box::new(Builder::new(spec)),
                backend,
            },
            uploaded,
            journal,
        }
    }

    /// What the reader wrote since the last block.
    fn pending(&self) -> Pending {
        self.journal
            .as_ref()
            .map(|j| j.borrow_mut().take())
            .unwrap_or_default()
    }

    /// The signature file is about to be ended: its end blocks are no entry's.
    pub fn close_journal(&self) {
        if let Some(j) = &self.journal {
            j.borrow_mut().closed = true;
        }
    }

    /// Bytes stored so far (for progress events).
    pub fn bytes_uploaded(&self) -> u64 {
        self.uploaded.load(Ordering::Relaxed)
    }

    /// Add one tar block: a member header and at most 64 KiB of data. Volumes end only
    /// between blocks.
    pub fn add(&mut self, header: &Header, data: &[u8], pos: Position) -> Result<()> {
        let enc = tar::encode_header(header);
        let pending = self.pending();
        match &mut self.mode {
            WriterMode::Inline { builder, backend } => {
                let uploaded = &self.uploaded;
                let backend: &dyn Backend = *backend;
                builder.add(&enc, data, pos, pending, &mut |v| {
                    uploaded.fetch_add(upload(backend, v)?, Ordering::Relaxed);
                    Ok(())
                })
            }
            WriterMode::Threaded { tx, sealer } => {
                let block = Block {
                    header: enc,
                    data: data.to_vec(),
                    pos,
                    pending,
                };
                if tx
                    .as_ref()
                    .is_some_and(|t| t.send(Msg::Block(Box::new(block))).is_ok())
                {
                    return Ok(());
                }
                // The sealer stopped: its error is the one to report.
                *tx = None;
                match sealer.take().map(|h| h.join()) {
                    Some(Ok(Err(e))) => Err(e),
                    _ => Err(Error::Internal("the sealing thread stopped".into())),
                }
            }
        }
    }

    /// Give the set up after a failure: the partial last volume is not stored, and this
    /// returns once the uploads under way have ended, so that the caller can remove what
    /// they stored.
    pub fn abandon(self) {
        if let WriterMode::Threaded { tx, sealer } = self.mode {
            drop(tx);
            if let Some(h) = sealer {
                let _ = h.join();
            }
        }
    }

    /// Store the last volume, wait for every upload, and write the volume records into the
    /// manifest in order.
    pub fn finish(self, manifest: &mut ManifestWriter) -> Result<VolumeStats> {
        let uploaded = self.uploaded.clone();
        let pending = self.pending();
        let infos = match self.mode {
            WriterMode::Inline { builder, backend } => builder.finish(pending, &mut |v| {
                uploaded.fetch_add(upload(backend, v)?, Ordering::Relaxed);
                Ok(())
            })?,
            WriterMode::Threaded { tx, sealer } => {
                // The end of the set; a sealer that stopped has its error in the join.
                let _ = tx.map(|tx| tx.send(Msg::End(Box::new(pending))));
                let h =
                    sealer.ok_or_else(|| Error::Internal("the sealing thread stopped".into()))?;
                h.join()
                    .unwrap_or_else(|_| Err(Error::Internal("the sealing thread panicked".into())))?
                    .0
            }
        };
        for v in &infos {
            manifest.volume(v);
        }
        Ok(VolumeStats {
            volumes: infos.len() as u32,
            bytes_uploaded: uploaded.load(Ordering::Relaxed),
        })
    }
}

#[cfg(test)]
mod tests {
    //! The cut and the sealing of volumes, without a backend: what `Builder` hands to its
    //! store is read back as tar and compared with what went in.
    use super::*;
    use crate::archive::tar::TarReader;
    use crate::archive::Index;
    use crate::seal::deflate::tests::noise;
    use crate::seal::pgp::open_gzip;

    const MIB: u64 = 1 << 20;

    fn spec(name: &str, volsize: u64, mode: SealMode, suffix: Suffix) -> VolumeSpec {
        let tempdir =
            std::env::temp_dir().join(format!("swiftdup-volumes-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tempdir);
        std::fs::create_dir_all(&tempdir).unwrap();
        VolumeSpec {
            full: true,
            start: 1_700_000_000,
            end: 1_700_000_000,
            volsize,
            mode,
            tempdir,
            prefixes: Prefixes::default(),
            suffix,
            url: String::new(),
            backend: crate::backend::Options::default(),
            concurrency: 1,
            progress: None,
            first_volume: 0,
        }
    }

    fn member(i: usize, data: &[u8]) -> (Vec<u8>, Position) {
        let name = format!("snapshot/f{i:03}");
        let h = Header {
            name: name.clone().into_bytes(),
            typ: tar::REGTYPE,
            mode: 0o644,
            size: data.len() as u64,
            ..Header::default()
        };
        let index: Index = vec![format!("f{i:03}").into_bytes()];
        (tar::encode_header(&h), Position { index, block: None })
    }

    /// Feed `blocks` to a Builder; returns the stored volumes' bytes (opened by `open`)
    /// with their sizes as stored, and the manifest records.
    fn build(
        spec: VolumeSpec,
        blocks: &[Vec<u8>],
        open: fn(File) -> Box<dyn Read>,
    ) -> (Vec<(Vec<u8>, u64)>, Vec<VolumeInfo>) {
        let mut stored = Vec::new();
        let mut store = |s: Sealed| {
            assert_eq!(
                s.num as usize,
                stored.len() + 1,
                "volumes stored out of order"
            );
            assert_eq!(
                std::fs::metadata(&s.path.0).unwrap().len(),
                s.bytes,
                "the size recorded is not the size stored"
            );
            let sealed = std::fs::read(&s.path.0).unwrap();
            let sha1 = crate::archive::hex(&<Sha1 as Digest>::digest(&sealed));
            assert_eq!(
                sha1, s.sha1,
                "the hash recorded is not the hash of what is stored"
            );
            let mut plain = Vec::new();
            open(File::open(&s.path.0).unwrap())
                .read_to_end(&mut plain)
                .unwrap();
            stored.push((plain, s.bytes));
            Ok(())
        };
        let tempdir = spec.tempdir.clone();
        let mut b = Builder::new(spec);
        for (i, data) in blocks.iter().enumerate() {
            let (header, pos) = member(i, data);
            b.add(&header, data, pos, Pending::default(), &mut store)
                .unwrap();
        }
        let infos = b.finish(Pending::default(), &mut store).unwrap();
        // Every spool is gone by now: the directory is left empty, and goes too.
        std::fs::remove_dir(&tempdir).unwrap();
        (stored, infos)
    }

    /// The members of each volume, as (name, data).
    fn members(tar_bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut r = TarReader::new(tar_bytes);
        let mut out = Vec::new();
        while let Some(h) = r.next_header().unwrap() {
            let mut data = Vec::new();
            (&mut r).take(h.size).read_to_end(&mut data).unwrap();
            out.push((String::from_utf8(h.name).unwrap(), data));
        }
        out
    }

    fn plain(f: File) -> Box<dyn Read> {
        Box::new(f)
    }

    fn gunzip(f: File) -> Box<dyn Read> {
        Box::new(open_gzip(f))
    }

    fn check_cut(name: &str, mode: SealMode, suffix: Suffix, open: fn(File) -> Box<dyn Read>) {
        let volsize = MIB;
        let blocks: Vec<Vec<u8>> = (0..40).map(|i| noise(60_000, i | 1)).collect();
        let (vols, infos) = build(spec(name, volsize, mode, suffix), &blocks, open);
        assert!(vols.len() >= 3, "{} volumes for 2.4 MB", vols.len());
        assert_eq!(infos.len(), vols.len());
        let mut got = Vec::new();
        for (k, ((bytes, stored), info)) in vols.iter().zip(&infos).enumerate() {
            assert_eq!(info.num as usize, k + 1);
            // Never over --volsize; and every volume but the last is filled to within the
            // headroom and one member of it.
            assert!(*stored <= volsize, "volume {} is {stored} bytes", k + 1);
            if k + 1 < vols.len() {
                assert!(
                    *stored + HEADROOM + 70_000 > volsize,
                    "volume {} closed early at {stored} bytes",
                    k + 1
                );
            }
            let ms = members(bytes);
            // The manifest record names the volume's first and last member.
            let first = format!("snapshot/{}", String::from_utf8_lossy(&info.start[0]));
            let last = format!("snapshot/{}", String::from_utf8_lossy(&info.end[0]));
            assert_eq!(ms.first().unwrap().0, first);
            assert_eq!(ms.last().unwrap().0, last);
            got.extend(ms);
        }
        // Every member once, in order, byte-identical.
        assert_eq!(got.len(), blocks.len());
        for (i, ((n, d), want)) in got.iter().zip(&blocks).enumerate() {
            assert_eq!(n, &format!("snapshot/f{i:03}"));
            assert!(d == want, "member {i} differs");
        }
    }

    #[test]
    fn plain_volumes_are_cut_below_volsize_and_hold_every_member_once() {
        check_cut("plain", SealMode::Plain, Suffix::None, plain);
    }

    #[test]
    fn gzip_volumes_are_cut_on_their_sealed_size() {
        check_cut("gzip", SealMode::Gzip { level: 6 }, Suffix::Gzip, gunzip);
    }

    #[test]
    fn compressible_data_fills_a_volume_by_its_sealed_size() {
        // 2.4 MB of zeros gzip to a few KiB: one volume, not three.
        let blocks: Vec<Vec<u8>> = (0..40).map(|_| vec![0u8; 60_000]).collect();
        let (vols, infos) = build(
            spec("zeros", MIB, SealMode::Gzip { level: 6 }, Suffix::Gzip),
            &blocks,
            gunzip,
        );
        assert_eq!(vols.len(), 1);
        assert_eq!(infos[0].end, vec![b"f039".to_vec()]);
        assert_eq!(members(&vols[0].0).len(), 40);
    }

    #[test]
    fn an_empty_set_still_has_volume_one() {
        let (vols, infos) = build(
            spec("empty", MIB, SealMode::Plain, Suffix::None),
            &[],
            plain,
        );
        assert_eq!(vols.len(), 1);
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].num, 1);
        assert!(infos[0].start.is_empty() && infos[0].end.is_empty());
        // A valid, empty tar: only the end-of-archive blocks.
        assert!(members(&vols[0].0).is_empty());
        assert!(!vols[0].0.is_empty() && vols[0].0.iter().all(|b| *b == 0));
    }
}
