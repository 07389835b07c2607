//! Removing a directory tree without ever leaving it.
//!
//! Written here rather than taken from `remove_dir_all`/`jwalk` because the sweeper needs what
//! neither offers together: a deadline that stops cleanly and leaves a tree a later run finishes,
//! counts of files/directories/bytes freed, per-entry errors that do not abort the rest, a device
//! check at every directory, and making read-only directories writable. Like std's
//! `remove_dir_all`, it works from open directory handles (`openat` with `O_NOFOLLOW`), so a symlink
//! is removed as a link and its target is never touched, even if the tree changes underneath.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
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
    pub errors: Vec<EntryError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryError {
    pub path: PathBuf,
    pub error: String,
}

impl RemovalReport {
    fn error(&mut self, path: &Path, err: impl std::fmt::Display) {
        // Bound the report: a tree with a million unremovable files must not exhaust memory.
        if self.errors.len() < 100 {
            self.errors.push(EntryError {
                path: path.to_path_buf(),
                error: err.to_string(),
            });
        }
    }
}

fn open_dir_nofollow(parent: BorrowedFd<'_>, name: &CStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// A directory being emptied: its handle (closed while far from the top of the stack, so deep
/// trees do not exhaust file descriptors) and the name it has in its parent.
struct Frame {
    dir: Option<Dir>,
    name: CString,
    path: PathBuf,
}

/// Open directory handles kept at most; Lambda allows 1,024 descriptors in all.
const MAX_OPEN_DIRS: usize = 64;

/// Re-opens `stack[k]` by walking down by name, with `O_NOFOLLOW`, from its nearest open
/// ancestor, keeping up to half the handle budget open along the way so the frames above it are
/// ready when the walk returns to them. Returns how many handles it opened.
fn reopen(stack: &mut [Frame], base: BorrowedFd<'_>, k: usize) -> rustix::io::Result<usize> {
    let open_ancestor = (0..k).rev().find(|&i| stack[i].dir.is_some());
    let first = open_ancestor.map_or(0, |i| i + 1);
    let keep_from = k.saturating_sub(MAX_OPEN_DIRS / 2).max(first);
    let mut fd: Option<OwnedFd> = None;
    let mut opened = 0;
    for i in first..=k {
        let parent = match (&fd, open_ancestor) {
            (Some(fd), _) => fd.as_fd(),
            (None, Some(a)) => stack[a].dir.as_ref().expect("open").fd()?,
            (None, None) => base,
        };
        let child = open_dir_nofollow(parent, stack[i].name.as_c_str())?;
        if i >= keep_from {
            let dup = child
                .try_clone()
                .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::MFILE))?;
            stack[i].dir = Some(Dir::new(dup)?);
            opened += 1;
        }
        fd = Some(child);
    }
    Ok(opened)
}

/// What the top of a removal is: a directory to walk, or already dealt with (missing, a file or a
/// link removed as such, another file system or a bad name reported).
enum Top {
    Walk(CString),
    Done(RemovalReport),
}

