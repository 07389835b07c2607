//! The deleter's memory does not grow with the depth of a tree: a chain of directories with
//! 200-character names, far deeper than `PATH_MAX`, is removed by both walkers while a counting
//! global allocator records the peak of the bytes allocated. Deterministic: bytes, not time.
//! One test in this binary, so no other test's allocations are counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::OsStr;
use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use rustix::fs::{self as rfs, Mode, OFlags};
use tree_deleter::{remove_tree_at, ParallelDeleter, RemovalReport};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(by: usize) {
    let now = CURRENT.fetch_add(by, Relaxed) + by;
    PEAK.fetch_max(now, Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            CURRENT.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const DEPTH: usize = 4000;
const NAME_LEN: usize = 200;
/// Generous for what the walkers hold whatever the depth (at most a few hundred directories, each
/// a handle and its own name: 15 KB sequential, 150 KB parallel when written); a walk that kept
/// each directory's full path would hold DEPTH² × 100 bytes, 1.6 GB here.
const PEAK_LIMIT: usize = 2 << 20;

/// `top/<n>/<n>/…` DEPTH levels of 200-character names, a file at every level. Built one handle
/// at a time: the full path is 800 KB.
fn deep_chain(top: &Path) {
    fs::create_dir(top).unwrap();
    let name = "n".repeat(NAME_LEN);
    let mut fd: OwnedFd = fs::File::open(top).unwrap().into();
    for _ in 0..DEPTH {
        rfs::mkdirat(&fd, name.as_str(), Mode::RWXU).unwrap();
        rfs::openat(&fd, "f", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
        fd = rfs::openat(
            &fd,
            name.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .unwrap();
    }
}

/// Runs `remove` and returns its report and the peak of bytes allocated meanwhile.
fn measured(remove: impl FnOnce() -> RemovalReport) -> (RemovalReport, usize) {
    let base = CURRENT.load(Relaxed);
    PEAK.store(base, Relaxed);
    let report = remove();
    (report, PEAK.load(Relaxed) - base)
}

#[test]
fn a_deep_chain_of_long_names_is_removed_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let parent = fs::File::open(tmp.path()).unwrap();
    let dev = fs::metadata(tmp.path()).unwrap().dev();
    let deleter = ParallelDeleter::new(8).unwrap();
    for parallel in [false, true] {
        let top = tmp.path().join("t");
        deep_chain(&top);
        let (report, peak) = measured(|| {
            if parallel {
                deleter.remove_tree_at(parent.as_fd(), OsStr::new("t"), &top, dev, None)
            } else {
                remove_tree_at(parent.as_fd(), OsStr::new("t"), &top, dev, None)
            }
        });
        eprintln!("parallel {parallel}: peak {peak} bytes allocated");
        assert!(
            report.complete,
            "parallel {parallel}: {:?}",
            &report.errors[..report.errors.len().min(3)]
        );
        assert_eq!(
            (report.dirs, report.files),
            (DEPTH as u64 + 1, DEPTH as u64)
        );
        assert!(!top.exists());
        assert!(
            peak < PEAK_LIMIT,
            "parallel {parallel}: peak {peak} bytes allocated"
        );
    }
}
