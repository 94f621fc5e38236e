//! swiftkeys:// against a real Swift on loopback (feature `swift-tests`): the backend
//! conformance suite, listings past one page, read/full/rotated/wrong keys, a missing
//! container, and transient faults injected by a proxy between the backend and Swift.
//!
//! Needs a running test Swift: `bash tests/swift/start.sh DIR` writes `DIR/env`, and
//! `SWIFTDUP_SWIFT_ENV=DIR/env` points these tests at it (`make test` does both).

use crate::support::conformance::{get_bytes, put_bytes};
use crate::support::faultproxy::{Fault, FaultProxy};
use crate::support::{assert_ok, swiftdup, Scratch};
use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};
use swiftdup::backend::retry::Retrying;
use swiftdup::backend::swift::{SwiftBackend, SwiftConfig, ENV_FULL_KEY as ENV_FULL};
use swiftdup::backend::{Access, Backend, Options};
use swiftdup::error::{exit, Error};

/// The test Swift's coordinates, from the env file start.sh wrote.
struct Env {
    vars: HashMap<String, String>,
}

impl Env {
    fn load() -> Env {
        let path = std::env::var("SWIFTDUP_SWIFT_ENV").unwrap_or_else(|_| {
            panic!(
                "SWIFTDUP_SWIFT_ENV is not set: start a test Swift with \
                 `bash tests/swift/start.sh DIR` and set SWIFTDUP_SWIFT_ENV=DIR/env \
                 (`make test` does this)"
            )
        });
        let text = fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("SWIFTDUP_SWIFT_ENV={path}: {e} (is Swift started?)"));
        let vars = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
            .collect();
        Env { vars }
    }

    fn get(&self, k: &str) -> String {
        self.vars
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from SWIFTDUP_SWIFT_ENV's file"))
            .clone()
    }

    fn storage_url(&self) -> String {
        self.get("SWIFT_STORAGE_URL")
    }
    fn container(&self) -> String {
        self.get("SWIFTDUP_TEST_CONTAINER")
    }
    fn full_key(&self) -> String {
        self.get("SWIFTDUP_TEST_FULL_KEY")
    }
    fn read_key(&self) -> String {
        self.get("SWIFTDUP_TEST_READ_KEY")
    }
}

/// A prefix no other test run uses: tests share one container.
fn run_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("t{}-{nanos}/{test}", std::process::id())
}

/// Quick retries so fault tests take seconds, not minutes.
fn fast() -> Options {
    let mut o = Options {
        num_retries: 5,
        retry_delay: Duration::from_millis(20),
        ..Options::default()
    };
    o.http.timeout = Duration::from_secs(10);
    o
}

fn keys(storage_url: &str, full: Option<&str>, read: Option<&str>) -> SwiftConfig {
    SwiftConfig {
        storage_url: storage_url.to_string(),
        full_key: full.map(String::from),
        read_key: read.map(String::from),
    }
}

fn open(
    storage_url: &str,
    container: &str,
    prefix: &str,
    full: Option<&str>,
    read: Option<&str>,
    access: Access,
    opts: &Options,
) -> Result<Retrying<SwiftBackend>, Error> {
    // As `backend::open` does: retries are a decorator over every backend.
    SwiftBackend::with_config(
        container,
        prefix,
        keys(storage_url, full, read),
        access,
        opts,
    )
    .map(|b| Retrying::new(b, opts))
}

/// What a run's first request gets from Swift (opening makes none): a writing run's is its
/// lock's PUT, a reading run's a listing.
fn first_request(b: Result<Retrying<SwiftBackend>, Error>, access: Access, w: &Path) -> Error {
    let b = b.unwrap_or_else(|e| panic!("opening makes no request, yet: {e}"));
    match access {
        Access::Write => put_bytes(&b, w, "first", b"{}").err(),
        Access::Read => b.list("").err(),
    }
    .expect("the first request succeeded")
}

/// A full-key backend on the test container under `prefix`.
fn full(env: &Env, storage_url: &str, prefix: &str, opts: &Options) -> Retrying<SwiftBackend> {
    open(
        storage_url,
        &env.container(),
        prefix,
        Some(&env.full_key()),
        None,
        Access::Write,
        opts,
    )
    .unwrap_or_else(|e| panic!("open {prefix}: {e}"))
}

fn work(s: &Scratch) -> std::path::PathBuf {
    let w = s.join("work");
    fs::create_dir_all(&w).unwrap();
    w
}

#[test]
fn swift_backend_conforms() {
    let env = Env::load();
    let s = Scratch::new("swift-conformance");
    let base = run_prefix("conformance");
    let url = env.storage_url();
    let opener = |sub: &str| -> Box<dyn Backend> {
        Box::new(full(&env, &url, &format!("{base}/{sub}"), &fast()))
    };
    crate::support::conformance::run_suite(&opener, &work(&s));
}

/// Add listing rows for `names` (full object names) to `container` directly in the test
/// Swift's container server, in one request.
///
/// Why not PUT 10,000 objects: on this single-process test Swift a PUT costs ~19 ms of CPU
/// (proxy, object and container server together), so 10,000 take over 90 s on two cores.
/// The listing is what is under test, and a listing is served from the container database
/// alone; Swift's proxy itself fills that database with the container server's `UPDATE`
/// verb (a JSON list of rows), which is used here. Relies on start.sh's layout: the env
/// file's directory holds `container-server.conf` and the devices under `srv/`.
fn seed_listing(env: &Env, container: &str, names: &[String]) {
    use std::io::{Read, Write};
    let env_path = std::env::var("SWIFTDUP_SWIFT_ENV").unwrap();
    let dir = Path::new(&env_path).parent().unwrap().to_path_buf();
    let conf = fs::read_to_string(dir.join("container-server.conf"))
        .expect("container-server.conf next to the env file (tests/swift/start.sh layout)");
    let port: u16 = conf
        .lines()
        .find_map(|l| l.strip_prefix("bind_port = "))
        .and_then(|p| p.trim().parse().ok())
        .expect("bind_port in container-server.conf");
    let storage_url = env.storage_url();
    let account = storage_url.rsplit('/').next().unwrap();
    let call = |method: &str, path: &str, body: &[u8], ts: &str| -> u16 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            c,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Timestamp: {ts}\r\n\
             X-Backend-Storage-Policy-Index: 0\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n",
            body.len()
        )
        .unwrap();
        c.write_all(body).unwrap();
        let mut resp = String::new();
        c.read_to_string(&mut resp).unwrap();
        resp.split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    };
    // The database lives under srv/<device>/containers/<partition>/...: ask the server which
    // of the partitions present holds this container (it hashes the name itself).
    let mut places = BTreeSet::new();
    for dev in fs::read_dir(dir.join("srv")).unwrap().flatten() {
        if let Ok(parts) = fs::read_dir(dev.path().join("containers")) {
            for part in parts.flatten() {
                places.insert(format!(
                    "{}/{}",
                    dev.file_name().to_string_lossy(),
                    part.file_name().to_string_lossy()
                ));
            }
        }
    }
    let ts = format!(
        "{:.5}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
    );
    let place = places
        .iter()
        .find(|p| call("HEAD", &format!("/{p}/{account}/{container}"), b"", &ts) / 100 == 2)
        .unwrap_or_else(|| panic!("no container database for {container} in {places:?}"));
    let rows: Vec<serde_json::Value> = names
        .iter()
        .map(|n| {
            serde_json::json!({
                "name": n, "created_at": ts, "size": 1, "deleted": 0,
                "content_type": "application/octet-stream", "storage_policy_index": 0,
                "etag": "9dd4e461268c8034f5c8564e155c67a6",
            })
        })
        .collect();
    let body = serde_json::to_vec(&rows).unwrap();
    let status = call(
        "UPDATE",
        &format!("/{place}/{account}/{container}"),
        &body,
        &ts,
    );
    assert_eq!(status, 202, "container server UPDATE");
}

