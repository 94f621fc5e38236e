//! `full`, `incremental` and `backup`: one run that walks the source, compares it with the
//! signature chain, and writes a set: volumes, then the signature file, then the manifest.
//!
//! Pipeline: source walk -> change detection against the merged signature chain -> tar
//! blocks (snapshot or librsync delta, 64 KiB multivol chunks) -> volumes (sealed, hashed,
//! stored) -> signature file -> manifest (the commit marker). See `restore` for the reverse.

use crate::archive::collection::{Chain, Collection};
use crate::archive::manifest::{canonical_localdir, Manifest};
use crate::archive::names::{FileKind, Suffix};
use crate::archive::sigtar::{SigEntries, SigEntry, SigWriter};
use crate::archive::tar::{self, Header};
use crate::archive::{index_display, member_name, Index, MemberKind, MULTIVOL_CHUNK};
use crate::backend::{self, Backend, Listed};
use crate::config::{BackupOpts, Common};
use crate::engine::metadata::Metadata;
use crate::engine::write::select::Selection;
use crate::engine::write::volumes::{
    seal_file, ManifestWriter, Position, SealingSpool, VolumeSpec, VolumeWriter,
};
use crate::engine::write::walk::{Entry, Item, Walk};
use crate::error::{Error, Result};
use crate::interrupt;
use crate::local::cache::{local_name, Cache};
use crate::local::platform::{self, Kind};
use crate::local::spool::TempPath;
use crate::local::users;
use crate::log;
use crate::rsync::{self, DeltaReader, SignatureBuilder};
use crate::seal::pgp::SealMode;
use serde_json::json;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek};
use std::time::Instant;

/// What a backup run did, for the `summary` event.
#[derive(Debug, Default, Clone)]
pub struct Summary {
    pub full: bool,
    pub set_time: i64,
    pub chain_length: usize,
    pub files_new: u64,
    pub files_changed: u64,
    pub files_unchanged: u64,
    pub files_deleted: u64,
    pub bytes_read: u64,
    pub bytes_uploaded: u64,
    pub volumes: u32,
    /// Files or directories that could not be read (their previous state was kept).
    pub warnings: u64,
    /// Files whose size or mtime changed while they were read (stored as read, read
    /// again next run). A warning each, but not a failure: a live tree always has some.
    pub changed_during_backup: u64,
}

impl Summary {
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
            ("bytes_read", json!(self.bytes_read)),
            ("bytes_uploaded", json!(self.bytes_uploaded)),
            ("volumes", json!(self.volumes)),
            ("warnings", json!(self.warnings)),
            ("changed_during_backup", json!(self.changed_during_backup)),
        ]
    }
}

/// Whether a file's size or mtime moved between the walk's `lstat` and the end of its
/// read, or the read did not see as many bytes as the walk (stock says nothing then).
fn changed_while_read(file: &File, e: &Entry, bytes: u64) -> bool {
    let Ok(m) = file.metadata() else {
        return false;
    };
    let mtime = platform::metadata_mtime(&m);
    bytes != e.stat.size || m.len() != e.stat.size || mtime != e.stat.mtime
}

/// The tar type of an entry.
pub(crate) fn tar_type(k: Kind) -> u8 {
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

/// duplicity's notion of "unchanged" (§6.3), plus size for regular files.
fn unchanged(e: &Entry, s: &SigEntry) -> bool {
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

/// Reads a source file, computing its new signature on the way (unless a delta does it,
/// see `DeltaReader::with_signature`), and turns a read error into an early EOF (recorded
/// in `error`) so the stored member stays well-formed.
struct TeeSig<'a> {
    file: File,
    sig: Option<&'a mut SignatureBuilder>,
    bytes: u64,
    error: Option<io::Error>,
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
                    }
                    self.bytes += n as u64;
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

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

struct Run<'a> {
    common: &'a Common,
    volumes: VolumeWriter<'a>,
    sigs: SigWriter<BufWriter<SigSink>>,
    manifest: ManifestWriter,
    summary: Summary,
    buf: Vec<u8>,
    started: Instant,
    last_progress: Instant,
    /// The wall-clock second the run started in (not `--current-time`): a file whose mtime
    /// is not older is read again next run (see `sigtar::RACY_KEY`).
    racy_from: i64,
}

