//! Retries, for every backend: a decorator (restic's pattern) that runs each operation of
//! the backend inside it again while it fails with `Error::Transient`, with exponential
//! backoff and full jitter, never shorter than a server's `Retry-After`, and waking up for
//! SIGINT/SIGTERM. A backend only says which failures another attempt may cure (Swift: 5xx,
//! 429, resets, truncated or mismatched transfers; file://: a stale or timed-out network
//! file system); how often and how long to try again is decided here, once.
//!
//! An operation is retried whole: a listing broken off at its third page is listed again
//! from the start, a download is fetched again from its first byte.

use super::{Backend, Listed, Options};
use crate::error::{Error, Result};
use crate::{interrupt, log};
use serde_json::json;
use std::fs::File;
use std::path::Path;
use std::time::Duration;

/// The longest wait between two attempts, whatever the backoff or `Retry-After` says.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// A backend whose transient failures are tried again (`--num-retries` times after the
/// first attempt, waits from `--backend-retry-delay` doubling up to `MAX_DELAY`).
pub struct Retrying<B> {
    inner: B,
    num_retries: u32,
    retry_delay: Duration,
}

impl<B: Backend> Retrying<B> {
    pub fn new(inner: B, opts: &Options) -> Self {
        Retrying {
            inner,
            num_retries: opts.num_retries,
            retry_delay: opts.retry_delay,
        }
    }

    /// The backend inside (for tests that look at its state).
    pub fn inner(&self) -> &B {
        &self.inner
    }

    /// Run `op` until it succeeds, fails for good, or has failed transiently
    /// `num_retries + 1` times.
    fn run<T>(&self, mut op: impl FnMut() -> Result<T>) -> Result<T> {
        let attempts = self.num_retries.saturating_add(1);
        let mut attempt = 1;
        loop {
            interrupt::check()?;
            let (err, after, method) = match op() {
                Ok(t) => return Ok(t),
                Err(Error::Transient { err, after, method }) => (*err, after, method),
                Err(e) => return Err(e),
            };
            if attempt >= attempts {
                return Err(gave_up(err, attempts));
            }
            let delay = self.backoff(attempt - 1, after);
            log_retry(&err, method, attempt, self.num_retries, delay);
            sleep_interruptibly(delay)?;
            attempt += 1;
        }
    }

    /// Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^retry)], but
    /// never shorter than the server's `Retry-After` (itself capped).
    fn backoff(&self, retry: u32, after: Option<Duration>) -> Duration {
        use rand::Rng;
        let ceiling = self
            .retry_delay
            .saturating_mul(1u32 << retry.min(16))
            .min(MAX_DELAY);
        let jitter = ceiling.mul_f64(rand::thread_rng().gen::<f64>());
        match after {
            Some(a) => jitter.max(a.min(MAX_DELAY)),
            None => jitter,
        }
    }
}

/// The `retry` event (a warning): which object, which request, why, and the wait.
fn log_retry(err: &Error, method: &str, attempt: u32, retries: u32, delay: Duration) {
    let object = err.object().unwrap_or("").to_string();
    // The event carries object and trans_id as fields: the reason need not repeat them.
    let reason = match err {
        Error::Backend { detail, .. } | Error::Integrity { detail, .. } => detail.clone(),
        e => e.to_string(),
    };
    let mut fields = vec![
        ("object", json!(object)),
        ("method", json!(method)),
        ("attempt", json!(attempt)),
        (
            "delay_seconds",
            json!((delay.as_secs_f64() * 1000.0).round() / 1000.0),
        ),
        ("reason", json!(reason)),
    ];
    if let Some(t) = err.trans_id() {
        fields.push(("trans_id", json!(t)));
    }
    log::warn(
        "retry",
        &format!(
            "{object}: {reason}; retry {attempt} of {retries} in {:.1}s",
            delay.as_secs_f64()
        ),
        fields,
    );
}

/// The last transient error, saying that the retries are used up.
fn gave_up(err: Error, attempts: u32) -> Error {
    match err {
        Error::Backend {
            object,
            detail,
            trans_id,
        } => Error::Backend {
            object,
            detail: format!("{detail} (gave up after {attempts} attempts)"),
            trans_id,
        },
        Error::Integrity { object, detail } => Error::Integrity {
            object,
            detail: format!("{detail} (gave up after {attempts} attempts)"),
        },
        e => e,
    }
}

/// Sleep, but wake up for SIGINT/SIGTERM so a stopped pod does not wait out a backoff.
fn sleep_interruptibly(d: Duration) -> Result<()> {
    let step = Duration::from_millis(100);
    let mut left = d;
    while !left.is_zero() {
        interrupt::check()?;
        let s = left.min(step);
        std::thread::sleep(s);
        left -= s;
    }
    interrupt::check()
}

