//! The sealing pipeline (push-style, `Write`): plaintext -> literal packet -> optional
//! compression -> encryption (SEIPDv1 with MDC) -> partial-length framing, as gpg writes it
//! for duplicity; the deflate pool compresses in parallel where there are threads.

use super::*;
use crate::count::Counting;

/// Push-style sealing writer; `finish()` writes trailers and returns the inner writer.
///
/// Dropping a `Sealer` without calling [`Sealer::finish`] leaves an incomplete (invalid)
/// file behind.
pub struct Sealer<W: Write> {
    pub(super) inner: SealInner<W>,
}

pub(super) enum SealInner<W: Write> {
    Plain(Counting<W>),
    Gzip(Box<Deflater<Counting<W>>>),
    Pgp(Box<PgpPipe<Counting<W>>>),
    Finished,
}

impl<W: Write> Sealer<W> {
    pub fn new(out: W, mode: &SealMode) -> Result<Self, CryptoError> {
        match mode {
            SealMode::Signed { inner, key } => Self::build(out, inner, Some(key.clone())),
            _ => Self::build(out, mode, None),
        }
    }

    pub(super) fn build(
        out: W,
        mode: &SealMode,
        signer: Option<Arc<SignKey>>,
    ) -> Result<Self, CryptoError> {
        let out = Counting::new(out);
        if signer.is_some()
            && !matches!(
                mode,
                SealMode::Symmetric { .. } | SealMode::PublicKey { .. }
            )
        {
            // gzip has no place for a signature (stock cannot sign --no-encryption either).
            return Err(CryptoError::Key(
                "signing needs OpenPGP encryption (symmetric or public key)".into(),
            ));
        }
        let inner = match mode {
            SealMode::Plain => SealInner::Plain(out),
            SealMode::Gzip { level } => {
                SealInner::Gzip(Box::new(Deflater::new(out, *level, Wrap::Gzip)?))
            }
            SealMode::Signed { .. } => {
                return Err(CryptoError::Key("nested signing modes".into()));
            }
            SealMode::Symmetric { passphrase, level } => {
                let mut out = out;
                let (s2k, key) = seal_s2k(passphrase)?;
                // SKESK v4 without an encrypted session key: the S2K output *is* the
                // session key, exactly as gpg --symmetric does. Old-format header like gpg.
                let mut body = vec![4u8, u8::from(SEAL_CIPHER)];
                body.extend_from_slice(&s2k);
                out.write_all(&[0x8C, body.len() as u8])?;
                out.write_all(&body)?;
                SealInner::Pgp(Box::new(PgpPipe::new(
                    out,
                    key,
                    *level,
                    CompressionKind::Zip,
                    signer,
                )?))
            }
            SealMode::PublicKey {
                recipients,
                hidden,
                level,
            } => {
                if recipients.is_empty() && hidden.is_empty() {
                    return Err(CryptoError::Key("no recipients given".into()));
                }
                let mut out = out;
                let mut sk = vec![0u8; SEAL_CIPHER.key_size()];
                OsRng.fill_bytes(&mut sk);
                let session_key = RawSessionKey::from(sk);
                for (key, anonymous) in recipients
                    .iter()
                    .map(|k| (k, false))
                    .chain(hidden.iter().map(|k| (k, true)))
                {
                    let mut pkesk = match encryption_target(key)? {
                        EncTarget::Primary(k) => PublicKeyEncryptedSessionKey::from_session_key_v3(
                            OsRng,
                            &session_key,
                            SEAL_CIPHER,
                            &k.primary_key,
                        ),
                        EncTarget::Sub(k) => PublicKeyEncryptedSessionKey::from_session_key_v3(
                            OsRng,
                            &session_key,
                            SEAL_CIPHER,
                            k,
                        ),
                    }
                    .map_err(|e| CryptoError::Key(format!("encrypting the session key: {e}")))?;
                    if anonymous {
                        if let PublicKeyEncryptedSessionKey::V3 { id, .. } = &mut pkesk {
                            *id = KeyId::WILDCARD;
                        }
                    }
                    pkesk
                        .to_writer_with_header(&mut out)
                        .map_err(|e| CryptoError::Io(io::Error::other(e.to_string())))?;
                }
                SealInner::Pgp(Box::new(PgpPipe::new(
                    out,
                    session_key,
                    *level,
                    CompressionKind::Zlib,
                    signer,
                )?))
            }
        };
        Ok(Sealer { inner })
    }

