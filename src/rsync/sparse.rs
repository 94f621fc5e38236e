//! Writing files with holes: a restore turns runs of zero blocks into holes (a seek instead
//! of a write), so a sparse disk image or database file comes back as sparse as it was
//! (the format stores every byte: duplicity archives have no holes).
//!
//! Only whole 4 KiB blocks aligned to the file's offsets become holes, and only where
//! nothing was written before (a new file, or past the old end of a file patched in
//! place): there unwritten bytes read as zeros. Inside a file patched in place, a block
//! is not written when it already holds the new bytes, so holes of the old version that
//! stay zero stay holes. The caller sets the length at the end, as a file that ends in a
//! hole is shorter than what was "written".

use std::io::{self, Seek, SeekFrom, Write};

/// The block size holes are made of (the common file-system block).
pub const BLOCK: u64 = 4096;

/// Whether `b` is all zeros.
pub fn is_zero(b: &[u8]) -> bool {
    // OR-folded in 64-byte pieces: vectorised, and stops at the first piece with data.
    b.chunks(64).all(|c| c.iter().fold(0u8, |a, &x| a | x) == 0)
}

/// Write `data` at `at`, leaving out the whole aligned blocks for which `skip(offset,
/// block)` holds: zero blocks where nothing was written before (they stay holes), or
/// blocks known to hold those bytes already. `cursor` is the file's position when known
/// (`u64::MAX` when not), so that consecutive writes need no seek; it is the end of the
/// last write afterwards.
pub fn write_at<F: Write + Seek>(
    f: &mut F,
    cursor: &mut u64,
    at: u64,
    data: &[u8],
    skip: impl Fn(u64, &[u8]) -> bool,
) -> io::Result<()> {
    let mut run = 0; // the start of the bytes still to write
    let mut i = 0;
    while i < data.len() {
        let off = at + i as u64;
        let n = ((BLOCK - off % BLOCK) as usize).min(data.len() - i);
        if n as u64 == BLOCK && skip(off, &data[i..i + n]) {
            write_run(f, cursor, at + run as u64, &data[run..i])?;
            run = i + n;
        }
        i += n;
    }
    write_run(f, cursor, at + run as u64, &data[run..])
}

fn write_run<F: Write + Seek>(f: &mut F, cursor: &mut u64, at: u64, data: &[u8]) -> io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if *cursor != at {
        f.seek(SeekFrom::Start(at))?;
    }
    f.write_all(data)?;
    *cursor = at + data.len() as u64;
    Ok(())
}

/// Writes a new, empty file from its start, with holes for zero blocks. It buffers 64 KiB
/// (so writes of any size reach [`write_at`] block-aligned, and no zero block is written
/// because a write boundary split it); call [`SparseWriter::finish`] to write the rest and
/// give the file its length.
pub struct SparseWriter<'f> {
    file: &'f mut std::fs::File,
    /// Up to `BUF` long, grown as data comes (a small file does not pay for zeroing 64
    /// KiB); its first `filled` bytes are buffered.
    buf: Vec<u8>,
    filled: usize,
    cursor: u64,
    /// The offset of `buf`'s first byte: always a multiple of BLOCK.
    at: u64,
}

const BUF: usize = 16 * BLOCK as usize;

impl<'f> SparseWriter<'f> {
    /// `file` must be empty and at offset 0.
    pub fn new(file: &'f mut std::fs::File) -> Self {
        SparseWriter {
            file,
            buf: Vec::new(),
            filled: 0,
            cursor: 0,
            at: 0,
        }
    }

    fn flush_buf(&mut self) -> io::Result<()> {
        let data = &self.buf[..self.filled];
        write_at(self.file, &mut self.cursor, self.at, data, |_, b| {
            is_zero(b)
        })?;
        self.at += self.filled as u64;
        self.filled = 0;
        Ok(())
    }

    /// Copy all of `r` in: reads go straight into the buffer (no 8 KiB hop through
    /// `io::copy`'s). Returns the bytes copied.
    pub fn copy_from(&mut self, r: &mut impl io::Read) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            if self.filled == self.buf.len() {
                let grown = (2 * self.buf.len()).clamp(4096, BUF);
                self.buf.resize(grown, 0);
            }
            let n = match r.read(&mut self.buf[self.filled..]) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.filled += n;
            total += n as u64;
            if self.filled == BUF {
                self.flush_buf()?;
            }
        }
    }

    /// Write what is buffered; returns the file's length, holes included (the file is
    /// extended over a final hole).
    pub fn finish(mut self) -> io::Result<u64> {
        // A final partial block of zeros is left to the extension too.
        let buffered = &self.buf[..self.filled];
        let data = buffered.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let len = self.at + self.filled as u64;
        self.filled = data;
        self.flush_buf()?;
        if self.cursor < len {
            self.file.set_len(len)?;
        }
        Ok(len)
    }
}