impl Run<'_> {
    fn progress(&mut self) {
        let every = self.common.progress_interval;
        if every == 0 || self.last_progress.elapsed().as_secs() < every {
            return;
        }
        self.last_progress = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let s = &self.summary;
        let files = s.files_new + s.files_changed + s.files_unchanged;
        log::info(
            "progress",
            &format!("{files} files, {} bytes read", s.bytes_read),
            vec![
                ("files", json!(files)),
                ("bytes_read", json!(s.bytes_read)),
                ("bytes_uploaded", json!(self.volumes.bytes_uploaded())),
                (
                    "rate_bytes_per_second",
                    json!((s.bytes_read as f64 / secs) as u64),
                ),
            ],
        );
    }

    fn warn_unreadable(
        &mut self,
        index: &Index,
        path: &std::path::Path,
        err: &io::Error,
        kept: bool,
    ) {
        self.summary.warnings += 1;
        let what = if kept {
            "kept its previous backed-up state"
        } else {
            "not backed up"
        };
        log::warn(
            "warning",
            &format!("cannot read {}: {err}; {what}", path.display()),
            vec![
                ("code", json!("unreadable")),
                ("path", json!(index_display(index))),
                ("reason", json!(err.to_string())),
            ],
        );
    }

    /// Write a new or changed entry. `old` is the signature-chain entry when there is one.
    fn emit(&mut self, e: &Entry, old: Option<&SigEntry>) -> Result<()> {
        let meta = meta_header(e);
        if e.stat.kind != Kind::File {
            let mut h = meta.clone();
            h.name = member_name(
                MemberKind::Snapshot,
                &e.index,
                e.stat.kind == Kind::Dir,
                None,
                false,
            );
            self.volumes.add(
                &h,
                &[],
                Position {
                    index: e.index.clone(),
                    block: None,
                },
            )?;
            self.sigs.snapshot(&e.index, &meta)?;
            return Ok(());
        }
        let file = match File::open(&e.path) {
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
        let old_sig = match old {
            Some(o) if o.kind == MemberKind::Signature => {
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
            _ => None,
        };
        let mut new_sig = SignatureBuilder::new(rsync::block_len_for(e.stat.size));
        let mut tee = TeeSig {
            file,
            sig: None,
            bytes: 0,
            error: None,
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
            let mut buf = std::mem::take(&mut self.buf);
            buf.resize(MULTIVOL_CHUNK, 0);
            let mut chunk = 0u64;
            let res = loop {
                interrupt::check()?;
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
        }
        let TeeSig {
            bytes, error, file, ..
        } = tee;
        let mut sig_meta = meta;
        let mut racy = e.stat.mtime >= self.racy_from;
        if error.is_none() && changed_while_read(&file, e, bytes) {
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
        self.summary.bytes_read += bytes;
        self.sigs
            .signature(&e.index, &sig_meta, &new_sig.finish(), bytes, racy)?;
        self.manifest
            .file(if old.is_some() { "changed" } else { "new" }, &e.index)?;
        Ok(())
    }

    fn deleted(&mut self, index: &Index, regular: bool) -> Result<()> {
        let h = Header::deleted(member_name(MemberKind::Deleted, index, false, None, false));
        self.volumes.add(
            &h,
            &[],
            Position {
                index: index.clone(),
                block: None,
            },
        )?;
        self.sigs.deleted(index)?;
        if regular {
            self.manifest.file("deleted", index)?;
        }
        self.summary.files_deleted += 1;
        Ok(())
    }
}

/// The plan for this run.
struct Plan<'c> {
    chain: Option<&'c Chain>,
    /// Which rule decided, a stable word for the `plan` event: requested, no_chain,
    /// no_signatures, full_if_older_than, max_chain_length, incremental.
    rule: &'static str,
    reason: String,
}

fn decide<'c>(
    coll: &'c Collection,
    md: &Metadata,
    common: &Common,
    opts: &BackupOpts,
) -> Result<Plan<'c>> {
    let full = |rule: &'static str, reason: &str| {
        Ok(Plan {
            chain: None,
            rule,
            reason: reason.to_string(),
        })
    };
    if opts.force_full == Some(true) {
        return full("requested", "full backup requested");
    }
    let explicit_inc = opts.force_full == Some(false);
    let no_chain = |why: String| {
        if explicit_inc {
            Err(Error::NoChain(format!(
                "{why}; run a full backup first (swiftdup full)"
            )))
        } else {
            full("no_chain", &why)
        }
    };
    let Some(chain) = coll.latest_chain() else {
        return no_chain("no backup chain in the target".into());
    };
    let Some(sig) = coll.sig_chain_for(chain) else {
        return no_chain("the newest chain has no matching signature files".into());
    };
    if let Some(age) = opts.full_if_older_than {
        if !explicit_inc && chain.start() < common.now - age {
            return full(
                "full_if_older_than",
                &format!(
                    "chain started {} which is older than --full-if-older-than",
                    crate::archive::time::rfc3339(chain.start())
                ),
            );
        }
    }
    if let Some(max) = opts.max_chain_length {
        if !explicit_inc && chain.incs.len() >= max {
            return full(
                "max_chain_length",
                &format!(
                    "the chain has {} incremental(s), the most --max-chain-length allows",
                    chain.incs.len()
                ),
            );
        }
    }
    if !common.crypto.can_read_own {
        let all_cached = sig.names().iter().all(|n| {
            let kind = common.prefixes.parse(n).map(|p| p.kind);
            kind.is_some_and(|k| md.cache.path(&local_name(n, &k)).exists())
        });
        if !all_cached {
            if opts.full_if_no_signatures && !explicit_inc {
                return full(
                    "no_signatures",
                    "old signatures are encrypted and no secret key was given (--full-if-no-signatures)",
                );
            }
            return Err(Error::NoChain(
                "an incremental needs the previous signatures, which are encrypted to your public key and not in the local cache: \
                 pass the secret key with --decrypt-key-file, keep --archive-dir between runs, or allow a full with --full-if-no-signatures"
                    .into(),
            ));
        }
    }
    Ok(Plan {
        chain: Some(chain),
        rule: "incremental",
        reason: format!(
            "extending the chain started {}",
            crate::archive::time::rfc3339(chain.start())
        ),
    })
}

