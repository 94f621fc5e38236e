//! The engine's interop scenarios against a real Swift: swiftdup writes with a container
//! key and stock duplicity restores through its own `swift://` backend (tempauth), and the
//! reverse, with restores done by swiftdup using only the read key.
//!
//! Needs the Swift started by `tests/swift/start.sh`; `make test` sets SWIFTDUP_SWIFT_ENV.

use crate::support::faultproxy::{Fault, FaultProxy};
use crate::support::*;
use std::collections::HashMap;

const PASS: &str = "swift interop passphrase";

struct Ctx {
    env: HashMap<String, String>,
    prefix: String,
}

impl Ctx {
    fn new(name: &str) -> Ctx {
        Ctx {
            env: swift_env(),
            prefix: format!("{name}-{}", std::process::id()),
        }
    }

    fn sd_url(&self) -> String {
        format!(
            "swiftkeys://{}/{}",
            self.env["SWIFTDUP_TEST_CONTAINER"], self.prefix
        )
    }

    fn dup_url(&self) -> String {
        format!(
            "swift://{}/{}",
            self.env["SWIFTDUP_TEST_CONTAINER"], self.prefix
        )
    }

    fn sd_env(&self, read_only: bool) -> Vec<(&str, String)> {
        let mut v = vec![
            ("SWIFT_STORAGE_URL", self.env["SWIFT_STORAGE_URL"].clone()),
            ("PASSPHRASE", PASS.to_string()),
        ];
        if read_only {
            v.push((
                "SWIFT_CONTAINER_READ_TOKEN",
                self.env["SWIFTDUP_TEST_READ_KEY"].clone(),
            ));
        } else {
            v.push((
                "SWIFT_CONTAINER_FULL_TOKEN",
                self.env["SWIFTDUP_TEST_FULL_KEY"].clone(),
            ));
        }
        v
    }

    fn dup_env(&self) -> Vec<(&str, String)> {
        [
            "SWIFT_AUTHURL",
            "SWIFT_USERNAME",
            "SWIFT_PASSWORD",
            "SWIFT_AUTHVERSION",
        ]
        .iter()
        .map(|k| (*k, self.env[*k].clone()))
        // duplicity 0.8.22's size check after each upload authenticates again through
        // python-swiftclient, which reads ST_*: without them it falls back to Keystone,
        // fails, and retries for ~120 s per backup.
        .chain([
            ("ST_AUTH", self.env["SWIFT_AUTHURL"].clone()),
            ("ST_USER", self.env["SWIFT_USERNAME"].clone()),
            ("ST_KEY", self.env["SWIFT_PASSWORD"].clone()),
            ("PASSPHRASE", PASS.to_string()),
        ])
        .collect()
    }
}

fn run_sd(ctx: &Ctx, args: &[String], read_only: bool) {
    let env = ctx.sd_env(read_only);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    swiftdup_ok(&a, &env);
}

