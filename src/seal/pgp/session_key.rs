//! Finding the session key of a message: PKESK packets tried against the secret keys
//! (unlocked once per run), SKESK packets against the passphrase, with gpg's quick check
//! to tell a wrong passphrase from damage.

use super::*;

pub(super) enum Check<'p> {
    /// CFB: block_size+2 bytes of prefix for the quick check.
    Cfb(&'p [u8]),
    /// AEAD: the session key is authenticated by the ESK itself; cipher from the packet.
    Aead(SymmetricKeyAlgorithm),
}

pub(super) struct SessionKeySearch<'k> {
    pub(super) skesks: &'k [SymKeyEncryptedSessionKey],
    pub(super) pkesks: &'k [PublicKeyEncryptedSessionKey],
    pub(super) keys: &'k OpenKeys,
}

#[derive(Default)]
pub(super) struct SearchNotes {
    pub(super) locked: bool,
    pub(super) skesk_tried: bool,
    pub(super) candidate_rejected: bool,
}

impl SessionKeySearch<'_> {
    pub(super) fn find(
        &self,
        check: Check<'_>,
    ) -> Result<(SymmetricKeyAlgorithm, RawSessionKey), CryptoError> {
        let mut notes = SearchNotes::default();
        let truncated = Cell::new(false);
        let accept = |alg: SymmetricKeyAlgorithm, key: &RawSessionKey| -> bool {
            match &check {
                Check::Cfb(prefix) => {
                    if prefix.len() < alg.block_size() + 2 {
                        truncated.set(true);
                        return false;
                    }
                    quick_check(alg, key.as_ref(), prefix)
                }
                Check::Aead(a) => key.len() == a.key_size(),
            }
        };
        if let Some(found) = self.by_secret_keys(&check, &accept, &mut notes) {
            return Ok(found);
        }
        if let Some(pass) = self.keys.passphrase.as_deref() {
            if let Some(found) = self.by_passphrase(pass, &check, &accept, &mut notes)? {
                return Ok(found);
            }
        }
        Err(self.verdict(&notes, truncated.get()))
    }

    /// 1. Public-key ESKs: addressed ones first, then wildcard (hidden recipient) ones
    ///    against every secret key.
    fn by_secret_keys(
        &self,
        check: &Check<'_>,
        accept: &dyn Fn(SymmetricKeyAlgorithm, &RawSessionKey) -> bool,
        notes: &mut SearchNotes,
    ) -> Option<(SymmetricKeyAlgorithm, RawSessionKey)> {
        // 1. Public-key ESKs: addressed ones first, then wildcard (hidden recipient) ones
        //    against every secret key.
        let mut order: Vec<&PublicKeyEncryptedSessionKey> = self
            .pkesks
            .iter()
            .filter(|p| p.version() == PkeskVersion::V3)
            .collect();
        order.sort_by_key(|p| p.id().map(|id| id.is_wildcard()).unwrap_or(true));
        for pkesk in &order {
            let Ok(values) = pkesk.values() else { continue };
            for skey in &self.keys.secret_keys {
                let mut try_key =
                    |k: &dyn UnlockableKey| -> Option<(SymmetricKeyAlgorithm, RawSessionKey)> {
                        // v3 PKESK: key id match, or wildcard (hidden recipient) => try every key.
                        match pkesk.id() {
                            Ok(id) if id.is_wildcard() || *id == k.key_id() => {}
                            _ => return None,
                        }
                        match k.decrypt_session_key(self.keys.passphrase.as_deref(), values) {
                            KeyOutcome::Locked => {
                                notes.locked = true;
                                None
                            }
                            KeyOutcome::Failed => None,
                            KeyOutcome::Ok(PlainSessionKey::V3_4 { sym_alg, ref key }) => {
                                let key = key.clone();
                                let alg = match &check {
                                    Check::Aead(a) => *a,
                                    Check::Cfb(_) => sym_alg,
                                };
                                if accept(alg, &key) {
                                    Some((alg, key))
                                } else {
                                    notes.candidate_rejected = true;
                                    None
                                }
                            }
                            KeyOutcome::Ok(_) => None,
                        }
                    };
                if let Some(found) = try_key(&skey.primary_key) {
                    return Some(found);
                }
                for sub in &skey.secret_subkeys {
                    if let Some(found) = try_key(&sub.key) {
                        return Some(found);
                    }
                }
            }
        }
        None
    }

    /// 2. Passphrase ESKs, then 3. a message with no ESK at all.
    fn by_passphrase(
        &self,
        pass: &str,
        check: &Check<'_>,
        accept: &dyn Fn(SymmetricKeyAlgorithm, &RawSessionKey) -> bool,
        notes: &mut SearchNotes,
    ) -> Result<Option<(SymmetricKeyAlgorithm, RawSessionKey)>, CryptoError> {
        for skesk in self.skesks {
            let (SymKeyEncryptedSessionKey::V4 {
                sym_algorithm,
                s2k,
                encrypted_key,
                ..
            }
            | SymKeyEncryptedSessionKey::V5 {
                sym_algorithm,
                s2k,
                encrypted_key,
                ..
            }) = skesk
            else {
                continue;
            };
            let is_v5 = matches!(skesk, SymKeyEncryptedSessionKey::V5 { .. });
            if is_v5 != matches!(check, Check::Aead(_)) {
                continue;
            }
            notes.skesk_tried = true;
            let kek = derive_cached(s2k, pass.as_bytes(), sym_algorithm.key_size())?;
            let candidate = if encrypted_key.is_empty() {
                Some((*sym_algorithm, kek))
            } else {
                match skesk.decrypt(kek.as_ref()) {
                    Ok(PlainSessionKey::V3_4 { sym_alg, ref key }) => Some((sym_alg, key.clone())),
                    Ok(PlainSessionKey::V5 { ref key }) => match &check {
                        Check::Aead(a) => Some((*a, key.clone())),
                        Check::Cfb(_) => None,
                    },
                    _ => None,
                }
            };
            if let Some((alg, key)) = candidate {
                if accept(alg, &key) {
                    return Ok(Some((alg, key)));
                }
            }
        }

        // 3. No ESK at all (RFC 1991 style): IDEA with the hash of the passphrase. PGP 2
        //    and RFC 4880 say MD5; gpg (1.4 with --rfc1991 --s2k-mode 0) writes and
        //    reads its default S2K digest, SHA-1. The quick check tells them apart.
        if self.skesks.is_empty() && self.pkesks.is_empty() {
            notes.skesk_tried = true;
            for hash_alg in [HashAlgorithm::Md5, HashAlgorithm::Sha1] {
                let s2k = StringToKey::Simple { hash_alg };
                let alg = SymmetricKeyAlgorithm::IDEA;
                let key = derive_cached(&s2k, pass.as_bytes(), alg.key_size())?;
                if accept(alg, &key) {
                    return Ok(Some((alg, key)));
                }
            }
        }
        Ok(None)
    }

    /// Why nothing opened the message: truncation, a wrong passphrase or locked key, damage
    /// that failed every quick check, or keys that are not the recipients'.
    fn verdict(&self, notes: &SearchNotes, truncated: bool) -> CryptoError {
        if truncated {
            return integrity("encrypted data is truncated");
        }
        if notes.skesk_tried || notes.locked {
            return CryptoError::WrongPassphrase;
        }
        if self.keys.passphrase.is_none() && (!self.skesks.is_empty() || self.pkesks.is_empty()) {
            return CryptoError::WrongPassphrase;
        }
        if notes.candidate_rejected {
            return integrity("session key check failed (corrupt data?)");
        }
        let ids: Vec<String> = self
            .pkesks
            .iter()
            .map(|p| match p.id() {
                Ok(id) if id.is_wildcard() => "hidden recipient".to_string(),
                Ok(id) => hex_upper(id.as_ref()),
                Err(_) => "unknown".to_string(),
            })
            .collect();
        if ids.is_empty() {
            return CryptoError::Unsupported("no usable session key packet in the message".into());
        }
        CryptoError::NoMatchingKey(ids.join(", "))
    }
}

