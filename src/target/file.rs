//! `file:///path`: a directory as the backend, for local disks, NFS and tests.

use super::{Backend, Listed};
use crate::error::{Error, Result};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub struct FileBackend {
    dir: PathBuf,
}

impl FileBackend {
    /// The directory is created when missing, as stock's file backend does.
    pub fn new(dir: &str) -> Result<Self> {
        let dir = PathBuf::from(dir);
        fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
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
                Error::Backend {
                    object: name.into(),
                    detail: e.to_string(),
                    trans_id: None,
                }
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
            crate::fault::point("put");
            fs::File::open(&tmp)?.sync_all()?;
            fs::rename(&tmp, &dst)
        })();
        if let Err(e) = res {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Backend {
                object: name.into(),
                detail: e.to_string(),
                trans_id: None,
            });
        }
        crate::fault::point("stored");
        Ok(())
    }

    fn get(&self, name: &str, out: &mut fs::File) -> Result<u64> {
        let mut f = self.open(name)?;
        io::copy(&mut f, out).map_err(|e| Error::Backend {
            object: name.into(),
            detail: e.to_string(),
            trans_id: None,
        })
    }

    fn open_local(&self, name: &str) -> Option<Result<fs::File>> {
        Some(self.open(name))
    }

    fn list_detailed(&self, prefix: &str) -> Result<Vec<Listed>> {
        let rd = fs::read_dir(&self.dir).map_err(|e| Error::io(self.dir.display(), e))?;
        let mut names = Vec::new();
        for e in rd {
            let e = e.map_err(|e| Error::io(self.dir.display(), e))?;
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
                        Err(err) => return Err(Error::io(self.dir.display(), err)),
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
            Err(e) => Err(Error::Backend {
                object: name.into(),
                detail: e.to_string(),
                trans_id: None,
            }),
        }
    }

    fn describe(&self) -> String {
        format!("file://{}", self.dir.display())
    }
}
