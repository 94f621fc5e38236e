//! The file-system calls where Linux and WASI differ: reading `lstat` data, and setting
//! owner, mode and times (symlinks included) and making FIFOs and devices relative to an
//! open directory (the restore's path resolver), the host name.
//!
//! Everything else in swiftdup uses `std::fs` and does not know which target it runs on.
//! WASI (preview 2) has no owners, no permission bits and no special files: there a backup
//! records mode 0644/0755, uid/gid 0, skips special files, and a restore skips what it
//! cannot set (docs/wasi.md).

use std::io;
use std::path::Path;

/// The type of a directory entry, as duplicity distinguishes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Fifo,
    Char,
    Block,
    Socket,
}

/// What `lstat` says about an entry, reduced to what duplicity stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stat {
    pub kind: Kind,
    /// The low 12 bits: permissions plus setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    /// Whole seconds, negative clamped to 0 as stock does.
    pub mtime: i64,
    pub size: u64,
    pub dev: u64,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// A libc call's return code as a `Result`.
#[cfg(any(unix, target_os = "wasi"))]
fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(unix)]
mod imp {
    use super::*;
    use std::ffi::{CStr, CString};
    use std::os::fd::RawFd;
    use std::os::unix::ffi::OsStrExt;

    pub fn lstat(path: &Path) -> io::Result<Stat> {
        let p = cpath(path)?;
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a NUL-terminated path and a buffer of the right type; `st` is read only
        // after the call succeeded.
        check(unsafe { libc::lstat(p.as_ptr(), st.as_mut_ptr()) })?;
        // SAFETY: lstat returned 0, so it filled `st`.
        Ok(from_stat(unsafe { &st.assume_init() }))
    }

