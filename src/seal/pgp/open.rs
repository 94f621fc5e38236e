//! Opening stored files (pull-style, `Read`): gzip, and OpenPGP through the message
//! reader with the session key the search found; recipients of a message; the error
//! classification a user sees; `drain_to_end`, without which integrity is not proven.

use super::*;

/// Things the caller should log about an opened message (none of them stops opening).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Legacy "Symmetrically Encrypted Data" packet (tag 9, written by old gpg without
    /// `--force-mdc`): there is no integrity protection, modifications go undetected.
    NoIntegrityProtection,
    /// GnuPG's non-standard "OCB Encrypted Data" packet (tag 20, GnuPG >= 2.3).
    GnupgAead,
    /// The message is signed; signatures are not verified here. Holds the issuer key ids
    /// found in one-pass signature packets.
    SignedNotVerified(Vec<String>),
    /// The file is an OpenPGP message that is not encrypted (opened only when the caller
    /// requires a signature, which then vouches for it).
    NotEncrypted,
    /// A session-key packet could not be parsed and was skipped.
    SkippedSessionKeyPacket(String),
    /// The message uses a cipher considered weak today (e.g. CAST5, 3DES, IDEA, Blowfish).
    LegacyCipher(String),
}

impl fmt::Display for Opened {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Opened::NoIntegrityProtection => f.write_str(
                "message is encrypted without integrity protection (no MDC); modifications cannot be detected",
            ),
            Opened::GnupgAead => f.write_str("message uses GnuPG's non-standard OCB encryption packet"),
            Opened::SignedNotVerified(ids) => {
                write!(f, "message is signed (issuer key ids: {}); signature not verified", ids.join(", "))
            }
            Opened::NotEncrypted => f.write_str("message is not encrypted"),
            Opened::SkippedSessionKeyPacket(m) => write!(f, "skipped a session key packet: {m}"),
            Opened::LegacyCipher(c) => write!(f, "message uses legacy cipher {c}"),
        }
    }
}

/// Pull-style opener for a plain RFC 1952 gzip file (`.gz`).
pub fn open_gzip<R: Read>(r: R) -> impl Read {
    flate2::read::MultiGzDecoder::new(r)
}

/// Pull-style opener for an OpenPGP file (`.gpg`), binary or ASCII-armored.
///
/// Returns the plaintext reader and warnings to log ([`Opened`] rendered as text; see
/// [`open_pgp_detailed`]). The session key is found and checked before this returns:
/// wrong passphrase => `WrongPassphrase`, no usable secret key => `NoMatchingKey`.
/// Read the returned reader to `Ok(0)`; only then has the MDC been verified (see the
/// module docs). Errors from `read()` are `io::Error`s that convert back into
/// [`CryptoError`] with `CryptoError::from`.
pub fn open_pgp<'a, R: Read + 'a>(
    r: R,
    keys: &OpenKeys,
) -> Result<(Box<dyn Read + 'a>, Vec<String>), CryptoError> {
    let (reader, warnings) = open_pgp_detailed(r, keys)?;
    Ok((reader, warnings.iter().map(|w| w.to_string()).collect()))
}

/// The key ids a message sealed with `mode` addresses in its PKESK packets, as upper-case
/// hex (`0000000000000000` for each hidden recipient), sorted; empty when it has none
/// (symmetric, gzip). Compared with [`message_recipient_ids`] of a chain's newest manifest,
/// it tells a public-key backup without the secret key whether it extends the chain with
/// the keys the chain was made for.
pub fn seal_recipient_ids(mode: &SealMode) -> Result<Vec<String>, CryptoError> {
    let mode = match mode {
        SealMode::Signed { inner, .. } => inner.as_ref(),
        m => m,
    };
    let SealMode::PublicKey {
        recipients, hidden, ..
    } = mode
    else {
        return Ok(Vec::new());
    };
    let mut ids = Vec::new();
    for k in recipients {
        let id = match encryption_target(k)? {
            EncTarget::Primary(k) => k.primary_key.legacy_key_id(),
            EncTarget::Sub(k) => k.key.legacy_key_id(),
        };
        ids.push(hex_upper(id.as_ref()));
    }
    ids.extend(hidden.iter().map(|_| hex_upper(KeyId::WILDCARD.as_ref())));
    ids.sort();
    Ok(ids)
}

