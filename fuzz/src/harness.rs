//! The bodies of swiftdup's fuzz targets, one function per parser of untrusted input.
//!
//! Each `fuzz_targets/<name>.rs` is one line that hands libFuzzer's input to the function
//! of the same name here (through `lib.rs`), and `tests/it/fuzz_regressions.rs` in the main
//! crate includes this file (`#[path]`) to replay `fuzz/corpus/<name>/` and
//! `fuzz/regressions/<name>/` through the same functions under a plain `cargo test`: a
//! crash fixed once stays fixed. So this file uses nothing but `swiftdup` and `std`.
//!
//! A function returns normally for any input the code under test rejects with an error:
//! only a panic (a bug, or a broken property checked here), a hang or an allocation past
//! the fuzz build's limit (`alloc_limit.rs`) is a finding. Where two implementations, or a
//! writer and a reader, must agree, the function checks that too.

use std::io::{self, Cursor, Read};

use swiftdup::archive::collection::Collection;
use swiftdup::archive::manifest;
use swiftdup::archive::names::{FileKind, Prefixes};
use swiftdup::archive::sigtar::{SigChainReader, SigEntries, SigEntry};
use swiftdup::archive::tar::{self, Header, TarReader};
use swiftdup::archive::time;
use swiftdup::archive::{member_name, parse_member_name, Index, MemberKind};
use swiftdup::rsync::{self, DeltaReader, Signature, SignatureBuilder};
use swiftdup::seal::pgp::{self, OpenKeys};

/// The names of the targets, as in `fuzz_targets/` and the corpus folders.
pub const TARGETS: &[&str] = &[
    "tar_reader",
    "manifest",
    "sigtar",
    "delta_reader",
    "patch",
    "pgp",
    "names",
    "time",
    "progress",
];

/// Run the target `name` on `data` (for the replay test).
pub fn run(name: &str, data: &[u8]) {
    match name {
        "tar_reader" => tar_reader(data),
        "manifest" => manifest(data),
        "sigtar" => sigtar(data),
        "delta_reader" => delta_reader(data),
        "patch" => patch(data),
        "pgp" => pgp(data),
        "names" => names(data),
        "time" => time(data),
        "progress" => progress(data),
        _ => panic!("no fuzz target {name:?}"),
    }
}

/// Separates the parts of an input that holds several byte strings (basis and delta,
/// signature and new file, the streams of a signature chain). A fixed marker rather than
/// lengths, so a real file is a valid input as it is and the fuzzer's dictionary finds it.
pub const SEP: &[u8] = b"\n=SWIFTDUP-FUZZ=\n";

/// Split `data` at each [`SEP`], into at most `max` parts (the last keeps any later SEP).
pub fn split_parts(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut rest = data;
    while parts.len() + 1 < max {
        match rest.windows(SEP.len()).position(|w| w == SEP) {
            Some(at) => {
                parts.push(&rest[..at]);
                rest = &rest[at + SEP.len()..];
            }
            None => break,
        }
    }
    parts.push(rest);
    parts
}

/// Read at most `cap` bytes of `r` into a sink; the total, or the first error.
fn drain(r: &mut dyn Read, cap: u64) -> io::Result<u64> {
    io::copy(&mut r.take(cap), &mut io::sink())
}

// ---------------------------------------------------------------------------------------
// tar
// ---------------------------------------------------------------------------------------

/// `TarReader`: headers of every flavour, member data through `Read`, and member names.
/// A header the reader accepts, made sane (see [`writable`]), must come back unchanged
/// through `encode_header` and the reader.
pub fn tar_reader(data: &[u8]) {
    let mut r = TarReader::new(data);
    for _ in 0..4096 {
        let h = match r.next_header() {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return,
        };
        let _ = parse_member_name(&h.name);
        let want = h.size;
        match drain(&mut r, u64::MAX) {
            Ok(n) => assert_eq!(
                n, want,
                "member data shorter than its size, without an error"
            ),
            Err(_) => return,
        }
        let sane = writable(&h);
        let enc = tar::encode_header(&sane);
        let back = TarReader::new(&enc[..])
            .next_header()
            .unwrap_or_else(|e| panic!("re-reading an encoded header: {e} ({sane:?})"));
        assert_eq!(
            back.as_ref(),
            Some(&sane),
            "header changed through encode/read"
        );
    }
}

