//! From the command line to a [`Cli`]: duplicity's implicit verbs, the selection options
//! in the order they apply, and refusals a person or a CronJob's log can act on (a typo of
//! a verb, a bad value named by the variable it came from).

use super::args::{Cli, Command, SELECTION_IDS};
use super::help::command;
use crate::engine::write::select::RuleSpec;
use crate::local::platform;
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches};
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;

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

/// Add duplicity's implicit verbs: `swiftdup SOURCE URL` is a backup (SOURCE a directory,
/// or `-` for standard input) and `swiftdup URL DIR` a restore; with no verb and no arguments, `SWIFTDUP_COMMAND` (default `backup`).
/// Refused: a first word that is no verb, no URL and no directory (`swiftdup resotre URL`
/// would otherwise back up a source called "resotre"; a verb it is close to is suggested),
/// and a bare `swiftdup` with nothing in the environment that says what to do.
pub(super) fn normalise(
    mut args: Vec<OsString>,
) -> std::result::Result<Vec<OsString>, clap::Error> {
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
        "forget",
        "check",
        "help",
        "-h",
        "--help",
        "-V",
        "--version",
    ];
    // Options that take a value (`--include X`) must not have X taken for a positional.
    let takes_value = options_with_values();
    let mut first_positional = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        // A lone `-` is standard input as the source (`--stdin-name`), not an option.
        if !a.starts_with('-') || a == "-" {
            first_positional = Some(i);
            break;
        }
        if takes_value.iter().any(|t| *t == a) {
            i += 1;
        }
        i += 1;
    }
    let verb = match first_positional {
        Some(i) if VERBS.contains(&args[i].to_string_lossy().as_ref()) => return Ok(args),
        Some(i) => {
            let word = args[i].to_string_lossy();
            if crate::backend::is_url(&word) {
                "restore".to_string()
            } else if word == "-" || std::path::Path::new(&*word).is_dir() {
                "backup".to_string()
            } else {
                let hint = match mistyped_verb(&word, VERBS) {
                    Some(verb) => format!("did you mean '{verb}'? "),
                    None => String::new(),
                };
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::InvalidSubcommand,
                    format!(
                        "unknown command '{word}': {hint}(with no verb, the first argument \
                         must be a directory to back up or a URL to restore from; \
                         `swiftdup --help` lists the verbs)\n"
                    ),
                ));
            }
        }
        None if args.iter().skip(1).any(|a| {
            ["-h", "--help", "-V", "--version"].contains(&a.to_string_lossy().as_ref())
        }) =>
        {
            return Ok(args)
        }
        None if args.len() == 1
            && ["SWIFTDUP_COMMAND", "SWIFTDUP_SOURCE", "SWIFTDUP_URL"]
                .iter()
                .all(|v| std::env::var_os(v).is_none()) =>
        {
            let help = Cli::command().render_help();
            return Err(clap::Error::raw(
                clap::error::ErrorKind::MissingSubcommand,
                format!(
                    "no command given: name one (backup, restore, verify, collection-status, \
                     ...) or set SWIFTDUP_COMMAND, SWIFTDUP_SOURCE and SWIFTDUP_URL\n\n{help}"
                ),
            ));
        }
        None => std::env::var("SWIFTDUP_COMMAND").unwrap_or_else(|_| "backup".into()),
    };
    args.insert(1, verb.into());
    Ok(args)
}

/// The spellings of every option that takes a value (`--include X`): its X is not the
/// first positional argument.
fn options_with_values() -> Vec<String> {
    let cmd = Cli::command();
    let Some(backup) = cmd.find_subcommand("backup") else {
        return Vec::new();
    };
    let mut v = Vec::new();
    for a in backup.get_arguments() {
        if !a.get_action().takes_values() {
            continue;
        }
        if let Some(l) = a.get_long() {
            v.push(format!("--{l}"));
        }
        if let Some(s) = a.get_short() {
            v.push(format!("-{s}"));
        }
        for x in a.get_all_aliases().unwrap_or_default() {
            v.push(format!("--{x}"));
        }
    }
    v
}

/// The verb `word` is a typo of (at most two letters off, or two swapped), when no file
/// or directory of that name exists.
fn mistyped_verb<'v>(word: &str, verbs: &[&'v str]) -> Option<&'v str> {
    if word.len() < 4 || word.contains('/') || std::path::Path::new(word).exists() {
        return None;
    }
    verbs
        .iter()
        .filter(|v| v.len() >= 4 && !v.starts_with('-'))
        .map(|v| (edit_distance(word, v), *v))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, v)| v)
}

