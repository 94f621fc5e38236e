//! `collection-status`: the chains, sets, incomplete and orphaned sets, unused signature
//! files and locks in a target, from its listing alone (nothing is downloaded, so it works
//! with a read key and without the passphrase).
//!
//! One result, two renderings: duplicity's text layout (§7.4) and a JSON document whose
//! schema docs/operations.md documents ("collection-status --json").

use super::Listing;
use crate::archive::collection::BackupSet;
use crate::archive::collection::{Chain, Collection};
use crate::archive::time::{asctime, rfc3339};
use crate::backend::lock;
use crate::backend::Access;
use crate::config::Common;
use crate::error::Result;
use crate::log;
use serde_json::{json, Value};
use std::fmt::Write as _;

/// What `collection-status` found.
pub struct Status {
    /// The JSON document (`--json`).
    pub doc: Value,
    /// duplicity's text layout.
    pub text: String,
    pub chains: usize,
    pub sets: usize,
    pub volumes: usize,
    pub bytes: u64,
}

impl Status {
    pub fn to_fields(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("chains", json!(self.chains)),
            ("sets", json!(self.sets)),
            ("volumes", json!(self.volumes)),
            ("bytes", json!(self.bytes)),
        ]
    }
}

fn set_json(l: &Listing, s: &BackupSet) -> Value {
    let files: Vec<&String> = s.manifest.iter().chain(s.volumes.values()).collect();
    json!({
        "type": s.type_name(),
        "time": rfc3339(s.end),
        "start": rfc3339(s.start),
        "end": rfc3339(s.end),
        "volumes": s.volumes.len(),
        "bytes": l.size_of(files),
        "manifest": s.manifest,
        "encrypted": s.suffix == crate::archive::names::Suffix::Gpg,
    })
}

pub fn run(common: &Common) -> Result<Status> {
    let l = Listing::open(common, Access::Read)?;
    let c = &l.coll;
    let mut chains = Vec::new();
    let (mut n_sets, mut n_vols, mut bytes) = (0, 0, 0u64);
    let mut text = String::new();
    let _ = writeln!(text, "Collection Status\n-----------------");
    let _ = writeln!(text, "Target: {}", log::redact(&common.url));
    let _ = writeln!(
        text,
        "\nFound {} secondary backup chain(s).",
        c.chains.len().saturating_sub(1)
    );
    for (i, ch) in c.chains.iter().enumerate() {
        let primary = i + 1 == c.chains.len();
        let sigs = c.sig_chain_for(ch).is_some();
        let sets: Vec<Value> = ch.sets().map(|s| set_json(&l, s)).collect();
        let vols: usize = ch.sets().map(|s| s.volumes.len()).sum();
        let b: u64 = sets.iter().filter_map(|s| s["bytes"].as_u64()).sum();
        n_sets += sets.len();
        n_vols += vols;
        bytes += b;
        chains.push(json!({
            "primary": primary,
            "start": rfc3339(ch.start()),
            "end": rfc3339(ch.end()),
            "signatures": if sigs { "complete" } else { "missing" },
            "volumes": vols,
            "bytes": b,
            "sets": sets,
        }));
        write_chain(&mut text, ch, primary, sigs, vols);
    }
    if c.chains.is_empty() {
        let _ = writeln!(text, "No backup chains with active signatures found");
    }
    let unused = c.unused_signatures(&l.names, &common.prefixes);
    let continuable = |s: &BackupSet| {
        crate::engine::write::progress::continuable(&common.prefixes.file, &l.names, s)
    };
    let incomplete: Vec<Value> = c
        .incomplete
        .iter()
        .map(|s| {
            let mut v = set_json(&l, s);
            v["continuable_volumes"] = json!(continuable(s));
            v
        })
        .collect();
    let orphaned: Vec<Value> = c.orphaned.iter().map(|s| set_json(&l, s)).collect();
    write_leftovers(&mut text, c, &unused, &continuable);
    let locks = lock_entries(&mut text, common, &l.names);
    let locked = locks.len();
    let records = crate::engine::record::records_in(&common.prefixes.file, &l.names);
    let mut vanished: Vec<String> = Vec::new();
    if let Some(r) = records.last() {
        let _ = writeln!(
            text,
            "Chain records: {}, the newest of {} ({}): `check` compares the target with it",
            records.len(),
            asctime(r.time),
            r.name
        );
        vanished = vanished_since(&l, common, r, &mut text);
    }
    let progress = crate::engine::write::progress::progress_in(&common.prefixes.file, &l.names);
    let foreign = c
        .foreign
        .saturating_sub(locked + records.len() + progress.len());
    let doc = json!({
        "schema": "swiftdup.collection-status/1",
        "target": log::redact(&common.url),
        "chains": chains,
        "incomplete_sets": incomplete,
        "orphaned_sets": orphaned,
        "unused_signatures": unused,
        "locks": locks,
        "chain_records": {
            "count": records.len(),
            "newest": records.last().map(|r| json!({"object": r.name, "time": rfc3339(r.time)})),
            "vanished_sets": vanished,
        },
        "foreign_objects": foreign,
    });
    Ok(Status {
        doc,
        text,
        chains: c.chains.len(),
        sets: n_sets,
        volumes: n_vols,
        bytes,
    })
}

