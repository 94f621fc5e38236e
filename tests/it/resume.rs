//! A backup killed at any point (SIGKILL: a pod killed, a node lost) leaves nothing that a
//! later run of swiftdup or of stock duplicity misreads. The next run continues an
//! interrupted full from its last volume with a progress object (and stores nothing of it
//! again), removes any other half-written set and starts it over, succeeds, and restores at
//! every time are identical with both tools.
//!
//! The kill points come from the debug build's crash hook (`SWIFTDUP_FAULT`, src/local/fault.rs):
//! during an upload (the object half written), right after an upload (between a volume and
//! its progress object, between volumes, between the last volume and the signatures,
//! between the signatures and the manifest, after the manifest), and between source entries.

use crate::support::history::{failed, rfc};
use crate::support::*;
use std::fs;
use std::os::unix::process::ExitStatusExt;

const PASS: &str = "resume test passphrase";
const ENV: &[(&str, &str)] = &[("PASSPHRASE", PASS)];

/// The source before the full (state 0) and before the incremental (state 1).
fn states(base: &Scratch) {
    let src = base.join("src");
    fs::create_dir_all(src.join("d/e")).unwrap();
    // 4 volumes at --volsize 1 for the full; about 3 for the incremental.
    fs::write(src.join("big.bin"), random_bytes(1, 2_600_000)).unwrap();
    fs::write(src.join("d/mid.bin"), random_bytes(2, 1_100_000)).unwrap();
    for i in 0..30 {
        fs::write(src.join(format!("d/e/small{i:02}")), format!("small {i}\n")).unwrap();
    }
    touch_all(&src, T0 - 100);
    fs::create_dir_all(base.join("states")).unwrap();
    snapshot(&src, &base.join("states/0"));
    // The incremental: an edit inside the big file, a new file, a deleted one, appends.
    let mut big = fs::read(src.join("big.bin")).unwrap();
    big[1_000_000..1_040_000].copy_from_slice(&random_bytes(3, 40_000));
    fs::write(src.join("big.bin"), big).unwrap();
    fs::write(src.join("d/new.bin"), random_bytes(4, 1_800_000)).unwrap();
    fs::remove_file(src.join("d/e/small07")).unwrap();
    for i in 10..20 {
        let p = src.join(format!("d/e/small{i:02}"));
        let mut v = fs::read(&p).unwrap();
        v.extend_from_slice(b"appended\n");
        fs::write(p, v).unwrap();
    }
    touch_all(&src, T1 - 100);
    snapshot(&src, &base.join("states/1"));
}

fn backup(s: &Scratch, t: i64, fault: Option<&str>) -> std::process::Output {
    backup_with(s, t, fault, &[], ENV)
}

fn backup_with(
    s: &Scratch,
    t: i64,
    fault: Option<&str>,
    extra: &[&str],
    base_env: &[(&str, &str)],
) -> std::process::Output {
    let (src, url, cache) = (
        s.join("src").display().to_string(),
        s.url("target"),
        s.join("cache").display().to_string(),
    );
    // Spools in the case's own directory: a killed run leaves its spool behind (only a
    // run a day later removes it), and these would pile up in /tmp.
    let tmp = s.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let tmp = tmp.display().to_string();
    let t = t.to_string();
    let mut args = vec![
        "backup",
        src.as_str(),
        url.as_str(),
        "--current-time",
        &t,
        "--volsize",
        "1",
        "--archive-dir",
        &cache,
        "--hostname",
        "resumehost",
        // Each case runs in its own directory; the chain's full came from another.
        "--allow-source-mismatch",
        "--tempdir",
        &tmp,
    ];
    args.extend_from_slice(extra);
    let mut env: Vec<(&str, &str)> = base_env.to_vec();
    if let Some(f) = fault {
        env.push(("SWIFTDUP_FAULT", f));
        // The killed run's lock expires in 2 s instead of 5 minutes (see the lock tests).
        env.push(("SWIFTDUP_LOCK_TTL", "2"));
    }
    swiftdup(&args, &env)
}

fn restore_both(s: &Scratch, t: i64, want: &std::path::Path, tag: &str) {
    for dir in restore_at(s, t, tag) {
        assert_same_tree(want, &dir, false);
    }
}

/// What the run after the kill does with the interrupted set.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Then {
    /// Removes it and starts over (or finds the set complete).
    StartsOver,
    /// Continues it, keeping exactly this many volumes.
    Keeps(u64),
    /// Continues it or starts over: where uploads run on several threads, which objects
    /// were stored when the kill came is not fixed.
    Either,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Phase {
    /// Killed during the first (full) backup of an empty target.
    Full,
    /// Killed during an incremental on top of a good full.
    Incremental,
}

