//! The one error type of swiftdup and the one table that maps errors to exit codes.
//!
//! Every failure a user can cause or meet (bad config, wrong key, corrupt volume, ...) is a
//! variant here with a stable `code()` string for the JSON `error` event and a documented
//! process exit code. Where duplicity has an exit code for the same situation we reuse it, so
//! existing alerting keeps working after a migration.

use std::fmt;
use std::io;

/// Process exit codes. docs/exit-codes.md's table lists the same codes (see `EXIT_CODES`).
pub mod exit {
    pub const SUCCESS: i32 = 0;
    /// `verify` found differences between the archive and the source (duplicity uses 1 too).
    pub const DIFFERENCES: i32 = 1;
    /// Command line or environment is wrong (duplicity: 2).
    pub const USAGE: i32 = 2;
    /// The chain was made from another host name (duplicity: 3).
    pub const HOSTNAME_MISMATCH: i32 = 3;
    /// The cached manifest disagrees with the remote one (duplicity: 5).
    pub const MANIFEST_MISMATCH: i32 = 5;
    /// Done, with warnings: a backup could not read some files (carried forward), or a
    /// restore skipped entries it could not make or passed over the newest set.
    pub const PARTIAL: i32 = 10;
    /// `incremental` was asked for but there is no chain to extend (duplicity: 17).
    pub const NO_CHAIN: i32 = 17;
    /// `--file-to-restore` names nothing in the archive (duplicity: 19).
    pub const RESTORE_PATH_NOT_FOUND: i32 = 19;
    /// There is no complete backup set in the target (duplicity: 20).
    pub const NOTHING_TO_RESTORE: i32 = 20;
    /// A volume hash mismatch, a corrupt or truncated file (duplicity: 21).
    pub const INTEGRITY: i32 = 21;
    /// `--sign-key-file` is set and a file is unsigned, signed by another key, or its
    /// signature does not verify (duplicity: 22, "unsigned volume").
    pub const UNSIGNED: i32 = 22;
    /// The target differs from its newest chain record: a set deleted or replaced, a record
    /// replaced, or the newest records deleted with their sets (see `engine::record`).
    pub const TAMPERED: i32 = 24;
    /// An archive member would be written outside the restore target (`..`, absolute,
    /// through a symlink or a non-directory, a root entry that is no directory).
    pub const UNSAFE_MEMBER: i32 = 25;
    /// Another job holds the lock on this target (duplicity: 23, "already running").
    pub const LOCKED: i32 = 23;
    /// Wrong passphrase or no matching secret key (duplicity: 31, "gpg failed").
    pub const DECRYPTION: i32 = 31;
    /// The source directory differs from the one the chain was made from (duplicity: 42).
    pub const SOURCE_MISMATCH: i32 = 42;
    /// The storage could not be reached or kept failing after the retries.
    pub const BACKEND: i32 = 50;
    /// The target (container, directory) does not exist.
    pub const TARGET_MISSING: i32 = 51;
    /// The container key was rejected (HTTP 401): wrong or rotated.
    pub const KEY_REJECTED: i32 = 52;
    /// The storage refused the operation (HTTP 403, or a read-only key used to write).
    pub const ACCESS_DENIED: i32 = 53;
    /// Standard input, the source of `backup --stdin-name`, ended before
    /// `--stdin-min-bytes` or could not be read: nothing was stored (sysexits EX_DATAERR).
    pub const SHORT_INPUT: i32 = 65;
    /// SOURCE does not exist or is not a directory (sysexits EX_NOINPUT).
    pub const SOURCE_MISSING: i32 = 66;
    /// A bug: an invariant of swiftdup itself was broken.
    pub const INTERNAL: i32 = 70;
    /// A local file system error (disk full, permission denied, ...) on this machine's
    /// side: the spool (`--tempdir`), the cache, the restore target, the source, standard
    /// output (sysexits EX_IOERR). Apart from `BACKEND` because the fix is on another
    /// desk: a full pod volume is not an unreachable Swift.
    pub const LOCAL_IO: i32 = 74;
    /// Stopped by SIGINT.
    pub const SIGINT: i32 = 130;
    /// Standard output was closed by its reader (`swiftdup ls URL | head`): the run stops
    /// quietly with the status a Unix tool killed by SIGPIPE has (128 + 13), so that a
    /// pipeline behaves as it does with `cat` or `grep` (and `set -o pipefail` still sees
    /// that the output was cut short, which matters for `verify`).
    pub const OUTPUT_CLOSED: i32 = 141;
    /// Stopped by SIGTERM (how Kubernetes stops a pod).
    pub const SIGTERM: i32 = 143;
}