/// A chain in stock's `collection-status` words.
fn write_chain(text: &mut String, ch: &Chain, primary: bool, sigs: bool, vols: usize) {
    let _ = writeln!(
        text,
        "\n{}:\n-------------------------",
        if primary {
            format!(
                "Found primary backup chain with {} signature chain",
                if sigs { "matching" } else { "no matching" }
            )
        } else {
            "Secondary chain".to_string()
        }
    );
    let _ = writeln!(text, "Chain start time: {}", asctime(ch.start()));
    let _ = writeln!(text, "Chain end time: {}", asctime(ch.end()));
    let _ = writeln!(
        text,
        "Number of contained backup sets: {}",
        ch.incs.len() + 1
    );
    let _ = writeln!(text, "Total number of contained volumes: {vols}");
    let _ = writeln!(
        text,
        " Type of backup set:                            Time:      Num volumes:"
    );
    for s in ch.sets() {
        let _ = writeln!(
            text,
            "{:>20} {:>24} {:>17}",
            if s.full { "Full" } else { "Incremental" },
            asctime(s.end),
            s.volumes.len()
        );
    }
    let _ = writeln!(text, "-------------------------");
}

/// What `cleanup` would remove: incomplete and orphaned sets, unused signature files.
fn write_leftovers(
    text: &mut String,
    c: &Collection,
    unused: &[String],
    continuable: &dyn Fn(&BackupSet) -> u32,
) {
    if c.incomplete.is_empty() && c.orphaned.is_empty() && unused.is_empty() {
        let _ = writeln!(text, "No orphaned or incomplete backup sets found.");
    } else {
        for (what, sets) in [("incomplete", &c.incomplete), ("orphaned", &c.orphaned)] {
            for s in sets {
                let next = match continuable(s) {
                    0 => String::new(),
                    n => format!(" the next backup continues it after volume {n};"),
                };
                let _ = writeln!(
                    text,
                    "Found {what} {} set at {} ({} volume(s)):{next} `cleanup` removes it",
                    s.type_name(),
                    asctime(s.end),
                    s.volumes.len()
                );
            }
        }
        for n in unused {
            let _ = writeln!(
                text,
                "Found unused signature file {n}: `cleanup` removes it"
            );
        }
    }
}

/// The target's locks, live or expired, in the text and as JSON.
/// The manifests the newest chain record lists (or keeps as evidence) that the listing
/// lacks: sets deleted, not by a swiftdup run. Only where the record can be opened (a
/// passphrase or secret key is given); replaced manifests are `check`'s to find, which
/// downloads them.
fn vanished_since(
    l: &Listing,
    common: &Common,
    newest: &crate::engine::record::RecordName,
    text: &mut String,
) -> Vec<String> {
    let keys = &common.crypto.open;
    if newest.suffix == crate::archive::names::Suffix::Gpg
        && keys.passphrase.is_none()
        && keys.secret_keys.is_empty()
    {
        return Vec::new();
    }
    let record = match crate::engine::record::open(l.backend.as_ref(), common, newest) {
        Ok((r, _)) => r,
        Err(e) => {
            let _ = writeln!(text, "The newest chain record cannot be opened: {e}");
            return Vec::new();
        }
    };
    let listed: std::collections::HashSet<&str> = l.names.iter().map(String::as_str).collect();
    let gone: Vec<String> = record
        .manifests
        .keys()
        .filter(|n| !listed.contains(n.as_str()))
        .chain(record.vanished.keys())
        .cloned()
        .collect();
    for n in &gone {
        let _ = writeln!(
            text,
            "Set vanished (not deleted by swiftdup): {n}: `check` reports it"
        );
    }
    gone
}

fn lock_entries(text: &mut String, common: &Common, names: &[String]) -> Vec<Value> {
    let now = crate::archive::time::unix_now();
    let held = lock::locks_in(&common.prefixes.file, names);
    held.into_iter()
        .map(|k| {
            let live = k.expires >= now;
            let _ = writeln!(
                text,
                "Lock {} taken at {}, {} {}",
                k.name,
                asctime(k.created),
                if live { "expires" } else { "expired" },
                asctime(k.expires)
            );
            json!({
                "object": k.name,
                "created": rfc3339(k.created),
                "expires": rfc3339(k.expires),
                "live": live,
            })
        })
        .collect()
}