    fn from_stat(st: &libc::stat) -> Stat {
        let kind = match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO => Kind::Fifo,
            libc::S_IFCHR => Kind::Char,
            libc::S_IFBLK => Kind::Block,
            _ => Kind::Socket,
        };
        Stat {
            kind,
            mode: st.st_mode & 0o7777,
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            mtime: st.st_mtime.max(0),
            size: if kind == Kind::File {
                st.st_size as u64
            } else {
                0
            },
            dev: st.st_dev,
            rdev_major: libc::major(st.st_rdev),
            rdev_minor: libc::minor(st.st_rdev),
        }
    }

    /// An open directory whose entries are `lstat`ed by name (`fstatat`): the kernel then
    /// looks up one component instead of walking the whole path again for every entry,
    /// which was a fifth of an unchanged incremental's time on a tree of small files.
    pub struct Dir(std::fs::File);

    /// `None` when the directory cannot be opened: its entries are then `lstat`ed by path.
    pub fn open_dir(path: &Path) -> Option<Dir> {
        std::fs::File::open(path).ok().map(Dir)
    }

    /// `lstat` of `name` inside `dir` (which is `path`'s parent), or of `path` without one.
    pub fn lstat_in(dir: Option<&Dir>, name: &[u8], path: &Path) -> io::Result<Stat> {
        use std::os::fd::AsRawFd;
        let (Some(dir), Ok(cname)) = (dir, CString::new(name)) else {
            return lstat(path);
        };
        let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: a valid directory fd, a NUL-terminated name and a buffer of the right
        // type; `st` is read only after the call succeeded.
        let rc = unsafe {
            libc::fstatat(
                dir.0.as_raw_fd(),
                cname.as_ptr(),
                st.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        check(rc)?;
        // SAFETY: fstatat returned 0, so it filled `st`.
        Ok(from_stat(unsafe { &st.assume_init() }))
    }

    pub(super) fn cpath(path: &Path) -> io::Result<CString> {
        CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    }

    /// A file name for the `*at` calls (names are raw bytes on Unix).
    pub fn c_name(name: &[u8]) -> io::Result<CString> {
        CString::new(name)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
    }

    /// The permission bits of `name` in `dir`, which the caller made and knows is no
    /// symlink (Linux cannot change a symlink's mode, and has no use for it).
    pub fn set_mode_at(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: name is a valid NUL-terminated string.
        check(unsafe { libc::fchmodat(dir, name.as_ptr(), (mode & 0o7777) as libc::mode_t, 0) })
    }

    /// The owner of `name` in `dir`, of the link itself for a symlink.
    pub fn set_owner_at(dir: RawFd, name: &CStr, uid: u64, gid: u64) -> io::Result<()> {
        // SAFETY: name is a valid NUL-terminated string.
        check(unsafe {
            libc::fchownat(
                dir,
                name.as_ptr(),
                uid as libc::uid_t,
                gid as libc::gid_t,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }

    pub fn mkfifo_at(dir: RawFd, name: &CStr, mode: u32) -> io::Result<()> {
        // SAFETY: name is a valid NUL-terminated string.
        check(unsafe {
            libc::mknodat(
                dir,
                name.as_ptr(),
                libc::S_IFIFO | (mode & 0o7777) as libc::mode_t,
                0,
            )
        })
    }

    pub fn mknod_at(
        dir: RawFd,
        name: &CStr,
        block: bool,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> io::Result<()> {
        let typ = if block { libc::S_IFBLK } else { libc::S_IFCHR };
        // SAFETY: name is a valid NUL-terminated string.
        check(unsafe {
            libc::mknodat(
                dir,
                name.as_ptr(),
                typ | (mode & 0o7777) as libc::mode_t,
                libc::makedev(major, minor),
            )
        })
    }

    /// This process's id, for unique temporary file names.
    pub fn process_id() -> u32 {
        std::process::id()
    }

    /// End the process with `code`.
    pub fn exit(code: i32) -> ! {
        std::process::exit(code)
    }

    pub fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// The user this process acts as, who owns what it creates.
    pub fn euid() -> Option<u64> {
        // SAFETY: geteuid has no preconditions.
        Some(unsafe { libc::geteuid() } as u64)
    }

    /// The group this process acts as.
    pub fn egid() -> Option<u64> {
        // SAFETY: getegid has no preconditions.
        Some(unsafe { libc::getegid() } as u64)
    }

    /// Create the directory `path` (not its parents) for its owner alone (mode 0700).
    pub fn create_private_dir(path: &Path) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(path)
    }

    pub fn hostname() -> String {
        let mut buf = [0u8; 256];
        // SAFETY: buf is writable for its length.
        let rc = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
        if rc != 0 {
            return String::new();
        }
        let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    pub fn os_bytes(p: &Path) -> Vec<u8> {
        p.as_os_str().as_bytes().to_vec()
    }

    pub fn path_from_bytes(b: &[u8]) -> std::path::PathBuf {
        std::ffi::OsStr::from_bytes(b).into()
    }

    /// `dir/name` for a name as bytes (one allocation).
    pub fn join_name(dir: &Path, name: &[u8]) -> std::path::PathBuf {
        dir.join(std::ffi::OsStr::from_bytes(name))
    }

    /// A directory entry's name as bytes, without copying it.
    pub fn into_name_bytes(name: std::ffi::OsString) -> Vec<u8> {
        use std::os::unix::ffi::OsStringExt;
        name.into_vec()
    }
}

/// WASI (preview 2) as wasmtime provides it: `std::fs` for what it covers, and wasi-libc
/// for setting times without following symlinks. There are no owners, no permission bits
/// (std cannot set them: a restore leaves the host's defaults), no FIFOs or devices (the
/// host reports them as other types, and `lstat` maps them all to `Socket` so the walk
/// skips them), and no process ids or host name.
#[cfg(target_os = "wasi")]
mod imp {
    use super::*;
    use std::ffi::{CStr, CString};
    use std::os::fd::RawFd;

    /// A path for wasi-libc (`std::os::wasi` is not stable on wasip2). WASI paths are
    /// UTF-8, and every path swiftdup makes here came through `path_from_bytes`.
    pub(super) fn cpath(path: &Path) -> io::Result<CString> {
        let s = path
            .to_str()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path is not UTF-8"))?;
        CString::new(s)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
    }

    /// No directory handles here: entries are `lstat`ed by path.
    pub struct Dir;

    pub fn open_dir(_path: &Path) -> Option<Dir> {
        None
    }

    pub fn lstat_in(_dir: Option<&Dir>, _name: &[u8], path: &Path) -> io::Result<Stat> {
        lstat(path)
    }

    pub fn lstat(path: &Path) -> io::Result<Stat> {
        let m = std::fs::symlink_metadata(path)?;
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink
        } else {
            // Devices (whose numbers WASI does not give), FIFOs and sockets (which WASI
            // reports as "unknown" or as sockets): nothing a restore could recreate.
            Kind::Socket
        };
        let mtime = metadata_mtime(&m);
        // No permission bits in WASI: what a plain umask-022 tree would have.
        let mode = match kind {
            Kind::Dir => 0o755,
            Kind::Symlink => 0o777,
            _ => 0o644,
        };
        Ok(Stat {
            kind,
            mode,
            uid: 0,
            gid: 0,
            mtime,
            size: if kind == Kind::File { m.len() } else { 0 },
            dev: 0,
            rdev_major: 0,
            rdev_minor: 0,
        })
    }

    /// A file name for the `*at` calls: WASI names are UTF-8 (see `path_from_bytes`).
    pub fn c_name(name: &[u8]) -> io::Result<CString> {
        CString::new(String::from_utf8_lossy(name).into_owned())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name contains NUL"))
    }

    /// WASI cannot set permission bits (std reports them as unsupported): entries keep
    /// the modes the host gives new files, which docs/wasi.md documents.
    pub fn set_mode_at(_dir: RawFd, _name: &CStr, _mode: u32) -> io::Result<()> {
        Ok(())
    }

    pub fn set_owner_at(_dir: RawFd, _name: &CStr, _uid: u64, _gid: u64) -> io::Result<()> {
        Ok(())
    }

    pub fn mkfifo_at(_dir: RawFd, _name: &CStr, _mode: u32) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "FIFOs cannot be created under WASI",
        ))
    }

    pub fn mknod_at(
        _dir: RawFd,
        _name: &CStr,
        _block: bool,
        _mode: u32,
        _major: u32,
        _minor: u32,
    ) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "devices cannot be created under WASI",
        ))
    }

    pub fn is_root() -> bool {
        false
    }

    /// No users under WASI: the host's preopened directories decide who sees what.
    pub fn euid() -> Option<u64> {
        None
    }

    pub fn egid() -> Option<u64> {
        None
    }

    /// No permission bits under WASI: a plain directory.
    pub fn create_private_dir(path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    /// End the process with `code`. std's `exit` can only say success or failure under
    /// WASI 0.2 (`wasi:cli/exit.exit` takes a result: wasmtime exits with 1 for every
    /// failure), so the documented exit codes go through `exit-with-code`, which the host
    /// must enable (`wasmtime run -S cli-exit-with-code`).
    pub fn exit(code: i32) -> ! {
        use std::io::Write;
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().flush();
        wasi::cli::exit::exit_with_code(u8::try_from(code).unwrap_or(u8::MAX));
        // Not reached: the host ends the component above.
        std::process::exit(code)
    }

    /// WASI has no host name: `HOSTNAME` when the runtime passes it (`--env HOSTNAME`),
    /// else empty (set `--hostname`/`SWIFTDUP_HOSTNAME` for incrementals to match).
    pub fn hostname() -> String {
        std::env::var("HOSTNAME").unwrap_or_default()
    }

    /// WASI has no process ids (std panics when asked): a random number, fixed for the
    /// run, keeps temporary names of concurrent runs apart.
    pub fn process_id() -> u32 {
        static ID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
        *ID.get_or_init(rand::random)
    }

    /// WASI file names are UTF-8 at the host boundary, so nothing is lost reading them;
    /// a stored name that is not UTF-8 is restored with U+FFFD in place of the bad bytes.
    pub fn os_bytes(p: &Path) -> Vec<u8> {
        p.to_string_lossy().into_owned().into_bytes()
    }

    pub fn path_from_bytes(b: &[u8]) -> std::path::PathBuf {
        String::from_utf8_lossy(b).into_owned().into()
    }

    pub fn join_name(dir: &Path, name: &[u8]) -> std::path::PathBuf {
        dir.join(String::from_utf8_lossy(name).as_ref())
    }

    pub fn into_name_bytes(name: std::ffi::OsString) -> Vec<u8> {
        name.to_string_lossy().into_owned().into_bytes()
    }
}

