//! swiftdup built for `wasm32-wasip2`, run by wasmtime with `-S http`, against a real Swift:
//! a full and an incremental backup over wasi:http with the full key, then restores with
//! only the read key by the wasm build and by the native build, which must agree with each
//! other and with the source; and the transport faults of tests/swift.rs (503s, resets,
//! stalls, truncated downloads) retried through wasi:http as through the native client.
//!
//! Needs the Swift started by `tests/swift/start.sh` (`make test` sets SWIFTDUP_SWIFT_ENV)
//! and wasmtime 48.0.8 (`bash tests/tools/install-wasmtime.sh`).

use crate::support::faultproxy::{Fault, FaultProxy};
use crate::support::wasm::*;
use crate::support::*;
use std::fs;

const PASS: &str = "swift wasm passphrase";

#[test]
fn wasm_backs_up_to_swift_over_wasi_http_and_restores_like_native() {
    let env = swift_env();
    let s = Scratch::new("swift-wasm");
    let (src, out) = (s.join("src"), s.join("out"));
    fs::create_dir_all(&out).unwrap();
    build_tree(&src, 21);
    let url = format!(
        "swiftkeys://{}/wasm-{}",
        env["SWIFTDUP_TEST_CONTAINER"],
        std::process::id()
    );
    let storage = env["SWIFT_STORAGE_URL"].as_str();
    let writer = Guest::new(&s.join("w"), PASS)
        .dir(&src, "/src")
        .env("SWIFT_STORAGE_URL", storage)
        .env("SWIFT_CONTAINER_FULL_TOKEN", &env["SWIFTDUP_TEST_FULL_KEY"]);
    let (t0, t1) = (T0.to_string(), T1.to_string());
    writer.run_ok(&[
        "full",
        "/src",
        &url,
        "--volsize",
        "1",
        "--current-time",
        &t0,
    ]);
    snapshot(&src, &s.join("state0"));
    change_tree(&src, 21);
    snapshot(&src, &s.join("state1"));
    writer.run_ok(&[
        "incremental",
        "/src",
        &url,
        "--volsize",
        "1",
        "--current-time",
        &t1,
    ]);

    // Restores with the read key only and no cache: the wasm build, then the native one.
    for (i, t) in [(0, &t0), (1, &t1)] {
        let reader = Guest::new(&s.join(&format!("r{i}")), PASS)
            .dir(&out, "/out")
            .env("SWIFT_STORAGE_URL", storage)
            .env("SWIFT_CONTAINER_READ_TOKEN", &env["SWIFTDUP_TEST_READ_KEY"]);
        reader.run_ok(&["restore", &url, &format!("/out/wasm-{i}"), "-t", t]);
        let native = out.join(format!("native-{i}"));
        swiftdup_ok(
            &[
                "restore",
                &url,
                &native.display().to_string(),
                "-t",
                t,
                "--archive-dir",
                &s.join(&format!("native-cache-{i}")).display().to_string(),
            ],
            &[
                ("PASSPHRASE", PASS),
                ("SWIFT_STORAGE_URL", storage),
                ("SWIFT_CONTAINER_READ_TOKEN", &env["SWIFTDUP_TEST_READ_KEY"]),
            ],
        );
        let wasm_out = out.join(format!("wasm-{i}"));
        assert_same_content(&s.join(&format!("state{i}")), &wasm_out, true);
        assert_same_content(&native, &wasm_out, false);
    }

    // The wrong key is told apart from a missing container over wasi:http too.
    Guest::new(&s.join("bad"), PASS)
        .dir(&out, "/out")
        .env("SWIFT_STORAGE_URL", storage)
        .env("SWIFT_CONTAINER_READ_TOKEN", "not-the-key")
        .run_expect(&["restore", &url, "/out/bad"], 52);
}

