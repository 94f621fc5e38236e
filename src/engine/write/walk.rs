//! The source tree, walked depth first in pre-order with each directory's children sorted
//! by raw bytes: exactly duplicity's index order (§2.5, §6.2).
//!
//! Memory: one sorted name list per directory on the current path (a per-entry cost of the
//! directories being walked), never the whole tree. A directory the selection only "scans"
//! is held back on that same stack until something inside it is included (then it is
//! emitted just before that entry, keeping the order) or until its listing ends (then it
//! is dropped), as stock's `Select.Iterate` does.

use crate::archive::Index;
use crate::engine::write::select::{Selection, Verdict};
use crate::local::platform::{self, Kind, Stat};
use std::collections::VecDeque;
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
    /// A regular file whose data is standard input, not `path` (see `Source::stdin`).
    pub stdin: bool,
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

/// Decides, for each entry below the root, whether it is backed up.
pub trait Filter {
    /// `Include` takes the entry (and walks into a directory), `Exclude` prunes it with its
    /// subtree, `Scan` walks into a directory that is emitted only if something inside it
    /// is included (`Scan` of anything but a directory leaves it out).
    fn select(&mut self, entry: &Entry) -> Verdict;
}

/// The filter that takes everything.
pub struct All;
impl Filter for All {
    fn select(&mut self, _: &Entry) -> Verdict {
        Verdict::Include
    }
}

/// duplicity's include/exclude rules.
impl Filter for Selection {
    fn select(&mut self, entry: &Entry) -> Verdict {
        Selection::select(self, &entry.index, &entry.path, &entry.stat)
    }
}

struct Level {
    dir: PathBuf,
    /// `dir` opened, to `lstat` its entries by name (None: by path).
    handle: Option<platform::Dir>,
    index: Index,
    names: std::vec::IntoIter<Vec<u8>>,
    /// This directory's own entry while it is only scanned and not yet emitted.
    held: Option<Entry>,
}

