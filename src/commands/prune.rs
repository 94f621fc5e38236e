//! Deleting sets: `remove-older-than`, `remove-all-but-n-full`,
//! `remove-all-inc-of-but-n-full` (duplicity's retention verbs, §7.5), `forget` (calendar
//! retention, restic's `--keep-*` rules applied to whole chains), `cleanup` (what
//! interrupted runs left), and `--keep-full` / `--keep-*` at the end of a backup.
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
    /// Whole chains no `--keep-*` rule keeps.
    Keep(Keep),
}

/// A calendar rule: its name, how many periods it keeps, and a chain's period.
type Rule<'f> = (&'static str, Option<usize>, &'f dyn Fn(i64) -> i64);

/// Calendar retention: which chains to keep, each dated by its newest set (in duplicity's
/// format only whole chains can go: an incremental needs every set before it). The rules
/// add up; the newest chain is always kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    /// The newest N chains.
    pub last: Option<usize>,
    /// The newest chain of each of the newest N hours (days, ...) that have one.
    pub hourly: Option<usize>,
    pub daily: Option<usize>,
    pub weekly: Option<usize>,
    pub monthly: Option<usize>,
    pub yearly: Option<usize>,
    /// Every chain that ends within this many seconds of the newest chain's end.
    pub within: Option<i64>,
}

impl Keep {
    pub fn is_empty(&self) -> bool {
        *self == Keep::default()
    }

    /// Why each chain is kept (empty: it goes), for chains ending at `ends`, oldest first.
    pub fn reasons(&self, ends: &[i64]) -> Vec<Vec<&'static str>> {
        use crate::archive::time::civil_from_days;
        let day = |t: i64| t.div_euclid(86400);
        // Buckets: an hour, a day, a week (its Monday; 1970-01-01 was a Thursday), a month,
        // a year, all in UTC.
        let rules: [Rule; 5] = [
            ("hourly", self.hourly, &|t| t.div_euclid(3600)),
            ("daily", self.daily, &|t| day(t)),
            ("weekly", self.weekly, &|t| {
                day(t) - (day(t) + 3).rem_euclid(7)
            }),
            ("monthly", self.monthly, &|t| {
                let (y, m, _) = civil_from_days(day(t));
                y * 12 + i64::from(m)
            }),
            ("yearly", self.yearly, &|t| civil_from_days(day(t)).0),
        ];
        let mut out = vec![Vec::new(); ends.len()];
        let mut left: Vec<usize> = rules.iter().map(|r| r.1.unwrap_or(0)).collect();
        let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
        let newest_end = ends.last().copied().unwrap_or(0);
        for (n, i) in (0..ends.len()).rev().enumerate() {
            let t = ends[i];
            let why = &mut out[i];
            if n == 0 {
                why.push("newest");
            }
            if self.last.is_some_and(|l| n < l) {
                why.push("last");
            }
            // Newest first: the first chain met in a bucket is that bucket's newest.
            for (r, (name, _, bucket)) in rules.iter().enumerate() {
                let b = bucket(t);
                if left[r] > 0 && last_bucket[r] != Some(b) {
                    last_bucket[r] = Some(b);
                    left[r] -= 1;
                    why.push(name);
                }
            }
            if self.within.is_some_and(|w| t >= newest_end - w) {
                why.push("within");
            }
        }
        out
    }
}

