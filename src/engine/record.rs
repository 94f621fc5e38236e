//! Chain records: evidence that a target was not tampered with. A full container key can
//! delete or replace any object; it cannot forge what the passphrase (or the key) seals.
//! So every writing run (a backup, a retention or cleanup run that deleted something)
//! stores a small sealed record, `<file-prefix>swiftdup-record.<time>.json[.gpg]`, sealed
//! as the manifests are: the SHA-256 of every complete set's stored manifest, the name and
//! SHA-256 of the previous record, and the sets that vanished since an earlier record (kept
//! as evidence until the chain is started anew). A `check` with the read key compares the
//! newest record with the target: a set deleted, a manifest replaced, a record replaced or
//! the newest records deleted together with their sets (a rollback, seen against the last
//! record this archive directory saw) are each reported.
//!
//! A public-key backup without the secret key cannot open the previous record: its record
//! hashes every manifest afresh and carries no earlier evidence.
//!
//! Stock duplicity ignores these objects (their names are not its own) and its `cleanup`
//! leaves them; swiftdup's writers keep the newest [`KEEP`] and delete older ones.

use crate::archive::collection::Collection;
use crate::archive::names::Suffix;
use crate::archive::time::{rfc3339, unix_now};
use crate::backend::Backend;
use crate::config::Common;
use crate::error::{Error, Result};
use crate::local::cache::sha256_hex;
use crate::log;
use crate::seal::pgp::SealMode;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::io::Read;
use std::path::Path;

const STEM: &str = "swiftdup-record.";
/// Records a writer keeps: the newest and a few before it, for a look back after an alarm.
pub const KEEP: usize = 8;
/// The newest record this archive directory saw, to tell a rollback.
const SEEN: &str = "swiftdup-record-seen.json";
const SCHEMA: &str = "swiftdup.record/1";

/// A record object, from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordName {
    pub name: String,
    pub time: i64,
    pub suffix: Suffix,
}

/// Parse `<prefix>swiftdup-record.<time>.json[.gpg]`.
pub fn parse(prefix: &str, name: &str) -> Option<RecordName> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(STEM)?;
    let (time, suffix) = match rest.strip_suffix(".json.gpg") {
        Some(t) => (t, Suffix::Gpg),
        None => (rest.strip_suffix(".json")?, Suffix::None),
    };
    if time.is_empty() || !time.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(RecordName {
        name: name.to_string(),
        time: time.parse().ok()?,
        suffix,
    })
}

/// The records among `names`, oldest first.
pub fn records_in(prefix: &str, names: &[String]) -> Vec<RecordName> {
    let mut v: Vec<RecordName> = names.iter().filter_map(|n| parse(prefix, n)).collect();
    v.sort_by(|a, b| (a.time, &a.name).cmp(&(b.time, &b.name)));
    v
}

/// What a record says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub time: i64,
    /// The record before this one: (name, SHA-256 of the stored object).
    pub previous: Option<(String, String)>,
    /// Every complete set's manifest: name -> SHA-256 of the stored object.
    pub manifests: BTreeMap<String, String>,
    /// Manifests an earlier record listed that vanished without a swiftdup run deleting
    /// them: name -> (SHA-256, when a writer first saw it gone, in Unix seconds).
    pub vanished: BTreeMap<String, (String, i64)>,
    /// Records that were gone while a newer one than the target's newest had been seen:
    /// name -> (its time, when a writer noticed).
    pub rolled_back: BTreeMap<String, (i64, i64)>,
}

impl Record {
    pub fn to_json(&self) -> Vec<u8> {
        let vanished: serde_json::Map<String, Value> = self
            .vanished
            .iter()
            .map(|(n, (h, t))| (n.clone(), json!({"sha256": h, "noticed": t})))
            .collect();
        let rolled_back: serde_json::Map<String, Value> = self
            .rolled_back
            .iter()
            .map(|(n, (t, seen))| (n.clone(), json!({"time": t, "noticed": seen})))
            .collect();
        json!({
            "schema": SCHEMA,
            "time": self.time,
            "previous": self.previous.as_ref().map(|(n, h)| json!({"name": n, "sha256": h})),
            "manifests": self.manifests,
            "vanished": vanished,
            "rolled_back": rolled_back,
        })
        .to_string()
        .into_bytes()
    }

