//! A database dump on standard input as the source (`backup --stdin-name NAME -`): stored
//! as one file with rsync deltas against the previous night's, restored byte for byte by
//! swiftdup and stock duplicity; a dump cut short stores nothing; what cannot work is a
//! usage error before the target is touched. The same over Swift with 1 GiB is in `swift`.

use crate::support::conformance::md5_of;
use crate::support::history::failed;
use crate::support::{
    duplicity_ok, events, swiftdup, swiftdup_fed, swiftdup_ok, write_dump, Scratch, T0, T1, T2, T3,
};
use std::fs;
use std::os::unix::fs::PermissionsExt;

const ENV: &[(&str, &str)] = &[("PASSPHRASE", "dump test"), ("SWIFTDUP_LOG_FORMAT", "json")];

/// One backup of a generated dump (see `write_dump`) at time `t`; returns the run's output
/// and the dump's MD5.
fn back_up(
    s: &Scratch,
    t: i64,
    len: u64,
    edits: &'static [(u64, u64)],
    extra: &[&str],
) -> (std::process::Output, String) {
    let (url, cache, t) = (s.url("target"), s.join("cache"), t.to_string());
    let mut args = vec![
        "backup",
        "--stdin-name",
        "db.sql",
        "-",
        &url,
        "--archive-dir",
        cache.to_str().unwrap(),
        "--current-time",
        &t,
    ];
    args.extend_from_slice(extra);
    swiftdup_fed(&args, ENV, move |w| write_dump(w, len, 7, edits))
}

fn summary(o: &std::process::Output) -> serde_json::Value {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    events(o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .expect("a summary event")
}

/// Restore the target (as of `time`, if given) into `s/into`; returns the dump's MD5.
fn restored(s: &Scratch, into: &str, time: Option<i64>) -> String {
    let (url, out) = (s.url("target"), s.join(into));
    let t = time.map(|t| t.to_string());
    let mut args = vec!["restore", &url, out.to_str().unwrap()];
    if let Some(t) = &t {
        args.extend(["--time", t]);
    }
    let cache = s.join("cache-restore");
    args.extend(["--archive-dir", cache.to_str().unwrap()]);
    swiftdup_ok(&args, ENV);
    let names: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["db.sql"], "the restore holds the dump alone");
    md5_of(&out.join("db.sql"))
}

const MIB: u64 = 1 << 20;
const LEN: u64 = 64 * MIB;
/// 1% of the dump changed, in two places.
const NIGHT_2: &[(u64, u64)] = &[(10 * MIB, 336 << 10), (40 * MIB, 336 << 10)];

