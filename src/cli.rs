//! The command line: duplicity's verbs and options (every option also readable from
//! `SWIFTDUP_<OPTION>`), turned into one validated configuration, run, and logged.

use crate::config::{BackupOpts, Common, Crypto, RestoreOpts, Secret};
use crate::crypto::{self, OpenKeys, SealMode};
use crate::error::{exit, Error, Result, EXIT_CODES};
use crate::format::names::{Prefixes, Suffix};
use crate::format::time::parse_user_time;
use crate::log::{self, Format, Level};
use crate::select::RuleSpec;
use crate::{commands, interrupt, platform};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::{Duration, Instant};

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
    fn opts(&self) -> &Opts {
        match self {
            Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => &a.opts,
            Command::Restore(a) => &a.opts,
            Command::Verify(a) => &a.opts,
            Command::CollectionStatus(a) | Command::ListCurrentFiles(a) | Command::Cleanup(a) => {
                &a.opts
            }
            Command::RemoveOlderThan(a) => &a.opts,
            Command::RemoveAllButNFull(a) | Command::RemoveAllIncOfButNFull(a) => &a.opts,
        }
    }

    /// The verb's name, as logged and in metrics.
    fn name(&self) -> &'static str {
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
        }
    }

    fn url(&self) -> &str {
        match self {
            Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => &a.url,
            Command::Restore(a) => &a.url,
            Command::Verify(a) => &a.url,
            Command::CollectionStatus(a) | Command::ListCurrentFiles(a) | Command::Cleanup(a) => {
                &a.url
            }
            Command::RemoveOlderThan(a) => &a.url,
            Command::RemoveAllButNFull(a) | Command::RemoveAllIncOfButNFull(a) => &a.url,
        }
    }
}

#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Directory to back up.
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
    /// Retries of a failed storage request (connection errors, timeouts, 408/409/429/498/5xx).
    #[arg(long, env = "SWIFTDUP_NUM_RETRIES", default_value_t = 5)]
    pub num_retries: u32,
    /// Base delay in seconds of the exponential backoff between retries (jittered, at most 60 s).
    #[arg(long, env = "SWIFTDUP_BACKEND_RETRY_DELAY", default_value_t = 1.0)]
    pub backend_retry_delay: f64,
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
const SELECTION_IDS: &[&str] = &[
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

/// The selection options of one verb's matches, in the order they apply: those given on
/// the command line in their order (clap keeps each option's values but not the
/// interleaving of different options, so it is rebuilt from the argument indices), then
/// those from `SWIFTDUP_*` variables in `SELECTION_IDS` order, a variable holding one
/// value per line.
fn selection_rules(m: &ArgMatches) -> Vec<RuleSpec> {
    let mut flagged: Vec<(usize, RuleSpec)> = Vec::new();
    let mut from_env: Vec<RuleSpec> = Vec::new();
    for &id in SELECTION_IDS {
        let make = |v: &OsStr| -> RuleSpec {
            let text = || v.to_string_lossy().into_owned();
            match id {
                "include_filelist" => RuleSpec::IncludeFilelist(PathBuf::from(v)),
                "exclude_filelist" => RuleSpec::ExcludeFilelist(PathBuf::from(v)),
                "include" => RuleSpec::Include(text()),
                "exclude" => RuleSpec::Exclude(text()),
                "include_regexp" => RuleSpec::IncludeRegexp(text()),
                "exclude_regexp" => RuleSpec::ExcludeRegexp(text()),
                "exclude_if_present" => RuleSpec::ExcludeIfPresent(text()),
                "exclude_other_filesystems" => RuleSpec::ExcludeOtherFilesystems,
                "exclude_device_files" => RuleSpec::ExcludeDeviceFiles,
                _ => RuleSpec::ExcludeOlderThan(text()),
            }
        };
        let is_flag = matches!(id, "exclude_other_filesystems" | "exclude_device_files");
        let source = m.value_source(id);
        if is_flag {
            if !m.get_flag(id) {
                continue;
            }
            match source {
                Some(ValueSource::CommandLine) => {
                    let i = m.indices_of(id).and_then(|mut i| i.next()).unwrap_or(0);
                    flagged.push((i, make(OsStr::new(""))));
                }
                _ => from_env.push(make(OsStr::new(""))),
            }
            continue;
        }
        let Some(values) = m.get_raw(id) else {
            continue;
        };
        match source {
            Some(ValueSource::CommandLine) => {
                let indices = m.indices_of(id).into_iter().flatten();
                for (v, i) in values.zip(indices) {
                    flagged.push((i, make(v)));
                }
            }
            Some(ValueSource::EnvVariable) => {
                for v in values {
                    let bytes = platform::os_bytes(std::path::Path::new(v));
                    for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                        from_env.push(make(platform::path_from_bytes(line).as_os_str()));
                    }
                }
            }
            _ => {}
        }
    }
    flagged.sort_by_key(|(i, _)| *i);
    flagged
        .into_iter()
        .map(|(_, r)| r)
        .chain(from_env)
        .collect()
}