#[cfg(not(any(unix, target_os = "wasi")))]
compile_error!("swiftdup builds for Unix and WASI (wasm32-wasip2) only");

pub use imp::*;

/// Setting a modification time is the same call on Linux and WASI: wasi-libc's
/// `utimensat` resolves the path against the preopened directories as std does, and the
/// host applies `AT_SYMLINK_NOFOLLOW` (wasi:filesystem `set-times-at` without
/// `symlink-follow`).
#[cfg(any(unix, target_os = "wasi"))]
mod times {
    use super::check;
    use super::imp::cpath;
    use std::ffi::CStr;
    use std::io;
    use std::os::fd::RawFd;
    use std::path::Path;

    /// Set the modification time without following symlinks (stock never sets it on
    /// symlinks; swiftdup does, so a restored tree matches the source).
    pub fn set_mtime(path: &Path, mtime: i64) -> io::Result<()> {
        set_mtime_at(libc::AT_FDCWD, &cpath(path)?, mtime)
    }

    /// [`set_mtime`] of `name` in the directory `dir`.
    pub fn set_mtime_at(dir: RawFd, name: &CStr, mtime: i64) -> io::Result<()> {
        // WASI times are unsigned: there a time before 1970 becomes 1970 (Linux keeps it).
        let secs = if cfg!(target_os = "wasi") {
            mtime.max(0)
        } else {
            mtime
        };
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: secs as _, // the field's time_t, without naming the deprecated alias
                tv_nsec: 0,
            },
        ];
        // SAFETY: name is a valid NUL-terminated string and times has two elements.
        check(unsafe {
            libc::utimensat(
                dir,
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        })
    }
}

