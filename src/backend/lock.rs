//! The target lock: two jobs that write the same target (backup, cleanup, the remove-*
//! verbs) never interleave.
//!
//! Each job writes its own object, `<file-prefix>swiftdup-lock.<created>.<id>.<expires>`,
//! then lists every lock object: it holds the lock when no other live lock is there, and
//! otherwise deletes its own and steps back. Because everyone writes before listing, two
//! racing jobs cannot both miss each other (at worst both step back), and nothing is ever
//! overwritten, so no conditional PUT is needed. The expiry is in the name, so the listing alone says which locks are
//! live; on Swift the object also carries `X-Delete-After`, so a lock left by a killed pod
//! disappears by itself. A live job renews its lock (a new object, then the old one
//! deleted) well before it expires: from a thread on native builds, and from the backup
//! loop on WASI, which has no threads.
//!
//! Stock duplicity ignores these objects (they are not duplicity file names).

use crate::archive::time::rfc3339;
use crate::backend::{self, Backend};
use crate::config::Common;
use crate::error::{Error, Result};
use crate::log;
use serde_json::json;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Renewals per TTL: several, so a slow request or two does not let the lock lapse.
const RENEWALS_PER_TTL: u32 = 5;
const POLL: Duration = Duration::from_secs(5);

const STEM: &str = "swiftdup-lock.";

/// One lock object, parsed from its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LockInfo {
    pub name: String,
    pub created: i64,
    pub id: String,
    pub expires: i64,
}

/// Parse `<prefix>swiftdup-lock.<created>.<id>.<expires>`.
pub fn parse(prefix: &str, name: &str) -> Option<LockInfo> {
    let rest = name.strip_prefix(prefix)?.strip_prefix(STEM)?;
    let mut parts = rest.split('.');
    let created = parts.next()?.parse().ok()?;
    let id = parts.next()?.to_string();
    let expires = parts.next()?.parse().ok()?;
    if parts.next().is_some() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(LockInfo {
        name: name.to_string(),
        created,
        id,
        expires,
    })
}

/// The lock objects among `names`.
pub fn locks_in(prefix: &str, names: &[String]) -> Vec<LockInfo> {
    names.iter().filter_map(|n| parse(prefix, n)).collect()
}

use crate::archive::time::unix_now as now;

fn random_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    crate::archive::hex(&b)
}

fn random_u16() -> u16 {
    use rand::RngCore;
    rand::rngs::OsRng.next_u32() as u16
}

/// What the lock object holds: who took it, for the message another job prints.
fn body(command: &str, hostname: &str) -> Vec<u8> {
    json!({
        "tool": "swiftdup",
        "version": env!("CARGO_PKG_VERSION"),
        "command": command,
        "hostname": hostname,
        "pid": crate::local::platform::process_id(),
    })
    .to_string()
    .into_bytes()
}

struct State {
    current: String,
    created: i64,
    id: String,
    last_renewal: Instant,
    body: Vec<u8>,
    ttl: Duration,
}

/// The lock object and what renews it; dropping it deletes the object.
pub struct Lock {
    backend: Box<dyn Backend>,
    /// For the renewer thread, which opens its own connection (backends are not `Send`).
    url: String,
    backend_opts: backend::Options,
    prefix: String,
    tempdir: std::path::PathBuf,
    state: Arc<Mutex<State>>,
    /// Dropped to stop the renewer at once (it waits on the other end between rounds).
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
    /// The target listing taken to look for other locks, for the verb to start from.
    listing: std::cell::RefCell<Option<Vec<backend::Listed>>>,
    /// The lock's release should the run have to be ended after a signal.
    _forced_end: crate::interrupt::Registered,
}

/// Backend options for giving the lock back after a signal: one short try, so that the
/// release fits in the seconds between SIGTERM and SIGKILL.
fn release_options(opts: &backend::Options) -> backend::Options {
    let mut o = opts.clone();
    o.num_retries = 1;
    o.retry_delay = Duration::from_millis(200);
    o.http.timeout = o.http.timeout.min(Duration::from_secs(2));
    o.http.body_timeout_override = Some(Duration::from_secs(2));
    o
}

/// Delete the lock object `state` names through a connection of its own, with the short
/// deadline of [`release_options`].
fn release_now(url: &str, opts: &backend::Options, state: &Mutex<State>) -> Result<()> {
    let name = state.lock().map(|s| s.current.clone()).unwrap_or_default();
    let backend = backend::open(url, backend::Access::Write, &release_options(opts))?;
    crate::interrupt::shielded(|| backend.delete(&name))
}

/// How to take the lock.
pub struct Options {
    /// Wait up to this long for another job's lock to go away (`--lock-wait`).
    pub wait: Option<Duration>,
    /// Remove other jobs' locks first (`--break-lock`).
    pub break_lock: bool,
    pub command: String,
    pub hostname: String,
    /// How long the lock outlives its last renewal (`--lock-ttl`).
    pub ttl: Duration,
}

