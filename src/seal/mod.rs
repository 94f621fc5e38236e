//! Sealing and opening the files a backup stores: gzip (`deflate`, also the compressor
//! inside OpenPGP) and OpenPGP (`pgp`, on rPGP), with `vpaes` as the constant-time AES of
//! the wasm build (no AES-NI there).

pub mod deflate;
pub mod pgp;
#[cfg(any(target_arch = "wasm32", test))]
pub mod vpaes;

use crate::archive::names::Suffix;
use crate::error::{Error, Result};
use std::io::{self, Read};

/// Open a sealed stream by its suffix.
pub fn open_sealed<'a>(
    r: impl Read + 'a,
    suffix: Suffix,
    keys: &pgp::OpenKeys,
    object: &str,
) -> Result<Box<dyn Read + 'a>> {
    open_sealed_vouched(r, suffix, keys, object, None)
}

/// Like [`open_sealed`], for a stream whose bytes the caller checked against an
/// authenticated hash and vouches for ([`pgp::Vouch`]).
pub fn open_sealed_vouched<'a>(
    r: impl Read + 'a,
    suffix: Suffix,
    keys: &pgp::OpenKeys,
    object: &str,
    vouch: Option<pgp::Vouch>,
) -> Result<Box<dyn Read + 'a>> {
    if let (Some(v), Suffix::None | Suffix::Gzip) = (&keys.verify, suffix) {
        // Only OpenPGP files can carry a signature; stock lets unencrypted files through
        // unchecked, which would let anyone swap a signed archive for an unsigned one.
        return Err(Error::Unsigned {
            object: object.into(),
            detail: format!(
                "not an OpenPGP file, so not signed; a signature by key {} is required",
                v.key_ids()
            ),
        });
    }
    Ok(match suffix {
        Suffix::None => Box::new(r),
        Suffix::Gzip => Box::new(pgp::open_gzip(r)),
        Suffix::Gpg => {
            let opened = pgp::open_pgp_vouched(r, keys, vouch);
            let (reader, warnings) = opened.map_err(|e| match e {
                // Not a wrong passphrase: none was given. Say which setting is missing.
                pgp::CryptoError::WrongPassphrase
                    if keys.passphrase.is_none() && keys.secret_keys.is_empty() =>
                {
                    Error::Usage(format!(
                        "PASSPHRASE is not set, and {object} is encrypted: set PASSPHRASE \
                         (or --decrypt-key-file for a public-key backup)"
                    ))
                }
                e => crypto_error(object, e),
            })?;
            for w in warnings {
                crate::log::warn(
                    "warning",
                    &format!("{object}: {w}"),
                    vec![("object", object.into())],
                );
            }
            reader
        }
    })
}

/// Map a crypto failure on `object` to the error a user sees.
pub fn crypto_error(object: &str, e: pgp::CryptoError) -> Error {
    match e {
        pgp::CryptoError::WrongPassphrase => Error::Decryption {
            object: object.into(),
            detail: "wrong passphrase".into(),
        },
        pgp::CryptoError::NoMatchingKey(ids) => Error::Decryption {
            object: object.into(),
            detail: format!(
                "no matching secret key (encrypted to {ids}); pass the right --decrypt-key-file"
            ),
        },
        pgp::CryptoError::Key(m) => Error::Usage(format!("key file: {m}")),
        pgp::CryptoError::Unsigned(detail) => Error::Unsigned {
            object: object.into(),
            detail,
        },
        pgp::CryptoError::Io(e) => map_read_error(object, e),
        other => Error::integrity(object, other),
    }
}

/// A read error inside a decrypting/decompressing stream is damage, not a disk problem.
pub fn map_read_error(object: &str, e: io::Error) -> Error {
    // Errors raised by our own readers carry a typed payload; others are data damage.
    if let Some(inner) = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<pgp::CryptoError>())
    {
        return match inner {
            pgp::CryptoError::WrongPassphrase => Error::Decryption {
                object: object.into(),
                detail: "wrong passphrase".into(),
            },
            pgp::CryptoError::NoMatchingKey(ids) => Error::Decryption {
                object: object.into(),
                detail: format!("no matching secret key ({ids})"),
            },
            pgp::CryptoError::Unsigned(detail) => Error::Unsigned {
                object: object.into(),
                detail: detail.clone(),
            },
            other => Error::integrity(object, other),
        };
    }
    Error::integrity(object, format!("damaged or truncated data: {e}"))
}
