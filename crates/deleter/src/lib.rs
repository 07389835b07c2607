//! Removing a directory tree without ever leaving it.
//!
//! Written here rather than taken from `remove_dir_all`/`jwalk` because the sweeper needs what
//! neither offers together: a deadline that stops cleanly and leaves a tree a later run finishes,
//! counts of files/directories/bytes freed, per-entry errors that do not abort the rest, a device
//! check at every directory, and making read-only directories writable.
//!
//! Every operation is relative to an open directory handle and acts on the entry itself, never
//! on what a name points to: `lstat`, `unlinkat` without `AT_REMOVEDIR` (which never removes a
//! directory), `openat` with `O_NOFOLLOW` whose handle is checked again (directory, same device),
//! and mode changes through a handle. A racer who swaps an entry between two steps gets an error
//! or an entry removed as what it now is, never a step outside the tree.
//!
//! Memory does not depend on the shape of the tree: a walk holds at most a fixed number of
//! directories (each its handle and its own name, never a full path); a directory deeper than
//! that is moved up into the walk's top directory and removed from there. Full paths are built
//! only for the errors a report keeps, and a report keeps a bounded number of them.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};
use rustix::io::Errno;
use serde::Serialize;

/// What one removal freed, and what it could not remove.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovalReport {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
    /// True when the whole tree is gone.
    pub complete: bool,
    /// True when the deadline stopped the work; what is left is a consistent, smaller tree.
    pub stopped_at_deadline: bool,
    /// The first [`MAX_REPORTED_ERRORS`] errors.
    pub errors: Vec<EntryError>,
    /// Errors past those, counted only.
    pub errors_omitted: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    /// Where the entry is; a path longer than [`MAX_REPORTED_PATH`] keeps the top and the last
    /// components, with `…` for the ones left out.
    pub path: PathBuf,
    pub error: String,
}

/// Errors a report lists; the rest are counted (a tree of a million unremovable files must not
/// exhaust memory).
pub const MAX_REPORTED_ERRORS: usize = 100;
/// Bytes of components below the top that a reported path keeps (a tree can be far deeper than
/// `PATH_MAX`).
pub const MAX_REPORTED_PATH: usize = 1024;

impl RemovalReport {
    /// Every error met, listed or not.
    pub fn error_count(&self) -> u64 {
        self.errors.len() as u64 + self.errors_omitted
    }

    /// Records an error; `path` is built only when the error is kept.
    fn error(&mut self, path: impl FnOnce() -> PathBuf, err: impl std::fmt::Display) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push(EntryError {
                path: path(),
                error: err.to_string(),
            });
        } else {
            self.errors_omitted += 1;
        }
    }

    /// Adds what another walk (a subtree) freed and met.
    fn absorb(&mut self, other: RemovalReport) {
        self.files += other.files;
        self.dirs += other.dirs;
        self.bytes += other.bytes;
        self.stopped_at_deadline |= other.stopped_at_deadline;
        self.errors_omitted += other.errors_omitted;
        for e in other.errors {
            self.error(|| e.path, e.error);
        }
    }
}

const NOT_CROSSED: &str = "on another file system; not crossed";

fn past(deadline: Option<Instant>) -> bool {
    // A comparison only: no arithmetic on the caller's deadline, so no value of it can panic.
    deadline.is_some_and(|d| Instant::now() >= d)
}

/// Where a walk's top directory is, for error reports only.
#[derive(Clone, Copy)]
enum Origin<'a> {
    /// The caller's path of the top directory.
    Path(&'a Path),
    /// Entry `name` of `node`, a directory of a parallel walk whose top is `root`.
    Below {
        root: &'a Path,
        node: &'a Node,
        name: &'a CStr,
    },
}

impl<'a> Origin<'a> {
    /// Where `node` itself is.
    fn of_node(root: &'a Path, node: &'a Node) -> Self {
        match &node.parent {
            Some(parent) => Origin::Below {
                root,
                node: parent,
                name: &node.name,
            },
            None => Origin::Path(root),
        }
    }

    /// The path of the entry `below` the top (names from the top down), for an error report.
    fn render(self, below: &[&[u8]]) -> PathBuf {
        let (root, mut names): (&Path, Vec<&[u8]>) = match self {
            Origin::Path(root) => (root, Vec::new()),
            Origin::Below { root, node, name } => {
                let mut names = vec![name.to_bytes()];
                let mut n = node;
                while let Some(parent) = &n.parent {
                    names.push(n.name.to_bytes());
                    n = parent.as_ref();
                }
                names.reverse();
                (root, names)
            }
        };
        names.extend_from_slice(below);
        let mut kept = 0;
        let mut len = 0;
        for name in names.iter().rev() {
            if len + name.len() + 1 > MAX_REPORTED_PATH {
                break;
            }
            len += name.len() + 1;
            kept += 1;
        }
        let mut path = root.to_path_buf();
        if kept < names.len() {
            path.push("…");
        }
        for name in &names[names.len() - kept..] {
            path.push(OsStr::from_bytes(name));
        }
        path
    }
}

/// Why a directory was not opened.
enum OpenError {
    Gone,
    /// No longer a directory (a file or a symlink took its name).
    NotADirectory,
    OtherDevice,
    Io(Errno),
    ModeChange(Errno),
}

impl OpenError {
    fn from_open(e: Errno) -> Self {
        match e {
            Errno::NOENT => OpenError::Gone,
            // `O_NOFOLLOW` on a symlink gives ELOOP; `O_DIRECTORY` on anything else ENOTDIR.
            Errno::LOOP | Errno::NOTDIR => OpenError::NotADirectory,
            e => OpenError::Io(e),
        }
    }
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Opens the directory `name` in `parent` to empty it: no symlink followed, the handle checked to
/// be on device `dev`, and made readable, searchable and writable for us if it was not.
fn open_dir(parent: BorrowedFd<'_>, name: &CStr, dev: u64) -> Result<OwnedFd, OpenError> {
    #[cfg(test)]
    tests::race(tests::Step::Open, parent, name);
    let fd = match rfs::openat(parent, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            #[cfg(test)]
            tests::race(tests::Step::ModeChange, parent, name);
            open_unreadable_dir(parent, name, dev)?
        }
        Err(e) => return Err(OpenError::from_open(e)),
    };
    let st = rfs::fstat(&fd).map_err(OpenError::Io)?;
    if st.st_dev != dev {
        return Err(OpenError::OtherDevice);
    }
    let mode = st.st_mode & 0o7777;
    if mode & 0o700 != 0o700 {
        // Through the handle. A failure (not our directory) shows as the errors of its entries.
        let _ = rfs::fchmod(&fd, Mode::from_raw_mode(mode | 0o700));
    }
    Ok(fd)
}

/// Opens a directory we may not read or search (mode 000, not root). Its mode changes through a
/// handle, never by name (a name can be swapped for a symlink between two calls): `O_PATH` with
/// `O_NOFOLLOW` pins what the name is now, which must be a directory on device `dev`; the mode
/// changes through `/proc/self/fd/N`, which refers to that inode whatever happens to the name
/// (Linux's `fchmodat` has no `AT_SYMLINK_NOFOLLOW`, and `fchmod` refuses an `O_PATH` handle);
/// then the directory is opened as `.` of that handle, so no name is looked up again.
fn open_unreadable_dir(
    parent: BorrowedFd<'_>,
    name: &CStr,
    dev: u64,
) -> Result<OwnedFd, OpenError> {
    let pinned = rfs::openat(
        parent,
        name,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(OpenError::from_open)?;
    let st = rfs::fstat(&pinned).map_err(OpenError::Io)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(OpenError::NotADirectory);
    }
    if st.st_dev != dev {
        return Err(OpenError::OtherDevice);
    }
    let mode = Mode::from_raw_mode((st.st_mode & 0o7777) | 0o700);
    rfs::chmod(format!("/proc/self/fd/{}", pinned.as_raw_fd()), mode)
        .map_err(OpenError::ModeChange)?;
    rfs::openat(&pinned, c".", DIR_FLAGS, Mode::empty()).map_err(OpenError::Io)
}