fn same_manifest(a: &Manifest, b: &Manifest) -> bool {
    a.hostname == b.hostname
        && a.localdir == b.localdir
        && a.volumes.len() == b.volumes.len()
        && a.volumes
            .iter()
            .zip(b.volumes.iter())
            .all(|((na, va), (nb, vb))| {
                na == nb && va.start == vb.start && va.end == vb.end && va.hashes == vb.hashes
            })
}

/// §4.4: the cached manifest must match the remote one, and the chain must come from this
/// host and source (unless `--allow-source-mismatch`).
/// A public-key backup without the secret key cannot open the chain, but it can see whom
/// the chain's newest manifest is encrypted to: an incremental that would encrypt to other
/// keys (a changed or mistyped --encrypt-key-file) would leave a chain that no single key
/// restores, so it is refused unless --allow-key-change (or a new full) says so.
fn check_recipients(md: &Metadata, common: &Common, manifest: &str) -> Result<()> {
    let ours = crate::seal::pgp::seal_recipient_ids(&common.crypto.seal)
        .map_err(|e| crate::seal::crypto_error(manifest, e))?;
    let f = crate::engine::metadata::download_temp(md.backend, manifest, &common.tempdir)?;
    let theirs = crate::seal::pgp::message_recipient_ids(std::io::BufReader::new(f))
        .map_err(|e| crate::seal::crypto_error(manifest, e))?;
    if ours == theirs {
        return Ok(());
    }
    Err(Error::Decryption {
        object: manifest.to_string(),
        detail: format!(
            "the chain is encrypted to key(s) {}, this run would encrypt to {}: its sets \
             could not be restored with one key, so no set was stored. Use the chain's \
             --encrypt-key-file, start a new chain with `full`, or pass --allow-key-change",
            theirs.join(", "),
            ours.join(", ")
        ),
    })
}

/// A decryption failure of the chain's newest manifest, said as what it means for the
/// backup: the run's keys do not open the chain, and nothing was written.
fn keys_do_not_open(e: Error, manifest: &str) -> Error {
    match e {
        Error::Decryption { object, detail } => Error::Decryption {
            object,
            detail: format!(
                "{detail}: the keys of this run do not open the chain it would extend \
                 (newest manifest {manifest}), so no set was stored. Use the chain's \
                 passphrase or key, or start a new chain with `full`"
            ),
        },
        other => other,
    }
}

