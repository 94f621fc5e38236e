//! Flags and environment -> the validated configuration: keys and passphrases read and
//! checked, contradictions refused, log settings, and every secret registered with the
//! log writer before anything can print it.

use super::args::*;
use crate::archive::names::{Prefixes, Suffix};
use crate::archive::time::parse_user_time;
use crate::config::{Common, Crypto, Secret};
use crate::error::{Error, Result};
use crate::log::{self, Format, Level};
use crate::seal::pgp::{self, OpenKeys, SealMode};
use std::ffi::OsString;
use std::path::PathBuf;

/// `NAME` or `NAME_FILE` (see `config::secret_var`).
pub(super) fn env_secret(name: &str) -> Result<Option<Secret>> {
    Ok(crate::config::secret_var(name)?.map(Secret))
}

pub(super) fn read_file(p: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::Usage(format!("{what} {}: {e}", p.display())))
}

pub(super) fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    crate::archive::hex(&Md5::digest(s.as_bytes()))
}

pub(super) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `--sign-key-file`: the verifier every verb uses on what it reads, and for backups the
/// unlocked signing key.
pub(super) fn sign_key(
    p: &PathBuf,
    for_backup: bool,
    passphrase: &Option<Secret>,
) -> Result<(pgp::Verifier, Option<pgp::SignKey>)> {
    let flag = "--sign-key-file";
    let bytes = read_file(p, flag)?;
    let bad = |e: pgp::CryptoError| Error::Usage(format!("{flag} {}: {e}", p.display()));
    let verifier = pgp::Verifier::from_key_file(&bytes).map_err(bad)?;
    if !for_backup {
        return Ok((verifier, None));
    }
    let secret = pgp::read_secret_keys(&bytes).map_err(|_| {
        Error::Usage(format!(
            "{flag} {}: no secret key in it; a backup needs the secret key to sign \
             (a public key is enough to restore and verify)",
            p.display()
        ))
    })?;
    if secret.len() != 1 {
        return Err(Error::Usage(format!(
            "{flag} {}: {} secret keys; give the one to sign with",
            p.display(),
            secret.len()
        )));
    }
    // duplicity's variables: SIGN_PASSPHRASE, and PASSPHRASE when that is not set.
    let pass = env_secret("SIGN_PASSPHRASE")?.or_else(|| passphrase.clone());
    let key =
        pgp::SignKey::new(&secret[0], pass.as_ref().map(|s| s.0.as_str())).map_err(
            |e| match e {
                pgp::CryptoError::WrongPassphrase => Error::Decryption {
                    object: p.display().to_string(),
                    detail:
                        "wrong passphrase for the signing key (SIGN_PASSPHRASE, else PASSPHRASE)"
                            .into(),
                },
                other => bad(other),
            },
        )?;
    crate::log::debug(
        "sign_key",
        &format!("signing with key {} ({:?})", key.key_id(), key.hash()),
        vec![],
    );
    Ok((verifier, Some(key)))
}

/// Refuse options that contradict each other, before any file is read or the target is
/// touched: honouring one would silently drop the other (a plaintext backup when keys to
/// encrypt to were given). Checked for every verb, because backup and restore jobs are
/// usually configured from the same variables, and such a pair describes no archive.
///
/// Left alone on purpose: `--decrypt-key-file` (and `PASSPHRASE`) with `--no-encryption`,
/// since files are opened by their suffix and a chain may mix `.gz` and `.gpg` sets, so
/// the key is still used; options a verb does not use (`--compare-data` outside `verify`,
/// `--force` on a backup, ...), which are ignored as in duplicity.
pub(super) fn refuse_contradictions(o: &Opts) -> Result<()> {
    if !o.no_encryption {
        return Ok(());
    }
    let given = |files: &[PathBuf]| files.iter().any(|p| !p.as_os_str().is_empty());
    let refuse = |flag: &str, env: &str, why: &str| {
        Err(Error::Usage(format!(
            "--no-encryption (SWIFTDUP_NO_ENCRYPTION) contradicts {flag} ({env}): {why}; \
             drop one of them"
        )))
    };
    if given(&o.encrypt_key_file) {
        return refuse(
            "--encrypt-key-file",
            "SWIFTDUP_ENCRYPT_KEY_FILE",
            "a backup would be stored unencrypted although keys to encrypt to were given",
        );
    }
    if given(&o.hidden_encrypt_key_file) {
        return refuse(
            "--hidden-encrypt-key-file",
            "SWIFTDUP_HIDDEN_ENCRYPT_KEY_FILE",
            "a backup would be stored unencrypted although keys to encrypt to were given",
        );
    }
    if o.sign_key_file
        .as_ref()
        .is_some_and(|p| !p.as_os_str().is_empty())
    {
        return refuse(
            "--sign-key-file",
            "SWIFTDUP_SIGN_KEY_FILE",
            "signing needs OpenPGP, and gzip files cannot carry a signature (stock duplicity \
             does not sign them either)",
        );
    }
    Ok(())
}

