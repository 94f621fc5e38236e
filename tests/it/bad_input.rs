//! Bad input gets one clear error event, a documented exit code, and loses nothing: damaged
//! volumes, missing manifests, malicious member names, wrong passphrases and keys, a missing
//! source.

use crate::support::forge::*;
use crate::support::*;
use std::fs;
use swiftdup::archive::tar::{self, Header};
use swiftdup::error::exit;

const PASS: &str = "s3cret-passphrase";

/// A small tree backed up once; returns (scratch, target dir).
fn backed_up(name: &str, encrypted: bool) -> Scratch {
    let s = Scratch::new(name);
    let src = s.join("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("d/b.bin"), random_bytes(3, 300_000)).unwrap();
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    let mut args = vec![
        "full",
        src.to_str().unwrap(),
        &url,
        "--current-time",
        "1700000000",
        "--archive-dir",
        &cache,
    ];
    if !encrypted {
        args.push("--no-encryption");
    }
    swiftdup_ok(&args, &[("PASSPHRASE", PASS)]);
    s
}

fn restore(s: &Scratch, out: &str, extra: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let url = s.url("target");
    let dst = s.join(out).display().to_string();
    let cache = s.join(&format!("cache-{out}")).display().to_string();
    let mut args = vec!["restore", &url, &dst, "--archive-dir", &cache];
    args.extend_from_slice(extra);
    swiftdup(&args, env)
}

fn only(s: &Scratch, pat: &str) -> std::path::PathBuf {
    let mut v: Vec<_> = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(pat))
        .collect();
    assert_eq!(v.len(), 1, "expected one {pat} file");
    v.remove(0)
}

fn assert_fails(o: &std::process::Output, code: i32, error_code: &str, msg_has: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let e = error_event(o);
    assert_eq!(e["code"], error_code, "{e}");
    assert!(
        e["msg"].as_str().unwrap().contains(msg_has),
        "message {:?} lacks {msg_has:?}",
        e["msg"]
    );
    let evs = events(o);
    assert_eq!(evs.iter().filter(|e| e["event"] == "error").count(), 1);
    assert_eq!(evs.last().unwrap()["event"], "exit");
    assert_eq!(evs.last().unwrap()["exit_code"], code);
}

#[test]
fn flipped_byte_in_a_volume_is_a_hash_mismatch_naming_the_volume() {
    let s = backed_up("flip", false);
    let vol = only(&s, ".vol1.difftar");
    let mut b = fs::read(&vol).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    fs::write(&vol, b).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "hash mismatch");
    assert!(error_event(&o)["object"]
        .as_str()
        .unwrap()
        .ends_with(".vol1.difftar.gz"));
}