fn check_last_manifest(
    chain: &Chain,
    md: &Metadata,
    common: &Common,
    opts: &BackupOpts,
    localdir: &[u8],
    listed: &[Listed],
) -> Result<()> {
    let last = chain.incs.last().unwrap_or(&chain.full);
    let Some(name) = &last.manifest else {
        return Ok(());
    };
    let listed_md5 = listed
        .binary_search_by(|l| l.name.as_str().cmp(name))
        .ok()
        .and_then(|i| listed[i].md5.as_deref());
    let kind = last.manifest_kind();
    let local = local_name(name, &kind);
    let cached_before = md.cache.path(&local).exists();
    // Without a cached copy, this downloads and decrypts the remote manifest: that proves
    // the keys too.
    let cached = md
        .manifest(name, &kind)
        .map_err(|e| keys_do_not_open(e, name))?;
    let mismatch = || {
        Error::ManifestMismatch(format!(
            "the cached manifest {name} differs from the remote one; remove {} to re-read it from the target",
            md.cache.dir.display()
        ))
    };
    let encrypted = !matches!(common.crypto.seal, crate::seal::pgp::SealMode::Gzip { .. });
    if cached_before && common.crypto.can_read_own && encrypted {
        // A warm cache must not spare the proof that this run's passphrase (or secret key)
        // opens the chain it extends: with a wrong one the new set would be sealed with
        // it, and every later restore of the chain would fail. So the newest remote
        // manifest is decrypted to its MDC every time (one small download and an S2K).
        let (remote, sealed) = md
            .remote_manifest_opened(name)
            .map_err(|e| keys_do_not_open(e, name))?;
        if !same_manifest(&cached, &remote) {
            return Err(mismatch());
        }
        md.cache.record_sealed(&local, &sealed);
    } else if cached_before && common.crypto.can_read_own {
        if let Some((remote, record)) = md.remote_manifest(name, &local, listed_md5)? {
            if !same_manifest(&cached, &remote) {
                return Err(mismatch());
            }
            record();
        }
    } else if encrypted && !opts.allow_key_change {
        check_recipients(md, common, name)?;
    }
    if opts.allow_source_mismatch {
        return Ok(());
    }
    if let Some(h) = &cached.hostname {
        if h.as_slice() != opts.hostname.as_bytes() {
            return Err(Error::HostnameMismatch {
                recorded: String::from_utf8_lossy(h).into(),
                current: opts.hostname.clone(),
            });
        }
    }
    if let Some(l) = &cached.localdir {
        if l.as_slice() != localdir {
            return Err(Error::SourceMismatch {
                recorded: String::from_utf8_lossy(l).into(),
                current: String::from_utf8_lossy(localdir).into(),
            });
        }
    }
    Ok(())
}

