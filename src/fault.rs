//! Crash points for the resume tests, in debug builds only: with `SWIFTDUP_FAULT=POINT:N`
//! the process kills itself with SIGKILL the N-th time it reaches POINT, exactly as if the
//! pod had been killed there. Release builds (musl, wasm, the image) compile this to nothing.
//!
//! Points: `put` (an upload half done), `stored` (an upload just finished), `entry` (a
//! source entry just processed).

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
    if want != name {
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
