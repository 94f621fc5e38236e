//! File selection against stock duplicity 0.8.22: one source tree whose names exercise the
//! glob syntax, and a table of option combinations. For every row both tools make a full
//! backup with the same options, and the set of paths each archive holds is read from its
//! signature file (every member of a full backup's sigtar, with its `signature/` or
//! `snapshot/` prefix, raw bytes) and must be the same. Rows that stock refuses must be
//! refused by swiftdup with its usage exit code (2) before anything is written.

use crate::support::*;
use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::Path;

/// The tree: `(path, kind)` with kind `d` directory, `f` file, `l:TARGET` symlink.
const TREE: &[(&str, &str)] = &[
    ("a", "d"),
    ("a/b", "d"),
    ("a/b/deep.txt", "f"),
    ("a/b/keep.py", "f"),
    ("a/c.txt", "f"),
    ("a/Makefile", "f"),
    ("A.TXT", "f"),
    ("a.txt", "f"),
    ("B.txt", "f"),
    ("docs", "d"),
    ("docs/README", "f"),
    ("docs/readme.md", "f"),
    ("docs/Readme.MD", "f"),
    ("docs/x[1].txt", "f"),
    ("docs/x[.txt", "f"),
    ("docs/x1.txt", "f"),
    ("docs/x2.txt", "f"),
    ("docs/xa.txt", "f"),
    ("docs/x-.txt", "f"),
    ("dots", "d"),
    ("dots/.hidden", "f"),
    ("dots/.config", "d"),
    ("dots/.config/settings", "f"),
    ("dots/file.tar.gz", "f"),
    ("dots/noext", "f"),
    ("cache", "d"),
    ("cache/.nobackup", "f"),
    ("cache/big.bin", "f"),
    ("cache/sub", "d"),
    ("cache/sub/f", "f"),
    ("nested", "d"),
    ("nested/keep", "d"),
    ("nested/keep/inner", "d"),
    ("nested/keep/inner/wanted.log", "f"),
    ("nested/keep/other.log", "f"),
    ("nested/drop", "d"),
    ("nested/drop/x.log", "f"),
    ("nested/drop/marked", "d"),
    ("nested/drop/marked/.nobackup", "l:nowhere"),
    ("nested/drop/marked/y", "f"),
    ("old", "d"),
    ("old/ancient.txt", "f"),
    ("old/recent.txt", "f"),
    ("old/ancient-dir", "d"),
    ("odd", "d"),
    ("odd/space name", "f"),
    ("odd/q?mark", "f"),
    ("odd/star*name", "f"),
    ("odd/nl\n", "f"),
    ("odd/nl", "f"),
    ("links", "d"),
    ("links/to-a", "l:../a"),
    ("links/dangling", "l:nowhere"),
    ("t", "d"),
    ("t/foo", "d"),
    ("t/foo/f", "f"),
    ("u", "d"),
    ("u/foo", "f"),
    ("emptydir", "d"),
    ("dev", "d"),
];

/// When the old files were modified (2001); everything else is at `T0` (2023).
const OLD: i64 = 1_000_000_000;

fn build_tree(src: &Path) {
    fs::create_dir_all(src).unwrap();
    for (p, kind) in TREE {
        let path = src.join(p);
        match *kind {
            "d" => fs::create_dir_all(&path).unwrap(),
            "f" => fs::write(&path, p.as_bytes()).unwrap(),
            l => symlink(&l[2..], &path),
        }
    }
    special_files(&src.join("dev"));
    touch_all(src, T0);
    set_mtime(&src.join("old/ancient.txt"), OLD);
    set_mtime(&src.join("old/ancient-dir"), OLD);
}

/// One row: a name and the options, with `{S}` standing for the source directory and
/// `{L1}`... for the filelists of `FILELISTS`.
struct Row {
    name: &'static str,
    opts: &'static [&'static str],
    /// `None`: both succeed with the same paths; `Some(code)`: stock exits with `code`
    /// and swiftdup with 2.
    refused: Option<i32>,
}

