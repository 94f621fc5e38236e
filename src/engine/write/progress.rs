//! Resuming an interrupted full: a multi-hour full killed by a Job's deadline continues next
//! run from its last stored volume instead of starting over, with no local cache.
//!
//! A volume alone does not say enough to continue: the manifest needs each volume's record,
//! and the signature file needs the signatures of every file already stored, including the
//! one a volume ends in the middle of. So after each volume of a full, the upload thread
//! stores a small sealed progress object beside it,
//! `<file-prefix>swiftdup-progress.<set time>.vol<N>[.gpg|.gz]`, sealed as the volumes
//! are, holding what that volume adds: its manifest record (SHA-1 and size), the
//! signature-file members of the entries that ended in it, and for a file it ends inside,
//! the rsync signature sums of that file's data in it plus the bytes of the unfinished
//! signature block (so the signature continues exactly, without reading the stored data
//! back). All of them together are about the size of the signature file.
//!
//! The next backup (`probe`, then `recover`) keeps volumes 1..N whose progress objects are
//! there and open, rebuilds the signature file and the manifest's volume records from them,
//! skips the entries already stored, continues the file it stopped in from the next 64 KiB
//! chunk, and commits the set under its original time. The objects are deleted once the
//! manifest is stored. Stock duplicity ignores them (the names are not its own).
//!
//! Only fulls from a directory: an incremental is quick to redo, and standard input cannot
//! be read again from the middle.

use crate::archive::collection::{BackupSet, Collection};
use crate::archive::manifest::{self, VolumeInfo};
use crate::archive::names::Suffix;
use crate::archive::tar::{Header, TarReader};
use crate::archive::{hex, index_display, parse_member_name, Index, MemberKind, MULTIVOL_CHUNK};
use crate::backend::{Backend, Listed};
use crate::config::Common;
use crate::engine::write::volumes::ManifestWriter;
use crate::error::{Error, Result};
use crate::log;
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, Read, Seek, Write};
use std::rc::Rc;

const STEM: &str = "swiftdup-progress.";
const SCHEMA: &str = "swiftdup.progress/1";

/// The progress object of volume `vol` of the full at `time`.
pub fn object_name(prefix: &str, time: i64, vol: u32, suffix: Suffix) -> String {
    format!("{prefix}{STEM}{time}.vol{vol}{}", suffix.as_str())
}

/// A progress object, from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgressName {
    pub name: String,
    pub time: i64,
    pub vol: u32,
    pub suffix: Suffix,
}

/// Parse `<prefix>swiftdup-progress.<time>.vol<N>[.gpg|.gz]`.
pub fn parse(prefix: &str, name: &str) -> Option<ProgressName> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(STEM)?;
    let (rest, suffix) = match (rest.strip_suffix(".gpg"), rest.strip_suffix(".gz")) {
        (Some(r), _) => (r, Suffix::Gpg),
        (_, Some(r)) => (r, Suffix::Gzip),
        _ => (rest, Suffix::None),
    };
    let (time, vol) = rest.split_once(".vol")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(time) || !digits(vol) {
        return None;
    }
    Some(ProgressName {
        name: name.to_string(),
        time: time.parse().ok()?,
        vol: vol.parse().ok()?,
        suffix,
    })
}

/// Every progress object in a listing.
pub fn progress_in(prefix: &str, names: &[String]) -> Vec<ProgressName> {
    names.iter().filter_map(|n| parse(prefix, n)).collect()
}

/// How many of an incomplete full's volumes, from the first on, have their progress object
/// in the listing: what the next backup would keep (if they open).
pub fn continuable(prefix: &str, names: &[String], set: &BackupSet) -> u32 {
    if !set.full || set.manifest.is_some() {
        return 0;
    }
    let vols: std::collections::BTreeSet<u32> = progress_in(prefix, names)
        .into_iter()
        .filter(|p| p.time == set.end)
        .map(|p| p.vol)
        .collect();
    (1..)
        .take_while(|v| set.volumes.contains_key(v) && vols.contains(v))
        .count() as u32
}

// --- Writing: what the source reader tells the sealer, and what the sealer stores. ---

/// The file whose data the chunks being sent belong to, as its signature was started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkSig {
    pub block_len: u32,
    /// The file's size when it was opened (to tell, on resuming, that it changed since).
    pub size: u64,
}

