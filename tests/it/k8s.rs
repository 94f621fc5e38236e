//! The Kubernetes manifests in `k8s/` against the binary's own tables.
//!
//! A schema check (`tests/tools/validate-k8s.sh`) sees that `podFailurePolicy` is well formed
//! but not that exit code 52 is what swiftdup returns for a rejected key, nor that an
//! environment variable is one swiftdup reads. These tests do: every exit code in a
//! `podFailurePolicy` rule must be in `swiftdup::error::EXIT_CODES` under the error code its
//! comment names, the failures that no retry cures must fail the Job at once, the
//! retryable ones must be retried, and every `SWIFTDUP_*`/`SWIFT_*` variable must be real.
//!
//! No YAML crate: the manifests keep a fixed, line-based form that is parsed here by hand:
//!
//! ```yaml
//! - action: FailJob
//!   onExitCodes:
//!     operator: In
//!     values: [2, 31, 52]  # usage decryption key_rejected
//! ```

use clap::CommandFactory;
use std::collections::BTreeSet;
use std::path::PathBuf;
use swiftdup::backend::swift;
use swiftdup::error::{exit, EXIT_CODES};

fn k8s_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

fn read(name: &str) -> String {
    let p = k8s_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// One rule of a `podFailurePolicy`, as written.
#[derive(Debug)]
struct Rule {
    line: usize,
    action: String,
    /// `None` for a rule on pod conditions.
    operator: Option<String>,
    values: Vec<i32>,
    /// The error codes named in the comment after `values: [...]`, in order.
    names: Vec<String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The rules of the (first) `podFailurePolicy` in `file`.
fn pod_failure_rules(file: &str) -> Vec<Rule> {
    let text = read(file);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "podFailurePolicy:")
        .unwrap_or_else(|| panic!("{file}: no podFailurePolicy"));
    let base = indent(lines[start]);
    let mut rules: Vec<Rule> = Vec::new();
    for (i, raw) in lines.iter().enumerate().skip(start + 1) {
        let t = raw.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if indent(raw) <= base {
            break; // the next key of the Job spec
        }
        let n = i + 1;
        if let Some(a) = t.strip_prefix("- action:") {
            rules.push(Rule {
                line: n,
                action: a.trim().to_string(),
                operator: None,
                values: Vec::new(),
                names: Vec::new(),
            });
        } else if t.starts_with("action:") {
            panic!("{file}:{n}: write each rule as `- action: ...` first");
        } else if let Some(op) = t.strip_prefix("operator:") {
            let r = rules.last_mut().expect("operator before any rule");
            r.operator = Some(op.trim().to_string());
        } else if let Some(rest) = t.strip_prefix("values:") {
            let r = rules.last_mut().expect("values before any rule");
            let (list, comment) = rest.split_once('#').unwrap_or((rest, ""));
            let list = list.trim();
            let inner = list
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .unwrap_or_else(|| {
                    panic!("{file}:{n}: write values on one line as `values: [N, ...]  # name ...`")
                });
            r.values = inner
                .split(',')
                .map(|v| {
                    v.trim()
                        .parse()
                        .unwrap_or_else(|e| panic!("{file}:{n}: {v:?}: {e}"))
                })
                .collect();
            r.names = comment.split_whitespace().map(str::to_string).collect();
        }
    }
    assert!(!rules.is_empty(), "{file}: podFailurePolicy without rules");
    rules
}

/// What the Job controller does with a pod that exited with `code`: the first rule on exit
/// codes that matches decides; none matching means the failure is counted.
fn decide(rules: &[Rule], code: i32) -> &str {
    for r in rules {
        let hit = match r.operator.as_deref() {
            Some("In") => r.values.contains(&code),
            Some("NotIn") => !r.values.contains(&code),
            _ => false, // a rule on pod conditions
        };
        if hit {
            return &r.action;
        }
    }
    "Count"
}

/// The error code `EXIT_CODES` gives to exit code `code`, if it has one.
fn error_code_of(code: i32) -> Option<&'static str> {
    EXIT_CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, name, _)| *name)
}

