//! The batch-job contract: every log line is a JSON object with the common fields, exactly
//! one `summary` then one `exit` per run, no secret anywhere in the output, configuration
//! from the environment alone, and the sidecar mode (`--every`).

use crate::support::pushgateway::fake_pushgateway;
use crate::support::*;
use std::fs;
use std::io::{BufRead, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PASS: &str = "do-not-leak-this-passphrase";

fn check_common_fields(evs: &[serde_json::Value]) {
    for e in evs {
        for k in ["time", "level", "event", "msg"] {
            assert!(e.get(k).is_some(), "event without {k}: {e}");
        }
        let t = e["time"].as_str().unwrap();
        assert!(
            t.len() == 20 && t.ends_with('Z') && &t[10..11] == "T",
            "time not RFC 3339 UTC: {t}"
        );
    }
}

#[test]
fn a_run_is_configured_by_the_environment_alone_and_logs_the_schema() {
    let s = Scratch::new("batch-env");
    fs::create_dir_all(s.join("src/d")).unwrap();
    fs::write(s.join("src/d/f.txt"), b"data").unwrap();
    let url = s.url("target");
    let env = [
        (
            "SWIFTDUP_SOURCE",
            s.join("src").to_str().unwrap().to_string(),
        ),
        ("SWIFTDUP_URL", url.clone()),
        (
            "SWIFTDUP_ARCHIVE_DIR",
            s.join("cache").to_str().unwrap().to_string(),
        ),
        ("SWIFTDUP_HOSTNAME", "pod".to_string()),
        ("PASSPHRASE", PASS.to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let o = swiftdup_ok(&[], &env);
    let evs = events(&o);
    check_common_fields(&evs);
    let names: Vec<&str> = evs.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(names.first(), Some(&"start"));
    assert!(names.contains(&"plan") && names.contains(&"volume"));
    assert_eq!(names.iter().filter(|n| **n == "summary").count(), 1);
    assert_eq!(names.last(), Some(&"exit"));
    assert_eq!(names[names.len() - 2], "summary");
    let summary = &evs[evs.len() - 2];
    for k in [
        "files_new",
        "files_changed",
        "files_unchanged",
        "files_deleted",
        "bytes_read",
        "bytes_uploaded",
        "volumes",
        "duration_seconds",
        "set_time",
        "chain_length",
    ] {
        assert!(summary.get(k).is_some(), "summary lacks {k}: {summary}");
    }
    assert_eq!(summary["files_new"], 3);
    assert!(!String::from_utf8_lossy(&o.stderr).contains(PASS));
    assert!(!String::from_utf8_lossy(&o.stdout).contains(PASS));

    // A second run with SWIFTDUP_COMMAND=restore and a target from the environment.
    let mut env2 = env.clone();
    env2.push(("SWIFTDUP_COMMAND", "restore"));
    let out = s.join("out");
    let out_s = out.to_str().unwrap().to_string();
    env2.retain(|(k, _)| *k != "SWIFTDUP_SOURCE");
    env2.push(("SWIFTDUP_TARGET", &out_s));
    swiftdup_ok(&[], &env2);
    assert_eq!(fs::read(out.join("d/f.txt")).unwrap(), b"data");
}

#[test]
fn a_malformed_variable_is_named_and_its_value_not_echoed() {
    let s = Scratch::new("batch-bad-env");
    fs::create_dir_all(s.join("src")).unwrap();
    let o = swiftdup(
        &["full", s.join("src").to_str().unwrap(), &s.url("t")],
        &[("SWIFTDUP_VOLSIZE", "lots"), ("PASSPHRASE", PASS)],
    );
    assert_eq!(o.status.code(), Some(swiftdup::error::exit::USAGE));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("volsize"), "{err}");
    assert!(!err.contains(PASS));
    // Off a terminal, one JSON error event that names the variable, then `exit`.
    one_error(&o, 2, "usage", &["SWIFTDUP_VOLSIZE (--volsize)"]);
    // The same value on the command line is the flag's fault, and said so.
    let o = swiftdup(
        &[
            "full",
            "--volsize",
            "lots",
            s.join("src").to_str().unwrap(),
            &s.url("t"),
        ],
        &[("PASSPHRASE", PASS)],
    );
    let msg = one_error(&o, 2, "usage", &["--volsize"]);
    assert!(!msg.contains("SWIFTDUP_VOLSIZE"), "{msg}");
}

#[test]
fn a_mistyped_verb_is_refused_with_a_suggestion_not_backed_up() {
    let s = Scratch::new("batch-typo");
    let out = s.join("out");
    let o = swiftdup(
        &["resotre", &s.url("t"), out.to_str().unwrap()],
        &[("PASSPHRASE", PASS)],
    );
    one_error(&o, 2, "usage", &["'resotre'", "did you mean 'restore'"]);
    assert!(!out.exists() && !s.join("t").exists());
    // A source directory that happens to be named like a verb is still a backup's SOURCE.
    fs::create_dir_all(s.join("verfy")).unwrap();
    let o = std::process::Command::new(swiftdup_bin())
        .args(["verfy", &s.url("t")])
        .current_dir(s.join("."))
        .env("PASSPHRASE", PASS)
        .env("SWIFTDUP_ARCHIVE_DIR", s.join("cache"))
        .output()
        .unwrap();
    assert_ok(&o);
}

#[test]
fn a_bare_run_with_nothing_configured_says_what_is_missing() {
    let o = swiftdup(&[], &[]);
    one_error(&o, 2, "usage", &["no command given", "SWIFTDUP_COMMAND"]);
}

#[test]
fn sidecar_mode_repeats_until_sigterm_and_exits_with_the_last_runs_code() {
    let s = Scratch::new("batch-every");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/a"), b"a").unwrap();
    let mut child = Command::new(swiftdup_bin())
        .args([
            "backup",
            s.join("src").to_str().unwrap(),
            &s.url("target"),
            "--every",
            "2s",
            "--no-encryption",
            "--archive-dir",
            s.join("c").to_str().unwrap(),
        ])
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let three runs happen (t = 0, 2, 4 s), then stop it between runs.
    std::thread::sleep(Duration::from_millis(5000));
    // SAFETY-free: send SIGTERM with the kill command.
    let signalled = Instant::now();
    let st = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    // The promise (docs/kubernetes-and-docker.md): a run ends within 10 s of SIGTERM whatever it was
    // doing; between runs it ends at once.
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "SIGTERM was not honoured within 10 s: {:?}",
        signalled.elapsed()
    );
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    let evs: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    check_common_fields(&evs);
    let summaries: Vec<&serde_json::Value> =
        evs.iter().filter(|e| e["event"] == "summary").collect();
    assert_eq!(summaries.len(), 3, "{err}");
    assert_eq!(summaries[0]["type"], "full");
    assert_eq!(summaries[1]["type"], "incremental");
    assert_eq!(evs.iter().filter(|e| e["event"] == "exit").count(), 1);
    assert_eq!(evs.last().unwrap()["event"], "exit");
}

/// Restore the latest state into `out`, with a cache of its own (`c2`), as a new host would.
fn restore_fresh(s: &Scratch, url: &str, env: &[(&str, &str)]) -> std::path::PathBuf {
    let out = s.join("out");
    swiftdup_ok(
        &[
            "restore",
            url,
            out.to_str().unwrap(),
            "--archive-dir",
            s.join("c2").to_str().unwrap(),
        ],
        env,
    );
    out
}

#[test]
fn sigterm_during_a_run_stops_it_and_leaves_a_readable_chain() {
    let s = Scratch::new("batch-sigterm");
    fs::create_dir_all(s.join("src")).unwrap();
    for i in 0..40 {
        fs::write(s.join(&format!("src/f{i}")), random_bytes(i, 1_000_000)).unwrap();
    }
    let url = s.url("target");
    let cache = s.join("c").to_str().unwrap().to_string();
    swiftdup_ok(
        &[
            "full",
            s.join("src").to_str().unwrap(),
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
            "--current-time",
            "1700000000",
            "--volsize",
            "1",
        ],
        &[],
    );
    for i in 0..40 {
        fs::write(
            s.join(&format!("src/f{i}")),
            random_letters(i + 100, 1_000_000),
        )
        .unwrap();
    }
    let mut child = Command::new(swiftdup_bin())
        .args([
            "incremental",
            s.join("src").to_str().unwrap(),
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
            "--current-time",
            "1700000100",
            "--volsize",
            "1",
            "--compress-level",
            "9",
        ])
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // SIGTERM goes once the run has planned its work (a fixed pause raced a slow machine).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    while !err.contains(r#""event":"plan""#) {
        let before = err.len();
        stderr.read_line(&mut err).unwrap();
        assert!(err.len() > before, "the run ended before planning: {err}");
    }
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    stderr.read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    // 40 MB of letters at deflate level 9 take seconds even on all cores (random bytes
    // would be stored, in well under a second); just after planning, the run is mid-way.
    assert_eq!(status.code(), Some(143), "{err}");
    let evs: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(evs.iter().filter(|e| e["event"] == "summary").count(), 1);
    assert_eq!(evs.last().unwrap()["exit_code"], 143);
    // The interrupted set has no manifest: restore still gives the full backup's state.
    let out = restore_fresh(&s, &url, &[]);
    assert_eq!(
        fs::read(out.join("f3")).unwrap(),
        random_bytes(3, 1_000_000)
    );
    // and the next run completes the incremental
    swiftdup_ok(
        &[
            "incremental",
            s.join("src").to_str().unwrap(),
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
            "--current-time",
            "1700000200",
            "--volsize",
            "1",
        ],
        &[],
    );
}

