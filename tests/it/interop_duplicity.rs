//! Compatibility with stock duplicity 0.8.22, both ways, in every sealing mode: swiftdup
//! writes and duplicity restores, duplicity writes and swiftdup restores, and mixed chains.

use crate::support::*;

/// How the archive is sealed, for both tools.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Gzip,
    Symmetric,
    PublicKey,
}

const PASS: &str = "correct horse battery staple";

fn sd_mode_args(mode: Mode, keys: Option<&Keys>) -> Vec<String> {
    match mode {
        Mode::Gzip => vec!["--no-encryption".into()],
        Mode::Symmetric => vec![],
        Mode::PublicKey => {
            let k = keys.unwrap();
            vec![
                "--encrypt-key-file".into(),
                k.public.display().to_string(),
                "--decrypt-key-file".into(),
                k.secret.display().to_string(),
            ]
        }
    }
}

fn dup_mode_args(mode: Mode, keys: Option<&Keys>) -> Vec<String> {
    match mode {
        Mode::Gzip => vec!["--no-encryption".into()],
        Mode::Symmetric => vec![],
        Mode::PublicKey => vec!["--encrypt-key".into(), keys.unwrap().fpr.clone()],
    }
}

fn pass_env(mode: Mode) -> Vec<(&'static str, &'static str)> {
    match mode {
        Mode::Gzip => vec![],
        Mode::Symmetric => vec![("PASSPHRASE", PASS)],
        Mode::PublicKey => vec![("PASSPHRASE", "")],
    }
}

