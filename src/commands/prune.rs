//! Deleting sets: `remove-older-than`, `remove-all-but-n-full`,
//! `remove-all-inc-of-but-n-full` (duplicity's retention verbs, §7.5), `cleanup` (what
//! interrupted runs left), and `--keep-full` at the end of a backup.
//!
//! Every verb only lists what it would delete unless forced. Nothing a kept set depends on is
//! ever deleted: retention removes whole chains (or only the incrementals of whole chains),
//! never the newest chain, and never a chain that reaches past the cutoff. Within a set the
//! manifest goes first, so an interrupted delete leaves an incomplete set (which restores
//! and backups ignore and `cleanup` finishes) rather than a complete-looking broken one.

use super::Listing;
use crate::archive::collection::{BackupSet, Chain};
use crate::archive::names::FileKind;
use crate::archive::time::rfc3339;
use crate::backend::lock;
use crate::backend::Access;
use crate::config::Common;
use crate::error::Result;
use crate::log;
use serde_json::json;
use std::io::Write;

/// Which sets to delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Whole chains that end before this time, the newest chain excepted.
    OlderThan(i64),
    /// Keep the newest N chains.
    AllButNFull(usize),
    /// Keep the newest N chains whole, and only the full sets of older chains.
    AllIncOfButNFull(usize),
    /// Incomplete and orphaned sets, unused signature files, expired locks.
    Cleanup,
}

/// What was (or would be) deleted.
#[derive(Default)]
pub struct Summary {
    pub dry_run: bool,
    pub sets: usize,
    pub objects: usize,
    pub bytes: u64,
}

impl Summary {
    pub fn to_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("dry_run", json!(self.dry_run)),
            (
                "sets_deleted",
                json!(if self.dry_run { 0 } else { self.sets }),
            ),
            (
                "objects_deleted",
                json!(if self.dry_run { 0 } else { self.objects }),
            ),
            (
                "bytes_freed",
                json!(if self.dry_run { 0 } else { self.bytes }),
            ),
            ("sets_to_delete", json!(self.sets)),
        ]
    }
}

/// One group of objects that goes together, in deletion order.
struct Doomed {
    what: String,
    time: i64,
    objects: Vec<String>,
}

fn set_group(s: &BackupSet, why: &str) -> Doomed {
    Doomed {
        what: format!("{} {} set", why, s.type_name()),
        time: s.end,
        objects: s.files_for_delete(),
    }
}

/// The signature files of `sets` (a full set's full signatures, an incremental's new ones).
fn sig_files(l: &Listing, common: &Common, sets: &[&BackupSet]) -> Vec<String> {
    l.names
        .iter()
        .filter(|n| {
            common.prefixes.parse(n).is_some_and(|p| {
                !p.partial
                    && sets.iter().any(|s| match p.kind {
                        FileKind::FullSignatures { time } => s.full && s.end == time,
                        FileKind::NewSignatures { start, end } => {
                            !s.full && s.start == start && s.end == end
                        }
                        _ => false,
                    })
            })
        })
        .cloned()
        .collect()
}

/// The cutoff of the N-newest-fulls verbs: the start of the N-th newest chain.
fn nth_full_time(chains: &[Chain], n: usize) -> Option<i64> {
    if n == 0 || chains.len() <= n {
        return None;
    }
    Some(chains[chains.len() - n].start())
}

