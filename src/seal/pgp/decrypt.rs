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
use std::sync::Arc;

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
    /// Shared with the MDC's thread while it hashes them.
    plain: Arc<[u8]>,
    /// Buffers to decipher into once the MDC's thread is done with them.
    spare: Vec<Arc<[u8]>>,
    len: usize,
    pos: usize,
    ready: usize,
    /// Bytes of the random prefix (block size + 2) not yet passed over: hashed, not data.
    skip: usize,
    mdc: Mdc,
    done: bool,
    failed: bool,
}

/// A caller's word that a message's ciphertext was checked, before any of it was
/// deciphered, against a hash that is itself authenticated (a volume against the SHA-1 its
/// manifest gives; the manifest was opened with its MDC checked), and a check, made when
/// the message ends, that the bytes deciphered are still the bytes checked. With both, the
/// MDC (SHA-1 over the plaintext) proves nothing more: its hash is not computed, though its
/// packet must still close the message. In a restore of a big file that hash was a third
/// of the CPU.
pub struct Vouch(Box<dyn FnOnce() -> io::Result<()> + Send>);

impl Vouch {
    /// `still_checked` runs once, at the message's end; its error fails the message as a
    /// wrong MDC would (an `io::Error` carrying a [`CryptoError`] is passed on as it is).
    pub fn new(still_checked: impl FnOnce() -> io::Result<()> + Send + 'static) -> Vouch {
        Vouch(Box::new(still_checked))
    }
}

/// Hashed here until this much of a message has passed; the rest on a thread of its own.
const MDC_AWAY_AFTER: u64 = 1 << 20;
/// Pieces handed to the MDC's thread and not hashed yet.
const MDC_QUEUE: usize = 4;

/// Where the MDC's SHA-1 is computed: here for small messages, and where there are threads,
/// from the first MiB on, on a thread of its own beside the deciphering. In a restore of a
/// big file the deciphering thread was the busiest, and 40% of its CPU was this SHA-1.
enum Mdc {
    Here(Sha1, u64),
    Away {
        tx: std::sync::mpsc::SyncSender<(Arc<[u8]>, usize, usize)>,
        hasher: std::thread::JoinHandle<Sha1>,
    },
    Taken,
    /// Not hashed: the caller vouches for the ciphertext (taken when the message ends).
    Vouched(Option<Vouch>),
}

impl Mdc {
    fn update(&mut self, buf: &Arc<[u8]>, start: usize, end: usize) -> io::Result<()> {
        if start >= end {
            return Ok(());
        }
        match self {
            Mdc::Here(h, n) => {
                h.update(&buf[start..end]);
                *n += (end - start) as u64;
                if *n >= MDC_AWAY_AFTER && !cfg!(target_os = "wasi") {
                    self.send_away();
                }
                Ok(())
            }
            Mdc::Away { tx, .. } => tx
                .send((buf.clone(), start, end))
                .map_err(|_| io::Error::other("the MDC's thread stopped")),
            Mdc::Taken => Err(io::Error::other("the MDC was already computed")),
            Mdc::Vouched(_) => Ok(()),
        }
    }

    /// Go on hashing on a thread (staying here if none can be started).
    fn send_away(&mut self) {
        let Mdc::Here(h, _) = self else {
            return;
        };
        let mut h = h.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Arc<[u8]>, usize, usize)>(MDC_QUEUE);
        let started = std::thread::Builder::new()
            .name("mdc".into())
            .spawn(move || {
                for (buf, start, end) in rx {
                    h.update(&buf[start..end]);
                }
                h
            });
        if let Ok(hasher) = started {
            *self = Mdc::Away { tx, hasher };
        }
    }

    fn finalize(&mut self) -> io::Result<[u8; 20]> {
        let h = match std::mem::replace(self, Mdc::Taken) {
            Mdc::Here(h, _) => h,
            Mdc::Away { tx, hasher } => {
                // The channel closed, the thread hashes what is queued and gives the state back.
                drop(tx);
                hasher
                    .join()
                    .map_err(|_| io::Error::other("the MDC's thread stopped"))?
            }
            Mdc::Taken | Mdc::Vouched(_) => {
                return Err(io::Error::other("the MDC was already computed"))
            }
        };
        Ok(h.finalize().into())
    }
}

