//! The local archive directory (§1.7, §6.7): plaintext manifests and gzipped signature
//! files under stock's names, so a cache made by duplicity keeps working and the reverse.
//!
//! The cache is only an accelerator: with none (a fresh pod), metadata is downloaded from
//! the target, decrypted, and cached for the rest of the run.

use crate::archive::manifest::{self, Manifest};
use crate::archive::names::{FileKind, Suffix};
use crate::backend::Backend;
use crate::config::Common;
use crate::error::{Error, Result};
use crate::seal::pgp;
use std::fs;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

/// The cache directory of one target.
pub struct Cache {
    pub dir: PathBuf,
}

/// The name a remote file has in the cache: without `.gpg`/`.gz`, and signature files
/// re-gzipped as `….sigtar.gz`.
pub fn local_name(remote: &str, kind: &FileKind) -> String {
    let stem = remote
        .strip_suffix(".gpg")
        .or_else(|| remote.strip_suffix(".gz"))
        .unwrap_or(remote);
    if kind.is_signature() {
        format!("{stem}.gz")
    } else {
        stem.to_string()
    }
}

/// The record kept beside a cached manifest `local`: the SHA-256 of the sealed object it
/// was stored as or read from, and of the cached plaintext. With it, the next backup's
/// §4.4 check compares the remote object's bytes instead of decrypting it (an S2K of tens
/// of milliseconds and a second parse of a manifest that lists every changed file). Only
/// an accelerator: missing, stale or damaged, the check decrypts as before. Not synced
/// for the same reason. The name starts with the record's own prefix: stock's parser
/// anchors its patterns at the start only, and would take `<manifest>.suffix` for a
/// manifest.
const SEALED_RECORD: &str = "swiftdup-sealed.";

/// How a sealed object is known to [`Cache::sealed_matches`].
#[derive(Clone, Copy)]
pub enum Sealed<'a> {
    /// SHA-256 of its bytes (hex), from a download.
    Sha256(&'a str),
    /// MD5 of its bytes (lowercase hex), from a listing.
    Md5(&'a str),
}

fn sealed_record_name(local: &str) -> String {
    format!("{SEALED_RECORD}{local}")
}

/// The hex SHA-256 of everything `r` yields.
pub fn sha256_hex(r: &mut dyn Read) -> io::Result<String> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    io::copy(r, &mut h)?;
    Ok(crate::engine::write::volumes::hex(&h.finalize()))
}

/// What identifies a sealed manifest object: the SHA-256 of its bytes (compared with a
/// download) and their MD5 (compared with a Swift listing's `hash`, with no download).
pub struct SealedDigest {
    pub sha256: String,
    pub md5: String,
}

impl SealedDigest {
    pub fn of(r: &mut dyn Read) -> io::Result<SealedDigest> {
        use sha2::Digest;
        let (mut sha, mut md5) = (sha2::Sha256::new(), md5::Md5::new());
        let mut buf = [0u8; 16 * 1024];
        loop {
            let n = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            sha.update(&buf[..n]);
            md5.update(&buf[..n]);
        }
        Ok(SealedDigest {
            sha256: crate::engine::write::volumes::hex(&sha.finalize()),
            md5: crate::engine::write::volumes::hex(&md5.finalize()),
        })
    }
}

