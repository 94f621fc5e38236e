//! File selection: duplicity 0.8.22's include/exclude rules (duplicity-format.md §6.2 and
//! §8.3), ported from its `selection.py` and `globmatch.py` so that the same options pick
//! the same files.
//!
//! Every entry below the source root is tested against the rules in command-line order and
//! the first rule with a definite answer decides; an entry no rule decides is included. An
//! include glob also answers [`Verdict::Scan`] for the directories on the way to what it
//! names: the walk (`source`) then holds such a directory back and emits it only when
//! something inside it is included. The root itself is always backed up.
//!
//! Paths are matched the way duplicity matches them: the source directory as given on the
//! command line, canonicalised but *not* made absolute (`/data/`, `./x` -> `/data`, `x`),
//! joined with the entry's path, and decoded as UTF-8 with U+FFFD for invalid bytes
//! (Python's `fsdecode(..., "replace")`).

use crate::archive::manifest::canonical_localdir;
use crate::archive::Index;
use crate::error::{Error, Result};
use crate::local::platform::{self, Kind, Stat};
use regex::{Regex, RegexBuilder};
use std::path::{Path, PathBuf};

/// One selection option as given, in command-line order (`config::BackupOpts::selection`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleSpec {
    /// `--include GLOB`
    Include(String),
    /// `--exclude GLOB`
    Exclude(String),
    /// `--include-filelist FILE`: globs, one a line, included unless the line says `- `.
    IncludeFilelist(PathBuf),
    /// `--exclude-filelist FILE`: globs, one a line, excluded unless the line says `+ `.
    ExcludeFilelist(PathBuf),
    /// `--include-regexp RE`
    IncludeRegexp(String),
    /// `--exclude-regexp RE`
    ExcludeRegexp(String),
    /// `--exclude-if-present NAME`: directories holding an entry NAME.
    ExcludeIfPresent(String),
    /// `--exclude-other-filesystems`: entries whose device differs from the root's.
    ExcludeOtherFilesystems,
    /// `--exclude-device-files`: character and block devices.
    ExcludeDeviceFiles,
    /// `--exclude-older-than TIME`: regular files modified before TIME (a `--time` string).
    ExcludeOlderThan(String),
}

/// What the rules say about one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Back it up (and, for a directory, walk into it).
    Include,
    /// Leave it out (and, for a directory, everything inside it).
    Exclude,
    /// A directory to walk into that is backed up only if something inside it is included;
    /// anything else that gets this answer is left out.
    Scan,
}

/// The Python `$` (no MULTILINE): the end, or just before a newline that ends the string.
const END: &str = r"\n?\z";