#[test]
fn the_next_run_removes_what_a_killed_run_left_in_the_tempdir() {
    let s = Scratch::new("batch-stale-temps");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/f"), random_bytes(1, 300_000)).unwrap();
    let tmp = s.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    // What a SIGKILLed job leaves (a spool volume and a lock body, two days old), a spool of
    // a job running beside this one (fresh), and someone else's old file.
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(48 * 3600);
    let put = |name: &str, old: bool| {
        fs::write(tmp.join(name), b"x").unwrap();
        if old {
            fs::File::options()
                .write(true)
                .open(tmp.join(name))
                .unwrap()
                .set_modified(two_days_ago)
                .unwrap();
        }
    };
    put("swiftdup-1-volume-3.tmp", true);
    put("swiftdup-1-0a1b2c3d-lock-0.tmp", true);
    put("swiftdup-1-99887766-volume-1.tmp", false);
    put("other.tmp", true);
    let o = swiftdup_ok(
        &[
            "full",
            s.join("src").to_str().unwrap(),
            &s.url("target"),
            "--no-encryption",
            "--archive-dir",
            s.join("c").to_str().unwrap(),
            "--tempdir",
            tmp.to_str().unwrap(),
        ],
        &[],
    );
    let cleaned: Vec<_> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "temp_cleaned")
        .collect();
    assert_eq!(cleaned.len(), 1, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(cleaned[0]["files"], 2);
    let mut left: Vec<String> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    // The run's own spool files are gone too.
    assert_eq!(left, ["other.tmp", "swiftdup-1-99887766-volume-1.tmp"]);
    assert_eq!(
        fs::read(restore_fresh(&s, &s.url("target"), &[]).join("f")).unwrap(),
        random_bytes(1, 300_000)
    );
}