/// The key ids of the PKESK packets an OpenPGP message starts with, as in
/// [`seal_recipient_ids`]. Reads only up to the encrypted data packet.
pub fn message_recipient_ids<R: Read>(r: R) -> Result<Vec<String>, CryptoError> {
    let src_failed = Rc::new(Cell::new(false));
    let tracked = Tracked {
        inner: r,
        failed: src_failed.clone(),
    };
    let mut br = BufReader::with_capacity(SRC_BUF, tracked);
    let first = br.fill_buf().map_err(CryptoError::Io)?.first().copied();
    let mut src: Src<'_> = match first {
        Some(b) if b & 0x80 != 0 => Box::new(br),
        Some(b) if b == b'-' || b.is_ascii_whitespace() => {
            Box::new(BufReader::with_capacity(SRC_BUF, Dearmor::new(br)))
        }
        _ => return Err(integrity("not an OpenPGP message")),
    };
    let fail = |e: io::Error| classify(e, &src_failed);
    let mut ids = Vec::new();
    loop {
        if src.fill_buf().map_err(fail)?.is_empty() {
            return Err(integrity("no encrypted data packet found (truncated?)"));
        }
        let header = PacketHeader::try_from_reader(&mut src).map_err(fail)?;
        match header.tag() {
            Tag::PublicKeyEncryptedSessionKey => {
                let body = read_small_body(header, &mut src).map_err(fail)?;
                if let Ok(p) = PublicKeyEncryptedSessionKey::try_from_reader(header, &body[..]) {
                    if let Ok(id) = p.id() {
                        ids.push(hex_upper(id.as_ref()));
                    }
                }
            }
            Tag::SymKeyEncryptedSessionKey | Tag::Marker | Tag::Padding => {
                read_small_body(header, &mut src).map_err(fail)?;
            }
            _ => break,
        }
    }
    ids.sort();
    Ok(ids)
}

/// Read `r` to EOF, discarding the data: verifies the MDC of a reader returned by
/// [`open_pgp`] after the caller has read what it needed.
pub fn drain_to_end<R: Read + ?Sized>(r: &mut R) -> Result<u64, CryptoError> {
    io::copy(r, &mut io::sink()).map_err(CryptoError::from)
}

/// Like [`open_pgp`], with structured warnings.
pub fn open_pgp_detailed<'a, R: Read + 'a>(
    r: R,
    keys: &OpenKeys,
) -> Result<(Box<dyn Read + 'a>, Vec<Opened>), CryptoError> {
    open_pgp_vouched(r, keys, None)
}

/// Like [`open_pgp_detailed`]; with `vouch` the caller has checked the ciphertext (see
/// [`Vouch`]), and the MDC of an AES message is not hashed.
pub fn open_pgp_vouched<'a, R: Read + 'a>(
    r: R,
    keys: &OpenKeys,
    vouch: Option<Vouch>,
) -> Result<(Box<dyn Read + 'a>, Vec<Opened>), CryptoError> {
    let (mut src, src_failed) = source(r)?;
    let mut warnings = Vec::new();
    let (top, first) = match session_key_packets(&mut src, &src_failed, &mut warnings)? {
        Esks::Encrypted {
            skesks,
            pkesks,
            data,
        } => {
            let sk_search = SessionKeySearch {
                skesks: &skesks,
                pkesks: &pkesks,
                keys,
            };
            let top = decryptor(data, src, &src_failed, &sk_search, &mut warnings, vouch)?;
            (top, None)
        }
        Esks::Plain(header) => {
            // Neither duplicity nor swiftdup writes an unencrypted `.gpg` file, and one
            // opened here would be authenticated by nothing: anyone who can write to the
            // container could substitute content, and a damaged session-key packet's
            // length can land this parser on ciphertext that happens to read as a
            // literal packet. Only a signature the caller verifies vouches for it.
            if keys.verify.is_none() {
                return Err(integrity(
                    "the message is not encrypted (refused: nothing authenticates it)",
                ));
            }
            warnings.push(Opened::NotEncrypted);
            (Top::Plain(src), Some(header))
        }
    };
    let mut reader = PgpReader::new(top, first, src_failed.clone(), keys.verify.clone());
    reader.prime()?;
    warnings.extend(reader.warnings());
    Ok((Box::new(reader), warnings))
}

