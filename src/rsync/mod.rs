//! librsync-compatible signatures, deltas and patching (MD4 + classic rollsum).
//!
//! This module owns the three rdiff operations that duplicity performs through
//! librsync, byte-compatible with the variant duplicity asks for
//! (`RS_MD4_SIG_MAGIC`, 8-byte strong sums):
//!
//! * [`SignatureBuilder`]: the `signature` step. Incremental, so a file can be
//!   signed while it is being streamed into a backup volume.
//! * [`Signature`] + [`DeltaReader`]: the `delta` step. The reader pulls the new
//!   file through a bounded window and yields delta bytes through [`Read`], so
//!   it can be plugged straight into a tar/volume writer.
//! * [`patch`]: the `patch` step, streaming from a seekable basis.
//!
//! Files: `rollsum` (the weak sum), `signature` (building and parsing signatures), `diff`
//! (the delta generator), `patch` and `patch_in_place` (the two patchers), `md4x4` (MD4
//! on four blocks at once), `sparse` (holes on write); this file holds the format's
//! constants and errors, and the tests that check the pieces against librsync and
//! fast_rsync.
//!
//! Formats (all integers big-endian):
//!
//! * Signature: `SIG_MAGIC`, `block_len`, `strong_len`, then per block of the
//!   old file (the last one may be short) a 4-byte weak rollsum and the first
//!   `strong_len` bytes of the block's MD4.
//! * Delta: `DELTA_MAGIC`, then commands, then `0x00` (END). `0x01..=0x40` are
//!   literals whose length is the command byte, `0x41..=0x44` literals with a
//!   1/2/4/8-byte length, and `0x45..=0x54` COPY commands whose offset and
//!   length fields are 1/2/4/8 bytes each
//!   (`0x45 + 4 * offset_width_class + length_width_class`).
//!
//! Deltas are correct for any librsync reader but not byte-identical to
//! librsync's own: matching is greedy (first match wins, identical blocks
//! prefer the one continuing the previous COPY), literals are split at
//! 64 KiB, and the old file's short last block is matched only at the very
//! end of the new file.
//!
//! Everything here uses only `std::io` and the `md4` crate, with no threads,
//! mmap or target-specific code, so that it builds for `wasm32-wasip2` too.
//! Memory use is bounded independently of the size of the new file (see each
//! type for its bound); only the signature itself and its index are held
//! whole.

pub mod md4x4;
pub mod sparse;

mod diff;
mod patch;
mod patch_in_place;
mod rollsum;
mod signature;

pub use diff::*;
pub use patch::*;
pub use patch_in_place::*;
use rollsum::*;
pub use signature::*;

use crate::rsync::sparse::BLOCK;
use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};

use md4::{Digest, Md4};

/// Magic of an MD4 signature with the classic rollsum (`RS_MD4_SIG_MAGIC`).
pub const SIG_MAGIC: u32 = 0x7273_0136;
/// Magic of a delta (`RS_DELTA_MAGIC`).
pub const DELTA_MAGIC: u32 = 0x7273_0236;

/// Largest block length [`Signature::parse`] accepts. The delta window is
/// about `2 * block_len`, so a corrupt header must not be able to ask for
/// gigabytes; [`block_len_for`] stays below this for files under 4 PiB.
pub const MAX_BLOCK_LEN: u32 = 1 << 26;

/// Strong-sum length duplicity uses (`rs_sig_begin(.., 8, ..)`).
const STRONG_LEN: u32 = 8;
/// librsync's `RS_CHAR_OFFSET`: added to every byte by the classic rollsum.
const CHAR_OFFSET: u32 = 31;
const SIG_HEADER_LEN: u64 = 12;

/// Longest literal the delta generator holds before emitting it. Bounds the
/// generator's memory; longer unmatched runs become several LITERAL commands.
const MAX_LITERAL: usize = 64 * 1024;
/// The generator stops producing once this much output is queued, so the
/// output queue stays bounded too (it may overshoot by one literal).
const OUT_TARGET: usize = 64 * 1024;
/// Chunk size for streaming COPY ranges and delta input in [`patch`].
const PATCH_BUF: usize = 64 * 1024;

const OP_END: u8 = 0x00;
const OP_LITERAL_1: u8 = 0x01;
const OP_LITERAL_64: u8 = 0x40;
const OP_LITERAL_N1: u8 = 0x41;
const OP_LITERAL_N8: u8 = 0x44;
const OP_COPY_N1_N1: u8 = 0x45;
const OP_COPY_N8_N8: u8 = 0x54;

/// Errors from parsing signatures and applying deltas.
#[derive(Debug)]
pub enum DeltaError {
    /// Reading the input or writing the output failed.
    Io(io::Error),
    /// The data does not start with the expected magic number (the value found).
    BadMagic(u32),
    /// The data is malformed or inconsistent with the basis.
    Corrupt(String),
}

impl fmt::Display for DeltaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeltaError::Io(e) => write!(f, "I/O error: {e}"),
            DeltaError::BadMagic(m) => write!(f, "bad librsync magic 0x{m:08x}"),
            DeltaError::Corrupt(why) => write!(f, "corrupt librsync data: {why}"),
        }
    }
}

impl std::error::Error for DeltaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DeltaError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for DeltaError {
    fn from(e: io::Error) -> Self {
        DeltaError::Io(e)
    }
}

