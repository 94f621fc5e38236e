//! Shared helpers of the integration tests: scratch directories, tree builders, a strict
//! tree comparison (content, type, mode, mtime, link target), and runners for swiftdup and
//! stock duplicity.
#![allow(dead_code)]

pub mod conformance;
pub mod faultproxy;
pub mod forge;
pub mod history;
pub mod pushgateway;
pub mod wasm;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const T0: i64 = 1_700_000_000;
pub const T1: i64 = 1_700_000_100;
pub const T2: i64 = 1_700_000_200;
pub const T3: i64 = 1_700_000_300;

/// A scratch directory removed on drop (kept when SWIFTDUP_KEEP_TEST_DIRS is set).
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let base = std::env::var_os("SWIFTDUP_TEST_TMP")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        // Unique within the process too: every theme's tests run in one binary.
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = base.join(format!("swiftdup-test-{name}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    pub fn url(&self, p: &str) -> String {
        format!("file://{}", self.join(p).display())
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("SWIFTDUP_KEEP_TEST_DIRS").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

pub fn bytes_path(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

/// Deterministic pseudo-random bytes (xorshift), incompressible enough for volume tests.
pub fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Deterministic random letters and spaces: compressible (~4 bits a byte), so it is
/// deflated rather than stored, and slow enough to deflate that a run on it takes a while
/// (~30 MB/s per core at level 6), for tests that act while a backup is running.
pub fn random_letters(seed: u64, n: usize) -> Vec<u8> {
    random_bytes(seed, n)
        .iter()
        .map(|b| b"abcdefghijklmnop "[usize::from(*b % 17)])
        .collect()
}

pub fn set_mtime(p: &Path, t: i64) {
    swiftdup::local::platform::set_mtime(p, t).unwrap();
}

/// Set every entry's mtime in a tree (deepest first so directories keep theirs).
pub fn touch_all(root: &Path, t: i64) {
    let mut all = Vec::new();
    collect(root, &mut all);
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in all {
        set_mtime(&p, t);
    }
    set_mtime(root, t);
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            collect(&p, out);
        }
    }
}

pub fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
}

pub fn symlink(target: &str, p: &Path) {
    let _ = fs::remove_file(p);
    std::os::unix::fs::symlink(target, p).unwrap();
}

/// Copy a tree exactly (as `cp -a` would), to keep the expected state of a time.
pub fn snapshot(src: &Path, dst: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(src)
        .arg(dst)
        .status()
        .unwrap();
    assert!(st.success());
}

#[derive(Debug, PartialEq)]
struct Node {
    kind: String,
    mode: u32,
    mtime: Option<i64>,
    content: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
}

fn scan(
    root: &Path,
    rel: Vec<u8>,
    out: &mut BTreeMap<Vec<u8>, Node>,
    symlink_mtime: bool,
    is_root: bool,
) {
    let p = if rel.is_empty() {
        root.to_path_buf()
    } else {
        bytes_path(root, &rel)
    };
    let m = fs::symlink_metadata(&p).unwrap();
    let ft = m.file_type();
    let kind = if ft.is_symlink() {
        "symlink"
    } else if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if std::os::unix::fs::FileTypeExt::is_fifo(&ft) {
        "fifo"
    } else if std::os::unix::fs::FileTypeExt::is_char_device(&ft) {
        "chardev"
    } else {
        "special"
    };
    let kind = if kind == "chardev" {
        format!("chardev {}", m.rdev())
    } else {
        kind.to_string()
    };
    let node = Node {
        kind,
        mode: if ft.is_symlink() {
            0
        } else {
            m.mode() & 0o7777
        },
        mtime: if ft.is_symlink() && !symlink_mtime {
            None
        } else {
            Some(m.mtime())
        },
        content: if ft.is_file() {
            Some(fs::read(&p).unwrap())
        } else {
            None
        },
        link: if ft.is_symlink() {
            Some(fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec())
        } else {
            None
        },
    };
    // The restore target's own mode and mtime are those of the backed-up root.
    let _ = is_root;
    out.insert(rel.clone(), node);
    if ft.is_dir() {
        let mut names: Vec<Vec<u8>> = fs::read_dir(&p)
            .unwrap()
            .map(|e| e.unwrap().file_name().as_bytes().to_vec())
            .collect();
        names.sort();
        for n in names {
            let mut r = rel.clone();
            if !r.is_empty() {
                r.push(b'/');
            }
            r.extend_from_slice(&n);
            scan(root, r, out, symlink_mtime, false);
        }
    }
}

