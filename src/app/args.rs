//! The command line: clap's definitions of duplicity's verbs and options (every option
//! also readable from `SWIFTDUP_<OPTION>`), duplicity's implicit verbs, and the selection
//! options put back in the order they were given.

use crate::engine::write::select::RuleSpec;
use crate::error::{Error, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "swiftdup",
    version,
    about = "Duplicity-compatible encrypted incremental backups to OpenStack Swift (container keys) and file:// targets"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Full backup of SOURCE to URL.
    Full(BackupArgs),
    /// Incremental backup (fails when there is no chain to extend).
    #[command(visible_alias = "incr", alias = "inc")]
    Incremental(BackupArgs),
    /// Incremental when a usable chain exists, else full (also `swiftdup SOURCE URL`).
    #[command(alias = "bu")]
    Backup(BackupArgs),
    /// Restore URL into TARGET (also `swiftdup URL TARGET`).
    #[command(alias = "rb")]
    Restore(RestoreArgs),
    /// Check every volume of the chain at --time and compare the result with SOURCE.
    #[command(alias = "vb")]
    Verify(VerifyArgs),
    /// Chains, sets, incomplete and orphaned sets, locks (--json: one JSON document).
    #[command(visible_alias = "status", alias = "st")]
    CollectionStatus(UrlArgs),
    /// The files of the backup at --time, from the signature files (--json: JSON lines).
    #[command(visible_alias = "ls")]
    ListCurrentFiles(UrlArgs),
    /// Delete what interrupted runs left: incomplete and orphaned sets, unused signature
    /// files, expired locks (lists only, unless --force).
    #[command(alias = "cl")]
    Cleanup(UrlArgs),
    /// Delete the chains that end before TIME, never the newest (lists only, unless --force).
    #[command(alias = "ro")]
    RemoveOlderThan(OlderThanArgs),
    /// Keep the newest N chains, delete older ones (lists only, unless --force).
    #[command(name = "remove-all-but-n-full", alias = "ra")]
    RemoveAllButNFull(CountArgs),
    /// Keep the newest N chains whole and only the full sets of older ones (lists only,
    /// unless --force).
    #[command(name = "remove-all-inc-of-but-n-full", alias = "ri")]
    RemoveAllIncOfButNFull(CountArgs),
    /// Calendar retention: delete the chains no --keep-* rule keeps, each chain dated by its
    /// newest set; never the newest chain (lists only, unless --force).
    Forget(UrlArgs),
    /// Integrity with the read key and no source: every manifest against the listing, then
    /// every volume (or --read-data-subset) downloaded, hashed and opened to the last byte.
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// Target to check.
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    /// Read only part n of t of the volumes (n/t: over t runs, n = 1..t reads them all
    /// once) or about x% of them, chosen at random (x%).
    #[arg(long, value_name = "n/t|x%", env = "SWIFTDUP_READ_DATA_SUBSET")]
    pub read_data_subset: Option<String>,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Target to verify.
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    /// Directory to compare with.
    #[arg(env = "SWIFTDUP_SOURCE")]
    pub source: PathBuf,
    #[command(flatten)]
    pub opts: Opts,
    /// The selection options of `opts` in the order they apply (see `BackupArgs`).
    #[arg(skip)]
    pub selection: Vec<RuleSpec>,
}

#[derive(Args, Debug)]
pub struct UrlArgs {
    /// Target: file:///absolute/path or swiftkeys://container[/prefix].
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Args, Debug)]
pub struct OlderThanArgs {
    /// Cutoff: an interval before now (3M, 1Y), a date, or epoch seconds.
    #[arg(value_name = "TIME", env = "SWIFTDUP_REMOVE_TIME")]
    pub older_than: String,
    /// Target.
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Args, Debug)]
pub struct CountArgs {
    /// How many chains (full backups) to keep.
    #[arg(value_name = "N", env = "SWIFTDUP_REMOVE_COUNT", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: u64,
    /// Target.
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    #[command(flatten)]
    pub opts: Opts,
}