/// What the source reader produced since its last tar block: signature-file bytes, and the
/// rsync signature sums of the chunk it is sending. Shared in the reader's thread between
/// the signature file's writer (`Tap`), the file reader and the volume writer, which moves
/// it into each block (`take`), so that it reaches the sealer in order with the data.
#[derive(Default)]
pub struct Journal {
    sigtar: Vec<u8>,
    sums: Vec<u8>,
    pub chunk: Option<ChunkSig>,
    /// How many bytes of the file the sums produced so far cover (they lag what was read:
    /// see `SignatureBuilder::produced`).
    covered: u64,
    /// For a file continued from an interrupted run: the bytes its signature had not
    /// summed yet, sent once with its first chunk.
    resumed_tail: Option<Vec<u8>>,
    /// Set before the signature file's end blocks are written: they are not an entry's.
    pub closed: bool,
}

pub type JournalTap = Rc<RefCell<Journal>>;

impl Journal {
    pub fn take(&mut self) -> Pending {
        Pending {
            sigtar: std::mem::take(&mut self.sigtar),
            sums: std::mem::take(&mut self.sums),
            chunk: self.chunk,
            covered: self.covered,
            resumed_tail: self.resumed_tail.take(),
        }
    }

    /// The file whose chunks are sent next (`None`: no file's), with its signature as it
    /// stands: how much of the file its sums cover, and for a continued file the bytes it
    /// had not summed yet.
    pub fn file(&mut self, chunk: Option<ChunkSig>, covered: u64, tail: Option<Vec<u8>>) {
        self.chunk = chunk;
        self.covered = covered;
        self.resumed_tail = tail;
    }

    /// Signature sums the file reader just produced, which now cover `covered` bytes.
    pub fn sums(&mut self, s: &[u8], covered: u64) {
        self.sums.extend_from_slice(s);
        self.covered = covered;
    }
}

/// The journal's part that travels with one tar block.
#[derive(Default, Debug)]
pub struct Pending {
    sigtar: Vec<u8>,
    sums: Vec<u8>,
    chunk: Option<ChunkSig>,
    covered: u64,
    resumed_tail: Option<Vec<u8>>,
}

/// Between the signature-file writer and its sink: copies what is written to the journal.
pub struct Tap<W: Write> {
    inner: W,
    journal: Option<JournalTap>,
}

impl<W: Write> Tap<W> {
    pub fn new(inner: W, journal: Option<JournalTap>) -> Self {
        Tap { inner, journal }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Tap<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        if let Some(j) = &self.journal {
            let mut j = j.borrow_mut();
            if !j.closed {
                j.sigtar.extend_from_slice(&buf[..n]);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What the progress objects record of the set's source.
#[derive(Clone, Debug)]
pub struct ProgressSpec {
    pub hostname: String,
    pub localdir: Vec<u8>,
}

/// The file a volume ends inside, as the sealer follows it.
struct Partial {
    index: Index,
    chunk: ChunkSig,
    /// Its signature sums since the last progress object.
    sums: Vec<u8>,
    /// The bytes of its unfinished signature block.
    tail: Vec<u8>,
    /// Its last chunk's tar header (what a chunk to end it with is made from).
    header: Vec<u8>,
}

/// The sealer's account of the volume being built: what its progress object will hold.
/// The signature-file members go to a temporary file (a volume of small files holds
/// hundreds of thousands of entries); the signature state of one file stays in memory.
pub struct Ledger {
    sigtar: io::BufWriter<std::fs::File>,
    sigtar_len: u64,
    partial: Option<Partial>,
    /// The first error writing the spool, reported when the object is made.
    failed: Option<io::Error>,
}

impl Ledger {
    /// A ledger whose signature-file members are spooled in `tempdir`.
    pub fn spooled(tempdir: &std::path::Path) -> Result<Ledger> {
        let f = crate::local::spool::tempfile_in(tempdir)?;
        Ok(Ledger {
            sigtar: io::BufWriter::with_capacity(1 << 16, f),
            sigtar_len: 0,
            partial: None,
            failed: None,
        })
    }

    /// Before a block is placed: the signature-file members written before it are of
    /// entries whose data is already in the volume (they go with it even if this block
    /// starts the next one).
    pub fn before(&mut self, p: &mut Pending) {
        if p.sigtar.is_empty() {
            return;
        }
        if let Err(e) = self.sigtar.write_all(&p.sigtar) {
            self.failed.get_or_insert(e);
        }
        self.sigtar_len += p.sigtar.len() as u64;
        p.sigtar.clear();
    }

    /// After a block is written into a volume: follow the file it is a chunk of.
    pub fn after(
        &mut self,
        header: &[u8],
        data: &[u8],
        index: &Index,
        block: Option<u64>,
        p: Pending,
    ) {
        let (Some(chunk), Some(k)) = (p.chunk, block) else {
            // A whole member, or a file's last chunk: nothing is left unfinished.
            self.partial = None;
            return;
        };
        if self.partial.as_ref().is_none_or(|q| q.index != *index) {
            self.partial = Some(Partial {
                index: index.clone(),
                chunk,
                sums: Vec::new(),
                // A continued file's unsummed bytes from before the run began.
                tail: p.resumed_tail.unwrap_or_default(),
                header: Vec::new(),
            });
        }
        if let Some(q) = &mut self.partial {
            q.sums.extend_from_slice(&p.sums);
            q.tail.extend_from_slice(data);
            // Chunks before the last one are whole, so the file is read up to k chunks;
            // the sums cover `covered` bytes of them, the rest waits in the tail.
            let fill = (k * MULTIVOL_CHUNK as u64).saturating_sub(p.covered) as usize;
            let drop = q.tail.len().saturating_sub(fill);
            q.tail.drain(..drop);
            q.header = header.to_vec();
        }
    }

    /// Write the plaintext of the progress object of the volume just closed to `out`;
    /// starts the next.
    pub fn write_to(
        &mut self,
        out: &mut dyn Write,
        spec: &ProgressSpec,
        time: i64,
        info: &VolumeInfo,
        bytes: u64,
    ) -> io::Result<()> {
        if let Some(e) = self.failed.take() {
            return Err(e);
        }
        let mut record = Vec::new();
        info.write_to(&mut record)?;
        let partial = self.partial.as_mut().map(|q| {
            let sums = std::mem::take(&mut q.sums);
            (q.chunk, sums, &q.tail, &q.header)
        });
        let head = json!({
            "schema": SCHEMA,
            "set": time,
            "volume": info.num,
            "bytes": bytes,
            "hostname": spec.hostname,
            "localdir": hex(&spec.localdir),
            "record": record.len(),
            "sigtar": self.sigtar_len,
            "partial": partial.as_ref().map(|(c, s, t, h)| json!({
                "block_len": c.block_len,
                "size": c.size,
                "sums": s.len(),
                "tail": t.len(),
                "header": h.len(),
            })),
        });
        out.write_all(head.to_string().as_bytes())?;
        out.write_all(b"\n")?;
        out.write_all(&record)?;
        self.sigtar.flush()?;
        let spool = self.sigtar.get_mut();
        spool.seek(io::SeekFrom::Start(0))?;
        let copied = io::copy(&mut (&mut *spool).take(self.sigtar_len), out)?;
        if copied != self.sigtar_len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "progress spool cut short",
            ));
        }
        spool.set_len(0)?;
        spool.seek(io::SeekFrom::Start(0))?;
        self.sigtar_len = 0;
        if let Some((_, s, t, h)) = partial {
            out.write_all(&s)?;
            out.write_all(t)?;
            out.write_all(h)?;
        }
        Ok(())
    }

    /// The same, as bytes (for tests and seeds).
    pub fn take(
        &mut self,
        spec: &ProgressSpec,
        time: i64,
        info: &VolumeInfo,
        bytes: u64,
    ) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        self.write_to(&mut out, spec, time, info, bytes)?;
        Ok(out)
    }
}

