//! `check`: what the target holds, read with the read key and no source. A clean target
//! passes and says how much it read; parts n/t read every volume exactly once over t runs;
//! a damaged volume, a missing one and a wrong passphrase each fail with their own exit
//! code, the problem named on stdout and in a warning, and the other sets still checked.

use crate::support::history::stdout_lines;
use crate::support::*;
use std::fs;
use swiftdup::error::exit;

const PASS: &str = "check passphrase";

fn summary(o: &std::process::Output) -> serde_json::Value {
    events(o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .expect("a summary")
}

#[test]
fn check_reads_every_volume_and_names_each_problem() {
    let s = Scratch::new("check");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), random_bytes(1, 2_500_000)).unwrap();
    fs::write(src.join("b"), b"bee").unwrap();
    let url = s.url("t");
    let cache = s.join("cache").display().to_string();
    let env = [("PASSPHRASE", PASS)];
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut a = args.to_vec();
        a.extend(["--archive-dir", &cache]);
        swiftdup(&a, env)
    };
    let src_s = src.display().to_string();
    assert_ok(&run(&["full", &src_s, &url, "--volsize", "1"], &env));
    fs::write(src.join("b"), b"bees").unwrap();
    assert_ok(&run(&["incremental", &src_s, &url, "--volsize", "1"], &env));

    let o = run(&["check", &url], &env);
    assert_ok(&o);
    let sum = summary(&o);
    assert_eq!(sum["sets"], 2);
    let volumes = sum["volumes"].as_u64().unwrap();
    assert!(volumes >= 4, "{sum}");
    assert_eq!(sum["volumes_read"], volumes);
    assert_eq!(sum["problems"], 0);

    // Parts 1/3, 2/3, 3/3 read every volume once between them.
    let mut read = 0;
    for n in 1..=3 {
        let part = format!("{n}/3");
        let o = run(&["check", "--read-data-subset", &part, &url], &env);
        assert_ok(&o);
        read += summary(&o)["volumes_read"].as_u64().unwrap();
    }
    assert_eq!(read, volumes);
    let o = run(&["check", "--read-data-subset", "4/3", &url], &env);
    assert_eq!(o.status.code(), Some(exit::USAGE));

    // A wrong passphrase: exit 31, the chain record and every volume it could not open
    // named (the manifests come from the cache here).
    let o = run(&["check", &url], &[("PASSPHRASE", "not it")]);
    assert_eq!(o.status.code(), Some(exit::DECRYPTION));
    let lines = stdout_lines(&o);
    assert_eq!(lines.len() as u64, volumes + 1, "{lines:?}");
    assert!(lines[0].contains("swiftdup-record."), "{lines:?}");
    assert!(
        lines.iter().all(|l| l.starts_with("decryption: ")),
        "{lines:?}"
    );

    // One flipped bit in a volume of the full set: exit 21, that volume named, on stdout
    // and in a warning, and the incremental's volumes still read.
    let names: Vec<String> = fs::read_dir(s.join("t"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let vol2 = names
        .iter()
        .find(|n| n.starts_with("duplicity-full") && n.contains(".vol2."))
        .unwrap();
    let p = s.join(&format!("t/{vol2}"));
    let mut bytes = fs::read(&p).unwrap();
    bytes[4000] ^= 1;
    fs::write(&p, bytes).unwrap();
    let o = run(&["check", "--json", &url], &env);
    assert_eq!(o.status.code(), Some(exit::INTEGRITY));
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let problem: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(problem["object"], vol2.as_str());
    assert_eq!(problem["problem"], "integrity");
    let warned = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "warning" && e["object"] == vol2.as_str())
        .count();
    assert_eq!(warned, 1);
    assert_eq!(summary(&o)["error_code"], "integrity");

    // A volume gone: the set's manifest no longer matches the listing.
    fs::remove_file(&p).unwrap();
    let o = run(&["check", &url], &env);
    assert_eq!(o.status.code(), Some(exit::INTEGRITY));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("not_found"),
        "{:?}",
        o.stdout
    );
}
