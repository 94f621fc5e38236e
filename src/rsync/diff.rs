//! The delta generator (the rdiff `delta` step): `DeltaReader` pulls the new file through a
//! bounded window, matches blocks of the old file's signature, and yields COPY and LITERAL
//! commands through `Read`, optionally signing the new file on the way.

use super::*;

/// Width class of a COPY field: 0..=3 for 1, 2, 4, 8 bytes.
pub(super) fn width_class(v: u64) -> u8 {
    if v <= 0xff {
        0
    } else if v <= 0xffff {
        1
    } else if v <= 0xffff_ffff {
        2
    } else {
        3
    }
}

pub(super) fn put_uint(out: &mut Vec<u8>, v: u64, class: u8) {
    match class {
        0 => out.push(v as u8),
        1 => out.extend_from_slice(&(v as u16).to_be_bytes()),
        2 => out.extend_from_slice(&(v as u32).to_be_bytes()),
        _ => out.extend_from_slice(&v.to_be_bytes()),
    }
}

/// Emits LITERAL's command bytes (not the data) in librsync's shortest form.
pub(super) fn put_literal_header(out: &mut Vec<u8>, len: u64) {
    if (1..=64).contains(&len) {
        out.push(OP_LITERAL_1 + (len - 1) as u8);
    } else {
        let class = width_class(len);
        out.push(OP_LITERAL_N1 + class);
        put_uint(out, len, class);
    }
}

pub(super) fn put_copy(out: &mut Vec<u8>, (offset, len): (u64, u64)) {
    let (oc, lc) = (width_class(offset), width_class(len));
    out.push(OP_COPY_N1_N1 + 4 * oc + lc);
    put_uint(out, offset, oc);
    put_uint(out, len, lc);
}

/// Pull-based delta generator: reads the NEW file from `new` and yields delta
/// bytes through [`Read`].
///
/// Memory: the signature index (borrowed) plus a window buffer of
/// `2 * (block_len + 64 KiB)` and an output queue of about 128 KiB. Unmatched
/// data is emitted as LITERAL commands of at most 64 KiB; consecutive matching
/// blocks are merged into one COPY. The output depends only on the data, not
/// on how `new` chunks its reads or how the caller sizes its buffers.
///
/// Cost: one rollsum update and one bitset probe per byte of unmatched data;
/// MD4 only on weak-sum hits, and once per block in unchanged stretches,
/// where the block following the previous match is checked by strong sum
/// first (skipping the weak sum; a false match there needs a 64-bit MD4-prefix
/// collision with that single block).
///
/// Errors from `new` are passed through `read`; the generator's state stays
/// consistent, so a caller may retry after a transient error.
pub struct DeltaReader<'s, R: Read> {
    pub(super) sig: &'s Signature,
    pub(super) inner: R,
    /// Window length: the block length, or 0 when the signature is empty
    /// (then nothing can match and the data is passed through as literals).
    pub(super) bl: usize,
    /// Fixed-size window buffer; `buf[..end]` holds data read from `inner`.
    pub(super) buf: Vec<u8>,
    pub(super) end: usize,
    /// Start of the window being matched.
    pub(super) pos: usize,
    /// Start of the pending (not yet emitted) literal; `lit_start <= pos` and
    /// `pos - lit_start <= MAX_LITERAL`. Bytes before it may be discarded.
    pub(super) lit_start: usize,
    pub(super) eof: bool,
    /// Rolling sums (offsets included) of `buf[pos..pos + bl]`, if `have_sum`.
    pub(super) s1: u32,
    pub(super) s2: u32,
    pub(super) have_sum: bool,
    /// The window at `pos` was already looked up and did not match.
    pub(super) checked: bool,
    /// COPY held back so the next match can extend it.
    pub(super) pending: Option<(u64, u64)>,
    /// Block following the last match: preferred among identical candidates.
    pub(super) next_block: Option<u32>,
    pub(super) out: Vec<u8>,
    pub(super) out_pos: usize,
    pub(super) done: bool,
    /// The new file's signature, fed every byte once the matcher is past it.
    pub(super) new_sig: Option<&'s mut SignatureBuilder>,
    /// Offset in the new file of `buf[0]`, and how much of the file `new_sig` has seen.
    pub(super) base: u64,
    pub(super) fed: u64,
    /// MD4s of the windows at `spec_at`, `spec_at + bl`, ... (the last `spec_left` of
    /// `spec`), computed four at a time on the bet that an unchanged stretch goes on.
    pub(super) spec: [[u8; 16]; 4],
    pub(super) spec_at: u64,
    pub(super) spec_left: usize,
}