fn plan(l: &Listing, common: &Common, policy: Policy) -> Vec<Doomed> {
    let c = &l.coll;
    let mut out = Vec::new();
    let cutoff = match policy {
        Policy::OlderThan(t) => Some(t),
        Policy::AllButNFull(n) | Policy::AllIncOfButNFull(n) => nth_full_time(&c.chains, n),
        Policy::Cleanup => None,
    };
    if let Some(t) = cutoff {
        let newest = c.chains.len().saturating_sub(1);
        // Oldest chains last (stock's order): a delete that stops halfway leaves the oldest
        // history, which is the least surprising thing to still find.
        let kept = |what: &str, ch: &Chain, why: &str| {
            let (start, end) = (rfc3339(ch.start()), rfc3339(ch.end()));
            log::warn(
                "warning",
                &format!("keeping {what} {start} .. {end}{why}"),
                vec![("code", json!("chain_kept"))],
            );
        };
        for (i, ch) in c.chains.iter().enumerate().rev() {
            if ch.end() >= t {
                if ch.start() < t {
                    let why = ": its newer sets depend on the sets older than the cutoff";
                    kept("the chain", ch, why);
                }
                continue;
            }
            if i == newest {
                let why = " although it is older than the cutoff: it is the one backups extend";
                kept("the newest chain", ch, why);
                continue;
            }
            let only_incs = matches!(policy, Policy::AllIncOfButNFull(_));
            for inc in ch.incs.iter().rev() {
                let mut d = set_group(inc, "old");
                d.objects.extend(sig_files(l, common, &[inc]));
                out.push(d);
            }
            if !only_incs {
                let mut d = set_group(&ch.full, "old");
                d.objects.extend(sig_files(l, common, &[&ch.full]));
                out.push(d);
            }
        }
    }
    if policy == Policy::Cleanup {
        for s in &c.incomplete {
            out.push(set_group(s, "incomplete"));
        }
        for s in &c.orphaned {
            out.push(set_group(s, "orphaned"));
        }
        let unused = c.unused_signatures(&l.names, &common.prefixes);
        if !unused.is_empty() {
            out.push(Doomed {
                what: "unused signature files".into(),
                time: 0,
                objects: unused,
            });
        }
        let now = crate::archive::time::unix_now();
        let expired: Vec<String> = lock::locks_in(&common.prefixes.file, &l.names)
            .into_iter()
            .filter(|k| k.expires < now)
            .map(|k| k.name)
            .collect();
        if !expired.is_empty() {
            out.push(Doomed {
                what: "expired locks".into(),
                time: 0,
                objects: expired,
            });
        }
    }
    out
}

/// Apply `policy`; delete only with `force`. Each object to delete is printed to `out`
/// (`name` per line, or JSON lines with `json`).
pub fn run(
    common: &Common,
    policy: Policy,
    force: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<Summary> {
    let l = Listing::open(common, Access::Write)?;
    let doomed = plan(&l, common, policy);
    let mut summary = Summary {
        dry_run: !force,
        ..Summary::default()
    };
    let write_err = crate::error::Error::stdout;
    for d in &doomed {
        crate::interrupt::check()?;
        let bytes = l.size_of(&d.objects);
        let time = (d.time != 0).then(|| rfc3339(d.time));
        log::info(
            "delete",
            &format!(
                "{} {}{} ({} object(s), {bytes} bytes)",
                if force { "deleting" } else { "would delete" },
                d.what,
                time.as_ref()
                    .map(|t| format!(" at {t}"))
                    .unwrap_or_default(),
                d.objects.len()
            ),
            vec![
                ("what", json!(d.what)),
                ("set_time", json!(time)),
                ("objects", json!(d.objects.len())),
                ("bytes", json!(bytes)),
                ("dry_run", json!(!force)),
            ],
        );
        for o in &d.objects {
            if json {
                writeln!(
                    out,
                    "{}",
                    json!({"object": o, "bytes": l.sizes.get(o), "deleted": force, "what": d.what})
                )
            } else {
                writeln!(
                    out,
                    "{}{o}",
                    if force { "deleted " } else { "would delete " }
                )
            }
            .map_err(write_err)?;
            if force {
                l.backend.delete(o)?;
            }
        }
        if d.time != 0 {
            summary.sets += 1;
        }
        summary.objects += d.objects.len();
        summary.bytes += bytes;
    }
    if force && !doomed.is_empty() {
        // The cache follows the target: drop the local copies of what is gone.
        let remaining = l.backend.list(&common.prefixes.file)?;
        l.metadata(common)?.prune_spurious(&remaining)?;
    }
    if !force && !doomed.is_empty() {
        log::info(
            "dry_run",
            "nothing was deleted: run again with --force to delete",
            vec![],
        );
    }
    out.flush().map_err(write_err)?;
    Ok(summary)
}