fn sd_backup(s: &Scratch, mode: Mode, keys: Option<&Keys>, verb: &str, t: i64) {
    let src = s.join("src").display().to_string();
    let url = s.url("target");
    let cache = s.join("cache-sd").display().to_string();
    let t = t.to_string();
    let mut args: Vec<String> = [
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
        "testhost",
        "--allow-source-mismatch",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    args.extend(sd_mode_args(mode, keys));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    swiftdup_ok(&a, &pass_env(mode));
}

fn dup_backup(s: &Scratch, mode: Mode, keys: Option<&Keys>, verb: &str, t: i64) {
    let src = s.join("src").display().to_string();
    let url = s.url("target");
    let t = t.to_string();
    let mut args: Vec<String> = [
        verb,
        "--volsize",
        "1",
        "--current-time",
        &t,
        "--allow-source-mismatch",
        &src,
        &url,
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    args.extend(dup_mode_args(mode, keys));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    duplicity_ok(s, &a, &pass_env(mode));
}

fn dup_restore(s: &Scratch, mode: Mode, keys: Option<&Keys>, t: i64, out: &str) {
    let url = s.url("target");
    let t = t.to_string();
    let dst = s.join(out).display().to_string();
    let mut args: Vec<String> = ["restore", "-t", &t, &url, &dst]
        .iter()
        .map(|x| x.to_string())
        .collect();
    args.extend(dup_mode_args(mode, keys));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    duplicity_ok(s, &a, &pass_env(mode));
}

fn sd_restore(s: &Scratch, mode: Mode, keys: Option<&Keys>, t: i64, out: &str, extra: &[&str]) {
    let url = s.url("target");
    let t = t.to_string();
    let dst = s.join(out).display().to_string();
    // A fresh cache every time: restores must work statelessly.
    let cache = s
        .join(&format!("cache-restore-{out}"))
        .display()
        .to_string();
    let mut args: Vec<String> = ["restore", &url, &dst, "-t", &t, "--archive-dir", &cache]
        .iter()
        .map(|x| x.to_string())
        .collect();
    args.extend(sd_mode_args(mode, keys));
    args.extend(extra.iter().map(|x| x.to_string()));
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    swiftdup_ok(&a, &pass_env(mode));
}

fn swiftdup_writes_duplicity_restores(mode: Mode) {
    if !have("duplicity") {
        panic!("stock duplicity is not installed (the Makefile installs it)");
    }
    let s = Scratch::new(&format!("sd2dup-{mode:?}"));
    let keys = matches!(mode, Mode::PublicKey).then(|| make_key(&s));
    evolve_tree(&s, |i, t| {
        sd_backup(
            &s,
            mode,
            keys.as_ref(),
            if i == 0 { "full" } else { "incremental" },
            t,
        )
    });
    for (i, t) in [T0, T1, T2].into_iter().enumerate() {
        let out = format!("dup-restore-{i}");
        dup_restore(&s, mode, keys.as_ref(), t, &out);
        assert_same_tree(&s.join(&format!("state{i}")), &s.join(&out), false);
        // and swiftdup reads its own chain, symlink mtimes included
        let out = format!("sd-restore-{i}");
        sd_restore(&s, mode, keys.as_ref(), t, &out, &[]);
        assert_same_tree(&s.join(&format!("state{i}")), &s.join(&out), true);
    }
}

fn duplicity_writes_swiftdup_restores(mode: Mode) {
    let s = Scratch::new(&format!("dup2sd-{mode:?}"));
    let keys = matches!(mode, Mode::PublicKey).then(|| make_key(&s));
    evolve_tree(&s, |i, t| {
        dup_backup(
            &s,
            mode,
            keys.as_ref(),
            if i == 0 { "full" } else { "incremental" },
            t,
        )
    });
    for (i, t) in [T0, T1, T2].into_iter().enumerate() {
        let out = format!("sd-restore-{i}");
        sd_restore(&s, mode, keys.as_ref(), t, &out, &[]);
        assert_same_tree(&s.join(&format!("state{i}")), &s.join(&out), false);
    }
    // --file-to-restore of one file and of one directory
    sd_restore(
        &s,
        mode,
        keys.as_ref(),
        T2,
        "one-file",
        &["--file-to-restore", "sub/a.txt"],
    );
    assert_eq!(
        std::fs::read(s.join("one-file")).unwrap(),
        std::fs::read(s.join("state2/sub/a.txt")).unwrap()
    );
    sd_restore(
        &s,
        mode,
        keys.as_ref(),
        T2,
        "one-dir",
        &["--file-to-restore", "sub"],
    );
    assert_same_tree(&s.join("state2/sub"), &s.join("one-dir"), false);
    sd_restore(&s, mode, keys.as_ref(), T1, "big-at-t1", &["-r", "big.bin"]);
    assert_eq!(
        std::fs::read(s.join("big-at-t1")).unwrap(),
        std::fs::read(s.join("state1/big.bin")).unwrap()
    );
}

/// duplicity full, swiftdup incremental, duplicity incremental, swiftdup incremental; both
/// tools restore every time identically.
fn mixed_chain(mode: Mode) {
    let s = Scratch::new(&format!("mixed-{mode:?}"));
    let keys = matches!(mode, Mode::PublicKey).then(|| make_key(&s));
    evolve_tree(&s, |i, t| match i {
        0 => dup_backup(&s, mode, keys.as_ref(), "full", t),
        1 => sd_backup(&s, mode, keys.as_ref(), "incremental", t),
        _ => dup_backup(&s, mode, keys.as_ref(), "incremental", t),
    });
    // one more change, by swiftdup
    std::fs::write(s.join("src/new.txt"), b"changed by the fourth set").unwrap();
    set_mtime(&s.join("src/new.txt"), 1_700_000_250);
    snapshot(&s.join("src"), &s.join("state3"));
    sd_backup(&s, mode, keys.as_ref(), "backup", T3);
    for (i, t) in [T0, T1, T2, T3].into_iter().enumerate() {
        let out = format!("dup-restore-{i}");
        dup_restore(&s, mode, keys.as_ref(), t, &out);
        assert_same_tree(&s.join(&format!("state{i}")), &s.join(&out), false);
        let out = format!("sd-restore-{i}");
        sd_restore(&s, mode, keys.as_ref(), t, &out, &[]);
        assert_same_tree(&s.join(&format!("state{i}")), &s.join(&out), false);
    }
}

#[test]
fn gzip_swiftdup_writes_duplicity_restores() {
    swiftdup_writes_duplicity_restores(Mode::Gzip);
}

#[test]
fn gzip_duplicity_writes_swiftdup_restores() {
    duplicity_writes_swiftdup_restores(Mode::Gzip);
}

#[test]
fn gzip_mixed_chain() {
    mixed_chain(Mode::Gzip);
}

#[test]
fn symmetric_swiftdup_writes_duplicity_restores() {
    swiftdup_writes_duplicity_restores(Mode::Symmetric);
}

#[test]
fn symmetric_duplicity_writes_swiftdup_restores() {
    duplicity_writes_swiftdup_restores(Mode::Symmetric);
}

#[test]
fn symmetric_mixed_chain() {
    mixed_chain(Mode::Symmetric);
}

#[test]
fn pubkey_swiftdup_writes_duplicity_restores() {
    swiftdup_writes_duplicity_restores(Mode::PublicKey);
}

#[test]
fn pubkey_duplicity_writes_swiftdup_restores() {
    duplicity_writes_swiftdup_restores(Mode::PublicKey);
}

#[test]
fn pubkey_mixed_chain() {
    mixed_chain(Mode::PublicKey);
}
