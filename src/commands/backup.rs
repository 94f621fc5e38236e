//! `full`, `incremental` and `backup`: one run that walks the source, compares it with the
//! signature chain, and writes a set: volumes, then the signature file, then the manifest.
//!
//! This verb plans: it checks the source and the selection, removes what killed runs left,
//! decides full or incremental (and why), proves the keys open the chain it extends, and
//! picks the set's times; `engine::write` does the rest (walk, changes, members, volumes,
//! commit). See `restore` for the reverse.

use crate::archive::collection::{Chain, Collection};
use crate::archive::manifest::{canonical_localdir, Manifest};
use crate::backend::{self, Backend, Listed};
use crate::config::{BackupOpts, Common};
use crate::engine::metadata::Metadata;
pub use crate::engine::write::members::Summary;
use crate::engine::write::select::Selection;
use crate::engine::write::walk::{Source, Walk};
use crate::engine::write::{progress, write_set, SetPlan};
use crate::error::{Error, Result};
use crate::local::cache::{local_name, Cache};
use crate::local::platform::{self, Kind};
use crate::log;
use serde_json::json;
use std::time::Instant;

/// The plan for this run.
struct Plan<'c> {
    chain: Option<&'c Chain>,
    /// Which rule decided, a stable word for the `plan` event: requested, no_chain,
    /// no_signatures, full_if_older_than, max_chain_length, incremental.
    rule: &'static str,
    reason: String,
}

/// What `decide` looks at besides the collection: the options and facts of this run.
struct Want {
    /// `Some(true)` full, `Some(false)` incremental, `None` decide.
    force_full: Option<bool>,
    full_if_older_than: Option<i64>,
    max_chain_length: Option<usize>,
    full_if_no_signatures: bool,
    now: i64,
    /// The run holds the key the signature files are encrypted to (or they are not).
    can_read_own: bool,
}

impl Want {
    fn of(common: &Common, opts: &BackupOpts) -> Want {
        Want {
            force_full: opts.force_full,
            full_if_older_than: opts.full_if_older_than,
            max_chain_length: opts.max_chain_length,
            full_if_no_signatures: opts.full_if_no_signatures,
            now: common.now,
            can_read_own: common.crypto.can_read_own,
        }
    }
}

