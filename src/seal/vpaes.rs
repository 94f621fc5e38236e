//! AES-256 encryption by vector permutes, for OpenPGP CFB sealing in the `wasm32-wasip2`
//! build. The method is Mike Hamburg's ("Accelerating AES with Vector Permute Instructions",
//! CHES 2009, public-domain code); the structure follows Botan's portable port of it.
//!
//! Why: WebAssembly has no AES instructions, so the `aes` crate falls back to its
//! constant-time fixsliced AES, which computes two blocks at once. CFB encryption is
//! sequential (each block is encrypted from the ciphertext before it), so half of that work
//! is thrown away, and AES was a third of a full backup under wasmtime. Vector-permute AES
//! is constant-time as well (S-box lookups are 16-byte in-register shuffles,
//! `i8x16.swizzle`, never memory indexed by secret data) and works one block at a time.
//! Native builds keep rPGP's cipher, which uses AES-NI.
//!
//! Only what sealing needs is here: the AES-256 key schedule and the forward cipher.

use zeroize::Zeroize;

/// Shuffle semantics shared by both lane types: an index byte below 16 picks that byte, one
/// of 0x80 or more gives 0. The algorithm only ever uses those two ranges (0..16, and
/// 0x80..0x90 from its tables), where x86's `pshufb`, for which it was written, wasm's
/// `i8x16.swizzle` and ARM's `tbl` all agree. So the wasm build uses
/// `i8x16.relaxed_swizzle`, which the relaxed-SIMD specification defines exactly there
/// (16..0x80 alone is left to the runtime) and which wasmtime compiles to a bare `pshufb`
/// or `tbl`: plain `swizzle` costs a saturating add before every `pshufb` on x86, on the
/// chain each CFB block waits for (CFB sealing took a quarter less time, a full backup of
/// (a) about 6% less).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod lanes {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct V(v128);

    impl V {
        /// Four little-endian 32-bit lanes, lowest first (the constants below are written so).
        pub const fn words(a: u32, b: u32, c: u32, d: u32) -> V {
            V(u32x4(a, b, c, d))
        }
        pub fn splat(b: u8) -> V {
            V(u8x16_splat(b))
        }
        pub fn load(b: &[u8; 16]) -> V {
            // SAFETY: 16 readable bytes; wasm loads have no alignment requirement.
            V(unsafe { v128_load(b.as_ptr().cast::<v128>()) })
        }
        pub fn store(self, out: &mut [u8; 16]) {
            // SAFETY: 16 writable bytes; wasm stores have no alignment requirement.
            unsafe { v128_store(out.as_mut_ptr().cast::<v128>(), self.0) }
        }
        /// `out[i] = self[idx[i]]`, 0 where `idx[i] >= 0x80`.
        pub fn shuffle(self, idx: V) -> V {
            V(i8x16_relaxed_swizzle(self.0, idx.0))
        }
        pub fn lo(self) -> V {
            V(v128_and(self.0, u8x16_splat(0x0F)))
        }
        pub fn hi(self) -> V {
            V(u8x16_shr(self.0, 4))
        }
        pub fn xor(self, o: V) -> V {
            V(v128_xor(self.0, o.0))
        }
    }
}

/// The same operations on a byte array: what the unit tests run on the build machine, where
/// sealing itself uses AES-NI.
#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod lanes {
    #[derive(Clone, Copy)]
    pub struct V([u8; 16]);

    impl V {
        pub const fn words(a: u32, b: u32, c: u32, d: u32) -> V {
            let w = [a, b, c, d];
            let mut out = [0u8; 16];
            let mut i = 0;
            while i < 16 {
                out[i] = (w[i / 4] >> (8 * (i % 4))) as u8;
                i += 1;
            }
            V(out)
        }
        pub fn splat(b: u8) -> V {
            V([b; 16])
        }
        pub fn load(b: &[u8; 16]) -> V {
            V(*b)
        }
        pub fn store(self, out: &mut [u8; 16]) {
            *out = self.0;
        }
        /// As the wasm build's relaxed swizzle; an index it leaves to the runtime (16..0x80)
        /// is a bug here, so the tests catch any change that would come to rely on one.
        pub fn shuffle(self, idx: V) -> V {
            V(idx.0.map(|i| {
                assert!(!(16..0x80).contains(&i), "vpaes: shuffle index {i:#x}");
                if i < 16 {
                    self.0[i as usize]
                } else {
                    0
                }
            }))
        }
        pub fn lo(self) -> V {
            V(self.0.map(|b| b & 0x0F))
        }
        pub fn hi(self) -> V {
            V(self.0.map(|b| b >> 4))
        }
        pub fn xor(self, o: V) -> V {
            let mut out = self.0;
            for (a, b) in out.iter_mut().zip(o.0) {
                *a ^= b;
            }
            V(out)
        }
    }
}

