//! The target's manifests and signature files, read through the local cache: a cached
//! copy when it is there and still stands for the stored object, else downloaded,
//! opened (decrypted, checked) and cached for the rest of the run and the next ones.

use crate::archive::manifest::{self, Manifest};
use crate::archive::names::{FileKind, Suffix};
use crate::backend::Backend;
use crate::config::Common;
use crate::error::{Error, Result};
use crate::local::cache::{local_name, Cache, Sealed, SealedDigest, SEALED_RECORD};
use crate::local::spool::tempfile_in;
use crate::seal::pgp;
use crate::seal::{map_read_error, open_sealed};
use std::fs;
use std::io::{self, BufReader, Read};
use std::path::Path;

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
