//! The format layer against bytes written by stock duplicity 0.8.22 (Debian 12, Python 3.11):
//! tests/fixtures/duplicity-0.8.22/plain holds a full and two incrementals (the last one
//! empty) of a tree with a binary name spanning two multivol chunks, a 110-byte directory
//! name, a FIFO, a symlink and a name with a space. Made by:
//!   duplicity full --no-encryption --current-time 1700000000 src file://.../plain
//!   (then `echo changed >> src/file1.txt; rm "src/sub/with space.txt"`, incr at ...100, incr at ...200)

use std::io::{Cursor, Read};
use std::path::PathBuf;
use swiftdup::archive::collection::Collection;
use swiftdup::archive::manifest;
use swiftdup::archive::names::Prefixes;
use swiftdup::archive::tar::{encode_header, padding, TarReader};
use swiftdup::archive::{parse_member_name, MemberKind};
use swiftdup::rsync::SignatureBuilder;

fn fixture(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/duplicity-0.8.22/plain")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn listing() -> Vec<String> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/duplicity-0.8.22/plain");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// Every header we read from a stock tar stream re-encodes to exactly the bytes stock wrote.
fn headers_reencode_identically(tar: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let mut pos = 0;
    let mut seen = Vec::new();
    loop {
        let mut r = TarReader::new(Cursor::new(&tar[pos..]));
        let Some(h) = r.next_header().unwrap() else {
            break;
        };
        let consumed = r.into_inner().position() as usize;
        let ours = encode_header(&h);
        assert_eq!(
            ours,
            &tar[pos..pos + consumed],
            "header of {:?} differs from stock's bytes",
            String::from_utf8_lossy(&h.name)
        );
        seen.push((h.name.clone(), h.size));
        pos += consumed + h.size as usize + padding(h.size);
    }
    seen
}

#[test]
fn volume_headers_are_byte_identical_to_stock() {
    let tar = gunzip(&fixture("duplicity-full.20231114T221320Z.vol1.difftar.gz"));
    let seen = headers_reencode_identically(&tar);
    let names: Vec<String> = seen
        .iter()
        .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names[0], "snapshot/./");
    assert!(names
        .iter()
        .any(|n| n.starts_with("snapshot/ddd") && n.ends_with('/')));
    assert_eq!(
        seen.iter()
            .filter(|(n, _)| n.starts_with(b"multivol_snapshot/\xff\xfename/"))
            .count(),
        2
    );
    // member names parse back to indexes in strictly increasing order
    let idx: Vec<_> = seen
        .iter()
        .map(|(n, _)| parse_member_name(n).unwrap())
        .collect();
    for w in idx.windows(2) {
        assert!(w[0].index < w[1].index || (w[0].index == w[1].index && w[0].chunk < w[1].chunk));
    }
}

#[test]
fn signature_file_headers_and_signatures_match_stock() {
    let tar = gunzip(&fixture(
        "duplicity-full-signatures.20231114T221320Z.sigtar.gz",
    ));
    headers_reencode_identically(&tar);
    // Our signature of file1.txt's content at the time equals stock's bytes.
    let mut r = TarReader::new(&tar[..]);
    let mut found = false;
    while let Some(h) = r.next_header().unwrap() {
        let m = parse_member_name(&h.name).unwrap();
        if m.kind == MemberKind::Signature && m.index == vec![b"file1.txt".to_vec()] {
            let mut sig = Vec::new();
            r.read_to_end(&mut sig).unwrap();
            let mut b = SignatureBuilder::new(512);
            b.update(b"hello\n");
            assert_eq!(b.finish(), sig);
            found = true;
        }
    }
    assert!(found);
}

#[test]
fn manifests_parse_and_rewrite_byte_identically() {
    for name in listing().iter().filter(|n| n.ends_with(".manifest")) {
        let bytes = fixture(name);
        let m = manifest::parse(&bytes[..]).unwrap();
        let mut out = Vec::new();
        manifest::write_header(
            &mut out,
            m.hostname.as_deref().unwrap(),
            m.localdir.as_deref().unwrap(),
        )
        .unwrap();
        for v in m.volumes.values() {
            v.write_to(&mut out).unwrap();
        }
        let upto = bytes.windows(9).position(|w| w == b"Filelist ").unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&bytes[..upto]),
            "{name}"
        );
    }
}

#[test]
fn the_listing_forms_one_chain() {
    let c = Collection::from_names(&listing(), &Prefixes::default());
    assert_eq!(c.chains.len(), 1);
    assert_eq!(c.chains[0].incs.len(), 2);
    assert_eq!(c.chains[0].end(), 1_700_000_200);
    assert!(c.sig_chain_for(&c.chains[0]).is_some());
    assert!(c.incomplete.is_empty() && c.orphaned.is_empty());
}