impl Cache {
    /// Record which sealed object the cached manifest `local` stands for, with the SHA-256
    /// of the cached file as it is now. Failing to hash or write is no error: the next
    /// check just decrypts. (The MD5 comes last: records written before it had three
    /// fields, and readers of those ignore a fourth.)
    pub fn record_sealed(&self, local: &str, sealed: &SealedDigest) {
        let Ok(plain) = fs::File::open(self.path(local)).and_then(|mut f| sha256_hex(&mut f))
        else {
            return;
        };
        let name = sealed_record_name(local);
        let tmp = self.dir.join(format!("{name}.swiftdup-tmp"));
        let text = format!(
            "swiftdup-sealed/1 {} {plain} {}\n",
            sealed.sha256, sealed.md5
        );
        if fs::write(&tmp, text).is_err() || fs::rename(&tmp, self.path(&name)).is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    /// Whether the record beside `local` says it came from the sealed object `sealed`
    /// (which has this SHA-256 or, from a listing, this MD5) and the cached file still
    /// hashes to what was recorded.
    pub fn sealed_matches(&self, local: &str, sealed: Sealed<'_>) -> bool {
        let Ok(text) = fs::read_to_string(self.path(&sealed_record_name(local))) else {
            return false;
        };
        let f: Vec<&str> = text.split_ascii_whitespace().collect();
        let [version, sha256, plain, rest @ ..] = f.as_slice() else {
            return false;
        };
        let same = match sealed {
            Sealed::Sha256(h) => *sha256 == h,
            Sealed::Md5(h) => rest.first() == Some(&h),
        };
        if *version != "swiftdup-sealed/1" || !same {
            return false;
        }
        let Ok(mut file) = fs::File::open(self.path(local)) else {
            return false;
        };
        sha256_hex(&mut file).is_ok_and(|h| h == *plain)
    }

    pub fn open(common: &Common) -> Result<Cache> {
        let dir = common.archive_dir.join(&common.name);
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(Cache { dir })
    }

    pub fn path(&self, local: &str) -> PathBuf {
        self.dir.join(local)
    }

    /// Names of the files in the cache (partials and the lock file included).
    pub fn names(&self) -> Result<Vec<String>> {
        let mut v = Vec::new();
        for e in fs::read_dir(&self.dir).map_err(|e| Error::io(self.dir.display(), e))? {
            let e = e.map_err(|e| Error::io(self.dir.display(), e))?;
            if let Ok(n) = e.file_name().into_string() {
                v.push(n);
            }
        }
        Ok(v)
    }

    /// Write `local` atomically from a closure.
    pub fn write_with(
        &self,
        local: &str,
        f: impl FnOnce(&mut dyn Write) -> Result<()>,
    ) -> Result<()> {
        let tmp = self.dir.join(format!("{local}.swiftdup-tmp"));
        let res = (|| {
            let file = fs::File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
            let mut w = io::BufWriter::new(file);
            f(&mut w)?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io(tmp.display(), e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(tmp.display(), e))?;
            fs::rename(&tmp, self.path(local)).map_err(|e| Error::io(tmp.display(), e))
        })();
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        res
    }

    /// Put the finished file `from` into the cache as `local`: renamed when both are on one
    /// filesystem, else copied. Synced first, as `write_with` does, so that a crash never
    /// leaves a short file under the final name.
    pub fn adopt(&self, local: &str, from: &Path) -> Result<()> {
        let synced = fs::File::open(from).and_then(|f| f.sync_all());
        if synced.is_ok() && fs::rename(from, self.path(local)).is_ok() {
            return Ok(());
        }
        self.write_with(local, |w| {
            let mut f = fs::File::open(from).map_err(|e| Error::io(from.display(), e))?;
            io::copy(&mut f, w)
                .map(drop)
                .map_err(|e| Error::io(from.display(), e))
        })
    }
}

/// Make the cache's fallback directory in a shared temporary directory (`$TMPDIR` is often
/// `/tmp`; used when there is no HOME) for this user alone, or check that the one there is.
/// Whoever can write in it can plant the manifests and signature files a run trusts without
/// decrypting them (the cache is plaintext, checked only against the listing), or swap them
/// for links; so one that another user made, or that group or others may write to, is
/// refused rather than used.
pub fn claim_shared_dir(dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
    }
    match crate::local::platform::create_private_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
            return Err(Error::io(dir.display(), e))
        }
        _ => {}
    }
    let st = crate::local::platform::lstat(dir).map_err(|e| Error::io(dir.display(), e))?;
    let refuse = |why: String, fix: &str| {
        Err(Error::Usage(format!(
            "cache directory {} (the default without HOME) {why}, so another user could \
             change what this run trusts: {fix}, or set --archive-dir (SWIFTDUP_ARCHIVE_DIR) \
             or HOME to a directory of this user's",
            dir.display()
        )))
    };
    if st.kind != crate::local::platform::Kind::Dir {
        return refuse("is not a directory".into(), "remove it");
    }
    let Some(me) = crate::local::platform::euid() else {
        return Ok(());
    };
    if st.uid != me {
        return refuse(
            format!("belongs to uid {}, not to this user (uid {me})", st.uid),
            "have its owner remove it",
        );
    }
    if st.mode & 0o022 != 0 {
        return refuse(
            format!("is writable by group or others (mode {:04o})", st.mode),
            "remove it or `chmod go-w` it",
        );
    }
    Ok(())
}