#[test]
fn listing_pages_past_ten_thousand() {
    const N: usize = 10_001;
    let env = Env::load();
    let s = Scratch::new("swift-many");
    let w = work(&s);
    let prefix = run_prefix("many");
    let b = full(&env, &env.storage_url(), &prefix, &fast());
    let started = Instant::now();
    let all: Vec<String> = (0..N).map(|i| format!("obj-{i:05}")).collect();
    // Real objects at both ends and around the 10,000-name page boundary; rows for the rest.
    let real = [0, 1, 9_998, 9_999, 10_000];
    let seeded: Vec<String> = (0..N)
        .filter(|i| !real.contains(i))
        .map(|i| format!("{prefix}/{}", all[i]))
        .collect();
    seed_listing(&env, &env.container(), &seeded);
    for i in real {
        put_bytes(&b, &w, &all[i], all[i].as_bytes()).unwrap();
    }
    let listed = b.list("").unwrap();
    assert_eq!(listed.len(), N, "every name once");
    assert_eq!(listed, all, "in Swift's order, no name twice, none missing");
    assert_eq!(b.list("obj-").unwrap().len(), N);
    // Exactly one full page (obj-00000 .. obj-09999): a full page is never taken for the end.
    assert_eq!(b.list("obj-0").unwrap(), all[..10_000].to_vec());
    // A prefix inside the set: only its names.
    assert_eq!(b.list("obj-0999").unwrap(), all[9_990..10_000].to_vec());
    assert_eq!(get_bytes(&b, &w, "obj-10000").unwrap(), b"obj-10000");
    eprintln!(
        "listing test: {N} names in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "too slow: {:?}",
        started.elapsed()
    );
}

#[test]
fn read_key_reads_but_never_writes() {
    let env = Env::load();
    let s = Scratch::new("swift-readkey");
    let w = work(&s);
    let prefix = run_prefix("readkey");
    let writer = full(&env, &env.storage_url(), &prefix, &fast());
    put_bytes(&writer, &w, "r1", b"readable").unwrap();

    let proxy = FaultProxy::start(&env.storage_url());
    let reader = open(
        &proxy.storage_url(),
        &env.container(),
        &prefix,
        None,
        Some(&env.read_key()),
        Access::Read,
        &fast(),
    )
    .unwrap();
    assert_eq!(reader.list("").unwrap(), vec!["r1".to_string()]);
    assert_eq!(get_bytes(&reader, &w, "r1").unwrap(), b"readable");
    for r in proxy.seen() {
        assert_eq!(
            r.header("x-container-meta-read-key"),
            Some(&*env.read_key())
        );
        assert!(r.header("x-container-meta-full-key").is_none());
    }

    proxy.clear();
    let e = put_bytes(&reader, &w, "r2", b"nope").unwrap_err();
    assert!(matches!(e, Error::AccessDenied { .. }), "{e}");
    assert!(e.to_string().contains("SWIFT_CONTAINER_FULL_TOKEN"), "{e}");
    let e = reader.delete("r1").unwrap_err();
    assert!(matches!(e, Error::AccessDenied { .. }), "{e}");
    // A writing command given only a read key stops before its first request.
    let e = open(
        &proxy.storage_url(),
        &env.container(),
        &prefix,
        None,
        Some(&env.read_key()),
        Access::Write,
        &fast(),
    )
    .err()
    .unwrap();
    assert!(matches!(e, Error::AccessDenied { .. }), "{e}");
    assert_eq!(e.exit_code(), exit::ACCESS_DENIED);
    assert_eq!(proxy.count(), 0, "refused writes must not reach Swift");
    assert_eq!(get_bytes(&writer, &w, "r1").unwrap(), b"readable");
}

/// The environment the binary needs for the test Swift, plus `extra`.
fn cli_env<'a>(env: &'a Env, keys: &[(&'a str, String)]) -> Vec<(&'a str, String)> {
    let mut v = vec![
        ("SWIFT_STORAGE_URL", env.storage_url()),
        ("SWIFTDUP_BACKEND_RETRY_DELAY", "0.05".to_string()),
        ("SWIFTDUP_LOG_FORMAT", "json".to_string()),
    ];
    v.extend(keys.iter().cloned());
    v
}

fn run_cli(args: &[&str], env: &[(&str, String)]) -> std::process::Output {
    let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    swiftdup(args, &e)
}

#[test]
fn backup_with_only_a_read_key_is_refused_and_writes_nothing() {
    let env = Env::load();
    let s = Scratch::new("swift-backup-ro");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    let prefix = run_prefix("backup-ro");
    let url = format!("swiftkeys://{}/{prefix}", env.container());
    let cache = s.join("cache").display().to_string();
    let o = run_cli(
        &[
            "full",
            src.to_str().unwrap(),
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
        ],
        &cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]),
    );
    assert_eq!(
        o.status.code(),
        Some(exit::ACCESS_DENIED),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ev = crate::support::error_event(&o);
    assert_eq!(ev["code"], "access_denied");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("SWIFT_CONTAINER_FULL_TOKEN"), "{stderr}");
    assert!(!stderr.contains(&env.read_key()), "a key was logged");
    let b = full(&env, &env.storage_url(), &prefix, &fast());
    assert!(b.list("").unwrap().is_empty(), "something was written");
}

#[test]
fn rotated_and_other_keys() {
    let env = Env::load();
    let s = Scratch::new("swift-rotated");
    let w = work(&s);
    let prefix = run_prefix("rotated");
    let b = open(
        &env.storage_url(),
        &env.container(),
        &prefix,
        Some(&env.get("SWIFTDUP_TEST_ROTATED_KEY")),
        None,
        Access::Write,
        &fast(),
    )
    .expect("the rotated full key (Full-Key-1) opens the container");
    crate::support::conformance::round_trip(&b, &w);
    // A key is scoped to its container: the other container's key is not valid here...
    let e = first_request(
        open(
            &env.storage_url(),
            &env.container(),
            &prefix,
            Some(&env.get("SWIFTDUP_TEST_OTHER_KEY")),
            None,
            Access::Write,
            &fast(),
        ),
        Access::Write,
        &w,
    );
    assert!(matches!(e, Error::KeyRejected { .. }), "{e}");
    // ...but it is in its own.
    let other = open(
        &env.storage_url(),
        &env.get("SWIFTDUP_TEST_OTHER_CONTAINER"),
        &prefix,
        Some(&env.get("SWIFTDUP_TEST_OTHER_KEY")),
        None,
        Access::Write,
        &fast(),
    )
    .unwrap();
    crate::support::conformance::round_trip(&other, &w);
}

#[test]
fn wrong_key_is_rejected_at_once() {
    let env = Env::load();
    // Default retries and delays: a 401 must not be retried at all.
    let opts = Options::default();
    assert_eq!(opts.num_retries, 5);
    let proxy = FaultProxy::start(&env.storage_url());
    let s = Scratch::new("swift-wrong-key");
    let w = work(&s);
    for (full_key, read_key, access) in [
        (Some("wrong-full-key"), None, Access::Write),
        (None, Some("wrong-read-key"), Access::Read),
    ] {
        proxy.clear();
        let t = Instant::now();
        let e = first_request(
            open(
                &proxy.storage_url(),
                &env.container(),
                "x",
                full_key,
                read_key,
                access,
                &opts,
            ),
            access,
            &w,
        );
        // No backoff either (one request is counted below; a retry's sleep is 1 s and up).
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
        assert!(matches!(e, Error::KeyRejected { .. }), "{e}");
        assert_eq!(e.exit_code(), exit::KEY_REJECTED);
        assert!(e.to_string().contains("wrong or rotated"), "{e}");
        assert!(e.trans_id().is_some_and(|t| t.starts_with("tx")), "{e:?}");
        assert!(
            !format!("{e} {e:?}").contains("wrong-"),
            "the key leaked: {e:?}"
        );
        assert_eq!(proxy.count(), 1, "a 401 was retried");
    }
}

