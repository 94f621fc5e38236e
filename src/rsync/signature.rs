//! librsync signatures (the rdiff `signature` step): per block of the old file a weak
//! rollsum and a truncated MD4, built incrementally as the file streams into a volume, and
//! parsed back into an index the delta generator searches.

use super::*;

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
pub(super) fn isqrt(n: u64) -> u64 {
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

/// Incremental signature generator: feed data in any chunking, get identical
/// bytes.
///
/// Holds the bytes not summed yet (fewer than four blocks) plus the growing output, 12
/// bytes per block. Whole blocks are summed four at a time, MD4 in SIMD lanes (see
/// md4x4): a file is read in 64 KiB chunks while a big file's blocks are larger, so
/// summing what each read completes would sum one block at a time, at a third of the
/// speed.
pub struct SignatureBuilder {
    pub(super) block_len: u32,
    pub(super) out: Vec<u8>,
    /// Fed bytes not summed yet: fewer than `group` blocks.
    stage: Vec<u8>,
    /// Blocks summed at once: four, or one for blocks so large (files over 64 GiB) that
    /// four of them waiting would be more memory than the speed is worth.
    group: usize,
}

/// The largest block length summed four blocks at a time.
const GROUP_MAX_BLOCK: u32 = 256 << 10;

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
            stage: Vec::new(),
            group: if block_len <= GROUP_MAX_BLOCK { 4 } else { 1 },
        }
    }

    /// A signature continued where an interrupted run left it: `out` is what the builder
    /// had produced (header and the sums of whole blocks), `tail` the bytes it had not
    /// summed yet (see [`SignatureBuilder::pending_max`]).
    /// `None` when `out` is not a signature of this block length, or `tail` too long.
    pub fn resume(block_len: u32, out: Vec<u8>, tail: &[u8]) -> Option<Self> {
        let mut b = SignatureBuilder::new(block_len);
        let header = b.out.len();
        let entry = 4 + STRONG_LEN as usize;
        if out.len() < header
            || out[..header] != b.out[..]
            || !(out.len() - header).is_multiple_of(entry)
            || tail.len() >= b.pending_max()
        {
            return None;
        }
        b.out = out;
        b.update(tail);
        Some(b)
    }

    /// Whether `sums` (from the file's first byte when `starts`, so with the header) and
    /// `tail` are part of a signature of this block length that [`resume`] takes.
    ///
    /// [`resume`]: SignatureBuilder::resume
    pub fn part_fits(block_len: u32, sums: &[u8], starts: bool, tail: &[u8]) -> bool {
        if block_len == 0 || block_len > MAX_BLOCK_LEN {
            return false;
        }
        let b = SignatureBuilder::new(block_len);
        if tail.len() >= b.pending_max() {
            return false;
        }
        let body = match starts {
            true => match sums.strip_prefix(&b.out[..]) {
                Some(body) => body,
                None => return false,
            },
            false => sums,
        };
        body.len().is_multiple_of(4 + STRONG_LEN as usize)
    }

    /// What the builder has produced so far: the header and the sums of whole blocks.
    /// It lags the bytes fed by up to [`SignatureBuilder::pending_max`] minus one.
    pub fn produced(&self) -> &[u8] {
        &self.out
    }

    /// How many bytes of the file the sums produced so far cover.
    pub fn covered(&self) -> u64 {
        let blocks =
            (self.out.len() as u64).saturating_sub(SIG_HEADER_LEN) / (4 + u64::from(STRONG_LEN));
        blocks * u64::from(self.block_len)
    }

    /// The bound on the bytes fed but not summed yet (they are fewer).
    pub fn pending_max(&self) -> usize {
        self.group * self.block_len as usize
    }

    /// Feeds the next bytes of the file.
    pub fn update(&mut self, mut data: &[u8]) {
        let group = self.pending_max();
        if !self.stage.is_empty() {
            let take = (group - self.stage.len()).min(data.len());
            self.stage.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.stage.len() < group {
                return;
            }
            let stage = std::mem::take(&mut self.stage);
            self.sum_group(&stage);
            self.stage = stage;
            self.stage.clear();
        }
        let whole = data.len() - data.len() % group;
        for blocks in data[..whole].chunks_exact(group) {
            self.sum_group(blocks);
        }
        self.stage.extend_from_slice(&data[whole..]);
    }

    /// Sums `group` whole blocks.
    fn sum_group(&mut self, blocks: &[u8]) {
        let bl = self.block_len as usize;
        if self.group == 1 {
            return self.sum_block(blocks);
        }
        let four: [&[u8]; 4] = std::array::from_fn(|i| &blocks[i * bl..(i + 1) * bl]);
        for (block, digest) in four.iter().zip(crate::rsync::md4x4::digest4(four)) {
            self.out.extend_from_slice(&weak_sum(block).to_be_bytes());
            self.out.extend_from_slice(&digest[..STRONG_LEN as usize]);
        }
    }

    /// Sums one block (the last one may be short).
    fn sum_block(&mut self, block: &[u8]) {
        self.out.extend_from_slice(&weak_sum(block).to_be_bytes());
        self.out
            .extend_from_slice(&Md4::digest(block)[..STRONG_LEN as usize]);
    }

    /// Sums the whole blocks fed so far, so that what is produced covers them.
    fn flush_whole(&mut self) {
        let bl = self.block_len as usize;
        let whole = self.stage.len() - self.stage.len() % bl;
        if whole == 0 {
            return;
        }
        let stage = std::mem::take(&mut self.stage);
        for block in stage[..whole].chunks_exact(bl) {
            self.sum_block(block);
        }
        self.stage = stage;
        self.stage.drain(..whole);
    }

    /// Whether the bytes fed end on a block boundary: only there can a known block follow.
    pub(super) fn at_block_boundary(&self) -> bool {
        self.stage.len().is_multiple_of(self.block_len as usize)
    }

    /// Appends a whole block known to equal a block of another file signed with
    /// the same block length and strong sum length: its sums are copied instead
    /// of computed. Only valid at a block boundary (see [`DeltaReader::with_signature`]).
    pub(super) fn known_block(&mut self, weak: u32, strong: &[u8]) {
        debug_assert!(self.at_block_boundary() && strong.len() == STRONG_LEN as usize);
        self.flush_whole();
        self.out.extend_from_slice(&weak.to_be_bytes());
        self.out.extend_from_slice(strong);
    }

    /// Ends the file (a partial last block becomes a short block) and returns
    /// the signature bytes.
    pub fn finish(mut self) -> Vec<u8> {
        self.flush_whole();
        if !self.stage.is_empty() {
            let last = std::mem::take(&mut self.stage);
            self.sum_block(&last);
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
pub(super) fn mix(weak: u32) -> u32 {
    weak.wrapping_mul(0x9E37_79B1)
}

pub(super) fn ceil_log2(n: usize) -> u32 {
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
    pub(super) block_len: u32,
    pub(super) strong_len: usize,
    /// Weak sums in block order.
    pub(super) weak: Vec<u32>,
    /// Strong sums in block order, `strong_len` bytes each.
    pub(super) strong: Vec<u8>,
    /// Block indices sorted by (weak, strong, index).
    pub(super) order: Vec<u32>,
    /// Open-addressing table of weak sums (`empty_key` marks a free slot).
    /// Probes touch only this array, 4 bytes a slot, to stay cache-resident.
    pub(super) keys: Vec<u32>,
    /// For the weak sum in `keys[i]`: its blocks are `order[start..start + count]`.
    pub(super) spans: Vec<(u32, u32)>,
    /// A value no block's weak sum has.
    pub(super) empty_key: u32,
    pub(super) table_shift: u32,
    pub(super) filter: Vec<u64>,
    pub(super) filter_shift: u32,
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

    pub(super) fn strong_of(&self, block: u32) -> &[u8] {
        let at = block as usize * self.strong_len;
        &self.strong[at..at + self.strong_len]
    }

    /// Whether `data` has the strong sum of `block`.
    pub(super) fn strong_matches(&self, block: u32, data: &[u8]) -> bool {
        Md4::digest(data)[..self.strong_len] == *self.strong_of(block)
    }

    /// Cheap prefilter: false means no block has this weak sum.
    #[inline]
    pub(super) fn maybe_has(&self, weak: u32) -> bool {
        let h = mix(weak) >> self.filter_shift;
        self.filter[(h >> 6) as usize] & (1u64 << (h & 63)) != 0
    }

    pub(super) fn group(&self, weak: u32) -> Option<&[u32]> {
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
    pub(super) fn find_block(&self, weak: u32, data: &[u8], prefer: Option<u32>) -> Option<u32> {
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
