//! One process: parse, configure, take the lock, dispatch to a command, log `start`,
//! `error`, `summary` and `exit`, push metrics, and the `--every` loop of sidecar mode.

use super::args::*;
use super::configure::*;
use super::parse::parse;
use crate::config::{BackupOpts, Common, RestoreOpts};
use crate::error::{exit, Error, Result, EXIT_CODES};
use crate::local::platform;
use crate::log::{self, Format, Level};
use crate::{commands, interrupt};
use serde_json::json;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A command line (or a variable standing for one) that clap refuses: its text and hints
/// on a terminal; elsewhere, as a CronJob's log wants it, one JSON `error` event (code
/// `usage`) and the `exit` event. clap quotes the values it refuses, and one may be a URL
/// with a password or a key put in the wrong variable: scrubbed like every log line.
fn refused(e: &clap::Error) -> i32 {
    let text = log::scrub(&e.render().to_string());
    let json = match std::env::var("SWIFTDUP_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    if !json {
        use std::io::Write;
        let _ = std::io::stderr().write_all(text.as_bytes());
        return exit::USAGE;
    }
    log::init(Format::Json, Level::Info);
    // The first line holds the refusal; the rest is clap's usage and hints for a person.
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let msg = first.strip_prefix("error: ").unwrap_or(first);
    log::event(Level::Error, "error", msg, vec![("code", json!("usage"))]);
    log::info(
        "exit",
        "command line or environment is wrong",
        vec![("exit_code", json!(exit::USAGE))],
    );
    exit::USAGE
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
        Err(e) => return refused(&e),
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
        // Standard input can be read once: a sidecar would back up an empty one forever.
        Ok(_) if opts.every.is_some() && opts.stdin_name.is_some() => Some(Err(Error::Usage(
            "--every repeats the run, but standard input can be read only once: run the dump \
             and swiftdup together from a CronJob instead"
                .into(),
        ))),
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
    let finished = now();
    let body = crate::app::metrics::render(name, code, finished, fields);
    let mut pushed = crate::app::metrics::push(url, &instance, "", &body, &tempdir);
    if pushed.is_ok() && code == exit::SUCCESS {
        let (group, body) = crate::app::metrics::success_group(name, finished);
        pushed = crate::app::metrics::push(url, &instance, &group, &body, &tempdir);
    }
    match pushed {
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
            let facts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            termination_message(&format!(
                "{name} finished, exit {code}: {}",
                facts.join(" ")
            ));
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
            termination_message(&format!(
                "{name} stopped, exit {}: standard output was closed by its reader",
                exit::OUTPUT_CLOSED
            ));
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
            termination_message(&format!(
                "{name} failed, exit {} ({}): {e}",
                e.exit_code(),
                e.code()
            ));
            // At the level of what it reports: a filter on `level: error` (or
            // --log-level error) must see how a failed run ended, not only why.
            log::event(Level::Error, "summary", &format!("{name} failed"), fields);
            (e.exit_code(), matches!(e, Error::Interrupted(_)))
        }
    }
}

/// What `kubectl describe pod` shows as the container's last state: how the latest run
/// ended, written to the termination-message file Kubernetes gives every container
/// (`/dev/termination-log`; `SWIFTDUP_TERMINATION_LOG` names another). Nothing is written
/// where there is no such file. Scrubbed like the logs, and within Kubernetes' 4 KiB.
fn termination_message(text: &str) {
    let path = match std::env::var_os("SWIFTDUP_TERMINATION_LOG") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => {
            let p = PathBuf::from("/dev/termination-log");
            if !p.exists() {
                return;
            }
            p
        }
    };
    let mut text = log::scrub(text);
    if text.len() > 4000 {
        let mut end = 4000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text.push('\n');
    // Best effort: the run's outcome is in its exit code and logs whatever happens here.
    let _ = std::fs::write(path, text);
}

