//! Crafted archives, as an attacker with write access to a container would make them:
//! tar members of any kind and name, written into a set's first volume with the manifest's
//! hash fixed to match, and a sentinel outside the restore target to show nothing there
//! changed.
#![allow(dead_code)]

use crate::support::Scratch;
use std::fs;
use swiftdup::archive::tar::{self, Header};

pub fn member(name: &[u8], typ: u8, link: &[u8]) -> Header {
    Header {
        name: name.to_vec(),
        typ,
        mode: 0o644,
        mtime: 1_699_990_000,
        linkname: link.to_vec(),
        ..Header::default()
    }
}

pub fn root() -> (Header, Vec<u8>) {
    (member(b"snapshot/./", tar::DIRTYPE, b""), vec![])
}

pub fn dir(path: &str) -> (Header, Vec<u8>) {
    (
        member(format!("snapshot/{path}/").as_bytes(), tar::DIRTYPE, b""),
        vec![],
    )
}

pub fn link(path: &str, to: &std::path::Path) -> (Header, Vec<u8>) {
    (
        member(
            format!("snapshot/{path}").as_bytes(),
            tar::SYMTYPE,
            to.to_str().unwrap().as_bytes(),
        ),
        vec![],
    )
}

/// A regular-file member of `kind` at `path` holding "pwned".
pub fn pwned(kind: &str, path: &str) -> (Header, Vec<u8>) {
    let name = match kind {
        "multivol_snapshot" | "multivol_diff" => format!("{kind}/{path}/1"),
        _ => format!("{kind}/{path}"),
    };
    (
        member(name.as_bytes(), tar::REGTYPE, b""),
        b"pwned".to_vec(),
    )
}

/// Replace the volume 1 and fix the manifest of the set whose names contain `set`.
pub fn forge_set(s: &Scratch, set: &str, members: &[(Header, Vec<u8>)]) {
    let mut t = Vec::new();
    for (h, data) in members {
        let mut h = h.clone();
        h.size = data.len() as u64;
        tar::write_member(&mut t, &h, data).unwrap();
    }
    t.resize(t.len() + tar::footer_len(t.len() as u64), 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    std::io::Write::write_all(&mut gz, &t).unwrap();
    let bytes = gz.finish().unwrap();
    let pick = |suffix: &str| {
        let v: Vec<_> = fs::read_dir(s.join("target"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.contains(set) && n.contains(suffix)
            })
            .collect();
        assert_eq!(v.len(), 1, "one {set} {suffix}");
        v[0].clone()
    };
    fs::write(pick(".vol1.difftar"), &bytes).unwrap();
    let sha = swiftdup::archive::hex(&<sha1::Sha1 as sha1::Digest>::digest(&bytes));
    let man = pick(".manifest");
    let text = String::from_utf8(fs::read(&man).unwrap()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("Hash SHA1"))
        .unwrap()
        .to_string();
    let end = text
        .lines()
        .find(|l| l.contains("EndingPath"))
        .unwrap()
        .to_string();
    // The volume covers every path the forged members use (for --file-to-restore), and
    // the Filelist goes (it lists the files of the real volume).
    let text = text
        .replace(&line, &format!("    Hash SHA1 {sha}"))
        .replace(&end, "    EndingPath     zzzz  ");
    let text = &text[..text.find("Filelist").unwrap_or(text.len())];
    fs::write(&man, text).unwrap();
}

/// A directory beside TARGET with a sentinel file, and the listing of TARGET's parent, to
/// show that a restore changed nothing outside TARGET.
pub struct Outside {
    pub dir: std::path::PathBuf,
    parent: Vec<String>,
}

impl Outside {
    pub fn new(s: &Scratch) -> Outside {
        let dir = s.join("outside");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("sentinel.txt"), b"untouched").unwrap();
        Outside {
            dir,
            parent: Self::listing(&s.join("")),
        }
    }

    fn listing(dir: &std::path::Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Nothing changed outside TARGET (`out`) and the restore's own cache.
    pub fn check(&self, s: &Scratch, out: &str, case: &str) {
        assert_eq!(
            Self::listing(&self.dir),
            ["sentinel.txt"],
            "{case}: written outside"
        );
        assert_eq!(
            fs::read(self.dir.join("sentinel.txt")).unwrap(),
            b"untouched",
            "{case}: the sentinel was overwritten"
        );
        let now: Vec<String> = Self::listing(&s.join(""))
            .into_iter()
            .filter(|n| n != out && *n != format!("cache-{out}"))
            .collect();
        let before: Vec<String> = self.parent.iter().filter(|n| *n != out).cloned().collect();
        assert_eq!(now, before, "{case}: TARGET's parent changed");
    }
}
