//! Remote file names (§1.2–§1.6): what a set's volumes, manifest and signature file are
//! called, and the parser that recognises the names stock duplicity writes, long and short.
//!
//! Unlike stock, the parser accepts only the exact suffix set, so par2 files and other
//! strangers in the container are ignored instead of being mistaken for volumes (§1.5).

use super::time::{parse_name_time, timestr};

/// What a remote (or cached) file is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    FullVolume { time: i64, vol: u32 },
    FullManifest { time: i64 },
    IncVolume { start: i64, end: i64, vol: u32 },
    IncManifest { start: i64, end: i64 },
    FullSignatures { time: i64 },
    NewSignatures { start: i64, end: i64 },
}

/// How a file's bytes are sealed, as its name says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Suffix {
    None,
    Gzip,
    Gpg,
}

impl Suffix {
    pub fn as_str(self) -> &'static str {
        match self {
            Suffix::None => "",
            Suffix::Gzip => ".gz",
            Suffix::Gpg => ".gpg",
        }
    }
}

/// A parsed file name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedName {
    pub kind: FileKind,
    pub suffix: Suffix,
    /// A local `.part` (or `.p`) checkpoint of an unfinished run.
    pub partial: bool,
}

impl FileKind {
    /// The set this file belongs to: (is_full, start, end); a full set has start == end.
    pub fn set_key(&self) -> (bool, i64, i64) {
        match *self {
            FileKind::FullVolume { time, .. } | FileKind::FullManifest { time } => {
                (true, time, time)
            }
            FileKind::IncVolume { start, end, .. } | FileKind::IncManifest { start, end } => {
                (false, start, end)
            }
            FileKind::FullSignatures { time } => (true, time, time),
            FileKind::NewSignatures { start, end } => (false, start, end),
        }
    }

    pub fn is_signature(&self) -> bool {
        matches!(
            self,
            FileKind::FullSignatures { .. } | FileKind::NewSignatures { .. }
        )
    }
}

/// `--file-prefix` and the per-type prefixes (§1.6).
#[derive(Clone, Debug, Default)]
pub struct Prefixes {
    pub file: String,
    pub archive: String,
    pub manifest: String,
    pub signature: String,
}

impl Prefixes {
    fn for_kind(&self, kind: &FileKind) -> String {
        let typ = match kind {
            FileKind::FullVolume { .. } | FileKind::IncVolume { .. } => &self.archive,
            FileKind::FullManifest { .. } | FileKind::IncManifest { .. } => &self.manifest,
            _ => &self.signature,
        };
        format!("{}{}", self.file, typ)
    }

    /// The long name of a file, as stock 0.8.22 and 3.x write it.
    pub fn name(&self, kind: &FileKind, suffix: Suffix) -> String {
        let body = match *kind {
            FileKind::FullVolume { time, vol } => {
                format!("duplicity-full.{}.vol{vol}.difftar", timestr(time))
            }
            FileKind::FullManifest { time } => format!("duplicity-full.{}.manifest", timestr(time)),
            FileKind::IncVolume { start, end, vol } => format!(
                "duplicity-inc.{}.to.{}.vol{vol}.difftar",
                timestr(start),
                timestr(end)
            ),
            FileKind::IncManifest { start, end } => {
                format!(
                    "duplicity-inc.{}.to.{}.manifest",
                    timestr(start),
                    timestr(end)
                )
            }
            FileKind::FullSignatures { time } => {
                format!("duplicity-full-signatures.{}.sigtar", timestr(time))
            }
            FileKind::NewSignatures { start, end } => format!(
                "duplicity-new-signatures.{}.to.{}.sigtar",
                timestr(start),
                timestr(end)
            ),
        };
        format!("{}{body}{}", self.for_kind(kind), suffix.as_str())
    }

