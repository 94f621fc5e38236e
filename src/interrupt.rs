//! SIGINT/SIGTERM: Kubernetes stops a pod with SIGTERM and waits a grace period. The
//! handler only records the signal; the pipeline checks it between blocks and volumes and
//! unwinds with `Error::Interrupted`, so the run still writes `summary` and `exit`, and
//! leaves at most an incomplete set (no manifest) that the next run ignores.

use crate::error::{exit, Error, Result};
use std::sync::atomic::{AtomicI32, Ordering};

static SIGNAL: AtomicI32 = AtomicI32::new(0);

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Install the handlers (native targets; WASI has no signals).
pub fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// The exit code for the signal received, if any.
pub fn pending() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        2 => Some(exit::SIGINT),
        _ => Some(exit::SIGTERM),
    }
}

/// Fail with `Interrupted` once a signal has arrived.
pub fn check() -> Result<()> {
    match pending() {
        Some(code) => Err(Error::Interrupted(code)),
        None => Ok(()),
    }
}