    /// Bytes handed to the inner writer so far (the sealed size, minus what is still
    /// buffered). Useful for duplicity's volume-size logic.
    pub fn bytes_written(&self) -> u64 {
        match &self.inner {
            SealInner::Plain(c) => c.n,
            SealInner::Gzip(g) => g.out.n,
            SealInner::Pgp(p) => p.counting().n,
            SealInner::Finished => 0,
        }
    }

    /// Plaintext accepted but not yet in `bytes_written` (the compressor's chunks).
    pub fn pending(&self) -> u64 {
        match &self.inner {
            SealInner::Gzip(g) => g.pending(),
            SealInner::Pgp(p) => match &p.lit.out {
                Mid::Deflate(z) => z.pending(),
                Mid::Raw(_) => 0,
            },
            SealInner::Plain(_) | SealInner::Finished => 0,
        }
    }

    /// Compress everything accepted so far, so that `bytes_written` is up to date (the
    /// stream stays open).
    pub fn settle(&mut self) -> io::Result<()> {
        match &mut self.inner {
            SealInner::Gzip(g) => g.settle(),
            SealInner::Pgp(p) => match &mut p.lit.out {
                Mid::Deflate(z) => z.settle(),
                Mid::Raw(_) => Ok(()),
            },
            SealInner::Plain(_) | SealInner::Finished => Ok(()),
        }
    }

    pub fn finish(mut self) -> Result<W, CryptoError> {
        match std::mem::replace(&mut self.inner, SealInner::Finished) {
            SealInner::Plain(mut c) => {
                c.flush()?;
                Ok(c.inner)
            }
            SealInner::Gzip(g) => {
                let mut c = g.finish()?;
                c.flush()?;
                Ok(c.inner)
            }
            SealInner::Pgp(p) => {
                let mut c = p.finish()?;
                c.flush()?;
                Ok(c.inner)
            }
            SealInner::Finished => {
                Err(CryptoError::Io(io::Error::other("sealer already finished")))
            }
        }
    }
}

impl<W: Write> Write for Sealer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            SealInner::Plain(c) => c.write(buf),
            SealInner::Gzip(g) => g.write(buf),
            SealInner::Pgp(p) => p.write_literal(buf),
            SealInner::Finished => Err(io::Error::other("sealer already finished")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        // Flushing only pushes out what is complete; it never ends a packet or a deflate
        // stream (that is finish()'s job).
        match &mut self.inner {
            SealInner::Plain(c) => c.flush(),
            SealInner::Gzip(g) => g.out.flush(),
            SealInner::Pgp(p) => p.counting_mut().flush(),
            SealInner::Finished => Ok(()),
        }
    }
}

pub(super) fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

#[derive(Clone, Copy)]
pub(super) enum CompressionKind {
    Zip,
    Zlib,
}

/// literal framer -> [deflate/zlib] -> CFB+MDC encryptor -> SEIPD framer -> out; with a
/// signer, the literal data is also hashed on its way in, and the one-pass signature and
/// signature packets go around the literal packet (inside the compression, as gpg does).
pub(super) struct PgpPipe<W: Write> {
    pub(super) lit: Framer<Mid<W>>,
    pub(super) sig: Option<(Arc<SignKey>, SignatureHasher)>,
}