pub(super) fn hex_upper(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// OpenPGP CFB quick check: decrypting the first block_size+2 bytes with IV 0 must repeat
/// the last two bytes of the random prefix. Catches a wrong key (1 - 2^-16) before any
/// plaintext is released. (The same for SED and SEIPD: the resync of SED comes later.)
pub(super) fn quick_check(alg: SymmetricKeyAlgorithm, key: &[u8], prefix: &[u8]) -> bool {
    let bs = alg.block_size();
    if bs == 0 || prefix.len() < bs + 2 || key.len() != alg.key_size() {
        return false;
    }
    let mut p = prefix[..bs + 2].to_vec();
    if alg
        .decrypt_with_iv_regular(key, &vec![0u8; bs], &mut p)
        .is_err()
    {
        return false;
    }
    p[bs - 2] == p[bs] && p[bs - 1] == p[bs + 1]
}

pub(super) enum KeyOutcome {
    Ok(PlainSessionKey),
    /// Protected key and the passphrase is missing or wrong.
    Locked,
    /// Key could not decrypt this PKESK (wrong key for a wildcard id, corrupt PKESK).
    Failed,
}

/// Primary and subkeys, so that both can be tried and cached once unlocked.
pub(super) trait UnlockableKey {
    fn key_id(&self) -> KeyId;
    fn decrypt_session_key(
        &self,
        pass: Option<&str>,
        values: &pgp::types::PkeskBytes,
    ) -> KeyOutcome;
}

/// Secret (sub)keys unlocked with a passphrase, so that the secret key's S2K runs once
/// per process rather than once per opened file. Keyed by fingerprint + SHA-1 of the
/// passphrase.
pub(super) static UNLOCKED: Mutex<Vec<UnlockedEntry>> = Mutex::new(Vec::new());
/// (fingerprint, SHA-1 of the passphrase, unlocked key)
pub(super) type UnlockedEntry = (Vec<u8>, [u8; 20], UnlockedKey);

#[derive(Clone)]
pub(super) enum UnlockedKey {
    Primary(pgp::packet::SecretKey),
    Sub(pgp::packet::SecretSubkey),
}

pub(super) fn decrypt_with<K: DecryptionKey>(
    k: &K,
    pw: &Password,
    values: &pgp::types::PkeskBytes,
) -> Result<Result<PlainSessionKey, ()>, ()> {
    match k.decrypt(pw, values, EskType::V3_4) {
        Ok(Ok(sk)) => Ok(Ok(sk)),
        Ok(Err(_)) => Ok(Err(())),
        Err(_) => Err(()),
    }
}

macro_rules! impl_unlockable {
    ($ty:ty, $variant:ident) => {
        impl UnlockableKey for $ty {
            fn key_id(&self) -> KeyId {
                self.public_key().legacy_key_id()
            }
            fn decrypt_session_key(
                &self,
                pass: Option<&str>,
                values: &pgp::types::PkeskBytes,
            ) -> KeyOutcome {
                let outcome = |r: Result<Result<PlainSessionKey, ()>, ()>| match r {
                    Ok(Ok(sk)) => KeyOutcome::Ok(sk),
                    Ok(Err(())) => KeyOutcome::Failed,
                    Err(()) => KeyOutcome::Locked,
                };
                if !self.secret_params().is_encrypted() {
                    return outcome(decrypt_with(self, &Password::empty(), values));
                }
                let Some(pass) = pass else {
                    return KeyOutcome::Locked;
                };
                let fpr = self.public_key().fingerprint().as_bytes().to_vec();
                let digest = pass_digest(pass.as_bytes());
                let cached = cache(&UNLOCKED)
                    .iter()
                    .find(|(f, d, _)| *f == fpr && *d == digest)
                    .map(|(_, _, k)| k.clone());
                let unlocked = match cached {
                    Some(UnlockedKey::$variant(k)) => k,
                    _ => {
                        let mut k = self.clone();
                        if k.remove_password(&Password::from(pass)).is_err() {
                            return KeyOutcome::Locked;
                        }
                        let mut c = cache(&UNLOCKED);
                        if c.len() >= 16 {
                            c.remove(0);
                        }
                        c.push((fpr, digest, UnlockedKey::$variant(k.clone())));
                        k
                    }
                };
                outcome(decrypt_with(&unlocked, &Password::empty(), values))
            }
        }
    };
}

impl_unlockable!(pgp::packet::SecretKey, Primary);
impl_unlockable!(pgp::packet::SecretSubkey, Sub);