#[test]
fn metrics_are_pushed_to_the_pushgateway_once_per_run() {
    let s = Scratch::new("batch-metrics");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/a"), b"abc").unwrap();
    let (port, pushed) = fake_pushgateway();
    let url = format!("http://127.0.0.1:{port}");
    let term = s.join("termination-log");
    let term_s = term.to_str().unwrap().to_string();
    swiftdup_ok(
        &[
            "full",
            s.join("src").to_str().unwrap(),
            &s.url("t"),
            "--no-encryption",
            "--archive-dir",
            s.join("c").to_str().unwrap(),
            "--hostname",
            "pod-1",
        ],
        &[
            ("SWIFTDUP_PUSHGATEWAY_URL", &url),
            ("SWIFTDUP_TERMINATION_LOG", &term_s),
        ],
    );
    let reqs = pushed();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    let req = &reqs[0];
    assert!(
        req.starts_with("PUT /metrics/job/swiftdup/instance/pod-1 HTTP/1.1\r\n"),
        "{req}"
    );
    assert!(
        req.contains("# TYPE swiftdup_last_run_files gauge\n"),
        "{req}"
    );
    // A success also goes to a group of its own, which failed runs leave alone: what an
    // alert on a missing backup reads.
    assert!(
        reqs[1].starts_with("PUT /metrics/job/swiftdup/instance/pod-1/command/full HTTP/1.1\r\n"),
        "{}",
        reqs[1]
    );
    assert!(
        reqs[1].contains("swiftdup_last_success_timestamp_seconds{command=\"full\"} "),
        "{}",
        reqs[1]
    );
    // What `kubectl describe pod` shows.
    let msg = fs::read_to_string(&term).unwrap();
    assert!(msg.starts_with("full finished, exit 0: "), "{msg}");
    assert!(msg.contains("files_new=2"), "{msg}");
    assert!(
        req.contains("swiftdup_last_run_success{command=\"full\"} 1\n"),
        "{req}"
    );
    assert!(
        req.contains("swiftdup_last_run_files{command=\"full\",state=\"new\"} 2\n"),
        "{req}"
    );
    assert!(
        req.contains("swiftdup_chain_length{command=\"full\"} 1\n"),
        "{req}"
    );
    assert!(
        req.contains("swiftdup_last_run_bytes_uploaded{command=\"full\"} "),
        "{req}"
    );

    // A failing run pushes success 0 with its exit code, and only its run's group.
    let (port, pushed) = fake_pushgateway();
    let url = format!("http://127.0.0.1:{port}");
    let o = swiftdup(
        &[
            "incremental",
            s.join("src").to_str().unwrap(),
            &s.url("empty"),
            "--no-encryption",
        ],
        &[
            ("SWIFTDUP_PUSHGATEWAY_URL", &url),
            ("SWIFTDUP_TERMINATION_LOG", &term_s),
        ],
    );
    assert_eq!(o.status.code(), Some(swiftdup::error::exit::NO_CHAIN));
    let reqs = pushed();
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    let req = &reqs[0];
    let msg = fs::read_to_string(&term).unwrap();
    assert!(
        msg.starts_with("incremental failed, exit 17 (no_chain): "),
        "{msg}"
    );
    assert!(
        req.contains("swiftdup_last_run_success{command=\"incremental\"} 0\n"),
        "{req}"
    );
    assert!(
        req.contains("swiftdup_last_run_exit_code{command=\"incremental\"} 17\n"),
        "{req}"
    );
}

/// Compression runs on a pool of threads, several chunks in flight: a volume must still be
/// cut on its sealed size, never above `--volsize`, and the chain must restore identically.
#[test]
fn volumes_stay_within_volsize_with_parallel_compression() {
    let s = Scratch::new("batch-volsize");
    fs::create_dir_all(s.join("src")).unwrap();
    for i in 0..6 {
        fs::write(
            s.join(&format!("src/letters{i}")),
            random_letters(i, 1_500_000),
        )
        .unwrap();
        fs::write(s.join(&format!("src/random{i}")), random_bytes(i, 700_000)).unwrap();
    }
    let url = s.url("target");
    for (verb, t) in [("full", "1700000000"), ("incremental", "1700000100")] {
        swiftdup_ok(
            &[
                verb,
                s.join("src").to_str().unwrap(),
                &url,
                "--archive-dir",
                s.join("c").to_str().unwrap(),
                "--current-time",
                t,
                "--volsize",
                "1",
                "--concurrency",
                "4",
            ],
            &[("PASSPHRASE", "volsize")],
        );
        fs::write(s.join("src/letters2"), random_letters(99, 1_200_000)).unwrap();
    }
    let mut volumes = 0;
    for e in fs::read_dir(s.join("target")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        if name.contains(".vol") {
            volumes += 1;
            let len = e.metadata().unwrap().len();
            assert!(
                len <= 1 << 20,
                "{name}: {len} bytes, over --volsize 1 (MiB)"
            );
        }
    }
    // ~9 MiB of letters at ~0.6 of their size, ~4 MiB of random, plus the incremental.
    assert!(volumes >= 9, "only {volumes} volumes");
    let out = restore_fresh(&s, &url, &[("PASSPHRASE", "volsize")]);
    for e in fs::read_dir(s.join("src")).unwrap() {
        let name = e.unwrap().file_name();
        assert!(
            fs::read(s.join("src").join(&name)).unwrap() == fs::read(out.join(&name)).unwrap(),
            "{name:?} differs after restore"
        );
    }
}

// ---- No secret in any output, whatever the server answers ----

const FULL_KEY: &str = "FullKey-7d3e9b1c-never-logged";
const READ_KEY: &str = "ReadKey-2a6f0c88-never-logged";
const ECHO_PASS: &str = "Passphrase-94b1e2-never-logged";
/// The storage URL carries a user and password: the HTTP client sends them as Basic auth,
/// which the echoing server below sends back Base64-encoded.
const STORAGE_USERINFO: &str = "swift:StoragePw-51f0c3";
const STORAGE_PASSWORD: &str = "StoragePw-51f0c3";
/// Base64 of `STORAGE_USERINFO`.
const STORAGE_BASIC: &str = "c3dpZnQ6U3RvcmFnZVB3LTUxZjBjMw==";

/// A stand-in for a Swift proxy, or a gateway in front of one, that answers every request
/// with `status` and a body echoing the request's headers (as some error pages do), so the
/// container key comes back in every error. Bounded: it serves at most 200 requests, stops
/// after 120 s, and stops when dropped.
struct EchoServer {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<Vec<String>>>,
}