fn store(
    backend: &dyn Backend,
    tempdir: &std::path::Path,
    name: &str,
    body: &[u8],
    ttl: Duration,
) -> Result<()> {
    let tmp = crate::local::spool::TempPath::new(tempdir, "lock")?;
    std::fs::write(&tmp.0, body).map_err(|e| Error::io(tmp.0.display(), e))?;
    backend.put_expiring(name, &tmp.0, ttl)
}

fn object_name(prefix: &str, created: i64, id: &str, ttl: Duration) -> String {
    format!(
        "{prefix}{STEM}{created}.{id}.{}",
        now() + ttl.as_secs() as i64
    )
}

/// Take the lock on the target `common` names, or fail with `Error::Locked`.
pub fn acquire(common: &Common, opts: &Options) -> Result<Held> {
    let backend = backend::open(&common.url, backend::Access::Write, &common.backend)?;
    let prefix = common.prefixes.file.clone();
    let body = body(&opts.command, &opts.hostname);
    let deadline = opts.wait.map(|w| Instant::now() + w);
    if opts.break_lock {
        for l in locks_in(&prefix, &backend.list(&prefix)?) {
            log::warn(
                "warning",
                &format!(
                    "breaking lock {} taken at {} (--break-lock)",
                    l.name,
                    rfc3339(l.created)
                ),
                vec![("code", json!("lock_broken")), ("object", json!(l.name))],
            );
            backend.delete(&l.name)?;
        }
    }
    loop {
        let created = now();
        let id = random_id();
        let name = object_name(&prefix, created, &id, opts.ttl);
        store(backend.as_ref(), &common.tempdir, &name, &body, opts.ttl)?;
        let now = now();
        // Any other live lock wins, whoever wrote first: a job that already holds the lock
        // never looks again, so the newcomer must be the one to step back. Two jobs that
        // start in the same instant may both step back; neither writes, and with
        // --lock-wait they retry after a random pause.
        let listing = backend.list_detailed(&prefix)?;
        let holder = listing
            .iter()
            .filter_map(|l| parse(&prefix, &l.name))
            .filter(|l| l.id != id && l.expires >= now)
            .min_by_key(|l| l.created);
        let Some(h) = holder else {
            let state = Arc::new(Mutex::new(State {
                current: name,
                created,
                id,
                last_renewal: Instant::now(),
                body,
                ttl: opts.ttl,
            }));
            let forced_end = {
                let (url, opts, state) =
                    (common.url.clone(), common.backend.clone(), state.clone());
                crate::interrupt::on_forced_end(move || {
                    let _ = release_now(&url, &opts, &state);
                })
            };
            let mut lock = Lock {
                _forced_end: forced_end,
                backend,
                url: common.url.clone(),
                backend_opts: common.backend.clone(),
                prefix,
                tempdir: common.tempdir.clone(),
                state,
                stop: None,
                renewer: None,
                listing: std::cell::RefCell::new(Some(listing)),
            };
            lock.start_renewer();
            return Ok(Held::new(lock));
        };
        // Someone older holds it: step back.
        backend.delete(&name)?;
        let msg = format!(
            "the target is locked by another swiftdup job since {} (lock {}, expires {}); \
             wait for it, use --lock-wait, or --break-lock if it is certainly gone",
            rfc3339(h.created),
            h.name,
            rfc3339(h.expires)
        );
        match deadline {
            Some(d) if Instant::now() + POLL < d => {
                log::info(
                    "lock_wait",
                    &format!("waiting for the lock held since {}", rfc3339(h.created)),
                    vec![("object", json!(h.name))],
                );
                let jitter = Duration::from_millis(u64::from(random_u16()) % 2000);
                let until = Instant::now() + POLL + jitter;
                while Instant::now() < until {
                    crate::interrupt::check()?;
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            _ => return Err(Error::Locked(msg)),
        }
    }
}

/// Write a fresh lock object and delete the previous one.
fn renew(
    backend: &dyn Backend,
    prefix: &str,
    tempdir: &std::path::Path,
    s: &mut State,
) -> Result<()> {
    let name = object_name(prefix, s.created, &s.id, s.ttl);
    store(backend, tempdir, &name, &s.body, s.ttl)?;
    let old = std::mem::replace(&mut s.current, name);
    if old != s.current {
        backend.delete(&old)?;
    }
    s.last_renewal = Instant::now();
    Ok(())
}

impl Lock {
    /// Renew from a thread where threads exist; elsewhere `tick` does it.
    fn start_renewer(&mut self) {
        let (stop_tx, stop) = mpsc::channel::<()>();
        let (url, opts, prefix, tempdir, state) = (
            self.url.clone(),
            self.backend_opts.clone(),
            self.prefix.clone(),
            self.tempdir.clone(),
            self.state.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("lock-renewer".into())
            .spawn(move || {
                let backend = match backend::open(&url, backend::Access::Write, &opts) {
                    Ok(b) => b,
                    Err(e) => {
                        log::warn(
                            "warning",
                            &format!("cannot renew the target lock: {e}"),
                            vec![("code", json!("lock_renewal"))],
                        );
                        return;
                    }
                };
                // A message or a hang-up (the lock dropped) ends it; only a timeout goes on.
                while let Err(RecvTimeoutError::Timeout) =
                    stop.recv_timeout(Duration::from_millis(200))
                {
                    let Ok(mut s) = state.lock() else { return };
                    if s.last_renewal.elapsed() >= s.ttl / RENEWALS_PER_TTL {
                        if let Err(e) = renew(backend.as_ref(), &prefix, &tempdir, &mut s) {
                            log::warn(
                                "warning",
                                &format!("cannot renew the target lock: {e}"),
                                vec![("code", json!("lock_renewal"))],
                            );
                            // Try again at the next round instead of every 200 ms.
                            s.last_renewal = Instant::now();
                        }
                    }
                }
            });
        if let Ok(h) = spawned {
            self.renewer = Some(h);
            self.stop = Some(stop_tx);
        }
    }

    /// Renew the lock if it is due and no thread does it (WASI).
    fn tick(&self) {
        if self.renewer.is_some() {
            return;
        }
        let Ok(mut s) = self.state.lock() else { return };
        if s.last_renewal.elapsed() >= s.ttl / RENEWALS_PER_TTL {
            if let Err(e) = renew(self.backend.as_ref(), &self.prefix, &self.tempdir, &mut s) {
                log::warn(
                    "warning",
                    &format!("cannot renew the target lock: {e}"),
                    vec![("code", json!("lock_renewal"))],
                );
                s.last_renewal = Instant::now();
            }
        }
    }

    /// The lock object's current name.
    pub fn object(&self) -> String {
        self.state
            .lock()
            .map(|s| s.current.clone())
            .unwrap_or_default()
    }
}

thread_local! {
    /// The lock this thread holds when no renewer thread could be started (WASI), so the
    /// long loops can renew it through `tick` without being handed it.
    static HELD: std::cell::RefCell<Option<std::rc::Weak<Lock>>> =
        const { std::cell::RefCell::new(None) };
}

/// Renew the held lock when it is due and no thread renews it. Cheap: call it from loops.
pub fn tick() {
    HELD.with(|h| {
        if let Some(l) = h.borrow().as_ref().and_then(|w| w.upgrade()) {
            l.tick();
        }
    });
}

/// A held lock, released (its object deleted) when the last handle is dropped.
pub struct Held(std::rc::Rc<Lock>);

impl Held {
    /// The lock object's current name.
    pub fn object(&self) -> String {
        self.0.object()
    }

    /// The names under the target's file prefix, listed after the lock object was written
    /// and before this job holds the lock: what the target holds now, since every writer
    /// takes the lock (stock duplicity aside, which ignores it). Given once, so a second
    /// caller lists afresh.
    pub fn take_listing(&self) -> Option<Vec<backend::Listed>> {
        self.0.listing.borrow_mut().take()
    }

    fn new(l: Lock) -> Held {
        let rc = std::rc::Rc::new(l);
        if rc.renewer.is_none() {
            HELD.with(|h| *h.borrow_mut() = Some(std::rc::Rc::downgrade(&rc)));
        }
        Held(rc)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        HELD.with(|h| *h.borrow_mut() = None);
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(t) = self.renewer.take() {
            let _ = t.join();
        }
        let name = self.object();
        // After a signal the release must still happen (shielded from the interrupt), and
        // quickly: a connection of its own with a short deadline, not the run's own one,
        // which may be the one that is stuck.
        let released = if crate::interrupt::pending().is_some() {
            release_now(&self.url, &self.backend_opts, &self.state)
        } else {
            self.backend.delete(&name)
        };
        if let Err(e) = released {
            log::warn(
                "warning",
                &format!("cannot release the target lock {name}: {e}; it expires by itself"),
                vec![("code", json!("lock_release"))],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let l = parse("p-", "p-swiftdup-lock.1700000000.00ff.1700000900").unwrap();
        assert_eq!(
            (l.created, l.id.as_str(), l.expires),
            (1700000000, "00ff", 1700000900)
        );
        assert!(parse("", "p-swiftdup-lock.1.ab.2").is_none());
        assert!(parse("", "swiftdup-lock.1.xyz.2").is_none());
        assert!(parse("", "swiftdup-lock.1.ab.2.3").is_none());
        assert!(parse("", "duplicity-full.20261129T000000Z.vol1.difftar.gpg").is_none());
    }
}