/// One kill point: where, what the next run must do, whether stock duplicity extends the
/// chain afterwards, and whether the killed run had one thread (a fixed upload order).
struct Case {
    phase: Phase,
    fault: &'static str,
    then: Then,
    stock: bool,
    one_thread: bool,
}

/// The resume events and volume numbers of a run after a kill, checked against `then`.
fn check_then(n: usize, o: &std::process::Output, then: Then) {
    let ev = events(o);
    let resumed: Vec<&serde_json::Value> = ev
        .iter()
        .filter(|e| e["event"] == "resume" && e["resumed"] == true)
        .collect();
    let summary = ev.iter().find(|e| e["event"] == "summary").unwrap();
    let kept = match (then, resumed.first()) {
        (Then::StartsOver, None) => 0,
        (Then::Keeps(k), Some(r)) => {
            assert_eq!(r["volumes_kept"], k, "case {n}: {r}");
            k
        }
        (Then::Either, r) => r.map_or(0, |r| r["volumes_kept"].as_u64().unwrap()),
        (want, got) => panic!("case {n}: expected {want:?}, the next run logged {got:?}"),
    };
    assert_eq!(summary["volumes_resumed"], kept, "case {n}: {summary}");
    // Nothing kept is stored again.
    for v in ev.iter().filter(|e| e["event"] == "volume") {
        assert!(
            v["number"].as_u64().unwrap() > kept,
            "case {n}: volume stored again after keeping {kept}: {v}"
        );
    }
}

/// A file the archive directory `dir` holds under `name` (in its per-target folder).
fn cached(dir: &std::path::Path, name: &str) -> Vec<u8> {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() && p.join(name).exists() {
            return fs::read(p.join(name)).unwrap();
        }
    }
    panic!("{name} is not in {}", dir.display())
}

/// A continued full's signature file is byte for byte an uninterrupted full's of the same
/// source, and its manifest lists the same files.
fn same_as_uninterrupted(base: &Scratch, s: &Scratch, n: usize) {
    let stamp = crate::support::history::timestr(T0);
    let sigtar = |dir: &std::path::Path| {
        let gz = cached(dir, &format!("duplicity-full-signatures.{stamp}.sigtar.gz"));
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut plain).unwrap();
        plain
    };
    assert!(
        sigtar(&base.join("cache")) == sigtar(&s.join("cache")),
        "case {n}: the continued full's signature file differs from an uninterrupted one's"
    );
    let filelist = |dir: &std::path::Path| {
        let m = cached(dir, &format!("duplicity-full.{stamp}.manifest"));
        let at = m.windows(8).position(|w| w == b"Filelist").unwrap();
        m[at..].to_vec()
    };
    assert_eq!(
        String::from_utf8_lossy(&filelist(&base.join("cache"))),
        String::from_utf8_lossy(&filelist(&s.join("cache"))),
        "case {n}"
    );
}