#[test]
fn key_rejected_mid_run_is_never_retried() {
    let env = Env::load();
    let s = Scratch::new("swift-401");
    let w = work(&s);
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(&env, &proxy.storage_url(), &run_prefix("401"), &fast());
    put_bytes(&b, &w, "o", b"data").unwrap();
    for op in ["get", "put", "list", "delete"] {
        proxy.clear();
        proxy.set(Fault::status(401, 100));
        let e = match op {
            "get" => get_bytes(&b, &w, "o").map(drop),
            "put" => put_bytes(&b, &w, "o", b"new"),
            "list" => b.list("").map(drop),
            _ => b.delete("o"),
        }
        .unwrap_err();
        proxy.set(Fault::None);
        assert_eq!(e.exit_code(), exit::KEY_REJECTED, "{op}: {e}");
        assert_eq!(proxy.count(), 1, "{op}: a 401 was retried");
    }
}

#[test]
fn a_refused_large_upload_is_answered_before_its_body() {
    let env = Env::load();
    let s = Scratch::new("swift-expect");
    let w = work(&s);
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(&env, &proxy.storage_url(), &run_prefix("expect"), &fast());
    let data = crate::support::random_bytes(9, 3 << 20);
    // Large uploads ask for `100 Continue`: the PUT goes through...
    proxy.clear();
    put_bytes(&b, &w, "big", &data).unwrap();
    assert_eq!(proxy.seen()[0].header("expect"), Some("100-continue"));
    assert_eq!(get_bytes(&b, &w, "big").unwrap(), data);
    // ...and a refusal arrives at once, not after the body, and is not retried.
    for (status, code) in [(401, exit::KEY_REJECTED), (413, exit::BACKEND)] {
        proxy.clear();
        proxy.set(Fault::status(status, 100));
        let t = Instant::now();
        let e = put_bytes(&b, &w, "big", &data).unwrap_err();
        assert_eq!(e.exit_code(), code, "{e}");
        assert_eq!(proxy.count(), 1);
        assert!(
            t.elapsed() < Duration::from_millis(900),
            "{:?}",
            t.elapsed()
        );
    }
}

/// Set up (with tempauth's token, as an operator would) a container whose full key is not
/// ASCII; the key travels as its UTF-8 bytes.
#[test]
fn a_non_ascii_key_works() {
    use swiftdup::backend::http::{self, Method, Request};
    let env = Env::load();
    let s = Scratch::new("swift-utf8-key");
    let c = http::client(&http::Options::default()).unwrap();
    let call = |method, url: String, headers: &[(&str, &str)]| {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        c.call(Request {
            method,
            url,
            headers,
            body: None,
        })
        .unwrap()
    };
    let auth = call(
        Method::Get,
        env.get("SWIFT_AUTHURL"),
        &[
            ("X-Storage-User", &env.get("SWIFT_USERNAME")),
            ("X-Storage-Pass", &env.get("SWIFT_PASSWORD")),
        ],
    );
    let token = auth
        .header("x-auth-token")
        .expect("tempauth token")
        .to_string();
    let container = format!("swiftdup-utf8-{}", std::process::id());
    let url = format!("{}/{container}", env.storage_url());
    let key = "clé-✓-キー";
    let put = call(
        Method::Put,
        url.clone(),
        &[("X-Auth-Token", &token), ("X-Container-Meta-Full-Key", key)],
    );
    assert!(put.status / 100 == 2, "create container: {}", put.status);
    let b = open(
        &env.storage_url(),
        &container,
        "",
        Some(key),
        None,
        Access::Write,
        &fast(),
    )
    .unwrap();
    crate::support::conformance::round_trip(&b, &work(&s));
    let e = first_request(
        open(
            &env.storage_url(),
            &container,
            "",
            Some("cle-✓-キー"),
            None,
            Access::Write,
            &fast(),
        ),
        Access::Write,
        &work(&s),
    );
    assert!(matches!(e, Error::KeyRejected { .. }), "{e}");
    let del = call(Method::Delete, url, &[("X-Auth-Token", &token)]);
    assert_eq!(del.status, 204, "remove container");
}

#[test]
fn missing_container_is_target_missing() {
    let env = Env::load();
    let proxy = FaultProxy::start(&env.storage_url());
    let name = format!("swiftdup-no-such-{}", std::process::id());
    let s = Scratch::new("swift-missing");
    // Whichever request comes first: a backup's lock PUT, or a restore's listing.
    for (access, method, path) in [
        (Access::Write, "PUT", format!("/{name}/first")),
        (Access::Read, "GET", format!("/{name}?")),
    ] {
        proxy.clear();
        let e = first_request(
            open(
                &proxy.storage_url(),
                &name,
                "",
                Some(&env.full_key()),
                None,
                access,
                &Options::default(),
            ),
            access,
            &work(&s),
        );
        assert!(matches!(e, Error::TargetMissing(_)), "{e}");
        assert!(e.to_string().contains(&name), "{e}");
        assert_eq!(proxy.count(), 1);
        // Nothing account-level, and nothing created.
        let p = &proxy.seen()[0];
        assert_eq!(p.method, method);
        assert!(p.path.contains(&path), "{}", p.path);
    }

    // The binary says so with its exit code.
    let o = run_cli(
        &[
            "restore",
            &format!("swiftkeys://{name}"),
            s.join("out").to_str().unwrap(),
            "--archive-dir",
            s.join("cache").to_str().unwrap(),
        ],
        &cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]),
    );
    assert_eq!(
        o.status.code(),
        Some(exit::TARGET_MISSING),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn missing_configuration_is_a_usage_error_naming_the_variable() {
    let env = Env::load();
    let s = Scratch::new("swift-usage");
    let out = s.join("out").display().to_string();
    let url = format!("swiftkeys://{}", env.container());
    let o = run_cli(
        &["restore", &url, &out],
        &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())],
    );
    assert_eq!(o.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SWIFT_STORAGE_URL"));
    let o = run_cli(&["restore", &url, &out], &cli_env(&env, &[]));
    assert_eq!(o.status.code(), Some(exit::USAGE));
    assert!(String::from_utf8_lossy(&o.stderr).contains("SWIFT_CONTAINER_READ_TOKEN"));
}

#[test]
fn requests_carry_the_key_and_never_an_auth_token() {
    let env = Env::load();
    let s = Scratch::new("swift-headers");
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(&env, &proxy.storage_url(), &run_prefix("headers"), &fast());
    crate::support::conformance::round_trip(&b, &work(&s));
    crate::support::conformance::missing_objects(&b, &work(&s));
    let seen = proxy.seen();
    assert!(seen.len() >= 10);
    let container_path = format!("/{}", env.container());
    for r in &seen {
        assert!(r.header("x-auth-token").is_none(), "{r:?}");
        assert!(r.header("x-storage-token").is_none(), "{r:?}");
        assert_eq!(
            r.header("x-container-meta-full-key"),
            Some(&*env.full_key())
        );
        // Container- or object-level only: never the account.
        let (_, after_account) = r.path.split_at(r.path.find("/AUTH_").unwrap());
        let rest = &after_account[after_account[1..].find('/').unwrap() + 1..];
        assert!(rest.starts_with(&container_path), "{}", r.path);
    }
    // Uploads carry their MD5.
    assert!(seen
        .iter()
        .filter(|r| r.method == "PUT")
        .all(|r| r.header("etag").is_some_and(|e| e.len() == 32)));
}

