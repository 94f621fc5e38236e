//! OpenPGP packet framing on the write side: new-format partial-length chunks, old-format
//! headers for small packets, and the CFB + MDC encryption layer (SEIPDv1).

use super::*;

/// Writes one new-format packet with partial body lengths of `chunk` bytes each (RFC 4880
/// §4.2.2.4); a body shorter than one chunk becomes a single definite-length packet (as
/// gpg does for small files such as manifests).
pub(super) struct Framer<W: Write> {
    pub(super) out: W,
    pub(super) tag: u8,
    pub(super) chunk: usize,
    pub(super) buf: Vec<u8>,
    pub(super) started: bool,
}

impl<W: Write> Framer<W> {
    pub(super) fn new(out: W, tag: u8, chunk: usize) -> Self {
        // The first partial chunk must be >= 512 bytes (RFC 4880); lengths are 2^n, n <= 30.
        debug_assert!(chunk.is_power_of_two() && (512..=1 << 30).contains(&chunk));
        Framer {
            out,
            tag,
            chunk,
            buf: Vec::with_capacity(chunk),
            started: false,
        }
    }

    pub(super) fn emit_chunk(
        out: &mut W,
        tag: u8,
        started: &mut bool,
        chunk: usize,
        data: &[u8],
    ) -> io::Result<()> {
        if !*started {
            out.write_all(&[0xC0 | tag])?;
            *started = true;
        }
        out.write_all(&[0xE0 | chunk.trailing_zeros() as u8])?;
        out.write_all(data)
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        if !self.started {
            self.out.write_all(&[0xC0 | self.tag])?;
        }
        write_new_len(&mut self.out, self.buf.len())?;
        self.out.write_all(&self.buf)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Framer<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        let mut data = data;
        if !self.buf.is_empty() {
            let take = (self.chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() < self.chunk {
                return Ok(n);
            }
            Self::emit_chunk(
                &mut self.out,
                self.tag,
                &mut self.started,
                self.chunk,
                &self.buf,
            )?;
            self.buf.clear();
        }
        while data.len() >= self.chunk {
            Self::emit_chunk(
                &mut self.out,
                self.tag,
                &mut self.started,
                self.chunk,
                &data[..self.chunk],
            )?;
            data = &data[self.chunk..];
        }
        self.buf.extend_from_slice(data);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// New-format definite body length (RFC 4880 §4.2.2.1-3).
pub(super) fn write_new_len<W: Write>(w: &mut W, len: usize) -> io::Result<()> {
    if len < 192 {
        w.write_all(&[len as u8])
    } else if len < 8384 {
        let l = len - 192;
        w.write_all(&[((l >> 8) + 192) as u8, (l & 0xFF) as u8])
    } else {
        let l = u32::try_from(len).map_err(|_| io::Error::other("packet too long"))?;
        w.write_all(&[0xFF])?;
        w.write_all(&l.to_be_bytes())
    }
}

/// SEIPD v1 body encryption: OpenPGP CFB (IV = 0, random block-size prefix whose last two
/// bytes are repeated, no resync) over prefix || data || MDC packet (0xD3 0x14 SHA-1).
///
/// rPGP only offers pull-style stream encryption, so this is hand-written on top of its
/// one-shot CFB primitive: CFB is a chain over ciphertext blocks, so encrypting
/// block-aligned pieces one after the other, each with IV = the previous ciphertext block,
/// gives exactly the same bytes as one big call.
pub(super) struct CfbMdcWriter<W: Write> {
    pub(super) out: W,
    pub(super) cipher: CfbCipher,
    pub(super) iv: Vec<u8>,
    pub(super) buf: Vec<u8>,
    pub(super) mdc: Sha1,
}

/// The cipher under [`CfbMdcWriter`]: rPGP's (AES-NI on x86_64), or under WASI with SIMD (as
/// built here), for AES-256, the one-block-at-a-time vector-permute AES of `vpaes` (see there
/// why).
pub(super) enum CfbCipher {
    Rpgp {
        alg: SymmetricKeyAlgorithm,
        key: RawSessionKey,
    },
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Vperm(Box<crate::seal::vpaes::Aes256>),
}

impl CfbCipher {
    pub(super) fn new(alg: SymmetricKeyAlgorithm, key: RawSessionKey) -> CfbCipher {
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if alg == SymmetricKeyAlgorithm::AES256 {
            if let Ok(k) = <&[u8; 32]>::try_from(key.as_ref()) {
                return CfbCipher::Vperm(Box::new(crate::seal::vpaes::Aes256::new(k)));
            }
        }
        CfbCipher::Rpgp { alg, key }
    }

    /// CFB-encrypt `data` in place from `iv` (no resync).
    pub(super) fn encrypt(&self, iv: &[u8], data: &mut [u8]) -> io::Result<()> {
        match self {
            CfbCipher::Rpgp { alg, key } => alg
                .encrypt_with_iv_regular(key.as_ref(), iv, data)
                .map_err(|e| io::Error::other(format!("encryption failed: {e}"))),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            CfbCipher::Vperm(k) => {
                let iv = <&[u8; 16]>::try_from(iv)
                    .map_err(|_| io::Error::other("AES-256 CFB needs a 16-byte IV"))?;
                k.cfb_encrypt(iv, data);
                Ok(())
            }
        }
    }
}

impl<W: Write> CfbMdcWriter<W> {
    pub(super) fn new(out: W, alg: SymmetricKeyAlgorithm, key: RawSessionKey) -> io::Result<Self> {
        let bs = alg.block_size();
        let mut prefix = vec![0u8; bs + 2];
        OsRng.fill_bytes(&mut prefix[..bs]);
        prefix[bs] = prefix[bs - 2];
        prefix[bs + 1] = prefix[bs - 1];
        let mut mdc = Sha1::new();
        mdc.update(&prefix);
        let mut buf = Vec::with_capacity(CFB_BUF + 64);
        buf.extend_from_slice(&prefix);
        Ok(CfbMdcWriter {
            out,
            cipher: CfbCipher::new(alg, key),
            iv: vec![0u8; bs],
            buf,
            mdc,
        })
    }

    /// Encrypt and write the block-aligned part of `buf` (all of it when `last`).
    pub(super) fn flush_blocks(&mut self, last: bool) -> io::Result<()> {
        let bs = self.iv.len();
        let n = if last {
            self.buf.len()
        } else {
            self.buf.len() - self.buf.len() % bs
        };
        if n == 0 {
            return Ok(());
        }
        self.cipher.encrypt(&self.iv, &mut self.buf[..n])?;
        if !last {
            self.iv.copy_from_slice(&self.buf[n - bs..n]);
        }
        self.out.write_all(&self.buf[..n])?;
        self.buf.drain(..n);
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<W> {
        self.mdc.update([0xD3, 0x14]);
        let digest = self.mdc.finalize_reset();
        self.buf.extend_from_slice(&[0xD3, 0x14]);
        self.buf.extend_from_slice(&digest);
        self.flush_blocks(true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for CfbMdcWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.mdc.update(data);
        let mut rest = data;
        while !rest.is_empty() {
            let take = (CFB_BUF - self.buf.len().min(CFB_BUF))
                .min(rest.len())
                .max(1);
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() >= CFB_BUF {
                self.flush_blocks(false)?;
            }
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// --- S2K for sealing: one salt and one derivation per process and passphrase ----------

/// Write `packet` with an old-format header, as gpg writes one-pass signature and signature
/// packets (ctb 0x90 / 0x88 / 0x89).
pub(super) fn write_old_packet<W: Write, P: Serialize>(
    w: &mut W,
    tag: Tag,
    packet: &P,
) -> io::Result<()> {
    let mut body = Vec::with_capacity(packet.write_len());
    packet
        .to_writer(&mut body)
        .map_err(|e| io::Error::other(format!("serializing a {tag:?} packet: {e}")))?;
    let ctb = 0x80 | (u8::from(tag) << 2);
    match body.len() {
        n if n < 0x100 => w.write_all(&[ctb, n as u8])?,
        n if n < 0x1_0000 => w.write_all(&[ctb | 1, (n >> 8) as u8, n as u8])?,
        n => {
            w.write_all(&[ctb | 2])?;
            w.write_all(&(n as u32).to_be_bytes())?;
        }
    }
    w.write_all(&body)
}
