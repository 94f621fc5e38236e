//! Running swiftdup's `wasm32-wasip2` build under wasmtime, for tests/it/wasm.rs and
//! tests/it/swift_wasm.rs.
//!
//! The component is built once per test binary (`cargo build --release --target
//! wasm32-wasip2`, a no-op when it is up to date) unless `SWIFTDUP_WASM` names one already
//! built. wasmtime 48.0.8 must be installed (`bash tests/tools/install-wasmtime.sh`, which
//! `make test` runs); a missing runtime fails the tests rather than skipping them.
#![allow(dead_code)]

use crate::support::{random_bytes, set_mtime, symlink, touch_all};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

pub const WASMTIME_VERSION: &str = "48.0.8";
pub const WASM_TARGET: &str = "wasm32-wasip2";

/// The wasmtime binary: `$WASMTIME`, else `wasmtime` on PATH, else `~/.cargo/bin/wasmtime`;
/// it must print version 48.0.8.
pub fn wasmtime() -> PathBuf {
    static W: OnceLock<PathBuf> = OnceLock::new();
    W.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(w) = std::env::var_os("WASMTIME") {
            candidates.push(w.into());
        }
        // On PATH, as an absolute path: the guest runs with a minimal PATH.
        if let Some(path) = std::env::var_os("PATH") {
            candidates.extend(
                std::env::split_paths(&path)
                    .map(|d| d.join("wasmtime"))
                    .filter(|p| p.is_file()),
            );
        }
        if let Some(h) = std::env::var_os("CARGO_HOME").or_else(|| {
            std::env::var_os("HOME").map(|h| Path::new(&h).join(".cargo").into_os_string())
        }) {
            candidates.push(Path::new(&h).join("bin/wasmtime"));
        }
        let mut seen = Vec::new();
        for c in &candidates {
            if let Ok(o) = Command::new(c).arg("--version").output() {
                let v = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if v.starts_with(&format!("wasmtime {WASMTIME_VERSION}")) {
                    return c.clone();
                }
                seen.push(format!("{} says {v:?}", c.display()));
            }
        }
        panic!(
            "wasmtime {WASMTIME_VERSION} is needed to run the wasm build ({}): install it with \
             `bash tests/tools/install-wasmtime.sh` (make test does), or point WASMTIME at it",
            if seen.is_empty() {
                "none found".to_string()
            } else {
                seen.join("; ")
            }
        )
    })
    .clone()
}