fn case(base: &Scratch, n: usize, c: &Case) {
    let Case {
        phase,
        fault,
        then,
        stock: stock_continues,
        one_thread,
    } = *c;
    let threads: &[&str] = if one_thread {
        &["--concurrency", "1"]
    } else {
        &[]
    };
    let s = Scratch::new(&format!("resume-{n}"));
    let state = if phase == Phase::Full { 0 } else { 1 };
    snapshot(&base.join(&format!("states/{state}")), &s.join("src"));
    if phase == Phase::Incremental {
        snapshot(&base.join("target-full"), &s.join("target"));
    }
    let t = if phase == Phase::Full { T0 } else { T1 };

    let o = backup_with(&s, t, Some(fault), threads, ENV);
    assert_eq!(
        o.status.signal(),
        Some(9),
        "case {n} ({phase:?}, {fault}): the run was not killed there (exit {:?}):\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );

    // The next run (the next CronJob tick, once the dead job's lock has expired) succeeds.
    std::thread::sleep(std::time::Duration::from_millis(3100));
    let o = backup(&s, t + 10, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "case {n} ({phase:?}, {fault}): the run after the kill failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_then(n, &o, then);
    if let (Phase::Full, Then::Keeps(_)) = (phase, then) {
        same_as_uninterrupted(base, &s, n);
    }
    let progress_left: Vec<String> = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // (Not the file backend's own half-written `.NAME.swiftdup-part`, which no listing
        // shows.)
        .filter(|n| n.starts_with("swiftdup-progress"))
        .collect();
    assert!(
        progress_left.is_empty(),
        "case {n}: progress objects left: {progress_left:?}"
    );

    let cache = s.join("cache-status").display().to_string();
    let st = swiftdup_ok(
        &[
            "collection-status",
            &s.url("target"),
            "--json",
            "--archive-dir",
            &cache,
        ],
        ENV,
    );
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert!(
        doc["incomplete_sets"].as_array().unwrap().is_empty()
            && doc["unused_signatures"].as_array().unwrap().is_empty()
            && doc["orphaned_sets"].as_array().unwrap().is_empty(),
        "case {n} ({phase:?}, {fault}): leftovers after the next run: {doc:#}"
    );
    assert_eq!(
        doc["chains"].as_array().unwrap().len(),
        1,
        "case {n}: {doc:#}"
    );

    let now = base.join(&format!("states/{state}"));
    restore_both(&s, t + 10, &now, "latest");
    if phase == Phase::Incremental {
        restore_both(&s, T0, &base.join("states/0"), "full");
    }
    if stock_continues {
        // Stock duplicity extends the chain and restores it, both tools agree.
        fs::write(s.join("src/after-stock"), b"stock was here").unwrap();
        let src = s.join("src").display().to_string();
        let ts = (t + 20).to_string();
        duplicity_ok(
            &s,
            &[
                "incremental",
                "--current-time",
                &ts,
                "--volsize",
                "1",
                "--allow-source-mismatch",
                &src,
                &s.url("target"),
            ],
            ENV,
        );
        restore_both(&s, t + 20, &s.join("src"), "stock");
    }
}

#[test]
fn killed_backups_leave_nothing_that_misleads_the_next_run() {
    let base = Scratch::new("resume-base");
    states(&base);
    // The good full that incremental cases start from, of state 0.
    fs::rename(base.join("src"), base.join("src-state1")).unwrap();
    snapshot(&base.join("states/0"), &base.join("src"));
    let o = backup(&base, T0, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    fs::rename(base.join("target"), base.join("target-full")).unwrap();

    // Every run first stores its lock (put 1). With one thread, a full here then stores
    // volume 1, its progress object, volume 2, ... volume 4 and its progress object, the
    // signatures, the manifest (puts 2 to 11), in that order, and reads the whole source
    // entry 2 (big.bin) before entry 3. With several threads, volumes, progress objects and
    // the signatures overlap. An incremental stores 3 volumes, the signatures, the manifest
    // (no progress objects); the signatures are stored beside the last volume, so they and
    // the last volume come in either order; the manifest is always last.
    use Phase::{Full, Incremental};
    use Then::{Either, Keeps, StartsOver};
    let c = |phase, fault, then, stock, one_thread| Case {
        phase,
        fault,
        then,
        stock,
        one_thread,
    };
    let cases: &[Case] = &[
        c(Full, "entry:3", Keeps(2), false, true),
        c(Full, "put:2", StartsOver, false, true),
        // A volume without its progress object is not kept.
        c(Full, "stored:2", StartsOver, false, true),
        c(Full, "put:3", StartsOver, false, true),
        c(Full, "stored:3", Keeps(1), false, true),
        c(Full, "stored:5", Keeps(2), true, true),
        c(Full, "put:6", Keeps(2), false, true),
        c(Full, "stored:8", Keeps(3), false, true),
        c(Full, "stored:9", Keeps(4), true, true),
        c(Full, "stored:10", Keeps(4), false, true),
        c(Full, "put:11", Keeps(4), false, true),
        // The manifest is stored: the set is complete, the next run an incremental that
        // removes the progress objects.
        c(Full, "stored:11", StartsOver, false, true),
        c(Full, "stored:4", Either, false, false),
        c(Full, "put:6", Either, false, false),
        c(Full, "stored:7", Either, true, false),
        c(Full, "stored:10", Either, false, false),
        c(Incremental, "entry:1", StartsOver, false, false),
        c(Incremental, "entry:20", StartsOver, false, false),
        c(Incremental, "put:1", StartsOver, false, false),
        c(Incremental, "stored:1", StartsOver, false, false),
        c(Incremental, "put:2", StartsOver, false, false),
        c(Incremental, "stored:2", StartsOver, true, false),
        c(Incremental, "stored:3", StartsOver, false, false),
        c(Incremental, "put:4", StartsOver, false, false),
        c(Incremental, "stored:4", StartsOver, true, false),
        c(Incremental, "put:5", StartsOver, false, false),
        c(Incremental, "stored:5", StartsOver, false, false),
    ];
    assert_eq!(cases.len(), 27);
    // Two at a time: most of a case is waiting for gpg and stock duplicity.
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(c) = cases.get(n) else {
                    break;
                };
                case(&base, n, c);
            });
        }
    });
}