/// Volumes are fetched one ahead on a thread of their own (`--concurrency` > 1): damage is
/// still reported for the first damaged volume in order, exactly as when one thread reads
/// everything, and an undamaged chain restores identically either way.
#[test]
fn a_damaged_later_volume_is_reported_in_order_with_or_without_fetching_ahead() {
    let s = Scratch::new("later-vol");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("big.bin"), random_bytes(7, 3_500_000)).unwrap();
    fs::write(src.join("z.txt"), b"omega").unwrap();
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    swiftdup_ok(
        &[
            "full",
            src.to_str().unwrap(),
            &url,
            "--no-encryption",
            "--volsize",
            "1",
            "--current-time",
            "1700000000",
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    only(&s, ".vol4.difftar");
    for c in ["1", "2"] {
        let o = restore(&s, &format!("ok-{c}"), &["--concurrency", c], &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_same_tree(&src, &s.join(&format!("ok-{c}")), false);
    }
    let damage = |vol: &str| {
        let p = only(&s, &format!(".{vol}.difftar"));
        let mut b = fs::read(&p).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        fs::write(&p, b).unwrap();
    };
    let reported_at = |vol: &str| {
        for c in ["1", "2"] {
            let o = restore(&s, &format!("{vol}-{c}"), &["--concurrency", c], &[]);
            assert_fails(&o, exit::INTEGRITY, "integrity", "hash mismatch");
            let object = error_event(&o)["object"].as_str().unwrap().to_string();
            assert!(
                object.ends_with(&format!(".{vol}.difftar.gz")),
                "--concurrency {c}: {object}"
            );
        }
    };
    damage("vol3");
    reported_at("vol3");
    damage("vol2");
    reported_at("vol2");
}

#[test]
fn truncated_volume_is_an_integrity_error() {
    let s = backed_up("trunc", false);
    let vol = only(&s, ".vol1.difftar");
    let b = fs::read(&vol).unwrap();
    fs::write(&vol, &b[..b.len() / 2]).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "hash mismatch");

    // Even when the manifest agrees with the truncated bytes, the reader notices.
    let sha = swiftdup::archive::hex(&<sha1::Sha1 as sha1::Digest>::digest(&b[..b.len() / 2]));
    let man = only(&s, ".manifest");
    let text = String::from_utf8(fs::read(&man).unwrap()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Hash SHA1"))
        .unwrap()
        .to_string();
    fs::write(&man, text.replace(&line, &format!("    Hash SHA1 {sha}"))).unwrap();
    let o = restore(&s, "out2", &[], &[]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "vol1");
}

#[test]
fn missing_manifest_means_no_complete_backup() {
    let s = backed_up("noman", false);
    fs::remove_file(only(&s, ".manifest")).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(
        &o,
        exit::NOTHING_TO_RESTORE,
        "no_backup",
        "no complete backup",
    );
    assert!(!s.join("out").exists());
}

/// Replace the full set's volume with `members` and fix the manifest hash, as an attacker
/// with write access to the container could.
fn forge_volume(s: &Scratch, members: &[(Header, Vec<u8>)]) {
    forge_set(s, "duplicity-full.", members);
}

#[test]
fn members_escaping_the_target_are_refused() {
    for (case, bad) in [
        ("dotdot", &b"snapshot/../escape"[..]),
        ("abs", b"snapshot//abs"),
        ("deep", b"diff/d/../../escape"),
    ] {
        let s = backed_up(&format!("escape-{case}"), false);
        forge_volume(
            &s,
            &[
                (member(b"snapshot/./", tar::DIRTYPE, b""), vec![]),
                (member(bad, tar::REGTYPE, b""), b"pwned".to_vec()),
            ],
        );
        let o = restore(&s, "out", &[], &[]);
        assert_fails(
            &o,
            exit::UNSAFE_MEMBER,
            "unsafe_member",
            "outside the target",
        );
        assert!(!s.join("escape").exists() && !std::path::Path::new("/abs").exists());
    }
}

#[test]
fn writing_through_a_restored_symlink_is_refused() {
    let s = backed_up("symlink-escape", false);
    let outside = s.join("outside");
    fs::create_dir_all(&outside).unwrap();
    forge_volume(
        &s,
        &[
            (member(b"snapshot/./", tar::DIRTYPE, b""), vec![]),
            (
                member(
                    b"snapshot/evil",
                    tar::SYMTYPE,
                    outside.to_str().unwrap().as_bytes(),
                ),
                vec![],
            ),
            (
                member(b"snapshot/evil/pwned", tar::REGTYPE, b""),
                b"pwned".to_vec(),
            ),
        ],
    );
    let o = restore(&s, "out", &[], &[]);
    assert_fails(
        &o,
        exit::UNSAFE_MEMBER,
        "unsafe_member",
        "outside the target",
    );
    assert!(!outside.join("pwned").exists());
}

#[test]
fn missing_source_is_its_own_error() {
    let s = Scratch::new("nosrc");
    let url = s.url("target");
    let o = swiftdup(
        &[
            "full",
            s.join("does-not-exist").to_str().unwrap(),
            &url,
            "--no-encryption",
        ],
        &[],
    );
    assert_fails(&o, exit::SOURCE_MISSING, "source_missing", "does-not-exist");
    assert!(
        fs::read_dir(s.join("target"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true),
        "nothing may be written"
    );
}

#[test]
fn restore_into_a_non_empty_target_needs_force() {
    let s = backed_up("nonempty", false);
    fs::create_dir_all(s.join("out")).unwrap();
    fs::write(s.join("out/keep.txt"), b"mine").unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::USAGE, "usage", "not empty");
    assert_eq!(fs::read(s.join("out/keep.txt")).unwrap(), b"mine");
    let o = restore(&s, "out", &["--force"], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("out/a.txt")).unwrap(), b"alpha");
}

#[test]
fn file_to_restore_that_is_not_there() {
    let s = backed_up("notthere", false);
    let o = restore(&s, "out", &["--file-to-restore", "no/such/file"], &[]);
    assert_fails(
        &o,
        exit::RESTORE_PATH_NOT_FOUND,
        "path_not_found",
        "no/such/file",
    );
}

#[test]
fn wrong_passphrase_is_a_decryption_error() {
    let s = backed_up("wrongpass", true);
    let o = restore(&s, "out", &[], &[("PASSPHRASE", "not the passphrase")]);
    assert_fails(&o, exit::DECRYPTION, "decryption", "wrong passphrase");
    let o = restore(&s, "out", &[], &[("PASSPHRASE", PASS)]);
    assert_ok(&o);
    // and the passphrase never appears in any output
    assert!(!String::from_utf8_lossy(&o.stderr).contains(PASS));
}

#[test]
fn incremental_without_a_chain_is_refused() {
    let s = Scratch::new("noinc");
    fs::create_dir_all(s.join("src")).unwrap();
    let url = s.url("target");
    let o = swiftdup(
        &[
            "incremental",
            s.join("src").to_str().unwrap(),
            &url,
            "--no-encryption",
        ],
        &[],
    );
    assert_fails(&o, exit::NO_CHAIN, "no_chain", "no backup chain");
}

#[test]
fn symmetric_backup_without_passphrase_is_a_usage_error() {
    let s = Scratch::new("nopass");
    fs::create_dir_all(s.join("src")).unwrap();
    let url = s.url("target");
    let o = swiftdup(&["full", s.join("src").to_str().unwrap(), &url], &[]);
    assert_fails(&o, exit::USAGE, "usage", "PASSPHRASE");
}

#[test]
fn wrong_secret_key_is_a_decryption_error() {
    let s = Scratch::new("wrongkey");
    let right = make_key_named(&s, "right@example.com");
    let wrong = make_key_named(&s, "wrong@example.com");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/a.txt"), b"alpha").unwrap();
    let url = s.url("target");
    let (src, pubk) = (
        s.join("src").display().to_string(),
        right.public.display().to_string(),
    );
    swiftdup_ok(
        &[
            "full",
            &src,
            &url,
            "--encrypt-key-file",
            &pubk,
            "--archive-dir",
            s.join("c").to_str().unwrap(),
        ],
        &[],
    );
    let o = restore(
        &s,
        "out",
        &["--decrypt-key-file", wrong.secret.to_str().unwrap()],
        &[("PASSPHRASE", "")],
    );
    assert_fails(&o, exit::DECRYPTION, "decryption", "no matching secret key");
    assert!(!s.join("out").exists());
    let o = restore(
        &s,
        "out",
        &["--decrypt-key-file", right.secret.to_str().unwrap()],
        &[("PASSPHRASE", "")],
    );
    assert_ok(&o);
    assert_eq!(fs::read(s.join("out/a.txt")).unwrap(), b"alpha");
    // No secret key material in the logs.
    let key = fs::read_to_string(&right.secret).unwrap();
    let body = key.lines().nth(3).unwrap();
    assert!(!String::from_utf8_lossy(&o.stderr).contains(body));
}

#[test]
fn public_key_incremental_without_secret_key_or_cache_says_what_is_needed() {
    let s = Scratch::new("pubnosecret");
    let k = make_key(&s);
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/a.txt"), b"alpha").unwrap();
    let url = s.url("target");
    let (src, pubk) = (
        s.join("src").display().to_string(),
        k.public.display().to_string(),
    );
    swiftdup_ok(
        &[
            "full",
            &src,
            &url,
            "--encrypt-key-file",
            &pubk,
            "--archive-dir",
            s.join("c1").to_str().unwrap(),
            "--current-time",
            "1700000000",
        ],
        &[],
    );
    // A fresh pod: no cache, no secret key.
    let o = swiftdup(
        &[
            "incremental",
            &src,
            &url,
            "--encrypt-key-file",
            &pubk,
            "--archive-dir",
            s.join("c2").to_str().unwrap(),
            "--current-time",
            "1700000100",
        ],
        &[],
    );
    assert_fails(&o, exit::NO_CHAIN, "no_chain", "--decrypt-key-file");
    // With the cache of the first run it works without the secret key.
    swiftdup_ok(
        &[
            "incremental",
            &src,
            &url,
            "--encrypt-key-file",
            &pubk,
            "--archive-dir",
            s.join("c1").to_str().unwrap(),
            "--current-time",
            "1700000100",
        ],
        &[],
    );
    // And `backup --full-if-no-signatures` starts a new chain instead of failing.
    let o = swiftdup_ok(
        &[
            "backup",
            &src,
            &url,
            "--encrypt-key-file",
            &pubk,
            "--archive-dir",
            s.join("c3").to_str().unwrap(),
            "--current-time",
            "1700000200",
            "--full-if-no-signatures",
        ],
        &[],
    );
    let plan = events(&o)
        .into_iter()
        .find(|e| e["event"] == "plan")
        .unwrap();
    assert_eq!(plan["type"], "full");
}

#[test]
fn incremental_from_another_host_or_source_is_refused() {
    let s = Scratch::new("mismatch");
    fs::create_dir_all(s.join("src")).unwrap();
    fs::create_dir_all(s.join("other")).unwrap();
    let url = s.url("target");
    let src = s.join("src").display().to_string();
    let cache = s.join("c").display().to_string();
    let base = ["--no-encryption", "--archive-dir", &cache];
    let run = |args: &[&str]| swiftdup(&[args, &base[..]].concat(), &[]);
    assert_eq!(
        run(&[
            "full",
            &src,
            &url,
            "--hostname",
            "pod-a",
            "--current-time",
            "1700000000"
        ])
        .status
        .code(),
        Some(0)
    );
    let o = run(&[
        "incremental",
        &src,
        &url,
        "--hostname",
        "pod-b",
        "--current-time",
        "1700000100",
    ]);
    assert_fails(&o, exit::HOSTNAME_MISMATCH, "hostname_mismatch", "pod-a");
    let other = s.join("other").display().to_string();
    let o = run(&[
        "incremental",
        &other,
        &url,
        "--hostname",
        "pod-a",
        "--current-time",
        "1700000100",
    ]);
    assert_fails(&o, exit::SOURCE_MISMATCH, "source_mismatch", "other");
    let o = run(&[
        "incremental",
        &other,
        &url,
        "--hostname",
        "pod-b",
        "--allow-source-mismatch",
        "--current-time",
        "1700000100",
    ]);
    assert_ok(&o);
}

/// A volume of a `file://` target written to by another process after its check, while
/// the restore reads it (the debug build's `scribble` fault, src/local/fault.rs), fails the
/// restore as damaged: where the restore holds a lease on the volume, the writer's open
/// breaks it; where it cannot (the file is open for writing elsewhere, as the test keeps
/// it), the MDC is hashed and the changed byte fails it.
#[cfg(target_os = "linux")]
#[test]
fn a_volume_written_to_after_its_check_fails_the_restore() {
    for (case, keep_writer) in [("lease", false), ("nolease", true)] {
        let s = backed_up(&format!("scribble-{case}"), true);
        let vol = only(&s, ".vol1.difftar");
        let leasable = swiftdup::local::platform::ReadLease::take(&fs::File::open(&vol).unwrap());
        if !keep_writer && leasable.is_none() {
            eprintln!("SKIPPED the lease case: no lease on {}", vol.display());
            continue;
        }
        drop(leasable);
        let _writer = keep_writer.then(|| fs::OpenOptions::new().append(true).open(&vol).unwrap());
        let env = [("PASSPHRASE", PASS), ("SWIFTDUP_FAULT", "scribble:vol1.")];
        let o = restore(&s, "out", &[], &env);
        assert_fails(&o, exit::INTEGRITY, "integrity", "vol1");
        // With the lease, the writer's open broke it; without, the MDC found the change.
        let why = if keep_writer {
            "(MDC) mismatch"
        } else {
            "opened for writing"
        };
        assert!(
            error_event(&o)["msg"].as_str().unwrap().contains(why),
            "{case}: {}",
            error_event(&o)
        );
        let o = restore(&s, "again", &[], &[("PASSPHRASE", PASS)]);
        if keep_writer {
            // The byte was changed: the next restore finds it at the check.
            assert_fails(&o, exit::INTEGRITY, "integrity", "hash mismatch");
        } else {
            // The lease kept the writer out: nothing changed, and the restore is whole.
            assert_ok(&o);
            assert_eq!(fs::read(s.join("again/a.txt")).unwrap(), b"alpha");
        }
    }
}

#[test]
fn tampered_encrypted_volume_with_a_forged_manifest_hash_fails_on_its_mdc() {
    // An attacker who can write the container and knows the passphrase-protected manifest
    // format still cannot change a volume: where nothing else vouches that the bytes
    // deciphered are the bytes checked (here the volume is kept open for writing, so no
    // lease can be had), its OpenPGP MDC is checked to the last byte, even though the tar
    // stream inside ends earlier.
    let s = backed_up("mdc", true);
    let vol = only(&s, ".vol1.difftar");
    let man = only(&s, ".manifest");
    let gpg = |args: &[&str]| gpg(&s.join("gnupg-forge"), PASS, args);
    // Like stock's gpg volumes, put 2 MB of junk after the tar footer, so the MDC lies far
    // beyond the point where the tar reader stops; then damage the MDC.
    let tarball = s.join("vol.tar");
    gpg(&["-o", tarball.to_str().unwrap(), "-d", vol.to_str().unwrap()]);
    let mut t = fs::read(&tarball).unwrap();
    t.extend_from_slice(&random_bytes(99, 2_000_000));
    fs::write(&tarball, &t).unwrap();
    gpg(&[
        "--symmetric",
        "--compress-algo",
        "none",
        "-o",
        vol.to_str().unwrap(),
        tarball.to_str().unwrap(),
    ]);
    let mut b = fs::read(&vol).unwrap();
    let n = b.len();
    b[n - 5] ^= 0x01;
    fs::write(&vol, &b).unwrap();
    let sha = swiftdup::archive::hex(&<sha1::Sha1 as sha1::Digest>::digest(&b));
    let plain = s.join("manifest.txt");
    gpg(&["-o", plain.to_str().unwrap(), "-d", man.to_str().unwrap()]);
    let text = fs::read_to_string(&plain).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Hash SHA1"))
        .unwrap()
        .to_string();
    fs::write(&plain, text.replace(&line, &format!("    Hash SHA1 {sha}"))).unwrap();
    gpg(&[
        "--symmetric",
        "-o",
        man.to_str().unwrap(),
        plain.to_str().unwrap(),
    ]);
    let _writer = fs::OpenOptions::new().append(true).open(&vol).unwrap();
    let o = restore(&s, "out", &[], &[("PASSPHRASE", PASS)]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "(MDC) mismatch");
    assert!(error_event(&o)["object"].as_str().unwrap().contains("vol1"));
}

/// Files under `dir` (any depth) whose name starts with `prefix` and ends with `suffix`.
fn files_named(dir: &std::path::Path, prefix: &str, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_dir() {
            out.extend(files_named(&p, prefix, suffix));
        } else if name.starts_with(prefix) && name.ends_with(suffix) {
            out.push(p);
        }
    }
    out
}

