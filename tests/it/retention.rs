//! The retention verbs, cleanup, --keep-full and the rules that choose a full backup.
//! Checked the way a user would: after each, stock duplicity 0.8.22 and swiftdup both
//! restore every remaining time identically.

use crate::support::history::*;
use crate::support::*;
use std::fs;

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
    // What else changed: the chain record the deleting run stored.
    let records = |v: Vec<String>| {
        v.iter()
            .filter(|n| n.starts_with("swiftdup-record."))
            .count()
    };
    assert_eq!(records(h.names()), records(before.clone()) + 1);
    assert_eq!(h.names().len(), before.len() - 4 + 1);
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

/// Calendar retention on whole chains: two fulls a week for three weeks, `forget
/// --keep-weekly 2` lists each chain with why it stays (a dry run first), then deletes the
/// others; swiftdup and stock duplicity restore both kept chains; the same rules after a
/// backup keep only what they say.
#[test]
fn forget_keeps_the_newest_chain_of_each_week_and_both_tools_restore_them() {
    const DAY: i64 = 86400;
    // Monday 2026-11-02, noon UTC.
    let monday = 1_793_620_800;
    let days = [0, 1, 7, 8, 14, 15];
    let h = Hist {
        s: Scratch::new("ops-forget"),
    };
    let src = h.s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(h.s.join("states")).unwrap();
    for (i, d) in days.iter().enumerate() {
        let t = monday + d * DAY;
        fs::write(src.join("state.txt"), format!("day {d}\n")).unwrap();
        fs::write(src.join("data.bin"), random_bytes(i as u64, 40_000)).unwrap();
        touch_all(&src, t - 50);
        snapshot(&src, &h.s.join(&format!("states/{d}")));
        h.backup("full", t, &[]);
    }
    let url = h.url();
    let time = |d: i64| rfc(monday + d * DAY);

    // The plan, newest first: the newest chain of each of the two newest weeks stays.
    let plan = delete_run(&h, &["forget", "--keep-weekly", "2", &url]);
    let chains: Vec<&String> = plan.iter().filter(|l| l.contains(" chain ")).collect();
    assert_eq!(chains.len(), 6, "{plan:?}");
    assert!(
        chains[0].starts_with("keep") && chains[0].contains("(newest, weekly)"),
        "{plan:?}"
    );
    assert!(chains[0].contains(&time(15)), "{plan:?}");
    assert!(chains[1].starts_with("remove") && chains[1].contains(&time(14)));
    assert!(chains[2].starts_with("keep") && chains[2].contains("(weekly)"));
    assert!(chains[2].contains(&time(8)));
    for c in &chains[3..] {
        assert!(c.starts_with("remove"), "{plan:?}");
    }

    let gone = delete_run(
        &h,
        &["forget", "--keep-weekly", "2", &url, "--force", "--json"],
    );
    for d in [0, 1, 7, 14] {
        let names = timestr(monday + d * DAY);
        assert!(
            gone.iter().any(|n| n.contains(&names)),
            "day {d} not deleted: {gone:?}"
        );
    }
    for d in [8, 15] {
        let names = h.names_with(monday + d * DAY);
        assert!(!names.is_empty(), "day {d} was deleted");
        h.both_restore_at(monday + d * DAY, &h.s.join(&format!("states/{d}")));
    }

    // After a backup: the same rules, applied once it is stored.
    fs::write(src.join("state.txt"), "day 16\n").unwrap();
    let o = h.backup("full", monday + 16 * DAY, &["--keep-last", "1"]);
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["pruned_sets"], 2, "{summary}");
    let o = h.sd_ok(&["status", &url, "--json"]);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["chains"].as_array().unwrap().len(), 1);

    // No rule at all is refused, not taken for "keep nothing".
    let o = h.sd(&["forget", &url]);
    assert_eq!(o.status.code(), Some(2));
}
