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

/// Block length to sign a file of `size` bytes with: the square root of the
/// size rounded up to a multiple of 512, at least 512 (duplicity 3.x's rule).
///
/// The square root balances signature size (blocks) against delta precision
/// (block length). Readers never need this: the block length travels in the
/// signature header.
pub fn block_len_for(size: u64) -> u32 {
    let rounded = isqrt(size).div_ceil(512).saturating_mul(512).max(512);
    // Only sizes near 2^64 round past u32::MAX; keep a multiple of 512.
    u32::try_from(rounded).unwrap_or(!511)
}

/// Exact integer square root (floor). `f64` gets within one of the answer; the
/// loops correct the rounding error near 2^64.
fn isqrt(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let mut x = (n as f64).sqrt() as u64;
    while x.checked_mul(x).is_none_or(|sq| sq > n) {
        x -= 1;
    }
    while (x + 1).checked_mul(x + 1).is_some_and(|sq| sq <= n) {
        x += 1;
    }
    x
}

// ---------------------------------------------------------------------------
// Rollsum (librsync "classic" rollsum, rollsum.h)
//
// s1 = sum(b_i + 31), s2 = sum over i of the running s1, digest =
// (s2 << 16) | (s1 & 0xffff). Only the low 16 bits of each sum reach the
// digest, and every update is a ring operation, so plain wrapping u32
// arithmetic gives exactly librsync's digest whatever width C uses.
// ---------------------------------------------------------------------------

/// Continues offset-free sums (s1 = sum b, s2 = sum of running s1) over
/// `data`. The offset terms depend only on the length, so they are added
/// once per window by [`add_offsets`]; this keeps the loop a pure byte sum
/// and makes it resumable across arbitrary chunk boundaries.
// Not inlined: inlined into a caller's loop, LLVM scalarizes the lane
// arrays instead of vectorizing them (measured 3x slower).
#[inline(never)]
fn raw_sums(s1: u32, s2: u32, data: &[u8]) -> (u32, u32) {
    // Column-wise, like vectorized Adler-32: lane j sums the bytes at
    // positions = j (mod LANES), each lane with its own running s1 (`a`) and
    // s2 (`b`). Lanes are independent, so LLVM vectorizes the loop with plain
    // SSE2/wasm SIMD, several times faster than the serial byte loop. With
    // N = LANES * m bytes, the serial definition gives
    //   s2 += N*s1 + sum_i (N - i)*b_i = N*s1 + LANES*sum(b_j) - sum(j*a_j),
    // all mod 2^32, which is all the digest needs.
    const LANES: usize = 16;
    let mut a = [0u32; LANES];
    let mut b = [0u32; LANES];
    let mut chunks = data.chunks_exact(LANES);
    for chunk in &mut chunks {
        for ((a, b), &x) in a.iter_mut().zip(b.iter_mut()).zip(chunk) {
            *a = a.wrapping_add(u32::from(x));
            *b = b.wrapping_add(*a);
        }
    }
    let n = (data.len() - chunks.remainder().len()) as u32;
    let mut s2 = s2.wrapping_add(n.wrapping_mul(s1));
    let mut s1 = s1;
    for (j, (&a, &b)) in a.iter().zip(&b).enumerate() {
        s1 = s1.wrapping_add(a);
        s2 = s2
            .wrapping_add(b.wrapping_mul(LANES as u32))
            .wrapping_sub(a.wrapping_mul(j as u32));
    }
    for &x in chunks.remainder() {
        s1 = s1.wrapping_add(u32::from(x));
        s2 = s2.wrapping_add(s1);
    }
    (s1, s2)
}

/// Adds the `RS_CHAR_OFFSET` contributions for a window of `n` bytes:
/// 31*n to s1 and 31*(1 + 2 + ... + n) to s2.
#[inline]
fn add_offsets(s1: u32, s2: u32, n: u64) -> (u32, u32) {
    // n <= u32::MAX, so n * (n + 1) fits in a u64 and the halving is exact.
    let tri = (n.wrapping_mul(n.wrapping_add(1)) / 2) as u32;
    (
        s1.wrapping_add((n as u32).wrapping_mul(CHAR_OFFSET)),
        s2.wrapping_add(tri.wrapping_mul(CHAR_OFFSET)),
    )
}

#[inline]
fn pack(s1: u32, s2: u32) -> u32 {
    (s2 << 16) | (s1 & 0xffff)
}

/// librsync `RollsumRotate`: slide a `bl`-byte window by one byte.
/// `bl_offset` is `bl * 31`, hoisted out of the hot loop by the caller.
#[inline(always)]
fn rotate(s1: u32, s2: u32, bl: u32, bl_offset: u32, out: u8, inb: u8) -> (u32, u32) {
    let s1 = s1.wrapping_add(u32::from(inb)).wrapping_sub(u32::from(out));
    let s2 = s2
        .wrapping_add(s1)
        .wrapping_sub(bl.wrapping_mul(u32::from(out)).wrapping_add(bl_offset));
    (s1, s2)
}

/// librsync `RollsumRollout`: drop the first byte of an `n`-byte window.
#[inline]
fn rollout(s1: u32, s2: u32, n: u32, out: u8) -> (u32, u32) {
    let o = u32::from(out) + CHAR_OFFSET;
    (s1.wrapping_sub(o), s2.wrapping_sub(n.wrapping_mul(o)))
}

/// Weak sum of a whole window, as librsync computes it.
fn weak_sum(data: &[u8]) -> u32 {
    let (s1, s2) = raw_sums(0, 0, data);
    let (s1, s2) = add_offsets(s1, s2, data.len() as u64);
    pack(s1, s2)
}

// ---------------------------------------------------------------------------
// Signature generation
// ---------------------------------------------------------------------------

