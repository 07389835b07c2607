//! Removes one directory tree with the project's deleter, for `make bench`:
//! `purge [--workers N] [--spread serial|parallel] | --sequential] PATH` prints the removal report
//! as JSON (the spread is chosen from the file system unless given).

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use tree_deleter::{remove_tree_at, ParallelDeleter, Spread, DEFAULT_DELETE_WORKERS};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut workers = DEFAULT_DELETE_WORKERS;
    let mut sequential = false;
    let mut spread = None;
    let mut path = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => {
                workers = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--workers N")
            }
            "--sequential" => sequential = true,
            "--spread" => {
                spread = match args.next().as_deref() {
                    Some("serial") => Some(Spread::Serial),
                    Some("parallel") => Some(Spread::Parallel),
                    _ => panic!("--spread serial|parallel"),
                }
            }
            // For the bench: the concurrency its bound is computed for when none is given.
            "--print-default-workers" => {
                println!("{DEFAULT_DELETE_WORKERS}");
                return;
            }
            _ => path = Some(PathBuf::from(arg)),
        }
    }
    let path = path.expect("usage: purge [--workers N | --sequential] PATH");
    let parent_path = path.parent().expect("a path with a parent");
    let parent = std::fs::File::open(parent_path).expect("open parent");
    let dev = std::fs::metadata(parent_path).expect("stat parent").dev();
    let name = path.file_name().map(OsStr::to_os_string).expect("a name");
    let report = if sequential {
        remove_tree_at(parent.as_fd(), &name, &path, dev, None)
    } else {
        let deleter = ParallelDeleter::new(workers).expect("thread pool");
        let deleter = match spread {
            Some(spread) => deleter.with_spread(spread),
            None => deleter,
        };
        deleter.remove_tree_at(parent.as_fd(), &name, &path, dev, None)
    };
    println!(
        "{}",
        serde_json::to_string(&report).expect("report serializes")
    );
    if !report.complete {
        std::process::exit(1);
    }
}
