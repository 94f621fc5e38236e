//! Signature files (§3): the merged view of a signature chain that an incremental compares
//! the source against, and the writer of a run's new signature file.
//!
//! The merge is a k-way merge of the chain's tar streams by index; only the winning
//! member's signature bytes are read into memory, one entry at a time.

use crate::archive::tar::{self, Header, TarReader};
use crate::archive::{member_name, parse_member_name, Index, MemberKind};
use crate::error::{Error, Result};
use std::io::{Read, Write};

/// The state of one path as the signature chain records it.
#[derive(Debug)]
pub struct SigEntry {
    pub index: Index,
    pub header: Header,
    /// `Signature` (a regular file) or `Snapshot` (anything else).
    pub kind: MemberKind,
    /// The librsync signature, for regular files.
    pub sig: Option<Vec<u8>>,
}

impl SigEntry {
    /// The file size swiftdup recorded (PAX `SWIFTDUP.size`), when the entry has it.
    pub fn recorded_size(&self) -> Option<u64> {
        self.header
            .extra
            .iter()
            .find(|(k, _)| k == SIZE_KEY)
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok())
    }

    /// Whether the file may have changed after it was read without its size or mtime
    /// showing it (PAX `SWIFTDUP.racy`): the next run reads it again.
    pub fn racy(&self) -> bool {
        self.header.extra.iter().any(|(k, _)| k == RACY_KEY)
    }
}

/// PAX record marking a signature member whose file must be read again next run, though
/// its size and mtime may not change: its mtime was not older than the second in which
/// the run started (an edit later in that second keeps both, git's "racily clean" case),
/// or it changed while it was read. Stock's reader ignores it; the mtime stays the file's.
pub const RACY_KEY: &str = "SWIFTDUP.racy";

/// PAX record carrying a file's size in signature members: stock's change detection ignores
/// size, swiftdup's does not, and stock's tar reader ignores unknown records.
pub const SIZE_KEY: &str = "SWIFTDUP.size";

struct Stream {
    name: String,
    tar: TarReader<Box<dyn Read + Send>>,
    head: Option<(Index, MemberKind, Header)>,
    /// The index of the member before `head` (kept to check the order; its buffers are
    /// reused from one member to the next).
    prev: Option<Index>,
}

impl Stream {
    fn advance(&mut self) -> Result<()> {
        self.head = match self
            .tar
            .next_header()
            .map_err(|e| Error::integrity(&self.name, e))?
        {
            None => None,
            Some(h) => {
                let m = parse_member_name(&h.name).map_err(|e| Error::integrity(&self.name, e))?;
                if !matches!(
                    m.kind,
                    MemberKind::Signature | MemberKind::Snapshot | MemberKind::Deleted
                ) || m.chunk.is_some()
                {
                    return Err(Error::integrity(
                        &self.name,
                        format!(
                            "unexpected member {} in a signature file",
                            String::from_utf8_lossy(&h.name)
                        ),
                    ));
                }
                // Each file strictly in index order makes the merge of all of them so.
                match &mut self.prev {
                    Some(p) if *p >= m.index => {
                        return Err(Error::integrity(
                            &self.name,
                            "signature file is not in index order",
                        ))
                    }
                    Some(p) => p.clone_from(&m.index),
                    None => self.prev = Some(m.index.clone()),
                }
                Some((m.index, m.kind, h))
            }
        };
        Ok(())
    }
}

/// The merged signature chain: full signatures, then each new-signature file; for every
/// index the newest file that mentions it wins, and `deleted/` hides the path (§3.6).
pub struct SigChainReader {
    streams: Vec<Stream>,
}

impl SigChainReader {
    /// `streams` oldest first: (object name for errors, plaintext tar stream).
    pub fn new(streams: Vec<(String, Box<dyn Read + Send>)>) -> Result<Self> {
        let mut v = Vec::new();
        for (name, r) in streams {
            let mut s = Stream {
                name,
                tar: TarReader::new(r),
                head: None,
                prev: None,
            };
            s.advance()?;
            v.push(s);
        }
        Ok(SigChainReader { streams: v })
    }

