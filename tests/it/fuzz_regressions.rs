//! The fuzz targets' inputs replayed under a plain `cargo test`: every file of
//! `fuzz/corpus/<target>/` (the seeds) and `fuzz/regressions/<target>/` (each crash or
//! hang the fuzzer found, kept once fixed) goes through the same harness function the
//! target runs (`fuzz/src/harness.rs`, included here), with a watchdog for hangs. The fuzz
//! build itself needs cargo fuzz (`make fuzz`, `make fuzz-smoke`; fuzz/README.md).
//!
//! `cargo test --test it -- --ignored fuzz_regressions::write_seed_corpora` rewrites the seed
//! corpora from tests/fixtures and from swiftdup's own writers (and gpg's, when there).

#[path = "../../fuzz/src/harness.rs"]
#[allow(dead_code)]
mod harness;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

/// Longer than any input needs in a debug build; a hang shows as this.
const WATCHDOG: Duration = Duration::from_secs(60);

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn inputs(target: &str) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(rd) = std::fs::read_dir(fuzz_dir().join(dir).join(target)) else {
            continue;
        };
        v.extend(
            rd.map(|e| e.expect("listing a fuzz input folder").path())
                .filter(|p| p.is_file() && !p.ends_with(".gitkeep")),
        );
    }
    v.sort();
    v
}

/// Run `target` on one input in a thread of its own: Err(why) for a panic or a hang.
fn replay_one(target: &'static str, path: &Path) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        harness::run(target, &data);
        let _ = tx.send(());
    });
    match rx.recv_timeout(WATCHDOG) {
        Ok(()) => worker.join().map_err(|_| "panicked".to_string()),
        // The sender dropped without sending: the harness panicked.
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("panicked".into()),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            Err(format!("still running after {WATCHDOG:?} (a hang)"))
        }
    }
}

