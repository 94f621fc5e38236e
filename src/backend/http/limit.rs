//! Bandwidth limits (`--limit-upload`, `--limit-download`, in KiB/s as restic takes them):
//! one limiter per direction, shared by every connection of the run, so that the sum of
//! concurrent uploads stays under the limit. A body is paced as it is read: each read
//! takes at most a quarter second's worth of bytes and waits for its slot, so a transfer
//! never bursts and a SIGTERM is never kept waiting by the limiter.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Limiter {
    bytes_per_sec: f64,
    /// When the bytes granted so far have all gone out at the rate.
    next: Mutex<Instant>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Limiter({} KiB/s)", self.kib_per_sec())
    }
}

impl Limiter {
    pub fn new(kib_per_sec: u64) -> Arc<Limiter> {
        Arc::new(Limiter {
            bytes_per_sec: (kib_per_sec.max(1) * 1024) as f64,
            next: Mutex::new(Instant::now()),
        })
    }

    pub fn kib_per_sec(&self) -> u64 {
        (self.bytes_per_sec / 1024.0) as u64
    }

    /// The most one read may take: a quarter second's worth, at least 1 KiB.
    fn slice(&self) -> usize {
        ((self.bytes_per_sec / 4.0) as usize).max(1024)
    }

    /// Wait until `n` more bytes fit in the rate, counting what every connection took.
    pub fn take(&self, n: usize) {
        let wait = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let now = Instant::now();
            // An idle link does not save up: a pause is not followed by a burst.
            let start = (*next).max(now);
            *next = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec);
            start.saturating_duration_since(now)
        };
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
    }

    /// How long `len` bytes take at this rate.
    pub fn time_for(&self, len: u64) -> Duration {
        Duration::from_secs_f64(len as f64 / self.bytes_per_sec)
    }
}

/// `r`, paced by `limit` when there is one.
pub fn limited<'a, R: Read + Send + 'a>(
    r: R,
    limit: &Option<Arc<Limiter>>,
) -> Box<dyn Read + Send + 'a> {
    match limit {
        Some(l) => Box::new(Limited {
            inner: r,
            limit: l.clone(),
        }),
        None => Box::new(r),
    }
}

struct Limited<R> {
    inner: R,
    limit: Arc<Limiter>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min(self.limit.slice());
        let n = self.inner.read(&mut buf[..want])?;
        self.limit.take(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four connections sharing a 256 KiB/s limit move 1 MiB in no less than ~4 s: the
    /// limit is the run's, not each connection's. (A lower bound only: a slow machine
    /// only makes it longer.)
    #[test]
    fn the_limit_is_shared_by_every_connection() {
        let limit = Some(Limiter::new(256));
        let t0 = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let limit = limit.clone();
                std::thread::spawn(move || {
                    let data = vec![7u8; 256 * 1024];
                    let mut r = limited(&data[..], &limit);
                    let mut out = Vec::new();
                    r.read_to_end(&mut out).unwrap();
                    assert_eq!(out, data);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // 1 MiB at 256 KiB/s is 4 s; the first slice of each goes at once.
        assert!(
            t0.elapsed() >= Duration::from_millis(3500),
            "{:?}",
            t0.elapsed()
        );
    }

    #[test]
    fn without_a_limit_the_body_passes_whole() {
        let data = vec![1u8; 8 << 20];
        let mut out = Vec::new();
        limited(&data[..], &None).read_to_end(&mut out).unwrap();
        assert_eq!(out.len(), data.len());
        assert_eq!(Limiter::new(1024).time_for(1 << 20), Duration::from_secs(1));
    }
}