/// Compare two trees: the same paths, types, permission bits, mtimes, contents and link
/// targets. `symlink_mtime`: also compare symlink mtimes (stock never restores them).
pub fn assert_same_tree(expected: &Path, got: &Path, symlink_mtime: bool) {
    let mut a = BTreeMap::new();
    let mut b = BTreeMap::new();
    scan(expected, Vec::new(), &mut a, symlink_mtime, true);
    scan(got, Vec::new(), &mut b, symlink_mtime, true);
    let mut diffs = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => diffs.push(format!("missing: {}", String::from_utf8_lossy(k))),
            Some(w) if w != v => diffs.push(format!(
                "differs: {} expected {} mode {:o} mtime {:?} link {:?} len {:?}; got {} mode {:o} mtime {:?} link {:?} len {:?}",
                String::from_utf8_lossy(k),
                v.kind, v.mode, v.mtime, v.link.as_ref().map(|l| String::from_utf8_lossy(l).into_owned()), v.content.as_ref().map(Vec::len),
                w.kind, w.mode, w.mtime, w.link.as_ref().map(|l| String::from_utf8_lossy(l).into_owned()), w.content.as_ref().map(Vec::len)
            )),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("unexpected: {}", String::from_utf8_lossy(k)));
        }
    }
    assert!(
        diffs.is_empty(),
        "trees differ ({} vs {}):\n{}",
        expected.display(),
        got.display(),
        diffs.join("\n")
    );
}

pub fn swiftdup_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_swiftdup"))
}

/// Where runs without `--tempdir` or `TMPDIR` of their own keep temporary files (and, with
/// no HOME either, their cache): the build's scratch directory, not the machine's /tmp,
/// where every test run would leave caches and a killed run's spools.
pub const RUN_TMPDIR: &str = env!("CARGO_TARGET_TMPDIR");