/// Round trip through the proxy with `fault` set before each operation; returns the number
/// of requests the proxy saw.
fn round_trip_under(fault: Fault, opts: &Options, test: &str) -> (Result<(), Error>, usize) {
    let env = Env::load();
    let s = Scratch::new(&format!("swift-fault-{test}"));
    let w = work(&s);
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(&env, &proxy.storage_url(), &run_prefix(test), opts);
    let data = crate::support::random_bytes(11, 300_000);
    proxy.clear();
    let res = (|| {
        proxy.set(fault.clone());
        put_bytes(&b, &w, "obj", &data)?;
        proxy.set(fault.clone());
        assert_eq!(get_bytes(&b, &w, "obj")?, data);
        proxy.set(fault.clone());
        assert_eq!(b.list("")?, vec!["obj".to_string()]);
        proxy.set(fault.clone());
        b.delete("obj")
    })();
    (res, proxy.count())
}

#[test]
fn connection_resets_are_retried() {
    let (res, count) = round_trip_under(Fault::Reset(2), &fast(), "reset");
    res.expect("resets within the retry budget");
    // Two resets before each operation; the listing is one page.
    assert_eq!(count, 4 * 3);
}

#[test]
fn bursts_of_503_are_retried() {
    let fault = Fault::status(503, 3);
    let (res, count) = round_trip_under(fault, &fast(), "503");
    res.expect("503 bursts within the retry budget");
    assert_eq!(count, 4 * 4);
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let fault = Fault::Status {
        status: 429,
        n: 1,
        retry_after: Some(1),
    };
    let t = Instant::now();
    let (res, count) = round_trip_under(fault, &fast(), "429");
    res.expect("429 then success");
    assert_eq!(count, 4 * 2);
    // Four waits of one second each, although the backoff alone is 20 ms.
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());
}

#[test]
fn persistent_errors_give_up_with_a_clear_error() {
    let mut opts = fast();
    opts.num_retries = 2;
    let fault = Fault::status(503, 1000);
    let (res, count) = round_trip_under(fault, &opts, "503-forever");
    let e = res.unwrap_err();
    assert_eq!(count, 3, "1 try + 2 retries");
    let msg = e.to_string();
    assert!(msg.starts_with("obj: HTTP 503"), "{msg}");
    assert!(msg.contains("gave up after 3 attempts"), "{msg}");
    assert_eq!(e.trans_id(), Some("txfault503"));
    assert_eq!(e.exit_code(), exit::BACKEND);
}

#[test]
fn final_statuses_are_not_retried_and_explain_themselves() {
    for (status, words) in [
        (413, "lower --volsize"),
        (422, "MD5"),
        (411, "Content-Length"),
        (403, "refused"),
    ] {
        let fault = Fault::status(status, 1000);
        let (res, count) = round_trip_under(fault, &fast(), &format!("final-{status}"));
        let e = res.unwrap_err();
        assert_eq!(count, 1, "{status} was retried");
        assert!(e.to_string().contains(words), "{status}: {e}");
        assert_eq!(e.object(), Some("obj"));
    }
}