/// Open a sealed stream by its suffix.
pub fn open_sealed<'a>(
    r: impl Read + 'a,
    suffix: Suffix,
    keys: &pgp::OpenKeys,
    object: &str,
) -> Result<Box<dyn Read + 'a>> {
    if let (Some(v), Suffix::None | Suffix::Gzip) = (&keys.verify, suffix) {
        // Only OpenPGP files can carry a signature; stock lets unencrypted files through
        // unchecked, which would let anyone swap a signed archive for an unsigned one.
        return Err(Error::Unsigned {
            object: object.into(),
            detail: format!(
                "not an OpenPGP file, so not signed; a signature by key {} is required",
                v.key_ids()
            ),
        });
    }
    Ok(match suffix {
        Suffix::None => Box::new(r),
        Suffix::Gzip => Box::new(pgp::open_gzip(r)),
        Suffix::Gpg => {
            let (reader, warnings) = pgp::open_pgp(r, keys).map_err(|e| match e {
                // Not a wrong passphrase: none was given. Say which setting is missing.
                pgp::CryptoError::WrongPassphrase
                    if keys.passphrase.is_none() && keys.secret_keys.is_empty() =>
                {
                    Error::Usage(format!(
                        "PASSPHRASE is not set, and {object} is encrypted: set PASSPHRASE \
                         (or --decrypt-key-file for a public-key backup)"
                    ))
                }
                e => crypto_error(object, e),
            })?;
            for w in warnings {
                crate::log::warn(
                    "warning",
                    &format!("{object}: {w}"),
                    vec![("object", object.into())],
                );
            }
            reader
        }
    })
}

/// Map a crypto failure on `object` to the error a user sees.
pub fn crypto_error(object: &str, e: pgp::CryptoError) -> Error {
    match e {
        pgp::CryptoError::WrongPassphrase => Error::Decryption {
            object: object.into(),
            detail: "wrong passphrase".into(),
        },
        pgp::CryptoError::NoMatchingKey(ids) => Error::Decryption {
            object: object.into(),
            detail: format!(
                "no matching secret key (encrypted to {ids}); pass the right --decrypt-key-file"
            ),
        },
        pgp::CryptoError::Key(m) => Error::Usage(format!("key file: {m}")),
        pgp::CryptoError::Unsigned(detail) => Error::Unsigned {
            object: object.into(),
            detail,
        },
        pgp::CryptoError::Io(e) => map_read_error(object, e),
        other => Error::integrity(object, other),
    }
}

/// A read error inside a decrypting/decompressing stream is damage, not a disk problem.
pub fn map_read_error(object: &str, e: io::Error) -> Error {
    // Errors raised by our own readers carry a typed payload; others are data damage.
    if let Some(inner) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<pgp::CryptoError>())
    {
        return match inner {
            pgp::CryptoError::WrongPassphrase => Error::Decryption {
                object: object.into(),
                detail: "wrong passphrase".into(),
            },
            pgp::CryptoError::NoMatchingKey(ids) => Error::Decryption {
                object: object.into(),
                detail: format!("no matching secret key ({ids})"),
            },
            pgp::CryptoError::Unsigned(detail) => Error::Unsigned {
                object: object.into(),
                detail: detail.clone(),
            },
            other => Error::integrity(object, other),
        };
    }
    Error::integrity(object, format!("damaged or truncated data: {e}"))
}

