//! Verifying signed archives: one-pass signatures matched with their trailing signature
//! packets, hashed as the data streams, and the outcome a required signature is judged by.

use super::*;

/// One key that signatures are accepted from.
#[derive(Clone)]
pub(super) enum VerifyPart {
    Primary(pgp::packet::PublicKey),
    Sub(pgp::packet::PublicSubkey),
}

impl VerifyPart {
    pub(super) fn legacy_key_id(&self) -> KeyId {
        match self {
            VerifyPart::Primary(k) => k.legacy_key_id(),
            VerifyPart::Sub(k) => k.legacy_key_id(),
        }
    }
    pub(super) fn fingerprint(&self) -> pgp::types::Fingerprint {
        match self {
            VerifyPart::Primary(k) => k.fingerprint(),
            VerifyPart::Sub(k) => k.fingerprint(),
        }
    }
    pub(super) fn verify(
        &self,
        hash: HashAlgorithm,
        digest: &[u8],
        sig: &pgp::types::SignatureBytes,
    ) -> pgp::errors::Result<()> {
        match self {
            VerifyPart::Primary(k) => k.verify(hash, digest, sig),
            VerifyPart::Sub(k) => k.verify(hash, digest, sig),
        }
    }
}

/// The keys whose signatures a reader requires (`--sign-key-file` when reading): each
/// certificate's primary key if it may sign, and its signing subkeys that are bound and not
/// revoked. Expired keys still verify old archives (their signatures were made in time).
#[derive(Clone)]
pub struct Verifier {
    pub(super) keys: Vec<VerifyPart>,
}

impl Verifier {
    pub fn new(certs: &[SignedPublicKey]) -> Result<Verifier, CryptoError> {
        let mut keys = Vec::new();
        for c in certs {
            let self_sigs = self_sigs(&c.details);
            if primary_signs(c.primary_key.algorithm(), &self_sigs) {
                keys.push(VerifyPart::Primary(c.primary_key.clone()));
            }
            for sub in &c.public_subkeys {
                if !can_sign(sub.key.algorithm()) {
                    continue;
                }
                if live_binding(&c.primary_key, &sub.key, &sub.signatures, None)
                    .is_some_and(|b| b.key_flags().sign())
                {
                    keys.push(VerifyPart::Sub(sub.key.clone()));
                }
            }
        }
        if keys.is_empty() {
            return Err(CryptoError::Key("no key that can sign".into()));
        }
        Ok(Verifier { keys })
    }

    /// Parse a key file (public or secret keys) into a verifier.
    pub fn from_key_file(armored_or_binary: &[u8]) -> Result<Verifier, CryptoError> {
        Verifier::new(&read_certs(armored_or_binary)?)
    }