/// Lets callers that work in `io::Result` (e.g. inside a `Read` adapter) use `?`.
impl From<DeltaError> for io::Error {
    fn from(e: DeltaError) -> Self {
        match e {
            DeltaError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

fn corrupt(why: impl Into<String>) -> DeltaError {
    DeltaError::Corrupt(why.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// xorshift64*: deterministic test data without a rand dependency.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Self {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            self.0 = x;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            let mut v = Vec::with_capacity(n + 8);
            while v.len() < n {
                v.extend_from_slice(&self.next().to_le_bytes());
            }
            v.truncate(n);
            v
        }
        /// Low-entropy, repetitive text: many weak-sum near-misses.
        fn text(&mut self, n: usize) -> Vec<u8> {
            const WORDS: [&str; 8] = [
                "the ", "backup ", "of ", "file ", "delta ", "block\n", "a ", "sum ",
            ];
            let mut v = Vec::with_capacity(n + 8);
            while v.len() < n {
                v.extend_from_slice(WORDS[self.below(WORDS.len())].as_bytes());
            }
            v.truncate(n);
            v
        }
    }

    fn fr_sig(data: &[u8], bl: u32) -> Vec<u8> {
        let opts = fast_rsync::SignatureOptions {
            block_size: bl,
            crypto_hash_size: 8,
        };
        fast_rsync::Signature::calculate(data, opts).into_serialized()
    }

    fn fr_apply(old: &[u8], delta: &[u8]) -> Result<Vec<u8>, fast_rsync::ApplyError> {
        let mut out = Vec::new();
        fast_rsync::apply(old, delta, &mut out).map(|()| out)
    }

    fn fr_diff(old: &[u8], new: &[u8], bl: u32) -> Vec<u8> {
        let sig = fast_rsync::Signature::calculate(
            old,
            fast_rsync::SignatureOptions {
                block_size: bl,
                crypto_hash_size: 8,
            },
        );
        let mut out = Vec::new();
        fast_rsync::diff(&sig.index(), new, &mut out).unwrap();
        out
    }

    /// Signs `data` fed in random chunk sizes (including empty chunks).
    fn sig_chunked(data: &[u8], bl: u32, rng: &mut Rng) -> Vec<u8> {
        let mut b = SignatureBuilder::new(bl);
        let mut rest = data;
        while !rest.is_empty() {
            let n = match rng.below(4) {
                0 => 0,
                1 => 1 + rng.below(7),
                2 => 1 + rng.below(2 * bl as usize + 3),
                _ => 1 + rng.below(300_000),
            }
            .min(rest.len());
            b.update(&rest[..n]);
            rest = &rest[n..];
        }
        b.finish()
    }

    fn sig_of(data: &[u8], bl: u32) -> Signature {
        let mut b = SignatureBuilder::new(bl);
        b.update(data);
        Signature::parse(&b.finish()).unwrap()
    }

    fn delta_of(sig: &Signature, new: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        DeltaReader::new(sig, new).read_to_end(&mut v).unwrap();
        v
    }

    /// Reader that returns random short reads and sprinkles `Interrupted`.
    struct Chunky<'a> {
        data: &'a [u8],
        rng: Rng,
    }

    impl Read for Chunky<'_> {
        fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
            if self.rng.below(5) == 0 {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let max = if self.rng.below(2) == 0 { 17 } else { 70_000 };
            let n = dst.len().min(self.data.len()).min(1 + self.rng.below(max));
            dst[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Delta through a chunky inner reader, read out with random buffer sizes.
    fn delta_chunky(sig: &Signature, new: &[u8], seed: u64) -> Vec<u8> {
        let mut rng = Rng::new(seed);
        let mut r = DeltaReader::new(
            sig,
            Chunky {
                data: new,
                rng: Rng::new(seed ^ 0xabc),
            },
        );
        let mut out = Vec::new();
        let mut buf = vec![0u8; 100_000];
        loop {
            let max = if rng.below(2) == 0 { 13 } else { buf.len() - 1 };
            let want = 1 + rng.below(max);
            match r.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        out
    }

    /// The in-place patcher's result for `old` (with a side file that starts full of junk,
    /// as a reused one would), after checking it against [`patch`]'s.
    fn patch_in_place_vec(
        old: &[u8],
        delta: &[u8],
        max_runs: usize,
    ) -> Result<Vec<u8>, DeltaError> {
        let want = patch_vec(old, delta);
        let mut file = Cursor::new(old.to_vec());
        let mut side = Cursor::new(vec![0xeeu8; 1000]);
        let got = patch_in_place_capped(&mut file, &mut &delta[..], &mut side, max_runs).map(|n| {
            let mut v = file.into_inner();
            // The caller sets the length: a result shorter than the basis is cut, and one
            // that ends in zero blocks left as holes past the basis is extended (which
            // the Cursor's zero fill stands for).
            if v.len() < n as usize {
                let tail = &want.as_ref().expect("in place accepted what patch refused")
                    [v.len().max(old.len())..];
                assert!(tail.iter().all(|&b| b == 0), "only zeros may be left out");
            }
            v.resize(n as usize, 0);
            v
        });
        match (&want, &got) {
            (Ok(w), Ok(g)) => assert!(
                w == g,
                "in place differs from patch ({} vs {} bytes)",
                g.len(),
                w.len()
            ),
            (Err(_), Err(_)) => {}
            _ => panic!("patch gave {want:?}, in place {got:?}"),
        }
        got
    }

    #[test]
    fn in_place_equals_streamed_for_generated_deltas() {
        let mut rng = Rng::new(41);
        for round in 0..40 {
            let n = 1 + rng.below(300_000);
            let old = if round % 2 == 0 {
                rng.bytes(n)
            } else {
                rng.text(n)
            };
            // Edits in place, insertions and deletions (which shift what follows), blocks
            // moved around, an append or a cut at the end.
            let mut new = old.clone();
            for _ in 0..rng.below(6) {
                let at = rng.below(new.len().max(1));
                let len = rng.below(5_000).min(new.len() - at);
                match rng.below(4) {
                    0 => {
                        let b = rng.bytes(len);
                        new[at..at + len].copy_from_slice(&b);
                    }
                    1 => {
                        let k = 1 + rng.below(3_000);
                        let b = rng.bytes(k);
                        new.splice(at..at, b);
                    }
                    2 => {
                        new.drain(at..at + len);
                    }
                    _ => {
                        let piece: Vec<u8> = new[at..at + len].to_vec();
                        let to = rng.below(new.len() + 1);
                        new.splice(to..to, piece);
                    }
                }
            }
            match rng.below(3) {
                0 => {
                    let k = rng.below(70_000);
                    new.extend(rng.bytes(k))
                }
                1 => new.truncate(new.len() - rng.below(new.len() / 4 + 1)),
                _ => {}
            }
            let cap = if round % 3 == 0 { 2 } else { MAX_SAVED_RUNS };
            in_place_gives(&old, &new, [512, 1024, 2048][rng.below(3)], cap, round);
        }
    }

    /// Patching `old` in place with the delta to `new` (block length `bl`, at most `cap`
    /// saved runs) gives `new`.
    fn in_place_gives(old: &[u8], new: &[u8], bl: u32, cap: usize, round: usize) {
        let delta = delta_of(&sig_of(old, bl), new);
        let got = patch_in_place_vec(old, &delta, cap).unwrap();
        assert!(got == new, "round {round}");
    }

    /// Files of zero runs and repeated blocks, as disk images are: COPYs from other
    /// places that write what is already there (left unwritten), zero blocks past the old
    /// end (left as holes), and everything else still exactly what `patch` gives.
    #[test]
    fn in_place_equals_streamed_for_zero_runs_and_repeats() {
        let mut rng = Rng::new(43);
        let block = rng.bytes(BLOCK as usize);
        for round in 0..30 {
            let piece = |rng: &mut Rng| -> Vec<u8> {
                match rng.below(3) {
                    0 => vec![0u8; BLOCK as usize * (1 + rng.below(8))],
                    1 => block.repeat(1 + rng.below(4)),
                    _ => {
                        let n = 1 + rng.below(9_000);
                        rng.bytes(n)
                    }
                }
            };
            let mut old = Vec::new();
            for _ in 0..1 + rng.below(40) {
                old.extend(piece(&mut rng));
            }
            let mut new = old.clone();
            for _ in 0..rng.below(5) {
                let at = rng.below(new.len() + 1);
                let p = piece(&mut rng);
                let end = (at + p.len()).min(new.len());
                new.splice(at..end, p);
            }
            for _ in 0..rng.below(3) {
                new.extend(piece(&mut rng));
            }
            let cap = if round % 3 == 0 { 1 } else { MAX_SAVED_RUNS };
            in_place_gives(&old, &new, [512, 1024, 4096][rng.below(3)], cap, round);
        }
    }

    #[test]
    fn in_place_equals_streamed_for_hostile_copies() {
        // Random commands: COPYs from anywhere (backwards over what was just written,
        // forwards over what is about to be, overlapping themselves), literals of every
        // length form, results shorter and longer than the basis; and with the saved runs
        // capped at 1, 2 and 3.
        let mut rng = Rng::new(7);
        for round in 0..400 {
            let k = 1 + rng.below(200_000);
            let old = rng.bytes(k);
            let mut delta = DELTA_MAGIC.to_be_bytes().to_vec();
            let mut pos = 0u64;
            for _ in 0..1 + rng.below(30) {
                if rng.below(2) == 0 {
                    let max = if rng.below(2) == 0 { 64 } else { 90_000 };
                    let len = 1 + rng.below(max) as u64;
                    put_literal_header(&mut delta, len);
                    delta.extend(rng.bytes(len as usize));
                    pos += len;
                } else {
                    let len = 1 + rng.below(old.len().min(100_000)) as u64;
                    let max_off = old.len() as u64 - len;
                    let offset = match rng.below(4) {
                        0 if pos <= max_off => pos,
                        1 => pos.saturating_sub(rng.below(2_000) as u64).min(max_off),
                        2 => (pos + rng.below(2_000) as u64).min(max_off),
                        _ => rng.below(max_off as usize + 1) as u64,
                    };
                    put_copy(&mut delta, (offset, len));
                    pos += len;
                }
            }
            delta.push(OP_END);
            patch_in_place_vec(&old, &delta, 1 + round % 3).unwrap();
            patch_in_place_vec(&old, &delta, MAX_SAVED_RUNS).unwrap();
        }
    }

    #[test]
    fn in_place_unchanged_parts_are_not_rewritten() {
        // A 4 KiB edit in the middle of 1 MiB: only the edit is written, and only its old
        // bytes are saved.
        let mut rng = Rng::new(3);
        let old = rng.bytes(1 << 20);
        let mut new = old.clone();
        new[500_000..504_096].copy_from_slice(&rng.bytes(4096));
        let delta = delta_of(&sig_of(&old, 1024), &new);
        struct Tally<'a> {
            inner: Cursor<&'a mut Vec<u8>>,
            written: u64,
        }
        impl Read for Tally<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                self.inner.read(b)
            }
        }
        impl Write for Tally<'_> {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.written += b.len() as u64;
                self.inner.write(b)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        impl Seek for Tally<'_> {
            fn seek(&mut self, p: SeekFrom) -> io::Result<u64> {
                self.inner.seek(p)
            }
        }
        let (mut f, mut sd) = (old.clone(), Vec::new());
        let mut file = Tally {
            inner: Cursor::new(&mut f),
            written: 0,
        };
        let mut side = Tally {
            inner: Cursor::new(&mut sd),
            written: 0,
        };
        let n = patch_in_place(&mut file, &mut &delta[..], &mut side).unwrap();
        let (fw, sw) = (file.written, side.written);
        assert_eq!(n, new.len() as u64);
        assert_eq!(f, new);
        // The edit spans at most five 1 KiB blocks, all literal.
        assert!(
            (4096..=5 * 1024).contains(&fw),
            "{fw} bytes written to the file"
        );
        assert_eq!(sw, fw, "saved exactly what was overwritten");
    }