/// What holds for every policy: the Job API's own rules the schema does not check, and
/// every code a real exit code of swiftdup under the name the comment gives it.
fn check_policy(file: &str, rules: &[Rule]) {
    for r in rules {
        let at = format!("{file}:{}", r.line);
        assert!(
            ["FailJob", "Ignore", "Count"].contains(&r.action.as_str()),
            "{at}: action {:?} (FailIndex needs an Indexed Job)",
            r.action
        );
        let Some(op) = &r.operator else {
            assert!(r.values.is_empty(), "{at}: values without an operator");
            continue;
        };
        assert!(op == "In" || op == "NotIn", "{at}: operator {op:?}");
        // An ignored exit code would be retried forever: Ignore is for pod conditions only.
        assert_ne!(r.action, "Ignore", "{at}: Ignore on exit codes never ends");
        assert!(
            !r.values.is_empty() && r.values.len() <= 255,
            "{at}: 1 to 255 values"
        );
        assert!(
            r.values.windows(2).all(|w| w[0] < w[1]),
            "{at}: the API wants values sorted and unique: {:?}",
            r.values
        );
        assert!(
            !(op == "In" && r.values.contains(&0)),
            "{at}: 0 is not allowed with In"
        );
        assert_eq!(
            r.values.len(),
            r.names.len(),
            "{at}: name each code in the comment after values, in order: {:?} vs {:?}",
            r.values,
            r.names
        );
        for (code, name) in r.values.iter().zip(&r.names) {
            let known = error_code_of(*code)
                .unwrap_or_else(|| panic!("{at}: swiftdup has no exit code {code} (EXIT_CODES)"));
            assert_eq!(
                known, name,
                "{at}: exit code {code} is {known:?} in EXIT_CODES, the comment says {name:?}"
            );
        }
    }
}

/// `(constant, its error code)`: also pins the constants' meaning in `EXIT_CODES`.
fn assert_decided(file: &str, rules: &[Rule], want: &str, codes: &[(i32, &str)]) {
    for &(code, name) in codes {
        assert_eq!(
            error_code_of(code),
            Some(name),
            "EXIT_CODES: exit code {code} should be {name:?}"
        );
        assert_eq!(
            decide(rules, code),
            want,
            "{file}: exit code {code} ({name}) should be {want}"
        );
    }
}

/// Failures that no retry can cure, in any job.
const NEVER_RETRY: &[(i32, &str)] = &[
    (exit::USAGE, "usage"),
    (exit::UNSIGNED, "unsigned"),
    (exit::DECRYPTION, "decryption"),
    (exit::KEY_REJECTED, "key_rejected"),
    (exit::ACCESS_DENIED, "access_denied"),
];

/// Failures a later attempt may not meet.
const RETRY: &[(i32, &str)] = &[(exit::BACKEND, "backend"), (exit::INTEGRITY, "integrity")];

#[test]
fn cronjob_fails_at_once_on_config_and_key_errors() {
    let rules = pod_failure_rules("cronjob.yaml");
    check_policy("cronjob.yaml", &rules);
    assert_decided("cronjob.yaml", &rules, "FailJob", NEVER_RETRY);
    assert_decided(
        "cronjob.yaml",
        &rules,
        "FailJob",
        &[(exit::SOURCE_MISSING, "source_missing")],
    );
    assert_decided("cronjob.yaml", &rules, "Count", RETRY);
    assert_decided("cronjob.yaml", &rules, "Count", &[(exit::LOCKED, "locked")]);
    // The codes the CronJob is documented to fail on (docs/kubernetes-and-docker.md, k8s/cronjob.yaml), literally.
    for code in [2, 31, 52, 53, 66] {
        assert_eq!(decide(&rules, code), "FailJob", "cronjob.yaml: {code}");
    }
}

#[test]
fn restore_job_fails_at_once_on_what_a_retry_cannot_change() {
    let rules = pod_failure_rules("restore-job.yaml");
    check_policy("restore-job.yaml", &rules);
    assert_decided("restore-job.yaml", &rules, "FailJob", NEVER_RETRY);
    assert_decided(
        "restore-job.yaml",
        &rules,
        "FailJob",
        &[
            (exit::NOTHING_TO_RESTORE, "no_backup"),
            (exit::RESTORE_PATH_NOT_FOUND, "path_not_found"),
            (exit::UNSAFE_MEMBER, "unsafe_member"),
        ],
    );
    assert_decided("restore-job.yaml", &rules, "Count", RETRY);
}