impl Command {
    pub(super) fn opts(&self) -> &Opts {
        match self {
            Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => &a.opts,
            Command::Restore(a) => &a.opts,
            Command::Verify(a) => &a.opts,
            Command::CollectionStatus(a) | Command::ListCurrentFiles(a) | Command::Cleanup(a) => {
                &a.opts
            }
            Command::RemoveOlderThan(a) => &a.opts,
            Command::RemoveAllButNFull(a) | Command::RemoveAllIncOfButNFull(a) => &a.opts,
            Command::Forget(a) => &a.opts,
            Command::Check(a) => &a.opts,
        }
    }

    /// The verb's name, as logged and in metrics.
    pub(super) fn name(&self) -> &'static str {
        match self {
            Command::Full(_) => "full",
            Command::Incremental(_) => "incremental",
            Command::Backup(_) => "backup",
            Command::Restore(_) => "restore",
            Command::Verify(_) => "verify",
            Command::CollectionStatus(_) => "collection-status",
            Command::ListCurrentFiles(_) => "list-current-files",
            Command::Cleanup(_) => "cleanup",
            Command::RemoveOlderThan(_) => "remove-older-than",
            Command::RemoveAllButNFull(_) => "remove-all-but-n-full",
            Command::RemoveAllIncOfButNFull(_) => "remove-all-inc-of-but-n-full",
            Command::Forget(_) => "forget",
            Command::Check(_) => "check",
        }
    }

    pub(super) fn url(&self) -> &str {
        match self {
            Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => &a.url,
            Command::Restore(a) => &a.url,
            Command::Verify(a) => &a.url,
            Command::CollectionStatus(a) | Command::ListCurrentFiles(a) | Command::Cleanup(a) => {
                &a.url
            }
            Command::RemoveOlderThan(a) => &a.url,
            Command::RemoveAllButNFull(a) | Command::RemoveAllIncOfButNFull(a) => &a.url,
            Command::Forget(a) => &a.url,
            Command::Check(a) => &a.url,
        }
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to back up, or - for standard input (with --stdin-name).
    #[arg(env = "SWIFTDUP_SOURCE")]
    pub source: PathBuf,
    /// Target: file:///absolute/path or swiftkeys://container[/prefix].
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    #[command(flatten)]
    pub opts: Opts,
    /// The selection options of `opts` in the order they apply (filled by `main` from the
    /// parsed matches, which alone know the command-line order).
    #[arg(skip)]
    pub selection: Vec<RuleSpec>,
}

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// Target to restore from.
    #[arg(env = "SWIFTDUP_URL")]
    pub url: String,
    /// Directory (or file, with --file-to-restore of a file) to restore into.
    #[arg(env = "SWIFTDUP_TARGET")]
    pub target: PathBuf,
    #[command(flatten)]
    pub opts: Opts,
}

