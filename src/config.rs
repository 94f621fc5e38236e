//! One validated configuration for a run, built from flags and the environment by `app::configure`.
//! Nothing below `commands` sees the command line; everything it needs is here.

use crate::archive::names::{Prefixes, Suffix};
use crate::archive::Index;
use crate::seal::pgp::{OpenKeys, SealMode};
use std::path::PathBuf;

/// A secret string that never prints itself.
#[derive(Clone, Default)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// A secret from the environment: `NAME`, or the contents of the file `NAME_FILE` names
/// (what a Kubernetes Secret mounted as files, or a Docker secret, gives), one trailing
/// newline stripped. Both set is a usage error, as is a file that cannot be read. An empty
/// value is returned as it is (an empty `PASSPHRASE` is a passphrase); callers for which
/// empty means unset filter it.
pub fn secret_var(name: &str) -> crate::error::Result<Option<String>> {
    use crate::error::Error;
    let file_var = format!("{name}_FILE");
    let direct = std::env::var(name).ok();
    let path = std::env::var_os(&file_var).filter(|v| !v.is_empty());
    match (direct, path) {
        (Some(_), Some(_)) => Err(Error::Usage(format!(
            "{name} and {file_var} are both set: set one of them"
        ))),
        (Some(v), None) => Ok(Some(v)),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let shown = std::path::Path::new(&path).display().to_string();
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::Usage(format!("{file_var}: cannot read {shown}: {e}")))?;
            let mut v = String::from_utf8(bytes)
                .map_err(|_| Error::Usage(format!("{file_var}: {shown} is not UTF-8 text")))?;
            if v.ends_with('\n') {
                v.pop();
                if v.ends_with('\r') {
                    v.pop();
                }
            }
            Ok(Some(v))
        }
    }
}

/// How sets are sealed and opened.
pub struct Crypto {
    pub seal: SealMode,
    pub open: OpenKeys,
    /// The suffix new files get.
    pub suffix: Suffix,
    /// Public-key mode without a secret key: old signatures cannot be read.
    pub can_read_own: bool,
}

/// Options shared by every command.
pub struct Common {
    pub url: String,
    pub prefixes: Prefixes,
    pub archive_dir: PathBuf,
    /// The cache sub-directory name: `--name`, or the MD5 of the URL as typed.
    pub name: String,
    pub tempdir: PathBuf,
    /// "now", or `--current-time`.
    pub now: i64,
    pub crypto: Crypto,
    pub progress_interval: u64,
    /// Retries and HTTP timeouts of remote backends (`--num-retries`, ...).
    pub backend: crate::backend::Options,
    /// The chain record a writing run stores drops the evidence of earlier ones (sets that
    /// vanished, records rolled back): an operator has looked (`--acknowledge-changes`).
    pub acknowledge_changes: bool,
}

/// `backup --stdin-name NAME -`: standard input stored as the file NAME.
#[derive(Clone, Debug)]
pub struct StdinSource {
    pub name: String,
    /// Fewer bytes than this fail the run and store nothing (`--stdin-min-bytes`).
    pub min_bytes: u64,
}

/// Options of `full`, `incremental` and `backup`.
pub struct BackupOpts {
    /// The directory backed up (`-` with `stdin`).
    pub source: PathBuf,
    /// Standard input instead of a directory.
    pub stdin: Option<StdinSource>,
    /// `Some(true)` full, `Some(false)` incremental, `None` decide.
    pub force_full: Option<bool>,
    pub volsize: u64,
    pub hostname: String,
    pub allow_source_mismatch: bool,
    /// Let an incremental encrypt to other keys than the chain's (`--allow-key-change`).
    pub allow_key_change: bool,
    pub full_if_older_than: Option<i64>,
    /// Make a full backup when the old signatures cannot be read (public-key mode without
    /// the secret key and without a cache) instead of failing.
    pub full_if_no_signatures: bool,
    /// Make a full backup rather than an incremental beyond this many (`--max-chain-length`).
    pub max_chain_length: Option<usize>,
    pub compress_level: u32,
    /// Uploads at once (`--concurrency`); 1 runs every stage in one thread.
    pub concurrency: usize,
    /// The selection options (`--include`, `--exclude`, ...) in command-line order; empty
    /// for everything.
    pub selection: Vec<crate::engine::write::select::RuleSpec>,
}

/// Options of `restore`.
pub struct RestoreOpts {
    pub target: PathBuf,
    pub time: Option<i64>,
    pub file_to_restore: Option<Index>,
    pub force: bool,
    pub numeric_owner: bool,
    pub restore_ownership: bool,
    /// Above 1, each set's next volume is fetched and checked while the one before is read.
    pub concurrency: usize,
}