    /// The long key ids accepted, for messages.
    pub fn key_ids(&self) -> String {
        self.keys
            .iter()
            .map(|k| hex_upper(k.legacy_key_id().as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Check one signature over literal data hashed into `hasher` (already fed the data).
    pub(super) fn check(&self, sig: &Signature, mut hasher: DynHasher) -> SigOutcome {
        let issuer = sig
            .issuer_key_id()
            .first()
            .map(|k| hex_upper(k.as_ref()))
            .or_else(|| {
                sig.issuer_fingerprint().first().map(|f| {
                    let b = f.as_bytes();
                    hex_upper(&b[b.len().saturating_sub(8)..])
                })
            })
            .unwrap_or_else(|| "unknown".into());
        let candidates: Vec<&VerifyPart> = self
            .keys
            .iter()
            .filter(|k| {
                let (ids, fps) = (sig.issuer_key_id(), sig.issuer_fingerprint());
                (ids.is_empty() && fps.is_empty())
                    || ids.iter().any(|i| **i == k.legacy_key_id())
                    || fps.iter().any(|f| **f == k.fingerprint())
            })
            .collect();
        if candidates.is_empty() {
            return SigOutcome::Foreign(issuer);
        }
        let (Some(config), Some(shv), Some(bytes)) =
            (sig.config(), sig.signed_hash_value(), sig.signature())
        else {
            return SigOutcome::Bad(
                issuer,
                format!("unsupported signature version {:?}", sig.version()),
            );
        };
        if config.typ != SignatureType::Binary {
            return SigOutcome::Bad(
                issuer,
                format!("unsupported signature type {:?}", config.typ),
            );
        }
        if !matches!(
            config.version(),
            pgp::packet::SignatureVersion::V4 | pgp::packet::SignatureVersion::V3
        ) {
            return SigOutcome::Bad(
                issuer,
                format!("unsupported signature version {:?}", config.version()),
            );
        }
        let len = match config.hash_signature_data(&mut hasher) {
            Ok(n) => n,
            Err(e) => return SigOutcome::Bad(issuer, e.to_string()),
        };
        match config.trailer(len) {
            Ok(t) => sha2::digest::DynDigest::update(hasher.as_mut(), &t),
            Err(e) => return SigOutcome::Bad(issuer, e.to_string()),
        }
        let digest = sha2::digest::DynDigest::finalize(hasher);
        if digest.len() < 2 || digest[..2] != shv {
            return SigOutcome::Bad(issuer, "digest mismatch".into());
        }
        for k in candidates {
            if k.verify(config.hash_alg, &digest, bytes).is_ok() {
                return SigOutcome::Good;
            }
        }
        SigOutcome::Bad(issuer, "invalid signature".into())
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verifier {{ key_ids: [{}] }}", self.key_ids())
    }
}

/// rPGP's hasher type (its `DynDigest` is not imported: `sha1::Digest` is, and the two
/// traits' method names clash).
pub(super) type DynHasher = Box<dyn sha2::digest::DynDigest + Send>;

pub(super) enum SigOutcome {
    Good,
    /// By one of our keys, but it does not verify (issuer, why).
    Bad(String, String),
    /// By a key we do not accept (its key id).
    Foreign(String),
}

/// Signature checking state of one message: a hash per one-pass signature (or leading
/// signature, old style), fed with the literal data as it is read.
pub(super) struct SigState {
    pub(super) verifier: Verifier,
    /// (hash algorithm, hasher, leading signature if the message put it before the data)
    pub(super) pending: Vec<(HashAlgorithm, DynHasher, Option<Signature>)>,
    pub(super) outcomes: Vec<SigOutcome>,
    pub(super) unsupported: Vec<String>,
}

impl SigState {
    pub(super) fn new(verifier: Verifier) -> Self {
        SigState {
            verifier,
            pending: Vec::new(),
            outcomes: Vec::new(),
            unsupported: Vec::new(),
        }
    }

    pub(super) fn start(&mut self, hash: HashAlgorithm, leading: Option<Signature>) {
        match hash.new_hasher() {
            Ok(h) => self.pending.push((hash, h, leading)),
            Err(e) => self.unsupported.push(format!("hash {hash:?}: {e}")),
        }
    }

    pub(super) fn one_pass(&mut self, body: &[u8]) {
        // version 3: version, type, hash, pubkey algorithm, key id (8), last
        if body.len() >= 13 && body[0] == 3 {
            self.start(HashAlgorithm::from(body[2]), None);
        } else {
            self.unsupported
                .push("one-pass signature packet of an unknown version".into());
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        for (_, h, _) in &mut self.pending {
            sha2::digest::DynDigest::update(h.as_mut(), data);
        }
    }

    /// A signature packet after the literal data: pair it with the innermost open one-pass
    /// signature of the same hash.
    pub(super) fn trailing(&mut self, sig: Signature) {
        let Some(hash) = sig.hash_alg() else {
            self.unsupported
                .push(format!("signature version {:?}", sig.version()));
            return;
        };
        let Some(pos) = self
            .pending
            .iter()
            .rposition(|(h, _, leading)| *h == hash && leading.is_none())
        else {
            self.unsupported
                .push("signature packet without a one-pass signature".into());
            return;
        };
        let (_, hasher, _) = self.pending.remove(pos);
        let o = self.verifier.check(&sig, hasher);
        self.outcomes.push(o);
    }

    /// The verdict at the end of the message.
    pub(super) fn finish(&mut self) -> Result<(), CryptoError> {
        for (_, hasher, leading) in std::mem::take(&mut self.pending) {
            if let Some(sig) = leading {
                let o = self.verifier.check(&sig, hasher);
                self.outcomes.push(o);
            }
        }
        let want = self.verifier.key_ids();
        if let Some(SigOutcome::Bad(id, why)) = self
            .outcomes
            .iter()
            .find(|o| matches!(o, SigOutcome::Bad(..)))
        {
            return Err(CryptoError::Unsigned(format!(
                "bad signature by key {id} ({why})"
            )));
        }
        if self.outcomes.iter().any(|o| matches!(o, SigOutcome::Good)) {
            return Ok(());
        }
        let foreign: Vec<&str> = self
            .outcomes
            .iter()
            .filter_map(|o| match o {
                SigOutcome::Foreign(id) => Some(id.as_str()),
                _ => None,
            })
            .collect();
        if !foreign.is_empty() {
            return Err(CryptoError::Unsigned(format!(
                "signed by key {}, not by the configured key {want}",
                foreign.join(", ")
            )));
        }
        if !self.unsupported.is_empty() {
            return Err(CryptoError::Unsigned(format!(
                "signature not checkable: {}",
                self.unsupported.join("; ")
            )));
        }
        Err(CryptoError::Unsigned(format!(
            "not signed; a signature by key {want} is required"
        )))
    }
}

// ---------------------------------------------------------------------------------------
// Opening
// ---------------------------------------------------------------------------------------
