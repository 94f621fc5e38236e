//! SEIPD v1 decryption for the AES ciphers (what gpg and swiftdup write): OpenPGP CFB (IV = 0,
//! no resync) with the MDC (SHA-1 over prefix, plaintext and the MDC packet's header)
//! checked when the source ends. Other ciphers and the legacy unprotected packet go through
//! rPGP's `StreamDecryptor`.
//!
//! Why not rPGP's decryptor for AES as well: it deciphers one block at a time, so each
//! block waits for the AES of the one before. CFB *decryption* has no such chain (plaintext
//! block i is AES(ciphertext block i-1) XOR ciphertext block i), so here whole runs of
//! blocks go to the cipher at once and AES-NI works on eight of them together (the
//! software AES under WASI on two). In a restore of a 1 GiB incompressible file from
//! `file://`, rPGP's decryptor spent 28% of the decrypting thread's CPU in AES and CFB,
//! and its 8 KiB steps added copies; this is the restore's busiest thread.

use super::*;
use aes::cipher::generic_array::typenum::U16;
use aes::cipher::inout::InOutBuf;
use aes::cipher::{BlockEncrypt, KeyInit};

/// The trailing MDC packet: tag 0xD3, length 0x14, then the SHA-1.
const MDC_LEN: usize = 22;
const BS: usize = 16;
/// Plaintext deciphered per refill.
const PLAIN_BUF: usize = 1 << 17;

enum Aes {
    A128(aes::Aes128Enc),
    A192(aes::Aes192Enc),
    A256(aes::Aes256Enc),
}

impl Aes {
    fn new(alg: SymmetricKeyAlgorithm, key: &[u8]) -> Option<Aes> {
        Some(match alg {
            SymmetricKeyAlgorithm::AES128 => Aes::A128(aes::Aes128Enc::new_from_slice(key).ok()?),
            SymmetricKeyAlgorithm::AES192 => Aes::A192(aes::Aes192Enc::new_from_slice(key).ok()?),
            SymmetricKeyAlgorithm::AES256 => Aes::A256(aes::Aes256Enc::new_from_slice(key).ok()?),
            _ => return None,
        })
    }

    /// `out` = AES(`inp`), block by block; both are whole blocks of the same length.
    fn encrypt(&self, inp: &[u8], out: &mut [u8]) {
        let Ok(io) = InOutBuf::new(inp, out) else {
            return;
        };
        let (blocks, _) = io.into_chunks::<U16>();
        match self {
            Aes::A128(c) => c.encrypt_blocks_inout(blocks),
            Aes::A192(c) => c.encrypt_blocks_inout(blocks),
            Aes::A256(c) => c.encrypt_blocks_inout(blocks),
        }
    }
}

/// The plaintext of a SEIPD v1 body enciphered with AES, read from `src` (the body after its
/// version byte). Bytes come out only once the next 22 have been deciphered (the MDC packet
/// is the body's last 22 bytes, and must not be passed on as data); the last of them only
/// after the MDC matched. Like every reader of [`open_pgp`], the whole is authenticated
/// only when it has returned EOF.
pub(super) struct AesCfbMdc<R> {
    src: R,
    aes: Aes,
    /// The ciphertext block before the next one (CFB's chaining value).
    iv: [u8; BS],
    /// Ciphertext of an incomplete block, waiting for the rest of it.
    carry: [u8; BS],
    carried: usize,
    /// Deciphered bytes: `[pos, ready)` may be read, `[ready, len)` are the held-back tail.
    plain: Box<[u8]>,
    len: usize,
    pos: usize,
    ready: usize,
    /// Bytes of the random prefix (block size + 2) not yet passed over: hashed, not data.
    skip: usize,
    mdc: Sha1,
    done: bool,
    failed: bool,
}

impl<R: BufRead> AesCfbMdc<R> {
    /// The source back for a cipher other than AES (or a key of the wrong length).
    pub(super) fn new(alg: SymmetricKeyAlgorithm, key: &[u8], src: R) -> Result<Self, R> {
        let Some(aes) = Aes::new(alg, key) else {
            return Err(src);
        };
        Ok(AesCfbMdc {
            src,
            aes,
            iv: [0; BS],
            carry: [0; BS],
            carried: 0,
            // Room for a refill's whole blocks past PLAIN_BUF and the held-back tail.
            plain: vec![0; PLAIN_BUF + MDC_LEN + 2 * BS].into_boxed_slice(),
            len: 0,
            pos: 0,
            ready: 0,
            skip: BS + 2,
            mdc: Sha1::new(),
            done: false,
            failed: false,
        })
    }