/// Options shared by the verbs (an option a verb does not use is ignored, as in duplicity).
#[derive(Args, Debug, Clone)]
pub struct Opts {
    /// Push run metrics to this Prometheus Pushgateway at the end of each run.
    #[arg(long, env = "SWIFTDUP_PUSHGATEWAY_URL")]
    pub pushgateway_url: Option<String>,
    /// Sidecar mode: repeat the job every DURATION (15m, 1h, 1D) until SIGTERM.
    #[arg(long, env = "SWIFTDUP_EVERY")]
    pub every: Option<String>,
    /// Volume size in MiB.
    #[arg(long, env = "SWIFTDUP_VOLSIZE", default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub volsize: u64,
    /// Backups: say what would be stored (new, changed, deleted; full or incremental and
    /// why) and store nothing, take no lock (the read key is enough).
    #[arg(long, env = "SWIFTDUP_DRY_RUN", value_parser = clap::builder::BoolishValueParser::new())]
    pub dry_run: bool,
    /// Backups with SOURCE -: store standard input (a database dump piped in) as this
    /// one file, with rsync deltas against the previous dump.
    #[arg(long, value_name = "NAME", env = "SWIFTDUP_STDIN_NAME")]
    pub stdin_name: Option<String>,
    /// With --stdin-name: fail the run and store nothing when standard input ends before
    /// SIZE bytes (K, M, G, T: powers of 1024), as it does when the dump's command dies.
    #[arg(long, value_name = "SIZE", env = "SWIFTDUP_STDIN_MIN_BYTES", value_parser = super::parse::byte_size)]
    pub stdin_min_bytes: Option<u64>,
    /// Writing verbs: the chain record this run stores forgets the sets that vanished and
    /// the records rolled back that earlier ones kept as evidence (after an operator looked).
    #[arg(long, env = "SWIFTDUP_ACKNOWLEDGE_CHANGES", value_parser = clap::builder::BoolishValueParser::new())]
    pub acknowledge_changes: bool,
    /// Gzip instead of OpenPGP (files end in .gz).
    #[arg(long, env = "SWIFTDUP_NO_ENCRYPTION", value_parser = clap::builder::BoolishValueParser::new())]
    pub no_encryption: bool,
    /// Armored public key file to encrypt to (repeatable; comma-separated in the env var).
    #[arg(long, env = "SWIFTDUP_ENCRYPT_KEY_FILE", value_delimiter = ',')]
    pub encrypt_key_file: Vec<PathBuf>,
    /// Like --encrypt-key-file, but the key id is hidden in the messages.
    #[arg(long, env = "SWIFTDUP_HIDDEN_ENCRYPT_KEY_FILE", value_delimiter = ',')]
    pub hidden_encrypt_key_file: Vec<PathBuf>,
    /// Armored secret key file for reading public-key archives (its passphrase: PASSPHRASE).
    #[arg(long, env = "SWIFTDUP_DECRYPT_KEY_FILE", value_delimiter = ',')]
    pub decrypt_key_file: Vec<PathBuf>,
    /// Armored OpenPGP key file: backups sign every file with its secret key (passphrase:
    /// SIGN_PASSPHRASE, else PASSPHRASE); restore, verify and the other verbs require every
    /// file they read to be signed by it (a public key file is enough for those).
    #[arg(long, env = "SWIFTDUP_SIGN_KEY_FILE")]
    pub sign_key_file: Option<PathBuf>,
    /// Restore time: now, epoch seconds, YYYY-MM-DD[THH:MM:SS[Z]], or an interval (3D, 1h30m).
    #[arg(
        short = 't',
        long,
        visible_alias = "restore-time",
        env = "SWIFTDUP_TIME"
    )]
    pub time: Option<String>,
    /// Restore only this path (a file or a directory), relative to the backup root.
    #[arg(short = 'r', long, env = "SWIFTDUP_FILE_TO_RESTORE")]
    pub file_to_restore: Option<String>,
    /// Cache directory (default $XDG_CACHE_HOME/duplicity or ~/.cache/duplicity).
    #[arg(long, env = "SWIFTDUP_ARCHIVE_DIR")]
    pub archive_dir: Option<PathBuf>,
    /// Cache name inside --archive-dir (default: MD5 of the URL as typed, like duplicity).
    #[arg(long, env = "SWIFTDUP_NAME")]
    pub name: Option<String>,
    /// Skip the host name and source directory checks before an incremental.
    #[arg(long, env = "SWIFTDUP_ALLOW_SOURCE_MISMATCH", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_source_mismatch: bool,
    /// Let an incremental encrypt to other keys than the chain's newest set (public-key
    /// backups; without it a change of --encrypt-key-file is refused, exit 31).
    #[arg(long, env = "SWIFTDUP_ALLOW_KEY_CHANGE", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_key_change: bool,
    /// Host name recorded in manifests and compared before incrementals (default: this host).
    #[arg(long, env = "SWIFTDUP_HOSTNAME")]
    pub hostname: Option<String>,
    /// Restore into a non-empty target, overwriting; make cleanup and remove-* delete.
    #[arg(long, env = "SWIFTDUP_FORCE", value_parser = clap::builder::BoolishValueParser::new())]
    pub force: bool,
    /// collection-status, list-current-files, verify, cleanup, remove-*: JSON on stdout.
    #[arg(long, env = "SWIFTDUP_JSON", value_parser = clap::builder::BoolishValueParser::new())]
    pub json: bool,
    /// verify: compare file contents too (metadata is always compared).
    #[arg(long, env = "SWIFTDUP_COMPARE_DATA", value_parser = clap::builder::BoolishValueParser::new())]
    pub compare_data: bool,
    /// After a successful backup, keep only the newest N chains (remove-all-but-n-full N --force).
    #[arg(long, env = "SWIFTDUP_KEEP_FULL", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_full: Option<u64>,
    /// forget (and a backup, after it succeeded): keep the newest N chains.
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_LAST", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_last: Option<u64>,
    /// Keep the newest chain of each of the newest N hours that have one.
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_HOURLY", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_hourly: Option<u64>,
    /// Keep the newest chain of each of the newest N days that have one.
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_DAILY", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_daily: Option<u64>,
    /// Keep the newest chain of each of the newest N weeks (Monday to Sunday, UTC).
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_WEEKLY", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_weekly: Option<u64>,
    /// Keep the newest chain of each of the newest N months.
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_MONTHLY", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_monthly: Option<u64>,
    /// Keep the newest chain of each of the newest N years.
    #[arg(long, value_name = "N", env = "SWIFTDUP_KEEP_YEARLY", value_parser = clap::value_parser!(u64).range(1..))]
    pub keep_yearly: Option<u64>,
    /// Keep every chain that ends within DURATION (7D, 2W, 6M) of the newest chain's end.
    #[arg(long, value_name = "DURATION", env = "SWIFTDUP_KEEP_WITHIN")]
    pub keep_within: Option<String>,
    /// Make a full backup instead of an incremental that would make the chain longer than N
    /// incrementals.
    #[arg(long, env = "SWIFTDUP_MAX_CHAIN_LENGTH", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_chain_length: Option<u64>,
    /// Wait this long (30s, 10m) for another job's lock on the target instead of exiting 23.
    #[arg(long, env = "SWIFTDUP_LOCK_WAIT")]
    pub lock_wait: Option<String>,
    /// Seconds a lock outlives its holder's last renewal (renewed every fifth of it): how long
    /// a killed job blocks the next one.
    #[arg(long, env = "SWIFTDUP_LOCK_TTL", default_value_t = 300, value_parser = clap::value_parser!(u64).range(2..=86400))]
    pub lock_ttl: u64,
    /// Remove other jobs' locks on the target first (when they are certainly gone).
    #[arg(long, env = "SWIFTDUP_BREAK_LOCK", value_parser = clap::builder::BoolishValueParser::new())]
    pub break_lock: bool,
    /// Pretend the time is EPOCH (for tests and fixtures).
    #[arg(long, env = "SWIFTDUP_CURRENT_TIME", hide = true)]
    pub current_time: Option<i64>,
    /// Make a full backup when the chain's full is older than T (e.g. 1M).
    #[arg(long, env = "SWIFTDUP_FULL_IF_OLDER_THAN")]
    pub full_if_older_than: Option<String>,
    /// With public-key encryption and no cached signatures: make a full instead of failing.
    #[arg(long, env = "SWIFTDUP_FULL_IF_NO_SIGNATURES", value_parser = clap::builder::BoolishValueParser::new())]
    pub full_if_no_signatures: bool,
    /// Where volumes are spooled before upload (default $TMPDIR or /tmp).
    #[arg(long, env = "SWIFTDUP_TEMPDIR")]
    pub tempdir: Option<PathBuf>,
    /// Uploads at once; when above 1, volumes are also sealed on their own thread and
    /// compressed on up to this many threads (at most the cores); backup and verify walk
    /// the source on a thread of their own, restore and verify fetch each set's next
    /// volume ahead. 1: one thread does everything, as under WASI.
    #[arg(long, env = "SWIFTDUP_CONCURRENCY", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub concurrency: u64,
    /// Deflate level 0-9 for volumes. The default, 4, is not gpg's 6: on the benchmark's
    /// mixed data it takes a quarter less CPU for 0.5% more bytes; any level reads back
    /// everywhere.
    #[arg(long, env = "SWIFTDUP_COMPRESS_LEVEL", default_value_t = 4, value_parser = clap::value_parser!(u32).range(0..=9))]
    pub compress_level: u32,
    /// Use numeric uid/gid on restore, ignoring stored names.
    #[arg(long, env = "SWIFTDUP_NUMERIC_OWNER", value_parser = clap::builder::BoolishValueParser::new())]
    pub numeric_owner: bool,
    /// Do not restore owners (they are restored only when running as root anyway).
    #[arg(long, visible_alias = "no-restore-ownership", env = "SWIFTDUP_DO_NOT_RESTORE_OWNERSHIP", value_parser = clap::builder::BoolishValueParser::new())]
    pub do_not_restore_ownership: bool,
    /// Prefix for every remote file name.
    #[arg(long, env = "SWIFTDUP_FILE_PREFIX", default_value = "")]
    pub file_prefix: String,
    /// Extra prefix for volume names.
    #[arg(long, env = "SWIFTDUP_FILE_PREFIX_ARCHIVE", default_value = "")]
    pub file_prefix_archive: String,
    /// Extra prefix for manifest names.
    #[arg(long, env = "SWIFTDUP_FILE_PREFIX_MANIFEST", default_value = "")]
    pub file_prefix_manifest: String,
    /// Extra prefix for signature file names.
    #[arg(long, env = "SWIFTDUP_FILE_PREFIX_SIGNATURE", default_value = "")]
    pub file_prefix_signature: String,
    /// Log format: json (default when stderr is not a terminal) or text.
    #[arg(long, env = "SWIFTDUP_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Lowest log level written: debug, info, warn, error.
    #[arg(long, env = "SWIFTDUP_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
    /// Seconds between progress events (0: none).
    #[arg(long, env = "SWIFTDUP_PROGRESS_INTERVAL", default_value_t = 10)]
    pub progress_interval: u64,
    /// Retries of a storage operation that failed transiently (connection errors, timeouts,
    /// 408/409/429/498/5xx; on file://, a stale, timed-out or failing network file system).
    #[arg(long, env = "SWIFTDUP_NUM_RETRIES", default_value_t = 5)]
    pub num_retries: u32,
    /// Base delay in seconds of the exponential backoff between retries (jittered, at most 60 s).
    #[arg(long, env = "SWIFTDUP_BACKEND_RETRY_DELAY", default_value_t = 1.0)]
    pub backend_retry_delay: f64,
    /// Upload at most KIB KiB/s, all connections of the run together (swiftkeys://).
    #[arg(long, value_name = "KIB", env = "SWIFTDUP_LIMIT_UPLOAD", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_upload: Option<u64>,
    /// Download at most KIB KiB/s, all connections of the run together (swiftkeys://).
    #[arg(long, value_name = "KIB", env = "SWIFTDUP_LIMIT_DOWNLOAD", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit_download: Option<u64>,
    /// PEM file of CA certificates trusted in addition to the built-in roots (default: SSL_CERT_FILE).
    #[arg(long, env = "SWIFTDUP_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Seconds to connect, to wait for a response, or for any read or write to make progress.
    #[arg(
        long,
        env = "SWIFTDUP_HTTP_TIMEOUT",
        default_value_t = 60.0,
        hide = true
    )]
    pub http_timeout: f64,
    /// Seconds for a whole upload or download body (default: from the size; 30 min to download).
    #[arg(long, env = "SWIFTDUP_HTTP_BODY_TIMEOUT", hide = true)]
    pub http_body_timeout: Option<f64>,
    /// Back up paths matching GLOB (duplicity's syntax). Selection options apply in
    /// command-line order, first match wins; the last must exclude. Env: one per line.
    #[arg(
        long,
        value_name = "GLOB",
        env = "SWIFTDUP_INCLUDE",
        help_heading = "Selection"
    )]
    pub include: Vec<String>,
    /// Leave out paths matching GLOB (`**`, `*`, `?`, `[...]`, `ignorecase:`, trailing `/`).
    #[arg(
        long,
        value_name = "GLOB",
        env = "SWIFTDUP_EXCLUDE",
        help_heading = "Selection"
    )]
    pub exclude: Vec<String>,
    /// Globs from FILE, one a line, included unless prefixed `- ` (`+ ` forces include).
    #[arg(
        long,
        value_name = "FILE",
        env = "SWIFTDUP_INCLUDE_FILELIST",
        help_heading = "Selection"
    )]
    pub include_filelist: Vec<PathBuf>,
    /// Globs from FILE, one a line, excluded unless prefixed `+ ` (`- ` forces exclude).
    #[arg(
        long,
        value_name = "FILE",
        env = "SWIFTDUP_EXCLUDE_FILELIST",
        help_heading = "Selection"
    )]
    pub exclude_filelist: Vec<PathBuf>,
    /// Back up paths where the regular expression RE matches anywhere in the full path.
    #[arg(
        long,
        value_name = "RE",
        env = "SWIFTDUP_INCLUDE_REGEXP",
        help_heading = "Selection"
    )]
    pub include_regexp: Vec<String>,
    /// Leave out paths where the regular expression RE matches anywhere in the full path.
    #[arg(
        long,
        value_name = "RE",
        env = "SWIFTDUP_EXCLUDE_REGEXP",
        help_heading = "Selection"
    )]
    pub exclude_regexp: Vec<String>,
    /// Leave out every directory that contains an entry called NAME (e.g. .nobackup).
    #[arg(
        long,
        value_name = "NAME",
        env = "SWIFTDUP_EXCLUDE_IF_PRESENT",
        help_heading = "Selection"
    )]
    pub exclude_if_present: Vec<String>,
    /// Leave out what is on another file system than SOURCE (mount points included).
    #[arg(long, env = "SWIFTDUP_EXCLUDE_OTHER_FILESYSTEMS", value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Selection")]
    pub exclude_other_filesystems: bool,
    /// Leave out character and block devices.
    #[arg(long, env = "SWIFTDUP_EXCLUDE_DEVICE_FILES", value_parser = clap::builder::BoolishValueParser::new(), help_heading = "Selection")]
    pub exclude_device_files: bool,
    /// Leave out regular files modified before TIME (same forms as --time).
    #[arg(
        long,
        value_name = "TIME",
        env = "SWIFTDUP_EXCLUDE_OLDER_THAN",
        help_heading = "Selection"
    )]
    pub exclude_older_than: Vec<String>,
}