/// Download `remote` into a temporary file in `tempdir` and return it, rewound (a local
/// target's object is opened where it is).
pub fn download_temp(backend: &dyn Backend, remote: &str, tempdir: &Path) -> Result<fs::File> {
    if let Some(f) = backend.open_local(remote) {
        return f;
    }
    let mut f = tempfile_in(tempdir)?;
    backend.get(remote, &mut f)?;
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0))
        .map_err(|e| Error::io(tempdir.display(), e))?;
    Ok(f)
}

/// An anonymous temporary file (unlinked at once, so nothing is left behind on a crash).
pub fn tempfile_in(dir: &Path) -> Result<fs::File> {
    let (p, f) = claim(dir, "anon")?;
    let _ = fs::remove_file(&p);
    Ok(f)
}

/// A named temporary file that is removed when dropped (for uploads, which reopen by path),
/// or by the watchdog when a run has to be ended after a signal (a volume spool can be
/// hundreds of MiB of a pod's /tmp).
pub struct TempPath(
    pub PathBuf,
    #[allow(dead_code)] // held for its Drop: the watchdog forgets the file once it is gone
    crate::interrupt::Registered,
);

impl TempPath {
    pub fn new(dir: &Path, what: &str) -> Result<TempPath> {
        let (p, _) = claim(dir, what)?;
        let path = p.clone();
        let forced_end = crate::interrupt::on_forced_end(move || {
            let _ = fs::remove_file(&path);
        });
        Ok(TempPath(p, forced_end))
    }
}

/// Named temporary files older than this are what a killed run left behind (a spool is
/// written within seconds and stored within minutes of being made).
const STALE_TEMP: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// Creates a new, empty file in `dir`, opened for reading and writing. Its name carries a
/// random token besides the pid: jobs in containers are all pid 1, and two sharing a
/// `--tempdir` volume must not spool into one file. The first call in a process also
/// removes what killed runs left in `dir` (a SIGKILL runs no destructor).
fn claim(dir: &Path, what: &str) -> Result<(PathBuf, fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static N: AtomicU64 = AtomicU64::new(0);
    static STEM: OnceLock<String> = OnceLock::new();
    fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
    let stem = STEM.get_or_init(|| {
        remove_stale_temps(dir);
        format!(
            "swiftdup-{}-{:08x}",
            crate::local::platform::process_id(),
            rand::random::<u32>()
        )
    });
    for _ in 0..100 {
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = dir.join(format!("{stem}-{what}-{n}.tmp"));
        match fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
        {
            Ok(f) => return Ok((p, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(p.display(), e)),
        }
    }
    Err(Error::Internal("could not create a temporary file".into()))
}

/// Remove `swiftdup-*.tmp` files in `dir` last written more than [`STALE_TEMP`] ago. Best
/// effort: a file that cannot be read or removed is left as it is.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut removed = 0u64;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with("swiftdup-") && name.ends_with(".tmp")) {
            continue;
        }
        let stale = e
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP);
        if stale && fs::remove_file(e.path()).is_ok() {
            removed += 1;
        }
    }
    if removed > 0 {
        crate::log::info(
            "temp_cleaned",
            &format!(
                "removed {removed} temporary files left in {} by runs that were killed",
                dir.display()
            ),
            vec![
                ("files", removed.into()),
                ("dir", dir.display().to_string().into()),
            ],
        );
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Manifests and signature files of the target, through the cache.
pub struct Metadata<'a> {
    pub backend: &'a dyn Backend,
    pub cache: Cache,
    pub common: &'a Common,
}

impl<'a> Metadata<'a> {
    /// The parsed manifest of a set: from the cache, or downloaded, decrypted and cached.
    pub fn manifest(&self, remote: &str, kind: &FileKind) -> Result<Manifest> {
        let local = self.cache.path(&local_name(remote, kind));
        if !local.exists() {
            self.fetch(remote, kind)?;
        }
        let f = fs::File::open(&local).map_err(|e| Error::io(local.display(), e))?;
        manifest::parse(BufReader::new(f)).map_err(|m| Error::integrity(remote, m))
    }