/// What an entry turned out to be.
enum Entry {
    /// Removed (anything but a directory), or already gone.
    Done,
    /// A directory on our device, open to be emptied.
    Dir(OwnedFd),
    /// Not removed; reported.
    Failed,
}

/// Removes the entry `name` of `dir` unless it is a directory, which it opens instead.
fn take_entry(
    dir: BorrowedFd<'_>,
    name: &CStr,
    dev: u64,
    report: &mut RemovalReport,
    path: impl FnOnce() -> PathBuf,
) -> Entry {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Entry::Done,
        Err(e) => {
            report.error(path, e);
            return Entry::Failed;
        }
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        #[cfg(test)]
        tests::race(tests::Step::Unlink, dir, name);
        match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => {
                report.files += 1;
                report.bytes += st.st_size as u64;
                return Entry::Done;
            }
            Err(Errno::NOENT) => return Entry::Done,
            // Became a directory since the lstat: opened below like any other.
            Err(Errno::ISDIR) => {}
            Err(e) => {
                report.error(path, e);
                return Entry::Failed;
            }
        }
    } else if st.st_dev != dev {
        report.error(path, NOT_CROSSED);
        return Entry::Failed;
    }
    match open_dir(dir, name, dev) {
        Ok(fd) => Entry::Dir(fd),
        Err(OpenError::Gone) => Entry::Done,
        // Swapped for a file or a link since the lstat: removed as such, once.
        Err(OpenError::NotADirectory) => match rfs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => {
                report.files += 1;
                Entry::Done
            }
            Err(Errno::NOENT) => Entry::Done,
            Err(e) => {
                report.error(path, format!("changed while being removed: {e}"));
                Entry::Failed
            }
        },
        Err(OpenError::OtherDevice) => {
            report.error(path, NOT_CROSSED);
            Entry::Failed
        }
        Err(OpenError::Io(e)) => {
            report.error(path, e);
            Entry::Failed
        }
        Err(OpenError::ModeChange(e)) => {
            report.error(path, format!("making it readable: {e}"));
            Entry::Failed
        }
    }
}

/// Directories the sequential walker holds at most (each an open handle and its own name).
/// Lambda allows 1,024 descriptors in all.
const MAX_DEPTH: usize = 64;

/// A directory being emptied and the name it has in its parent.
struct Frame {
    dir: Dir,
    name: CString,
}

/// Removes `name` inside the directory `parent` (and everything below it) without following
/// symlinks or crossing onto another file system (device `dev`). Returns what was freed; entry
/// errors are collected, not fatal.
pub fn remove_tree_at(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    display_path: &Path,
    dev: u64,
    deadline: Option<Instant>,
) -> RemovalReport {
    let mut report = RemovalReport::default();
    walk(
        parent,
        name,
        Origin::Path(display_path),
        &Walk {
            dev,
            deadline,
            max_depth: MAX_DEPTH,
            close: &drop,
        },
        &mut report,
    );
    report.complete = !report.stopped_at_deadline && report.error_count() == 0;
    report
}

/// What a sequential walk keeps to: the device, the deadline, the directories it holds at most,
/// and what closes a removed directory's handle.
#[derive(Clone, Copy)]
struct Walk<'a> {
    dev: u64,
    deadline: Option<Instant>,
    max_depth: usize,
    close: &'a (dyn Fn(Dir) + Sync),
}

/// The sequential walk, holding at most `max_depth` directories: depth first with an explicit
/// stack (no recursion limit).
fn walk(
    parent: BorrowedFd<'_>,
    name: &OsStr,
    origin: Origin<'_>,
    how: &Walk<'_>,
    report: &mut RemovalReport,
) {
    let Walk {
        dev,
        deadline,
        max_depth,
        close,
    } = *how;
    let max_depth = max_depth.max(2);
    let Ok(top_name) = CString::new(name.as_bytes()) else {
        report.error(|| origin.render(&[]), "name contains a NUL byte");
        return;
    };
    let top = match take_entry(parent, &top_name, dev, report, || origin.render(&[])) {
        Entry::Dir(fd) => fd,
        Entry::Done | Entry::Failed => return,
    };
    let top = match Dir::new(top) {
        Ok(dir) => dir,
        Err(e) => {
            report.error(|| origin.render(&[]), e);
            return;
        }
    };
    let mut stack = Vec::with_capacity(max_depth);
    stack.push(Frame {
        dir: top,
        name: top_name,
    });
    // Names below the top, for an error's path.
    fn below<'s>(stack: &'s [Frame], child: Option<&'s CStr>) -> Vec<&'s [u8]> {
        let names = stack.iter().skip(1).map(|f| f.name.to_bytes());
        names.chain(child.map(CStr::to_bytes)).collect()
    }
    // Subtrees moved into the top since its listing began; it is listed again to find them.
    let mut moved_up = false;
    let mut serial = 0u64;
    while let Some(k) = stack.len().checked_sub(1) {
        if past(deadline) {
            report.stopped_at_deadline = true;
            return;
        }
        match stack[k].dir.read() {
            Some(Ok(entry)) => {
                let child = entry.file_name();
                if child == c"." || child == c".." {
                    continue;
                }
                let child = child.to_owned();
                let Ok(dirfd) = stack[k].dir.fd() else {
                    report.error(
                        || origin.render(&below(&stack, None)),
                        "directory handle lost",
                    );
                    stack.pop();
                    continue;
                };
                let path = || origin.render(&below(&stack, Some(&child)));
                let Entry::Dir(fd) = take_entry(dirfd, &child, dev, report, path) else {
                    continue;
                };
                if stack.len() < max_depth {
                    match Dir::new(fd) {
                        Ok(dir) => stack.push(Frame { dir, name: child }),
                        Err(e) => report.error(|| origin.render(&below(&stack, Some(&child))), e),
                    }
                    continue;
                }
                // Too deep to hold: move it up into the top directory, where a later listing
                // finds it with the stack short again. It stays inside the tree being removed.
                // (Opened first: that checked its device and made it writable, which moving a
                // directory to another parent needs.)
                let moved = stack[0]
                    .dir
                    .fd()
                    .and_then(|top| move_up(dirfd, &child, top, &mut serial));
                drop(fd);
                match moved {
                    Ok(()) => moved_up = true,
                    Err(e) => report.error(
                        || origin.render(&below(&stack, Some(&child))),
                        format!("moving a deep directory up: {e}"),
                    ),
                }
            }
            Some(Err(e)) => {
                report.error(|| origin.render(&below(&stack, None)), e);
                stack.pop();
            }
            None if k == 0 && moved_up => {
                moved_up = false;
                stack[0].dir.rewind();
            }
            None => {
                let Some(done) = stack.pop() else { break };
                let result = match stack.last() {
                    Some(frame) => frame.dir.fd(),
                    None => Ok(parent),
                }
                .and_then(|fd| rfs::unlinkat(fd, &done.name, AtFlags::REMOVEDIR));
                match result {
                    Ok(()) | Err(Errno::NOENT) => report.dirs += 1,
                    // The top itself is at the origin's path, not below it.
                    Err(e) if stack.is_empty() => report.error(|| origin.render(&[]), e),
                    Err(e) => report.error(|| origin.render(&below(&stack, Some(&done.name))), e),
                }
                // Closed after its removal: on a local disk the last close frees its blocks.
                close(done.dir);
            }
        }
    }
}

