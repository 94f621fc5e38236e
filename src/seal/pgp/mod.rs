//! Sealing (compress and/or encrypt) and opening of duplicity volume, manifest and
//! signature files with the same packet structure stock duplicity 0.8.22 produces by
//! running `gpg` (see duplicity-format.md §5), but done natively with rPGP 0.21:
//! no gpg binary is needed at run time. gpg 2.2 and gpg 1.4 decrypt what is written here,
//! and everything gpg 1.4/2.2 (and 2.4's OCB mode) writes for duplicity opens here.
//!
//! * Sealing is push-style ([`Sealer`] implements [`Write`]) and streams with bounded
//!   memory (a few 64 KiB buffers plus the compressor's chunks). Data that does not
//!   compress is stored rather than deflated (see [`crate::seal::deflate`]), ~10x faster than gpg
//!   on media.
//! * Opening is pull-style ([`open_pgp`] returns a [`Read`]) and streams as well.
//!   **Integrity is only established when the returned reader has returned `Ok(0)`**:
//!   the MDC (SHA-1 over the whole plaintext) sits at the very end of the ciphertext.
//!   A caller that stops early (e.g. a tar reader that stops at the end-of-archive
//!   blocks; duplicity volumes even carry junk after them, §2.7) must drain the reader
//!   to EOF ([`drain_to_end`]) before it trusts or commits what it read. Any
//!   tampering/truncation then comes out as an `Err` from `read()`, never as a silent
//!   short stream.
//! * Nothing here starts threads except the compression pool of [`crate::seal::deflate`] (native
//!   builds, when asked for) and, for a big message, the thread that hashes its MDC beside the
//!   deciphering (`decrypt`; not under WASI); everything compiles for `wasm32-wasip2`.
//! * Passphrases and key material never appear in error messages or `Debug` output.
//!
//! Files, sealing side: `writer` (the pipeline), `framing` (packet framing, CFB + MDC),
//! `s2k` (key derivation, both sides), `sign`. Opening side: `open` (entry points and
//! error classification), `session_key` (PKESK/SKESK search, secret-key unlocking),
//! `body` (packet bodies), `decrypt` (AES-CFB with the MDC), `reader` (the message
//! grammar), `verify`. `keys` reads key files for both. This file holds the error type,
//! `SealMode` and the tests, which run against gpg 2.2 and gpg 1.4.

mod body;
mod decrypt;
mod framing;
mod keys;
mod open;
mod reader;
mod s2k;
mod session_key;
mod sign;
mod verify;
mod writer;

use body::*;
pub use decrypt::Vouch;
use decrypt::*;
use framing::*;
pub use keys::*;
pub use open::*;
use reader::*;
pub use s2k::*;
use session_key::*;
pub use sign::*;
pub use verify::*;
pub use writer::*;

use std::cell::Cell;
use std::fmt;
use std::io::{self, BufRead, BufReader, Cursor, Read, Write};
use std::rc::Rc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::seal::deflate::{Deflater, Wrap};
use pgp::armor::Dearmor;
use pgp::composed::{
    Deserializable, PlainSessionKey, RawSessionKey, SignedPublicKey, SignedPublicSubKey,
    SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::crypto::public_key::PublicKeyAlgorithm;
use pgp::crypto::sym::SymmetricKeyAlgorithm;
use pgp::packet::{
    Decompressor, GnupgAeadDataConfig, OnePassSignature, PacketHeader, PacketTrait,
    PublicKeyEncryptedSessionKey, Signature, SignatureConfig, SignatureHasher, SignatureType,
    Subpacket, SubpacketData, SymKeyEncryptedSessionKey,
};
use pgp::ser::Serialize;
use pgp::types::{
    DecryptionKey, EskType, KeyDetails, KeyId, KeyVersion, PacketLength, Password, PkeskVersion,
    Seipdv1ReadMode, StringToKey, Tag, Timestamp, VerifyingKey,
};
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::{Digest, Sha1};
use sha2::Sha256;

// ---------------------------------------------------------------------------------------
// Parameters of what we write
// ---------------------------------------------------------------------------------------

/// Cipher for everything we encrypt (what gpg 2.2 uses for `--symmetric` and picks from
/// the default key preferences for `--encrypt`).
const SEAL_CIPHER: SymmetricKeyAlgorithm = SymmetricKeyAlgorithm::AES256;
/// S2K hash. gpg 2.2 writes SHA-1 (hash id 2); RFC 9580 forbids *generating* SHA-1 S2K,
/// and every gpg since 1.4 reads SHA-256, so we use SHA-256 (hash id 8).
const S2K_HASH: HashAlgorithm = HashAlgorithm::Sha256;
/// Coded S2K count: 0xFF = 65,011,712 bytes hashed, which is what gpg 2.2 calibrates to on
/// current hardware (see §5.2). Derivation happens once per process (see [`seal_s2k`]).
const S2K_COUNT: u8 = 0xFF;
/// Partial-body chunk size for the literal and SEIPD packets (a power of two >= 512).
const PARTIAL_CHUNK: usize = 1 << 16;
/// Plaintext buffered by the CFB encryptor before a block-aligned encrypt+write.
const CFB_BUF: usize = 1 << 16;
/// Read buffer for the ciphertext source.
const SRC_BUF: usize = 1 << 16;
/// Upper bound for the body of ESK / signature packets we read into memory.
const SMALL_PACKET_LIMIT: u64 = 1 << 20;

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/// Errors of sealing and opening. Messages never contain passphrases or key material.
#[derive(Debug)]
pub enum CryptoError {
    /// The passphrase (for a symmetric message, or for unlocking the matching secret key)
    /// is wrong or missing.
    WrongPassphrase,
    /// None of the given secret keys matches the message; the string lists the key ids the
    /// message is encrypted to ("hidden recipient" for wildcard key ids).
    NoMatchingKey(String),
    /// The data is corrupt, truncated or was modified (MDC failure, bad packet, ...).
    Integrity(String),
    /// A valid but unsupported OpenPGP feature (e.g. SEIPD v2, unknown cipher).
    Unsupported(String),
    /// A key file could not be used (parse error, no encryption-capable key, ...).
    Key(String),
    /// A signature by the configured key was required and is missing, by another key, or
    /// does not verify (the message itself is intact: its MDC was checked first).
    Unsigned(String),
    /// An I/O error of the underlying reader or writer.
    Io(io::Error),
}

impl fmt::Display for CryptoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptoError::WrongPassphrase => f.write_str("wrong or missing passphrase"),
            CryptoError::NoMatchingKey(ids) => {
                write!(f, "no matching secret key; message is encrypted to: {ids}")
            }
            CryptoError::Integrity(m) => write!(f, "integrity error: {m}"),
            CryptoError::Unsupported(m) => write!(f, "unsupported: {m}"),
            CryptoError::Key(m) => write!(f, "key error: {m}"),
            CryptoError::Unsigned(m) => write!(f, "signature check failed: {m}"),
            CryptoError::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

impl std::error::Error for CryptoError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CryptoError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// Errors coming out of the reader returned by [`open_pgp`] are `io::Error`s wrapping a
/// `CryptoError`; this conversion unwraps them again, so `CryptoError::from(e)` gives back
/// `Integrity(..)` etc. Plain I/O errors become `Io`.
impl From<io::Error> for CryptoError {
    fn from(e: io::Error) -> Self {
        if e.get_ref().is_some_and(|i| i.is::<CryptoError>()) {
            if let Some(inner) = e.into_inner() {
                if let Ok(c) = inner.downcast::<CryptoError>() {
                    return *c;
                }
            }
            return CryptoError::Integrity("unknown".into()); // unreachable in practice
        }
        CryptoError::Io(e)
    }
}

impl From<CryptoError> for io::Error {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Io(e) => e,
            other => io::Error::other(other),
        }
    }
}

fn integrity(msg: impl Into<String>) -> CryptoError {
    CryptoError::Integrity(msg.into())
}

fn pgp_err(context: &str, e: pgp::errors::Error) -> CryptoError {
    // rPGP's error texts describe packets/formats, not key material.
    CryptoError::Integrity(format!("{context}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Sealing
// ---------------------------------------------------------------------------------------

/// How files are sealed on the way out.
#[derive(Clone)]
pub enum SealMode {
    /// Stored as is (`--no-encryption --no-compression`).
    Plain,
    /// RFC 1952 gzip, like duplicity's `GzipFile` (`--no-encryption`; level 6 there).
    Gzip { level: u32 },
    /// Like `gpg --symmetric --force-mdc`: SKESK v4 (iterated+salted S2K) + SEIPD v1 with MDC
    /// + ZIP-compressed packet (omitted when `level == 0`, like `gpg -z 0`) + literal 'b'.
    Symmetric { passphrase: String, level: u32 },
    /// Like `gpg --encrypt -r .. --hidden-recipient ..`: one PKESK v3 per recipient
    /// (key id 0 for `hidden`), then SEIPD v1 + ZLIB-compressed packet + literal 'b'.
    PublicKey {
        recipients: Vec<SignedPublicKey>,
        hidden: Vec<SignedPublicKey>,
        level: u32,
    },
    /// `inner` (Symmetric or PublicKey) signed like `gpg --sign`: inside the compressed
    /// packet, a one-pass signature, the literal data, and a binary signature over it.
    Signed {
        inner: Box<SealMode>,
        key: Arc<SignKey>,
    },
}

impl fmt::Debug for SealMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SealMode::Plain => f.write_str("Plain"),
            SealMode::Gzip { level } => write!(f, "Gzip {{ level: {level} }}"),
            SealMode::Symmetric { level, .. } => {
                write!(f, "Symmetric {{ passphrase: <redacted>, level: {level} }}")
            }
            SealMode::PublicKey {
                recipients,
                hidden,
                level,
            } => {
                let fp = |v: &Vec<SignedPublicKey>| {
                    v.iter()
                        .map(|k| format!("{:X}", k.fingerprint()))
                        .collect::<Vec<_>>()
                };
                write!(
                    f,
                    "PublicKey {{ recipients: {:?}, hidden: {:?}, level: {level} }}",
                    fp(recipients),
                    fp(hidden)
                )
            }
            SealMode::Signed { inner, key } => {
                write!(f, "Signed {{ inner: {inner:?}, key: {} }}", key.key_id())
            }
        }
    }
}

// Native only (runs gpg and gpg1); the wasm build runs what applies under wasmtime.
#[cfg(all(test, unix))]
mod tests {
    use super::*;

    use flate2::Compression;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::OnceLock;

    // --- helpers --------------------------------------------------------------------------
    fn symmetric(passphrase: &str, level: u32) -> SealMode {
        SealMode::Symmetric {
            passphrase: passphrase.into(),
            level,
        }
    }

    fn to(recipients: Vec<SignedPublicKey>, level: u32) -> SealMode {
        SealMode::PublicKey {
            recipients,
            hidden: vec![],
            level,
        }
    }

    static SEQ: AtomicUsize = AtomicUsize::new(0);

    /// A temporary GnuPG home; its agent is killed and the directory removed on drop.
    struct Home {
        dir: PathBuf,
    }

