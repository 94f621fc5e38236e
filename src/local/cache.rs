//! The local archive directory (§1.7, §6.7): plaintext manifests and gzipped signature
//! files under stock's names, so a cache made by duplicity keeps working and the reverse.
//!
//! The cache is only an accelerator: with none (a fresh pod), metadata is downloaded from
//! the target, decrypted, and cached for the rest of the run.

use crate::archive::names::FileKind;
use crate::config::Common;
use crate::error::{Error, Result};
use std::fs;
use std::io::{self, Read, Write};
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
pub const SEALED_RECORD: &str = "swiftdup-sealed.";

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
    Ok(crate::archive::hex(&h.finalize()))
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
            sha256: crate::archive::hex(&sha.finalize()),
            md5: crate::archive::hex(&md5.finalize()),
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

// Native only (uses unix file metadata); the wasm build runs what applies under wasmtime.
#[cfg(all(test, unix))]
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