    pub fn from_json(b: &[u8]) -> std::result::Result<Record, String> {
        let v: Value = serde_json::from_slice(b).map_err(|e| format!("not JSON: {e}"))?;
        if v["schema"] != SCHEMA {
            return Err(format!("not a {SCHEMA} document"));
        }
        let text = |v: &Value, what: &str| {
            v.as_str()
                .map(String::from)
                .ok_or_else(|| format!("{what} is not a string"))
        };
        let time = v["time"].as_i64().ok_or("no time")?;
        let previous = match &v["previous"] {
            Value::Null => None,
            p => Some((
                text(&p["name"], "previous.name")?,
                text(&p["sha256"], "previous.sha256")?,
            )),
        };
        let mut manifests = BTreeMap::new();
        for (n, h) in v["manifests"].as_object().ok_or("no manifests")? {
            manifests.insert(n.clone(), text(h, "a manifest's sha256")?);
        }
        let mut vanished = BTreeMap::new();
        for (n, e) in v["vanished"].as_object().ok_or("no vanished")? {
            let noticed = e["noticed"]
                .as_i64()
                .ok_or("a vanished set without its time")?;
            vanished.insert(
                n.clone(),
                (text(&e["sha256"], "a vanished sha256")?, noticed),
            );
        }
        let mut rolled_back = BTreeMap::new();
        for (n, e) in v["rolled_back"].as_object().ok_or("no rolled_back")? {
            let (t, noticed) = (e["time"].as_i64(), e["noticed"].as_i64());
            let (Some(t), Some(noticed)) = (t, noticed) else {
                return Err("a rolled-back record without its times".into());
            };
            rolled_back.insert(n.clone(), (t, noticed));
        }
        Ok(Record {
            time,
            previous,
            manifests,
            vanished,
            rolled_back,
        })
    }
}

/// A stored object, downloaded whole (records and manifests are small), with the SHA-256
/// of its bytes.
fn fetch(backend: &dyn Backend, common: &Common, name: &str) -> Result<(Vec<u8>, String)> {
    let f = crate::engine::metadata::download_temp(backend, name, &common.tempdir)?;
    let mut bytes = Vec::new();
    std::io::BufReader::new(f)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(name, e))?;
    let sha = sha256_hex(&mut &bytes[..]).map_err(|e| Error::io(name, e))?;
    Ok((bytes, sha))
}

/// The SHA-256 (hex) of a stored object.
fn sha256_of(backend: &dyn Backend, common: &Common, name: &str) -> Result<String> {
    fetch(backend, common, name).map(|(_, sha)| sha)
}

/// A record's sealed bytes opened (decrypted, its signature checked when a sign key is
/// given) and parsed.
fn open_bytes(common: &Common, r: &RecordName, sealed: &[u8]) -> Result<Record> {
    let mut plain = Vec::new();
    crate::seal::open_sealed(sealed, r.suffix, &common.crypto.open, &r.name)?
        .read_to_end(&mut plain)
        .map_err(|e| crate::seal::map_read_error(&r.name, e))?;
    Record::from_json(&plain)
        .map_err(|e| Error::integrity(&r.name, format!("not a chain record: {e}")))
}

/// A record downloaded and opened, with the SHA-256 of the stored object.
pub fn open(backend: &dyn Backend, common: &Common, r: &RecordName) -> Result<(Record, String)> {
    let (sealed, sha) = fetch(backend, common, &r.name)?;
    Ok((open_bytes(common, r, &sealed)?, sha))
}

/// The complete sets' manifests in a listing.
fn manifests_in(names: &[String], common: &Common) -> Vec<String> {
    let coll = Collection::from_names(names, &common.prefixes);
    coll.chains
        .iter()
        .flat_map(|c| c.sets())
        .chain(coll.orphaned.iter())
        .filter_map(|s| s.manifest.clone())
        .collect()
}