/// Add duplicity's implicit verbs: `swiftdup SOURCE URL` is a backup and `swiftdup URL DIR`
/// a restore; with no verb and no arguments, `SWIFTDUP_COMMAND` (default `backup`).
fn normalise(mut args: Vec<OsString>) -> Vec<OsString> {
    const VERBS: &[&str] = &[
        "full",
        "incremental",
        "incr",
        "inc",
        "backup",
        "bu",
        "restore",
        "rb",
        "verify",
        "vb",
        "collection-status",
        "status",
        "st",
        "list-current-files",
        "ls",
        "cleanup",
        "cl",
        "remove-older-than",
        "ro",
        "remove-all-but-n-full",
        "ra",
        "remove-all-inc-of-but-n-full",
        "ri",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    // Options that take a value (`--include X`) must not have X taken for a positional.
    let takes_value: Vec<String> = {
        use clap::CommandFactory;
        let cmd = Cli::command();
        cmd.find_subcommand("backup")
            .map(|b| {
                b.get_arguments()
                    .filter(|a| a.get_long().is_some() || a.get_short().is_some())
                    .filter(|a| a.get_action().takes_values())
                    .flat_map(|a| {
                        let mut v: Vec<String> = Vec::new();
                        if let Some(l) = a.get_long() {
                            v.push(format!("--{l}"));
                        }
                        if let Some(s) = a.get_short() {
                            v.push(format!("-{s}"));
                        }
                        v.extend(
                            a.get_all_aliases()
                                .unwrap_or_default()
                                .iter()
                                .map(|x| format!("--{x}")),
                        );
                        v
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut first_positional = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if !a.starts_with('-') {
            first_positional = Some(i);
            break;
        }
        if takes_value.iter().any(|t| *t == a) {
            i += 1;
        }
        i += 1;
    }
    let verb = match first_positional {
        Some(i) if VERBS.contains(&args[i].to_string_lossy().as_ref()) => return args,
        Some(i) => {
            if crate::target::is_url(&args[i].to_string_lossy()) {
                "restore".to_string()
            } else {
                "backup".to_string()
            }
        }
        None if args.iter().skip(1).any(|a| {
            ["-h", "--help", "-V", "--version"].contains(&a.to_string_lossy().as_ref())
        }) =>
        {
            return args
        }
        None => std::env::var("SWIFTDUP_COMMAND").unwrap_or_else(|_| "backup".into()),
    };
    args.insert(1, verb.into());
    args
}

fn env_secret(name: &str) -> Option<Secret> {
    std::env::var(name).ok().map(Secret)
}

fn read_file(p: &PathBuf, what: &str) -> Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| Error::Usage(format!("{what} {}: {e}", p.display())))
}

fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    crate::volume::hex(&Md5::digest(s.as_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `--sign-key-file`: the verifier every verb uses on what it reads, and for backups the
/// unlocked signing key.
fn sign_key(
    p: &PathBuf,
    for_backup: bool,
    passphrase: &Option<Secret>,
) -> Result<(crypto::Verifier, Option<crypto::SignKey>)> {
    let flag = "--sign-key-file";
    let bytes = read_file(p, flag)?;
    let bad = |e: crypto::CryptoError| Error::Usage(format!("{flag} {}: {e}", p.display()));
    let verifier = crypto::Verifier::from_key_file(&bytes).map_err(bad)?;
    if !for_backup {
        return Ok((verifier, None));
    }
    let secret = crypto::read_secret_keys(&bytes).map_err(|_| {
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
    let pass = env_secret("SIGN_PASSPHRASE").or_else(|| passphrase.clone());
    let key = crypto::SignKey::new(&secret[0], pass.as_ref().map(|s| s.0.as_str())).map_err(
        |e| match e {
            crypto::CryptoError::WrongPassphrase => Error::Decryption {
                object: p.display().to_string(),
                detail: "wrong passphrase for the signing key (SIGN_PASSPHRASE, else PASSPHRASE)"
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
fn refuse_contradictions(o: &Opts) -> Result<()> {
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
fn common(url: &str, o: &Opts, for_backup: bool) -> Result<Common> {
    refuse_contradictions(o)?;
    let now = o.current_time.unwrap_or_else(now);
    let tempdir = o
        .tempdir
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let archive_dir = match &o.archive_dir {
        Some(d) => d.clone(),
        None => match (std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME")) {
            (Some(x), _) => PathBuf::from(x).join("duplicity"),
            (None, Some(h)) => PathBuf::from(h).join(".cache/duplicity"),
            // No home (a scratch container): a cache that lives for this run only, in a
            // directory other users may share. Claimed here, so that one this user cannot
            // trust stops the run before the target is touched.
            (None, None) => {
                let dir = tempdir.join("swiftdup-cache");
                crate::cache::claim_shared_dir(&dir)?;
                dir
            }
        },
    };
    let passphrase = env_secret("PASSPHRASE");
    let mut secret_keys = Vec::new();
    for p in &o.decrypt_key_file {
        secret_keys.extend(
            crypto::read_secret_keys(&read_file(p, "--decrypt-key-file")?)
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
                    crypto::read_public_keys(&read_file(p, flag)?)
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
        backend: crate::target::Options::from_flags(
            o.num_retries,
            o.backend_retry_delay,
            o.http_timeout,
            o.http_body_timeout,
            o.ca_file.clone(),
        )?,
    })
}

fn parse_index(p: &str) -> crate::format::Index {
    p.as_bytes()
        .split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// The log format and level the options ask for. Anything else is refused rather than
/// mapped to a default: `--log-level verbose` silently meaning `info` hides the debug
/// events the operator asked for, and `yaml` would still get JSON.
fn log_settings(o: &Opts) -> Result<(Format, Level)> {
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
fn register_secrets(args: &[OsString]) {
    use crate::target::swift::{ENV_FULL_KEY, ENV_READ_KEY};
    for var in ["PASSPHRASE", "SIGN_PASSPHRASE", ENV_FULL_KEY, ENV_READ_KEY] {
        if let Ok(v) = std::env::var(var) {
            log::add_secret(&v);
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

/// Parse, run, log `summary` and `exit`; returns the process exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    register_secrets(&args);
    let cli = match parse(args) {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            // --help, --version.
            let _ = e.print();
            return exit::SUCCESS;
        }
        Err(e) => {
            // clap quotes the values it refuses, and one may be a URL with a password or a
            // key put in the wrong variable: scrubbed like every log line.
            use std::io::Write;
            let text = log::scrub(&e.render().to_string());
            let _ = std::io::stderr().write_all(text.as_bytes());
            return exit::USAGE;
        }
    };
    interrupt::install();
    let opts = cli.command.opts();
    let settings = log_settings(opts);
    let (format, level) = match &settings {
        Ok(s) => *s,
        // Refused below, in the default format, before anything else happens.
        Err(_) if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            (Format::Text, Level::Info)
        }
        Err(_) => (Format::Json, Level::Info),
    };
    log::init(format, level);
    let every = match settings {
        Ok(_) => opts.every.as_deref().map(parse_every),
        Err(e) => Some(Err(e)),
    };
    let code = match every {
        None => run_logged(&cli.command).0,
        Some(Ok(every)) => run_every(&cli.command, every),
        Some(Err(e)) => {
            log::event(
                Level::Error,
                "error",
                &e.to_string(),
                vec![("code", json!(e.code()))],
            );
            e.exit_code()
        }
    };
    if !interrupt::claim_end() {
        // The watchdog is ending the process after a signal; it writes the last events.
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    if interrupt::pending().is_some() {
        // Threads still stuck in a request hold spool files that no destructor will remove.
        interrupt::run_cleanups();
    }
    let meaning = EXIT_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, _, m)| *m)
        .unwrap_or("");
    log::info("exit", meaning, vec![("exit_code", json!(code))]);
    code
}

/// Parse the command line, and put the selection options in the order they apply.
fn parse(args: Vec<OsString>) -> std::result::Result<Cli, clap::Error> {
    let matches = Cli::command().try_get_matches_from(normalise(args))?;
    let mut cli = Cli::from_arg_matches(&matches)?;
    if let Some((_, sub)) = matches.subcommand() {
        match &mut cli.command {
            Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => {
                a.selection = selection_rules(sub)
            }
            Command::Verify(a) => a.selection = selection_rules(sub),
            _ => {}
        }
    }
    Ok(cli)
}

fn parse_every(s: &str) -> Result<Duration> {
    match crate::format::time::parse_interval(s) {
        Some(n) if n > 0 => Ok(Duration::from_secs(n as u64)),
        _ => Err(Error::Usage(format!(
            "--every / SWIFTDUP_EVERY: {s:?} is not an interval like 15m, 1h or 1D"
        ))),
    }
}

/// Sidecar mode: run at fixed ticks (start + k x interval) until SIGTERM. A run that
/// overruns skips the ticks it missed instead of starting late runs back to back, so runs
/// never overlap and never drift. Returns the exit code of the last completed run.
fn run_every(cmd: &Command, every: Duration) -> i32 {
    let origin = Instant::now();
    let mut last: i32;
    let mut tick: u32 = 0;
    loop {
        let (code, interrupted) = run_logged(cmd);
        if interrupted {
            return code;
        }
        last = code;
        let elapsed = origin.elapsed();
        tick = tick.max((elapsed.as_secs_f64() / every.as_secs_f64()).floor() as u32) + 1;
        let next = origin + every * tick;
        log::info(
            "sleep",
            &format!(
                "next run in {} s",
                next.saturating_duration_since(Instant::now()).as_secs()
            ),
            vec![(
                "next_run_in_seconds",
                json!(next.saturating_duration_since(Instant::now()).as_secs()),
            )],
        );
        while Instant::now() < next {
            if interrupt::pending().is_some() {
                return last;
            }
            std::thread::sleep(
                Duration::from_millis(100).min(next.saturating_duration_since(Instant::now())),
            );
        }
    }
}

/// Push this run's metrics when a Pushgateway is configured; a failure is a warning.
fn push_metrics(cmd: &Command, name: &str, code: i32, fields: &[(&str, serde_json::Value)]) {
    let opts = cmd.opts();
    let Some(url) = opts.pushgateway_url.as_deref().filter(|u| !u.is_empty()) else {
        return;
    };
    let instance = opts.hostname.clone().unwrap_or_else(platform::hostname);
    let tempdir = opts
        .tempdir
        .clone()
        .or_else(|| std::env::var_os("TMPDIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let body = crate::metrics::render(name, code, now(), fields);
    match crate::metrics::push(url, &instance, &body, &tempdir) {
        Ok(()) => log::debug(
            "metrics",
            "pushed metrics",
            vec![("url", json!(log::redact(url)))],
        ),
        Err(e) => log::warn(
            "warning",
            &format!("cannot push metrics to {}: {e}", log::redact(url)),
            vec![("code", json!("metrics"))],
        ),
    }
}

/// One run with its `start`, `error` and `summary` events. Returns the exit code and
/// whether it was stopped by a signal.
fn run_logged(cmd: &Command) -> (i32, bool) {
    let started = Instant::now();
    let (name, url) = (cmd.name(), cmd.url());
    log::info(
        "start",
        &format!("swiftdup {} {name}", env!("CARGO_PKG_VERSION")),
        vec![
            ("version", json!(env!("CARGO_PKG_VERSION"))),
            ("command", json!(name)),
            ("target", json!(log::redact(url))),
        ],
    );
    let result = run(cmd);
    let secs = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    match result {
        Ok((mut fields, code)) => {
            fields.push(("duration_seconds", json!(secs)));
            push_metrics(cmd, name, code, &fields);
            log::info("summary", &format!("{name} finished"), fields);
            (code, false)
        }
        Err(Error::OutputClosed) => {
            // The reader of our output left (`| head`): what it read was complete, and
            // nothing failed that an operator should look at, so no `error` event.
            let fields = vec![
                ("duration_seconds", json!(secs)),
                ("output_closed", json!(true)),
            ];
            push_metrics(cmd, name, exit::OUTPUT_CLOSED, &fields);
            log::info(
                "summary",
                &format!("{name} stopped: standard output was closed by its reader"),
                fields,
            );
            (exit::OUTPUT_CLOSED, false)
        }
        Err(e) => {
            let mut fields = vec![("code", json!(e.code()))];
            if let Some(o) = e.object() {
                fields.push(("object", json!(o)));
            }
            if let Some(t) = e.trans_id() {
                fields.push(("trans_id", json!(t)));
            }
            log::event(Level::Error, "error", &e.to_string(), fields);
            let fields = vec![
                ("duration_seconds", json!(secs)),
                ("error_code", json!(e.code())),
            ];
            push_metrics(cmd, name, e.exit_code(), &fields);
            // At the level of what it reports: a filter on `level: error` (or
            // --log-level error) must see how a failed run ended, not only why.
            log::event(Level::Error, "summary", &format!("{name} failed"), fields);
            (e.exit_code(), matches!(e, Error::Interrupted(_)))
        }
    }
}

type Fields = Vec<(&'static str, serde_json::Value)>;

fn user_time(t: &str, now: i64, flag: &str) -> Result<i64> {
    parse_user_time(t, now).map_err(|m| Error::Usage(format!("{flag}: {m}")))
}

/// Take the target lock for a writing verb (`--lock-wait`, `--break-lock`).
fn lock(common: &Common, o: &Opts, command: &str) -> Result<crate::lock::Held> {
    let wait = match &o.lock_wait {
        Some(w) => Some(Duration::from_secs(
            crate::format::time::parse_interval(w)
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--lock-wait / SWIFTDUP_LOCK_WAIT: {w:?} is not an interval like 30s or 10m"
                    ))
                })? as u64,
        )),
        None => None,
    };
    let held = crate::lock::acquire(
        common,
        &crate::lock::Options {
            wait,
            break_lock: o.break_lock,
            command: command.to_string(),
            hostname: o.hostname.clone().unwrap_or_else(platform::hostname),
            ttl: Duration::from_secs(o.lock_ttl),
        },
    )?;
    log::debug(
        "lock",
        "took the target lock",
        vec![("object", json!(held.object()))],
    );
    Ok(held)
}

fn code_for(warnings: u64) -> i32 {
    if warnings > 0 {
        exit::PARTIAL
    } else {
        exit::SUCCESS
    }
}

fn run(cmd: &Command) -> Result<(Fields, i32)> {
    let o = cmd.opts();
    let stdout = std::io::stdout();
    match cmd {
        Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => {
            let common = common(&a.url, o, true)?;
            let force_full = match cmd {
                Command::Full(_) => Some(true),
                Command::Incremental(_) => Some(false),
                _ => None,
            };
            let full_if_older_than = match &o.full_if_older_than {
                Some(t) => Some(common.now - user_time(t, common.now, "--full-if-older-than")?),
                None => None,
            };
            let opts = BackupOpts {
                source: a.source.clone(),
                force_full,
                volsize: o.volsize * 1024 * 1024,
                hostname: o.hostname.clone().unwrap_or_else(platform::hostname),
                allow_source_mismatch: o.allow_source_mismatch,
                allow_key_change: o.allow_key_change,
                full_if_older_than,
                full_if_no_signatures: o.full_if_no_signatures,
                max_chain_length: o.max_chain_length.map(|n| n as usize),
                compress_level: o.compress_level,
                concurrency: o.concurrency as usize,
                selection: a.selection.clone(),
            };
            // Refused selection options stop the run before the target and its lock are
            // touched (stock checks them while it parses the command line).
            crate::select::Selection::new(&opts.source, &opts.selection, common.now)?;
            crate::deflate::set_workers(opts.concurrency);
            let lock = lock(&common, o, cmd.name())?;
            let s = commands::backup::run(&common, &opts, &lock)?;
            let mut code = code_for(s.warnings);
            let mut fields = s.to_fields();
            if let Some(n) = o.keep_full {
                // The backup is stored; a failed prune does not undo it, it is a warning.
                let policy = commands::prune::Policy::AllButNFull(n as usize);
                match commands::prune::run(&common, policy, true, false, &mut std::io::sink()) {
                    Ok(p) => fields.push(("pruned_sets", json!(p.sets))),
                    Err(e) => {
                        log::warn(
                            "warning",
                            &format!("the backup is stored, but --keep-full failed: {e}"),
                            vec![("code", json!(e.code()))],
                        );
                        code = exit::PARTIAL;
                    }
                }
            }
            Ok((fields, code))
        }
        Command::Restore(a) => {
            let common = common(&a.url, o, false)?;
            let time = match &o.time {
                Some(t) => Some(user_time(t, common.now, "--time")?),
                None => None,
            };
            let opts = RestoreOpts {
                target: a.target.clone(),
                time,
                file_to_restore: o.file_to_restore.as_deref().map(parse_index),
                force: o.force,
                numeric_owner: o.numeric_owner,
                restore_ownership: !o.do_not_restore_ownership,
                concurrency: o.concurrency as usize,
            };
            let s = commands::restore::run(&common, &opts)?;
            Ok((s.to_fields(), code_for(s.warnings)))
        }
        Command::Verify(a) => {
            let common = common(&a.url, o, false)?;
            let opts = commands::verify::VerifyOpts {
                source: a.source.clone(),
                time: match &o.time {
                    Some(t) => Some(user_time(t, common.now, "--time")?),
                    None => None,
                },
                file_to_restore: o.file_to_restore.as_deref().map(parse_index),
                compare_data: o.compare_data,
                selection: a.selection.clone(),
                concurrency: o.concurrency as usize,
            };
            let s = commands::verify::run(&common, &opts, o.json, &mut stdout.lock())?;
            let code = if s.differences > 0 {
                exit::DIFFERENCES
            } else {
                code_for(s.warnings)
            };
            Ok((s.to_fields(), code))
        }
        Command::CollectionStatus(a) => {
            let common = common(&a.url, o, false)?;
            let s = commands::status::run(&common)?;
            let text = if o.json {
                format!("{:#}\n", s.doc)
            } else {
                s.text.clone()
            };
            use std::io::Write;
            let mut out = stdout.lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(Error::stdout)?;
            Ok((s.to_fields(), exit::SUCCESS))
        }
        Command::ListCurrentFiles(a) => {
            let common = common(&a.url, o, false)?;
            let time = match &o.time {
                Some(t) => Some(user_time(t, common.now, "--time")?),
                None => None,
            };
            let mut out = std::io::BufWriter::new(stdout.lock());
            let s = commands::list::run(&common, time, o.json, &mut out)?;
            Ok((s.to_fields(), exit::SUCCESS))
        }
        Command::Cleanup(a) => prune(&a.url, o, cmd, |_| Ok(commands::prune::Policy::Cleanup)),
        Command::RemoveOlderThan(a) => prune(&a.url, o, cmd, |c| {
            Ok(commands::prune::Policy::OlderThan(user_time(
                &a.older_than,
                c.now,
                "remove-older-than TIME",
            )?))
        }),
        Command::RemoveAllButNFull(a) => prune(&a.url, o, cmd, |_| {
            Ok(commands::prune::Policy::AllButNFull(a.count as usize))
        }),
        Command::RemoveAllIncOfButNFull(a) => prune(&a.url, o, cmd, |_| {
            Ok(commands::prune::Policy::AllIncOfButNFull(a.count as usize))
        }),
    }
}

/// The deleting verbs: under the target lock, dry unless --force.
fn prune(
    url: &str,
    o: &Opts,
    cmd: &Command,
    policy: impl FnOnce(&Common) -> Result<commands::prune::Policy>,
) -> Result<(Fields, i32)> {
    let common = common(url, o, false)?;
    let policy = policy(&common)?;
    let _lock = lock(&common, o, cmd.name())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let s = commands::prune::run(&common, policy, o.force, o.json, &mut out)?;
    Ok((s.to_fields(), exit::SUCCESS))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<String> {
        normalise(v.iter().map(OsString::from).collect())
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn implicit_verbs() {
        assert_eq!(
            n(&["sd", "/src", "file:///t"]),
            ["sd", "backup", "/src", "file:///t"]
        );
        assert_eq!(
            n(&["sd", "--volsize", "5", "/src", "file:///t"])[1],
            "backup"
        );
        assert_eq!(n(&["sd", "file:///t", "/dst"])[1], "restore");
        assert_eq!(
            n(&[
                "sd",
                "--include",
                "/src/a",
                "--exclude",
                "**",
                "/src",
                "file:///t"
            ])[1],
            "backup"
        );
        assert_eq!(n(&["sd", "-t", "3D", "file:///t", "/dst"])[1], "restore");
        assert_eq!(
            n(&["sd", "--no-encryption", "file:///t", "/dst"])[1],
            "restore"
        );
        assert_eq!(n(&["sd", "full", "/src", "file:///t"])[1], "full");
        assert_eq!(n(&["sd", "--help"]), ["sd", "--help"]);
    }

    fn rules(args: &[&str]) -> Vec<RuleSpec> {
        match parse(args.iter().map(OsString::from).collect())
            .unwrap()
            .command
        {
            Command::Full(a) => a.selection,
            _ => panic!("not a full backup"),
        }
    }

    #[test]
    fn selection_keeps_command_line_order_then_env() {
        use RuleSpec::*;
        let args = [
            "sd",
            "full",
            "--exclude",
            "/s/a",
            "--include-regexp",
            "x",
            "--exclude-device-files",
            "--include=/s/b",
            "--exclude-filelist",
            "/f",
            "--exclude",
            "**",
            "/s",
            "file:///t",
        ];
        let expected = vec![
            Exclude("/s/a".into()),
            IncludeRegexp("x".into()),
            ExcludeDeviceFiles,
            Include("/s/b".into()),
            ExcludeFilelist("/f".into()),
            Exclude("**".into()),
        ];
        assert_eq!(rules(&args), expected);
        // The only test that sets these variables; the other tests parse no backups.
        std::env::set_var("SWIFTDUP_EXCLUDE_REGEXP", "a\n\nb");
        std::env::set_var("SWIFTDUP_INCLUDE", "/s/c");
        std::env::set_var("SWIFTDUP_EXCLUDE_OTHER_FILESYSTEMS", "true");
        let got = rules(&args);
        std::env::remove_var("SWIFTDUP_EXCLUDE_REGEXP");
        std::env::remove_var("SWIFTDUP_INCLUDE");
        std::env::remove_var("SWIFTDUP_EXCLUDE_OTHER_FILESYSTEMS");
        // --include on the command line hides SWIFTDUP_INCLUDE, as for every option.
        let mut with_env = expected.clone();
        with_env.extend([
            ExcludeRegexp("a".into()),
            ExcludeRegexp("b".into()),
            ExcludeOtherFilesystems,
        ]);
        assert_eq!(got, with_env);
    }

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