fn target_listing(s: &Scratch) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// §4.4: the cached manifest must match the remote one. A backup records the SHA-256 of the
/// sealed manifest (and of the cached copy) beside the cache so that the next run compares
/// bytes instead of decrypting; a remote manifest replaced by another of the same name, or a
/// cached copy changed behind the record's back, is still found: exit 5, one error event,
/// nothing written. Put back as it was, the incremental runs.
#[test]
fn a_cache_out_of_step_with_the_target_is_found_despite_the_sealed_record() {
    let s = backed_up("mm", true);
    // The same tree backed up at the same time elsewhere: same names, other sealed bytes.
    let other = backed_up("mm-other", true);
    let records = files_named(
        &s.join("cache"),
        "swiftdup-sealed.duplicity-full.",
        ".manifest",
    );
    assert_eq!(
        records.len(),
        1,
        "the full backup records its sealed manifest"
    );

    let src = s.join("src");
    fs::write(src.join("a.txt"), b"alpha, edited").unwrap();
    let (url, cache) = (s.url("target"), s.join("cache").display().to_string());
    let inc = || {
        swiftdup(
            &[
                "incremental",
                src.to_str().unwrap(),
                &url,
                "--current-time",
                "1700000100",
                "--archive-dir",
                &cache,
            ],
            &[("PASSPHRASE", PASS)],
        )
    };

    let refused_writing_nothing = || {
        let before = target_listing(&s);
        assert_fails(
            &inc(),
            exit::MANIFEST_MISMATCH,
            "manifest_mismatch",
            "differs from the remote",
        );
        assert!(
            target_listing(&s) == before,
            "the failed run wrote to the target"
        );
    };

    // The remote manifest replaced.
    let remote = only(&s, ".manifest.gpg");
    let mine = fs::read(&remote).unwrap();
    fs::copy(only(&other, ".manifest.gpg"), &remote).unwrap();
    refused_writing_nothing();
    fs::write(&remote, &mine).unwrap();

    // The cached copy replaced (the remote one, and so the record's sealed hash, unchanged).
    let cached = files_named(&s.join("cache"), "duplicity-", ".manifest");
    let theirs = files_named(&other.join("cache"), "duplicity-", ".manifest");
    assert_eq!((cached.len(), theirs.len()), (1, 1));
    let kept = fs::read(&cached[0]).unwrap();
    fs::copy(&theirs[0], &cached[0]).unwrap();
    refused_writing_nothing();

    fs::write(&cached[0], &kept).unwrap();
    let o = inc();
    assert_ok(&o);
}