/// The newest record this archive directory saw: (name, SHA-256, time).
fn seen(cache_dir: &Path) -> Option<(String, String, i64)> {
    let b = std::fs::read(cache_dir.join(SEEN)).ok()?;
    let v: Value = serde_json::from_slice(&b).ok()?;
    Some((
        v["name"].as_str()?.to_string(),
        v["sha256"].as_str()?.to_string(),
        v["time"].as_i64()?,
    ))
}

fn remember(cache_dir: &Path, name: &str, sha: &str, time: i64) {
    let doc = json!({"name": name, "sha256": sha, "time": time}).to_string();
    // Only evidence for a later run: a cache that cannot be written costs the rollback
    // check of the next run, not this one.
    let tmp = cache_dir.join(format!("{SEEN}.tmp"));
    if std::fs::write(&tmp, doc).is_ok() {
        let _ = std::fs::rename(&tmp, cache_dir.join(SEEN));
    }
}

/// Something the newest record and the target disagree on.
#[derive(Debug)]
pub struct Finding {
    pub object: String,
    /// `set_vanished`, `set_replaced`, `record_replaced`, `records_rolled_back`.
    pub problem: &'static str,
    pub detail: String,
}

impl Finding {
    pub fn into_error(self) -> Error {
        Error::Tampered {
            object: self.object,
            problem: self.problem,
            detail: self.detail,
        }
    }
}

/// A rollback: the newest record this cache saw is gone and the target's newest is older,
/// or it is there with other contents.
fn rolled_back(
    cache_dir: &Path,
    newest: Option<(&RecordName, &str)>,
    names: &[String],
) -> Option<Finding> {
    let (name, sha, time) = seen(cache_dir)?;
    match newest {
        Some((r, s)) if r.name == name && s != sha => Some(Finding {
            object: name,
            problem: "record_replaced",
            detail: "the newest chain record is not the one this archive directory saw under that name".into(),
        }),
        Some((r, _)) if r.time >= time => None,
        _ if names.contains(&name) => None,
        _ => Some(Finding {
            object: name,
            problem: "records_rolled_back",
            detail: format!(
                "this archive directory saw a chain record of {}, which is gone, and the target's newest is {}: \
                 the newest sets were deleted together with their records",
                rfc3339(time),
                newest.map_or("none".to_string(), |(r, _)| rfc3339(r.time))
            ),
        }),
    }
}

/// `check`: the target against its newest record (`None` when it has none yet).
pub fn compare(
    backend: &dyn Backend,
    common: &Common,
    names: &[String],
    cache_dir: &Path,
) -> Result<(Option<Record>, Vec<Finding>)> {
    let records = records_in(&common.prefixes.file, names);
    let Some(newest) = records.last() else {
        let found = rolled_back(cache_dir, None, names).into_iter().collect();
        return Ok((None, found));
    };
    let (record, sha) = open(backend, common, newest)?;
    let listed: HashSet<&str> = names.iter().map(String::as_str).collect();
    let mut found: Vec<Finding> = rolled_back(cache_dir, Some((newest, &sha)), names)
        .into_iter()
        .collect();
    if let Some((prev, prev_sha)) = &record.previous {
        if listed.contains(prev.as_str()) && &sha256_of(backend, common, prev)? != prev_sha {
            found.push(Finding {
                object: prev.clone(),
                problem: "record_replaced",
                detail: format!(
                    "differs from what the record of {} says of it",
                    rfc3339(record.time)
                ),
            });
        }
    }
    for (name, want) in &record.manifests {
        crate::interrupt::check()?;
        if !listed.contains(name.as_str()) {
            found.push(Finding {
                object: name.clone(),
                problem: "set_vanished",
                detail: format!(
                    "deleted since the chain record of {}, not by a swiftdup run",
                    rfc3339(record.time)
                ),
            });
        } else if &sha256_of(backend, common, name)? != want {
            found.push(Finding {
                object: name.clone(),
                problem: "set_replaced",
                detail: format!(
                    "the manifest differs from the one the chain record of {} lists",
                    rfc3339(record.time)
                ),
            });
        }
    }
    for (name, (_, noticed)) in &record.vanished {
        found.push(Finding {
            object: name.clone(),
            problem: "set_vanished",
            detail: format!(
                "deleted, not by a swiftdup run; first seen gone {}",
                rfc3339(*noticed)
            ),
        });
    }
    for (name, (t, noticed)) in &record.rolled_back {
        found.push(Finding {
            object: name.clone(),
            problem: "records_rolled_back",
            detail: format!(
                "the chain record of {} was deleted with the sets after it (noticed {})",
                rfc3339(*t),
                rfc3339(*noticed)
            ),
        });
    }
    if found.is_empty() {
        remember(cache_dir, &newest.name, &sha, newest.time);
    }
    Ok((Some(record), found))
}