/// Incremental signature generator: feed data in any chunking, get identical
/// bytes.
///
/// Holds only the running MD4 and rollsum of the current block (no copy of the
/// data) plus the growing output, 12 bytes per block.
pub struct SignatureBuilder {
    block_len: u32,
    out: Vec<u8>,
    md4: Md4,
    /// Offset-free rollsum of the current partial block.
    s1: u32,
    s2: u32,
    /// Bytes of the current block seen so far (< block_len between calls).
    fill: u32,
}

impl SignatureBuilder {
    /// Starts a signature with blocks of `block_len` bytes (see
    /// [`block_len_for`]). A zero block length would make a signature no reader
    /// accepts, so it is treated as 1 rather than panicking. Note that
    /// [`Signature::parse`] rejects block lengths above [`MAX_BLOCK_LEN`].
    pub fn new(block_len: u32) -> Self {
        let block_len = block_len.max(1);
        let mut out = Vec::with_capacity(4096);
        out.extend_from_slice(&SIG_MAGIC.to_be_bytes());
        out.extend_from_slice(&block_len.to_be_bytes());
        out.extend_from_slice(&STRONG_LEN.to_be_bytes());
        SignatureBuilder {
            block_len,
            out,
            md4: Md4::new(),
            s1: 0,
            s2: 0,
            fill: 0,
        }
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let bl = self.block_len as usize;
        while !data.is_empty() {
            // Whole blocks four at a time (see md4x4): the same sums, about a third of
            // the time.
            while self.fill == 0 && data.len() >= 4 * bl {
                let (four, rest) = data.split_at(4 * bl);
                let blocks: [&[u8]; 4] = std::array::from_fn(|i| &four[i * bl..(i + 1) * bl]);
                for (block, digest) in blocks.iter().zip(crate::rsync::md4x4::digest4(blocks)) {
                    self.out.extend_from_slice(&weak_sum(block).to_be_bytes());
                    self.out.extend_from_slice(&digest[..STRONG_LEN as usize]);
                }
                data = rest;
            }
            if data.is_empty() {
                break;
            }
            let room = (self.block_len - self.fill) as usize;
            let (chunk, rest) = data.split_at(room.min(data.len()));
            self.md4.update(chunk);
            (self.s1, self.s2) = raw_sums(self.s1, self.s2, chunk);
            // chunk.len() <= room <= block_len, so this cannot overflow.
            self.fill += chunk.len() as u32;
            if self.fill == self.block_len {
                self.end_block();
            }
            data = rest;
        }
    }

    fn end_block(&mut self) {
        let (s1, s2) = add_offsets(self.s1, self.s2, u64::from(self.fill));
        self.out.extend_from_slice(&pack(s1, s2).to_be_bytes());
        let digest = self.md4.finalize_reset();
        self.out.extend_from_slice(&digest[..STRONG_LEN as usize]);
        self.s1 = 0;
        self.s2 = 0;
        self.fill = 0;
    }

    /// Appends a whole block known to equal a block of another file signed with
    /// the same block length and strong sum length: its sums are copied instead
    /// of computed. Only valid at a block boundary (see [`DeltaReader::with_signature`]).
    fn known_block(&mut self, weak: u32, strong: &[u8]) {
        debug_assert!(self.fill == 0 && strong.len() == STRONG_LEN as usize);
        self.out.extend_from_slice(&weak.to_be_bytes());
        self.out.extend_from_slice(strong);
    }

    /// Ends the file (a partial last block becomes a short block) and returns
    /// the signature bytes.
    pub fn finish(mut self) -> Vec<u8> {
        if self.fill > 0 {
            self.end_block();
        }
        self.out
    }

    /// Size of the signature of a `size`-byte file, known before signing it
    /// (useful for planning volume sizes).
    pub fn len_for(size: u64, block_len: u32) -> u64 {
        let blocks = size.div_ceil(u64::from(block_len.max(1)));
        SIG_HEADER_LEN + (4 + u64::from(STRONG_LEN)) * blocks
    }
}

/// Lets a builder be the target of `io::copy`. Never fails.
impl Write for SignatureBuilder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Parsed signature and its index
// ---------------------------------------------------------------------------

/// Fibonacci hashing: rollsums are far from uniform (s1's high bits barely
/// move), so spread them before taking the top bits as an index.
#[inline]
fn mix(weak: u32) -> u32 {
    weak.wrapping_mul(0x9E37_79B1)
}

fn ceil_log2(n: usize) -> u32 {
    n.max(1).next_power_of_two().trailing_zeros()
}

/// A parsed signature, indexed for delta search (weak sum -> candidate blocks).
///
/// The delta generator probes the index at every byte offset, so lookups are
/// layered by cost: a bitset keyed by a hash of the weak sum rejects almost
/// all offsets with one L1/L2 load, an open-addressing table (no SipHash)
/// finds the group of blocks sharing the weak sum, and only then is MD4
/// computed and binary-searched within the group (sorted by strong sum, then
/// block index) so that even many colliding blocks cost O(log n).
/// Memory is roughly 40 to 70 bytes per block.
pub struct Signature {
    block_len: u32,
    strong_len: usize,
    /// Weak sums in block order.
    weak: Vec<u32>,
    /// Strong sums in block order, `strong_len` bytes each.
    strong: Vec<u8>,
    /// Block indices sorted by (weak, strong, index).
    order: Vec<u32>,
    /// Open-addressing table of weak sums (`empty_key` marks a free slot).
    /// Probes touch only this array, 4 bytes a slot, to stay cache-resident.
    keys: Vec<u32>,
    /// For the weak sum in `keys[i]`: its blocks are `order[start..start + count]`.
    spans: Vec<(u32, u32)>,
    /// A value no block's weak sum has.
    empty_key: u32,
    table_shift: u32,
    filter: Vec<u64>,
    filter_shift: u32,
}