use lanes::V;

impl std::ops::BitXor for V {
    type Output = V;
    fn bitxor(self, o: V) -> V {
        self.xor(o)
    }
}

// The change of basis into and out of GF(2^4)^2, the inversion tables, the S-box output
// tables and the MixColumns/ShiftRows byte rotations (Hamburg's constants).
const K_IPT1: V = V::words(0x5A2A7000, 0xC2B2E898, 0x52227808, 0xCABAE090);
const K_IPT2: V = V::words(0x317C4D00, 0x4C01307D, 0xB0FDCC81, 0xCD80B1FC);
const K_INV1: V = V::words(0x0D080180, 0x0E05060F, 0x0A0B0C02, 0x04070309);
const K_INV2: V = V::words(0x0F0B0780, 0x01040A06, 0x02050809, 0x030D0E0C);
const SB1U: V = V::words(0xCB503E00, 0xB19BE18F, 0x142AF544, 0xA5DF7A6E);
const SB1T: V = V::words(0xFAE22300, 0x3618D415, 0x0D2ED9EF, 0x3BF7CCC1);
const SB2U: V = V::words(0x0B712400, 0xE27A93C6, 0xBC982FCD, 0x5EB7E955);
const SB2T: V = V::words(0x0AE12900, 0x69EB8840, 0xAB82234A, 0xC2A163C8);
const SBOU: V = V::words(0x6FBDC700, 0xD0D26D17, 0xC502A878, 0x15AABF7A);
const SBOT: V = V::words(0x5FBB6A00, 0xCFE474A5, 0x412B35FA, 0x8E1E90D1);
const OUT_TR1: V = V::words(0xD6B66000, 0xFF9F4929, 0xDEBE6808, 0xF7974121);
const OUT_TR2: V = V::words(0x50BCEC00, 0x01EDBD51, 0xB05C0CE0, 0xE10D5DB1);

const MC_FORWARD: [V; 4] = [
    V::words(0x00030201, 0x04070605, 0x080B0A09, 0x0C0F0E0D),
    V::words(0x04070605, 0x080B0A09, 0x0C0F0E0D, 0x00030201),
    V::words(0x080B0A09, 0x0C0F0E0D, 0x00030201, 0x04070605),
    V::words(0x0C0F0E0D, 0x00030201, 0x04070605, 0x080B0A09),
];
const MC_BACKWARD: [V; 4] = [
    V::words(0x02010003, 0x06050407, 0x0A09080B, 0x0E0D0C0F),
    V::words(0x0E0D0C0F, 0x02010003, 0x06050407, 0x0A09080B),
    V::words(0x0A09080B, 0x0E0D0C0F, 0x02010003, 0x06050407),
    V::words(0x06050407, 0x0A09080B, 0x0E0D0C0F, 0x02010003),
];
const SR: [V; 4] = [
    V::words(0x03020100, 0x07060504, 0x0B0A0908, 0x0F0E0D0C),
    V::words(0x0F0A0500, 0x030E0904, 0x07020D08, 0x0B06010C),
    V::words(0x0B020900, 0x0F060D04, 0x030A0108, 0x070E050C),
    V::words(0x070A0D00, 0x0B0E0104, 0x0F020508, 0x0306090C),
];
/// Round constants, already in the transformed basis.
const RCON: [V; 7] = [
    V::words(0x70, 0, 0, 0),
    V::words(0x2A, 0, 0, 0),
    V::words(0x98, 0, 0, 0),
    V::words(0x08, 0, 0, 0),
    V::words(0x4D, 0, 0, 0),
    V::words(0x7C, 0, 0, 0),
    V::words(0x7D, 0, 0, 0),
];
/// Byte indices that broadcast the last 32-bit lane, rotated by one byte (RotWord) or not.
const ROT_LAST_WORD: V = V::words(0x0C0F0E0D, 0x0C0F0E0D, 0x0C0F0E0D, 0x0C0F0E0D);
const LAST_WORD: V = V::words(0x0F0E0D0C, 0x0F0E0D0C, 0x0F0E0D0C, 0x0F0E0D0C);
/// Byte indices that move every 32-bit lane up by one or two (0xFF reads as 0).
const UP_ONE_WORD: V = V::words(0xFFFFFFFF, 0x03020100, 0x07060504, 0x0B0A0908);
const UP_TWO_WORDS: V = V::words(0xFFFFFFFF, 0xFFFFFFFF, 0x03020100, 0x07060504);

