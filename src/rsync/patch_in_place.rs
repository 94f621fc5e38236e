//! Applying a delta to the old file in place: a restore of a big file that barely changed
//! writes only what moved, saving to a side file the basis bytes a later COPY still needs
//! before they are overwritten, and leaving unchanged and zero blocks unwritten (holes
//! stay holes, see `sparse`).

use super::*;

/// Saved runs of basis bytes beyond this many are merged with the run before them (the
/// bytes between are saved too): memory stays bounded whatever the delta, at the cost of
/// side-file space.
pub(super) const MAX_SAVED_RUNS: usize = 1 << 16;

/// Apply a delta to the file that holds its basis, in place; returns the length of the
/// result, to which the caller sets `file`'s length: it is shorter than the basis, or
/// longer than what was written when the result ends in zero blocks, which are left as
/// holes past the basis.
///
/// A COPY of the bytes already at its own position (what an unchanged part of a big file
/// becomes) costs nothing, where [`patch`] reads and writes them. Every other write first
/// saves the basis bytes it overwrites to `side` (from its start; its old contents do not
/// matter), and COPYs read those from there, so the result is what [`patch`] gives for
/// any delta, moves and overlaps included. Writes go in order, so what lies ahead of
/// the write position is still the basis. Memory: three 64 KiB buffers and 24 bytes per
/// saved run of basis bytes (at most [`MAX_SAVED_RUNS`]). On error, `file` is partly
/// patched.
pub fn patch_in_place<F, D, S>(file: &mut F, delta: &mut D, side: &mut S) -> Result<u64, DeltaError>
where
    F: Read + Write + Seek,
    D: Read,
    S: Read + Write + Seek,
{
    patch_in_place_capped(file, delta, side, MAX_SAVED_RUNS)
}

pub(super) fn patch_in_place_capped<F, D, S>(
    file: &mut F,
    delta: &mut D,
    side: &mut S,
    max_runs: usize,
) -> Result<u64, DeltaError>
where
    F: Read + Write + Seek,
    D: Read,
    S: Read + Write + Seek,
{
    let basis_len = file.seek(SeekFrom::End(0))?;
    let mut out = InPlace {
        file,
        side,
        basis_len,
        pos: 0,
        pending: Vec::with_capacity(PATCH_BUF),
        saved: Vec::new(),
        side_len: 0,
        buf: vec![0u8; PATCH_BUF],
        chunk: vec![0u8; PATCH_BUF],
        max_runs: max_runs.max(1),
    };
    let n = run_delta(delta, basis_len, &mut out)?;
    out.flush_pending()?;
    Ok(n)
}

/// Basis bytes `start..end`, overwritten, kept in the side file from `side`.
pub(super) struct Saved {
    pub(super) start: u64,
    pub(super) end: u64,
    pub(super) side: u64,
}