impl Write for SparseWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.filled == 0 && data.len() >= BUF {
            // Whole buffers straight through, without a copy.
            let n = data.len() - data.len() % BUF;
            write_at(self.file, &mut self.cursor, self.at, &data[..n], |_, b| {
                is_zero(b)
            })?;
            self.at += n as u64;
            return Ok(n);
        }
        let n = data.len().min(BUF - self.filled);
        if self.buf.len() < self.filled + n {
            self.buf.resize(self.filled + n, 0);
        }
        self.buf[self.filled..self.filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == BUF {
            self.flush_buf()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Read};

    #[test]
    fn zero_blocks_are_skipped_and_the_rest_lands_where_it_belongs() {
        // Data, a hole, data across a block edge, a partial zero block (written), a hole.
        let mut data = vec![7u8; 5000];
        data.extend(vec![0u8; 3 * BLOCK as usize]);
        data.extend(vec![9u8; 100]);
        data.extend(vec![0u8; 2 * BLOCK as usize]);
        let mut f = Cursor::new(Vec::new());
        let mut cursor = 0;
        let mut pos = 0u64;
        for piece in data.chunks(777) {
            write_at(&mut f, &mut cursor, pos, piece, |_, b| is_zero(b)).unwrap();
            pos += piece.len() as u64;
        }
        let mut got = f.into_inner();
        got.resize(data.len(), 0); // what set_len does for a final hole
        assert_eq!(got, data);
    }

    #[test]
    fn nothing_before_holes_from_is_left_out() {
        let data = vec![0u8; 4 * BLOCK as usize];
        let mut f = Cursor::new(vec![1u8; 2 * BLOCK as usize]);
        let mut cursor = u64::MAX;
        write_at(&mut f, &mut cursor, 0, &data, |off, b| {
            off >= 2 * BLOCK && is_zero(b)
        })
        .unwrap();
        let got = f.into_inner();
        // The old bytes under the first two blocks were overwritten with zeros; past the
        // old end nothing was written.
        assert_eq!(got, vec![0u8; 2 * BLOCK as usize]);
    }

    #[test]
    fn a_sparse_file_reads_back_and_uses_fewer_blocks() {
        let dir = std::env::temp_dir().join(format!("swiftdup-sparse-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f");
        let mut file = std::fs::File::create_new(&path).unwrap();
        let mut w = SparseWriter::new(&mut file);
        let mut want = Vec::new();
        for i in 0..64u8 {
            let block = if i % 8 == 0 {
                vec![i + 1; 65536]
            } else {
                vec![0; 65536]
            };
            w.write_all(&block).unwrap();
            want.extend(block);
        }
        assert_eq!(w.finish().unwrap(), want.len() as u64);
        drop(file);
        let mut got = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut got)
            .unwrap();
        assert!(got == want, "contents differ");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let m = std::fs::metadata(&path).unwrap();
            // 8 of 64 blocks hold data: an eighth, and not a block of zeros more.
            assert!(
                m.blocks() * 512 <= m.len() / 8 + 8192,
                "{} bytes allocated for {}",
                m.blocks() * 512,
                m.len()
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A reader that hands out at most `max` bytes per read.
    struct Short<'a>(&'a [u8], usize);

    impl Read for Short<'_> {
        fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
            let n = b.len().min(self.1).min(self.0.len());
            b[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn copied_in_or_written_the_file_is_the_same_with_the_same_holes() {
        let dir = std::env::temp_dir().join(format!("swiftdup-sparse-c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Data and zero runs of odd lengths, ending in zeros, and a small file.
        let mut data = Vec::new();
        for (i, len) in [70_000usize, 200_000, 5, 131_072, 9000, 300_001]
            .iter()
            .enumerate()
        {
            data.extend(std::iter::repeat_n(
                if i % 2 == 0 { i as u8 + 1 } else { 0 },
                *len,
            ));
        }
        for (case, want) in [&data[..], &data[..5]].into_iter().enumerate() {
            for max in [1usize, 4095, 65536, 1 << 20] {
                let (a, b) = (
                    dir.join(format!("a{case}-{max}")),
                    dir.join(format!("b{case}-{max}")),
                );
                let mut fa = std::fs::File::create_new(&a).unwrap();
                let mut w = SparseWriter::new(&mut fa);
                assert_eq!(
                    w.copy_from(&mut Short(want, max)).unwrap(),
                    want.len() as u64
                );
                assert_eq!(w.finish().unwrap(), want.len() as u64);
                let mut fb = std::fs::File::create_new(&b).unwrap();
                let mut w = SparseWriter::new(&mut fb);
                w.write_all(want).unwrap();
                w.finish().unwrap();
                assert!(
                    std::fs::read(&a).unwrap() == want,
                    "copied in, reads of {max}"
                );
                assert!(std::fs::read(&b).unwrap() == want);
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    let blocks = |p: &std::path::Path| std::fs::metadata(p).unwrap().blocks();
                    assert_eq!(blocks(&a), blocks(&b), "reads of {max}");
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
