//! The target lock: a live one stops a second job, an expired one does not, and a job
//! started during a run is refused or waits (--lock-wait).

use crate::support::history::*;
use crate::support::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

fn lock_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("swiftdup-lock."))
        .collect()
}

#[test]
fn a_live_lock_stops_a_second_job_and_an_expired_one_does_not() {
    let s = Scratch::new("ops-lock");
    let h = Hist { s };
    fs::create_dir_all(h.s.join("src")).unwrap();
    fs::write(h.s.join("src/f"), b"data").unwrap();
    h.backup("full", T0, &[]);
    let tgt = h.s.join("target");
    assert!(lock_names(&tgt).is_empty(), "the lock was not released");

    // Another job's live lock (created earlier, expires in 10 minutes).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let other = format!("swiftdup-lock.{}.00aa.{}", now - 30, now + 600);
    fs::write(tgt.join(&other), b"{}").unwrap();
    let before = fs::read_dir(&tgt).unwrap().count();
    let (src, url) = (h.src(), h.url());
    let t1 = T1.to_string();
    let started = Instant::now();
    let o = h.sd(&["incremental", &src, &url, "--current-time", &t1]);
    assert_eq!(
        o.status.code(),
        Some(23),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Refused, not waited for: the other lock has ten minutes to live, so anything near
    // that would mean the job sat on it (a generous bound: CI machines are slow).
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error_event(&o)["code"], "locked");
    assert_eq!(
        fs::read_dir(&tgt).unwrap().count(),
        before,
        "the locked job wrote"
    );
    // Deleting verbs lock too.
    let o = h.sd(&["cleanup", &url, "--force"]);
    assert_eq!(o.status.code(), Some(23));
    // Read-only verbs do not.
    h.sd_ok(&["status", &url]);

    // --lock-wait: the other job finishes after a second.
    let p = tgt.join(&other);
    let remover = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        fs::remove_file(p).unwrap();
    });
    h.sd_ok(&[
        "incremental",
        &src,
        &url,
        "--current-time",
        &t1,
        "--lock-wait",
        "30s",
    ]);
    remover.join().unwrap();

    // An expired lock (a killed pod) is ignored; cleanup removes it.
    let dead = format!("swiftdup-lock.{}.00bb.{}", now - 3600, now - 60);
    fs::write(tgt.join(&dead), b"{}").unwrap();
    let t2 = T2.to_string();
    h.sd_ok(&["incremental", &src, &url, "--current-time", &t2]);
    assert_eq!(lock_names(&tgt), std::slice::from_ref(&dead));
    h.sd_ok(&["cleanup", &url, "--force"]);
    assert!(lock_names(&tgt).is_empty());

    // --break-lock removes a live one on purpose.
    fs::write(tgt.join(&other), b"{}").unwrap();
    let t3 = T3.to_string();
    let o = h.sd_ok(&[
        "incremental",
        &src,
        &url,
        "--current-time",
        &t3,
        "--break-lock",
    ]);
    assert!(events(&o).iter().any(|e| e["code"] == "lock_broken"));
    assert!(lock_names(&tgt).is_empty());
}

#[test]
fn a_second_job_during_a_run_is_refused_or_waits() {
    let s = Scratch::new("ops-race");
    let h = Hist { s };
    fs::create_dir_all(h.s.join("src")).unwrap();
    // Slow enough to compress that the first job is still running when the second starts
    // (random bytes are stored, not deflated, and go by too fast).
    fs::write(h.s.join("src/big"), random_letters(3, 30_000_000)).unwrap();
    let (src, url) = (h.src(), h.url());
    let spawn = |t: i64, cache: &str, extra: &[&str]| {
        let t = t.to_string();
        let cache = h.s.join(cache).display().to_string();
        let mut c = std::process::Command::new(swiftdup_bin());
        c.args([
            "full",
            &src,
            &url,
            "--current-time",
            &t,
            "--archive-dir",
            &cache,
        ])
        .args(extra)
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .env("PASSPHRASE", PASS)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
        c.spawn().unwrap()
    };
    let started = |o: &std::process::Output| events(o).iter().any(|e| e["event"] == "plan");

    // The second job starts once the first holds its lock (a fixed pause raced a slow machine).
    let target = h.s.join("target");
    let locked = || {
        let t0 = std::time::Instant::now();
        while !target.is_dir() || lock_names(&target).is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(60),
                "the first job never locked"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let a = spawn(T0, "ca", &[]);
    locked();
    let b = spawn(T1, "cb", &[]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(
        b.status.code(),
        Some(23),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(!started(&b), "the refused job planned a backup");

    let a = spawn(T2, "ca", &[]);
    locked();
    let b = spawn(T3, "cb", &["--lock-wait", "2m"]);
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert_eq!(
        a.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&a.stderr)
    );
    assert_eq!(
        b.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&b.stderr)
    );
    assert!(
        events(&b).iter().any(|e| e["event"] == "lock_wait"),
        "{}\n{}",
        String::from_utf8_lossy(&a.stderr),
        String::from_utf8_lossy(&b.stderr)
    );

    assert!(lock_names(&target).is_empty());
    let o = h.sd_ok(&["status", &url, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(doc["incomplete_sets"].as_array().unwrap().is_empty());
    assert_eq!(doc["chains"].as_array().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------
// Reading verbs and their target: they never create it, and never answer for a time the
// backups do not reach.