/// `h` with what a writer never gets from a file system taken out: NULs in names, mode
/// bits above 0o7777, negative times, numbers past i64, device numbers on other types,
/// extension types, and PAX records the reader gives a meaning to.
fn writable(h: &Header) -> Header {
    let no_nul = |v: &[u8]| v.iter().copied().filter(|&b| b != 0).collect::<Vec<u8>>();
    let typ = match h.typ {
        0 | b'x' | b'g' | b'L' | b'K' => tar::REGTYPE,
        t => t,
    };
    let dev = typ == tar::CHRTYPE || typ == tar::BLKTYPE;
    let small = |n: u64| n.min(i64::MAX as u64);
    Header {
        name: no_nul(&h.name),
        typ,
        mode: h.mode & 0o7777,
        uid: small(h.uid),
        gid: small(h.gid),
        size: small(h.size),
        mtime: h.mtime.max(0),
        linkname: no_nul(&h.linkname),
        uname: no_nul(&h.uname),
        gname: no_nul(&h.gname),
        // Device numbers live only in 7 octal digits (no PAX record for them).
        devmajor: if dev { h.devmajor & 0o7777777 } else { 0 },
        devminor: if dev { h.devminor & 0o7777777 } else { 0 },
        extra: h
            .extra
            .iter()
            .filter(|(k, _)| {
                !k.is_empty()
                    && !k.contains(['=', '\0'])
                    && ![
                        "path",
                        "linkpath",
                        "uname",
                        "gname",
                        "uid",
                        "gid",
                        "size",
                        "mtime",
                        "hdrcharset",
                        "atime",
                        "ctime",
                        "comment",
                        "charset",
                    ]
                    .contains(&k.as_str())
            })
            .cloned()
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// manifest
// ---------------------------------------------------------------------------------------

/// `manifest::parse`; the volumes of a manifest it accepts, written back with
/// `VolumeInfo::write_to`, must parse to the same volumes.
pub fn manifest(data: &[u8]) {
    let Ok(m) = manifest::parse(data) else { return };
    let mut out = Vec::new();
    for v in m.volumes.values() {
        v.write_to(&mut out).expect("writing to a Vec");
        let _ = v.sha1();
        let _ = v.may_contain(&v.start);
    }
    let back =
        manifest::parse(&out[..]).unwrap_or_else(|e| panic!("re-reading written volumes: {e}"));
    assert_eq!(
        back.volumes, m.volumes,
        "volumes changed through write/parse"
    );
    // The Filelist and header lines go through the same quoting.
    if let Some(dir) = &m.localdir {
        assert_eq!(
            manifest::unquote(&manifest::quote(dir)),
            *dir,
            "quote/unquote"
        );
    }
}

// ---------------------------------------------------------------------------------------
// sigtar
// ---------------------------------------------------------------------------------------

/// `SigChainReader` over up to four signature files (split at [`SEP`], oldest first): no
/// panic, entries in strictly increasing index order, signatures that parse or not, and
/// the same entries and error through `SigEntries`' read-ahead thread.
pub fn sigtar(data: &[u8]) {
    let inline = read_chain(SigChainReader::new(streams(data)), |r| r.next());
    // The reader a backup uses runs the same merge on a thread, in batches: same result.
    let ahead = read_chain(SigEntries::new(streams(data), true), |r| r.next());
    assert!(
        inline == ahead,
        "the read-ahead thread gives another result"
    );
}

fn streams(data: &[u8]) -> Vec<(String, Box<dyn Read + Send>)> {
    split_parts(data, 4)
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            (
                format!("fuzz-{i}.sigtar"),
                Box::new(Cursor::new(p.to_vec())) as Box<dyn Read + Send>,
            )
        })
        .collect()
}

/// The entries (index, kind, header, signature) until the end or the first error, and
/// that error, checking the order on the way.
type ChainRead = (
    Vec<(Index, MemberKind, Header, Option<Vec<u8>>)>,
    Option<String>,
);

