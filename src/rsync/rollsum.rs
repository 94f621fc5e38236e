//! librsync's classic rolling checksum (the weak sum): s1 and s2 over a window, rolled one
//! byte at a time, summed column-wise so the compiler vectorises the loop.

use super::*;

/// Continues offset-free sums (s1 = sum b, s2 = sum of running s1) over
/// `data`. The offset terms depend only on the length, so they are added
/// once per window by [`add_offsets`]; this keeps the loop a pure byte sum
/// and makes it resumable across arbitrary chunk boundaries.
// Not inlined: inlined into a caller's loop, LLVM scalarizes the lane
// arrays instead of vectorizing them (measured 3x slower).
#[inline(never)]
pub(super) fn raw_sums(s1: u32, s2: u32, data: &[u8]) -> (u32, u32) {
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
pub(super) fn add_offsets(s1: u32, s2: u32, n: u64) -> (u32, u32) {
    // n <= u32::MAX, so n * (n + 1) fits in a u64 and the halving is exact.
    let tri = (n.wrapping_mul(n.wrapping_add(1)) / 2) as u32;
    (
        s1.wrapping_add((n as u32).wrapping_mul(CHAR_OFFSET)),
        s2.wrapping_add(tri.wrapping_mul(CHAR_OFFSET)),
    )
}

#[inline]
pub(super) fn pack(s1: u32, s2: u32) -> u32 {
    (s2 << 16) | (s1 & 0xffff)
}

/// librsync `RollsumRotate`: slide a `bl`-byte window by one byte.
/// `bl_offset` is `bl * 31`, hoisted out of the hot loop by the caller.
#[inline(always)]
pub(super) fn rotate(s1: u32, s2: u32, bl: u32, bl_offset: u32, out: u8, inb: u8) -> (u32, u32) {
    let s1 = s1.wrapping_add(u32::from(inb)).wrapping_sub(u32::from(out));
    let s2 = s2
        .wrapping_add(s1)
        .wrapping_sub(bl.wrapping_mul(u32::from(out)).wrapping_add(bl_offset));
    (s1, s2)
}

/// librsync `RollsumRollout`: drop the first byte of an `n`-byte window.
#[inline]
pub(super) fn rollout(s1: u32, s2: u32, n: u32, out: u8) -> (u32, u32) {
    let o = u32::from(out) + CHAR_OFFSET;
    (s1.wrapping_sub(o), s2.wrapping_sub(n.wrapping_mul(o)))
}

/// Weak sum of a whole window, as librsync computes it.
pub(super) fn weak_sum(data: &[u8]) -> u32 {
    let (s1, s2) = raw_sums(0, 0, data);
    let (s1, s2) = add_offsets(s1, s2, data.len() as u64);
    pack(s1, s2)
}

// ---------------------------------------------------------------------------
// Signature generation
// ---------------------------------------------------------------------------