#[test]
fn jobs_with_a_pod_failure_policy_never_restart_in_place() {
    for (file, backoff) in [("cronjob.yaml", "3"), ("restore-job.yaml", "3")] {
        let text = read(file);
        let field = |key: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| l.trim().strip_prefix(key))
                .map(|v| v.split('#').next().unwrap_or("").trim().to_string())
                .collect()
        };
        // podFailurePolicy is rejected by the API server unless the pod's policy is Never.
        assert_eq!(field("restartPolicy:"), ["Never"], "{file}");
        assert_eq!(field("backoffLimit:"), [backoff], "{file}");
    }
}

/// Every `SWIFTDUP_*` variable a clap option reads, plus the ones read outside clap.
fn swiftdup_env_vars() -> BTreeSet<String> {
    let mut vars: BTreeSet<String> = swiftdup::app::args::Cli::command()
        .get_subcommands()
        .flat_map(|s| s.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    // Read by app::args::normalise when no verb is given.
    vars.insert("SWIFTDUP_COMMAND".into());
    vars
}

/// `(line number, name)` of every `- name: X` env entry in `file`, commented-out ones too
/// (they are examples to uncomment, so they must be right as well).
fn env_names(file: &str) -> Vec<(usize, String)> {
    read(file)
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let t = l.trim().trim_start_matches('#').trim();
            let name = t.strip_prefix("- name:")?.trim();
            (name.starts_with("SWIFT") || name.starts_with("PASSPHRASE") || name == "TMPDIR")
                .then(|| (i + 1, name.to_string()))
        })
        .collect()
}

#[test]
fn every_environment_variable_is_one_swiftdup_reads() {
    let known = swiftdup_env_vars();
    let secrets = [
        swift::ENV_FULL_KEY,
        swift::ENV_READ_KEY,
        "PASSPHRASE",
        "SIGN_PASSPHRASE",
    ];
    // The secrets, and the files that may hold them instead (NAME_FILE).
    let mut others: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    others.extend(secrets.iter().map(|s| format!("{s}_FILE")));
    others.extend([swift::ENV_STORAGE_URL.to_string(), "TMPDIR".to_string()]);
    for file in [
        "cronjob.yaml",
        "restore-job.yaml",
        "sidecar.yaml",
        "check-cronjob.yaml",
    ] {
        let names = env_names(file);
        assert!(names.len() >= 5, "{file}: env not found");
        for (line, name) in names {
            assert!(
                known.contains(&name) || others.contains(&name),
                "{file}:{line}: swiftdup does not read {name}"
            );
        }
    }
}

#[test]
fn each_job_gets_only_the_key_it_needs() {
    // What a pod can read of the Secret: every `key:` a manifest names, in a secretKeyRef
    // or in the items of its secret volume.
    let held = |f: &str| -> Vec<String> {
        read(f)
            .lines()
            .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("key:"))
            .map(|k| k.trim().to_string())
            .collect()
    };
    let holds = |f: &str, k: &str| held(f).iter().any(|h| h == k);
    for f in ["cronjob.yaml", "sidecar.yaml"] {
        assert!(holds(f, swift::ENV_FULL_KEY), "{f}");
        assert!(!holds(f, swift::ENV_READ_KEY), "{f}");
    }
    for f in ["restore-job.yaml", "check-cronjob.yaml"] {
        assert!(holds(f, swift::ENV_READ_KEY), "{f}");
        assert!(
            !holds(f, swift::ENV_FULL_KEY),
            "{f} must not hold the full key"
        );
    }
    // Every key a manifest takes from the Secret is in the Secret's example.
    let secret = read("secret.example.yaml");
    for f in [
        "cronjob.yaml",
        "restore-job.yaml",
        "sidecar.yaml",
        "check-cronjob.yaml",
    ] {
        for key in held(f) {
            assert!(
                secret
                    .lines()
                    .any(|s| s.trim().starts_with(&format!("{key}:"))),
                "{f}: secret key {key} is not in secret.example.yaml"
            );
        }
    }
}