impl Signature {
    /// Parses and indexes a signature (MD4, classic rollsum; any strong sum
    /// length from 1 to 16 is accepted, duplicity writes 8).
    pub fn parse(bytes: &[u8]) -> Result<Self, DeltaError> {
        if bytes.len() < SIG_HEADER_LEN as usize {
            return Err(corrupt(format!(
                "signature is {} bytes, shorter than its 12-byte header",
                bytes.len()
            )));
        }
        let be32 = |at: usize| {
            u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let magic = be32(0);
        if magic != SIG_MAGIC {
            return Err(DeltaError::BadMagic(magic));
        }
        let block_len = be32(4);
        if block_len == 0 || block_len > MAX_BLOCK_LEN {
            return Err(corrupt(format!(
                "signature block length {block_len} out of range"
            )));
        }
        let strong_len = be32(8);
        if strong_len == 0 || strong_len > 16 {
            return Err(corrupt(format!(
                "signature strong sum length {strong_len} out of range"
            )));
        }
        let strong_len = strong_len as usize;
        let body = &bytes[SIG_HEADER_LEN as usize..];
        let record = 4 + strong_len;
        if !body.len().is_multiple_of(record) {
            return Err(corrupt(format!(
                "signature body of {} bytes is not a whole number of {record}-byte blocks",
                body.len()
            )));
        }
        let n = body.len() / record;
        // Block indices are stored as u32 and u32::MAX is kept free.
        if n >= u32::MAX as usize {
            return Err(corrupt("signature has too many blocks"));
        }
        let mut weak = Vec::with_capacity(n);
        let mut strong = Vec::with_capacity(n * strong_len);
        for rec in body.chunks_exact(record) {
            weak.push(u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]));
            strong.extend_from_slice(&rec[4..]);
        }

        let strong_of = |b: u32| &strong[b as usize * strong_len..(b as usize + 1) * strong_len];
        let mut order: Vec<u32> = (0..n as u32).collect();
        order.sort_unstable_by(|&a, &b| {
            weak[a as usize]
                .cmp(&weak[b as usize])
                .then_with(|| strong_of(a).cmp(strong_of(b)))
                .then(a.cmp(&b))
        });

        let mut distinct: Vec<u32> = order.iter().map(|&b| weak[b as usize]).collect();
        distinct.dedup();
        // At most n of the n + 1 values 0..=n are weak sums: the first gap in
        // the sorted distinct sums is free to mark empty slots.
        let empty_key = distinct
            .iter()
            .zip(0u32..)
            .find(|&(&w, k)| w != k)
            .map_or(distinct.len() as u32, |(_, k)| k);
        // Table at most half full so linear probes stay short and always end.
        let table_bits = ceil_log2(distinct.len().saturating_mul(2).max(16)).min(32);
        drop(distinct);
        let table_shift = 32 - table_bits;
        let mask = (1usize << table_bits) - 1;
        let mut keys = vec![empty_key; 1usize << table_bits];
        let mut spans = vec![(0u32, 0u32); 1usize << table_bits];
        let mut i = 0;
        while i < n {
            let w = weak[order[i] as usize];
            let mut j = i + 1;
            while j < n && weak[order[j] as usize] == w {
                j += 1;
            }
            let mut at = (mix(w) >> table_shift) as usize & mask;
            while keys[at] != empty_key {
                at = (at + 1) & mask;
            }
            keys[at] = w;
            spans[at] = (i as u32, (j - i) as u32);
            i = j;
        }

        // 32 to 64 filter bits per block, so only 1 to 3% of non-matching
        // offsets get past the filter to the table (measured: fewer bits
        // cost more in table probes than the smaller filter saves).
        let filter_bits = (ceil_log2(n) + 6).clamp(10, 28);
        let filter_shift = 32 - filter_bits;
        let mut filter = vec![0u64; 1usize << (filter_bits - 6)];
        for &w in &weak {
            let h = mix(w) >> filter_shift;
            filter[(h >> 6) as usize] |= 1u64 << (h & 63);
        }

        Ok(Signature {
            block_len,
            strong_len,
            weak,
            strong,
            order,
            keys,
            spans,
            empty_key,
            table_shift,
            filter,
            filter_shift,
        })
    }

    /// Block length the signature was made with.
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// Number of blocks (the old file had between `(n-1)*block_len + 1` and
    /// `n*block_len` bytes).
    pub fn block_count(&self) -> usize {
        self.weak.len()
    }

    /// Strong sum bytes kept per block.
    pub fn strong_len(&self) -> usize {
        self.strong_len
    }

    fn strong_of(&self, block: u32) -> &[u8] {
        let at = block as usize * self.strong_len;
        &self.strong[at..at + self.strong_len]
    }

    /// Whether `data` has the strong sum of `block`.
    fn strong_matches(&self, block: u32, data: &[u8]) -> bool {
        Md4::digest(data)[..self.strong_len] == *self.strong_of(block)
    }

    /// Cheap prefilter: false means no block has this weak sum.
    #[inline]
    fn maybe_has(&self, weak: u32) -> bool {
        let h = mix(weak) >> self.filter_shift;
        self.filter[(h >> 6) as usize] & (1u64 << (h & 63)) != 0
    }

    fn group(&self, weak: u32) -> Option<&[u32]> {
        if weak == self.empty_key {
            return None;
        }
        let mask = self.keys.len() - 1;
        let mut at = (mix(weak) >> self.table_shift) as usize & mask;
        loop {
            let key = self.keys[at];
            if key == weak {
                let (start, count) = self.spans[at];
                return self.order.get(start as usize..(start + count) as usize);
            }
            if key == self.empty_key {
                return None;
            }
            at = (at + 1) & mask;
        }
    }

    /// Finds a block whose weak sum is `weak` and whose strong sum matches
    /// `data`. Among identical blocks, `prefer` (the block after the previous
    /// match) wins so that runs of repeated content coalesce into one COPY.
    fn find_block(&self, weak: u32, data: &[u8], prefer: Option<u32>) -> Option<u32> {
        let group = self.group(weak)?;
        let digest = Md4::digest(data);
        let want = &digest[..self.strong_len];
        let lo = group.partition_point(|&b| self.strong_of(b) < want);
        let rest = group.get(lo..)?;
        let hits = &rest[..rest.partition_point(|&b| self.strong_of(b) == want)];
        let first = *hits.first()?;
        match prefer {
            Some(p) if hits.binary_search(&p).is_ok() => Some(p),
            _ => Some(first),
        }
    }
}