/// Store a new record of the target as it is now. `removed` are the manifests this run
/// deleted (retention), which are not "vanished"; `known` the SHA-256 of manifests this
/// run stored. Sets that vanished otherwise since the previous record are carried into the
/// new one and reported as a warning. Returns the warnings it gave: sets vanished, records
/// rolled back, a previous record that cannot be read.
fn store(
    backend: &dyn Backend,
    common: &Common,
    removed: &[String],
    known: &[(String, String)],
) -> Result<u64> {
    let cache_dir = &crate::local::cache::Cache::open(common)?.dir;
    let mut alarms = 0;
    let names = backend.list(&common.prefixes.file)?;
    let records = records_in(&common.prefixes.file, &names);
    let newest = records.last();
    let mut previous = None;
    let mut prev_record = Record::default();
    if let Some(r) = newest {
        // One download: hashed, and opened where this run holds the key (a public-key
        // backup without the secret key hashes every manifest instead).
        let (sealed, sha) = fetch(backend, common, &r.name)?;
        if common.crypto.can_read_own {
            match open_bytes(common, r, &sealed) {
                Ok(rec) => prev_record = rec,
                Err(
                    e @ (Error::Decryption { .. }
                    | Error::Integrity { .. }
                    | Error::Unsigned { .. }),
                ) => {
                    alarms += 1;
                    log::warn(
                        "warning",
                        &format!("the chain record {} cannot be read ({e}); a new one is made from the target as it is", r.name),
                        vec![("code", json!("record_unreadable")), ("object", json!(r.name))],
                    );
                }
                Err(e) => return Err(e),
            }
        }
        previous = Some((r.name.clone(), sha));
    }
    let now = unix_now().max(newest.map_or(0, |r| r.time + 1));
    if common.acknowledge_changes {
        log::info(
            "record",
            &format!(
                "--acknowledge-changes: the new chain record forgets {} vanished set(s) and {} rolled-back record(s) the previous one kept",
                prev_record.vanished.len(),
                prev_record.rolled_back.len()
            ),
            vec![],
        );
        prev_record.vanished.clear();
        prev_record.rolled_back.clear();
    }
    let mut record = Record {
        time: now,
        previous,
        manifests: BTreeMap::new(),
        vanished: prev_record.vanished,
        rolled_back: prev_record.rolled_back,
    };
    let newest_sha = record.previous.as_ref().map_or("", |p| p.1.as_str());
    if let Some(f) = rolled_back(cache_dir, newest.map(|r| (r, newest_sha)), &names) {
        alarms += u64::from(!common.acknowledge_changes);
        log::warn(
            "warning",
            &format!("{}: {}", f.object, f.detail),
            vec![("code", json!(f.problem)), ("object", json!(f.object))],
        );
        if f.problem == "records_rolled_back" && !common.acknowledge_changes {
            let t = seen(cache_dir).map_or(0, |s| s.2);
            record.rolled_back.insert(f.object, (t, now));
        }
    }
    let listed = manifests_in(&names, common);
    let listed_set: HashSet<&str> = listed.iter().map(String::as_str).collect();
    for (name, sha) in &prev_record.manifests {
        if !listed_set.contains(name.as_str())
            && !removed.contains(name)
            && !common.acknowledge_changes
        {
            alarms += 1;
            log::warn(
                "warning",
                &format!(
                    "{name} was deleted since the chain record of {}, not by a swiftdup run",
                    rfc3339(prev_record.time)
                ),
                vec![("code", json!("set_vanished")), ("object", json!(name))],
            );
            record.vanished.insert(name.clone(), (sha.clone(), now));
        }
    }
    for name in listed {
        crate::interrupt::check()?;
        // What the previous record says stands: a manifest replaced since stays evidence.
        let sha = match prev_record.manifests.get(&name) {
            Some(s) => s.clone(),
            None => match known.iter().find(|(n, _)| *n == name) {
                Some((_, s)) => s.clone(),
                None => sha256_of(backend, common, &name)?,
            },
        };
        record.vanished.remove(&name);
        record.manifests.insert(name, sha);
    }
    let encrypted = !matches!(common.crypto.seal, SealMode::Plain | SealMode::Gzip { .. });
    let (suffix, mode) = match encrypted {
        true => (".json.gpg", &common.crypto.seal),
        false => (".json", &SealMode::Plain),
    };
    let name = format!("{}{STEM}{now}{suffix}", common.prefixes.file);
    let body = record.to_json();
    let (sealed, _, _) =
        crate::engine::write::volumes::seal_file(&mut &body[..], mode, common, "chain record")?;
    backend.put(&name, &sealed.0)?;
    let sha = std::fs::File::open(&sealed.0)
        .and_then(|mut f| sha256_hex(&mut f))
        .map_err(|e| Error::io(sealed.0.display(), e))?;
    remember(cache_dir, &name, &sha, now);
    log::info(
        "record",
        &format!(
            "stored the chain record {name} ({} set(s))",
            record.manifests.len()
        ),
        vec![
            ("object", json!(name)),
            ("sets", json!(record.manifests.len())),
            ("vanished", json!(record.vanished.len())),
        ],
    );
    // Older records beyond the newest few go; the newest is never deleted.
    let old = records.len().saturating_sub(KEEP - 1);
    for r in &records[..old] {
        backend.delete(&r.name)?;
    }
    Ok(alarms)
}