#[test]
fn secrets_come_as_files_from_the_mounted_secret() {
    for f in [
        "cronjob.yaml",
        "restore-job.yaml",
        "sidecar.yaml",
        "check-cronjob.yaml",
    ] {
        let text = read(f);
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        // Neither key nor passphrase is put in the environment.
        for (line, name) in env_names(f) {
            assert!(
                ![swift::ENV_FULL_KEY, swift::ENV_READ_KEY, "PASSPHRASE"].contains(&name.as_str()),
                "{f}:{line}: {name} in the environment; mount it and set {name}_FILE"
            );
        }
        let items: Vec<&str> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("path:"))
            .map(str::trim)
            .collect();
        assert!(
            lines.contains(&"mountPath: /run/secrets/swiftdup"),
            "{f}: the secret volume is not mounted at /run/secrets/swiftdup"
        );
        let mut files = 0;
        for (i, l) in lines.iter().enumerate() {
            let Some(var) = l.strip_prefix("- name:").map(str::trim) else {
                continue;
            };
            let Some(secret) = var.strip_suffix("_FILE") else {
                continue;
            };
            // NAME_FILE names the file of the Secret's key NAME, and the volume has it.
            let value = lines[i + 1].strip_prefix("value:").map(str::trim);
            assert_eq!(
                value,
                Some(format!("/run/secrets/swiftdup/{secret}").as_str()),
                "{f}: {var}"
            );
            assert!(
                items.contains(&secret),
                "{f}: {secret} is not an item of the volume"
            );
            files += 1;
        }
        assert_eq!(files, 2, "{f}: a key and the passphrase, as files");
    }
}

#[test]
fn pods_run_as_the_image_user() {
    let dockerfile = std::fs::read_to_string(k8s_dir().join("../Dockerfile")).expect("Dockerfile");
    let user = dockerfile
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("Dockerfile: USER");
    let uid = user.trim().split(':').next().unwrap_or("");
    for f in [
        "cronjob.yaml",
        "restore-job.yaml",
        "sidecar.yaml",
        "check-cronjob.yaml",
    ] {
        let text = read(f);
        let uids: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("runAsUser:"))
            .map(|v| v.split('#').next().unwrap_or("").trim())
            .collect();
        assert!(!uids.is_empty(), "{f}: no runAsUser");
        assert!(
            uids.iter().all(|u| *u == uid),
            "{f}: runAsUser {uids:?}, Dockerfile USER {uid}"
        );
        for must in [
            "runAsNonRoot: true",
            "readOnlyRootFilesystem: true",
            "allowPrivilegeEscalation: false",
            "mountPath: /tmp",
            "mountPath: /cache",
        ] {
            assert!(text.lines().any(|l| l.trim() == must), "{f}: no `{must}`");
        }
    }
}

#[test]
fn the_alerts_name_only_metrics_swiftdup_pushes() {
    let rule = read("monitoring/prometheusrule.yaml");
    assert!(rule.contains("apiVersion: monitoring.coreos.com/v1\nkind: PrometheusRule\n"));
    let fields = [
        ("duration_seconds", serde_json::json!(1.5)),
        ("bytes_uploaded", serde_json::json!(1)),
        ("bytes_read", serde_json::json!(1)),
        ("chain_length", serde_json::json!(1)),
        ("volumes", serde_json::json!(1)),
        ("warnings", serde_json::json!(0)),
        ("files_new", serde_json::json!(1)),
    ];
    let mut pushed = swiftdup::app::metrics::render("backup", 0, 1, &fields);
    let check = [
        ("problems", serde_json::json!(0)),
        ("volumes_read", serde_json::json!(3)),
        ("record_timestamp_seconds", serde_json::json!(1_700_000_000)),
    ];
    pushed.push_str(&swiftdup::app::metrics::render("check", 0, 1, &check));
    pushed.push_str(&swiftdup::app::metrics::success_group("backup", 1).1);
    let mut named = 0;
    for word in rule.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("swiftdup_") {
            named += 1;
            assert!(
                pushed.contains(&format!("# TYPE {word} gauge")),
                "prometheusrule.yaml names {word}, which swiftdup does not push"
            );
        }
    }
    assert!(named >= 4, "no metrics found in the rule");
}

#[test]
fn check_cronjob_fails_at_once_on_what_it_found() {
    let rules = pod_failure_rules("check-cronjob.yaml");
    check_policy("check-cronjob.yaml", &rules);
    assert_decided("check-cronjob.yaml", &rules, "FailJob", NEVER_RETRY);
    assert_decided(
        "check-cronjob.yaml",
        &rules,
        "FailJob",
        &[(exit::INTEGRITY, "integrity"), (exit::UNSIGNED, "unsigned")],
    );
    assert_decided(
        "check-cronjob.yaml",
        &rules,
        "Count",
        &[(exit::BACKEND, "backend")],
    );
}
