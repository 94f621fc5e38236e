//! Filling a new file on several threads: the main thread reads the file's bytes from the
//! archive in pieces of 1 MiB and a small pool writes each piece at its offset (`pwrite`),
//! zero blocks left as holes, while the next piece is read.
//!
//! Why: a restore writes every byte of a big file through write(2), whose copy into the
//! page cache ran at about 1 GB/s on the test VM wherever the memory had not been used
//! since boot (the guest touching a page for the first time is the expensive part; `dd` of
//! 1 GiB: 1.5 s of system time there, 0.25 s into pages just freed). One thread doing that
//! and reading the archive was the limit of a restore of a big file. Files that fit in one
//! piece (most files) are written by the main thread at once, with no handing over.
//! Big files are also written behind (`BEHIND`), so that their pages are reused.

use crate::engine::read_full;
use crate::rsync::sparse::{is_zero, write_at};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};

/// A piece: whole 4 KiB blocks, so that every piece's zero blocks can be holes.
const PIECE: usize = 1 << 20;

/// Big files are written behind in spans of this many bytes: each span is sent to the
/// disk once the pieces reach its end (or the file ends), and `LAG` spans later, in that
/// file or the ones after it, what the disk has of it is dropped from memory. So a restore
/// keeps reusing a few hundred MiB of page cache instead of taking fresh memory for all of
/// it, which is what cost: restoring one 4 GiB file from file:// (set (c) of `make bench`)
/// took 6.4-7.2 s of system time and 9.1-9.4 s wall without this, 3.5-5.2 s and 8.0-8.9 s
/// with it; from the test Swift 25.3 s became 22.2 s (docs/benchmark.md). Nothing waits
/// for the disk: where it is slower, pages stay until it is done.
const BEHIND: u64 = if cfg!(test) { 2 << 20 } else { 32 << 20 };

/// How many spans behind the newest one a span's pages are dropped; they are dropped
/// again `LAG` spans later, for pages that were still being written the first time.
const LAG: usize = 4;

pub(crate) struct FillPool {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    /// Buffers not with a writer; at most `cap` exist.
    free: Vec<Vec<u8>>,
    made: usize,
    cap: usize,
    /// The spans sent to the disk, newest last: at most `2 * LAG`.
    behind: std::collections::VecDeque<Span>,
}

/// Part of a restored file, sent to the disk.
struct Span {
    file: Arc<File>,
    at: u64,
    len: u64,
}

struct Job {
    file: Arc<File>,
    at: u64,
    buf: Vec<u8>,
    len: usize,
}

struct Done {
    buf: Vec<u8>,
    result: io::Result<()>,
}

/// A writer's answer for one job, sent when it is dropped: also when the writer panicked,
/// so the main thread never waits for a piece nobody writes.
struct Reply {
    tx: Sender<Done>,
    buf: Option<Vec<u8>>,
    result: io::Result<()>,
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(buf) = self.buf.take() {
            let result = std::mem::replace(&mut self.result, Ok(()));
            let _ = self.tx.send(Done { buf, result });
        }
    }
}

impl FillPool {
    /// `writers` threads (at least 1); `None` when a thread cannot be started.
    pub(crate) fn new(writers: usize) -> Option<FillPool> {
        let writers = writers.max(1);
        let (jobs, rx) = sync_channel::<Job>(writers);
        let rx = Arc::new(Mutex::new(rx));
        let (done_tx, done) = channel::<Done>();
        for _ in 0..writers {
            let (rx, tx) = (rx.clone(), done_tx.clone());
            std::thread::Builder::new()
                .name("fill".into())
                .spawn(move || loop {
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    // The pool was dropped: the restore is over.
                    let Ok(job) = job else { return };
                    let mut reply = Reply {
                        tx: tx.clone(),
                        buf: Some(job.buf),
                        result: Err(io::Error::other("a file-writing thread stopped")),
                    };
                    let data = reply.buf.as_deref().unwrap_or_default();
                    let result = write_piece(&job.file, job.at, &data[..job.len.min(data.len())]);
                    reply.result = result;
                })
                .ok()?;
        }
        Some(FillPool {
            jobs,
            done,
            free: Vec::new(),
            made: 0,
            // One being read, one queued and one being written per writer.
            cap: 2 * writers + 1,
            behind: Default::default(),
        })
    }