// --- Reading: a progress object opened. ---

/// What one progress object says (its signature-file members are copied out as it is
/// read: see [`Progress::read`]).
#[derive(Debug, PartialEq, Clone)]
pub struct Progress {
    pub set: i64,
    pub volume: u32,
    pub bytes: u64,
    pub hostname: String,
    pub localdir: Vec<u8>,
    pub info: VolumeInfo,
    /// The length of its signature-file members.
    pub sigtar_len: u64,
    pub partial: Option<PartialState>,
}

/// The file a volume ended inside: how its signature stood.
#[derive(Debug, PartialEq, Clone)]
pub struct PartialState {
    pub block_len: u32,
    pub size: u64,
    pub sums: Vec<u8>,
    pub tail: Vec<u8>,
    pub header: Vec<u8>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The most a part held in memory may claim (the header line, the volume record, the
/// signature state): far above what a writer makes, far below what would hurt.
const PART_MAX: u64 = 256 << 20;

/// The next `n` bytes of `r`, all of them.
fn read_part(r: &mut impl Read, n: u64) -> std::result::Result<Vec<u8>, String> {
    if n > PART_MAX {
        return Err("a part longer than any writer makes".into());
    }
    let mut b = Vec::new();
    r.take(n).read_to_end(&mut b).map_err(|e| e.to_string())?;
    match b.len() as u64 == n {
        true => Ok(b),
        false => Err("shorter than its header says".into()),
    }
}

impl Progress {
    /// Read an object's plaintext from `r`, its signature-file members to `sigtar`.
    /// Errors say what is wrong (an I/O error of `r` included: a damaged sealed stream).
    pub fn read(r: &mut dyn Read, sigtar: &mut dyn Write) -> std::result::Result<Progress, String> {
        let mut r = io::BufReader::new(r);
        let mut line = Vec::new();
        io::BufRead::read_until(&mut (&mut r).take(1 << 16), b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        if line.pop() != Some(b'\n') {
            return Err("no header line".into());
        }
        let v: Value = serde_json::from_slice(&line).map_err(|e| format!("not JSON: {e}"))?;
        if v["schema"] != SCHEMA {
            return Err(format!("not a {SCHEMA} object"));
        }
        let num = |v: &Value, what: &str| v.as_u64().ok_or_else(|| format!("no {what}"));
        let record = read_part(&mut r, num(&v["record"], "record")?)?;
        let sigtar_len = num(&v["sigtar"], "sigtar")?;
        let copied = io::copy(&mut (&mut r).take(sigtar_len), sigtar).map_err(|e| e.to_string())?;
        if copied != sigtar_len {
            return Err("shorter than its header says".into());
        }
        let partial = match &v["partial"] {
            Value::Null => None,
            p => Some(PartialState {
                block_len: u32::try_from(num(&p["block_len"], "block_len")?)
                    .map_err(|_| "block_len out of range")?,
                size: num(&p["size"], "size")?,
                sums: read_part(&mut r, num(&p["sums"], "sums")?)?,
                tail: read_part(&mut r, num(&p["tail"], "tail")?)?,
                header: read_part(&mut r, num(&p["header"], "header")?)?,
            }),
        };
        // To the end: that is also where a sealed stream's integrity is checked.
        let mut rest = [0u8; 1];
        if r.read(&mut rest).map_err(|e| e.to_string())? != 0 {
            return Err("longer than its header says".into());
        }
        let m = manifest::parse(&record[..]).map_err(|e| format!("bad volume record: {e}"))?;
        let info = m.volumes.into_values().next().ok_or("no volume record")?;
        Ok(Progress {
            set: v["set"].as_i64().ok_or("no set")?,
            volume: u32::try_from(num(&v["volume"], "volume")?).map_err(|_| "bad volume")?,
            bytes: num(&v["bytes"], "bytes")?,
            hostname: v["hostname"].as_str().ok_or("no hostname")?.to_string(),
            localdir: v["localdir"]
                .as_str()
                .and_then(unhex)
                .ok_or("no localdir")?,
            info,
            sigtar_len,
            partial,
        })
    }

    /// An object in memory, with its signature-file members.
    pub fn decode(b: &[u8]) -> std::result::Result<(Progress, Vec<u8>), String> {
        let mut sigtar = Vec::new();
        let p = Progress::read(&mut &b[..], &mut sigtar)?;
        Ok((p, sigtar))
    }
}

// --- Resuming. ---

/// An interrupted full this run can continue: its volumes 1..=`volumes` have progress
/// objects (not yet opened beyond the first).
#[derive(Debug)]
pub struct Candidate {
    pub time: i64,
    /// Volume 1, 2, ...: its object, its listed size (0 where the listing has none), and
    /// its progress object.
    volumes: Vec<(String, u64, ProgressName)>,
}

impl Candidate {
    /// How many volumes it has with progress objects.
    pub fn volumes(&self) -> u32 {
        self.volumes.len() as u32
    }

    /// Objects the leftover cleanup must keep: those volumes and their progress objects.
    pub fn keep(&self) -> Vec<String> {
        self.volumes
            .iter()
            .flat_map(|(v, _, p)| [v.clone(), p.name.clone()])
            .collect()
    }
}

/// Download and open one progress object; its signature-file members go to `sigtar`.
fn open(
    backend: &dyn Backend,
    common: &Common,
    p: &ProgressName,
    sigtar: &mut dyn Write,
) -> Result<Progress> {
    let f = crate::engine::metadata::download_temp(backend, &p.name, &common.tempdir)?;
    let mut plain = crate::seal::open_sealed(
        io::BufReader::new(f),
        p.suffix,
        &common.crypto.open,
        &p.name,
    )?;
    Progress::read(&mut plain, sigtar)
        .map_err(|e| Error::integrity(&p.name, format!("not a progress object: {e}")))
}

/// The newest incomplete set, if it is a full newer than every complete set and its
/// first volume has a progress object that this run can open and that was written from
/// this host and source (unless `allow_mismatch`). A progress object this run's keys do
/// not open stops the run: continuing the set with other keys would seal it with two.
pub fn probe(
    backend: &dyn Backend,
    common: &Common,
    coll: &Collection,
    listed: &[Listed],
    source: (&str, &[u8]),
    allow_mismatch: bool,
) -> Result<Option<Candidate>> {
    let newest_complete = coll
        .chains
        .iter()
        .flat_map(|c| c.sets())
        .map(|s| s.end)
        .max();
    let Some(set) = coll.incomplete.iter().max_by_key(|s| s.end) else {
        return Ok(None);
    };
    if !set.full || newest_complete.is_some_and(|t| t >= set.end) {
        return Ok(None);
    }
    let names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let mut progress: BTreeMap<u32, ProgressName> = progress_in(&common.prefixes.file, &names)
        .into_iter()
        .filter(|p| p.time == set.end)
        .map(|p| (p.vol, p))
        .collect();
    // The listing is sorted by name.
    let size_of = |n: &str| {
        listed
            .binary_search_by(|l| l.name.as_str().cmp(n))
            .map_or(0, |i| listed[i].size)
    };
    let mut cand = Candidate {
        time: set.end,
        volumes: Vec::new(),
    };
    for vol in 1..=continuable(&common.prefixes.file, &names, set) {
        let (Some(v), Some(p)) = (set.volumes.get(&vol), progress.remove(&vol)) else {
            break;
        };
        cand.volumes.push((v.clone(), size_of(v), p));
    }
    let Some((_, _, first)) = cand.volumes.first() else {
        return Ok(None);
    };
    if set.suffix != common.crypto.suffix {
        not_resumed(
            set,
            "it was written with other encryption or compression settings",
        );
        return Ok(None);
    }
    if !common.crypto.can_read_own {
        not_resumed(
            set,
            "its progress objects are encrypted and this run has no secret key",
        );
        return Ok(None);
    }
    let p = match open(backend, common, first, &mut io::sink()) {
        Ok(p) => p,
        Err(Error::Decryption { object, detail }) => {
            return Err(Error::Decryption {
                object,
                detail: format!(
                    "{detail}: the interrupted full of {} cannot be continued with the keys \
                     of this run, so nothing was stored. Use the passphrase or key it was \
                     started with, or delete it with `cleanup --force` to start over",
                    crate::archive::time::rfc3339(set.end)
                ),
            })
        }
        Err(e @ (Error::Integrity { .. } | Error::Unsigned { .. })) => {
            not_resumed(set, &e.to_string());
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let (hostname, localdir) = source;
    if !allow_mismatch && (p.hostname != hostname || p.localdir != localdir) {
        not_resumed(
            set,
            &format!(
                "it was written from {} on {}, this run backs up {} on {hostname}",
                String::from_utf8_lossy(&p.localdir),
                p.hostname,
                String::from_utf8_lossy(localdir)
            ),
        );
        return Ok(None);
    }
    Ok(Some(cand))
}

fn not_resumed(set: &BackupSet, why: &str) {
    log::info(
        "resume",
        &format!(
            "the interrupted full of {} is not continued: {why}; it is removed and a new full starts",
            crate::archive::time::rfc3339(set.end)
        ),
        vec![("resumed", json!(false)), ("reason", json!(why))],
    );
}

/// While recovering: volumes kept, the last one's end, and the file it ends inside (its
/// chunks stored and its state in the last object).
type Kept = (u32, Index, Option<(u64, PartialState)>);

/// Where the set being continued stopped.
pub struct Resumed {
    /// Volumes kept.
    pub volumes: u32,
    /// The last entry in them: entries up to it (before it, if `partial`) are stored.
    pub end: Index,
    pub partial: Option<PartialFile>,
    /// Bytes of signature-file members written for them.
    pub sigtar_len: u64,
}

/// The file the last kept volume ends inside.
pub struct PartialFile {
    /// Chunks of it stored (the next is chunk `chunks + 1`, at `chunks` * 64 KiB).
    pub chunks: u64,
    pub block_len: u32,
    pub size: u64,
    /// Its signature so far: header and whole-block sums, and the unfinished block.
    pub sums: Vec<u8>,
    pub tail: Vec<u8>,
    /// Its last stored chunk's header.
    pub header: Header,
}

impl PartialFile {
    /// Its signature, going on from where it stood (its sums move into it).
    pub fn signature(&mut self, index: &Index) -> Result<crate::rsync::SignatureBuilder> {
        let sums = std::mem::take(&mut self.sums);
        crate::rsync::SignatureBuilder::resume(self.block_len, sums, &self.tail).ok_or_else(|| {
            Error::Integrity {
                object: index_display(index),
                detail: "the interrupted full's signature state is damaged".into(),
            }
        })
    }
}

/// Open the candidate's progress objects in order: the signature-file members they hold
/// go to `sigtar`, their volume records and the Filelist lines to `manifest`. An object
/// that is missing, does not open or does not match its volume ends the kept part there:
/// that volume and every later one are deleted, to be written again.
pub fn recover(
    backend: &dyn Backend,
    common: &Common,
    cand: &Candidate,
    sigtar: &mut dyn Write,
    manifest: &mut ManifestWriter,
) -> Result<Option<Resumed>> {
    // The sums of the file the last volume ends inside gather across objects.
    let mut kept: Option<Kept> = None;
    let mut sums: Vec<u8> = Vec::new();
    let mut sigtar_len = 0;
    for (i, (_, listed, p)) in cand.volumes.iter().enumerate() {
        crate::interrupt::check()?;
        let vol = i as u32 + 1;
        // Its signature-file members wait in a spool until all of it is checked.
        let mut spool = io::BufWriter::new(crate::local::spool::tempfile_in(&common.tempdir)?);
        let opened = open(backend, common, p, &mut spool).and_then(|g| {
            let listed = *listed;
            if g.set != cand.time || g.volume != vol || g.info.num != vol {
                Err(Error::integrity(&p.name, "for another volume".to_string()))
            } else if listed != 0 && listed != g.bytes {
                Err(Error::integrity(
                    &p.name,
                    format!("its volume is {listed} bytes, {} were stored", g.bytes),
                ))
            } else if g.info.end_block.is_some() != g.partial.is_some() {
                Err(Error::integrity(
                    &p.name,
                    "the state of the file its volume ends inside is missing".to_string(),
                ))
            } else if !adds_up(&g, continued(&kept, &g).then_some(&sums[..])) {
                Err(Error::integrity(
                    &p.name,
                    "the signature state of the file its volume ends inside does not match \
                     the part of it stored"
                        .to_string(),
                ))
            } else {
                let f = rewound(&mut spool).map_err(|e| Error::io("progress spool", e))?;
                check_parts(&g, f, kept.as_ref(), &mut |_| Ok(()))
                    .map(|()| g)
                    .map_err(|e| Error::integrity(&p.name, e))
            }
        });
        let g = match opened {
            Ok(g) => g,
            Err(e @ (Error::Integrity { .. } | Error::Unsigned { .. } | Error::NotFound(_))) => {
                log::warn(
                    "warning",
                    &format!("{e}; the interrupted full continues from volume {vol}"),
                    vec![
                        ("code", json!("progress_unreadable")),
                        ("object", json!(p.name)),
                    ],
                );
                drop_from(backend, cand, vol)?;
                break;
            }
            Err(e) => return Err(e),
        };
        let f = rewound(&mut spool).map_err(|e| Error::io("progress spool", e))?;
        io::copy(&mut io::BufReader::new(f), sigtar).map_err(|e| Error::io("signature file", e))?;
        let f = rewound(&mut spool).map_err(|e| Error::io("progress spool", e))?;
        check_parts(&g, f, kept.as_ref(), &mut |index| {
            manifest.file("new", &index).map_err(|e| e.to_string())
        })
        .map_err(|e| Error::integrity(&p.name, e))?;
        manifest.volume(&g.info);
        sigtar_len += g.sigtar_len;
        if !continued(&kept, &g) {
            sums.clear();
        }
        let partial = match (g.info.end_block, g.partial) {
            (Some(k), Some(mut state)) => {
                sums.append(&mut state.sums);
                Some((k, state))
            }
            _ => None,
        };
        kept = Some((vol, g.info.end, partial));
    }
    let Some((volumes, end, partial)) = kept else {
        return Ok(None);
    };
    let partial = match partial {
        None => None,
        Some((chunks, state)) => {
            // Checked by check_parts.
            let header = TarReader::new(&state.header[..])
                .next_header()
                .ok()
                .flatten()
                .ok_or_else(|| Error::Internal("a chunk header changed".into()))?;
            Some(PartialFile {
                chunks,
                block_len: state.block_len,
                size: state.size,
                sums,
                tail: state.tail,
                header,
            })
        }
    };
    let kept = Some(Resumed {
        volumes,
        end,
        partial,
        sigtar_len,
    });
    if let Some(r) = &kept {
        log::info(
            "resume",
            &format!(
                "continuing the interrupted full of {} after volume {} (at {})",
                crate::archive::time::rfc3339(cand.time),
                r.volumes,
                index_display(&r.end)
            ),
            vec![
                ("resumed", json!(true)),
                ("set_time", json!(crate::archive::time::rfc3339(cand.time))),
                ("volumes_kept", json!(r.volumes)),
            ],
        );
    }
    Ok(kept)
}

/// Whether the volume of `g` ends inside the same file as the volume before (`kept`).
fn continued(kept: &Option<Kept>, g: &Progress) -> bool {
    matches!(kept, Some((_, end, Some(_))) if *end == g.info.end)
}

/// Whether the signature state of the file the volume of `g` ends inside accounts for
/// exactly the chunks of it stored: its sums (after `before`, those of earlier objects
/// when the file began in an earlier volume) cover whole blocks, and its tail is the rest.
/// Anything else would resume the file's signature shifted against its data.
fn adds_up(g: &Progress, before: Option<&[u8]>) -> bool {
    let (Some(k), Some(s)) = (g.info.end_block, &g.partial) else {
        return true;
    };
    let entry = 12u64;
    let sums = before.map_or(0, |b| b.len() as u64) + s.sums.len() as u64;
    // The sums of a file begin with the signature's 12-byte header.
    let Some(blocks) = sums.checked_sub(12).map(|n| n / entry) else {
        return false;
    };
    let stored = k.checked_mul(MULTIVOL_CHUNK as u64);
    let covered = blocks.checked_mul(u64::from(s.block_len));
    let tail = s.tail.len() as u64;
    matches!((stored, covered), (Some(st), Some(c)) if c.checked_add(tail) == Some(st))
}

/// Check what an object adds before any of it is used: its signature-file members are
/// whole and well named, and the state of the file its volume ends inside continues the
/// one before (`kept`). Returns the regular files among the members (in a full, every
/// stored regular file is new in the Filelist).
fn check_parts(
    g: &Progress,
    sigtar: &mut std::fs::File,
    kept: Option<&Kept>,
    file: &mut dyn FnMut(Index) -> std::result::Result<(), String>,
) -> std::result::Result<(), String> {
    let mut r = TarReader::new(io::BufReader::new(sigtar.take(g.sigtar_len)));
    while let Some(h) = r.next_header().map_err(|e| e.to_string())? {
        let m = parse_member_name(&h.name)?;
        if m.kind == MemberKind::Signature {
            file(m.index)?;
        }
    }
    // Whole members only, so that the signature file goes on from here.
    let mut rest = r.into_inner();
    if io::copy(&mut rest, &mut io::sink()).map_err(|e| e.to_string())? != 0 {
        return Err("signature-file members cut short".into());
    }
    if let Some(s) = &g.partial {
        let before = match kept {
            Some((_, end, Some((_, prev)))) if *end == g.info.end => Some(prev),
            _ => None,
        };
        if before.is_some_and(|prev| prev.block_len != s.block_len)
            || !crate::rsync::SignatureBuilder::part_fits(
                s.block_len,
                &s.sums,
                before.is_none(),
                &s.tail,
            )
        {
            return Err("a bad signature state of the file its volume ends inside".into());
        }
        match TarReader::new(&s.header[..]).next_header() {
            Ok(Some(_)) => {}
            _ => return Err("a bad chunk header".into()),
        }
    }
    Ok(())
}

/// The spool written so far, from its start.
fn rewound(w: &mut io::BufWriter<std::fs::File>) -> io::Result<&mut std::fs::File> {
    w.flush()?;
    let f = w.get_mut();
    f.seek(io::SeekFrom::Start(0))?;
    Ok(f)
}

/// Delete volume `from` and every later one of the candidate, with their progress objects.
fn drop_from(backend: &dyn Backend, cand: &Candidate, from: u32) -> Result<()> {
    let doomed = cand.volumes.iter().skip(from as usize - 1).rev();
    for (volume, _, progress) in doomed {
        backend.delete(&progress.name)?;
        backend.delete(volume)?;
    }
    Ok(())
}

/// After the set's manifest is stored: its progress objects are of no more use.
pub fn remove(backend: &dyn Backend, common: &Common, time: i64, volumes: u32) -> Result<()> {
    for vol in 1..=volumes {
        crate::interrupt::check()?;
        backend.delete(&object_name(
            &common.prefixes.file,
            time,
            vol,
            common.crypto.suffix,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rsync::SignatureBuilder;

    fn idx(s: &str) -> Index {
        s.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn names_round_trip() {
        for suffix in [Suffix::None, Suffix::Gzip, Suffix::Gpg] {
            let n = object_name("pre-", 1_700_000_000, 12, suffix);
            let p = parse("pre-", &n).unwrap();
            assert_eq!((p.time, p.vol, p.suffix), (1_700_000_000, 12, suffix));
        }
        assert!(parse("", "swiftdup-progress.17.vol").is_none());
        assert!(parse("", "swiftdup-progress..vol1").is_none());
        assert!(parse("", "swiftdup-record.17.json").is_none());
        assert!(parse("x", "swiftdup-progress.17.vol1").is_none());
    }

    #[test]
    fn a_file_stopped_inside_again_and_again_goes_on_with_its_signature_exactly() {
        let spec = ProgressSpec {
            hostname: "h".into(),
            localdir: b"/src".to_vec(),
        };
        let ch = MULTIVOL_CHUNK;
        let mut x = 7u32;
        let data: Vec<u8> = (0..40 * ch + 1234)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        // Blocks smaller than a chunk, as large, larger (files over 4 GiB), and so large
        // that they are summed one at a time.
        for bl in [1536u32, 65536, 66048, 300_000] {
            let whole = {
                let mut b = SignatureBuilder::new(bl);
                b.update(&data);
                b.finish()
            };
            let c = ChunkSig {
                block_len: bl,
                size: data.len() as u64,
            };
            let (mut sums, mut tail, mut start) = (Vec::new(), None::<Vec<u8>>, 0usize);
            let mut builder = SignatureBuilder::new(bl);
            // Runs stop after chunks 7, 8 (the next chunk: the unsummed bytes reach back
            // before the run began) and 19; the fourth ends the file.
            for stop in [7usize, 8, 19] {
                let mut ledger = Ledger::spooled(&std::env::temp_dir()).unwrap();
                let mut journal = Journal::default();
                journal.file(Some(c), builder.covered(), tail.clone());
                let mut sent = if start == 0 {
                    0
                } else {
                    builder.produced().len()
                };
                for k in start + 1..=stop {
                    let chunk = &data[(k - 1) * ch..k * ch];
                    for piece in chunk.chunks(20_000) {
                        builder.update(piece);
                        journal.sums(&builder.produced()[sent..], builder.covered());
                        sent = builder.produced().len();
                    }
                    let mut p = journal.take();
                    ledger.before(&mut p);
                    ledger.after(b"H", chunk, &idx("f"), Some(k as u64), p);
                }
                let info = VolumeInfo {
                    num: 1,
                    start: idx("f"),
                    start_block: Some(start as u64 + 1),
                    end: idx("f"),
                    end_block: Some(stop as u64),
                    hashes: BTreeMap::new(),
                };
                let (g, _) = Progress::decode(&ledger.take(&spec, 1, &info, 1).unwrap()).unwrap();
                let before = (start > 0).then_some(&sums[..]);
                assert!(adds_up(&g, before), "block_len {bl}, stopped after {stop}");
                let mut short = g.clone();
                short.partial.as_mut().unwrap().tail.push(0);
                assert!(!adds_up(&short, before));
                let state = g.partial.unwrap();
                sums.extend_from_slice(&state.sums);
                builder = SignatureBuilder::resume(bl, sums.clone(), &state.tail).unwrap();
                tail = Some(state.tail);
                start = stop;
            }
            builder.update(&data[start * ch..]);
            assert!(builder.finish() == whole, "block_len {bl}");
        }
    }

    #[test]
    fn a_progress_object_says_what_its_volume_added() {
        let spec = ProgressSpec {
            hostname: "h".into(),
            localdir: b"/src\xff".to_vec(),
        };
        let mut l = Ledger::spooled(&std::env::temp_dir()).unwrap();
        let c = ChunkSig {
            block_len: 1536,
            size: 300_000,
        };
        let mut p = Pending {
            sigtar: b"SIGS".to_vec(),
            ..Pending::default()
        };
        l.before(&mut p);
        l.after(b"H0", b"x", &idx("a"), None, p);
        let data = vec![7u8; MULTIVOL_CHUNK];
        for k in 1..=2u64 {
            // Whole blocks cover what was read but for the unfinished block.
            let mut p = Pending {
                sums: vec![k as u8; 3],
                chunk: Some(c),
                covered: k * MULTIVOL_CHUNK as u64 / 1536 * 1536,
                ..Pending::default()
            };
            l.before(&mut p);
            l.after(b"H1", &data, &idx("b/c"), Some(k), p);
        }
        let mut hashes = BTreeMap::new();
        hashes.insert("SHA1".to_string(), "ab".repeat(20));
        let info = VolumeInfo {
            num: 3,
            start: idx("a"),
            start_block: None,
            end: idx("b/c"),
            end_block: Some(2),
            hashes,
        };
        let (got, sigtar) = Progress::decode(&l.take(&spec, 42, &info, 999).unwrap()).unwrap();
        assert_eq!((got.set, got.volume, got.bytes), (42, 3, 999));
        assert_eq!(got.localdir, spec.localdir);
        assert_eq!(got.info, info);
        assert_eq!(sigtar, b"SIGS");
        assert_eq!(got.sigtar_len, 4);
        let s = got.partial.unwrap();
        assert_eq!(s.sums, vec![1, 1, 1, 2, 2, 2]);
        // 2 * 65536 = 85 * 1536 + 512: the unfinished block holds 512 bytes.
        assert_eq!(s.tail.len(), 512);
        assert_eq!(s.header, b"H1");
        // The next volume's object starts afresh, the file still unfinished.
        let (again, sigtar) = Progress::decode(&l.take(&spec, 42, &info, 999).unwrap()).unwrap();
        assert!(sigtar.is_empty());
        assert!(again.partial.unwrap().sums.is_empty());
        assert!(Progress::decode(b"{\"schema\":\"x\"}\n").is_err());
        let mut cut = l.take(&spec, 42, &info, 999).unwrap();
        cut.pop();
        assert!(Progress::decode(&cut).is_err());
    }
}
