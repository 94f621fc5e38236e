//! The reference in docs/ keeps up with the code: every option and variable clap knows is
//! in docs/configuration.md, every exit code in docs/exit-codes.md, every event and warning
//! code the code emits in docs/logs-and-metrics.md; and no page reads like a development
//! log (issue numbers, sessions, commit ids).

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use swiftdup::error::EXIT_CODES;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn doc(name: &str) -> String {
    std::fs::read_to_string(root().join("docs").join(name))
        .unwrap_or_else(|e| panic!("docs/{name}: {e}"))
}

fn rust_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The first string literal after each occurrence of `call` in the code outside tests
/// (`log::info(` then `"name"`, skipping a `Level::X,` first argument).
fn names_after(call: &str) -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_sources(&root().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let code = match text.find("#[cfg(test)]\nmod tests") {
            Some(i) => &text[..i],
            None => &text[..],
        };
        let mut rest = code;
        while let Some(i) = rest.find(call) {
            rest = &rest[i + call.len()..];
            let args = rest.trim_start();
            let args = match args.strip_prefix("Level::") {
                Some(a) => a.split_once(',').map_or("", |(_, r)| r.trim_start()),
                None => args,
            };
            if let Some(lit) = args.strip_prefix('"') {
                if let Some((name, _)) = lit.split_once('"') {
                    names.insert(name.to_string());
                }
            }
        }
    }
    names
}