/// Renames `name` in `dir` into `top` under a name not taken there.
fn move_up(
    dir: BorrowedFd<'_>,
    name: &CStr,
    top: BorrowedFd<'_>,
    serial: &mut u64,
) -> rustix::io::Result<()> {
    // Not `RENAME_NOREPLACE`: NFS (EFS) does not support it. The probe makes a clash unlikely, and
    // a clash could only replace an empty directory of this same tree.
    for _ in 0..1000 {
        *serial += 1;
        let new_name = format!(".deleter-moved-up-{serial}");
        match rfs::statat(top, new_name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Err(Errno::NOENT) => return rfs::renameat(dir, name, top, new_name.as_str()),
            Ok(_) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(Errno::EXIST)
}

/// A deleter that keeps many metadata calls in flight, for file systems where each call is a
/// network round trip (EFS: ~2.7 ms a write). Directories are scanned as tasks on a dedicated
/// thread pool; the files of a directory are unlinked in chunks by any idle worker; a directory
/// is removed by whichever task empties it last, which then completes its parent in turn.
pub struct ParallelDeleter {
    pool: rayon::ThreadPool,
    /// Directory handles held open at once; past it, subtrees are removed by the sequential
    /// walker in the worker that met them.
    fd_budget: usize,
    /// Directories such a sequential walk holds, so that every worker doing one at once still
    /// fits in the descriptors.
    handoff_depth: usize,
    /// Unlink chunks queued or running at most; past it, a scan unlinks its chunk itself, so the
    /// names of a directory of millions of files are never all in memory.
    max_chunks: usize,
    /// Unlink chunks of one directory in flight at most, on a local file system (every worker).
    per_dir: usize,
    /// How one directory's entries are spread over workers; from the file system when `None`.
    spread: Option<Spread>,
}

/// How the entries of one directory are spread over workers: chosen from the kind of file
/// system, as what limits a removal there differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spread {
    /// Network file systems (NFS, so EFS; FUSE): the kernel holds a directory's lock across the
    /// round trip of each unlink in it (and of the lookup before it), so a directory's removals
    /// are one at a time whatever the client does; a few workers keep its lock busy, the others
    /// work on other directories.
    Serial,
    /// Local file systems: an unlink holds the directory's lock only for the in-memory change;
    /// freeing the inode's blocks (a truncate, a discard on a disk mounted with `discard`) comes
    /// after it is released, so workers unlinking in one directory at once overlap that part.
    Parallel,
}

impl Spread {
    /// The spread for the file system holding `dir`.
    pub fn of(dir: BorrowedFd<'_>) -> Spread {
        // FUSE's magic number (linux/magic.h); rustix names NFS's.
        const FUSE_SUPER_MAGIC: rfs::FsWord = 0x6573_5546;
        match rfs::fstatfs(dir) {
            Ok(st) if st.f_type == rfs::NFS_SUPER_MAGIC || st.f_type == FUSE_SUPER_MAGIC => {
                Spread::Serial
            }
            Ok(_) => Spread::Parallel,
            // Unknown: the spread that holds fewer workers on one directory.
            Err(_) => Spread::Serial,
        }
    }
}

/// Unlink chunks of one directory in flight at most under [`Spread::Serial`]: enough that the
/// directory's lock is never idle (measured under the FUSE model: 8 and 64 remove a flat
/// directory equally fast); more would only hold workers that other directories can use.
const SERIAL_CHUNKS_PER_DIR: usize = 8;
/// Handles of removed directories waiting to be closed by another worker, at most (within the
/// descriptors Lambda allows: 768 held by a removal leave more than this).
const MAX_PENDING_CLOSES: usize = 64;

/// Names unlinked by one task: large enough to amortise scheduling, small enough that a flat
/// directory of 100,000 files spreads over every worker.
const UNLINK_CHUNK: usize = 32;
/// Bytes of directory entries one `getdents64` call of a parallel scan returns at most (glibc's
/// `readdir` asks for 32 KiB). One buffer per scan in progress: at most one per worker.
const LISTING_BUFFER: usize = 64 * 1024;
/// The default concurrency (`DELETE_CONCURRENCY`), as measured under the FUSE latency model
/// (`make bench`): a tree of many directories is removed within 1.2x of its bound at 64 (its
/// widest directory, whose removals NFS and FUSE make one at a time); 128 adds nothing.
pub const DEFAULT_DELETE_WORKERS: usize = 64;
/// The most workers a removal may use, whatever the setting: one purge must not starve the
/// platform's own I/O on the same file system, nor exhaust Lambda's 1,024 descriptors.
pub const MAX_DELETE_WORKERS: usize = 512;
/// Descriptors a parallel removal holds at most (for up to 128 workers); Lambda allows 1,024, and
/// the runtime and the SDK's connections need some.
const MAX_DELETER_FDS: usize = 768;

/// What the tasks of one removal share.
struct Shared<'p> {
    top_parent: BorrowedFd<'p>,
    top_path: &'p Path,
    dev: u64,
    deadline: Option<Instant>,
    open_dirs: AtomicUsize,
    fd_budget: usize,
    handoff_depth: usize,
    queued_chunks: AtomicUsize,
    max_chunks: usize,
    per_dir: usize,
    spread: Spread,
    pending_closes: AtomicUsize,
    files: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    stopped: AtomicBool,
    report: Mutex<RemovalReport>,
}

/// A directory being emptied: its handle and its own name (its path is its chain of parents).
/// `remaining` counts its unfinished tasks (its own scan, its unlink chunks, its subdirectories);
/// the one that brings it to zero removes it.
struct Node {
    fd: OwnedFd,
    name: CString,
    parent: Option<Arc<Node>>,
    remaining: AtomicUsize,
    /// Unlink chunks of this directory queued or running (at most `Shared::per_dir`).
    unlinkers: AtomicUsize,
}

