//! Prometheus Pushgateway: a push at the end of each run (a CronJob has no scrape target
//! that lives long enough). The run's group is `job=swiftdup`, `instance=<hostname>`, and a
//! PUT replaces the group, so a failed run does not leave the previous run's byte counts
//! behind; a successful run also puts its time in a group of its own per command, which a
//! failed run leaves alone.

use crate::backend::http::{self, Body, Method, Request};
use serde_json::Value;
use std::io::{Seek, Write};

/// Render the run's outcome in the Prometheus text format.
pub fn render(command: &str, exit_code: i32, finished_at: i64, fields: &[(&str, Value)]) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, labels: &str, v: f64| {
        out.push_str(&format!("# HELP swiftdup_{name} {help}\n# TYPE swiftdup_{name} gauge\nswiftdup_{name}{{command=\"{command}\"{labels}}} {v}\n"));
    };
    gauge(
        "last_run_success",
        "1 if the last run succeeded (exit code 0), else 0.",
        "",
        if exit_code == 0 { 1.0 } else { 0.0 },
    );
    gauge(
        "last_run_exit_code",
        "Exit code of the last run.",
        "",
        exit_code as f64,
    );
    gauge(
        "last_run_timestamp_seconds",
        "When the last run finished (Unix time).",
        "",
        finished_at as f64,
    );
    for (k, v) in fields {
        let Some(n) = v.as_f64() else { continue };
        let (name, help) = match *k {
            "duration_seconds" => ("last_run_duration_seconds", "Duration of the last run."),
            "bytes_uploaded" => (
                "last_run_bytes_uploaded",
                "Bytes stored in the target by the last run.",
            ),
            "bytes_read" => (
                "last_run_bytes_read",
                "Bytes read from the source by the last run.",
            ),
            "chain_length" => (
                "chain_length",
                "Sets in the chain after the last run (full + incrementals).",
            ),
            "volumes" => (
                "last_run_volumes",
                "Volumes written or read by the last run.",
            ),
            "warnings" => ("last_run_warnings", "Files the last run could not read."),
            "files_restored" => (
                "last_run_files_restored",
                "Entries restored by the last run.",
            ),
            "problems" => (
                "last_check_problems",
                "Problems the last check found (0: none).",
            ),
            "volumes_read" => (
                "last_check_volumes_read",
                "Volumes the last check downloaded and opened.",
            ),
            "record_timestamp_seconds" => (
                "last_check_record_timestamp_seconds",
                "Time of the newest chain record the last check compared the target with.",
            ),
            _ => continue,
        };
        gauge(name, help, "", n);
    }
    let mut files_help = false;
    for state in ["new", "changed", "unchanged", "deleted"] {
        if let Some(n) = fields
            .iter()
            .find(|(k, _)| *k == format!("files_{state}"))
            .and_then(|(_, v)| v.as_f64())
        {
            if !files_help {
                files_help = true;
                out.push_str(
                    "# HELP swiftdup_last_run_files Files of the last backup, by what it found.\n\
                     # TYPE swiftdup_last_run_files gauge\n",
                );
            }
            out.push_str(&format!(
                "swiftdup_last_run_files{{command=\"{command}\",state=\"{state}\"}} {n}\n"
            ));
        }
    }
    out
}

/// The group a successful run also pushes, and its one metric: when `command` last
/// succeeded. A failed run replaces the run's own group (so no stale counts survive it) but
/// never this one, which is what an alert on a missing backup needs.
pub fn success_group(command: &str, finished_at: i64) -> (String, String) {
    let body = format!(
        "# HELP swiftdup_last_success_timestamp_seconds When the command last succeeded (Unix time).\n\
         # TYPE swiftdup_last_success_timestamp_seconds gauge\n\
         swiftdup_last_success_timestamp_seconds{{command=\"{command}\"}} {finished_at}\n"
    );
    (format!("command/{}", http::encode(command)), body)
}

/// Push to `base` (e.g. `http://pushgateway:9091`). Errors are returned as text for a
/// warning: metrics must never fail a backup.
/// `subgroup` adds grouping labels after the instance (`command/backup`), or is empty.
pub fn push(
    base: &str,
    instance: &str,
    subgroup: &str,
    body: &str,
    tempdir: &std::path::Path,
) -> Result<(), String> {
    let mut url = format!(
        "{}/metrics/job/swiftdup/instance/{}",
        base.trim_end_matches('/'),
        http::encode(instance)
    );
    if !subgroup.is_empty() {
        url.push('/');
        url.push_str(subgroup);
    }
    let mut f = crate::local::spool::tempfile_in(tempdir).map_err(|e| e.to_string())?;
    f.write_all(body.as_bytes()).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    let client = http::client(&http::Options::default()).map_err(|e| e.to_string())?;
    let req = Request {
        method: Method::Put,
        url,
        headers: vec![("Content-Type".into(), "text/plain; version=0.0.4".into())],
        body: Some(Body {
            file: f,
            len: body.len() as u64,
        }),
    };
    let resp = client.call(req).map_err(|e| e.to_string())?;
    if (200..300).contains(&resp.status) {
        Ok(())
    } else {
        Err(format!("pushgateway answered HTTP {}", resp.status))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn renders_gauges() {
        let text = super::render(
            "backup",
            0,
            1700000000,
            &[
                ("bytes_uploaded", json!(1234)),
                ("files_new", json!(3)),
                ("type", json!("full")),
            ],
        );
        assert!(text.contains("swiftdup_last_run_success{command=\"backup\"} 1\n"));
        assert!(text.contains("swiftdup_last_run_bytes_uploaded{command=\"backup\"} 1234\n"));
        assert!(text.contains("swiftdup_last_run_files{command=\"backup\",state=\"new\"} 3\n"));
        assert!(
            text.contains("swiftdup_last_run_timestamp_seconds{command=\"backup\"} 1700000000\n")
        );
        assert!(!text.contains("full"));
        // Every metric has its HELP and TYPE.
        for name in text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split('{').next().unwrap())
        {
            assert!(text.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        }
        let (group, body) = super::success_group("backup", 1700000000);
        assert_eq!(group, "command/backup");
        assert!(body
            .ends_with("swiftdup_last_success_timestamp_seconds{command=\"backup\"} 1700000000\n"));
    }
}