    pub fn empty() -> Self {
        SigChainReader {
            streams: Vec::new(),
        }
    }

    /// The next live entry in index order.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<SigEntry>> {
        loop {
            // The smallest head; among equal ones the newest file's (the last) wins.
            let mut newest: Option<usize> = None;
            for (i, s) in self.streams.iter().enumerate() {
                let Some((index, ..)) = &s.head else { continue };
                let better = match newest.and_then(|n| self.streams[n].head.as_ref()) {
                    None => true,
                    Some((best, ..)) => index <= best,
                };
                if better {
                    newest = Some(i);
                }
            }
            let Some(newest) = newest else {
                return Ok(None);
            };
            let s = &mut self.streams[newest];
            let (index, kind, header) = s
                .head
                .take()
                .ok_or_else(|| Error::Internal("merge head vanished".into()))?;
            let sig = if kind == MemberKind::Signature {
                // Bounded by 12 bytes per block of the file; see rsync::block_len_for.
                let mut buf = Vec::with_capacity(header.size.min(1 << 24) as usize);
                s.tar
                    .read_to_end(&mut buf)
                    .map_err(|e| Error::integrity(&s.name, e))?;
                Some(buf)
            } else {
                None
            };
            s.advance()?;
            // Older files that mention the same path are overridden: move past it.
            for s in &mut self.streams[..newest] {
                if s.head.as_ref().is_some_and(|h| h.0 == index) {
                    s.advance()?;
                }
            }
            if kind == MemberKind::Deleted {
                continue;
            }
            return Ok(Some(SigEntry {
                index,
                header,
                kind,
                sig,
            }));
        }
    }
}

/// The merged chain as [`SigChainReader::next`] gives it, read ahead on a thread of its own
/// where there are threads: inflating and parsing the chain's signature files then runs
/// beside the source walk instead of in turn with it (for an incremental that finds
/// nothing changed, these are the two halves of the work). Entries come in batches through
/// a bounded channel; see [`SigEntries::new`] and the constants below for the memory bound.
pub struct SigEntries {
    inner: Ahead,
}

enum Ahead {
    Inline(SigChainReader),
    Thread {
        rx: std::sync::mpsc::Receiver<Result<Vec<SigEntry>>>,
        cur: std::vec::IntoIter<SigEntry>,
        done: bool,
    },
}

/// A batch is sent when it holds this many entries or this many signature bytes.
const BATCH_ENTRIES: usize = 512;
const BATCH_BYTES: usize = 1 << 20;
/// Batches in the channel. Read ahead is at most (DEPTH + 2) batches: the ones queued, the
/// one being filled and the one being consumed, so about 6 MiB of signatures plus one
/// entry's (a signature is 12 bytes per block of its file; see rsync::block_len_for).
const DEPTH: usize = 4;

