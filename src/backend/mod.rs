//! Where backups live. One small `Backend` trait, implemented by `file://` and
//! `swiftkeys://` (over `http`); everything above it only sees object names and byte
//! streams. `open` wraps every backend in `retry::Retrying`, so retries are decided in one
//! place; `lock` is the target lock, built on the trait.
//!
//! The shared conformance suite in `tests/it/support/conformance.rs` runs against every
//! implementation.

pub mod file;
pub mod http;
pub mod lock;
pub mod retry;
pub mod swift;

use crate::error::{Error, Result};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether a command only reads the target or also writes it. A read-only command can run
/// with a read key; a writing one needs the full key, which is checked before any request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// How remote backends talk to their storage (file:// ignores it).
#[derive(Clone, Debug)]
pub struct Options {
    /// Retries after the first attempt of a request that failed transiently.
    pub num_retries: u32,
    /// Base of the exponential backoff between retries (full jitter, capped at 60 s).
    pub retry_delay: Duration,
    pub http: crate::backend::http::Options,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            num_retries: 5,
            retry_delay: Duration::from_secs(1),
            http: crate::backend::http::Options::default(),
        }
    }
}

impl Options {
    /// From the command line's numbers of seconds (`--num-retries`, `--backend-retry-delay`,
    /// `--http-timeout`, `--http-body-timeout`, `--ca-file`) and the bandwidth limits in
    /// KiB/s (`--limit-upload`, `--limit-download`).
    pub fn from_flags(
        num_retries: u32,
        retry_delay: f64,
        http_timeout: f64,
        http_body_timeout: Option<f64>,
        ca_file: Option<PathBuf>,
        limits: (Option<u64>, Option<u64>),
    ) -> Result<Options> {
        let secs = |v: f64, flag: &str, zero_ok: bool| {
            Duration::try_from_secs_f64(v)
                .ok()
                .filter(|d| zero_ok || !d.is_zero())
                .ok_or_else(|| {
                    Error::Usage(format!("{flag}: {v} is not a usable number of seconds"))
                })
        };
        Ok(Options {
            num_retries,
            retry_delay: secs(retry_delay, "--backend-retry-delay", true)?,
            http: crate::backend::http::Options {
                timeout: secs(http_timeout, "--http-timeout", false)?,
                upload_limit: limits.0.map(crate::backend::http::limit::Limiter::new),
                download_limit: limits.1.map(crate::backend::http::limit::Limiter::new),
                body_timeout_override: http_body_timeout
                    .map(|v| secs(v, "--http-body-timeout", false))
                    .transpose()?,
                ca_file,
                ..crate::backend::http::Options::default()
            },
        })
    }
}

/// One object in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    /// Size in bytes (informational: a listing without sizes says 0).
    pub size: u64,
    /// MD5 of the content in lowercase hex, where the listing carries it (Swift's `hash`);
    /// lets a reader tell a known object from a replaced one without fetching it.
    pub md5: Option<String>,
}

/// Object storage as swiftdup needs it: flat names in one namespace.
pub trait Backend {
    /// Store the local file `src` under `name`, replacing any object of that name. A retry
    /// reads `src` again from the start, which is why uploads come from a spooled file.
    fn put(&self, name: &str, src: &Path) -> Result<()>;
    /// `put`, for an object the storage may drop after `ttl` (lock objects). Backends
    /// without expiry store it like any other; readers judge expiry by the lock's name.
    fn put_expiring(&self, name: &str, src: &Path, ttl: Duration) -> Result<()> {
        let _ = ttl;
        self.put(name, src)
    }
    /// Download the object into `dest` (an empty file) and return its size;
    /// `Error::NotFound` when it does not exist. A retry may truncate and rewrite `dest`.
    fn get(&self, name: &str, dest: &mut File) -> Result<u64>;
    /// `get`, for an object whose SHA-1 the caller knows (a volume, from its manifest): the
    /// bytes are checked against it, and a difference is `Error::Integrity`. A backend may
    /// let this check stand in for its own check of the transfer: Swift hashes the bytes as
    /// they arrive and computes the MD5 its Etag is compared with only when the SHA-1
    /// differs (MD5 has no CPU instructions: it cost a restore from Swift more than its
    /// decryption), to tell bytes damaged on the way, fetched again, from a stored object
    /// that is not the one the manifest names.
    fn get_sha1(&self, name: &str, dest: &mut File, sha1: &str) -> Result<u64> {
        let n = self.get(name, dest)?;
        check_sha1(name, dest, sha1)?;
        Ok(n)
    }
    /// The object itself as a local file, where the storage is a local directory: readers
    /// then skip the copy `get` makes. `None` elsewhere.
    fn open_local(&self, name: &str) -> Option<Result<File>> {
        let _ = name;
        None
    }
    /// Every object that starts with `prefix` (all of them, paginated as needed), in name
    /// order, with what the listing says about each.
    fn list_detailed(&self, prefix: &str) -> Result<Vec<Listed>>;
    /// Every object that starts with `prefix`, with its size in bytes.
    fn list_sized(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        Ok(self
            .list_detailed(prefix)?
            .into_iter()
            .map(|l| (l.name, l.size))
            .collect())
    }
    /// Every object name that starts with `prefix`.
    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self
            .list_detailed(prefix)?
            .into_iter()
            .map(|l| l.name)
            .collect())
    }
    /// Remove an object; removing a missing object is not an error.
    fn delete(&self, name: &str) -> Result<()>;
    /// A description for logs, without secrets.
    fn describe(&self) -> String;
}

/// Open the backend a target URL names, for `access`.
pub fn open(url: &str, access: Access, opts: &Options) -> Result<Box<dyn Backend>> {
    if url.starts_with("swiftkeys://") {
        let b = swift::SwiftBackend::open(url, access, opts)?;
        return Ok(Box::new(retry::Retrying::new(b, opts)));
    }
    if let Some(path) = url.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(Error::Usage(format!(
                "target URL {:?}: file:// needs an absolute path, as in file:///srv/backup \
                 (and takes no user or password)",
                crate::log::redact(url)
            )));
        }
        let b = file::FileBackend::new(path, access)?;
        return Ok(Box::new(retry::Retrying::new(b, opts)));
    }
    Err(Error::Usage(format!(
        "target URL {:?}: unsupported scheme (use file:///absolute/path or swiftkeys://container[/prefix])",
        crate::log::redact(url)
    )))
}

/// Whether a command-line argument looks like a target URL rather than a local path.
pub fn is_url(s: &str) -> bool {
    s.contains("://")
}

/// The digest (lowercase hex) of a file from its start; leaves it at its end.
pub fn digest_file<D: sha1::Digest>(f: &mut File) -> std::io::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    f.seek(SeekFrom::Start(0))?;
    let mut h = D::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(crate::archive::hex(&h.finalize()))
}

/// Check a fetched volume's bytes against the SHA-1 its manifest gives; leaves the file
/// rewound.
pub fn check_sha1(name: &str, f: &mut File, want: &str) -> Result<()> {
    use std::io::{Seek, SeekFrom};
    let got = digest_file::<sha1::Sha1>(f)
        .and_then(|got| f.seek(SeekFrom::Start(0)).map(|_| got))
        .map_err(|e| Error::io(name, e))?;
    if got != want {
        return Err(sha1_mismatch(name, want, &got));
    }
    Ok(())
}

/// A fetched object whose bytes are not the ones its manifest names.
pub fn sha1_mismatch(name: &str, want: &str, got: &str) -> Error {
    Error::integrity(
        name,
        format!("hash mismatch: manifest says SHA1 {want}, the stored volume has {got}"),
    )
}