fn top_directory(parent: BorrowedFd<'_>, name: &OsStr, display_path: &Path, dev: u64) -> Top {
    let mut report = RemovalReport::default();
    let Ok(cname) = CString::new(name.as_bytes()) else {
        report.error(display_path, "name contains a NUL byte");
        return Top::Done(report);
    };
    let st = match rfs::statat(parent, cname.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => {
            report.complete = true;
            return Top::Done(report);
        }
        Err(e) => {
            report.error(display_path, e);
            return Top::Done(report);
        }
    };
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        match rfs::unlinkat(parent, cname.as_c_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {
                report.files += 1;
                report.bytes += st.st_size as u64;
                report.complete = true;
            }
            Err(e) => report.error(display_path, e),
        }
        return Top::Done(report);
    }
    if st.st_dev != dev {
        report.error(display_path, "on another file system; not crossed");
        return Top::Done(report);
    }
    Top::Walk(cname)
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
    let (cname, mut report) = match top_directory(parent, name, display_path, dev) {
        Top::Walk(cname) => (cname, RemovalReport::default()),
        Top::Done(report) => return report,
    };
    let mut stack: Vec<Frame> = Vec::new();
    match open_frame(parent, cname, display_path.to_path_buf(), &mut report) {
        Some(frame) => stack.push(frame),
        None => return report,
    }
    let mut open_dirs = 1usize;
    // Directories are emptied depth first with an explicit stack: no recursion limit.
    while !stack.is_empty() {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            report.stopped_at_deadline = true;
            return report;
        }
        let k = stack.len() - 1;
        if stack[k].dir.is_none() {
            match reopen(&mut stack, parent, k) {
                Ok(n) => open_dirs += n,
                Err(e) => {
                    let path = stack[k].path.clone();
                    report.error(&path, e);
                    stack.pop();
                    continue;
                }
            }
        }
        let top = &mut stack[k];
        let dir = top.dir.as_mut().expect("top frame is open");
        match dir.read() {
            Some(Ok(entry)) => {
                let entry_name = entry.file_name();
                if entry_name == c"." || entry_name == c".." {
                    continue;
                }
                let child_name = entry_name.to_owned();
                let child_path = top.path.join(OsStr::from_bytes(child_name.as_bytes()));
                let Ok(dirfd) = dir.fd() else {
                    report.error(&top.path, "directory handle lost");
                    stack.pop();
                    continue;
                };
                let st = match rfs::statat(dirfd, child_name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(st) => st,
                    Err(Errno::NOENT) => continue,
                    Err(e) => {
                        report.error(&child_path, e);
                        continue;
                    }
                };
                if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                    if st.st_dev != dev {
                        report.error(&child_path, "on another file system; not crossed");
                        continue;
                    }
                    if let Some(frame) = open_frame(dirfd, child_name, child_path, &mut report) {
                        stack.push(frame);
                        open_dirs += 1;
                        if open_dirs > MAX_OPEN_DIRS {
                            // Close the shallowest open handle; it is re-opened by name on return.
                            if let Some(f) = stack.iter_mut().find(|f| f.dir.is_some()) {
                                f.dir = None;
                                open_dirs -= 1;
                            }
                        }
                    }
                } else {
                    match rfs::unlinkat(dirfd, child_name.as_c_str(), AtFlags::empty()) {
                        Ok(()) => {
                            report.files += 1;
                            report.bytes += st.st_size as u64;
                        }
                        Err(Errno::NOENT) => {}
                        Err(e) => report.error(&child_path, e),
                    }
                }
            }
            Some(Err(e)) => {
                let path = top.path.clone();
                report.error(&path, e);
                stack.pop();
                open_dirs -= 1;
            }
            None => {
                let done = stack.pop().expect("stack is not empty");
                drop(done.dir);
                open_dirs -= 1;
                if let Some(k) = stack.len().checked_sub(1) {
                    if stack[k].dir.is_none() {
                        match reopen(&mut stack, parent, k) {
                            Ok(n) => open_dirs += n,
                            Err(e) => {
                                report.error(&done.path, e);
                                continue;
                            }
                        }
                    }
                }
                let parent_fd = match stack.last() {
                    Some(frame) => frame.dir.as_ref().expect("reopened").fd(),
                    None => Ok(parent),
                };
                let result = parent_fd
                    .and_then(|fd| rfs::unlinkat(fd, done.name.as_c_str(), AtFlags::REMOVEDIR));
                match result {
                    Ok(()) | Err(Errno::NOENT) => report.dirs += 1,
                    Err(e) => report.error(&done.path, e),
                }
            }
        }
    }
    report.complete = report.errors.is_empty();
    report
}

/// Opens a directory to empty it, making it readable and writable first if it is not: a
/// read-only directory cannot have its entries removed.
fn open_frame(
    parent: BorrowedFd<'_>,
    name: CString,
    path: PathBuf,
    report: &mut RemovalReport,
) -> Option<Frame> {
    let fd = match open_dir_nofollow(parent, name.as_c_str()) {
        Ok(fd) => fd,
        Err(Errno::ACCESS) => {
            // No read/search permission: grant it to ourselves (the directory is ours to delete).
            if let Err(e) = rfs::chmodat(parent, name.as_c_str(), Mode::RWXU, AtFlags::empty()) {
                report.error(&path, e);
                return None;
            }
            match open_dir_nofollow(parent, name.as_c_str()) {
                Ok(fd) => fd,
                Err(e) => {
                    report.error(&path, e);
                    return None;
                }
            }
        }
        Err(e) => {
            report.error(&path, e);
            return None;
        }
    };
    if let Ok(st) = rfs::fstat(fd.as_fd()) {
        let mode = st.st_mode & 0o7777;
        if mode & 0o700 != 0o700 {
            let _ = rfs::fchmod(fd.as_fd(), Mode::from_raw_mode(mode | 0o700));
        }
    }
    match Dir::new(fd) {
        Ok(dir) => Some(Frame {
            dir: Some(dir),
            name,
            path,
        }),
        Err(e) => {
            report.error(&path, e);
            None
        }
    }
}