fn read_chain<R>(
    reader: swiftdup::error::Result<R>,
    mut next: impl FnMut(&mut R) -> swiftdup::error::Result<Option<SigEntry>>,
) -> ChainRead {
    let mut r = match reader {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut entries: Vec<(Index, MemberKind, Header, Option<Vec<u8>>)> = Vec::new();
    for _ in 0..100_000 {
        let e = match next(&mut r) {
            Ok(Some(e)) => e,
            Ok(None) => return (entries, None),
            Err(e) => return (entries, Some(e.to_string())),
        };
        if let Some(p) = entries.last() {
            assert!(p.0 < e.index, "merged entries out of order");
        }
        let _ = e.recorded_size();
        if let Some(sig) = &e.sig {
            let _ = Signature::parse(sig);
        }
        entries.push((e.index, e.kind, e.header, e.sig));
    }
    panic!("more entries than bytes: the merge does not advance");
}

// ---------------------------------------------------------------------------------------
// delta
// ---------------------------------------------------------------------------------------

/// Delta of `new` against a signature: `DeltaReader`, the generator run when a file
/// changed, whose other input is a librsync signature read from the archive.
///
/// The first byte picks the mode. Odd: `signature SEP new`, any signature bytes
/// (`Signature::parse`, then the generator must not fail or panic on any new data).
/// Even: `basis SEP new` with block length `first / 2 + 1`: the signature is made from
/// the basis, and the delta must patch the basis into `new` with both patchers, and the
/// new file's signature made on the way must equal one made on its own.
pub fn delta_reader(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let parts = split_parts(rest, 2);
    let (first, new) = (parts[0], parts.get(1).copied().unwrap_or(&[]));
    if mode & 1 == 1 {
        let Ok(sig) = Signature::parse(first) else {
            return;
        };
        let mut delta_bytes = Vec::new();
        DeltaReader::new(&sig, new)
            .read_to_end(&mut delta_bytes)
            .expect("the delta generator fails on in-memory input");
        // Whatever the signature, the delta is one librsync accepts against a basis of
        // the signature's size, and gives a file as long as `new` (COPYs stand for
        // matched bytes; the contents differ, the basis here is zeros).
        let mut basis = Zeros {
            len: sig.block_count() as u64 * u64::from(sig.block_len()),
            pos: 0,
        };
        let n = rsync::patch(&mut basis, &mut &delta_bytes[..], &mut io::sink())
            .unwrap_or_else(|e| panic!("a generated delta does not apply: {e}"));
        assert_eq!(n, new.len() as u64, "patched length differs from new");
        return;
    }
    let block_len = u32::from(mode / 2) + 1;
    let basis = first;
    let mut sb = SignatureBuilder::new(block_len);
    sb.update(basis);
    let sig_bytes = sb.finish();
    assert_eq!(
        sig_bytes.len() as u64,
        SignatureBuilder::len_for(basis.len() as u64, block_len),
        "signature length"
    );
    let sig = Signature::parse(&sig_bytes).expect("parsing a signature we made");
    let mut new_sig = SignatureBuilder::new(block_len);
    let mut delta_bytes = Vec::new();
    DeltaReader::new(&sig, new)
        .with_signature(&mut new_sig)
        .read_to_end(&mut delta_bytes)
        .expect("the delta generator fails on in-memory input");
    let mut alone = SignatureBuilder::new(block_len);
    alone.update(new);
    assert!(
        new_sig.finish() == alone.finish(),
        "the signature made beside the delta differs"
    );
    let (streamed, in_place) = both_patchers(basis, &delta_bytes);
    assert_eq!(
        streamed.as_deref().ok(),
        Some(new),
        "patch(basis, delta) != new"
    );
    assert_eq!(in_place.as_deref().ok(), Some(new), "patch_in_place != new");
}

/// A basis of `len` zero bytes, without holding them.
struct Zeros {
    len: u64,
    pos: u64,
}

impl Read for Zeros {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.len.saturating_sub(self.pos)) as usize;
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

impl io::Seek for Zeros {
    fn seek(&mut self, to: io::SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            io::SeekFrom::Start(n) => n,
            io::SeekFrom::End(d) => self.len.saturating_add_signed(d),
            io::SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

/// `patch` and `patch_in_place` of `delta` onto `basis`: the results, or the errors.
fn both_patchers(basis: &[u8], delta: &[u8]) -> (Result<Vec<u8>, String>, Result<Vec<u8>, String>) {
    let mut out = Vec::new();
    let streamed = rsync::patch(&mut Cursor::new(basis), &mut &delta[..], &mut out)
        .map(|n| {
            assert_eq!(n, out.len() as u64, "patch's count differs from its output");
            out
        })
        .map_err(|e| e.to_string());
    let mut file = Cursor::new(basis.to_vec());
    let mut side = Cursor::new(Vec::new());
    let in_place = rsync::patch_in_place(&mut file, &mut &delta[..], &mut side)
        .map(|n| {
            let mut v = file.into_inner();
            assert!(
                n <= v.len() as u64,
                "patch_in_place wrote less than the length it returned"
            );
            v.truncate(n as usize);
            v
        })
        .map_err(|e| e.to_string());
    (streamed, in_place)
}

/// `basis SEP delta`: both patchers on any delta. They must accept and reject the same
/// deltas, and give the same bytes for those they accept.
pub fn patch(data: &[u8]) {
    let parts = split_parts(data, 2);
    let (basis, delta) = (parts[0], parts.get(1).copied().unwrap_or(&[]));
    let (streamed, in_place) = both_patchers(basis, delta);
    match (&streamed, &in_place) {
        (Ok(a), Ok(b)) => assert!(a == b, "patch and patch_in_place give different bytes"),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "the patchers disagree: patch {:?}, patch_in_place {:?}",
            a.as_ref().map(Vec::len),
            b.as_ref().map(Vec::len)
        ),
    }
}

// ---------------------------------------------------------------------------------------
// OpenPGP
// ---------------------------------------------------------------------------------------

/// The passphrase of the seeds in `fuzz/corpus/pgp/` (see fuzz/README.md).
pub const PASSPHRASE: &str = "fuzz";

/// A throwaway cv25519 key (no passphrase) that some pgp seeds are encrypted to and
/// signed by; made by `gpg --quick-gen-key ... future-default` for the fuzzer only.
pub const TEST_SECRET_KEY: &[u8] = include_bytes!("../keys/fuzz-test-secret.gpg");

/// The two ways a restore opens files: with `PASSPHRASE` only (symmetric), and with
/// the passphrase, the secret key and a required signature by that key
/// (`--sign-key-file`; it also opens unencrypted signed messages).
fn pgp_keys() -> &'static [OpenKeys; 2] {
    static KEYS: std::sync::OnceLock<[OpenKeys; 2]> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let secret = pgp::read_secret_keys(TEST_SECRET_KEY).expect("the fuzz test key");
        let verify = pgp::Verifier::from_key_file(TEST_SECRET_KEY).expect("a signing key");
        [
            OpenKeys {
                passphrase: Some(PASSPHRASE.into()),
                ..OpenKeys::default()
            },
            OpenKeys {
                passphrase: Some(PASSPHRASE.into()),
                secret_keys: secret,
                verify: Some(verify),
            },
        ]
    })
}

