//! `list-current-files`: the tree as it was at a time, from the signature chain alone (as
//! stock does, §7.4): no volume is downloaded. Streams one line per entry to a writer, so a
//! million-file listing costs no more memory than a ten-file one.

use super::Listing;
use crate::archive::sigtar::SigEntries;
use crate::archive::tar::{self, Header};
use crate::archive::time::{asctime, rfc3339};
use crate::archive::{index_display, MemberKind};
use crate::backend::Access;
use crate::config::Common;
use crate::error::{Error, Result};
use crate::log;
use serde_json::json;
use std::io::Write;

/// What was listed.
#[derive(Default)]
pub struct Summary {
    pub entries: u64,
    pub set_time: i64,
}

impl Summary {
    pub fn to_fields(&self) -> Vec<(&'static str, serde_json::Value)> {
        vec![
            ("entries", json!(self.entries)),
            ("set_time", json!(rfc3339(self.set_time))),
        ]
    }
}

/// A tar type as a word for JSON output.
pub fn type_name(h: &Header) -> &'static str {
    match h.typ {
        tar::DIRTYPE => "dir",
        tar::SYMTYPE => "symlink",
        tar::FIFOTYPE => "fifo",
        tar::CHRTYPE => "chr",
        tar::BLKTYPE => "blk",
        _ => "file",
    }
}

/// List the chain's view at `time` (default: now) to `out`: text lines as stock prints them
/// (`asctime(mtime) path`), or JSON lines with `json`.
pub fn run(common: &Common, time: Option<i64>, json: bool, out: &mut dyn Write) -> Result<Summary> {
    let l = Listing::open(common, Access::Read)?;
    let md = l.metadata(common)?;
    let t = time.unwrap_or(common.now);
    let chain = l.coll.chain_for(t, &log::redact(&common.url))?;
    let sc = l.coll.sig_chain_for(chain).ok_or_else(|| {
        Error::NoChain(format!(
            "the chain started {} has no complete signature files; `verify` or `restore` read the volumes instead",
            rfc3339(chain.start())
        ))
    })?;
    let sets = chain.sets_until(t);
    let set_time = sets.last().map(|s| s.end).unwrap_or(t);
    // Only the signature files of the sets up to `t`: the full one and one per incremental.
    let mut names = vec![sc.full.clone()];
    names.extend(
        sc.news
            .iter()
            .filter(|(_, e, _)| *e <= set_time)
            .map(|(_, _, n)| n.clone()),
    );
    let mut streams = Vec::new();
    for n in &names {
        streams.push((n.clone(), md.sigtar(n)?));
    }
    let mut reader = SigEntries::new(streams, true)?;
    let mut summary = Summary {
        entries: 0,
        set_time,
    };
    let write_err = Error::stdout;
    while let Some(e) = reader.next()? {
        crate::interrupt::check()?;
        let path = index_display(&e.index);
        if json {
            let mut v = json!({
                "path": path,
                "type": type_name(&e.header),
                "mtime": rfc3339(e.header.mtime),
                "mode": format!("{:04o}", e.header.mode & 0o7777),
                "uid": e.header.uid,
                "gid": e.header.gid,
            });
            if e.kind == MemberKind::Signature {
                if let Some(size) = e.recorded_size() {
                    v["size"] = json!(size);
                }
            }
            if e.header.typ == tar::SYMTYPE {
                v["target"] = json!(String::from_utf8_lossy(&e.header.linkname));
            }
            writeln!(out, "{v}").map_err(write_err)?;
        } else {
            writeln!(out, "{} {path}", asctime(e.header.mtime)).map_err(write_err)?;
        }
        summary.entries += 1;
    }
    out.flush().map_err(write_err)?;
    Ok(summary)
}
