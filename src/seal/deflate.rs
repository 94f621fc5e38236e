//! Deflate (RFC 1951), bare or with zlib (RFC 1950) or gzip (RFC 1952) framing, compressed
//! in independent chunks so that every core can work on one.
//!
//! The input is cut into `CHUNK`s. Each chunk is compressed by a compressor primed with the
//! 32 KiB before it (the whole deflate window, so no back-reference is lost: pigz's
//! scheme) and ends byte-aligned (sync flush or stored blocks); the chunks are written in
//! order and an empty final stored block ends the stream. That is one ordinary deflate
//! stream: gpg, zlib and gzip read it, and it is within a few bytes per chunk of what one
//! compressor would write.
//!
//! Deflating already-compressed data (media, archives, encrypted files) at level 6 runs at
//! ~20 MiB/s and gains nothing; gpg does it anyway. Here each 64 KiB of a chunk is classed
//! by its order-0 entropy, random-looking runs are written as stored blocks (BTYPE 00), and
//! a run that deflates to more than 97% of its size is stored as well.
//!
//! With workers (native builds, `--concurrency` above 1) chunks go to a process-wide pool
//! of threads, at most `workers + 1` chunks in flight per stream, so a stream holds a few
//! chunk buffers whatever the data size. Without (WASI, `--concurrency 1`) the same
//! chunking runs inline in the writer's thread.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

/// Plaintext per chunk: big enough that the per-chunk costs (a compressor reset, a 5-byte
/// sync marker, a thread handoff) vanish, small enough that a few in flight stay cheap.
const CHUNK: usize = 256 << 10;
/// The deflate window: what a chunk's compressor is primed with.
const WINDOW: usize = 32 << 10;
/// Granularity of the compress-or-store decision.
const SUB: usize = 64 << 10;
/// Order-0 entropy (bits/byte) of 64 KiB above which deflating is not tried (random data:
/// 7.997; JPEG/MP4/ZIP: ~7.95-7.99; text: 4-5; executables: ~6).
const ENTER_STORE_BITS: f64 = 7.9;
/// A deflated run larger than this share of its input (percent) is stored instead.
const STORE_RATIO_PCT: usize = 97;
/// Below this a sample says little about entropy: such runs are deflated (and stored only
/// if that does not pay).
const MIN_SAMPLE: usize = 4 << 10;
/// The empty final stored block that ends every stream written here.
const FINAL_BLOCK: [u8; 5] = [0x01, 0x00, 0x00, 0xFF, 0xFF];

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wrap {
    /// RFC 1951 (OpenPGP compression algorithm 1, "ZIP")
    Raw,
    /// RFC 1950 (OpenPGP compression algorithm 2, "ZLIB")
    Zlib,
    /// RFC 1952, with the header Python's GzipFile writes for duplicity (no name,
    /// mtime = now, OS = 255)
    Gzip,
}

static WORKERS: AtomicUsize = AtomicUsize::new(0);
static POOL: OnceLock<Option<Pool>> = OnceLock::new();

/// How many threads compress: below 2, streams compress inline in the writer's thread.
/// Set once per run before the first stream (from `--concurrency`, capped at the cores);
/// a later change does not resize a pool already started.
pub fn set_workers(n: usize) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    WORKERS.store(n.min(cores.max(2)), Ordering::Relaxed);
}

fn shared_pool() -> Option<&'static Pool> {
    let n = WORKERS.load(Ordering::Relaxed);
    if n < 2 {
        return None;
    }
    POOL.get_or_init(|| Pool::start(n)).as_ref()
}

/// Compression threads shared by every stream of the process.
pub struct Pool {
    tx: Mutex<Sender<Job>>,
    workers: usize,
}

struct Job {
    /// `[dictionary | chunk]`
    input: Vec<u8>,
    dict_len: usize,
    level: u32,
    out: Vec<u8>,
    reply: SyncSender<Done>,
}

struct Done {
    input: Vec<u8>,
    out: io::Result<Vec<u8>>,
}

