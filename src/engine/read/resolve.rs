//! The path resolver: the one way a restore creates, replaces or changes anything on disk.
//!
//! An archive is untrusted input: whoever holds a full key (or, in public-key mode without
//! signing, anyone with write access to the container) can write one. So no entry is ever
//! reached by a path string. Every write starts from an open handle on the restore's base
//! directory and goes down one component at a time with `openat(O_DIRECTORY |
//! O_NOFOLLOW)`: a symlink or a non-directory on the way is refused (`unsafe_member`, exit
//! 25), whoever made it (the archive, earlier in the same set or in an earlier set of the
//! chain, or whatever was in TARGET before). The last component is created with `O_EXCL |
//! O_NOFOLLOW` after whatever was there has been removed without following it, and its
//! owner, mode and time are set relative to its directory, never through a link.
//!
//! The base is TARGET for a tree, or the directory that receives the one file of a
//! `--file-to-restore` of a non-directory; nothing the archive describes can name the
//! base's parent, and a restore of one file has no entries below it. Under WASI the same
//! calls go through wasi-libc, and the preopened directories confine them as well.

use crate::archive::index_display;
use crate::error::{Error, Result};
use crate::local::platform;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// Directory handles kept open along the path of the last entry; deeper paths are walked
/// with handles closed as they are passed, so a deep tree cannot exhaust descriptors.
const MAX_OPEN: usize = 64;

/// What a restore writes into, reached only through open directory handles.
pub(crate) struct Resolver {
    base: OwnedFd,
    base_path: PathBuf,
    /// Set when the restore is of one non-directory: its name in `base`. The only entry
    /// such a restore has is the root (index `[]`).
    leaf: Option<Vec<u8>>,
    /// Open directories below `base` along the last entry's path.
    open: Vec<(Vec<u8>, OwnedFd)>,
    /// The parent handle when the path is deeper than `MAX_OPEN`.
    deep: Option<OwnedFd>,
}

/// The kind of an existing entry, looked at without following it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Existing {
    Nothing,
    Dir,
    Other,
}

/// What is at `path` (trusted: a path the user gave), without following a final symlink.
pub(crate) fn existing(path: &Path) -> io::Result<Existing> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Ok(Existing::Dir),
        Ok(_) => Ok(Existing::Other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Existing::Nothing),
        Err(e) => Err(e),
    }
}

fn cpath(path: &Path) -> io::Result<CString> {
    platform::c_name(&platform::os_bytes(path))
}

fn last_errno() -> (io::Error, i32) {
    let e = io::Error::last_os_error();
    let n = e.raw_os_error().unwrap_or(0);
    (e, n)
}

fn openat(dir: RawFd, name: &CStr, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: a NUL-terminated name; the returned descriptor is owned by nobody else.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: openat returned a new descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )
}

