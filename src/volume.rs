//! Cutting the tar stream of a set into volumes (§2.7), sealing each one (gzip or OpenPGP),
//! hashing what is uploaded, storing it, and writing the manifest records as volumes land.
//!
//! A volume is spooled to a temporary file while it is built: its SHA1 must be known before
//! the manifest record is written, and a retried upload must resend the same bytes.

use crate::cache::{tempfile_in, TempPath};
use crate::config::Common;
use crate::crypto::{SealMode, Sealer};
use crate::error::{Error, Result};
use crate::format::manifest::{self, VolumeInfo};
use crate::format::names::FileKind;
use crate::format::tar::{self, Header};
use crate::format::Index;
use crate::log;
use crate::target::Backend;
use sha1::{Digest, Sha1};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::rc::Rc;
use std::time::Instant;

/// A writer that hashes and counts what passes through it.
pub struct HashCount<W: Write> {
    inner: W,
    sha1: Sha1,
    count: Rc<Cell<u64>>,
}

impl<W: Write> HashCount<W> {
    pub fn new(inner: W) -> Self {
        HashCount {
            inner,
            sha1: Sha1::new(),
            count: Rc::new(Cell::new(0)),
        }
    }

    pub fn counter(&self) -> Rc<Cell<u64>> {
        self.count.clone()
    }

    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex(&self.sha1.finalize()), self.count.get())
    }
}

impl<W: Write> Write for HashCount<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha1.update(&buf[..n]);
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Seal the whole of `src` into a new temporary file; returns (path, sha1, size).
pub fn seal_file(
    src: &mut dyn Read,
    mode: &SealMode,
    common: &Common,
    what: &str,
) -> Result<(TempPath, String, u64)> {
    let path = TempPath::new(&common.tempdir, what)?;
    let f = File::create(&path.0).map_err(|e| Error::io(path.0.display(), e))?;
    let mut sealer = Sealer::new(HashCount::new(BufWriter::with_capacity(1 << 16, f)), mode)
        .map_err(|e| Error::Internal(format!("cannot seal {what}: {e}")))?;
    io::copy(src, &mut sealer).map_err(|e| Error::io(what, e))?;
    let hc = sealer
        .finish()
        .map_err(|e| Error::Internal(format!("cannot seal {what}: {e}")))?;
    let (w, sha1, n) = hc.finish();
    let f = w
        .into_inner()
        .map_err(|e| Error::io(path.0.display(), e.into_error()))?;
    f.sync_all().map_err(|e| Error::io(path.0.display(), e))?;
    Ok((path, sha1, n))
}

/// The manifest of the set being written: volume records go to a spool file as volumes
/// are stored, Filelist lines to another, and `finish` joins them (header, volumes,
/// Filelist), the layout stock writes.
pub struct ManifestWriter {
    volumes: Vec<u8>,
    filelist: BufWriter<File>,
    filelist_count: u64,
    hostname: Vec<u8>,
    localdir: Vec<u8>,
}

impl ManifestWriter {
    pub fn new(common: &Common, hostname: &[u8], localdir: &[u8]) -> Result<Self> {
        Ok(ManifestWriter {
            // Volume records are ~200 bytes each, one per volume: small enough to keep.
            volumes: Vec::new(),
            filelist: BufWriter::new(tempfile_in(&common.tempdir)?),
            filelist_count: 0,
            hostname: hostname.to_vec(),
            localdir: localdir.to_vec(),
        })
    }

    pub fn volume(&mut self, v: &VolumeInfo) {
        // Writing into a Vec cannot fail.
        let _ = v.write_to(&mut self.volumes);
    }

    /// Record a regular file as `new`, `changed` or `deleted` in the Filelist.
    pub fn file(&mut self, kind: &str, index: &Index) -> Result<()> {
        self.filelist_count += 1;
        manifest::write_filelist_line(&mut self.filelist, kind, index)
            .map_err(|e| Error::io("manifest spool", e))
    }

    /// The plaintext manifest, as a rewound temporary file.
    pub fn finish(self, common: &Common) -> Result<File> {
        let err = |e: io::Error| Error::io("manifest spool", e);
        let mut fl = self
            .filelist
            .into_inner()
            .map_err(|e| err(e.into_error()))?;
        fl.seek(io::SeekFrom::Start(0)).map_err(err)?;
        let mut out = tempfile_in(&common.tempdir)?;
        {
            let mut w = BufWriter::new(&mut out);
            manifest::write_header(&mut w, &self.hostname, &self.localdir).map_err(err)?;
            w.write_all(&self.volumes).map_err(err)?;
            writeln!(w, "Filelist {}", self.filelist_count).map_err(err)?;
            io::copy(&mut fl, &mut w).map_err(err)?;
            w.flush().map_err(err)?;
        }
        out.seek(io::SeekFrom::Start(0)).map_err(err)?;
        Ok(out)
    }
}

/// Where a tar block sits, for the manifest's Starting/EndingPath.
#[derive(Clone, Debug)]
pub struct Position {
    pub index: Index,
    /// The multivol chunk number, except on a file's last chunk (§4.1's block rule).
    pub block: Option<u64>,
}

struct OpenVolume {
    sealer: Sealer<HashCount<BufWriter<File>>>,
    path: TempPath,
    out_bytes: Rc<Cell<u64>>,
    plain: u64,
    first: Option<Position>,
    last: Option<Position>,
    started: Instant,
}

/// Statistics of the volumes written.
#[derive(Default, Debug, Clone)]
pub struct VolumeStats {
    pub volumes: u32,
    pub bytes_uploaded: u64,
}

