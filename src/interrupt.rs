//! SIGINT/SIGTERM: Kubernetes stops a pod with SIGTERM and waits a grace period (30 s by
//! default) before SIGKILL. The handler only records the signal; the pipeline checks it
//! between blocks and volumes and unwinds with `Error::Interrupted`, so the run still
//! releases its lock, writes `summary` and `exit`, and leaves at most an incomplete set (no
//! manifest) that the next run ignores.
//!
//! A run can be stuck where no check is reached: a request to a stalled server waits out
//! `--http-timeout` per read, and its retries. So a watchdog thread ends the run for it
//! when it has not ended [`GRACE`] after the signal: it runs what the holders of resources
//! registered with [`on_forced_end`] (the lock's release, the removal of spool files),
//! each on its own short deadline, logs `error`, `summary` and `exit`, and exits with
//! 143 or 130: within 10 s of the signal, whatever the network does.
//!
//! Releasing the lock after the signal must not itself be cancelled by it: [`shielded`]
//! runs code for which [`check`] does not fail.

use crate::error::{exit, Error, Result};
use std::cell::Cell;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// How long a run may take to unwind after a signal before the watchdog ends it. With
/// [`CLEANUP_BOUND`] on top, the process is gone within 10 s of the signal.
pub const GRACE: Duration = Duration::from_secs(6);
/// How long the watchdog waits for the registered clean-ups.
const CLEANUP_BOUND: Duration = Duration::from_millis(2500);

thread_local! {
    static SHIELDED: Cell<bool> = const { Cell::new(false) };
}

type Cleanup = Box<dyn Fn() + Send + Sync>;
static CLEANUPS: Mutex<Vec<(u64, std::sync::Arc<Cleanup>)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A clean-up registered with [`on_forced_end`]; dropping it removes it (the resource was
/// released the ordinary way).
pub struct Registered(u64);

impl Drop for Registered {
    fn drop(&mut self) {
        let mut c = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
        c.retain(|(id, _)| *id != self.0);
    }
}

/// Have `f` run if the watchdog has to end the run (see the module doc). `f` runs on a
/// thread of its own, so it must not rely on the stuck thread's state, and should bound
/// its own network calls (it is given up on after a short deadline).
pub fn on_forced_end(f: impl Fn() + Send + Sync + 'static) -> Registered {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut c = CLEANUPS.lock().unwrap_or_else(|e| e.into_inner());
    c.push((id, std::sync::Arc::new(Box::new(f))));
    Registered(id)
}

static ENDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the caller is the one to write the process's last events: the run as it
/// returns, or the watchdog ending it. The other one stands back.
pub fn claim_end() -> bool {
    ENDING
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// Run `f` with [`check`] passing on this thread: for giving back what the run holds (its
/// lock) after a signal, which the signal must not cancel.
pub fn shielded<T>(f: impl FnOnce() -> T) -> T {
    let was = SHIELDED.with(|s| s.replace(true));
    let out = f();
    SHIELDED.with(|s| s.set(was));
    out
}

#[cfg(unix)]
extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
}

/// Install the handlers and start the watchdog (native targets; WASI has no signals).
pub fn install() {
    #[cfg(unix)]
    {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        let _ = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(watchdog);
    }
}

/// Run what is still registered with [`on_forced_end`], each on a thread of its own, for
/// at most [`CLEANUP_BOUND`]: the watchdog does when it ends a run, and a run that ends
/// after a signal does for what threads still stuck in a request hold (their spool files).
pub fn run_cleanups() {
    let cleanups: Vec<_> = CLEANUPS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(_, f)| f.clone())
        .collect();
    if cleanups.is_empty() {
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    for f in cleanups {
        let tx = tx.clone();
        let _ = std::thread::Builder::new()
            .name("cleanup".into())
            .spawn(move || {
                f();
                let _ = tx.send(());
            });
    }
    drop(tx);
    let deadline = std::time::Instant::now() + CLEANUP_BOUND;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        if rx.recv_timeout(left).is_err() {
            break; // all done (disconnected) or out of time
        }
    }
}

/// Wait for a signal; if the process is still there [`GRACE`] later, end it (module doc).
#[cfg(unix)]
fn watchdog() {
    let code = loop {
        if let Some(code) = pending() {
            break code;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(GRACE);
    if !claim_end() {
        return; // the run is writing its own last events
    }
    run_cleanups();
    let sig = if code == exit::SIGINT {
        "SIGINT"
    } else {
        "SIGTERM"
    };
    crate::log::event(
        crate::log::Level::Error,
        "error",
        &format!(
            "stopped by {sig}: the run had not ended {} s after the signal (a request to a \
             stalled server), so it was ended; its lock and temporary files were removed",
            GRACE.as_secs()
        ),
        vec![("code", serde_json::json!("interrupted"))],
    );
    crate::log::event(
        crate::log::Level::Error,
        "summary",
        "run stopped",
        vec![("error_code", serde_json::json!("interrupted"))],
    );
    let meaning = crate::error::EXIT_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, _, m)| *m)
        .unwrap_or("");
    crate::log::info(
        "exit",
        meaning,
        vec![("exit_code", serde_json::json!(code))],
    );
    std::process::exit(code);
}

/// The exit code for the signal received, if any.
pub fn pending() -> Option<i32> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        2 => Some(exit::SIGINT),
        _ => Some(exit::SIGTERM),
    }
}

/// Fail with `Interrupted` once a signal has arrived (except in [`shielded`] code).
pub fn check() -> Result<()> {
    if SHIELDED.with(|s| s.get()) {
        return Ok(());
    }
    match pending() {
        Some(code) => Err(Error::Interrupted(code)),
        None => Ok(()),
    }
}