/// Run swiftdup with a clean environment plus `env`; returns the output.
pub fn swiftdup(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(swiftdup_bin());
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", RUN_TMPDIR)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

/// Insist that a run exited 0, showing its logs otherwise.
pub fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Run swiftdup and insist on exit 0, showing its logs otherwise.
pub fn swiftdup_ok(args: &[&str], env: &[(&str, &str)]) -> Output {
    let o = swiftdup(args, env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "swiftdup {args:?} failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The JSON events a run wrote to stderr.
pub fn events(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// The `error` event of a failed run.
pub fn error_event(o: &Output) -> serde_json::Value {
    events(o)
        .into_iter()
        .find(|e| e["event"] == "error")
        .unwrap_or_else(|| panic!("no error event in:\n{}", String::from_utf8_lossy(&o.stderr)))
}

/// Run stock duplicity 0.8.22 with its own cache and GnuPG home inside `scratch`.
pub fn duplicity(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    let gh = scratch.join("gnupg-dup");
    fs::create_dir_all(&gh).unwrap();
    chmod(&gh, 0o700);
    let mut c = Command::new("duplicity");
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", scratch.join("home-dup"))
        .env("XDG_CACHE_HOME", scratch.join("cache-dup"))
        .env("GNUPGHOME", &gh)
        .env("TZ", "UTC")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

pub fn duplicity_ok(scratch: &Scratch, args: &[&str], env: &[(&str, &str)]) -> Output {
    let o = duplicity(scratch, args, env);
    assert_eq!(
        o.status.code(),
        Some(0),
        "duplicity {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A FIFO, and (as root, where devices can be made) a character device like /dev/null.
pub fn special_files(dir: &Path) {
    let st = Command::new("mkfifo")
        .arg(dir.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    if swiftdup::local::platform::is_root() {
        let st = Command::new("mknod")
            .arg(dir.join("null-device"))
            .args(["c", "1", "3"])
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// Build the interop tree and evolve it through three states, calling `backup(i, time)`
/// after each and keeping a copy of every state in `states/<i>`.
pub fn evolve_tree(s: &Scratch, mut backup: impl FnMut(usize, i64)) {
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    // state 0
    fs::write(src.join("file1.txt"), b"hello world\n").unwrap();
    fs::write(src.join("deleteme.txt"), b"delete me\n").unwrap();
    let lines: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    fs::write(src.join("changeme.txt"), lines).unwrap();
    fs::write(src.join("big.bin"), random_bytes(42, 2_621_440)).unwrap();
    fs::write(src.join("empty.txt"), b"").unwrap();
    fs::create_dir_all(src.join("emptydir")).unwrap();
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/a.txt"), b"sub\n").unwrap();
    fs::write(src.join("sub/with space.txt"), b"sp").unwrap();
    fs::write(src.join("quote'\"name.txt"), b"quotes").unwrap();
    fs::write(src.join("new\nline.txt"), b"newline").unwrap();
    fs::write(src.join("ünïcödé.txt"), "utf8 ✓".as_bytes()).unwrap();
    fs::write(bytes_path(&src, b"bad\xffbyte.txt"), b"latin1").unwrap();
    let long_dir = src.join("d".repeat(70));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(
        long_dir.join(format!("{}.txt", "f".repeat(80))),
        b"long path",
    )
    .unwrap();
    fs::create_dir_all(src.join("modes")).unwrap();
    fs::write(src.join("modes/setuid"), b"#!/bin/sh\n").unwrap();
    chmod(&src.join("modes/setuid"), 0o4755);
    fs::create_dir_all(src.join("modes/sticky")).unwrap();
    chmod(&src.join("modes/sticky"), 0o1777);
    fs::write(src.join("modes/private"), b"p").unwrap();
    chmod(&src.join("modes/private"), 0o600);
    symlink("file1.txt", &src.join("link1"));
    symlink("../nowhere", &src.join("dangling"));
    special_files(&src);
    touch_all(&src, 1_699_990_000);
    snapshot(&src, &s.join("state0"));
    backup(0, T0);

    // state 1: changed, deleted, new file, new empty dir, big file prefixed (multivol diff)
    let lines: String = (1..=2100).map(|i| format!("{i}\n")).collect();
    fs::write(src.join("changeme.txt"), lines).unwrap();
    fs::remove_file(src.join("deleteme.txt")).unwrap();
    fs::write(src.join("new.txt"), b"new file\n").unwrap();
    fs::create_dir_all(src.join("emptydir2")).unwrap();
    let mut big = random_bytes(7, 100_000);
    big.extend_from_slice(&fs::read(src.join("big.bin")).unwrap());
    fs::write(src.join("big.bin"), big).unwrap();
    for p in ["", "changeme.txt", "new.txt", "emptydir2", "big.bin"] {
        set_mtime(&src.join(p), 1_700_000_050);
    }
    snapshot(&src, &s.join("state1"));
    backup(1, T1);

    // state 2: removed empty dir, retargeted symlink, chmod only, append, same-size edit,
    // big file edited and cut
    fs::remove_dir(src.join("emptydir")).unwrap();
    symlink("sub/a.txt", &src.join("link1"));
    chmod(&src.join("file1.txt"), 0o600);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(src.join("sub/a.txt"))
        .unwrap();
    std::io::Write::write_all(&mut f, b"appended\n").unwrap();
    drop(f);
    fs::write(src.join("empty.txt"), b"now has data").unwrap();
    // The big file again: a same-size edit inside and its end cut off (a delta that
    // mostly copies bytes where they are, and a result shorter than its basis).
    let mut big = fs::read(src.join("big.bin")).unwrap();
    big[1_000_000..1_004_096].copy_from_slice(&random_bytes(9, 4096));
    big.truncate(big.len() - 50_000);
    fs::write(src.join("big.bin"), big).unwrap();
    for p in ["", "link1", "sub", "sub/a.txt", "empty.txt", "big.bin"] {
        set_mtime(&src.join(p), 1_700_000_150);
    }
    snapshot(&src, &s.join("state2"));
    backup(2, T2);
}

pub struct Keys {
    pub public: std::path::PathBuf,
    pub secret: std::path::PathBuf,
    pub fpr: String,
}

/// Run stock gpg non-interactively with its home in `home` (made, mode 0700) and the
/// passphrase `passphrase` for whatever it asks one for; insist on success and return
/// its standard output.
pub fn gpg(home: &Path, passphrase: &str, args: &[&str]) -> Vec<u8> {
    fs::create_dir_all(home).unwrap();
    chmod(home, 0o700);
    let o = Command::new("gpg")
        .args(["--batch", "--yes", "--pinentry-mode", "loopback"])
        .args(["--passphrase", passphrase])
        .args(args)
        .env("GNUPGHOME", home)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "gpg {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Make an OpenPGP key with stock gpg, as a user would (`gpg --quick-gen-key`), exported
/// to files for swiftdup; duplicity uses the same key from its keyring.
pub fn make_key(s: &Scratch) -> Keys {
    make_key_named(s, "swiftdup-test@example.com")
}

/// The same with another user id (a second, unrelated key).
pub fn make_key_named(s: &Scratch, uid: &str) -> Keys {
    let gh = s.join("gnupg-dup");
    let gpg = |args: &[&str]| gpg(&gh, "", args);
    gpg(&["--quick-gen-key", uid, "default", "default", "never"]);
    let colons = String::from_utf8(gpg(&["--list-keys", "--with-colons", uid])).unwrap();
    let fpr = colons
        .lines()
        .find(|l| l.starts_with("fpr"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_string();
    let public = s.join(&format!("{uid}.public.asc"));
    let secret = s.join(&format!("{uid}.secret.asc"));
    std::fs::write(&public, gpg(&["--armor", "--export", &fpr])).unwrap();
    std::fs::write(&secret, gpg(&["--armor", "--export-secret-keys", &fpr])).unwrap();
    // Trust it ultimately so duplicity's gpg encrypts to it without prompting.
    let o = std::process::Command::new("gpg")
        .args(["--batch", "--import-ownertrust"])
        .env("GNUPGHOME", &gh)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{fpr}:6:\n").as_bytes())?;
            c.wait()
        })
        .unwrap();
    assert!(o.success());
    Keys {
        public,
        secret,
        fpr,
    }
}

/// The test Swift's settings (`tests/swift/start.sh DIR` writes `DIR/env` as `export K='V'`
/// lines; `SWIFTDUP_SWIFT_ENV` points at it, which `make test` sets).
pub fn swift_env() -> std::collections::HashMap<String, String> {
    let path = std::env::var("SWIFTDUP_SWIFT_ENV").expect(
        "SWIFTDUP_SWIFT_ENV is not set: start Swift with tests/swift/start.sh DIR and point \
         it at DIR/env (make test does)",
    );
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            (
                k.to_string(),
                v.trim_matches(|c| c == '\'' || c == '"').to_string(),
            )
        })
        .collect()
}

/// A database dump as a test makes one: `len` pseudo-random bytes (xorshift from `seed`)
/// with the byte ranges `edits` (offset, length) inverted, as a later night's dump that
/// changed there. Streamed in 1 MiB pieces to `w`, never whole in memory; returns its MD5.
/// A write error (the reader exited) ends it early.
pub fn write_dump(w: &mut dyn std::io::Write, len: u64, seed: u64, edits: &[(u64, u64)]) -> String {
    use md5::{Digest, Md5};
    let mut h = Md5::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    let mut at = 0u64;
    while at < len {
        for b in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
        }
        let n = (len - at).min(chunk.len() as u64) as usize;
        for &(off, elen) in edits {
            let (from, to) = (off.max(at), (off + elen).min(at + n as u64));
            if from < to {
                for b in &mut chunk[(from - at) as usize..(to - at) as usize] {
                    *b = !*b;
                }
            }
        }
        h.update(&chunk[..n]);
        if w.write_all(&chunk[..n]).is_err() {
            break;
        }
        at += n as u64;
    }
    format!("{:x}", h.finalize())
}

/// Run swiftdup with `feed` writing its standard input on a thread of its own (closed when
/// `feed` returns); returns the output and what `feed` returned.
pub fn swiftdup_fed<T: Send + 'static>(
    args: &[&str],
    env: &[(&str, &str)],
    feed: impl FnOnce(&mut dyn std::io::Write) -> T + Send + 'static,
) -> (Output, T) {
    let mut c = Command::new(swiftdup_bin());
    c.args(args)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", RUN_TMPDIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || feed(&mut stdin));
    let out = child.wait_with_output().unwrap();
    (out, writer.join().unwrap())
}