// ---------------------------------------------------------------------------
// Delta generation
// ---------------------------------------------------------------------------

/// Width class of a COPY field: 0..=3 for 1, 2, 4, 8 bytes.
fn width_class(v: u64) -> u8 {
    if v <= 0xff {
        0
    } else if v <= 0xffff {
        1
    } else if v <= 0xffff_ffff {
        2
    } else {
        3
    }
}

fn put_uint(out: &mut Vec<u8>, v: u64, class: u8) {
    match class {
        0 => out.push(v as u8),
        1 => out.extend_from_slice(&(v as u16).to_be_bytes()),
        2 => out.extend_from_slice(&(v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&v.to_be_bytes()),
    }
}

/// Emits LITERAL's command bytes (not the data) in librsync's shortest form.
fn put_literal_header(out: &mut Vec<u8>, len: u64) {
    if (1..=64).contains(&len) {
        out.push(OP_LITERAL_1 + (len - 1) as u8);
    } else {
        let class = width_class(len);
        out.push(OP_LITERAL_N1 + class);
        put_uint(out, len, class);
    }
}

fn put_copy(out: &mut Vec<u8>, (offset, len): (u64, u64)) {
    let (oc, lc) = (width_class(offset), width_class(len));
    out.push(OP_COPY_N1_N1 + 4 * oc + lc);
    put_uint(out, offset, oc);
    put_uint(out, len, lc);
}

/// Pull-based delta generator: reads the NEW file from `new` and yields delta
/// bytes through [`Read`].
///
/// Memory: the signature index (borrowed) plus a window buffer of
/// `2 * (block_len + 64 KiB)` and an output queue of about 128 KiB. Unmatched
/// data is emitted as LITERAL commands of at most 64 KiB; consecutive matching
/// blocks are merged into one COPY. The output depends only on the data, not
/// on how `new` chunks its reads or how the caller sizes its buffers.
///
/// Cost: one rollsum update and one bitset probe per byte of unmatched data;
/// MD4 only on weak-sum hits, and once per block in unchanged stretches,
/// where the block following the previous match is checked by strong sum
/// first (skipping the weak sum; a false match there needs a 64-bit MD4-prefix
/// collision with that single block).
///
/// Errors from `new` are passed through `read`; the generator's state stays
/// consistent, so a caller may retry after a transient error.
pub struct DeltaReader<'s, R: Read> {
    sig: &'s Signature,
    inner: R,
    /// Window length: the block length, or 0 when the signature is empty
    /// (then nothing can match and the data is passed through as literals).
    bl: usize,
    /// Fixed-size window buffer; `buf[..end]` holds data read from `inner`.
    buf: Vec<u8>,
    end: usize,
    /// Start of the window being matched.
    pos: usize,
    /// Start of the pending (not yet emitted) literal; `lit_start <= pos` and
    /// `pos - lit_start <= MAX_LITERAL`. Bytes before it may be discarded.
    lit_start: usize,
    eof: bool,
    /// Rolling sums (offsets included) of `buf[pos..pos + bl]`, if `have_sum`.
    s1: u32,
    s2: u32,
    have_sum: bool,
    /// The window at `pos` was already looked up and did not match.
    checked: bool,
    /// COPY held back so the next match can extend it.
    pending: Option<(u64, u64)>,
    /// Block following the last match: preferred among identical candidates.
    next_block: Option<u32>,
    out: Vec<u8>,
    out_pos: usize,
    done: bool,
    /// The new file's signature, fed every byte once the matcher is past it.
    new_sig: Option<&'s mut SignatureBuilder>,
    /// Offset in the new file of `buf[0]`, and how much of the file `new_sig` has seen.
    base: u64,
    fed: u64,
    /// MD4s of the windows at `spec_at`, `spec_at + bl`, ... (the last `spec_left` of
    /// `spec`), computed four at a time on the bet that an unchanged stretch goes on.
    spec: [[u8; 16]; 4],
    spec_at: u64,
    spec_left: usize,
}

impl<'s, R: Read> DeltaReader<'s, R> {
    /// Prepares a delta of `new` against the file `sig` describes. Nothing is
    /// read until the first `read` call.
    pub fn new(sig: &'s Signature, new: R) -> Self {
        let bl = if sig.block_count() == 0 {
            0
        } else {
            sig.block_len() as usize
        };
        let mut out = Vec::with_capacity(OUT_TARGET + MAX_LITERAL + 64);
        out.extend_from_slice(&DELTA_MAGIC.to_be_bytes());
        DeltaReader {
            sig,
            inner: new,
            bl,
            // Room for the live region (<= MAX_LITERAL + bl) plus a read of at
            // least as much, so compaction copies at most as much as is read.
            buf: vec![0; 2 * (MAX_LITERAL + bl)],
            end: 0,
            pos: 0,
            lit_start: 0,
            eof: false,
            s1: 0,
            s2: 0,
            have_sum: false,
            checked: false,
            pending: None,
            next_block: None,
            out,
            out_pos: 0,
            done: false,
            new_sig: None,
            base: 0,
            fed: 0,
            spec: [[0; 16]; 4],
            spec_at: 0,
            spec_left: 0,
        }
    }