/// `open_pgp_detailed` with each key setup of [`pgp_keys`], then the plaintext read to
/// its end with `drain_to_end` (capped at 64 MiB: a compression bomb is not a finding), as
/// a restore reads a volume. Any error is fine; a panic, a hang or a huge allocation is not.
pub fn pgp(data: &[u8]) {
    for keys in pgp_keys() {
        let Ok((r, _warnings)) = pgp::open_pgp_detailed(data, keys) else {
            continue;
        };
        let _ = pgp::drain_to_end(&mut r.take(64 << 20));
    }
}

// ---------------------------------------------------------------------------------------
// names
// ---------------------------------------------------------------------------------------

/// A listing, one name a line: `Prefixes::parse` of each, `Collection::from_names` and
/// its queries, and `parse_member_name` on each line. The first line chooses prefixes:
/// `prefixes FILE ARCHIVE MANIFEST SIGNATURE` (space-separated, `-` for none), anything
/// else is taken as a name with no prefixes.
///
/// A name that parses must be written back by `Prefixes::name` to a name that parses to
/// the same kind (when its times are ones the compact form can hold), and a member name
/// that parses must come back the same through `member_name`.
pub fn names(data: &[u8]) {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    let mut prefixes = Prefixes::default();
    let mut start = 0;
    if let Some(spec) = lines
        .first()
        .and_then(|l| std::str::from_utf8(l).ok())
        .and_then(|l| l.strip_prefix("prefixes "))
    {
        let mut it = spec.split(' ').map(|p| {
            if p == "-" {
                String::new()
            } else {
                p.to_string()
            }
        });
        prefixes.file = it.next().unwrap_or_default();
        prefixes.archive = it.next().unwrap_or_default();
        prefixes.manifest = it.next().unwrap_or_default();
        prefixes.signature = it.next().unwrap_or_default();
        start = 1;
    }
    for line in &lines[start..] {
        member_round_trip(line);
    }
    let listing: Vec<String> = lines[start..]
        .iter()
        .filter_map(|l| std::str::from_utf8(l).ok())
        .map(str::to_string)
        .collect();
    for name in &listing {
        let Some(p) = prefixes.parse(name) else {
            continue;
        };
        let _ = p.kind.set_key();
        let written = prefixes.name(&p.kind, p.suffix);
        let (_, a, b) = p.kind.set_key();
        if compact(a) && compact(b) {
            let back = prefixes.parse(&written);
            assert_eq!(
                back.as_ref().map(|q| (&q.kind, q.suffix)),
                Some((&p.kind, p.suffix)),
                "{name:?} written back as {written:?}"
            );
        }
    }
    let c = Collection::from_names(&listing, &prefixes);
    for chain in &c.chains {
        let _ = chain.sets_until(chain.end());
        for set in chain.sets() {
            let _ = set.files_for_delete();
            let _ = set.type_name();
            let _ = set.manifest_kind();
        }
        if let Some(sc) = c.sig_chain_for(chain) {
            let _ = sc.names();
        }
    }
    let _ = c.unused_signatures(&listing, &prefixes);
    for t in [i64::MIN, -1, 0, 1_700_000_000, i64::MAX] {
        let _ = c.chain_at(t);
    }
    let _ = c.latest_chain();
    let _ = FileKind::FullManifest { time: 0 }.is_signature();
}

