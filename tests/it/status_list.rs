//! collection-status and list-current-files, as a user reads them, against stock; what
//! reading verbs must never do to a target; `--time` before the first backup.

use crate::support::history::*;
use crate::support::*;
use std::fs;

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