impl<'s, R: Read> DeltaReader<'s, R> {
    /// Prepares a delta of `new` against the file `sig` describes. Nothing is
    /// read until the first `read` call.
    pub fn new(sig: &'s Signature, new: R) -> Self {
        let bl = if sig.block_count() == 0 {
            0
        } else {
            sig.block_len() as usize
        };
        let mut out = Vec::with_capacity(OUT_TARGET + MAX_LITERAL + 64);
        out.extend_from_slice(&DELTA_MAGIC.to_be_bytes());
        DeltaReader {
            sig,
            inner: new,
            bl,
            // Room for the live region (<= MAX_LITERAL + bl) plus a read of at
            // least as much, so compaction copies at most as much as is read.
            buf: vec![0; 2 * (MAX_LITERAL + bl)],
            end: 0,
            pos: 0,
            lit_start: 0,
            eof: false,
            s1: 0,
            s2: 0,
            have_sum: false,
            checked: false,
            pending: None,
            next_block: None,
            out,
            out_pos: 0,
            done: false,
            new_sig: None,
            base: 0,
            fed: 0,
            spec: [[0; 16]; 4],
            spec_at: 0,
            spec_left: 0,
        }
    }

    /// The MD4 of the window at `pos` when trying the block after a match. In an
    /// unchanged stretch the next three windows will be asked for next, so they are
    /// hashed together with this one (md4x4); a change wastes at most three.
    pub(super) fn window_digest(&mut self) -> io::Result<[u8; 16]> {
        let bl = self.bl;
        let at = self.base + self.pos as u64;
        if self.spec_left > 0 && self.spec_at == at {
            let d = self.spec[4 - self.spec_left];
            self.spec_left -= 1;
            self.spec_at += bl as u64;
            return Ok(d);
        }
        if self.end - self.pos < 4 * bl && !self.eof {
            self.refill()?;
        }
        let (pos, at) = (self.pos, self.base + self.pos as u64);
        if self.end - pos < 4 * bl {
            return Ok(Md4::digest(&self.buf[pos..pos + bl]).into());
        }
        let w = &self.buf[pos..pos + 4 * bl];
        self.spec = crate::rsync::md4x4::digest4(std::array::from_fn(|i| &w[i * bl..(i + 1) * bl]));
        self.spec_left = 3;
        self.spec_at = at + bl as u64;
        Ok(self.spec[0])
    }

    /// Also signs the new file, in `builder`, as the delta goes. A block that matches the
    /// old file where the new signature has a block boundary, with the same block length
    /// and strong sum length, takes the old signature's sums instead of being summed
    /// again: for a file that mostly did not change, that halves the MD4 work (the match
    /// itself already computed that block's MD4). The result is byte-identical to
    /// signing the file on its own.
    pub fn with_signature(mut self, builder: &'s mut SignatureBuilder) -> Self {
        self.new_sig = Some(builder);
        self
    }

    /// Feeds `new_sig` the bytes before `buf[upto]` it has not seen.
    pub(super) fn feed_to(&mut self, upto: usize) {
        if let Some(b) = self.new_sig.as_deref_mut() {
            let from = (self.fed - self.base) as usize;
            if upto > from {
                b.update(&self.buf[from..upto]);
                self.fed = self.base + upto as u64;
            }
        }
    }

