//! Packet bodies on the opening side: one packet's body read over the stream it sits in,
//! with definite, indeterminate (old format, to the end) and partial body lengths.
//!
//! Why not rPGP's `PacketBodyReader`? It copies every body through an 8 KiB buffer of
//! its own and out again. A restore reads three bodies nested in each other (encrypted
//! data, compressed data, literal data), so each byte of plaintext was copied up to four
//! times more than needed: `perf` put a tenth of the deciphering thread's CPU in those
//! copies. [`Body`] passes the inner stream's buffer through (`fill_buf`) and reads
//! straight into the caller's buffer (`read`), so a large read of the literal data goes
//! down to the inflater, which writes into it directly.
//!
//! The rules are rPGP's (RFC 9580 §4.2.1.4): partial lengths only for data packets, the
//! first partial chunk at least 512 bytes, no indeterminate length after a partial one,
//! and a body that ends early is an error, never a short body.

use super::*;

/// How the body goes on after the bytes left in the current chunk.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum After {
    /// The current chunk is the last (a definite length).
    End,
    /// Another length follows the current chunk (partial body lengths).
    Chunk,
    /// The body runs to the end of the stream (old-format indeterminate length).
    StreamEnd,
}

pub(super) struct Body<R> {
    src: R,
    /// Bytes of the current chunk not yet read (unused for `StreamEnd`).
    left: u64,
    after: After,
}

impl<R: BufRead> Body<R> {
    pub(super) fn new(header: PacketHeader, src: R) -> io::Result<Self> {
        let (left, after) = match header.packet_length() {
            PacketLength::Fixed(len) => (u64::from(len), After::End),
            PacketLength::Indeterminate => (0, After::StreamEnd),
            PacketLength::Partial(len) => {
                if !matches!(
                    header.tag(),
                    Tag::LiteralData
                        | Tag::CompressedData
                        | Tag::SymEncryptedData
                        | Tag::SymEncryptedProtectedData
                        | Tag::GnupgAeadData
                ) {
                    return Err(invalid(format!(
                        "partial body length in a {:?} packet (allowed only in data packets)",
                        header.tag()
                    )));
                }
                if len < 512 {
                    return Err(invalid(format!(
                        "first partial body length {len} is shorter than 512 bytes"
                    )));
                }
                (u64::from(len), After::Chunk)
            }
        };
        Ok(Body { src, left, after })
    }

    /// The stream after this body. Called at the body's end, it is positioned at the
    /// next packet; earlier, somewhere inside this one.
    pub(super) fn into_inner(self) -> R {
        self.src
    }

    /// Step over exhausted chunks to the next one that has bytes, or to the body's end.
    fn next_chunk(&mut self) -> io::Result<()> {
        while self.left == 0 && self.after == After::Chunk {
            (self.left, self.after) = match PacketLength::try_from_reader(&mut self.src)? {
                PacketLength::Fixed(len) => (u64::from(len), After::End),
                PacketLength::Partial(len) => (u64::from(len), After::Chunk),
                PacketLength::Indeterminate => {
                    return Err(invalid("indeterminate length inside a partial body".into()))
                }
            };
        }
        Ok(())
    }
}

fn invalid(m: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, m)
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the packet body ends before its length",
    )
}

impl<R: BufRead> BufRead for Body<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.next_chunk()?;
        if self.after == After::StreamEnd {
            return self.src.fill_buf();
        }
        if self.left == 0 {
            return Ok(&[]);
        }
        let left = self.left;
        let buf = self.src.fill_buf()?;
        if buf.is_empty() {
            return Err(truncated());
        }
        let n = (buf.len() as u64).min(left) as usize;
        Ok(&buf[..n])
    }

    fn consume(&mut self, amt: usize) {
        self.src.consume(amt);
        if self.after != After::StreamEnd {
            self.left = self.left.saturating_sub(amt as u64);
        }
    }
}

impl<R: BufRead> Read for Body<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.next_chunk()?;
        if self.after == After::StreamEnd {
            return self.src.read(buf);
        }
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = (buf.len() as u64).min(self.left) as usize;
        let k = self.src.read(&mut buf[..n])?;
        if k == 0 {
            return Err(truncated());
        }
        self.left -= k as u64;
        Ok(k)
    }
}

#[cfg(test)]
mod tests {
    use super::super::decrypt::tests::pieces;
    use super::*;

    fn header(tag: Tag, len: PacketLength) -> PacketHeader {
        let version = match len {
            PacketLength::Indeterminate => pgp::types::PacketHeaderVersion::Old,
            _ => pgp::types::PacketHeaderVersion::New,
        };
        PacketHeader::from_parts(version, tag, len).unwrap()
    }