    impl Home {
        fn new() -> Home {
            use std::os::unix::fs::PermissionsExt;
            let dir = std::env::temp_dir().join(format!(
                "swiftdup-crypto-test-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            Home { dir }
        }
        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }
        fn write(&self, name: &str, data: &[u8]) -> PathBuf {
            let p = self.path(name);
            std::fs::write(&p, data).unwrap();
            p
        }
        fn read(&self, name: &str) -> Vec<u8> {
            std::fs::read(self.path(name)).unwrap()
        }
        fn gpg(&self, args: &[&str]) -> Output {
            let mut c = Command::new("gpg");
            c.arg("--homedir")
                .arg(&self.dir)
                .args([
                    "--batch",
                    "--yes",
                    "--no-tty",
                    "--pinentry-mode",
                    "loopback",
                    "--trust-model",
                    "always",
                ])
                .args(args);
            c.output().expect("running gpg")
        }
        fn gpg1(&self, args: &[&str]) -> Output {
            let mut c = Command::new("gpg1");
            c.arg("--homedir")
                .arg(&self.dir)
                .args(["--batch", "--yes", "--no-tty", "--trust-model", "always"])
                .args(args);
            c.output().expect("running gpg1 (apt-get install gnupg1)")
        }
        fn gpg_ok(&self, args: &[&str]) -> Output {
            let o = self.gpg(args);
            assert!(
                o.status.success(),
                "gpg {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o
        }
        fn gpg1_ok(&self, args: &[&str]) -> Output {
            let o = self.gpg1(args);
            assert!(
                o.status.success(),
                "gpg1 {args:?} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            o
        }
        fn import(&self, key: &[u8], passphrase: &str) {
            let p = self.write("import.key", key);
            self.gpg_ok(&["--passphrase", passphrase, "--import", p.to_str().unwrap()]);
        }
    }

    impl Drop for Home {
        fn drop(&mut self) {
            let _ = Command::new("gpgconf")
                .arg("--homedir")
                .arg(&self.dir)
                .args(["--kill", "all"])
                .output();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn s(p: &Path) -> &str {
        p.to_str().unwrap()
    }

    #[derive(Clone)]
    struct KeyPair {
        uid: String,
        public: Vec<u8>,
        secret: Vec<u8>,
    }

    struct Fixture {
        /// `future-default`: ed25519 primary + cv25519 subkey.
        cv: KeyPair,
        /// `default` in GnuPG 2.2.40: rsa3072 primary + rsa3072 encryption subkey.
        rsa: KeyPair,
        /// `x rsa3072` as in the brief: sign/certify-only primary, no encryption key.
        rsa_sc: KeyPair,
        /// rsa2048 primary that encrypts itself (no subkey).
        rsa_primary: KeyPair,
        /// cv25519 with secret key protected by "keypass".
        prot: KeyPair,
        /// Unrelated key.
        other: KeyPair,
    }

    fn fixture() -> &'static Fixture {
        static F: OnceLock<Fixture> = OnceLock::new();
        F.get_or_init(|| {
            let h = Home::new();
            let gen = |uid: &str, algo: &str, usage: &str, pass: &str| -> KeyPair {
                h.gpg_ok(&[
                    "--passphrase",
                    pass,
                    "--quick-gen-key",
                    uid,
                    algo,
                    usage,
                    "never",
                ]);
                let exact = format!("={uid}");
                let public = h.gpg_ok(&["--export", &exact]).stdout;
                let secret = h
                    .gpg_ok(&[
                        "--passphrase",
                        pass,
                        "--armor",
                        "--export-secret-keys",
                        &exact,
                    ])
                    .stdout;
                assert!(!public.is_empty() && !secret.is_empty());
                KeyPair {
                    uid: uid.to_string(),
                    public,
                    secret,
                }
            };
            Fixture {
                cv: gen("cv@example.com", "future-default", "default", ""),
                rsa: gen("rsa@example.com", "default", "default", ""),
                rsa_sc: gen("x", "rsa3072", "default", ""),
                rsa_primary: gen("rsap@example.com", "rsa2048", "sign,encr", ""),
                prot: gen("prot@example.com", "future-default", "default", "keypass"),
                other: gen("other@example.com", "future-default", "default", ""),
            }
        })
    }

    fn pubkeys(k: &KeyPair) -> Vec<SignedPublicKey> {
        read_public_keys(&k.public).unwrap()
    }

    fn seckeys(k: &KeyPair) -> Vec<SignedSecretKey> {
        read_secret_keys(&k.secret).unwrap()
    }

    fn pass_keys(p: &str) -> OpenKeys {
        OpenKeys {
            passphrase: Some(p.to_string()),
            secret_keys: vec![],
            verify: None,
        }
    }

    fn secret_keys(k: &[&KeyPair], pass: Option<&str>) -> OpenKeys {
        OpenKeys {
            passphrase: pass.map(str::to_string),
            secret_keys: k.iter().flat_map(|k| seckeys(k)).collect(),
            verify: None,
        }
    }

    /// Pseudo-random (incompressible) bytes.
    fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.truncate(n);
        v
    }

    /// Compressible, tar-like bytes.
    fn text_bytes(n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 64);
        let mut i = 0u64;
        while v.len() < n {
            v.extend_from_slice(
                format!("line {i} of some file content; mode 0644 uid 1000\n").as_bytes(),
            );
            i += 1;
        }
        v.truncate(n);
        v
    }

    fn samples() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("empty", vec![]),
            ("small", b"hello duplicity\n".to_vec()),
            ("one-chunk", random_bytes(PARTIAL_CHUNK, 1)),
            ("3MB-random", random_bytes(3_000_017, 2)),
            ("3MB-text", text_bytes(3_000_000)),
            ("mixed", mixed_bytes()),
        ]
    }

    /// Text and random runs, so that the deflater switches between compressing, storing
    /// and probing several times.
    fn mixed_bytes() -> Vec<u8> {
        let mut v = text_bytes(1_500_000);
        v.extend(random_bytes(5_000_000, 11));
        v.extend(text_bytes(2_000_000));
        v.extend(random_bytes(100_000, 12));
        v.extend(text_bytes(1_000_000));
        v.extend(random_bytes(9_000_000, 13));
        v
    }

    fn seal(data: &[u8], mode: &SealMode) -> Vec<u8> {
        let mut s = Sealer::new(Vec::new(), mode).unwrap();
        // odd write sizes to exercise the buffering
        for piece in data.chunks(7777) {
            s.write_all(piece).unwrap();
        }
        let n = s.bytes_written();
        let out = s.finish().unwrap();
        assert!(n <= out.len() as u64);
        out
    }

    fn open_all(data: &[u8], keys: &OpenKeys) -> Result<(Vec<u8>, Vec<String>), CryptoError> {
        let (mut r, w) = open_pgp(data, keys)?;
        let mut out = Vec::new();
        r.read_to_end(&mut out).map_err(CryptoError::from)?;
        // EOF is sticky and stays Ok
        assert_eq!(r.read(&mut [0u8; 16]).map_err(CryptoError::from)?, 0);
        Ok((out, w))
    }

    // --- round trips ------------------------------------------------------------------------

    #[test]
    fn roundtrip_every_mode() {
        let f = fixture();
        let modes: Vec<(SealMode, OpenKeys)> = vec![
            (symmetric("pw one", 6), pass_keys("pw one")),
            (symmetric("pw one", 0), pass_keys("pw one")),
            (symmetric("", 9), pass_keys("")),
            (to(pubkeys(&f.cv), 6), secret_keys(&[&f.cv], None)),
            (to(pubkeys(&f.rsa), 1), secret_keys(&[&f.rsa], None)),
            (
                SealMode::PublicKey {
                    recipients: vec![],
                    hidden: pubkeys(&f.rsa_primary),
                    level: 0,
                },
                secret_keys(&[&f.other, &f.rsa_primary], None),
            ),
            (
                SealMode::PublicKey {
                    recipients: pubkeys(&f.cv),
                    hidden: pubkeys(&f.rsa),
                    level: 6,
                },
                secret_keys(&[&f.rsa], None),
            ),
            (
                to(pubkeys(&f.prot), 6),
                secret_keys(&[&f.prot], Some("keypass")),
            ),
        ];
        for (name, data) in samples() {
            for level in [0, 6] {
                let gz = seal(&data, &SealMode::Gzip { level });
                let mut out = Vec::new();
                open_gzip(&gz[..]).read_to_end(&mut out).unwrap();
                assert_eq!(out, data, "gzip {name}");
            }
            assert_eq!(seal(&data, &SealMode::Plain), data);
            for (mode, keys) in &modes {
                let sealed = seal(&data, mode);
                let (out, warnings) =
                    open_all(&sealed, keys).unwrap_or_else(|e| panic!("{mode:?} {name}: {e}"));
                assert!(out == data, "{mode:?} {name}: plaintext differs");
                assert!(warnings.is_empty(), "{warnings:?}");
            }
        }
    }

    #[test]
    fn incompressible_data_overhead_is_small() {
        let data = random_bytes(1 << 20, 9);
        let sealed = seal(&data, &symmetric("x", 6));
        assert!(sealed.len() < data.len() + 1024, "{}", sealed.len());
        let sealed = seal(&data, &symmetric("x", 0));
        assert!(sealed.len() < data.len() + 128, "{}", sealed.len());
    }

    #[test]
    fn gzip_header_like_python() {
        let h = Home::new();
        for level in [0, 1, 6, 9] {
            let data = mixed_bytes();
            let gz = seal(&data, &SealMode::Gzip { level });
            let p = h.write("x.gz", &gz);
            let o = Command::new("gzip").arg("-dc").arg(&p).output().unwrap();
            assert!(
                o.status.success() && o.stdout == data,
                "gzip -d level {level}"
            );
            if level == 6 {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
                e.write_all(&data).unwrap();
                let plain = e.finish().unwrap().len();
                eprintln!(
                    "mixed data: {} bytes, flate2 level 6: {plain}, ours: {}",
                    data.len(),
                    gz.len()
                );
                assert!(gz.len() < plain + plain / 100, "{} vs {plain}", gz.len());
            }
        }
        let gz = seal(b"abc", &SealMode::Gzip { level: 6 });
        assert_eq!(&gz[..3], &[0x1f, 0x8b, 8]);
        assert_eq!(gz[3], 0, "no FNAME");
        assert!(
            u32::from_le_bytes(gz[4..8].try_into().unwrap()) > 1_600_000_000,
            "mtime = now"
        );
        assert_eq!(gz[9], 255, "OS byte");
    }

    #[test]
    fn symmetric_salt_and_key_reused_within_process() {
        let mode = symmetric("same", 6);
        let a = seal(b"a", &mode);
        let t = std::time::Instant::now();
        let b = seal(b"b", &mode);
        assert!(
            t.elapsed().as_millis() < 50,
            "second seal must not derive again"
        );
        // SKESK: 8c 0d 04 09 03 08 <salt 8> <count>
        assert_eq!(&a[..6], &[0x8C, 0x0D, 4, 9, 3, 8]);
        assert_eq!(a[..15], b[..15]);
        assert_eq!(a[14], S2K_COUNT);
        // ... but the ciphertexts still differ (random CFB prefix).
        assert_ne!(a[17..35], b[17..35]);
        let c = seal(b"a", &symmetric("other", 6));
        assert_ne!(a[6..14], c[6..14]);
    }