#[test]
fn a_dump_on_standard_input_is_stored_as_deltas_and_restored_by_both() {
    let s = Scratch::new("dump");
    let (o, night_1) = back_up(&s, T0, LEN, &[], &[]);
    let full = summary(&o);
    assert_eq!(full["type"], "full");
    assert_eq!(full["files_new"], 2, "the root and the dump");
    assert_eq!(full["bytes_read"], LEN);
    assert_eq!(full["total_bytes_processed"], LEN);

    // The next night's dump changed by 1%: about 1% is uploaded.
    let (o, night_2) = back_up(&s, T1, LEN, NIGHT_2, &[]);
    assert_ne!(night_1, night_2);
    let inc = summary(&o);
    assert_eq!(inc["type"], "incremental");
    assert_eq!(inc["files_changed"], 2);
    assert_eq!(inc["bytes_read"], LEN);
    let up = inc["bytes_uploaded"].as_u64().unwrap() as f64 / LEN as f64;
    assert!(
        (0.01..0.02).contains(&up),
        "uploaded {:.2}% of the dump",
        up * 100.0
    );

    // The same dump again: a delta of matches, a small fraction of that.
    let (o, night_3) = back_up(&s, T2, LEN, NIGHT_2, &[]);
    assert_eq!(night_3, night_2);
    let same = summary(&o)["bytes_uploaded"].as_u64().unwrap();
    assert!(same < LEN / 200, "an unchanged dump uploaded {same} bytes");

    // Restored by swiftdup, latest and as of the first night, private as it was stored.
    assert_eq!(restored(&s, "latest", None), night_3);
    let mode = fs::metadata(s.join("latest/db.sql"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(restored(&s, "first", Some(T0)), night_1);

    // And by stock duplicity.
    let out = s.join("by-duplicity");
    duplicity_ok(
        &s,
        &["restore", &s.url("target"), out.to_str().unwrap()],
        &[("PASSPHRASE", "dump test")],
    );
    assert_eq!(md5_of(&out.join("db.sql")), night_3);
    let out = s.join("by-duplicity-t0");
    duplicity_ok(
        &s,
        &[
            "restore",
            "--time",
            &T0.to_string(),
            &s.url("target"),
            out.to_str().unwrap(),
        ],
        &[("PASSPHRASE", "dump test")],
    );
    assert_eq!(md5_of(&out.join("db.sql")), night_1);
}

#[test]
fn a_dump_cut_short_stores_nothing_and_the_next_night_goes_on() {
    let s = Scratch::new("dump-short");
    let min = ["--stdin-min-bytes", "512K"];
    let (o, night_1) = back_up(&s, T0, MIB, &[], &min);
    summary(&o);
    let before: Vec<String> = names(&s);

    // The dump's command died after 100 bytes, or wrote nothing at all.
    for (t, len) in [(T1, 100), (T2, 0)] {
        let (o, _) = back_up(&s, t, len, &[], &min);
        let msg = failed(&o, 65, "short_input");
        assert!(msg.contains(&format!("after {len} bytes")), "{msg}");
        assert!(msg.contains("--stdin-min-bytes"), "{msg}");
        // What the run had stored of its set is gone: the target is as it was.
        assert_eq!(names(&s), before, "after {len} bytes");
        assert_eq!(restored(&s, &format!("after-{len}"), None), night_1);
    }

    // The next good dump extends the chain; the cut-short runs' volumes are gone.
    let (o, night_4) = back_up(&s, T3, MIB, &[(0, 4096)], &min);
    let inc = summary(&o);
    assert_eq!(inc["type"], "incremental");
    assert_eq!(inc["chain_length"], 2);
    let stamp = |t: i64| crate::support::history::timestr(t);
    for n in names(&s) {
        assert!(
            !n.contains(&stamp(T1)) && !n.contains(&stamp(T2)),
            "{n} left by a cut-short run"
        );
    }
    assert_eq!(restored(&s, "after-good", None), night_4);
}

fn names(s: &Scratch) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("duplicity-"))
        .collect();
    v.sort();
    v
}

#[test]
fn what_a_dump_source_cannot_do_is_a_usage_error_before_the_target_is_touched() {
    let s = Scratch::new("dump-usage");
    let url = s.url("target");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    let src = src.to_str().unwrap();
    let cases: &[(&[&str], &str)] = &[
        (&["backup", "-", &url], "--stdin-name"),
        (
            &["backup", "--stdin-name", "db.sql", src, &url],
            "give - as SOURCE",
        ),
        (&["backup", "--stdin-name", "a/b", "-", &url], "a file name"),
        (&["backup", "--stdin-name", "..", "-", &url], "a file name"),
        (
            &["backup", "--stdin-name", "db", "--exclude", "x", "-", &url],
            "--exclude",
        ),
        (
            &["backup", "--stdin-name", "db", "--every", "1h", "-", &url],
            "only once",
        ),
        (
            &["backup", "--stdin-min-bytes", "1M", src, &url],
            "--stdin-name",
        ),
    ];
    for (args, says) in cases {
        let o = swiftdup(args, ENV);
        let msg = failed(&o, 2, "usage");
        assert!(msg.contains(says), "{args:?}: {msg}");
    }
    let o = swiftdup(
        &[
            "backup",
            "--stdin-name",
            "db",
            "--stdin-min-bytes",
            "1.5G",
            "-",
            &url,
        ],
        ENV,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("SIZE"));
    assert!(
        !s.join("target").exists(),
        "a refused run touched the target"
    );

    // A chain of a directory is not continued by a dump (each would delete the other).
    swiftdup_ok(
        &[
            "backup",
            src,
            &url,
            "--archive-dir",
            s.join("c").to_str().unwrap(),
        ],
        ENV,
    );
    let (o, _) = swiftdup_fed(
        &[
            "backup",
            "--stdin-name",
            "db",
            "-",
            &url,
            "--archive-dir",
            s.join("c").to_str().unwrap(),
        ],
        ENV,
        |w| write_dump(w, 1000, 1, &[]),
    );
    failed(&o, 42, "source_mismatch");
}
