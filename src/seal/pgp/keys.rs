//! Key files: reading public and secret keys (binary or armored, several per file), which
//! subkey encrypts (live binding, usable algorithm), and `OpenKeys`, what a run can open
//! with.

use super::*;

pub(super) enum EncTarget<'k> {
    Primary(&'k SignedPublicKey),
    Sub(&'k SignedPublicSubKey),
}

pub(super) fn can_encrypt(alg: PublicKeyAlgorithm) -> bool {
    matches!(
        alg,
        PublicKeyAlgorithm::RSA
            | PublicKeyAlgorithm::RSAEncrypt
            | PublicKeyAlgorithm::ECDH
            | PublicKeyAlgorithm::Elgamal
            | PublicKeyAlgorithm::ElgamalEncrypt
            | PublicKeyAlgorithm::X25519
            | PublicKeyAlgorithm::X448
    )
}

/// The newest binding signature of a subkey made by `primary`, unless the subkey is revoked
/// or (when `now` is given) expired.
pub(super) fn live_binding<'s>(
    primary: &pgp::packet::PublicKey,
    sub: &pgp::packet::PublicSubkey,
    sigs: &'s [Signature],
    now: Option<u64>,
) -> Option<&'s Signature> {
    let binding = sigs
        .iter()
        .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding))
        .filter(|s| s.verify_subkey_binding(primary, sub).is_ok())
        .max_by_key(|s| s.created().map(|t| t.as_secs()).unwrap_or(0))?;
    let revoked = sigs.iter().any(|s| {
        s.typ() == Some(SignatureType::SubkeyRevocation)
            && s.verify_subkey_binding(primary, sub).is_ok()
    });
    if revoked {
        return None;
    }
    if let (Some(now), Some(exp)) = (now, binding.key_expiration_time()) {
        let exp = exp.as_secs() as u64;
        if exp != 0 && sub.created_at().as_secs() as u64 + exp <= now {
            return None;
        }
    }
    Some(binding)
}

/// A certificate's self-signatures: on its user ids, and direct-key ones.
pub(super) fn self_sigs(d: &pgp::composed::SignedKeyDetails) -> Vec<&Signature> {
    let on_users = d.users.iter().flat_map(|u| u.signatures.iter());
    on_users.chain(d.direct_signatures.iter()).collect()
}

/// Pick the key gpg would encrypt to: the newest valid (bound, unrevoked, unexpired)
/// subkey flagged for encryption; failing that the primary key if it can encrypt.
pub(super) fn encryption_target(k: &SignedPublicKey) -> Result<EncTarget<'_>, CryptoError> {
    let now = now_secs() as u64;
    let fpr = format!("{:X}", k.fingerprint());
    if k.details
        .revocation_signatures
        .iter()
        .any(|s| s.verify_key(&k.primary_key).is_ok())
    {
        return Err(CryptoError::Key(format!("key {fpr} is revoked")));
    }
    let mut best: Option<(u32, &SignedPublicSubKey)> = None;
    for sub in &k.public_subkeys {
        if !can_encrypt(sub.key.algorithm()) {
            continue;
        }
        let Some(binding) = live_binding(&k.primary_key, &sub.key, &sub.signatures, Some(now))
        else {
            continue;
        };
        let flags = binding.key_flags();
        if !(flags.encrypt_comms() || flags.encrypt_storage()) {
            continue;
        }
        let created = sub.key.created_at().as_secs();
        if best.is_none_or(|(c, _)| created >= c) {
            best = Some((created, sub));
        }
    }
    if let Some((_, sub)) = best {
        return Ok(EncTarget::Sub(sub));
    }
    if can_encrypt(k.primary_key.algorithm()) {
        let sigs = self_sigs(&k.details);
        let any_flags = sigs.iter().any(|s| {
            let f = s.key_flags();
            f.certify()
                || f.sign()
                || f.encrypt_comms()
                || f.encrypt_storage()
                || f.authentication()
        });
        let enc_flag = sigs.iter().any(|s| {
            let f = s.key_flags();
            f.encrypt_comms() || f.encrypt_storage()
        });
        if !any_flags || enc_flag {
            return Ok(EncTarget::Primary(k));
        }
    }
    Err(CryptoError::Key(format!(
        "key {fpr} has no usable encryption key"
    )))
}

// ---------------------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------------------

/// Parse one or more public keys (armored or binary). A key file may contain several keys;
/// a secret key file is accepted too (its public parts are used). Each key must have a
/// key gpg would encrypt to.
pub fn read_public_keys(armored_or_binary: &[u8]) -> Result<Vec<SignedPublicKey>, CryptoError> {
    let keys = read_certs(armored_or_binary)?;
    for k in &keys {
        encryption_target(k)?;
    }
    Ok(keys)
}