/// Run one backup.
pub fn run(
    common: &Common,
    opts: &BackupOpts,
    lock: &crate::backend::lock::Held,
) -> Result<Summary> {
    let started = Instant::now();
    if !matches!(platform::lstat(&opts.source), Ok(s) if s.kind == Kind::Dir) {
        return Err(Error::SourceMissing(opts.source.display().to_string()));
    }
    // Bad selection options stop the run before the target is touched, as in stock.
    let selection = Selection::new(&opts.source, &opts.selection, common.now)?;
    let walk = Walk::new(opts.source.clone(), selection)
        .map_err(|_| Error::SourceMissing(opts.source.display().to_string()))?;
    crate::seal::pgp::prepare(&common.crypto.seal);
    let backend = backend::open(&common.url, backend::Access::Write, &common.backend)?;
    // The lock listed the target an instant ago, with nobody else writing since.
    let mut listed = match lock.take_listing() {
        Some(listed) => listed,
        None => backend.list_detailed(&common.prefixes.file)?,
    };
    let mut names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let mut coll = Collection::from_names(&names, &common.prefixes);
    if super::prune::remove_leftovers(backend.as_ref(), &coll, &names, common)? {
        listed = backend.list_detailed(&common.prefixes.file)?;
        names = listed.iter().map(|l| l.name.clone()).collect();
        coll = Collection::from_names(&names, &common.prefixes);
    }
    let md = Metadata {
        backend: backend.as_ref(),
        cache: Cache::open(common)?,
        common,
    };
    md.prune_spurious(&names)?;
    let localdir = canonical_localdir(&platform::os_bytes(&opts.source));

    let plan = decide(&coll, &md, common, opts)?;
    let (full, start, chain_length) = match plan.chain {
        Some(chain) => {
            check_last_manifest(chain, &md, common, opts, &localdir, &listed)?;
            (false, chain.end(), chain.incs.len() + 2)
        }
        None => (true, common.now, 1),
    };
    let mut end = common.now;
    let taken = |t: i64| {
        coll.chains
            .iter()
            .flat_map(|c| c.sets())
            .chain(coll.incomplete.iter())
            .any(|s| s.end == t)
    };
    if (!full && end == start) || (full && taken(end)) {
        // Two runs in the same second would give the set an empty time range; like stock,
        // wait it out (set names have one-second resolution).
        std::thread::sleep(std::time::Duration::from_millis(1100));
        end = start + 1;
    }
    if !full && end < start {
        return Err(Error::Usage(format!(
            "the chain already ends at {} which is not before this run's time {}; wait a second or fix --current-time",
            crate::archive::time::rfc3339(start),
            crate::archive::time::rfc3339(end)
        )));
    }
    log::info(
        "plan",
        &format!(
            "{} backup: {}",
            if full { "full" } else { "incremental" },
            plan.reason
        ),
        vec![
            ("type", json!(if full { "full" } else { "incremental" })),
            ("rule", json!(plan.rule)),
            ("reason", json!(plan.reason)),
            ("set_time", json!(crate::archive::time::rfc3339(end))),
        ],
    );

    let mut sig_reader = match plan.chain {
        Some(chain) => {
            let sc = coll
                .sig_chain_for(chain)
                .ok_or_else(|| Error::Internal("signature chain vanished".into()))?;
            let mut streams = Vec::new();
            for n in sc.names() {
                streams.push((n.clone(), md.sigtar(&n)?));
            }
            // One thread in all with --concurrency 1, as the user asked.
            SigEntries::new(streams, opts.concurrency > 1)?
        }
        None => SigEntries::empty(),
    };

    let sig_sink = SigSink::new(common, opts.compress_level)?;
    let mut run = Run {
        common,
        volumes: VolumeWriter::new(
            backend.as_ref(),
            VolumeSpec::new(common, full, start, end, opts.volsize, opts.concurrency),
        ),
        sigs: SigWriter::new(BufWriter::with_capacity(1 << 16, sig_sink)),
        manifest: ManifestWriter::new(common, opts.hostname.as_bytes(), &localdir)?,
        summary: Summary {
            full,
            set_time: end,
            chain_length,
            ..Summary::default()
        },
        buf: Vec::new(),
        started,
        last_progress: Instant::now(),
        racy_from: crate::archive::time::unix_now(),
    };

    let walk = crate::engine::write::walk::ahead(walk, opts.concurrency > 1)
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
            Item::Entry(e) => match matched {
                Some(o) if unchanged(&e, &o) => run.summary.files_unchanged += 1,
                Some(o) => {
                    run.summary.files_changed += 1;
                    run.emit(&e, Some(&o))?;
                }
                None => {
                    run.summary.files_new += 1;
                    run.emit(&e, None)?;
                }
            },
        }
        if order == std::cmp::Ordering::Equal {
            old = sig_reader.next()?;
        }
        crate::local::fault::point("entry");
    }

    let Run {
        volumes,
        sigs,
        manifest,
        mut summary,
        ..
    } = run;
    let mut manifest = manifest;

    // The signature file is complete and sealed: it is stored while the last volume is
    // still being sealed and uploaded, on a thread with its own connection (inline with
    // --concurrency 1, or where there are no threads).
    let sig_kind = if full {
        FileKind::FullSignatures { time: end }
    } else {
        FileKind::NewSignatures { start, end }
    };
    let sig_name = common.prefixes.name(&sig_kind, common.crypto.suffix);
    let (sig_sealed, sig_bytes, sig_cached) = sigs
        .finish()?
        .into_inner()
        .map_err(|e| Error::io("signature file", e.into_error()))?
        .finish()?;
    let (vstats, sig_stored) = std::thread::scope(|scope| {
        let spawned = (opts.concurrency > 1)
            .then(|| {
                let (name, sealed) = (&sig_name, &sig_sealed);
                std::thread::Builder::new()
                    .name("sigtar".into())
                    .spawn_scoped(scope, move || {
                        let backend =
                            backend::open(&common.url, backend::Access::Write, &common.backend)?;
                        store_signatures(backend.as_ref(), name, sealed)
                    })
                    .ok()
            })
            .flatten();
        let vstats = volumes.finish(&mut manifest);
        let sig_stored = match spawned {
            Some(h) => h
                .join()
                .unwrap_or_else(|_| Err(Error::Internal("the signature thread panicked".into()))),
            // Not stored yet: here, after the volumes, unless they failed.
            None => match &vstats {
                Ok(_) => store_signatures(md.backend, &sig_name, &sig_sealed),
                Err(_) => Ok(()),
            },
        };
        (vstats, sig_stored)
    });
    // A volume's failure came first in the pipe: it is the one to report.
    let vstats = vstats?;
    sig_stored?;
    summary.bytes_uploaded = vstats.bytes_uploaded + sig_bytes;
    summary.volumes = vstats.volumes;
    drop(sig_sealed);
    md.cache
        .adopt(&local_name(&sig_name, &sig_kind), &sig_cached.0)?;

    // The manifest last: its arrival is what makes the set complete.
    let man_kind = if full {
        FileKind::FullManifest { time: end }
    } else {
        FileKind::IncManifest { start, end }
    };
    let man_suffix = if common.crypto.suffix == Suffix::Gpg {
        Suffix::Gpg
    } else {
        Suffix::None
    };
    let man_name = common.prefixes.name(&man_kind, man_suffix);
    let mut man_plain = manifest.finish(common)?;
    let plain = SealMode::Plain;
    let man_mode = if man_suffix == Suffix::Gpg {
        &common.crypto.seal
    } else {
        &plain
    };
    let (sealed, _, n) = seal_file(&mut man_plain, man_mode, common, "manifest")?;
    interrupt::check()?;
    md.backend.put(&man_name, &sealed.0)?;
    summary.bytes_uploaded += n;
    man_plain
        .seek(io::SeekFrom::Start(0))
        .map_err(|e| Error::io("manifest spool", e))?;
    let man_local = local_name(&man_name, &man_kind);
    md.cache.write_with(&man_local, |w| {
        io::copy(&mut man_plain, w).map_err(|e| Error::io("manifest cache", e))?;
        Ok(())
    })?;
    // What the next backup's check compares the remote manifest with (a failure to
    // hash only means that check decrypts).
    if let Ok(s) =
        File::open(&sealed.0).and_then(|mut f| crate::local::cache::SealedDigest::of(&mut f))
    {
        md.cache.record_sealed(&man_local, &s);
    }
    Ok(summary)
}

