//! Sets, chains and signature chains found in a target listing (§6.6), and the choice of
//! what a restore at a given time reads (§7.1).

use crate::archive::names::{FileKind, ParsedName, Prefixes, Suffix};
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The output of one backup run: a full or an incremental.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupSet {
    pub full: bool,
    /// For a full set, start == end == its time.
    pub start: i64,
    pub end: i64,
    pub volumes: BTreeMap<u32, String>,
    pub manifest: Option<String>,
    pub suffix: Suffix,
}

impl BackupSet {
    /// Every remote file of the set, the manifest first (so an interrupted delete leaves an
    /// incomplete set, never a broken complete one, §7.5), then volumes from the highest.
    pub fn files_for_delete(&self) -> Vec<String> {
        let mut v: Vec<String> = self.manifest.iter().cloned().collect();
        v.extend(self.volumes.values().rev().cloned());
        v
    }

    pub fn manifest_kind(&self) -> FileKind {
        if self.full {
            FileKind::FullManifest { time: self.end }
        } else {
            FileKind::IncManifest {
                start: self.start,
                end: self.end,
            }
        }
    }

    pub fn type_name(&self) -> &'static str {
        if self.full {
            "full"
        } else {
            "incremental"
        }
    }
}

/// A full set and the incrementals that build on it, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chain {
    pub full: BackupSet,
    pub incs: Vec<BackupSet>,
}

impl Chain {
    /// The chain starts at its full set's time (a full set's start and end are equal).
    #[allow(clippy::misnamed_getters)]
    pub fn start(&self) -> i64 {
        self.full.end
    }

    pub fn end(&self) -> i64 {
        self.incs.last().map(|s| s.end).unwrap_or(self.full.end)
    }

    pub fn sets(&self) -> impl Iterator<Item = &BackupSet> {
        std::iter::once(&self.full).chain(self.incs.iter())
    }

    /// The sets a restore at `t` applies: the full and every incremental ending by `t`.
    pub fn sets_until(&self, t: i64) -> Vec<&BackupSet> {
        self.sets().filter(|s| s.full || s.end <= t).collect()
    }
}

/// A full signature file and the new-signature files that extend it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigChain {
    pub full_time: i64,
    pub full: String,
    /// (start, end, name) in order.
    pub news: Vec<(i64, i64, String)>,
}

impl SigChain {
    pub fn end(&self) -> i64 {
        self.news.last().map(|n| n.1).unwrap_or(self.full_time)
    }

    pub fn names(&self) -> Vec<String> {
        std::iter::once(self.full.clone())
            .chain(self.news.iter().map(|n| n.2.clone()))
            .collect()
    }
}

/// Everything recognised in a listing.
#[derive(Clone, Debug, Default)]
pub struct Collection {
    /// Complete chains, oldest first.
    pub chains: Vec<Chain>,
    /// Sets without a manifest (an interrupted run): ignored for restore, `cleanup` removes them.
    pub incomplete: Vec<BackupSet>,
    /// Complete incrementals that extend no chain.
    pub orphaned: Vec<BackupSet>,
    pub sig_chains: Vec<SigChain>,
    pub orphaned_sigs: Vec<String>,
    /// The orphaned new-signature files with their times (for set-by-set matching).
    orphaned_sig_entries: Vec<(i64, i64, String)>,
    /// Names in the listing that are not duplicity files (left alone).
    pub foreign: usize,
}