/// The release wasm component, built once (or `$SWIFTDUP_WASM`).
pub fn component() -> PathBuf {
    static C: OnceLock<PathBuf> = OnceLock::new();
    C.get_or_init(|| {
        if let Some(p) = std::env::var_os("SWIFTDUP_WASM") {
            let p = PathBuf::from(p);
            assert!(p.is_file(), "SWIFTDUP_WASM={} does not exist", p.display());
            return p;
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let o = Command::new(cargo)
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--target",
                WASM_TARGET,
                "--bin",
                "swiftdup",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running cargo to build the wasm component");
        assert!(
            o.status.success(),
            "cargo build --release --target {WASM_TARGET} failed (rustup target add \
             {WASM_TARGET}?):\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let p = target.join(WASM_TARGET).join("release/swiftdup.wasm");
        assert!(p.is_file(), "{} was not built", p.display());
        p
    })
    .clone()
}

/// One `wasmtime run` of the component: preopened directories (`HOST::GUEST`) and the
/// guest's whole environment (nothing of the host's is passed).
#[derive(Clone)]
pub struct Guest {
    pub dirs: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
}

impl Guest {
    /// A guest with `scratch` preopened as `/scratch` and swiftdup's cache and temporary
    /// files there, the host name fixed (WASI has none) and the passphrase set.
    pub fn new(scratch: &Path, passphrase: &str) -> Guest {
        fs::create_dir_all(scratch.join("cache")).unwrap();
        fs::create_dir_all(scratch.join("tmp")).unwrap();
        Guest {
            dirs: vec![(scratch.to_path_buf(), "/scratch".into())],
            env: vec![
                ("PASSPHRASE".into(), passphrase.into()),
                ("SWIFTDUP_ARCHIVE_DIR".into(), "/scratch/cache".into()),
                ("TMPDIR".into(), "/scratch/tmp".into()),
                ("SWIFTDUP_HOSTNAME".into(), "wasm".into()),
                ("SWIFTDUP_LOG_FORMAT".into(), "json".into()),
            ],
        }
    }

    pub fn dir(mut self, host: &Path, guest: &str) -> Guest {
        self.dirs.push((host.to_path_buf(), guest.into()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Guest {
        self.env.retain(|(key, _)| key != k);
        self.env.push((k.into(), v.into()));
        self
    }

    /// The command line, for messages and for the README's example.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(wasmtime());
        // wasi:http (imported even for file:// targets) and exit codes beyond 0/1.
        c.args(["run", "-S", "http", "-S", "cli-exit-with-code"]);
        for (h, g) in &self.dirs {
            c.arg("--dir").arg(format!("{}::{g}", h.display()));
        }
        for (k, v) in &self.env {
            c.arg("--env").arg(format!("{k}={v}"));
        }
        c.arg(component()).args(args);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("running wasmtime")
    }

    /// Run and insist on exit 0, showing the guest's log otherwise.
    pub fn run_ok(&self, args: &[&str]) -> Output {
        self.run_expect(args, 0)
    }

    /// Run and insist on exit `code` (which the guest's `exit` event must agree with).
    pub fn run_expect(&self, args: &[&str], code: i32) -> Output {
        let o = self.run(args);
        let log = String::from_utf8_lossy(&o.stderr);
        assert_eq!(
            o.status.code(),
            Some(code),
            "wasmtime swiftdup.wasm {args:?}: unexpected exit status:\n{log}"
        );
        let logged = events_named(&o, "exit");
        assert_eq!(
            logged.last().map(|e| e["exit_code"].clone()),
            Some(code.into()),
            "{log}"
        );
        o
    }
}

/// A tree with what a WASI backup can carry (and a FIFO, which it must skip).
pub fn build_tree(src: &Path, seed: u64) {
    fs::create_dir_all(src.join("sub/deeper")).unwrap();
    fs::create_dir_all(src.join("emptydir")).unwrap();
    fs::write(src.join("hello.txt"), b"hello world\n").unwrap();
    fs::write(src.join("empty.txt"), b"").unwrap();
    let lines: String = (1..=3000).map(|i| format!("line {i}\n")).collect();
    fs::write(src.join("sub/changeme.txt"), lines).unwrap();
    // More than one 1 MiB volume, and a delta later.
    fs::write(src.join("sub/big.bin"), random_bytes(seed, 2_500_000)).unwrap();
    fs::write(src.join("sub/deeper/with space 'q'.txt"), b"spaces").unwrap();
    fs::write(src.join("ünïcödé ✓.txt"), "utf8".as_bytes()).unwrap();
    fs::write(src.join("deleteme.txt"), b"to be deleted\n").unwrap();
    symlink("hello.txt", &src.join("link"));
    symlink("../nowhere", &src.join("dangling"));
    let st = std::process::Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    touch_all(src, 1_699_990_000);
}

/// Change, add, delete, append and retarget, with new mtimes.
pub fn change_tree(src: &Path, seed: u64) {
    let lines: String = (1..=3100).map(|i| format!("line {i}\n")).collect();
    fs::write(src.join("sub/changeme.txt"), lines).unwrap();
    fs::remove_file(src.join("deleteme.txt")).unwrap();
    fs::write(src.join("new.txt"), b"new file\n").unwrap();
    fs::create_dir_all(src.join("newdir")).unwrap();
    let mut big = random_bytes(seed + 1, 50_000);
    big.extend_from_slice(&fs::read(src.join("sub/big.bin")).unwrap());
    fs::write(src.join("sub/big.bin"), big).unwrap();
    symlink("new.txt", &src.join("link"));
    for p in [
        "",
        "sub",
        "sub/changeme.txt",
        "sub/big.bin",
        "new.txt",
        "newdir",
        "link",
    ] {
        set_mtime(&src.join(p), 1_700_000_050);
    }
}

/// What a WASI run can reproduce of an entry: type, contents, link target, mtime (symlinks
/// included). Not modes or owners, and no special files (see README).
#[derive(Debug, PartialEq)]
struct Entry {
    kind: &'static str,
    mtime: i64,
    content: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

fn scan(root: &Path, rel: &Path, out: &mut BTreeMap<Vec<u8>, Entry>, skip_special: bool) {
    let p = root.join(rel);
    let m = fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else {
        "special"
    };
    if kind == "special" && skip_special {
        return;
    }
    out.insert(
        rel.as_os_str().as_bytes().to_vec(),
        Entry {
            kind,
            mtime: m.mtime(),
            content: ft.is_file().then(|| fs::read(&p).unwrap()),
            link: ft
                .is_symlink()
                .then(|| fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()),
        },
    );
    if ft.is_dir() {
        for e in fs::read_dir(&p).unwrap() {
            scan(root, &rel.join(e.unwrap().file_name()), out, skip_special);
        }
    }
}

/// `got` has the same entries as `expected` (types, contents, link targets and mtimes);
/// special files in `expected` are left out when `skip_special` (a WASI backup skips them).
pub fn assert_same_content(expected: &Path, got: &Path, skip_special: bool) {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    scan(expected, Path::new(""), &mut a, skip_special);
    scan(got, Path::new(""), &mut b, false);
    let mut diffs = Vec::new();
    for (k, v) in &a {
        let name = String::from_utf8_lossy(k);
        match b.get(k) {
            None => diffs.push(format!("missing: {name}")),
            Some(w) if w != v => diffs.push(format!(
                "differs: {name}: expected {} mtime {} len {:?} link {:?}; got {} mtime {} len {:?} link {:?}",
                v.kind,
                v.mtime,
                v.content.as_ref().map(Vec::len),
                v.link.as_deref().map(String::from_utf8_lossy),
                w.kind,
                w.mtime,
                w.content.as_ref().map(Vec::len),
                w.link.as_deref().map(String::from_utf8_lossy),
            )),
            _ => {}
        }
    }
    for k in b.keys().filter(|k| !a.contains_key(*k)) {
        diffs.push(format!("unexpected: {}", String::from_utf8_lossy(k)));
    }
    assert!(
        diffs.is_empty(),
        "trees differ ({} vs {}):\n{}",
        expected.display(),
        got.display(),
        diffs.join("\n")
    );
}

/// The events of a run's JSON log with the given `event` name.
pub fn events_named(o: &Output, name: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}