/// A deleter that keeps many metadata calls in flight, for file systems where each call is a
/// network round trip (EFS: ~2.7 ms a write). Directories are scanned as tasks on a dedicated
/// thread pool; the files of a directory are unlinked in chunks by any idle worker; a directory
/// is removed by whichever task empties it last, which then completes its parent in turn.
pub struct ParallelDeleter {
    pool: rayon::ThreadPool,
    /// Directory handles held open at once; past it, subtrees are removed by the sequential
    /// walker (which holds few), so Lambda's 1,024 descriptors are never exhausted.
    fd_budget: usize,
}

/// Names unlinked by one task: large enough to amortise scheduling, small enough that a flat
/// directory of 100,000 files spreads over every worker.
const UNLINK_CHUNK: usize = 32;
pub const DEFAULT_DELETE_WORKERS: usize = 64;

/// What the tasks of one removal share.
struct Shared<'p> {
    top_parent: BorrowedFd<'p>,
    dev: u64,
    deadline: Option<Instant>,
    open_dirs: std::sync::atomic::AtomicUsize,
    fd_budget: usize,
    files: std::sync::atomic::AtomicU64,
    dirs: std::sync::atomic::AtomicU64,
    bytes: std::sync::atomic::AtomicU64,
    stopped: std::sync::atomic::AtomicBool,
    report: std::sync::Mutex<RemovalReport>,
}

/// A directory being emptied. `remaining` counts its unfinished tasks (its own scan, its unlink
/// chunks, its subdirectories); the one that brings it to zero removes it.
struct Node {
    fd: OwnedFd,
    name: CString,
    path: PathBuf,
    parent: Option<std::sync::Arc<Node>>,
    remaining: std::sync::atomic::AtomicUsize,
}

use std::sync::atomic::Ordering::{AcqRel, Relaxed};
use std::sync::Arc;

impl Shared<'_> {
    fn past_deadline(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.stopped.store(true, Relaxed);
        }
        self.stopped.load(Relaxed)
    }

    fn error(&self, path: &Path, err: impl std::fmt::Display) {
        self.report.lock().unwrap().error(path, err);
    }

    /// One task of `node` is done; the last one removes the directory and completes its parent.
    fn finish(&self, mut node: Arc<Node>) {
        loop {
            if node.remaining.fetch_sub(1, AcqRel) != 1 {
                return;
            }
            let parent_fd = match &node.parent {
                Some(p) => p.fd.as_fd(),
                None => self.top_parent,
            };
            match rfs::unlinkat(parent_fd, node.name.as_c_str(), AtFlags::REMOVEDIR) {
                Ok(()) | Err(Errno::NOENT) => {
                    self.dirs.fetch_add(1, Relaxed);
                }
                Err(e) => self.error(&node.path, e),
            }
            let Some(parent) = node.parent.clone() else {
                return;
            };
            self.open_dirs.fetch_sub(1, Relaxed);
            drop(node);
            node = parent;
        }
    }
}

impl ParallelDeleter {
    pub fn new(workers: usize) -> std::io::Result<Self> {
        let workers = workers.clamp(1, 512);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .thread_name(|i| format!("deleter-{i}"))
            .build()
            .map_err(std::io::Error::other)?;
        Ok(Self {
            pool,
            fd_budget: 384,
        })
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
        let (cname, mut report) = match top_directory(parent, name, display_path, dev) {
            Top::Walk(cname) => (cname, RemovalReport::default()),
            Top::Done(report) => return report,
        };
        let Some(root) = open_node(parent, cname, display_path.to_path_buf(), None, &mut report)
        else {
            return report;
        };
        let shared = Shared {
            top_parent: parent,
            dev,
            deadline,
            open_dirs: std::sync::atomic::AtomicUsize::new(1),
            fd_budget: self.fd_budget,
            files: Default::default(),
            dirs: Default::default(),
            bytes: Default::default(),
            stopped: Default::default(),
            report: std::sync::Mutex::new(report),
        };
        self.pool.scope(|s| scan(s, &shared, root));
        let mut report = shared.report.into_inner().unwrap();
        report.files += shared.files.into_inner();
        report.dirs += shared.dirs.into_inner();
        report.bytes += shared.bytes.into_inner();
        report.stopped_at_deadline = shared.stopped.into_inner();
        report.complete = !report.stopped_at_deadline
            && report.errors.is_empty()
            && matches!(
                rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW),
                Err(Errno::NOENT)
            );
        report
    }
}