    /// Our iterated+salted S2K against rPGP's for one hash.
    fn check_iterated<D: Digest>(
        hash_alg: HashAlgorithm,
        salt: [u8; 8],
        pass: &[u8],
        key_size: usize,
    ) {
        for count in [0u8, 1, 0x60, 0x8f, 0xff] {
            let s2k = StringToKey::IteratedAndSalted {
                hash_alg,
                salt,
                count,
            };
            let ours = fast_s2k::<D>(&salt, decode_s2k_count(count), pass, key_size);
            assert_eq!(
                ours.as_ref(),
                s2k.derive_key(pass, key_size).unwrap().as_ref(),
                "{hash_alg:?} count {count}"
            );
        }
    }

    #[test]
    fn fast_s2k_matches_rpgp() {
        for (pass, key_size) in [(&b"pw"[..], 32), (&b""[..], 48)] {
            check_iterated::<Sha256>(
                HashAlgorithm::Sha256,
                [3, 1, 4, 1, 5, 9, 2, 6],
                pass,
                key_size,
            );
        }
        for (pass, key_size) in [
            (&b"pw"[..], 16),
            (&b"a longer passphrase"[..], 32),
            (&b""[..], 24),
        ] {
            check_iterated::<Sha1>(
                HashAlgorithm::Sha1,
                [7, 1, 2, 3, 4, 5, 6, 8],
                pass,
                key_size,
            );
            let s2k = StringToKey::Salted {
                hash_alg: HashAlgorithm::Sha1,
                salt: [9; 8],
            };
            assert_eq!(
                fast_s2k::<Sha1>(&[9; 8], 0, pass, key_size).as_ref(),
                s2k.derive_key(pass, key_size).unwrap().as_ref()
            );
            let s2k = StringToKey::Simple {
                hash_alg: HashAlgorithm::Sha1,
            };
            assert_eq!(
                fast_s2k::<Sha1>(&[], 0, pass, key_size).as_ref(),
                s2k.derive_key(pass, key_size).unwrap().as_ref()
            );
        }
    }

    // --- gpg reads what we write -------------------------------------------------------------

    #[test]
    fn gpg_decrypts_our_symmetric_output() {
        let h = Home::new();
        for (name, data) in samples() {
            for level in [6, 0] {
                let sealed = seal(
                    &data,
                    &SealMode::Symmetric {
                        passphrase: "secret pw".into(),
                        level,
                    },
                );
                let inp = h.write("in.gpg", &sealed);
                let out = h.path("out");
                let o = h.gpg_ok(&["--passphrase", "secret pw", "-o", s(&out), "-d", s(&inp)]);
                let stderr = String::from_utf8_lossy(&o.stderr);
                assert!(!stderr.contains("WARNING"), "{name}: {stderr}");
                assert!(
                    !stderr.to_lowercase().contains("integrity"),
                    "{name}: {stderr}"
                );
                assert!(
                    h.read("out") == data,
                    "{name} level {level}: gpg output differs"
                );
            }
        }
        // and gpg1
        let sealed = seal(b"for gpg1", &symmetric("pw", 6));
        let inp = h.write("in1.gpg", &sealed);
        let o = h.gpg1_ok(&["--passphrase", "pw", "-d", s(&inp)]);
        assert_eq!(o.stdout, b"for gpg1");
    }