fn store_signatures(backend: &dyn Backend, name: &str, sealed: &TempPath) -> Result<()> {
    interrupt::check()?;
    backend.put(name, &sealed.0)
}

/// Where the signature file goes as it is written: sealed for the target and gzipped for
/// the local cache (which keeps signature files as stock does, `.sigtar.gz`), each into a
/// spool of its own. Both are done when the source has been read, so all that is left at
/// the end is an upload and a rename, and no plain copy of the signatures (file names and
/// block hashes of every file) waits in the temporary directory. Compression runs on the
/// deflate pool like a volume's.
struct SigSink {
    sealed: SealingSpool,
    cached: crate::seal::deflate::Deflater<BufWriter<File>>,
    cached_path: TempPath,
}

impl SigSink {
    fn new(common: &Common, level: u32) -> Result<SigSink> {
        let sealed = SealingSpool::new(&common.crypto.seal, common, "sigtar")?;
        let cached_path = TempPath::new(&common.tempdir, "sigcache")?;
        let f = File::create(&cached_path.0).map_err(|e| Error::io(cached_path.0.display(), e))?;
        // The volumes' level (any level reads back): a compression thread keeps one
        // compressor, and chunks alternating between two levels would rebuild it each time.
        let cached = crate::seal::deflate::Deflater::new(
            BufWriter::with_capacity(1 << 16, f),
            level.max(1),
            crate::seal::deflate::Wrap::Gzip,
        )
        .map_err(|e| Error::io("signature cache", e))?;
        Ok(SigSink {
            sealed,
            cached,
            cached_path,
        })
    }

    /// (the sealed file, its size, the gzipped copy for the cache)
    fn finish(self) -> Result<(TempPath, u64, TempPath)> {
        let (sealed, _, n) = self.sealed.finish()?;
        self.cached
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(|e| Error::io(self.cached_path.0.display(), e))?;
        Ok((sealed, n, self.cached_path))
    }
}

impl io::Write for SigSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sealed.write_all(buf)?;
        self.cached.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.sealed.flush()?;
        self.cached.flush()
    }
}

#[allow(dead_code)]
fn _assert_backend_object_safe(_: &dyn Backend) {}