fn kind_at(dir: RawFd, name: &CStr) -> io::Result<Existing> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a NUL-terminated name and a buffer of the right type, read only on success.
    let rc = unsafe {
        libc::fstatat(
            dir,
            name.as_ptr(),
            st.as_mut_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc != 0 {
        let (e, n) = last_errno();
        return if n == libc::ENOENT {
            Ok(Existing::Nothing)
        } else {
            Err(e)
        };
    }
    // SAFETY: fstatat returned 0, so it filled `st`.
    let mode = unsafe { st.assume_init() }.st_mode;
    Ok(if mode & libc::S_IFMT == libc::S_IFDIR {
        Existing::Dir
    } else {
        Existing::Other
    })
}

fn unlink_at(dir: RawFd, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: a NUL-terminated name.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), flags) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The names in an open directory (its own handle is opened for the listing).
fn names_in(dir: RawFd) -> io::Result<Vec<CString>> {
    let fd = openat(dir, c".", libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    let raw = fd.as_raw_fd();
    // SAFETY: a valid directory descriptor, which fdopendir owns from here on.
    let d = unsafe { libc::fdopendir(raw) };
    if d.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(fd);
    let mut names = Vec::new();
    loop {
        // SAFETY: `d` is an open DIR stream; the entry is valid until the next readdir.
        let ent = unsafe { libc::readdir(d) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated within the entry readdir returned.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if name != c"." && name != c".." {
            names.push(name.to_owned());
        }
    }
    // SAFETY: `d` is open and closed once.
    unsafe { libc::closedir(d) };
    Ok(names)
}

/// Remove `name` in `dir` and, if it is a directory, everything below it, never
/// following a symlink.
fn remove_tree_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    let sub = match open_dir_at(dir, name) {
        Ok(fd) => fd,
        Err(_) => return unlink_at(dir, name, 0),
    };
    for child in names_in(sub.as_raw_fd())? {
        match unlink_at(sub.as_raw_fd(), &child, 0) {
            Ok(()) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {
                remove_tree_at(sub.as_raw_fd(), &child)?
            }
            Err(e) => return Err(e),
        }
    }
    drop(sub);
    unlink_at(dir, name, libc::AT_REMOVEDIR)
}

impl Resolver {
    /// A restore of a tree into the directory `root`, which exists.
    pub(crate) fn tree(root: &Path) -> Result<Resolver> {
        Self::with_base(root, None)
    }

    /// A restore of one non-directory as `name` inside the existing directory `dir`.
    pub(crate) fn single(dir: &Path, name: Vec<u8>) -> Result<Resolver> {
        Self::with_base(dir, Some(name))
    }

    fn with_base(base_path: &Path, leaf: Option<Vec<u8>>) -> Result<Resolver> {
        // The base is the user's own path: symlinks on the way to it are theirs to follow.
        let open = cpath(base_path)
            .and_then(|p| openat(libc::AT_FDCWD, &p, libc::O_RDONLY | libc::O_DIRECTORY, 0));
        let base = open.map_err(|e| Error::io(base_path.display(), e))?;
        Ok(Resolver {
            base,
            base_path: base_path.to_path_buf(),
            leaf,
            open: Vec::new(),
            deep: None,
        })
    }

    /// Whether this restore is of one non-directory.
    pub(crate) fn is_single(&self) -> bool {
        self.leaf.is_some()
    }

    /// Where the entry at `rel` (relative to the restore's root) is, for messages.
    pub(crate) fn display(&self, rel: &[Vec<u8>]) -> PathBuf {
        let mut p = self.base_path.clone();
        if let Some(leaf) = &self.leaf {
            p.push(platform::path_from_bytes(leaf));
        }
        for c in rel {
            p.push(platform::path_from_bytes(c));
        }
        p
    }

    fn refuse(&self, rel: &[Vec<u8>], object: &str, why: &str) -> Error {
        Error::UnsafeMember {
            object: object.to_string(),
            member: index_display(&rel.to_vec()),
            why: why.to_string(),
        }
    }

    /// Step into the directory `name` below `at`, making it when it is missing.
    fn enter(&self, at: RawFd, name: &[u8], rel: &[Vec<u8>], object: &str) -> Result<OwnedFd> {
        let c = platform::c_name(name).map_err(|e| Error::io(self.display(rel).display(), e))?;
        let mut made = false;
        loop {
            match open_dir_at(at, &c) {
                Ok(fd) => return Ok(fd),
                Err(e) => match e.raw_os_error() {
                    Some(libc::ENOENT) if !made => {
                        // SAFETY: a NUL-terminated name.
                        let rc = unsafe { libc::mkdirat(at, c.as_ptr(), 0o777) };
                        if rc != 0 {
                            let (e, n) = last_errno();
                            if n != libc::EEXIST {
                                return Err(Error::io(self.display(rel).display(), e));
                            }
                        }
                        made = true;
                    }
                    Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EMLINK) => {
                        return Err(self.refuse(
                            rel,
                            object,
                            &format!(
                                "{} on its path is a symlink or not a directory: writing \
                                 through it could put files outside the target",
                                String::from_utf8_lossy(name)
                            ),
                        ))
                    }
                    _ => return Err(Error::io(self.display(rel).display(), e)),
                },
            }
        }
    }

    /// The directory holding `rel`'s last component, and that component's name.
    fn parent(&mut self, rel: &[Vec<u8>], object: &str) -> Result<(RawFd, CString)> {
        let name = match (&self.leaf, rel.split_last()) {
            (Some(leaf), None) => leaf.clone(),
            (Some(_), Some(_)) => {
                return Err(self.refuse(
                    rel,
                    object,
                    "the restored path is not a directory, so nothing can be below it",
                ))
            }
            (None, None) => {
                return Err(Error::Internal(
                    "the root of a tree has no parent to resolve".into(),
                ))
            }
            (None, Some((last, _))) => last.clone(),
        };
        let dirs = &rel[..rel.len().saturating_sub(1)];
        let keep = self
            .open
            .iter()
            .zip(dirs)
            .take_while(|((n, _), c)| n == *c)
            .count();
        self.open.truncate(keep);
        self.deep = None;
        for (i, c) in dirs.iter().enumerate().skip(keep) {
            let at = match (&self.deep, self.open.last()) {
                (Some(d), _) => d.as_raw_fd(),
                (None, Some((_, d))) => d.as_raw_fd(),
                (None, None) => self.base.as_raw_fd(),
            };
            let fd = self.enter(at, c, &rel[..=i], object)?;
            if self.open.len() < MAX_OPEN && self.deep.is_none() {
                self.open.push((c.clone(), fd));
            } else {
                self.deep = Some(fd);
            }
        }
        let at = match (&self.deep, self.open.last()) {
            (Some(d), _) => d.as_raw_fd(),
            (None, Some((_, d))) => d.as_raw_fd(),
            (None, None) => self.base.as_raw_fd(),
        };
        let c = platform::c_name(&name).map_err(|e| Error::io(self.display(rel).display(), e))?;
        Ok((at, c))
    }

    /// Remove whatever is at `name` in `at`, unless it is a directory and `keep_dir`.
    /// Returns whether a directory was kept.
    fn clear(&self, at: RawFd, name: &CStr, keep_dir: bool, rel: &[Vec<u8>]) -> Result<bool> {
        let io_err = |e| Error::io(self.display(rel).display(), e);
        match kind_at(at, name).map_err(io_err)? {
            Existing::Nothing => Ok(false),
            Existing::Dir if keep_dir => Ok(true),
            Existing::Dir => remove_tree_at(at, name).map(|_| false).map_err(io_err),
            Existing::Other => unlink_at(at, name, 0).map(|_| false).map_err(io_err),
        }
    }

    /// Make `rel` a directory: kept if it is one, whatever else was there replaced.
    pub(crate) fn make_dir(&mut self, rel: &[Vec<u8>], object: &str) -> Result<()> {
        if rel.is_empty() && self.leaf.is_none() {
            return Ok(()); // the base itself
        }
        let (at, name) = self.parent(rel, object)?;
        if self.clear(at, &name, true, rel)? {
            return Ok(());
        }
        // SAFETY: a NUL-terminated name.
        if unsafe { libc::mkdirat(at, name.as_ptr(), 0o777) } != 0 {
            return Err(Error::io(
                self.display(rel).display(),
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Create `rel` as a new, empty regular file (whatever was there is removed first)
    /// and open it for reading and writing.
    pub(crate) fn create_file(&mut self, rel: &[Vec<u8>], object: &str) -> Result<File> {
        let (at, name) = self.parent(rel, object)?;
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let fd = match openat(at, &name, flags, 0o600) {
            Ok(fd) => fd,
            // Something is there (a fresh TARGET has nothing, so this costs no extra call).
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(at, &name, false, rel)?;
                openat(at, &name, flags, 0o600)
                    .map_err(|e| Error::io(self.display(rel).display(), e))?
            }
            Err(e) => return Err(Error::io(self.display(rel).display(), e)),
        };
        Ok(File::from(fd))
    }

    /// Make `rel` with `make(dir, name)` (a symlink, FIFO or device), replacing whatever
    /// was there. The error of `make` is returned as it is, for the caller to judge.
    pub(crate) fn make_special(
        &mut self,
        rel: &[Vec<u8>],
        object: &str,
        make: impl Fn(RawFd, &CStr) -> io::Result<()>,
    ) -> Result<io::Result<()>> {
        let (at, name) = self.parent(rel, object)?;
        match make(at, &name) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
                self.clear(at, &name, false, rel)?;
                Ok(make(at, &name))
            }
            other => Ok(other),
        }
    }

    /// Call `set(dir, name)` for the entry at `rel` (`.` in the base for the root of a
    /// tree), to set its owner, mode or time without following it.
    pub(crate) fn at<T>(
        &mut self,
        rel: &[Vec<u8>],
        object: &str,
        set: impl FnOnce(RawFd, &CStr) -> T,
    ) -> Result<T> {
        if rel.is_empty() && self.leaf.is_none() {
            return Ok(set(self.base.as_raw_fd(), c"."));
        }
        let (at, name) = self.parent(rel, object)?;
        Ok(set(at, &name))
    }

    /// Remove the entry at `rel` (a file a failed restore left half written).
    pub(crate) fn remove(&mut self, rel: &[Vec<u8>], object: &str) -> Result<()> {
        let (at, name) = self.parent(rel, object)?;
        match unlink_at(at, &name, 0) {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => {
                Err(Error::io(self.display(rel).display(), e))
            }
            _ => Ok(()),
        }
    }
}

/// Make a symlink `name` in `dir` pointing to the raw bytes `target`.
pub(crate) fn symlink_at(target: &[u8], dir: RawFd, name: &CStr) -> io::Result<()> {
    let t = platform::c_name(target)?;
    // SAFETY: both are NUL-terminated strings.
    if unsafe { libc::symlinkat(t.as_ptr(), dir, name.as_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// Native only (makes symlinks with std::os::unix); the wasm build runs what applies under wasmtime.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::archive::Index;
    use std::fs;
    use std::io::Write;

    fn scratch(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("swiftdup-resolve-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn idx(s: &str) -> Index {
        s.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn writes_below_the_base_and_makes_missing_directories() {
        let d = scratch("plain");
        let mut r = Resolver::tree(&d).unwrap();
        r.make_dir(&idx("a"), "v").unwrap();
        let mut f = r.create_file(&idx("a/b/c.txt"), "v").unwrap();
        f.write_all(b"hi").unwrap();
        r.make_special(&idx("a/l"), "v", |at, n| symlink_at(b"../x", at, n))
            .unwrap()
            .unwrap();
        assert_eq!(fs::read(d.join("a/b/c.txt")).unwrap(), b"hi");
        assert_eq!(fs::read_link(d.join("a/l")).unwrap(), Path::new("../x"));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_symlink_on_the_path_is_refused_wherever_it_came_from() {
        let d = scratch("link");
        let outside = d.join("outside");
        fs::create_dir_all(&outside).unwrap();
        let root = d.join("root");
        fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("pre")).unwrap();
        let mut r = Resolver::tree(&root).unwrap();
        // One that was in TARGET before.
        let e = r.create_file(&idx("pre/x"), "v").unwrap_err();
        assert!(matches!(e, Error::UnsafeMember { .. }), "{e}");
        // One the archive made a moment ago.
        r.make_special(&idx("made"), "v", |at, n| {
            symlink_at(outside.to_str().unwrap().as_bytes(), at, n)
        })
        .unwrap()
        .unwrap();
        for p in ["made/x", "made/y/z"] {
            let e = r.create_file(&idx(p), "v").unwrap_err();
            assert!(matches!(e, Error::UnsafeMember { .. }), "{p}: {e}");
            assert!(r.make_dir(&idx(p), "v").is_err());
        }
        // A file on the path is no directory either.
        r.create_file(&idx("f"), "v").unwrap();
        assert!(matches!(
            r.create_file(&idx("f/x"), "v").unwrap_err(),
            Error::UnsafeMember { .. }
        ));
        assert_eq!(
            fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing outside"
        );
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn replacing_never_follows_and_keeps_directories_for_directories() {
        let d = scratch("replace");
        let outside = d.join("outside.txt");
        fs::write(&outside, b"keep").unwrap();
        let root = d.join("root");
        fs::create_dir_all(root.join("dir/sub")).unwrap();
        fs::write(root.join("dir/sub/old"), b"old").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("file")).unwrap();
        let mut r = Resolver::tree(&root).unwrap();
        // The symlink is replaced by a file; its target is untouched.
        let mut f = r.create_file(&idx("file"), "v").unwrap();
        f.write_all(b"new").unwrap();
        assert_eq!(fs::read(&outside).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(root.join("file"))
            .unwrap()
            .file_type()
            .is_symlink());
        // A directory stays a directory with its contents; a file replaces it whole.
        r.make_dir(&idx("dir"), "v").unwrap();
        assert!(root.join("dir/sub/old").exists());
        r.create_file(&idx("dir"), "v").unwrap();
        assert!(root.join("dir").is_file());
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_single_entry_has_no_children() {
        let d = scratch("single");
        let mut r = Resolver::single(&d, b"one.txt".to_vec()).unwrap();
        r.create_file(&[], "v").unwrap();
        assert!(d.join("one.txt").is_file());
        assert!(matches!(
            r.create_file(&idx("x"), "v").unwrap_err(),
            Error::UnsafeMember { .. }
        ));
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn deep_paths_do_not_keep_a_handle_per_level() {
        let d = scratch("deep");
        let mut r = Resolver::tree(&d).unwrap();
        let deep: Index = (0..MAX_OPEN + 40).map(|_| b"d".to_vec()).collect();
        let mut file = deep.clone();
        file.push(b"f".to_vec());
        r.create_file(&file, "v").unwrap();
        assert_eq!(r.open.len(), MAX_OPEN);
        let mut p = d.clone();
        for c in &deep {
            p.push(platform::path_from_bytes(c));
        }
        assert!(p.join("f").is_file());
        fs::remove_dir_all(&d).unwrap();
    }
}