    /// Take what `src` has ready (at least enough for a byte to come out, at most a
    /// buffer's worth), or find that it ended (then the MDC is checked). Never more than
    /// asked for: a source that fails later fails at a later read, not at this one.
    fn refill(&mut self) -> io::Result<()> {
        // What is left is the held-back tail: it goes to the front.
        self.plain.copy_within(self.ready..self.len, 0);
        self.len -= self.ready;
        self.pos = 0;
        self.ready = 0;
        let mut eof = false;
        while self.len < PLAIN_BUF {
            let chunk = self.src.fill_buf()?;
            if chunk.is_empty() {
                eof = true;
                break;
            }
            let take = chunk.len().min(PLAIN_BUF - self.len);
            let mut ct = &chunk[..take];
            if self.carried > 0 {
                let k = (BS - self.carried).min(ct.len());
                self.carry[self.carried..self.carried + k].copy_from_slice(&ct[..k]);
                self.carried += k;
                ct = &ct[k..];
                if self.carried == BS {
                    let block = self.carry;
                    decipher_into(
                        &self.aes,
                        &mut self.iv,
                        &mut self.plain,
                        &mut self.len,
                        &block,
                    );
                    self.carried = 0;
                }
            }
            let whole = ct.len() - ct.len() % BS;
            let (blocks, rest) = ct.split_at(whole);
            // (`chunk` borrows `src`, so the fields are lent one by one.)
            decipher_into(
                &self.aes,
                &mut self.iv,
                &mut self.plain,
                &mut self.len,
                blocks,
            );
            self.carry[self.carried..self.carried + rest.len()].copy_from_slice(rest);
            self.carried += rest.len();
            self.src.consume(take);
            if self.len > MDC_LEN + self.skip {
                break;
            }
        }
        if eof {
            // The last block may be short: CFB needs only as much keystream as it has.
            if self.carried > 0 {
                let mut ks = [0u8; BS];
                self.aes.encrypt(&self.iv, &mut ks);
                let (n, out) = (self.carried, &mut self.plain[self.len..]);
                for ((p, c), k) in out.iter_mut().zip(&self.carry[..n]).zip(ks) {
                    *p = c ^ k;
                }
                self.len += n;
                self.carried = 0;
            }
            return self.finish();
        }
        let ready = self.len.saturating_sub(MDC_LEN);
        self.mdc.update(&self.plain[..ready]);
        self.ready = ready;
        self.pass_prefix();
        Ok(())
    }

    /// The source ended: the last 22 bytes must be the MDC packet over everything before.
    fn finish(&mut self) -> io::Result<()> {
        // A body too short for prefix and MDC is as damaged as a wrong MDC.
        if self.len < MDC_LEN || self.skip > self.len - MDC_LEN {
            return Err(io::Error::other(pgp::errors::Error::MdcError));
        }
        let end = self.len - MDC_LEN;
        self.mdc.update(&self.plain[..end]);
        let tail = &self.plain[end..self.len];
        self.mdc.update(&tail[..2]);
        let digest = self.mdc.finalize_reset();
        let differs = tail[2..]
            .iter()
            .zip(digest.iter())
            .fold((tail[0] ^ 0xD3) | (tail[1] ^ 0x14), |acc, (a, b)| {
                acc | (a ^ b)
            });
        if differs != 0 {
            return Err(io::Error::other(pgp::errors::Error::MdcError));
        }
        self.ready = end;
        self.done = true;
        self.pass_prefix();
        Ok(())
    }

    fn pass_prefix(&mut self) {
        let k = self.skip.min(self.ready - self.pos);
        self.pos += k;
        self.skip -= k;
    }
}

/// Decipher `ct` (whole blocks) into `plain` at `len`: each block's keystream is the AES of
/// the ciphertext block before it, so all of them go to the cipher in one call.
fn decipher_into(aes: &Aes, iv: &mut [u8; BS], plain: &mut [u8], len: &mut usize, ct: &[u8]) {
    let n = ct.len();
    if n == 0 {
        return;
    }
    let out = &mut plain[*len..*len + n];
    aes.encrypt(&iv[..], &mut out[..BS]);
    aes.encrypt(&ct[..n - BS], &mut out[BS..]);
    for (p, c) in out.iter_mut().zip(ct) {
        *p ^= c;
    }
    iv.copy_from_slice(&ct[n - BS..]);
    *len += n;
}

impl<R: BufRead> BufRead for AesCfbMdc<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.pos == self.ready && !self.done {
            if self.failed {
                return Err(io::Error::other("the decryption failed before"));
            }
            if let Err(e) = self.refill() {
                // Never let a later call read the failure as the end of the data.
                if e.kind() != io::ErrorKind::Interrupted {
                    self.failed = true;
                }
                return Err(e);
            }
        }
        Ok(&self.plain[self.pos..self.ready])
    }

    fn consume(&mut self, amt: usize) {
        self.pos = (self.pos + amt).min(self.ready);
    }
}