/// SubBytes' inversion in GF(2^4)^2: the two halves every round's output tables read.
fn invert(b: V) -> (V, V) {
    let hi = b.hi();
    let lo = b.lo();
    let t2 = K_INV2.shuffle(lo);
    let lo = lo ^ hi;
    let t5 = lo ^ K_INV1.shuffle(t2 ^ K_INV1.shuffle(hi));
    let t6 = hi ^ K_INV1.shuffle(t2 ^ K_INV1.shuffle(lo));
    (t5, t6)
}

fn transform(x: V, t1: V, t2: V) -> V {
    t1.shuffle(x.lo()) ^ t2.shuffle(x.hi())
}

fn mangle(k: V, round: usize) -> V {
    let t = (k ^ V::splat(0x5B)).shuffle(MC_FORWARD[0]);
    let t1 = t.shuffle(MC_FORWARD[0]);
    (t1 ^ t ^ t1.shuffle(MC_FORWARD[0])).shuffle(SR[round % 4])
}

fn mangle_last(k: V, round: usize) -> V {
    transform(k.shuffle(SR[round % 4]) ^ V::splat(0x5B), OUT_TR1, OUT_TR2)
}

/// One step of the key expansion: SubWord of `word`'s lanes, xored into the running sum of
/// `prev`'s words.
fn schedule_step(word: V, prev: V) -> V {
    let smeared = prev ^ prev.shuffle(UP_ONE_WORD);
    let smeared = smeared ^ smeared.shuffle(UP_TWO_WORDS) ^ V::splat(0x5B);
    let (t5, t6) = invert(word);
    smeared ^ SB1U.shuffle(t5) ^ SB1T.shuffle(t6)
}

/// An AES-256 key, expanded. The round keys are wiped when it is dropped.
pub struct Aes256 {
    round_keys: [[u8; 16]; 15],
}

impl Drop for Aes256 {
    fn drop(&mut self) {
        self.round_keys.zeroize();
    }
}

impl Aes256 {
    pub fn new(key: &[u8; 32]) -> Aes256 {
        let mut rk = [[0u8; 16]; 15];
        let half = |i: usize| {
            let mut h = [0u8; 16];
            h.copy_from_slice(&key[16 * i..16 * (i + 1)]);
            transform(V::load(&h), K_IPT1, K_IPT2)
        };
        let mut key1 = half(0);
        let mut key2 = half(1);
        key1.store(&mut rk[0]);
        mangle(key2, 3).store(&mut rk[1]);
        for i in (2..14).step_by(2) {
            let before = key2;
            key2 = schedule_step(key2.shuffle(ROT_LAST_WORD), key1 ^ RCON[i / 2 - 1]);
            key1 = key2;
            mangle(key2, i).store(&mut rk[i]);
            key2 = schedule_step(key2.shuffle(LAST_WORD), before);
            mangle(key2, i - 1).store(&mut rk[i + 1]);
        }
        key2 = schedule_step(key2.shuffle(ROT_LAST_WORD), key1 ^ RCON[6]);
        mangle_last(key2, 2).store(&mut rk[14]);
        Aes256 { round_keys: rk }
    }