#[test]
fn a_stalled_server_times_out_and_is_retried() {
    let mut opts = fast();
    opts.http.timeout = Duration::from_secs(1);
    let t = Instant::now();
    let (res, count) = round_trip_under(Fault::Stall(1), &opts, "stall");
    res.expect("one stall, then success");
    assert_eq!(count, 4 * 2);
    assert!(t.elapsed() >= Duration::from_secs(4), "{:?}", t.elapsed());

    // A server that never answers: a clear timeout error after the retries.
    opts.num_retries = 1;
    let t = Instant::now();
    let (res, count) = round_trip_under(Fault::Stall(100), &opts, "stall-forever");
    let e = res.unwrap_err();
    assert_eq!(count, 2);
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(e.to_string().contains("gave up after 2 attempts"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

#[test]
fn a_slow_body_hits_the_body_budget() {
    let env = Env::load();
    let s = Scratch::new("swift-body-budget");
    let w = work(&s);
    let mut opts = fast();
    opts.num_retries = 1;
    opts.http.body_timeout_override = Some(Duration::from_secs(2));
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(
        &env,
        &proxy.storage_url(),
        &run_prefix("body-budget"),
        &opts,
    );
    put_bytes(&b, &w, "slow", &crate::support::random_bytes(3, 300_000)).unwrap();
    // 300 KB at 10 KB/s: never idle for the 10 s per-read timeout, but over the 2 s budget.
    proxy.set(Fault::TrickleGet(100));
    let t = Instant::now();
    let e = get_bytes(&b, &w, "slow").unwrap_err();
    assert!(e.to_string().contains("timed out"), "{e}");
    assert!(e.to_string().contains("gave up after 2 attempts"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    // A trickle that fits the budget passes.
    proxy.set(Fault::TrickleGet(1));
    assert_eq!(b.list("").unwrap(), vec!["slow".to_string()]);
}

#[test]
fn truncated_downloads_are_retried() {
    let (res, count) = round_trip_under(Fault::TruncateGet(2), &fast(), "truncate");
    res.expect("two short bodies, then the whole");
    // Only the GET is hit: 1 PUT + 3 GETs + 1 listing page + 1 DELETE.
    assert_eq!(count, 6);

    let mut opts = fast();
    opts.num_retries = 1;
    let (res, _) = round_trip_under(Fault::TruncateGet(100), &opts, "truncate-forever");
    let e = res.unwrap_err();
    assert_eq!(e.exit_code(), exit::BACKEND);
    assert!(
        e.to_string().contains("broke off") || e.to_string().contains("truncated"),
        "{e}"
    );
}

/// A volume's download is checked against the SHA-1 its manifest gives instead of Swift's
/// Etag: bytes damaged on the way are fetched again (the Etag, checked only then, tells
/// them from a stored object that differs), while a stored object that is not the one the
/// manifest names is an integrity error at once, never retried.
#[test]
fn volume_downloads_are_checked_by_sha1_and_damage_on_the_way_is_retried() {
    use sha1::{Digest, Sha1};
    let env = Env::load();
    let s = Scratch::new("swift-fault-flip");
    let w = work(&s);
    let proxy = FaultProxy::start(&env.storage_url());
    let b = full(&env, &proxy.storage_url(), &run_prefix("flip"), &fast());
    let data = crate::support::random_bytes(12, 300_000);
    put_bytes(&b, &w, "vol", &data).unwrap();
    let sha1 = |d: &[u8]| swiftdup::archive::hex(&Sha1::digest(d));
    let get = |want: &str| {
        let mut f = tempfile_in(&w);
        let n = b.get_sha1("vol", &mut f, want)?;
        let mut got = Vec::new();
        std::io::Seek::rewind(&mut f).unwrap();
        std::io::Read::read_to_end(&mut f, &mut got).unwrap();
        assert_eq!(n, got.len() as u64);
        Ok::<_, Error>(got)
    };
    let gets = |p: &FaultProxy| p.seen().iter().filter(|r| r.method == "GET").count();

    proxy.clear();
    proxy.set(Fault::FlipGet(1));
    assert_eq!(get(&sha1(&data)).unwrap(), data);
    assert_eq!(gets(&proxy), 2, "the damaged download is fetched again");

    proxy.clear();
    let e = get(&sha1(b"another volume")).unwrap_err();
    assert_eq!(e.exit_code(), exit::INTEGRITY, "{e}");
    assert!(e.to_string().contains("hash mismatch"), "{e}");
    assert_eq!(
        gets(&proxy),
        1,
        "a stored object that differs is not fetched again"
    );

    // Other objects are still checked against the Etag.
    proxy.clear();
    proxy.set(Fault::FlipGet(1));
    assert_eq!(get_bytes(&b, &w, "vol").unwrap(), data);
    assert_eq!(gets(&proxy), 2);
    b.delete("vol").unwrap();
}

fn tempfile_in(dir: &Path) -> fs::File {
    let path = dir.join(format!("dl-{}", std::process::id()));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .expect("a temporary file");
    let _ = fs::remove_file(&path);
    f
}

/// What the issue calls the manual end-to-end, automated: a full and an incremental
/// backup with the full key, restored with only the read key.
#[test]
fn backup_and_restore_through_swift() {
    let env = Env::load();
    let s = Scratch::new("swift-e2e");
    let src = s.join("src");
    fs::create_dir_all(src.join("dir with space")).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(
        src.join("dir with space/b#?.bin"),
        crate::support::random_bytes(5, 3_000_000),
    )
    .unwrap();
    fs::write(src.join("ünïcødé"), b"utf-8").unwrap();
    let prefix = run_prefix("e2e");
    let url = format!("swiftkeys://{}/{prefix}", env.container());
    let cache = s.join("cache").display().to_string();
    let full_env = cli_env(&env, &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key())]);
    let backup = |verb: &str, t: &str| {
        let o = run_cli(
            &[
                verb,
                src.to_str().unwrap(),
                &url,
                "--no-encryption",
                "--volsize",
                "1",
                "--archive-dir",
                &cache,
                "--current-time",
                t,
            ],
            &full_env,
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{verb}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    backup("full", "1700000000");
    fs::write(src.join("a.txt"), b"alpha, changed").unwrap();
    fs::write(src.join("new"), b"new file").unwrap();
    backup("incremental", "1700000100");

    let b = full(&env, &env.storage_url(), &prefix, &fast());
    let names = b.list("").unwrap();
    assert!(names.iter().any(|n| n.contains(".vol3.")), "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("duplicity-inc.")),
        "{names:?}"
    );

    // Restore with the read key only and a fresh cache: everything comes from Swift.
    let out = s.join("out");
    let o = run_cli(
        &[
            "restore",
            &url,
            out.to_str().unwrap(),
            "--archive-dir",
            s.join("cache2").to_str().unwrap(),
        ],
        &cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]),
    );
    assert_ok(&o);
    crate::support::assert_same_tree(&src, &out, false);
    assert_no_key_in(&o.stderr, &env);
}

/// The §4.4 check on Swift: an encrypted incremental fetches one object of the chain, the
/// newest manifest, which it decrypts to its MDC to prove that its passphrase opens the
/// chain (ten requests in all: the lock, one listing page, that manifest, volume,
/// signatures, manifest, then the chain record's listing, the previous record and the new
/// one, and the lock's release; the lock's PUT is also what tells a wrong key from a
/// missing container). A remote manifest replaced by another of the same name is found:
/// exit 5, one error event, nothing written.
#[test]
fn an_incremental_fetches_nothing_yet_finds_a_replaced_manifest() {
    let env = Env::load();
    let s = Scratch::new("swift-md5-check");
    let w = work(&s);
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    let proxy = FaultProxy::start(&env.storage_url());
    let mut cli = cli_env(
        &env,
        &[
            ("SWIFT_CONTAINER_FULL_TOKEN", env.full_key()),
            ("PASSPHRASE", "md5 check".to_string()),
        ],
    );
    cli[0].1 = proxy.storage_url();
    let (mine, other) = (run_prefix("md5-mine"), run_prefix("md5-other"));
    let backup = |verb: &str, prefix: &str, t: &str| {
        let url = format!("swiftkeys://{}/{prefix}", env.container());
        let cache = s.join(&format!("cache-{prefix}"));
        run_cli(
            &[
                verb,
                src.to_str().unwrap(),
                &url,
                "--archive-dir",
                cache.to_str().unwrap(),
                "--current-time",
                t,
            ],
            &cli,
        )
    };
    let ok = |o: std::process::Output| {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    // The same tree at the same time under two prefixes: same names, other sealed bytes.
    ok(backup("full", &mine, "1700000000"));
    ok(backup("full", &other, "1700000000"));
    let b = full(&env, &env.storage_url(), &mine, &fast());
    let theirs = full(&env, &env.storage_url(), &other, &fast());
    let manifest = b
        .list("")
        .unwrap()
        .into_iter()
        .find(|n| n.ends_with(".manifest.gpg"))
        .unwrap();
    let kept = get_bytes(&b, &w, &manifest).unwrap();
    let replacement = get_bytes(&theirs, &w, &manifest).unwrap();
    assert_ne!(kept, replacement);

    put_bytes(&b, &w, &manifest, &replacement).unwrap();
    let before = b.list("").unwrap();
    let o = backup("incremental", &mine, "1700000100");
    assert_eq!(
        o.status.code(),
        Some(exit::MANIFEST_MISMATCH),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(log.matches(r#""event":"error""#).count(), 1, "{log}");
    assert!(log.contains("manifest_mismatch"), "{log}");
    let after: Vec<String> = b
        .list("")
        .unwrap()
        .into_iter()
        .filter(|n| !n.contains("swiftdup-lock."))
        .collect();
    assert_eq!(after, before, "the refused run wrote to the target");

    put_bytes(&b, &w, &manifest, &kept).unwrap();
    proxy.clear();
    ok(backup("incremental", &mine, "1700000100"));
    let seen: Vec<(String, String)> = proxy
        .seen()
        .into_iter()
        .map(|r| (r.method, r.path))
        .collect();
    let container = format!("/{}/", env.container());
    let fetched: Vec<&String> = seen
        .iter()
        .filter(|(m, p)| m == "GET" && p.contains(&container) && !p.contains('?'))
        .map(|(_, p)| p)
        .collect();
    assert!(
        fetched.len() == 2
            && fetched[0].ends_with(&manifest)
            && fetched[1].contains("swiftdup-record."),
        "only the newest manifest (and the chain record) may be fetched: {seen:?}"
    );
    assert_eq!(seen.len(), 10, "{seen:?}");
}

/// Exit 0, and neither key in anything the run printed.
fn ok_without_keys(o: &std::process::Output, env: &Env) {
    assert_ok(o);
    assert_no_key_in(&o.stderr, env);
    assert_no_key_in(&o.stdout, env);
}

fn assert_no_key_in(log: &[u8], env: &Env) {
    let log = String::from_utf8_lossy(log);
    for k in [env.full_key(), env.read_key()] {
        assert!(!log.contains(&k), "a key was logged");
    }
}

#[test]
fn lock_objects_expire_by_themselves_on_swift() {
    let env = Env::load();
    let s = Scratch::new("swift-lock-expiry");
    let prefix = run_prefix("lock-expiry");
    let b = full(&env, &env.storage_url(), &prefix, &fast());
    let p = work(&s).join("lock");
    fs::write(&p, b"{}").unwrap();
    // Swift turns X-Delete-After into X-Delete-At = int(now + n): the object lives between
    // n-1 and n seconds. With n = 1 a slow machine saw it gone before the first GET.
    let ttl = Duration::from_secs(4);
    let put_at = Instant::now();
    b.put_expiring("swiftdup-lock.1.ab.2", &p, ttl).unwrap();
    let scratch = |n: &str| {
        fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(work(&s).join(n))
            .unwrap()
    };
    let got = b.get("swiftdup-lock.1.ab.2", &mut scratch("got1"));
    if put_at.elapsed() < ttl - Duration::from_secs(1) {
        got.unwrap();
    }
    std::thread::sleep((ttl + Duration::from_millis(500)).saturating_sub(put_at.elapsed()));
    let mut f = scratch("got2");
    assert!(
        matches!(
            b.get("swiftdup-lock.1.ab.2", &mut f),
            Err(Error::NotFound(_))
        ),
        "the lock object outlived its X-Delete-After"
    );
}

#[test]
fn locking_status_and_retention_through_swift() {
    let env = Env::load();
    let s = Scratch::new("swift-ops");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), crate::support::random_bytes(9, 200_000)).unwrap();
    let prefix = run_prefix("ops");
    let url = format!("swiftkeys://{}/{prefix}", env.container());
    let cache = s.join("cache").display().to_string();
    let full_env = cli_env(&env, &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key())]);
    let read_env = cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]);
    let run = |args: &[&str], env: &[(&str, String)]| {
        let mut a = args.to_vec();
        a.extend(["--no-encryption", "--archive-dir", &cache]);
        run_cli(&a, env)
    };
    for (i, t) in ["1700000000", "1700000100", "1700000200"]
        .iter()
        .enumerate()
    {
        fs::write(
            src.join("a"),
            crate::support::random_bytes(9 + i as u64, 200_000),
        )
        .unwrap();
        let o = run(
            &["full", src.to_str().unwrap(), &url, "--current-time", t],
            &full_env,
        );
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // A live lock of another job: a backup is refused at once.
    let b = full(&env, &env.storage_url(), &prefix, &fast());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let p = work(&s).join("lock");
    fs::write(&p, b"{}").unwrap();
    let other = format!("swiftdup-lock.{}.00cc.{}", now - 5, now + 600);
    b.put_expiring(&other, &p, Duration::from_secs(600))
        .unwrap();
    let o = run(
        &[
            "incremental",
            src.to_str().unwrap(),
            &url,
            "--current-time",
            "1700000300",
        ],
        &full_env,
    );
    assert_eq!(
        o.status.code(),
        Some(23),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // status with only the read key shows it.
    let o = run(&["collection-status", &url, "--json"], &read_env);
    assert_ok(&o);
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["chains"].as_array().unwrap().len(), 3);
    assert_eq!(doc["locks"][0]["object"], other.as_str());
    assert_eq!(doc["locks"][0]["live"], true);
    // Retention under the lock after --break-lock; a read key cannot delete.
    let o = run(&["remove-all-but-n-full", "1", &url, "--force"], &read_env);
    assert_eq!(
        o.status.code(),
        Some(53),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        &[
            "remove-all-but-n-full",
            "1",
            &url,
            "--force",
            "--break-lock",
        ],
        &full_env,
    );
    assert_ok(&o);
    let names = b.list("").unwrap();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("20231114T221320Z") && !n.contains("20231114T221500Z")),
        "{names:?}"
    );
    assert!(
        names.iter().all(|n| !n.starts_with("swiftdup-lock.")),
        "{names:?}"
    );
    let o = run(
        &["verify", &url, src.to_str().unwrap(), "--compare-data"],
        &read_env,
    );
    ok_without_keys(&o, &env);
}