pub(super) struct InPlace<'a, F, S> {
    pub(super) file: &'a mut F,
    pub(super) side: &'a mut S,
    pub(super) basis_len: u64,
    /// The end of the result so far (written or pending).
    pub(super) pos: u64,
    /// Result bytes not written yet; they end at `pos`.
    pub(super) pending: Vec<u8>,
    /// In order of position, not overlapping.
    pub(super) saved: Vec<Saved>,
    pub(super) side_len: u64,
    /// For saving basis bytes.
    pub(super) buf: Vec<u8>,
    /// For COPYs' bytes.
    pub(super) chunk: Vec<u8>,
    pub(super) max_runs: usize,
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> InPlace<'_, F, S> {
    /// Writes the pending bytes, after saving the basis bytes under them. Blocks that
    /// already hold their new bytes are not written (an unchanged or zero region the delta
    /// copies from elsewhere stays as it is, holes included), and zero blocks past the
    /// basis are left as holes.
    pub(super) fn flush_pending(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let start = self.pos - self.pending.len() as u64;
        let old_end = self.pos.min(self.basis_len);
        // Aligned blocks of the pending bytes whose basis bytes are the same.
        let mut same: Vec<u64> = Vec::new();
        if start < old_end {
            // Over the limit, the run before grows over the gap instead (bytes there were
            // not written, so they are still the basis).
            let from = match self.saved.last() {
                Some(last) if self.saved.len() >= self.max_runs => last.end,
                _ => start,
            };
            self.file.seek(SeekFrom::Start(from))?;
            self.side.seek(SeekFrom::Start(self.side_len))?;
            let mut at = from;
            while at < old_end {
                let n = (old_end - at).min(self.buf.len() as u64) as usize;
                self.file.read_exact(&mut self.buf[..n])?;
                let end = at + n as u64;
                let mut b = at.max(start).div_ceil(BLOCK) * BLOCK;
                while b + BLOCK <= end {
                    let old = &self.buf[(b - at) as usize..(b - at + BLOCK) as usize];
                    let new = &self.pending[(b - start) as usize..(b - start + BLOCK) as usize];
                    if old == new {
                        same.push(b);
                    }
                    b += BLOCK;
                }
                self.side.write_all(&self.buf[..n])?;
                at = end;
            }
            match self.saved.last_mut() {
                Some(last) if last.end == from => last.end = old_end,
                _ => self.saved.push(Saved {
                    start: from,
                    end: old_end,
                    side: self.side_len,
                }),
            }
            self.side_len += old_end - from;
        }
        let mut unknown = u64::MAX; // reads moved the file's position
        let basis_len = self.basis_len;
        crate::rsync::sparse::write_at(self.file, &mut unknown, start, &self.pending, |off, b| {
            same.binary_search(&off).is_ok()
                || (off >= basis_len && crate::rsync::sparse::is_zero(b))
        })?;
        self.pending.clear();
        Ok(())
    }

    /// Fills `dst` with the basis bytes from `at`: saved ones from the side file, the
    /// others from the file, where they still are.
    pub(super) fn read_basis(&mut self, mut at: u64, dst: &mut [u8]) -> io::Result<()> {
        let mut done = 0;
        while done < dst.len() {
            let want = (dst.len() - done) as u64;
            let i = self.saved.partition_point(|s| s.end <= at);
            let (from_side, n) = match self.saved.get(i) {
                Some(s) if s.start <= at => (Some(s.side + (at - s.start)), (s.end - at).min(want)),
                Some(s) => (None, (s.start - at).min(want)),
                None => (None, want),
            };
            let piece = &mut dst[done..done + n as usize];
            match from_side {
                Some(p) => {
                    self.side.seek(SeekFrom::Start(p))?;
                    self.side.read_exact(piece)?;
                }
                None => {
                    self.file.seek(SeekFrom::Start(at))?;
                    self.file.read_exact(piece)?;
                }
            }
            at += n;
            done += n as usize;
        }
        Ok(())
    }
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> Write for InPlace<'_, F, S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.pending.len() == PATCH_BUF {
            self.flush_pending()?;
        }
        let n = data.len().min(PATCH_BUF - self.pending.len());
        self.pending.extend_from_slice(&data[..n]);
        self.pos += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.flush_pending()
    }
}

impl<F: Read + Write + Seek, S: Read + Write + Seek> PatchOut for InPlace<'_, F, S> {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError> {
        if offset == self.pos {
            // Already there: nothing after `pos` has been written.
            self.flush_pending()?;
            self.pos += len;
            return Ok(());
        }
        // Taken for the loop, so that read_basis can borrow self.
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut done = 0;
        let res = (|| {
            while done < len {
                if self.pending.len() == PATCH_BUF {
                    self.flush_pending()?;
                }
                let n = (len - done).min((PATCH_BUF - self.pending.len()) as u64) as usize;
                self.read_basis(offset + done, &mut chunk[..n])?;
                self.pending.extend_from_slice(&chunk[..n]);
                self.pos += n as u64;
                done += n as u64;
            }
            Ok::<(), io::Error>(())
        })();
        self.chunk = chunk;
        res.map_err(DeltaError::from)
    }
}
