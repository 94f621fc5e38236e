//! Each verb's `--help`: the options that verb uses, and two or three examples. All options
//! still parse with every verb (one environment serves a CronJob's backup, its restore Job
//! and its retention); the others are only hidden from that verb's help.

use super::args::{Cli, SELECTION_IDS};
use clap::CommandFactory;

/// Options that only some verbs use; every other option applies to all of them.
const BACKUP_ONLY: &[&str] = &[
    "dry_run",
    "stdin_name",
    "stdin_min_bytes",
    "volsize",
    "no_encryption",
    "encrypt_key_file",
    "hidden_encrypt_key_file",
    "allow_source_mismatch",
    "allow_key_change",
    "keep_full",
    "max_chain_length",
    "full_if_older_than",
    "full_if_no_signatures",
    "compress_level",
];
const LOCKING: &[&str] = &["lock_wait", "lock_ttl", "break_lock"];
const KEEP: &[&str] = &[
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
];
const OWNERS: &[&str] = &["numeric_owner", "do_not_restore_ownership"];

/// Which of those each verb uses, and the examples its `--help` ends with.
fn verb_help(verb: &str) -> (Vec<&'static str>, &'static str) {
    let backup = [BACKUP_ONLY, SELECTION_IDS, LOCKING, KEEP].concat();
    let retention = [LOCKING, &["force", "json"][..]].concat();
    match verb {
        "full" | "incremental" | "backup" => (
            backup,
            "Examples:\n  \
             swiftdup backup /srv/data swiftkeys://backups/myhost\n  \
             swiftdup backup --full-if-older-than 1M --keep-full 3 /srv/data swiftkeys://backups/myhost\n  \
             swiftdup full --exclude '**/*.tmp' --volsize 500 /srv/data file:///mnt/backup/data\n  \
             swiftdup backup --dry-run --json /srv/data swiftkeys://backups/myhost\n  \
             pg_dump mydb | swiftdup backup --stdin-name mydb.sql --stdin-min-bytes 1M - swiftkeys://backups/mydb",
        ),
        "restore" => (
            [OWNERS, &["time", "file_to_restore", "force"][..]].concat(),
            "Examples:\n  \
             swiftdup restore swiftkeys://backups/myhost /srv/restored\n  \
             swiftdup restore -t 3D swiftkeys://backups/myhost /srv/three-days-ago\n  \
             swiftdup restore -r etc/app.conf swiftkeys://backups/myhost /tmp/app.conf",
        ),
        "verify" => (
            [SELECTION_IDS, OWNERS, &["time", "file_to_restore", "compare_data", "json"][..]].concat(),
            "Examples:\n  \
             swiftdup verify swiftkeys://backups/myhost /srv/data\n  \
             swiftdup verify --compare-data -t 1W swiftkeys://backups/myhost /srv/data",
        ),
        "collection-status" => (
            vec!["json"],
            "Examples:\n  \
             swiftdup collection-status swiftkeys://backups/myhost\n  \
             swiftdup status --json swiftkeys://backups/myhost",
        ),
        "list-current-files" => (
            vec!["time", "json"],
            "Examples:\n  \
             swiftdup list-current-files swiftkeys://backups/myhost\n  \
             swiftdup ls -t 2026-11-01 --json swiftkeys://backups/myhost",
        ),
        "forget" => (
            [KEEP, LOCKING, &["force", "json"][..]].concat(),
            "Examples:\n  \
             swiftdup forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 swiftkeys://backups/myhost\n  \
             swiftdup forget --keep-within 30D --force swiftkeys://backups/myhost",
        ),
        "check" => (
            vec!["json"],
            "Examples:\n  \
             swiftdup check swiftkeys://backups/myhost\n  \
             swiftdup check --read-data-subset 3/7 swiftkeys://backups/myhost   # a seventh a day\n  \
             swiftdup check --read-data-subset 10% --json swiftkeys://backups/myhost",
        ),
        "cleanup" => (
            retention,
            "Examples:\n  \
             swiftdup cleanup swiftkeys://backups/myhost          # lists what would go\n  \
             swiftdup cleanup --force swiftkeys://backups/myhost",
        ),
        "remove-older-than" => (
            retention,
            "Examples:\n  \
             swiftdup remove-older-than 6M swiftkeys://backups/myhost          # lists\n  \
             swiftdup remove-older-than 6M --force swiftkeys://backups/myhost",
        ),
        _ => (
            retention,
            "Examples:\n  \
             swiftdup remove-all-but-n-full 3 swiftkeys://backups/myhost          # lists\n  \
             swiftdup remove-all-but-n-full 3 --force swiftkeys://backups/myhost",
        ),
    }
}

/// The command line as it is parsed, with each verb's `--help` showing the options that
/// verb uses and a few examples. Every option still parses with every verb (and its
/// variable is read by every verb): one environment can serve a CronJob's backup, its
/// restore Job and its retention.
pub fn command() -> clap::Command {
    let everything: Vec<&str> = [BACKUP_ONLY, SELECTION_IDS, LOCKING, OWNERS, KEEP].concat();
    let extra = ["time", "file_to_restore", "compare_data", "json", "force"];
    let mut cmd = Cli::command().after_help(
        "Examples:\n  \
         swiftdup backup /srv/data swiftkeys://backups/myhost\n  \
         swiftdup restore swiftkeys://backups/myhost /srv/restored\n  \
         swiftdup collection-status swiftkeys://backups/myhost\n\n\
         `swiftdup VERB --help` shows a verb's options. Settings can also come from the \
         environment (SWIFTDUP_*, PASSPHRASE, SWIFT_*): docs/configuration.md.",
    );
    let verbs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for verb in verbs {
        let (uses, examples) = verb_help(&verb);
        cmd = cmd.mut_subcommand(&verb, |mut s| {
            for id in everything.iter().chain(&extra) {
                if !uses.contains(id) {
                    s = s.mut_arg(*id, |a| a.hide(true));
                }
            }
            s.after_help(examples)
        });
    }
    cmd
}
