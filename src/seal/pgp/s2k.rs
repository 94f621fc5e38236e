//! String-to-key (iterated and salted SHA-256, as gpg's defaults): one derivation per run
//! for sealing, cached; on the open side, derivations cached by (salt, count) and a fast
//! path for the common hash.

use super::*;

pub(super) struct SealS2kCache {
    pub(super) pass_digest: [u8; 20],
    pub(super) s2k: Vec<u8>,
    pub(super) key: RawSessionKey,
}

/// Process-wide, so that the volume-sealing thread and the main thread derive once.
pub(super) static SEAL_S2K: Mutex<Option<SealS2kCache>> = Mutex::new(None);

/// A process-wide cache: a panic elsewhere while it was held leaves nothing half-written
/// in it (entries are replaced whole), so a poisoned lock is still usable.
pub(super) fn cache<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn pass_digest(p: &[u8]) -> [u8; 20] {
    Sha1::digest(p).into()
}

/// Derive the sealing key on a thread of its own, so that the ~50 ms of S2K overlap with
/// the source walk instead of delaying the first volume (the derivation is cached for the
/// process; whoever needs it first waits for it). A no-op without threads (WASI).
pub fn prepare(mode: &SealMode) {
    let inner = match mode {
        SealMode::Signed { inner, .. } => inner.as_ref(),
        m => m,
    };
    if let SealMode::Symmetric { passphrase, .. } = inner {
        let passphrase = passphrase.clone();
        let _ = std::thread::Builder::new()
            .name("s2k".into())
            .spawn(move || {
                let _ = seal_s2k(&passphrase);
            });
    }
}

/// Returns the serialized S2K specifier and the derived key for `passphrase`.
///
/// The iterated S2K deliberately costs ~0.1-0.5 s, and duplicity seals many files per run
/// (each volume, the signature file, the manifest). We therefore pick one random salt per
/// process (per passphrase) and derive once. This is safe: with a v4 SKESK without an
/// encrypted session key the derived key is the message key, and SEIPD v1 uses CFB whose
/// first ciphertext block is E(0) XOR a fresh random prefix block, i.e. every file gets a
/// fresh random IV, which is what CFB's security under key reuse needs (the same holds for
/// gpg users who encrypt many files with one passphrase; the salt only defeats
/// precomputation, which one salt per run still does). The MDC is inside the encryption.
pub(super) fn seal_s2k(passphrase: &str) -> Result<(Vec<u8>, RawSessionKey), CryptoError> {
    let digest = pass_digest(passphrase.as_bytes());
    // Held while deriving: a second thread waits for the key instead of deriving it again.
    let mut slot = cache(&SEAL_S2K);
    if let Some(hit) = slot
        .as_ref()
        .filter(|e| e.pass_digest == digest)
        .map(|e| (e.s2k.clone(), e.key.clone()))
    {
        return Ok(hit);
    }
    let s2k = StringToKey::new_iterated(OsRng, S2K_HASH, S2K_COUNT);
    let StringToKey::IteratedAndSalted { salt, count, .. } = &s2k else {
        return Err(CryptoError::Unsupported("S2K: not iterated".into()));
    };
    const _: () = assert!(matches!(S2K_HASH, HashAlgorithm::Sha256));
    let key = fast_s2k::<Sha256>(
        salt,
        decode_s2k_count(*count),
        passphrase.as_bytes(),
        SEAL_CIPHER.key_size(),
    );
    let bytes = s2k
        .to_bytes()
        .map_err(|e| CryptoError::Unsupported(format!("S2K: {e}")))?;
    *slot = Some(SealS2kCache {
        pass_digest: digest,
        s2k: bytes.clone(),
        key: key.clone(),
    });
    Ok((bytes, key))
}

// --- choosing the key to encrypt to, like gpg --------------------------------------------