impl EchoServer {
    fn start(status: u16) -> EchoServer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            let mut heads = Vec::new();
            while heads.len() < 200 && Instant::now() < deadline && !flag.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => heads.extend(echo(c, status)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5))
                    }
                    Err(_) => break,
                }
            }
            heads
        });
        EchoServer {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// Stop, and return the heads of the requests served.
    fn finish(mut self) -> Vec<String> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Answer one connection with `status` and the request's headers as the body; returns the
/// request's head.
fn echo(mut c: std::net::TcpStream, status: u16) -> Option<String> {
    use std::io::Write;
    c.set_nonblocking(false).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = c.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    // Read an upload's body (a lock object: small) before answering, so that closing the
    // connection does not reset it under the client.
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0);
    let mut have = buf.len() - end - 4;
    while have < len {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => have += n,
        }
    }
    let (request_line, headers) = head.split_once("\r\n").unwrap_or((&head, ""));
    let body = format!("Error {status}. Your request's headers:\n{headers}\n\nin {request_line}\n");
    let reason = match status {
        500 => "Internal Server Error",
        403 => "Forbidden",
        _ => "Bad Request",
    };
    let _ = write!(
        c,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         X-Trans-Id: tx-echo-{status}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    Some(head)
}

#[test]
fn a_server_echoing_the_request_headers_gets_no_secret_into_the_output() {
    let s = Scratch::new("batch-echo");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/f"), b"data").unwrap();
    let src = s.join("src").display().to_string();
    let secrets = [
        FULL_KEY,
        READ_KEY,
        ECHO_PASS,
        STORAGE_PASSWORD,
        STORAGE_BASIC,
    ];
    for (status, exit_code) in [(500, 50), (403, 53), (400, 50)] {
        let server = EchoServer::start(status);
        let storage = format!(
            "http://{STORAGE_USERINFO}@127.0.0.1:{}/v1/AUTH_test",
            server.port
        );
        for format in ["json", "text"] {
            let out = s
                .join(&format!("out-{status}-{format}"))
                .display()
                .to_string();
            let cache = s
                .join(&format!("cache-{status}-{format}"))
                .display()
                .to_string();
            let runs: [&[&str]; 3] = [
                &["backup", &src, "swiftkeys://c/p"],
                &["restore", "swiftkeys://c/p", &out],
                &["collection-status", "swiftkeys://c/p"],
            ];
            for args in runs {
                let o = swiftdup(
                    args,
                    &[
                        ("SWIFT_STORAGE_URL", &storage),
                        ("SWIFT_CONTAINER_FULL_TOKEN", FULL_KEY),
                        ("SWIFT_CONTAINER_READ_TOKEN", READ_KEY),
                        ("PASSPHRASE", ECHO_PASS),
                        ("SWIFTDUP_NUM_RETRIES", "1"),
                        ("SWIFTDUP_BACKEND_RETRY_DELAY", "0.01"),
                        ("SWIFTDUP_LOG_FORMAT", format),
                        ("SWIFTDUP_LOG_LEVEL", "debug"),
                        ("SWIFTDUP_ARCHIVE_DIR", &cache),
                    ],
                );
                let all = format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    String::from_utf8_lossy(&o.stderr)
                );
                let what = format!("{args:?} against HTTP {status}, {format} logs");
                for secret in secrets {
                    assert!(!all.contains(secret), "{what} prints {secret:?}:\n{all}");
                }
                assert_eq!(o.status.code(), Some(exit_code), "{what}:\n{all}");
                // Still useful to the operator: the status and the request id are there.
                assert!(all.contains(&format!("HTTP {status}")), "{what}:\n{all}");
                assert!(all.contains(&format!("tx-echo-{status}")), "{what}:\n{all}");
                if format == "json" {
                    let evs = events(&o);
                    let errors: Vec<_> = evs.iter().filter(|e| e["event"] == "error").collect();
                    assert_eq!(errors.len(), 1, "{what}:\n{all}");
                    let msg = errors[0]["msg"].as_str().unwrap();
                    assert!(msg.contains(&format!("HTTP {status}")), "{what}: {msg}");
                    // The body is shortened to one line of at most 200 bytes (plus "…").
                    let body = msg
                        .split_once(&format!("(Error {status}."))
                        .and_then(|(_, b)| b.split_once(')'))
                        .map(|(b, _)| b)
                        .unwrap_or_else(|| panic!("{what}: no body excerpt in {msg}"));
                    assert!(body.len() <= 200, "{what}: {msg}");
                    if status == 500 {
                        assert!(
                            evs.iter().any(|e| e["event"] == "retry"
                                && e["reason"].as_str().unwrap().contains("HTTP 500")),
                            "{what}: no retry event:\n{all}"
                        );
                    }
                }
            }
        }
        // The server did see the secrets, so the echo was a real danger.
        let heads = server.finish().join("\n");
        for seen in [FULL_KEY, READ_KEY, STORAGE_BASIC] {
            assert!(
                heads.contains(seen),
                "the server never saw {seen}:\n{heads}"
            );
        }
    }
}

#[test]
fn a_password_in_a_url_is_never_printed() {
    let s = Scratch::new("batch-url-password");
    fs::create_dir_all(s.join("src")).unwrap();
    let src = s.join("src").display().to_string();
    let out = s.join("out").display().to_string();
    let url = "file://user:hunter22@host/x";
    for format in ["json", "text"] {
        let runs: [&[&str]; 4] = [
            &["collection-status", url],
            &["backup", &src, url],
            &["restore", url, &out],
            // A command-line error: clap quotes the value it refuses (N is missing).
            &["remove-all-but-n-full", url],
        ];
        for args in runs {
            let o = swiftdup(
                args,
                &[
                    ("PASSPHRASE", ECHO_PASS),
                    ("SWIFTDUP_LOG_FORMAT", format),
                    // Pushed after the failed run; nothing listens there.
                    (
                        "SWIFTDUP_PUSHGATEWAY_URL",
                        "http://metrics:hunter33@127.0.0.1:9",
                    ),
                    ("SWIFTDUP_ARCHIVE_DIR", s.join("cache").to_str().unwrap()),
                ],
            );
            let all = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            assert_eq!(o.status.code(), Some(2), "{args:?}:\n{all}");
            for secret in ["hunter22", "hunter33", ECHO_PASS] {
                assert!(!all.contains(secret), "{args:?} prints {secret}:\n{all}");
            }
            // The URL is still named, without its user information.
            assert!(all.contains("file://host/x"), "{args:?}:\n{all}");
        }
    }
}