#[test]
fn wasm_retries_transport_faults_over_wasi_http() {
    let env = swift_env();
    let s = Scratch::new("swift-wasm-faults");
    let (src, out) = (s.join("src"), s.join("out"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&out).unwrap();
    fs::write(src.join("a.txt"), b"through the proxy\n").unwrap();
    fs::write(src.join("big.bin"), random_bytes(31, 1_500_000)).unwrap();
    touch_all(&src, 1_699_990_000);
    let url = format!(
        "swiftkeys://{}/wasm-faults-{}",
        env["SWIFTDUP_TEST_CONTAINER"],
        std::process::id()
    );
    let proxy = FaultProxy::start(&env["SWIFT_STORAGE_URL"]);
    let guest = |dir: &str| {
        Guest::new(&s.join(dir), PASS)
            .dir(&src, "/src")
            .dir(&out, "/out")
            .env("SWIFT_STORAGE_URL", &proxy.storage_url())
            .env("SWIFTDUP_BACKEND_RETRY_DELAY", "0.05")
            .env("SWIFTDUP_HTTP_TIMEOUT", "2")
    };
    let retries = |o: &std::process::Output| events_named(o, "retry");

    // Two 503s on the first requests, retried; then the uploads, checked on the wire.
    proxy.set(Fault::status(503, 2));
    let writer = guest("w").env("SWIFT_CONTAINER_FULL_TOKEN", &env["SWIFTDUP_TEST_FULL_KEY"]);
    let o = writer.run_ok(&["full", "/src", &url, "--volsize", "1"]);
    assert!(
        retries(&o).len() >= 2,
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let seen = proxy.seen();
    let puts: Vec<_> = seen.iter().filter(|r| r.method == "PUT").collect();
    assert!(puts.len() >= 4, "{seen:?}");
    for r in &seen {
        assert_eq!(
            r.header("x-container-meta-full-key"),
            Some(env["SWIFTDUP_TEST_FULL_KEY"].as_str())
        );
        assert!(r.header("x-auth-token").is_none(), "{r:?}");
        assert!(r.header("transfer-encoding").is_none(), "{r:?}");
        if r.method == "PUT" {
            assert!(r.header("content-length").is_some(), "{r:?}");
            assert!(r.header("etag").is_some(), "{r:?}");
        }
    }

    // Restores with the read key: a truncated download, a reset and a stalled request
    // (noticed by the 2-second timeout) are each retried and the result is exact.
    for (i, fault) in [Fault::TruncateGet(1), Fault::Reset(1), Fault::Stall(1)]
        .into_iter()
        .enumerate()
    {
        proxy.clear();
        proxy.set(fault.clone());
        let reader = guest(&format!("r{i}"))
            .env("SWIFT_CONTAINER_READ_TOKEN", &env["SWIFTDUP_TEST_READ_KEY"]);
        let o = reader.run_ok(&["restore", &url, &format!("/out/r{i}")]);
        assert!(
            !retries(&o).is_empty(),
            "{fault:?} was not retried:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_content(&src, &out.join(format!("r{i}")), false);
    }
}

/// The bandwidth limits hold under WASI too (one thread, wasi:http): 2 MB at 256 KiB/s
/// up and down cannot take less than ~7 s each (lower bounds only), and the restore is
/// identical.
#[test]
fn wasm_bandwidth_limits_hold_over_wasi_http() {
    let env = swift_env();
    let s = Scratch::new("swift-wasm-limits");
    let (src, out) = (s.join("src"), s.join("out"));
    fs::create_dir_all(&src).unwrap();
    fs::create_dir_all(&out).unwrap();
    fs::write(src.join("a"), random_bytes(71, 1_000_000)).unwrap();
    fs::write(src.join("b"), random_bytes(72, 1_000_000)).unwrap();
    let url = format!(
        "swiftkeys://{}/wasm-limits-{}",
        env["SWIFTDUP_TEST_CONTAINER"],
        std::process::id()
    );
    let storage = env["SWIFT_STORAGE_URL"].as_str();
    let guest = Guest::new(&s.join("g"), PASS)
        .dir(&src, "/src")
        .dir(&out, "/out")
        .env("SWIFT_STORAGE_URL", storage)
        .env("SWIFT_CONTAINER_FULL_TOKEN", &env["SWIFTDUP_TEST_FULL_KEY"]);
    let t0 = std::time::Instant::now();
    guest.run_ok(&[
        "full",
        "/src",
        &url,
        "--no-encryption",
        "--limit-upload",
        "256",
    ]);
    let up = t0.elapsed();
    assert!(
        up >= std::time::Duration::from_secs(6),
        "upload took {up:?}"
    );
    let t0 = std::time::Instant::now();
    guest.run_ok(&["restore", &url, "/out/r", "--limit-download", "256"]);
    let down = t0.elapsed();
    assert!(
        down >= std::time::Duration::from_secs(6),
        "download took {down:?}"
    );
    assert_same_content(&src, &out.join("r"), true);
}
