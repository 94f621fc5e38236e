//! `check`: the integrity of what the target holds, with the read key and no source. Every
//! complete set's manifest is checked against the listing (volumes 1..N, each present, as a
//! restore checks them); then each volume, or the subset asked for, is downloaded, its SHA1
//! compared with the manifest's, and opened to the last byte (the OpenPGP MDC, and the
//! signature when a `--sign-key-file` is given). Problems are listed as they are found and
//! the run goes on; the exit code is that of the gravest kind found.

use super::Listing;
use crate::archive::collection::BackupSet;
use crate::archive::time::rfc3339;
use crate::backend::Access;
use crate::config::Common;
use crate::engine::read::stream::{check_volume, checked_volumes};
use crate::engine::record;
use crate::error::{Error, Result};
use crate::log;
use serde_json::json;
use std::io::Write;

/// Which volumes to read (`--read-data-subset`, restic's syntax).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Subset {
    All,
    /// Part n of t: the volumes, in order, whose position modulo t is n - 1. Over t runs
    /// with n = 1..t every volume is read once.
    Part(u64, u64),
    /// About this share of the volumes, chosen at random each run.
    Percent(f64),
}

impl Subset {
    pub fn parse(s: &str) -> std::result::Result<Subset, String> {
        let bad =
            || format!("--read-data-subset {s:?}: expected n/t (1 <= n <= t) or x% (0 < x <= 100)");
        if let Some(p) = s.strip_suffix('%') {
            let x: f64 = p.trim().parse().map_err(|_| bad())?;
            return if x > 0.0 && x <= 100.0 {
                Ok(Subset::Percent(x))
            } else {
                Err(bad())
            };
        }
        let (n, t) = s.split_once('/').ok_or_else(bad)?;
        let (n, t): (u64, u64) = (
            n.trim().parse().map_err(|_| bad())?,
            t.trim().parse().map_err(|_| bad())?,
        );
        if n == 0 || t == 0 || n > t {
            return Err(bad());
        }
        Ok(Subset::Part(n, t))
    }

    fn takes(&self, position: u64) -> bool {
        match *self {
            Subset::All => true,
            Subset::Part(n, t) => position % t == n - 1,
            Subset::Percent(x) => rand::random::<f64>() * 100.0 < x,
        }
    }
}

/// What a check did.
#[derive(Debug, Default)]
pub struct Summary {
    pub sets: u64,
    pub volumes: u64,
    pub volumes_read: u64,
    pub bytes_downloaded: u64,
    pub problems: u64,
    /// The time of the newest chain record, when there is one.
    pub record_time: Option<i64>,
}

impl Summary {
    pub fn to_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("sets", json!(self.sets)),
            ("volumes", json!(self.volumes)),
            ("volumes_read", json!(self.volumes_read)),
            ("bytes_downloaded", json!(self.bytes_downloaded)),
            ("problems", json!(self.problems)),
            ("record_time", json!(self.record_time.map(rfc3339))),
            // The same as a number, for the metric Prometheus remembers: a newest record
            // older than one seen before is a rollback (see k8s/monitoring).
            ("record_timestamp_seconds", json!(self.record_time)),
        ]
    }
}

/// What the target holds is wrong (a check goes on and reports it), as opposed to what
/// stops any run (storage down, a rejected key, a local disk error, a signal).
fn is_problem(e: &Error) -> bool {
    matches!(
        e,
        Error::Integrity { .. }
            | Error::NotFound(_)
            | Error::Decryption { .. }
            | Error::Unsigned { .. }
            | Error::Tampered { .. }
    )
}

/// The gravest of the problems found: what a retry or another key cannot change comes
/// first (a wrong passphrase, a file not signed), then damage and missing objects.
fn gravity(e: &Error) -> u8 {
    match e {
        Error::Decryption { .. } => 4,
        Error::Tampered { .. } => 3,
        Error::Unsigned { .. } => 2,
        _ => 1,
    }
}