    #[test]
    fn in_place_rejects_what_patch_rejects() {
        let old = b"0123456789".to_vec();
        let mut past_end = DELTA_MAGIC.to_be_bytes().to_vec();
        put_copy(&mut past_end, (5, 6));
        past_end.push(OP_END);
        let mut truncated = DELTA_MAGIC.to_be_bytes().to_vec();
        put_literal_header(&mut truncated, 100);
        truncated.extend_from_slice(b"short");
        for bad in [past_end, truncated, vec![1, 2, 3, 4, 0]] {
            assert!(patch_in_place_vec(&old, &bad, MAX_SAVED_RUNS).is_err());
        }
    }

    fn patch_vec(old: &[u8], delta: &[u8]) -> Result<Vec<u8>, DeltaError> {
        let mut out = Vec::new();
        let n = patch(&mut Cursor::new(old), &mut &delta[..], &mut out)?;
        assert_eq!(n, out.len() as u64, "patch must report the bytes it wrote");
        Ok(out)
    }

    #[test]
    fn empty_file_signature_is_bare_header() {
        let sig = SignatureBuilder::new(512).finish();
        assert_eq!(sig, [0x72, 0x73, 0x01, 0x36, 0, 0, 2, 0, 0, 0, 0, 8]);
        assert_eq!(sig, fr_sig(b"", 512));
        assert_eq!(SignatureBuilder::len_for(0, 512), 12);
        let parsed = Signature::parse(&sig).unwrap();
        assert_eq!(
            (
                parsed.block_len(),
                parsed.block_count(),
                parsed.strong_len()
            ),
            (512, 0, 8)
        );
    }

    #[test]
    fn a_signature_resumes_from_what_it_produced_and_the_bytes_it_had_not_summed() {
        let mut rng = Rng::new(11);
        for &bl in &[1u32, 7, 512, 1536, 65536, 66048, 262_145] {
            for _ in 0..6 {
                let len = rng.below(12 * bl as usize + 70_000);
                let data = rng.bytes(len);
                let whole = sig_chunked(&data, bl, &mut rng);
                let cut = rng.below(data.len() + 1);
                let mut b = SignatureBuilder::new(bl);
                let step = 1 + rng.below(70_000);
                for piece in data[..cut].chunks(step) {
                    b.update(piece);
                }
                let covered = b.covered() as usize;
                assert!(covered <= cut && cut - covered < b.pending_max());
                assert_eq!(covered % bl as usize, 0);
                let produced = b.produced().to_vec();
                let tail = &data[covered..cut];
                assert!(SignatureBuilder::part_fits(bl, &produced, true, tail));
                let mut r = SignatureBuilder::resume(bl, produced, tail).unwrap();
                r.update(&data[cut..]);
                assert!(r.finish() == whole, "block_len {bl}, cut at {cut}");
            }
        }
        // A tail as long as what a builder may hold unsummed is not one.
        let b = SignatureBuilder::new(512);
        let too_long = vec![0u8; b.pending_max()];
        assert!(SignatureBuilder::resume(512, b.produced().to_vec(), &too_long).is_none());
    }

    #[test]
    fn signatures_match_fast_rsync() {
        let mut rng = Rng::new(1);
        // 262144 is the largest block length summed four blocks at a time, 262145 the
        // smallest summed one at a time.
        for &bl in &[
            1u32, 2, 3, 64, 511, 512, 513, 1000, 2048, 4096, 65536, 262_144, 262_145,
        ] {
            let mut sizes = vec![0usize, 1, 511, 512, 513, 1023, 1024, 1025];
            sizes.extend([
                bl as usize - 1,
                bl as usize,
                bl as usize + 1,
                2 * bl as usize + 7,
            ]);
            let cap = if bl < 64 { 20_000 } else { 3_000_000 };
            for _ in 0..3 {
                sizes.push(rng.below(cap));
            }
            for (i, &size) in sizes.iter().enumerate() {
                let data = match i % 4 {
                    0 => rng.bytes(size),
                    1 => rng.text(size),
                    2 => vec![0u8; size],
                    _ => vec![0xffu8; size],
                };
                let ours = sig_chunked(&data, bl, &mut rng);
                assert!(
                    ours == fr_sig(&data, bl),
                    "signature differs: size {size}, block_len {bl}"
                );
                assert_eq!(
                    ours.len() as u64,
                    SignatureBuilder::len_for(size as u64, bl)
                );
            }
        }
    }

    #[test]
    fn signature_builder_is_a_writer() {
        let data = Rng::new(2).bytes(100_000);
        let mut b = SignatureBuilder::new(1024);
        io::copy(&mut &data[..], &mut b).unwrap();
        assert_eq!(b.finish(), fr_sig(&data, 1024));
    }

    #[test]
    fn rolling_matches_fresh_sums() {
        let mut rng = Rng::new(3);
        for &bl in &[1usize, 2, 7, 512, 1000] {
            let data = rng.bytes(bl + 3000);
            let (a, b) = raw_sums(0, 0, &data[..bl]);
            let (mut s1, mut s2) = add_offsets(a, b, bl as u64);
            let blw = bl as u32;
            for p in 1..=data.len() - bl {
                (s1, s2) = rotate(
                    s1,
                    s2,
                    blw,
                    blw.wrapping_mul(CHAR_OFFSET),
                    data[p - 1],
                    data[p + bl - 1],
                );
                assert_eq!(
                    pack(s1, s2),
                    weak_sum(&data[p..p + bl]),
                    "rotate, bl {bl} at {p}"
                );
            }
            // Shrink the final window down to nothing.
            let tail = &data[data.len() - bl..];
            for k in 0..bl {
                (s1, s2) = rollout(s1, s2, (bl - k) as u32, tail[k]);
                assert_eq!(
                    pack(s1, s2),
                    weak_sum(&tail[k + 1..]),
                    "rollout, bl {bl} at {k}"
                );
            }
        }
    }