/// SIGTERM while a request hangs on a stalled server: the run is ended within 10 s of the
/// signal (the kubelet's grace is 30 s, and a stalled request would hold the run for
/// minutes), with `summary` and `exit 143`, its spool files gone and its lock released, so
/// the next run goes ahead without --break-lock or --lock-wait.
#[test]
fn sigterm_during_a_stalled_request_ends_within_ten_seconds_and_frees_the_lock() {
    use std::io::{BufRead, Read};
    let env = Env::load();
    let s = Scratch::new("swift-sigterm-stall");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        fs::write(
            src.join(format!("f{i}")),
            crate::support::random_bytes(i, 1_000_000),
        )
        .unwrap();
    }
    let tmp = s.join("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let proxy = FaultProxy::start(&env.storage_url());
    let mut cli = cli_env(
        &env,
        &[
            ("SWIFT_CONTAINER_FULL_TOKEN", env.full_key()),
            ("PASSPHRASE", "a passphrase for the stall".to_string()),
        ],
    );
    cli[0].1 = proxy.storage_url();
    let url = format!("swiftkeys://{}/{}", env.container(), run_prefix("sigterm"));
    let cache = s.join("cache").display().to_string();
    let args = [
        "full",
        src.to_str().unwrap(),
        &url,
        "--volsize",
        "1",
        "--archive-dir",
        &cache,
        "--tempdir",
        tmp.to_str().unwrap(),
    ];
    let mut child = std::process::Command::new(crate::support::swiftdup_bin())
        .args(args)
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .envs(cli.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut err = String::new();
    while !err.contains(r#""event":"plan""#) {
        let before = err.len();
        stderr.read_line(&mut err).unwrap();
        assert!(err.len() > before, "the run ended before planning: {err}");
    }
    // The next request (a volume's upload) hangs; SIGTERM once it does.
    proxy.set(Fault::Stall(1));
    let waited = std::time::Instant::now();
    while !proxy.seen().iter().any(|r| r.faulted) {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no request stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let signalled = std::time::Instant::now();
    stderr.read_to_string(&mut err).unwrap();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "exit came {took:?} after SIGTERM:\n{err}"
    );
    let evs: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        evs.iter().filter(|e| e["event"] == "summary").count(),
        1,
        "{err}"
    );
    assert_eq!(evs.last().unwrap()["event"], "exit");
    assert_eq!(evs.last().unwrap()["exit_code"], 143);
    let left: Vec<_> = fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "spool files left: {left:?}");
    // The lock is gone: the next run needs neither --break-lock nor --lock-wait.
    proxy.set(Fault::None);
    let o = run_cli(&args, &cli);
    assert_ok(&o);

    // Now the run's own thread hangs, holding the lock: an incremental's download of the
    // newest manifest stalls. The run is ended for it, its lock released all the same.
    proxy.set(Fault::StallGet {
        suffix: ".manifest.gpg".into(),
        n: 1,
    });
    proxy.clear();
    fs::write(src.join("f0"), b"changed").unwrap();
    let mut inc = args.to_vec();
    inc[0] = "incremental";
    let mut child = std::process::Command::new(crate::support::swiftdup_bin())
        .args(&inc)
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .envs(cli.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while !proxy.seen().iter().any(|r| r.faulted) {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "no request stalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let signalled = std::time::Instant::now();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(143), "{err}");
    assert!(
        took < Duration::from_secs(10),
        "exit came {took:?} after SIGTERM:\n{err}"
    );
    let evs: Vec<serde_json::Value> = err
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let names: Vec<&str> = evs.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names[names.len() - 3..],
        ["error", "summary", "exit"],
        "{err}"
    );
    assert_eq!(evs.last().unwrap()["exit_code"], 143);
    let o = run_cli(&inc, &cli);
    assert_ok(&o);
}

