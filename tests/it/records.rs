//! Chain records, the target's tamper evidence: every writing run stores one; a `check`
//! finds a set deleted, a manifest replaced and the newest sets rolled back together with
//! their records; the next backup notices too and keeps the evidence until an operator
//! acknowledges it; retention is no alarm; stock duplicity ignores the records. Over Swift
//! with the read key: `swift::a_read_key_check_finds_a_set_deleted_with_the_full_key`.

use crate::support::history::{failed, history, stdout_lines, Hist, ENV, TIMES};
use crate::support::{duplicity_ok, events, swiftdup};
use std::fs;

/// `check` with an archive directory of its own (as a separate check job has).
fn check(h: &Hist, cache: &str) -> std::process::Output {
    let (url, cache) = (h.url(), h.s.join(cache));
    swiftdup(
        &["check", &url, "--archive-dir", cache.to_str().unwrap()],
        ENV,
    )
}

/// A clean check with metrics pushed: the newest chain record's time it pushed.
fn pushed_record_time(h: &Hist, cache: &str) -> i64 {
    let (port, pushed) = crate::support::pushgateway::fake_pushgateway();
    let (url, cache) = (h.url(), h.s.join(cache));
    let gw = format!("http://127.0.0.1:{port}");
    let o = swiftdup(
        &[
            "check",
            &url,
            "--archive-dir",
            cache.to_str().unwrap(),
            "--pushgateway-url",
            &gw,
        ],
        ENV,
    );
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let metric = "swiftdup_last_check_record_timestamp_seconds{command=\"check\"} ";
    pushed()
        .iter()
        .flat_map(|r| r.lines().map(String::from).collect::<Vec<_>>())
        .find_map(|l| {
            l.strip_prefix(metric)
                .map(|v| v.parse::<f64>().unwrap() as i64)
        })
        .expect("the check pushed the record's time")
}