    /// The MD4 of the window at `pos` when trying the block after a match. In an
    /// unchanged stretch the next three windows will be asked for next, so they are
    /// hashed together with this one (md4x4); a change wastes at most three.
    fn window_digest(&mut self) -> io::Result<[u8; 16]> {
        let bl = self.bl;
        let at = self.base + self.pos as u64;
        if self.spec_left > 0 && self.spec_at == at {
            let d = self.spec[4 - self.spec_left];
            self.spec_left -= 1;
            self.spec_at += bl as u64;
            return Ok(d);
        }
        if self.end - self.pos < 4 * bl && !self.eof {
            self.refill()?;
        }
        let (pos, at) = (self.pos, self.base + self.pos as u64);
        if self.end - pos < 4 * bl {
            return Ok(Md4::digest(&self.buf[pos..pos + bl]).into());
        }
        let w = &self.buf[pos..pos + 4 * bl];
        self.spec = crate::rsync::md4x4::digest4(std::array::from_fn(|i| &w[i * bl..(i + 1) * bl]));
        self.spec_left = 3;
        self.spec_at = at + bl as u64;
        Ok(self.spec[0])
    }

    /// Also signs the new file, in `builder`, as the delta goes. A block that matches the
    /// old file where the new signature has a block boundary, with the same block length
    /// and strong sum length, takes the old signature's sums instead of being summed
    /// again: for a file that mostly did not change, that halves the MD4 work (the match
    /// itself already computed that block's MD4). The result is byte-identical to
    /// signing the file on its own.
    pub fn with_signature(mut self, builder: &'s mut SignatureBuilder) -> Self {
        self.new_sig = Some(builder);
        self
    }

    /// Feeds `new_sig` the bytes before `buf[upto]` it has not seen.
    fn feed_to(&mut self, upto: usize) {
        if let Some(b) = self.new_sig.as_deref_mut() {
            let from = (self.fed - self.base) as usize;
            if upto > from {
                b.update(&self.buf[from..upto]);
                self.fed = self.base + upto as u64;
            }
        }
    }

