//! swiftdup built for `wasm32-wasip2` and run by wasmtime, against file:// targets in a
//! preopened directory (no Swift needed; tests/swift_wasm.rs does the same over wasi:http).
//!
//! What must hold: a chain written by the wasm build is read by stock gpg and restores, with
//! the wasm build and with the native one, to the source's contents, types, link targets and mtimes; a chain written
//! by the native build restores under WASI, skipping what WASI cannot make; and HTTP
//! failures come back as swiftdup errors, not traps. Needs wasmtime 48.0.8
//! (`bash tests/tools/install-wasmtime.sh`); the component is built on first use.

use crate::support::forge::*;
use crate::support::wasm::*;
use crate::support::*;
use std::fs;
use std::path::Path;
use swiftdup::archive::tar;

const PASS: &str = "wasm test passphrase";

#[test]
fn wasm_chain_on_a_file_target_restores_like_native() {
    let s = Scratch::new("wasm-file");
    let (src, scratch, out) = (s.join("src"), s.join("scratch"), s.join("out"));
    fs::create_dir_all(&out).unwrap();
    build_tree(&src, 11);
    let guest = Guest::new(&scratch, PASS)
        .dir(&src, "/src")
        .dir(&out, "/out");
    let url = "file:///scratch/target";
    let t0 = T0.to_string();
    let t1 = T1.to_string();

    let o = guest.clone().env("SWIFTDUP_LOG_LEVEL", "debug").run_ok(&[
        "full",
        "/src",
        url,
        "--volsize",
        "1",
        "--current-time",
        &t0,
    ]);
    assert!(
        events_named(&o, "skip")
            .iter()
            .any(|e| e["msg"].as_str().is_some_and(|m| m.ends_with(" fifo"))),
        "the FIFO was not skipped:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    snapshot(&src, &s.join("state0"));
    change_tree(&src, 11);
    snapshot(&src, &s.join("state1"));
    guest.run_ok(&[
        "incremental",
        "/src",
        url,
        "--volsize",
        "1",
        "--current-time",
        &t1,
    ]);
    let names: Vec<String> = fs::read_dir(scratch.join("target"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("duplicity-inc.")),
        "no incremental set in {names:?}"
    );
    // Stock gpg reads every file the wasm build sealed (its AES is not the native one's) and
    // finds the integrity check (MDC) good.
    for n in names.iter().filter(|n| n.ends_with(".gpg")) {
        let file = scratch.join("target").join(n);
        let file = file.to_str().unwrap();
        gpg(
            &s.join("gnupg"),
            PASS,
            &["--output", "/dev/null", "--decrypt", file],
        );
    }

    // The wasm build restores both times; the native build restores the same chain.
    let native_url = format!("file://{}", scratch.join("target").display());
    for (i, t) in [(0, &t0), (1, &t1)] {
        let w = format!("/out/wasm-{i}");
        guest.run_ok(&["restore", url, &w, "-t", t]);
        let n = out.join(format!("native-{i}"));
        let cache = s.join(&format!("native-cache-{i}"));
        swiftdup_ok(
            &[
                "restore",
                &native_url,
                &n.display().to_string(),
                "-t",
                t,
                "--archive-dir",
                &cache.display().to_string(),
            ],
            &[("PASSPHRASE", PASS)],
        );
        let state = s.join(&format!("state{i}"));
        assert_same_content(&state, &out.join(format!("wasm-{i}")), true);
        assert_same_content(&n, &out.join(format!("wasm-{i}")), false);
    }
}

#[test]
fn wasm_restores_a_native_chain_skipping_what_wasi_cannot_make() {
    let s = Scratch::new("wasm-native-chain");
    let (src, scratch, out) = (s.join("src"), s.join("scratch"), s.join("out"));
    fs::create_dir_all(&out).unwrap();
    build_tree(&src, 11);
    chmod(&src.join("hello.txt"), 0o4755);
    chmod(&src.join("sub/changeme.txt"), 0o600);
    let target = scratch.join("target");
    let native_url = format!("file://{}", target.display());
    let cache = s.join("native-cache").display().to_string();
    let srcs = src.display().to_string();
    let env = [("PASSPHRASE", PASS)];
    let t0 = T0.to_string();
    let t1 = T1.to_string();
    swiftdup_ok(
        &[
            "full",
            &srcs,
            &native_url,
            "--volsize",
            "1",
            "--current-time",
            &t0,
            "--archive-dir",
            &cache,
        ],
        &env,
    );
    change_tree(&src, 11);
    swiftdup_ok(
        &[
            "incremental",
            &srcs,
            &native_url,
            "--volsize",
            "1",
            "--current-time",
            &t1,
            "--archive-dir",
            &cache,
        ],
        &env,
    );

    let guest = Guest::new(&scratch, PASS).dir(&out, "/out");
    // Exit 10: done, with warnings (as the native build on a device it cannot make).
    let o = guest.run_expect(&["restore", "file:///scratch/target", "/out/tree"], 10);
    let warnings: Vec<String> = events_named(&o, "warning")
        .iter()
        .map(|e| e["code"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        warnings,
        ["mkfifo"],
        "expected one warning, for the FIFO:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_same_content(&src, &out.join("tree"), true);
}

#[test]
fn wasm_http_failures_are_swiftdup_errors() {
    // A port nothing listens on: the host's connection is refused, the guest reports a
    // backend error (exit 50) naming the cause instead of trapping.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = Scratch::new("wasm-http-refused");
    let scratch = s.join("scratch");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let guest = Guest::new(&scratch, PASS)
        .dir(&src, "/src")
        .env(
            "SWIFT_STORAGE_URL",
            &format!("http://127.0.0.1:{port}/v1/AUTH_test"),
        )
        .env("SWIFT_CONTAINER_FULL_TOKEN", "k")
        .env("SWIFTDUP_NUM_RETRIES", "1")
        .env("SWIFTDUP_BACKEND_RETRY_DELAY", "0.1");
    let o = guest.run_expect(&["full", "/src", "swiftkeys://c"], 50);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("connection refused"), "{log}");

    // A CA file cannot be added under WASI: refused up front as a usage error.
    let o = guest
        .env("SWIFTDUP_CA_FILE", "/scratch/ca.pem")
        .run_expect(&["full", "/src", "swiftkeys://c"], 2);
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("cannot add CA certificates"), "{log}");
}

/// A tar member and its data.
type Member = (tar::Header, Vec<u8>);

/// The preopen confines a guest, but a symlink inside it still leads elsewhere inside it:
/// the WASI build refuses crafted archives through the same path resolver as the native
/// one, and nothing beside the restore target changes.
#[test]
fn wasm_restore_of_a_crafted_archive_writes_nothing_outside_its_target() {
    let cases: [(&str, Vec<Member>); 3] = [
        (
            "a symlink made by the archive",
            vec![
                root(),
                link("evil", Path::new("../outside")),
                pwned("snapshot", "evil/sentinel.txt"),
            ],
        ),
        (
            "a root entry that is a symlink",
            vec![
                (member(b"snapshot/./", tar::SYMTYPE, b"../outside"), vec![]),
                pwned("snapshot", "sentinel.txt"),
            ],
        ),
        (
            "a name with ..",
            vec![
                root(),
                pwned("multivol_snapshot", "../outside/sentinel.txt"),
            ],
        ),
    ];
    for (i, (case, members)) in cases.into_iter().enumerate() {
        let s = Scratch::new(&format!("wasm-crafted-{i}"));
        let src = s.join("src");
        fs::create_dir_all(&src).unwrap();
        fs::write(src.join("a.txt"), b"alpha").unwrap();
        let cache = s.join("native-cache").display().to_string();
        swiftdup_ok(
            &[
                "full",
                src.to_str().unwrap(),
                &s.url("target"),
                "--no-encryption",
                "--archive-dir",
                &cache,
            ],
            &[],
        );
        forge_set(&s, "duplicity-full.", &members);
        let guest = Guest::new(&s.0, PASS);
        let outside = Outside::new(&s);
        let o = guest.run_expect(&["restore", "file:///scratch/target", "/scratch/out"], 25);
        let errors = events_named(&o, "error");
        assert_eq!(errors.len(), 1, "{case}");
        assert_eq!(errors[0]["code"], "unsafe_member", "{case}");
        outside.check(&s, "out", case);
    }
}

/// A dump piped into the wasm build (`--stdin-name`): a full, then a delta of the next
/// night's; one cut short fails with 65 and leaves the target as it was; native restores
/// the newest byte for byte.
#[test]
fn wasm_stores_a_dump_from_standard_input_as_deltas() {
    const LEN: u64 = 8 << 20;
    let s = Scratch::new("wasm-dump");
    let (scratch, out) = (s.join("scratch"), s.join("out"));
    let guest = Guest::new(&scratch, PASS);
    let night = |t: i64, len: u64, edits: &'static [(u64, u64)], code: i32| {
        let t = t.to_string();
        let args = [
            "backup",
            "--stdin-name",
            "db.sql",
            "--stdin-min-bytes",
            "1M",
            "-",
            "file:///scratch/target",
            "--current-time",
            &t,
        ];
        let mut c = guest.command(&args);
        c.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let feed = std::thread::spawn(move || write_dump(&mut stdin, len, 5, edits));
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(code),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let sum = events(&o)
            .into_iter()
            .find(|e| e["event"] == "summary")
            .unwrap();
        (sum, feed.join().unwrap())
    };
    night(T0, LEN, &[], 0);
    let (inc, md5) = night(T1, LEN, &[(1 << 20, 64 << 10)], 0);
    assert_eq!(inc["type"], "incremental");
    assert!(inc["bytes_uploaded"].as_u64().unwrap() < LEN / 20, "{inc}");
    let before = fs::read_dir(scratch.join("target")).unwrap().count();
    night(T2, 1000, &[], 65);
    assert_eq!(
        fs::read_dir(scratch.join("target")).unwrap().count(),
        before
    );
    swiftdup_ok(
        &[
            "restore",
            &format!("file://{}/target", scratch.display()),
            out.to_str().unwrap(),
        ],
        &[("PASSPHRASE", PASS)],
    );
    assert_eq!(
        crate::support::conformance::md5_of(&out.join("db.sql")),
        md5
    );
}

