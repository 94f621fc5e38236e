//! Tar headers as Python's `tarfile` writes them in PAX mode (§2.1), and a streaming reader
//! for every tar flavour duplicity has produced over the years (v7, ustar, GNU `L`/`K`,
//! base-256 numbers, PAX with `hdrcharset=BINARY`).
//!
//! Hand-written rather than the `tar` crate because the writer must match Python byte for
//! byte (the `?`-replaced ustar name, PAX record order, NUL device fields) and the reader
//! must be an owned value that several restore streams can hold open at once; the `tar`
//! crate serves as an independent reader in the tests.

use std::io::{self, Read, Write};

pub const BLOCK: usize = 512;
/// Tar record size: stock pads volumes and signature files to a multiple of it.
pub const RECORD: u64 = 10240;

pub const REGTYPE: u8 = b'0';
pub const SYMTYPE: u8 = b'2';
pub const CHRTYPE: u8 = b'3';
pub const BLKTYPE: u8 = b'4';
pub const DIRTYPE: u8 = b'5';
pub const FIFOTYPE: u8 = b'6';

/// One tar member's header, with names as raw bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub name: Vec<u8>,
    pub typ: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    pub linkname: Vec<u8>,
    pub uname: Vec<u8>,
    pub gname: Vec<u8>,
    pub devmajor: u32,
    pub devminor: u32,
    /// PAX records outside the standard set, e.g. swiftdup's `SWIFTDUP.size` in signature
    /// files. Python's reader keeps and ignores them, so stock is unaffected.
    pub extra: Vec<(String, Vec<u8>)>,
}

impl Header {
    /// The zeroed header stock writes for `deleted/` members.
    pub fn deleted(name: Vec<u8>) -> Header {
        Header {
            name,
            typ: REGTYPE,
            ..Header::default()
        }
    }
}

/// Python's `stn(s.encode("ascii", "replace"))` of a surrogateescape-decoded name: ASCII
/// stays, every other code point and every undecodable byte becomes one `?`.
fn ascii_replace(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            out.push(if c.is_ascii() { c as u8 } else { b'?' });
        }
        out.extend(std::iter::repeat_n(b'?', chunk.invalid().len()));
    }
    out
}

/// Length in Python characters (code points, one per undecodable byte).
fn py_len(raw: &[u8]) -> usize {
    raw.utf8_chunks()
        .map(|c| c.valid().chars().count() + c.invalid().len())
        .sum()
}

fn put_str(buf: &mut [u8], s: &[u8]) {
    let n = s.len().min(buf.len());
    buf[..n].copy_from_slice(&s[..n]);
}

/// Python's `itn`: zero-padded octal with a NUL terminator.
fn put_octal(buf: &mut [u8], n: u64) {
    let digits = buf.len() - 1;
    let s = format!("{n:0digits$o}");
    buf[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    buf[digits] = 0;
}

fn ustar_block(
    h: &Header,
    name: &[u8],
    linkname: &[u8],
    uid: u64,
    gid: u64,
    size: u64,
    mtime: u64,
) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    put_str(&mut b[0..100], name);
    put_octal(&mut b[100..108], (h.mode & 0o7777) as u64);
    put_octal(&mut b[108..116], uid);
    put_octal(&mut b[116..124], gid);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[148..156].copy_from_slice(b"        ");
    b[156] = h.typ;
    put_str(&mut b[157..257], linkname);
    b[257..265].copy_from_slice(b"ustar\x0000");
    put_str(&mut b[265..297], &ascii_replace(&h.uname));
    put_str(&mut b[297..329], &ascii_replace(&h.gname));
    if h.typ == CHRTYPE || h.typ == BLKTYPE {
        put_octal(&mut b[329..337], h.devmajor as u64);
        put_octal(&mut b[337..345], h.devminor as u64);
    }
    let sum: u32 = b.iter().map(|&x| x as u32).sum();
    let cs = format!("{sum:06o}\0");
    b[148..155].copy_from_slice(cs.as_bytes());
    b
}