/// The keys from the files a mounted Kubernetes Secret gives: a backup with the full key's
/// file and a restore with the read key's, byte-identical, and neither key in any output.
#[test]
fn keys_from_files_back_up_and_restore() {
    let env = Env::load();
    let s = Scratch::new("swift-key-files");
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("d/a"), crate::support::random_bytes(8, 200_000)).unwrap();
    fs::write(src.join("b"), b"bee").unwrap();
    // As `kubectl create secret --from-file` stores them: with a trailing newline.
    fs::write(s.join("full"), format!("{}\n", env.full_key())).unwrap();
    fs::write(s.join("read"), format!("{}\n", env.read_key())).unwrap();
    let url = format!(
        "swiftkeys://{}/{}",
        env.container(),
        run_prefix("key-files")
    );
    let out = s.join("out");
    let run_ok = |args: &[&str], var: &'static str, file: &str| {
        let o = run_cli(
            args,
            &cli_env(&env, &[(var, s.join(file).display().to_string())]),
        );
        ok_without_keys(&o, &env);
    };
    let (src_s, out_s) = (src.to_str().unwrap(), out.to_str().unwrap());
    let (c1, c2) = (s.join("c1"), s.join("c2"));
    run_ok(
        &[
            "full",
            src_s,
            &url,
            "--no-encryption",
            "--archive-dir",
            c1.to_str().unwrap(),
        ],
        "SWIFT_CONTAINER_FULL_TOKEN_FILE",
        "full",
    );
    run_ok(
        &[
            "restore",
            &url,
            out_s,
            "--archive-dir",
            c2.to_str().unwrap(),
        ],
        "SWIFT_CONTAINER_READ_TOKEN_FILE",
        "read",
    );
    crate::support::assert_same_tree(&src, &out, true);
}

/// `--limit-upload` and `--limit-download` hold the whole run to the rate, all upload
/// threads together: 3 MB at 512 KiB/s cannot take less than ~5 s either way (a lower
/// bound only: a slow machine only makes it longer), and the tree comes back identical.
#[test]
fn bandwidth_limits_hold_the_run_to_the_rate() {
    let env = Env::load();
    let s = Scratch::new("swift-limits");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..3 {
        fs::write(
            src.join(format!("f{i}")),
            crate::support::random_bytes(40 + i, 1_000_000),
        )
        .unwrap();
    }
    let url = format!("swiftkeys://{}/{}", env.container(), run_prefix("limits"));
    let (out, c1, c2) = (s.join("out"), s.join("c1"), s.join("c2"));
    let keys = cli_env(&env, &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key())]);
    let timed = |args: &[&str]| {
        let t0 = Instant::now();
        let o = run_cli(args, &keys);
        ok_without_keys(&o, &env);
        t0.elapsed()
    };
    // Three volumes of 1 MiB, uploaded two at a time.
    let up = timed(&[
        "full",
        src.to_str().unwrap(),
        &url,
        "--no-encryption",
        "--volsize",
        "1",
        "--concurrency",
        "2",
        "--limit-upload",
        "512",
        "--archive-dir",
        c1.to_str().unwrap(),
    ]);
    assert!(up >= Duration::from_millis(4500), "upload took {up:?}");
    let down = timed(&[
        "restore",
        &url,
        out.to_str().unwrap(),
        "--limit-download",
        "512",
        "--archive-dir",
        c2.to_str().unwrap(),
    ]);
    assert!(
        down >= Duration::from_millis(4500),
        "download took {down:?}"
    );
    crate::support::assert_same_tree(&src, &out, true);
}

/// A full stopped by SIGTERM (a Job's deadline) is continued by the next run, which has
/// no archive directory left: it keeps the volumes already stored (their progress objects
/// were stored beside them), stores the rest, and the set restores with the read key
/// byte-identical, with no progress object left and no key in any output.
#[test]
fn a_full_stopped_by_sigterm_is_continued_by_the_next_run() {
    use std::io::BufRead;
    let env = Env::load();
    let s = Scratch::new("swift-resume");
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("big"), crate::support::random_bytes(70, 3_500_000)).unwrap();
    fs::write(src.join("d/small"), b"small").unwrap();
    let prefix = run_prefix("resume");
    let url = format!("swiftkeys://{}/{prefix}", env.container());
    let mut keys = cli_env(&env, &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key())]);
    keys.push(("PASSPHRASE", "resume passphrase".to_string()));
    let args = |cache: &str| {
        vec![
            "full".to_string(),
            src.display().to_string(),
            url.clone(),
            "--volsize".into(),
            "1".into(),
            "--archive-dir".into(),
            s.join(cache).display().to_string(),
        ]
    };
    // Slowed down so that the signal comes after two volumes and before the last.
    let mut first = args("c1");
    first.extend(["--limit-upload".into(), "400".into()]);
    let mut child = std::process::Command::new(crate::support::swiftdup_bin())
        .args(&first)
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .envs(keys.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = String::new();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    for line in lines.by_ref() {
        let line = line.unwrap();
        err.push_str(&line);
        err.push('\n');
        if line.contains("\"event\":\"volume\"") && line.contains("\"number\":2") {
            break;
        }
    }
    std::process::Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    for line in lines {
        err.push_str(&line.unwrap());
        err.push('\n');
    }
    assert_eq!(child.wait().unwrap().code(), Some(143), "{err}");
    assert_no_key_in(err.as_bytes(), &env);

    let o = run_cli(
        &args("c2").iter().map(String::as_str).collect::<Vec<_>>(),
        &keys,
    );
    ok_without_keys(&o, &env);
    let evs = crate::support::events(&o);
    let resumed = evs
        .iter()
        .find(|e| e["event"] == "resume")
        .unwrap_or_else(|| panic!("no resume event:\n{}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(resumed["resumed"], true, "{resumed}");
    let kept = resumed["volumes_kept"].as_u64().unwrap();
    assert!(kept >= 2, "{resumed}");
    for v in evs.iter().filter(|e| e["event"] == "volume") {
        assert!(v["number"].as_u64().unwrap() > kept, "stored again: {v}");
    }

    let names = full(&env, &env.storage_url(), &prefix, &fast())
        .list("")
        .unwrap();
    assert!(names.iter().any(|n| n.contains("manifest")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.contains("swiftdup-progress")),
        "progress objects left: {names:?}"
    );
    let out = s.join("out");
    let mut reader = cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]);
    reader.push(("PASSPHRASE", "resume passphrase".to_string()));
    let o = run_cli(
        &[
            "restore",
            &url,
            out.to_str().unwrap(),
            "--archive-dir",
            s.join("c3").to_str().unwrap(),
        ],
        &reader,
    );
    ok_without_keys(&o, &env);
    crate::support::assert_same_tree(&src, &out, true);
}