    #[test]
    fn block_len_rule() {
        assert_eq!(block_len_for(0), 512);
        assert_eq!(block_len_for(1), 512);
        assert_eq!(block_len_for(512 * 512), 512);
        assert_eq!(block_len_for(512 * 512 + 1), 512); // isqrt is still 512
        assert_eq!(block_len_for(513 * 513), 1024);
        assert_eq!(block_len_for(10 << 20), 3584); // isqrt = 3238
        assert_eq!(block_len_for(256 << 20), 16384);
        assert_eq!(block_len_for(1 << 40), 1 << 20);
        assert_eq!(block_len_for(u64::MAX), !511u32);
        for n in [
            2u64,
            3,
            99,
            1 << 32,
            (1 << 32) - 1,
            u64::MAX,
            u64::MAX - 1,
            4_294_967_296 * 4_294_967_295,
        ] {
            let r = isqrt(n);
            assert!(
                r * r <= n && (r + 1).checked_mul(r + 1).is_none_or(|sq| sq > n),
                "isqrt({n}) = {r}"
            );
        }
    }

    /// (name, new data, bytes changed or inserted: the delta may be that large
    /// plus a couple of blocks).
    fn edits(old: &[u8], rng: &mut Rng) -> Vec<(&'static str, Vec<u8>, Option<usize>)> {
        let n = old.len();
        let mid = n / 2;
        let mut v = vec![("identical", old.to_vec(), Some(0))];
        let mut e = rng.bytes(1000);
        e.extend_from_slice(old);
        v.push(("prefix insert", e, Some(1000)));
        let mut e = old.to_vec();
        e.extend(rng.bytes(5000));
        v.push(("append", e, Some(5000)));
        let mut e = old.to_vec();
        if n > 0 {
            let at = mid.min(n - 1);
            let stop = (at + 100).min(n);
            e[at..stop].copy_from_slice(&rng.bytes(stop - at));
        }
        v.push(("middle change", e, Some(100)));
        let mut e = old.to_vec();
        e.drain(mid..(mid + 10_000).min(n));
        v.push(("deletion", e, Some(0)));
        v.push(("total rewrite", rng.bytes(n), None));
        v.push(("empty new", Vec::new(), Some(0)));
        v.push(("truncated", old[..n.saturating_sub(333)].to_vec(), Some(0)));
        let mut e = old[mid..].to_vec();
        e.extend_from_slice(&old[..mid]);
        v.push(("swapped halves", e, Some(0)));
        let mut e = old.to_vec();
        e.extend_from_slice(old);
        v.push(("doubled", e, Some(0)));
        let mut e = old.to_vec();
        if let Some(last) = e.last_mut() {
            *last ^= 1;
        }
        v.push(("last byte flipped", e, Some(1)));
        v
    }

    #[test]
    fn deltas_apply_with_fast_rsync_and_patch() {
        let mut rng = Rng::new(4);
        let olds = [
            rng.bytes(300_000),
            rng.text(300_000),
            rng.bytes(5_555),
            Vec::new(),
        ];
        for old in &olds {
            for bl in [
                512u32,
                700,
                1024,
                block_len_for(old.len() as u64),
                64 * 1024,
            ] {
                let sig_bytes = sig_chunked(old, bl, &mut rng);
                let sig = Signature::parse(&sig_bytes).unwrap();
                let mut cases = edits(old, &mut rng);
                cases.push(("from empty", rng.bytes(12_345), None));
                for (name, new, changed) in cases {
                    let ctx = format!(
                        "{name}: old {} bytes, new {}, block_len {bl}",
                        old.len(),
                        new.len()
                    );
                    let delta = delta_of(&sig, &new);
                    assert_eq!(
                        fr_apply(old, &delta).unwrap(),
                        new,
                        "fast_rsync apply, {ctx}"
                    );
                    assert!(patch_vec(old, &delta).unwrap() == new, "patch, {ctx}");
                    assert!(
                        delta_chunky(&sig, &new, rng.next()) == delta,
                        "chunking changed the delta, {ctx}"
                    );
                    if let (Some(changed), false) = (changed, old.is_empty()) {
                        let bound = changed + 2 * bl as usize + 64;
                        assert!(
                            delta.len() <= bound,
                            "delta {} > {bound}, {ctx}",
                            delta.len()
                        );
                    }
                    // Never worse than fast_rsync (which does not match a short
                    // last block), allowing 5 bytes per 64 KiB literal split.
                    let theirs = fr_diff(old, &new, bl).len();
                    assert!(
                        delta.len() <= theirs + theirs / 65536 * 5 + 16,
                        "{} vs fast_rsync {theirs}, {ctx}",
                        delta.len()
                    );
                }
            }
        }
    }