/// Serialise a header exactly as Python's `TarInfo.tobuf(PAX_FORMAT)` does: an optional
/// `././@PaxHeader` block for what ustar cannot hold, then the ustar block.
pub fn encode_header(h: &Header) -> Vec<u8> {
    let mut pax: Vec<(&str, Vec<u8>)> = Vec::new();
    for (key, val, limit) in [
        ("path", &h.name, 100),
        ("linkpath", &h.linkname, 100),
        ("uname", &h.uname, 32),
        ("gname", &h.gname, 32),
    ] {
        if !val.is_ascii() || py_len(val) > limit {
            pax.push((key, val.clone()));
        }
    }
    let mut nums = [
        ("uid", h.uid, 8u32),
        ("gid", h.gid, 8),
        ("size", h.size, 12),
        ("mtime", h.mtime.max(0) as u64, 12),
    ];
    for (key, val, digits) in nums.iter_mut() {
        if *val >= 8u64.pow(*digits - 1) {
            pax.push((key, val.to_string().into_bytes()));
            *val = 0;
        }
    }
    for (k, v) in &h.extra {
        pax.push((k.as_str(), v.clone()));
    }
    let mut out = Vec::with_capacity(BLOCK * 3);
    if !pax.is_empty() {
        let binary = pax.iter().any(|(_, v)| std::str::from_utf8(v).is_err());
        let mut records = Vec::new();
        if binary {
            records.extend_from_slice(b"21 hdrcharset=BINARY\n");
        }
        for (k, v) in &pax {
            let l = k.len() + v.len() + 3;
            // The record length counts its own digits: iterate to the fixed point as Python.
            let mut p = 0usize;
            loop {
                let n = l + p.to_string().len();
                if n == p {
                    break;
                }
                p = n;
            }
            records.extend_from_slice(format!("{p} {k}=").as_bytes());
            records.extend_from_slice(v);
            records.push(b'\n');
        }
        let xh = Header {
            name: b"././@PaxHeader".to_vec(),
            typ: b'x',
            ..Header::default()
        };
        out.extend_from_slice(&ustar_block(
            &xh,
            &xh.name,
            b"",
            0,
            0,
            records.len() as u64,
            0,
        ));
        out.extend_from_slice(&records);
        pad_to_block(&mut out);
    }
    let [(_, uid, _), (_, gid, _), (_, size, _), (_, mtime, _)] = nums;
    out.extend_from_slice(&ustar_block(
        h,
        &ascii_replace(&h.name),
        &ascii_replace(&h.linkname),
        uid,
        gid,
        size,
        mtime,
    ));
    out
}

fn pad_to_block(v: &mut Vec<u8>) {
    let rem = v.len() % BLOCK;
    if rem != 0 {
        v.resize(v.len() + BLOCK - rem, 0);
    }
}

/// Bytes of NUL padding after `len` bytes of member data.
pub fn padding(len: u64) -> usize {
    ((BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64) as usize
}

/// The end-of-archive footer: NULs up to the next multiple of 10240 after `written` bytes,
/// at least one 512-byte block (§2.7).
pub fn footer_len(written: u64) -> usize {
    let mut n = RECORD - written % RECORD;
    if n < BLOCK as u64 {
        n += RECORD;
    }
    n as usize
}

/// Write one whole member: header, data, padding.
pub fn write_member(out: &mut impl Write, h: &Header, data: &[u8]) -> io::Result<()> {
    debug_assert_eq!(h.size, data.len() as u64);
    out.write_all(&encode_header(h))?;
    out.write_all(data)?;
    out.write_all(&[0u8; BLOCK][..padding(data.len() as u64)])
}

// ------------------------------------------------------------------------------------------

/// Why a tar stream could not be read.
#[derive(Debug)]
pub enum TarError {
    Io(io::Error),
    /// The stream ended in the middle of a header or a member.
    Truncated,
    /// A header is not a tar header (bad checksum or number).
    Corrupt(String),
}

impl std::fmt::Display for TarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TarError::Io(e) => write!(f, "{e}"),
            TarError::Truncated => write!(f, "tar stream is truncated"),
            TarError::Corrupt(m) => write!(f, "tar stream is corrupt: {m}"),
        }
    }
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Io(e)
    }
}