    #[test]
    fn gpg_list_packets_of_symmetric_output() {
        let h = Home::new();
        let data = mixed_bytes();
        let sealed = seal(&data, &symmetric("pw", 6));
        let inp = h.write("in.gpg", &sealed);
        let o = h.gpg_ok(&["--passphrase", "pw", "--list-packets", s(&inp)]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        eprintln!("{text}{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            text.contains(":symkey enc packet: version 4, cipher 9, aead 0,s2k 3, hash 8"),
            "{text}"
        );
        assert!(text.contains("count 65011712 (255)"), "{text}");
        assert!(
            text.contains("tag=18") && text.contains("partial new-ctb"),
            "{text}"
        );
        assert!(text.contains("mdc_method: 2"), "{text}");
        assert!(text.contains(":compressed packet: algo=1"), "{text}");
        assert!(
            text.contains(":literal data packet:\n\tmode b (62), created"),
            "{text}"
        );
        assert!(text.contains("name=\"\""), "{text}");
        // small files get a definite SEIPD length, like gpg
        let sealed = seal(b"manifest", &symmetric("pw", 6));
        let inp = h.write("small.gpg", &sealed);
        let o = h.gpg_ok(&["--passphrase", "pw", "--list-packets", s(&inp)]);
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        assert!(
            text.contains("mdc_method: 2") && !text.contains("partial"),
            "{text}"
        );
    }

    #[test]
    fn gpg_decrypts_our_public_key_output() {
        let f = fixture();
        let data = mixed_bytes();
        let cases: Vec<(&str, SealMode, &KeyPair)> = vec![
            ("cv25519", to(pubkeys(&f.cv), 6), &f.cv),
            ("rsa subkey", to(pubkeys(&f.rsa), 6), &f.rsa),
            (
                "rsa primary",
                to(pubkeys(&f.rsa_primary), 0),
                &f.rsa_primary,
            ),
            (
                "hidden cv25519",
                SealMode::PublicKey {
                    recipients: pubkeys(&f.rsa),
                    hidden: pubkeys(&f.cv),
                    level: 6,
                },
                &f.cv,
            ),
        ];
        for (name, mode, key) in cases {
            let h = Home::new();
            h.import(&key.secret, "");
            let sealed = seal(&data, &mode);
            let inp = h.write("in.gpg", &sealed);
            let out = h.path("out");
            let o = h.gpg_ok(&["--passphrase", "", "-o", s(&out), "-d", s(&inp)]);
            let stderr = String::from_utf8_lossy(&o.stderr);
            assert!(!stderr.contains("WARNING"), "{name}: {stderr}");
            assert!(h.read("out") == data, "{name}: gpg output differs");
            let o = h.gpg_ok(&["--passphrase", "", "--list-packets", s(&inp)]);
            eprintln!("--- {name}\n{}", String::from_utf8_lossy(&o.stdout));
        }
    }

    #[test]
    fn key_without_encryption_capability_is_refused() {
        let f = fixture();
        match read_public_keys(&f.rsa_sc.public) {
            Err(CryptoError::Key(m)) => assert!(m.contains("no usable encryption key"), "{m}"),
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        // gpg agrees
        let h = Home::new();
        h.import(&f.rsa_sc.public, "");
        let inp = h.write("p", b"x");
        let o = h.gpg(&["-e", "-r", &format!("={}", f.rsa_sc.uid), s(&inp)]);
        assert!(!o.status.success());
        assert!(String::from_utf8_lossy(&o.stderr).contains("Unusable public key"));
    }

    #[test]
    fn key_files_with_several_keys() {
        let f = fixture();
        let mut both = f.cv.public.clone();
        both.extend_from_slice(&f.rsa.public);
        let keys = read_public_keys(&both).unwrap();
        assert_eq!(keys.len(), 2);
        // a secret key file works as a public key file
        assert_eq!(read_public_keys(&f.cv.secret).unwrap().len(), 1);
        // two armored files, concatenated
        let mut both = f.cv.secret.clone();
        both.extend_from_slice(&f.rsa.secret);
        assert_eq!(read_public_keys(&both).unwrap().len(), 2);
        assert!(Verifier::from_key_file(&both).unwrap().keys.len() >= 2);
        assert!(matches!(
            read_public_keys(b"garbage"),
            Err(CryptoError::Key(_))
        ));
        assert!(matches!(
            read_secret_keys(&f.cv.public),
            Err(CryptoError::Key(_))
        ));
    }

    // --- we read what gpg writes --------------------------------------------------------------

    fn gpg_sym(h: &Home, data: &[u8], extra: &[&str]) -> Vec<u8> {
        let inp = h.write("plain", data);
        let out = h.path("sym.gpg");
        let mut args = vec!["--passphrase", "gpg pw", "-o", s(&out)];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--symmetric", s(&inp)]);
        h.gpg_ok(&args);
        h.read("sym.gpg")
    }

    #[test]
    fn open_gpg2_symmetric_variants() {
        let h = Home::new();
        let data = {
            let mut d = text_bytes(150_000);
            d.extend(random_bytes(150_000, 5));
            d
        };
        let variants: &[&[&str]] = &[
            &[],
            &["--force-mdc"],
            &["--cipher-algo", "CAST5", "--compress-algo", "bzip2"],
            &["--compress-algo", "none"],
            &["--compress-algo", "zlib"],
            &["--compress-algo", "zip", "-z", "9"],
            &["--cipher-algo", "AES128"],
            &["--cipher-algo", "AES192"],
            &["--cipher-algo", "3DES"],
            &["--cipher-algo", "BLOWFISH"],
            &["--cipher-algo", "TWOFISH"],
            &["--cipher-algo", "CAMELLIA128"],
            &["--cipher-algo", "CAMELLIA192"],
            &["--cipher-algo", "CAMELLIA256"],
            &["--cipher-algo", "IDEA"],
            &["--s2k-mode", "1", "--s2k-digest-algo", "SHA512"],
            &[
                "--s2k-mode",
                "3",
                "--s2k-digest-algo",
                "MD5",
                "--s2k-count",
                "1024",
            ],
            &["--s2k-digest-algo", "RIPEMD160"],
            &["--s2k-digest-algo", "SHA224"],
            &["--s2k-mode", "0", "--rfc2440"],
            &["--armor"],
            &["--sign", "--default-key", "cv@example.com"],
        ];
        let f = fixture();
        h.import(&f.cv.secret, "");
        for v in variants {
            let sealed = gpg_sym(&h, &data, v);
            let (out, warnings) =
                open_all(&sealed, &pass_keys("gpg pw")).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert!(out == data, "{v:?}: plaintext differs");
            eprintln!("{v:?}: {warnings:?}");
            // wrong passphrase is detected up front, for every cipher and S2K
            let res = open_pgp(&sealed[..], &pass_keys("wrong")).map(|_| ());
            match res {
                Err(CryptoError::WrongPassphrase) => {}
                Err(e) => panic!("{v:?}: {e}"),
                Ok(_) => panic!("{v:?}: wrong passphrase accepted"),
            }
        }
    }

    #[test]
    fn open_gpg1_outputs() {
        let h = Home::new();
        let data = text_bytes(100_000);
        let inp = h.write("plain", &data);
        let out = h.path("o.gpg");
        let variants: &[(&[&str], bool)] = &[
            // gpg1 adds an MDC only for 128-bit block ciphers: CAST5 gives a legacy SED
            // packet, which is what old duplicity archives contain.
            (&["--cipher-algo", "CAST5"], true),
            (&[], false),
            (&["--cipher-algo", "CAST5", "--disable-mdc"], true),
            (&["--rfc2440"], true),
            (&["--openpgp", "--compress-algo", "zlib"], true),
            (
                &["--rfc1991", "--cipher-algo", "IDEA", "--s2k-mode", "0"],
                true,
            ),
            (
                &[
                    "--cipher-algo",
                    "CAST5",
                    "--compress-algo",
                    "bzip2",
                    "--disable-mdc",
                ],
                true,
            ),
        ];
        for (v, sed) in variants {
            let mut args = vec!["--passphrase", "gpg1 pw", "-o", s(&out)];
            args.extend_from_slice(v);
            args.extend_from_slice(&["-c", s(&inp)]);
            h.gpg1_ok(&args);
            let sealed = h.read("o.gpg");
            let (got, warnings) =
                open_all(&sealed, &pass_keys("gpg1 pw")).unwrap_or_else(|e| panic!("{v:?}: {e}"));
            assert!(got == data, "{v:?}: plaintext differs");
            eprintln!("gpg1 {v:?}: {warnings:?}");
            assert_eq!(
                warnings.iter().any(|w| w.contains("integrity")),
                *sed,
                "{v:?}: {warnings:?}"
            );
            assert!(
                matches!(
                    open_pgp(&sealed[..], &pass_keys("nope")),
                    Err(CryptoError::WrongPassphrase)
                ),
                "{v:?}"
            );
        }
    }

    #[test]
    fn open_gpg2_public_key_outputs() {
        let f = fixture();
        let h = Home::new();
        for k in [&f.cv, &f.rsa, &f.rsa_primary, &f.prot] {
            h.import(&k.public, "");
        }
        h.import(&f.cv.secret, ""); // signing key
        let data = text_bytes(500_000);
        let inp = h.write("plain", &data);
        let out = h.path("o.gpg");
        let cases: Vec<(Vec<&str>, OpenKeys)> = vec![
            (vec!["-r", "cv@example.com"], secret_keys(&[&f.cv], None)),
            (vec!["-r", "rsa@example.com"], secret_keys(&[&f.rsa], None)),
            (
                vec!["-r", "rsap@example.com"],
                secret_keys(&[&f.rsa_primary], None),
            ),
            (
                vec!["-r", "prot@example.com"],
                secret_keys(&[&f.prot], Some("keypass")),
            ),
            (
                vec!["--hidden-recipient", "cv@example.com"],
                secret_keys(&[&f.other, &f.rsa, &f.cv], None),
            ),
            (
                vec!["--hidden-recipient", "rsa@example.com"],
                secret_keys(&[&f.other, &f.cv, &f.rsa], None),
            ),
            (
                vec!["-r", "cv@example.com", "--throw-keyids"],
                secret_keys(&[&f.rsa, &f.cv], None),
            ),
            (
                vec!["-r", "rsa@example.com", "-r", "cv@example.com"],
                secret_keys(&[&f.cv], None),
            ),
            (
                vec![
                    "--sign",
                    "--default-key",
                    "cv@example.com",
                    "-r",
                    "rsa@example.com",
                ],
                secret_keys(&[&f.rsa], None),
            ),
            (
                vec!["--compress-algo", "none", "-r", "cv@example.com"],
                secret_keys(&[&f.cv], None),
            ),
            (
                vec![
                    "--cipher-algo",
                    "CAST5",
                    "--compress-algo",
                    "bzip2",
                    "-r",
                    "rsa@example.com",
                ],
                secret_keys(&[&f.rsa], None),
            ),
        ];
        for (args, keys) in cases {
            let mut a = vec!["--passphrase", "", "-o", s(&out)];
            a.extend_from_slice(&args);
            a.extend_from_slice(&["-e", s(&inp)]);
            h.gpg_ok(&a);
            let sealed = h.read("o.gpg");
            let (got, warnings) =
                open_all(&sealed, &keys).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert!(got == data, "{args:?}: plaintext differs");
            eprintln!("{args:?}: {warnings:?}");
            if args.contains(&"--sign") {
                assert!(
                    warnings.iter().any(|w| w.contains("signed")),
                    "{warnings:?}"
                );
            }
            // A message for these keys is not for `other`.
            let res = open_pgp(&sealed[..], &secret_keys(&[&f.other], None)).map(|_| ());
            match res {
                Err(CryptoError::NoMatchingKey(ids)) => eprintln!("  no matching key: {ids}"),
                Err(e) => panic!("{args:?}: {e}"),
                Ok(_) => panic!("{args:?}: opened with the wrong key"),
            }
        }
    }

    #[test]
    fn key_errors_are_distinct() {
        let f = fixture();
        let data = b"data".to_vec();
        // wrong secret key
        let sealed = seal(&data, &to(pubkeys(&f.cv), 6));
        match open_pgp(&sealed[..], &secret_keys(&[&f.rsa, &f.other], None)) {
            Err(CryptoError::NoMatchingKey(ids)) => {
                let sub = hex_upper(
                    seckeys(&f.cv)[0].secret_subkeys[0]
                        .key
                        .public_key()
                        .legacy_key_id()
                        .as_ref(),
                );
                assert!(ids.contains(&sub), "{ids} / {sub}");
            }
            other => panic!("{:?}", other.err()),
        }
        // hidden recipient, wrong key
        let sealed = seal(
            &data,
            &SealMode::PublicKey {
                recipients: vec![],
                hidden: pubkeys(&f.cv),
                level: 6,
            },
        );
        match open_pgp(&sealed[..], &secret_keys(&[&f.rsa, &f.other], None)) {
            Err(CryptoError::NoMatchingKey(ids)) => assert_eq!(ids, "hidden recipient"),
            other => panic!("{:?}", other.err()),
        }
        // no keys at all for a public-key message
        assert!(matches!(
            open_pgp(
                &sealed[..],
                &OpenKeys {
                    passphrase: Some("x".into()),
                    secret_keys: vec![],
                    verify: None,
                }
            ),
            Err(CryptoError::NoMatchingKey(_))
        ));
        // protected secret key, wrong or missing passphrase
        let sealed = seal(&data, &to(pubkeys(&f.prot), 6));
        assert!(matches!(
            open_pgp(&sealed[..], &secret_keys(&[&f.prot], Some("bad"))),
            Err(CryptoError::WrongPassphrase)
        ));
        assert!(matches!(
            open_pgp(&sealed[..], &secret_keys(&[&f.prot], None)),
            Err(CryptoError::WrongPassphrase)
        ));
        assert_eq!(
            open_all(&sealed, &secret_keys(&[&f.prot], Some("keypass")))
                .unwrap()
                .0,
            data
        );
        // symmetric: wrong and missing passphrase
        let sealed = seal(&data, &symmetric("right", 6));
        assert!(matches!(
            open_pgp(&sealed[..], &pass_keys("wrong")),
            Err(CryptoError::WrongPassphrase)
        ));
        assert!(matches!(
            open_pgp(
                &sealed[..],
                &OpenKeys {
                    passphrase: None,
                    secret_keys: seckeys(&f.cv),
                    verify: None,
                }
            ),
            Err(CryptoError::WrongPassphrase)
        ));
        // not OpenPGP at all
        assert!(matches!(
            open_pgp(&b"plain text"[..], &pass_keys("x")),
            Err(CryptoError::Integrity(_))
        ));
        assert!(matches!(
            open_pgp(&b""[..], &pass_keys("x")),
            Err(CryptoError::Integrity(_))
        ));
        let gz = seal(b"x", &SealMode::Gzip { level: 6 });
        assert!(matches!(
            open_pgp(&gz[..], &pass_keys("x")),
            Err(CryptoError::Integrity(_))
        ));
    }

    // --- tampering and truncation ---------------------------------------------------------------

    /// Opening must fail (at open or while reading), never yield different plaintext.
    /// (`Ok(None)`: the change hit a field without meaning, e.g. the bit count of an MPI,
    /// and the authenticated plaintext came out unchanged.)
    fn must_fail(
        sealed: &[u8],
        keys: &OpenKeys,
        what: &str,
        original: &[u8],
    ) -> Option<CryptoError> {
        match open_pgp(sealed, keys) {
            Err(e) => Some(e),
            Ok((mut r, _)) => {
                let mut out = Vec::new();
                match r.read_to_end(&mut out) {
                    Err(e) => Some(CryptoError::from(e)),
                    Ok(_) => {
                        assert!(
                            out == original,
                            "{what}: modified message opened with different plaintext"
                        );
                        None
                    }
                }
            }
        }
    }

    /// Where the SEIPD packet starts: after the session-key packets (searching for its ctb
    /// 0xD2 would sometimes hit a byte of a PKESK's random data).
    fn seipd_offset(sealed: &[u8]) -> usize {
        let mut c = Cursor::new(sealed);
        loop {
            let pos = c.position() as usize;
            let h = PacketHeader::try_from_reader(&mut c).unwrap();
            if h.tag() == Tag::SymEncryptedProtectedData {
                return pos;
            }
            let pgp::types::PacketLength::Fixed(n) = h.packet_length() else {
                panic!("session key packet without a fixed length");
            };
            c.set_position(c.position() + u64::from(n));
        }
    }

    #[test]
    fn flipped_bytes_are_detected() {
        let f = fixture();
        let data = {
            let mut d = text_bytes(200_000);
            d.extend(random_bytes(100_000, 3));
            d
        };
        let sym = seal(&data, &symmetric("p", 6));
        let raw = seal(&data, &symmetric("p", 0));
        let pk = seal(&data, &to(pubkeys(&f.cv), 6));
        let mut meaningless = Vec::new();
        for (name, sealed, keys) in [
            ("sym", &sym, pass_keys("p")),
            ("sym-uncompressed", &raw, pass_keys("p")),
            ("pk", &pk, secret_keys(&[&f.cv], None)),
        ] {
            let seipd_start = seipd_offset(sealed);
            let mut positions: Vec<usize> = (0..sealed.len().min(400)).collect();
            positions.extend((400..sealed.len()).step_by(997));
            positions.extend(sealed.len() - 40..sealed.len());
            for pos in positions {
                for bit in [0x01u8, 0x80] {
                    let mut t = sealed.clone();
                    t[pos] ^= bit;
                    let e = must_fail(&t, &keys, &format!("{name} flip at {pos}"), &data);
                    // Inside the encrypted data every flip is an integrity error
                    // (the two quick-check bytes excepted, they look like a wrong key).
                    if pos > seipd_start + 2 + 16 + 3 {
                        assert!(
                            matches!(e, Some(CryptoError::Integrity(_))),
                            "{name} flip at {pos}: {e:?}"
                        );
                    } else if e.is_none() {
                        meaningless.push((name, pos, bit));
                    }
                }
            }
        }
        eprintln!("flips outside the encrypted data without effect: {meaningless:?}");
    }

    /// A `.gpg` file whose encrypted packet was replaced by plain OpenPGP packets (kept
    /// session-key packet or none) must not open: nothing authenticates it. CI once saw a
    /// flipped SKESK length land the parser on ciphertext that read as a literal packet.
    #[test]
    fn unencrypted_messages_without_a_required_signature_are_refused() {
        let data = b"substituted content".to_vec();
        // literal packet, new format: 'b', no file name, date 0, data
        let mut literal = vec![0xCB, (6 + data.len()) as u8, b'b', 0, 0, 0, 0, 0];
        literal.extend_from_slice(&data);
        // compressed packet, algorithm 0 (uncompressed), holding the literal packet
        let mut compressed = vec![0xC8, (1 + literal.len()) as u8, 0];
        compressed.extend_from_slice(&literal);
        let sealed = seal(&data, &symmetric("p", 6));
        let skesk = &sealed[..seipd_offset(&sealed)];
        for (what, msg) in [
            ("literal", literal.clone()),
            ("compressed", compressed.clone()),
            ("skesk + literal", [skesk, &literal].concat()),
            ("skesk + compressed", [skesk, &compressed].concat()),
        ] {
            match open_pgp(&msg[..], &pass_keys("p")) {
                Err(CryptoError::Integrity(m)) => {
                    assert!(m.contains("not encrypted"), "{what}: {m}")
                }
                Err(e) => panic!("{what}: {e:?}"),
                Ok(_) => panic!("{what}: an unencrypted message was opened"),
            }
        }
    }

    #[test]
    fn truncation_is_detected() {
        let f = fixture();
        let data = random_bytes(300_000, 4);
        let sym = seal(&data, &symmetric("p", 6));
        let small = seal(b"short manifest", &symmetric("p", 6));
        let pk = seal(&data, &to(pubkeys(&f.rsa), 0));
        for (name, sealed, keys, original) in [
            ("sym", &sym, pass_keys("p"), &data[..]),
            ("small", &small, pass_keys("p"), &b"short manifest"[..]),
            ("pk", &pk, secret_keys(&[&f.rsa], None), &data[..]),
        ] {
            let mut cuts: Vec<usize> = (0..sealed.len().min(600)).collect();
            cuts.extend((600..sealed.len()).step_by(1499));
            cuts.extend(sealed.len().saturating_sub(30)..sealed.len());
            for cut in cuts {
                assert!(must_fail(
                    &sealed[..cut],
                    &keys,
                    &format!("{name} cut at {cut}"),
                    original
                )
                .is_some());
            }
        }
        // gpg's own output, cut inside the partial chunks and at the MDC
        let h = Home::new();
        let g = gpg_sym(&h, &data, &[]);
        for cut in [g.len() - 1, g.len() - 22, g.len() - 23, g.len() / 2, 40] {
            let e = must_fail(&g[..cut], &pass_keys("gpg pw"), "gpg cut", &data);
            assert!(matches!(e, Some(CryptoError::Integrity(_))), "{e:?}");
        }
    }

    // --- signing (--sign-key-file) ----------------------------------------------------------

    fn sign_key(k: &KeyPair, pass: Option<&str>) -> Arc<SignKey> {
        Arc::new(SignKey::new(&seckeys(k)[0], pass).unwrap())
    }

    fn verifying(k: &KeyPair, mut keys: OpenKeys) -> OpenKeys {
        keys.verify = Some(Verifier::from_key_file(&k.public).unwrap());
        keys
    }

    fn signed_sym(key: &Arc<SignKey>, pass: &str) -> SealMode {
        SealMode::Signed {
            inner: Box::new(SealMode::Symmetric {
                passphrase: pass.into(),
                level: 6,
            }),
            key: key.clone(),
        }
    }

    fn unsigned_reason(r: Result<(Vec<u8>, Vec<String>), CryptoError>) -> String {
        match r {
            Err(CryptoError::Unsigned(m)) => m,
            Err(e) => panic!("expected Unsigned, got {e}"),
            Ok(_) => panic!("expected Unsigned, the message opened"),
        }
    }

    #[test]
    fn signed_round_trip_and_refusals() {
        let f = fixture();
        let data = mixed_bytes();
        for signer in [&f.rsa, &f.cv] {
            let key = sign_key(signer, None);
            let modes = vec![
                ("symmetric", signed_sym(&key, "pw"), pass_keys("pw")),
                (
                    "public key",
                    SealMode::Signed {
                        inner: Box::new(to(pubkeys(&f.cv), 0)),
                        key: key.clone(),
                    },
                    secret_keys(&[&f.cv], None),
                ),
            ];
            for (name, mode, keys) in modes {
                let what = format!("{} {name}", signer.uid);
                let sealed = seal(&data, &mode);
                // the signer verifies; the data is the same
                let (got, w) = open_all(&sealed, &verifying(signer, keys_clone(&keys)))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(got == data, "{what}: data differs");
                assert!(w.is_empty(), "{what}: {w:?}");
                // without a verifier it opens, with the "not verified" note
                let (got, w) = open_all(&sealed, &keys).unwrap();
                assert!(got == data);
                assert!(w.iter().any(|w| w.contains(&key.key_id())), "{w:?}");
                // another key's verifier refuses it, naming the signer
                let m = unsigned_reason(open_all(&sealed, &verifying(&f.other, keys_clone(&keys))));
                assert!(
                    m.contains(&key.key_id()) && m.contains("not by"),
                    "{what}: {m}"
                );
                // tampering is caught by the MDC first (integrity, not unsigned)
                let mut bad = sealed.clone();
                let i = bad.len() / 2;
                bad[i] ^= 0x40;
                match must_fail(&bad, &verifying(signer, keys_clone(&keys)), &what, &data) {
                    Some(CryptoError::Integrity(_)) => {}
                    other => panic!("{what}: tampered: {other:?}"),
                }
            }
        }
        // an unsigned message where a signature is required
        let sealed = seal(b"unsigned", &symmetric("pw", 6));
        let m = unsigned_reason(open_all(&sealed, &verifying(&f.rsa, pass_keys("pw"))));
        assert!(m.contains("not signed"), "{m}");
        // nothing is handed out as verified: the error comes with the end of the data
        let big = seal(&random_bytes(1 << 20, 3), &symmetric("pw", 6));
        let (mut r, _) = open_pgp(&big[..], &verifying(&f.rsa, pass_keys("pw"))).unwrap();
        let mut first = [0u8; 4096];
        r.read_exact(&mut first).unwrap();
        assert!(matches!(
            drain_to_end(&mut r),
            Err(CryptoError::Unsigned(_))
        ));
        // signing refuses gzip
        let mode = SealMode::Signed {
            inner: Box::new(SealMode::Gzip { level: 6 }),
            key: sign_key(&f.rsa, None),
        };
        assert!(matches!(
            Sealer::new(Vec::new(), &mode),
            Err(CryptoError::Key(_))
        ));
    }

    fn keys_clone(k: &OpenKeys) -> OpenKeys {
        OpenKeys {
            passphrase: k.passphrase.clone(),
            secret_keys: k.secret_keys.clone(),
            verify: k.verify.clone(),
        }
    }

    #[test]
    fn signing_key_choice_and_passphrase() {
        let f = fixture();
        // protected key: needs its passphrase, and says so
        let k = &seckeys(&f.prot)[0];
        assert!(matches!(SignKey::new(k, None), Err(CryptoError::Key(_))));
        assert!(matches!(
            SignKey::new(k, Some("nope")),
            Err(CryptoError::WrongPassphrase)
        ));
        let key = Arc::new(SignKey::new(k, Some("keypass")).unwrap());
        let sealed = seal(b"x", &signed_sym(&key, "pw"));
        open_all(&sealed, &verifying(&f.prot, pass_keys("pw"))).unwrap();
        // gpg 2.2 keys: the primary signs, SHA-512 from the key's preferences
        let rsa = sign_key(&f.rsa, None);
        assert_eq!(rsa.hash(), HashAlgorithm::Sha512);
        let primary = hex_upper(seckeys(&f.rsa)[0].primary_key.legacy_key_id().as_ref());
        assert_eq!(rsa.key_id(), primary);
        // the sign/certify-only key of the fixture signs with its primary
        assert!(SignKey::new(&seckeys(&f.rsa_sc)[0], None).is_ok());
        // a public key file is enough to verify
        assert!(Verifier::from_key_file(&f.rsa.public).is_ok());
    }

    #[test]
    fn signing_subkey_is_used_like_gpg() {
        let h = Home::new();
        h.gpg_ok(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            "sub@example.com",
            "ed25519",
            "cert",
            "never",
        ]);
        let fpr = String::from_utf8(
            h.gpg_ok(&["--list-keys", "--with-colons", "sub@example.com"])
                .stdout,
        )
        .unwrap()
        .lines()
        .find(|l| l.starts_with("fpr"))
        .unwrap()
        .split(':')
        .nth(9)
        .unwrap()
        .to_string();
        h.gpg_ok(&[
            "--passphrase",
            "",
            "--quick-add-key",
            &fpr,
            "ed25519",
            "sign",
            "never",
        ]);
        let secret = h
            .gpg_ok(&["--passphrase", "", "--armor", "--export-secret-keys", &fpr])
            .stdout;
        let key = Arc::new(SignKey::new(&read_secret_keys(&secret).unwrap()[0], None).unwrap());
        assert!(
            !fpr.ends_with(&key.key_id()),
            "the subkey signs, not the primary"
        );
        let data = text_bytes(200_000);
        let sealed = seal(&data, &signed_sym(&key, "pw"));
        let inp = h.write("sub.gpg", &sealed);
        let o = h.gpg_ok(&[
            "--status-fd",
            "2",
            "--passphrase",
            "pw",
            "-o",
            "-",
            "-d",
            s(&inp),
        ]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!("GOODSIG {}", key.key_id())),
            "{stderr}"
        );
        assert!(o.stdout == data);
        let mut keys = pass_keys("pw");
        keys.verify = Some(Verifier::from_key_file(&secret).unwrap());
        open_all(&sealed, &keys).unwrap();
        // and gpg's own signature with that key verifies here
        let plain = h.write("plain", &data);
        let out = h.path("g.gpg");
        h.gpg_ok(&[
            "--passphrase",
            "pw",
            "--local-user",
            &fpr,
            "-o",
            s(&out),
            "--sign",
            "--symmetric",
            s(&plain),
        ]);
        let (got, _) = open_all(&h.read("g.gpg"), &keys).unwrap();
        assert!(got == data);
    }