fn replay(target: &'static str) {
    assert!(harness::TARGETS.contains(&target));
    let files = inputs(target);
    assert!(
        !files.is_empty(),
        "no seeds in fuzz/corpus/{target}/ (write_seed_corpora makes them)"
    );
    let failed: Vec<String> = files
        .iter()
        .filter_map(|p| {
            replay_one(target, p)
                .err()
                .map(|why| format!("{}: {why}", p.display()))
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failed.len(),
        files.len(),
        failed.join("\n")
    );
}

#[test]
fn tar_reader() {
    replay("tar_reader");
}

#[test]
fn manifest() {
    replay("manifest");
}

#[test]
fn sigtar() {
    replay("sigtar");
}

#[test]
fn delta_reader() {
    replay("delta_reader");
}

#[test]
fn patch() {
    replay("patch");
}

#[test]
fn pgp() {
    replay("pgp");
}

#[test]
fn names() {
    replay("names");
}

#[test]
fn time() {
    replay("time");
}

#[test]
fn progress() {
    replay("progress");
}

/// Every target has a test above and a source file.
#[test]
fn every_target_is_replayed() {
    let src = include_str!("fuzz_regressions.rs");
    for t in harness::TARGETS {
        assert!(
            src.contains(&format!("replay(\"{t}\")")),
            "{t} is not replayed"
        );
        assert!(
            fuzz_dir().join(format!("fuzz_targets/{t}.rs")).is_file(),
            "fuzz/fuzz_targets/{t}.rs is missing"
        );
    }
}

/// Rewrites `fuzz/corpus/` (see the module docs). Not part of the suite: the seeds are
/// committed, and PGP seeds differ at each run (random salts and session keys).
#[test]
#[ignore]
fn write_seed_corpora() {
    seeds::write_all(&fuzz_dir().join("corpus"));
}

mod seeds {
    use super::harness::{PASSPHRASE, SEP, TEST_SECRET_KEY};
    use std::io::{Read, Write};
    use std::path::Path;
    use std::process::Command;
    use swiftdup::archive::manifest::{write_header, VolumeInfo};
    use swiftdup::archive::sigtar::SigWriter;
    use swiftdup::archive::tar::{self, Header, TarReader};
    use swiftdup::archive::Index;
    use swiftdup::rsync::{DeltaReader, Signature, SignatureBuilder};
    use swiftdup::seal::pgp::{SealMode, Sealer, SignKey};

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/duplicity-0.8.22/plain"
    );

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(Path::new(FIXTURES).join(name)).expect("reading a fixture")
    }

    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    }

    /// The fixture file names, sorted.
    fn listing() -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(FIXTURES)
            .expect("fixtures")
            .map(|e| e.expect("fixture").file_name().into_string().expect("name"))
            .collect();
        v.sort();
        v
    }

    /// A tar stream without the zero blocks at its end (the reader stops at the first).
    fn trim_tar(mut t: Vec<u8>) -> Vec<u8> {
        while t.len() >= tar::BLOCK && t[t.len() - tar::BLOCK..].iter().all(|&b| b == 0) {
            t.truncate(t.len() - tar::BLOCK);
        }
        t.extend_from_slice(&[0; tar::BLOCK]);
        t
    }

    /// The members of a tar stream (header, data).
    fn members(t: &[u8]) -> Vec<(Header, Vec<u8>)> {
        let mut r = TarReader::new(t);
        let mut v = Vec::new();
        while let Some(h) = r.next_header().expect("fixture tar") {
            let mut d = Vec::new();
            r.read_to_end(&mut d).expect("fixture member");
            v.push((h, d));
        }
        v
    }

    fn tar_of(members: &[(Header, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (h, d) in members {
            let mut h = h.clone();
            h.size = d.len() as u64;
            tar::write_member(&mut out, &h, d).expect("tar to a Vec");
        }
        out.extend_from_slice(&[0; tar::BLOCK]);
        out
    }

    fn joined(parts: &[&[u8]]) -> Vec<u8> {
        parts.join(SEP)
    }

    struct Corpus<'a> {
        root: &'a Path,
    }

    impl Corpus<'_> {
        fn put(&self, target: &str, name: &str, data: &[u8]) {
            let dir = self.root.join(target);
            std::fs::create_dir_all(&dir).expect("corpus folder");
            std::fs::write(dir.join(name), data).expect("writing a seed");
        }
    }

    fn file(name: &[u8], typ: u8, size: u64) -> Header {
        Header {
            name: name.to_vec(),
            typ,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size,
            mtime: 1_700_000_000,
            uname: b"user".to_vec(),
            gname: b"user".to_vec(),
            ..Header::default()
        }
    }

    /// A raw 512-byte header block with a correct checksum, for the flavours our writer
    /// does not make (v7, GNU long names, base-256 numbers, ustar prefix, global PAX).
    fn raw_block(name: &[u8], typ: u8, size_field: &[u8], magic: &[u8], prefix: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; tar::BLOCK];
        b[..name.len()].copy_from_slice(name);
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0001750\0");
        b[116..124].copy_from_slice(b"0001750\0");
        b[124..124 + size_field.len()].copy_from_slice(size_field);
        b[136..148].copy_from_slice(b"14524073360\0");
        b[156] = typ;
        b[257..257 + magic.len()].copy_from_slice(magic);
        b[345..345 + prefix.len()].copy_from_slice(prefix);
        b[148..156].copy_from_slice(b"        ");
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    fn padded(mut v: Vec<u8>) -> Vec<u8> {
        v.resize(v.len().div_ceil(tar::BLOCK) * tar::BLOCK, 0);
        v
    }

    fn tar_seeds(c: &Corpus) {
        for name in listing() {
            if name.ends_with("tar.gz") {
                let t = trim_tar(gunzip(&fixture(&name)));
                if t.len() > tar::BLOCK && !name.starts_with("duplicity-full.") {
                    c.put("tar_reader", &name.replace(".gz", ""), &t);
                }
            }
        }
        // The full volume's members with their data cut to 300 bytes (the volume is 80 KiB).
        let full = gunzip(&fixture("duplicity-full.20231114T221320Z.vol1.difftar.gz"));
        let cut: Vec<(Header, Vec<u8>)> = members(&full)
            .into_iter()
            .map(|(h, d)| (h, d[..d.len().min(300)].to_vec()))
            .collect();
        c.put("tar_reader", "full-vol1-cut.difftar", &tar_of(&cut));

        let long = [b"snapshot/".as_slice(), &[b'd'; 150], b"/f.txt"].concat();
        let mut link = file(b"snapshot/link", tar::SYMTYPE, 0);
        link.linkname = [b"../".as_slice(), &[b'l'; 120]].concat();
        let mut dev = file(b"snapshot/dev/null", tar::CHRTYPE, 0);
        (dev.devmajor, dev.devminor) = (1, 3);
        let mut big = file(b"snapshot/big-ids", tar::REGTYPE, 3);
        (big.uid, big.gid, big.mtime) = (1 << 40, 1 << 33, 1 << 40);
        big.uname = "üser-with-a-long-name-over-32-bytes".as_bytes().to_vec();
        let mut extra = file(b"signature/file1.txt", tar::REGTYPE, 4);
        extra
            .extra
            .push(("SWIFTDUP.size".into(), b"12345".to_vec()));
        let ours = [
            (
                file(b"snapshot/\xff\xfename", tar::REGTYPE, 5),
                b"hello".to_vec(),
            ),
            (file(&long, tar::REGTYPE, 2), b"hi".to_vec()),
            (link, Vec::new()),
            (dev, Vec::new()),
            (file(b"snapshot/fifo", tar::FIFOTYPE, 0), Vec::new()),
            (file(b"snapshot/dir/", tar::DIRTYPE, 0), Vec::new()),
            (big, b"abc".to_vec()),
            (extra, b"sig!".to_vec()),
            (Header::deleted(b"deleted/gone".to_vec()), Vec::new()),
        ];
        c.put("tar_reader", "ours-every-kind.tar", &tar_of(&ours));

        let mut gnu = Vec::new();
        let longname = [&[b'n'; 130][..], b"\0"].concat();
        gnu.extend(raw_block(
            b"././@LongLink",
            b'L',
            b"00000000203\0",
            b"ustar  \0",
            b"",
        ));
        gnu.extend(padded(longname));
        gnu.extend(raw_block(
            b"././@LongLink",
            b'K',
            b"00000000006\0",
            b"ustar  \0",
            b"",
        ));
        gnu.extend(padded(b"target".to_vec()));
        gnu.extend(raw_block(
            b"snapshot/short",
            b'2',
            b"00000000000\0",
            b"ustar  \0",
            b"",
        ));
        // Base-256 size: 0x80 marker, then big-endian 3.
        let mut b256 = [0u8; 12];
        b256[0] = 0x80;
        b256[11] = 3;
        gnu.extend(raw_block(b"snapshot/b256", b'0', &b256, b"ustar  \0", b""));
        gnu.extend(padded(b"xyz".to_vec()));
        gnu.extend(raw_block(
            b"name",
            b'0',
            b"00000000001\0",
            b"ustar\x0000",
            b"snapshot/pre",
        ));
        gnu.extend(padded(b"p".to_vec()));
        gnu.extend(raw_block(b"snapshot/v7", 0, b"00000000002\0", b"", b""));
        gnu.extend(padded(b"v7".to_vec()));
        let global = b"21 comment=some text\n".to_vec();
        gnu.extend(raw_block(
            b"pax_global_header",
            b'g',
            b"00000000025\0",
            b"ustar\x0000",
            b"",
        ));
        gnu.extend(padded(global));
        gnu.extend([0u8; tar::BLOCK]);
        c.put("tar_reader", "gnu-v7-base256-prefix.tar", &gnu);
    }

    fn manifest_seeds(c: &Corpus) {
        for name in listing() {
            if name.ends_with(".manifest") {
                c.put("manifest", &name, &fixture(&name));
            }
        }
        let mut m = Vec::new();
        write_header(&mut m, b"host", b"/data/with space").expect("manifest");
        let idx = |s: &[&[u8]]| -> Index { s.iter().map(|c| c.to_vec()).collect() };
        for (num, start, sb, end, eb) in [
            (1, idx(&[]), None, idx(&[b"big.bin"]), Some(15)),
            (
                2,
                idx(&[b"big.bin"]),
                Some(16),
                idx(&[b"big.bin"]),
                Some(30),
            ),
            (
                3,
                idx(&[b"big.bin"]),
                Some(31),
                idx(&[b"sub", b"with space.txt"]),
                None,
            ),
        ] {
            let mut hashes = std::collections::BTreeMap::new();
            hashes.insert(
                "SHA1".to_string(),
                "2da40a3356259912f65bc08d201c3c75ff7f5a58".into(),
            );
            VolumeInfo {
                num,
                start,
                start_block: sb,
                end,
                end_block: eb,
                hashes,
            }
            .write_to(&mut m)
            .expect("manifest");
        }
        m.extend_from_slice(
            b"Filelist 2\n    new      big.bin\n    changed  \"sub/with\\x20space.txt\"\n",
        );
        c.put("manifest", "three-volumes.manifest", &m);
        c.put(
            "manifest",
            "case-and-order.manifest",
            b"hostname h\nLOCALDIR \"a\\x20b\"\nvolume 2:\n startingpath x 1\n endingpath y\n hash md5 ABC\nVolume 1:\n    StartingPath   .\n    EndingPath     z\n",
        );
    }

    fn sigtar_seeds(c: &Corpus) {
        let full = trim_tar(gunzip(&fixture(
            "duplicity-full-signatures.20231114T221320Z.sigtar.gz",
        )));
        let new1 = trim_tar(gunzip(&fixture(
            "duplicity-new-signatures.20231114T221320Z.to.20231114T221500Z.sigtar.gz",
        )));
        let new2 = trim_tar(gunzip(&fixture(
            "duplicity-new-signatures.20231114T221500Z.to.20231114T221640Z.sigtar.gz",
        )));
        c.put("sigtar", "full.sigtar", &full);
        c.put(
            "sigtar",
            "chain-of-three.sigtar",
            &joined(&[&full, &new1, &new2]),
        );

        let meta = |typ| file(b"", typ, 0);
        let idx = |s: &str| -> Index { s.split('/').map(|c| c.as_bytes().to_vec()).collect() };
        let mut sb = SignatureBuilder::new(16);
        sb.update(b"some file contents, more than one block of them");
        let sig = sb.finish();
        let mut w = SigWriter::new(Vec::new());
        w.snapshot(&Vec::new(), &meta(tar::DIRTYPE)).expect("sig");
        w.signature(&idx("a"), &meta(tar::REGTYPE), &sig, 48, false)
            .expect("sig");
        w.snapshot(&idx("b"), &meta(tar::SYMTYPE)).expect("sig");
        w.signature(&idx("c/d"), &meta(tar::REGTYPE), &sig, 48, false)
            .expect("sig");
        let older = trim_tar(w.finish().expect("sig"));
        let mut w = SigWriter::new(Vec::new());
        w.deleted(&idx("a")).expect("sig");
        w.signature(&idx("c/d"), &meta(tar::REGTYPE), &sig[..12], 0, false)
            .expect("sig");
        w.snapshot(&idx("e"), &meta(tar::FIFOTYPE)).expect("sig");
        let newer = trim_tar(w.finish().expect("sig"));
        c.put("sigtar", "ours-two.sigtar", &joined(&[&older, &newer]));
    }

    /// (name, basis, new) pairs for the delta seeds.
    fn pairs() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
        let text: Vec<u8> = (0..600u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let mut edited = text.clone();
        edited.splice(1000..1010, b"EDITED!".iter().copied());
        edited.extend_from_slice(b"appended tail");
        let mut moved = text[2000..].to_vec();
        moved.extend_from_slice(&text[..2000]);
        vec![
            ("edit", text.clone(), edited),
            ("move", text.clone(), moved),
            ("same", text[..700].to_vec(), text[..700].to_vec()),
            ("empty-basis", Vec::new(), b"all new".to_vec()),
            ("empty-new", text[..100].to_vec(), Vec::new()),
        ]
    }

    fn delta_of(basis: &[u8], new: &[u8], block_len: u32) -> Vec<u8> {
        let mut sb = SignatureBuilder::new(block_len);
        sb.update(basis);
        let sig = Signature::parse(&sb.finish()).expect("our signature");
        let mut d = Vec::new();
        DeltaReader::new(&sig, new)
            .read_to_end(&mut d)
            .expect("delta");
        d
    }

    fn delta_seeds(c: &Corpus) {
        for (name, basis, new) in pairs() {
            let short: Vec<u8> = basis.iter().take(300).copied().collect();
            let short_new: Vec<u8> = new.iter().take(300).copied().collect();
            // Even first byte: built signature, block length byte / 2 + 1.
            c.put(
                "delta_reader",
                &format!("built-{name}"),
                &[&[14u8][..], &joined(&[&short, &short_new])].concat(),
            );
            let mut sb = SignatureBuilder::new(64);
            sb.update(&basis);
            c.put(
                "delta_reader",
                &format!("sig-{name}"),
                &[
                    &[1u8][..],
                    &joined(&[&sb.finish(), &new[..new.len().min(2000)]]),
                ]
                .concat(),
            );
            c.put(
                "patch",
                &format!("ours-{name}"),
                &joined(&[&basis, &delta_of(&basis, &new, 64)]),
            );
        }
        // Stock's: file1.txt's delta in the first incremental, on its full snapshot.
        let full = members(&gunzip(&fixture(
            "duplicity-full.20231114T221320Z.vol1.difftar.gz",
        )));
        let inc = members(&gunzip(&fixture(
            "duplicity-inc.20231114T221320Z.to.20231114T221500Z.vol1.difftar.gz",
        )));
        let sigs = members(&gunzip(&fixture(
            "duplicity-full-signatures.20231114T221320Z.sigtar.gz",
        )));
        let basis = &full
            .iter()
            .find(|(h, _)| h.name == b"snapshot/file1.txt")
            .expect("file1 in the full volume")
            .1;
        let delta = &inc
            .iter()
            .find(|(h, _)| h.name == b"diff/file1.txt")
            .expect("file1's delta in the incremental")
            .1;
        c.put("patch", "stock-file1", &joined(&[basis, delta]));
        let sig = &sigs
            .iter()
            .find(|(h, _)| h.name == b"signature/file1.txt")
            .expect("file1's signature")
            .1;
        c.put(
            "delta_reader",
            "stock-sig-file1",
            &[&[3u8][..], &joined(&[sig, b"file1 changed contents\n"])].concat(),
        );
        // Every command form by hand: literals 1..64 and N1..N8, COPYs of every width.
        let mut d = 0x7273_0236u32.to_be_bytes().to_vec();
        d.extend_from_slice(&[0x03, b'a', b'b', b'c']);
        d.extend_from_slice(&[0x41, 2, b'd', b'e']);
        d.extend_from_slice(&[0x42, 0, 1, b'f']);
        d.extend_from_slice(&[0x43, 0, 0, 0, 1, b'g']);
        d.extend_from_slice(&[0x44, 0, 0, 0, 0, 0, 0, 0, 1, b'h']);
        d.extend_from_slice(&[0x45, 0, 4]);
        d.extend_from_slice(&[0x4a, 0, 2, 0, 3]);
        d.extend_from_slice(&[0x4f, 0, 0, 0, 1, 0, 0, 0, 5]);
        d.extend_from_slice(&[0x54, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0, 4]);
        d.extend_from_slice(&[0x45, 8, 2, 0x45, 0, 10]);
        d.push(0x00);
        c.put("patch", "every-command", &joined(&[b"0123456789", &d]));
    }

    fn seal(data: &[u8], passphrase: &str, level: u32) -> Vec<u8> {
        let mode = SealMode::Symmetric {
            passphrase: passphrase.into(),
            level,
        };
        seal_with(data, &mode)
    }

    fn seal_with(data: &[u8], mode: &SealMode) -> Vec<u8> {
        let mut s = Sealer::new(Vec::new(), mode).expect("sealer");
        s.write_all(data).expect("seal");
        s.finish().expect("seal")
    }

    fn gpg_home() -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("swiftdup-seeds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        dir
    }

    fn drop_gpg_home(dir: &Path) {
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(dir)
            .args(["--kill", "all"])
            .output();
        let _ = std::fs::remove_dir_all(dir);
    }

    fn gpg_seed(c: &Corpus, tool: &str, name: &str, args: &[&str], data: &[u8]) {
        let home = gpg_home();
        gpg_seed_in(c, &home, tool, name, args, data);
        drop_gpg_home(&home);
    }

    fn gpg_seed_in(c: &Corpus, home: &Path, tool: &str, name: &str, args: &[&str], data: &[u8]) {
        let input = home.join("in");
        std::fs::write(&input, data).expect("temp file");
        let mut cmd = Command::new(tool);
        cmd.arg("--homedir").arg(home).args([
            "--batch",
            "--yes",
            "--no-tty",
            "--passphrase",
            PASSPHRASE,
            "--s2k-count",
            "1024",
            "-o",
            "-",
        ]);
        if tool == "gpg" {
            cmd.args(["--pinentry-mode", "loopback"]);
        }
        match cmd.args(args).arg(&input).output() {
            Ok(o) if o.status.success() => c.put("pgp", name, &o.stdout),
            Ok(o) => eprintln!(
                "skipped seed {name}: {tool} {args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("skipped seed {name}: {tool}: {e}"),
        }
    }

    /// Seeds for the key setup with the test key: encrypted to it, signed by it, both.
    fn pgp_key_seeds(c: &Corpus) {
        let secret = swiftdup::seal::pgp::read_secret_keys(TEST_SECRET_KEY).expect("test key");
        let public: Vec<_> = secret.iter().map(|k| k.to_public_key()).collect();
        let signer = std::sync::Arc::new(SignKey::new(&secret[0], None).expect("sign key"));
        let data = b"signed and/or encrypted to the fuzz test key\n";
        let to_key = SealMode::PublicKey {
            recipients: public.clone(),
            hidden: Vec::new(),
            level: 6,
        };
        let hidden = SealMode::PublicKey {
            recipients: Vec::new(),
            hidden: public,
            level: 0,
        };
        let signed_sym = SealMode::Signed {
            inner: Box::new(SealMode::Symmetric {
                passphrase: PASSPHRASE.into(),
                level: 6,
            }),
            key: signer.clone(),
        };
        let signed_pub = SealMode::Signed {
            inner: Box::new(to_key.clone()),
            key: signer,
        };
        for (name, mode) in [
            ("ours-to-key", &to_key),
            ("ours-hidden-recipient", &hidden),
            ("ours-signed-symmetric", &signed_sym),
            ("ours-signed-to-key", &signed_pub),
        ] {
            c.put("pgp", name, &seal_with(data, mode));
        }
        // gpg's own, with the key imported: encrypted, signed and encrypted, signed only.
        let home = gpg_home();
        let key = home.join("key.gpg");
        std::fs::write(&key, TEST_SECRET_KEY).expect("temp file");
        let _ = Command::new("gpg")
            .arg("--homedir")
            .arg(&home)
            .args(["--batch", "--import"])
            .arg(&key)
            .output();
        let r = ["-r", "fuzz@example.com", "--trust-model", "always"];
        for (name, args) in [
            ("gpg-to-key", [&["--encrypt"][..], &r].concat()),
            (
                "gpg-signed-to-key",
                [&["--sign", "--encrypt"][..], &r].concat(),
            ),
            (
                "gpg-hidden-recipient",
                [&["--encrypt", "--throw-keyids"][..], &r].concat(),
            ),
            ("gpg-signed-only", vec!["--sign"]),
            ("gpg-clearsigned", vec!["--clearsign"]),
        ] {
            gpg_seed_in(c, &home, "gpg", name, &args, data);
        }
        drop_gpg_home(&home);
    }

    fn pgp_seeds(c: &Corpus) {
        let tarish = tar_of(&[(file(b"snapshot/a", tar::REGTYPE, 5), b"hello".to_vec())]);
        c.put("pgp", "ours-level6", &seal(&tarish, PASSPHRASE, 6));
        c.put(
            "pgp",
            "ours-level0",
            &seal(b"plain literal data", PASSPHRASE, 0),
        );
        c.put(
            "pgp",
            "ours-wrong-passphrase",
            &seal(b"x", "not the passphrase", 6),
        );
        let small = b"a small volume, compressed or not, encrypted by gpg\n".repeat(4);
        for (name, tool, args) in [
            (
                "gpg-aes256-zip",
                "gpg",
                &["--symmetric", "--cipher-algo", "AES256"][..],
            ),
            ("gpg-armor", "gpg", &["--symmetric", "--armor"][..]),
            (
                "gpg-zlib",
                "gpg",
                &["--symmetric", "--compress-algo", "zlib"][..],
            ),
            (
                "gpg-bzip2",
                "gpg",
                &["--symmetric", "--compress-algo", "bzip2"][..],
            ),
            ("gpg-uncompressed", "gpg", &["--symmetric", "-z", "0"][..]),
            (
                "gpg-sha1-s2k",
                "gpg",
                &["--symmetric", "--s2k-digest-algo", "SHA1"][..],
            ),
            (
                "gpg-sha512-s2k",
                "gpg",
                &["--symmetric", "--s2k-digest-algo", "SHA512"][..],
            ),
            (
                "gpg-ocb",
                "gpg",
                &["--symmetric", "--rfc4880bis", "--force-aead"][..],
            ),
            (
                "gpg1-cast5",
                "gpg1",
                &["--symmetric", "--cipher-algo", "CAST5"][..],
            ),
            (
                "gpg1-no-mdc",
                "gpg1",
                &["--symmetric", "--cipher-algo", "CAST5", "--disable-mdc"][..],
            ),
            (
                "gpg1-3des",
                "gpg1",
                &["--symmetric", "--cipher-algo", "3DES"][..],
            ),
        ] {
            gpg_seed(c, tool, name, args, &small);
        }
    }

    fn names_seeds(c: &Corpus) {
        let list = listing().join("\n");
        c.put("names", "fixture-listing", list.as_bytes());
        c.put(
            "names",
            "prefixes-and-short-names",
            b"prefixes pre_ a_ m_ s_\npre_a_df.s0l0b4.1.dt.z\npre_m_df.s0l0b4.m.g\npre_s_dns.s0l0b4.s0l0d0.st.g\npre_a_duplicity-full.20231114T221320Z.vol1.difftar.gpg\npre_m_duplicity-full.20231114T221320Z.manifest.gpg\npre_m_duplicity-inc.20231114T221320Z.to.20231114T221500Z.manifest.part\npre_s_duplicity-full-signatures.20231114T221320Z.sigtar.gpg\nforeign.txt\n",
        );
        c.put(
            "names",
            "w3-and-epoch-names",
            b"duplicity-full.2002-04-26T04:22:01-07:00.vol1.difftar.gz\nduplicity-full.2002-04-26T04:22:01-07:00.manifest\nduplicity-inc.2002-04-26T04:22:01-07:00.to.1019900000.manifest\nduplicity-inc.2002-04-26T04:22:01-07:00.to.1019900000.vol1.difftar.gz\nduplicity-new-signatures.2002-04-26T04:22:01-07:00.to.1019900000.sigtar.gz\n",
        );
        let mut members = Vec::new();
        for name in listing() {
            if name.ends_with("tar.gz") {
                let t = gunzip(&fixture(&name));
                let mut r = TarReader::new(&t[..]);
                while let Some(h) = r.next_header().expect("fixture tar") {
                    members.push(h.name);
                }
            }
        }
        members.extend([
            b"multivol_snapshot/a/b/1".to_vec(),
            b"multivol_diff/x/12".to_vec(),
            b"snapshot/./".to_vec(),
            b"deleted".to_vec(),
        ]);
        c.put("names", "member-names", &members.join(&b'\n'));
    }

    fn time_seeds(c: &Corpus) {
        for (name, text) in [
            ("now-and-epoch", "now\n1600000000\n0\n"),
            ("intervals", "3D\n1h30m\n2W\n1M\n1Y2M3W4D5h6m7s\n"),
            (
                "dates",
                "2023-11-14\n2023/11/14\n11/14/2023\n11-14-2023\n20231114Z\n",
            ),
            (
                "w3",
                "2023-11-14T22:13:20Z\n2023-11-14T23:13:20+01:00\n2002-04-26T04:22:01-07:00\n",
            ),
            ("compact", "20231114T221320Z\n20231114t221640z\n"),
        ] {
            c.put("time", name, text.as_bytes());
        }
    }

    pub fn write_all(root: &Path) {
        let c = Corpus { root };
        tar_seeds(&c);
        manifest_seeds(&c);
        sigtar_seeds(&c);
        delta_seeds(&c);
        pgp_seeds(&c);
        pgp_key_seeds(&c);
        names_seeds(&c);
        time_seeds(&c);
        progress_seeds(&c);
    }

    /// Progress objects as a full writes them: one whose volume ends between entries, one
    /// whose volume ends inside a file (with its signature state).
    fn progress_seeds(c: &Corpus) {
        use swiftdup::engine::write::progress::{ChunkSig, Journal, Ledger, ProgressSpec, Tap};
        let spec = ProgressSpec {
            hostname: "host".into(),
            localdir: b"/data".to_vec(),
        };
        let journal = std::rc::Rc::new(std::cell::RefCell::new(Journal::default()));
        let mut sigs = SigWriter::new(Tap::new(Vec::new(), Some(journal.clone())));
        let meta = Header {
            typ: tar::REGTYPE,
            mode: 0o644,
            mtime: 1_700_000_000,
            ..Header::default()
        };
        let a: Index = vec![b"a".to_vec()];
        let mut sb = SignatureBuilder::new(512);
        sb.update(b"contents of a");
        sigs.signature(&a, &meta, &sb.finish(), 13, false)
            .expect("sigtar");
        let mut dir = meta.clone();
        dir.typ = tar::DIRTYPE;
        sigs.snapshot(&vec![b"d".to_vec()], &dir).expect("sigtar");
        let mut ledger = Ledger::spooled(&std::env::temp_dir()).expect("a spool");
        let mut info = VolumeInfo {
            num: 1,
            start: a.clone(),
            start_block: None,
            end: vec![b"d".to_vec()],
            end_block: None,
            hashes: [("SHA1".to_string(), "ab".repeat(20))]
                .into_iter()
                .collect(),
        };
        let mut pending = journal.borrow_mut().take();
        ledger.before(&mut pending);
        c.put(
            "progress",
            "between-entries",
            &ledger
                .take(&spec, 1_700_000_000, &info, 1234)
                .expect("a progress object"),
        );
        // Volume 2 ends inside big, 2 chunks in, with 1536-byte signature blocks.
        let big: Index = vec![b"d".to_vec(), b"big".to_vec()];
        let data = vec![7u8; 65536];
        let mut sb = SignatureBuilder::new(1536);
        let mut sent = 0;
        for k in 1..=2u64 {
            sb.update(&data);
            let mut j = journal.borrow_mut();
            j.chunk = Some(ChunkSig {
                block_len: 1536,
                size: 300_000,
            });
            j.sums(&sb.produced()[sent..], sb.covered());
            sent = sb.produced().len();
            let mut p = j.take();
            drop(j);
            ledger.before(&mut p);
            let mut h = meta.clone();
            h.name = format!("multivol_snapshot/d/big/{k}").into_bytes();
            h.size = data.len() as u64;
            ledger.after(&tar::encode_header(&h), &data, &big, Some(k), p);
        }
        info.num = 2;
        info.start = big.clone();
        info.start_block = Some(1);
        info.end = big;
        info.end_block = Some(2);
        c.put(
            "progress",
            "inside-a-file",
            &ledger
                .take(&spec, 1_700_000_000, &info, 140_000)
                .expect("a progress object"),
        );
    }
}