impl Shared<'_> {
    fn past_deadline(&self) -> bool {
        if past(self.deadline) {
            self.stopped.store(true, Relaxed);
        }
        self.stopped.load(Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RemovalReport> {
        self.report.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn error(&self, path: impl FnOnce() -> PathBuf, err: impl std::fmt::Display) {
        self.lock().error(path, err);
    }

    /// Adds what a step outside the atomics (a sequential walk, an entry) freed and met.
    fn absorb(&self, report: RemovalReport) {
        self.files.fetch_add(report.files, Relaxed);
        self.dirs.fetch_add(report.dirs, Relaxed);
        self.bytes.fetch_add(report.bytes, Relaxed);
        if report.stopped_at_deadline {
            self.stopped.store(true, Relaxed);
        }
        if report.error_count() > 0 {
            self.lock().absorb(RemovalReport {
                files: 0,
                dirs: 0,
                bytes: 0,
                ..report
            });
        }
    }

    /// Removes `name` of `node` with the sequential walker, in this worker.
    fn hand_off<'s>(&'s self, s: &rayon::Scope<'s>, node: &Node, name: &CStr) {
        let mut report = RemovalReport::default();
        let origin = Origin::Below {
            root: self.top_path,
            node,
            name,
        };
        walk(
            node.fd.as_fd(),
            OsStr::from_bytes(name.to_bytes()),
            origin,
            &Walk {
                dev: self.dev,
                deadline: self.deadline,
                max_depth: self.handoff_depth,
                close: &|dir| self.close_later(s, dir),
            },
            &mut report,
        );
        self.absorb(report);
    }

    /// Drops `handle` (a removed directory's) in another task on a local disk, at most
    /// [`MAX_PENDING_CLOSES`] at once: its last close frees the directory's blocks (on a disk
    /// mounted with `discard`, a synchronous discard), which then overlaps the removals that follow
    /// instead of delaying each (a chain's are one at a time).
    fn close_later<'s>(&'s self, s: &rayon::Scope<'s>, handle: impl Send + 's) {
        if self.spread == Spread::Parallel
            && self.pending_closes.fetch_add(1, AcqRel) < MAX_PENDING_CLOSES
        {
            s.spawn(move |_| {
                drop(handle);
                self.pending_closes.fetch_sub(1, AcqRel);
            });
        } else {
            if self.spread == Spread::Parallel {
                self.pending_closes.fetch_sub(1, AcqRel);
            }
            drop(handle);
        }
    }

    /// One task of `node` is done; the last one removes the directory and completes its parent.
    fn finish<'s>(&'s self, s: &rayon::Scope<'s>, mut node: Arc<Node>) {
        loop {
            if node.remaining.fetch_sub(1, AcqRel) != 1 {
                return;
            }
            // Stopped: what is left (maybe this directory's entries) stays for the next run.
            if self.past_deadline() {
                return;
            }
            let parent_fd = match &node.parent {
                Some(p) => p.fd.as_fd(),
                None => self.top_parent,
            };
            match rfs::unlinkat(parent_fd, &node.name, AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {
                    self.dirs.fetch_add(1, Relaxed);
                }
                Err(e) => self.error(|| Origin::of_node(self.top_path, &node).render(&[]), e),
            }
            let Some(parent) = node.parent.clone() else {
                return;
            };
            self.open_dirs.fetch_sub(1, Relaxed);
            self.close_later(s, node);
            node = parent;
        }
    }
}

impl ParallelDeleter {
    pub fn new(workers: usize) -> std::io::Result<Self> {
        let workers = workers.clamp(1, MAX_DELETE_WORKERS);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("deleter-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        // Each worker may hold a listing, an entry being opened and a sequential walk at once.
        let handoff_depth = (MAX_DELETER_FDS / 4 / workers).clamp(2, MAX_DEPTH);
        Ok(Self {
            pool,
            fd_budget: MAX_DELETER_FDS
                .saturating_sub(workers * (handoff_depth + 2))
                .max(32),
            handoff_depth,
            max_chunks: workers * 4,
            per_dir: workers,
            spread: None,
        })
    }

    /// Spreads every directory's entries this way, whatever the file system (measurements).
    pub fn with_spread(mut self, spread: Spread) -> Self {
        self.spread = Some(spread);
        self
    }

    /// Like [`remove_tree_at`], with many calls in flight.
    pub fn remove_tree_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &OsStr,
        display_path: &Path,
        dev: u64,
        deadline: Option<Instant>,
    ) -> RemovalReport {
        let mut report = RemovalReport::default();
        let origin = Origin::Path(display_path);
        let root = match CString::new(name.as_bytes()) {
            Err(_) => {
                report.error(|| origin.render(&[]), "name contains a NUL byte");
                None
            }
            Ok(cname) => {
                match take_entry(parent, &cname, dev, &mut report, || origin.render(&[])) {
                    Entry::Dir(fd) => Some(Arc::new(Node {
                        fd,
                        name: cname,
                        parent: None,
                        remaining: AtomicUsize::new(1),
                        unlinkers: AtomicUsize::new(0),
                    })),
                    Entry::Done | Entry::Failed => None,
                }
            }
        };
        let Some(root) = root else {
            report.complete = report.error_count() == 0;
            return report;
        };
        let spread = self.spread.unwrap_or_else(|| Spread::of(root.fd.as_fd()));
        let shared = Shared {
            top_parent: parent,
            top_path: display_path,
            dev,
            deadline,
            open_dirs: AtomicUsize::new(1),
            fd_budget: self.fd_budget,
            handoff_depth: self.handoff_depth,
            queued_chunks: AtomicUsize::new(0),
            max_chunks: self.max_chunks,
            per_dir: match spread {
                Spread::Serial => SERIAL_CHUNKS_PER_DIR.min(self.per_dir),
                Spread::Parallel => self.per_dir,
            },
            spread,
            pending_closes: AtomicUsize::new(0),
            files: Default::default(),
            dirs: Default::default(),
            bytes: Default::default(),
            stopped: Default::default(),
            report: Mutex::new(report),
        };
        self.pool.scope(|s| scan(s, &shared, root));
        let mut report = shared
            .report
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        report.files += shared.files.into_inner();
        report.dirs += shared.dirs.into_inner();
        report.bytes += shared.bytes.into_inner();
        report.stopped_at_deadline = shared.stopped.into_inner();
        report.complete = !report.stopped_at_deadline
            && report.error_count() == 0
            && matches!(
                rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
                Err(Errno::NOENT)
            );
        report
    }
}

/// Empties `node` and, in this same task, the last subdirectory its listing met when that is not
/// a task of its own (local disk): a chain of directories is one task, not a hand-over between
/// workers at every level.
fn scan<'s>(s: &rayon::Scope<'s>, shared: &'s Shared<'s>, node: Arc<Node>) {
    let mut next = Some(node);
    while let Some(node) = next.take() {
        if shared.past_deadline() {
            return;
        }
        next = scan_one(s, shared, node);
    }
}

/// Lists `node` once, removing its files and starting its subdirectories; returns the last
/// subdirectory, for the caller to empty next.
fn scan_one<'s>(
    s: &rayon::Scope<'s>,
    shared: &'s Shared<'s>,
    node: Arc<Node>,
) -> Option<Arc<Node>> {
    // One `getdents64` pass over the handle the node already holds (no second open of the
    // directory, which on NFS/EFS is a round trip of its own), with a large buffer: a directory
    // of 100,000 names is listed in about 50 calls instead of 400.
    let mut buf = Vec::with_capacity(LISTING_BUFFER);
    let mut dir = rfs::RawDir::new(node.fd.as_fd(), buf.spare_capacity_mut());
    let mut files: Vec<CString> = Vec::new();
    let mut last_dir: Option<Arc<Node>> = None;
    while let Some(entry) = dir.next() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                shared.error(|| Origin::of_node(shared.top_path, &node).render(&[]), e);
                break;
            }
        };
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        let name = name.to_owned();
        let is_dir = match entry.file_type() {
            FileType::Directory => true,
            FileType::Unknown => rfs::statat(&node.fd, &name, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if !is_dir {
            files.push(name);
            if files.len() == UNLINK_CHUNK {
                unlink_chunk(s, shared, &node, std::mem::take(&mut files));
            }
            continue;
        }
        if shared.open_dirs.load(Relaxed) >= shared.fd_budget {
            shared.hand_off(s, &node, &name);
            continue;
        }
        let mut report = RemovalReport::default();
        let path = || {
            Origin::Below {
                root: shared.top_path,
                node: &node,
                name: &name,
            }
            .render(&[])
        };
        let entry = take_entry(node.fd.as_fd(), &name, shared.dev, &mut report, path);
        shared.absorb(report);
        if let Entry::Dir(fd) = entry {
            let child = Arc::new(Node {
                fd,
                name,
                parent: Some(node.clone()),
                remaining: AtomicUsize::new(1),
                unlinkers: AtomicUsize::new(0),
            });
            shared.open_dirs.fetch_add(1, Relaxed);
            node.remaining.fetch_add(1, AcqRel);
            // Under latency a subdirectory starts at once (a round trip saved at every level of
            // a chain); on a local disk the last one waits for this worker (no hand-over).
            let child = match shared.spread {
                Spread::Serial => Some(child),
                Spread::Parallel => last_dir.replace(child),
            };
            if let Some(child) = child {
                s.spawn(move |s| scan(s, shared, child));
            }
        }
    }
    if !files.is_empty() {
        match last_dir {
            // Not to delay the subdirectory this worker goes on with.
            Some(_) => unlink_chunk(s, shared, &node, files),
            // The listing is done: this worker has nothing else to do.
            None => unlink_names(s, shared, &node, &files),
        }
    }
    drop(buf);
    shared.finish(s, node);
    last_dir
}