/// Translate a duplicity glob to a regex, exactly as `globmatch.glob_to_regex` does: `**`
/// is `.*`, `*` is `[^/]*`, `?` is `[^/]`, `[...]` is a class (`!` or `^` first negates it; a
/// `[` that is never closed is literal), and everything else is literal (no escaping).
///
/// The class body is re-written for Rust's regex syntax (where `[`, `&&`, `--` and `~~` mean
/// something inside a class) with Python's reading of it: every character literal, `a-z` a
/// range, a `-` first or last literal. A reversed range is an error, as in Python.
pub fn glob_to_regex(pat: &str) -> std::result::Result<String, String> {
    let p: Vec<char> = pat.chars().collect();
    let n = p.len();
    let mut i = 0;
    let mut res = String::new();
    while i < n {
        let c = p[i];
        i += 1;
        if c == '*' && i < n && p[i] == '*' {
            res.push_str(".*");
            i += 1;
        } else if c == '*' {
            res.push_str("[^/]*");
        } else if c == '?' {
            res.push_str("[^/]");
        } else if c == '[' {
            let mut j = i;
            if j < n && (p[j] == '!' || p[j] == '^') {
                j += 1;
            }
            if j < n && p[j] == ']' {
                j += 1;
            }
            while j < n && p[j] != ']' {
                j += 1;
            }
            if j >= n {
                res.push_str(r"\[");
            } else {
                res.push_str(&class_to_regex(&p[i..j])?);
                i = j + 1;
            }
        } else {
            res.push_str(&regex::escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    Ok(res)
}

/// The body of a glob class (between `[` and `]`) as a Rust regex class.
fn class_to_regex(body: &[char]) -> std::result::Result<String, String> {
    let (negate, items) = match body.first() {
        Some('!') | Some('^') => (true, &body[1..]),
        _ => (false, body),
    };
    let lit = |c: char| regex::escape(c.encode_utf8(&mut [0; 4]));
    let mut out = String::from(if negate { "[^" } else { "[" });
    let mut k = 0;
    while k < items.len() {
        let lo = items[k];
        k += 1;
        if k < items.len() && items[k] == '-' {
            if k + 1 == items.len() {
                // `a-` at the end: Python reads both literally.
                out.push_str(&lit(lo));
                out.push_str(&lit('-'));
                break;
            }
            let hi = items[k + 1];
            k += 2;
            if hi < lo {
                return Err(format!("bad character range {lo}-{hi}"));
            }
            out.push_str(&lit(lo));
            out.push('-');
            out.push_str(&lit(hi));
        } else {
            out.push_str(&lit(lo));
        }
    }
    out.push(']');
    Ok(out)
}

fn compile(pattern: &str, ignore_case: bool) -> std::result::Result<Regex, String> {
    // Python compiles globs with re.S, so `**` crosses newlines in names too.
    RegexBuilder::new(pattern)
        .case_insensitive(ignore_case)
        .dot_matches_new_line(true)
        .build()
        .map_err(|e| e.to_string())
}

/// One include or exclude glob, as `globmatch.select_fn_from_glob` builds it.
#[derive(Debug)]
pub struct Glob {
    /// The path itself or anything below it: `^glob($|/)`.
    matches: Regex,
    /// For a glob ending in `/`: the exact match, which must be a directory.
    exact: Option<Regex>,
    /// Include globs only: the directories on the way to the glob (up to its first `**`).
    scan: Option<Regex>,
    include: bool,
}

impl Glob {
    /// Compile `glob` (already without its `ignorecase:` prefix, and lowercased when
    /// `ignore_case`).
    pub fn new(glob: &str, include: bool, ignore_case: bool) -> std::result::Result<Glob, String> {
        let (g, dir_only) = if glob == "/" {
            // "/" means everything; it is the one glob whose trailing slash stays.
            ("/**", false)
        } else if let Some(g) = glob.strip_suffix('/') {
            (g, true)
        } else if glob.is_empty() {
            return Err("empty glob".into());
        } else {
            (glob, false)
        };
        let re = glob_to_regex(g)?;
        let matches = compile(&format!("^{re}(?:{END}|/)"), ignore_case)?;
        let exact = if dir_only {
            Some(compile(&format!("^{re}{END}"), ignore_case)?)
        } else {
            None
        };
        let upto = match g.find("**") {
            Some(p) => &g[..p + 2],
            None => g,
        };
        let parts: Vec<&str> = upto.split('/').collect();
        if parts.len() > 2 && parts[1..parts.len() - 1].contains(&"") {
            // Stock checks this for exclude globs too (it builds the scan regex for both).
            return Err(format!("consecutive '/'s found in globbing string {glob}"));
        }
        let mut prefixes = Vec::with_capacity(parts.len());
        for i in 0..parts.len() {
            let prefix = parts[..=i].join("/");
            let prefix = if i == 0 && prefix.is_empty() {
                "/".to_string()
            } else {
                prefix
            };
            prefixes.push(glob_to_regex(&prefix)?);
        }
        let scan = if include {
            Some(compile(
                &format!("^(?:{}){END}", prefixes.join("|")),
                ignore_case,
            )?)
        } else {
            None
        };
        Ok(Glob {
            matches,
            exact,
            scan,
            include,
        })
    }

    /// The glob's answer for `path` (a directory when `is_dir`); `None`: no opinion.
    pub fn test(&self, path: &str, is_dir: bool) -> Option<Verdict> {
        let verdict = if self.include {
            Verdict::Include
        } else {
            Verdict::Exclude
        };
        if self.matches.is_match(path) {
            match &self.exact {
                // `dir/` names only a directory (and what is inside it).
                Some(exact) if exact.is_match(path) && !is_dir => None,
                _ => Some(verdict),
            }
        } else if self.scan.as_ref().is_some_and(|s| s.is_match(path)) {
            Some(Verdict::Scan)
        } else {
            None
        }
    }
}

#[derive(Debug)]
enum Test {
    /// The glob `**`, which stock special-cases: everything, with no prefix check.
    Everything,
    Glob(Glob),
    Regex(Regex),
    IfPresent(Vec<u8>),
    Devices,
    OtherFilesystem(u64),
    OlderThan(i64),
}

#[derive(Debug)]
struct Rule {
    test: Test,
    include: bool,
    /// The option as the user wrote it, for error messages.
    name: String,
}

impl Rule {
    fn answer(&self, name: &str, path: &Path, stat: &Stat) -> Option<Verdict> {
        let verdict = if self.include {
            Verdict::Include
        } else {
            Verdict::Exclude
        };
        let hit = match &self.test {
            Test::Everything => true,
            Test::Glob(g) => return g.test(name, stat.kind == Kind::Dir),
            Test::Regex(re) => re.is_match(name),
            Test::IfPresent(marker) => stat.kind == Kind::Dir && contains(path, marker),
            Test::Devices => matches!(stat.kind, Kind::Char | Kind::Block),
            Test::OtherFilesystem(dev) => stat.dev != *dev,
            Test::OlderThan(t) => stat.kind == Kind::File && stat.mtime < *t,
        };
        hit.then_some(verdict)
    }
}

/// Whether directory `dir` has an entry called `name` (stock: `name in listdir(dir)`).
fn contains(dir: &Path, name: &[u8]) -> bool {
    // listdir never returns these, or anything with a slash.
    if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
        return false;
    }
    match std::fs::symlink_metadata(dir.join(platform::path_from_bytes(name))) {
        Ok(_) => true,
        // A directory that can be read but not searched: look at its listing, as stock
        // does. (One that can be searched but not read is not backed up anyway.)
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .any(|d| platform::name_bytes(&d.file_name()) == name)
            })
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The rules of one backup, ready to answer for each entry of the walk.
#[derive(Debug)]
pub struct Selection {
    /// The canonical source directory as text, which every tested path starts with.
    root: String,
    rules: Vec<Rule>,
}

/// The text duplicity matches for the path given as raw bytes.
fn decode(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

impl Selection {
    /// Everything is included (no selection options).
    pub fn all() -> Selection {
        Selection {
            root: String::new(),
            rules: Vec::new(),
        }
    }

    /// Build the rules for a backup of `root` from the options in command-line order, as
    /// stock's `Select.ParseArgs` does: `--exclude-if-present` and `--exclude-device-files`
    /// move to the front; globs must be able to match the root; the last rule must exclude
    /// something. `now` is the time relative times (`--exclude-older-than 1W`) count from.
    ///
    /// Errors are `Error::Usage` (exit 2), where stock exits 14 (glob outside the root), 15
    /// (bad glob) or 16 (last rule an include); a missing root is `Error::SourceMissing`.
    pub fn new(root: &Path, specs: &[RuleSpec], now: i64) -> Result<Selection> {
        let root_text = decode(&canonical_localdir(&platform::os_bytes(root))).into_owned();
        let mut sel = Selection {
            root: root_text,
            rules: Vec::new(),
        };
        for spec in specs {
            match spec {
                RuleSpec::Include(g) => {
                    let r = sel.glob_rule(g, true, &format!("--include {g}"))?;
                    sel.rules.push(r);
                }
                RuleSpec::Exclude(g) => {
                    let r = sel.glob_rule(g, false, &format!("--exclude {g}"))?;
                    sel.rules.push(r);
                }
                RuleSpec::IncludeFilelist(f) => sel.filelist(f, true, "--include-filelist")?,
                RuleSpec::ExcludeFilelist(f) => sel.filelist(f, false, "--exclude-filelist")?,
                RuleSpec::IncludeRegexp(re) => {
                    sel.rules.push(regexp_rule(re, true, "--include-regexp")?)
                }
                RuleSpec::ExcludeRegexp(re) => {
                    sel.rules.push(regexp_rule(re, false, "--exclude-regexp")?)
                }
                RuleSpec::ExcludeIfPresent(name) => sel.rules.insert(
                    0,
                    Rule {
                        test: Test::IfPresent(name.as_bytes().to_vec()),
                        include: false,
                        name: format!("--exclude-if-present {name}"),
                    },
                ),
                RuleSpec::ExcludeDeviceFiles => sel.rules.insert(
                    0,
                    Rule {
                        test: Test::Devices,
                        include: false,
                        name: "--exclude-device-files".into(),
                    },
                ),
                RuleSpec::ExcludeOtherFilesystems => {
                    let st = platform::lstat(root)
                        .map_err(|_| Error::SourceMissing(root.display().to_string()))?;
                    sel.rules.push(Rule {
                        test: Test::OtherFilesystem(st.dev),
                        include: false,
                        name: "--exclude-other-filesystems".into(),
                    });
                }
                RuleSpec::ExcludeOlderThan(t) => {
                    let t_epoch = crate::archive::time::parse_user_time(t, now)
                        .map_err(|m| Error::Usage(format!("--exclude-older-than: {m}")))?;
                    sel.rules.push(Rule {
                        test: Test::OlderThan(t_epoch),
                        include: false,
                        name: format!("--exclude-older-than {t}"),
                    });
                }
            }
        }
        if let Some(last) = sel.rules.last() {
            if last.include {
                return Err(Error::Usage(format!(
                    "the last selection rule ({}) only includes files; everything is included \
                     by default, so it changes nothing. End with an exclude such as \
                     --exclude '**' (duplicity exits 16, \"redundant inclusion\")",
                    last.name
                )));
            }
        }
        Ok(sel)
    }

    /// Stock's `glob_get_sf`: `**` is special; otherwise strip `ignorecase:` and check that
    /// the glob can match the root.
    fn glob_rule(&self, glob: &str, include: bool, name: &str) -> Result<Rule> {
        if glob == "**" {
            return Ok(Rule {
                test: Test::Everything,
                include,
                name: name.into(),
            });
        }
        const IC: &str = "ignorecase:";
        let (g, ignore_case) = match glob.get(..IC.len()) {
            Some(p) if p.eq_ignore_ascii_case(IC) => (glob[IC.len()..].to_lowercase(), true),
            _ => (glob.to_string(), false),
        };
        let bad = |m: String| Error::Usage(format!("{name}: {m}"));
        // Stock checks the lowercased glob against the root case-sensitively, which rejects
        // `ignorecase:` globs under a root with capitals; we check it as it will match.
        let probe = Glob::new(&g, true, ignore_case).map_err(bad)?;
        if probe.test(&self.root, true).is_none() {
            return Err(Error::Usage(format!(
                "{name} cannot match any file in the source directory {}: useful patterns \
                 start with the source directory or with '**' (duplicity exits 14)",
                self.root
            )));
        }
        Ok(Rule {
            test: Test::Glob(Glob::new(&g, include, ignore_case).map_err(bad)?),
            include,
            name: name.into(),
        })
    }

    /// One glob rule per line of a filelist (stock's `filelist_globbing_get_sfs`).
    fn filelist(&mut self, file: &Path, include: bool, flag: &str) -> Result<()> {
        let bytes = std::fs::read(file)
            .map_err(|e| Error::Usage(format!("{flag} {}: {e}", file.display())))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::Usage(format!("{flag} {}: not UTF-8 text", file.display())))?;
        // Python reads it in text mode: universal newlines.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        for (n, line) in text.split('\n').enumerate() {
            let Some((glob, inc)) = filelist_line(line, include) else {
                continue;
            };
            let name = format!("{flag} {} line {}: {glob}", file.display(), n + 1);
            let rule = self.glob_rule(glob, inc, &name)?;
            self.rules.push(rule);
        }
        Ok(())
    }

    /// The rules' answer for one entry below the root (stock's `Select.Select`): the first
    /// definite answer wins, but an earlier "scan" turns a later exclude into a scan.
    pub fn select(&self, index: &Index, path: &Path, stat: &Stat) -> Verdict {
        if self.rules.is_empty() {
            return Verdict::Include;
        }
        let name = self.path_text(index);
        let mut scan = false;
        let mut decided = None;
        for rule in &self.rules {
            match rule.answer(&name, path, stat) {
                Some(Verdict::Scan) => scan = true,
                Some(v) => {
                    decided = Some(v);
                    break;
                }
                None => {}
            }
        }
        match (decided, scan) {
            (Some(Verdict::Include), _) => Verdict::Include,
            (_, true) => Verdict::Scan,
            (Some(v), false) => v,
            (None, false) => Verdict::Include,
        }
    }

    /// The text stock matches for `index`: `os.path.join(root, *index)`, decoded.
    fn path_text(&self, index: &Index) -> String {
        let mut s = self.root.clone();
        for c in index {
            if !s.ends_with('/') {
                s.push('/');
            }
            s.push_str(&decode(c));
        }
        s
    }
}

/// Stock's `filelist_sanitise_line`: strip, skip blanks and `#` comments, read a `+ ` or
/// `- ` prefix, drop one pair of surrounding quotes. `None` for a line to skip.
fn filelist_line(line: &str, include: bool) -> Option<(&str, bool)> {
    let line = line.trim_matches(is_python_space);
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let (line, include) = if let Some(rest) = line.strip_prefix("+ ") {
        (rest, true)
    } else if let Some(rest) = line.strip_prefix("- ") {
        (rest, false)
    } else {
        (line, include)
    };
    let quoted = line.len() >= 2
        && ((line.starts_with('\'') && line.ends_with('\''))
            || (line.starts_with('"') && line.ends_with('"')));
    // A lone quote starts and ends with itself: Python's line[1:-1] makes it empty.
    let line = if quoted {
        &line[1..line.len() - 1]
    } else if line == "'" || line == "\"" {
        ""
    } else {
        line
    };
    (!line.is_empty()).then_some((line, include))
}

/// `str.isspace` in Python: Unicode white space plus the separators \x1c-\x1f.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

fn regexp_rule(re: &str, include: bool, flag: &str) -> Result<Rule> {
    // Python's `re.search` on the whole path: no anchors added. Rust's syntax agrees on
    // the common constructs; look-around and back-references are rejected here.
    let compiled = Regex::new(re).map_err(|e| {
        Error::Usage(format!(
            "{flag} {re}: {e} (Rust regex syntax: like Python's re, without look-around or back-references)"
        ))
    })?;
    Ok(Rule {
        test: Test::Regex(compiled),
        include,
        name: format!("{flag} {re}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_translation() {
        let t = |g: &str| glob_to_regex(g).unwrap();
        assert_eq!(t("/a/**"), "/a/.*");
        assert_eq!(t("/a/*.py"), r"/a/[^/]*\.py");
        assert_eq!(t("/a/?"), "/a/[^/]");
        assert_eq!(t("/a/[ab]"), "/a/[ab]");
        assert_eq!(t("/a/[!ab]"), "/a/[^ab]");
        assert_eq!(t("/a/[^ab]"), "/a/[^ab]");
        assert_eq!(t("/a/[a-c]x"), "/a/[a-c]x");
        // A `[` never closed is literal; `]` first in a class is a member.
        assert_eq!(t("/a/[ab"), r"/a/\[ab");
        assert_eq!(t("/a/[]x]"), r"/a/[\]x]");
        assert_eq!(t("/a/[!]x]"), r"/a/[^\]x]");
        // Python's literal reading of what Rust's class syntax would take as operators.
        assert_eq!(t("[[]"), r"[\[]");
        assert_eq!(t("[a-]"), r"[a\-]");
        assert_eq!(t("[-a]"), r"[\-a]");
        assert_eq!(t("[&&~]"), r"[\&\&\~]");
        // No escaping: a backslash is a literal character.
        assert_eq!(t(r"a\*"), r"a\\[^/]*");
        assert!(glob_to_regex("[z-a]").is_err());
        assert_eq!(t("***"), ".*[^/]*");
    }

    fn v(g: &str, include: bool, ic: bool, path: &str, dir: bool) -> Option<Verdict> {
        Glob::new(g, include, ic).unwrap().test(path, dir)
    }

    #[test]
    fn glob_answers() {
        use Verdict::*;
        // The path, anything below it, and (for includes) the directories above it.
        assert_eq!(v("/s/a/b", true, false, "/s/a/b", false), Some(Include));
        assert_eq!(v("/s/a/b", true, false, "/s/a/b/c", false), Some(Include));
        assert_eq!(v("/s/a/b", true, false, "/s/a", true), Some(Scan));
        assert_eq!(v("/s/a/b", true, false, "/s", true), Some(Scan));
        assert_eq!(v("/s/a/b", true, false, "/s/a/bc", false), None);
        assert_eq!(v("/s/a/b", true, false, "/s/x", true), None);
        // Excludes never scan.
        assert_eq!(v("/s/a/b", false, false, "/s/a", true), None);
        assert_eq!(v("/s/a/b", false, false, "/s/a/b/c", false), Some(Exclude));
        // Scanning stops at the first `**`, which then scans everything below.
        assert_eq!(v("/s/**/x", true, false, "/s/q/r", true), Some(Scan));
        assert_eq!(v("/s/**/x", true, false, "/s/q/x", false), Some(Include));
        assert_eq!(v("**/x", true, false, "/s/q/x/y", false), Some(Include));
        // Trailing slash: directories only (and their contents).
        assert_eq!(v("/s/d/", false, false, "/s/d", true), Some(Exclude));
        assert_eq!(v("/s/d/", false, false, "/s/d", false), None);
        assert_eq!(v("/s/d/", false, false, "/s/d/f", false), Some(Exclude));
        // `*` and `?` stay within one component.
        assert_eq!(v("/s/*.c", true, false, "/s/a.c", false), Some(Include));
        assert_eq!(v("/s/*.c", true, false, "/s/a/b.c", false), None);
        assert_eq!(v("/s/?.c", true, false, "/s/ab.c", false), None);
        // ignorecase: the glob arrives lowercased.
        assert_eq!(
            v("/s/readme", true, true, "/s/README", false),
            Some(Include)
        );
        assert_eq!(v("/s/readme", true, false, "/s/README", false), None);
        // Python's `$` also matches before a final newline.
        assert_eq!(v("/s/a", true, false, "/s/a\n", false), Some(Include));
        // "/" is everything.
        assert_eq!(v("/", false, false, "/x/y", false), Some(Exclude));
        assert!(Glob::new("/s//a", false, false).is_err());
        assert!(Glob::new("", false, false).is_err());
    }

    fn file(kind: Kind, mtime: i64) -> Stat {
        Stat {
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime,
            size: 0,
            dev: 1,
            rdev_major: 0,
            rdev_minor: 0,
        }
    }

    fn idx(p: &str) -> Index {
        p.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    fn sel(specs: &[RuleSpec]) -> Result<Selection> {
        Selection::new(Path::new("/s/"), specs, 1_000)
    }

    #[test]
    fn first_match_wins_and_scan_overrides_a_later_exclude() {
        use RuleSpec as R;
        use Verdict::*;
        let s = sel(&[
            R::Include("/s/a/keep".into()),
            R::Exclude("/s/a".into()),
            R::Include("/s/b".into()),
            R::Exclude("**".into()),
        ])
        .unwrap();
        let dir = file(Kind::Dir, 0);
        let reg = file(Kind::File, 0);
        let p = Path::new("/nonexistent");
        assert_eq!(s.select(&idx("a"), p, &dir), Scan);
        assert_eq!(s.select(&idx("a/keep"), p, &reg), Include);
        assert_eq!(s.select(&idx("a/other"), p, &reg), Exclude);
        assert_eq!(s.select(&idx("b/x"), p, &reg), Include);
        assert_eq!(s.select(&idx("c"), p, &reg), Exclude);
        // Unmatched entries are included.
        let s = sel(&[R::Exclude("/s/x".into())]).unwrap();
        assert_eq!(s.select(&idx("y"), p, &reg), Include);
    }

    #[test]
    fn rule_list_errors() {
        use RuleSpec as R;
        // The last rule must exclude; front-moved rules do not count as last.
        assert!(sel(&[R::Include("/s/a".into())]).is_err());
        assert!(sel(&[R::Include("/s/a".into()), R::ExcludeDeviceFiles]).is_err());
        assert!(sel(&[R::ExcludeDeviceFiles, R::Include("/s/a".into())]).is_err());
        assert!(sel(&[R::Include("/s/a".into()), R::Exclude("**".into())]).is_ok());
        // A glob that cannot match the root.
        assert!(sel(&[R::Exclude("/elsewhere/a".into())]).is_err());
        assert!(sel(&[R::Exclude("s/a".into())]).is_err());
        assert!(sel(&[R::Exclude("**/a".into())]).is_ok());
        assert!(sel(&[R::Exclude("ignorecase:/S/A".into())]).is_ok());
        assert!(sel(&[R::ExcludeRegexp("(?<=x)y".into())]).is_err());
        assert!(sel(&[R::ExcludeOlderThan("not a time".into())]).is_err());
    }

    #[test]
    fn special_rules() {
        use RuleSpec as R;
        use Verdict::*;
        let s = sel(&[
            R::ExcludeOlderThan("500".into()),
            R::ExcludeRegexp(r"\.tmp$".into()),
            R::IncludeRegexp("^/s/r".into()),
            R::ExcludeDeviceFiles,
            R::Exclude("/s/zzz".into()),
        ])
        .unwrap();
        let p = Path::new("/nonexistent");
        assert_eq!(s.select(&idx("old"), p, &file(Kind::File, 499)), Exclude);
        assert_eq!(s.select(&idx("new"), p, &file(Kind::File, 500)), Include);
        assert_eq!(s.select(&idx("olddir"), p, &file(Kind::Dir, 1)), Include);
        assert_eq!(s.select(&idx("x.tmp"), p, &file(Kind::File, 900)), Exclude);
        // The device rule moved to the front, before the include regexp.
        assert_eq!(s.select(&idx("r"), p, &file(Kind::Char, 900)), Exclude);
        assert_eq!(s.select(&idx("r"), p, &file(Kind::Fifo, 900)), Include);
    }

    #[test]
    fn filelist_lines() {
        assert_eq!(filelist_line("  /a/b  ", true), Some(("/a/b", true)));
        assert_eq!(filelist_line("- /a/b", true), Some(("/a/b", false)));
        assert_eq!(filelist_line("+ /a/b", false), Some(("/a/b", true)));
        assert_eq!(filelist_line("+ '/a b'", false), Some(("/a b", true)));
        assert_eq!(filelist_line("\"/a\"", false), Some(("/a", false)));
        assert_eq!(filelist_line("# + /a", true), None);
        assert_eq!(filelist_line("   ", true), None);
        assert_eq!(filelist_line("'", true), None);
        // No second strip after the prefix, as in stock.
        assert_eq!(filelist_line("-  /a", true), Some((" /a", false)));
        assert_eq!(filelist_line("-/a", true), Some(("-/a", true)));
    }

    #[test]
    fn paths_are_the_canonical_root_joined_with_the_index() {
        let s = Selection::new(Path::new("./rel//x/"), &[], 0).unwrap();
        assert_eq!(s.path_text(&idx("a/b")), "rel/x/a/b");
        let s = Selection::new(Path::new("/"), &[], 0).unwrap();
        assert_eq!(s.path_text(&idx("etc")), "/etc");
        let s = Selection::new(Path::new("/r"), &[], 0).unwrap();
        assert_eq!(s.path_text(&vec![b"\xffx".to_vec()]), "/r/\u{fffd}x");
    }
}