type Fields = Vec<(&'static str, serde_json::Value)>;

/// Take the target lock for a writing verb (`--lock-wait`, `--break-lock`).
fn lock(common: &Common, o: &Opts, command: &str) -> Result<crate::backend::lock::Held> {
    let wait = match &o.lock_wait {
        Some(w) => Some(Duration::from_secs(
            crate::archive::time::parse_interval(w)
                .filter(|n| *n >= 0)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--lock-wait / SWIFTDUP_LOCK_WAIT: {w:?} is not an interval like 30s or 10m"
                    ))
                })? as u64,
        )),
        None => None,
    };
    let held = crate::backend::lock::acquire(
        common,
        &crate::backend::lock::Options {
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
    match cmd {
        Command::Full(a) | Command::Incremental(a) | Command::Backup(a) => backup(cmd, a, o),
        Command::Restore(a) => restore(a, o),
        Command::Verify(a) => verify(a, o),
        Command::CollectionStatus(a) => status(a, o),
        Command::ListCurrentFiles(a) => list(a, o),
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
        Command::Check(a) => check(a, o),
        Command::Forget(a) => prune(&a.url, o, cmd, |_| match keep_policy(o)? {
            Some(k) => Ok(commands::prune::Policy::Keep(k)),
            None => Err(Error::Usage(
                "forget needs at least one rule: --keep-last, --keep-hourly, --keep-daily, \
                 --keep-weekly, --keep-monthly, --keep-yearly or --keep-within"
                    .into(),
            )),
        }),
    }
}

/// The `--keep-*` rules, if any was given.
fn keep_policy(o: &Opts) -> Result<Option<commands::prune::Keep>> {
    let n = |v: Option<u64>| v.map(|n| n as usize);
    let within = match &o.keep_within {
        Some(d) => Some(
            crate::archive::time::parse_interval(d)
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "--keep-within {d:?} is not a duration like 7D, 2W or 6M"
                    ))
                })?,
        ),
        None => None,
    };
    let k = commands::prune::Keep {
        last: n(o.keep_last),
        hourly: n(o.keep_hourly),
        daily: n(o.keep_daily),
        weekly: n(o.keep_weekly),
        monthly: n(o.keep_monthly),
        yearly: n(o.keep_yearly),
        within,
    };
    Ok((!k.is_empty()).then_some(k))
}

/// `--time`, if given, as a Unix time.
fn opt_time(o: &Opts, now: i64) -> Result<Option<i64>> {
    o.time
        .as_deref()
        .map(|t| user_time(t, now, "--time"))
        .transpose()
}