    #[test]
    fn gpg_verifies_our_signatures() {
        let f = fixture();
        let data = mixed_bytes();
        for signer in [&f.rsa, &f.cv] {
            let h = Home::new();
            h.import(&signer.public, "");
            h.import(&f.rsa_primary.secret, "");
            let key = sign_key(signer, None);
            let modes = [
                ("symmetric", signed_sym(&key, "pw")),
                (
                    "public key",
                    SealMode::Signed {
                        inner: Box::new(to(pubkeys(&f.rsa_primary), 6)),
                        key: key.clone(),
                    },
                ),
            ];
            for (name, mode) in modes {
                let sealed = seal(&data, &mode);
                let inp = h.write("in.gpg", &sealed);
                let out = h.path("out");
                let o = h.gpg_ok(&[
                    "--status-fd",
                    "2",
                    "--passphrase",
                    "pw",
                    "-o",
                    s(&out),
                    "-d",
                    s(&inp),
                ]);
                let stderr = String::from_utf8_lossy(&o.stderr);
                assert!(stderr.contains("Good signature"), "{name}: {stderr}");
                assert!(
                    stderr.contains(&format!("[GNUPG:] GOODSIG {}", key.key_id())),
                    "{name}: {stderr}"
                );
                assert!(
                    stderr.contains("GOODMDC") || name == "public key",
                    "{name}: {stderr}"
                );
                assert!(h.read("out") == data, "{name}: data differs");
            }
            // a small (manifest-sized) file, and what gpg sees in it
            let sealed = seal(b"manifest", &signed_sym(&key, "pw"));
            let inp = h.write("small.gpg", &sealed);
            let o = h.gpg_ok(&["--passphrase", "pw", "--list-packets", s(&inp)]);
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            eprintln!("--- {}\n{text}", signer.uid);
            assert!(text.contains(":onepass_sig packet: keyid"), "{text}");
            assert!(
                text.contains("version 3, sigclass 0x00, digest 10"),
                "{text}"
            );
            assert!(text.contains(":signature packet:"), "{text}");
            assert!(text.contains("issuer fpr v4"), "{text}");
            assert!(
                text.contains("off=") && text.contains("ctb=90 tag=4"),
                "{text}"
            );
        }
        // gpg1 (RSA; gpg 1.4 has no EdDSA)
        let h = Home::new();
        let key = sign_key(&f.rsa, None);
        let p = h.write("k.asc", &f.rsa.public);
        h.gpg1_ok(&["--import", s(&p)]);
        let sealed = seal(b"for gpg1", &signed_sym(&key, "pw"));
        let inp = h.write("in1.gpg", &sealed);
        let o = h.gpg1_ok(&["--status-fd", "2", "--passphrase", "pw", "-d", s(&inp)]);
        assert_eq!(o.stdout, b"for gpg1");
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(
            stderr.contains(&format!("GOODSIG {}", key.key_id())),
            "{stderr}"
        );
    }