fn open_node(
    parent: BorrowedFd<'_>,
    name: CString,
    path: PathBuf,
    parent_node: Option<Arc<Node>>,
    report: &mut RemovalReport,
) -> Option<Arc<Node>> {
    let frame = open_frame(parent, name, path, report)?;
    let Frame { dir, name, path } = frame;
    // `open_frame` wraps the handle in a `Dir`; the parallel walker wants the raw handle back.
    let fd = dir?.fd().ok().and_then(|fd| fd.try_clone_to_owned().ok())?;
    Some(Arc::new(Node {
        fd,
        name,
        path,
        parent: parent_node,
        remaining: std::sync::atomic::AtomicUsize::new(1),
    }))
}

fn scan<'s>(s: &rayon::Scope<'s>, shared: &'s Shared<'s>, node: Arc<Node>) {
    if shared.past_deadline() {
        return;
    }
    let mut dir = match Dir::read_from(&node.fd) {
        Ok(dir) => dir,
        Err(e) => {
            shared.error(&node.path, e);
            return;
        }
    };
    let mut files: Vec<CString> = Vec::new();
    while let Some(entry) = dir.read() {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                shared.error(&node.path, e);
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
            FileType::Unknown => rfs::statat(&node.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if !is_dir {
            files.push(name);
            if files.len() == UNLINK_CHUNK {
                spawn_unlink(s, shared, &node, std::mem::take(&mut files));
            }
            continue;
        }
        let child_path = node.path.join(OsStr::from_bytes(name.as_bytes()));
        match rfs::statat(&node.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if st.st_dev != shared.dev => {
                shared.error(&child_path, "on another file system; not crossed");
                continue;
            }
            Ok(_) => {}
            Err(Errno::NOENT) => continue,
            Err(e) => {
                shared.error(&child_path, e);
                continue;
            }
        }
        if shared.open_dirs.load(Relaxed) >= shared.fd_budget {
            // Out of handle budget: this subtree goes sequentially, in this worker.
            let report = remove_tree_at(
                node.fd.as_fd(),
                OsStr::from_bytes(name.as_bytes()),
                &child_path,
                shared.dev,
                shared.deadline,
            );
            let mut total = shared.report.lock().unwrap();
            total.files += report.files;
            total.dirs += report.dirs;
            total.bytes += report.bytes;
            for e in report.errors {
                total.error(&e.path, e.error);
            }
            if report.stopped_at_deadline {
                shared.stopped.store(true, Relaxed);
            }
            continue;
        }
        let mut report = RemovalReport::default();
        let child = open_node(
            node.fd.as_fd(),
            name,
            child_path,
            Some(node.clone()),
            &mut report,
        );
        for e in report.errors {
            shared.error(&e.path, e.error);
        }
        if let Some(child) = child {
            shared.open_dirs.fetch_add(1, Relaxed);
            node.remaining.fetch_add(1, AcqRel);
            s.spawn(move |s| scan(s, shared, child));
        }
    }
    if !files.is_empty() {
        spawn_unlink(s, shared, &node, files);
    }
    drop(dir);
    shared.finish(node);
}

fn spawn_unlink<'s>(
    s: &rayon::Scope<'s>,
    shared: &'s Shared<'s>,
    node: &Arc<Node>,
    names: Vec<CString>,
) {
    node.remaining.fetch_add(1, AcqRel);
    let node = node.clone();
    s.spawn(move |_| {
        for name in &names {
            if shared.past_deadline() {
                return;
            }
            // The size is read first: it is what "bytes freed" reports.
            let size = match rfs::statat(&node.fd, name.as_c_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_size as u64,
                Err(Errno::NOENT) => continue,
                Err(e) => {
                    shared.error(&node.path.join(OsStr::from_bytes(name.as_bytes())), e);
                    continue;
                }
            };
            match rfs::unlinkat(&node.fd, name.as_c_str(), AtFlags::empty()) {
                Ok(()) => {
                    shared.files.fetch_add(1, Relaxed);
                    shared.bytes.fetch_add(size, Relaxed);
                }
                Err(Errno::NOENT) => {}
                Err(e) => shared.error(&node.path.join(OsStr::from_bytes(name.as_bytes())), e),
            }
        }
        shared.finish(node);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};

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
            fd = open_dir_nofollow(fd.as_fd(), c"d").unwrap();
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
            fd = open_dir_nofollow(fd.as_fd(), c"d").unwrap();
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

    #[test]
    fn missing_is_complete_and_a_file_is_removed() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(remove(tmp.path(), "nope").complete);
        fs::write(tmp.path().join("f"), b"abc").unwrap();
        let r = remove(tmp.path(), "f");
        assert_eq!((r.files, r.bytes, r.complete), (1, 3, true));
    }
}
