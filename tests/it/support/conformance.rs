//! The backend conformance suite (restic's and rclone's pattern): generic checks that every
//! `Backend` must pass, run by `backend_conformance` (file://) and `swift` (swiftkeys://
//! against a real Swift).
#![allow(dead_code)]

use md5::{Digest, Md5};
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use swiftdup::backend::Backend;
use swiftdup::error::Error;

/// Opens the backend for one area of the test target, named `sub`. Areas must be fresh
/// (empty) and must not see each other's objects, even when one name is a prefix of another
/// (`backup` and `backup2`).
pub type Opener<'a> = &'a dyn Fn(&str) -> Box<dyn Backend>;

/// Object names that need encoding somewhere: spaces, `%`, `#`, `?`, `+&=`, UTF-8.
pub const AWKWARD_NAMES: &[&str] = &[
    "with space",
    "per%cent%20not-an-escape",
    "hash#fragment",
    "question?query=1",
    "plus+amp&eq=semi;colon",
    "ünïcødé-名前-🦀",
    "tilde~dash-dot.under_",
    "duplicity-full.20240101T000000Z.vol1.difftar.gpg",
];

/// The whole suite, including the 100 MiB round trip.
pub fn run_suite(open: Opener, scratch: &Path) {
    round_trip(open("roundtrip").as_ref(), scratch);
    awkward_names(open("names").as_ref(), scratch);
    listing(open("listing").as_ref(), scratch);
    prefix_isolation(open, scratch);
    missing_objects(open("missing").as_ref(), scratch);
    overwrite(open("overwrite").as_ref(), scratch);
    big_object(open("big").as_ref(), scratch, 100 << 20);
}

/// Write `data` to a scratch file and return its path.
pub fn file_with(scratch: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = scratch.join(format!("src-{name}"));
    fs::write(&p, data).unwrap();
    p
}

/// An empty file to download into (read-write, as `Backend::get` may rewrite it).
pub fn dest_file(scratch: &Path, name: &str) -> (PathBuf, File) {
    let p = scratch.join(format!("dst-{name}"));
    let f = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    (p, f)
}

/// Download `name` and return its bytes, checking the reported size.
pub fn get_bytes(b: &dyn Backend, scratch: &Path, name: &str) -> Result<Vec<u8>, Error> {
    let local = format!("{:x}", Md5::digest(name.as_bytes()));
    let (p, mut f) = dest_file(scratch, &local);
    let n = b.get(name, &mut f)?;
    drop(f);
    let data = fs::read(&p).unwrap();
    assert_eq!(n, data.len() as u64, "get({name:?}) reported a wrong size");
    Ok(data)
}

/// Upload `data` as `name`.
pub fn put_bytes(b: &dyn Backend, scratch: &Path, name: &str, data: &[u8]) -> Result<(), Error> {
    let local = format!("{:x}", Md5::digest(name.as_bytes()));
    let p = file_with(scratch, &local, data);
    b.put(name, &p)
}

fn set(v: Vec<String>) -> BTreeSet<String> {
    let n = v.len();
    let s: BTreeSet<String> = v.into_iter().collect();
    assert_eq!(s.len(), n, "a listing returned a name twice");
    s
}