/// The order in which selection options given through the environment apply (after all
/// those on the command line, which therefore take precedence): includes before excludes,
/// so `SWIFTDUP_INCLUDE=/data/keep` with `SWIFTDUP_EXCLUDE=**` keeps only /data/keep. For
/// another interleaving, use a filelist with `+ ` and `- ` lines.
pub(super) const SELECTION_IDS: &[&str] = &[
    "include_filelist",
    "exclude_filelist",
    "include",
    "exclude",
    "include_regexp",
    "exclude_regexp",
    "exclude_if_present",
    "exclude_other_filesystems",
    "exclude_device_files",
    "exclude_older_than",
];

pub(super) fn parse_every(s: &str) -> Result<Duration> {
    match crate::archive::time::parse_interval(s) {
        Some(n) if n > 0 => Ok(Duration::from_secs(n as u64)),
        _ => Err(Error::Usage(format!(
            "--every / SWIFTDUP_EVERY: {s:?} is not an interval like 15m, 1h or 1D"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_has_an_env_var() {
        use clap::CommandFactory;
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                if arg.get_id() == "help" || arg.get_id() == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                assert!(
                    env.as_deref().is_some_and(|e| e.starts_with("SWIFTDUP_")),
                    "{} has no SWIFTDUP_ env var",
                    arg.get_id()
                );
            }
        }
    }
}
