//! Crash points for the resume tests, in debug builds only: with `SWIFTDUP_FAULT=POINT:N`
//! the process kills itself with SIGKILL the N-th time it reaches POINT, exactly as if the
//! pod had been killed there. Release builds (musl, wasm, the image) compile this to nothing.
//!
//! Points: `put` (an upload half done), `stored` (an upload just finished), `entry` (a
//! source entry just processed). The lock renewer's uploads are not counted.
//!
//! `SWIFTDUP_FAULT=shrink:NAME` stands for a writer racing the backup instead: the source
//! file whose name is NAME is cut to half its size just after the backup opened it.
//!
//! `SWIFTDUP_FAULT=scribble:PART` stands for another process writing to a volume of a local
//! target during a restore: just after the volume whose name contains PART was checked
//! against its manifest, it is opened for writing (through `/proc/self/fd`, the same file)
//! and a byte in its middle changed. Where the restore holds a lease on it, that open is
//! refused and only breaks the lease, as a real writer's open would before it could write.

#[cfg(all(debug_assertions, unix))]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEEN: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let Ok(spec) = std::env::var("SWIFTDUP_FAULT") else {
        return;
    };
    let Some((want, n)) = spec.split_once(':') else {
        return;
    };
    // The lock renewer's uploads come when the clock says, not at a fixed place in the
    // run: counting them would move every later point with the machine's speed.
    if want != name || std::thread::current().name() == Some("lock-renewer") {
        return;
    }
    let slot = match name {
        "put" => 0,
        "stored" => 1,
        _ => 2,
    };
    let seen = SEEN[slot].fetch_add(1, Ordering::SeqCst) + 1;
    if n.parse() == Ok(seen) {
        // SAFETY: kill(2) on our own pid with a valid signal has no memory effects.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}

#[cfg(not(all(debug_assertions, unix)))]
#[inline(always)]
pub fn point(_name: &str) {}

/// See the module doc: `shrink:NAME` cuts the file at `path` when its name is NAME.
#[cfg(all(debug_assertions, unix))]
pub fn opened(path: &std::path::Path) {
    let Ok(spec) = std::env::var("SWIFTDUP_FAULT") else {
        return;
    };
    let Some(("shrink", name)) = spec.split_once(':') else {
        return;
    };
    if path.file_name().is_some_and(|n| n == name) {
        if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path) {
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            let _ = f.set_len(len / 2);
        }
    }
}

#[cfg(not(all(debug_assertions, unix)))]
#[inline(always)]
pub fn opened(_path: &std::path::Path) {}

/// See the module doc: `scribble:PART` writes to the checked volume `f` named `name`.
#[cfg(all(debug_assertions, target_os = "linux"))]
pub fn checked(name: &str, f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let Ok(spec) = std::env::var("SWIFTDUP_FAULT") else {
        return;
    };
    let Some(("scribble", part)) = spec.split_once(':') else {
        return;
    };
    if !name.contains(part) {
        return;
    }
    let w = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", f.as_raw_fd()));
    if let Ok(w) = w {
        let mid = w.metadata().map(|m| m.len() / 2).unwrap_or(0);
        let mut b = [0u8];
        if f.read_at(&mut b, mid).is_ok() {
            let _ = w.write_at(&[b[0] ^ 0x40], mid);
        }
    }
}

#[cfg(not(all(debug_assertions, target_os = "linux")))]
#[inline(always)]
pub fn checked(_name: &str, _f: &std::fs::File) {}