/// Build the shared configuration.
pub(super) fn common(url: &str, o: &Opts, for_backup: bool) -> Result<Common> {
    refuse_contradictions(o)?;
    let now = o.current_time.unwrap_or_else(now);
    let tempdir = o
        .tempdir
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let archive_dir = archive_dir(o, &tempdir)?;
    let crypto = crypto(o, for_backup)?;
    Ok(Common {
        url: url.to_string(),
        prefixes: Prefixes {
            file: o.file_prefix.clone(),
            archive: o.file_prefix_archive.clone(),
            manifest: o.file_prefix_manifest.clone(),
            signature: o.file_prefix_signature.clone(),
        },
        archive_dir,
        name: o.name.clone().unwrap_or_else(|| md5_hex(url)),
        tempdir,
        now,
        crypto,
        progress_interval: o.progress_interval,
        backend: crate::backend::Options::from_flags(
            o.num_retries,
            o.backend_retry_delay,
            o.http_timeout,
            o.http_body_timeout,
            o.ca_file.clone(),
            (o.limit_upload, o.limit_download),
        )?,
        acknowledge_changes: o.acknowledge_changes,
    })
}

/// `--archive-dir`, else duplicity's default under XDG_CACHE_HOME or HOME.
fn archive_dir(o: &Opts, tempdir: &std::path::Path) -> Result<PathBuf> {
    Ok(match &o.archive_dir {
        Some(d) => d.clone(),
        None => match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
            (Some(x), _) => PathBuf::from(x).join("duplicity"),
            (None, Some(h)) => PathBuf::from(h).join(".cache/duplicity"),
            // No home (a scratch container): a cache that lives for this run only, in a
            // directory other users may share. Claimed here, so that one this user cannot
            // trust stops the run before the target is touched.
            (None, None) => {
                let dir = tempdir.join("swiftdup-cache");
                crate::local::cache::claim_shared_dir(&dir)?;
                dir
            }
        },
    })
}

/// How files are sealed and opened: gzip, public keys or the passphrase, signed or not,
/// and the keys that open what the target holds.
fn crypto(o: &Opts, for_backup: bool) -> Result<Crypto> {
    let passphrase = env_secret("PASSPHRASE")?;
    let mut secret_keys = Vec::new();
    for p in &o.decrypt_key_file {
        secret_keys.extend(
            pgp::read_secret_keys(&read_file(p, "--decrypt-key-file")?)
                .map_err(|e| Error::Usage(format!("--decrypt-key-file {}: {e}", p.display())))?,
        );
    }
    let level = o.compress_level;
    let sign = match &o.sign_key_file {
        Some(p) => Some(sign_key(p, for_backup, &passphrase)?),
        None => None,
    };
    let open = OpenKeys {
        passphrase: passphrase.as_ref().map(|s| s.0.clone()),
        secret_keys,
        verify: sign.as_ref().map(|(v, _)| v.clone()),
    };
    let crypto = if o.no_encryption {
        Crypto {
            seal: SealMode::Gzip { level },
            open,
            suffix: Suffix::Gzip,
            can_read_own: true,
        }
    } else if !o.encrypt_key_file.is_empty() || !o.hidden_encrypt_key_file.is_empty() {
        let load = |files: &[PathBuf], flag: &str| -> Result<Vec<_>> {
            let mut v = Vec::new();
            for p in files {
                v.extend(
                    pgp::read_public_keys(&read_file(p, flag)?)
                        .map_err(|e| Error::Usage(format!("{flag} {}: {e}", p.display())))?,
                );
            }
            Ok(v)
        };
        let recipients = load(&o.encrypt_key_file, "--encrypt-key-file")?;
        let hidden = load(&o.hidden_encrypt_key_file, "--hidden-encrypt-key-file")?;
        let can_read_own = !open.secret_keys.is_empty();
        Crypto {
            seal: SealMode::PublicKey {
                recipients,
                hidden,
                level,
            },
            open,
            suffix: Suffix::Gpg,
            can_read_own,
        }
    } else {
        let pass = match &passphrase {
            Some(p) if !p.0.is_empty() => p.0.clone(),
            _ if for_backup => {
                return Err(Error::Usage(
                    "PASSPHRASE is not set: set it for symmetric encryption, or use --encrypt-key-file or --no-encryption".into(),
                ))
            }
            _ => String::new(),
        };
        Crypto {
            seal: SealMode::Symmetric {
                passphrase: pass,
                level,
            },
            open,
            suffix: Suffix::Gpg,
            can_read_own: true,
        }
    };
    let crypto = match sign.and_then(|(_, k)| k) {
        Some(key) => Crypto {
            seal: SealMode::Signed {
                inner: Box::new(crypto.seal),
                key: std::sync::Arc::new(key),
            },
            ..crypto
        },
        None => crypto,
    };
    Ok(crypto)
}