/// (exit code, stable error code, meaning), for docs/exit-codes.md and for the tests that cross-check
/// `k8s/` against the binary.
pub const EXIT_CODES: &[(i32, &str, &str)] = &[
    (exit::SUCCESS, "", "success"),
    (exit::DIFFERENCES, "differences", "verify found differences"),
    (exit::USAGE, "usage", "command line or environment is wrong"),
    (
        exit::HOSTNAME_MISMATCH,
        "hostname_mismatch",
        "chain was made by another --hostname",
    ),
    (
        exit::MANIFEST_MISMATCH,
        "manifest_mismatch",
        "cached manifest differs from the remote one",
    ),
    (
        exit::PARTIAL,
        "partial",
        "done with warnings: files unreadable or entries not restored",
    ),
    (
        exit::NO_CHAIN,
        "no_chain",
        "incremental asked for, but no chain to extend",
    ),
    (
        exit::RESTORE_PATH_NOT_FOUND,
        "path_not_found",
        "--file-to-restore not in the archive",
    ),
    (
        exit::NOTHING_TO_RESTORE,
        "no_backup",
        "no complete backup set in the target",
    ),
    (
        exit::INTEGRITY,
        "integrity",
        "hash mismatch, corrupt or truncated file",
    ),
    (
        exit::UNSIGNED,
        "unsigned",
        "file not signed by the --sign-key-file key",
    ),
    (
        exit::TAMPERED,
        "tampered",
        "target differs from its newest chain record",
    ),
    (
        exit::UNSAFE_MEMBER,
        "unsafe_member",
        "archive member would escape the restore target",
    ),
    (
        exit::LOCKED,
        "locked",
        "another job holds the target's lock",
    ),
    (
        exit::DECRYPTION,
        "decryption",
        "wrong passphrase or no matching secret key",
    ),
    (
        exit::SOURCE_MISMATCH,
        "source_mismatch",
        "chain was made from another source directory",
    ),
    (
        exit::BACKEND,
        "backend",
        "storage unreachable or failing after retries",
    ),
    (
        exit::TARGET_MISSING,
        "target_missing",
        "target container or directory does not exist",
    ),
    (
        exit::KEY_REJECTED,
        "key_rejected",
        "container key rejected (wrong or rotated)",
    ),
    (
        exit::ACCESS_DENIED,
        "access_denied",
        "storage refused the operation",
    ),
    (
        exit::SHORT_INPUT,
        "short_input",
        "standard input ended short or failed: nothing stored",
    ),
    (
        exit::SOURCE_MISSING,
        "source_missing",
        "SOURCE does not exist or is not a directory",
    ),
    (exit::INTERNAL, "internal", "a bug in swiftdup"),
    (
        exit::LOCAL_IO,
        "local_io",
        "local disk error (disk full, permission denied): spool, cache, restore target, source",
    ),
    (exit::SIGINT, "interrupted", "stopped by SIGINT"),
    (
        exit::OUTPUT_CLOSED,
        "output_closed",
        "standard output closed by its reader (as SIGPIPE)",
    ),
    (exit::SIGTERM, "interrupted", "stopped by SIGTERM"),
];