fn parse_num(field: &[u8]) -> Result<u64, TarError> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        // GNU base-256: big-endian, the first byte's high bit is the marker.
        let mut n: u64 = (field[0] & 0x3f) as u64;
        for &b in &field[1..] {
            n = n
                .checked_mul(256)
                .and_then(|n| n.checked_add(b as u64))
                .ok_or_else(|| TarError::Corrupt("number overflow".into()))?;
        }
        return Ok(n);
    }
    let start = field.iter().position(|&b| b != b' ').unwrap_or(field.len());
    let digits = &field[start..];
    let end = digits
        .iter()
        .position(|&b| b == 0 || b == b' ')
        .unwrap_or(digits.len());
    let mut n: u64 = 0;
    for &b in &digits[..end] {
        if !(b'0'..=b'7').contains(&b) {
            return Err(TarError::Corrupt(format!(
                "bad octal number {:?}",
                String::from_utf8_lossy(&digits[..end])
            )));
        }
        n = n
            .checked_mul(8)
            .map(|n| n + (b - b'0') as u64)
            .ok_or_else(|| TarError::Corrupt("number overflow".into()))?;
    }
    Ok(n)
}

fn cstr(field: &[u8]) -> Vec<u8> {
    field.iter().copied().take_while(|&b| b != 0).collect()
}

/// A streaming tar reader over any `Read`. `next_header` moves to the next member (skipping
/// unread data); `Read` yields the current member's data.
pub struct TarReader<R> {
    inner: R,
    remaining: u64,
    pad: usize,
    done: bool,
}

