//! Pure duplicity format code: no I/O beyond `Read`/`Write` on byte streams.
//!
//! - `names`: remote file names; `time`: time strings; `manifest`: the manifest and quoting;
//! - `tar`: Python-compatible tar headers and a tolerant reader;
//! - this module: indexes and member names (§2.2).

pub mod collection;
pub mod manifest;
pub mod names;
pub mod sigtar;
pub mod tar;
pub mod time;

/// A path relative to the backup root as raw byte components; `[]` is the root.
/// `Vec<Vec<u8>>` orders exactly like duplicity's tuples of byte strings (§2.5).
pub type Index = Vec<Vec<u8>>;

/// The size of the pieces big files are cut into (§2.6). Stock's resume logic assumes it.
pub const MULTIVOL_CHUNK: usize = 65536;

/// What a volume or signature member carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    Snapshot,
    Diff,
    Deleted,
    Signature,
}

impl MemberKind {
    fn prefix(self, multivol: bool) -> &'static [u8] {
        match (self, multivol) {
            (MemberKind::Snapshot, false) => b"snapshot/",
            (MemberKind::Diff, false) => b"diff/",
            (MemberKind::Snapshot, true) => b"multivol_snapshot/",
            (MemberKind::Diff, true) => b"multivol_diff/",
            (MemberKind::Deleted, _) => b"deleted/",
            (MemberKind::Signature, _) => b"signature/",
        }
    }
}

/// Join an index with `/`.
pub fn index_path(index: &Index) -> Vec<u8> {
    index.join(&b'/')
}

/// Printable form of an index for logs (lossy for non-UTF-8 bytes).
pub fn index_display(index: &Index) -> String {
    if index.is_empty() {
        return ".".into();
    }
    String::from_utf8_lossy(&index_path(index)).into_owned()
}

/// The member name of an entry in a volume. `dir` adds the trailing `/` Python gives
/// directories; the root is `snapshot/./` in volumes (`in_sigtar` false) and `snapshot/`
/// in signature files (§2.2).
pub fn member_name(
    kind: MemberKind,
    index: &Index,
    dir: bool,
    chunk: Option<u64>,
    in_sigtar: bool,
) -> Vec<u8> {
    let mut name = kind.prefix(chunk.is_some()).to_vec();
    if index.is_empty() {
        if !in_sigtar {
            name.push(b'.');
        }
    } else {
        name.extend_from_slice(&index_path(index));
    }
    if let Some(k) = chunk {
        name.push(b'/');
        name.extend_from_slice(k.to_string().as_bytes());
    }
    if dir && name.last() != Some(&b'/') {
        name.push(b'/');
    }
    name
}

/// A member name taken apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedMember {
    pub kind: MemberKind,
    pub index: Index,
    /// Set for `multivol_*` members: the chunk number in the name.
    pub chunk: Option<u64>,
}

/// Parse a member name (§2.2). Errors on unknown prefixes and on any index that would leave
/// the restore target: `..` components (stock's "Security violation") and absolute names.
pub fn parse_member_name(name: &[u8]) -> Result<ParsedMember, String> {
    let show = || String::from_utf8_lossy(name).into_owned();
    let (kind, multivol, rest) = [
        (&b"multivol_snapshot/"[..], MemberKind::Snapshot, true),
        (b"multivol_diff/", MemberKind::Diff, true),
        (b"snapshot/", MemberKind::Snapshot, false),
        (b"diff/", MemberKind::Diff, false),
        (b"deleted/", MemberKind::Deleted, false),
        (b"signature/", MemberKind::Signature, false),
    ]
    .iter()
    .find_map(|(p, k, m)| name.strip_prefix(*p).map(|r| (*k, *m, r)))
    .or_else(|| match name {
        b"snapshot" => Some((MemberKind::Snapshot, false, &b""[..])),
        b"deleted" => Some((MemberKind::Deleted, false, &b""[..])),
        _ => None,
    })
    .ok_or_else(|| format!("unknown member {:?}", show()))?;
    if rest.first() == Some(&b'/') {
        return Err(format!("refused absolute member name {:?}", show()));
    }
    let mut path = rest.strip_suffix(b"/").unwrap_or(rest);
    let mut chunk = None;
    if multivol {
        let slash = path
            .iter()
            .rposition(|&b| b == b'/')
            .ok_or_else(|| format!("bad multivol member {:?}", show()))?;
        let num = std::str::from_utf8(&path[slash + 1..])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad multivol member {:?}", show()))?;
        chunk = Some(num);
        path = &path[..slash];
    }
    let index: Index = if path.is_empty() || path == b"." {
        Vec::new()
    } else {
        path.split(|&b| b == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .map(|c| c.to_vec())
            .collect()
    };
    if index.iter().any(|c| c == b"..") {
        return Err(format!(
            "refused member {:?}: it would escape the target",
            show()
        ));
    }
    Ok(ParsedMember { kind, index, chunk })
}

/// Lowercase hex, as manifests write their volume hashes (and as digests are compared).
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(s: &str) -> Index {
        s.split('/').map(|c| c.as_bytes().to_vec()).collect()
    }

    #[test]
    fn member_names_as_stock_writes_them() {
        assert_eq!(
            member_name(MemberKind::Snapshot, &vec![], true, None, false),
            b"snapshot/./"
        );
        assert_eq!(
            member_name(MemberKind::Snapshot, &vec![], true, None, true),
            b"snapshot/"
        );
        assert_eq!(
            member_name(MemberKind::Snapshot, &idx("a/b"), true, None, false),
            b"snapshot/a/b/"
        );
        assert_eq!(
            member_name(MemberKind::Diff, &idx("f"), false, None, false),
            b"diff/f"
        );
        assert_eq!(
            member_name(
                MemberKind::Snapshot,
                &idx("big.bin"),
                false,
                Some(16),
                false
            ),
            b"multivol_snapshot/big.bin/16"
        );
        assert_eq!(
            member_name(MemberKind::Deleted, &idx("x"), false, None, false),
            b"deleted/x"
        );
        assert_eq!(
            member_name(MemberKind::Signature, &idx("x"), false, None, true),
            b"signature/x"
        );
    }

    #[test]
    fn member_names_parse_back() {
        let p = parse_member_name(b"multivol_diff/dir/big.bin/7").unwrap();
        assert_eq!(
            (p.kind, p.index, p.chunk),
            (MemberKind::Diff, idx("dir/big.bin"), Some(7))
        );
        assert_eq!(
            parse_member_name(b"snapshot/./").unwrap().index,
            Index::new()
        );
        assert_eq!(parse_member_name(b"snapshot/").unwrap().index, Index::new());
        assert_eq!(parse_member_name(b"snapshot").unwrap().index, Index::new());
        assert_eq!(parse_member_name(b"snapshot/d/").unwrap().index, idx("d"));
        assert_eq!(parse_member_name(b"deleted/a b").unwrap().index, idx("a b"));
    }

    #[test]
    fn escaping_members_are_refused() {
        for bad in [
            &b"snapshot/../escape"[..],
            b"snapshot//abs",
            b"diff/a/../../b",
            b"multivol_snapshot/../x/1",
            b"evil/x",
        ] {
            assert!(
                parse_member_name(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn index_order_is_component_wise() {
        // ("a","b") < ("a-b",) although "a-b" < "a/b" as strings (§2.5).
        assert!(idx("a/b") < idx("a-b"));
        assert!(Index::new() < idx("a"));
        assert!(idx("a") < idx("a/b"));
        assert!(vec![vec![0x7fu8]] < vec![vec![0xffu8]]);
    }
}