    /// Returns the reader of the new file.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads more of the new file, first sliding the live region
    /// (`lit_start..end`) to the front when the tail has little room. Reads
    /// until at least `MAX_LITERAL + bl` fresh bytes or EOF, which keeps the
    /// compaction cost at most one copy per byte even for readers that return
    /// tiny chunks.
    fn refill(&mut self) -> io::Result<()> {
        let chunk = MAX_LITERAL + self.bl;
        if self.buf.len() - self.end < chunk && self.lit_start > 0 {
            // What is dropped from the front was matched or emitted: sign it first.
            self.feed_to(self.lit_start);
            self.base += self.lit_start as u64;
            self.buf.copy_within(self.lit_start..self.end, 0);
            self.end -= self.lit_start;
            self.pos -= self.lit_start;
            self.lit_start = 0;
        }
        let target = (self.end + chunk).min(self.buf.len());
        while self.end < target {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                // min() guards against a reader that misreports its count.
                Ok(n) => self.end += n.min(self.buf.len() - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Emits `buf[lit_start..upto]` as LITERAL commands (after the pending
    /// COPY, which precedes it in the new file).
    fn flush_literal(&mut self, upto: usize) {
        if self.lit_start >= upto {
            return;
        }
        if let Some(copy) = self.pending.take() {
            put_copy(&mut self.out, copy);
        }
        while self.lit_start < upto {
            let n = (upto - self.lit_start).min(MAX_LITERAL);
            put_literal_header(&mut self.out, n as u64);
            self.out
                .extend_from_slice(&self.buf[self.lit_start..self.lit_start + n]);
            self.lit_start += n;
        }
    }

    /// Records that `buf[p..p + len]` equals block `block` of the old file.
    fn take_match(&mut self, p: usize, block: u32, len: usize) {
        self.flush_literal(p);
        self.feed_to(p);
        let sig = self.sig;
        if let Some(b) = self.new_sig.as_deref_mut() {
            if b.fill == 0
                && len == b.block_len as usize
                && sig.block_len == b.block_len
                && sig.strong_len == STRONG_LEN as usize
            {
                b.known_block(sig.weak[block as usize], sig.strong_of(block));
                self.fed += len as u64;
            }
        }
        self.feed_to(p + len);
        let offset = u64::from(block) * u64::from(self.sig.block_len());
        let len64 = len as u64;
        self.pending = match self.pending {
            Some((o, l)) if o.checked_add(l) == Some(offset) => Some((o, l + len64)),
            Some(prev) => {
                put_copy(&mut self.out, prev);
                Some((offset, len64))
            }
            None => Some((offset, len64)),
        };
        self.next_block = block.checked_add(1);
        self.pos = p + len;
        self.lit_start = self.pos;
        self.have_sum = false;
        self.checked = false;
    }

    /// Rolls the window forward up to `steps` bytes (all of which are in the
    /// buffer), stopping at the first matching block. This is the hot loop:
    /// O(1) rollsum update and one bitset probe per byte.
    fn scan(&mut self, steps: usize) {
        let bl = self.bl;
        let sig = self.sig;
        let start = self.pos;
        let blw = bl as u32;
        let bl_offset = blw.wrapping_mul(CHAR_OFFSET);
        let (mut s1, mut s2) = (self.s1, self.s2);
        let mut found = None;
        let outgoing = &self.buf[start..start + steps];
        let incoming = &self.buf[start + bl..start + bl + steps];
        for (k, (&o, &i)) in outgoing.iter().zip(incoming).enumerate() {
            (s1, s2) = rotate(s1, s2, blw, bl_offset, o, i);
            let weak = pack(s1, s2);
            if sig.maybe_has(weak) {
                let p = start + k + 1;
                if let Some(block) = sig.find_block(weak, &self.buf[p..p + bl], self.next_block) {
                    found = Some((p, block));
                    break;
                }
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        match found {
            Some((p, block)) => self.take_match(p, block, bl),
            None => {
                self.pos = start + steps;
                self.checked = true;
            }
        }
    }

    /// End of input: tries the shrinking windows `[p, end)` for `p >= start`
    /// against the signature's last block (the only one that may be short,
    /// so the only one a window shorter than `block_len` can equal), then
    /// emits the remaining literal, the pending COPY and END.
    fn finish(&mut self, start: usize) {
        let end = self.end;
        if let Some(last) = self.sig.block_count().checked_sub(1) {
            let last_weak = self.sig.weak[last];
            let (a, b) = raw_sums(0, 0, &self.buf[start..end]);
            let mut n = (end - start) as u64;
            let (mut s1, mut s2) = add_offsets(a, b, n);
            let mut p = start;
            while p < end {
                if pack(s1, s2) == last_weak
                    && self.sig.strong_matches(last as u32, &self.buf[p..end])
                {
                    self.take_match(p, last as u32, end - p);
                    break;
                }
                (s1, s2) = rollout(s1, s2, n as u32, self.buf[p]);
                n -= 1;
                p += 1;
            }
        }
        self.flush_literal(end);
        self.feed_to(end);
        if let Some(copy) = self.pending.take() {
            put_copy(&mut self.out, copy);
        }
        self.out.push(OP_END);
        self.pos = end;
        self.done = true;
    }

    /// Runs the matcher until a batch of output is queued or the delta ends.
    fn produce(&mut self) -> io::Result<()> {
        while !self.done && self.out.len() < OUT_TARGET {
            if self.bl == 0 {
                // Empty signature: everything is literal. Emit only whole
                // MAX_LITERAL pieces before EOF so that command boundaries do
                // not depend on how `inner` chunks its reads.
                if self.pos < self.end {
                    self.pos = self.end;
                    let whole = (self.pos - self.lit_start) / MAX_LITERAL * MAX_LITERAL;
                    self.flush_literal(self.lit_start + whole);
                } else if self.eof {
                    self.finish(self.end);
                } else {
                    self.refill()?;
                }
                continue;
            }
            if self.end - self.pos < self.bl {
                if self.eof {
                    self.finish(self.pos);
                } else {
                    self.refill()?;
                }
                continue;
            }
            if !self.have_sum {
                // Right after a match, try the old file's next block first,
                // by strong sum alone: in unchanged stretches this skips the
                // weak sum (a quarter of the cost), and a failed try costs one
                // MD4 per run of matches. Without the weak check a false match
                // needs a 64-bit strong sum collision with that one block.
                if let (true, Some(next)) = (self.pos == self.lit_start, self.next_block) {
                    if (next as usize) < self.sig.block_count() {
                        let digest = self.window_digest()?;
                        if digest[..self.sig.strong_len] == *self.sig.strong_of(next) {
                            self.take_match(self.pos, next, self.bl);
                            continue;
                        }
                    }
                }
                let window = &self.buf[self.pos..self.pos + self.bl];
                let (a, b) = raw_sums(0, 0, window);
                (self.s1, self.s2) = add_offsets(a, b, self.bl as u64);
                self.have_sum = true;
                self.checked = false;
            }
            if !self.checked {
                let weak = pack(self.s1, self.s2);
                if self.sig.maybe_has(weak) {
                    let window = &self.buf[self.pos..self.pos + self.bl];
                    if let Some(block) = self.sig.find_block(weak, window, self.next_block) {
                        self.take_match(self.pos, block, self.bl);
                        continue;
                    }
                }
                self.checked = true;
            }
            if self.pos - self.lit_start >= MAX_LITERAL {
                self.flush_literal(self.pos);
            }
            let room = self.end - self.bl - self.pos;
            if room == 0 {
                if self.eof {
                    // The full window at pos was checked; continue with
                    // the shorter ones.
                    self.finish(self.pos + 1);
                } else {
                    self.refill()?;
                }
                continue;
            }
            self.scan(room.min(MAX_LITERAL - (self.pos - self.lit_start)));
        }
        Ok(())
    }
}

impl<R: Read> Read for DeltaReader<'_, R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        while self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            self.produce()?;
        }
        let n = dst.len().min(self.out.len() - self.out_pos);
        dst[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Patching
// ---------------------------------------------------------------------------

/// Buffered reader over the delta, so commands can be parsed byte by byte
/// without a `read` call per byte.
struct CmdReader<'a, D: Read> {
    inner: &'a mut D,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl<D: Read> CmdReader<'_, D> {
    /// Makes sure at least one byte is buffered; false at end of input.
    fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.end {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pos = 0;
                    self.end = n.min(self.buf.len());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    /// Reads a big-endian unsigned integer of `width` (1..=8) bytes.
    fn uint(&mut self, width: u32, what: &str) -> Result<u64, DeltaError> {
        let mut v = 0u64;
        for _ in 0..width {
            match self.byte()? {
                Some(b) => v = (v << 8) | u64::from(b),
                None => return Err(corrupt(format!("delta truncated in {what}"))),
            }
        }
        Ok(v)
    }

    fn copy_to<W: Write>(&mut self, mut len: u64, out: &mut W) -> Result<(), DeltaError> {
        while len > 0 {
            if !self.fill()? {
                return Err(corrupt(format!(
                    "delta truncated inside a literal ({len} bytes missing)"
                )));
            }
            let n = ((self.end - self.pos) as u64).min(len) as usize;
            out.write_all(&self.buf[self.pos..self.pos + n])?;
            self.pos += n;
            len -= n as u64;
        }
        Ok(())
    }
}

/// Where the commands of a delta put the result: literal bytes arrive through `Write`,
/// COPYs (checked against the basis length already) through `copy`.
trait PatchOut: Write {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError>;
}

/// Reads the commands of `delta` against a basis of `basis_len` bytes into `out`;
/// returns the length of the result.
fn run_delta<D: Read, O: PatchOut>(
    delta: &mut D,
    basis_len: u64,
    out: &mut O,
) -> Result<u64, DeltaError> {
    let mut cmds = CmdReader {
        inner: delta,
        buf: vec![0; PATCH_BUF],
        pos: 0,
        end: 0,
    };
    let magic = cmds.uint(4, "magic")? as u32;
    if magic != DELTA_MAGIC {
        return Err(DeltaError::BadMagic(magic));
    }
    let mut written = 0u64;
    loop {
        let Some(cmd) = cmds.byte()? else {
            return Err(corrupt("delta ends without an END command"));
        };
        match cmd {
            OP_END => {
                if cmds.byte()?.is_some() {
                    return Err(corrupt("data after the END command"));
                }
                return Ok(written);
            }
            OP_LITERAL_1..=OP_LITERAL_64 => {
                cmds.copy_to(u64::from(cmd), out)?;
                written += u64::from(cmd);
            }
            OP_LITERAL_N1..=OP_LITERAL_N8 => {
                let len = cmds.uint(1 << (cmd - OP_LITERAL_N1), "literal length")?;
                cmds.copy_to(len, out)?;
                written += len;
            }
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let mode = cmd - OP_COPY_N1_N1;
                let offset = cmds.uint(1 << (mode / 4), "copy offset")?;
                let len = cmds.uint(1 << (mode % 4), "copy length")?;
                if len == 0 {
                    return Err(corrupt(format!("zero-length COPY at offset {offset}")));
                }
                if offset.checked_add(len).is_none_or(|stop| stop > basis_len) {
                    return Err(corrupt(format!(
                        "COPY of {len} bytes at offset {offset} is past the basis end ({basis_len} bytes)"
                    )));
                }
                out.copy(offset, len)?;
                written += len;
            }
            _ => return Err(corrupt(format!("unknown delta command 0x{cmd:02x}"))),
        }
    }
}

/// Apply a delta to a seekable basis, streaming the result to out. Returns
/// bytes written.
///
/// Accepts every command form, including COPYs that go backwards, overlap or
/// end exactly at the end of the basis. Memory is two 64 KiB buffers. Errors
/// (never panics) on a bad magic, a truncated delta, an unknown command, a
/// zero-length COPY or one reaching past the end of the basis (librsync
/// rejects those too), and bytes after END. On error, `out` may hold a prefix
/// of the result.
pub fn patch<B: Read + Seek, D: Read, W: Write>(
    basis: &mut B,
    delta: &mut D,
    out: &mut W,
) -> Result<u64, DeltaError> {
    let basis_len = basis.seek(SeekFrom::End(0))?;
    let mut out = Streamed {
        basis,
        out,
        basis_pos: None,
        buf: vec![0u8; PATCH_BUF],
    };
    run_delta(delta, basis_len, &mut out)
}

struct Streamed<'a, B, W> {
    basis: &'a mut B,
    out: &'a mut W,
    /// Where the basis is positioned, to skip seeks for consecutive COPYs (a seek may
    /// drop a BufReader's buffer or cost a syscall).
    basis_pos: Option<u64>,
    buf: Vec<u8>,
}

impl<B: Read + Seek, W: Write> Write for Streamed<'_, B, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<B: Read + Seek, W: Write> PatchOut for Streamed<'_, B, W> {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError> {
        if self.basis_pos != Some(offset) {
            self.basis.seek(SeekFrom::Start(offset))?;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match self.basis.read(&mut self.buf[..want]) {
                Ok(0) => return Err(corrupt("basis ended before its reported length")),
                Ok(n) => n.min(want),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        self.basis_pos = Some(offset + len);
        Ok(())
    }
}

/// Saved runs of basis bytes beyond this many are merged with the run before them (the
/// bytes between are saved too): memory stays bounded whatever the delta, at the cost of
/// side-file space.
const MAX_SAVED_RUNS: usize = 1 << 16;

/// Apply a delta to the file that holds its basis, in place; returns the length of the
/// result, to which the caller sets `file`'s length: it is shorter than the basis, or
/// longer than what was written when the result ends in zero blocks, which are left as
/// holes past the basis.
///
/// A COPY of the bytes already at its own position (what an unchanged part of a big file
/// becomes) costs nothing, where [`patch`] reads and writes them. Every other write first
/// saves the basis bytes it overwrites to `side` (from its start; its old contents do not
/// matter), and COPYs read those from there, so the result is what [`patch`] gives for
/// any delta, moves and overlaps included. Writes go in order, so what lies ahead of
/// the write position is still the basis. Memory: three 64 KiB buffers and 24 bytes per
/// saved run of basis bytes (at most [`MAX_SAVED_RUNS`]). On error, `file` is partly
/// patched.
pub fn patch_in_place<F, D, S>(file: &mut F, delta: &mut D, side: &mut S) -> Result<u64, DeltaError>
where
    F: Read + Write + Seek,
    D: Read,
    S: Read + Write + Seek,
{
    patch_in_place_capped(file, delta, side, MAX_SAVED_RUNS)
}

fn patch_in_place_capped<F, D, S>(
    file: &mut F,
    delta: &mut D,
    side: &mut S,
    max_runs: usize,
) -> Result<u64, DeltaError>
where
    F: Read + Write + Seek,
    D: Read,
    S: Read + Write + Seek,
{
    let basis_len = file.seek(SeekFrom::End(0))?;
    let mut out = InPlace {
        file,
        side,
        basis_len,
        pos: 0,
        pending: Vec::with_capacity(PATCH_BUF),
        saved: Vec::new(),
        side_len: 0,
        buf: vec![0u8; PATCH_BUF],
        chunk: vec![0u8; PATCH_BUF],
        max_runs: max_runs.max(1),
    };
    let n = run_delta(delta, basis_len, &mut out)?;
    out.flush_pending()?;
    Ok(n)
}

/// Basis bytes `start..end`, overwritten, kept in the side file from `side`.
struct Saved {
    start: u64,
    end: u64,
    side: u64,
}

struct InPlace<'a, F, S> {
    file: &'a mut F,
    side: &'a mut S,
    basis_len: u64,
    /// The end of the result so far (written or pending).
    pos: u64,
    /// Result bytes not written yet; they end at `pos`.
    pending: Vec<u8>,
    /// In order of position, not overlapping.
    saved: Vec<Saved>,
    side_len: u64,
    /// For saving basis bytes.
    buf: Vec<u8>,
    /// For COPYs' bytes.
    chunk: Vec<u8>,
    max_runs: usize,
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> InPlace<'_, F, S> {
    /// Writes the pending bytes, after saving the basis bytes under them. Blocks that
    /// already hold their new bytes are not written (an unchanged or zero region the delta
    /// copies from elsewhere stays as it is, holes included), and zero blocks past the
    /// basis are left as holes.
    fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let start = self.pos - self.pending.len() as u64;
        let old_end = self.pos.min(self.basis_len);
        // Aligned blocks of the pending bytes whose basis bytes are the same.
        let mut same: Vec<u64> = Vec::new();
        if start < old_end {
            // Over the limit, the run before grows over the gap instead (bytes there were
            // not written, so they are still the basis).
            let from = match self.saved.last() {
                Some(last) if self.saved.len() >= self.max_runs => last.end,
                _ => start,
            };
            self.file.seek(SeekFrom::Start(from))?;
            self.side.seek(SeekFrom::Start(self.side_len))?;
            let mut at = from;
            while at < old_end {
                let n = (old_end - at).min(self.buf.len() as u64) as usize;
                self.file.read_exact(&mut self.buf[..n])?;
                let end = at + n as u64;
                let mut b = at.max(start).div_ceil(BLOCK) * BLOCK;
                while b + BLOCK <= end {
                    let old = &self.buf[(b - at) as usize..(b - at + BLOCK) as usize];
                    let new = &self.pending[(b - start) as usize..(b - start + BLOCK) as usize];
                    if old == new {
                        same.push(b);
                    }
                    b += BLOCK;
                }
                self.side.write_all(&self.buf[..n])?;
                at = end;
            }
            match self.saved.last_mut() {
                Some(last) if last.end == from => last.end = old_end,
                _ => self.saved.push(Saved {
                    start: from,
                    end: old_end,
                    side: self.side_len,
                }),
            }
            self.side_len += old_end - from;
        }
        let mut unknown = u64::MAX; // reads moved the file's position
        let basis_len = self.basis_len;
        crate::rsync::sparse::write_at(self.file, &mut unknown, start, &self.pending, |off, b| {
            same.binary_search(&off).is_ok()
                || (off >= basis_len && crate::rsync::sparse::is_zero(b))
        })?;
        self.pending.clear();
        Ok(())
    }

    /// Fills `dst` with the basis bytes from `at`: saved ones from the side file, the
    /// others from the file, where they still are.
    fn read_basis(&mut self, mut at: u64, dst: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < dst.len() {
            let want = (dst.len() - done) as u64;
            let i = self.saved.partition_point(|s| s.end <= at);
            let (from_side, n) = match self.saved.get(i) {
                Some(s) if s.start <= at => (Some(s.side + (at - s.start)), (s.end - at).min(want)),
                Some(s) => (None, (s.start - at).min(want)),
                None => (None, want),
            };
            let piece = &mut dst[done..done + n as usize];
            match from_side {
                Some(p) => {
                    self.side.seek(SeekFrom::Start(p))?;
                    self.side.read_exact(piece)?;
                }
                None => {
                    self.file.seek(SeekFrom::Start(at))?;
                    self.file.read_exact(piece)?;
                }
            }
            at += n;
            done += n as usize;
        }
        Ok(())
    }
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> Write for InPlace<'_, F, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pending.len() == PATCH_BUF {
            self.flush_pending()?;
        }
        let n = data.len().min(PATCH_BUF - self.pending.len());
        self.pending.extend_from_slice(&data[..n]);
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> PatchOut for InPlace<'_, F, S> {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError> {
        if offset == self.pos {
            // Already there: nothing after `pos` has been written.
            self.flush_pending()?;
            self.pos += len;
            return Ok(());
        }
        // Taken for the loop, so that read_basis can borrow self.
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut done = 0;
        let res = (|| {
            while done < len {
                if self.pending.len() == PATCH_BUF {
                    self.flush_pending()?;
                }
                let n = (len - done).min((PATCH_BUF - self.pending.len()) as u64) as usize;
                self.read_basis(offset + done, &mut chunk[..n])?;
                self.pending.extend_from_slice(&chunk[..n]);
                self.pos += n as u64;
                done += n as u64;
            }
            Ok::<(), io::Error>(())
        })();
        self.chunk = chunk;
        res.map_err(DeltaError::from)
    }
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
            let bl = [512, 1024, 2048][rng.below(3)];
            let delta = delta_of(&sig_of(&old, bl), &new);
            let cap = if round % 3 == 0 { 2 } else { MAX_SAVED_RUNS };
            assert_eq!(
                patch_in_place_vec(&old, &delta, cap).unwrap(),
                new,
                "round {round}"
            );
        }
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
            let bl = [512, 1024, 4096][rng.below(3)];
            let delta = delta_of(&sig_of(&old, bl), &new);
            let cap = if round % 3 == 0 { 1 } else { MAX_SAVED_RUNS };
            assert_eq!(
                patch_in_place_vec(&old, &delta, cap).unwrap(),
                new,
                "round {round}"
            );
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
    fn signatures_match_fast_rsync() {
        let mut rng = Rng::new(1);
        for &bl in &[1u32, 2, 3, 64, 511, 512, 513, 1000, 2048, 4096, 65536] {
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