/// After a writing run, under its lock: store a new chain record (see `store`). What it
/// found wrong, or its own failure, is a warning each and does not undo the run; returns
/// how many. Only a signal stops it.
pub fn store_after(
    backend: &dyn Backend,
    common: &Common,
    removed: &[String],
    known: &[(String, String)],
) -> Result<u64> {
    match store(backend, common, removed, known) {
        Ok(alarms) => Ok(alarms),
        Err(e @ Error::Interrupted(_)) => Err(e),
        Err(e) => {
            log::warn(
                "warning",
                &format!("no chain record was stored: {e}"),
                vec![
                    ("code", json!("record_failed")),
                    ("reason", json!(e.code())),
                ],
            );
            Ok(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_and_without_encryption() {
        let r = parse("p-", "p-swiftdup-record.1700000000.json.gpg").unwrap();
        assert_eq!((r.time, r.suffix), (1_700_000_000, Suffix::Gpg));
        let r = parse("", "swiftdup-record.5.json").unwrap();
        assert_eq!((r.time, r.suffix), (5, Suffix::None));
        for bad in [
            "swiftdup-record..json",
            "swiftdup-record.12a.json",
            "swiftdup-record.1.json.gz",
            "p-swiftdup-record.1.json",
            "duplicity-full.20231114T221320Z.manifest",
        ] {
            assert!(parse("", bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn a_record_reads_back_as_written() {
        let mut r = Record {
            time: 1_700_000_000,
            previous: Some(("swiftdup-record.1.json.gpg".into(), "ab".repeat(32))),
            ..Record::default()
        };
        r.manifests.insert(
            "duplicity-full.20231114T221320Z.manifest.gpg".into(),
            "cd".repeat(32),
        );
        r.vanished.insert(
            "duplicity-inc.x.manifest.gpg".into(),
            ("ef".repeat(32), 1_700_000_100),
        );
        r.rolled_back
            .insert("swiftdup-record.9.json.gpg".into(), (9, 1_700_000_200));
        assert_eq!(Record::from_json(&r.to_json()).unwrap(), r);
        assert!(Record::from_json(b"{\"schema\":\"other\"}").is_err());
        assert!(Record::from_json(b"[1]").is_err());
    }
}