    #[test]
    fn we_verify_gpg_signatures() {
        let f = fixture();
        let h = Home::new();
        for k in [&f.rsa, &f.cv] {
            h.import(&k.secret, "");
        }
        h.import(&f.rsa_primary.public, "");
        let data = text_bytes(300_000);
        let inp = h.write("plain", &data);
        let out = h.path("o.gpg");
        for signer in [&f.rsa, &f.cv] {
            let cases: Vec<(Vec<&str>, OpenKeys)> = vec![
                (
                    vec!["--passphrase", "pw", "--sign", "--symmetric"],
                    pass_keys("pw"),
                ),
                (
                    vec!["--passphrase", "", "--sign", "-e", "-r", "rsap@example.com"],
                    secret_keys(&[&f.rsa_primary], None),
                ),
                (
                    vec![
                        "--passphrase",
                        "pw",
                        "--compress-algo",
                        "none",
                        "--sign",
                        "--symmetric",
                    ],
                    pass_keys("pw"),
                ),
            ];
            for (args, keys) in cases {
                let mut a = vec!["--local-user", signer.uid.as_str(), "-o", s(&out)];
                a.extend_from_slice(&args);
                a.push(s(&inp));
                h.gpg_ok(&a);
                let sealed = h.read("o.gpg");
                let (got, w) = open_all(&sealed, &verifying(signer, keys_clone(&keys)))
                    .unwrap_or_else(|e| panic!("{} {args:?}: {e}", signer.uid));
                assert!(got == data);
                assert!(w.is_empty(), "{w:?}");
                let other = if std::ptr::eq(signer, &f.rsa) {
                    &f.cv
                } else {
                    &f.rsa
                };
                let m = unsigned_reason(open_all(&sealed, &verifying(other, keys_clone(&keys))));
                assert!(m.contains("not by"), "{m}");
            }
        }
        // gpg1 --sign --symmetric (RSA)
        let h1 = Home::new();
        let p = h1.write("k.asc", &f.rsa.secret);
        h1.gpg1_ok(&["--import", s(&p)]);
        let inp = h1.write("plain", &data);
        let out = h1.path("o1.gpg");
        h1.gpg1_ok(&[
            "--passphrase",
            "pw",
            "--local-user",
            "rsa@example.com",
            "-o",
            s(&out),
            "--sign",
            "--symmetric",
            s(&inp),
        ]);
        let (got, _) = open_all(&h1.read("o1.gpg"), &verifying(&f.rsa, pass_keys("pw"))).unwrap();
        assert!(got == data);
        // A signed-only (not encrypted) message whose data was changed: the MDC cannot
        // catch this, the signature does.
        let out = h.path("s.gpg");
        h.gpg_ok(&[
            "--local-user",
            "rsa@example.com",
            "--compress-algo",
            "none",
            "-o",
            s(&out),
            "--sign",
            s(&h.write("p2", b"0123456789 signed data 0123456789")),
        ]);
        let mut signed = h.read("s.gpg");
        let pos = signed
            .windows(11)
            .position(|w| w == b"signed data")
            .unwrap();
        open_all(&signed, &verifying(&f.rsa, pass_keys("pw"))).unwrap();
        signed[pos] ^= 1;
        let m = unsigned_reason(open_all(&signed, &verifying(&f.rsa, pass_keys("pw"))));
        assert!(m.contains("bad signature"), "{m}");
    }

    #[test]
    fn legacy_sed_tampering_is_not_detectable_but_flagged() {
        // SED has no MDC: we accept it with a warning (what duplicity's --ignore-mdc-error does).
        let h = Home::new();
        let data = text_bytes(10_000);
        let inp = h.write("plain", &data);
        let out = h.path("o.gpg");
        h.gpg1_ok(&[
            "--passphrase",
            "p",
            "-o",
            s(&out),
            "--disable-mdc",
            "--compress-algo",
            "none",
            "-c",
            s(&inp),
        ]);
        let sealed = h.read("o.gpg");
        let (got, warnings) = open_all(&sealed, &pass_keys("p")).unwrap();
        assert_eq!(got, data);
        assert!(
            warnings.iter().any(|w| w.contains("no MDC")),
            "{warnings:?}"
        );
    }

    #[test]
    fn reader_errors_stay_io_errors() {
        struct Failing<'d>(&'d [u8], usize);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1 >= 100_000 {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionReset,
                        "network down",
                    ));
                }
                let n = buf.len().min(4096).min(self.0.len() - self.1);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let data = random_bytes(300_000, 8);
        let sealed = seal(&data, &symmetric("p", 6));
        let (mut r, _) = open_pgp(Failing(&sealed, 0), &pass_keys("p")).unwrap();
        let mut out = Vec::new();
        let e = CryptoError::from(r.read_to_end(&mut out).unwrap_err());
        assert!(
            matches!(&e, CryptoError::Io(io) if io.kind() == io::ErrorKind::ConnectionReset),
            "{e:?}"
        );
    }

    #[test]
    fn secrets_stay_out_of_debug_and_errors() {
        let mode = symmetric("hunter2-very-secret", 6);
        assert!(!format!("{mode:?}").contains("hunter2"));
        let keys = pass_keys("hunter2-very-secret");
        assert!(!format!("{keys:?}").contains("hunter2"));
        let sealed = seal(b"x", &mode);
        let e = open_pgp(&sealed[..], &pass_keys("hunter3-very-secret"))
            .err()
            .unwrap();
        assert!(!format!("{e} {e:?}").contains("hunter"));
        let f = fixture();
        let k = secret_keys(&[&f.cv], None);
        let dbg = format!("{k:?}");
        assert!(dbg.len() < 200, "{dbg}");
    }

    // --- GnuPG >= 2.3 OCB packets (tag 20), fixtures from rPGP's test suite -----------------

    /// Test vector from draft-koch-librepgp-03 (SKESK v5 + OCB, password "password").
    const LIBREPGP_SKESK5_OCB: &str = "c33d05070203089f0b7da3e5ea64779099e326e5400a90936cefb4e8eba08c6773716d1f2714540a38fcac529949dac529d3de31e15b4aeb729e330033dbedd449010702 0e5ed2bc1e470abe8f1d644c7a6c8a567b0f77011966 11a154ba9c2574cd056284a8ef68035c623d93cc708a43211bb6eaf2b27f7c18d571bcd83b20add3a08b73af15b9a098";

    #[test]
    fn open_gnupg_ocb_symmetric_vector() {
        let hex: String = LIBREPGP_SKESK5_OCB
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let (out, warnings) = open_all(&bytes, &pass_keys("password")).unwrap();
        assert_eq!(out, b"Hello, world!\n");
        assert!(warnings.iter().any(|w| w.contains("OCB")));
        assert!(matches!(
            open_pgp(&bytes[..], &pass_keys("passwort")),
            Err(CryptoError::WrongPassphrase)
        ));
        let mut t = bytes.clone();
        let n = t.len();
        t[n - 5] ^= 1;
        assert!(must_fail(&t, &pass_keys("password"), "ocb flip", b"Hello, world!\n").is_some());
    }

    /// GnuPG 2.4.7 `gpg -e -a --force-ocb` output to "Bob" (PKESK v3 RSA + OCB packet), and
    /// Bob's secret key from draft-bre-openpgp-samples-00; both from rPGP's test suite.
    const BOB_SECRET_KEY: &str = r#"-----BEGIN PGP PRIVATE KEY BLOCK-----
Comment: Bob's OpenPGP Transferable Secret Key

