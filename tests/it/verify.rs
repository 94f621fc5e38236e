//! verify: volumes, metadata and data compared with the source, on swiftdup's chains and
//! on stock's.

use crate::support::history::*;
use crate::support::*;
use std::fs;

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