/// Whether `timestr(t)` is a time the name parser reads back as `t`: years 1901 to 2099.
fn compact(t: i64) -> bool {
    (-2_177_452_800..4_102_444_800).contains(&t)
}

fn member_round_trip(name: &[u8]) {
    let Ok(m) = parse_member_name(name) else {
        return;
    };
    assert!(
        m.index
            .iter()
            .all(|c| !c.is_empty() && c != b"." && c != b".."),
        "member {name:?} parsed to a bad index {:?}",
        m.index
    );
    let again = member_name(m.kind, &m.index, false, m.chunk, false);
    let back = parse_member_name(&again)
        .unwrap_or_else(|e| panic!("member {name:?} written back as {again:?}: {e}"));
    assert_eq!(back, m, "member {name:?} written back as {again:?}");
}

// ---------------------------------------------------------------------------------------
// time
// ---------------------------------------------------------------------------------------

/// `--time` and friends: `parse_user_time`, `parse_name_time` and `parse_interval` on
/// each line, and the formatters on whatever they return. An interval is never negative,
/// and a time a name holds in the compact form reads back the same.
pub fn time(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for s in text.lines().take(64) {
        for now in [0, 1_700_000_000] {
            for t in [
                time::parse_user_time(s, now).ok(),
                time::parse_name_time(s, now),
            ]
            .into_iter()
            .flatten()
            {
                let ts = time::timestr(t);
                let _ = time::rfc3339(t);
                let _ = time::asctime(t);
                if compact(t) {
                    assert_eq!(time::parse_name_time(&ts, now), Some(t), "timestr {ts}");
                }
            }
        }
        if let Some(d) = time::parse_interval(s) {
            assert!(d >= 0, "interval {s:?} is {d} s");
        }
    }
}

/// A progress object's plaintext (what a backup continuing an interrupted full reads after
/// opening it): decoding never panics; the signature-file members it carries are read as
/// the backup reads them; a signature state that `part_fits` accepts, `resume` takes, and
/// the signature it finishes parses.
pub fn progress(data: &[u8]) {
    use swiftdup::engine::write::progress::Progress;
    let Ok((p, sigtar)) = Progress::decode(data) else {
        return;
    };
    assert_eq!(p.sigtar_len, sigtar.len() as u64);
    let mut r = TarReader::new(&sigtar[..]);
    while let Ok(Some(h)) = r.next_header() {
        let _ = parse_member_name(&h.name);
    }
    if let Some(s) = &p.partial {
        if SignatureBuilder::part_fits(s.block_len, &s.sums, true, &s.tail) {
            let b = SignatureBuilder::resume(s.block_len, s.sums.clone(), &s.tail)
                .expect("part_fits accepted what resume refuses");
            let sig = b.finish();
            assert!(
                Signature::parse(&sig).is_ok(),
                "a resumed signature does not parse"
            );
        }
        let _ = TarReader::new(&s.header[..]).next_header();
    }
}
