//! The manifest (§4): the commit marker of a set. Byte-exact writer, tolerant reader, and
//! duplicity's path quoting (§4.2).
//!
//! The Filelist can hold one line per changed file, so the writer streams it from the
//! caller and the reader skips it: neither keeps it in memory.

use super::Index;
use std::collections::BTreeMap;
use std::io::{self, BufRead, Write};

/// duplicity's `Quote`: if any byte is whitespace, a backslash or a quote, wrap the whole
/// string in `"` and write those bytes as `\xNN`; everything else stays raw.
pub fn quote(s: &[u8]) -> Vec<u8> {
    let special = |b: u8| {
        matches!(
            b,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x0b | b'\\' | b'"' | b'\''
        )
    };
    if !s.iter().any(|&b| special(b)) {
        return s.to_vec();
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    out.push(b'"');
    for &b in s {
        if special(b) {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out.push(b'"');
    out
}

/// duplicity's `Unquote`: only a leading `"` triggers decoding of `\xNN` escapes.
pub fn unquote(s: &[u8]) -> Vec<u8> {
    if s.len() < 2 || s[0] != b'"' || s[s.len() - 1] != b'"' {
        return s.to_vec();
    }
    let inner = &s[1..s.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        if inner[i] == b'\\' && i + 4 <= inner.len() && inner[i + 1] == b'x' {
            if let Some(v) = std::str::from_utf8(&inner[i + 2..i + 4])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(inner[i]);
        i += 1;
    }
    out
}

/// The index as a manifest path: `/`-joined and quoted, `.` for the root.
pub fn index_to_manifest_path(index: &Index) -> Vec<u8> {
    if index.is_empty() {
        return b".".to_vec();
    }
    quote(&index.join(&b'/'))
}

fn manifest_path_to_index(p: &[u8]) -> Index {
    let raw = unquote(p);
    if raw == b"." || raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(|c| c.to_vec())
        .collect()
}

/// One `Volume N:` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VolumeInfo {
    pub num: u32,
    pub start: Index,
    pub start_block: Option<u64>,
    pub end: Index,
    pub end_block: Option<u64>,
    /// Hash name (upper case, e.g. `SHA1`) to lowercase hex.
    pub hashes: BTreeMap<String, String>,
}

impl VolumeInfo {
    /// The SHA1 to check a downloaded volume against (stock prefers SHA1, then MD5).
    pub fn sha1(&self) -> Option<&str> {
        self.hashes.get("SHA1").map(String::as_str)
    }

    /// Whether this volume may hold members under `prefix` (§4.4:
    /// `start[:len(p)] <= p <= end`, tuple comparison).
    pub fn may_contain(&self, prefix: &Index) -> bool {
        let n = prefix.len().min(self.start.len());
        self.start[..n] <= prefix[..] && *prefix <= self.end
    }

    /// Append the record exactly as stock writes it.
    pub fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        let blk = |b: Option<u64>| b.map(|n| n.to_string()).unwrap_or_else(|| " ".into());
        writeln!(out, "Volume {}:", self.num)?;
        out.write_all(b"    StartingPath   ")?;
        out.write_all(&index_to_manifest_path(&self.start))?;
        writeln!(out, " {}", blk(self.start_block))?;
        out.write_all(b"    EndingPath     ")?;
        out.write_all(&index_to_manifest_path(&self.end))?;
        writeln!(out, " {}", blk(self.end_block))?;
        for (name, value) in &self.hashes {
            writeln!(out, "    Hash {name} {value}")?;
        }
        Ok(())
    }
}

/// What a parsed manifest says (the Filelist is skipped).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub hostname: Option<Vec<u8>>,
    pub localdir: Option<Vec<u8>>,
    pub volumes: BTreeMap<u32, VolumeInfo>,
}

/// Write the header lines (`Hostname`, `Localdir`).
pub fn write_header(out: &mut impl Write, hostname: &[u8], localdir: &[u8]) -> io::Result<()> {
    if !hostname.is_empty() {
        out.write_all(b"Hostname ")?;
        out.write_all(hostname)?;
        out.write_all(b"\n")?;
    }
    out.write_all(b"Localdir ")?;
    out.write_all(&quote(localdir))?;
    out.write_all(b"\n")
}

/// One Filelist line: `    %-7s  %s`.
pub fn write_filelist_line(out: &mut impl Write, kind: &str, index: &Index) -> io::Result<()> {
    write!(out, "    {kind:<7}  ")?;
    out.write_all(&index_to_manifest_path(index))?;
    out.write_all(b"\n")
}

/// duplicity canonicalises Localdir: split on `/`, drop empty and `.` parts, keep `..`,
/// keep a leading `/`, and `.` when nothing is left.
pub fn canonical_localdir(path: &[u8]) -> Vec<u8> {
    let parts: Vec<&[u8]> = path
        .split(|&b| b == b'/')
        .filter(|p| !p.is_empty() && *p != b".")
        .collect();
    let joined = parts.join(&b'/');
    if path.first() == Some(&b'/') {
        let mut v = b"/".to_vec();
        v.extend_from_slice(&joined);
        v
    } else if joined.is_empty() {
        b".".to_vec()
    } else {
        joined
    }
}

fn lower_starts(line: &[u8], key: &[u8]) -> bool {
    line.len() > key.len()
        && line[..key.len()].eq_ignore_ascii_case(key)
        && line[key.len()].is_ascii_whitespace()
}

/// Parse a manifest as stock does (§4.3): case-insensitive keys, the last `Volume N` record
/// wins, and volumes numbered above the last-seen number are dropped.
pub fn parse(input: impl BufRead) -> Result<Manifest, String> {
    let mut m = Manifest::default();
    let mut current: Option<VolumeInfo> = None;
    let mut last_num = 0u32;
    let mut in_filelist = false;
    let finish = |m: &mut Manifest, v: Option<VolumeInfo>, saw_start: bool, saw_end: bool| {
        if let Some(v) = v {
            if !(saw_start && saw_end) {
                return Err(format!(
                    "manifest volume {} lacks a starting or ending path",
                    v.num
                ));
            }
            m.volumes.insert(v.num, v);
        }
        Ok(())
    };
    let (mut saw_start, mut saw_end) = (false, false);
    for line in input.split(b'\n') {
        let line = line.map_err(|e| e.to_string())?;
        if m.hostname.is_none() && lower_starts(&line, b"hostname") {
            m.hostname = Some(unquote(&line[9..]));
            continue;
        }
        if m.localdir.is_none() && lower_starts(&line, b"localdir") {
            m.localdir = Some(unquote(&line[9..]));
            continue;
        }
        if lower_starts(&line, b"volume") {
            finish(&mut m, current.take(), saw_start, saw_end)?;
            in_filelist = false;
            let rest = String::from_utf8_lossy(&line[7..]);
            let num: u32 = rest
                .trim()
                .strip_suffix(':')
                .and_then(|n| n.trim().parse().ok())
                .ok_or_else(|| format!("bad manifest line {:?}", String::from_utf8_lossy(&line)))?;
            last_num = num;
            (saw_start, saw_end) = (false, false);
            current = Some(VolumeInfo {
                num,
                start: Vec::new(),
                start_block: None,
                end: Vec::new(),
                end_block: None,
                hashes: BTreeMap::new(),
            });
            continue;
        }
        if lower_starts(&line, b"filelist") {
            in_filelist = true;
            continue;
        }
        if in_filelist {
            continue;
        }
        let Some(v) = current.as_mut() else { continue };
        let toks: Vec<&[u8]> = line
            .split(|b| b.is_ascii_whitespace())
            .filter(|t| !t.is_empty())
            .collect();
        let Some(first) = toks.first() else { continue };
        let block = |t: Option<&&[u8]>| -> Option<u64> {
            t.and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse().ok())
        };
        if first.eq_ignore_ascii_case(b"startingpath") && toks.len() >= 2 {
            v.start = manifest_path_to_index(toks[1]);
            v.start_block = block(toks.get(2));
            saw_start = true;
        } else if first.eq_ignore_ascii_case(b"endingpath") && toks.len() >= 2 {
            v.end = manifest_path_to_index(toks[1]);
            v.end_block = block(toks.get(2));
            saw_end = true;
        } else if first.eq_ignore_ascii_case(b"hash") && toks.len() >= 3 {
            let name = String::from_utf8_lossy(toks[1]).to_ascii_uppercase();
            v.hashes
                .insert(name, String::from_utf8_lossy(toks[2]).to_ascii_lowercase());
        }
    }
    finish(&mut m, current.take(), saw_start, saw_end)?;
    m.volumes.retain(|&n, _| n <= last_num);
    Ok(m)
}

