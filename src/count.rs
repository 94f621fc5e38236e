//! A writer that counts the bytes that pass through it: the sealed size of a volume, the
//! length of a rebuilt file. Everything else about the stream stays with its owner.

use std::io::{self, Write};

pub struct Counting<W: Write> {
    pub inner: W,
    /// Bytes written so far.
    pub n: u64,
}

impl<W: Write> Counting<W> {
    pub fn new(inner: W) -> Self {
        Counting { inner, n: 0 }
    }
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
