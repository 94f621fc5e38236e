//! MD4 of four equal-length messages at once, one per 32-bit lane of a SIMD register (SSE2,
//! or WebAssembly's `simd128` in the wasm32-wasip2 build).
//!
//! A signature or a delta over a file that barely changed is mostly MD4 of consecutive
//! blocks, and MD4 is one long dependency chain per message: a single stream leaves most
//! of the core idle. Four independent chains side by side run at about the same latency
//! per step, so four blocks cost little more than one. SSE2 is part of x86_64 and the wasm
//! build is compiled with `simd128`, so no runtime detection is needed; elsewhere the four
//! digests are computed one after the other with the `md4` crate.

/// The MD4 digests of `msgs`, which must all have the same length.
pub fn digest4(msgs: [&[u8]; 4]) -> [[u8; 16]; 4] {
    assert!(
        msgs.iter().all(|m| m.len() == msgs[0].len()),
        "md4x4: messages of different lengths"
    );
    imp::digest4(msgs)
}

#[cfg(not(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
)))]
mod imp {
    use md4::{Digest, Md4};

    pub fn digest4(msgs: [&[u8]; 4]) -> [[u8; 16]; 4] {
        msgs.map(|m| Md4::digest(m).into())
    }
}

/// Four 32-bit lanes in an SSE2 register.
#[cfg(target_arch = "x86_64")]
mod lanes {
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct L(__m128i);

    // SAFETY (of every intrinsic here): SSE2 is part of the x86_64 baseline.
    impl L {
        #[inline(always)]
        pub fn splat(w: u32) -> L {
            L(unsafe { _mm_set1_epi32(w as i32) })
        }
        #[inline(always)]
        pub fn words(w: [u32; 4]) -> L {
            L(unsafe { _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32) })
        }
        #[inline(always)]
        pub fn add(self, o: L) -> L {
            L(unsafe { _mm_add_epi32(self.0, o.0) })
        }
        #[inline(always)]
        pub fn and(self, o: L) -> L {
            L(unsafe { _mm_and_si128(self.0, o.0) })
        }
        #[inline(always)]
        pub fn or(self, o: L) -> L {
            L(unsafe { _mm_or_si128(self.0, o.0) })
        }
        #[inline(always)]
        pub fn xor(self, o: L) -> L {
            L(unsafe { _mm_xor_si128(self.0, o.0) })
        }
        /// Rotate left by `S`; `R` is `32 - S`.
        #[inline(always)]
        pub fn rotl<const S: i32, const R: i32>(self) -> L {
            L(unsafe { _mm_or_si128(_mm_slli_epi32::<S>(self.0), _mm_srli_epi32::<R>(self.0)) })
        }
        #[inline(always)]
        pub fn to_words(self) -> [u32; 4] {
            let mut w = [0u32; 4];
            unsafe { _mm_storeu_si128(w.as_mut_ptr().cast::<__m128i>(), self.0) };
            w
        }
    }
}

/// Four 32-bit lanes in a WebAssembly SIMD register (the wasm32-wasip2 build enables
/// `simd128`; wasmtime turns it into SSE on x86_64 and NEON on aarch64).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct L(v128);

    impl L {
        #[inline(always)]
        pub fn splat(w: u32) -> L {
            L(u32x4_splat(w))
        }
        #[inline(always)]
        pub fn words(w: [u32; 4]) -> L {
            L(u32x4(w[0], w[1], w[2], w[3]))
        }
        #[inline(always)]
        pub fn add(self, o: L) -> L {
            L(i32x4_add(self.0, o.0))
        }
        #[inline(always)]
        pub fn and(self, o: L) -> L {
            L(v128_and(self.0, o.0))
        }
        #[inline(always)]
        pub fn or(self, o: L) -> L {
            L(v128_or(self.0, o.0))
        }
        #[inline(always)]
        pub fn xor(self, o: L) -> L {
            L(v128_xor(self.0, o.0))
        }
        /// Rotate left by `S`; `R` is `32 - S`.
        #[inline(always)]
        pub fn rotl<const S: i32, const R: i32>(self) -> L {
            L(v128_or(
                u32x4_shl(self.0, S as u32),
                u32x4_shr(self.0, R as u32),
            ))
        }
        #[inline(always)]
        pub fn to_words(self) -> [u32; 4] {
            [
                u32x4_extract_lane::<0>(self.0),
                u32x4_extract_lane::<1>(self.0),
                u32x4_extract_lane::<2>(self.0),
                u32x4_extract_lane::<3>(self.0),
            ]
        }
    }
}

#[cfg(any(
    target_arch = "x86_64",
    all(target_arch = "wasm32", target_feature = "simd128")
))]
mod imp {
    use super::lanes::L;

    /// One MD4 step on four lanes: `a = rotl(a + f + x + k, s)`.
    macro_rules! step {
        ($a:ident, $f:expr, $x:expr, $k:expr, $s:literal) => {{
            $a = $a.add($f).add($x.add($k)).rotl::<$s, { 32 - $s }>();
        }};
    }

    #[inline(always)]
    fn f(x: L, y: L, z: L) -> L {
        // (x & y) | (!x & z), as z ^ (x & (y ^ z)).
        z.xor(x.and(y.xor(z)))
    }

    #[inline(always)]
    fn g(x: L, y: L, z: L) -> L {
        // Majority: (x & y) | (x & z) | (y & z), as (x & y) | (z & (x | y)).
        x.and(y).or(z.and(x.or(y)))
    }