impl<R: Read> TarReader<R> {
    pub fn new(inner: R) -> Self {
        TarReader {
            inner,
            remaining: 0,
            pad: 0,
            done: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_block(&mut self, buf: &mut [u8; BLOCK]) -> Result<bool, TarError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(TarError::Truncated),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(TarError::Io(e)),
            }
        }
        Ok(true)
    }

    fn skip(&mut self, n: u64) -> Result<(), TarError> {
        if n == 0 {
            return Ok(());
        }
        // io::copy reads into an uninitialised buffer: no 8 KiB memset per member.
        let got = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
        if got < n {
            return Err(TarError::Truncated);
        }
        Ok(())
    }

    fn read_payload(&mut self, size: u64) -> Result<Vec<u8>, TarError> {
        // Extended headers (PAX, GNU long names) are small; refuse absurd sizes rather than
        // allocate what a corrupt header claims.
        if size > 16 << 20 {
            return Err(TarError::Corrupt(format!(
                "extended header of {size} bytes"
            )));
        }
        let mut v = vec![0u8; size as usize];
        self.inner.read_exact(&mut v).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                TarError::Truncated
            } else {
                TarError::Io(e)
            }
        })?;
        self.skip(padding(size) as u64)?;
        Ok(v)
    }

    /// The next member's header, or `None` at the end of the archive: EOF at a block
    /// boundary, or the first all-zero block (whatever follows it is ignored, §2.7).
    pub fn next_header(&mut self) -> Result<Option<Header>, TarError> {
        if self.done {
            return Ok(None);
        }
        let rest = self.remaining + self.pad as u64;
        self.skip(rest)?;
        self.remaining = 0;
        self.pad = 0;
        let mut pax: PaxRecords = Vec::new();
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        loop {
            let mut b = [0u8; BLOCK];
            if !self.read_block(&mut b)? || b.iter().all(|&x| x == 0) {
                self.done = true;
                return Ok(None);
            }
            let stored = parse_num(&b[148..156])?;
            let mut sum: u64 = b.iter().map(|&x| x as u64).sum();
            sum = sum - b[148..156].iter().map(|&x| x as u64).sum::<u64>() + 8 * b' ' as u64;
            if stored != sum {
                return Err(TarError::Corrupt("header checksum mismatch".into()));
            }
            let typ = if b[156] == 0 { REGTYPE } else { b[156] };
            let size = parse_num(&b[124..136])?;
            match typ {
                b'x' => {
                    pax.extend(parse_pax(&self.read_payload(size)?)?);
                    continue;
                }
                b'g' => {
                    self.read_payload(size)?;
                    continue;
                }
                b'L' => {
                    long_name = Some(cstr(&self.read_payload(size)?));
                    continue;
                }
                b'K' => {
                    long_link = Some(cstr(&self.read_payload(size)?));
                    continue;
                }
                _ => {}
            }
            let is_ustar = &b[257..263] == b"ustar\0";
            let mut name = cstr(&b[0..100]);
            let prefix = cstr(&b[345..500]);
            if is_ustar && !prefix.is_empty() {
                let mut p = prefix;
                p.push(b'/');
                p.extend_from_slice(&name);
                name = p;
            }
            let mut h = Header {
                name: long_name.take().unwrap_or(name),
                typ,
                mode: parse_num(&b[100..108])? as u32,
                uid: parse_num(&b[108..116])?,
                gid: parse_num(&b[116..124])?,
                size,
                mtime: parse_num(&b[136..148])? as i64,
                linkname: long_link.take().unwrap_or_else(|| cstr(&b[157..257])),
                uname: cstr(&b[265..297]),
                gname: cstr(&b[297..329]),
                devmajor: parse_num(&b[329..337]).unwrap_or(0) as u32,
                devminor: parse_num(&b[337..345]).unwrap_or(0) as u32,
                extra: Vec::new(),
            };
            for (k, v) in pax {
                let num = || {
                    std::str::from_utf8(&v).ok().and_then(|s| {
                        s.trim()
                            .split('.')
                            .next()
                            .and_then(|i| i.parse::<i64>().ok())
                    })
                };
                match &k[..] {
                    b"path" => h.name = v,
                    b"linkpath" => h.linkname = v,
                    b"uname" => h.uname = v,
                    b"gname" => h.gname = v,
                    b"uid" => h.uid = num().unwrap_or(0).max(0) as u64,
                    b"gid" => h.gid = num().unwrap_or(0).max(0) as u64,
                    b"size" => h.size = num().unwrap_or(0).max(0) as u64,
                    b"mtime" => h.mtime = num().unwrap_or(0),
                    b"hdrcharset" | b"atime" | b"ctime" | b"comment" | b"charset" => {}
                    _ => h.extra.push((String::from_utf8_lossy(&k).into_owned(), v)),
                }
            }
            // Only regular files carry data; other types may have a size field for
            // hard links and such, which we skip.
            self.remaining = h.size;
            self.pad = padding(h.size);
            return Ok(Some(h));
        }
    }
}

/// PAX records as (keyword, value) byte strings.
type PaxRecords = Vec<(Vec<u8>, Vec<u8>)>;

