//! Temporary files: anonymous ones (unlinked at once) for downloads and spools read back
//! in place, and named ones (`TempPath`) for uploads that reopen by path. Names carry the
//! pid and a random token, a run removes what killed runs left behind, and the watchdog
//! removes a run's named files when it has to end the run after a signal.

use crate::error::{Error, Result};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// An anonymous temporary file (unlinked at once, so nothing is left behind on a crash).
pub fn tempfile_in(dir: &Path) -> Result<fs::File> {
    let (p, f) = claim(dir, "anon")?;
    let _ = fs::remove_file(&p);
    Ok(f)
}

/// A temporary file that no other process can open by a name: it never has one (Linux's
/// `O_TMPFILE`, with `O_EXCL` so that it cannot be given one later, mode 0600), on a file
/// system whose files change only through this kernel. `None` where one cannot be made
/// (another system, a file system without `O_TMPFILE`, NFS).
#[cfg(target_os = "linux")]
pub fn private_tempfile_in(dir: &Path) -> Option<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::create_dir_all(dir).ok()?;
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_TMPFILE | libc::O_EXCL)
        .open(dir)
        .ok()?;
    crate::local::platform::on_local_disk(&f).then_some(f)
}

#[cfg(not(target_os = "linux"))]
pub fn private_tempfile_in(_dir: &Path) -> Option<fs::File> {
    None
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn a_private_spool_has_no_name_and_no_one_elses_permissions() {
        let dir = std::env::temp_dir().join(format!("swiftdup-private-{}", std::process::id()));
        let Some(mut f) = private_tempfile_in(&dir) else {
            eprintln!(
                "SKIPPED: no O_TMPFILE file on a local file system in {}",
                dir.display()
            );
            let _ = fs::remove_dir(&dir);
            return;
        };
        f.write_all(b"spooled").unwrap();
        f.rewind().unwrap();
        let mut back = String::new();
        f.read_to_string(&mut back).unwrap();
        assert_eq!(back, "spooled");
        let m = f.metadata().unwrap();
        assert_eq!(m.nlink(), 0, "it never had a name");
        assert_eq!(m.mode() & 0o777, 0o600);
        // Nothing appeared in the directory, which is left empty.
        fs::remove_dir(&dir).unwrap();
    }
}