/// Full or incremental, and which rule said so. Pure: `cached` tells whether a remote
/// signature file is in the local cache (what a public-key run without the secret key can
/// read).
fn decide<'c>(
    coll: &'c Collection,
    want: &Want,
    cached: &dyn Fn(&str) -> bool,
) -> Result<Plan<'c>> {
    let full = |rule: &'static str, reason: &str| {
        Ok(Plan {
            chain: None,
            rule,
            reason: reason.to_string(),
        })
    };
    if want.force_full == Some(true) {
        return full("requested", "full backup requested");
    }
    let explicit_inc = want.force_full == Some(false);
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
    if let Some(age) = want.full_if_older_than {
        if !explicit_inc && chain.start() < want.now - age {
            return full(
                "full_if_older_than",
                &format!(
                    "chain started {} which is older than --full-if-older-than",
                    crate::archive::time::rfc3339(chain.start())
                ),
            );
        }
    }
    if let Some(max) = want.max_chain_length {
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
    if !want.can_read_own {
        let all_cached = sig.names().iter().all(|n| cached(n));
        if !all_cached {
            if want.full_if_no_signatures && !explicit_inc {
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

/// What the backup reads: standard input, or the source directory's walk (the source
/// must be a directory, and bad selection options stop the run before the target is
/// touched, as in stock).
fn source(common: &Common, opts: &BackupOpts) -> Result<Source> {
    if let Some(stdin) = &opts.stdin {
        return Ok(Source::stdin(stdin.name.as_bytes(), common.now));
    }
    if !matches!(platform::lstat(&opts.source), Ok(s) if s.kind == Kind::Dir) {
        return Err(Error::SourceMissing(opts.source.display().to_string()));
    }
    let selection = Selection::new(&opts.source, &opts.selection, common.now)?;
    let walk = Walk::new(opts.source.clone(), selection)
        .map_err(|_| Error::SourceMissing(opts.source.display().to_string()))?;
    Ok(Source::Tree(Box::new(walk)))
}

/// Run one backup.
pub fn run(
    common: &Common,
    opts: &BackupOpts,
    lock: &crate::backend::lock::Held,
) -> Result<Summary> {
    let started = Instant::now();
    let source = source(common, opts)?;
    crate::seal::pgp::prepare(&common.crypto.seal);
    let backend = backend::open(&common.url, backend::Access::Write, &common.backend)?;
    // The lock listed the target an instant ago, with nobody else writing since.
    let mut listed = match lock.take_listing() {
        Some(listed) => listed,
        None => backend.list_detailed(&common.prefixes.file)?,
    };
    let mut names: Vec<String> = listed.iter().map(|l| l.name.clone()).collect();
    let mut coll = Collection::from_names(&names, &common.prefixes);
    let localdir = canonical_localdir(&platform::os_bytes(&opts.source));
    // A full cut short (a Job's deadline) is continued rather than started over.
    let resume = match opts.stdin {
        Some(_) => None,
        None => progress::probe(
            backend.as_ref(),
            common,
            &coll,
            &listed,
            (&opts.hostname, &localdir),
            opts.allow_source_mismatch,
        )?,
    };
    let keep = resume.as_ref().map_or(Vec::new(), |c| c.keep());
    if crate::engine::write::commit::remove_leftovers(
        backend.as_ref(),
        &coll,
        &names,
        common,
        &keep,
    )? {
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

    let want = Want::of(common, opts);
    let cached = |n: &str| {
        let kind = common.prefixes.parse(n).map(|p| p.kind);
        kind.is_some_and(|k| md.cache.path(&local_name(n, &k)).exists())
    };
    let plan = match &resume {
        // As stock does: whatever this run would have been, the interrupted full first.
        Some(c) => Plan {
            chain: None,
            rule: "resume",
            reason: format!(
                "continuing the full of {} that was interrupted after {} volume(s)",
                crate::archive::time::rfc3339(c.time),
                c.volumes()
            ),
        },
        None => decide(&coll, &want, &cached)?,
    };
    let (full, start, chain_length) = match plan.chain {
        Some(chain) => {
            check_last_manifest(chain, &md, common, opts, &localdir, &listed)?;
            (false, chain.end(), chain.incs.len() + 2)
        }
        None => (true, resume.as_ref().map_or(common.now, |c| c.time), 1),
    };
    // A continued full keeps its time.
    let mut end = resume.as_ref().map_or(common.now, |c| c.time);
    let taken = |t: i64| {
        coll.chains
            .iter()
            .flat_map(|c| c.sets())
            .chain(coll.incomplete.iter())
            .any(|s| s.end == t)
    };
    if resume.is_none() && ((!full && end == start) || (full && taken(end))) {
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

    let set = SetPlan {
        full,
        start,
        end,
        chain_length,
        chain: plan.chain,
        localdir,
        resume: resume.as_ref(),
    };
    // On a terminal, the progress line shows percent and time left: the tree's size is
    // counted on a thread of its own meanwhile.
    let total = match crate::log::live() && opts.concurrency > 1 && opts.stdin.is_none() {
        true => Selection::new(&opts.source, &opts.selection, common.now)
            .ok()
            .and_then(|sel| Walk::new(opts.source.clone(), sel).ok())
            .map(crate::engine::write::walk::PreScan::start),
        false => None,
    };
    let pace = crate::engine::write::Pace { started, total };
    match write_set(&md, &coll, common, opts, source, set, pace) {
        Err(Error::ShortInput(m)) => {
            // A refused dump leaves no set: a restore before the next run would otherwise
            // warn of an incomplete newest set.
            if let Err(e) = remove_set(backend.as_ref(), common, end) {
                log::warn(
                    "warning",
                    &format!("the volumes already stored of the refused input stay until the next backup removes them: {e}"),
                    vec![("code", json!(e.code()))],
                );
            }
            Err(Error::ShortInput(m))
        }
        Ok(mut summary) => {
            if summary.full && opts.stdin.is_none() {
                let volumes = summary.volumes + summary.volumes_resumed;
                // The set is complete: objects left behind only wait for the next run.
                match progress::remove(backend.as_ref(), common, end, volumes) {
                    Err(e @ Error::Interrupted(_)) => return Err(e),
                    Err(e) => log::warn(
                        "warning",
                        &format!("the set's progress objects stay until the next backup removes them: {e}"),
                        vec![("code", json!("progress_left")), ("reason", json!(e.code()))],
                    ),
                    Ok(()) => {}
                }
            }
            let known: Vec<(String, String)> = summary.manifest.clone().into_iter().collect();
            summary.warnings +=
                crate::engine::record::store_after(backend.as_ref(), common, &[], &known)?;
            Ok(summary)
        }
        Err(e) => Err(e),
    }
}

/// Delete what this run stored of its set (time `end`), which has no manifest yet.
fn remove_set(backend: &dyn Backend, common: &Common, end: i64) -> Result<()> {
    let names = backend.list(&common.prefixes.file)?;
    let coll = Collection::from_names(&names, &common.prefixes);
    for set in coll.incomplete.iter().filter(|s| s.end == end) {
        let objects = set.files_for_delete();
        log::info(
            "delete",
            &format!("deleting the refused set's {} object(s)", objects.len()),
            vec![
                (
                    "what",
                    json!(format!(
                        "incomplete {} set at {} (refused input)",
                        set.type_name(),
                        crate::archive::time::rfc3339(end)
                    )),
                ),
                ("objects", json!(objects.len())),
                ("dry_run", json!(false)),
            ],
        );
        for o in &objects {
            backend.delete(o)?;
        }
    }
    Ok(())
}

#[allow(dead_code)]
fn _assert_backend_object_safe(_: &dyn Backend) {}

/// `backup --dry-run`: what a backup would store now, with the same plan (full or
/// incremental, and the rule that decided) and the same comparison, counted and printed on
/// `out` (text, or one JSON document with `json`). Nothing is written to the target and no
/// lock is taken, so the read key is enough.
pub fn dry_run(
    common: &Common,
    opts: &BackupOpts,
    json: bool,
    out: &mut dyn std::io::Write,
) -> Result<Vec<(&'static str, serde_json::Value)>> {
    let source = source(common, opts)?;
    // A file:// directory that is not there yet is an empty target (a backup would make
    // it); a missing container is the error a backup would meet too.
    let listed = backend::open(&common.url, backend::Access::Read, &common.backend)
        .and_then(|b| Ok((b.list(&common.prefixes.file)?, b)));
    let (names, backend) = match listed {
        Ok((names, b)) => (names, Some(b)),
        Err(Error::TargetMissing(_)) if common.url.starts_with("file://") => (Vec::new(), None),
        Err(e) => return Err(e),
    };
    let coll = Collection::from_names(&names, &common.prefixes);
    let md = match &backend {
        Some(b) => Some(Metadata {
            backend: b.as_ref(),
            cache: Cache::open(common)?,
            common,
        }),
        None => None,
    };
    let want = Want::of(common, opts);
    let cached = |n: &str| {
        let kind = common.prefixes.parse(n).map(|p| p.kind);
        kind.is_some_and(|k| {
            md.as_ref()
                .is_some_and(|md| md.cache.path(&local_name(n, &k)).exists())
        })
    };
    let plan = decide(&coll, &want, &cached)?;
    let kind = if plan.chain.is_some() {
        "incremental"
    } else {
        "full"
    };
    let d = crate::engine::write::dry_run_set(md.as_ref(), &coll, opts, source, plan.chain)?;
    let s = &d.summary;
    let fields = vec![
        ("dry_run", json!(true)),
        ("type", json!(kind)),
        ("rule", json!(plan.rule)),
        ("reason", json!(plan.reason)),
        ("files_new", json!(s.files_new)),
        ("files_changed", json!(s.files_changed)),
        ("files_unchanged", json!(s.files_unchanged)),
        ("files_deleted", json!(s.files_deleted)),
        ("dirs_new", json!(s.dirs_new)),
        ("dirs_changed", json!(s.dirs_changed)),
        ("bytes_new", json!(d.bytes_new)),
        ("bytes_changed", json!(d.bytes_changed)),
        ("total_bytes_processed", json!(s.total_bytes_processed)),
        ("warnings", json!(s.warnings)),
    ];
    let text = if json {
        serde_json::Value::Object(
            fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        )
        .to_string()
    } else {
        let size = crate::log::human_bytes;
        format!(
            "would make a{} {kind} backup: {}\n\
             new:       {} entries, {}\n\
             changed:   {} entries, {}\n\
             deleted:   {} entries\n\
             unchanged: {} entries",
            if kind == "full" { "" } else { "n" },
            plan.reason,
            s.files_new,
            size(d.bytes_new),
            s.files_changed,
            size(d.bytes_changed),
            s.files_deleted,
            s.files_unchanged
        ) + if opts.stdin.is_some() {
            "\n(standard input is not read by a dry run: its size is not counted)"
        } else {
            ""
        }
    };
    writeln!(out, "{text}").map_err(Error::stdout)?;
    out.flush().map_err(Error::stdout)?;
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::names::{FileKind, Prefixes, Suffix};

    const DAY: i64 = 86_400;
    const T0: i64 = 1_700_000_000;

    /// A target holding a full at T0 and `incs` daily incrementals after it, each set with
    /// its manifest, one volume and its signature file (unless `sigs` is false).
    fn chain(incs: i64, sigs: bool) -> Collection {
        let p = Prefixes::default();
        let mut names = vec![
            p.name(&FileKind::FullVolume { time: T0, vol: 1 }, Suffix::Gpg),
            p.name(&FileKind::FullManifest { time: T0 }, Suffix::Gpg),
        ];
        if sigs {
            names.push(p.name(&FileKind::FullSignatures { time: T0 }, Suffix::Gpg));
        }
        for k in 0..incs {
            let (start, end) = (T0 + k * DAY, T0 + (k + 1) * DAY);
            names.push(p.name(&FileKind::IncVolume { start, end, vol: 1 }, Suffix::Gpg));
            names.push(p.name(&FileKind::IncManifest { start, end }, Suffix::Gpg));
            if sigs {
                names.push(p.name(&FileKind::NewSignatures { start, end }, Suffix::Gpg));
            }
        }
        Collection::from_names(&names, &p)
    }

    fn want() -> Want {
        Want {
            force_full: None,
            full_if_older_than: None,
            max_chain_length: None,
            full_if_no_signatures: false,
            now: T0 + 10 * DAY,
            can_read_own: true,
        }
    }

    fn rule(coll: &Collection, w: &Want, cached: bool) -> std::result::Result<&'static str, Error> {
        decide(coll, w, &|_| cached).map(|p| {
            // An incremental names the chain it extends; a full none.
            assert_eq!(p.chain.is_some(), p.rule == "incremental", "{}", p.rule);
            p.rule
        })
    }

    #[test]
    fn each_rule_decides_in_its_turn() {
        let c = chain(3, true);
        let empty = Collection::from_names(&[], &Prefixes::default());
        assert_eq!(rule(&c, &want(), true).unwrap(), "incremental");
        assert_eq!(rule(&empty, &want(), true).unwrap(), "no_chain");
        assert_eq!(rule(&chain(3, false), &want(), true).unwrap(), "no_chain");
        let w = Want {
            force_full: Some(true),
            ..want()
        };
        assert_eq!(rule(&c, &w, true).unwrap(), "requested");
        // The chain started 10 days ago.
        let w = Want {
            full_if_older_than: Some(9 * DAY),
            ..want()
        };
        assert_eq!(rule(&c, &w, true).unwrap(), "full_if_older_than");
        let w = Want {
            full_if_older_than: Some(11 * DAY),
            ..want()
        };
        assert_eq!(rule(&c, &w, true).unwrap(), "incremental");
        // Three incrementals: a fourth is allowed under 4, not under 3.
        let w = Want {
            max_chain_length: Some(3),
            ..want()
        };
        assert_eq!(rule(&c, &w, true).unwrap(), "max_chain_length");
        let w = Want {
            max_chain_length: Some(4),
            ..want()
        };
        assert_eq!(rule(&c, &w, true).unwrap(), "incremental");
    }

    #[test]
    fn an_explicit_incremental_never_turns_into_a_full() {
        let inc = Want {
            force_full: Some(false),
            full_if_older_than: Some(DAY),
            max_chain_length: Some(1),
            full_if_no_signatures: true,
            ..want()
        };
        // The age and length rules are for `backup`; `incremental` extends the chain.
        assert_eq!(rule(&chain(3, true), &inc, true).unwrap(), "incremental");
        // With nothing to extend it is an error, not a silent full.
        let empty = Collection::from_names(&[], &Prefixes::default());
        assert!(matches!(rule(&empty, &inc, true), Err(Error::NoChain(_))));
        let unreadable = Want {
            can_read_own: false,
            ..inc
        };
        assert!(matches!(
            rule(&chain(3, true), &unreadable, false),
            Err(Error::NoChain(_))
        ));
    }

    #[test]
    fn unreadable_signatures_need_the_cache_or_permission_for_a_full() {
        let c = chain(2, true);
        let w = Want {
            can_read_own: false,
            ..want()
        };
        // All in the cache: an incremental, as with the secret key.
        assert_eq!(rule(&c, &w, true).unwrap(), "incremental");
        // Not cached: refused, unless a full is allowed.
        let e = rule(&c, &w, false).unwrap_err();
        assert!(e.to_string().contains("--decrypt-key-file"), "{e}");
        let w = Want {
            full_if_no_signatures: true,
            ..w
        };
        assert_eq!(rule(&c, &w, false).unwrap(), "no_signatures");
    }
}