    /// Recognise a file name; `None` for anything that is not a duplicity file.
    pub fn parse(&self, name: &str) -> Option<ParsedName> {
        // Which prefix applies depends on the type, so try each one.
        for (typ, kinds) in [
            (&self.archive, Kinds::Volume),
            (&self.manifest, Kinds::Manifest),
            (&self.signature, Kinds::Signature),
        ] {
            let full_prefix = format!("{}{}", self.file, typ);
            if let Some(rest) = name.strip_prefix(full_prefix.as_str()) {
                if let Some(p) = parse_body(rest, kinds) {
                    return Some(p);
                }
            }
        }
        None
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kinds {
    Volume,
    Manifest,
    Signature,
}

/// Split a name's tail into (stem, partial, suffix). Long names use `.part`/`.gz`/`.gpg`,
/// short names `.p`/`.z`/`.g`.
fn split_tail(rest: &str, short: bool) -> Vec<(&str, bool, Suffix)> {
    let (part, sufs): (&str, [(&str, Suffix); 3]) = if short {
        (
            ".p",
            [
                (".z", Suffix::Gzip),
                (".g", Suffix::Gpg),
                ("", Suffix::None),
            ],
        )
    } else {
        (
            ".part",
            [
                (".gz", Suffix::Gzip),
                (".gpg", Suffix::Gpg),
                ("", Suffix::None),
            ],
        )
    };
    let mut out = Vec::new();
    for (s, suffix) in sufs {
        if let Some(stem) = rest.strip_suffix(s) {
            if let Some(stem2) = stem.strip_suffix(part) {
                out.push((stem2, true, suffix));
            }
            out.push((stem, false, suffix));
        }
    }
    out
}

fn parse_body(rest: &str, kinds: Kinds) -> Option<ParsedName> {
    // A plain `now` for parsing times in names: intervals in names are nonsense, but the
    // parser must be total, so "now" is 0 and such names come out as garbage times.
    let t = |s: &str| parse_name_time(s, 0);
    let b36 = |s: &str| -> Option<i64> {
        if s.is_empty()
            || !s
                .bytes()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        {
            return None;
        }
        i64::from_str_radix(s, 36).ok()
    };
    let vol = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    for short in [true, false] {
        for (stem, partial, suffix) in split_tail(rest, short) {
            let kind = if short {
                parse_short(stem, kinds, &b36)
            } else {
                parse_long(stem, kinds, &t, &vol)
            };
            let Some(kind) = kind else { continue };
            // Stock never marks incremental volumes partial (§1.5).
            if partial && matches!(kind, FileKind::IncVolume { .. }) {
                continue;
            }
            return Some(ParsedName {
                kind,
                suffix,
                partial,
            });
        }
    }
    None
}

fn parse_long(
    stem: &str,
    kinds: Kinds,
    t: &dyn Fn(&str) -> Option<i64>,
    vol: &dyn Fn(&str) -> Option<u32>,
) -> Option<FileKind> {
    match kinds {
        Kinds::Volume => {
            let body = stem.strip_suffix(".difftar")?;
            let (head, n) = body.rsplit_once(".vol")?;
            let vol = vol(n)?;
            if let Some(time) = head.strip_prefix("duplicity-full.") {
                return Some(FileKind::FullVolume {
                    time: t(time)?,
                    vol,
                });
            }
            let (s, e) = head.strip_prefix("duplicity-inc.")?.split_once(".to.")?;
            Some(FileKind::IncVolume {
                start: t(s)?,
                end: t(e)?,
                vol,
            })
        }
        Kinds::Manifest => {
            let head = stem.strip_suffix(".manifest")?;
            if let Some(time) = head.strip_prefix("duplicity-full.") {
                return Some(FileKind::FullManifest { time: t(time)? });
            }
            let (s, e) = head.strip_prefix("duplicity-inc.")?.split_once(".to.")?;
            Some(FileKind::IncManifest {
                start: t(s)?,
                end: t(e)?,
            })
        }
        Kinds::Signature => {
            let head = stem.strip_suffix(".sigtar")?;
            if let Some(time) = head.strip_prefix("duplicity-full-signatures.") {
                return Some(FileKind::FullSignatures { time: t(time)? });
            }
            let (s, e) = head
                .strip_prefix("duplicity-new-signatures.")?
                .split_once(".to.")?;
            Some(FileKind::NewSignatures {
                start: t(s)?,
                end: t(e)?,
            })
        }
    }
}

fn parse_short(stem: &str, kinds: Kinds, b36: &dyn Fn(&str) -> Option<i64>) -> Option<FileKind> {
    let parts: Vec<&str> = stem.split('.').collect();
    let num = |s: &str| b36(s).and_then(|n| u32::try_from(n).ok());
    match (kinds, parts.as_slice()) {
        (Kinds::Volume, ["df", t, n, "dt"]) => Some(FileKind::FullVolume {
            time: b36(t)?,
            vol: num(n)?,
        }),
        (Kinds::Volume, ["di", s, e, n, "dt"]) => Some(FileKind::IncVolume {
            start: b36(s)?,
            end: b36(e)?,
            vol: num(n)?,
        }),
        (Kinds::Manifest, ["df", t, "m"]) => Some(FileKind::FullManifest { time: b36(t)? }),
        (Kinds::Manifest, ["di", s, e, "m"]) => Some(FileKind::IncManifest {
            start: b36(s)?,
            end: b36(e)?,
        }),
        (Kinds::Signature, ["dfs", t, "st"]) => Some(FileKind::FullSignatures { time: b36(t)? }),
        (Kinds::Signature, ["dns", s, e, "st"]) => Some(FileKind::NewSignatures {
            start: b36(s)?,
            end: b36(e)?,
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Prefixes {
        Prefixes::default()
    }

    #[test]
    fn long_names_round_trip() {
        let kinds = [
            FileKind::FullVolume {
                time: 1700000000,
                vol: 1,
            },
            FileKind::FullVolume {
                time: 1700000000,
                vol: 12,
            },
            FileKind::FullManifest { time: 1700000000 },
            FileKind::IncVolume {
                start: 1700000000,
                end: 1700000100,
                vol: 3,
            },
            FileKind::IncManifest {
                start: 1700000000,
                end: 1700000100,
            },
            FileKind::FullSignatures { time: 1700000000 },
            FileKind::NewSignatures {
                start: 1700000000,
                end: 1700000100,
            },
        ];
        for k in kinds {
            for s in [Suffix::None, Suffix::Gzip, Suffix::Gpg] {
                let n = p().name(&k, s);
                assert_eq!(
                    p().parse(&n),
                    Some(ParsedName {
                        kind: k.clone(),
                        suffix: s,
                        partial: false
                    }),
                    "{n}"
                );
            }
        }
    }

    #[test]
    fn names_from_real_archives() {
        assert_eq!(
            p().name(
                &FileKind::FullVolume {
                    time: 1700000000,
                    vol: 1
                },
                Suffix::Gzip
            ),
            "duplicity-full.20231114T221320Z.vol1.difftar.gz"
        );
        assert_eq!(
            p().name(
                &FileKind::NewSignatures {
                    start: 1700000000,
                    end: 1700000100
                },
                Suffix::Gpg
            ),
            "duplicity-new-signatures.20231114T221320Z.to.20231114T221500Z.sigtar.gpg"
        );
        let m = p()
            .parse("duplicity-inc.20231114T221320Z.to.20231114T221500Z.manifest")
            .unwrap();
        assert_eq!(
            m.kind,
            FileKind::IncManifest {
                start: 1700000000,
                end: 1700000100
            }
        );
        let part = p()
            .parse("duplicity-full.20231114T221320Z.manifest.part")
            .unwrap();
        assert!(part.partial);
        let sig = p()
            .parse("duplicity-full-signatures.20231114T221320Z.sigtar.part")
            .unwrap();
        assert!(sig.partial);
    }

    #[test]
    fn short_names() {
        // df.tp9u0m.1.dt.z from the format notes.
        let n = p().parse("df.tp9u0m.1.dt.z").unwrap();
        assert_eq!(n.suffix, Suffix::Gzip);
        let t = i64::from_str_radix("tp9u0m", 36).unwrap();
        assert_eq!(n.kind, FileKind::FullVolume { time: t, vol: 1 });
        assert!(p().parse("dns.a.b.st.g").is_some());
        assert!(p().parse("di.a.b.m.p").unwrap().partial);
    }

    #[test]
    fn strangers_are_ignored() {
        for n in [
            "duplicity-full.20231114T221320Z.vol1.difftar.gpg.par2",
            "duplicity-full.20231114T221320Z.vol000+200.par2",
            "duplicity-inc.20231114T221320Z.to.20231114T221500Z.vol1.difftar.part",
            "readme.txt",
            "duplicity-full.garbage.manifest",
            "lockfile",
        ] {
            assert_eq!(p().parse(n), None, "{n}");
        }
    }

    #[test]
    fn prefixes() {
        let pr = Prefixes {
            file: "P_".into(),
            archive: "A_".into(),
            manifest: "M_".into(),
            signature: "S_".into(),
        };
        let v = pr.name(
            &FileKind::FullVolume {
                time: 1700000000,
                vol: 1,
            },
            Suffix::Gzip,
        );
        assert_eq!(v, "P_A_duplicity-full.20231114T221320Z.vol1.difftar.gz");
        assert!(pr.parse(&v).is_some());
        assert!(pr
            .parse("P_M_duplicity-full.20231114T221320Z.manifest")
            .is_some());
        assert!(pr
            .parse("duplicity-full.20231114T221320Z.manifest")
            .is_none());
    }
}