impl SigEntries {
    /// Read the chain `streams` (oldest first), ahead of the caller on a thread when
    /// `ahead` (and there are threads), else as the caller asks.
    pub fn new(streams: Vec<(String, Box<dyn Read + Send>)>, ahead: bool) -> Result<Self> {
        if !ahead || cfg!(target_os = "wasi") {
            return Ok(SigEntries {
                inner: Ahead::Inline(SigChainReader::new(streams)?),
            });
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(DEPTH);
        std::thread::Builder::new()
            .name("signatures".into())
            .spawn(move || {
                let mut reader = match SigChainReader::new(streams) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let mut batch = Vec::new();
                let mut bytes = 0;
                loop {
                    match reader.next() {
                        Ok(Some(e)) => {
                            bytes += e.sig.as_ref().map_or(0, Vec::len);
                            batch.push(e);
                            if batch.len() < BATCH_ENTRIES && bytes < BATCH_BYTES {
                                continue;
                            }
                            bytes = 0;
                            // A send fails only when the caller is gone: stop reading.
                            if tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {
                            // The last batch, then an empty one: the end marker.
                            if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
                                return;
                            }
                            let _ = tx.send(Ok(Vec::new()));
                            return;
                        }
                        Err(e) => {
                            // What was read before the error is still in order.
                            if !batch.is_empty() && tx.send(Ok(batch)).is_err() {
                                return;
                            }
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::Internal(format!("cannot start a thread: {e}")))?;
        Ok(SigEntries {
            inner: Ahead::Thread {
                rx,
                cur: Vec::new().into_iter(),
                done: false,
            },
        })
    }

    /// The chain of no set: nothing.
    pub fn empty() -> Self {
        SigEntries {
            inner: Ahead::Inline(SigChainReader::empty()),
        }
    }

    /// The next live entry in index order.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<SigEntry>> {
        match &mut self.inner {
            Ahead::Inline(r) => r.next(),
            Ahead::Thread { rx, cur, done } => loop {
                if let Some(e) = cur.next() {
                    return Ok(Some(e));
                }
                if *done {
                    return Ok(None);
                }
                match rx.recv() {
                    Ok(Ok(b)) if b.is_empty() => *done = true,
                    Ok(Ok(b)) => *cur = b.into_iter(),
                    Ok(Err(e)) => {
                        *done = true;
                        return Err(e);
                    }
                    // The thread ended without its end marker (it cannot, short of a
                    // panic): never let that pass for the end of the chain.
                    Err(_) => {
                        *done = true;
                        return Err(Error::Internal(
                            "the signature-reading thread stopped".into(),
                        ));
                    }
                }
            },
        }
    }
}

/// Writes a run's signature file as a plain tar stream (sealed by the caller later).
pub struct SigWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> SigWriter<W> {
    pub fn new(out: W) -> Self {
        SigWriter { out, written: 0 }
    }

    /// A writer continuing a signature file of which `written` bytes of members are
    /// already in `out`.
    pub fn continued(out: W, written: u64) -> Self {
        SigWriter { out, written }
    }

    fn put(&mut self, h: &Header, data: &[u8]) -> Result<()> {
        let enc = tar::encode_header(h);
        let pad = tar::padding(data.len() as u64);
        let res = self
            .out
            .write_all(&enc)
            .and_then(|_| self.out.write_all(data))
            .and_then(|_| self.out.write_all(&[0u8; tar::BLOCK][..pad]));
        res.map_err(|e| Error::io("signature file", e))?;
        self.written += (enc.len() + data.len() + pad) as u64;
        Ok(())
    }

    /// A regular file's signature; `size` is what was read of the file, `racy` whether
    /// the next run must read it again whatever its metadata says (see [`RACY_KEY`]).
    pub fn signature(
        &mut self,
        index: &Index,
        meta: &Header,
        sig: &[u8],
        size: u64,
        racy: bool,
    ) -> Result<()> {
        let mut h = meta.clone();
        h.name = member_name(MemberKind::Signature, index, false, None, true);
        h.typ = tar::REGTYPE;
        h.size = sig.len() as u64;
        h.extra
            .push((SIZE_KEY.into(), size.to_string().into_bytes()));
        if racy {
            h.extra.push((RACY_KEY.into(), b"1".to_vec()));
        }
        self.put(&h, sig)
    }

    /// A non-regular entry (directory, symlink, FIFO, device).
    pub fn snapshot(&mut self, index: &Index, meta: &Header) -> Result<()> {
        let mut h = meta.clone();
        h.name = member_name(
            MemberKind::Snapshot,
            index,
            h.typ == tar::DIRTYPE,
            None,
            true,
        );
        h.size = 0;
        self.put(&h, &[])
    }

    pub fn deleted(&mut self, index: &Index) -> Result<()> {
        self.put(
            &Header::deleted(member_name(MemberKind::Deleted, index, false, None, true)),
            &[],
        )
    }

    /// Close as Python's `tarfile` does: two zero blocks, padded to a 10240-byte record.
    pub fn finish(mut self) -> Result<W> {
        let mut n = self.written + 1024;
        n = n.div_ceil(tar::RECORD) * tar::RECORD;
        let zeros = vec![0u8; (n - self.written) as usize];
        self.out
            .write_all(&zeros)
            .map_err(|e| Error::io("signature file", e))?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(typ: u8, mtime: i64) -> Header {
        Header {
            typ,
            mode: 0o644,
            mtime,
            uname: b"u".to_vec(),
            gname: b"g".to_vec(),
            ..Header::default()
        }
    }

    fn idx(s: &str) -> Index {
        if s.is_empty() {
            return vec![];
        }
        s.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    fn ahead_of(name: &str, tar: Vec<u8>) -> SigEntries {
        let r: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(tar));
        SigEntries::new(vec![(name.into(), r)], true).unwrap()
    }

    /// Read ahead on a thread, the chain gives the same entries in batches larger than
    /// one, and a file out of index order gives what came before it, then the error.
    #[test]
    fn read_ahead_keeps_order_and_hands_on_errors() {
        let names: Vec<String> = (0..2000).map(|i| format!("f{i:05}")).collect();
        let mut full = SigWriter::new(Vec::new());
        for n in &names {
            full.signature(&idx(n), &meta(tar::REGTYPE, 1), n.as_bytes(), 1, false)
                .unwrap();
        }
        let full = full.finish().unwrap();
        let mut r = ahead_of("full", full);
        let mut got = Vec::new();
        while let Some(e) = r.next().unwrap() {
            got.push(crate::archive::index_display(&e.index));
        }
        assert_eq!(got, names);
        assert!(r.next().unwrap().is_none(), "the end stays the end");

        let mut bad = SigWriter::new(Vec::new());
        for n in ["a", "b", "d", "c", "e"] {
            bad.signature(&idx(n), &meta(tar::REGTYPE, 1), b"s", 1, false)
                .unwrap();
        }
        let bad = bad.finish().unwrap();
        let mut r = ahead_of("bad", bad);
        let mut got = Vec::new();
        let err = loop {
            match r.next() {
                Ok(Some(e)) => got.push(crate::archive::index_display(&e.index)),
                Ok(None) => panic!("an unordered file read to its end"),
                Err(e) => break e.to_string(),
            }
        };
        assert_eq!(got, ["a", "b"]);
        assert!(err.contains("not in index order"), "{err}");
    }

    #[test]
    fn merge_newest_wins_and_deleted_hides() {
        let mut full = SigWriter::new(Vec::new());
        full.snapshot(&idx(""), &meta(tar::DIRTYPE, 1)).unwrap();
        full.signature(&idx("a"), &meta(tar::REGTYPE, 1), b"sigA1", 10, false)
            .unwrap();
        full.signature(&idx("b"), &meta(tar::REGTYPE, 1), b"sigB1", 10, false)
            .unwrap();
        full.signature(&idx("c"), &meta(tar::REGTYPE, 1), b"sigC1", 10, false)
            .unwrap();
        let full = full.finish().unwrap();
        assert_eq!(full.len() % 10240, 0);
        let mut inc = SigWriter::new(Vec::new());
        inc.signature(&idx("a"), &meta(tar::REGTYPE, 2), b"sigA2", 11, false)
            .unwrap();
        inc.deleted(&idx("b")).unwrap();
        inc.signature(&idx("d"), &meta(tar::REGTYPE, 2), b"sigD2", 12, false)
            .unwrap();
        let inc = inc.finish().unwrap();
        let mut r = SigChainReader::new(vec![
            ("full".into(), Box::new(std::io::Cursor::new(full))),
            ("inc".into(), Box::new(std::io::Cursor::new(inc))),
        ])
        .unwrap();
        let mut got = Vec::new();
        while let Some(e) = r.next().unwrap() {
            got.push((
                crate::archive::index_display(&e.index),
                e.header.mtime,
                e.sig.clone(),
                e.recorded_size(),
            ));
        }
        assert_eq!(
            got,
            vec![
                (".".into(), 1, None, None),
                ("a".into(), 2, Some(b"sigA2".to_vec()), Some(11)),
                ("c".into(), 1, Some(b"sigC1".to_vec()), Some(10)),
                ("d".into(), 2, Some(b"sigD2".to_vec()), Some(12)),
            ]
        );
    }
}