// ---- Options that contradict each other ----

/// `--no-encryption` with a key to encrypt to or to sign with would store a plaintext
/// backup (or an unsigned one) while the operator believes otherwise: a usage error, one
/// `error` event naming both options, before the target or the cache is touched.
#[test]
fn no_encryption_with_an_encryption_or_signing_key_is_refused() {
    let s = Scratch::new("batch-contradictions");
    let k = make_key(&s);
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/f"), b"secret data").unwrap();
    let src = s.join("src").display().to_string();
    let url = s.url("target");
    let out = s.join("out").display().to_string();
    let cache = s.join("cache").display().to_string();
    let public = k.public.display().to_string();
    let secret = k.secret.display().to_string();
    // (arguments, environment, the option the error must name besides --no-encryption)
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                "full",
                &src,
                &url,
                "--no-encryption",
                "--encrypt-key-file",
                &public,
            ],
            vec![],
            "--encrypt-key-file",
        ),
        (
            vec![
                "backup",
                &src,
                &url,
                "--hidden-encrypt-key-file",
                &public,
                "--no-encryption",
            ],
            vec![],
            "--hidden-encrypt-key-file",
        ),
        (
            vec![
                "full",
                &src,
                &url,
                "--no-encryption",
                "--sign-key-file",
                &secret,
            ],
            vec![],
            "--sign-key-file",
        ),
        // From the environment alone, as a CronJob is configured.
        (
            vec![],
            vec![
                ("SWIFTDUP_SOURCE", &src),
                ("SWIFTDUP_URL", &url),
                ("SWIFTDUP_NO_ENCRYPTION", "true"),
                ("SWIFTDUP_ENCRYPT_KEY_FILE", &public),
            ],
            "SWIFTDUP_ENCRYPT_KEY_FILE",
        ),
        // Every verb: a restore job usually shares the backup job's variables.
        (
            vec![
                "restore",
                &url,
                &out,
                "--no-encryption",
                "--encrypt-key-file",
                &public,
            ],
            vec![],
            "--encrypt-key-file",
        ),
    ];
    for (args, env, names) in cases {
        let mut env = env;
        env.push(("PASSPHRASE", PASS));
        env.push(("SWIFTDUP_ARCHIVE_DIR", &cache));
        let o = swiftdup(&args, &env);
        let log = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?} {env:?}:\n{log}");
        let errors: Vec<_> = events(&o)
            .into_iter()
            .filter(|e| e["event"] == "error")
            .collect();
        assert_eq!(errors.len(), 1, "{log}");
        assert_eq!(errors[0]["code"], "usage");
        let msg = errors[0]["msg"].as_str().unwrap();
        assert!(
            msg.contains("--no-encryption") && msg.contains(names),
            "{msg}"
        );
        assert!(
            !s.join("target").exists(),
            "{args:?}: the target was touched"
        );
        assert!(!s.join("cache").exists(), "{args:?}: the cache was touched");
        assert!(
            !s.join("out").exists(),
            "{args:?}: the restore target was touched"
        );
    }

    // Left alone: a decryption key with --no-encryption is still used, since files are
    // opened by their suffix (a chain may mix .gz and .gpg sets).
    swiftdup_ok(
        &[
            "full",
            &src,
            &url,
            "--encrypt-key-file",
            &public,
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    swiftdup_ok(
        &[
            "restore",
            &url,
            &out,
            "--no-encryption",
            "--decrypt-key-file",
            &secret,
            "--archive-dir",
            &s.join("cache2").display().to_string(),
        ],
        &[],
    );
    assert_eq!(fs::read(s.join("out/f")).unwrap(), b"secret data");
}

// ---------------------------------------------------------------------------------------
// Errors that point the right way: the log says how a run ended at the level it ended at,
// log settings are checked, a pipeline's reader may leave, and the no-HOME cache is private.

/// The events of a run whose error event there must be exactly one of, and its exit code.
fn one_error(o: &std::process::Output, code: i32, error_code: &str, msg_has: &[&str]) -> String {
    let log = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(code), "{log}");
    let evs = events(o);
    let errors: Vec<_> = evs.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{log}");
    assert_eq!(errors[0]["code"], error_code, "{log}");
    let msg = errors[0]["msg"].as_str().unwrap().to_string();
    for m in msg_has {
        assert!(msg.contains(m), "{msg:?} lacks {m:?}");
    }
    assert_eq!(evs.last().unwrap()["event"], "exit", "{log}");
    assert_eq!(evs.last().unwrap()["exit_code"], code, "{log}");
    msg
}

