//! The backup side of the engine, in pipe order: `walk` (the source tree in duplicity's
//! index order, filtered by `select`) -> `changes` (each entry against the chain's merged
//! signatures: new, changed, unchanged or deleted) -> `members` (snapshot, delta or
//! multivol tar members) -> `volumes` (cut, seal, upload, manifest records) -> `commit`
//! (signature file, then the manifest). `commands::backup` decides full or incremental
//! and calls `write_set`.

pub mod changes;
pub mod commit;
pub mod members;
pub mod progress;
pub mod select;
pub mod volumes;
pub mod walk;

use crate::archive::collection::{Chain, Collection};
use crate::archive::sigtar::{SigEntries, SigWriter};
use crate::config::{BackupOpts, Common};
use crate::engine::metadata::Metadata;
use crate::error::{Error, Result};
use commit::SigSink;
use members::{SetWriter, Summary};
use std::io::BufWriter;
use std::time::Instant;
use volumes::{ManifestWriter, VolumeSpec, VolumeWriter};
use walk::Source;

/// What `commands::backup` decided about the set to write.
pub struct SetPlan<'c> {
    pub full: bool,
    /// The time the set starts from (the chain's end for an incremental).
    pub start: i64,
    /// The set's own time.
    pub end: i64,
    /// Sets in the chain once this one is stored.
    pub chain_length: usize,
    /// The chain an incremental extends; `None` for a full.
    pub chain: Option<&'c Chain>,
    /// The source directory as the manifest records it.
    pub localdir: Vec<u8>,
    /// The interrupted full this set continues (its time is `end`).
    pub resume: Option<&'c progress::Candidate>,
}

/// The merged signatures of the chain a set extends (none for a full). One thread in all
/// with --concurrency 1, as the user asked.
fn chain_signatures(
    md: &Metadata,
    coll: &Collection,
    chain: Option<&Chain>,
    threads: bool,
) -> Result<SigEntries> {
    let Some(chain) = chain else {
        return Ok(SigEntries::empty());
    };
    let sc = coll
        .sig_chain_for(chain)
        .ok_or_else(|| Error::Internal("signature chain vanished".into()))?;
    let mut streams = Vec::new();
    for n in sc.names() {
        streams.push((n.clone(), md.sigtar(&n)?));
    }
    SigEntries::new(streams, threads)
}

/// `backup --dry-run`: compare the source with the chain `chain` (none: a full) as a
/// backup would, and count what it would store. Nothing is written to the target.
pub fn dry_run_set(
    md: Option<&Metadata>,
    coll: &Collection,
    opts: &BackupOpts,
    source: Source,
    chain: Option<&Chain>,
) -> Result<changes::DryRun> {
    let sig_reader = match (md, chain) {
        (Some(md), chain) => chain_signatures(md, coll, chain, opts.concurrency > 1)?,
        (None, None) => SigEntries::empty(),
        (None, Some(_)) => return Err(Error::Internal("a chain without a target".into())),
    };
    let mut run = changes::DryRun::default();
    changes::compare(source, sig_reader, &mut run, opts.concurrency > 1, false)?;
    Ok(run)
}

/// What the run's progress is measured against: when it started, and the source's size
/// where a pre-scan counts it (on a terminal).
pub struct Pace {
    pub started: Instant,
    pub total: Option<std::sync::Arc<walk::PreScan>>,
}

/// Write one set: compare the source with the chain, write members into volumes, then
/// store the signature file and the manifest.
pub fn write_set(
    md: &Metadata,
    coll: &Collection,
    common: &Common,
    opts: &BackupOpts,
    source: Source,
    set: SetPlan,
    pace: Pace,
) -> Result<Summary> {
    let Pace { started, total } = pace;
    let sig_reader = chain_signatures(md, coll, set.chain, opts.concurrency > 1)?;

    let mut sig_sink =
        BufWriter::with_capacity(1 << 16, SigSink::new(common, opts.compress_level)?);
    let mut manifest = ManifestWriter::new(common, opts.hostname.as_bytes(), &set.localdir)?;
    let mut spec = VolumeSpec::new(
        common,
        set.full,
        set.start,
        set.end,
        opts.volsize,
        opts.concurrency,
    );
    // Progress objects let a full from a directory be continued if it is cut short.
    let journal = (set.full && matches!(source, Source::Tree(_)))
        .then(|| std::rc::Rc::new(std::cell::RefCell::new(progress::Journal::default())));
    if journal.is_some() {
        spec.progress = Some(progress::ProgressSpec {
            hostname: opts.hostname.clone(),
            localdir: set.localdir.clone(),
        });
    }
    let resumed = match set.resume {
        Some(c) => progress::recover(md.backend, common, c, &mut sig_sink, &mut manifest)?,
        None => None,
    };
    let sig_written = resumed.as_ref().map_or(0, |r| r.sigtar_len);
    spec.first_volume = resumed.as_ref().map_or(0, |r| r.volumes);
    let mut run = SetWriter {
        volumes: VolumeWriter::new(md.backend, spec, journal.clone()),
        sigs: SigWriter::continued(progress::Tap::new(sig_sink, journal.clone()), sig_written),
        manifest,
        summary: Summary {
            full: set.full,
            set_time: set.end,
            chain_length: set.chain_length,
            volumes_resumed: resumed.as_ref().map_or(0, |r| r.volumes),
            ..Summary::default()
        },
        buf: Vec::new(),
        started,
        progress: crate::log::Progress::new("backup", common.progress_interval),
        total,
        racy_from: crate::archive::time::unix_now(),
        stdin_min_bytes: opts.stdin.as_ref().map_or(0, |s| s.min_bytes),
        journal,
        resume: resumed,
        skip_under: None,
    };

    // A resumed full passes over the files stored before it was interrupted unread.
    let reads_all = set.full && run.resume.is_none();
    let compared = changes::compare(
        source,
        sig_reader,
        &mut run,
        opts.concurrency > 1,
        reads_all,
    )
    .and_then(|()| run.pass_resume_point());
    if let Err(e) = compared {
        // A signal must end the run in seconds: uploads under way are not waited for.
        if !matches!(e, Error::Interrupted(_)) {
            run.volumes.abandon();
        }
        return Err(e);
    }
    commit::finish(run, md, common, opts, &set)
}