/// Parse one or more public keys (or the public parts of secret keys), whatever they can do.
pub(super) fn read_certs(armored_or_binary: &[u8]) -> Result<Vec<SignedPublicKey>, CryptoError> {
    let mut keys = Vec::new();
    for block in armor_blocks(armored_or_binary) {
        keys.extend(read_certs_block(block)?);
    }
    Ok(keys)
}

/// A key file made with `cat a.asc b.asc` holds several armor blocks; rPGP reads the first
/// only, so split them (binary files and single blocks come back whole).
pub(super) fn armor_blocks(data: &[u8]) -> Vec<&[u8]> {
    let marker = b"-----BEGIN PGP ";
    let starts: Vec<usize> = (0..data.len())
        .filter(|&i| data[i..].starts_with(marker) && (i == 0 || data[i - 1] == b'\n'))
        .collect();
    if starts.len() <= 1 {
        return vec![data];
    }
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| &data[s..starts.get(n + 1).copied().unwrap_or(data.len())])
        .collect()
}

pub(super) fn read_certs_block(
    armored_or_binary: &[u8],
) -> Result<Vec<SignedPublicKey>, CryptoError> {
    let mut keys = Vec::new();
    let mut err = None;
    match SignedPublicKey::from_reader_many(Cursor::new(armored_or_binary)) {
        Ok((iter, _)) => {
            for k in iter {
                match k {
                    Ok(k) => keys.push(k),
                    Err(e) => {
                        err = Some(e.to_string());
                        break;
                    }
                }
            }
        }
        Err(e) => err = Some(e.to_string()),
    }
    if keys.is_empty() {
        if let Ok(secret) = read_secret_keys(armored_or_binary) {
            keys = secret.iter().map(|s| s.to_public_key()).collect();
        }
    }
    if keys.is_empty() {
        return Err(CryptoError::Key(format!(
            "no public key found ({})",
            err.unwrap_or_else(|| "empty key file".into())
        )));
    }
    Ok(keys)
}

/// Parse one or more secret keys (armored or binary), possibly passphrase-protected (they
/// are unlocked lazily with [`OpenKeys::passphrase`]).
pub fn read_secret_keys(armored_or_binary: &[u8]) -> Result<Vec<SignedSecretKey>, CryptoError> {
    // rPGP's messages for secret key packets are not echoed, to be safe about key material.
    let (iter, _) = SignedSecretKey::from_reader_many(Cursor::new(armored_or_binary))
        .map_err(|_| CryptoError::Key("could not parse the secret key file".into()))?;
    let mut keys = Vec::new();
    for k in iter {
        keys.push(k.map_err(|_| CryptoError::Key("could not parse a secret key".into()))?);
    }
    if keys.is_empty() {
        return Err(CryptoError::Key("no secret key found".into()));
    }
    Ok(keys)
}

/// Keys available for opening.
///
/// `passphrase` is used both for symmetric messages (SKESK) and to unlock protected secret
/// keys, like duplicity's `PASSPHRASE`. With `verify`, every message must carry a valid
/// signature by one of its keys; the reader fails with `Unsigned` at the end of the message
/// otherwise (after the MDC check, so damage still reads as `Integrity`).
#[derive(Default, Clone)]
pub struct OpenKeys {
    pub passphrase: Option<String>,
    pub secret_keys: Vec<SignedSecretKey>,
    pub verify: Option<Verifier>,
}

impl fmt::Debug for OpenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenKeys")
            .field(
                "passphrase",
                &self.passphrase.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "secret_keys",
                &self
                    .secret_keys
                    .iter()
                    .map(|k| format!("{:X}", k.fingerprint()))
                    .collect::<Vec<_>>(),
            )
            .field("verify", &self.verify)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------
// Signing and verifying (`--sign-key-file`, stock's `--sign-key`)
// ---------------------------------------------------------------------------------------

pub(super) fn can_sign(alg: PublicKeyAlgorithm) -> bool {
    matches!(
        alg,
        PublicKeyAlgorithm::RSA
            | PublicKeyAlgorithm::RSASign
            | PublicKeyAlgorithm::DSA
            | PublicKeyAlgorithm::ECDSA
            | PublicKeyAlgorithm::EdDSALegacy
            | PublicKeyAlgorithm::Ed25519
            | PublicKeyAlgorithm::Ed448
    )
}

/// Whether the primary key of a certificate may sign: it can, and its self-signatures either
/// carry no key flags at all (old keys) or flag it for signing.
pub(super) fn primary_signs(primary_alg: PublicKeyAlgorithm, sigs: &[&Signature]) -> bool {
    if !can_sign(primary_alg) {
        return false;
    }
    let any_flags = sigs.iter().any(|s| {
        let f = s.key_flags();
        f.certify() || f.sign() || f.encrypt_comms() || f.encrypt_storage() || f.authentication()
    });
    !any_flags || sigs.iter().any(|s| s.key_flags().sign())
}