/// Everything that can stop a swiftdup command.
#[derive(Debug)]
pub enum Error {
    /// Bad command line or environment; the message names the option or variable.
    Usage(String),
    HostnameMismatch {
        recorded: String,
        current: String,
    },
    SourceMismatch {
        recorded: String,
        current: String,
    },
    ManifestMismatch(String),
    NoChain(String),
    PathNotFound(String),
    NothingToRestore(String),
    /// Data is damaged: `object` names the file (volume, manifest) when known.
    Integrity {
        object: String,
        detail: String,
    },
    /// A signature by the `--sign-key-file` key is missing, by another key, or bad.
    Unsigned {
        object: String,
        detail: String,
    },
    UnsafeMember {
        object: String,
        member: String,
        /// What it would do: leave the target, write through a link, ...
        why: String,
    },
    SourceMissing(String),
    /// The target differs from its newest chain record; `problem` is the error code
    /// (`set_vanished`, `set_replaced`, `record_replaced`, `records_rolled_back`).
    Tampered {
        object: String,
        problem: &'static str,
        detail: String,
    },
    /// Standard input (`backup --stdin-name`) was cut short or failed; the set was not
    /// stored.
    ShortInput(String),
    /// An object the chain needs is not in the target.
    NotFound(String),
    Locked(String),
    Decryption {
        object: String,
        detail: String,
    },
    /// Storage trouble; `object` and `trans_id` help operators find the request server-side.
    Backend {
        object: String,
        detail: String,
        trans_id: Option<String>,
    },
    TargetMissing(String),
    KeyRejected {
        object: String,
        trans_id: Option<String>,
    },
    AccessDenied {
        object: String,
        detail: String,
        trans_id: Option<String>,
    },
    /// A file system error on this machine's side (spool, cache, restore target, source,
    /// standard output), with the path it happened on. Storage errors, the file://
    /// target's directory included, are `Backend`: its put, get and delete always were.
    Io {
        path: String,
        source: io::Error,
    },
    /// One attempt at a storage request failed in a way the next may not (a 503, a reset,
    /// a truncated download, a stale NFS handle): `backend::retry` tries again, after
    /// `after` at least, and gives `err` back once the attempts are used up. Reported as
    /// `err` should it ever reach a user.
    Transient {
        err: Box<Error>,
        after: Option<std::time::Duration>,
        /// The request's method, for the `retry` event.
        method: &'static str,
    },
    /// Standard output's reader went away (EPIPE): not a failure of the run, see
    /// `exit::OUTPUT_CLOSED`.
    OutputClosed,
    Interrupted(i32),
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => exit::USAGE,
            Error::HostnameMismatch { .. } => exit::HOSTNAME_MISMATCH,
            Error::SourceMismatch { .. } => exit::SOURCE_MISMATCH,
            Error::ManifestMismatch(_) => exit::MANIFEST_MISMATCH,
            Error::NoChain(_) => exit::NO_CHAIN,
            Error::PathNotFound(_) => exit::RESTORE_PATH_NOT_FOUND,
            Error::NothingToRestore(_) => exit::NOTHING_TO_RESTORE,
            Error::Integrity { .. } => exit::INTEGRITY,
            Error::Unsigned { .. } => exit::UNSIGNED,
            Error::UnsafeMember { .. } => exit::UNSAFE_MEMBER,
            Error::SourceMissing(_) => exit::SOURCE_MISSING,
            Error::ShortInput(_) => exit::SHORT_INPUT,
            Error::Tampered { .. } => exit::TAMPERED,
            Error::NotFound(_) => exit::INTEGRITY,
            Error::Locked(_) => exit::LOCKED,
            Error::Decryption { .. } => exit::DECRYPTION,
            Error::Backend { .. } => exit::BACKEND,
            Error::TargetMissing(_) => exit::TARGET_MISSING,
            Error::KeyRejected { .. } => exit::KEY_REJECTED,
            Error::AccessDenied { .. } => exit::ACCESS_DENIED,
            Error::Io { .. } => exit::LOCAL_IO,
            Error::OutputClosed => exit::OUTPUT_CLOSED,
            Error::Interrupted(code) => *code,
            Error::Internal(_) => exit::INTERNAL,
            Error::Transient { err, .. } => err.exit_code(),
        }
    }

    /// The stable machine-readable code put in the `error` log event.
    pub fn code(&self) -> &'static str {
        let n = self.exit_code();
        if let Error::NotFound(_) = self {
            return "not_found";
        }
        if let Error::Transient { err, .. } = self {
            return err.code();
        }
        if let Error::Tampered { problem, .. } = self {
            return problem;
        }
        EXIT_CODES
            .iter()
            .find(|(c, _, _)| *c == n)
            .map(|(_, s, _)| *s)
            .unwrap_or("internal")
    }

    /// The object (remote file name) the error is about, if any.
    pub fn object(&self) -> Option<&str> {
        match self {
            Error::Integrity { object, .. }
            | Error::Unsigned { object, .. }
            | Error::Decryption { object, .. }
            | Error::Backend { object, .. }
            | Error::KeyRejected { object, .. }
            | Error::AccessDenied { object, .. } => Some(object),
            Error::Io { path, .. } => Some(path),
            Error::NotFound(o) => Some(o),
            Error::Tampered { object, .. } => Some(object),
            Error::UnsafeMember { object, .. } => Some(object),
            Error::Transient { err, .. } => err.object(),
            _ => None,
        }
    }

    /// The Swift `X-Trans-Id` of the failing request, if any.
    pub fn trans_id(&self) -> Option<&str> {
        match self {
            Error::Backend { trans_id, .. }
            | Error::KeyRejected { trans_id, .. }
            | Error::AccessDenied { trans_id, .. } => trans_id.as_deref(),
            Error::Transient { err, .. } => err.trans_id(),
            _ => None,
        }
    }

    /// Wrap an I/O error with the path it happened on.
    pub fn io(path: impl fmt::Display, source: io::Error) -> Error {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    /// A failed write to standard output: a reader that went away (`| head`) ends the run
    /// quietly (`OutputClosed`); anything else (a full disk behind `>`) is a local error.
    pub fn stdout(e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Error::OutputClosed
        } else {
            Error::io("standard output", e)
        }
    }

    pub fn integrity(object: impl Into<String>, detail: impl fmt::Display) -> Error {
        Error::Integrity {
            object: object.into(),
            detail: detail.to_string(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Transient { err, .. } => err.fmt(f),
            Error::Usage(m) => write!(f, "{m}"),
            Error::HostnameMismatch { recorded, current } => write!(
                f,
                "the chain was made on host {recorded:?} but this is {current:?}; \
                 set --hostname {recorded:?} or use --allow-source-mismatch"
            ),
            Error::SourceMismatch { recorded, current } => write!(
                f,
                "the chain was made from source {recorded:?} but this run backs up {current:?}; \
                 use --allow-source-mismatch if that is intended"
            ),
            Error::ManifestMismatch(m) => write!(f, "{m}"),
            Error::NoChain(m) => write!(f, "{m}"),
            Error::PathNotFound(p) => write!(f, "{p:?} is not in the backup"),
            Error::NothingToRestore(m) => write!(f, "{m}"),
            Error::Integrity { object, detail } => write!(f, "{object}: {detail}"),
            Error::Unsigned { object, detail } => write!(f, "{object}: {detail}"),
            Error::UnsafeMember {
                object,
                member,
                why,
            } => {
                write!(f, "{object}: refused member {member:?}: {why}")
            }
            Error::SourceMissing(p) => {
                write!(f, "source {p:?} does not exist or is not a directory")
            }
            Error::ShortInput(m) => write!(f, "{m}"),
            Error::Tampered { object, detail, .. } => write!(f, "{object}: {detail}"),
            Error::NotFound(o) => write!(f, "{o}: not found in the target"),
            Error::Locked(m) => write!(f, "{m}"),
            Error::Decryption { object, detail } => write!(f, "cannot decrypt {object}: {detail}"),
            Error::Backend {
                object,
                detail,
                trans_id,
            } => {
                write!(f, "{object}: {detail}")?;
                if let Some(t) = trans_id {
                    write!(f, " (X-Trans-Id {t})")?;
                }
                Ok(())
            }
            Error::TargetMissing(m) => write!(f, "{m}"),
            Error::KeyRejected { object, .. } => {
                write!(f, "container key rejected (wrong or rotated) on {object}")
            }
            Error::AccessDenied { object, detail, .. } => write!(f, "{object}: {detail}"),
            Error::Io { path, source } => write!(f, "{path}: {source}"),
            Error::OutputClosed => write!(f, "standard output was closed by its reader"),
            Error::Interrupted(code) => {
                let sig = if *code == exit::SIGINT {
                    "SIGINT"
                } else {
                    "SIGTERM"
                };
                write!(f, "interrupted by {sig}")
            }
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_storage_and_closed_output_are_told_apart() {
        let local = Error::io("/tmp/spool", io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(
            (local.exit_code(), local.code()),
            (exit::LOCAL_IO, "local_io")
        );
        let storage = Error::Backend {
            object: "/srv/backup".into(),
            detail: "cannot create: Read-only file system".into(),
            trans_id: None,
        };
        assert_eq!(
            (storage.exit_code(), storage.code()),
            (exit::BACKEND, "backend")
        );
        let closed = Error::stdout(io::Error::from(io::ErrorKind::BrokenPipe));
        assert!(matches!(closed, Error::OutputClosed));
        assert_eq!(closed.code(), "output_closed");
        let full = Error::stdout(io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!(full.code(), "local_io");
        assert_eq!(full.object(), Some("standard output"));
    }

    #[test]
    fn every_exit_code_is_in_the_table_once() {
        let mut seen = std::collections::BTreeSet::new();
        for (code, _, _) in EXIT_CODES {
            assert!(seen.insert(*code), "exit code {code} twice in EXIT_CODES");
        }
    }
}