    /// The Filelist of a set's manifest, read from the copy [`Metadata::manifest`] cached.
    pub fn filelist(
        &self,
        remote: &str,
        kind: &FileKind,
    ) -> Result<Option<manifest::Filelist<BufReader<fs::File>>>> {
        let local = self.cache.path(&local_name(remote, kind));
        let f = fs::File::open(&local).map_err(|e| Error::io(local.display(), e))?;
        manifest::Filelist::open(BufReader::new(f)).map_err(|m| Error::integrity(remote, m))
    }

    /// The remote manifest, freshly downloaded (for the cache consistency check, §4.4):
    /// `None` when its bytes are those the cached copy `local` was recorded from (see
    /// [`Cache::record_sealed`]), else parsed, with a closure that records the object for
    /// next time once the caller has found the two equal. `listed_md5` is the object's
    /// MD5 from the target listing, where it has one: when the record has the same, the
    /// object is not even downloaded.
    pub fn remote_manifest(
        &self,
        remote: &str,
        local: &str,
        listed_md5: Option<&str>,
    ) -> Result<Option<(Manifest, impl FnOnce() + '_)>> {
        if listed_md5.is_some_and(|h| self.cache.sealed_matches(local, Sealed::Md5(h))) {
            return Ok(None);
        }
        let (f, sealed) = self.download_sealed(remote)?;
        if self
            .cache
            .sealed_matches(local, Sealed::Sha256(&sealed.sha256))
        {
            return Ok(None);
        }
        let m = self.open_manifest(f, remote)?;
        let local = local.to_string();
        Ok(Some((m, move || self.cache.record_sealed(&local, &sealed))))
    }

    /// A stored manifest downloaded, with the digest of its bytes; the file is rewound.
    fn download_sealed(&self, remote: &str) -> Result<(fs::File, SealedDigest)> {
        use std::io::Seek;
        let mut f = download_temp(self.backend, remote, &self.common.tempdir)?;
        let sealed = SealedDigest::of(&mut f).map_err(|e| Error::io(remote, e))?;
        f.seek(io::SeekFrom::Start(0))
            .map_err(|e| Error::io(remote, e))?;
        Ok((f, sealed))
    }

    /// The remote manifest downloaded, decrypted to its MDC and parsed, whatever the cache
    /// holds: what shows that this run's passphrase or secret key opens the chain. Returns
    /// it with the digest of its stored bytes.
    pub fn remote_manifest_opened(&self, remote: &str) -> Result<(Manifest, SealedDigest)> {
        let (f, sealed) = self.download_sealed(remote)?;
        Ok((self.open_manifest(f, remote)?, sealed))
    }

    /// Open and parse a stored manifest, reading it to the end: the MDC is checked only
    /// there, and the parser may stop before.
    fn open_manifest(&self, f: fs::File, remote: &str) -> Result<Manifest> {
        let suffix = self
            .common
            .prefixes
            .parse(remote)
            .map(|p| p.suffix)
            .unwrap_or(Suffix::None);
        let mut r = BufReader::new(open_sealed(f, suffix, &self.common.crypto.open, remote)?);
        let m = manifest::parse(&mut r).map_err(|m| Error::integrity(remote, m))?;
        io::copy(&mut r, &mut io::sink()).map_err(|e| map_read_error(remote, e))?;
        Ok(m)
    }

    /// Download a manifest or signature file into the cache in its local form.
    pub fn fetch(&self, remote: &str, kind: &FileKind) -> Result<()> {
        let parsed = self
            .common
            .prefixes
            .parse(remote)
            .ok_or_else(|| Error::Internal(format!("not a duplicity name: {remote}")))?;
        let mut f = download_temp(self.backend, remote, &self.common.tempdir)?;
        // A manifest's sealed bytes are recorded with it (see Cache::record_sealed).
        let sealed = if kind.is_signature() {
            None
        } else {
            use std::io::Seek;
            let h = SealedDigest::of(&mut f).map_err(|e| Error::io(remote, e))?;
            f.seek(io::SeekFrom::Start(0))
                .map_err(|e| Error::io(remote, e))?;
            Some(h)
        };
        let mut r = open_sealed(f, parsed.suffix, &self.common.crypto.open, remote)?;
        let local = local_name(remote, kind);
        self.cache.write_with(&local, |w| {
            if kind.is_signature() {
                let mut gz =
                    crate::seal::deflate::Deflater::new(w, 6, crate::seal::deflate::Wrap::Gzip)
                        .map_err(|e| Error::io("signature cache", e))?;
                io::copy(&mut r, &mut gz).map_err(|e| map_read_error(remote, e))?;
                gz.finish().map_err(|e| Error::io(&local, e))?;
            } else {
                io::copy(&mut r, w).map_err(|e| map_read_error(remote, e))?;
            }
            Ok(())
        })?;
        if let Some(sealed) = sealed {
            self.cache.record_sealed(&local, &sealed);
        }
        Ok(())
    }