impl<R: BufRead> AesCfbMdc<R> {
    /// The source back for a cipher other than AES (or a key of the wrong length).
    /// With `vouch`, the MDC's hash is not computed (see [`Vouch`]).
    pub(super) fn new(
        alg: SymmetricKeyAlgorithm,
        key: &[u8],
        src: R,
        vouch: Option<Vouch>,
    ) -> Result<Self, R> {
        let Some(aes) = Aes::new(alg, key) else {
            return Err(src);
        };
        Ok(AesCfbMdc {
            src,
            aes,
            iv: [0; BS],
            carry: [0; BS],
            carried: 0,
            plain: new_buffer(),
            spare: Vec::new(),
            len: 0,
            pos: 0,
            ready: 0,
            skip: BS + 2,
            mdc: match vouch {
                Some(v) => Mdc::Vouched(Some(v)),
                None => Mdc::Here(Sha1::new(), 0),
            },
            done: false,
            failed: false,
        })
    }

    /// Take what `src` has ready (at least enough for a byte to come out, at most a
    /// buffer's worth), or find that it ended (then the MDC is checked). Never more than
    /// asked for: a source that fails later fails at a later read, not at this one.
    fn refill(&mut self) -> io::Result<()> {
        // What is left is the held-back tail: it goes to the front of this buffer, or of
        // another one while the MDC's thread still reads this one.
        if let Some(p) = Arc::get_mut(&mut self.plain) {
            p.copy_within(self.ready..self.len, 0);
        } else {
            let mut next = match self.spare.iter().position(|b| Arc::strong_count(b) == 1) {
                Some(i) => self.spare.swap_remove(i),
                None => new_buffer(),
            };
            if let Some(p) = Arc::get_mut(&mut next) {
                p[..self.len - self.ready].copy_from_slice(&self.plain[self.ready..self.len]);
            }
            let old = std::mem::replace(&mut self.plain, next);
            if self.spare.len() < MDC_QUEUE + 2 {
                self.spare.push(old);
            }
        }
        let Some(plain) = Arc::get_mut(&mut self.plain) else {
            return Err(io::Error::other("no buffer to decipher into"));
        };
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
                    decipher_into(&self.aes, &mut self.iv, plain, &mut self.len, &block);
                    self.carried = 0;
                }
            }
            let whole = ct.len() - ct.len() % BS;
            let (blocks, rest) = ct.split_at(whole);
            // (`chunk` borrows `src`, so the fields are lent one by one.)
            decipher_into(&self.aes, &mut self.iv, plain, &mut self.len, blocks);
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
                let (n, out) = (self.carried, &mut plain[self.len..]);
                for ((p, c), k) in out.iter_mut().zip(&self.carry[..n]).zip(ks) {
                    *p = c ^ k;
                }
                self.len += n;
                self.carried = 0;
            }
            return self.finish();
        }
        let ready = self.len.saturating_sub(MDC_LEN);
        self.mdc.update(&self.plain, 0, ready)?;
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
        let differs = if let Mdc::Vouched(vouch) = &mut self.mdc {
            let Some(vouch) = vouch.take() else {
                return Err(io::Error::other("the MDC was already computed"));
            };
            (vouch.0)()?;
            (self.plain[end] ^ 0xD3) | (self.plain[end + 1] ^ 0x14)
        } else {
            // Everything before the MDC's hash, its packet's two header bytes included.
            self.mdc.update(&self.plain, 0, end + 2)?;
            let digest = self.mdc.finalize()?;
            let tail = &self.plain[end..self.len];
            tail[2..]
                .iter()
                .zip(digest.iter())
                .fold((tail[0] ^ 0xD3) | (tail[1] ^ 0x14), |acc, (a, b)| {
                    acc | (a ^ b)
                })
        };
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