    #[inline(always)]
    fn h(x: L, y: L, z: L) -> L {
        x.xor(y).xor(z)
    }

    /// Compress one 64-byte block of each lane into `st`.
    #[inline(always)]
    fn compress(st: &mut [L; 4], blocks: [&[u8; 64]; 4]) {
        let x: [L; 16] =
            std::array::from_fn(|i| {
                L::words(blocks.map(|b| {
                    u32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
                }))
            });
        let [mut a, mut b, mut c, mut d] = *st;
        let z = L::splat(0);
        for &k in &[0, 4, 8, 12] {
            step!(a, f(b, c, d), x[k], z, 3);
            step!(d, f(a, b, c), x[k + 1], z, 7);
            step!(c, f(d, a, b), x[k + 2], z, 11);
            step!(b, f(c, d, a), x[k + 3], z, 19);
        }
        let k2 = L::splat(0x5A82_7999);
        for &k in &[0, 1, 2, 3] {
            step!(a, g(b, c, d), x[k], k2, 3);
            step!(d, g(a, b, c), x[k + 4], k2, 5);
            step!(c, g(d, a, b), x[k + 8], k2, 9);
            step!(b, g(c, d, a), x[k + 12], k2, 13);
        }
        let k3 = L::splat(0x6ED9_EBA1);
        for &k in &[0, 2, 1, 3] {
            step!(a, h(b, c, d), x[k], k3, 3);
            step!(d, h(a, b, c), x[k + 8], k3, 9);
            step!(c, h(d, a, b), x[k + 4], k3, 11);
            step!(b, h(c, d, a), x[k + 12], k3, 15);
        }
        st[0] = st[0].add(a);
        st[1] = st[1].add(b);
        st[2] = st[2].add(c);
        st[3] = st[3].add(d);
    }

    pub fn digest4(msgs: [&[u8]; 4]) -> [[u8; 16]; 4] {
        let len = msgs[0].len();
        let mut st = [
            L::splat(0x6745_2301),
            L::splat(0xefcd_ab89),
            L::splat(0x98ba_dcfe),
            L::splat(0x1032_5476),
        ];
        let whole = len / 64;
        for n in 0..whole {
            let at = n * 64;
            let b: [&[u8; 64]; 4] =
                std::array::from_fn(|i| msgs[i][at..at + 64].try_into().expect("64-byte block"));
            compress(&mut st, b);
        }
        // The padding: 0x80, zeros to 56 mod 64, the bit length (little-endian);
        // the same for every lane since the lengths are equal.
        let rest = len - whole * 64;
        let tail_blocks = if rest < 56 { 1 } else { 2 };
        let mut tails = [[0u8; 128]; 4];
        for (t, m) in tails.iter_mut().zip(msgs) {
            t[..rest].copy_from_slice(&m[whole * 64..]);
            t[rest] = 0x80;
            let end = tail_blocks * 64;
            t[end - 8..end].copy_from_slice(&((len as u64) << 3).to_le_bytes());
        }
        for n in 0..tail_blocks {
            let b: [&[u8; 64]; 4] = std::array::from_fn(|i| {
                tails[i][n * 64..n * 64 + 64]
                    .try_into()
                    .expect("64-byte block")
            });
            compress(&mut st, b);
        }
        let words = st.map(L::to_words);
        let mut out = [[0u8; 16]; 4];
        for (lane, o) in out.iter_mut().enumerate() {
            for (j, w) in words.iter().enumerate() {
                o[4 * j..4 * j + 4].copy_from_slice(&w[lane].to_le_bytes());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md4::{Digest, Md4};

    #[test]
    fn equals_md4_for_every_length_around_the_padding_edges() {
        let mut seed = 1u64;
        let mut byte = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        };
        let data: Vec<u8> = (0..4 * 3000).map(|_| byte()).collect();
        for len in (0..200).chain([511, 512, 513, 700, 1024, 2999, 3000]) {
            let m: [&[u8]; 4] = std::array::from_fn(|i| &data[i * 3000..i * 3000 + len]);
            let got = digest4(m);
            for (i, g) in got.iter().enumerate() {
                let want: [u8; 16] = Md4::digest(m[i]).into();
                assert_eq!(*g, want, "lane {i}, length {len}");
            }
        }
    }

    #[test]
    fn rfc1320_vectors() {
        let v = [
            (&b""[..], "31d6cfe0d16ae931b73c59d7e0c089c0"),
            (b"abc", "a448017aaf21d8525fc10ae87aa6729d"),
            (b"message digest", "d9130a8164549fe818874806e1c7014b"),
        ];
        for (m, hex) in v {
            let got = digest4([m, m, m, m]);
            assert!(got.iter().all(|g| crate::archive::hex(g) == hex), "{hex}");
        }
    }
}

#[cfg(test)]
mod speed {
    #[test]
    #[ignore]
    fn throughput() {
        use md4::{Digest, Md4};
        let data = vec![7u8; 4 * 7168 * 1000];
        let t = std::time::Instant::now();
        for c in data.chunks(7168) {
            std::hint::black_box(Md4::digest(c));
        }
        let one = t.elapsed();
        let t = std::time::Instant::now();
        for c in data.chunks(4 * 7168) {
            let m: [&[u8]; 4] = std::array::from_fn(|i| &c[i * 7168..(i + 1) * 7168]);
            std::hint::black_box(super::digest4(m));
        }
        let four = t.elapsed();
        eprintln!("md4 {one:?}, md4x4 {four:?} for {} MB", data.len() >> 20);
    }
}