    /// Copy all of `r` into `file`, new and empty, zero blocks as holes; returns its
    /// length. Every piece is written (or has failed) when this returns.
    pub(crate) fn copy(&mut self, file: &File, r: &mut dyn Read) -> io::Result<u64> {
        let (mut inflight, mut failed) = (0usize, None);
        let mut buf = self.buffer(&mut inflight, &mut failed)?;
        let n = match read_full(r, &mut buf) {
            Ok(n) => n,
            Err(e) => {
                self.free.push(buf);
                return Err(e);
            }
        };
        if n < PIECE {
            // The whole file: written here.
            let result = write_last(file, 0, &buf[..n]);
            self.free.push(buf);
            return result;
        }
        let shared = Arc::new(file.try_clone()?);
        let mut at = 0u64;
        let mut next = Some((buf, n));
        let read = loop {
            let Some((buf, n)) = next.take() else {
                break Ok(());
            };
            if n < PIECE {
                // The last piece: its trailing zeros are left to the length.
                let result = write_last(file, at, &buf[..n]).map(|_| ());
                at += n as u64;
                self.free.push(buf);
                break result;
            }
            let job = Job {
                file: shared.clone(),
                at,
                buf,
                len: n,
            };
            if self.jobs.send(job).is_err() {
                break Err(io::Error::other("the file-writing threads stopped"));
            }
            inflight += 1;
            let before = at;
            at += n as u64;
            if at / BEHIND > before / BEHIND {
                let end = at / BEHIND * BEHIND;
                self.write_behind(&shared, end - BEHIND, BEHIND);
            }
            let mut buf = self.buffer(&mut inflight, &mut failed)?;
            if failed.is_some() {
                self.free.push(buf);
                break Ok(());
            }
            match read_full(r, &mut buf) {
                Ok(0) => {
                    self.free.push(buf);
                    break Ok(());
                }
                Ok(n) => next = Some((buf, n)),
                Err(e) => {
                    self.free.push(buf);
                    break Err(e);
                }
            }
        };
        while inflight > 0 {
            self.wait(&mut inflight, &mut failed)?;
        }
        read?;
        if let Some(e) = failed {
            return Err(e);
        }
        // A file that ends in a hole is as long as its data says.
        if file.metadata()?.len() < at {
            file.set_len(at)?;
        }
        let tail = at / BEHIND * BEHIND;
        if at > tail {
            self.write_behind(&shared, tail, at - tail);
        }
        Ok(at)
    }

    /// Start writing a span of `file` to the disk, and drop from memory what the disk has
    /// of the span `LAG` before it (first chance) and of the one `2 * LAG` before (second).
    fn write_behind(&mut self, file: &Arc<File>, at: u64, len: u64) {
        use crate::local::platform::{drop_written, start_writeback};
        start_writeback(file, at, len);
        self.behind.push_back(Span {
            file: file.clone(),
            at,
            len,
        });
        let n = self.behind.len();
        if n > LAG {
            let s = &self.behind[n - 1 - LAG];
            drop_written(&s.file, s.at, s.len);
        }
        if n > 2 * LAG {
            if let Some(s) = self.behind.pop_front() {
                drop_written(&s.file, s.at, s.len);
            }
        }
    }

    /// A free buffer, a new one while fewer than `cap` exist, or the next one a writer gives back.
    fn buffer(
        &mut self,
        inflight: &mut usize,
        failed: &mut Option<io::Error>,
    ) -> io::Result<Vec<u8>> {
        loop {
            if let Some(b) = self.free.pop() {
                return Ok(b);
            }
            if self.made < self.cap {
                self.made += 1;
                return Ok(vec![0; PIECE]);
            }
            self.wait(inflight, failed)?;
        }
    }

    /// Take one finished piece's answer: its buffer back, its error kept (the first one).
    fn wait(&mut self, inflight: &mut usize, failed: &mut Option<io::Error>) -> io::Result<()> {
        let d = self
            .done
            .recv()
            .map_err(|_| io::Error::other("the file-writing threads stopped"))?;
        *inflight -= 1;
        self.free.push(d.buf);
        if let Err(e) = d.result {
            failed.get_or_insert(e);
        }
        Ok(())
    }
}

/// Write a file's last bytes at `at` (all of them when `at` is 0) and give it its length:
/// trailing zeros are not written, the length covers them.
fn write_last(file: &File, at: u64, data: &[u8]) -> io::Result<u64> {
    let kept = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    write_piece(file, at, &data[..kept])?;
    let len = at + data.len() as u64;
    // Only a file that ends in zeros is extended (on ext4 a truncate of any kind makes the
    // close allocate the file's blocks at once).
    if kept < data.len() {
        file.set_len(len)?;
    }
    Ok(len)
}

/// Write `data` at `at` with positional writes (the file's offset is not used, so pieces
/// can be written at once), whole zero blocks left out.
fn write_piece(file: &File, at: u64, data: &[u8]) -> io::Result<()> {
    let mut w = Positional { file, pos: at };
    let mut cursor = at;
    write_at(&mut w, &mut cursor, at, data, |_, b| is_zero(b))
}

struct Positional<'f> {
    file: &'f File,
    pos: u64,
}

impl Write for Positional<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for Positional<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        match to {
            SeekFrom::Start(n) => self.pos = n,
            _ => {
                return Err(io::Error::other(
                    "positional writes seek from the start only",
                ))
            }
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A reader of `data` in odd-sized reads, failing after `fail_at` bytes if given.
    struct Source {
        data: Vec<u8>,
        at: usize,
        fail_at: Option<usize>,
    }