impl Pool {
    /// `None` where threads cannot be started (WASI): callers then compress inline.
    pub fn start(workers: usize) -> Option<Pool> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..workers {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("deflate-{i}"))
                .spawn(move || worker(&rx))
                .ok()?;
        }
        Some(Pool {
            tx: Mutex::new(tx),
            workers,
        })
    }

    fn submit(&self, job: Job) -> io::Result<()> {
        let tx = self
            .tx
            .lock()
            .map_err(|_| io::Error::other("compression pool poisoned"))?;
        tx.send(job)
            .map_err(|_| io::Error::other("compression threads stopped"))
    }
}

fn worker(rx: &Mutex<Receiver<Job>>) {
    let mut c = Chunker::default();
    loop {
        let job = match rx.lock() {
            Ok(r) => r.recv(),
            Err(_) => return,
        };
        let Ok(mut job) = job else { return };
        let r = c.compress(&job.input, job.dict_len, job.level, &mut job.out);
        // The stream may have been dropped (an error elsewhere): nobody to tell.
        let _ = job.reply.send(Done {
            input: job.input,
            out: r.map(|()| job.out),
        });
    }
}

/// One compressor, reused from chunk to chunk (it is ~300 KiB of state).
#[derive(Default)]
struct Chunker {
    c: Option<(u32, Compress)>,
}

impl Chunker {
    /// Compress `input[dict_len..]` as byte-aligned, non-final deflate blocks into `out`
    /// (cleared first), with `input[..dict_len]` as what precedes it in the stream.
    fn compress(
        &mut self,
        input: &[u8],
        dict_len: usize,
        level: u32,
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        out.clear();
        let len = input.len();
        let random = |from: usize| {
            let to = (from + SUB).min(len);
            level == 0 || looks_random(&input[from..to])
        };
        let mut i = dict_len;
        let mut class = if i < len { random(i) } else { false };
        while i < len {
            let mut j = (i + SUB).min(len);
            let mut next = class;
            while j < len {
                next = random(j);
                if next != class {
                    break;
                }
                j = (j + SUB).min(len);
            }
            if class {
                store(out, &input[i..j]);
            } else {
                let mark = out.len();
                self.deflate_run(
                    level,
                    &input[i.saturating_sub(WINDOW)..i],
                    &input[i..j],
                    out,
                )?;
                if (out.len() - mark) * 100 > (j - i) * STORE_RATIO_PCT {
                    out.truncate(mark);
                    store(out, &input[i..j]);
                }
            }
            i = j;
            class = next;
        }
        Ok(())
    }

    fn deflate_run(
        &mut self,
        level: u32,
        dict: &[u8],
        mut data: &[u8],
        out: &mut Vec<u8>,
    ) -> io::Result<()> {
        let err = |e: &dyn std::fmt::Display| io::Error::other(format!("deflate: {e}"));
        let c = match &mut self.c {
            Some((l, c)) if *l == level => {
                c.reset();
                c
            }
            slot => {
                &mut slot
                    .insert((level, Compress::new(Compression::new(level), false)))
                    .1
            }
        };
        if !dict.is_empty() {
            c.set_dictionary(dict).map_err(|e| err(&e))?;
        }
        out.reserve(data.len() + data.len() / 16 + 64);
        loop {
            let (in0, out0) = (c.total_in(), out.len());
            let status = c
                .compress_vec(data, out, FlushCompress::Sync)
                .map_err(|e| err(&e))?;
            data = &data[(c.total_in() - in0) as usize..];
            // A sync flush is complete when it returns with output space to spare.
            if data.is_empty() && out.len() < out.capacity() {
                return Ok(());
            }
            if out.len() == out0 && status == Status::BufError && out.len() < out.capacity() {
                return Err(io::Error::other("deflate made no progress"));
            }
            out.reserve(64 << 10);
        }
    }
}

/// Stored blocks (BTYPE 00); the stream is byte-aligned wherever this is called.
fn store(out: &mut Vec<u8>, data: &[u8]) {
    for block in data.chunks(65535) {
        let len = block.len() as u16;
        let [l0, l1] = len.to_le_bytes();
        let [n0, n1] = (!len).to_le_bytes();
        out.extend_from_slice(&[0x00, l0, l1, n0, n1]);
        out.extend_from_slice(block);
    }
}

fn looks_random(data: &[u8]) -> bool {
    data.len() >= MIN_SAMPLE && entropy_bits(data) > ENTER_STORE_BITS
}

