//! User and group names, read from `/etc/passwd` and `/etc/group` directly.
//!
//! Stock stores `uname`/`gname` next to the numeric ids and, when reading, lets the name win
//! over the number (§2.4). Parsing the two files by hand gives the same answer as musl's
//! `getpwnam` and works in a `FROM scratch` image (no files: every lookup misses, numbers
//! are used) and under WASI.

use std::collections::HashMap;
use std::sync::OnceLock;

#[derive(Default)]
struct Db {
    uid_to_name: HashMap<u64, Vec<u8>>,
    name_to_uid: HashMap<Vec<u8>, u64>,
    gid_to_name: HashMap<u64, Vec<u8>>,
    name_to_gid: HashMap<Vec<u8>, u64>,
}

fn load(path: &str, by_id: &mut HashMap<u64, Vec<u8>>, by_name: &mut HashMap<Vec<u8>, u64>) {
    let Ok(text) = std::fs::read(path) else {
        return;
    };
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if fields.len() < 3 || fields[0].is_empty() || fields[0].starts_with(b"#") {
            continue;
        }
        let Some(id) = std::str::from_utf8(fields[2])
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            continue;
        };
        // The first entry wins, as in getpwuid/getpwnam.
        by_id.entry(id).or_insert_with(|| fields[0].to_vec());
        by_name.entry(fields[0].to_vec()).or_insert(id);
    }
}

fn db() -> &'static Db {
    static DB: OnceLock<Db> = OnceLock::new();
    DB.get_or_init(|| {
        let mut d = Db::default();
        load("/etc/passwd", &mut d.uid_to_name, &mut d.name_to_uid);
        load("/etc/group", &mut d.gid_to_name, &mut d.name_to_gid);
        d
    })
}

/// The user name of a uid, empty when it has none (stock writes `""` then).
pub fn user_name(uid: u64) -> Vec<u8> {
    db().uid_to_name.get(&uid).cloned().unwrap_or_default()
}

pub fn group_name(gid: u64) -> Vec<u8> {
    db().gid_to_name.get(&gid).cloned().unwrap_or_default()
}

/// The uid to use for a stored (uid, uname): the name wins when it exists locally.
pub fn resolve_uid(uid: u64, uname: &[u8], numeric: bool) -> u64 {
    if numeric || uname.is_empty() {
        return uid;
    }
    db().name_to_uid.get(uname).copied().unwrap_or(uid)
}

pub fn resolve_gid(gid: u64, gname: &[u8], numeric: bool) -> u64 {
    if numeric || gname.is_empty() {
        return gid;
    }
    db().name_to_gid.get(gname).copied().unwrap_or(gid)
}
