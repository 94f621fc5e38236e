//! Bad input gets one clear error event, a documented exit code, and loses nothing: damaged
//! volumes, missing manifests, malicious member names, wrong passphrases and keys, a missing
//! source.

mod common;
use common::*;
use std::fs;
use swiftdup::error::exit;
use swiftdup::format::tar::{self, Header};

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
    let sha = swiftdup::volume::hex(&<sha1::Sha1 as sha1::Digest>::digest(&b[..b.len() / 2]));
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
    let mut t = Vec::new();
    for (h, data) in members {
        let mut h = h.clone();
        h.size = data.len() as u64;
        tar::write_member(&mut t, &h, data).unwrap();
    }
    t.resize(t.len() + tar::footer_len(t.len() as u64), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &t).unwrap();
    let bytes = gz.finish().unwrap();
    let vol = only(s, ".vol1.difftar");
    fs::write(&vol, &bytes).unwrap();
    let sha = swiftdup::volume::hex(&<sha1::Sha1 as sha1::Digest>::digest(&bytes));
    let man = only(s, ".manifest");
    let text = String::from_utf8(fs::read(&man).unwrap()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Hash SHA1"))
        .unwrap()
        .to_string();
    fs::write(&man, text.replace(&line, &format!("    Hash SHA1 {sha}"))).unwrap();
}

fn member(name: &[u8], typ: u8, link: &[u8]) -> Header {
    Header {
        name: name.to_vec(),
        typ,
        mode: 0o644,
        mtime: 1_699_990_000,
        linkname: link.to_vec(),
        ..Header::default()
    }
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn tampered_encrypted_volume_with_a_forged_manifest_hash_fails_on_its_mdc() {
    // An attacker who can write the container and knows the passphrase-protected manifest
    // format still cannot change a volume: its OpenPGP MDC is checked to the last byte,
    // even though the tar stream inside ends earlier.
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
    let sha = swiftdup::volume::hex(&<sha1::Sha1 as sha1::Digest>::digest(&b));
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
    let o = restore(&s, "out", &[], &[("PASSPHRASE", PASS)]);
    assert_fails(&o, exit::INTEGRITY, "integrity", "vol1");
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
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
