//! The source tree, walked depth first in pre-order with each directory's children sorted
//! by raw bytes: exactly duplicity's index order (§2.5, §6.2).
//!
//! Memory: one sorted name list per directory on the current path (a per-entry cost of the
//! directories being walked), never the whole tree.

use crate::format::Index;
use crate::platform::{self, Kind, Stat};
use std::io;
use std::path::PathBuf;

/// One entry of the source tree.
#[derive(Clone, Debug)]
pub struct Entry {
    pub index: Index,
    pub path: PathBuf,
    pub stat: Stat,
    /// The symlink target, for symlinks.
    pub linkname: Vec<u8>,
}

/// What the walk yields.
#[derive(Debug)]
pub enum Item {
    Entry(Entry),
    /// A directory that cannot be listed: its previous contents are carried forward.
    Unreadable {
        index: Index,
        path: PathBuf,
        error: io::Error,
    },
    /// An entry skipped on purpose (sockets), with the reason, for an info event.
    Skipped {
        index: Index,
        reason: &'static str,
    },
}

/// Decides, for each entry, whether it is backed up (selection rules plug in here).
pub trait Filter {
    /// `true` to include the entry; for a directory `false` prunes its whole subtree.
    fn include(&mut self, entry: &Entry) -> bool;
}

/// The filter that takes everything.
pub struct All;
impl Filter for All {
    fn include(&mut self, _: &Entry) -> bool {
        true
    }
}

struct Level {
    dir: PathBuf,
    index: Index,
    names: std::vec::IntoIter<Vec<u8>>,
}

/// The walk as an iterator; errors on the root itself are returned by `new`.
pub struct Walk<F: Filter> {
    stack: Vec<Level>,
    root: Option<Entry>,
    filter: F,
    pending: Option<Item>,
}

fn read_link(path: &std::path::Path) -> io::Result<Vec<u8>> {
    Ok(platform::os_bytes(&std::fs::read_link(path)?))
}

impl<F: Filter> Walk<F> {
    /// Start at `root`, which must be a directory.
    pub fn new(root: PathBuf, filter: F) -> io::Result<Self> {
        let stat = platform::lstat(&root)?;
        if stat.kind != Kind::Dir {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            ));
        }
        let entry = Entry {
            index: Vec::new(),
            path: root,
            stat,
            linkname: Vec::new(),
        };
        Ok(Walk {
            stack: Vec::new(),
            root: Some(entry),
            filter,
            pending: None,
        })
    }

    /// After yielding a directory, descend into it.
    fn push_dir(&mut self, e: &Entry) -> Option<Item> {
        match std::fs::read_dir(&e.path) {
            Ok(rd) => {
                let mut names = Vec::new();
                for d in rd {
                    match d {
                        Ok(d) => names.push(platform::name_bytes(&d.file_name())),
                        Err(error) => {
                            return Some(Item::Unreadable {
                                index: e.index.clone(),
                                path: e.path.clone(),
                                error,
                            });
                        }
                    }
                }
                names.sort_unstable();
                self.stack.push(Level {
                    dir: e.path.clone(),
                    index: e.index.clone(),
                    names: names.into_iter(),
                });
                None
            }
            Err(error) => Some(Item::Unreadable {
                index: e.index.clone(),
                path: e.path.clone(),
                error,
            }),
        }
    }
}

impl<F: Filter> Iterator for Walk<F> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        if let Some(p) = self.pending.take() {
            return Some(p);
        }
        if let Some(root) = self.root.take() {
            // The root is always included: a backup without it is no backup.
            if let Some(u) = self.push_dir(&root) {
                // Listing the root failed: report it after the root entry itself.
                self.pending = Some(u);
            }
            return Some(Item::Entry(root));
        }
        loop {
            let level = self.stack.last_mut()?;
            let Some(name) = level.names.next() else {
                self.stack.pop();
                continue;
            };
            let path = level.dir.join(platform::path_from_bytes(&name));
            let mut index = level.index.clone();
            index.push(name);
            let stat = match platform::lstat(&path) {
                Ok(s) => s,
                // Gone between listdir and lstat: absent, as in stock (§6.2).
                Err(_) => continue,
            };
            if stat.kind == Kind::Socket {
                return Some(Item::Skipped {
                    index,
                    reason: "socket",
                });
            }
            let linkname = if stat.kind == Kind::Symlink {
                match read_link(&path) {
                    Ok(l) => l,
                    Err(_) => continue,
                }
            } else {
                Vec::new()
            };
            let entry = Entry {
                index,
                path,
                stat,
                linkname,
            };
            if !self.filter.include(&entry) {
                continue;
            }
            if entry.stat.kind == Kind::Dir {
                if let Some(u) = self.push_dir(&entry) {
                    // The directory's own entry is not emitted: its whole subtree, itself
                    // included, keeps its previous state.
                    return Some(u);
                }
            }
            return Some(Item::Entry(entry));
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn walk_order_is_duplicity_order() {
        let d = std::env::temp_dir().join(format!("swiftdup-walk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        for p in ["a/b", "a-b", "b"] {
            std::fs::create_dir_all(d.join(p)).unwrap();
        }
        std::fs::write(d.join("a/b/f"), b"x").unwrap();
        std::fs::write(d.join("a/z"), b"x").unwrap();
        std::os::unix::net::UnixListener::bind(d.join("sock")).unwrap();
        let mut got = Vec::new();
        for item in Walk::new(d.clone(), All).unwrap() {
            match item {
                Item::Entry(e) => got.push(crate::format::index_display(&e.index)),
                Item::Skipped { index, .. } => {
                    got.push(format!("skip {}", crate::format::index_display(&index)))
                }
                Item::Unreadable { .. } => panic!(),
            }
        }
        assert_eq!(
            got,
            [".", "a", "a/b", "a/b/f", "a/z", "a-b", "b", "skip sock"]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