    /// `data` as partial chunks of 2^`pows[0]` bytes, then 2^`pows[1]`... (the last power
    /// repeats), closed by a definite length (RFC 9580 §4.2.1.4), then `trailer`. The
    /// first chunk's length is the packet header's, so it is not written here.
    fn chunked(data: &[u8], pows: &[u32], trailer: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        loop {
            let pow = pows[i.min(pows.len() - 1)];
            let size = 1usize << pow;
            if rest.len() < size {
                break;
            }
            if i > 0 {
                out.push(224 + pow as u8);
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size..];
            i += 1;
        }
        PacketLength::Fixed(rest.len() as u32)
            .to_writer_new(&mut out)
            .unwrap();
        out.extend_from_slice(rest);
        out.extend_from_slice(trailer);
        out
    }

    /// Read a whole body both ways (`read` with odd sizes, `fill_buf`/`consume`), and
    /// return it with what the stream holds after it.
    fn read_both(h: PacketHeader, stream: &[u8], step: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut outs = Vec::new();
        for by_fill in [false, true] {
            let mut body = Body::new(h, pieces(stream, &[step])).unwrap();
            let mut got = Vec::new();
            if by_fill {
                loop {
                    let b = body.fill_buf().unwrap();
                    if b.is_empty() {
                        break;
                    }
                    let n = b.len().min(777);
                    got.extend_from_slice(&b[..n]);
                    body.consume(n);
                }
            } else {
                let mut buf = [0u8; 1000];
                loop {
                    let n = body.read(&mut buf[..333]).unwrap();
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            let mut after = Vec::new();
            body.into_inner().read_to_end(&mut after).unwrap();
            outs.push((got, after));
        }
        outs
    }

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn partial_chunks_come_out_whole_and_leave_the_next_packet() {
        // First chunk 512, then 1024s, a last definite chunk of 300; and the case of an
        // empty last chunk (the data a whole number of chunks).
        for (len, pows) in [(512 + 3 * 1024 + 300, &[9, 10][..]), (512 + 1024, &[9, 10])] {
            let d = data(len);
            let trailer = b"\xc2next packet";
            let s = chunked(&d, pows, trailer);
            let h = header(Tag::LiteralData, PacketLength::Partial(512));
            for step in [1, 5, 512, 4096] {
                for (got, after) in read_both(h, &s, step) {
                    assert_eq!(got, d, "step {step}");
                    assert_eq!(after, trailer, "step {step}");
                }
            }
        }
    }

    #[test]
    fn definite_and_indeterminate_lengths() {
        let d = data(5000);
        let mut s = d.clone();
        s.extend_from_slice(b"after");
        let h = header(Tag::LiteralData, PacketLength::Fixed(5000));
        for (got, after) in read_both(h, &s, 97) {
            assert_eq!(got, d);
            assert_eq!(after, b"after");
        }
        let h = header(Tag::CompressedData, PacketLength::Indeterminate);
        for (got, after) in read_both(h, &s, 97) {
            assert_eq!(got, s);
            assert!(after.is_empty());
        }
    }

    #[test]
    fn a_body_cut_short_is_an_error_not_a_short_body() {
        let d = data(4000);
        let whole = chunked(&d, &[9], b"");
        // Cut inside a chunk, right after a chunk (before the next length), and inside
        // the last definite chunk.
        for cut in [100, 512, 513, whole.len() - 1] {
            let h = header(Tag::SymEncryptedProtectedData, PacketLength::Partial(512));
            for by_fill in [false, true] {
                let mut body = Body::new(h, pieces(&whole[..cut], &[64])).unwrap();
                let err = loop {
                    let r = if by_fill {
                        body.fill_buf().map(|b| b.len())
                    } else {
                        body.read(&mut [0u8; 100])
                    };
                    match r {
                        Ok(0) => panic!("cut at {cut}: ended without an error"),
                        Ok(n) if by_fill => body.consume(n),
                        Ok(_) => {}
                        Err(e) => break e,
                    }
                };
                assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
            }
        }
        let h = header(Tag::LiteralData, PacketLength::Fixed(10));
        let mut body = Body::new(h, &b"short"[..]).unwrap();
        let mut v = Vec::new();
        let e = body.read_to_end(&mut v).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn partial_lengths_outside_the_rules_are_refused() {
        // Not a data packet.
        let h = header(Tag::Signature, PacketLength::Partial(1024));
        assert!(Body::new(h, &b""[..]).is_err());
        // A first chunk under 512 bytes.
        let h = header(Tag::LiteralData, PacketLength::Partial(256));
        assert!(Body::new(h, &b""[..]).is_err());
        // Every data packet may use them.
        for tag in [
            Tag::LiteralData,
            Tag::CompressedData,
            Tag::SymEncryptedData,
            Tag::SymEncryptedProtectedData,
            Tag::GnupgAeadData,
        ] {
            assert!(Body::new(header(tag, PacketLength::Partial(512)), &b""[..]).is_ok());
        }
    }
}