pub(super) fn parse_index(p: &str) -> crate::archive::Index {
    p.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// The log format and level the options ask for. Anything else is refused rather than
/// mapped to a default: `--log-level verbose` silently meaning `info` hides the debug
/// events the operator asked for, and `yaml` would still get JSON.
pub(super) fn log_settings(o: &Opts) -> Result<(Format, Level)> {
    use std::io::IsTerminal;
    // An empty value counts as unset, as for the other variables (a manifest's `value: ""`).
    let asked = o.log_format.as_deref().map(str::to_ascii_lowercase);
    let format = match asked.as_deref().filter(|f| !f.is_empty()) {
        Some("json") => Format::Json,
        Some("text") => Format::Text,
        Some(_) => {
            return Err(Error::Usage(format!(
                "--log-format / SWIFTDUP_LOG_FORMAT: {:?} is not a log format; use json or \
                 text",
                o.log_format.as_deref().unwrap_or_default()
            )))
        }
        None if std::io::stderr().is_terminal() => Format::Text,
        None => Format::Json,
    };
    let level = match o.log_level.to_ascii_lowercase().as_str() {
        "debug" => Level::Debug,
        "info" | "" => Level::Info,
        "warn" | "warning" => Level::Warn,
        "error" => Level::Error,
        _ => {
            return Err(Error::Usage(format!(
                "--log-level / SWIFTDUP_LOG_LEVEL: {:?} is not a log level; use debug, info, \
                 warn or error",
                o.log_level
            )))
        }
    };
    Ok((format, level))
}

/// Register every secret value this run may meet with the log writer, which scrubs them
/// from whatever it writes (see `log`): the container keys, the passphrases, and the
/// password of every URL on the command line or in the environment (the target,
/// `--pushgateway-url`, `SWIFT_STORAGE_URL`, a proxy variable the HTTP client reads).
/// Done before the command line is parsed, so that its errors are scrubbed too.
pub(super) fn register_secrets(args: &[OsString]) {
    use crate::backend::swift::{ENV_FULL_KEY, ENV_READ_KEY};
    for var in ["PASSPHRASE", "SIGN_PASSPHRASE", ENV_FULL_KEY, ENV_READ_KEY] {
        let is_key = var == ENV_FULL_KEY || var == ENV_READ_KEY;
        let add = |v: &str| {
            log::add_secret(v);
            // A key variable may hold several keys (rotation): each is a secret.
            if is_key {
                for k in v.split([',', '\n', '\r']) {
                    log::add_secret(k);
                }
            }
        };
        if let Ok(v) = std::env::var(var) {
            add(&v);
        }
        // The same secret from a file (a refused pair or an unreadable file is reported
        // later, when the value is read).
        if let Ok(Some(v)) = crate::config::secret_var(var) {
            add(&v);
        }
    }
    let env = std::env::vars_os().map(|(_, v)| v);
    for v in args.iter().cloned().chain(env) {
        let v = v.to_string_lossy();
        if v.contains("://") {
            log::add_url_secrets(&v);
        }
    }
}

pub(super) fn user_time(t: &str, now: i64, flag: &str) -> Result<i64> {
    parse_user_time(t, now).map_err(|m| Error::Usage(format!("{flag}: {m}")))
}