// ---------------------------------------------------------------------------------------
// Restore never trusts the archive: whatever the members say, nothing outside TARGET
// changes, and every refusal is one error event with its own exit code.

/// A plaintext backup of `s`'s `src` into its `target`, with its `cache`, at time `t`;
/// returns the `summary` event.
fn plain_backup(s: &Scratch, verb: &str, t: &str) -> serde_json::Value {
    let (src, url) = (s.join("src"), s.url("target"));
    let cache = s.join("cache").display().to_string();
    let o = swiftdup_ok(
        &[
            verb,
            src.to_str().unwrap(),
            &url,
            "--no-encryption",
            "--current-time",
            t,
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap()
}

/// A chain of a full and an incremental (plaintext), each with one volume.
fn chain_of_two(name: &str) -> Scratch {
    let s = backed_up(name, false);
    let src = s.join("src");
    fs::write(src.join("a.txt"), b"alpha 2").unwrap();
    set_mtime(&src.join("a.txt"), 1_700_000_100);
    plain_backup(&s, "incremental", "1700000200");
    s
}

/// What a restore of a crafted archive must end with.
fn refused(o: &std::process::Output, case: &str) {
    assert_eq!(
        o.status.code(),
        Some(exit::UNSAFE_MEMBER),
        "{case}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let evs = events(o);
    let errors: Vec<_> = evs.iter().filter(|e| e["event"] == "error").collect();
    assert_eq!(errors.len(), 1, "{case}: one error event");
    assert_eq!(errors[0]["code"], "unsafe_member", "{case}");
    assert!(
        !evs.iter()
            .any(|e| e["event"] == "summary" && e["files_restored"].is_number()),
        "{case}: no summary of files restored"
    );
}

#[test]
fn names_that_leave_the_target_are_refused_for_every_member_kind() {
    for kind in [
        "snapshot",
        "diff",
        "deleted",
        "multivol_snapshot",
        "multivol_diff",
    ] {
        for (attack, path) in [
            ("dotdot", "../escape"),
            ("absolute", "/abs"),
            ("deep", "d/../../escape"),
        ] {
            let case = format!("{kind} {attack}");
            let s = backed_up(&format!("name-{kind}-{attack}"), false);
            let outside = Outside::new(&s);
            forge_set(&s, "full", &[root(), pwned(kind, path)]);
            let o = restore(&s, "out", &[], &[]);
            refused(&o, &case);
            outside.check(&s, "out", &case);
            assert!(!s.join("escape").exists() && !std::path::Path::new("/abs").exists());
        }
    }
}

#[test]
fn a_root_entry_that_is_not_a_directory_is_refused() {
    for (case, typ) in [
        ("symlink", tar::SYMTYPE),
        ("file", tar::REGTYPE),
        ("device", tar::CHRTYPE),
        ("fifo", tar::FIFOTYPE),
    ] {
        for root_name in [&b"snapshot/./"[..], b"snapshot/", b"snapshot"] {
            let s = backed_up(&format!("root-{case}-{}", root_name.len()), false);
            let outside = Outside::new(&s);
            let mut h = member(root_name, typ, outside.dir.to_str().unwrap().as_bytes());
            h.devmajor = 1;
            h.devminor = 3;
            let data = if typ == tar::REGTYPE {
                b"x".to_vec()
            } else {
                vec![]
            };
            forge_set(&s, "full", &[(h, data), pwned("snapshot", "sentinel.txt")]);
            let o = restore(&s, "out", &[], &[]);
            refused(&o, case);
            outside.check(&s, "out", case);
            // TARGET is still the directory it was made as, and empty.
            assert!(
                fs::symlink_metadata(s.join("out")).unwrap().is_dir(),
                "{case}"
            );
            assert_eq!(fs::read_dir(s.join("out")).unwrap().count(), 0, "{case}");
        }
    }
}

#[test]
fn a_symlink_made_earlier_in_the_archive_is_never_written_through() {
    for kind in ["snapshot", "multivol_snapshot"] {
        let case = format!("{kind} through a symlink of the same set");
        let s = backed_up(&format!("samearchive-{kind}"), false);
        let outside = Outside::new(&s);
        forge_set(
            &s,
            "full",
            &[
                root(),
                link("evil", &outside.dir),
                pwned(kind, "evil/sentinel.txt"),
            ],
        );
        let o = restore(&s, "out", &[], &[]);
        refused(&o, &case);
        outside.check(&s, "out", &case);
    }
    // A symlink in a deeper directory, and one reached through a directory the archive
    // never named.
    let s = backed_up("samearchive-deep", false);
    let outside = Outside::new(&s);
    forge_set(
        &s,
        "full",
        &[
            root(),
            dir("a"),
            link("a/evil", &outside.dir),
            pwned("snapshot", "a/evil/x/sentinel.txt"),
        ],
    );
    refused(&restore(&s, "out", &[], &[]), "deep");
    outside.check(&s, "out", "deep");
}

#[test]
fn a_symlink_from_an_earlier_set_of_the_chain_is_never_written_through() {
    // The full holds a directory `evil` with a file; the incremental turns `evil` into a
    // symlink out of TARGET and carries a delta (or a snapshot) for the file under it.
    for kind in ["diff", "snapshot", "multivol_diff", "deleted"] {
        let case = format!("{kind} under a symlink of a later set");
        let s = chain_of_two(&format!("chainlink-{kind}"));
        let outside = Outside::new(&s);
        forge_set(
            &s,
            "duplicity-full.",
            &[root(), dir("evil"), pwned("snapshot", "evil/sentinel.txt")],
        );
        // A delta that replaces the whole file: librsync's magic, one literal, END.
        let mut delta = vec![0x72, 0x73, 0x02, 0x36, 0x41, 5];
        delta.extend_from_slice(b"pwned");
        delta.push(0);
        let mut m = pwned(kind, "evil/sentinel.txt");
        if kind.ends_with("diff") {
            m.1 = delta;
        }
        forge_set(
            &s,
            "duplicity-inc.",
            &[root(), link("evil", &outside.dir), m],
        );
        let o = restore(&s, "out", &[], &[]);
        if kind == "deleted" {
            // A deletion writes nothing, through a link or not.
            assert_eq!(
                o.status.code(),
                Some(0),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
        } else {
            refused(&o, &case);
        }
        outside.check(&s, "out", &case);
    }
}

#[test]
fn what_was_in_the_target_before_is_never_followed() {
    // With --force into a TARGET that holds a symlink out of it, or a file, where the
    // archive has a directory on the path.
    for (case, pre_link) in [("symlink", true), ("file", false)] {
        for kind in ["snapshot", "multivol_snapshot"] {
            let case = format!("{kind} under a pre-existing {case}");
            let s = backed_up(&format!("pre-{case}-{kind}"), false);
            let outside = Outside::new(&s);
            fs::create_dir_all(s.join("out")).unwrap();
            if pre_link {
                std::os::unix::fs::symlink(&outside.dir, s.join("out/evil")).unwrap();
            } else {
                fs::write(s.join("out/evil"), b"mine").unwrap();
            }
            forge_set(&s, "full", &[root(), pwned(kind, "evil/sentinel.txt")]);
            let o = restore(&s, "out", &["--force"], &[]);
            refused(&o, &case);
            outside.check(&s, "out", &case);
        }
    }
    // A pre-existing symlink where the archive has a file is replaced, not followed.
    let s = backed_up("pre-final-link", false);
    let outside = Outside::new(&s);
    fs::create_dir_all(s.join("out")).unwrap();
    std::os::unix::fs::symlink(outside.dir.join("sentinel.txt"), s.join("out/a.txt")).unwrap();
    let o = restore(&s, "out", &["--force"], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("out/a.txt")).unwrap(), b"alpha");
    assert!(!fs::symlink_metadata(s.join("out/a.txt"))
        .unwrap()
        .file_type()
        .is_symlink());
    outside.check(&s, "out", "final link");
}

#[test]
fn file_to_restore_never_leaves_its_target() {
    let s = backed_up("r-variants", false);
    let outside = Outside::new(&s);
    forge_set(
        &s,
        "full",
        &[
            root(),
            dir("d"),
            link("d/evil", &outside.dir),
            pwned("snapshot", "d/evil/sentinel.txt"),
            link("evil", &outside.dir),
            pwned("snapshot", "evil/sentinel.txt"),
        ],
    );
    // A directory with a symlink in it: refused below it, as for a whole tree.
    let o = restore(&s, "out-d", &["--file-to-restore", "d"], &[]);
    refused(&o, "-r d");
    outside.check(&s, "out-d", "-r d");
    // The file under the link: written as TARGET itself, never through the link.
    let outside = Outside::new(&s);
    let o = restore(
        &s,
        "out-f",
        &["--file-to-restore", "evil/sentinel.txt"],
        &[],
    );
    assert_ok(&o);
    assert_eq!(fs::read(s.join("out-f")).unwrap(), b"pwned");
    outside.check(&s, "out-f", "-r file under a link");
    // The link itself, with members below it: a symlink has none, so they are refused
    // rather than written through it.
    let outside = Outside::new(&s);
    let o = restore(&s, "out-l", &["--file-to-restore", "evil"], &[]);
    refused(&o, "-r link");
    assert!(fs::symlink_metadata(s.join("out-l"))
        .unwrap()
        .file_type()
        .is_symlink());
    outside.check(&s, "out-l", "-r link");
}

#[test]
fn file_to_restore_into_an_existing_directory_goes_inside_it() {
    let s = backed_up("r-into-dir", false);
    let keep = |d: &str| {
        fs::create_dir_all(s.join(d)).unwrap();
        fs::write(s.join(d).join("mine.txt"), b"mine").unwrap();
    };
    // A file into a directory with other content: DIR/<name>, the rest untouched.
    keep("dest");
    let o = restore(&s, "dest", &["--file-to-restore", "a.txt"], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("dest/a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(s.join("dest/mine.txt")).unwrap(), b"mine");
    // Again: DIR/<name> exists now, so --force is needed, and with it only that file
    // is replaced.
    let o = restore(&s, "dest", &["--file-to-restore", "a.txt"], &[]);
    assert_fails(&o, exit::USAGE, "usage", "--force");
    fs::write(s.join("dest/a.txt"), b"changed").unwrap();
    let o = restore(&s, "dest", &["--file-to-restore", "a.txt", "--force"], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("dest/a.txt")).unwrap(), b"alpha");
    assert_eq!(fs::read(s.join("dest/mine.txt")).unwrap(), b"mine");
    // A directory of that name is never replaced by the file, even with --force.
    keep("dest2");
    keep("dest2/a.txt");
    let o = restore(&s, "dest2", &["--file-to-restore", "a.txt", "--force"], &[]);
    assert_fails(&o, exit::USAGE, "usage", "directory");
    assert_eq!(fs::read(s.join("dest2/a.txt/mine.txt")).unwrap(), b"mine");
    // A directory into a non-empty directory needs --force, and then merges.
    keep("dest3");
    let o = restore(&s, "dest3", &["--file-to-restore", "d"], &[]);
    assert_fails(&o, exit::USAGE, "usage", "not empty");
    let o = restore(&s, "dest3", &["--file-to-restore", "d", "--force"], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("dest3/mine.txt")).unwrap(), b"mine");
    assert_eq!(
        fs::read(s.join("dest3/b.bin")).unwrap(),
        fs::read(s.join("src/d/b.bin")).unwrap()
    );
}

/// A plaintext or encrypted chain of two sets, the full with four 1 MiB volumes.
fn multi_volume(name: &str, encrypted: bool) -> Scratch {
    let s = Scratch::new(name);
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"alpha").unwrap();
    fs::write(src.join("big.bin"), random_bytes(7, 3_500_000)).unwrap();
    fs::write(src.join("z.txt"), b"omega").unwrap();
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    for (verb, t) in [("full", "1700000000"), ("incremental", "1700000100")] {
        let mut args = vec![
            verb,
            src.to_str().unwrap(),
            &url,
            "--volsize",
            "1",
            "--current-time",
            t,
            "--archive-dir",
            &cache,
        ];
        if !encrypted {
            args.push("--no-encryption");
        }
        swiftdup_ok(&args, &[("PASSPHRASE", PASS)]);
        fs::write(src.join("z.txt"), b"omega 2").unwrap();
        set_mtime(&src.join("z.txt"), 1_700_000_050);
    }
    s
}

/// Every file in `out` is whole: the one from the source, byte for byte.
fn nothing_partial(s: &Scratch, out: &str, case: &str) {
    let Ok(rd) = fs::read_dir(s.join(out)) else {
        return;
    };
    for e in rd {
        let e = e.unwrap();
        let name = e.file_name();
        assert_eq!(
            fs::read(e.path()).unwrap(),
            fs::read(s.join("src").join(&name)).unwrap(),
            "{case}: {name:?} restored partly"
        );
    }
}

/// What is done to a manifest's bytes.
type Damage = fn(&[u8]) -> Vec<u8>;

#[test]
fn a_damaged_manifest_never_gives_a_partial_restore() {
    for encrypted in [false, true] {
        let damages: [(&str, Damage); 5] = [
            ("cut after volume 1", |b| {
                let t = String::from_utf8_lossy(b).into_owned();
                t.as_bytes()[..t.find("Volume 2:").unwrap_or(t.len())].to_vec()
            }),
            ("cut in half", |b| b[..b.len() / 2].to_vec()),
            ("emptied", |_| Vec::new()),
            ("zeroed", |b| vec![0u8; b.len()]),
            ("garbage", |b| random_bytes(9, b.len())),
        ];
        for (what, damage) in damages {
            let case = format!("{what} ({})", if encrypted { "encrypted" } else { "gzip" });
            let s = multi_volume(
                &format!("man-{}-{encrypted}", what.replace(' ', "-")),
                encrypted,
            );
            let man = fs::read_dir(s.join("target"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| {
                    let n = p.file_name().unwrap().to_string_lossy().into_owned();
                    n.contains("duplicity-full.") && n.contains(".manifest")
                })
                .unwrap();
            if what == "cut after volume 1" && encrypted {
                continue; // ciphertext has no lines to cut at; "cut in half" stands for it
            }
            let bytes = fs::read(&man).unwrap();
            fs::write(&man, damage(&bytes)).unwrap();
            let o = restore(&s, "out", &[], &[("PASSPHRASE", PASS)]);
            assert!(
                matches!(o.status.code(), Some(c) if c != 0 && c != exit::PARTIAL),
                "{case}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let evs = events(&o);
            assert_eq!(
                evs.iter().filter(|e| e["event"] == "error").count(),
                1,
                "{case}"
            );
            if !encrypted {
                // Refused for what it is, before any volume is read.
                let e = error_event(&o);
                assert_eq!(e["code"], "integrity", "{case}: {e}");
                let msg = e["msg"].as_str().unwrap();
                assert!(
                    msg.contains("the manifest lists") || msg.contains("lacks a starting"),
                    "{case}: {msg}"
                );
                assert!(!evs.iter().any(|e| e["event"] == "volume"), "{case}");
            }
            assert!(
                !evs.iter()
                    .any(|e| e["event"] == "summary" && e["files_restored"].is_number()),
                "{case}"
            );
            nothing_partial(&s, "out", &case);
        }
    }
}

#[test]
fn a_deleted_latest_manifest_is_reported_when_the_restore_passes_over_it() {
    let s = multi_volume("man-deleted-latest", false);
    let inc_manifest = fs::read_dir(s.join("target"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.contains("duplicity-inc.") && n.contains(".manifest")
        })
        .unwrap();
    fs::remove_file(inc_manifest).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_eq!(
        o.status.code(),
        Some(exit::PARTIAL),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let w: Vec<_> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0]["code"], "set_not_restored");
    assert_eq!(w[0]["set_time"], "2023-11-14T22:15:00Z");
    // The state of the full, whole.
    assert_eq!(fs::read(s.join("out/z.txt")).unwrap(), b"omega");
    assert_eq!(
        fs::read(s.join("out/big.bin")).unwrap(),
        fs::read(s.join("src/big.bin")).unwrap()
    );
}

/// A multivol member whose continuation is missing, or that starts past its first chunk,
/// or whose chunks skip one, is an error naming the file, and no part of it is left.
#[test]
fn a_cut_multivol_file_is_an_error_naming_it() {
    let chunk = |k: u32, n: usize| {
        (
            member(
                format!("multivol_snapshot/big/{k}").as_bytes(),
                tar::REGTYPE,
                b"",
            ),
            random_bytes(k as u64, n),
        )
    };
    let z = (
        member(b"snapshot/z.txt", tar::REGTYPE, b""),
        b"omega".to_vec(),
    );
    let cases = [
        (
            "last chunks missing",
            vec![root(), chunk(1, 65536), chunk(2, 65536), z.clone()],
            "last chunks are missing",
        ),
        (
            "ends the volume",
            vec![root(), chunk(1, 65536), chunk(2, 65536)],
            "last chunks are missing",
        ),
        (
            "first chunks missing",
            vec![root(), chunk(2, 65536), chunk(3, 10), z.clone()],
            "first chunks are missing",
        ),
        (
            "a chunk skipped",
            vec![root(), chunk(1, 65536), chunk(3, 10), z.clone()],
            "out of order",
        ),
        (
            "members out of order",
            vec![root(), z.clone(), chunk(1, 10)],
            "out of order",
        ),
    ];
    for (case, members, msg) in cases {
        let s = backed_up(&format!("cut-{}", case.replace(' ', "-")), false);
        forge_set(&s, "full", &members);
        let o = restore(&s, "out", &[], &[]);
        assert_fails(&o, exit::INTEGRITY, "integrity", msg);
        assert!(
            error_event(&o)["msg"].as_str().unwrap().contains("big")
                || case == "members out of order",
            "{case}: the message names the file"
        );
        assert!(
            !s.join("out/big").exists(),
            "{case}: a part of big was left"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Data that is hard to store faithfully: sparse files and files that change while read.

/// Bytes the file system allocated for `p`.
fn allocated(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).unwrap().blocks() * 512
}

/// Write `data` at `at` in the file `p`, keeping the rest (and its holes).
fn write_at(p: &std::path::Path, at: u64, data: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = fs::OpenOptions::new().write(true).open(p).unwrap();
    f.write_all_at(data, at).unwrap();
}

#[test]
fn a_sparse_file_restores_sparse_through_a_full_and_an_incremental() {
    const MIB: u64 = 1 << 20;
    let s = Scratch::new("sparse");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    // A 256 MiB disk image: data at its start, in its middle and at its end, holes between.
    let img = src.join("disk.img");
    fs::File::create(&img).unwrap().set_len(256 * MIB).unwrap();
    write_at(&img, 0, &random_bytes(1, 65536));
    write_at(&img, 100 * MIB + 123, &random_bytes(2, 70_000));
    write_at(&img, 256 * MIB - 10, b"0123456789");
    let backup = |verb: &str, t: &str| {
        plain_backup(&s, verb, t);
    };
    let restore_cmp = |out: &str, limit: u64| {
        let o = restore(&s, out, &[], &[]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = s.join(out).join("disk.img");
        assert!(
            fs::read(&got).unwrap() == fs::read(&img).unwrap(),
            "{out}: the image differs"
        );
        assert!(
            allocated(&got) <= limit,
            "{out}: {} bytes allocated for {} (source: {})",
            allocated(&got),
            fs::metadata(&got).unwrap().len(),
            allocated(&img)
        );
    };
    backup("full", "1700000000");
    restore_cmp("out1", 2 * MIB);
    // Changed inside, grown by a hole and a little data: the restore patches in place,
    // and what the delta adds past the old end stays sparse too.
    write_at(&img, 50 * MIB, &random_bytes(3, 65536));
    write_at(&img, 264 * MIB, b"new end");
    set_mtime(&img, 1_700_000_050);
    backup("incremental", "1700000100");
    restore_cmp("out2", 4 * MIB);
}

#[test]
fn a_file_that_changes_while_it_is_read_is_reported_and_read_again() {
    let s = Scratch::new("torn");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("steady.txt"), b"steady").unwrap();
    fs::write(src.join("growing.log"), random_bytes(4, 1_000_000)).unwrap();
    touch_all(&src, 1_700_000_000 - 500);
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    let args = |verb: &'static str, t: &'static str| -> Vec<String> {
        [
            verb,
            src.to_str().unwrap(),
            &url,
            "--no-encryption",
            "--current-time",
            t,
            "--archive-dir",
            &cache,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let run = |a: Vec<String>, env: &[(&str, &str)]| {
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        swiftdup_ok(&a, env)
    };
    // The file is cut to half just after the backup opened it, as a writer racing it.
    let o = run(
        args("full", "1700000000"),
        &[("SWIFTDUP_FAULT", "shrink:growing.log")],
    );
    let warnings: Vec<_> = events(&o)
        .into_iter()
        .filter(|e| e["event"] == "warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["code"], "changed_during_backup");
    assert_eq!(warnings[0]["path"], "growing.log");
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["changed_during_backup"], 1);
    assert_eq!(summary["warnings"], 0, "a changed file is no failure");
    // The next run reads it again although its size and mtime now match the listing.
    let o = run(args("incremental", "1700000100"), &[]);
    let summary = events(&o)
        .into_iter()
        .find(|e| e["event"] == "summary")
        .unwrap();
    assert_eq!(summary["files_changed"], 1, "{summary}");
    assert_eq!(summary["changed_during_backup"], 0);
    let o = restore(&s, "out", &[], &[]);
    assert_ok(&o);
    assert_eq!(
        fs::read(s.join("out/growing.log")).unwrap(),
        fs::read(src.join("growing.log")).unwrap()
    );
}

#[test]
fn a_file_the_manifest_lists_but_the_volumes_lack_is_an_error() {
    // The volume is replaced by one without d/b.bin; the manifest still lists it (plaintext
    // manifests have no MAC: a writer's bug or a half-done forgery looks like this).
    let s = backed_up("filelist", false);
    let man = only(&s, ".manifest");
    let text = fs::read(&man).unwrap();
    forge_set(
        &s,
        "full",
        &[
            root(),
            (
                member(b"snapshot/a.txt", tar::REGTYPE, b""),
                b"alpha".to_vec(),
            ),
            dir("d"),
        ],
    );
    let forged = String::from_utf8(fs::read(&man).unwrap()).unwrap();
    let text = String::from_utf8(text).unwrap();
    let filelist = &text[text.find("Filelist").unwrap()..];
    fs::write(&man, format!("{forged}{filelist}")).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "lists d/b.bin as stored");
    // Listed as deleted, but the set stores it: the same.
    let s = backed_up("filelist-deleted", false);
    let man = only(&s, ".manifest");
    let text = String::from_utf8(fs::read(&man).unwrap()).unwrap();
    fs::write(&man, text.replace("new      d/b.bin", "deleted  d/b.bin")).unwrap();
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "lists d/b.bin as deleted");
}

// ---------------------------------------------------------------------------------------
// Keys: a run's passphrase must open the chain it extends.

#[test]
fn a_wrong_passphrase_never_makes_a_chain_unrestorable() {
    let s = backed_up("wrongpass-warm", true);
    let src = s.join("src");
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    let incremental = |t: &str, pass: &str| {
        swiftdup(
            &[
                "incremental",
                src.to_str().unwrap(),
                &url,
                "--current-time",
                t,
                "--archive-dir",
                &cache,
            ],
            &[("PASSPHRASE", pass)],
        )
    };
    // The cache is warm (the full just wrote it): the remote manifest is still decrypted.
    let before = target_listing(&s);
    fs::write(src.join("a.txt"), b"alpha 2").unwrap();
    let o = incremental("1700000100", "not the passphrase");
    assert_fails(&o, exit::DECRYPTION, "decryption", "do not open the chain");
    assert_eq!(target_listing(&s), before, "nothing stored");
    // The right one goes on, and every time restores with it.
    let o = incremental("1700000200", PASS);
    assert_ok(&o);
    for (t, want) in [("1700000000", &b"alpha"[..]), ("1700000200", b"alpha 2")] {
        let out = format!("out-{t}");
        let o = restore(&s, &out, &["--time", t], &[("PASSPHRASE", PASS)]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{t}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(fs::read(s.join(&out).join("a.txt")).unwrap(), want, "{t}");
    }
}

#[test]
fn a_missing_passphrase_is_named_as_such() {
    let s = backed_up("nopass-restore", true);
    let o = restore(&s, "out", &[], &[]);
    assert_fails(&o, exit::USAGE, "usage", "PASSPHRASE is not set");
}

/// git's "racily clean" case: an edit in the second the backup started, after the file was
/// read, keeps size and mtime. The file is read again next run, and the edit is found; so
/// is a symlink whose only change is its mtime.
#[test]
fn same_second_edits_and_touched_symlinks_are_found() {
    let s = Scratch::new("racy");
    let src = s.join("src");
    fs::create_dir_all(&src).unwrap();
    let f = src.join("f.txt");
    fs::write(&f, b"before").unwrap();
    fs::write(src.join("old.txt"), b"old").unwrap();
    symlink("f.txt", &src.join("link"));
    // An mtime not older than the run's start: here a future one, so the test does not
    // depend on which second the run starts in.
    let racy = swiftdup::archive::time::unix_now() + 3600;
    set_mtime(&f, racy);
    set_mtime(&src.join("old.txt"), 1_600_000_000);
    set_mtime(&src.join("link"), 1_600_000_000);
    let backup = |verb: &str, t: &str| plain_backup(&s, verb, t);
    backup("full", "1700000000");
    // The same size, the same mtime, other bytes; and the link only touched.
    fs::write(&f, b"after!").unwrap();
    set_mtime(&f, racy);
    set_mtime(&src.join("link"), 1_600_000_100);
    let summary = backup("incremental", "1700000100");
    assert_eq!(summary["files_changed"], 2, "{summary}");
    assert_eq!(
        summary["files_unchanged"], 2,
        "the root and old.txt: {summary}"
    );
    let o = restore(&s, "out", &[], &[]);
    assert_ok(&o);
    assert_eq!(fs::read(s.join("out/f.txt")).unwrap(), b"after!");
    let link_mtime = {
        use std::os::unix::fs::MetadataExt;
        fs::symlink_metadata(s.join("out/link")).unwrap().mtime()
    };
    assert_eq!(link_mtime, 1_600_000_100);
}

#[test]
fn a_public_key_incremental_to_other_keys_is_refused_unless_allowed() {
    let s = Scratch::new("pubkeychange");
    let k = make_key_named(&s, "Chain Key <chain@example.org>");
    let other = {
        let o = Scratch::new("pubkeychange-other");
        let k2 = make_key_named(&o, "Other Key <other@example.org>");
        let p = s.join("other.asc");
        fs::copy(&k2.public, &p).unwrap();
        p
    };
    fs::create_dir_all(s.join("src")).unwrap();
    fs::write(s.join("src/a.txt"), b"alpha").unwrap();
    let url = s.url("target");
    let src = s.join("src").display().to_string();
    let cache = s.join("cache").display().to_string();
    let backup = |verb: &str, key: &std::path::Path, t: &str, extra: &[&str]| {
        let mut a = vec![
            verb,
            &src,
            &url,
            "--encrypt-key-file",
            key.to_str().unwrap(),
            "--archive-dir",
            &cache,
            "--current-time",
            t,
        ];
        a.extend_from_slice(extra);
        swiftdup(&a, &[])
    };
    let ok = |o: std::process::Output| {
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        )
    };
    ok(backup("full", &k.public, "1700000000", &[]));
    let before = target_listing(&s);
    let o = backup("incremental", &other, "1700000100", &[]);
    assert_fails(&o, exit::DECRYPTION, "decryption", "--allow-key-change");
    assert_eq!(target_listing(&s), before, "nothing stored");
    // The chain's own key goes on; another one only when asked for.
    ok(backup("incremental", &k.public, "1700000200", &[]));
    ok(backup(
        "incremental",
        &other,
        "1700000300",
        &["--allow-key-change"],
    ));
}

// ---------------------------------------------------------------------------------------
// Errors that point the right way: a full or forbidden local disk is not a failing storage,
// and settings that cannot work are named before any request.

#[test]
fn local_disk_errors_are_local_io_and_storage_errors_backend() {
    let s = backed_up("local-io", false);
    let url = s.url("target");
    let cache = s.join("cache").display().to_string();
    // Standard output on a full disk (`> file` on a full volume): ENOSPC.
    let o = std::process::Command::new(swiftdup_bin())
        .args(["list-current-files", &url, "--archive-dir", &cache])
        .env_clear()
        .env("TMPDIR", crate::support::RUN_TMPDIR)
        .stdin(std::process::Stdio::null())
        .stdout(fs::File::create("/dev/full").unwrap())
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    assert_fails(&o, 74, "local_io", "standard output");
    // The spool directory (--tempdir) cannot be made: a file is in the way.
    fs::write(s.join("not-a-dir"), b"").unwrap();
    let spool = s.join("not-a-dir/spool").display().to_string();
    let src = s.join("src").display().to_string();
    let o = swiftdup(
        &[
            "full",
            &src,
            &url,
            "--no-encryption",
            "--archive-dir",
            &cache,
            "--tempdir",
            &spool,
        ],
        &[],
    );
    assert_fails(&o, 74, "local_io", &spool);
    // The restore target cannot be made.
    let o = restore(&s, "not-a-dir/out", &[], &[]);
    assert_fails(&o, 74, "local_io", "not-a-dir");
    if !swiftdup::local::platform::is_root() {
        // Permission denied on this machine's side (root would not be denied).
        fs::create_dir_all(s.join("locked")).unwrap();
        chmod(&s.join("locked"), 0o500);
        let o = restore(&s, "locked/out", &[], &[]);
        chmod(&s.join("locked"), 0o700);
        assert_fails(&o, 74, "local_io", "locked");
    }
    // The file:// target's directory is the storage: it cannot be made, exit 50.
    let bad_target = format!("{}/not-a-dir/target", s.0.display());
    let o = swiftdup(
        &[
            "full",
            &src,
            &format!("file://{bad_target}"),
            "--no-encryption",
            "--archive-dir",
            &cache,
        ],
        &[],
    );
    assert_fails(&o, 50, "backend", &bad_target);
}

/// A swiftkeys:// run against a port nothing listens on, with one retry at most: whatever
/// it meets there, a setting refused up front never gets that far.
fn swift_run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut e = vec![
        ("SWIFTDUP_NUM_RETRIES", "0"),
        ("SWIFTDUP_BACKEND_RETRY_DELAY", "0.01"),
        ("PASSPHRASE", PASS),
    ];
    e.extend_from_slice(env);
    swiftdup(args, &e)
}

#[test]
fn a_key_with_a_line_break_is_a_usage_error_naming_its_variable() {
    let s = Scratch::new("key-crlf");
    fs::create_dir_all(s.join("src")).unwrap();
    let src = s.join("src").display().to_string();
    let out = s.join("out").display().to_string();
    let storage = ("SWIFT_STORAGE_URL", "http://127.0.0.1:9/v1/AUTH_test");
    // What `kubectl create secret --from-file` makes of a key file written by `echo`.
    let key = "Key-0c7d41-in-a-file\n";
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["backup", &src, "swiftkeys://c"],
            "SWIFT_CONTAINER_FULL_TOKEN",
            key,
        ),
        (
            &["restore", "swiftkeys://c", &out],
            "SWIFT_CONTAINER_READ_TOKEN",
            key,
        ),
        (
            &["collection-status", "swiftkeys://c"],
            "SWIFT_CONTAINER_READ_TOKEN",
            "Key-0c7d41\r\nX-Injected: 1",
        ),
        (
            &["collection-status", "swiftkeys://c"],
            "SWIFT_CONTAINER_FULL_TOKEN",
            " Key-0c7d41",
        ),
    ];
    for (args, var, value) in cases {
        let o = swift_run(args, &[storage, (var, value)]);
        assert_fails(&o, exit::USAGE, "usage", var);
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("Key-0c7d41"),
            "the key is not shown"
        );
    }
}

#[test]
fn a_storage_url_without_its_account_is_a_usage_error() {
    let s = Scratch::new("storage-url-shape");
    let key = ("SWIFT_CONTAINER_READ_TOKEN", "read-key-9f2");
    for bad in [
        "http://127.0.0.1:9",
        "http://127.0.0.1:9/",
        "http://127.0.0.1:9/v1",
        "http://127.0.0.1:9/v3/auth/tokens",
        "http://user:StoragePw-77@127.0.0.1:9/swift",
        "http://127.0.0.1:x9/v1/AUTH_test",
        "http://127.0.0.1:9/v1/AUTH_test\n",
    ] {
        let o = swift_run(
            &[
                "list-current-files",
                "swiftkeys://c",
                "--archive-dir",
                &s.0.display().to_string(),
            ],
            &[("SWIFT_STORAGE_URL", bad), key],
        );
        assert_fails(&o, exit::USAGE, "usage", "SWIFT_STORAGE_URL");
        let log = String::from_utf8_lossy(&o.stderr);
        assert!(log.contains("/v1/AUTH_"), "says what it looks like: {log}");
        assert!(!log.contains("StoragePw-77"), "{log}");
    }
}
