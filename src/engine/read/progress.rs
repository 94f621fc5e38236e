//! The progress of a restore or verify (see `log::Progress`): percent and time left by the
//! sealed bytes read of those the sets' volumes hold, ticked between entries and as the
//! entries are read, so that it moves inside a big file too.

use super::stream::SetStream;

/// The progress of a restore or verify: percent and time left by the sealed bytes read
/// of those the sets' volumes hold (from the listing's sizes), ticked between entries and
/// as entries are read. The caller keeps `files` and `fields` current after each entry.
pub(crate) struct ReadProgress {
    progress: crate::log::Progress,
    meters: Vec<std::sync::Arc<std::sync::atomic::AtomicU64>>,
    total: Option<u64>,
    pub(crate) files: u64,
    pub(crate) fields: Vec<(&'static str, serde_json::Value)>,
}

impl ReadProgress {
    /// Attach one to `streams` (before they are read: each still holds all its volumes).
    pub(crate) fn attach(
        streams: &mut [SetStream],
        verb: &'static str,
        interval_secs: u64,
        sizes: &std::collections::HashMap<String, u64>,
    ) -> std::rc::Rc<std::cell::RefCell<ReadProgress>> {
        let total: u64 = streams
            .iter()
            .flat_map(|s| s.volumes.iter())
            .filter_map(|(name, _)| sizes.get(name))
            .sum();
        let p = std::rc::Rc::new(std::cell::RefCell::new(ReadProgress {
            progress: crate::log::Progress::new(verb, interval_secs),
            meters: streams.iter().map(|s| s.sealed_read.clone()).collect(),
            total: (total > 0).then_some(total),
            files: 0,
            fields: Vec::new(),
        }));
        for s in streams.iter_mut() {
            s.progress = Some(p.clone());
        }
        p
    }

    pub(crate) fn tick(&mut self) {
        if !self.progress.due() {
            return;
        }
        let done: u64 = self
            .meters
            .iter()
            .map(|m| m.load(std::sync::atomic::Ordering::Relaxed))
            .sum();
        let mut fields = self.fields.clone();
        fields.push(("bytes_downloaded", serde_json::json!(done)));
        self.progress.update(crate::log::Snapshot {
            files: self.files,
            done,
            total: self.total,
            fields,
        });
    }

    /// Take the live line away (before the summary).
    pub(crate) fn finish(&mut self) {
        self.progress.finish();
    }
}