/// Room for a refill's whole blocks past PLAIN_BUF and the held-back tail.
fn new_buffer() -> Arc<[u8]> {
    Arc::from(vec![0u8; PLAIN_BUF + MDC_LEN + 2 * BS])
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
pub(super) mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A source that hands out its bytes in pieces of changing sizes (partial-length chunks
    /// and short reads put block boundaries anywhere). Also `body`'s tests' source.
    pub(in crate::seal::pgp) struct Pieces {
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

    pub(in crate::seal::pgp) fn pieces(data: &[u8], sizes: &[usize]) -> Pieces {
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
        let mut d = AesCfbMdc::new(alg, key, pieces(body, sizes), None)
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
            AesCfbMdc::new(alg, &key, pieces(&bad, &[1 << 20]), None).unwrap_or_else(|_| panic!());
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
    fn a_big_message_is_hashed_on_a_thread_with_the_same_verdicts() {
        let key = [9u8; 32];
        let alg = SymmetricKeyAlgorithm::AES256;
        let mut plain = vec![0u8; 3 * MDC_AWAY_AFTER as usize + 12_345];
        rand::rngs::OsRng.fill_bytes(&mut plain);
        let body = sealed(alg, &key, &plain);
        let mut d = AesCfbMdc::new(alg, &key, pieces(&body, &[65_536, 1000]), None)
            .unwrap_or_else(|_| panic!());
        let mut got = Vec::new();
        d.read_to_end(&mut got).unwrap();
        assert!(got == plain);
        assert!(matches!(d.mdc, Mdc::Taken), "the MDC was computed");
        // Hashed on its thread from the first MiB on (not on WASI, which has none).
        if !cfg!(target_os = "wasi") {
            let mut d = AesCfbMdc::new(alg, &key, pieces(&body, &[65_536]), None)
                .unwrap_or_else(|_| panic!());
            let mut some = vec![0u8; 2 * MDC_AWAY_AFTER as usize];
            d.read_exact(&mut some).unwrap();
            assert!(matches!(d.mdc, Mdc::Away { .. }));
        }
        for at in [
            100,
            MDC_AWAY_AFTER as usize + 5,
            body.len() - 30,
            body.len() - 1,
        ] {
            let mut bad = body.clone();
            bad[at] ^= 0x10;
            assert!(
                open_with(alg, &key, &bad, &[65_536]).is_err(),
                "byte {at} changed"
            );
        }
        assert!(open_with(alg, &key, &body[..body.len() - 1], &[65_536]).is_err());
    }

    /// Open `body` vouched for; `intact` is what the vouch says at the end. Returns the
    /// plaintext read before the verdict and the verdict.
    fn open_vouched(body: &[u8], intact: bool) -> (Vec<u8>, io::Result<()>, Arc<AtomicBool>) {
        let asked = Arc::new(AtomicBool::new(false));
        let asked2 = asked.clone();
        let vouch = Vouch::new(move || {
            asked2.store(true, Ordering::SeqCst);
            match intact {
                true => Ok(()),
                false => Err(io::Error::other(CryptoError::Integrity("changed".into()))),
            }
        });
        let (alg, key) = (SymmetricKeyAlgorithm::AES256, [5u8; 32]);
        let mut d = AesCfbMdc::new(alg, &key, pieces(body, &[4096]), Some(vouch))
            .unwrap_or_else(|_| panic!());
        let mut out = Vec::new();
        let verdict = d.read_to_end(&mut out).map(|_| ());
        if verdict.is_err() {
            // A failed message never turns into an end of data later.
            assert!(d.read(&mut [0u8; 10]).is_err());
        }
        (out, verdict, asked)
    }

    #[test]
    fn a_vouched_message_ends_on_the_vouch_without_hashing_the_mdc() {
        let (alg, key) = (SymmetricKeyAlgorithm::AES256, [5u8; 32]);
        let mut plain = vec![0u8; 2 * MDC_AWAY_AFTER as usize + 99];
        rand::rngs::OsRng.fill_bytes(&mut plain);
        let body = sealed(alg, &key, &plain);
        let (got, verdict, asked) = open_vouched(&body, true);
        assert!(verdict.is_ok() && got == plain);
        assert!(
            asked.load(Ordering::SeqCst),
            "the vouch was asked at the end"
        );
        // The vouch, not the MDC's hash, decides: a message whose MDC hash is wrong (which
        // its checked ciphertext could only be if its writer made it so) still opens...
        let mut wrong_hash = body.clone();
        let n = wrong_hash.len();
        wrong_hash[n - 1] ^= 0x01;
        assert!(open_vouched(&wrong_hash, true).1.is_ok());
        // ...but its MDC packet must still close it, and a vouch that no longer holds
        // fails it as a wrong MDC would, with the vouch's own error.
        let mut wrong_tag = body.clone();
        wrong_tag[n - 22] ^= 0x01;
        assert!(open_vouched(&wrong_tag, true).1.is_err());
        assert!(open_vouched(&body[..n - 1], true).1.is_err());
        let (_, verdict, _) = open_vouched(&body, false);
        let e = verdict.unwrap_err();
        assert!(
            e.get_ref()
                .and_then(|i| i.downcast_ref::<CryptoError>())
                .is_some_and(|c| matches!(c, CryptoError::Integrity(m) if m == "changed")),
            "{e}"
        );
    }

    #[test]
    fn other_ciphers_get_their_source_back() {
        let src: &[u8] = b"0123456789";
        let back = AesCfbMdc::new(SymmetricKeyAlgorithm::CAST5, &[0u8; 16], src, None);
        assert!(matches!(back, Err(s) if s == src));
    }
}