impl Collection {
    /// Group a listing into sets and chains as stock does.
    pub fn from_names(names: &[String], prefixes: &Prefixes) -> Collection {
        let mut sets: BTreeMap<(bool, i64, i64), BackupSet> = BTreeMap::new();
        let mut fulls_sig: Vec<(i64, String)> = Vec::new();
        let mut news_sig: Vec<(i64, i64, String)> = Vec::new();
        let mut c = Collection::default();
        for name in names {
            let Some(ParsedName {
                kind,
                suffix,
                partial,
            }) = prefixes.parse(name)
            else {
                c.foreign += 1;
                continue;
            };
            if partial {
                // `.part` names live only in a local cache; on a target they are strangers.
                c.foreign += 1;
                continue;
            }
            match kind {
                FileKind::FullSignatures { time } => fulls_sig.push((time, name.clone())),
                FileKind::NewSignatures { start, end } => news_sig.push((start, end, name.clone())),
                _ => {
                    let (full, start, end) = kind.set_key();
                    let set = sets.entry((full, start, end)).or_insert_with(|| BackupSet {
                        full,
                        start,
                        end,
                        volumes: BTreeMap::new(),
                        manifest: None,
                        suffix,
                    });
                    match kind {
                        FileKind::FullVolume { vol, .. } | FileKind::IncVolume { vol, .. } => {
                            set.volumes.insert(vol, name.clone());
                            set.suffix = suffix;
                        }
                        _ => set.manifest = Some(name.clone()),
                    }
                }
            }
        }
        let (complete, incomplete): (Vec<BackupSet>, Vec<BackupSet>) =
            sets.into_values().partition(|s| s.manifest.is_some());
        c.incomplete = incomplete;
        let (mut fulls, mut incs): (Vec<BackupSet>, Vec<BackupSet>) =
            complete.into_iter().partition(|s| s.full);
        fulls.sort_by_key(|s| s.end);
        incs.sort_by_key(|s| (s.end, s.start));
        let mut chains: Vec<Chain> = fulls
            .into_iter()
            .map(|f| Chain {
                full: f,
                incs: Vec::new(),
            })
            .collect();
        for inc in incs {
            if let Some(ch) = chains.iter_mut().find(|ch| ch.end() == inc.start) {
                ch.incs.push(inc);
                continue;
            }
            // A longer incremental from the same start replaces the last one (stock).
            if let Some(ch) = chains.iter_mut().find(|ch| {
                ch.incs
                    .last()
                    .is_some_and(|l| l.start == inc.start && inc.end > l.end)
            }) {
                if let Some(old) = ch.incs.pop() {
                    c.orphaned.push(old);
                }
                ch.incs.push(inc);
                continue;
            }
            c.orphaned.push(inc);
        }
        chains.sort_by_key(|ch| ch.end());
        c.chains = chains;

        fulls_sig.sort();
        news_sig.sort();
        let mut sig_chains: Vec<SigChain> = fulls_sig
            .into_iter()
            .map(|(t, n)| SigChain {
                full_time: t,
                full: n,
                news: Vec::new(),
            })
            .collect();
        for (s, e, n) in news_sig {
            match sig_chains.iter_mut().find(|ch| ch.end() == s) {
                Some(ch) => ch.news.push((s, e, n)),
                None => {
                    c.orphaned_sigs.push(n.clone());
                    c.orphaned_sig_entries.push((s, e, n));
                }
            }
        }
        sig_chains.sort_by_key(|ch| ch.end());
        c.sig_chains = sig_chains;
        c
    }

    /// The newest chain.
    pub fn latest_chain(&self) -> Option<&Chain> {
        self.chains.last()
    }

    /// The signature files of `chain`: the full signatures of its full set and the new
    /// signatures of each of its incrementals, in order; `None` when any is missing.
    ///
    /// Matching set by set (not by the signature chain's end time, as stock does) means a
    /// run that died between uploading its signatures and its manifest leaves a stray
    /// signature file that is simply ignored, instead of forcing a new full backup.
    pub fn sig_chain_for(&self, chain: &Chain) -> Option<SigChain> {
        let sc = self
            .sig_chains
            .iter()
            .rev()
            .find(|s| s.full_time == chain.start())?;
        let mut news = Vec::new();
        for inc in &chain.incs {
            let n = self
                .sig_chains
                .iter()
                .filter(|s| s.full_time == chain.start())
                .flat_map(|s| s.news.iter())
                .chain(self.orphaned_sig_entries.iter())
                .find(|(s, e, _)| *s == inc.start && *e == inc.end)?;
            news.push(n.clone());
        }
        Some(SigChain {
            full_time: sc.full_time,
            full: sc.full.clone(),
            news,
        })
    }

    /// Signature files in `names` that no complete chain uses: left by runs that died
    /// before their manifest, or by sets deleted since. `cleanup` removes them.
    pub fn unused_signatures(&self, names: &[String], prefixes: &Prefixes) -> Vec<String> {
        // Judged file by file, not through `sig_chain_for`: a chain that lost one signature
        // file keeps the others (they still serve restores of stock's list-current-files).
        let used = |kind: &FileKind| {
            self.chains.iter().any(|c| match *kind {
                FileKind::FullSignatures { time } => c.start() == time,
                FileKind::NewSignatures { start, end } => {
                    c.incs.iter().any(|s| s.start == start && s.end == end)
                }
                _ => true,
            })
        };
        names
            .iter()
            .filter(|n| {
                prefixes
                    .parse(n)
                    .is_some_and(|p| !p.partial && p.kind.is_signature() && !used(&p.kind))
            })
            .cloned()
            .collect()
    }

    /// The chain a restore at `t` uses (§7.1): the one covering `t`, else the newest that
    /// ends before `t`; `None` when `t` is before every chain. (Stock falls back to the
    /// oldest chain then, so `--time` before the first backup restores a state that did not
    /// exist yet at `t` and says nothing: see [`Collection::chain_for`].)
    pub fn chain_at(&self, t: i64) -> Option<&Chain> {
        let covering: Vec<&Chain> = self
            .chains
            .iter()
            .filter(|c| c.start() <= t && t <= c.end())
            .collect();
        if let Some(c) = covering.last() {
            return Some(c);
        }
        self.chains.iter().rev().find(|c| c.end() < t)
    }