#[test]
fn a_failed_runs_summary_is_at_error_level() {
    let s = Scratch::new("batch-summary-level");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::create_dir_all(s.join("empty")).unwrap();
    let cache = s.join("cache").display().to_string();
    let summary = |o: &std::process::Output| {
        events(o)
            .into_iter()
            .find(|e| e["event"] == "summary")
            .expect("a summary event")
    };
    let o = swiftdup_ok(
        &[
            "full",
            s.join("src").to_str().unwrap(),
            &s.url("target"),
            "--no-encryption",
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    assert_eq!(summary(&o)["level"], "info");
    // An existing target with no backup in it: no_backup, exit 20.
    let o = swiftdup(
        &[
            "restore",
            &s.url("empty"),
            s.join("out").to_str().unwrap(),
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    one_error(&o, 20, "no_backup", &["no complete backup"]);
    let sum = summary(&o);
    assert_eq!(sum["level"], "error", "{sum}");
    assert_eq!(sum["error_code"], "no_backup", "{sum}");
    // So `--log-level error` still shows how the run ended.
    let o = swiftdup(
        &[
            "restore",
            &s.url("empty"),
            s.join("out").to_str().unwrap(),
            "--archive-dir",
            &cache,
            "--log-level",
            "error",
        ],
        &[],
    );
    let names: Vec<String> = events(&o)
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert!(names.contains(&"summary".to_string()), "{names:?}");
}

#[test]
fn unknown_log_levels_and_formats_are_refused_naming_the_option_and_the_choices() {
    let s = Scratch::new("batch-log-settings");
    fs::create_dir_all(s.join("src")).unwrap();
    let src = s.join("src").display().to_string();
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    let backup = |extra: &[&str], env: &[(&str, &str)]| {
        let mut a = vec![
            "full",
            &src,
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
        ];
        a.extend_from_slice(extra);
        swiftdup(&a, env)
    };
    let o = backup(&["--log-level", "verbose"], &[]);
    one_error(
        &o,
        2,
        "usage",
        &[
            "--log-level",
            "SWIFTDUP_LOG_LEVEL",
            "verbose",
            "debug, info, warn or error",
        ],
    );
    let o = backup(&[], &[("SWIFTDUP_LOG_FORMAT", "yaml")]);
    one_error(
        &o,
        2,
        "usage",
        &[
            "--log-format",
            "SWIFTDUP_LOG_FORMAT",
            "yaml",
            "json or text",
        ],
    );
    assert!(!s.join("target").exists(), "refused before the target");
    // The documented names, in any case, and `warning` for `warn`.
    let o = backup(&["--log-level", "WARNING", "--log-format", "Text"], &[]);
    assert_ok(&o);
    assert!(
        String::from_utf8_lossy(&o.stderr).trim().is_empty(),
        "warn level, nothing to warn about"
    );
    // Empty variables count as unset, as every other one does.
    let o = backup(
        &[],
        &[("SWIFTDUP_LOG_LEVEL", ""), ("SWIFTDUP_LOG_FORMAT", "")],
    );
    assert_eq!(events(&o).last().unwrap()["exit_code"], 0);
}

/// Run `args` with standard output a pipe whose reader is already gone, as after
/// `swiftdup ... | head` once head has read enough.
fn with_closed_stdout(args: &[&str]) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    Command::new(swiftdup_bin())
        .args(args)
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .env("PASSPHRASE", PASS)
        .stdin(Stdio::null())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn a_reader_that_leaves_ends_a_listing_quietly_with_141() {
    let s = Scratch::new("batch-epipe");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..50 {
        fs::write(src.join(format!("f{i}")), format!("file {i}")).unwrap();
    }
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    let src_s = src.display().to_string();
    swiftdup_ok(
        &["full", &src_s, &url, "--archive-dir", &cache],
        &[("PASSPHRASE", PASS)],
    );
    // Differences for verify to print.
    fs::write(src.join("new"), b"new").unwrap();
    fs::remove_file(src.join("f0")).unwrap();
    let runs: [&[&str]; 4] = [
        &["list-current-files", &url, "--archive-dir", &cache],
        &[
            "list-current-files",
            &url,
            "--json",
            "--archive-dir",
            &cache,
        ],
        &["collection-status", &url, "--archive-dir", &cache],
        &["verify", &url, &src_s, "--archive-dir", &cache],
    ];
    for args in runs {
        let o = with_closed_stdout(args);
        let log = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(141), "{args:?}:\n{log}");
        let evs = events(&o);
        assert!(
            !evs.iter()
                .any(|e| e["event"] == "error" || e["level"] == "error"),
            "{args:?}: the reader leaving is not an error:\n{log}"
        );
        let summary = evs.iter().find(|e| e["event"] == "summary").unwrap();
        assert_eq!(summary["output_closed"], true, "{summary}");
        assert_eq!(evs.last().unwrap()["event"], "exit");
        assert_eq!(evs.last().unwrap()["exit_code"], 141);
    }
}

#[test]
fn without_home_the_cache_in_tmpdir_must_be_this_users_alone() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let s = Scratch::new("batch-shared-cache");
    fs::create_dir_all(s.join("src")).unwrap();
    // A TMPDIR like /tmp: everyone may create entries in it.
    let tmp = s.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    chmod(&tmp, 0o1777);
    let shared = tmp.join("swiftdup-cache");
    let tmp_s = tmp.display().to_string();
    let src = s.join("src").display().to_string();
    let url = s.url("target");
    // No HOME, no XDG_CACHE_HOME, no --archive-dir: the cache goes to $TMPDIR.
    let backup = || {
        swiftdup(
            &["full", &src, &url, "--no-encryption"],
            &[("TMPDIR", &tmp_s)],
        )
    };

    // Made by someone, writable by all: refused before the target is touched.
    fs::create_dir(&shared).unwrap();
    chmod(&shared, 0o777);
    let msg = one_error(&backup(), 2, "usage", &[&shared.display().to_string()]);
    assert!(msg.contains("writable by group or others"), "{msg}");
    assert!(msg.contains("SWIFTDUP_ARCHIVE_DIR"), "{msg}");
    assert!(!s.join("target").exists(), "refused before the target");
    if swiftdup::local::platform::is_root() {
        // Another user's, even private: refused as well.
        chmod(&shared, 0o700);
        std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
        let msg = one_error(&backup(), 2, "usage", &[&shared.display().to_string()]);
        assert!(msg.contains("belongs to uid 65534"), "{msg}");
    }
    // A link planted in its place is no directory of ours either.
    fs::remove_dir(&shared).unwrap();
    std::os::unix::fs::symlink(s.join("src"), &shared).unwrap();
    one_error(&backup(), 2, "usage", &["is not a directory"]);
    fs::remove_file(&shared).unwrap();

    // Absent: made for this user alone, and used.
    let o = backup();
    assert_ok(&o);
    let m = fs::symlink_metadata(&shared).unwrap();
    assert!(m.is_dir());
    assert_eq!(m.permissions().mode() & 0o777, 0o700);
    let me = fs::metadata(s.join("src")).unwrap().uid();
    assert_eq!(m.uid(), me, "owned by the user who ran it");
    assert!(
        fs::read_dir(&shared).unwrap().next().is_some(),
        "the cache is used"
    );
}

/// Secrets from the files a mounted Kubernetes Secret gives: `PASSPHRASE_FILE` (one trailing
/// newline stripped, as `kubectl create secret --from-file` keeps it), refused next to
/// `PASSPHRASE`, and a file that cannot be read named without its contents ever printed.
#[test]
fn secrets_come_from_files_too() {
    let s = Scratch::new("batch-secret-files");
    fs::create_dir_all(s.join("src/d")).unwrap();
    fs::write(s.join("src/d/a"), random_bytes(3, 100_000)).unwrap();
    fs::write(s.join("src/b"), b"bee").unwrap();
    let secret = "pa55 from a file";
    fs::write(s.join("passphrase"), format!("{secret}\n")).unwrap();
    let pass_file = s.join("passphrase").display().to_string();
    let url = s.url("target");
    let src = s.join("src").display().to_string();
    let cache = s.join("c").display().to_string();
    let o = swiftdup_ok(
        &["full", &src, &url, "--archive-dir", &cache],
        &[("PASSPHRASE_FILE", &pass_file)],
    );
    assert!(!String::from_utf8_lossy(&o.stderr).contains(secret));
    // The passphrase is the file's text without its newline: the plain variable opens it.
    let out = restore_fresh(&s, &url, &[("PASSPHRASE", secret)]);
    assert_same_tree(&s.join("src"), &out, true);
    // And a wrong one does not, so the file's value was the one used.
    let o = swiftdup(
        &[
            "restore",
            &url,
            s.join("out2").to_str().unwrap(),
            "--archive-dir",
            s.join("c3").to_str().unwrap(),
        ],
        &[("PASSPHRASE", &format!("{secret}\n"))],
    );
    assert_eq!(
        o.status.code(),
        Some(31),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // Both forms at once: which one was meant is not guessed.
    let o = swiftdup(
        &["incremental", &src, &url, "--archive-dir", &cache],
        &[("PASSPHRASE", secret), ("PASSPHRASE_FILE", &pass_file)],
    );
    one_error(&o, 2, "usage", &["PASSPHRASE", "PASSPHRASE_FILE"]);
    // A file that is not there is named, and nothing was stored.
    let before = fs::read_dir(s.join("target")).unwrap().count();
    let missing = s.join("nope").display().to_string();
    let o = swiftdup(
        &["incremental", &src, &url, "--archive-dir", &cache],
        &[("PASSPHRASE_FILE", &missing)],
    );
    one_error(&o, 2, "usage", &["PASSPHRASE_FILE", &missing]);
    assert_eq!(fs::read_dir(s.join("target")).unwrap().count(), before);
    // The key of a swiftkeys:// target from a file that cannot be read: a usage error
    // naming the variable, before any request.
    let o = swiftdup(
        &["list-current-files", "swiftkeys://c"],
        &[
            ("SWIFT_STORAGE_URL", "http://127.0.0.1:9/v1/AUTH_x"),
            ("SWIFT_CONTAINER_READ_TOKEN_FILE", &missing),
            ("PASSPHRASE", secret),
        ],
    );
    one_error(&o, 2, "usage", &["SWIFT_CONTAINER_READ_TOKEN_FILE"]);
}

#[test]
fn each_verbs_help_shows_its_options_and_examples() {
    let help = |verb: &str| {
        let o = swiftdup(&[verb, "--help"], &[]);
        assert_eq!(o.status.code(), Some(0));
        String::from_utf8(o.stdout).unwrap()
    };
    let restore = help("restore");
    for has in [
        "--time",
        "--file-to-restore",
        "--force",
        "Examples:",
        "swiftdup restore ",
    ] {
        assert!(
            restore.contains(has),
            "restore --help lacks {has}:\n{restore}"
        );
    }
    for lacks in [
        "--volsize",
        "--exclude",
        "--keep-full",
        "--compare-data",
        "--lock-wait",
    ] {
        assert!(!restore.contains(lacks), "restore --help shows {lacks}");
    }
    let backup = help("backup");
    for has in [
        "--volsize",
        "--exclude",
        "--keep-full",
        "--lock-wait",
        "swiftdup backup ",
    ] {
        assert!(backup.contains(has), "backup --help lacks {has}");
    }
    for lacks in ["-t, --time", "--compare-data", "--file-to-restore"] {
        assert!(!backup.contains(lacks), "backup --help shows {lacks}");
    }
    assert!(help("verify").contains("--compare-data"));
    // Hidden from a verb's help is not refused: one environment serves every verb.
    let s = Scratch::new("batch-help");
    let o = swiftdup(
        &["collection-status", &s.url("none"), "--volsize", "5"],
        &[],
    );
    assert_eq!(
        o.status.code(),
        Some(swiftdup::error::exit::TARGET_MISSING),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A tree whose backup, restore and verify each take a few seconds in a debug build: one
/// 80 MiB file (so progress must move inside a file) and some small ones.
fn slow_tree(s: &Scratch) -> String {
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    let mut big = Vec::with_capacity(80 << 20);
    let mut x: u64 = 0x9e3779b97f4a7c15;
    while big.len() < 80 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        big.extend_from_slice(&x.to_le_bytes());
    }
    fs::write(src.join("big.bin"), &big).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("f{i}")), format!("{i}")).unwrap();
    }
    src.display().to_string()
}

#[test]
fn backup_restore_and_verify_log_their_progress() {
    let s = Scratch::new("batch-progress");
    let src = slow_tree(&s);
    let (url, out) = (s.url("t"), s.join("out").display().to_string());
    let cache = s.join("cache").display().to_string();
    let env = [("PASSPHRASE", PASS), ("SWIFTDUP_PROGRESS_INTERVAL", "1")];
    let progress = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut a = args.to_vec();
        a.extend(["--archive-dir", &cache]);
        let evs = events(&swiftdup_ok(&a, &env));
        // Progress comes before the summary, never after.
        let summary = evs.iter().position(|e| e["event"] == "summary").unwrap();
        assert!(evs[summary..].iter().all(|e| e["event"] != "progress"));
        evs.into_iter()
            .filter(|e| e["event"] == "progress")
            .collect()
    };
    let backup = progress(&["full", &src, &url]);
    assert!(
        !backup.is_empty(),
        "a backup of several seconds logged no progress"
    );
    // Inside the big file, bytes read move before the file is done.
    assert!(
        backup[0]["bytes_read"].as_u64().unwrap() > 0,
        "{:?}",
        backup[0]
    );
    for (verb, evs) in [
        ("restore", progress(&["restore", &url, &out])),
        (
            "verify",
            progress(&["verify", "--compare-data", &url, &src]),
        ),
    ] {
        assert!(!evs.is_empty(), "{verb} logged no progress");
        let mut last = 0.0;
        for e in &evs {
            let total = e["bytes_total"].as_u64().expect("the total is known");
            assert!(e["bytes_downloaded"].as_u64().unwrap() <= total, "{e}");
            let p = e["percent"].as_f64().unwrap();
            assert!(
                (last..=100.0).contains(&p),
                "{verb}: percent {p} after {last}"
            );
            last = p;
            assert!(e.get("eta_seconds").is_some(), "{e}");
        }
    }
}