/// A check that finds nothing wrong.
fn check_clean(h: &Hist, cache: &str) -> std::process::Output {
    let o = check(h, cache);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// Delete every object of the set that ends at `t`, as a stolen full key could.
fn delete_set(h: &Hist, t: i64) {
    for n in h.names_with(t) {
        fs::remove_file(h.s.join("target").join(n)).unwrap();
    }
}

fn records(h: &Hist) -> Vec<String> {
    h.names()
        .into_iter()
        .filter(|n| n.starts_with("swiftdup-record."))
        .collect()
}

/// The problems a failed check printed: (code, object).
fn problems(o: &std::process::Output) -> Vec<(String, String)> {
    failed(o, 24, o_code(o).as_str());
    stdout_lines(o)
        .iter()
        .map(|l| {
            let mut p = l.splitn(3, ": ");
            let code = p.next().unwrap().to_string();
            let _time = p.next();
            let object = p
                .next()
                .unwrap_or("")
                .split(':')
                .next()
                .unwrap()
                .to_string();
            (code, object)
        })
        .collect()
}

fn o_code(o: &std::process::Output) -> String {
    events(o)
        .into_iter()
        .find(|e| e["event"] == "error")
        .map(|e| e["code"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn manifest(h: &Hist, t: i64) -> String {
    h.names_with(t)
        .into_iter()
        .find(|n| n.contains(".manifest"))
        .unwrap()
}

/// Copy the target aside, and put it back.
fn save(h: &Hist) -> std::path::PathBuf {
    let to = h.s.join(&format!("saved-{}", h.names().len()));
    fs::create_dir_all(&to).unwrap();
    for n in h.names() {
        fs::copy(h.s.join("target").join(&n), to.join(&n)).unwrap();
    }
    to
}

fn put_back(h: &Hist, saved: &std::path::Path) {
    let target = h.s.join("target");
    fs::remove_dir_all(&target).unwrap();
    fs::create_dir_all(&target).unwrap();
    for e in fs::read_dir(saved).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), target.join(e.file_name())).unwrap();
    }
}

#[test]
fn a_check_finds_a_deleted_a_replaced_and_a_rolled_back_set() {
    let h = history("records-tamper");
    assert_eq!(records(&h).len(), TIMES.len(), "a record per backup");
    let o = check_clean(&h, "ck");
    let sum = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert!(sum["record_time"].is_string(), "{sum}");
    let saved = save(&h);

    // A manifest replaced by another set's (whose volumes then disagree with it too).
    let (m1, m3) = (manifest(&h, TIMES[1]), manifest(&h, TIMES[3]));
    fs::copy(h.s.join("target").join(&m3), h.s.join("target").join(&m1)).unwrap();
    let found = problems(&check(&h, "ck"));
    assert!(
        found.contains(&("set_replaced".into(), m1.clone())),
        "{found:?}"
    );
    put_back(&h, &saved);

    // A set deleted: its manifest, volumes and signatures.
    delete_set(&h, TIMES[3]);
    let found = problems(&check(&h, "ck"));
    assert_eq!(found, [("set_vanished".to_string(), m3.clone())]);
    put_back(&h, &saved);

    let before = pushed_record_time(&h, "metrics-1");
    // The newest set deleted together with the newest record: consistent in itself, but
    // a check that saw the newer record tells.
    delete_set(&h, TIMES[4]);
    let newest = records(&h).pop().unwrap();
    fs::remove_file(h.s.join("target").join(&newest)).unwrap();
    let found = problems(&check(&h, "ck"));
    assert_eq!(found, [("records_rolled_back".to_string(), newest.clone())]);
    // A check without that memory cannot tell (docs/operations.md says so), but the
    // record time it pushes drops, which Prometheus remembers and alerts on ...
    let after = pushed_record_time(&h, "fresh-1");
    assert!(after < before, "{after} is not before {before}");
    // ... but the next backup, whose cache wrote that record, does, and its record keeps
    // the evidence for every later check.
    let (src, url) = (h.src(), h.url());
    let t5 = (TIMES[4] + 100).to_string();
    let o = h.sd(&["backup", &src, &url, "--current-time", &t5]);
    assert_eq!(
        o.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(events(&o)
        .iter()
        .any(|e| e["event"] == "warning" && e["code"] == "records_rolled_back"));
    let found = problems(&check(&h, "fresh-2"));
    assert_eq!(found, [("records_rolled_back".to_string(), newest.clone())]);
    // Until an operator acknowledges it.
    let t6 = (TIMES[4] + 200).to_string();
    h.sd_ok(&[
        "backup",
        &src,
        &url,
        "--current-time",
        &t6,
        "--acknowledge-changes",
    ]);
    check_clean(&h, "fresh-3");
}

#[test]
fn a_deleted_set_stays_evidence_across_backups() {
    let h = history("records-vanished");
    let m3 = manifest(&h, TIMES[3]);
    // The middle chain's incremental deleted by hand: the next backup warns (exit 10) ...
    delete_set(&h, TIMES[3]);
    let (src, url) = (h.src(), h.url());
    // collection-status, given the passphrase, names it from the record.
    let o = h.sd_ok(&["collection-status", "--json", &url]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        doc["chain_records"]["vanished_sets"],
        serde_json::json!([m3]),
        "{doc}"
    );
    assert_eq!(doc["chain_records"]["count"], TIMES.len());
    let o = h.sd(&[
        "backup",
        &src,
        &url,
        "--current-time",
        &(TIMES[4] + 100).to_string(),
    ]);
    assert_eq!(
        o.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let warned: Vec<_> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .map(|e| e["code"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(warned, ["set_vanished"]);
    // ... and the checks after it still say so, from the new record.
    let found = problems(&check(&h, "later"));
    assert_eq!(found, [("set_vanished".to_string(), m3)]);
}

#[test]
fn retention_and_cleanup_are_no_alarm_and_the_newest_record_stays() {
    let h = history("records-retention");
    let url = h.url();
    h.sd_ok(&["remove-all-but-n-full", "1", &url, "--force"]);
    assert_eq!(
        records(&h).len(),
        TIMES.len() + 1,
        "retention stores a record"
    );
    check_clean(&h, "ck");
    let newest = records(&h).pop().unwrap();
    h.sd_ok(&["cleanup", &url, "--force"]);
    assert_eq!(records(&h).pop().unwrap(), newest);
    // Writers keep the newest eight.
    let src = h.src();
    for k in 1..=4 {
        let t = (TIMES[4] + 100 * k).to_string();
        h.sd_ok(&["backup", &src, &url, "--current-time", &t]);
    }
    assert_eq!(records(&h).len(), 8);
    check_clean(&h, "ck");
}

#[test]
fn stock_duplicity_ignores_the_records() {
    let h = history("records-stock");
    let url = h.url();
    let before = records(&h);
    assert!(!before.is_empty());
    duplicity_ok(&h.s, &["collection-status", &url], ENV);
    duplicity_ok(&h.s, &["cleanup", "--force", &url], ENV);
    assert_eq!(records(&h), before, "stock's cleanup left them");
    h.both_restore(4);
}