    fn encrypt(&self, block: V) -> V {
        let rk = |r: usize| V::load(&self.round_keys[r]);
        let mut b = transform(block, K_IPT1, K_IPT2) ^ rk(0);
        for r in 1..14 {
            let (t5, t6) = invert(b);
            let t7 = SB1T.shuffle(t6) ^ SB1U.shuffle(t5) ^ rk(r);
            let t8 = SB2T.shuffle(t6) ^ SB2U.shuffle(t5) ^ t7.shuffle(MC_FORWARD[r % 4]);
            b = t8.shuffle(MC_FORWARD[r % 4]) ^ t7.shuffle(MC_BACKWARD[r % 4]) ^ t8;
        }
        let (t5, t6) = invert(b);
        (SBOU.shuffle(t5) ^ SBOT.shuffle(t6) ^ rk(14)).shuffle(SR[14 % 4])
    }

    /// Encrypt one block in place (for the known-answer test).
    pub fn encrypt_block(&self, block: &mut [u8; 16]) {
        self.encrypt(V::load(block)).store(block);
    }

    /// OpenPGP's CFB without resync, in place: `C_i = P_i ^ E(C_{i-1})`, `C_0 = iv`; a last
    /// partial block takes the first bytes of its keystream block. Equal to one call of
    /// rPGP's `encrypt_with_iv_regular` over the same bytes.
    pub fn cfb_encrypt(&self, iv: &[u8; 16], data: &mut [u8]) {
        let mut prev = V::load(iv);
        let mut chunks = data.chunks_exact_mut(16);
        for c in &mut chunks {
            let block: &mut [u8; 16] = c.try_into().expect("chunks_exact gives 16 bytes");
            prev = V::load(block) ^ self.encrypt(prev);
            prev.store(block);
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut ks = [0u8; 16];
            self.encrypt(prev).store(&mut ks);
            for (d, k) in tail.iter_mut().zip(ks) {
                *d ^= k;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgp::crypto::sym::SymmetricKeyAlgorithm;
    use rand::{Rng, RngCore, SeedableRng};

    #[test]
    fn fips_197_aes_256_known_answer() {
        // FIPS-197 appendix C.3.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut block: [u8; 16] = std::array::from_fn(|i| (i as u8) * 0x11);
        Aes256::new(&key).encrypt_block(&mut block);
        assert_eq!(
            block,
            [
                0x8e, 0xa2, 0xb7, 0xca, 0x51, 0x67, 0x45, 0xbf, 0xea, 0xfc, 0x49, 0x90, 0x4b, 0x49,
                0x60, 0x89
            ]
        );
    }

    #[test]
    fn cfb_matches_rpgp_for_random_keys_and_lengths() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for len in (0..100).chain([255, 256, 257, 4096, 65536 + 5]) {
            let mut key = [0u8; 32];
            let mut iv = [0u8; 16];
            rng.fill_bytes(&mut key);
            if rng.gen_bool(0.5) {
                rng.fill_bytes(&mut iv);
            }
            let mut data = vec![0u8; len];
            rng.fill_bytes(&mut data);
            let mut want = data.clone();
            SymmetricKeyAlgorithm::AES256
                .encrypt_with_iv_regular(&key, &iv, &mut want)
                .unwrap();
            Aes256::new(&key).cfb_encrypt(&iv, &mut data);
            assert!(data == want, "length {len}");
        }
    }
}

#[cfg(test)]
mod speed {
    /// CFB sealing throughput; run under wasmtime (`make test-wasm-unit` with `--release`,
    /// this test's name and `-- --ignored --nocapture`), where it is the cipher in use.
    #[test]
    #[ignore]
    fn throughput() {
        let aes = super::Aes256::new(&[7u8; 32]);
        let mut data = vec![1u8; 32 << 20];
        let t = std::time::Instant::now();
        aes.cfb_encrypt(&[0u8; 16], &mut data);
        std::hint::black_box(&data);
        eprintln!("vpaes CFB: {:?} for {} MiB", t.elapsed(), data.len() >> 20);
    }
}