#[cfg(any(unix, target_os = "wasi"))]
pub use times::*;

/// The modification time in whole seconds from `std` metadata (0 before 1970, as stock
/// records it).
pub fn metadata_mtime(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A file name component as bytes (lossless on Unix).
pub fn name_bytes(name: &std::ffi::OsStr) -> Vec<u8> {
    os_bytes(Path::new(name))
}

/// A read lease on a file opened read-only (Linux): from when it is taken until it is
/// broken, nobody opens the file for writing or truncates it without the lease breaking
/// first, and the opener waits for the break (at most `/proc/sys/fs/lease-break-time`
/// seconds). So a lease still held after a file was read twice proves the two reads saw
/// the same bytes, on a file system whose files change only through this kernel. `None`
/// where none can be had: the file is open for writing somewhere (a writable shared
/// mapping included), belongs to another user (without CAP_LEASE), is on a file system
/// not known to be local (NFS, CIFS, FUSE, overlay: their files can change without an open
/// here), or this is not Linux.
pub struct ReadLease(#[cfg(target_os = "linux")] std::fs::File);

impl ReadLease {
    #[cfg(target_os = "linux")]
    pub fn take(f: &std::fs::File) -> Option<ReadLease> {
        use std::os::fd::AsRawFd;
        static QUIET: std::sync::Once = std::sync::Once::new();
        if !on_local_disk(f) {
            return None;
        }
        // A break is announced with SIGIO, whose default action ends the process; the
        // holder here asks instead (`held`), so the signal is ignored from before the
        // first lease on (swiftdup starts no other programs, which would inherit that).
        QUIET.call_once(|| unsafe {
            libc::signal(libc::SIGIO, libc::SIG_IGN);
        });
        // A duplicate shares the open file, and so the lease (which belongs to it).
        let f = f.try_clone().ok()?;
        let ok = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) } == 0;
        ok.then_some(ReadLease(f))
    }

    #[cfg(not(target_os = "linux"))]
    pub fn take(_f: &std::fs::File) -> Option<ReadLease> {
        None
    }

    /// Not broken since it was taken: nobody opened the file for writing or truncated it.
    #[cfg(target_os = "linux")]
    pub fn held(&self) -> bool {
        use std::os::fd::AsRawFd;
        // A pending break reads as the type the lease is being broken to (unlocked).
        unsafe { libc::fcntl(self.0.as_raw_fd(), libc::F_GETLEASE) == libc::F_RDLCK }
    }

    #[cfg(not(target_os = "linux"))]
    pub fn held(&self) -> bool {
        false
    }
}