/// Levenshtein distance (bytes; verbs are ASCII).
fn edit_distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// clap names the flag of a value it refuses even when the value came from the flag's
/// variable (`SWIFTDUP_VOLSIZE=abc` is reported as `--volsize`): then name the variable,
/// which is what the operator has to fix.
fn name_the_variable(e: clap::Error, args: &[OsString]) -> clap::Error {
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return e;
    };
    let cmd = Cli::command();
    for a in cmd.get_subcommands().flat_map(|s| s.get_arguments()) {
        let Some(env) = a.get_env().and_then(|v| v.to_str()) else {
            continue;
        };
        let shown = match a.get_long() {
            Some(l) => format!("--{l}"),
            None => match a.get_value_names() {
                Some([v, ..]) => format!("<{v}>"),
                _ => continue,
            },
        };
        if !(arg == &shown || arg.starts_with(&format!("{shown} "))) {
            continue;
        }
        let on_line = args.iter().any(|x| {
            let x = x.to_string_lossy();
            x == shown || x.starts_with(&format!("{shown}="))
        });
        let refused = match e.get(ContextKind::InvalidValue) {
            Some(ContextValue::String(v)) => v.as_str(),
            _ => return e,
        };
        if on_line || std::env::var(env).ok().as_deref() != Some(refused) {
            return e;
        }
        let text = e.render().to_string();
        let text = text.strip_prefix("error: ").unwrap_or(&text);
        return clap::Error::raw(
            e.kind(),
            text.replacen(&format!("'{arg}'"), &format!("{env} ({shown})"), 1),
        );
    }
    e
}

/// Parse the command line, and put the selection options in the order they apply.
pub(super) fn parse(args: Vec<OsString>) -> std::result::Result<Cli, clap::Error> {
    let args = normalise(args)?;
    let matches = command()
        .try_get_matches_from(&args)
        .map_err(|e| name_the_variable(e, &args))?;
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

/// A size in bytes: a whole number, optionally with K, M, G or T (powers of 1024; `KiB`,
/// `MB` and such are read the same way).
pub(super) fn byte_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size (a number of bytes, or with K, M, G, T)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(format!("{s:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(v: &[&str]) -> Vec<String> {
        normalise(v.iter().map(OsString::from).collect())
            .unwrap()
            .into_iter()
            .map(|s| s.into_string().unwrap())
            .collect()
    }

    #[test]
    fn sizes_take_binary_units() {
        assert_eq!(byte_size("0"), Ok(0));
        assert_eq!(byte_size("1500"), Ok(1500));
        assert_eq!(byte_size("64K"), Ok(64 << 10));
        assert_eq!(byte_size("10MiB"), Ok(10 << 20));
        assert_eq!(byte_size("2g"), Ok(2 << 30));
        for bad in ["", "K", "1.5G", "-1", "12Q", "99999999999T"] {
            assert!(byte_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_lone_dash_is_standard_input_to_back_up() {
        assert_eq!(
            n(&["swiftdup", "--stdin-name", "db.sql", "-", "file:///b"]),
            [
                "swiftdup",
                "backup",
                "--stdin-name",
                "db.sql",
                "-",
                "file:///b"
            ]
        );
    }

    #[test]
    fn typos_of_verbs_are_recognised() {
        assert_eq!(edit_distance("resotre", "restore"), 2);
        assert_eq!(edit_distance("verify", "verify"), 0);
        assert_eq!(
            mistyped_verb("resotre", &["restore", "verify"]),
            Some("restore")
        );
        assert_eq!(
            mistyped_verb("verfy", &["restore", "verify"]),
            Some("verify")
        );
        // Far from every verb, or a path: a backup's SOURCE.
        assert_eq!(mistyped_verb("photos", &["restore", "verify"]), None);
        assert_eq!(mistyped_verb("/restore", &["restore"]), None);
        assert_eq!(mistyped_verb("/", &["restore"]), None);
    }

    #[test]
    fn implicit_verbs() {
        assert_eq!(
            n(&["sd", "/", "file:///t"]),
            ["sd", "backup", "/", "file:///t"]
        );
        assert_eq!(n(&["sd", "--volsize", "5", "/", "file:///t"])[1], "backup");
        assert_eq!(n(&["sd", "file:///t", "/dst"])[1], "restore");
        assert_eq!(
            n(&[
                "sd",
                "--include",
                "/src/a",
                "--exclude",
                "**",
                "/",
                "file:///t"
            ])[1],
            "backup"
        );
        assert_eq!(n(&["sd", "-t", "3D", "file:///t", "/dst"])[1], "restore");
        assert_eq!(
            n(&["sd", "--no-encryption", "file:///t", "/dst"])[1],
            "restore"
        );
        assert_eq!(n(&["sd", "full", "/", "file:///t"])[1], "full");
        assert_eq!(n(&["sd", "--help"]), ["sd", "--help"]);
        // Neither a directory nor a URL: no implicit backup of a missing SOURCE.
        let refused = |v: &[&str]| normalise(v.iter().map(OsString::from).collect()).is_err();
        assert!(refused(&["sd", "/no/such/dir", "file:///t"]));
        assert!(refused(&["sd", "resotre", "file:///t", "/dst"]));
        assert!(!refused(&["sd", "full", "/no/such/dir", "file:///t"]));
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
}