/// On a terminal (`script` gives the run one), progress is one line redrawn in place, in
/// colour unless NO_COLOR is set, and gone before the summary.
#[test]
fn a_terminal_gets_a_live_progress_line() {
    let s = Scratch::new("batch-tty");
    let src = slow_tree(&s);
    let cache = s.join("cache").display().to_string();
    let bin = swiftdup_bin().display().to_string();
    let run = |args: &str, no_color: bool| -> String {
        let log = s.join("typescript");
        let mut c = Command::new("script");
        c.args(["-qfec", &format!("{bin} {args} --archive-dir {cache}")])
            .arg(&log)
            .env_clear()
            .env("TMPDIR", crate::support::RUN_TMPDIR)
            .env("PATH", "/usr/bin:/bin")
            .env("TERM", "xterm")
            .env("PASSPHRASE", PASS)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if no_color {
            c.env("NO_COLOR", "1");
        }
        assert!(
            c.status().unwrap().success(),
            "{}",
            fs::read_to_string(&log).unwrap_or_default()
        );
        fs::read_to_string(&log).unwrap()
    };
    let url = s.url("t");
    let backup = run(&format!("full {src} {url}"), false);
    assert!(
        backup.contains("\r\x1b[2K\x1b[36mbackup  "),
        "no live line: {backup:?}"
    );
    assert!(
        backup.contains(" of 80.0 MiB"),
        "no total from the pre-scan: {backup:?}"
    );
    let out = s.join("out").display().to_string();
    let restore = run(&format!("restore {url} {out}"), true);
    assert!(
        restore.contains("\r\x1b[2Krestore  "),
        "no live line: {restore:?}"
    );
    assert!(
        restore.contains('%') && restore.contains("ETA "),
        "{restore:?}"
    );
    assert!(
        !restore.contains("\x1b[36m"),
        "colour despite NO_COLOR: {restore:?}"
    );
    // The line is cleared before the summary, which starts a line of its own.
    let summary = restore.find("restore finished").expect("a summary");
    let line_start = restore[..summary].rfind('\n').map_or(0, |i| i + 1);
    let shown = restore[line_start..summary]
        .rsplit("\x1b[2K")
        .next()
        .unwrap();
    assert!(
        shown.starts_with("20") && shown.ends_with(" info  "),
        "the summary shares its line with the progress: {shown:?}"
    );
}