/// The message's packet stream, binary or armored, and the flag that tells the caller's
/// own read errors (which stay `Io`) from damage.
fn source<'a, R: Read + 'a>(r: R) -> Result<(Src<'a>, Rc<Cell<bool>>), CryptoError> {
    let src_failed = Rc::new(Cell::new(false));
    let tracked = Tracked {
        inner: r,
        failed: src_failed.clone(),
    };
    let mut br = BufReader::with_capacity(SRC_BUF, tracked);
    let first = match br.fill_buf() {
        Ok(b) => b.first().copied(),
        Err(e) => return Err(CryptoError::Io(e)),
    };
    let Some(first) = first else {
        return Err(integrity("empty file"));
    };
    let src: Src<'a> = if first & 0x80 != 0 {
        Box::new(br)
    } else if first == b'-' || first.is_ascii_whitespace() {
        Box::new(BufReader::with_capacity(SRC_BUF, Dearmor::new(br)))
    } else {
        return Err(integrity("not an OpenPGP message"));
    };
    Ok((src, src_failed))
}

/// What precedes the data: the session-key packets and the encrypted data packet's header,
/// or, for a message that is not encrypted, the header of its first packet.
enum Esks {
    Encrypted {
        skesks: Vec<SymKeyEncryptedSessionKey>,
        pkesks: Vec<PublicKeyEncryptedSessionKey>,
        data: PacketHeader,
    },
    Plain(PacketHeader),
}

/// Read the ESK sequence up to the encrypted data packet (an unparsable ESK is skipped
/// with a warning; markers and padding are ignored).
fn session_key_packets(
    src: &mut Src<'_>,
    src_failed: &Rc<Cell<bool>>,
    warnings: &mut Vec<Opened>,
) -> Result<Esks, CryptoError> {
    let fail = |e: io::Error| classify(e, src_failed);
    let mut skesks = Vec::new();
    let mut pkesks = Vec::new();
    // ESK sequence, then the encrypted data packet.
    let data = loop {
        if src.fill_buf().map_err(fail)?.is_empty() {
            return Err(integrity("no encrypted data packet found (truncated?)"));
        }
        let header = PacketHeader::try_from_reader(&mut *src).map_err(fail)?;
        match header.tag() {
            Tag::SymKeyEncryptedSessionKey => {
                let body = read_small_body(header, &mut *src).map_err(fail)?;
                match SymKeyEncryptedSessionKey::try_from_reader(header, &body[..]) {
                    Ok(p) => skesks.push(p),
                    Err(e) => warnings.push(Opened::SkippedSessionKeyPacket(format!("SKESK: {e}"))),
                }
            }
            Tag::PublicKeyEncryptedSessionKey => {
                let body = read_small_body(header, &mut *src).map_err(fail)?;
                match PublicKeyEncryptedSessionKey::try_from_reader(header, &body[..]) {
                    Ok(p) => pkesks.push(p),
                    Err(e) => warnings.push(Opened::SkippedSessionKeyPacket(format!("PKESK: {e}"))),
                }
            }
            Tag::Marker | Tag::Padding => {
                read_small_body(header, &mut *src).map_err(fail)?;
            }
            Tag::SymEncryptedData | Tag::SymEncryptedProtectedData | Tag::GnupgAeadData => {
                break header;
            }
            Tag::CompressedData | Tag::LiteralData | Tag::OnePassSignature | Tag::Signature => {
                return Ok(Esks::Plain(header));
            }
            other => {
                return Err(integrity(format!(
                    "unexpected {other:?} packet where encrypted data was expected"
                )))
            }
        }
    };
    Ok(Esks::Encrypted {
        skesks,
        pkesks,
        data,
    })
}