    /// A delta that signs the new file as it goes (reusing the old signature's sums for
    /// blocks it matches on the new block grid) gives byte for byte the signature of the
    /// new file signed on its own, with the delta unchanged: for every edit, old block
    /// lengths equal to and different from the new one, and chunky reads.
    #[test]
    fn fused_signature_equals_a_separate_one() {
        let mut rng = Rng::new(31);
        let olds = [rng.bytes(300_000), rng.text(300_000), rng.bytes(5_555)];
        for old in &olds {
            for old_bl in [512u32, 700, 1024, block_len_for(old.len() as u64)] {
                let sig = Signature::parse(&sig_chunked(old, old_bl, &mut rng)).unwrap();
                for (name, new, _) in edits(old, &mut rng) {
                    for new_bl in [old_bl, block_len_for(new.len() as u64), 513] {
                        let ctx = format!(
                            "{name}: old {} bytes, new {}, block_len {old_bl} -> {new_bl}",
                            old.len(),
                            new.len()
                        );
                        let mut fused = SignatureBuilder::new(new_bl);
                        let mut r = DeltaReader::new(
                            &sig,
                            Chunky {
                                data: &new,
                                rng: Rng::new(rng.next()),
                            },
                        )
                        .with_signature(&mut fused);
                        let mut delta = Vec::new();
                        loop {
                            let mut buf = [0u8; 4096];
                            match r.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => delta.extend_from_slice(&buf[..n]),
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => panic!("{e}, {ctx}"),
                            }
                        }
                        drop(r);
                        let alone = sig_chunked(&new, new_bl, &mut rng);
                        let fused = fused.finish();
                        assert!(fused == alone, "signatures differ, {ctx}");
                        assert!(delta == delta_of(&sig, &new), "delta changed, {ctx}");
                    }
                }
            }
        }
    }

    /// Random edit scripts over random block lengths, including literal
    /// runs around the 64 KiB split and tiny blocks.
    #[test]
    fn random_edit_scripts_roundtrip() {
        let mut rng = Rng::new(21);
        for round in 0..100 {
            let len = match round % 3 {
                0 => rng.below(4000),
                1 => rng.below(200_000),
                _ => MAX_LITERAL - 2 + rng.below(5),
            };
            let old = if round % 2 == 0 {
                rng.bytes(len)
            } else {
                rng.text(len)
            };
            let bl = match rng.below(4) {
                0 => 1 + rng.below(16) as u32,
                1 => 1 + rng.below(3000) as u32,
                2 => block_len_for(len as u64),
                _ => 1 << (6 + rng.below(11)),
            };
            let mut new = Vec::new();
            for _ in 0..rng.below(8) {
                match rng.below(3) {
                    0 if !old.is_empty() => {
                        let a = rng.below(old.len());
                        let span = rng.below(old.len() - a + 1);
                        let b = a + span;
                        new.extend_from_slice(&old[a..b]);
                    }
                    1 => {
                        let n = rng.below(3) * (MAX_LITERAL - 1 + rng.below(3));
                        new.extend(rng.bytes(n));
                    }
                    _ => {
                        let n = rng.below(2000);
                        new.extend(rng.bytes(n));
                    }
                }
            }
            let sig = Signature::parse(&sig_chunked(&old, bl, &mut rng)).unwrap();
            let delta = delta_of(&sig, &new);
            let ctx = format!(
                "round {round}: old {}, new {}, block_len {bl}",
                old.len(),
                new.len()
            );
            assert!(
                fr_apply(&old, &delta).unwrap() == new,
                "fast_rsync apply, {ctx}"
            );
            assert!(patch_vec(&old, &delta).unwrap() == new, "patch, {ctx}");
            assert!(
                delta_chunky(&sig, &new, rng.next()) == delta,
                "chunking, {ctx}"
            );
        }
    }

    #[test]
    fn patch_applies_fast_rsync_deltas() {
        let mut rng = Rng::new(5);
        let olds = [rng.bytes(200_000), rng.text(100_000), Vec::new()];
        for old in &olds {
            for bl in [512u32, 999, 4096] {
                for (name, new, _) in edits(old, &mut rng) {
                    let delta = fr_diff(old, &new, bl);
                    assert!(
                        patch_vec(old, &delta).unwrap() == new,
                        "{name}, block_len {bl}"
                    );
                }
            }
        }
    }

    /// Encodes a COPY with explicit field widths (0..=3 classes), to produce
    /// forms our generator never picks for small values.
    fn raw_copy(out: &mut Vec<u8>, offset: u64, len: u64, oc: u8, lc: u8) {
        out.push(OP_COPY_N1_N1 + 4 * oc + lc);
        put_uint(out, offset, oc);
        put_uint(out, len, lc);
    }

    #[test]
    fn hand_built_delta_every_form() {
        let basis: Vec<u8> = Rng::new(6).bytes(65_000);
        let mut delta = DELTA_MAGIC.to_be_bytes().to_vec();
        let mut want = Vec::new();
        let lit = |delta: &mut Vec<u8>, want: &mut Vec<u8>, cmd: &[u8], data: Vec<u8>| {
            delta.extend_from_slice(cmd);
            delta.extend_from_slice(&data);
            want.extend_from_slice(&data);
        };
        let mut rng = Rng::new(7);
        lit(&mut delta, &mut want, &[0x01], rng.bytes(1));
        lit(&mut delta, &mut want, &[0x2a], rng.bytes(42));
        lit(&mut delta, &mut want, &[0x40], rng.bytes(64));
        lit(&mut delta, &mut want, &[0x41, 3], rng.bytes(3));
        lit(&mut delta, &mut want, &[0x41, 0], Vec::new()); // explicit zero length is legal
        lit(&mut delta, &mut want, &[0x42, 0x01, 0x2c], rng.bytes(300));
        lit(&mut delta, &mut want, &[0x43, 0, 0, 0, 5], rng.bytes(5));
        lit(
            &mut delta,
            &mut want,
            &[0x43, 0, 1, 0, 1],
            rng.bytes(65_537),
        );
        lit(
            &mut delta,
            &mut want,
            &[0x44, 0, 0, 0, 0, 0, 0, 0, 7],
            rng.bytes(7),
        );
        // All 16 COPY forms, including ones reaching the basis end exactly.
        for oc in 0..4u8 {
            for lc in 0..4u8 {
                let offset = match oc {
                    0 => 200,
                    1 => 60_000,
                    _ => 1 + u64::from(lc) * 17,
                };
                let len = match lc {
                    0 => 255.min(basis.len() as u64 - offset),
                    1 => 65_000 - offset, // to the end of the basis
                    _ => 10 + u64::from(oc),
                };
                raw_copy(&mut delta, offset, len, oc, lc);
                want.extend_from_slice(&basis[offset as usize..(offset + len) as usize]);
            }
        }
        delta.push(OP_END);
        assert!(
            fr_apply(&basis, &delta).unwrap() == want,
            "oracle disagrees with the test"
        );
        assert!(patch_vec(&basis, &delta).unwrap() == want);
    }

    #[test]
    fn patch_copies_backwards_overlapping_and_to_eof() {
        let basis = Rng::new(8).bytes(1000);
        let ranges = [
            (900u64, 100u64),
            (0, 10),
            (5, 10),
            (500, 300),
            (499, 2),
            (999, 1),
            (0, 1000),
            (998, 2),
        ];
        let mut delta = DELTA_MAGIC.to_be_bytes().to_vec();
        let mut want = Vec::new();
        for &(o, l) in &ranges {
            put_copy(&mut delta, (o, l));
            want.extend_from_slice(&basis[o as usize..(o + l) as usize]);
        }
        delta.push(OP_END);
        assert_eq!(fr_apply(&basis, &delta).unwrap(), want);
        assert_eq!(patch_vec(&basis, &delta).unwrap(), want);
        // The same against a file-like basis that does not start at 0.
        let mut cur = Cursor::new(basis.clone());
        cur.set_position(123);
        let mut out = Vec::new();
        patch(&mut cur, &mut &delta[..], &mut out).unwrap();
        assert_eq!(out, want);
    }

    #[test]
    fn identical_10mb_delta_is_tiny() {
        let mut rng = Rng::new(9);
        for old in [rng.bytes(10 << 20), vec![0u8; 10 << 20]] {
            let bl = block_len_for(old.len() as u64);
            let sig = sig_of(&old, bl);
            let delta = delta_of(&sig, &old);
            assert!(delta.len() < 1024, "delta is {} bytes", delta.len());
            // Whole file in one COPY (magic, cmd, 1-byte offset, 4-byte length, END).
            assert_eq!(delta.len(), 4 + 1 + 1 + 4 + 1);
            assert!(patch_vec(&old, &delta).unwrap() == old);
        }
    }

    #[test]
    fn short_last_block_matches_only_at_end() {
        let mut rng = Rng::new(10);
        let old = rng.bytes(1000); // blocks of 512 and 488 bytes
        let sig = sig_of(&old, 512);
        let short = &old[512..];
        // Leading copy of the short block can't match; the trailing one must.
        let mut new = short.to_vec();
        new.extend(rng.bytes(100));
        new.extend_from_slice(short);
        let delta = delta_of(&sig, &new);
        assert_eq!(fr_apply(&old, &delta).unwrap(), new);
        assert!(
            delta.len() >= 588 && delta.len() < 588 + 32,
            "delta {} bytes",
            delta.len()
        );
        let tail = [0x4a, 0x02, 0x00, 0x01, 0xe8, 0x00]; // COPY(512, 488) then END
        assert!(delta.ends_with(&tail), "tail copy missing");
        // New file shorter than one block, equal to the old short block.
        let delta = delta_of(&sig, short);
        assert_eq!(
            delta,
            [0x72, 0x73, 0x02, 0x36, 0x4a, 0x02, 0x00, 0x01, 0xe8, 0x00]
        );
        // Old file smaller than a block, new file = junk + old.
        let small_old = rng.bytes(77);
        let sig = sig_of(&small_old, 512);
        let mut new = rng.bytes(10);
        new.extend_from_slice(&small_old);
        let delta = delta_of(&sig, &new);
        assert_eq!(fr_apply(&small_old, &delta).unwrap(), new);
        assert_eq!(delta.len(), 4 + 1 + 10 + 3 + 1);
    }

    #[test]
    fn weak_collisions_are_resolved_by_strong_sum() {
        let mut rng = Rng::new(11);
        // Bytes in 2..=253 so the +1/-2/+1 tweaks below cannot wrap; that
        // second difference leaves both s1 and s2 unchanged.
        let base: Vec<u8> = rng.bytes(512).iter().map(|b| 2 + b % 252).collect();
        let mut blocks = vec![base.clone()];
        for at in [0usize, 100, 200, 509] {
            let mut b = base.clone();
            b[at] += 1;
            b[at + 1] -= 2;
            b[at + 2] += 1;
            blocks.push(b);
        }
        let w = weak_sum(&base);
        assert!(
            blocks.iter().all(|b| weak_sum(b) == w),
            "test blocks must collide"
        );
        let old: Vec<u8> = blocks.concat();
        let sig = sig_of(&old, 512);
        assert_eq!(sig.group(w).map(<[u32]>::len), Some(5));
        let order = [3usize, 1, 4, 0, 2, 2];
        let new: Vec<u8> = order.iter().flat_map(|&i| blocks[i].clone()).collect();
        let delta = delta_of(&sig, &new);
        assert_eq!(fr_apply(&old, &delta).unwrap(), new);
        assert!(
            delta.len() <= 4 + 6 * 5 + 1,
            "expected six COPYs, got {} bytes",
            delta.len()
        );
    }

    #[test]
    fn duplicate_blocks_coalesce_into_one_copy() {
        let block = Rng::new(12).bytes(512);
        let old: Vec<u8> = std::iter::repeat_n(&block[..], 100)
            .flatten()
            .copied()
            .collect();
        let sig = sig_of(&old, 512);
        let delta = delta_of(&sig, &old);
        assert_eq!(
            delta,
            [0x72, 0x73, 0x02, 0x36, 0x46, 0x00, 0xc8, 0x00, 0x00]
        ); // COPY(0, 51200)
           // Shifted by a literal byte: still two commands.
        let mut new = vec![7u8];
        new.extend_from_slice(&old[..50 * 512]);
        let delta = delta_of(&sig, &new);
        assert_eq!(fr_apply(&old, &delta).unwrap(), new);
        assert!(delta.len() < 16, "delta {} bytes", delta.len());
    }

    /// Decodes a delta into (kind, a, b) tuples for readable assertions.
    fn commands(delta: &[u8]) -> Vec<(char, u64, u64)> {
        let mut v = Vec::new();
        let mut d = &delta[4..];
        let take = |d: &mut &[u8], n: usize| {
            let x = d[..n].iter().fold(0u64, |a, &b| a << 8 | u64::from(b));
            *d = &d[n..];
            x
        };
        loop {
            let cmd = take(&mut d, 1) as u8;
            match cmd {
                0 => return v,
                1..=0x40 => {
                    v.push(('L', u64::from(cmd), 0));
                    d = &d[cmd as usize..];
                }
                0x41..=0x44 => {
                    let n = take(&mut d, 1 << (cmd - 0x41));
                    v.push(('L', n, 0));
                    d = &d[n as usize..];
                }
                _ => {
                    let m = cmd - 0x45;
                    let o = take(&mut d, 1 << (m / 4));
                    let l = take(&mut d, 1 << (m % 4));
                    v.push(('C', o, l));
                }
            }
        }
    }

    #[test]
    fn long_literals_are_split_and_bounded() {
        let mut rng = Rng::new(13);
        let old = rng.bytes(4096);
        let sig = sig_of(&old, 512);
        let empty = Signature::parse(&SignatureBuilder::new(512).finish()).unwrap();
        let new = rng.bytes(3 * MAX_LITERAL + 1234);
        for s in [&sig, &empty] {
            let delta = delta_of(s, &new);
            assert_eq!(fr_apply(&old, &delta).unwrap(), new);
            assert_eq!(delta_chunky(s, &new, 99), delta);
            // 3 literals of 64 KiB (0x43 + 4 bytes) + one of 1234 (0x42 + 2 bytes).
            let want = vec![
                ('L', 65536, 0),
                ('L', 65536, 0),
                ('L', 65536, 0),
                ('L', 1234, 0),
            ];
            assert_eq!(commands(&delta), want);
            assert_eq!(delta.len(), 4 + 3 * 5 + 3 + new.len() + 1);
        }
    }

    /// Counts what the delta generator pulls from its input.
    struct Counting<R> {
        inner: R,
        taken: usize,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(dst)?;
            self.taken += n;
            Ok(n)
        }
    }

    #[test]
    fn delta_reader_memory_is_bounded() {
        let mut rng = Rng::new(14);
        let old = rng.bytes(100_000);
        let bl = 2048;
        let sig = sig_of(&old, bl);
        let new = rng.bytes(6 << 20); // nothing matches: all literal
        let mut r = DeltaReader::new(
            &sig,
            Counting {
                inner: &new[..],
                taken: 0,
            },
        );
        let mut produced = 0usize;
        let mut buf = [0u8; 4096];
        let slack = 2 * (MAX_LITERAL + bl as usize);
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            produced += n;
            let taken = r.inner.taken;
            assert!(
                taken <= produced + slack,
                "read {taken} bytes of input for {produced} of output"
            );
            assert!(
                r.out.capacity() <= OUT_TARGET + 2 * MAX_LITERAL,
                "output queue grew"
            );
            assert_eq!(r.buf.len(), slack, "window buffer grew");
        }
        assert_eq!(r.into_inner().taken, new.len());
    }

    /// Fails every few calls with a real error; the caller retries.
    struct Flaky<'a> {
        data: &'a [u8],
        calls: usize,
    }

    impl Read for Flaky<'_> {
        fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
            self.calls += 1;
            if self.calls.is_multiple_of(3) {
                return Err(io::Error::other("transient"));
            }
            let n = dst.len().min(self.data.len()).min(5000);
            dst[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn delta_reader_survives_input_errors() {
        let mut rng = Rng::new(15);
        let old = rng.bytes(200_000);
        let sig = sig_of(&old, 1024);
        let mut new = old.clone();
        new.splice(50_000..50_000, rng.bytes(70_000));
        let clean = delta_of(&sig, &new);
        let mut r = DeltaReader::new(
            &sig,
            Flaky {
                data: &new,
                calls: 0,
            },
        );
        let (mut out, mut errors) = (Vec::new(), 0);
        let mut buf = [0u8; 1000];
        loop {
            match r.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(_) => errors += 1,
            }
        }
        assert!(errors > 0);
        assert!(out == clean);
    }

    fn is_corrupt(r: Result<Vec<u8>, DeltaError>) -> bool {
        matches!(r, Err(DeltaError::Corrupt(_)))
    }

    #[test]
    fn corrupt_and_truncated_deltas_are_errors() {
        let mut rng = Rng::new(16);
        let old = rng.bytes(20_000);
        let mut new = old[..9000].to_vec();
        new.extend(rng.bytes(300));
        new.extend_from_slice(&old[5000..]);
        let delta = delta_of(&sig_of(&old, 512), &new);
        assert_eq!(patch_vec(&old, &delta).unwrap(), new);

        for cut in 0..delta.len() {
            let r = patch_vec(&old, &delta[..cut]);
            assert!(r.is_err(), "prefix of {cut} bytes accepted");
            assert!(cut < 4 || is_corrupt(r), "prefix of {cut} bytes");
        }
        let mut trailing = delta.clone();
        trailing.push(0);
        assert!(is_corrupt(patch_vec(&old, &trailing)));
        let mut bad = delta.clone();
        bad[3] = 0x37;
        assert!(matches!(
            patch_vec(&old, &bad),
            Err(DeltaError::BadMagic(0x7273_0237))
        ));
        let head = DELTA_MAGIC.to_be_bytes();
        for cmd in 0x55..=0xffu8 {
            assert!(is_corrupt(patch_vec(
                &old,
                &[&head[..], &[cmd, 0, 0, 0, 0, 0, 0, 0, 0, 0]].concat()
            )));
        }
        let with = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut d = head.to_vec();
            f(&mut d);
            d.push(OP_END);
            d
        };
        assert!(patch_vec(&old, &with(&|d| put_copy(d, (19_000, 1000)))).is_ok()); // exactly to EOF
        assert!(is_corrupt(patch_vec(
            &old,
            &with(&|d| put_copy(d, (19_000, 1001)))
        )));
        assert!(is_corrupt(patch_vec(
            &old,
            &with(&|d| put_copy(d, (20_000, 1)))
        )));
        assert!(is_corrupt(patch_vec(
            &old,
            &with(&|d| put_copy(d, (u64::MAX, 2)))
        )));
        assert!(is_corrupt(patch_vec(
            &old,
            &with(&|d| raw_copy(d, 0, 0, 0, 0))
        )));
        assert!(is_corrupt(patch_vec(
            &old,
            &with(&|d| d
                .extend_from_slice(&[0x44, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2]))
        )));
        assert!(is_corrupt(patch_vec(&[], &with(&|d| put_copy(d, (0, 1))))));
    }

    #[test]
    fn mutated_deltas_agree_with_fast_rsync() {
        let mut rng = Rng::new(17);
        let old = rng.bytes(5000);
        let mut new = old[1000..3000].to_vec();
        new.extend(rng.bytes(100));
        new.extend_from_slice(&old[..1500]);
        let delta = delta_of(&sig_of(&old, 256), &new);
        for i in 0..20_000 {
            let mut d = delta.clone();
            for _ in 0..1 + rng.below(3) {
                match rng.below(4) {
                    0 if !d.is_empty() => {
                        let at = rng.below(d.len());
                        d[at] = rng.next() as u8;
                    }
                    1 if !d.is_empty() => {
                        let at = rng.below(d.len());
                        d[at] ^= 1 << rng.below(8);
                    }
                    2 => {
                        let at = rng.below(d.len() + 1);
                        d.insert(at, rng.next() as u8);
                    }
                    _ if !d.is_empty() => {
                        d.remove(rng.below(d.len()));
                    }
                    _ => {}
                }
            }
            let ours = patch_vec(&old, &d);
            match fr_apply(&old, &d) {
                Ok(out) => assert!(
                    ours.ok() == Some(out),
                    "mutation {i}: oracle accepted, we did not"
                ),
                Err(e) => assert!(
                    ours.is_err(),
                    "mutation {i}: oracle rejected ({e}), we accepted"
                ),
            }
        }
    }

    #[test]
    fn signature_parse_rejects_garbage() {
        let good = SignatureBuilder::new(512).finish();
        let with = |at: usize, v: u32| {
            let mut s = good.clone();
            s[at..at + 4].copy_from_slice(&v.to_be_bytes());
            s
        };
        assert!(matches!(
            Signature::parse(&good[..11]),
            Err(DeltaError::Corrupt(_))
        ));
        assert!(matches!(
            Signature::parse(&with(0, 0x7273_0146)),
            Err(DeltaError::BadMagic(0x7273_0146))
        ));
        assert!(matches!(
            Signature::parse(&with(0, 0x7273_0137)),
            Err(DeltaError::BadMagic(_))
        ));
        assert!(matches!(
            Signature::parse(&with(4, 0)),
            Err(DeltaError::Corrupt(_))
        ));
        assert!(matches!(
            Signature::parse(&with(4, MAX_BLOCK_LEN + 1)),
            Err(DeltaError::Corrupt(_))
        ));
        assert!(matches!(
            Signature::parse(&with(8, 0)),
            Err(DeltaError::Corrupt(_))
        ));
        assert!(matches!(
            Signature::parse(&with(8, 17)),
            Err(DeltaError::Corrupt(_))
        ));
        let mut odd = good.clone();
        odd.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
        assert!(matches!(
            Signature::parse(&odd),
            Err(DeltaError::Corrupt(_))
        ));
        // Other strong lengths are fine (librsync allows 1..=16).
        let data = Rng::new(18).bytes(3000);
        for strong in [1u32, 4, 16] {
            let opts = fast_rsync::SignatureOptions {
                block_size: 512,
                crypto_hash_size: strong,
            };
            let s = fast_rsync::Signature::calculate(&data, opts).into_serialized();
            let sig = Signature::parse(&s).unwrap();
            let delta = delta_of(&sig, &data);
            assert_eq!(delta.len(), 4 + 1 + 1 + 2 + 1, "strong length {strong}");
        }
        // Random headers and bodies: errors or usable signatures, never panics.
        let mut rng = Rng::new(19);
        let sample = rng.bytes(5000);
        for _ in 0..3000 {
            let mut s = sig_chunked(&sample, 1 + rng.below(700) as u32, &mut rng);
            s.truncate(rng.below(s.len() + 1));
            if rng.below(2) == 0 && s.len() > 12 {
                let at = 4 + rng.below(8);
                s[at] = rng.next() as u8;
            }
            if let Ok(sig) = Signature::parse(&s) {
                let delta = delta_of(&sig, &sample[..rng.below(sample.len())]);
                assert!(delta.ends_with(&[OP_END]));
            }
        }
    }

    /// Cross-check with the real librsync when Debian's `rdiff` is installed
    /// (`apt-get install rdiff`); otherwise the test says so and passes.
    #[test]
    fn cross_check_with_rdiff() {
        use std::process::Command;
        let rdiff = ["/usr/bin/rdiff", "/usr/local/bin/rdiff"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        // `make test` installs rdiff; a missing one must not pass silently.
        let Some(rdiff) = rdiff else {
            panic!("rdiff (Debian package rdiff) is not installed: the librsync cross-check cannot run");
        };
        let dir = std::env::temp_dir().join(format!("swiftdup-delta-rdiff-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = |name: &str| dir.join(name);
        let run = |args: &[&std::path::Path]| {
            let st = Command::new(rdiff).args(args).status().unwrap();
            assert!(st.success(), "rdiff {args:?} failed");
        };
        let mut rng = Rng::new(20);
        for (size, bl) in [
            (0usize, 512u32),
            (1, 512),
            (511, 512),
            (512, 512),
            (513, 512),
            (100_000, 1024),
            (1_234_567, 4096),
            (300_001, 700),
        ] {
            let old = rng.bytes(size);
            std::fs::write(f("old"), &old).unwrap();
            let st = Command::new(rdiff)
                .args([
                    "signature",
                    "-b",
                    &bl.to_string(),
                    "-S",
                    "8",
                    "-H",
                    "md4",
                    "-R",
                    "rollsum",
                    "-f",
                ])
                .arg(f("old"))
                .arg(f("sig"))
                .status()
                .unwrap();
            assert!(st.success());
            let ours = sig_chunked(&old, bl, &mut rng);
            assert!(
                std::fs::read(f("sig")).unwrap() == ours,
                "signature differs from rdiff: size {size}, bl {bl}"
            );
            let sig = Signature::parse(&ours).unwrap();
            for (name, new, _) in edits(&old, &mut rng) {
                // Our delta through rdiff patch.
                std::fs::write(f("delta"), delta_of(&sig, &new)).unwrap();
                run(&[
                    "patch".as_ref(),
                    "-f".as_ref(),
                    &f("old"),
                    &f("delta"),
                    &f("out"),
                ]);
                assert!(
                    std::fs::read(f("out")).unwrap() == new,
                    "rdiff patch of our delta: {name}, size {size}"
                );
                // rdiff's delta (from our signature) through our patch.
                std::fs::write(f("new"), &new).unwrap();
                run(&[
                    "delta".as_ref(),
                    "-f".as_ref(),
                    &f("sig"),
                    &f("new"),
                    &f("delta2"),
                ]);
                let theirs = std::fs::read(f("delta2")).unwrap();
                assert!(
                    patch_vec(&old, &theirs).unwrap() == new,
                    "our patch of rdiff's delta: {name}, size {size}"
                );
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }

    /// Throughput on 256 MiB of data (override with `SWIFTDUP_BENCH_MIB`),
    /// with the real librsync (`rdiff`) timed on the same files when
    /// installed. Run:
    /// `cargo test --release -- --ignored --nocapture bench_throughput`
    #[test]
    #[ignore]
    fn bench_throughput() {
        use std::fs::File;
        use std::process::Command;
        use std::time::Instant;

        let mib: usize = std::env::var("SWIFTDUP_BENCH_MIB")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(256);
        let size = mib << 20;
        let mut rng = Rng::new(42);
        let old = rng.bytes(size);
        let random = rng.bytes(size);
        // A realistic change: 1000 scattered 100-byte rewrites.
        let mut edited = old.clone();
        for _ in 0..1000 {
            let at = rng.below(size - 100);
            edited[at..at + 100].copy_from_slice(&rng.bytes(100));
        }
        let bl = block_len_for(size as u64);
        eprintln!("{mib} MiB, block_len {bl}");
        let report = |what: &str, bytes: usize, secs: f64| {
            eprintln!(
                "{what:<40} {:>8.1} MB/s  ({secs:.3} s)",
                bytes as f64 / secs / 1e6
            );
        };
        // Best of up to three runs (stopping after 8 s), to damp the noise
        // of a shared machine.
        let timed = |f: &mut dyn FnMut()| {
            let (mut best, mut total) = (f64::MAX, 0.0);
            for _ in 0..3 {
                let t = Instant::now();
                f();
                let secs = t.elapsed().as_secs_f64();
                best = best.min(secs);
                total += secs;
                if total > 8.0 {
                    break;
                }
            }
            best
        };

        // In memory: the module's own cost.
        let mut sig_bytes = Vec::new();
        let secs = timed(&mut || {
            let mut b = SignatureBuilder::new(bl);
            for c in old.chunks(1 << 20) {
                b.update(c);
            }
            sig_bytes = b.finish();
        });
        report("signature (memory)", size, secs);
        let mut sig = None;
        let secs = timed(&mut || sig = Some(Signature::parse(&sig_bytes).unwrap()));
        eprintln!(
            "parse + index {} blocks: {:.1} ms",
            sig_bytes.len() / 12,
            secs * 1e3
        );
        let sig = sig.unwrap();
        let cases = [
            ("unchanged", &old),
            ("random", &random),
            ("edited", &edited),
        ];
        let mut deltas = Vec::new();
        for (name, new) in cases {
            let mut d = Vec::new();
            let secs = timed(&mut || d = delta_of(&sig, new));
            report(
                &format!("delta, {name} (memory, {} B out)", d.len()),
                size,
                secs,
            );
            deltas.push(d);
        }
        for ((name, new), d) in cases.iter().zip(&deltas) {
            let mut out = Vec::with_capacity(size);
            patch(&mut Cursor::new(&old[..]), &mut &d[..], &mut out).unwrap();
            assert!(out == **new);
            // Timed into a discarding writer: filling a fresh Vec would mostly
            // time page faults (black_box keeps the copies from being elided).
            struct Discard;
            impl Write for Discard {
                fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                    Ok(std::hint::black_box(buf).len())
                }
                fn flush(&mut self) -> io::Result<()> {
                    Ok(())
                }
            }
            let secs = timed(&mut || {
                patch(&mut Cursor::new(&old[..]), &mut &d[..], &mut Discard).unwrap();
            });
            report(&format!("patch, {name} (memory)"), size, secs);
        }

        // On files (page cache), ours vs rdiff, same inputs and outputs.
        let dir = std::env::temp_dir().join(format!("swiftdup-delta-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = |name: &str| dir.join(name);
        std::fs::write(f("old"), &old).unwrap();
        for ((name, new), d) in cases.iter().zip(&deltas) {
            std::fs::write(f(name), new).unwrap();
            std::fs::write(f(&format!("{name}.delta")), d).unwrap();
        }
        let secs = timed(&mut || {
            let mut b = SignatureBuilder::new(bl);
            io::copy(&mut File::open(f("old")).unwrap(), &mut b).unwrap();
            std::fs::write(f("ours.sig"), b.finish()).unwrap();
        });
        report("ours  signature (file)", size, secs);
        let names = cases.map(|(name, _)| name);
        for name in names {
            let secs = timed(&mut || {
                let mut r = DeltaReader::new(&sig, File::open(f(name)).unwrap());
                io::copy(&mut r, &mut File::create(f("ours.delta")).unwrap()).unwrap();
            });
            report(&format!("ours  delta, {name} (file)"), size, secs);
            let secs = timed(&mut || {
                let mut basis = File::open(f("old")).unwrap();
                let mut delta =
                    io::BufReader::new(File::open(f(&format!("{name}.delta"))).unwrap());
                let mut out = io::BufWriter::new(File::create(f("ours.out")).unwrap());
                patch(&mut basis, &mut delta, &mut out).unwrap();
                out.flush().unwrap();
            });
            report(&format!("ours  patch, {name} (file)"), size, secs);
        }
        let rdiff = std::path::Path::new("/usr/bin/rdiff");
        if rdiff.exists() {
            let run = |args: &[&str]| {
                timed(&mut || {
                    let st = Command::new(rdiff)
                        .arg("-f")
                        .args(args)
                        .current_dir(&dir)
                        .status()
                        .unwrap();
                    assert!(st.success(), "rdiff {args:?}");
                })
            };
            let bls = bl.to_string();
            let secs = run(&[
                "signature",
                "-b",
                &bls,
                "-S",
                "8",
                "-H",
                "md4",
                "-R",
                "rollsum",
                "old",
                "rdiff.sig",
            ]);
            report("rdiff signature", size, secs);
            assert!(std::fs::read(f("rdiff.sig")).unwrap() == sig_bytes);
            for name in names {
                report(
                    &format!("rdiff delta, {name}"),
                    size,
                    run(&["delta", "rdiff.sig", name, "rdiff.delta"]),
                );
                let ours = f(&format!("{name}.delta"));
                report(
                    &format!("rdiff patch (our delta), {name}"),
                    size,
                    run(&["patch", "old", ours.to_str().unwrap(), "rdiff.out"]),
                );
                assert!(std::fs::read(f("rdiff.out")).unwrap() == std::fs::read(f(name)).unwrap());
            }
        } else {
            eprintln!("rdiff not installed: no librsync comparison");
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}