/// Builds and stores the volumes of one set.
pub struct VolumeWriter<'a> {
    backend: &'a dyn Backend,
    common: &'a Common,
    full: bool,
    start: i64,
    end: i64,
    volsize: u64,
    mode: &'a SealMode,
    cur: Option<OpenVolume>,
    pub stats: VolumeStats,
}

/// Room kept free below `--volsize` before a volume is closed: stock's gpg rule (§2.7:
/// 50 KiB + 16 KiB + one 64 KiB block) also covers what the compressor still buffers.
const HEADROOM: u64 = (50 + 16 + 64) * 1024;

impl<'a> VolumeWriter<'a> {
    pub fn new(
        backend: &'a dyn Backend,
        common: &'a Common,
        full: bool,
        start: i64,
        end: i64,
        volsize: u64,
        mode: &'a SealMode,
    ) -> Self {
        VolumeWriter {
            backend,
            common,
            full,
            start,
            end,
            volsize,
            mode,
            cur: None,
            stats: VolumeStats::default(),
        }
    }

    fn kind(&self, vol: u32) -> FileKind {
        if self.full {
            FileKind::FullVolume {
                time: self.end,
                vol,
            }
        } else {
            FileKind::IncVolume {
                start: self.start,
                end: self.end,
                vol,
            }
        }
    }

    fn open(&mut self) -> Result<()> {
        let path = TempPath::new(&self.common.tempdir, "volume")?;
        let f = File::create(&path.0).map_err(|e| Error::io(path.0.display(), e))?;
        let hc = HashCount::new(BufWriter::with_capacity(1 << 16, f));
        let out_bytes = hc.counter();
        let sealer = Sealer::new(hc, self.mode)
            .map_err(|e| Error::Internal(format!("cannot start a volume: {e}")))?;
        self.cur = Some(OpenVolume {
            sealer,
            path,
            out_bytes,
            plain: 0,
            first: None,
            last: None,
            started: Instant::now(),
        });
        Ok(())
    }

    /// Add one tar block: a member header and at most 64 KiB of data. Volumes end only
    /// between blocks.
    pub fn add(
        &mut self,
        header: &Header,
        data: &[u8],
        pos: Position,
        manifest: &mut ManifestWriter,
    ) -> Result<()> {
        if let Some(cur) = &self.cur {
            if cur.first.is_some() && cur.out_bytes.get() + HEADROOM > self.volsize {
                self.close(manifest)?;
            }
        }
        if self.cur.is_none() {
            self.open()?;
        }
        let cur = self
            .cur
            .as_mut()
            .ok_or_else(|| Error::Internal("no open volume".into()))?;
        let enc = tar::encode_header(header);
        let pad = tar::padding(data.len() as u64);
        let err = |e: io::Error| Error::io(cur.path.0.display().to_string(), e);
        cur.sealer.write_all(&enc).map_err(err)?;
        cur.sealer
            .write_all(data)
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        cur.sealer
            .write_all(&[0u8; tar::BLOCK][..pad])
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        cur.plain += (enc.len() + data.len() + pad) as u64;
        if cur.first.is_none() {
            cur.first = Some(pos.clone());
        }
        cur.last = Some(pos);
        Ok(())
    }

    /// Finish, seal, store the current volume and record it in the manifest.
    fn close(&mut self, manifest: &mut ManifestWriter) -> Result<()> {
        let Some(mut cur) = self.cur.take() else {
            return Ok(());
        };
        let footer = tar::footer_len(cur.plain);
        cur.sealer
            .write_all(&vec![0u8; footer])
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        let hc = cur
            .sealer
            .finish()
            .map_err(|e| Error::Internal(format!("cannot finish a volume: {e}")))?;
        let (w, sha1, bytes) = hc.finish();
        let f = w
            .into_inner()
            .map_err(|e| Error::io(cur.path.0.display(), e.into_error()))?;
        f.sync_all()
            .map_err(|e| Error::io(cur.path.0.display(), e))?;
        drop(f);
        self.stats.volumes += 1;
        let num = self.stats.volumes;
        let name = self
            .common
            .prefixes
            .name(&self.kind(num), self.common.crypto.suffix);
        crate::interrupt::check()?;
        self.backend.put(&name, &cur.path.0)?;
        self.stats.bytes_uploaded += bytes;
        let root = Position {
            index: Vec::new(),
            block: None,
        };
        let first = cur.first.unwrap_or_else(|| root.clone());
        let last = cur.last.unwrap_or(root);
        let mut hashes = BTreeMap::new();
        hashes.insert("SHA1".to_string(), sha1.clone());
        manifest.volume(&VolumeInfo {
            num,
            start: first.index,
            start_block: first.block,
            end: last.index,
            end_block: last.block,
            hashes,
        });
        let secs = cur.started.elapsed().as_secs_f64();
        log::info(
            "volume",
            &format!("stored volume {num} ({bytes} bytes)"),
            vec![
                ("number", num.into()),
                ("object", name.into()),
                ("bytes", bytes.into()),
                ("sha1", sha1.into()),
                ("seconds", ((secs * 1000.0).round() / 1000.0).into()),
            ],
        );
        Ok(())
    }

    /// Store the last volume. A set always has at least volume 1, even when empty.
    pub fn finish(mut self, manifest: &mut ManifestWriter) -> Result<VolumeStats> {
        if self.cur.is_none() && self.stats.volumes == 0 {
            self.open()?;
        }
        self.close(manifest)?;
        Ok(self.stats)
    }
}