/// `backup --dry-run` says what a backup would store, and stores nothing: on a target
/// that does not exist yet (a full), then after changes (an incremental), where its counts
/// are those of the real incremental that follows. No lock, no object, no directory made.
#[test]
fn a_dry_run_counts_what_the_backup_then_stores() {
    let s = Scratch::new("batch-dry-run");
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a"), random_bytes(3, 70_000)).unwrap();
    fs::write(src.join("d/b"), b"bee").unwrap();
    fs::write(src.join("gone"), b"soon deleted").unwrap();
    // Old mtimes: no file is read again just for being as new as the previous run.
    touch_all(&src, 1_600_000_000);
    let (src_s, url) = (src.display().to_string(), s.url("t"));
    let cache = s.join("cache").display().to_string();
    let env = [("PASSPHRASE", PASS)];
    let run = |args: &[&str]| {
        let mut a = args.to_vec();
        a.extend(["--archive-dir", &cache]);
        swiftdup_ok(&a, &env)
    };
    let o = run(&["backup", "--dry-run", &src_s, &url]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("would make a full backup"), "{text}");
    assert!(!s.join("t").exists(), "a dry run made the target");
    assert!(events(&o)
        .iter()
        .all(|e| e["event"] != "lock" && e["event"] != "volume"));

    run(&["backup", &src_s, &url]);
    fs::write(src.join("d/b"), b"bees").unwrap();
    fs::write(src.join("new"), random_bytes(4, 5_000)).unwrap();
    fs::remove_file(src.join("gone")).unwrap();
    for p in ["d/b", "new", "d", "."] {
        set_mtime(&src.join(p), 1_600_000_100);
    }
    let objects = || fs::read_dir(s.join("t")).unwrap().count();
    let before = objects();
    let o = run(&["backup", "--dry-run", "--json", &src_s, &url]);
    assert_eq!(objects(), before, "a dry run stored something");
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["type"], "incremental");
    assert_eq!(plan["rule"], "incremental");
    assert_eq!(plan["bytes_new"], 5_000);
    assert_eq!(plan["bytes_changed"], 4);
    let o = run(&["backup", &src_s, &url]);
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    for k in [
        "files_new",
        "files_changed",
        "files_deleted",
        "files_unchanged",
    ] {
        assert_eq!(
            plan[k], summary[k],
            "{k}: dry run {plan} vs backup {summary}"
        );
    }
    assert_eq!(summary["files_deleted"], 1);
}