fn names(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Put and get back an empty, a small and a 1 MiB object; they are listed.
pub fn round_trip(b: &dyn Backend, scratch: &Path) {
    let objects: [(&str, Vec<u8>); 3] = [
        ("empty", Vec::new()),
        ("small", b"hello, swiftdup\n".to_vec()),
        ("one-mib", crate::support::random_bytes(7, 1 << 20)),
    ];
    for (name, data) in &objects {
        put_bytes(b, scratch, name, data).unwrap_or_else(|e| panic!("put {name}: {e}"));
    }
    for (name, data) in &objects {
        let got = get_bytes(b, scratch, name).unwrap_or_else(|e| panic!("get {name}: {e}"));
        assert!(got == *data, "{name}: downloaded bytes differ");
    }
    assert_eq!(
        set(b.list("").unwrap()),
        names(&["empty", "small", "one-mib"])
    );
    for (name, _) in &objects {
        b.delete(name)
            .unwrap_or_else(|e| panic!("delete {name}: {e}"));
    }
    assert!(b.list("").unwrap().is_empty());
}

/// Names that need escaping survive put, list and get unchanged.
pub fn awkward_names(b: &dyn Backend, scratch: &Path) {
    for (i, name) in AWKWARD_NAMES.iter().enumerate() {
        put_bytes(b, scratch, name, format!("object {i}").as_bytes())
            .unwrap_or_else(|e| panic!("put {name:?}: {e}"));
    }
    assert_eq!(set(b.list("").unwrap()), names(AWKWARD_NAMES));
    for (i, name) in AWKWARD_NAMES.iter().enumerate() {
        assert_eq!(
            get_bytes(b, scratch, name).unwrap_or_else(|e| panic!("get {name:?}: {e}")),
            format!("object {i}").as_bytes(),
            "{name:?}"
        );
        // Each name is listed by a prefix that is the name itself.
        assert!(
            b.list(name).unwrap().contains(&name.to_string()),
            "{name:?} not listed by its own prefix"
        );
    }
}

/// `list(prefix)` returns exactly the names that start with `prefix`.
pub fn listing(b: &dyn Backend, scratch: &Path) {
    let all = ["pa-1", "pa-2", "pa", "pb-1", "q", "pa-1.part"];
    for n in all {
        put_bytes(b, scratch, n, n.as_bytes()).unwrap();
    }
    assert_eq!(set(b.list("").unwrap()), names(&all));
    assert_eq!(
        set(b.list("pa-").unwrap()),
        names(&["pa-1", "pa-2", "pa-1.part"])
    );
    assert_eq!(
        set(b.list("pa").unwrap()),
        names(&["pa", "pa-1", "pa-2", "pa-1.part"])
    );
    assert_eq!(set(b.list("pb").unwrap()), names(&["pb-1"]));
    assert!(b.list("zz").unwrap().is_empty());
    assert!(b.list("pa-3").unwrap().is_empty());
}

/// Two areas whose names share a prefix (`backup`, `backup2`) do not see each other.
pub fn prefix_isolation(open: Opener, scratch: &Path) {
    let a = open("backup");
    let b = open("backup2");
    put_bytes(b.as_ref(), scratch, "only-in-2", b"2").unwrap();
    put_bytes(a.as_ref(), scratch, "only-in-1", b"1").unwrap();
    assert_eq!(set(a.list("").unwrap()), names(&["only-in-1"]));
    assert_eq!(set(b.list("").unwrap()), names(&["only-in-2"]));
    assert!(a.list("only-in-2").unwrap().is_empty());
    assert!(matches!(
        get_bytes(a.as_ref(), scratch, "only-in-2"),
        Err(Error::NotFound(_))
    ));
}

/// Missing objects: get is `NotFound`, delete is fine; a deleted object is gone.
pub fn missing_objects(b: &dyn Backend, scratch: &Path) {
    match get_bytes(b, scratch, "never-written") {
        Err(Error::NotFound(n)) => assert_eq!(n, "never-written"),
        other => panic!("get of a missing object: {other:?}"),
    }
    b.delete("never-written")
        .expect("deleting a missing object");
    put_bytes(b, scratch, "short-lived", b"x").unwrap();
    b.delete("short-lived").unwrap();
    assert!(matches!(
        get_bytes(b, scratch, "short-lived"),
        Err(Error::NotFound(_))
    ));
    b.delete("short-lived").expect("deleting twice");
}

/// A put replaces an object of the same name, longer or shorter.
pub fn overwrite(b: &dyn Backend, scratch: &Path) {
    put_bytes(b, scratch, "ow", b"first version, the longer one").unwrap();
    put_bytes(b, scratch, "ow", b"second").unwrap();
    assert_eq!(get_bytes(b, scratch, "ow").unwrap(), b"second");
    assert_eq!(set(b.list("").unwrap()), names(&["ow"]));
}

/// Write `len` pseudo-random bytes to `path` in chunks (never whole in memory); returns
/// their MD5.
pub fn write_big_file(path: &Path, len: u64, seed: u64) -> String {
    let mut f = std::io::BufWriter::new(File::create(path).unwrap());
    let mut h = Md5::new();
    let mut left = len;
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut chunk = vec![0u8; 1 << 20];
    while left > 0 {
        for w in chunk.chunks_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes()[..w.len()]);
        }
        let n = left.min(chunk.len() as u64) as usize;
        f.write_all(&chunk[..n]).unwrap();
        h.update(&chunk[..n]);
        left -= n as u64;
    }
    f.flush().unwrap();
    format!("{:x}", h.finalize())
}

/// MD5 of a file, streamed.
pub fn md5_of(path: &Path) -> String {
    let mut f = File::open(path).unwrap();
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

/// A `len`-byte object generated on disk, uploaded and downloaded to disk.
pub fn big_object(b: &dyn Backend, scratch: &Path, len: u64) {
    let src = scratch.join("big-src");
    let want = write_big_file(&src, len, 42);
    b.put("big", &src)
        .unwrap_or_else(|e| panic!("put big: {e}"));
    fs::remove_file(&src).unwrap();
    let (dst, mut f) = dest_file(scratch, "big");
    let n = b
        .get("big", &mut f)
        .unwrap_or_else(|e| panic!("get big: {e}"));
    drop(f);
    assert_eq!(n, len);
    assert_eq!(fs::metadata(&dst).unwrap().len(), len);
    assert_eq!(md5_of(&dst), want, "big object came back different");
    fs::remove_file(&dst).unwrap();
    b.delete("big").unwrap();
}
