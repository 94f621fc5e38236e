//! Crash points for the resume tests, in debug builds only: with `SWIFTDUP_FAULT=POINT:N`
//! the process kills itself with SIGKILL the N-th time it reaches POINT, exactly as if the
//! pod had been killed there. Release builds (musl, wasm, the image) compile this to nothing.
//!
//! Points: `put` (an upload half done), `stored` (an upload just finished), `entry` (a
//! source entry just processed). The lock renewer's uploads are not counted.
//!
//! `SWIFTDUP_FAULT=shrink:NAME` stands for a writer racing the backup instead: the source
//! file whose name is NAME is cut to half its size just after the backup opened it.

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