impl<R: BufRead> Read for AesCfbMdc<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that hands out its bytes in pieces of changing sizes (partial-length chunks
    /// and short reads put block boundaries anywhere).
    struct Pieces {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
        turn: usize,
    }

    impl Read for Pieces {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.fill_buf()?.len().min(buf.len());
            buf[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.consume(n);
            Ok(n)
        }
    }

    impl BufRead for Pieces {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            let want = self.sizes[self.turn % self.sizes.len()];
            let end = (self.at + want).min(self.data.len());
            Ok(&self.data[self.at..end])
        }
        fn consume(&mut self, amt: usize) {
            self.at += amt;
            self.turn += 1;
        }
    }

    fn pieces(data: &[u8], sizes: &[usize]) -> Pieces {
        Pieces {
            data: data.to_vec(),
            at: 0,
            sizes: sizes.to_vec(),
            turn: 0,
        }
    }

    /// A SEIPD v1 body (after the version byte) as the sealing side writes it.
    fn sealed(alg: SymmetricKeyAlgorithm, key: &[u8], plain: &[u8]) -> Vec<u8> {
        let mut w = CfbMdcWriter::new(Vec::new(), alg, RawSessionKey::from(key.to_vec())).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    fn open_with(
        alg: SymmetricKeyAlgorithm,
        key: &[u8],
        body: &[u8],
        sizes: &[usize],
    ) -> io::Result<Vec<u8>> {
        let mut d = AesCfbMdc::new(alg, key, pieces(body, sizes))
            .unwrap_or_else(|_| panic!("{alg:?} is AES"));
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    const ALGS: [(SymmetricKeyAlgorithm, usize); 3] = [
        (SymmetricKeyAlgorithm::AES128, 16),
        (SymmetricKeyAlgorithm::AES192, 24),
        (SymmetricKeyAlgorithm::AES256, 32),
    ];

    #[test]
    fn deciphers_what_was_sealed_whatever_the_pieces_and_as_rpgp_does() {
        let mut rng = rand::rngs::OsRng;
        let mut lens = vec![
            0,
            1,
            15,
            16,
            17,
            21,
            22,
            23,
            40,
            4095,
            4096,
            65_536,
            3 * PLAIN_BUF + 7,
        ];
        lens.extend(PLAIN_BUF - 40..PLAIN_BUF + 40);
        for (alg, klen) in ALGS {
            let mut key = vec![0u8; klen];
            rng.fill_bytes(&mut key);
            for &n in &lens {
                let mut plain = vec![0u8; n];
                rng.fill_bytes(&mut plain);
                let body = sealed(alg, &key, &plain);
                for sizes in [&[1usize, 7, 16, 33][..], &[4096, 5, 70_000], &[1 << 20]] {
                    let got = open_with(alg, &key, &body, sizes)
                        .unwrap_or_else(|e| panic!("{alg:?} {n} {sizes:?}: {e}"));
                    assert!(got == plain, "{alg:?}, {n} bytes, pieces {sizes:?}");
                }
                let mut theirs = pgp::crypto::sym::StreamDecryptor::new(
                    alg,
                    true,
                    Seipdv1ReadMode::Streaming,
                    &key,
                    &body[..],
                )
                .unwrap();
                let mut want = Vec::new();
                theirs.read_to_end(&mut want).unwrap();
                assert!(want == plain, "rPGP agrees on {alg:?}, {n} bytes");
            }
        }
    }

    #[test]
    fn a_changed_or_missing_byte_is_an_error_and_stays_one() {
        let key = [7u8; 32];
        let alg = SymmetricKeyAlgorithm::AES256;
        let plain: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
        let body = sealed(alg, &key, &plain);
        for at in 0..body.len() {
            let mut bad = body.clone();
            bad[at] ^= 0x01;
            assert!(
                open_with(alg, &key, &bad, &[33]).is_err(),
                "byte {at} flipped"
            );
        }
        for cut in 0..body.len() {
            assert!(
                open_with(alg, &key, &body[..cut], &[33]).is_err(),
                "cut at {cut}"
            );
        }
        // After the error, a reader never reports the end of the data.
        let mut bad = body.clone();
        bad[100] ^= 0x80;
        let mut d =
            AesCfbMdc::new(alg, &key, pieces(&bad, &[1 << 20])).unwrap_or_else(|_| panic!());
        let mut out = Vec::new();
        let e = d.read_to_end(&mut out).unwrap_err();
        assert!(
            e.get_ref().is_some_and(|i| matches!(
                i.downcast_ref::<pgp::errors::Error>(),
                Some(pgp::errors::Error::MdcError)
            )),
            "{e}"
        );
        assert!(d.read(&mut [0u8; 10]).is_err());
        assert!(d.fill_buf().is_err());
    }

    #[test]
    fn other_ciphers_get_their_source_back() {
        let src: &[u8] = b"0123456789";
        let back = AesCfbMdc::new(SymmetricKeyAlgorithm::CAST5, &[0u8; 16], src);
        assert!(matches!(back, Err(s) if s == src));
    }
}