    /// [`Collection::chain_at`] for the verbs that read a state (restore, verify,
    /// list-current-files), with the error a user meets: no backup at all in `target` (a
    /// URL fit for messages), or `t` before the oldest backup, naming its time so the
    /// next attempt can ask for it.
    pub fn chain_for(&self, t: i64, target: &str) -> Result<&Chain> {
        if let Some(c) = self.chain_at(t) {
            return Ok(c);
        }
        let rfc3339 = crate::archive::time::rfc3339;
        Err(Error::NothingToRestore(match self.chains.first() {
            None => format!("no complete backup in {target}"),
            Some(oldest) => format!(
                "no backup in {target} as of {}: the oldest set is the full of {}; give \
                 --time {} or later",
                rfc3339(t),
                rfc3339(oldest.start()),
                rfc3339(oldest.start())
            ),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::names::{FileKind as K, Prefixes, Suffix as S};

    fn n(k: K, s: S) -> String {
        Prefixes::default().name(&k, s)
    }

    fn listing() -> Vec<String> {
        vec![
            n(K::FullVolume { time: 100, vol: 1 }, S::Gpg),
            n(K::FullVolume { time: 100, vol: 2 }, S::Gpg),
            n(K::FullManifest { time: 100 }, S::Gpg),
            n(K::FullSignatures { time: 100 }, S::Gpg),
            n(
                K::IncVolume {
                    start: 100,
                    end: 200,
                    vol: 1,
                },
                S::Gpg,
            ),
            n(
                K::IncManifest {
                    start: 100,
                    end: 200,
                },
                S::Gpg,
            ),
            n(
                K::NewSignatures {
                    start: 100,
                    end: 200,
                },
                S::Gpg,
            ),
            // interrupted: volume without manifest
            n(
                K::IncVolume {
                    start: 200,
                    end: 300,
                    vol: 1,
                },
                S::Gpg,
            ),
            // second chain
            n(K::FullVolume { time: 400, vol: 1 }, S::Gpg),
            n(K::FullManifest { time: 400 }, S::Gpg),
            n(K::FullSignatures { time: 400 }, S::Gpg),
            // orphan inc
            n(
                K::IncVolume {
                    start: 250,
                    end: 260,
                    vol: 1,
                },
                S::Gpg,
            ),
            n(
                K::IncManifest {
                    start: 250,
                    end: 260,
                },
                S::Gpg,
            ),
            "lockfile".into(),
            "duplicity-full.19700101T000140Z.vol1.difftar.gpg.par2".into(),
        ]
    }

    #[test]
    fn chains_and_strays() {
        let c = Collection::from_names(&listing(), &Prefixes::default());
        assert_eq!(c.chains.len(), 2);
        assert_eq!(c.chains[0].start(), 100);
        assert_eq!(c.chains[0].end(), 200);
        assert_eq!(c.chains[0].full.volumes.len(), 2);
        assert_eq!(c.chains[1].end(), 400);
        assert_eq!(c.incomplete.len(), 1);
        assert_eq!(c.orphaned.len(), 1);
        assert_eq!(c.foreign, 2);
        assert_eq!(c.sig_chains.len(), 2);
        assert_eq!(c.sig_chain_for(&c.chains[0]).unwrap().news.len(), 1);
        assert!(c.sig_chain_for(&c.chains[1]).is_some());
    }

    #[test]
    fn stray_signatures_of_an_unfinished_run_do_not_break_the_chain() {
        let mut names = listing();
        // a run that uploaded its signatures but died before its manifest
        names.push(n(
            K::NewSignatures {
                start: 200,
                end: 300,
            },
            S::Gpg,
        ));
        let c = Collection::from_names(&names, &Prefixes::default());
        let sc = c.sig_chain_for(&c.chains[0]).unwrap();
        assert_eq!(sc.news.len(), 1);
        assert_eq!(sc.news[0].1, 200);
        // and a chain whose incremental lacks its signatures has no signature chain
        let names: Vec<String> = listing()
            .into_iter()
            .filter(|x| !x.contains("new-signatures"))
            .collect();
        let c = Collection::from_names(&names, &Prefixes::default());
        assert!(c.sig_chain_for(&c.chains[0]).is_none());
    }

    #[test]
    fn restore_chain_choice() {
        let c = Collection::from_names(&listing(), &Prefixes::default());
        assert_eq!(c.chain_at(150).unwrap().start(), 100);
        assert_eq!(c.chain_at(300).unwrap().start(), 100);
        assert_eq!(c.chain_at(500).unwrap().start(), 400);
        // Before the first backup there is nothing to restore, and the error says since when.
        assert!(c.chain_at(50).is_none());
        let e = c.chain_for(50, "file:///t").unwrap_err();
        assert!(matches!(e, Error::NothingToRestore(_)), "{e}");
        assert!(e.to_string().contains("1970-01-01T00:01:40Z"), "{e}");
        assert_eq!(c.chain_for(100, "file:///t").unwrap().start(), 100);
        let none = Collection::from_names(&[], &Prefixes::default());
        assert!(none
            .chain_for(50, "file:///t")
            .unwrap_err()
            .to_string()
            .contains("no complete backup"));
        let ch = c.chain_at(150).unwrap();
        assert_eq!(ch.sets_until(150).len(), 1);
        assert_eq!(ch.sets_until(200).len(), 2);
    }

    #[test]
    fn delete_order_is_manifest_first() {
        let c = Collection::from_names(&listing(), &Prefixes::default());
        let files = c.chains[0].full.files_for_delete();
        assert!(files[0].contains("manifest"));
        assert!(files[1].contains("vol2"));
    }
}