pub fn run(common: &Common, subset: Subset, json: bool, out: &mut dyn Write) -> Result<Summary> {
    let l = Listing::open(common, Access::Read)?;
    let md = l.metadata(common)?;
    let sets: Vec<&BackupSet> = l.coll.chains.iter().flat_map(|c| c.sets()).collect();
    let mut summary = Summary {
        sets: sets.len() as u64,
        ..Summary::default()
    };
    let mut worst: Option<Error> = None;
    // A problem of a set, or (`None`) of the target as its chain record knows it.
    let mut report = |set: Option<&BackupSet>, e: Error, out: &mut dyn Write| -> Result<()> {
        let object = e.object().unwrap_or("").to_string();
        let time = set.map(|s| rfc3339(s.end));
        let what = match set {
            Some(s) => format!("the {} set of {}", s.type_name(), rfc3339(s.end)),
            None => "the chain record".to_string(),
        };
        log::warn(
            "warning",
            &format!("check: {what}: {e}"),
            vec![
                ("code", json!(e.code())),
                ("object", json!(object)),
                ("set_time", json!(time)),
            ],
        );
        let line = match json {
            true => json!({"set_time": time, "object": object, "problem": e.code(), "detail": e.to_string()})
                .to_string(),
            false => format!("{}: {}: {e}", e.code(), time.as_deref().unwrap_or("-")),
        };
        writeln!(out, "{line}").map_err(Error::stdout)?;
        if worst.as_ref().is_none_or(|w| gravity(&e) > gravity(w)) {
            worst = Some(e);
        }
        Ok(())
    };
    // The target against its newest chain record: sets deleted or replaced, records
    // rolled back.
    match record::compare(l.backend.as_ref(), common, &l.names, &md.cache.dir) {
        Ok((rec, found)) => {
            summary.record_time = rec.as_ref().map(|r| r.time);
            if rec.is_none() {
                log::info(
                    "record",
                    "no chain record in the target yet (the next swiftdup backup stores one): sets deleted or replaced before then cannot be told",
                    vec![],
                );
            }
            for f in found {
                summary.problems += 1;
                report(None, f.into_error(), out)?;
            }
        }
        Err(e) if is_problem(&e) => {
            summary.problems += 1;
            report(None, e, out)?;
        }
        Err(e) => return Err(e),
    }
    // Manifests first: a set whose manifest cannot be trusted has no volumes to read.
    let mut volumes = Vec::new();
    for set in &sets {
        crate::interrupt::check()?;
        match checked_volumes(&md, set) {
            Ok(v) => volumes.extend(v.into_iter().map(|(_, name, sha1)| (*set, name, sha1))),
            Err(e) if is_problem(&e) => {
                summary.problems += 1;
                report(Some(set), e, out)?;
            }
            Err(e) => return Err(e),
        }
    }
    summary.volumes = volumes.len() as u64;
    let chosen: Vec<_> = volumes
        .into_iter()
        .enumerate()
        .filter(|(i, _)| subset.takes(*i as u64))
        .map(|(_, v)| v)
        .collect();
    log::info(
        "plan",
        &format!(
            "checking {} set(s): {} of {} volume(s) to read",
            summary.sets,
            chosen.len(),
            summary.volumes
        ),
        vec![
            ("type", json!("check")),
            ("sets", json!(summary.sets)),
            ("volumes", json!(summary.volumes)),
            ("volumes_to_read", json!(chosen.len())),
        ],
    );
    for (set, name, sha1) in chosen {
        crate::interrupt::check()?;
        match check_volume(&md, set, &name, &sha1) {
            Ok(n) => {
                summary.volumes_read += 1;
                summary.bytes_downloaded += n;
            }
            Err(e) if is_problem(&e) => {
                summary.problems += 1;
                report(Some(set), e, out)?;
            }
            Err(e) => return Err(e),
        }
    }
    out.flush().map_err(Error::stdout)?;
    // Every problem is on stdout and in a warning; the exit code is the gravest's.
    match worst {
        None => Ok(summary),
        Some(e) => Err(e),
    }
}
