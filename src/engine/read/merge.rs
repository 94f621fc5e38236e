//! The k-way merge of a chain's set streams by index (§7.2 step 6): for each path, the
//! members that rebuild it, from its last full copy to its newest delta.

use super::stream::SetStream;
use crate::archive::tar::Header;
use crate::archive::{index_display, Index, MemberKind};
use crate::error::{Error, Result};
use crate::interrupt;

/// The k-way merge of the sets' streams by index: for each path under `prefix`, `entry` gets
/// the streams that hold it, from the last full copy (snapshot) to the newest delta; older
/// members are skipped. Returns whether anything under `prefix` was seen.
pub(crate) fn merge(
    streams: &mut [SetStream],
    prefix: &Index,
    mut entry: impl FnMut(&mut [SetStream], &[usize], &Index) -> Result<()>,
) -> Result<bool> {
    for s in streams.iter_mut() {
        s.advance()?;
    }
    let mut found = false;
    loop {
        interrupt::check()?;
        let Some(min) = streams
            .iter()
            .filter_map(|s| s.head.as_ref().map(|h| h.index.clone()))
            .min()
        else {
            break;
        };
        let holders: Vec<usize> = (0..streams.len())
            .filter(|&i| streams[i].head.as_ref().is_some_and(|h| h.index == min))
            .collect();
        if !min.starts_with(prefix) {
            for &i in &holders {
                streams[i].skip_entry()?;
            }
            continue;
        }
        found = true;
        // Keep entries from the newest backwards up to the first non-diff (§7.2 step 6).
        let mut keep_from = 0;
        for (pos, &i) in holders.iter().enumerate().rev() {
            if streams[i]
                .head
                .as_ref()
                .is_some_and(|h| h.kind != MemberKind::Diff)
            {
                keep_from = pos;
                break;
            }
        }
        for &i in &holders[..keep_from] {
            streams[i].skip_entry()?;
        }
        entry(streams, &holders[keep_from..], &min)?;
    }
    Ok(found)
}

/// The newest member of a merged entry, after the checks restore and verify share: the
/// chain must hold a full copy before any delta, and an entry deleted at this time is
/// skipped (`None`). Returns the newest member's volume name and header.
pub(crate) fn live_entry(
    streams: &mut [SetStream],
    holders: &[usize],
    index: &Index,
) -> Result<Option<(String, Header)>> {
    let (Some(&first), Some(&newest)) = (holders.first(), holders.last()) else {
        return Ok(None);
    };
    let object = streams[newest].object.clone();
    let (base_kind, newest_kind, header) = match (&streams[first].head, &streams[newest].head) {
        (Some(b), Some(n)) => (b.kind, n.kind, n.header.clone()),
        _ => return Err(Error::Internal("merge head vanished".into())),
    };
    if base_kind == MemberKind::Diff {
        return Err(Error::integrity(
            &object,
            format!(
                "{}: a delta without a full copy before it in the chain",
                index_display(index)
            ),
        ));
    }
    if newest_kind == MemberKind::Deleted {
        for &i in holders {
            streams[i].skip_entry()?;
        }
        return Ok(None);
    }
    Ok(Some((object, header)))
}