#[test]
fn configuration_lists_every_option_and_variable() {
    let text = doc("configuration.md");
    let cmd = swiftdup::app::args::Cli::command();
    let mut missing = BTreeSet::new();
    for a in cmd.get_subcommands().flat_map(|s| s.get_arguments()) {
        if a.is_hide_set() {
            continue;
        }
        if let Some(long) = a.get_long() {
            if !text.contains(&format!("`--{long}")) && !text.contains(&format!(", --{long}")) {
                missing.insert(format!("--{long}"));
            }
        }
        if let Some(env) = a.get_env() {
            let env = env.to_string_lossy();
            if !text.contains(env.as_ref()) {
                missing.insert(env.into_owned());
            }
        }
    }
    // Read outside clap: the secrets (and their files), the storage URL, the implicit verb.
    for v in [
        "PASSPHRASE",
        "PASSPHRASE_FILE",
        "SIGN_PASSPHRASE",
        "SIGN_PASSPHRASE_FILE",
        "SWIFT_STORAGE_URL",
        "SWIFT_CONTAINER_FULL_TOKEN",
        "SWIFT_CONTAINER_FULL_TOKEN_FILE",
        "SWIFT_CONTAINER_READ_TOKEN",
        "SWIFT_CONTAINER_READ_TOKEN_FILE",
        "SWIFTDUP_COMMAND",
        "TMPDIR",
    ] {
        if !text.contains(&format!("`{v}`")) {
            missing.insert(v.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

#[test]
fn exit_codes_lists_every_code() {
    let text = doc("exit-codes.md");
    for (code, name, _) in EXIT_CODES.iter().filter(|(_, name, _)| !name.is_empty()) {
        // The first cell holds the code, or several (`| 130, 143 |`).
        let row = text
            .lines()
            .find(|l| {
                let first = l
                    .strip_prefix('|')
                    .and_then(|r| r.split('|').next())
                    .unwrap_or("");
                first.split(',').any(|c| c.trim() == code.to_string())
            })
            .unwrap_or_else(|| panic!("docs/exit-codes.md has no row for {code}"));
        assert!(
            row.contains(&format!("`{name}`")),
            "exit {code}: row lacks `{name}`: {row}"
        );
    }
}

#[test]
fn logs_document_every_event_and_code() {
    let text = doc("logs-and-metrics.md");
    let mut events = BTreeSet::new();
    for call in ["log::info(", "log::warn(", "log::debug(", "log::event("] {
        events.extend(names_after(call));
    }
    assert!(
        events.len() >= 15,
        "the scan found too few events: {events:?}"
    );
    let codes = names_after("(\"code\", json!(");
    assert!(
        codes.len() >= 8,
        "the scan found too few warning codes: {codes:?}"
    );
    let missing: Vec<_> = events
        .iter()
        .chain(&codes)
        .filter(|n| !text.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/logs-and-metrics.md lacks {missing:?}"
    );
}

#[test]
fn user_docs_read_as_docs_not_as_a_development_log() {
    let mut pages = vec![root().join("README.md")];
    for e in std::fs::read_dir(root().join("docs")).unwrap() {
        pages.push(e.unwrap().path());
    }
    for p in pages {
        let text = std::fs::read_to_string(&p).unwrap();
        for (n, line) in text.lines().enumerate() {
            let lower = line.to_lowercase();
            for bad in [
                "this session",
                "issue #",
                "issue 1",
                "issue 2",
                "commit id",
                "this commit",
            ] {
                assert!(!lower.contains(bad), "{}:{}: {line}", p.display(), n + 1);
            }
            // An issue or pull request number: `#` then a digit.
            assert!(
                !line
                    .as_bytes()
                    .windows(2)
                    .any(|w| w[0] == b'#' && w[1].is_ascii_digit()),
                "{}:{}: {line}",
                p.display(),
                n + 1
            );
            // A commit id: 7 to 40 hex digits with at least one letter and one digit.
            for w in line.split(|c: char| !c.is_ascii_alphanumeric()) {
                let hexy = (7..=40).contains(&w.len())
                    && w.chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                    && w.chars().any(|c| c.is_ascii_digit())
                    && w.chars().any(|c| c.is_ascii_alphabetic());
                assert!(
                    !hexy,
                    "{}:{}: looks like a commit id: {w}",
                    p.display(),
                    n + 1
                );
            }
        }
    }
}

/// Every event of real runs (backups, restore, verify, status, listing, a dry-run cleanup)
/// agrees with docs/log-events.schema.json: the envelope on each, and for the events whose
/// schema is closed, no field the schema does not declare.
#[test]
fn real_events_match_the_json_schema() {
    use crate::support::*;
    let schema: serde_json::Value =
        serde_json::from_str(&doc("log-events.schema.json")).expect("the schema is JSON");
    let defs = schema["$defs"].as_object().expect("$defs");
    let envelope = &defs["envelope"];
    let s = Scratch::new("docs-schema");
    std::fs::create_dir_all(s.join("src/d")).unwrap();
    std::fs::write(s.join("src/d/f.txt"), b"data").unwrap();
    let (src, url, out) = (
        s.join("src").display().to_string(),
        s.url("t"),
        s.join("out").display().to_string(),
    );
    let cache = s.join("cache").display().to_string();
    let env = [("PASSPHRASE", "schema-test")];
    let mut evs = Vec::new();
    let mut run = |args: &[&str]| {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--archive-dir", &cache, "--progress-interval", "0"]);
        evs.extend(events(&swiftdup_ok(&a, &env)));
    };
    run(&["full", &src, &url]);
    std::fs::write(s.join("src/d/g.txt"), b"more").unwrap();
    run(&["incremental", &src, &url]);
    run(&["restore", &url, &out]);
    run(&["verify", "--compare-data", &url, &src]);
    run(&["collection-status", &url]);
    run(&["list-current-files", &url]);
    run(&["cleanup", &url]);
    run(&["check", &url]);
    run(&["backup", "--dry-run", &src, &url]);
    run(&["forget", "--keep-last", "1", &url]);
    let mut seen = BTreeSet::new();
    for e in &evs {
        let obj = e.as_object().expect("an event is an object");
        for k in envelope["required"].as_array().unwrap() {
            assert!(obj.contains_key(k.as_str().unwrap()), "{e} lacks {k}");
        }
        assert_eq!(
            e["schema"], envelope["properties"]["schema"]["const"],
            "{e}"
        );
        let name = e["event"].as_str().unwrap();
        seen.insert(name.to_string());
        let def = defs
            .get(name)
            .unwrap_or_else(|| panic!("the schema has no event {name:?}: {e}"));
        if def.get("unevaluatedProperties") == Some(&serde_json::Value::Bool(false)) {
            for k in obj.keys() {
                assert!(
                    envelope["properties"].get(k).is_some() || def["properties"].get(k).is_some(),
                    "event {name}: field {k} is not in the schema: {e}"
                );
            }
        }
    }
    for must in ["start", "plan", "volume", "summary", "exit"] {
        assert!(
            seen.contains(must),
            "the runs logged no {must} event: {seen:?}"
        );
    }
}