/// S2K results for opening (SKESK), keyed by S2K specifier + key size + SHA-1 of the
/// passphrase. All files of one swiftdup run share a salt, so a restore derives once
/// per backup run instead of once per volume.
pub(super) static OPEN_S2K: Mutex<Vec<(Vec<u8>, RawSessionKey)>> = Mutex::new(Vec::new());

pub(super) fn derive_cached(
    s2k: &StringToKey,
    pass: &[u8],
    key_size: usize,
) -> Result<RawSessionKey, CryptoError> {
    let mut id = s2k
        .to_bytes()
        .map_err(|e| CryptoError::Unsupported(format!("S2K: {e}")))?;
    id.extend_from_slice(&(key_size as u32).to_be_bytes());
    id.extend_from_slice(&pass_digest(pass));
    let hit = cache(&OPEN_S2K)
        .iter()
        .find(|(i, _)| *i == id)
        .map(|(_, k)| k.clone());
    if let Some(k) = hit {
        return Ok(k);
    }
    let key = match s2k {
        StringToKey::IteratedAndSalted {
            hash_alg: HashAlgorithm::Sha1,
            salt,
            count,
        } => fast_s2k::<Sha1>(salt, decode_s2k_count(*count), pass, key_size),
        StringToKey::IteratedAndSalted {
            hash_alg: HashAlgorithm::Sha256,
            salt,
            count,
        } => fast_s2k::<Sha256>(salt, decode_s2k_count(*count), pass, key_size),
        StringToKey::Salted {
            hash_alg: HashAlgorithm::Sha1,
            salt,
        } => fast_s2k::<Sha1>(salt, 0, pass, key_size),
        StringToKey::Simple {
            hash_alg: HashAlgorithm::Sha1,
        } => fast_s2k::<Sha1>(&[], 0, pass, key_size),
        _ => s2k
            .derive_key(pass, key_size)
            .map_err(|e| CryptoError::Unsupported(format!("S2K type {}: {e}", s2k.id())))?,
    };
    let mut c = cache(&OPEN_S2K);
    if c.len() >= 32 {
        c.remove(0);
    }
    c.push((id, key.clone()));
    Ok(key)
}

pub(super) fn decode_s2k_count(c: u8) -> usize {
    (16usize + usize::from(c & 15)) << (usize::from(c >> 4) + 6)
}

/// RFC 4880 §3.7.1 S2K with SHA-1 or SHA-256 (simple, salted, iterated+salted; `count` 0
/// means "hash salt||passphrase once").
///
/// gpg 1.4/2.2 write SHA-1 with count 65,011,712, and we write SHA-256 with that count.
/// rPGP derives SHA-1 through its collision-detecting SHA-1 (~0.9 s for that count) and
/// feeds any hash salt||passphrase one 10-byte piece at a time (~0.25 s for SHA-256);
/// hashing the repeated pieces 64 KiB at a time takes ~40 ms. It runs once per salt, and
/// every gpg-made file has its own salt.
pub(super) fn fast_s2k<D: Digest>(
    salt: &[u8],
    count: usize,
    pass: &[u8],
    key_size: usize,
) -> RawSessionKey {
    let unit: Vec<u8> = salt.iter().chain(pass.iter()).copied().collect();
    let total = count.max(unit.len());
    // salt||pass repeated, to feed the hash in large pieces
    let mut block = Vec::with_capacity(64 << 10);
    while !unit.is_empty() && block.len() + unit.len() <= (64 << 10).max(unit.len()) {
        block.extend_from_slice(&unit);
    }
    let mut key = Vec::with_capacity(key_size + 64);
    let mut round = 0;
    while key.len() < key_size {
        let mut h = D::new();
        h.update(vec![0u8; round]);
        let mut left = total;
        while left > 0 {
            let n = left.min(block.len());
            h.update(&block[..n]);
            left -= n;
        }
        key.extend_from_slice(&h.finalize());
        round += 1;
    }
    key.truncate(key_size);
    RawSessionKey::from(key)
}

// --- the decrypted message: [compressed] ( [ops] literal [sig] | sig literal ) -----------
