//! A flat directory of a million entries, removed within a Lambda's deadline: the benchmark of
//! README "Reliability" (measured, not a timed test).
//!
//! `flat_dir [--entries N] [--workers W] [--deadline-seconds S] [DIR]` creates `N` empty files in
//! one directory under `DIR` (default: the temporary directory), removes it with the parallel
//! deleter under a deadline of `S` seconds (default 870: a 15-minute Lambda less the sweeper's
//! 30-second margin), and prints one JSON line: creation and removal times, whether it finished
//! before the deadline, the report, and the process's peak memory. A removal the deadline stopped
//! is run again, as the sweeper's next run would, and that second report is printed too.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rustix::fs::{self as rfs, Mode, OFlags};
use tree_deleter::{ParallelDeleter, DEFAULT_DELETE_WORKERS};

/// Peak resident memory of this process, in KiB (`VmHWM`).
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut entries, mut workers, mut deadline_s) =
        (1_000_000usize, DEFAULT_DELETE_WORKERS, 870u64);
    let mut base = std::env::temp_dir();
    while let Some(arg) = args.next() {
        let mut value = || args.next().and_then(|v| v.parse().ok()).expect("a number");
        match arg.as_str() {
            "--entries" => entries = value() as usize,
            "--workers" => workers = value() as usize,
            "--deadline-seconds" => deadline_s = value(),
            _ => base = PathBuf::from(arg),
        }
    }
    let parent_path = base.join(format!("flat-bench-{}", std::process::id()));
    let top = parent_path.join("flat");
    std::fs::create_dir_all(&top).expect("create the directory");

    let started = Instant::now();
    let dir = rfs::open(&top, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).expect("open");
    (0..entries).into_par_iter().for_each(|i| {
        let fd = rfs::openat(
            &dir,
            format!("f{i:07}").as_str(),
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .expect("create an entry");
        drop(fd);
    });
    drop(dir);
    let create_s = started.elapsed().as_secs_f64();

    let parent = std::fs::File::open(&parent_path).expect("open parent");
    let dev = std::fs::metadata(&parent_path).expect("stat parent").dev();
    let deleter = ParallelDeleter::new(workers).expect("thread pool");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(deadline_s);
    let report = deleter.remove_tree_at(
        parent.as_fd(),
        OsStr::new("flat"),
        &top,
        dev,
        Some(deadline),
    );
    let remove_s = started.elapsed().as_secs_f64();
    let rerun = (!report.complete)
        .then(|| deleter.remove_tree_at(parent.as_fd(), OsStr::new("flat"), &top, dev, None));
    let left = std::fs::read_dir(&top).map(|d| d.count()).unwrap_or(0);
    let _ = std::fs::remove_dir(&parent_path);
    println!(
        "{}",
        serde_json::json!({
            "entries": entries,
            "workers": workers,
            "createSeconds": create_s,
            "removeSeconds": remove_s,
            "deadlineSeconds": deadline_s,
            "withinDeadline": report.complete && remove_s < deadline_s as f64,
            "report": report,
            "rerun": rerun,
            "entriesLeft": left,
            "peakRssKiB": peak_rss_kib(),
        })
    );
}