/// A source whose first file, big.bin, spans volumes 1 to 3 at `--volsize 1`.
fn interrupted_source(s: &Scratch) -> Vec<u8> {
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    let big = random_bytes(11, 2_600_000);
    fs::write(src.join("big.bin"), &big).unwrap();
    fs::write(src.join("d/mid.bin"), random_bytes(12, 1_100_000)).unwrap();
    fs::write(src.join("d/zz"), b"before").unwrap();
    touch_all(&src, T0 - 100);
    big
}

/// A full at T0 killed at `fault` (one thread: a fixed order), its lock expired.
fn killed(s: &Scratch, fault: &str) {
    let o = backup_with(s, T0, Some(fault), &["--concurrency", "1"], ENV);
    assert_eq!(o.status.signal(), Some(9), "not killed at {fault}");
    std::thread::sleep(std::time::Duration::from_millis(3100));
}

fn target_names(s: &Scratch) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && !n.starts_with("swiftdup-lock"))
        .collect();
    v.sort();
    v
}

fn warned(o: &std::process::Output, code: &str, path: &str) -> bool {
    events(o)
        .iter()
        .any(|e| e["event"] == "warning" && e["code"] == code && e["path"] == path)
}

/// Restore the set at `t` with both tools; returns the two trees' directories.
fn restore_at(s: &Scratch, t: i64, tag: &str) -> [std::path::PathBuf; 2] {
    let (url, ts) = (s.url("target"), t.to_string());
    let (mine, stock) = (s.join(&format!("sd-{tag}")), s.join(&format!("dup-{tag}")));
    let cache = s.join(&format!("cache-{tag}"));
    swiftdup_ok(
        &[
            "restore",
            &url,
            mine.to_str().unwrap(),
            "-t",
            &ts,
            "--archive-dir",
            cache.to_str().unwrap(),
        ],
        ENV,
    );
    duplicity_ok(
        s,
        &["restore", "-t", &ts, &url, stock.to_str().unwrap()],
        ENV,
    );
    [mine, stock]
}