/// The decrypting reader of the encrypted data packet `data_header`, with the session key
/// the search finds (SEIPDv1 in streaming mode, legacy SED with a warning, GnuPG's OCB).
fn decryptor<'a>(
    data_header: PacketHeader,
    src: Src<'a>,
    src_failed: &Rc<Cell<bool>>,
    sk_search: &SessionKeySearch,
    warnings: &mut Vec<Opened>,
    vouch: Option<Vouch>,
) -> Result<Top<'a>, CryptoError> {
    let fail = |e: io::Error| classify(e, src_failed);
    Ok(match data_header.tag() {
        Tag::SymEncryptedProtectedData | Tag::SymEncryptedData => {
            let protected = data_header.tag() == Tag::SymEncryptedProtectedData;
            let mut body = Body::new(data_header, src).map_err(fail)?;
            if protected {
                let mut v = [0u8; 1];
                body.read_exact(&mut v).map_err(fail)?;
                match v[0] {
                    1 => {}
                    2 => {
                        return Err(CryptoError::Unsupported(
                            "SEIPD v2 (RFC 9580) encrypted data".into(),
                        ))
                    }
                    v => return Err(integrity(format!("unknown SEIPD version {v}"))),
                }
            } else {
                warnings.push(Opened::NoIntegrityProtection);
            }
            // The first block_size+2 bytes carry the quick check; 18 covers every cipher.
            let mut prefix = Vec::with_capacity(18);
            (&mut body)
                .take(18)
                .read_to_end(&mut prefix)
                .map_err(fail)?;
            let (alg, key) = sk_search.find(Check::Cfb(&prefix))?;
            if !matches!(
                alg,
                SymmetricKeyAlgorithm::AES128
                    | SymmetricKeyAlgorithm::AES192
                    | SymmetricKeyAlgorithm::AES256
                    | SymmetricKeyAlgorithm::Twofish
                    | SymmetricKeyAlgorithm::Camellia128
                    | SymmetricKeyAlgorithm::Camellia192
                    | SymmetricKeyAlgorithm::Camellia256
            ) {
                warnings.push(Opened::LegacyCipher(format!("{alg:?}")));
            }
            let chain = Cursor::new(prefix).chain(body);
            // What gpg and swiftdup write (AES, with an MDC) is deciphered by
            // `AesCfbMdc`, many blocks at a time; anything else by rPGP (which always
            // hashes the MDC).
            let chain = match protected {
                true => match AesCfbMdc::new(alg, key.as_ref(), chain, vouch) {
                    Ok(dec) => return Ok(Top::AesCfb(Box::new(dec))),
                    Err(chain) => chain,
                },
                false => chain,
            };
            let dec = pgp::crypto::sym::StreamDecryptor::new(
                alg,
                protected,
                // rPGP's default (CheckFirst) buffers the whole message in memory to check
                // the MDC before releasing anything: unusable for 5 GiB volumes.
                Seipdv1ReadMode::Streaming,
                key.as_ref(),
                chain,
            )
            .map_err(|e| CryptoError::Unsupported(format!("cipher {alg:?}: {e}")))?;
            Top::Cfb(Box::new(dec))
        }
        _ => {
            // Tag 20, GnuPG OCB.
            let mut body = Body::new(data_header, src).map_err(fail)?;
            let cfg = GnupgAeadDataConfig::try_from_reader(&mut body)
                .map_err(|e| pgp_err("GnuPG AEAD packet", e))?;
            warnings.push(Opened::GnupgAead);
            let (_alg, key) = sk_search.find(Check::Aead(cfg.sym_alg))?;
            let dec = pgp::packet::StreamDecryptor::gnupg_aead(
                cfg.sym_alg,
                cfg.aead,
                cfg.chunk_size,
                key.as_ref(),
                &cfg.iv,
                body,
            )
            .map_err(|e| CryptoError::Unsupported(format!("GnuPG AEAD: {e}")))?;
            Top::Aead(Box::new(dec))
        }
    })
}

pub(super) type Src<'a> = Box<dyn BufRead + 'a>;

/// Remembers whether the caller's reader failed, so that its errors stay `Io` errors
/// while everything else that goes wrong below is an integrity problem.
pub(super) struct Tracked<R> {
    pub(super) inner: R,
    pub(super) failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.failed.set(true);
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
}

pub(super) fn classify(e: io::Error, src_failed: &Cell<bool>) -> CryptoError {
    if e.get_ref().is_some_and(|i| i.is::<CryptoError>()) {
        return CryptoError::from(e);
    }
    if src_failed.get() {
        return CryptoError::Io(e);
    }
    if let Some(pe) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<pgp::errors::Error>())
    {
        if matches!(pe, pgp::errors::Error::MdcError) {
            return integrity(
                "modification detection code (MDC) mismatch: the file was modified or truncated",
            );
        }
    }
    match e.kind() {
        io::ErrorKind::UnexpectedEof => integrity(format!("truncated data ({e})")),
        _ => integrity(e.to_string()),
    }
}

pub(super) fn read_small_body(header: PacketHeader, src: &mut Src<'_>) -> io::Result<Vec<u8>> {
    let mut body = Body::new(header, &mut *src)?;
    let mut v = Vec::new();
    (&mut body).take(SMALL_PACKET_LIMIT).read_to_end(&mut v)?;
    if body.fill_buf()?.is_empty() {
        Ok(v)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "packet too large",
        ))
    }
}

// --- session keys ------------------------------------------------------------------------