fn run_dup(s: &Scratch, ctx: &Ctx, args: &[String]) {
    let env = ctx.dup_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    duplicity_ok(s, &a, &env);
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

#[test]
fn swiftdup_writes_to_swift_duplicity_restores() {
    let s = Scratch::new("swift-sd2dup");
    let ctx = Ctx::new("sd2dup");
    let src = s.join("src").display().to_string();
    let cache = s.join("cache").display().to_string();
    evolve_tree(&s, |i, t| {
        let verb = if i == 0 { "full" } else { "incremental" };
        run_sd(
            &ctx,
            &strs(&[
                verb,
                &src,
                &ctx.sd_url(),
                "--volsize",
                "1",
                "--current-time",
                &t.to_string(),
                "--archive-dir",
                &cache,
                "--hostname",
                "h",
            ]),
            false,
        );
    });
    for (i, t) in [T0, T1, T2].into_iter().enumerate() {
        let out = s.join(&format!("dup-{i}")).display().to_string();
        run_dup(
            &s,
            &ctx,
            &strs(&["restore", "-t", &t.to_string(), &ctx.dup_url(), &out]),
        );
        assert_same_tree(
            &s.join(&format!("state{i}")),
            &s.join(&format!("dup-{i}")),
            false,
        );
        // and swiftdup with only the read key, without a cache
        let out = s.join(&format!("sd-{i}")).display().to_string();
        let c = s.join(&format!("c-{i}")).display().to_string();
        run_sd(
            &ctx,
            &strs(&[
                "restore",
                &ctx.sd_url(),
                &out,
                "-t",
                &t.to_string(),
                "--archive-dir",
                &c,
            ]),
            true,
        );
        assert_same_tree(
            &s.join(&format!("state{i}")),
            &s.join(&format!("sd-{i}")),
            true,
        );
    }
}

#[test]
fn duplicity_writes_to_swift_swiftdup_restores_with_the_read_key() {
    let s = Scratch::new("swift-dup2sd");
    let ctx = Ctx::new("dup2sd");
    let src = s.join("src").display().to_string();
    evolve_tree(&s, |i, t| {
        let verb = if i == 0 { "full" } else { "incremental" };
        run_dup(
            &s,
            &ctx,
            &strs(&[
                verb,
                "--volsize",
                "1",
                "--current-time",
                &t.to_string(),
                "--allow-source-mismatch",
                &src,
                &ctx.dup_url(),
            ]),
        );
    });
    for (i, t) in [T0, T1, T2].into_iter().enumerate() {
        let out = s.join(&format!("sd-{i}")).display().to_string();
        let c = s.join(&format!("c-{i}")).display().to_string();
        run_sd(
            &ctx,
            &strs(&[
                "restore",
                &ctx.sd_url(),
                &out,
                "-t",
                &t.to_string(),
                "--archive-dir",
                &c,
            ]),
            true,
        );
        assert_same_tree(
            &s.join(&format!("state{i}")),
            &s.join(&format!("sd-{i}")),
            false,
        );
    }
    // swiftdup continues duplicity's chain in Swift, and duplicity restores the result.
    std::fs::write(
        s.join("src/new.txt"),
        b"written by swiftdup into a duplicity chain",
    )
    .unwrap();
    set_mtime(&s.join("src/new.txt"), 1_700_000_250);
    snapshot(&s.join("src"), &s.join("state3"));
    let cache = s.join("cache").display().to_string();
    run_sd(
        &ctx,
        &strs(&[
            "incremental",
            &src,
            &ctx.sd_url(),
            "--volsize",
            "1",
            "--current-time",
            &T3.to_string(),
            "--archive-dir",
            &cache,
            "--allow-source-mismatch",
        ]),
        false,
    );
    let out = s.join("dup-3").display().to_string();
    run_dup(
        &s,
        &ctx,
        &strs(&["restore", "-t", &T3.to_string(), &ctx.dup_url(), &out]),
    );
    assert_same_tree(&s.join("state3"), &s.join("dup-3"), false);
}

/// A chain written and read through a proxy that injects one kind of fault every `k`
/// requests, whatever the request (lock, listing, volume, signatures, manifest, the
/// newest manifest's download, a restore's downloads): a full and two incrementals of the
/// evolving tree, then restores at each time by swiftdup through the same faults, and the
/// latest by stock duplicity: all byte-identical to the source's states.
fn chain_under(name: &str, k: u64, fault: Fault, extra: &[(&str, &str)]) {
    let s = Scratch::new(&format!("swift-fault-chain-{name}"));
    let ctx = Ctx::new(&format!("fault-chain-{name}"));
    let proxy = FaultProxy::start(&ctx.env["SWIFT_STORAGE_URL"]);
    proxy.set_every(k, fault);
    let mut env: Vec<(&str, String)> = ctx
        .sd_env(false)
        .into_iter()
        .filter(|(k, _)| *k != "SWIFT_STORAGE_URL")
        .collect();
    env.push(("SWIFT_STORAGE_URL", proxy.storage_url()));
    env.push(("SWIFTDUP_BACKEND_RETRY_DELAY", "0.05".into()));
    // A restore downloads several volumes at once, so which request meets the next fault
    // is a matter of timing: one of them may meet several in a row (a burst of 503s
    // fails three of every five requests). Enough attempts that a run never gives up here;
    // giving up is tested on its own.
    env.push(("SWIFTDUP_NUM_RETRIES", "30".into()));
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let run = |args: &[&str]| {
        let e: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        swiftdup_ok(args, &e);
    };
    let src = s.join("src").display().to_string();
    let cache = s.join("cache").display().to_string();
    let url = ctx.sd_url();
    evolve_tree(&s, |i, t| {
        let verb = if i == 0 { "full" } else { "incremental" };
        let t = t.to_string();
        run(&[
            verb,
            &src,
            &url,
            "--volsize",
            "1",
            "--current-time",
            &t,
            "--archive-dir",
            &cache,
            "--hostname",
            "h",
        ]);
    });
    for (i, t) in [T0, T1, T2].into_iter().enumerate() {
        let out = s.join(&format!("sd-{i}")).display().to_string();
        let c = s.join(&format!("c-{i}")).display().to_string();
        run(&[
            "restore",
            &url,
            &out,
            "-t",
            &t.to_string(),
            "--archive-dir",
            &c,
        ]);
        assert_same_tree(
            &s.join(&format!("state{i}")),
            &s.join(&format!("sd-{i}")),
            true,
        );
    }
    let out = s.join("dup").display().to_string();
    run_dup(&s, &ctx, &strs(&["restore", &ctx.dup_url(), &out]));
    assert_same_tree(&s.join("state2"), &s.join("dup"), false);
    let faulted = proxy.seen().iter().filter(|r| r.faulted).count();
    assert!(faulted >= 5, "{name}: only {faulted} faults were injected");
}

#[test]
fn a_chain_survives_connection_resets() {
    chain_under("reset", 4, Fault::Reset(1), &[]);
}

#[test]
fn a_chain_survives_bursts_of_503() {
    chain_under("503", 5, Fault::status(503, 3), &[]);
}

#[test]
fn a_chain_survives_429_with_retry_after() {
    let f = Fault::Status {
        status: 429,
        n: 1,
        retry_after: Some(1),
    };
    chain_under("429", 6, f, &[]);
}

#[test]
fn a_chain_survives_stalls() {
    // Each stall costs the request timeout, so a short one.
    chain_under(
        "stall",
        5,
        Fault::Stall(1),
        &[("SWIFTDUP_HTTP_TIMEOUT", "2")],
    );
}

#[test]
fn a_chain_survives_truncated_downloads() {
    chain_under("truncated", 2, Fault::TruncateGet(1), &[]);
}

/// Bytes damaged on the way down: manifests and signatures are caught by Swift's Etag,
/// volumes by their SHA-1 (the Etag then tells the damage from a bad stored volume): each
/// is fetched again, and every restore is whole.
#[test]
fn a_chain_survives_damaged_downloads() {
    chain_under("flip", 2, Fault::FlipGet(1), &[]);
}

#[test]
fn a_chain_survives_wrong_etags() {
    chain_under("etag", 2, Fault::WrongEtag(1), &[]);
}