/// `--stdin-name` with SOURCE `-`: standard input as one file. Refused: either without the
/// other, a name that is no single path component, selection options (there is no tree to
/// select from) and a terminal as input (a dump
/// is piped in; a backup of typed text is a mistake).
fn stdin_source(a: &BackupArgs, o: &Opts) -> Result<Option<crate::config::StdinSource>> {
    let dash = a.source.as_os_str() == "-";
    let Some(name) = &o.stdin_name else {
        if dash {
            return Err(Error::Usage(
                "SOURCE - (standard input) needs --stdin-name, the file name to store it as".into(),
            ));
        }
        if o.stdin_min_bytes.is_some() {
            return Err(Error::Usage(
                "--stdin-min-bytes applies to standard input: give --stdin-name and - as SOURCE"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if !dash {
        return Err(Error::Usage(format!(
            "--stdin-name stores standard input: give - as SOURCE, not {:?}",
            a.source.display().to_string()
        )));
    }
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(Error::Usage(format!(
            "--stdin-name {name:?}: give a file name (no '/', not '.' or '..')"
        )));
    }
    if !a.selection.is_empty() {
        return Err(Error::Usage(
            "--include and --exclude select files of a directory: they do not apply to standard input"
                .into(),
        ));
    }
    if !o.dry_run && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Err(Error::Usage(
            "standard input is a terminal: pipe the dump in (pg_dump ... | swiftdup backup --stdin-name db.sql - URL)".into(),
        ));
    }
    Ok(Some(crate::config::StdinSource {
        name: name.clone(),
        min_bytes: o.stdin_min_bytes.unwrap_or(0),
    }))
}

/// `full`, `incremental`, `backup`: under the lock, then `--keep-full`'s prune.
fn backup(cmd: &Command, a: &BackupArgs, o: &Opts) -> Result<(Fields, i32)> {
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
        stdin: stdin_source(a, o)?,
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
    if opts.stdin.is_none() {
        crate::engine::write::select::Selection::new(&opts.source, &opts.selection, common.now)?;
    }
    crate::seal::deflate::set_workers(opts.concurrency);
    if o.dry_run {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        let fields = commands::backup::dry_run(&common, &opts, o.json, &mut out)?;
        let warned = fields
            .iter()
            .find(|(k, _)| *k == "warnings")
            .and_then(|(_, v)| v.as_u64())
            .unwrap_or(0);
        return Ok((fields, code_for(warned)));
    }
    // The retention rules are checked before anything is stored.
    let keep = keep_policy(o)?.map(|k| ("--keep-*", commands::prune::Policy::Keep(k)));
    let lock = lock(&common, o, cmd.name())?;
    let s = commands::backup::run(&common, &opts, &lock)?;
    let mut code = code_for(s.warnings);
    let mut fields = s.to_fields();
    // Retention after a stored backup (a CronJob has no other moment for it): a failure
    // does not undo the backup, it is a warning and exit 10.
    let full = o.keep_full.map(|n| {
        (
            "--keep-full",
            commands::prune::Policy::AllButNFull(n as usize),
        )
    });
    let mut pruned = None;
    for (flag, policy) in full.into_iter().chain(keep) {
        match commands::prune::run(&common, policy, true, false, &mut std::io::sink()) {
            Ok(p) => {
                *pruned.get_or_insert(0) += p.sets;
                if p.warnings > 0 {
                    code = exit::PARTIAL;
                }
            }
            Err(e) => {
                log::warn(
                    "warning",
                    &format!("the backup is stored, but {flag} failed: {e}"),
                    vec![("code", json!(e.code()))],
                );
                code = exit::PARTIAL;
            }
        }
    }
    if let Some(p) = pruned {
        fields.push(("pruned_sets", json!(p)));
    }
    Ok((fields, code))
}

fn check(a: &CheckArgs, o: &Opts) -> Result<(Fields, i32)> {
    let subset = match &a.read_data_subset {
        Some(s) => commands::check::Subset::parse(s).map_err(Error::Usage)?,
        None => commands::check::Subset::All,
    };
    let common = common(&a.url, o, false)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let s = commands::check::run(&common, subset, o.json, &mut out)?;
    Ok((s.to_fields(), exit::SUCCESS))
}

fn restore(a: &RestoreArgs, o: &Opts) -> Result<(Fields, i32)> {
    let common = common(&a.url, o, false)?;
    let time = opt_time(o, common.now)?;
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

/// Differences go to stdout; any is exit 1.
fn verify(a: &VerifyArgs, o: &Opts) -> Result<(Fields, i32)> {
    let common = common(&a.url, o, false)?;
    let opts = commands::verify::VerifyOpts {
        source: a.source.clone(),
        time: opt_time(o, common.now)?,
        file_to_restore: o.file_to_restore.as_deref().map(parse_index),
        compare_data: o.compare_data,
        selection: a.selection.clone(),
        concurrency: o.concurrency as usize,
    };
    let s = commands::verify::run(&common, &opts, o.json, &mut std::io::stdout().lock())?;
    let code = if s.differences > 0 {
        exit::DIFFERENCES
    } else {
        code_for(s.warnings)
    };
    Ok((s.to_fields(), code))
}

fn status(a: &UrlArgs, o: &Opts) -> Result<(Fields, i32)> {
    let common = common(&a.url, o, false)?;
    let s = commands::status::run(&common)?;
    let text = if o.json {
        format!("{:#}\n", s.doc)
    } else {
        s.text.clone()
    };
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::stdout)?;
    Ok((s.to_fields(), exit::SUCCESS))
}

fn list(a: &UrlArgs, o: &Opts) -> Result<(Fields, i32)> {
    let common = common(&a.url, o, false)?;
    let time = opt_time(o, common.now)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let s = commands::list::run(&common, time, o.json, &mut out)?;
    Ok((s.to_fields(), exit::SUCCESS))
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
    Ok((s.to_fields(), code_for(s.warnings)))
}
