//! The operations besides backup and restore: collection-status, list-current-files,
//! verify, the retention verbs, cleanup, --keep-full, --max-chain-length and the target
//! lock. Retention and cleanup are checked the way a user would: after each, stock
//! duplicity 0.8.22 and swiftdup both restore every remaining time identically.

use crate::support::*;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

const PASS: &str = "ops test passphrase";
const ENV: &[(&str, &str)] = &[("PASSPHRASE", PASS)];

/// Times of a history with three chains: full, inc | full, inc | full.
const TIMES: [i64; 5] = [T0, T0 + 100, T0 + 200, T0 + 300, T0 + 400];

struct Hist {
    s: Scratch,
}

impl Hist {
    fn src(&self) -> String {
        self.s.join("src").display().to_string()
    }
    fn url(&self) -> String {
        self.s.url("target")
    }
    fn cache(&self) -> String {
        self.s.join("cache").display().to_string()
    }

    /// Run swiftdup against this target with its cache.
    fn sd(&self, args: &[&str]) -> std::process::Output {
        let cache = self.cache();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--archive-dir", &cache, "--hostname", "opshost"]);
        swiftdup(&a, ENV)
    }

    fn sd_ok(&self, args: &[&str]) -> std::process::Output {
        let o = self.sd(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "swiftdup {args:?}:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    fn backup(&self, verb: &str, t: i64, extra: &[&str]) -> std::process::Output {
        let (src, url, t) = (self.src(), self.url(), t.to_string());
        let mut a = vec![verb, &src, &url, "--current-time", &t, "--volsize", "1"];
        a.extend(extra);
        self.sd_ok(&a)
    }

    /// The objects of the sets that start or end at `t`, sorted.
    fn names_with(&self, t: i64) -> Vec<String> {
        let ts = timestr(t);
        self.names()
            .into_iter()
            .filter(|n| n.starts_with("duplicity-") && n.contains(&ts))
            .collect()
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.s.join("target"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Both tools restore time `t` and match the state kept for it.
    fn both_restore(&self, i: usize) {
        let t = TIMES[i].to_string();
        let url = self.url();
        let want = self.s.join(&format!("states/{i}"));
        let out = self.s.join(&format!("r-sd-{i}-{}", self.names().len()));
        let cache = self.s.join(&format!("cache-r-{i}-{}", self.names().len()));
        swiftdup_ok(
            &[
                "restore",
                &url,
                out.to_str().unwrap(),
                "-t",
                &t,
                "--archive-dir",
                cache.to_str().unwrap(),
            ],
            ENV,
        );
        assert_same_tree(&want, &out, false);
        let out = self.s.join(&format!("r-dup-{i}-{}", self.names().len()));
        duplicity_ok(
            &self.s,
            &["restore", "-t", &t, &url, out.to_str().unwrap()],
            ENV,
        );
        assert_same_tree(&want, &out, false);
    }
}

/// Source states 0..5 and the five backups: full, inc, full, inc, full.
fn history(name: &str) -> Hist {
    let h = Hist {
        s: Scratch::new(name),
    };
    let src = h.s.join("src");
    fs::create_dir_all(src.join("dir/sub")).unwrap();
    fs::create_dir_all(h.s.join("states")).unwrap();
    for (i, &t) in TIMES.iter().enumerate() {
        fs::write(src.join("dir/sub/changing.txt"), format!("state {i}\n")).unwrap();
        fs::write(
            src.join(format!("file{i}.bin")),
            random_bytes(i as u64, 30_000),
        )
        .unwrap();
        if i >= 1 {
            let _ = fs::remove_file(src.join(format!("file{}.bin", i - 1)));
        }
        fs::write(
            src.join("big.bin"),
            random_bytes(7 + i as u64 % 2, 1_500_000),
        )
        .unwrap();
        touch_all(&src, t - 50);
        snapshot(&src, &h.s.join(&format!("states/{i}")));
        let verb = if i % 2 == 0 { "full" } else { "incremental" };
        h.backup(verb, t, &[]);
    }
    h
}

fn stdout_lines(o: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn status_reports_chains_sets_and_leftovers() {
    let h = history("ops-status");
    // A set whose run died before its manifest, and a stray signature file.
    let url = h.url();
    let tgt = h.s.join("target");
    let inc_t = (TIMES[4], TIMES[4] + 50);
    let inc_vol = format!(
        "duplicity-inc.{}.to.{}.vol1.difftar.gpg",
        timestr(inc_t.0),
        timestr(inc_t.1)
    );
    fs::write(tgt.join(&inc_vol), b"partial").unwrap();
    fs::write(tgt.join("unrelated-object.txt"), b"x").unwrap();

    let o = h.sd_ok(&["collection-status", &url, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["schema"], "swiftdup.collection-status/1");
    let chains = doc["chains"].as_array().unwrap();
    assert_eq!(chains.len(), 3);
    let shape: Vec<(bool, usize)> = chains
        .iter()
        .map(|c| {
            (
                c["primary"].as_bool().unwrap(),
                c["sets"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(shape, [(false, 2), (false, 2), (true, 1)]);
    for c in chains {
        assert_eq!(c["signatures"], "complete");
        for s in c["sets"].as_array().unwrap() {
            assert!(s["bytes"].as_u64().unwrap() > 1_000_000, "{s}");
            assert!(s["volumes"].as_u64().unwrap() >= 1);
        }
    }
    assert_eq!(chains[0]["sets"][1]["type"], "incremental");
    assert_eq!(chains[0]["start"], rfc(TIMES[0]));
    assert_eq!(chains[0]["end"], rfc(TIMES[1]));
    let inc = doc["incomplete_sets"].as_array().unwrap();
    assert_eq!(inc.len(), 1);
    assert_eq!(inc[0]["end"], rfc(inc_t.1));
    assert_eq!(inc[0]["bytes"], 7);
    assert_eq!(doc["foreign_objects"], 1);
    assert!(doc["locks"].as_array().unwrap().is_empty());

    let o = h.sd_ok(&["status", &url]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("Found 2 secondary backup chain(s)."),
        "{text}"
    );
    assert!(text.contains("Found primary backup chain with matching signature chain"));
    assert!(text.contains("Found incomplete incremental set"), "{text}");
    // The summary event counts the same.
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["chains"], 3);
    assert_eq!(summary["sets"], 5);
}

fn timestr(t: i64) -> String {
    let s = rfc(t);
    s.replace(['-', ':'], "")
}

fn rfc(t: i64) -> String {
    // 1970-based civil date, UTC.
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[test]
fn list_current_files_matches_stock_at_every_time() {
    let h = history("ops-ls");
    let url = h.url();
    for (i, &t) in TIMES.iter().enumerate() {
        let ts = t.to_string();
        let ours = stdout_lines(&h.sd_ok(&["list-current-files", &url, "--time", &ts]));
        let o = duplicity_ok(&h.s, &["list-current-files", "--time", &ts, &url], ENV);
        let stock: Vec<String> = stdout_lines(&o)
            .into_iter()
            .filter(|l| l.len() > 25 && l.as_bytes()[3] == b' ' && l.as_bytes()[7] == b' ')
            .collect();
        assert_eq!(ours, stock, "time {i}");
        // JSON lines: one object per entry with the same paths.
        let js = stdout_lines(&h.sd_ok(&["ls", &url, "--time", &ts, "--json"]));
        let paths: Vec<String> = js
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let want: Vec<String> = ours.iter().map(|l| l[25..].to_string()).collect();
        assert_eq!(paths, want);
        assert!(paths.contains(&format!("file{i}.bin")));
    }
}

#[test]
fn verify_checks_volumes_metadata_and_data() {
    let h = history("ops-verify");
    let (url, src) = (h.url(), h.src());
    let o = h.sd_ok(&["verify", &url, &src, "--compare-data"]);
    assert!(o.stdout.is_empty());
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["differences"], 0);
    assert!(summary["volumes"].as_u64().unwrap() >= 2);

    // Same size and mtime, other bytes: only --compare-data sees it.
    let p = h.s.join("src/big.bin");
    let mut data = fs::read(&p).unwrap();
    data[700_000] ^= 1;
    fs::write(&p, &data).unwrap();
    set_mtime(&p, TIMES[4] - 50);
    h.sd_ok(&["verify", &url, &src]);
    let o = h.sd(&["verify", &url, &src, "--compare-data", "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let diffs: Vec<serde_json::Value> = stdout_lines(&o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(diffs.len(), 1, "{diffs:?}");
    assert_eq!(diffs[0]["path"], "big.bin");
    assert_eq!(diffs[0]["difference"], "content");

    // Metadata differences, a new and a missing file; an older time through its deltas.
    chmod(&h.s.join("src/dir/sub/changing.txt"), 0o600);
    fs::write(h.s.join("src/extra"), b"new").unwrap();
    fs::remove_file(h.s.join("src/file4.bin")).unwrap();
    let o = h.sd(&["verify", &url, &src]);
    assert_eq!(o.status.code(), Some(1));
    let got = stdout_lines(&o);
    assert!(
        got.iter()
            .any(|l| l.starts_with("mode: dir/sub/changing.txt")),
        "{got:?}"
    );
    assert!(got.iter().any(|l| l.starts_with("new: extra")), "{got:?}");
    assert!(
        got.iter().any(|l| l.starts_with("missing: file4.bin")),
        "{got:?}"
    );
    let state1 = h.s.join("states/1").display().to_string();
    let t1 = TIMES[1].to_string();
    h.sd_ok(&["verify", &url, &state1, "--time", &t1, "--compare-data"]);
    // Only one path.
    h.sd_ok(&[
        "verify",
        &url,
        &state1,
        "--time",
        &t1,
        "--compare-data",
        "--file-to-restore",
        "dir/sub",
    ]);

    // A damaged volume is an integrity failure, named.
    let vol = h
        .names()
        .into_iter()
        .find(|n| n.starts_with("duplicity-full.") && n.contains(".vol1."))
        .unwrap();
    let vp = h.s.join("target").join(&vol);
    let mut b = fs::read(&vp).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    fs::write(&vp, b).unwrap();
    let state0 = h.s.join("states/0").display().to_string();
    let t0 = TIMES[0].to_string();
    let o = h.sd(&["verify", &url, &state0, "--time", &t0]);
    assert_eq!(
        o.status.code(),
        Some(21),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(error_event(&o)["object"], vol.as_str());
}

#[test]
fn verify_reads_a_stock_chain() {
    let s = Scratch::new("ops-verify-stock");
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/a"), random_bytes(1, 200_000)).unwrap();
    fs::write(src.join("b"), b"bee").unwrap();
    let url = s.url("target");
    let srcs = src.display().to_string();
    let (t0, t1) = (T0.to_string(), T1.to_string());
    duplicity_ok(&s, &["full", "--current-time", &t0, &srcs, &url], ENV);
    fs::write(src.join("b"), b"bee two").unwrap();
    duplicity_ok(
        &s,
        &["incremental", "--current-time", &t1, &srcs, &url],
        ENV,
    );
    let cache = s.join("cache").display().to_string();
    let verify = [
        "verify",
        &url,
        &srcs,
        "--compare-data",
        "--archive-dir",
        &cache,
    ];
    let o = swiftdup_ok(&verify, ENV);
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    // The root, d, d/a and b, at the incremental's time, read through stock's delta.
    assert_eq!(summary["files_compared"], 4, "{summary}");
    assert_eq!(summary["differences"], 0, "{summary}");
    assert_eq!(summary["set_time"], rfc(T1), "{summary}");
    // And it sees a difference in stock's data: same size and mtime, other bytes.
    let b = src.join("b");
    let mtime = fs::metadata(&b).unwrap().modified().unwrap();
    fs::write(&b, b"bee 2!!").unwrap();
    fs::File::options()
        .write(true)
        .open(&b)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    let o = swiftdup(&verify, ENV);
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(stdout_lines(&o), ["content: b: the data differs"]);
}

fn delete_run(h: &Hist, args: &[&str]) -> Vec<String> {
    let before = h.names();
    let o = h.sd_ok(args);
    let after = h.names();
    if !args.contains(&"--force") {
        assert_eq!(before, after, "a dry run deleted something");
        return stdout_lines(&o);
    }
    before.into_iter().filter(|n| !after.contains(n)).collect()
}

#[test]
fn retention_keeps_what_kept_sets_need_and_both_tools_restore_the_rest() {
    let h = history("ops-retention");
    let url = h.url();

    // Dry run by default.
    let inc1 = h.names_with(TIMES[1]);
    assert_eq!(inc1.len(), 4, "{inc1:?}"); // manifest, two volumes, new-signatures
    let listed = delete_run(&h, &["remove-all-inc-of-but-n-full", "2", &url]);
    assert_eq!(listed.len(), 4, "{listed:?}");

    // The incremental of the oldest chain goes, its full stays.
    let gone = delete_run(&h, &["remove-all-inc-of-but-n-full", "2", &url, "--force"]);
    assert_eq!(gone, inc1);
    for i in [0, 2, 3, 4] {
        h.both_restore(i);
    }

    // A cutoff inside the second chain keeps that chain whole (its incremental needs the
    // full), and deletes the first.
    let cutoff = (TIMES[3] - 10).to_string();
    let full0 = h.names_with(TIMES[0]);
    let gone = delete_run(&h, &["remove-older-than", &cutoff, &url, "--force"]);
    assert_eq!(gone, full0);
    for i in [2, 3, 4] {
        h.both_restore(i);
    }

    // The newest chain is never deleted, whatever the cutoff.
    let chain2 = h.names_with(TIMES[2]);
    let gone = delete_run(&h, &["remove-older-than", "1D", &url, "--force"]);
    assert_eq!(gone, chain2);
    h.both_restore(4);
    let o = h.sd_ok(&["status", &url, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["chains"].as_array().unwrap().len(), 1);

    // And the cache followed: an incremental still works from it.
    fs::write(h.s.join("src/after"), b"after").unwrap();
    h.backup("incremental", TIMES[4] + 100, &[]);
}

#[test]
fn remove_all_but_n_full_and_keep_full() {
    let h = history("ops-keep");
    let url = h.url();
    let chain1 = h.names_with(TIMES[0]);
    let gone = delete_run(&h, &["remove-all-but-n-full", "2", &url, "--force"]);
    assert_eq!(gone, chain1);
    for i in [2, 3, 4] {
        h.both_restore(i);
    }
    // --keep-full at the end of a backup: a new full, then only 2 chains are left.
    fs::write(h.s.join("src/late"), b"late").unwrap();
    let o = h.backup("full", TIMES[4] + 100, &["--keep-full", "2"]);
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["pruned_sets"], 2);
    let o = h.sd_ok(&["status", &url, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let starts: Vec<&str> = doc["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["start"].as_str().unwrap())
        .collect();
    assert_eq!(starts, [rfc(TIMES[4]), rfc(TIMES[4] + 100)]);
    h.both_restore(4);
}

#[test]
fn cleanup_removes_leftovers_only() {
    let h = history("ops-cleanup");
    let url = h.url();
    let tgt = h.s.join("target");
    // Leftovers: an incomplete set (a run died before its manifest), a stray signature file
    // of that run, an expired lock; and things cleanup must not touch.
    let (a, b) = (timestr(TIMES[4]), timestr(TIMES[4] + 60));
    let leftovers = [
        format!("duplicity-inc.{a}.to.{b}.vol1.difftar.gpg"),
        format!("duplicity-inc.{a}.to.{b}.vol2.difftar.gpg"),
        format!("duplicity-new-signatures.{a}.to.{b}.sigtar.gpg"),
        "swiftdup-lock.1600000000.0a0b.1600000900".to_string(),
    ];
    for n in &leftovers {
        fs::write(tgt.join(n), b"left over").unwrap();
    }
    fs::write(tgt.join("notes.txt"), b"mine").unwrap();
    let before = h.names();
    let listed = delete_run(&h, &["cleanup", &url]);
    assert_eq!(listed.len(), 4, "{listed:?}");
    let gone = delete_run(&h, &["cleanup", &url, "--force"]);
    let mut want = leftovers.to_vec();
    want.sort();
    assert_eq!(gone, want);
    assert!(h.names().contains(&"notes.txt".to_string()));
    assert_eq!(h.names().len(), before.len() - 4);
    for i in [0, 1, 3, 4] {
        h.both_restore(i);
    }
    // Nothing left to clean; stock agrees.
    assert!(delete_run(&h, &["cleanup", &url]).is_empty());
    let o = duplicity_ok(&h.s, &["cleanup", &url], ENV);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("No extraneous files found"), "{text}");
}

fn plan_rule(o: &std::process::Output) -> String {
    events(o)
        .into_iter()
        .find(|e| e["event"] == "plan")
        .map(|e| e["rule"].as_str().unwrap().to_string())
        .unwrap()
}

#[test]
fn full_backup_policies_say_which_rule_chose() {
    let s = Scratch::new("ops-policy");
    let h = Hist { s };
    fs::create_dir_all(h.s.join("src")).unwrap();
    let mut rules = Vec::new();
    for k in 0..5 {
        fs::write(h.s.join("src/f"), format!("{k}")).unwrap();
        let o = h.backup("backup", T0 + k * 100, &["--max-chain-length", "2"]);
        rules.push(plan_rule(&o));
    }
    assert_eq!(
        rules,
        [
            "no_chain",
            "incremental",
            "incremental",
            "max_chain_length",
            "incremental"
        ]
    );
    // --full-if-older-than: the chain started 100 s before "now" + 100.
    let o = h.backup("backup", T0 + 600, &["--full-if-older-than", "150s"]);
    assert_eq!(plan_rule(&o), "full_if_older_than");
    let o = h.backup("backup", T0 + 700, &["--full-if-older-than", "1D"]);
    assert_eq!(plan_rule(&o), "incremental");
    let o = h.backup("full", T0 + 800, &[]);
    assert_eq!(plan_rule(&o), "requested");
}

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

/// The one `error` event of a failed run, checked against its exit code.
fn failed(o: &std::process::Output, code: i32, error_code: &str) -> String {
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "{log}");
    let evs = events(o);
    let errors: Vec<_> = evs.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert_eq!(errors[0]["code"], error_code, "{log}");
    assert_eq!(evs.last().unwrap()["exit_code"], code, "{log}");
    errors[0]["msg"].as_str().unwrap().to_string()
}

#[test]
fn reading_verbs_never_create_a_missing_file_target() {
    let s = Scratch::new("ops-missing-target");
    fs::create_dir_all(s.join("src")).unwrap();
    let missing = s.join("no-such-backup");
    let url = s.url("no-such-backup");
    let (src, out) = (
        s.join("src").display().to_string(),
        s.join("out").display().to_string(),
    );
    let cache = s.join("cache").display().to_string();
    let runs: [&[&str]; 4] = [
        &["restore", &url, &out],
        &["verify", &url, &src],
        &["list-current-files", &url],
        &["collection-status", &url],
    ];
    for args in runs {
        let mut a = args.to_vec();
        a.extend(["--archive-dir", &cache]);
        let msg = failed(&swiftdup(&a, ENV), 51, "target_missing");
        assert!(
            msg.contains(&missing.display().to_string()) && msg.contains("does not exist"),
            "{args:?}: {msg}"
        );
        assert!(!missing.exists(), "{args:?} created the target");
        assert!(
            !s.join("out").exists(),
            "{args:?} created the restore target"
        );
    }
    // A file where the directory should be is no target either.
    fs::write(&missing, b"not a directory").unwrap();
    let msg = failed(
        &swiftdup(&["collection-status", &url, "--archive-dir", &cache], ENV),
        51,
        "target_missing",
    );
    assert!(msg.contains("not a directory"), "{msg}");
    // Writing verbs still make it, as stock does.
    fs::remove_file(&missing).unwrap();
    swiftdup_ok(&["full", &src, &url, "--archive-dir", &cache], ENV);
    assert!(missing.is_dir());
}

#[test]
fn a_time_before_the_first_backup_is_an_error_naming_the_oldest_set() {
    let s = Scratch::new("ops-before-first");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    let (src_s, url) = (src.display().to_string(), s.url("target"));
    let cache = s.join("cache").display().to_string();
    let t0 = T0.to_string();
    swiftdup_ok(
        &[
            "full",
            &src_s,
            &url,
            "--current-time",
            &t0,
            "--archive-dir",
            &cache,
        ],
        ENV,
    );
    let before = (T0 - 3600).to_string();
    let out = s.join("out").display().to_string();
    let runs: [&[&str]; 3] = [
        &["restore", "-t", &before, &url, &out],
        &["verify", "--time", &before, &url, &src_s],
        &["list-current-files", "--time", &before, &url],
    ];
    for args in runs {
        let mut a = args.to_vec();
        a.extend(["--archive-dir", &cache]);
        let msg = failed(&swiftdup(&a, ENV), 20, "no_backup");
        assert!(
            msg.contains(&rfc(T0)) && msg.contains(&rfc(T0 - 3600)),
            "{args:?}: names the time asked for and the oldest set's: {msg}"
        );
        assert!(!s.join("out").exists(), "{args:?}: nothing restored");
    }
    // From the oldest set's own time on, it restores.
    swiftdup_ok(
        &["restore", "-t", &t0, &url, &out, "--archive-dir", &cache],
        ENV,
    );
    assert_eq!(fs::read(s.join("out/a.txt")).unwrap(), b"alpha");
}
