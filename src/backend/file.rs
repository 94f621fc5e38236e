//! `file:///path`: a directory as the backend, for local disks, NFS and tests.
//!
//! The directory is the storage, even though it is a local path: an error on it (full,
//! read-only, permission denied) is `Error::Backend`, exit 50, like a failing Swift, and
//! not `Error::Io`, which is kept for this machine's own files (spool, cache, restore
//! target, source). Whoever is paged for the backup store is the one to look at it.

use super::{Access, Backend, Listed};
use crate::error::{Error, Result};
use std::fs;
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

pub struct FileBackend {
    dir: PathBuf,
}

/// A failure of the target directory itself (not of one object in it).
fn dir_error(dir: &Path, what: &str, e: io::Error) -> Error {
    let transient = is_transient(&e);
    let err = Error::Backend {
        object: dir.display().to_string(),
        detail: format!("{what}: {e}"),
        trans_id: None,
    };
    mark(err, transient, "GET")
}

/// A failure on `object` in the target directory.
fn storage_error(object: &str, e: io::Error, method: &'static str) -> Error {
    let transient = is_transient(&e);
    let err = Error::Backend {
        object: object.into(),
        detail: e.to_string(),
        trans_id: None,
    };
    mark(err, transient, method)
}

/// What another attempt may cure on a network file system (NFS, SMB, a FUSE mount): a
/// stale handle, a timeout, a soft mount's EIO, a busy resource. Full, read-only and
/// permission errors are final: retrying them only delays the error.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StaleNetworkFileHandle
            | io::ErrorKind::TimedOut
            | io::ErrorKind::WouldBlock
            | io::ErrorKind::ResourceBusy
    ) || e.raw_os_error() == Some(libc::EIO)
}

fn mark(err: Error, transient: bool, method: &'static str) -> Error {
    if transient {
        Error::Transient {
            err: Box::new(err),
            after: None,
            method,
        }
    } else {
        err
    }
}

impl FileBackend {
    /// For writing, the directory is created when missing, as stock's file backend does.
    /// For reading it must exist: a read-only verb (restore, verify, list, status) never
    /// creates its target, so a mistyped path is `target_missing` (exit 51) and not an
    /// empty directory left behind with "no backup" (exit 20).
    pub fn new(dir: &str, access: Access) -> Result<Self> {
        let dir = PathBuf::from(dir);
        match access {
            Access::Write => {
                fs::create_dir_all(&dir).map_err(|e| dir_error(&dir, "cannot create", e))?
            }
            Access::Read => match fs::metadata(&dir) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::TargetMissing(format!(
                        "file:// target {} is not a directory",
                        dir.display()
                    )))
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::TargetMissing(format!(
                        "file:// target directory {} does not exist (a command that only \
                         reads never creates it): check the URL",
                        dir.display()
                    )))
                }
                Err(e) => return Err(dir_error(&dir, "cannot open", e)),
            },
        }
        Ok(FileBackend { dir })
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        // Object names are flat: a `/` or `..` would reach outside the directory.
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(Error::Usage(format!("invalid object name {name:?}")));
        }
        Ok(self.dir.join(name))
    }
}

impl FileBackend {
    fn open(&self, name: &str) -> Result<fs::File> {
        let p = self.path(name)?;
        fs::File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::NotFound(name.into())
            } else {
                storage_error(name, e, "GET")
            }
        })
    }
}

impl Backend for FileBackend {
    fn put(&self, name: &str, src: &Path) -> Result<()> {
        let dst = self.path(name)?;
        // Copy to a temporary name and rename: a reader never sees half an object. A hard
        // link stands in for the copy when the spool is on the same filesystem (the spool
        // is never written again once it is handed here).
        let tmp = self.dir.join(format!(".{name}.swiftdup-part"));
        let res = (|| -> io::Result<()> {
            let _ = fs::remove_file(&tmp);
            if fs::hard_link(src, &tmp).is_err() {
                fs::copy(src, &tmp)?;
            }
            crate::local::fault::point("put");
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &dst)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(storage_error(name, e, "PUT"));
        }
        crate::local::fault::point("stored");
        Ok(())
    }

    fn get(&self, name: &str, out: &mut fs::File) -> Result<u64> {
        let mut f = self.open(name)?;
        // Emptied first: this may be a retry after a read broke off.
        out.set_len(0)
            .and_then(|()| out.seek(io::SeekFrom::Start(0)).map(drop))
            .map_err(|e| Error::io(format!("download of {name}"), e))?;
        // Reading the object is storage; writing `out` (a spool in --tempdir) is local: a
        // full /tmp must not look like a failing backup store.
        let mut buf = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            let got = match f.read(&mut buf) {
                Ok(0) => return Ok(n),
                Ok(k) => k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(storage_error(name, e, "GET")),
            };
            out.write_all(&buf[..got])
                .map_err(|e| Error::io(format!("download of {name}"), e))?;
            n += got as u64;
        }
    }

    fn open_local(&self, name: &str) -> Option<Result<fs::File>> {
        Some(self.open(name))
    }

    fn list_detailed(&self, prefix: &str) -> Result<Vec<Listed>> {
        let list_error = |e| dir_error(&self.dir, "cannot list", e);
        let rd = fs::read_dir(&self.dir).map_err(list_error)?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(list_error)?;
            // Names that are not UTF-8 cannot be duplicity files; skip them.
            if let Ok(n) = e.file_name().into_string() {
                if n.starts_with(prefix) && !n.ends_with(".swiftdup-part") {
                    // A file deleted between the listing and the stat is simply not listed.
                    match e.metadata() {
                        Ok(m) => names.push(Listed {
                            name: n,
                            size: m.len(),
                            md5: None,
                        }),
                        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                        Err(err) => return Err(list_error(err)),
                    }
                }
            }
        }
        names.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(names)
    }

    fn delete(&self, name: &str) -> Result<()> {
        match fs::remove_file(self.path(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(storage_error(name, e, "DELETE")),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_file_system_hiccups_are_transient_and_local_refusals_final() {
        for errno in [
            libc::ESTALE,
            libc::ETIMEDOUT,
            libc::EIO,
            libc::EAGAIN,
            libc::EBUSY,
        ] {
            let e = storage_error("o", io::Error::from_raw_os_error(errno), "PUT");
            assert!(matches!(e, Error::Transient { .. }), "errno {errno}: {e:?}");
            assert_eq!(e.exit_code(), crate::error::exit::BACKEND);
        }
        for errno in [
            libc::ENOSPC,
            libc::EACCES,
            libc::EROFS,
            libc::EDQUOT,
            libc::ENOTDIR,
        ] {
            let e = storage_error("o", io::Error::from_raw_os_error(errno), "PUT");
            assert!(matches!(e, Error::Backend { .. }), "errno {errno}: {e:?}");
        }
    }

    #[test]
    fn a_retried_download_starts_over() {
        let dir = std::env::temp_dir().join(format!("swiftdup-file-get-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let b = FileBackend::new(dir.to_str().unwrap(), Access::Write).unwrap();
        fs::write(dir.join("obj"), b"content").unwrap();
        let mut out = fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.join("out"))
            .unwrap();
        out.write_all(b"half of an earlier attempt").unwrap();
        assert_eq!(b.get("obj", &mut out).unwrap(), 7);
        assert_eq!(fs::read(dir.join("out")).unwrap(), b"content");
        fs::remove_dir_all(&dir).unwrap();
    }
}