lQVYBF2lnPIBDAC5cL9PQoQLTMuhjbYvb4Ncuuo0bfmgPRFywX53jPhoFf4Zg6mv
/seOXpgecTdOcVttfzC8ycIKrt3aQTiwOG/ctaR4Bk/t6ayNFfdUNxHWk4WCKzdz
/56fW2O0F23qIRd8UUJp5IIlN4RDdRCtdhVQIAuzvp2oVy/LaS2kxQoKvph/5pQ/
5whqsyroEWDJoSV0yOb25B/iwk/pLUFoyhDG9bj0kIzDxrEqW+7Ba8nocQlecMF3
X5KMN5kp2zraLv9dlBBpWW43XktjcCZgMy20SouraVma8Je/ECwUWYUiAZxLIlMv
9CurEOtxUw6N3RdOtLmYZS9uEnn5y1UkF88o8Nku890uk6BrewFzJyLAx5wRZ4F0
qV/yq36UWQ0JB/AUGhHVPdFf6pl6eaxBwT5GXvbBUibtf8YI2og5RsgTWtXfU7eb
SGXrl5ZMpbA6mbfhd0R8aPxWfmDWiIOhBufhMCvUHh1sApMKVZnvIff9/0Dca3wb
vLIwa3T4CyshfT0AEQEAAQAL/RZqbJW2IqQDCnJi4Ozm++gPqBPiX1RhTWSjwxfM
cJKUZfzLj414rMKm6Jh1cwwGY9jekROhB9WmwaaKT8HtcIgrZNAlYzANGRCM4TLK
3VskxfSwKKna8l+s+mZglqbAjUg3wmFuf9Tj2xcUZYmyRm1DEmcN2ZzpvRtHgX7z
Wn1mAKUlSDJZSQks0zjuMNbupcpyJokdlkUg2+wBznBOTKzgMxVNC9b2g5/tMPUs
hGGWmF1UH+7AHMTaS6dlmr2ZBIyogdnfUqdNg5sZwsxSNrbglKP4sqe7X61uEAIQ
bD7rT3LonLbhkrj3I8wilUD8usIwt5IecoHhd9HziqZjRCc1BUBkboUEoyedbDV4
i4qfsFZ6CEWoLuD5pW7dEp0M+WeuHXO164Rc+LnH6i1VQrpb1Okl4qO6ejIpIjBI
1t3GshtUu/mwGBBxs60KBX5g77mFQ9lLCRj8lSYqOsHRKBhUp4qM869VA+fD0BRP
fqPT0I9IH4Oa/A3jYJcg622GwQYA1LhnP208Waf6PkQSJ6kyr8ymY1yVh9VBE/g6
fRDYA+pkqKnw9wfH2Qho3ysAA+OmVOX8Hldg+Pc0Zs0e5pCavb0En8iFLvTA0Q2E
LR5rLue9uD7aFuKFU/VdcddY9Ww/vo4k5p/tVGp7F8RYCFn9rSjIWbfvvZi1q5Tx
+akoZbga+4qQ4WYzB/obdX6SCmi6BndcQ1QdjCCQU6gpYx0MddVERbIp9+2SXDyL
hpxjSyz+RGsZi/9UAshT4txP4+MZBgDfK3ZqtW+h2/eMRxkANqOJpxSjMyLO/FXN
WxzTDYeWtHNYiAlOwlQZEPOydZFty9IVzzNFQCIUCGjQ/nNyhw7adSgUk3+BXEx/
MyJPYY0BYuhLxLYcrfQ9nrhaVKxRJj25SVHj2ASsiwGJRZW4CC3uw40OYxfKEvNC
mer/VxM3kg8qqGf9KUzJ1dVdAvjyx2Hz6jY2qWCyRQ6IMjWHyd43C4r3jxooYKUC
YnstRQyb/gCSKahveSEjo07CiXMr88UGALwzEr3npFAsPW3osGaFLj49y1oRe11E
he9gCHFm+fuzbXrWmdPjYU5/ZdqdojzDqfu4ThfnipknpVUM1o6MQqkjM896FHm8
zbKVFSMhEP6DPHSCexMFrrSgN03PdwHTO6iBaIBBFqmGY01tmJ03SxvSpiBPON9P
NVvy/6UZFedTq8A07OUAxO62YUSNtT5pmK2vzs3SAZJmbFbMh+NN204TRI72GlqT
t5hcfkuv8hrmwPS/ZR6q312mKQ6w/1pqO9qitCFCb2IgQmFiYmFnZSA8Ym9iQG9w
ZW5wZ3AuZXhhbXBsZT6JAc4EEwEKADgCGwMFCwkIBwIGFQoJCAsCBBYCAwECHgEC
F4AWIQTRpm4aI7GCyZgPeIz7/MgqAV5zMAUCXaWe+gAKCRD7/MgqAV5zMG9sC/9U
2T3RrqEbw533FPNfEflhEVRIZ8gDXKM8hU6cqqEzCmzZT6xYTe6sv4y+PJBGXJFX
yhj0g6FDkSyboM5litOcTupURObVqMgA/Y4UKERznm4fzzH9qek85c4ljtLyNufe
doL2pp3vkGtn7eD0QFRaLLmnxPKQ/TlZKdLE1G3u8Uot8QHicaR6GnAdc5UXQJE3
BiV7jZuDyWmZ1cUNwJkKL6oRtp+ZNDOQCrLNLecKHcgCqrpjSQG5oouba1I1Q6Vl
sP44dhA1nkmLHtxlTOzpeHj4jnk1FaXmyasurrrI5CgU/L2Oi39DGKTH/A/cywDN
4ZplIQ9zR8enkbXquUZvFDe+Xz+6xRXtb5MwQyWODB3nHw85HocLwRoIN9WdQEI+
L8a/56AuOwhs8llkSuiITjR7r9SgKJC2WlAHl7E8lhJ3VDW3ELC56KH308d6mwOG
ZRAqIAKzM1T5FGjMBhq7ZV0eqdEntBh3EcOIfj2M8rg1MzJv+0mHZOIjByawikad
BVgEXaWc8gEMANYwv1xsYyunXYK0X1vY/rP1NNPvhLyLIE7NpK90YNBj+xS1ldGD
bUdZqZeef2xJe8gMQg05DoD1DF3GipZ0Ies65beh+d5hegb7N4pzh0LzrBrVNHar
29b5ExdI7i4iYD5TO6Vr/qTUOiAN/byqELEzAb+L+b2DVz/RoCm4PIp1DU9ewcc2
WB38Ofqut3nLYA5tqJ9XvAiEQme+qAVcM3ZFcaMt4I4dXhDZZNg+D9LiTWcxdUPB
leu8iwDRjAgyAhPzpFp+nWoqWA81uIiULWD1Fj+IVoY3ZvgivoYOiEFBJ9lbb4te
g9m5UT/AaVDTWuHzbspVlbiVe+qyB77C2daWzNyx6UYBPLOo4r0t0c91kbNE5lgj
Z7xz6los0N1U8vq91EFSeQJoSQ62XWavYmlCLmdNT6BNfgh4icLsT7Vr1QMX9jzn
JtTPxdXytSdHvpSpULsqJ016l0dtmONcK3z9mj5N5z0k1tg1AH970TGYOe2aUcSx
IRDMXDOPyzEfjwARAQABAAv9F2CwsjS+Sjh1M1vegJbZjei4gF1HHpEM0K0PSXsp
SfVvpR4AoSJ4He6CXSMWg0ot8XKtDuZoV9jnJaES5UL9pMAD7JwIOqZm/DYVJM5h
OASCh1c356/wSbFbzRHPtUdZO9Q30WFNJM5pHbCJPjtNoRmRGkf71RxtvHBzy7np
Ga+W6U/NVKHw0i0CYwMI0YlKDakYW3Pm+QL+gHZFvngGweTod0f9l2VLLAmeQR/c
+EZs7lNumhuZ8mXcwhUc9JQIhOkpO+wreDysEFkAcsKbkQP3UDUsA1gFx9pbMzT0
tr1oZq2a4QBtxShHzP/ph7KLpN+6qtjks3xB/yjTgaGmtrwM8tSe0wD1RwXS+/1o
BHpXTnQ7TfeOGUAu4KCoOQLv6ELpKWbRBLWuiPwMdbGpvVFALO8+kvKAg9/r+/ny
zM2GQHY+J3Jh5JxPiJnHfXNZjIKLbFbIPdSKNyJBuazXW8xIa//mEHMI5OcvsZBK
clAIp7LXzjEjKXIwHwDcTn9pBgDpdOKTHOtJ3JUKx0rWVsDH6wq6iKV/FTVSY5jl
zN+puOEsskF1Lfxn9JsJihAVO3yNsp6RvkKtyNlFazaCVKtDAmkjoh60XNxcNRqr
gCnwdpbgdHP6v/hvZY54ZaJjz6L2e8unNEkYLxDt8cmAyGPgH2XgL7giHIp9jrsQ
aS381gnYwNX6wE1aEikgtY91nqJjwPlibF9avSyYQoMtEqM/1UjTjB2KdD/MitK5
fP0VpvuXpNYZedmyq4UOMwdkiNMGAOrfmOeT0olgLrTMT5H97Cn3Yxbk13uXHNu/
ZUZZNe8s+QtuLfUlKAJtLEUutN33TlWQY522FV0m17S+b80xJib3yZVJteVurrh5
HSWHAM+zghQAvCesg5CLXa2dNMkTCmZKgCBvfDLZuZbjFwnwCI6u/NhOY9egKuUf
SA/je/RXaT8m5VxLYMxwqQXKApzD87fv0tLPlVIEvjEsaf992tFEFSNPcG1l/jpd
5AVXw6kKuf85UkJtYR1x2MkQDrqY1QX/XMw00kt8y9kMZUre19aCArcmor+hDhRJ
E3Gt4QJrD9z/bICESw4b4z2DbgD/Xz9IXsA/r9cKiM1h5QMtXvuhyfVeM01enhxM
GbOH3gjqqGNKysx0UODGEwr6AV9hAd8RWXMchJLaExK9J5SRawSg671ObAU24SdY
vMQ9Z4kAQ2+1ReUZzf3ogSMRZtMT+d18gT6L90/y+APZIaoArLPhebIAGq39HLmJ
26x3z0WAgrpA1kNsjXEXkoiZGPLKIGoe3hqJAbYEGAEKACAWIQTRpm4aI7GCyZgP
eIz7/MgqAV5zMAUCXaWc8gIbDAAKCRD7/MgqAV5zMOn/C/9ugt+HZIwX308zI+QX
c5vDLReuzmJ3ieE0DMO/uNSC+K1XEioSIZP91HeZJ2kbT9nn9fuReuoff0T0Dief
rbwcIQQHFFkrqSp1K3VWmUGp2JrUsXFVdjy/fkBIjTd7c5boWljv/6wAsSfiv2V0
JSM8EFU6TYXxswGjFVfc6X97tJNeIrXL+mpSmPPqy2bztcCCHkWS5lNLWQw+R7Vg
71Fe6yBSNVrqC2/imYG2J9zlowjx1XU63Wdgqp2Wxt0l8OmsB/W80S1fRF5G4SDH
s9HXglXXqPsBRZJYfP+VStm9L5P/sKjCcX6WtZR7yS6G8zj/X767MLK/djANvpPd
NVniEke6hM3CNBXYPAMhQBMWhCulcoz+0lxi8L34rMN+Dsbma96psdUrn7uLaB91
6we0CTfF8qqm7BsVAgalon/UUiuMY80U3ueoj3okiSTiHIjD/YtpXSPioC8nMng7
xqAY9Bwizt4FWgXuLm1a4+So4V9j1TRCXd12Uc2l2RNmgDE=
=miES
-----END PGP PRIVATE KEY BLOCK-----
"#;
    const GNUPG247_OCB_TO_BOB: &str = r#"-----BEGIN PGP MESSAGE-----

hQGMA3wvqk35PDeyAQv+N6KgIBmkKBJsYkEQSD3Kwy0y7vBpasNvX7f6H+SvK9W2
j+yMLWZH7KABWI2V5eHGAWV6/JWe2dQj74ceR8E0eDWPSRiVrdQuWXGNQ6lnTTZL
AACZVX8LTkmo2QhhpDpFv8ps2IrrS3tpTK2MYi+X05gLC2nKRoipJ9LAkijtmXKL
khreDLGymucUpJ9xt2pWK1T1vLqv77QPxRwxreyUtRgMQ+8lkXG955VeMJiE6wUo
0pe3fruEh8cYxcOOwYAnsbbaOGIKxV9DRUzVOsVQ3SuzDMyUFiW3kRuidbfEBjDJ
f3WX1OJr558PUQBdsADf01DoPPxMPa7IQQ4Fg+ZVRTMwcUFxIwnSFvqtMU6k7fWA
NKUIGl/njOYn6JLHOzPyavE1QPDEqKhJDjE8fGjO8kI7M7JtuCaKnz6G5mggezOj
kz/F/wCkC3K5K0A9bVJoE03Ub02ffcNUKgllspsjvYPdm8ZRbOAsLhm4UnluSNN7
1rcR/Zqz6tz4SbfuWxPW1EkBCQIQIs0Pj70Hi+LwRC4pQ7+ZWf7n+UcopcDeylnI
z7C80gbz0pEe/B9TIqLLH6XtzsNBaCKCsW1BFs3fg+aYO8eBS/j97r09
=Hwb4
-----END PGP MESSAGE-----
"#;
    const GNUPG247_OCB_TO_BOB_MULTI_CHUNK: &str = r#"-----BEGIN PGP MESSAGE-----