/// A full under wasmtime killed mid-set (SIGKILL, as a pod's end) is continued by the next
/// guest run: the volumes stored are kept, and the set restores natively, byte-identical.
#[test]
fn wasm_continues_a_full_killed_mid_set() {
    use std::io::BufRead;
    let s = Scratch::new("wasm-resume");
    let (scratch, out) = (s.join("scratch"), s.join("out"));
    let src = scratch.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    // About twenty volumes of 1 MiB: time enough to kill the run after the first.
    fs::write(src.join("big"), random_bytes(80, 12_000_000)).unwrap();
    for i in 0..8 {
        fs::write(src.join(format!("d/f{i}")), random_bytes(81 + i, 1_000_000)).unwrap();
    }
    let guest = Guest::new(&scratch, PASS).env("SWIFTDUP_LOCK_TTL", "2");
    let args = [
        "full",
        "/scratch/src",
        "file:///scratch/target",
        "--volsize",
        "1",
    ];
    let mut c = guest.command(&args);
    c.stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("\"event\":\"volume\"") {
            break;
        }
    }
    child.kill().unwrap();
    assert!(
        child.wait().unwrap().code().is_none(),
        "the run was not killed:\n{log}"
    );
    std::thread::sleep(std::time::Duration::from_millis(3100));

    let o = guest.run_ok(&args);
    let ev = events(&o);
    let resumed = ev
        .iter()
        .find(|e| e["event"] == "resume")
        .unwrap_or_else(|| panic!("no resume event:\n{}", String::from_utf8_lossy(&o.stderr)));
    let kept = resumed["volumes_kept"].as_u64().unwrap();
    assert!(kept >= 1 && resumed["resumed"] == true, "{resumed}");
    for v in ev.iter().filter(|e| e["event"] == "volume") {
        assert!(v["number"].as_u64().unwrap() > kept, "stored again: {v}");
    }
    swiftdup_ok(
        &[
            "restore",
            &format!("file://{}/target", scratch.display()),
            out.to_str().unwrap(),
        ],
        &[("PASSPHRASE", PASS)],
    );
    assert_same_tree(&src, &out, false);
}