    impl Read for Source {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.fail_at.is_some_and(|f| self.at >= f) {
                return Err(io::Error::other("the archive could not be read"));
            }
            let n = buf.len().min(77_777).min(self.data.len() - self.at);
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    fn source(data: &[u8], fail_at: Option<usize>) -> Source {
        Source {
            data: data.to_vec(),
            at: 0,
            fail_at,
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("swiftdup-fill-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8 | 1).collect()
    }

    #[test]
    fn files_of_any_length_come_out_whole_with_their_zero_blocks_as_holes() {
        let dir = scratch("lengths");
        let mut pool = FillPool::new(2).unwrap();
        for n in [0, 1, 4096, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 5] {
            let data = pattern(n);
            let path = dir.join(format!("f{n}"));
            let f = File::create(&path).unwrap();
            assert_eq!(pool.copy(&f, &mut source(&data, None)).unwrap(), n as u64);
            drop(f);
            assert!(std::fs::read(&path).unwrap() == data, "{n} bytes");
        }
        // Data, 2 MiB of zeros across pieces, data, then zeros to the end: the zeros are
        // holes, and the length is the whole.
        let mut data = pattern(PIECE / 2);
        data.extend(vec![0u8; 2 * PIECE]);
        data.extend(pattern(5000));
        data.extend(vec![0u8; PIECE + 123]);
        let path = dir.join("sparse");
        let f = File::create(&path).unwrap();
        pool.copy(&f, &mut source(&data, None)).unwrap();
        drop(f);
        assert!(std::fs::read(&path).unwrap() == data);
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            allocated < (PIECE as u64) * 2,
            "{allocated} bytes allocated for {} of data",
            PIECE / 2 + 5000
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_file_written_behind_over_many_spans_comes_out_whole() {
        // Spans are 2 MiB in tests: 13 of them, zero runs across span edges, and pages
        // dropped behind as the file is written must change nothing in it.
        let dir = scratch("behind");
        let mut pool = FillPool::new(2).unwrap();
        let span = BEHIND as usize;
        let mut data = pattern(span + PIECE / 2);
        data.extend(vec![0u8; span]);
        data.extend(pattern(10 * span + 4096));
        data.extend(vec![0u8; PIECE / 2]);
        data.extend(pattern(777));
        let path = dir.join("big");
        let f = File::create(&path).unwrap();
        assert_eq!(
            pool.copy(&f, &mut source(&data, None)).unwrap(),
            data.len() as u64
        );
        drop(f);
        assert!(std::fs::read(&path).unwrap() == data);
        let allocated = std::fs::metadata(&path).unwrap().blocks() * 512;
        assert!(
            allocated < data.len() as u64 - span as u64 / 2,
            "the zero span is a hole"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn files_written_behind_one_after_another_come_out_whole() {
        // Spans of earlier files are dropped while later ones are written, some of the
        // files already closed or removed by then: none of it may change any file.
        let dir = scratch("behind-many");
        let mut pool = FillPool::new(2).unwrap();
        let sizes = [
            PIECE + 1,
            BEHIND as usize / 2 * 3,
            2 * PIECE,
            BEHIND as usize + 4096,
        ];
        let mut kept = Vec::new();
        for i in 0..4 * LAG {
            let n = sizes[i % sizes.len()];
            let mut data = pattern(n);
            data[i] = 0xA5;
            let path = dir.join(format!("f{i}"));
            let f = File::create(&path).unwrap();
            assert_eq!(pool.copy(&f, &mut source(&data, None)).unwrap(), n as u64);
            drop(f);
            if i % 5 == 4 {
                std::fs::remove_file(&path).unwrap();
            } else {
                kept.push((path, data));
            }
        }
        assert!(pool.behind.len() <= 2 * LAG);
        for (path, data) in kept {
            assert!(std::fs::read(&path).unwrap() == data, "{}", path.display());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_read_or_write_is_an_error_and_the_pool_goes_on() {
        let dir = scratch("errors");
        let mut pool = FillPool::new(2).unwrap();
        let data = pattern(5 * PIECE);
        let path = dir.join("read-fails");
        let f = File::create(&path).unwrap();
        let e = pool
            .copy(&f, &mut source(&data, Some(3 * PIECE + 10)))
            .unwrap_err();
        assert!(e.to_string().contains("could not be read"), "{e}");
        // A file open only for reading cannot be written, by any thread.
        std::fs::write(dir.join("ro"), b"").unwrap();
        let ro = File::open(dir.join("ro")).unwrap();
        assert!(pool.copy(&ro, &mut source(&data, None)).is_err());
        assert!(pool.copy(&ro, &mut source(&data[..10], None)).is_err());
        // The same pool still writes whole files afterwards.
        let path = dir.join("after");
        let f = File::create(&path).unwrap();
        pool.copy(&f, &mut source(&data, None)).unwrap();
        drop(f);
        assert!(std::fs::read(&path).unwrap() == data);
        assert!(pool.made <= pool.cap);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