    /// A plaintext tar stream of a signature file, from the cache (fetched when missing).
    pub fn sigtar(&self, remote: &str) -> Result<Box<dyn Read + Send>> {
        let kind = self
            .common
            .prefixes
            .parse(remote)
            .ok_or_else(|| Error::Internal(format!("not a duplicity name: {remote}")))?
            .kind;
        let local = self.cache.path(&local_name(remote, &kind));
        if !local.exists() {
            self.fetch(remote, &kind)?;
        }
        let f = fs::File::open(&local).map_err(|e| Error::io(local.display(), e))?;
        // The outer buffer lets the tar reader take its 512-byte blocks from memory: without
        // it every block is one call into the inflater.
        Ok(Box::new(BufReader::with_capacity(
            1 << 16,
            pgp::open_gzip(BufReader::with_capacity(1 << 16, f)),
        )))
    }

    /// Remove cached files whose remote counterpart is gone (§6.7: "spurious").
    pub fn prune_spurious(&self, remote_names: &[String]) -> Result<()> {
        let remote_local: std::collections::HashSet<String> = remote_names
            .iter()
            .filter_map(|n| {
                self.common
                    .prefixes
                    .parse(n)
                    .map(|p| local_name(n, &p.kind))
            })
            .collect();
        for n in self.cache.names()? {
            if let Some(stem) = n.strip_prefix(SEALED_RECORD) {
                // A record goes with its manifest.
                if !remote_local.contains(stem) {
                    let _ = fs::remove_file(self.cache.path(&n));
                }
                continue;
            }
            let Some(p) = self.common.prefixes.parse(&n) else {
                continue;
            };
            if p.partial {
                continue;
            }
            if !remote_local.contains(&n) {
                crate::log::debug("cache", &format!("removing stale cache file {n}"), vec![]);
                let _ = fs::remove_file(self.cache.path(&n));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn adopt_renames_on_one_filesystem_and_copies_across() {
        let d = std::env::temp_dir().join(format!("swiftdup-unit-adopt-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        let cache = Cache {
            dir: d.join("cache"),
        };
        fs::create_dir_all(&cache.dir).unwrap();

        let from = d.join("spool");
        fs::write(&from, b"same filesystem").unwrap();
        cache.adopt("a.sigtar.gz", &from).unwrap();
        assert_eq!(
            fs::read(cache.path("a.sigtar.gz")).unwrap(),
            b"same filesystem"
        );
        assert!(!from.exists(), "moved, not copied");

        // A tmpfs: rename fails (EXDEV) and the bytes are copied.
        let shm = Path::new("/dev/shm");
        assert_ne!(
            fs::metadata(shm).unwrap().dev(),
            fs::metadata(&d).unwrap().dev(),
            "this test needs /dev/shm on another filesystem than {}",
            d.display()
        );
        let from = shm.join(format!("swiftdup-unit-adopt-{}", std::process::id()));
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(&from, &data).unwrap();
        cache.adopt("b.sigtar.gz", &from).unwrap();
        let _ = fs::remove_file(&from);
        assert_eq!(fs::read(cache.path("b.sigtar.gz")).unwrap(), data);

        let mut names = cache.names().unwrap();
        names.sort();
        assert_eq!(
            names,
            ["a.sigtar.gz", "b.sigtar.gz"],
            "no staging file left"
        );
        fs::remove_dir_all(&d).unwrap();
    }
}
