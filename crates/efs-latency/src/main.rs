//! `efs-latency`: a FUSE passthrough of a local directory that answers every operation only after
//! a configurable delay, so that anything using the mount (the project's deleter, `rm -rf`, `rmz`,
//! whatever makes raw system calls) feels a network file system's round trips. Bench-only.
//!
//! `efs-latency [--read-us 600] [--write-us 2700] [--delay OP=US]... [--ttl-ms 1000]
//!              [--threads 2] [--stats FILE] BACKING MOUNTPOINT`
//!
//! The operation itself is done at once (in one of `--threads` session threads); its reply is
//! held by a timer until the delay has passed. Replies are independent of the threads, so any
//! number of operations wait at once and their delays overlap, as round trips to EFS do. On
//! unmount it writes what it served (operations by kind, the delay they were given) as JSON.
//!
//! Every inode the kernel knows is an `O_PATH` handle on the backing entry; every operation is
//! relative to such a handle, so depth and renames never matter (no path is ever rebuilt).

mod delays;
mod fs;
mod timer;

use std::path::PathBuf;
use std::time::Duration;

use delays::{Delays, Op};

fn usage() -> ! {
    eprintln!(
        "usage: efs-latency [--read-us N] [--write-us N] [--delay OP=US]... [--ttl-ms N] \
         [--threads N] [--stats FILE] BACKING MOUNTPOINT\n  OP: {}",
        Op::ALL.map(Op::name).join(", ")
    );
    std::process::exit(2)
}

fn main() {
    let mut read_us = 600u64;
    let mut write_us = 2700u64;
    let mut overrides = Vec::new();
    let mut ttl = Duration::from_millis(1000);
    let mut threads = 2usize;
    let mut stats = None;
    let mut positional = Vec::new();
    let mut args = std::env::args().skip(1);
    let num =
        |v: Option<String>| -> u64 { v.and_then(|v| v.parse().ok()).unwrap_or_else(|| usage()) };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--read-us" => read_us = num(args.next()),
            "--write-us" => write_us = num(args.next()),
            "--ttl-ms" => ttl = Duration::from_millis(num(args.next())),
            "--threads" => threads = num(args.next()).max(1) as usize,
            "--stats" => stats = Some(PathBuf::from(args.next().unwrap_or_else(|| usage()))),
            "--delay" => {
                let spec = args.next().unwrap_or_else(|| usage());
                let (op, us) = spec.split_once('=').unwrap_or_else(|| usage());
                let op = Op::parse(op).unwrap_or_else(|| usage());
                overrides.push((op, us.parse().unwrap_or_else(|_| usage())));
            }
            "-h" | "--help" => usage(),
            _ => positional.push(PathBuf::from(arg)),
        }
    }
    let [backing, mountpoint] = <[PathBuf; 2]>::try_from(positional).unwrap_or_else(|_| usage());
    let mut delays = Delays::efs_like(read_us, write_us);
    for (op, us) in overrides {
        delays.set(op, Duration::from_micros(us));
    }
    let fs = fs::LatencyFs::new(&backing, delays, ttl, stats).unwrap_or_else(|e| {
        eprintln!("efs-latency: {}: {e}", backing.display());
        std::process::exit(1)
    });
    // One inode handle per entry the kernel knows: a flat directory of 100,000 files needs that
    // many descriptors.
    raise_fd_limit();
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName("efs-latency".into()),
        fuser::MountOption::Subtype("efs-latency".into()),
    ];
    config.n_threads = Some(threads);
    config.clone_fd = threads > 1;
    if let Err(e) = fuser::mount(fs, &mountpoint, &config) {
        eprintln!("efs-latency: mount {}: {e}", mountpoint.display());
        std::process::exit(1)
    }
}

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            let want = libc::rlimit {
                rlim_cur: 1 << 20,
                rlim_max: lim.rlim_max.max(1 << 20),
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) != 0 {
                lim.rlim_cur = lim.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
            }
        }
    }
}
