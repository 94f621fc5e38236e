//! Applying a delta (the rdiff `patch` step) from a seekable basis to a new stream; the
//! command reader both patchers share.

use super::*;

/// Buffered reader over the delta, so commands can be parsed byte by byte
/// without a `read` call per byte.
pub(super) struct CmdReader<'a, D: Read> {
    pub(super) inner: &'a mut D,
    pub(super) buf: Vec<u8>,
    pub(super) pos: usize,
    pub(super) end: usize,
}

impl<D: Read> CmdReader<'_, D> {
    /// Makes sure at least one byte is buffered; false at end of input.
    pub(super) fn fill(&mut self) -> io::Result<bool> {
        while self.pos == self.end {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pos = 0;
                    self.end = n.min(self.buf.len());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    pub(super) fn byte(&mut self) -> io::Result<Option<u8>> {
        if !self.fill()? {
            return Ok(None);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        Ok(Some(b))
    }

    /// Reads a big-endian unsigned integer of `width` (1..=8) bytes.
    pub(super) fn uint(&mut self, width: u32, what: &str) -> Result<u64, DeltaError> {
        let mut v = 0u64;
        for _ in 0..width {
            match self.byte()? {
                Some(b) => v = (v << 8) | u64::from(b),
                None => return Err(corrupt(format!("delta truncated in {what}"))),
            }
        }
        Ok(v)
    }

    pub(super) fn copy_to<W: Write>(
        &mut self,
        mut len: u64,
        out: &mut W,
    ) -> Result<(), DeltaError> {
        while len > 0 {
            if !self.fill()? {
                return Err(corrupt(format!(
                    "delta truncated inside a literal ({len} bytes missing)"
                )));
            }
            let n = ((self.end - self.pos) as u64).min(len) as usize;
            out.write_all(&self.buf[self.pos..self.pos + n])?;
            self.pos += n;
            len -= n as u64;
        }
        Ok(())
    }
}

/// Where the commands of a delta put the result: literal bytes arrive through `Write`,
/// COPYs (checked against the basis length already) through `copy`.
pub(super) trait PatchOut: Write {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError>;
}

/// Reads the commands of `delta` against a basis of `basis_len` bytes into `out`;
/// returns the length of the result.
pub(super) fn run_delta<D: Read, O: PatchOut>(
    delta: &mut D,
    basis_len: u64,
    out: &mut O,
) -> Result<u64, DeltaError> {
    let mut cmds = CmdReader {
        inner: delta,
        buf: vec![0; PATCH_BUF],
        pos: 0,
        end: 0,
    };
    let magic = cmds.uint(4, "magic")? as u32;
    if magic != DELTA_MAGIC {
        return Err(DeltaError::BadMagic(magic));
    }
    let mut written = 0u64;
    loop {
        let Some(cmd) = cmds.byte()? else {
            return Err(corrupt("delta ends without an END command"));
        };
        match cmd {
            OP_END => {
                if cmds.byte()?.is_some() {
                    return Err(corrupt("data after the END command"));
                }
                return Ok(written);
            }
            OP_LITERAL_1..=OP_LITERAL_64 => {
                cmds.copy_to(u64::from(cmd), out)?;
                written += u64::from(cmd);
            }
            OP_LITERAL_N1..=OP_LITERAL_N8 => {
                let len = cmds.uint(1 << (cmd - OP_LITERAL_N1), "literal length")?;
                cmds.copy_to(len, out)?;
                written += len;
            }
            OP_COPY_N1_N1..=OP_COPY_N8_N8 => {
                let mode = cmd - OP_COPY_N1_N1;
                let offset = cmds.uint(1 << (mode / 4), "copy offset")?;
                let len = cmds.uint(1 << (mode % 4), "copy length")?;
                if len == 0 {
                    return Err(corrupt(format!("zero-length COPY at offset {offset}")));
                }
                if offset.checked_add(len).is_none_or(|stop| stop > basis_len) {
                    return Err(corrupt(format!(
                        "COPY of {len} bytes at offset {offset} is past the basis end ({basis_len} bytes)"
                    )));
                }
                out.copy(offset, len)?;
                written += len;
            }
            _ => return Err(corrupt(format!("unknown delta command 0x{cmd:02x}"))),
        }
    }
}

/// Apply a delta to a seekable basis, streaming the result to out. Returns
/// bytes written.
///
/// Accepts every command form, including COPYs that go backwards, overlap or
/// end exactly at the end of the basis. Memory is two 64 KiB buffers. Errors
/// (never panics) on a bad magic, a truncated delta, an unknown command, a
/// zero-length COPY or one reaching past the end of the basis (librsync
/// rejects those too), and bytes after END. On error, `out` may hold a prefix
/// of the result.
pub fn patch<B: Read + Seek, D: Read, W: Write>(
    basis: &mut B,
    delta: &mut D,
    out: &mut W,
) -> Result<u64, DeltaError> {
    let basis_len = basis.seek(SeekFrom::End(0))?;
    let mut out = Streamed {
        basis,
        out,
        basis_pos: None,
        buf: vec![0u8; PATCH_BUF],
    };
    run_delta(delta, basis_len, &mut out)
}

pub(super) struct Streamed<'a, B, W> {
    pub(super) basis: &'a mut B,
    pub(super) out: &'a mut W,
    /// Where the basis is positioned, to skip seeks for consecutive COPYs (a seek may
    /// drop a BufReader's buffer or cost a syscall).
    pub(super) basis_pos: Option<u64>,
    pub(super) buf: Vec<u8>,
}

impl<B: Read + Seek, W: Write> Write for Streamed<'_, B, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.out.write(data)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

impl<B: Read + Seek, W: Write> PatchOut for Streamed<'_, B, W> {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError> {
        if self.basis_pos != Some(offset) {
            self.basis.seek(SeekFrom::Start(offset))?;
        }
        let mut left = len;
        while left > 0 {
            let want = left.min(self.buf.len() as u64) as usize;
            let n = match self.basis.read(&mut self.buf[..want]) {
                Ok(0) => return Err(corrupt("basis ended before its reported length")),
                Ok(n) => n.min(want),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            self.out.write_all(&self.buf[..n])?;
            left -= n as u64;
        }
        self.basis_pos = Some(offset + len);
        Ok(())
    }
}