hQGMA3wvqk35PDeyAQv/f63akXkmSRaYwohv0Iuyr/vQYgj77j/fK8yAzDnK0RoM
juh/JtYMBhp642pNBuIZ6bMWwVBhW4MIQ0O/TVWBfQBqSZbwE6y8My3u4sAnlXpo
tWDq9XSwyAPLTm7H6bEo6HDgNAOUaN6SbIOLpPO7syqeVCkL7zOj77vsQOuJa15S
UncDx7YbvlD+E3E2o1kbIrOliOPGEwyg9jPNJXkPgrpcHFobuLWHaZ+cg+5og3XU
WL98GsxkPQYEfz6gk7HdmUMd5XI9UQJEhuHyFHgI1+TzCmNuALRyEQGIjsxVkgB+
lLobIuRZCTedfkUT5V6ba7uB8o0GjaTo1NGzAj1EcjJIrwj7tA1KqsAmR/dwOSHF
7UBjp/CSo7ukYlyndZwLCmRc57PvfZNiCHMPHpUAkwVPVUR+MQB2BL8Wq5nyWbfo
Kbf67qdZWKKxZJuiaLGr2+O7jDPMCZAIL+HXMZWCboReVEzYc7bFsrqATr7HieOg
fw5WdiMrwihf4YrUfeJR1MEIAQkCAJJgskVCM4DvblzLarM5pf4lsocGtrr6OOUU
jFghxVktQR87EX+C7vdRrtcX0t9mIyLB9p9paCAEyyP7Hpqu///JXc2Csr2BoCqV
Oqi9si+lkSFObVDGdve9Y7xtiEfidrhU96rqM0066r7DMSxOcAHAVLOEMHm8nkcT
nD5odj2VM66BbyBv07E1WQnI8Jq48pp8Uw6+f/oEwNZYYlF7/Nmu5PHXOq7v0zYy
J1OELyi2UU2lbu2dK9Mr/1FHpPVZpBYvN6vb6c/flTZxOf1lwaf4ERoUg0Dm8cyn
HkgfZF3Fur+1luXWQupB59WzmIHvpunkVu9g89wRjfvEFei9VsnYjoDTONgZ66NU
ng6pg6dD4o8EZgh9VNhMIiTGtuJhzk7kUdpUuGXrsKymfCMkN63mU5zoC4+wVJE+
/D2Ek7BM91sbdhKgF/X0xLRNRwyX2J8lOLdFxNC6JpWaeVNqu3gAuiw/bSpN9RhB
LIxNMCLKcrtRwilExhajkmAiN2LHWBlXfpGTvnsTtSPKEAinR/p1lTv8Kin330lw
K3ZggB+gLXaDRPqFLksLZZqAcYtD/wW3YHlXd00Ivo5G2fhKQJUgauTM
=Ctra
-----END PGP MESSAGE-----
"#;

    #[test]
    fn open_gnupg_ocb_public_key_messages() {
        let keys = OpenKeys {
            passphrase: None,
            secret_keys: read_secret_keys(BOB_SECRET_KEY.as_bytes()).unwrap(),
            verify: None,
        };
        let (out, warnings) = open_all(GNUPG247_OCB_TO_BOB.as_bytes(), &keys).unwrap();
        assert_eq!(out, b"foo\n");
        assert!(warnings.iter().any(|w| w.contains("OCB")), "{warnings:?}");
        let (out, _) = open_all(GNUPG247_OCB_TO_BOB_MULTI_CHUNK.as_bytes(), &keys).unwrap();
        assert_eq!(out.len(), 300);
        let f = fixture();
        assert!(matches!(
            open_pgp(GNUPG247_OCB_TO_BOB.as_bytes(), &secret_keys(&[&f.cv], None)),
            Err(CryptoError::NoMatchingKey(_))
        ));
    }

    // --- streaming and throughput (run explicitly, alone) -------------------------------------

    fn vm_hwm_kib() -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// Fills buffers with xorshift output without keeping the stream in memory.
    struct Gen(u64);
    impl Gen {
        fn fill(&mut self, buf: &mut [u8]) {
            for c in buf.chunks_mut(8) {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                c.copy_from_slice(&self.0.to_le_bytes()[..c.len()]);
            }
        }
    }

    /// `cargo test --release -- --ignored stream_300mb --test-threads=1 --nocapture`
    #[test]
    #[ignore]
    fn stream_300mb_bounded_memory() {
        const TOTAL: usize = 300 * 1000 * 1000;
        let dir = Home::new();
        let path = dir.path("big.gpg");
        let before = vm_hwm_kib();
        let mut gen = Gen(0x9E37_79B9_7F4A_7C15);
        let mut buf = vec![0u8; 1 << 20];
        let mut hin = Sha1::new();
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut sealer = Sealer::new(file, &symmetric("big", 6)).unwrap();
        let mut done = 0;
        let t = std::time::Instant::now();
        while done < TOTAL {
            let n = buf.len().min(TOTAL - done);
            gen.fill(&mut buf[..n]);
            if (done >> 20) & 3 == 0 {
                // every 4th MiB compressible
                for (i, b) in buf[..n].iter_mut().enumerate() {
                    *b = b"0123456789abcdef\n"[i % 17];
                }
            }
            hin.update(&buf[..n]);
            sealer.write_all(&buf[..n]).unwrap();
            done += n;
        }
        sealer.finish().unwrap().flush().unwrap();
        let seal_t = t.elapsed();
        let size = std::fs::metadata(&path).unwrap().len();
        let after_seal = vm_hwm_kib();
        let t = std::time::Instant::now();
        let (mut r, _) = open_pgp(std::fs::File::open(&path).unwrap(), &pass_keys("big")).unwrap();
        let mut hout = Sha1::new();
        let mut got = 0usize;
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            hout.update(&buf[..n]);
            got += n;
        }
        let open_t = t.elapsed();
        let after_open = vm_hwm_kib();
        eprintln!(
            "300 MB: sealed to {size} bytes in {seal_t:?}, opened in {open_t:?}; VmHWM before {before} KiB, after seal {after_seal} KiB, after open {after_open} KiB"
        );
        assert_eq!(got, TOTAL);
        assert_eq!(hin.finalize(), hout.finalize());
        assert!(
            after_open < before + 64 * 1024,
            "peak RSS grew by more than 64 MiB"
        );
    }

    /// Shows why rPGP's high-level `Message` API is not used for opening: its default
    /// SEIPDv1 mode (CheckFirst) buffers the whole message to check the MDC first.
    /// `cargo test --release -- --ignored rpgp_default --test-threads=1 --nocapture`
    #[test]
    #[ignore]
    fn rpgp_default_message_api_buffers_everything() {
        let dir = Home::new();
        let path = dir.path("m.gpg");
        let mut gen = Gen(5);
        let mut buf = vec![0u8; 1 << 20];
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut sealer = Sealer::new(file, &symmetric("m", 6)).unwrap();
        for _ in 0..100 {
            gen.fill(&mut buf);
            sealer.write_all(&buf).unwrap();
        }
        sealer.finish().unwrap().flush().unwrap();
        let before = vm_hwm_kib();
        let f = BufReader::new(std::fs::File::open(&path).unwrap());
        let msg = pgp::composed::Message::from_bytes(f).unwrap();
        let mut msg = msg
            .decrypt_with_password(&Password::from("m"))
            .unwrap()
            .decompress()
            .unwrap();
        let mut n = 0;
        loop {
            let k = msg.read(&mut buf).unwrap();
            if k == 0 {
                break;
            }
            n += k;
        }
        assert_eq!(n, 100 << 20);
        let after = vm_hwm_kib();
        eprintln!("rPGP Message API, 100 MiB message: VmHWM {before} KiB -> {after} KiB");
    }

    /// `cargo test --release -- --ignored s2k_time --nocapture`
    #[test]
    #[ignore]
    fn s2k_time() {
        for hash_alg in [HashAlgorithm::Sha1, HashAlgorithm::Sha256] {
            let s2k = StringToKey::IteratedAndSalted {
                hash_alg,
                salt: [1; 8],
                count: 0xFF,
            };
            let t = std::time::Instant::now();
            s2k.derive_key(b"passphrase", 32).unwrap();
            eprintln!("S2K {hash_alg:?} count 0xFF (rPGP): {:?}", t.elapsed());
        }
        let t = std::time::Instant::now();
        fast_s2k::<Sha1>(&[1; 8], decode_s2k_count(0xFF), b"passphrase", 32);
        eprintln!("S2K Sha1 count 0xFF (sha1 crate): {:?}", t.elapsed());
    }

    /// `cargo test --release -- --ignored bench_symmetric --test-threads=1 --nocapture`
    #[test]
    #[ignore]
    fn bench_symmetric_256mib() {
        const N: usize = 256 << 20;
        let mut random = vec![0u8; N];
        Gen(42).fill(&mut random);
        let text = text_bytes(N);
        let mode = symmetric("bench", 6);
        let _ = seal(b"warm up the S2K cache", &mode);
        for (name, data) in [("incompressible", &random), ("compressible", &text)] {
            let t = std::time::Instant::now();
            let mut s = Sealer::new(Vec::with_capacity(N + (1 << 20)), &mode).unwrap();
            for c in data.chunks(1 << 16) {
                s.write_all(c).unwrap();
            }
            let sealed = s.finish().unwrap();
            let st = t.elapsed();
            let t = std::time::Instant::now();
            let (mut r, _) = open_pgp(&sealed[..], &pass_keys("bench")).unwrap();
            let mut buf = vec![0u8; 1 << 16];
            let mut n = 0;
            loop {
                let k = r.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                n += k;
            }
            let ot = t.elapsed();
            assert_eq!(n, N);
            let mib = N as f64 / (1u64 << 20) as f64;
            eprintln!(
                "{name}: sealed {} -> {} bytes; seal {:.0} MiB/s ({st:?}), open {:.0} MiB/s ({ot:?})",
                N,
                sealed.len(),
                mib / st.as_secs_f64(),
                mib / ot.as_secs_f64()
            );
        }
    }

    /// `cargo test --release -- --ignored bench_parts --test-threads=1 --nocapture`
    #[test]
    #[ignore]
    fn bench_parts() {
        const N: usize = 64 << 20;
        let mut random = vec![0u8; N];
        Gen(7).fill(&mut random);
        let mib = N as f64 / (1u64 << 20) as f64;
        for level in [0u32, 1, 6] {
            let t = std::time::Instant::now();
            let mut e = flate2::write::DeflateEncoder::new(io::sink(), Compression::new(level));
            for c in random.chunks(1 << 16) {
                e.write_all(c).unwrap();
            }
            e.finish().unwrap();
            eprintln!(
                "raw deflate level {level}: {:.0} MiB/s",
                mib / t.elapsed().as_secs_f64()
            );
            let mode = SealMode::Symmetric {
                passphrase: "b".into(),
                level,
            };
            let _ = seal(b"x", &mode);
            let t = std::time::Instant::now();
            let mut s = Sealer::new(io::sink(), &mode).unwrap();
            for c in random.chunks(1 << 16) {
                s.write_all(c).unwrap();
            }
            s.finish().unwrap();
            eprintln!(
                "seal level {level}: {:.0} MiB/s",
                mib / t.elapsed().as_secs_f64()
            );
        }
    }
}
