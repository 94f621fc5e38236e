//! Committing a set, in the order that keeps every interruption harmless: volumes first,
//! then the signature file (stored while the last volume is still being sealed and
//! uploaded), the manifest last, as its arrival is what makes the set complete. Also the
//! other end: what runs killed before their manifest left, removed before a backup.

use super::members::{SetWriter, Summary};
use super::SetPlan;
use crate::archive::names::{FileKind, Suffix};
use crate::archive::time::rfc3339;
use crate::backend::{self, Backend};
use crate::config::{BackupOpts, Common};
use crate::engine::metadata::Metadata;
use crate::engine::write::volumes::{seal_file, SealingSpool};
use crate::error::{Error, Result};
use crate::local::cache::local_name;
use crate::local::spool::TempPath;
use crate::seal::pgp::SealMode;
use crate::{interrupt, log};
use serde_json::json;
use std::fs::File;
use std::io::{self, BufWriter, Seek};

/// Store the signature file and the manifest of the set `run` wrote.
pub(super) fn finish(
    run: SetWriter,
    md: &Metadata,
    common: &Common,
    opts: &BackupOpts,
    set: &SetPlan,
) -> Result<Summary> {
    let (full, start, end) = (set.full, set.start, set.end);
    let SetWriter {
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
    volumes.close_journal();
    let (sig_sealed, sig_bytes, sig_cached) = sigs
        .finish()?
        .into_inner()
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
    // What the next backup's check compares the remote manifest with, and the chain
    // record lists (a failure to hash only means that check decrypts, and the record
    // downloads the manifest to hash it).
    if let Ok(s) =
        File::open(&sealed.0).and_then(|mut f| crate::local::cache::SealedDigest::of(&mut f))
    {
        summary.manifest = Some((man_name.clone(), s.sha256.clone()));
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
pub(super) struct SigSink {
    sealed: SealingSpool,
    cached: crate::seal::deflate::Deflater<BufWriter<File>>,
    cached_path: TempPath,
}

impl SigSink {
    pub(super) fn new(common: &Common, level: u32) -> Result<SigSink> {
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

/// Before a backup, under its lock: remove what runs killed before their manifest left
/// (incomplete sets and their signature files), so no later run, of swiftdup or of stock,
/// finds a half-written set or a signature file that extends no chain. Returns whether
/// anything was deleted. Orphaned complete sets are left to `cleanup`: they are whole.
pub fn remove_leftovers(
    backend: &dyn crate::backend::Backend,
    coll: &crate::archive::collection::Collection,
    names: &[String],
    common: &Common,
    keep: &[String],
) -> Result<bool> {
    let kept =
        |v: Vec<String>| -> Vec<String> { v.into_iter().filter(|n| !keep.contains(n)).collect() };
    let mut doomed: Vec<(String, Vec<String>)> = coll
        .incomplete
        .iter()
        .map(|s| {
            let what = match keep.is_empty() {
                true => "an interrupted run",
                false => "beyond what an interrupted run can continue from",
            };
            (
                format!(
                    "incomplete {} set at {} ({what})",
                    s.type_name(),
                    rfc3339(s.end)
                ),
                kept(s.files_for_delete()),
            )
        })
        .filter(|(_, objects)| !objects.is_empty())
        .collect();
    let unused = coll.unused_signatures(names, &common.prefixes);
    if !unused.is_empty() {
        doomed.push(("signature files of interrupted runs".into(), unused));
    }
    // Progress objects of sets that were completed, or that are not continued.
    let stale = kept(
        super::progress::progress_in(&common.prefixes.file, names)
            .into_iter()
            .map(|p| p.name)
            .collect(),
    );
    if !stale.is_empty() {
        doomed.push(("progress objects no run continues from".into(), stale));
    }
    for (what, objects) in &doomed {
        log::info(
            "delete",
            &format!("deleting {what}: {} object(s)", objects.len()),
            vec![
                ("what", json!(what)),
                ("objects", json!(objects.len())),
                ("dry_run", json!(false)),
            ],
        );
        for o in objects {
            backend.delete(o)?;
        }
    }
    Ok(!doomed.is_empty())
}