/// What a Filelist line says of a regular file (§4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listed {
    /// `new` or `changed`: the set stores the file (a snapshot or a delta).
    Stored,
    Deleted,
}

/// A manifest's Filelist, read a line at a time (it can list every file of a set, so it is
/// never held in memory). Lines come in index order, as the set's members do; the list
/// ends at the end of the file or at a `Volume` record (some writers put it first).
pub struct Filelist<R> {
    lines: io::Split<R>,
}

impl<R: BufRead> Filelist<R> {
    /// Positioned after the `Filelist N` line; `None` without one, or with `Filelist 0`
    /// (`--no-files-changed`: nothing was listed).
    pub fn open(input: R) -> Result<Option<Filelist<R>>, String> {
        let mut lines = input.split(b'\n');
        for line in lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if lower_starts(&line, b"filelist") {
                let count = String::from_utf8_lossy(&line[8..]).trim().parse::<u64>();
                return Ok(match count {
                    Ok(0) => None,
                    _ => Some(Filelist { lines }),
                });
            }
        }
        Ok(None)
    }

    /// The next listed file, `None` at the end of the list.
    pub fn next_file(&mut self) -> Result<Option<(Listed, Index)>, String> {
        for line in self.lines.by_ref() {
            let line = line.map_err(|e| e.to_string())?;
            if lower_starts(&line, b"volume") {
                return Ok(None);
            }
            let mut toks = line
                .split(|b| b.is_ascii_whitespace())
                .filter(|t| !t.is_empty());
            let (Some(kind), Some(path)) = (toks.next(), toks.next()) else {
                continue;
            };
            let listed = match kind {
                b"new" | b"changed" => Listed::Stored,
                b"deleted" => Listed::Deleted,
                _ => {
                    return Err(format!(
                        "bad Filelist line {:?}",
                        String::from_utf8_lossy(&line)
                    ))
                }
            };
            return Ok(Some((listed, manifest_path_to_index(path))));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The manifest of the reference full backup (duplicity-format.md §4.1), byte for byte.
    const REAL: &[u8] = b"Hostname vm\nLocaldir src\nVolume 1:\n    StartingPath   .  \n    EndingPath     big.bin 15\n    Hash SHA1 2da40a3356259912f65bc08d201c3c75ff7f5a58\nVolume 2:\n    StartingPath   big.bin 16\n    EndingPath     big.bin 30\n    Hash SHA1 22ae5e7ebcbbb7c5c8bb8c1c592c567cc5368a00\nVolume 3:\n    StartingPath   big.bin 31\n    EndingPath     \"sub/with\\x20space.txt\"  \n    Hash SHA1 70d63d6028ecfe2a32443ae4dbd093d192e9fc43\nFilelist 6\n    new      big.bin\n    new      changeme.txt\n    new      deleteme.txt\n    new      file1.txt\n    new      sub/a.txt\n    new      \"sub/with\\x20space.txt\"\n";

    fn idx(s: &str) -> Index {
        s.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(quote(b"plain/name.txt"), b"plain/name.txt");
        assert_eq!(
            quote(b"dir1/sp ace'q\"uote.txt"),
            b"\"dir1/sp\\x20ace\\x27q\\x22uote.txt\"".to_vec()
        );
        assert_eq!(quote(b"\xff\xfe"), b"\xff\xfe");
        for s in [
            &b"a b"[..],
            b"x\ny",
            b"\\",
            b"'",
            b"\xff\xfe z",
            b"",
            b"\"q\"",
        ] {
            assert_eq!(unquote(&quote(s)), s);
        }
        // stock's Unquote ignores single quotes
        assert_eq!(unquote(b"'a'"), b"'a'");
    }

    #[test]
    fn parses_real_manifest_and_writes_it_back_identically() {
        let m = parse(REAL).unwrap();
        assert_eq!(m.hostname.as_deref(), Some(&b"vm"[..]));
        assert_eq!(m.localdir.as_deref(), Some(&b"src"[..]));
        assert_eq!(m.volumes.len(), 3);
        assert_eq!(m.volumes[&1].start, Vec::<Vec<u8>>::new());
        assert_eq!(m.volumes[&1].end, idx("big.bin"));
        assert_eq!(m.volumes[&1].end_block, Some(15));
        assert_eq!(m.volumes[&3].end, idx("sub/with space.txt"));
        assert_eq!(
            m.volumes[&3].sha1(),
            Some("70d63d6028ecfe2a32443ae4dbd093d192e9fc43")
        );

        let mut out = Vec::new();
        write_header(&mut out, b"vm", b"src").unwrap();
        for v in m.volumes.values() {
            v.write_to(&mut out).unwrap();
        }
        writeln!(out, "Filelist 6").unwrap();
        for f in [
            "big.bin",
            "changeme.txt",
            "deleteme.txt",
            "file1.txt",
            "sub/a.txt",
            "sub/with space.txt",
        ] {
            write_filelist_line(&mut out, "new", &idx(f)).unwrap();
        }
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(REAL));
    }

    #[test]
    fn duplicate_volume_records_last_wins() {
        let text = b"Hostname h\nLocaldir /s\nVolume 1:\n    StartingPath   .  \n    EndingPath     a 1\n    Hash SHA1 aa\nVolume 2:\n    StartingPath   a 2\n    EndingPath     b  \n    Hash SHA1 bb\nVolume 2:\n    StartingPath   a 2\n    EndingPath     c  \n    Hash SHA1 cc\n";
        let m = parse(&text[..]).unwrap();
        assert_eq!(m.volumes.len(), 2);
        assert_eq!(m.volumes[&2].sha1(), Some("cc"));
        // Volumes above the last-seen number are dropped.
        let text2 = b"Volume 1:\n StartingPath . \n EndingPath a \nVolume 3:\n StartingPath a \n EndingPath b \nVolume 2:\n StartingPath a \n EndingPath c \n";
        let m2 = parse(&text2[..]).unwrap();
        assert_eq!(m2.volumes.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn filelist_first_is_accepted_and_case_is_ignored() {
        let text = b"hostname h\nlocaldir s\nFilelist 1\n    new      a\nVOLUME 1:\n    startingpath   .  \n    endingpath     a  \n    hash sha1 AB\n";
        let m = parse(&text[..]).unwrap();
        assert_eq!(m.volumes[&1].sha1(), Some("ab"));
        assert_eq!(m.hostname.as_deref(), Some(&b"h"[..]));
    }

    #[test]
    fn the_filelist_is_read_in_order_wherever_it_stands() {
        let mut f = Filelist::open(REAL).unwrap().unwrap();
        let mut got = Vec::new();
        while let Some((l, i)) = f.next_file().unwrap() {
            got.push((l, index_to_manifest_path(&i)));
        }
        assert_eq!(got.len(), 6);
        assert_eq!(
            got[5],
            (Listed::Stored, b"\"sub/with\\x20space.txt\"".to_vec())
        );
        let first =
            b"Filelist 2\n    changed  a\n    deleted  b c\nVolume 1:\n    StartingPath   .  \n";
        let mut f = Filelist::open(&first[..]).unwrap().unwrap();
        assert_eq!(f.next_file().unwrap(), Some((Listed::Stored, idx("a"))));
        assert_eq!(f.next_file().unwrap(), Some((Listed::Deleted, idx("b"))));
        assert_eq!(f.next_file().unwrap(), None);
        assert!(Filelist::open(&b"Volume 1:\nFilelist 0\n"[..])
            .unwrap()
            .is_none());
        assert!(Filelist::open(&b"Volume 1:\n"[..]).unwrap().is_none());
        let mut bad = Filelist::open(&b"Filelist 1\n    moved  a\n"[..])
            .unwrap()
            .unwrap();
        assert!(bad.next_file().is_err());
    }

    #[test]
    fn volume_without_paths_is_an_error() {
        assert!(parse(&b"Volume 1:\n    Hash SHA1 aa\n"[..]).is_err());
    }

    #[test]
    fn volume_selection_for_file_to_restore() {
        let v = VolumeInfo {
            num: 1,
            start: idx("b/c"),
            start_block: None,
            end: idx("d"),
            end_block: None,
            hashes: BTreeMap::new(),
        };
        assert!(v.may_contain(&idx("b")));
        assert!(v.may_contain(&idx("c")));
        assert!(v.may_contain(&idx("d")));
        assert!(!v.may_contain(&idx("a")));
        assert!(!v.may_contain(&idx("e")));
    }

    #[test]
    fn localdir_canonical() {
        assert_eq!(canonical_localdir(b"./src/"), b"src");
        assert_eq!(canonical_localdir(b"/srv//data/./x"), b"/srv/data/x");
        assert_eq!(canonical_localdir(b"."), b".");
        assert_eq!(canonical_localdir(b"../a"), b"../a");
    }
}