#[allow(clippy::large_enum_variant)] // lives inside a Box<PgpPipe>
pub(super) enum Mid<W: Write> {
    Raw(CfbMdcWriter<Framer<W>>),
    Deflate(Box<Deflater<CfbMdcWriter<Framer<W>>>>),
}

impl<W: Write> PgpPipe<W> {
    pub(super) fn new(
        out: W,
        session_key: RawSessionKey,
        level: u32,
        kind: CompressionKind,
        signer: Option<Arc<SignKey>>,
    ) -> Result<Self, CryptoError> {
        let mut seipd = Framer::new(out, 18, PARTIAL_CHUNK);
        seipd.write_all(&[1])?; // SEIPD version 1 (plaintext, before the CFB data)
        let mut enc = CfbMdcWriter::new(seipd, SEAL_CIPHER, session_key)?;
        let mid = if level == 0 {
            // gpg -z 0 / --compress-algo none: no compressed packet at all.
            Mid::Raw(enc)
        } else {
            // Old-format header, indeterminate length (ctb 0xA3), as gpg writes it: the
            // compressed packet runs to the end of the encrypted data.
            match kind {
                CompressionKind::Zip => {
                    enc.write_all(&[0xA3, 1])?;
                    Mid::Deflate(Box::new(Deflater::new(enc, level, Wrap::Raw)?))
                }
                CompressionKind::Zlib => {
                    enc.write_all(&[0xA3, 2])?;
                    Mid::Deflate(Box::new(Deflater::new(enc, level, Wrap::Zlib)?))
                }
            }
        };
        let mut mid = mid;
        let sig = match signer {
            Some(key) => {
                let ops = OnePassSignature::v3(
                    SignatureType::Binary,
                    key.hash,
                    key.part.algorithm(),
                    key.part.legacy_key_id(),
                );
                write_old_packet(&mut mid, Tag::OnePassSignature, &ops)?;
                let hasher = key.config()?.into_hasher().map_err(|e| {
                    CryptoError::Unsupported(format!("signature hash {:?}: {e}", key.hash))
                })?;
                Some((key, hasher))
            }
            None => None,
        };
        let mut lit = Framer::new(mid, 11, PARTIAL_CHUNK);
        // Literal header: binary, empty file name, date = now. A binary signature covers
        // only the literal's content, not this header.
        lit.write_all(&[b'b', 0])?;
        lit.write_all(&now_secs().to_be_bytes())?;
        Ok(PgpPipe { lit, sig })
    }

    /// Literal data: into the literal packet, and into the signature hash.
    pub(super) fn write_literal(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.lit.write(buf)?;
        if let Some((_, hasher)) = &mut self.sig {
            hasher.write_all(&buf[..n])?;
        }
        Ok(n)
    }

    pub(super) fn enc(&self) -> &CfbMdcWriter<Framer<W>> {
        match &self.lit.out {
            Mid::Raw(e) => e,
            Mid::Deflate(z) => &z.out,
        }
    }

    pub(super) fn counting(&self) -> &W {
        &self.enc().out.out
    }

    pub(super) fn counting_mut(&mut self) -> &mut W {
        match &mut self.lit.out {
            Mid::Raw(e) => &mut e.out.out,
            Mid::Deflate(z) => &mut z.out.out.out,
        }
    }

    pub(super) fn finish(self) -> io::Result<W> {
        let mut mid = self.lit.finish()?;
        if let Some((key, hasher)) = self.sig {
            let sig = key.part.sign_hashed(hasher)?;
            write_old_packet(&mut mid, Tag::Signature, &sig)?;
        }
        let enc = match mid {
            Mid::Raw(e) => e,
            Mid::Deflate(z) => z.finish()?,
        };
        let seipd = enc.finish()?;
        seipd.finish()
    }
}

impl<W: Write> Write for Mid<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Mid::Raw(e) => e.write(buf),
            Mid::Deflate(z) => z.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