/// Order-0 entropy in bits per byte.
fn entropy_bits(data: &[u8]) -> f64 {
    // Four interleaved histograms: one counter per byte value stalls on repeated bytes.
    let mut h = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        h[0][q[0] as usize] += 1;
        h[1][q[1] as usize] += 1;
        h[2][q[2] as usize] += 1;
        h[3][q[3] as usize] += 1;
    }
    for &b in quads.remainder() {
        h[0][b as usize] += 1;
    }
    let n = data.len() as f64;
    (0..256)
        .map(|i| h[0][i] + h[1][i] + h[2][i] + h[3][i])
        .filter(|&c| c > 0)
        .map(|c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Streaming deflate writer; `finish()` ends the stream and returns the inner writer.
pub struct Deflater<W: Write> {
    pub out: W,
    level: u32,
    wrap: Wrap,
    crc: Crc,
    adler: Adler32,
    /// `[dictionary | chunk being filled]`
    buf: Vec<u8>,
    dict_len: usize,
    pool: Option<&'static Pool>,
    /// Chunks in flight, oldest first, with their plaintext sizes.
    in_flight: VecDeque<(Receiver<Done>, usize)>,
    in_flight_bytes: usize,
    /// Buffers back from the workers, for the next chunks.
    spare: Vec<Vec<u8>>,
    /// The compressor when there is no pool.
    local: Chunker,
    /// Output of an inline chunk.
    obuf: Vec<u8>,
}

impl<W: Write> Deflater<W> {
    /// Compresses on the process-wide pool when `set_workers` asked for one.
    pub fn new(out: W, level: u32, wrap: Wrap) -> io::Result<Self> {
        Self::with_pool(out, level, wrap, shared_pool())
    }

    pub fn with_pool(
        mut out: W,
        level: u32,
        wrap: Wrap,
        pool: Option<&'static Pool>,
    ) -> io::Result<Self> {
        let level = level.min(9);
        match wrap {
            Wrap::Raw => {}
            Wrap::Zlib => {
                let flevel: u8 = match level {
                    0 | 1 => 0,
                    2..=5 => 1,
                    6 => 2,
                    _ => 3,
                };
                let cmf = 0x78u8;
                let mut flg = flevel << 6;
                flg += (31 - ((u16::from(cmf) << 8 | u16::from(flg)) % 31)) as u8 % 31;
                out.write_all(&[cmf, flg])?;
            }
            Wrap::Gzip => {
                let xfl = match level {
                    9 => 2,
                    1 => 4,
                    _ => 0,
                };
                let mut h = vec![0x1f, 0x8b, 8, 0];
                h.extend_from_slice(&now_secs().to_le_bytes());
                h.extend_from_slice(&[xfl, 255]);
                out.write_all(&h)?;
            }
        }
        Ok(Deflater {
            out,
            level,
            wrap,
            crc: Crc::new(),
            adler: Adler32::new(),
            buf: Vec::with_capacity(WINDOW + CHUNK),
            dict_len: 0,
            pool,
            in_flight: VecDeque::new(),
            in_flight_bytes: 0,
            spare: Vec::new(),
            local: Chunker::default(),
            obuf: Vec::new(),
        })
    }

    /// Plaintext accepted but not yet written out compressed.
    pub fn pending(&self) -> u64 {
        (self.buf.len() - self.dict_len + self.in_flight_bytes) as u64
    }

    /// Compress and write out everything accepted so far (the stream stays open), so that
    /// the size written is exact; for cutting volumes at a size.
    pub fn settle(&mut self) -> io::Result<()> {
        self.submit()?;
        while !self.in_flight.is_empty() {
            self.collect_one()?;
        }
        Ok(())
    }

    /// Hand the chunk being filled to a worker (or compress it here), keeping its last
    /// 32 KiB as the next chunk's dictionary.
    fn submit(&mut self) -> io::Result<()> {
        let fresh = self.buf.len() - self.dict_len;
        if fresh == 0 {
            return Ok(());
        }
        let mut next = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(WINDOW + CHUNK));
        next.clear();
        let keep = self.buf.len().min(WINDOW);
        next.extend_from_slice(&self.buf[self.buf.len() - keep..]);
        let input = std::mem::replace(&mut self.buf, next);
        let dict_len = std::mem::replace(&mut self.dict_len, keep);
        match self.pool {
            None => {
                self.local
                    .compress(&input, dict_len, self.level, &mut self.obuf)?;
                self.out.write_all(&self.obuf)?;
                self.spare.push(input);
            }
            Some(pool) => {
                while self.in_flight.len() > pool.workers {
                    self.collect_one()?;
                }
                let (reply, rx) = sync_channel(1);
                let out = self.spare.pop().unwrap_or_default();
                pool.submit(Job {
                    input,
                    dict_len,
                    level: self.level,
                    out,
                    reply,
                })?;
                self.in_flight.push_back((rx, fresh));
                self.in_flight_bytes += fresh;
            }
        }
        Ok(())
    }

    /// Wait for the oldest chunk in flight and write it out.
    fn collect_one(&mut self) -> io::Result<()> {
        let Some((rx, n)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        self.in_flight_bytes -= n;
        let done = rx
            .recv()
            .map_err(|_| io::Error::other("a compression thread stopped"))?;
        self.spare.push(done.input);
        let out = done.out?;
        self.out.write_all(&out)?;
        self.spare.push(out);
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<W> {
        self.settle()?;
        self.out.write_all(&FINAL_BLOCK)?;
        match self.wrap {
            Wrap::Raw => {}
            Wrap::Zlib => self.out.write_all(&self.adler.sum().to_be_bytes())?,
            Wrap::Gzip => {
                self.out.write_all(&self.crc.sum().to_le_bytes())?;
                self.out.write_all(&self.crc.amount().to_le_bytes())?;
            }
        }
        Ok(self.out)
    }
}

impl<W: Write> Write for Deflater<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = WINDOW + CHUNK - self.buf.len();
        let n = data.len().min(room);
        let data = &data[..n];
        match self.wrap {
            Wrap::Raw => {}
            Wrap::Zlib => self.adler.update(data),
            Wrap::Gzip => self.crc.update(data),
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() == WINDOW + CHUNK {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

/// RFC 1950 Adler-32.
struct Adler32 {
    a: u32,
    b: u32,
}

impl Adler32 {
    fn new() -> Self {
        Adler32 { a: 1, b: 0 }
    }
    fn update(&mut self, data: &[u8]) {
        for chunk in data.chunks(5552) {
            for &x in chunk {
                self.a += u32::from(x);
                self.b += self.a;
            }
            self.a %= 65521;
            self.b %= 65521;
        }
    }
    fn sum(&self) -> u32 {
        (self.b << 16) | self.a
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// xorshift: deterministic, incompressible noise (`x` nonzero). Other layers' tests
    /// use it where a sealed size must equal the plaintext size.
    pub(crate) fn noise(n: usize, mut x: u64) -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    /// Log-like lines: compressible, with repeats far apart (across chunk borders).
    fn text(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 100);
        let mut i = 0u64;
        while v.len() < n {
            let line = format!(
                "2026-11-29T12:{:02}:{:02}Z host{} GET /api/v1/items/{} 200 {}\n",
                i % 60,
                (i * 7) % 60,
                i % 13,
                (i * 7919) % 100_003,
                i % 977
            );
            v.extend_from_slice(line.as_bytes());
            i += 1;
        }
        v.truncate(n);
        v
    }

    /// Text, noise and zeros interleaved at odd sizes, so that chunk and sub-block borders
    /// fall inside every kind of run.
    fn mixed() -> Vec<u8> {
        let mut v = text(700_000);
        v.extend(noise(333_333, 5));
        v.extend(vec![0u8; 100_001]);
        v.extend(text(90_000));
        v.extend(noise(70_000, 6));
        v.extend(text(1_234_567));
        v
    }

    fn test_pool() -> &'static Pool {
        static P: OnceLock<Pool> = OnceLock::new();
        P.get_or_init(|| Pool::start(3).expect("threads"))
    }

    fn deflate(
        data: &[u8],
        level: u32,
        wrap: Wrap,
        pool: Option<&'static Pool>,
        write: usize,
    ) -> Vec<u8> {
        let mut d = Deflater::with_pool(Vec::new(), level, wrap, pool).unwrap();
        for (i, c) in data.chunks(write).enumerate() {
            d.write_all(c).unwrap();
            if i % 97 == 50 {
                d.settle().unwrap();
                assert_eq!(d.pending(), 0);
            }
        }
        d.finish().unwrap()
    }

    fn inflate(z: &[u8], wrap: Wrap) -> Vec<u8> {
        let mut out = Vec::new();
        match wrap {
            Wrap::Raw => flate2::read::DeflateDecoder::new(z).read_to_end(&mut out),
            Wrap::Zlib => flate2::read::ZlibDecoder::new(z).read_to_end(&mut out),
            Wrap::Gzip => flate2::read::GzDecoder::new(z).read_to_end(&mut out),
        }
        .unwrap();
        out
    }

    #[test]
    fn round_trips_inline_and_pooled_in_every_framing() {
        let data = mixed();
        for wrap in [Wrap::Raw, Wrap::Zlib, Wrap::Gzip] {
            for level in [0, 1, 6, 9] {
                for (pool, write) in [
                    (None, 65536),
                    (Some(test_pool()), 65536),
                    (Some(test_pool()), 1000),
                ] {
                    let z = deflate(&data, level, wrap, pool, write);
                    assert!(
                        inflate(&z, wrap) == data,
                        "{wrap:?} level {level} pooled {}",
                        pool.is_some()
                    );
                }
            }
        }
        for n in [0, 1, CHUNK + WINDOW - 1, CHUNK + WINDOW, CHUNK + WINDOW + 1] {
            let data = text(n);
            let z = deflate(&data, 6, Wrap::Gzip, Some(test_pool()), 4096);
            assert!(inflate(&z, Wrap::Gzip) == data, "{n} bytes");
        }
    }

    #[test]
    fn pooled_output_is_the_inline_output() {
        let data = mixed();
        let a = deflate(&data, 6, Wrap::Raw, None, 65536);
        let b = deflate(&data, 6, Wrap::Raw, Some(test_pool()), 65536);
        assert!(
            a == b,
            "the chunks do not depend on which thread compressed them"
        );
    }

    #[test]
    fn chunking_costs_almost_nothing_against_one_stream() {
        let data = text(4 << 20);
        let ours = deflate(&data, 6, Wrap::Raw, Some(test_pool()), 65536).len();
        let mut one = flate2::write::DeflateEncoder::new(Vec::new(), Compression::new(6));
        one.write_all(&data).unwrap();
        let one = one.finish().unwrap().len();
        // Priming each chunk with the window keeps the far repeats: within 1%.
        assert!(
            ours * 100 <= one * 101,
            "chunked {ours} vs one stream {one}"
        );
        assert!(ours * 3 < data.len(), "text must compress: {ours}");
    }

    #[test]
    fn random_data_is_stored_not_deflated() {
        let data = noise(3 << 20, 11);
        let z = deflate(&data, 6, Wrap::Raw, Some(test_pool()), 65536);
        // 5 bytes per stored block (64 KiB, and one short block per chunk), plus the final
        // block: 0.01%.
        let overhead = z.len() - data.len();
        assert!(
            overhead <= 5 * (data.len() / 65535 + data.len() / CHUNK + 2) + 5,
            "{overhead}"
        );
        // Stored blocks only: every block header is the byte 0x00 before its length.
        assert_eq!(&z[..3], &[0x00, 0xFF, 0xFF]);
        // Base64 of noise has ~6 bits of entropy yet deflates to ~75%: deflated.
        let b64: Vec<u8> = noise(1 << 20, 3)
            .iter()
            .map(|b| {
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
                    [(*b & 63) as usize]
            })
            .collect();
        let z = deflate(&b64, 6, Wrap::Raw, None, 65536);
        assert!(z.len() < b64.len() * 80 / 100, "{}", z.len());
        assert!(inflate(&z, Wrap::Raw) == b64);
    }

    #[test]
    fn entropy_classes() {
        assert!(entropy_bits(&noise(65536, 1)) > 7.99);
        assert!(entropy_bits(&text(65536)) < 5.5);
        assert_eq!(entropy_bits(&[7u8; 4096]), 0.0);
        assert!(!looks_random(&noise(100, 1)), "too small a sample to judge");
    }
}