    /// Returns the reader of the new file.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Reads more of the new file, first sliding the live region
    /// (`lit_start..end`) to the front when the tail has little room. Reads
    /// until at least `MAX_LITERAL + bl` fresh bytes or EOF, which keeps the
    /// compaction cost at most one copy per byte even for readers that return
    /// tiny chunks.
    pub(super) fn refill(&mut self) -> io::Result<()> {
        let chunk = MAX_LITERAL + self.bl;
        if self.buf.len() - self.end < chunk && self.lit_start > 0 {
            // What is dropped from the front was matched or emitted: sign it first.
            self.feed_to(self.lit_start);
            self.base += self.lit_start as u64;
            self.buf.copy_within(self.lit_start..self.end, 0);
            self.end -= self.lit_start;
            self.pos -= self.lit_start;
            self.lit_start = 0;
        }
        let target = (self.end + chunk).min(self.buf.len());
        while self.end < target {
            match self.inner.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                // min() guards against a reader that misreports its count.
                Ok(n) => self.end += n.min(self.buf.len() - self.end),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Emits `buf[lit_start..upto]` as LITERAL commands (after the pending
    /// COPY, which precedes it in the new file).
    pub(super) fn flush_literal(&mut self, upto: usize) {
        if self.lit_start >= upto {
            return;
        }
        if let Some(copy) = self.pending.take() {
            put_copy(&mut self.out, copy);
        }
        while self.lit_start < upto {
            let n = (upto - self.lit_start).min(MAX_LITERAL);
            put_literal_header(&mut self.out, n as u64);
            self.out
                .extend_from_slice(&self.buf[self.lit_start..self.lit_start + n]);
            self.lit_start += n;
        }
    }

    /// Records that `buf[p..p + len]` equals block `block` of the old file.
    pub(super) fn take_match(&mut self, p: usize, block: u32, len: usize) {
        self.flush_literal(p);
        self.feed_to(p);
        let sig = self.sig;
        if let Some(b) = self.new_sig.as_deref_mut() {
            if b.at_block_boundary()
                && len == b.block_len as usize
                && sig.block_len == b.block_len
                && sig.strong_len == STRONG_LEN as usize
            {
                b.known_block(sig.weak[block as usize], sig.strong_of(block));
                self.fed += len as u64;
            }
        }
        self.feed_to(p + len);
        let offset = u64::from(block) * u64::from(self.sig.block_len());
        let len64 = len as u64;
        self.pending = match self.pending {
            Some((o, l)) if o.checked_add(l) == Some(offset) => Some((o, l + len64)),
            Some(prev) => {
                put_copy(&mut self.out, prev);
                Some((offset, len64))
            }
            None => Some((offset, len64)),
        };
        self.next_block = block.checked_add(1);
        self.pos = p + len;
        self.lit_start = self.pos;
        self.have_sum = false;
        self.checked = false;
    }

    /// Rolls the window forward up to `steps` bytes (all of which are in the
    /// buffer), stopping at the first matching block. This is the hot loop:
    /// O(1) rollsum update and one bitset probe per byte.
    pub(super) fn scan(&mut self, steps: usize) {
        let bl = self.bl;
        let sig = self.sig;
        let start = self.pos;
        let blw = bl as u32;
        let bl_offset = blw.wrapping_mul(CHAR_OFFSET);
        let (mut s1, mut s2) = (self.s1, self.s2);
        let mut found = None;
        let outgoing = &self.buf[start..start + steps];
        let incoming = &self.buf[start + bl..start + bl + steps];
        for (k, (&o, &i)) in outgoing.iter().zip(incoming).enumerate() {
            (s1, s2) = rotate(s1, s2, blw, bl_offset, o, i);
            let weak = pack(s1, s2);
            if sig.maybe_has(weak) {
                let p = start + k + 1;
                if let Some(block) = sig.find_block(weak, &self.buf[p..p + bl], self.next_block) {
                    found = Some((p, block));
                    break;
                }
            }
        }
        self.s1 = s1;
        self.s2 = s2;
        match found {
            Some((p, block)) => self.take_match(p, block, bl),
            None => {
                self.pos = start + steps;
                self.checked = true;
            }
        }
    }

    /// End of input: tries the shrinking windows `[p, end)` for `p >= start`
    /// against the signature's last block (the only one that may be short,
    /// so the only one a window shorter than `block_len` can equal), then
    /// emits the remaining literal, the pending COPY and END.
    pub(super) fn finish(&mut self, start: usize) {
        let end = self.end;
        if let Some(last) = self.sig.block_count().checked_sub(1) {
            let last_weak = self.sig.weak[last];
            let (a, b) = raw_sums(0, 0, &self.buf[start..end]);
            let mut n = (end - start) as u64;
            let (mut s1, mut s2) = add_offsets(a, b, n);
            let mut p = start;
            while p < end {
                if pack(s1, s2) == last_weak
                    && self.sig.strong_matches(last as u32, &self.buf[p..end])
                {
                    self.take_match(p, last as u32, end - p);
                    break;
                }
                (s1, s2) = rollout(s1, s2, n as u32, self.buf[p]);
                n -= 1;
                p += 1;
            }
        }
        self.flush_literal(end);
        self.feed_to(end);
        if let Some(copy) = self.pending.take() {
            put_copy(&mut self.out, copy);
        }
        self.out.push(OP_END);
        self.pos = end;
        self.done = true;
    }

    /// Runs the matcher until a batch of output is queued or the delta ends.
    pub(super) fn produce(&mut self) -> io::Result<()> {
        while !self.done && self.out.len() < OUT_TARGET {
            if self.bl == 0 {
                // Empty signature: everything is literal. Emit only whole
                // MAX_LITERAL pieces before EOF so that command boundaries do
                // not depend on how `inner` chunks its reads.
                if self.pos < self.end {
                    self.pos = self.end;
                    let whole = (self.pos - self.lit_start) / MAX_LITERAL * MAX_LITERAL;
                    self.flush_literal(self.lit_start + whole);
                } else if self.eof {
                    self.finish(self.end);
                } else {
                    self.refill()?;
                }
                continue;
            }
            if self.end - self.pos < self.bl {
                if self.eof {
                    self.finish(self.pos);
                } else {
                    self.refill()?;
                }
                continue;
            }
            if !self.have_sum {
                // Right after a match, try the old file's next block first,
                // by strong sum alone: in unchanged stretches this skips the
                // weak sum (a quarter of the cost), and a failed try costs one
                // MD4 per run of matches. Without the weak check a false match
                // needs a 64-bit strong sum collision with that one block.
                if let (true, Some(next)) = (self.pos == self.lit_start, self.next_block) {
                    if (next as usize) < self.sig.block_count() {
                        let digest = self.window_digest()?;
                        if digest[..self.sig.strong_len] == *self.sig.strong_of(next) {
                            self.take_match(self.pos, next, self.bl);
                            continue;
                        }
                    }
                }
                let window = &self.buf[self.pos..self.pos + self.bl];
                let (a, b) = raw_sums(0, 0, window);
                (self.s1, self.s2) = add_offsets(a, b, self.bl as u64);
                self.have_sum = true;
                self.checked = false;
            }
            if !self.checked {
                let weak = pack(self.s1, self.s2);
                if self.sig.maybe_has(weak) {
                    let window = &self.buf[self.pos..self.pos + self.bl];
                    if let Some(block) = self.sig.find_block(weak, window, self.next_block) {
                        self.take_match(self.pos, block, self.bl);
                        continue;
                    }
                }
                self.checked = true;
            }
            if self.pos - self.lit_start >= MAX_LITERAL {
                self.flush_literal(self.pos);
            }
            let room = self.end - self.bl - self.pos;
            if room == 0 {
                if self.eof {
                    // The full window at pos was checked; continue with
                    // the shorter ones.
                    self.finish(self.pos + 1);
                } else {
                    self.refill()?;
                }
                continue;
            }
            self.scan(room.min(MAX_LITERAL - (self.pos - self.lit_start)));
        }
        Ok(())
    }
}

impl<R: Read> Read for DeltaReader<'_, R> {
    fn read(&mut self, dst: &mut [u8]) -> io::Result<usize> {
        if dst.is_empty() {
            return Ok(0);
        }
        while self.out_pos == self.out.len() {
            if self.done {
                return Ok(0);
            }
            self.out.clear();
            self.out_pos = 0;
            self.produce()?;
        }
        let n = dst.len().min(self.out.len() - self.out_pos);
        dst[..n].copy_from_slice(&self.out[self.out_pos..self.out_pos + n]);
        self.out_pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------
// Patching
// ---------------------------------------------------------------------------