/// Unlinks `names` of `node` in a task of its own, or in this one when enough are queued.
fn unlink_chunk<'s>(
    s: &rayon::Scope<'s>,
    shared: &'s Shared<'s>,
    node: &Arc<Node>,
    names: Vec<CString>,
) {
    if node.unlinkers.fetch_add(1, AcqRel) >= shared.per_dir {
        node.unlinkers.fetch_sub(1, AcqRel);
        unlink_names(s, shared, node, &names);
        return;
    }
    if shared.queued_chunks.fetch_add(1, AcqRel) >= shared.max_chunks {
        shared.queued_chunks.fetch_sub(1, AcqRel);
        node.unlinkers.fetch_sub(1, AcqRel);
        unlink_names(s, shared, node, &names);
        return;
    }
    node.remaining.fetch_add(1, AcqRel);
    let node = node.clone();
    s.spawn(move |s| {
        unlink_names(s, shared, &node, &names);
        drop(names);
        shared.queued_chunks.fetch_sub(1, AcqRel);
        node.unlinkers.fetch_sub(1, AcqRel);
        shared.finish(s, node);
    });
}

fn unlink_names<'s>(s: &rayon::Scope<'s>, shared: &'s Shared<'s>, node: &Node, names: &[CString]) {
    for name in names {
        if shared.past_deadline() {
            return;
        }
        let path = || {
            Origin::Below {
                root: shared.top_path,
                node,
                name,
            }
            .render(&[])
        };
        // The size is read first: it is what "bytes freed" reports. (On NFS and FUSE the unlink
        // would look the name up anyway; this lookup is the one it then finds cached.)
        let size = match rfs::statat(&node.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st.st_size as u64,
            Err(Errno::NOENT) => continue,
            Err(e) => {
                shared.error(path, e);
                continue;
            }
        };
        #[cfg(test)]
        tests::race(tests::Step::Unlink, node.fd.as_fd(), name);
        match rfs::unlinkat(&node.fd, name, AtFlags::empty()) {
            Ok(()) => {
                shared.files.fetch_add(1, Relaxed);
                shared.bytes.fetch_add(size, Relaxed);
            }
            Err(Errno::NOENT) => {}
            // Became a directory since it was listed (or the listing did not say): removed as one.
            Err(Errno::ISDIR) => shared.hand_off(s, node, name),
            Err(e) => shared.error(path, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::fd::AsFd;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

    /// Where a racer can act: just before a directory is opened, after it failed to open and
    /// before its mode changes, and before a non-directory is unlinked.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Step {
        Open,
        ModeChange,
        Unlink,
    }

    type Hook = for<'a, 'b> fn(BorrowedFd<'a>, &'b CStr);

    /// Racers waiting for an entry of a given name (unique to their test, so tests running at
    /// once in other threads never meet them) at a step; each runs once, on any thread.
    static RACERS: std::sync::Mutex<Vec<(Step, &'static CStr, Hook, bool)>> =
        std::sync::Mutex::new(Vec::new());

    pub(super) fn race(step: Step, dir: BorrowedFd<'_>, name: &CStr) {
        let hook = RACERS.lock().unwrap().iter_mut().find_map(|r| {
            let due = r.0 == step && r.1 == name && !r.3;
            r.3 |= due;
            due.then_some(r.2)
        });
        if let Some(hook) = hook {
            hook(dir, name);
        }
    }

    /// Runs `f` with `hook` waiting at `step` for `name`; returns whether the hook ran.
    fn with_racer<T>(
        step: Step,
        name: &'static CStr,
        hook: Hook,
        f: impl FnOnce() -> T,
    ) -> (T, bool) {
        RACERS.lock().unwrap().push((step, name, hook, false));
        let out = f();
        let mut racers = RACERS.lock().unwrap();
        let i = racers
            .iter()
            .position(|r| r.0 == step && r.1 == name)
            .unwrap();
        (out, racers.remove(i).3)
    }

    /// The racer: moves the directory away and puts a symlink to `../outside` in its place.
    fn swap_in_symlink(parent: BorrowedFd<'_>, name: &CStr) {
        rfs::renameat(parent, name, parent, c"moved").unwrap();
        rfs::symlinkat(c"../outside", parent, name).unwrap();
    }

    /// The same racer for a top directory, whose parent also holds `outside`.
    fn swap_in_symlink_for_top(parent: BorrowedFd<'_>, name: &CStr) {
        rfs::renameat(parent, name, parent, c"moved").unwrap();
        rfs::symlinkat(c"outside", parent, name).unwrap();
    }

    const UNPRIVILEGED_BASE: &str = "LIFECYCLE_DELETER_TEST_BASE";

    /// Runs `body` in a temporary directory without root's permission override: root opens a
    /// mode-000 directory without asking, so the code that changes modes would never run. As
    /// root, the test binary re-runs this one test as `nobody` and checks that it ran and passed.
    fn unprivileged(test: &str, body: fn(&Path)) {
        let euid = fs::metadata("/proc/self").unwrap().uid();
        if euid != 0 {
            let base =
                std::env::var_os(UNPRIVILEGED_BASE).map_or_else(std::env::temp_dir, PathBuf::from);
            let tmp = tempfile::tempdir_in(base).unwrap();
            body(tmp.path());
            return;
        }
        let base = tempfile::tempdir().unwrap();
        std::os::unix::fs::chown(base.path(), Some(65534), Some(65534)).unwrap();
        run_as_nobody(test, base.path());
    }

    /// Like [`unprivileged`], with `setup` run as root first in the base directory the body gets:
    /// what `nobody` cannot remove. Needs root to stage it; elsewhere it says so and passes.
    fn staged_as_root(test: &str, setup: fn(&Path), body: fn(&Path)) {
        if let Some(base) = std::env::var_os(UNPRIVILEGED_BASE) {
            body(Path::new(&base));
            return;
        }
        if fs::metadata("/proc/self").unwrap().uid() != 0 {
            eprintln!("{test}: needs root to stage entries nobody can remove; not run");
            return;
        }
        let base = tempfile::tempdir().unwrap();
        setup(base.path());
        std::os::unix::fs::chown(base.path(), Some(65534), Some(65534)).unwrap();
        run_as_nobody(test, base.path());
    }

    fn run_as_nobody(test: &str, base: &Path) {
        use std::os::unix::process::CommandExt;
        let exe = std::env::current_exe().unwrap();
        // `nobody` must be able to run this binary: every directory above it searchable by others.
        let reachable = exe
            .ancestors()
            .all(|p| fs::metadata(p).is_ok_and(|m| m.mode() & 0o001 != 0));
        if !reachable {
            eprintln!(
                "{test}: {} is not executable by nobody; not run",
                exe.display()
            );
            return;
        }
        let out = std::process::Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(UNPRIVILEGED_BASE, base)
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    /// A tree under `root`: `t/locked` (mode 000, with a file) and `outside` (mode 0500, with a
    /// file), the directory a racer points the deleter at.
    fn locked_tree_and_outside(root: &Path) {
        let outside = root.join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o500)).unwrap();
        let locked = root.join("t/locked");
        fs::create_dir_all(&locked).unwrap();
        fs::write(locked.join("f"), b"1").unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    }

    #[test]
    fn a_symlink_swapped_in_before_a_mode_change_is_not_followed() {
        unprivileged(
            "tests::a_symlink_swapped_in_before_a_mode_change_is_not_followed",
            |root| {
                locked_tree_and_outside(root);
                let (raced, ran) = with_racer(Step::ModeChange, c"locked", swap_in_symlink, || {
                    remove(root, "t")
                });
                assert!(ran, "the racer ran");
                assert_eq!(mode_of(&root.join("outside")), 0o500, "{raced:?}");
                assert_eq!(fs::read(root.join("outside/precious")).unwrap(), b"keep");
                // What the racer left inside the tree is removed by the next run.
                let second = remove(root, "t");
                assert!(second.complete, "{raced:?} {second:?}");
                assert_eq!(mode_of(&root.join("outside")), 0o500);
            },
        );
    }

    #[test]
    fn parallel_a_symlink_swapped_in_for_the_top_is_not_followed() {
        unprivileged(
            "tests::parallel_a_symlink_swapped_in_for_the_top_is_not_followed",
            |root| {
                locked_tree_and_outside(root);
                // The top itself unreadable: the parallel deleter opens it on the calling thread.
                fs::set_permissions(root.join("t"), fs::Permissions::from_mode(0o000)).unwrap();
                let (raced, ran) =
                    with_racer(Step::ModeChange, c"t", swap_in_symlink_for_top, || {
                        remove_parallel(root, "t", None)
                    });
                assert!(ran, "the racer ran");
                assert_eq!(mode_of(&root.join("outside")), 0o500, "{raced:?}");
                assert_eq!(fs::read(root.join("outside/precious")).unwrap(), b"keep");
                let second = remove_parallel(root, "moved", None);
                assert!(second.complete, "{raced:?} {second:?}");
            },
        );
    }

    /// A tree `t` of five files, one of them named `name`.
    fn five_files_with(root: &Path, name: &str) {
        let top = root.join("t");
        fs::create_dir(&top).unwrap();
        for f in ["a", "b", "c", "d", name] {
            fs::write(top.join(f), b"12").unwrap();
        }
    }

    /// The racer: the file becomes a directory holding a file.
    fn file_becomes_directory(dir: BorrowedFd<'_>, name: &CStr) {
        rfs::unlinkat(dir, name, AtFlags::empty()).unwrap();
        rfs::mkdirat(dir, name, Mode::RWXU).unwrap();
        let inner = rfs::openat(dir, name, DIR_FLAGS, Mode::empty()).unwrap();
        rfs::openat(&inner, "inner", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
    }

    #[test]
    fn a_file_that_becomes_a_directory_is_removed_as_one() {
        let (seq_tmp, par_tmp) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        five_files_with(seq_tmp.path(), "becomes-dir-seq");
        five_files_with(par_tmp.path(), "becomes-dir-par");
        let (seq, ran_seq) = with_racer(
            Step::Unlink,
            c"becomes-dir-seq",
            file_becomes_directory,
            || remove(seq_tmp.path(), "t"),
        );
        let (par, ran_par) = with_racer(
            Step::Unlink,
            c"becomes-dir-par",
            file_becomes_directory,
            || remove_parallel(par_tmp.path(), "t", None),
        );
        assert!(ran_seq && ran_par, "the racers ran");
        for r in [&seq, &par] {
            assert!(r.complete, "{r:?}");
            assert_eq!((r.files, r.dirs), (5, 2), "{r:?}");
        }
        assert!(!seq_tmp.path().join("t").exists() && !par_tmp.path().join("t").exists());
    }

    /// The racer: the (empty) directory becomes a symlink to `../outside`.
    fn directory_becomes_symlink(dir: BorrowedFd<'_>, name: &CStr) {
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR).unwrap();
        rfs::symlinkat(c"../outside", dir, name).unwrap();
    }

    #[test]
    fn a_directory_that_becomes_a_symlink_is_removed_as_a_link() {
        for (name, parallel) in [(c"becomes-link-seq", false), (c"becomes-link-par", true)] {
            let tmp = tempfile::tempdir().unwrap();
            let outside = tmp.path().join("outside");
            fs::create_dir(&outside).unwrap();
            fs::write(outside.join("precious"), b"keep").unwrap();
            let top = tmp.path().join("t");
            fs::create_dir_all(top.join(OsStr::from_bytes(name.to_bytes()))).unwrap();
            let (report, ran) = with_racer(Step::Open, name, directory_becomes_symlink, || {
                if parallel {
                    remove_parallel(tmp.path(), "t", None)
                } else {
                    remove(tmp.path(), "t")
                }
            });
            assert!(ran, "the racer ran");
            assert!(report.complete, "{report:?}");
            assert_eq!((report.files, report.dirs), (1, 1), "{report:?}");
            assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
        }
    }

    #[test]
    fn a_walk_holding_few_directories_moves_deep_ones_up_and_removes_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir(&top).unwrap();
        let mut fd: OwnedFd = fs::File::open(&top).unwrap().into();
        for _ in 0..50 {
            rfs::mkdirat(&fd, "s", Mode::RWXU).unwrap();
            let side = rfs::openat(&fd, c"s", DIR_FLAGS, Mode::empty()).unwrap();
            rfs::openat(&side, "g", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
            rfs::openat(&fd, "f", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
            rfs::mkdirat(&fd, "d", Mode::RWXU).unwrap();
            fd = rfs::openat(&fd, c"d", DIR_FLAGS, Mode::empty()).unwrap();
        }
        drop(fd);
        let parent = fs::File::open(tmp.path()).unwrap();
        let dev = fs::metadata(tmp.path()).unwrap().dev();
        let mut report = RemovalReport::default();
        let origin = Origin::Path(&top);
        walk(
            parent.as_fd(),
            OsStr::new("t"),
            origin,
            &Walk {
                dev,
                deadline: None,
                max_depth: 3,
                close: &drop,
            },
            &mut report,
        );
        assert_eq!(report.error_count(), 0, "{report:?}");
        assert_eq!((report.files, report.dirs), (100, 101));
        assert!(!top.exists());
    }

    #[test]
    fn a_report_keeps_the_first_errors_and_counts_the_rest() {
        let mut report = RemovalReport::default();
        let mut built = 0;
        for i in 0..1000 {
            report.error(
                || {
                    built += 1;
                    PathBuf::from(format!("/e/{i}"))
                },
                "failed",
            );
        }
        assert_eq!(report.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(
            built, MAX_REPORTED_ERRORS,
            "paths are built only for kept errors"
        );
        assert_eq!(report.error_count(), 1000);
        let mut total = RemovalReport::default();
        total.error(|| PathBuf::from("/first"), "failed");
        total.absorb(report);
        assert_eq!(total.errors.len(), MAX_REPORTED_ERRORS);
        assert_eq!(total.errors[0].path, Path::new("/first"));
        assert_eq!(total.error_count(), 1001);
    }

    #[test]
    fn a_reported_path_is_bounded_whatever_the_depth() {
        let name = vec![b'n'; 200];
        let below: Vec<&[u8]> = (0..5000)
            .map(|_| name.as_slice())
            .chain([&b"leaf"[..]])
            .collect();
        let path = Origin::Path(Path::new("/trash/entry")).render(&below);
        let text = path.as_os_str().as_bytes();
        assert!(
            text.len() <= "/trash/entry/…".len() + MAX_REPORTED_PATH,
            "{}",
            text.len()
        );
        assert!(text.starts_with("/trash/entry/…/".as_bytes()));
        assert!(text.ends_with(b"nnnn/leaf"));
        let short = Origin::Path(Path::new("/trash/entry")).render(&[b"a", b"b"]);
        assert_eq!(short, Path::new("/trash/entry/a/b"));
    }

    /// Under `base` (as root): `seq` and `par`, each holding a root-owned directory of 250 files
    /// that `nobody` can neither empty nor make writable.
    fn root_owned_files(base: &Path) {
        for name in ["seq", "par"] {
            let locked = base.join(name).join("root-owned");
            fs::create_dir_all(&locked).unwrap();
            for i in 0..250 {
                fs::write(locked.join(format!("f{i}")), b"x").unwrap();
            }
            std::os::unix::fs::chown(base.join(name), Some(65534), Some(65534)).unwrap();
        }
    }

    #[test]
    fn many_unremovable_entries_keep_the_report_bounded() {
        staged_as_root(
            "tests::many_unremovable_entries_keep_the_report_bounded",
            root_owned_files,
            |base| {
                let seq = remove(base, "seq");
                let par = remove_parallel(base, "par", None);
                for r in [&seq, &par] {
                    assert!(!r.complete);
                    assert_eq!(r.errors.len(), MAX_REPORTED_ERRORS);
                    // 250 files, then their directory and the top are not empty.
                    assert_eq!(r.error_count(), 252, "{:?}", r.errors.last());
                }
            },
        );
    }

    #[test]
    fn unreadable_directories_are_removed_without_root() {
        unprivileged(
            "tests::unreadable_directories_are_removed_without_root",
            |root| {
                for name in ["seq", "par"] {
                    let top = root.join(name);
                    fs::create_dir_all(top.join("a/b")).unwrap();
                    fs::write(top.join("a/b/f"), b"12").unwrap();
                    fs::create_dir(top.join("ro")).unwrap();
                    fs::write(top.join("ro/g"), b"3").unwrap();
                    fs::set_permissions(top.join("ro"), fs::Permissions::from_mode(0o500)).unwrap();
                    fs::set_permissions(top.join("a/b"), fs::Permissions::from_mode(0o000))
                        .unwrap();
                    fs::set_permissions(top.join("a"), fs::Permissions::from_mode(0o000)).unwrap();
                    fs::set_permissions(&top, fs::Permissions::from_mode(0o000)).unwrap();
                }
                let seq = remove(root, "seq");
                let par = remove_parallel(root, "par", None);
                for r in [&seq, &par] {
                    assert!(r.complete, "{r:?}");
                    assert_eq!((r.files, r.dirs, r.bytes), (2, 4, 3));
                }
                assert!(!root.join("seq").exists() && !root.join("par").exists());
            },
        );
    }

    fn remove(root: &Path, name: &str) -> RemovalReport {
        let parent = fs::File::open(root).unwrap();
        let dev = fs::metadata(root).unwrap().dev();
        remove_tree_at(
            parent.as_fd(),
            OsStr::new(name),
            &root.join(name),
            dev,
            None,
        )
    }

    fn remove_parallel(root: &Path, name: &str, deadline: Option<Instant>) -> RemovalReport {
        let parent = fs::File::open(root).unwrap();
        let dev = fs::metadata(root).unwrap().dev();
        let deleter = ParallelDeleter::new(8).unwrap();
        deleter.remove_tree_at(
            parent.as_fd(),
            OsStr::new(name),
            &root.join(name),
            dev,
            deadline,
        )
    }

    /// Both deleters must agree on every tree.
    fn remove_both(make: impl Fn(&Path)) -> (RemovalReport, RemovalReport) {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        make(a.path());
        make(b.path());
        let seq = remove(a.path(), "t");
        let par = remove_parallel(b.path(), "t", None);
        assert!(!a.path().join("t").exists() && !b.path().join("t").exists());
        (seq, par)
    }

    #[test]
    fn parallel_matches_sequential() {
        let (seq, par) = remove_both(|root| {
            let top = root.join("t");
            for i in 0..20 {
                let d = top.join(format!("d{i}/e/f"));
                fs::create_dir_all(&d).unwrap();
                for j in 0..40 {
                    fs::write(d.join(format!("f{j}")), vec![1u8; j]).unwrap();
                }
                symlink("/etc/passwd", d.join("link")).unwrap();
            }
            let ro = top.join("d3/ro");
            fs::create_dir(&ro).unwrap();
            fs::write(ro.join("x"), b"x").unwrap();
            fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        });
        assert!(seq.complete && par.complete, "{seq:?} {par:?}");
        assert_eq!(
            (seq.files, seq.dirs, seq.bytes),
            (par.files, par.dirs, par.bytes)
        );
        assert_eq!(par.files, 20 * 41 + 1);
    }

    /// Each spread removes a wide directory whole, with what it freed counted once: chunks of
    /// one directory unlinked by many workers at once (local), or by a few (network).
    #[test]
    fn both_spreads_remove_a_wide_directory_and_count_it() {
        for spread in [Spread::Parallel, Spread::Serial] {
            let root = tempfile::tempdir().unwrap();
            let top = root.path().join("t");
            fs::create_dir_all(top.join("sub")).unwrap();
            for i in 0..1000usize {
                fs::write(top.join(format!("f{i}")), vec![0u8; i % 7]).unwrap();
            }
            fs::write(top.join("sub/x"), b"xy").unwrap();
            let parent = fs::File::open(root.path()).unwrap();
            let dev = fs::metadata(root.path()).unwrap().dev();
            let report = ParallelDeleter::new(16)
                .unwrap()
                .with_spread(spread)
                .remove_tree_at(parent.as_fd(), OsStr::new("t"), &top, dev, None);
            assert!(report.complete, "{spread:?}: {report:?}");
            assert!(!top.exists());
            let bytes: usize = (0..1000).map(|i| i % 7).sum::<usize>() + 2;
            assert_eq!(
                (report.files, report.dirs, report.bytes),
                (1001, 2, bytes as u64),
                "{spread:?}"
            );
        }
    }

    #[test]
    fn a_local_file_system_spreads_a_directory_over_every_worker() {
        // procfs is neither NFS nor FUSE.
        let proc = fs::File::open("/proc").unwrap();
        assert_eq!(Spread::of(proc.as_fd()), Spread::Parallel);
    }

    #[test]
    fn parallel_flat_directory_and_outside_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        let top = tmp.path().join("t");
        fs::create_dir(&top).unwrap();
        for i in 0..20_000 {
            fs::File::create(top.join(format!("f{i:05}"))).unwrap();
        }
        symlink(&outside, top.join("out")).unwrap();
        let report = remove_parallel(tmp.path(), "t", None);
        assert!(report.complete, "{report:?}");
        assert_eq!((report.files, report.dirs), (20_001, 1));
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
    }

    #[test]
    fn parallel_deadline_leaves_a_finishable_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join("a/b/f"), b"1").unwrap();
        let first = remove_parallel(tmp.path(), "t", Some(Instant::now()));
        assert!(first.stopped_at_deadline && !first.complete);
        assert!(top.exists());
        let second = remove_parallel(tmp.path(), "t", None);
        assert!(second.complete, "{second:?}");
        assert!(!top.exists());
    }

    #[test]
    fn parallel_deep_tree_over_the_handle_budget() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir(&top).unwrap();
        let mut fd: OwnedFd = fs::File::open(&top).unwrap().into();
        for _ in 0..1500 {
            rfs::mkdirat(&fd, "d", Mode::RWXU).unwrap();
            rfs::openat(&fd, "sibling", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
            fd = rfs::openat(&fd, c"d", DIR_FLAGS, Mode::empty()).unwrap();
        }
        drop(fd);
        let report = remove_parallel(tmp.path(), "t", None);
        assert!(
            report.complete,
            "{:?}",
            &report.errors[..report.errors.len().min(3)]
        );
        assert_eq!((report.files, report.dirs), (1500, 1501));
    }

    #[test]
    fn removes_a_tree_and_counts_it() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir_all(top.join("a/b/c")).unwrap();
        fs::write(top.join("a/f1"), b"12345").unwrap();
        fs::write(top.join("a/b/c/f2"), b"123").unwrap();
        let report = remove(tmp.path(), "t");
        assert!(report.complete, "{report:?}");
        assert_eq!((report.files, report.dirs, report.bytes), (2, 4, 8));
        assert!(!top.exists());
    }

    #[test]
    fn never_follows_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("precious"), b"keep").unwrap();
        let top = tmp.path().join("t");
        fs::create_dir(&top).unwrap();
        symlink(&outside, top.join("link-dir")).unwrap();
        symlink(outside.join("precious"), top.join("link-file")).unwrap();
        let report = remove(tmp.path(), "t");
        assert!(report.complete, "{report:?}");
        assert_eq!(fs::read(outside.join("precious")).unwrap(), b"keep");
        assert!(!top.exists());
    }

    #[test]
    fn deep_trees_read_only_dirs_and_odd_names() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir(&top).unwrap();
        // Deeper than PATH_MAX allows by name: built one handle at a time.
        let mut fd: OwnedFd = fs::File::open(&top).unwrap().into();
        for _ in 0..3000 {
            rfs::mkdirat(&fd, "d", Mode::RWXU).unwrap();
            fd = rfs::openat(&fd, c"d", DIR_FLAGS, Mode::empty()).unwrap();
        }
        rfs::openat(&fd, "leaf", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
        drop(fd);
        let odd = top.join(OsStr::from_bytes(b"caf\xe9"));
        fs::create_dir(&odd).unwrap();
        fs::write(odd.join("x"), b"x").unwrap();
        fs::set_permissions(&odd, fs::Permissions::from_mode(0o500)).unwrap();
        let report = remove(tmp.path(), "t");
        assert!(report.complete, "{report:?}");
        assert_eq!((report.dirs, report.files), (3002, 2));
        assert!(!top.exists());
    }

    #[test]
    fn stops_at_the_deadline_leaving_a_finishable_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let top = tmp.path().join("t");
        fs::create_dir_all(top.join("x")).unwrap();
        fs::write(top.join("x/f"), b"1").unwrap();
        let parent = fs::File::open(tmp.path()).unwrap();
        let dev = fs::metadata(tmp.path()).unwrap().dev();
        let past = Some(Instant::now());
        let first = remove_tree_at(parent.as_fd(), OsStr::new("t"), &top, dev, past);
        assert!(first.stopped_at_deadline && !first.complete);
        assert!(top.exists());
        let second = remove(tmp.path(), "t");
        assert!(second.complete);
        assert!(!top.exists());
    }

    /// The racer for files appearing during a purge: a writer still inside the directory being
    /// emptied adds files and a directory with a file, right before the deleter's next unlink.
    fn add_late_entries(dir: BorrowedFd<'_>, _: &CStr) {
        for name in [c"late-1", c"late-2"] {
            drop(rfs::openat(dir, name, OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap());
        }
        rfs::mkdirat(dir, c"late-dir", Mode::RWXU).unwrap();
        let sub = rfs::openat(dir, c"late-dir", DIR_FLAGS, Mode::empty()).unwrap();
        drop(rfs::openat(&sub, c"f", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap());
    }

    /// Files appearing in a tree while it is removed: the walk either removes them too or
    /// reports the directory it could not empty; whichever, the report says exactly whether the
    /// tree is gone, nothing outside it is touched, and the next run removes the rest.
    #[test]
    fn files_appearing_during_a_removal_are_removed_now_or_by_the_next_run() {
        type Remove = fn(&Path) -> RemovalReport;
        let runs: [(&'static CStr, Remove); 2] = [
            (c"appear-seq", |root| remove(root, "t")),
            (c"appear-par", |root| remove_parallel(root, "t", None)),
        ];
        for (trigger, run) in runs {
            let tmp = tempfile::tempdir().unwrap();
            let top = tmp.path().join("t");
            fs::create_dir_all(top.join("a/b")).unwrap();
            for i in 0..20 {
                fs::write(top.join(format!("a/b/f{i}")), b"x").unwrap();
            }
            fs::write(
                top.join("a/b").join(OsStr::from_bytes(trigger.to_bytes())),
                b"1",
            )
            .unwrap();
            fs::write(tmp.path().join("beside"), b"keep").unwrap();
            let (first, ran) =
                with_racer(Step::Unlink, trigger, add_late_entries, || run(tmp.path()));
            assert!(ran, "the writer ran");
            assert_eq!(first.complete, !top.exists(), "{first:?}");
            eprintln!(
                "{trigger:?}: first run complete: {}, errors: {:?}",
                first.complete, first.errors
            );
            if !first.complete {
                // What was left: the directories that got new entries, holding only those.
                assert!(
                    first.errors.iter().all(|e| e.error.contains("not empty")),
                    "{first:?}"
                );
                // Each is reported where it is: the top at its own path (it was once `t/t`).
                assert!(first.errors.iter().any(|e| e.path == top), "{first:?}");
                assert!(
                    first
                        .errors
                        .iter()
                        .all(|e| e.path.starts_with(&top) && !e.path.starts_with(top.join("t"))),
                    "{first:?}"
                );
                let second = run(tmp.path());
                assert!(second.complete, "{second:?}");
            }
            assert!(!top.exists());
            assert_eq!(fs::read(tmp.path().join("beside")).unwrap(), b"keep");
        }
    }

    #[test]
    fn missing_is_complete_and_a_file_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(remove(tmp.path(), "nope").complete);
        fs::write(tmp.path().join("f"), b"abc").unwrap();
        let r = remove(tmp.path(), "f");
        assert_eq!((r.files, r.bytes, r.complete), (1, 3, true));
    }
}