/// Start writing `len` bytes of `f` at `at` to the disk, without waiting for it. Advice
/// only: an error changes nothing.
#[cfg(target_os = "linux")]
pub fn start_writeback(f: &std::fs::File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if let (Ok(at), Ok(len)) = (libc::off64_t::try_from(at), libc::off64_t::try_from(len)) {
        unsafe { libc::sync_file_range(f.as_raw_fd(), at, len, libc::SYNC_FILE_RANGE_WRITE) };
    }
}

/// Drop from the page cache what of `len` bytes of `f` at `at` is on the disk already;
/// pages still dirty or being written stay, and nothing waits. Advice only.
#[cfg(target_os = "linux")]
pub fn drop_written(f: &std::fs::File, at: u64, len: u64) {
    use std::os::fd::AsRawFd;
    if let (Ok(at), Ok(len)) = (libc::off_t::try_from(at), libc::off_t::try_from(len)) {
        unsafe { libc::posix_fadvise(f.as_raw_fd(), at, len, libc::POSIX_FADV_DONTNEED) };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn start_writeback(_f: &std::fs::File, _at: u64, _len: u64) {}

#[cfg(not(target_os = "linux"))]
pub fn drop_written(_f: &std::fs::File, _at: u64, _len: u64) {}

/// Start reading the first `len` bytes of the regular file at `path` into the page cache,
/// without waiting for them (`posix_fadvise(WILLNEED)`). Advice only: errors are ignored.
/// The open neither blocks (a FIFO put in the file's place since its `lstat`) nor follows a
/// symlink, and no read is made, so the file's access time stays as it was.
#[cfg(target_os = "linux")]
pub fn read_in(path: &Path, len: u64) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY)
        .open(path);
    if let (Ok(f), Ok(len)) = (opened, libc::off_t::try_from(len)) {
        unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, len, libc::POSIX_FADV_WILLNEED) };
    }
}

#[cfg(not(target_os = "linux"))]
pub fn read_in(_path: &Path, _len: u64) {}

/// Let the calling thread run only where the others leave a core idle (nice 10): for work
/// done ahead of need, such as fetching the next volumes, which would otherwise take the
/// cores from the work that is waited for. Advice only.
#[cfg(target_os = "linux")]
pub fn run_behind() {
    // On Linux, PRIO_PROCESS with a thread's id sets that thread's priority alone.
    let tid = unsafe { libc::syscall(libc::SYS_gettid) } as libc::id_t;
    unsafe { libc::setpriority(libc::PRIO_PROCESS, tid, 10) };
}

#[cfg(not(target_os = "linux"))]
pub fn run_behind() {}

/// Give back the blocks of `f` before `end`, keeping its size: a spool's bytes once read.
/// Their pages are freed at once, dirty or not: reused by what is written next, and not
/// written out to the disk first. False where the file system cannot (or this is not
/// Linux): nothing changed.
#[cfg(target_os = "linux")]
pub fn discard_before(f: &std::fs::File, end: u64) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(end) else {
        return false;
    };
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    unsafe { libc::fallocate(f.as_raw_fd(), mode, 0, len) == 0 }
}

#[cfg(not(target_os = "linux"))]
pub fn discard_before(_f: &std::fs::File, _end: u64) -> bool {
    false
}