/// After a continued full, an incremental: both tools restore the source exactly.
fn next_backup_restores_the_source(s: &Scratch) {
    let o = backup(s, T0 + 20, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for dir in restore_at(s, T0 + 20, "after") {
        assert_same_tree(&s.join("src"), &dir, false);
    }
}

#[test]
fn a_continued_full_holds_the_source_as_read_and_the_next_backup_what_changed() {
    let s = Scratch::new("resume-changed");
    let big0 = interrupted_source(&s);
    // Volume 1 and its progress object are stored; volume 1 ends inside big.bin.
    killed(&s, "stored:3");
    // Before the next run: big.bin changes past where the run stopped, other files change.
    let src = s.join("src");
    let mut big1 = big0.clone();
    big1[2_000_000..2_010_000].copy_from_slice(&random_bytes(13, 10_000));
    fs::write(src.join("big.bin"), &big1).unwrap();
    fs::write(src.join("d/zz"), b"after").unwrap();
    fs::write(src.join("d/new"), b"new").unwrap();
    touch_all(&src, T0 + 5);
    // The next run has no archive directory left (a pod's emptyDir): it continues anyway.
    fs::remove_dir_all(s.join("cache")).unwrap();
    let o = backup(&s, T0 + 10, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_then(0, &o, Then::Keeps(1));
    assert!(
        warned(&o, "changed_during_backup", "big.bin"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // The set keeps its time and holds each file as it was read: big.bin's first part
    // then (the same bytes as now), its rest and the files after it now.
    let st = swiftdup_ok(&["collection-status", &s.url("target"), "--json"], ENV);
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(doc["chains"][0]["sets"][0]["time"], rfc(T0), "{doc:#}");
    for dir in restore_at(&s, T0, "resumed") {
        assert!(
            fs::read(dir.join("big.bin")).unwrap() == big1,
            "{}",
            dir.display()
        );
        assert_eq!(fs::read(dir.join("d/zz")).unwrap(), b"after");
        assert_eq!(fs::read(dir.join("d/new")).unwrap(), b"new");
    }
    next_backup_restores_the_source(&s);
}

#[test]
fn a_file_gone_or_replaced_where_a_full_stopped_keeps_its_stored_part() {
    for how in ["deleted", "directory"] {
        let s = Scratch::new(&format!("resume-gone-{how}"));
        let big0 = interrupted_source(&s);
        killed(&s, "stored:3");
        let big = s.join("src/big.bin");
        fs::remove_file(&big).unwrap();
        if how == "directory" {
            fs::create_dir(&big).unwrap();
            fs::write(big.join("inner"), b"inner").unwrap();
        }
        let o = backup(&s, T0 + 10, None);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{how}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        check_then(0, &o, Then::Keeps(1));
        assert!(warned(&o, "changed_during_backup", "big.bin"), "{how}");
        // The set ends the file with what was stored: whole chunks of what it was.
        for dir in restore_at(&s, T0, "resumed") {
            let got = fs::read(dir.join("big.bin")).unwrap();
            assert!(
                !got.is_empty() && got.len() % 65536 == 0 && got[..] == big0[..got.len()],
                "{how}: {} bytes in {}",
                got.len(),
                dir.display()
            );
            assert_same_tree(&s.join("src/d"), &dir.join("d"), false);
        }
        next_backup_restores_the_source(&s);
    }
}

#[test]
fn other_keys_stop_a_continuation_and_a_damaged_progress_object_is_stored_again() {
    let s = Scratch::new("resume-keys");
    interrupted_source(&s);
    // Volumes 1 to 3 and their progress objects are stored.
    killed(&s, "stored:7");
    let st = swiftdup_ok(&["collection-status", &s.url("target"), "--json"], ENV);
    let doc: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(
        doc["incomplete_sets"][0]["continuable_volumes"], 3,
        "{doc:#}"
    );
    assert_eq!(doc["foreign_objects"], 0, "{doc:#}");
    let before = target_names(&s);
    let o = backup_with(&s, T0 + 10, None, &[], &[("PASSPHRASE", "not the one")]);
    failed(&o, 31, "decryption");
    assert_eq!(
        target_names(&s),
        before,
        "a run with other keys changed the target"
    );
    // Volume 2's progress object damaged: volumes 2 and 3 are stored again.
    let p2 = before
        .iter()
        .find(|n| n.ends_with(".vol2.gpg") && n.starts_with("swiftdup-progress"))
        .unwrap();
    fs::write(s.join("target").join(p2), b"not a progress object").unwrap();
    let o = backup(&s, T0 + 10, None);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    check_then(0, &o, Then::Keeps(1));
    assert!(events(&o)
        .iter()
        .any(|e| e["code"] == "progress_unreadable" && e["object"] == p2.as_str()));
    for dir in restore_at(&s, T0, "resumed") {
        assert_same_tree(&s.join("src"), &dir, false);
    }
}

#[test]
fn cleanup_removes_an_interrupted_full_with_its_progress_objects() {
    let s = Scratch::new("resume-cleanup");
    interrupted_source(&s);
    killed(&s, "stored:5");
    assert!(target_names(&s)
        .iter()
        .any(|n| n.starts_with("swiftdup-progress")));
    swiftdup_ok(
        &[
            "cleanup",
            "--force",
            &s.url("target"),
            "--archive-dir",
            s.join("cache").to_str().unwrap(),
        ],
        ENV,
    );
    let left: Vec<String> = target_names(&s)
        .into_iter()
        .filter(|n| !n.starts_with("swiftdup-record"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    // The next backup is a new full at its own time.
    let o = backup(&s, T0 + 10, None);
    check_then(0, &o, Then::StartsOver);
    for dir in restore_at(&s, T0 + 10, "new") {
        assert_same_tree(&s.join("src"), &dir, false);
    }
}

#[test]
fn a_full_interrupted_under_other_settings_is_started_over() {
    let s = Scratch::new("resume-settings");
    interrupted_source(&s);
    killed(&s, "stored:5");
    // Continued unencrypted, one set would hold both kinds of volume.
    let o = backup_with(&s, T0 + 10, None, &["--no-encryption"], ENV);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ev = events(&o);
    let r = ev.iter().find(|e| e["event"] == "resume").unwrap();
    assert_eq!(r["resumed"], false, "{r}");
    assert!(r["reason"].as_str().unwrap().contains("encryption"), "{r}");
    check_then(0, &o, Then::StartsOver);
    let names = target_names(&s);
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".gpg") || n.starts_with("swiftdup-record")),
        "{names:?}"
    );
    let out = s.join("out");
    swiftdup_ok(&["restore", &s.url("target"), out.to_str().unwrap()], &[]);
    assert_same_tree(&s.join("src"), &out, false);
}