fn parse_pax(data: &[u8]) -> Result<PaxRecords, TarError> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let sp = rest
            .iter()
            .position(|&b| b == b' ')
            .ok_or_else(|| TarError::Corrupt("bad PAX record".into()))?;
        let len: usize = std::str::from_utf8(&rest[..sp])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| TarError::Corrupt("bad PAX record length".into()))?;
        if len <= sp + 1 || len > rest.len() {
            return Err(TarError::Corrupt("bad PAX record length".into()));
        }
        let rec = &rest[sp + 1..len - 1];
        let eq = rec
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| TarError::Corrupt("bad PAX record".into()))?;
        out.push((rec[..eq].to_vec(), rec[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(out)
}

impl<R: Read> Read for TarReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = (buf.len() as u64).min(self.remaining) as usize;
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "tar member is truncated",
            ));
        }
        self.remaining -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(h: &Header, data: &[u8]) -> (Header, Vec<u8>) {
        let mut buf = Vec::new();
        write_member(&mut buf, h, data).unwrap();
        buf.extend_from_slice(&[0u8; 1024]);
        let mut r = TarReader::new(&buf[..]);
        let got = r.next_header().unwrap().unwrap();
        let mut d = Vec::new();
        r.read_to_end(&mut d).unwrap();
        assert!(r.next_header().unwrap().is_none());
        (got, d)
    }

    fn file(name: &[u8], size: u64) -> Header {
        Header {
            name: name.to_vec(),
            typ: REGTYPE,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size,
            mtime: 1699990000,
            uname: b"user".to_vec(),
            gname: b"user".to_vec(),
            ..Header::default()
        }
    }

    #[test]
    fn python_pax_bytes_for_a_binary_name() {
        // What Python 3.11 tarfile writes for snapshot/\xff\xfename (checked with xxd):
        // a PaxHeader with hdrcharset=BINARY first, and `?` in the ustar name field.
        let h = file(b"snapshot/\xff\xfename", 0);
        let enc = encode_header(&h);
        assert_eq!(enc.len(), 3 * BLOCK);
        assert_eq!(&enc[0..14], b"././@PaxHeader");
        assert_eq!(&enc[257..265], b"ustar\x0000");
        let recs = &enc[BLOCK..2 * BLOCK];
        assert!(
            recs.starts_with(b"21 hdrcharset=BINARY\n24 path=snapshot/\xff\xfename\n"),
            "{:?}",
            String::from_utf8_lossy(recs)
        );
        assert_eq!(&enc[2 * BLOCK..2 * BLOCK + 15], b"snapshot/??name");
        let (got, _) = roundtrip(&h, b"");
        assert_eq!(got.name, h.name);
    }

    #[test]
    fn utf8_and_long_names() {
        let h = file("snapshot/dir2/äöü.txt".as_bytes(), 3);
        let enc = encode_header(&h);
        assert_eq!(&enc[2 * BLOCK - BLOCK..][..0], b"");
        assert!(!String::from_utf8_lossy(&enc).contains("hdrcharset"));
        assert_eq!(&enc[BLOCK * 2..BLOCK * 2 + 21], b"snapshot/dir2/???.txt");
        assert_eq!(roundtrip(&h, b"abc"), (h.clone(), b"abc".to_vec()));

        let long = [b"snapshot/".to_vec(), vec![b'a'; 150]].concat();
        let h = file(&long, 1);
        assert_eq!(roundtrip(&h, b"z").0.name, long);
        // exactly 100 ASCII bytes fits the ustar field: no PAX header
        let hundred = vec![b'b'; 100];
        assert_eq!(encode_header(&file(&hundred, 0)).len(), BLOCK);
    }

    #[test]
    fn pax_record_length_counts_its_digits() {
        // 9 + 1 digit would be 10, which needs 2 digits: the fixed point is 11.
        let recs = {
            let h = file(&[b'c'; 101], 0);
            let enc = encode_header(&h);
            enc[BLOCK..2 * BLOCK].to_vec()
        };
        assert!(
            recs.starts_with(b"111 path="),
            "{:?}",
            String::from_utf8_lossy(&recs[..12])
        );
    }

    #[test]
    fn big_uid_goes_to_pax() {
        let mut h = file(b"snapshot/x", 0);
        h.uid = 1000680000;
        let (got, _) = roundtrip(&h, b"");
        assert_eq!(got.uid, 1000680000);
    }

    #[test]
    fn special_types_and_devices() {
        let mut h = file(b"snapshot/dev", 0);
        h.typ = CHRTYPE;
        h.devmajor = 1;
        h.devminor = 3;
        assert_eq!(roundtrip(&h, b"").0, h);
        let mut l = file(b"snapshot/link", 0);
        l.typ = SYMTYPE;
        l.mode = 0o777;
        l.linkname = b"target with space".to_vec();
        assert_eq!(roundtrip(&l, b"").0, l);
        let enc = encode_header(&l);
        assert_eq!(&enc[329..345], &[0u8; 16]);
    }

    #[test]
    fn the_tar_crate_reads_what_we_write() {
        let mut buf = Vec::new();
        write_member(&mut buf, &file(b"snapshot/\xff\xfe", 2), b"hi").unwrap();
        write_member(
            &mut buf,
            &file(&[b"diff/".to_vec(), vec![b'q'; 140]].concat(), 0),
            b"",
        )
        .unwrap();
        buf.resize(buf.len() + footer_len(buf.len() as u64), 0);
        assert_eq!(buf.len() % RECORD as usize, 0);
        let mut a = tar::Archive::new(&buf[..]);
        let names: Vec<Vec<u8>> = a
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path_bytes().to_vec())
            .collect();
        assert_eq!(names[0], b"snapshot/\xff\xfe");
        assert_eq!(names[1].len(), 145);
    }

    #[test]
    fn gnu_long_names_and_base256() {
        // A GNU-format member as Python <= 3.7 wrote them: `././@LongLink` type L.
        let long = vec![b'n'; 120];
        let mut lh = [0u8; BLOCK];
        lh[..13].copy_from_slice(b"././@LongLink");
        put_octal(&mut lh[100..108], 0);
        put_octal(&mut lh[108..116], 0);
        put_octal(&mut lh[116..124], 0);
        put_octal(&mut lh[124..136], long.len() as u64 + 1);
        put_octal(&mut lh[136..148], 0);
        lh[156] = b'L';
        lh[257..265].copy_from_slice(b"ustar  \0");
        lh[148..156].copy_from_slice(b"        ");
        let s: u32 = lh.iter().map(|&x| x as u32).sum();
        lh[148..155].copy_from_slice(format!("{s:06o}\0").as_bytes());
        let mut buf = lh.to_vec();
        buf.extend_from_slice(&long);
        buf.push(0);
        pad_to_block(&mut buf);
        let mut main = ustar_block(&file(&long[..99], 0), &long[..99], b"", 5, 5, 0, 7);
        main[257..265].copy_from_slice(b"ustar  \0");
        // base-256 uid
        main[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0x3b, 0xa5, 0x2a, 0x40]);
        main[148..156].copy_from_slice(b"        ");
        let s: u32 = main.iter().map(|&x| x as u32).sum();
        main[148..155].copy_from_slice(format!("{s:06o}\0").as_bytes());
        buf.extend_from_slice(&main);
        let mut r = TarReader::new(&buf[..]);
        let h = r.next_header().unwrap().unwrap();
        assert_eq!(h.name, long);
        assert_eq!(h.uid, 1000680000);
        assert!(r.next_header().unwrap().is_none());
    }

    #[test]
    fn endings_junk_and_truncation() {
        let mut buf = Vec::new();
        write_member(&mut buf, &file(b"snapshot/a", 3), b"abc").unwrap();
        let clean = buf.clone();
        // zero block then junk
        buf.extend_from_slice(&[0u8; BLOCK]);
        buf.extend_from_slice(b"random junk copied from the ciphertext");
        let mut r = TarReader::new(&buf[..]);
        assert!(r.next_header().unwrap().is_some());
        assert!(r.next_header().unwrap().is_none());
        // no end marker at all
        let mut r = TarReader::new(&clean[..]);
        assert!(r.next_header().unwrap().is_some());
        assert!(r.next_header().unwrap().is_none());
        // truncated inside data
        let mut r = TarReader::new(&clean[..BLOCK + 2]);
        r.next_header().unwrap().unwrap();
        assert!(matches!(r.next_header(), Err(TarError::Truncated)));
        // corrupt header
        let mut bad = clean.clone();
        bad[5] ^= 0x40;
        assert!(matches!(
            TarReader::new(&bad[..]).next_header(),
            Err(TarError::Corrupt(_))
        ));
    }
}