/// On a file system whose files live on this machine's disks (or memory) and change only
/// through this kernel. Not ZFS: a rollback or a received stream replaces the contents
/// of files that are open, without an open of its own.
#[cfg(target_os = "linux")]
pub fn on_local_disk(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // statfs(2)'s magic numbers: ext2/3/4, XFS, Btrfs, F2FS, tmpfs.
    const LOCAL: [u32; 5] = [0xEF53, 0x5846_5342, 0x9123_683E, 0xF2F5_2010, 0x0102_1994];
    let mut st = std::mem::MaybeUninit::<libc::statfs>::uninit();
    if unsafe { libc::fstatfs(f.as_raw_fd(), st.as_mut_ptr()) } != 0 {
        return false;
    }
    // The field is signed or not, 32 or 64 bits wide, by libc: the magic is its low 32.
    let magic = unsafe { st.assume_init() }.f_type as u64 as u32;
    LOCAL.contains(&magic)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::ReadLease;
    use std::fs;
    use std::os::unix::fs::OpenOptionsExt;

    /// A file in the temporary directory, or `None` (with a message) where that is not on
    /// a local file system, which has no leases to test (an overlay `/tmp` in a container).
    fn scratch(name: &str) -> Option<std::path::PathBuf> {
        let p = std::env::temp_dir().join(format!("swiftdup-lease-{name}-{}", std::process::id()));
        fs::write(&p, b"volume bytes").unwrap();
        if !super::on_local_disk(&fs::File::open(&p).unwrap()) {
            eprintln!("SKIPPED: {} is not on a local file system", p.display());
            fs::remove_file(&p).unwrap();
            return None;
        }
        Some(p)
    }

    #[test]
    fn a_lease_holds_through_readers_and_breaks_on_an_open_for_writing() {
        let Some(p) = scratch("break") else { return };
        let f = fs::File::open(&p).unwrap();
        let lease = ReadLease::take(&f).expect("a read lease on our own file");
        assert!(lease.held());
        // Readers do not break it.
        let _other_reader = fs::File::open(&p).unwrap();
        assert!(lease.held());
        // A writer does, before it may write: a non-blocking open is refused meanwhile.
        let w = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&p);
        assert_eq!(
            w.err().and_then(|e| e.raw_os_error()),
            Some(libc::EWOULDBLOCK)
        );
        assert!(!lease.held());
        drop((lease, f));
        fs::remove_file(&p).unwrap();
    }

    /// A backup reads small files in ahead by the path its walk saw; by then a FIFO may
    /// stand there, and an open of a FIFO for reading waits for a writer.
    #[test]
    fn reading_in_does_not_wait_on_a_fifo_or_follow_a_symlink() {
        let d = std::env::temp_dir().join(format!("swiftdup-read-in-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        let fifo = d.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(&fifo, d.join("link")).unwrap();
        fs::write(d.join("file"), b"small file").unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let paths = ["fifo", "link", "file", "missing"].map(|n| d.join(n));
        std::thread::spawn(move || {
            for p in &paths {
                super::read_in(p, 4096);
            }
            tx.send(()).unwrap();
        });
        let done = rx.recv_timeout(std::time::Duration::from_secs(10));
        // Unblock a read_in that is stuck in its open, so the test ends either way.
        let _ = fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo);
        assert!(done.is_ok(), "read_in waited on a FIFO");
        assert_eq!(fs::read(d.join("file")).unwrap(), b"small file");
        fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn no_lease_where_files_can_change_without_an_open_here() {
        // procfs stands for any file system not known to be local.
        let f = fs::File::open("/proc/self/status").unwrap();
        assert!(!super::on_local_disk(&f));
        assert!(ReadLease::take(&f).is_none());
    }

    #[test]
    fn no_lease_on_a_file_open_for_writing() {
        let Some(p) = scratch("writer") else { return };
        let _w = fs::OpenOptions::new().append(true).open(&p).unwrap();
        let f = fs::File::open(&p).unwrap();
        assert!(ReadLease::take(&f).is_none());
        fs::remove_file(&p).unwrap();
    }

    #[test]
    fn truncating_by_name_breaks_a_lease() {
        let Some(p) = scratch("truncate") else { return };
        let f = fs::File::open(&p).unwrap();
        let lease = ReadLease::take(&f).unwrap();
        // truncate(2) waits for the break; let it time out in a thread (the test only
        // needs the break to be pending).
        let q = p.clone();
        let t = std::thread::spawn(move || {
            let c = std::ffi::CString::new(q.as_os_str().as_encoded_bytes()).unwrap();
            unsafe { libc::truncate(c.as_ptr(), 0) }
        });
        let start = std::time::Instant::now();
        while lease.held() && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(!lease.held());
        // Releasing the lease lets the truncate through.
        drop((lease, f));
        assert_eq!(t.join().unwrap(), 0);
        fs::remove_file(&p).unwrap();
    }
}