/// What was (or would be) deleted.
#[derive(Default)]
pub struct Summary {
    pub dry_run: bool,
    pub sets: usize,
    pub objects: usize,
    pub bytes: u64,
    /// Warnings of the chain record stored after deleting (sets vanished otherwise).
    pub warnings: u64,
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
            ("warnings", json!(self.warnings)),
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
        Policy::Cleanup | Policy::Keep(_) => None,
    };
    if let Policy::Keep(keep) = policy {
        let ends: Vec<i64> = c.chains.iter().map(|ch| ch.end()).collect();
        // Oldest chains last, as for the other rules.
        for (ch, why) in c.chains.iter().zip(keep.reasons(&ends)).rev() {
            if why.is_empty() {
                for inc in ch.incs.iter().rev() {
                    let mut d = set_group(inc, "forgotten");
                    d.objects.extend(sig_files(l, common, &[inc]));
                    out.push(d);
                }
                let mut d = set_group(&ch.full, "forgotten");
                d.objects.extend(sig_files(l, common, &[&ch.full]));
                out.push(d);
            }
        }
    }
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
        // What a backup would continue an interrupted full from goes with the full (and
        // those of sets completed since, which a backup deletes too).
        let progress: Vec<String> =
            crate::engine::write::progress::progress_in(&common.prefixes.file, &l.names)
                .into_iter()
                .map(|p| p.name)
                .collect();
        if !progress.is_empty() {
            out.push(Doomed {
                what: "progress objects of interrupted fulls".into(),
                time: 0,
                objects: progress,
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

/// `forget`'s plan: each chain, newest first, with the rules that keep it (a `keep`
/// event and a line on `out` each; the chains that go are listed by `run` as they go).
fn show_kept(l: &Listing, keep: Keep, json: bool, out: &mut dyn Write) -> Result<()> {
    let chains = &l.coll.chains;
    let ends: Vec<i64> = chains.iter().map(|ch| ch.end()).collect();
    for (ch, why) in chains.iter().zip(keep.reasons(&ends)).rev() {
        let (start, end) = (rfc3339(ch.start()), rfc3339(ch.end()));
        if !why.is_empty() {
            log::info(
                "keep",
                &format!("keeping the chain {start} .. {end}: {}", why.join(", ")),
                vec![
                    ("chain_start", json!(start)),
                    ("chain_end", json!(end)),
                    ("reasons", json!(why)),
                ],
            );
        }
        let line = if json {
            json!({"chain_start": start, "chain_end": end, "keep": !why.is_empty(), "reasons": why})
                .to_string()
        } else if why.is_empty() {
            format!("remove chain {start} .. {end}")
        } else {
            format!("keep   chain {start} .. {end} ({})", why.join(", "))
        };
        writeln!(out, "{line}").map_err(crate::error::Error::stdout)?;
    }
    Ok(())
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
    if let Policy::Keep(keep) = policy {
        show_kept(&l, keep, json, out)?;
    }
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
        // The chain record says these sets went on purpose.
        let removed: Vec<String> = doomed
            .iter()
            .flat_map(|d| d.objects.iter())
            .filter(|o| {
                common.prefixes.parse(o).is_some_and(|p| {
                    matches!(
                        p.kind,
                        FileKind::FullManifest { .. } | FileKind::IncManifest { .. }
                    )
                })
            })
            .cloned()
            .collect();
        summary.warnings =
            crate::engine::record::store_after(l.backend.as_ref(), common, &removed, &[])?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86400;
    /// 2026-11-02, a Monday, at noon.
    const MON: i64 = 1_793_577_600 + 12 * 3600;

    fn kept(keep: Keep, ends: &[i64]) -> Vec<usize> {
        let why = keep.reasons(ends);
        (0..ends.len()).filter(|&i| !why[i].is_empty()).collect()
    }

    #[test]
    fn calendar_rules_keep_the_newest_chain_of_each_period() {
        // Two chains a day for 21 days (the second at 18:00).
        let ends: Vec<i64> = (0..21)
            .flat_map(|d| [MON + d * DAY, MON + d * DAY + 6 * 3600])
            .collect();
        let n = ends.len();
        assert_eq!(crate::archive::time::rfc3339(MON), "2026-11-02T12:00:00Z");
        // Nothing asked: the newest chain alone.
        assert_eq!(kept(Keep::default(), &ends), [n - 1]);
        // The last 3.
        let last = Keep {
            last: Some(3),
            ..Keep::default()
        };
        assert_eq!(kept(last, &ends), [n - 3, n - 2, n - 1]);
        // 3 days: each day's later chain.
        let daily = Keep {
            daily: Some(3),
            ..Keep::default()
        };
        assert_eq!(kept(daily, &ends), [n - 5, n - 3, n - 1]);
        // 3 weeks: the newest of each (its Sunday's later chain).
        let weekly = Keep {
            weekly: Some(3),
            ..Keep::default()
        };
        assert_eq!(kept(weekly, &ends), [13, 27, 41]);
        // Within 2 days of the newest.
        let within = Keep {
            within: Some(2 * DAY),
            ..Keep::default()
        };
        assert_eq!(kept(within, &ends), [n - 5, n - 4, n - 3, n - 2, n - 1]);
        // Rules add up, and say why.
        let both = Keep {
            daily: Some(2),
            weekly: Some(2),
            ..Keep::default()
        };
        let why = both.reasons(&ends);
        assert_eq!(why[n - 1], ["newest", "daily", "weekly"]);
        assert_eq!(why[n - 3], ["daily"]);
        assert_eq!(why[27], ["weekly"]);
        assert!(why[26].is_empty());
        // Months and years bucket by the calendar.
        let dec = MON + 30 * DAY; // 2026-12-02
        let jan = MON + 61 * DAY; // 2027-01-02
        let monthly = Keep {
            monthly: Some(5),
            ..Keep::default()
        };
        assert_eq!(kept(monthly, &[MON, MON + DAY, dec, jan]), [1, 2, 3]);
        let yearly = Keep {
            yearly: Some(5),
            ..Keep::default()
        };
        assert_eq!(kept(yearly, &[MON, dec, jan]), [1, 2]);
    }
}