const fn ok(name: &'static str, opts: &'static [&'static str]) -> Row {
    Row {
        name,
        opts,
        refused: None,
    }
}

const fn refused(name: &'static str, opts: &'static [&'static str], code: i32) -> Row {
    Row {
        name,
        opts,
        refused: Some(code),
    }
}

const FILELISTS: &[(&str, &str)] = &[
    (
        "{L1}",
        "# an exclude list: comments, blanks, +/- prefixes, quotes, stray white space\n\
         \n\
         \x20  {S}/a/b/keep.py   \n\
         + {S}/a/b\n\
         {S}/a\n\
         - {S}/docs/x?.txt\n\
         \t'{S}/odd/space name'\n\
         \"{S}/dots/.config\"\r\n\
         # - {S}/nested\n\
         + {S}/nested/keep\n\
         {S}/nested\n",
    ),
    (
        "{L2}",
        "{S}/docs/readme.md\n\
         - {S}/docs/x*\n\
         {S}/docs\n\
         ignorecase:{S}/ODD/Q?MARK\n\
         - **\n",
    ),
    (
        "{L3}",
        "# includes only: the exclude comes from the command line\n\
         {S}/nested/keep/inner\n\
         **/*.py\n",
    ),
];

const ROWS: &[Row] = &[
    ok("no options", &[]),
    ok("exclude a directory", &["--exclude", "{S}/a"]),
    ok(
        "include then exclude **",
        &["--include", "{S}/a/b", "--exclude", "**"],
    ),
    ok(
        "nested include under an excluded parent",
        &[
            "--include",
            "{S}/nested/keep/inner",
            "--exclude",
            "{S}/nested",
        ],
    ),
    ok(
        "include a deep file, scan parents only",
        &[
            "--include",
            "{S}/nested/keep/inner/wanted.log",
            "--exclude",
            "**",
        ],
    ),
    ok(
        "ignorecase exclude",
        &["--exclude", "ignorecase:{S}/docs/README*"],
    ),
    ok(
        "ignorecase include",
        &["--include", "IgnoreCase:{S}/*.txt", "--exclude", "**"],
    ),
    ok("class", &["--exclude", "{S}/docs/x[12].txt"]),
    ok("negated class with !", &["--exclude", "{S}/docs/x[!1].txt"]),
    ok(
        "negated class with ^ and a range",
        &["--exclude", "{S}/docs/x[^a-z].txt"],
    ),
    ok(
        "class that looks like a file name",
        &["--exclude", "{S}/docs/x[1].txt"],
    ),
    ok(
        "class with a dash and a bracket",
        &["--exclude", "{S}/docs/x[]a-].txt"],
    ),
    ok(
        "unclosed bracket is literal",
        &["--exclude", "{S}/docs/x[.txt"],
    ),
    ok("question mark", &["--exclude", "{S}/docs/x?.txt"]),
    ok(
        "wildcards against names holding ? and *",
        &["--exclude", "{S}/odd/q?mark", "--exclude", "{S}/odd/star*"],
    ),
    ok(
        "trailing slash: directories only",
        &["--exclude", "{S}/t/foo/", "--exclude", "{S}/u/foo/"],
    ),
    ok(
        "trailing slash: a symlink to a directory is not one",
        &["--exclude", "{S}/links/to-a/"],
    ),
    ok(
        "trailing slash include",
        &["--include", "{S}/a/b/", "--exclude", "**"],
    ),
    ok("dot files", &["--exclude", "{S}/dots/.*"]),
    ok("** then name", &["--exclude", "**/keep"]),
    ok(
        "**/*.py include",
        &["--include", "**/*.py", "--exclude", "**"],
    ),
    ok(
        "** in the middle",
        &["--include", "{S}/nested/**/wanted.log", "--exclude", "**"],
    ),
    ok("**/name with trailing slash", &["--exclude", "**/foo/"]),
    ok(
        "first match wins: include before exclude",
        &[
            "--include",
            "{S}/a",
            "--exclude",
            "{S}/a/b",
            "--exclude",
            "**",
        ],
    ),
    ok(
        "first match wins: exclude before include",
        &[
            "--exclude",
            "{S}/a/b",
            "--include",
            "{S}/a",
            "--exclude",
            "**",
        ],
    ),
    ok(
        "interleaved flags of different kinds",
        &[
            "--exclude-regexp",
            "deep",
            "--include",
            "{S}/a",
            "--exclude-older-than",
            "1500000000",
            "--include-regexp",
            "old/",
            "--exclude",
            "**",
        ],
    ),
    ok("exclude filelist", &["--exclude-filelist", "{L1}"]),
    ok(
        "include filelist with - lines",
        &["--include-filelist", "{L2}"],
    ),
    ok(
        "include filelist, exclude after it",
        &["--include-filelist", "{L3}", "--exclude", "**"],
    ),
    ok(
        "exclude and include filelists in order",
        &[
            "--exclude-filelist",
            "{L1}",
            "--include-filelist",
            "{L3}",
            "--exclude",
            "**",
        ],
    ),
    ok("exclude regexp", &["--exclude-regexp", r"\.txt$"]),
    ok(
        "include regexp does not scan parents",
        &["--include-regexp", "/docs/", "--exclude", "**"],
    ),
    ok(
        "include regexp, exclude regexp",
        &[
            "--include-regexp",
            "(?i)readme",
            "--exclude-regexp",
            "^{S}/docs/",
        ],
    ),
    ok(
        "regexp with alternation and a glob",
        &[
            "--exclude-regexp",
            r"\.(gz|py)$",
            "--exclude",
            "ignorecase:{S}/b.TXT",
        ],
    ),
    ok("exclude-if-present", &["--exclude-if-present", ".nobackup"]),
    ok(
        "exclude-if-present beats an earlier include",
        &[
            "--include",
            "{S}/cache",
            "--exclude-if-present",
            ".nobackup",
            "--exclude",
            "**",
        ],
    ),
    ok("exclude-device-files", &["--exclude-device-files"]),
    ok(
        "exclude-device-files moves to the front",
        &[
            "--include",
            "{S}/dev",
            "--exclude-device-files",
            "--exclude",
            "**",
        ],
    ),
    ok(
        "exclude-older-than epoch",
        &["--exclude-older-than", "1500000000"],
    ),
    ok(
        "exclude-older-than date",
        &["--exclude-older-than", "2010-01-01"],
    ),
    ok(
        "exclude-older-than interval",
        &["--exclude-older-than", "10Y"],
    ),
    ok(
        "exclude-other-filesystems",
        &["--exclude-other-filesystems"],
    ),
    ok("excluding the root keeps the root", &["--exclude", "{S}"]),
    ok(
        "include an empty directory",
        &["--include", "{S}/emptydir", "--exclude", "**"],
    ),
    ok(
        "Python $ before a final newline",
        &["--exclude", "{S}/odd/nl"],
    ),
    refused("last rule an include", &["--include", "{S}/a"], 16),
    refused(
        "last rule an include after a front-moved exclude",
        &["--include", "{S}/a", "--exclude-device-files"],
        16,
    ),
    refused(
        "include filelist alone",
        &["--include-filelist", "{L3}"],
        16,
    ),
    refused("glob outside the root", &["--exclude", "/elsewhere/a"], 14),
    refused(
        "relative glob",
        &["--include", "a/b", "--exclude", "**"],
        14,
    ),
    refused(
        "glob outside the root in a filelist",
        &["--exclude-filelist", "{L4}"],
        14,
    ),
    refused("consecutive slashes", &["--exclude", "{S}/a//b"], 15),
];

/// The member names (raw bytes) of the sigtar of the one backup set in `target` whose name
/// contains `kind` (`full-signatures` or `new-signatures`).
fn sigtar_members(target: &Path, kind: &str) -> BTreeSet<Vec<u8>> {
    let sig = fs::read_dir(target)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains(kind))
        .unwrap_or_else(|| panic!("no {kind} file in {}", target.display()));
    let mut data = Vec::new();
    flate2::read::GzDecoder::new(fs::File::open(&sig).unwrap())
        .read_to_end(&mut data)
        .unwrap();
    let mut ar = tar::Archive::new(&data[..]);
    ar.entries()
        .unwrap()
        .map(|e| e.unwrap().path_bytes().into_owned())
        .collect()
}

fn show(set: &BTreeSet<Vec<u8>>) -> String {
    set.iter()
        .map(|p| format!("    {:?}", String::from_utf8_lossy(p)))
        .collect::<Vec<_>>()
        .join("\n")
}

fn subst(s: &str, vars: &[(String, String)]) -> String {
    vars.iter()
        .fold(s.to_string(), |acc, (k, v)| acc.replace(k.as_str(), v))
}

/// Stock's and swiftdup's `full` with `opts`, each into its own new target under `tag`.
fn both(s: &Scratch, tag: &str, opts: &[String]) -> (std::process::Output, std::process::Output) {
    let src = s.join("src").display().to_string();
    let dup_args: Vec<String> = ["full", "--no-encryption"]
        .iter()
        .map(|a| a.to_string())
        .chain(opts.iter().cloned())
        .chain([src.clone(), s.url(&format!("dup-{tag}"))])
        .collect();
    let dup_args: Vec<&str> = dup_args.iter().map(|a| a.as_str()).collect();
    let dup = duplicity(s, &dup_args, &[]);
    let sd_args: Vec<String> = [
        "full".to_string(),
        src,
        s.url(&format!("sd-{tag}")),
        "--no-encryption".into(),
        "--archive-dir".into(),
        s.join("cache-sd").display().to_string(),
    ]
    .into_iter()
    .chain(opts.iter().cloned())
    .collect();
    let sd_args: Vec<&str> = sd_args.iter().map(|a| a.as_str()).collect();
    let sd = swiftdup(&sd_args, &[]);
    (dup, sd)
}

#[test]
fn selection_matches_stock_duplicity() {
    assert!(have("duplicity"), "stock duplicity 0.8.22 is needed");
    let s = Scratch::new("selection");
    let src = s.join("src");
    build_tree(&src);
    let mut vars = vec![("{S}".to_string(), src.display().to_string())];
    for (i, (key, text)) in FILELISTS.iter().enumerate() {
        let f = s.join(&format!("filelist{}", i + 1));
        fs::write(&f, subst(text, &vars)).unwrap();
        vars.push((key.to_string(), f.display().to_string()));
    }
    let outside = s.join("filelist4");
    fs::write(
        &outside,
        "# fine\n{S}/a\n/elsewhere\n".replace("{S}", &vars[0].1),
    )
    .unwrap();
    vars.push(("{L4}".into(), outside.display().to_string()));

    assert!(ROWS.len() >= 25);
    let mut failures = Vec::new();
    for (n, row) in ROWS.iter().enumerate() {
        let opts: Vec<String> = row.opts.iter().map(|o| subst(o, &vars)).collect();
        let (dup, sd) = both(&s, &n.to_string(), &opts);
        let what = format!("row {n} \"{}\" {:?}", row.name, opts);
        let log = |o: &std::process::Output| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        if let Some(code) = row.refused {
            if dup.status.code() != Some(code) {
                failures.push(format!(
                    "{what}: stock exited {:?}, expected {code}:\n{}",
                    dup.status.code(),
                    log(&dup)
                ));
            }
            if sd.status.code() != Some(2) {
                failures.push(format!(
                    "{what}: swiftdup exited {:?}, expected 2 (usage):\n{}",
                    sd.status.code(),
                    log(&sd)
                ));
            } else if s.join(&format!("sd-{n}")).exists() {
                failures.push(format!("{what}: swiftdup touched the target"));
            } else {
                let e = error_event(&sd);
                assert_eq!(e["code"], "usage", "{what}");
            }
            continue;
        }
        if dup.status.code() != Some(0) {
            failures.push(format!("{what}: stock failed:\n{}", log(&dup)));
            continue;
        }
        if sd.status.code() != Some(0) {
            failures.push(format!("{what}: swiftdup failed:\n{}", log(&sd)));
            continue;
        }
        let want = sigtar_members(&s.join(&format!("dup-{n}")), "full-signatures");
        let got = sigtar_members(&s.join(&format!("sd-{n}")), "full-signatures");
        if want != got {
            let missing: BTreeSet<_> = want.difference(&got).cloned().collect();
            let extra: BTreeSet<_> = got.difference(&want).cloned().collect();
            failures.push(format!(
                "{what}: different paths\n  only in stock's archive:\n{}\n  only in swiftdup's archive:\n{}",
                show(&missing),
                show(&extra)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows differ from stock duplicity:\n\n{}",
        failures.len(),
        ROWS.len(),
        failures.join("\n\n")
    );
}

/// An incremental that excludes what the full had: both tools record the same `deleted/`
/// entries, stock lists the same current files from both archives, and `verify` with the
/// same options finds no difference.
#[test]
fn newly_excluded_paths_are_deleted_in_the_incremental() {
    let s = Scratch::new("selection-incr");
    let src = s.join("src");
    build_tree(&src);
    let src_s = src.display().to_string();
    let run = |verb: &str, t: i64, opts: &[&str]| {
        let t = t.to_string();
        let mut dup_args = vec![verb, "--no-encryption", "--current-time", &t];
        dup_args.extend_from_slice(opts);
        let dup_url = s.url("dup");
        dup_args.extend([src_s.as_str(), dup_url.as_str()]);
        duplicity_ok(&s, &dup_args, &[]);
        let sd_url = s.url("sd");
        let cache = s.join("cache-sd").display().to_string();
        let mut sd_args = vec![
            verb,
            src_s.as_str(),
            sd_url.as_str(),
            "--no-encryption",
            "--archive-dir",
            &cache,
            "--current-time",
            &t,
        ];
        sd_args.extend_from_slice(opts);
        swiftdup_ok(&sd_args, &[]);
    };
    run("full", T1, &[]);
    let excl_a = format!("{src_s}/a");
    let incl_keep = format!("{src_s}/nested/keep/inner");
    let excl_nested = format!("{src_s}/nested");
    run(
        "incremental",
        T2,
        &[
            "--exclude",
            &excl_a,
            "--include",
            &incl_keep,
            "--exclude",
            &excl_nested,
            "--exclude-if-present",
            ".nobackup",
        ],
    );
    let want = sigtar_members(&s.join("dup"), "new-signatures");
    let got = sigtar_members(&s.join("sd"), "new-signatures");
    assert!(
        want.iter().any(|m| m.starts_with(b"deleted/a/b")),
        "stock recorded no deletions:\n{}",
        show(&want)
    );
    assert_eq!(
        want,
        got,
        "incremental sigtar members differ:\nstock:\n{}\nswiftdup:\n{}",
        show(&want),
        show(&got)
    );
    let list = |url: &str| {
        let o = duplicity_ok(&s, &["list-current-files", "--no-encryption", url], &[]);
        // Each line: a 24-character asctime, a space, the path.
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.len() > 25 && l.as_bytes()[24] == b' ')
            .map(|l| l[25..].to_string())
            .collect::<BTreeSet<_>>()
    };
    // verify compares only the selected part of the source, as stock's does.
    let verify = |opts: &[&str]| {
        let sd_url = s.url("sd");
        let cache = s.join("cache-sd").display().to_string();
        let mut args = vec![
            "verify",
            sd_url.as_str(),
            src_s.as_str(),
            "--no-encryption",
            "--archive-dir",
            &cache,
        ];
        args.extend_from_slice(opts);
        swiftdup(&args, &[]).status.code()
    };
    assert_eq!(
        verify(&[
            "--exclude",
            &excl_a,
            "--include",
            &incl_keep,
            "--exclude",
            &excl_nested,
            "--exclude-if-present",
            ".nobackup",
        ]),
        Some(0)
    );
    assert_eq!(verify(&[]), Some(1), "the excluded files are differences");
    let dup_list = list(&s.url("dup"));
    assert!(!dup_list.iter().any(|p| p.starts_with("a/")));
    assert!(dup_list.contains("nested/keep/inner/wanted.log"));
    assert_eq!(dup_list, list(&s.url("sd")));
}