/// Rotation without a window: a key variable may hold several keys, newest first. The
/// newest rejected and an older accepted: the run succeeds and says so once (`older_key`);
/// the newest accepted: no word of the others; none accepted: `key_rejected` (52). In a
/// key file they come one a line. No key reaches the log.
#[test]
fn several_keys_in_a_variable_rotate_without_a_window() {
    let env = Env::load();
    let s = Scratch::new("swift-key-rotation");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), crate::support::random_bytes(9, 50_000)).unwrap();
    let url = format!("swiftkeys://{}/{}", env.container(), run_prefix("rotation"));
    let (new, old) = ("the-new-key-not-yet-on-the-container", env.full_key());
    let run = |var: &'static str, value: String, args: &[&str]| {
        let cache = s.join(&format!("cache-{}", args[0])).display().to_string();
        let mut a = args.to_vec();
        a.extend(["--no-encryption", "--archive-dir", &cache]);
        let o = run_cli(&a, &cli_env(&env, &[(var, value)]));
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains(new),
            "a key was logged"
        );
        assert_no_key_in(&o.stderr, &env);
        o
    };
    let older_key = |o: &std::process::Output| -> Vec<serde_json::Value> {
        crate::support::events(o)
            .into_iter()
            .filter(|e| e["code"] == "older_key")
            .collect()
    };
    let src_s = src.display().to_string();
    let o = run(ENV_FULL, format!("{new},{old}"), &["full", &src_s, &url]);
    assert_ok(&o);
    let warned = older_key(&o);
    assert_eq!(warned.len(), 1, "one warning for the whole run: {warned:?}");
    assert_eq!(warned[0]["key_number"], 2);
    assert_eq!(warned[0]["variable"], ENV_FULL);

    let o = run(
        ENV_FULL,
        format!("{old},{new}"),
        &["incremental", &src_s, &url],
    );
    assert_ok(&o);
    assert!(older_key(&o).is_empty());

    let o = run(
        ENV_FULL,
        format!("{new},also-wrong"),
        &["incremental", &src_s, &url],
    );
    assert_eq!(o.status.code(), Some(exit::KEY_REJECTED));

    // The read key's file, one key a line (as a mounted Secret holds them), for a restore.
    let file = s.join("read-keys");
    fs::write(&file, format!("{new}\n{}\n", env.read_key())).unwrap();
    let out = s.join("out");
    let o = run(
        "SWIFT_CONTAINER_READ_TOKEN_FILE",
        file.display().to_string(),
        &["restore", &url, &out.display().to_string()],
    );
    assert_ok(&o);
    assert_eq!(older_key(&o).len(), 1);
    crate::support::assert_same_tree(&src, &out, true);
}

/// `check` with the read key alone (what a check CronJob holds): a backup's volumes are
/// all read and pass, and no key is logged.
#[test]
fn check_runs_with_the_read_key_alone() {
    let env = Env::load();
    let s = Scratch::new("swift-check");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), crate::support::random_bytes(5, 1_500_000)).unwrap();
    let url = format!("swiftkeys://{}/{}", env.container(), run_prefix("check"));
    let cache = |n: &str| s.join(n).display().to_string();
    let full = cli_env(&env, &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key())]);
    let (src_s, c1) = (src.display().to_string(), cache("c1"));
    let args = [
        "full",
        &src_s,
        &url,
        "--no-encryption",
        "--volsize",
        "1",
        "--archive-dir",
        &c1,
    ];
    ok_without_keys(&run_cli(&args, &full), &env);
    let read = cli_env(&env, &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key())]);
    let c2 = cache("c2");
    let o = run_cli(&["check", &url, "--archive-dir", &c2], &read);
    ok_without_keys(&o, &env);
    let sum = crate::support::events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(sum["volumes_read"], sum["volumes"]);
    assert!(sum["volumes"].as_u64().unwrap() >= 2, "{sum}");
}

/// A nightly database dump piped in (`--stdin-name`): 1 GiB, then the next night's with
/// 1% of it changed in ten places, which uploads about 1% (deltas against the previous
/// dump's signature); restored byte for byte with the read key.
#[test]
fn a_gibibyte_dump_changed_by_one_percent_uploads_about_one_percent() {
    const LEN: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;
    let env = Env::load();
    let s = Scratch::new("swift-dump");
    let url = format!("swiftkeys://{}/{}", env.container(), run_prefix("dump"));
    let cache = s.join("cache").display().to_string();
    let full_env = cli_env(
        &env,
        &[
            ("SWIFT_CONTAINER_FULL_TOKEN", env.full_key()),
            ("PASSPHRASE", "nightly".into()),
        ],
    );
    let full_env: Vec<(&str, &str)> = full_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let night = |t: &str, edits: Vec<(u64, u64)>| {
        let args = [
            "backup",
            "--stdin-name",
            "db.sql",
            "-",
            &url,
            "--archive-dir",
            &cache,
            "--current-time",
            t,
        ];
        let (o, md5) = crate::support::swiftdup_fed(&args, &full_env, move |w| {
            crate::support::write_dump(w, LEN, 11, &edits)
        });
        ok_without_keys(&o, &env);
        let sum = crate::support::events(&o)
            .into_iter()
            .find(|e| e["event"] == "summary")
            .unwrap();
        assert_eq!(sum["bytes_read"], LEN, "{sum}");
        (sum["bytes_uploaded"].as_u64().unwrap(), md5)
    };
    let (_, first) = night("1700000000", Vec::new());
    let edits: Vec<(u64, u64)> = (0..10)
        .map(|k| (k * 100 * MIB + 7 * MIB, MIB + (24 << 10)))
        .collect();
    let changed: u64 = edits.iter().map(|e| e.1).sum();
    let (uploaded, second) = night("1700086400", edits);
    assert_ne!(first, second);
    let (share, changed_share) = (uploaded as f64 / LEN as f64, changed as f64 / LEN as f64);
    eprintln!(
        "dump: {:.3}% changed, {:.3}% uploaded",
        changed_share * 100.0,
        share * 100.0
    );
    assert!(
        share >= changed_share && share < changed_share * 1.5,
        "{:.2}% of the dump changed, {:.2}% uploaded",
        changed_share * 100.0,
        share * 100.0
    );

    let out = s.join("out");
    let o = run_cli(
        &[
            "restore",
            &url,
            out.to_str().unwrap(),
            "--archive-dir",
            s.join("cache2").to_str().unwrap(),
        ],
        &cli_env(
            &env,
            &[
                ("SWIFT_CONTAINER_READ_TOKEN", env.read_key()),
                ("PASSPHRASE", "nightly".into()),
            ],
        ),
    );
    ok_without_keys(&o, &env);
    assert_eq!(
        crate::support::conformance::md5_of(&out.join("db.sql")),
        second
    );
}

/// Tamper evidence over Swift: a set deleted with the full key (which can delete anything)
/// is found by a `check` that has only the read key.
#[test]
fn a_read_key_check_finds_a_set_deleted_with_the_full_key() {
    let env = Env::load();
    let s = Scratch::new("swift-records");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    let prefix = run_prefix("records");
    let url = format!("swiftkeys://{}/{prefix}", env.container());
    let cache = s.join("cache").display().to_string();
    let pass = ("PASSPHRASE", "records".to_string());
    let writer = cli_env(
        &env,
        &[("SWIFT_CONTAINER_FULL_TOKEN", env.full_key()), pass.clone()],
    );
    for t in ["1700000000", "1700000100", "1700000200"] {
        fs::write(src.join("f"), t).unwrap();
        let o = run_cli(
            &[
                "backup",
                src.to_str().unwrap(),
                &url,
                "--archive-dir",
                &cache,
                "--current-time",
                t,
            ],
            &writer,
        );
        ok_without_keys(&o, &env);
    }
    let reader = cli_env(
        &env,
        &[("SWIFT_CONTAINER_READ_TOKEN", env.read_key()), pass],
    );
    let check_cache = s.join("check-cache").display().to_string();
    let check = || run_cli(&["check", &url, "--archive-dir", &check_cache], &reader);
    ok_without_keys(&check(), &env);

    let b = full(&env, &env.storage_url(), &prefix, &fast());
    let doomed: Vec<String> = b
        .list("")
        .unwrap()
        .into_iter()
        .filter(|n| n.contains("20231114T221500Z.to.20231114T221640Z"))
        .collect();
    assert_eq!(doomed.len(), 3, "{doomed:?}");
    for n in &doomed {
        b.delete(n).unwrap();
    }
    let o = check();
    assert_eq!(
        o.status.code(),
        Some(exit::TAMPERED),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest = doomed.iter().find(|n| n.contains(".manifest")).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.lines()
            .any(|l| l.starts_with("set_vanished: ") && l.contains(manifest.as_str())),
        "{out}"
    );
    assert_no_key_in(&o.stderr, &env);
    assert_no_key_in(&o.stdout, &env);
}
