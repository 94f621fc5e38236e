//! Signing what is sealed (`--sign-key-file`): a one-pass signature before the literal
//! data and the signature after it, hashed as the data streams.

use super::*;

/// The (sub)key that makes the signatures, with its secret unlocked (see [`SignKey::new`]).
#[derive(Clone)]
pub(super) enum SignPart {
    Primary(pgp::packet::SecretKey),
    Sub(pgp::packet::SecretSubkey),
}

impl SignPart {
    pub(super) fn algorithm(&self) -> PublicKeyAlgorithm {
        match self {
            SignPart::Primary(k) => k.algorithm(),
            SignPart::Sub(k) => k.algorithm(),
        }
    }
    pub(super) fn legacy_key_id(&self) -> KeyId {
        match self {
            SignPart::Primary(k) => k.legacy_key_id(),
            SignPart::Sub(k) => k.legacy_key_id(),
        }
    }
    pub(super) fn fingerprint(&self) -> pgp::types::Fingerprint {
        match self {
            SignPart::Primary(k) => k.fingerprint(),
            SignPart::Sub(k) => k.fingerprint(),
        }
    }
    pub(super) fn sign_hashed(&self, hasher: SignatureHasher) -> io::Result<Signature> {
        let pw = Password::empty();
        match self {
            SignPart::Primary(k) => hasher.sign(k, &pw),
            SignPart::Sub(k) => hasher.sign(k, &pw),
        }
        .map_err(|e| io::Error::other(format!("signing: {e}")))
    }
}

/// A secret key unlocked for signing, with the choices gpg 2.2 makes for it: the newest
/// valid signing subkey, else the primary key; the first SHA-2 hash of the key's preference
/// list (SHA-512 for keys gpg 2.2 makes), else SHA-256. The secret key's S2K runs once, here.
pub struct SignKey {
    pub(super) part: SignPart,
    pub(super) hash: HashAlgorithm,
    pub(super) verifier: Verifier,
}

impl SignKey {
    /// Pick the signing (sub)key of `key` and unlock it with `passphrase` (needed only if the
    /// key is protected). Wrong passphrase => `WrongPassphrase`.
    pub fn new(key: &SignedSecretKey, passphrase: Option<&str>) -> Result<SignKey, CryptoError> {
        let fpr = format!("{:X}", key.fingerprint());
        if key.primary_key.version() != KeyVersion::V4 {
            return Err(CryptoError::Key(format!(
                "key {fpr}: only version 4 keys can sign here (what gpg 2.2 makes and reads)"
            )));
        }
        let public = key.to_public_key();
        if public
            .details
            .revocation_signatures
            .iter()
            .any(|s| s.verify_key(&public.primary_key).is_ok())
        {
            return Err(CryptoError::Key(format!("key {fpr} is revoked")));
        }
        let now = now_secs() as u64;
        let mut best: Option<(u32, &pgp::composed::SignedSecretSubKey)> = None;
        for sub in &key.secret_subkeys {
            let sub_pub = sub.key.public_key();
            if !can_sign(sub_pub.algorithm()) {
                continue;
            }
            let Some(b) = live_binding(&public.primary_key, sub_pub, &sub.signatures, Some(now))
            else {
                continue;
            };
            let created = sub_pub.created_at().as_secs();
            if b.key_flags().sign() && best.is_none_or(|(c, _)| created >= c) {
                best = Some((created, sub));
            }
        }
        let self_sigs = self_sigs(&key.details);
        let part = match best {
            Some((_, sub)) => SignPart::Sub(sub.key.clone()),
            None if primary_signs(key.primary_key.algorithm(), &self_sigs) => {
                SignPart::Primary(key.primary_key.clone())
            }
            None => {
                return Err(CryptoError::Key(format!(
                    "key {fpr} has no usable signing key"
                )))
            }
        };
        let unlock_err = |p: Option<&str>| {
            if p.is_some() {
                CryptoError::WrongPassphrase
            } else {
                CryptoError::Key(format!(
                    "the secret key {fpr} is protected: set SIGN_PASSPHRASE (or PASSPHRASE)"
                ))
            }
        };
        // Primary keys and subkeys are different types with the same two methods.
        type Remove<'r> = &'r mut dyn FnMut(&Password) -> pgp::errors::Result<()>;
        let unlock = |encrypted: bool, remove: Remove| -> Result<(), CryptoError> {
            if encrypted {
                let p = passphrase.ok_or_else(|| unlock_err(None))?;
                remove(&Password::from(p)).map_err(|_| unlock_err(Some(p)))?;
            }
            Ok(())
        };
        let part = match part {
            SignPart::Primary(mut k) => {
                unlock(k.secret_params().is_encrypted(), &mut |p| {
                    k.remove_password(p)
                })?;
                SignPart::Primary(k)
            }
            SignPart::Sub(mut k) => {
                unlock(k.secret_params().is_encrypted(), &mut |p| {
                    k.remove_password(p)
                })?;
                SignPart::Sub(k)
            }
        };
        let strong = [
            HashAlgorithm::Sha512,
            HashAlgorithm::Sha384,
            HashAlgorithm::Sha256,
            HashAlgorithm::Sha224,
        ];
        let hash = self_sigs
            .iter()
            .flat_map(|s| s.preferred_hash_algs().iter().copied())
            .find(|h| strong.contains(h))
            .unwrap_or(HashAlgorithm::Sha256);
        let sk = SignKey {
            part,
            hash,
            verifier: Verifier::new(std::slice::from_ref(&public))?,
        };
        // Sign once now, so that a key rPGP cannot sign with fails before anything is written.
        let h = sk
            .config()?
            .into_hasher()
            .map_err(|e| CryptoError::Unsupported(format!("signature hash {hash:?}: {e}")))?;
        sk.part
            .sign_hashed(h)
            .map_err(|e| CryptoError::Key(format!("key {fpr}: {e}")))?;
        Ok(sk)
    }

    /// Long key id (16 hex digits) of the (sub)key that signs: what gpg prints in `GOODSIG`
    /// and what stock duplicity compares with `--sign-key`.
    pub fn key_id(&self) -> String {
        hex_upper(self.part.legacy_key_id().as_ref())
    }

    /// The hash algorithm signatures are made with.
    pub fn hash(&self) -> HashAlgorithm {
        self.hash
    }

    /// A verifier that accepts this key's signatures.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// Like gpg: v4 binary signature; hashed: issuer fingerprint, creation time; unhashed:
    /// issuer key id.
    pub(super) fn config(&self) -> Result<SignatureConfig, CryptoError> {
        let sub = |d| Subpacket::regular(d).map_err(|e| CryptoError::Key(format!("{e}")));
        let mut c = SignatureConfig::v4(SignatureType::Binary, self.part.algorithm(), self.hash);
        c.hashed_subpackets = vec![
            sub(SubpacketData::IssuerFingerprint(self.part.fingerprint()))?,
            sub(SubpacketData::SignatureCreationTime(Timestamp::now()))?,
        ];
        c.unhashed_subpackets = vec![sub(SubpacketData::IssuerKeyId(self.part.legacy_key_id()))?];
        Ok(c)
    }
}

impl fmt::Debug for SignKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SignKey {{ key_id: {}, hash: {:?} }}",
            self.key_id(),
            self.hash
        )
    }
}