impl<B: Backend> Backend for Retrying<B> {
    fn put(&self, name: &str, src: &Path) -> Result<()> {
        self.run(|| self.inner.put(name, src))
    }

    fn put_expiring(&self, name: &str, src: &Path, ttl: Duration) -> Result<()> {
        self.run(|| self.inner.put_expiring(name, src, ttl))
    }

    fn get(&self, name: &str, dest: &mut File) -> Result<u64> {
        self.run(|| self.inner.get(name, dest))
    }

    fn get_sha1(&self, name: &str, dest: &mut File, sha1: &str) -> Result<u64> {
        self.run(|| self.inner.get_sha1(name, dest, sha1))
    }

    fn open_local(&self, name: &str) -> Option<Result<File>> {
        self.inner.open_local(name)
    }

    fn list_detailed(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.run(|| self.inner.list_detailed(prefix))
    }

    fn list_sized(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        self.run(|| self.inner.list_sized(prefix))
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.run(|| self.inner.list(prefix))
    }

    fn delete(&self, name: &str) -> Result<()> {
        self.run(|| self.inner.delete(name))
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A backend whose `list` fails with the errors it is given, in order, then succeeds.
    struct Flaky {
        errors: RefCell<Vec<Error>>,
        calls: Cell<u32>,
    }

    impl Flaky {
        fn new(errors: Vec<Error>) -> Self {
            Flaky {
                errors: RefCell::new(errors),
                calls: Cell::new(0),
            }
        }
    }

    fn transient(detail: &str, after: Option<Duration>) -> Error {
        Error::Transient {
            err: Box::new(Error::Backend {
                object: "o".into(),
                detail: detail.into(),
                trans_id: Some("tx1".into()),
            }),
            after,
            method: "GET",
        }
    }

    impl Backend for Flaky {
        fn put(&self, _: &str, _: &Path) -> Result<()> {
            unreachable!()
        }
        fn get(&self, _: &str, _: &mut File) -> Result<u64> {
            unreachable!()
        }
        fn list_detailed(&self, _: &str) -> Result<Vec<Listed>> {
            self.calls.set(self.calls.get() + 1);
            let mut errors = self.errors.borrow_mut();
            if errors.is_empty() {
                Ok(Vec::new())
            } else {
                Err(errors.remove(0))
            }
        }
        fn delete(&self, _: &str) -> Result<()> {
            unreachable!()
        }
        fn describe(&self) -> String {
            "flaky".into()
        }
    }

    fn retrying(errors: Vec<Error>, num_retries: u32) -> Retrying<Flaky> {
        let opts = Options {
            num_retries,
            retry_delay: Duration::from_millis(1),
            ..Options::default()
        };
        Retrying::new(Flaky::new(errors), &opts)
    }

    #[test]
    fn transient_failures_are_tried_again_until_they_pass() {
        let b = retrying(vec![transient("503", None), transient("reset", None)], 5);
        assert!(b.list("").is_ok());
        assert_eq!(b.inner().calls.get(), 3);
    }

    #[test]
    fn used_up_retries_give_the_last_error_back_saying_so() {
        let b = retrying((0..4).map(|_| transient("HTTP 503", None)).collect(), 2);
        let e = b.list("").unwrap_err();
        assert_eq!(b.inner().calls.get(), 3);
        assert!(matches!(e, Error::Backend { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            Error::Backend {
                object: "o".into(),
                detail: "HTTP 503 (gave up after 3 attempts)".into(),
                trans_id: Some("tx1".into()),
            }
            .to_string()
        );
        assert_eq!(e.trans_id(), Some("tx1"));
    }

    #[test]
    fn final_failures_are_never_tried_again() {
        let b = retrying(
            vec![Error::KeyRejected {
                object: "o".into(),
                trans_id: None,
            }],
            5,
        );
        assert!(matches!(b.list(""), Err(Error::KeyRejected { .. })));
        assert_eq!(b.inner().calls.get(), 1);
    }

    #[test]
    fn backoff_is_capped_and_honours_retry_after() {
        let opts = Options {
            retry_delay: Duration::from_secs(1),
            ..Options::default()
        };
        let b = Retrying::new(Flaky::new(vec![]), &opts);
        for retry in 0..40 {
            let d = b.backoff(retry, None);
            assert!(d <= MAX_DELAY);
            assert!(d <= Duration::from_secs(1u64 << retry.min(10)));
        }
        assert!(b.backoff(0, Some(Duration::from_secs(5))) >= Duration::from_secs(5));
        assert_eq!(b.backoff(0, Some(Duration::from_secs(600))), MAX_DELAY);
    }
}