/// The walk as an iterator; errors on the root itself are returned by `new`.
pub struct Walk<F: Filter> {
    stack: Vec<Level>,
    root: Option<Entry>,
    filter: F,
    /// Items ready to be returned, in order (held directories released before an entry).
    out: VecDeque<Item>,
    /// How many levels of `stack` hold their entry back; they are always the innermost.
    held: usize,
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
            stdin: false,
        };
        Ok(Walk {
            stack: Vec::new(),
            root: Some(entry),
            filter,
            out: VecDeque::new(),
            held: 0,
        })
    }

    /// Something is included: the scanned directories above it are backed up after all.
    fn release_held(&mut self) {
        if self.held == 0 {
            return;
        }
        for level in &mut self.stack {
            if let Some(e) = level.held.take() {
                self.out.push_back(Item::Entry(e));
            }
        }
        self.held = 0;
    }

    /// After yielding a directory, descend into it.
    fn push_dir(&mut self, e: &Entry) -> Option<Item> {
        match std::fs::read_dir(&e.path) {
            Ok(rd) => {
                let mut names = Vec::new();
                for d in rd {
                    match d {
                        Ok(d) => names.push(platform::into_name_bytes(d.file_name())),
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
                    handle: platform::open_dir(&e.path),
                    index: e.index.clone(),
                    names: names.into_iter(),
                    held: None,
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
        if let Some(p) = self.out.pop_front() {
            return Some(p);
        }
        if let Some(root) = self.root.take() {
            // The root is always included: a backup without it is no backup.
            if let Some(u) = self.push_dir(&root) {
                // Listing the root failed: report it after the root entry itself.
                self.out.push_back(u);
            }
            return Some(Item::Entry(root));
        }
        loop {
            let level = self.stack.last_mut()?;
            let Some(name) = level.names.next() else {
                if let Some(level) = self.stack.pop() {
                    if level.held.is_some() {
                        // Nothing inside was included: the scanned directory is left out.
                        self.held -= 1;
                    }
                }
                continue;
            };
            let path = platform::join_name(&level.dir, &name);
            let stat = match platform::lstat_in(level.handle.as_ref(), &name, &path) {
                Ok(s) => s,
                // Gone between listdir and lstat: absent, as in stock (§6.2).
                Err(_) => continue,
            };
            let mut index = Vec::with_capacity(level.index.len() + 1);
            index.extend(level.index.iter().cloned());
            index.push(name);
            if stat.kind == Kind::Socket {
                if self.held > 0 {
                    // Reported after a held directory that may still be emitted, it would
                    // break the index order; stock skips sockets silently at Info level.
                    continue;
                }
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
                stdin: false,
            };
            match self.filter.select(&entry) {
                Verdict::Exclude => continue,
                Verdict::Scan if entry.stat.kind != Kind::Dir => continue,
                Verdict::Scan => {
                    if let Some(u) = self.push_dir(&entry) {
                        // Whether anything inside is wanted cannot be known: keep the
                        // directory's previous state, as for an included one, which needs
                        // its parents in the backup.
                        self.release_held();
                        self.out.push_back(u);
                    } else if let Some(level) = self.stack.last_mut() {
                        level.held = Some(entry);
                        self.held += 1;
                    }
                }
                Verdict::Include => {
                    self.release_held();
                    if entry.stat.kind == Kind::Dir {
                        if let Some(u) = self.push_dir(&entry) {
                            // The directory's own entry is not emitted: its whole subtree,
                            // itself included, keeps its previous state.
                            self.out.push_back(u);
                        } else {
                            self.out.push_back(Item::Entry(entry));
                        }
                    } else {
                        self.out.push_back(Item::Entry(entry));
                    }
                }
            }
            if let Some(p) = self.out.pop_front() {
                return Some(p);
            }
        }
    }
}

/// What a backup reads: a directory tree, or standard input stored as one file.
pub enum Source {
    Tree(Box<Walk<Selection>>),
    /// The root directory and one file whose data is standard input (a database dump
    /// piped in).
    Stdin(Vec<Item>),
}

impl Source {
    /// Standard input as the file `name` in an otherwise empty root. Both entries are dated
    /// `now` and owned by this process, private to it (0700, 0600): a dump has no mtime or
    /// mode of its own, and one dated `now` is always compared, by rsync delta, with the
    /// previous dump rather than taken as unchanged.
    pub fn stdin(name: &[u8], now: i64) -> Source {
        let entry = |index: Index, kind: Kind, mode: u32| Entry {
            index,
            path: PathBuf::from("-"),
            stat: Stat {
                kind,
                mode,
                uid: platform::euid().unwrap_or(0),
                gid: platform::egid().unwrap_or(0),
                mtime: now,
                size: 0,
                dev: 0,
                rdev_major: 0,
                rdev_minor: 0,
            },
            linkname: Vec::new(),
            stdin: kind == Kind::File,
        };
        Source::Stdin(vec![
            Item::Entry(entry(Vec::new(), Kind::Dir, 0o700)),
            Item::Entry(entry(vec![name.to_vec()], Kind::File, 0o600)),
        ])
    }

    /// The items in order, the walk run `ahead` when `threaded`; with `reads_all` (every
    /// regular file will be read: a full backup) it also starts reading small files in.
    pub fn items(
        self,
        threaded: bool,
        reads_all: bool,
    ) -> io::Result<Box<dyn Iterator<Item = Item>>> {
        match self {
            Source::Tree(walk) => ahead(*walk, threaded, reads_all),
            Source::Stdin(items) => Ok(Box::new(items.into_iter())),
        }
    }
}

/// Items are sent in batches of this many, with at most `AHEAD_DEPTH` batches queued.
const AHEAD_BATCH: usize = 256;
const AHEAD_DEPTH: usize = 4;

/// The walk run ahead of its consumer on a thread of its own where there are threads, so
/// that the `lstat`s and directory listings overlap with whatever the caller does with
/// each entry (in an incremental: comparing it with the signature chain). Order and items
/// are exactly the walk's; at most (AHEAD_DEPTH + 2) × AHEAD_BATCH entries are in flight.
/// Under WASI, or when not `threaded` (`--concurrency 1`), the walk runs inline.
///
/// With `reads_all` (every regular file will be read), the small files of each batch are
/// read into the page cache in the background before it is sent ([`read_in`]).
pub fn ahead<F: Filter + Send + 'static>(
    walk: Walk<F>,
    threaded: bool,
    reads_all: bool,
) -> io::Result<Box<dyn Iterator<Item = Item>>> {
    if !threaded || cfg!(target_os = "wasi") {
        return Ok(Box::new(walk));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Item>>(AHEAD_DEPTH);
    let handle = std::thread::Builder::new()
        .name("walk".into())
        .spawn(move || {
            let mut walk = walk;
            loop {
                let batch: Vec<Item> = walk.by_ref().take(AHEAD_BATCH).collect();
                let last = batch.len() < AHEAD_BATCH;
                if reads_all {
                    read_in(&batch);
                }
                // A send fails only when the consumer is gone: stop walking.
                if tx.send(batch).is_err() || last {
                    return;
                }
            }
        })?;
    Ok(Box::new(Ahead {
        rx,
        cur: Vec::new().into_iter(),
        handle: Some(handle),
    }))
}

/// Files up to this size are read in ahead; bigger ones are read sequentially, which the
/// kernel's own readahead already keeps ahead of.
const READ_IN_FILE: u64 = 1 << 20;
/// At most this much is asked for per batch, so at most (AHEAD_DEPTH + 2) times it is in
/// the page cache ahead of the reader.
const READ_IN_BATCH: u64 = 16 << 20;

/// Ask the kernel to start reading the batch's small files (`platform::read_in`). A backup
/// reads files one after another on one thread, and each small file's first read waited
/// for the disk: 10,000 files of a few KiB took 0.75 s read in turn from a cold cache, and
/// 0.38 s four at a time. The reads run in the disk's queue while the backup works on the
/// files before them.
fn read_in(batch: &[Item]) {
    let mut asked = 0;
    for item in batch {
        if let Item::Entry(e) = item {
            let size = e.stat.size;
            if e.stat.kind == Kind::File && !e.stdin && size > 0 && size <= READ_IN_FILE {
                if asked + size > READ_IN_BATCH {
                    return;
                }
                asked += size;
                platform::read_in(&e.path, size);
            }
        }
    }
}

struct Ahead {
    rx: std::sync::mpsc::Receiver<Vec<Item>>,
    cur: std::vec::IntoIter<Item>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for Ahead {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(i) = self.cur.next() {
                return Some(i);
            }
            self.handle.as_ref()?;
            match self.rx.recv() {
                // A short batch (possibly empty) is the walk's last.
                Ok(b) if b.len() < AHEAD_BATCH => {
                    self.join();
                    self.cur = b.into_iter();
                }
                Ok(b) => self.cur = b.into_iter(),
                // The thread is gone without its last batch: it panicked. Carry the panic
                // here rather than let a cut-short walk pass for the whole tree.
                Err(_) => {
                    self.join();
                    return None;
                }
            }
        }
    }
}

impl Ahead {
    fn join(&mut self) {
        if let Some(h) = self.handle.take() {
            if let Err(panic) = h.join() {
                std::panic::resume_unwind(panic);
            }
        }
    }
}

/// The size of the regular files a walk will find, counted on a thread of its own while
/// the backup runs (only for the live progress line on a terminal: a second walk of the
/// tree costs `lstat`s that a CronJob's run need not pay). The total is known once done.
#[derive(Default)]
pub struct PreScan {
    bytes: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicBool,
}

impl PreScan {
    pub fn start<F: Filter + Send + 'static>(walk: Walk<F>) -> std::sync::Arc<PreScan> {
        use std::sync::atomic::Ordering;
        let scan = std::sync::Arc::new(PreScan::default());
        let s = scan.clone();
        // Without a thread there is no total: the line then shows no percent, nothing else.
        let _ = std::thread::Builder::new()
            .name("prescan".into())
            .spawn(move || {
                for item in walk {
                    if let Item::Entry(e) = item {
                        if e.stat.kind == crate::local::platform::Kind::File {
                            s.bytes.fetch_add(e.stat.size, Ordering::Relaxed);
                        }
                    }
                    if crate::interrupt::pending().is_some() {
                        return;
                    }
                }
                s.done.store(true, Ordering::Release);
            });
        scan
    }

    /// The total, once the scan has finished.
    pub fn total(&self) -> Option<u64> {
        use std::sync::atomic::Ordering;
        self.done
            .load(Ordering::Acquire)
            .then(|| self.bytes.load(Ordering::Relaxed))
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
                Item::Entry(e) => got.push(crate::archive::index_display(&e.index)),
                Item::Skipped { index, .. } => {
                    got.push(format!("skip {}", crate::archive::index_display(&index)))
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

    fn shown(items: impl Iterator<Item = Item>) -> Vec<String> {
        items
            .map(|i| match i {
                Item::Entry(e) => {
                    format!("{} {:?}", crate::archive::index_display(&e.index), e.stat)
                }
                Item::Skipped { index, .. } => {
                    format!("skip {}", crate::archive::index_display(&index))
                }
                Item::Unreadable { index, .. } => {
                    format!("unreadable {}", crate::archive::index_display(&index))
                }
            })
            .collect()
    }

    /// Walked ahead on its own thread, the walk yields the same items with the same `lstat`
    /// data (taken by name in the open directory) as inline by path, for trees ending on a
    /// batch boundary, just past it and within the first batch.
    #[test]
    fn walk_ahead_equals_the_walk() {
        for files in [
            3,
            AHEAD_BATCH - 2,
            AHEAD_BATCH - 1,
            AHEAD_BATCH,
            3 * AHEAD_BATCH + 7,
        ] {
            let d =
                std::env::temp_dir().join(format!("swiftdup-ahead-{}-{files}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(d.join("sub")).unwrap();
            for i in 0..files {
                let dir = if i % 3 == 0 { "sub" } else { "" };
                std::fs::write(d.join(dir).join(format!("f{i}")), vec![b'x'; i]).unwrap();
            }
            std::os::unix::fs::symlink("f1", d.join("link")).unwrap();
            let inline = shown(Walk::new(d.clone(), All).unwrap());
            let read_in = shown(ahead(Walk::new(d.clone(), All).unwrap(), true, true).unwrap());
            let ahead = shown(ahead(Walk::new(d.clone(), All).unwrap(), true, false).unwrap());
            assert_eq!(inline.len(), files + 3);
            assert!(ahead == inline, "{files} files");
            assert!(read_in == inline, "{files} files, small files read in");
            let by_path = shown(Walk::new(d.clone(), All).unwrap().map(|i| match i {
                Item::Entry(mut e) => {
                    e.stat = platform::lstat(&e.path).unwrap();
                    Item::Entry(e)
                }
                other => other,
            }));
            assert!(
                by_path == inline,
                "lstat by name differs from lstat by path"
            );
            std::fs::remove_dir_all(&d).unwrap();
        }
    }
}
