//! The walk's look-ahead: a bounded pool of threads that list directories and stat, open and read
//! entries ahead of the one tar writer, so that a file system whose every metadata operation is a
//! round trip (EFS: 0.6-2.7 ms) is walked many entries at a time while the archive keeps the order
//! of a serial walk, byte for byte.
//!
//! Every entry has a position: the indices of its directories and its own in its directory's
//! listing order (`[3, 0, 7]`). Ordered as sequences, positions are the serial walk's pre-order
//! (a directory, everything under it, then its next sibling). The writer asks for one position
//! after the other; the workers always take the smallest position waiting. Two kinds of work:
//! fetching one listed entry (stat it, and open it, check it is the entry listed and read it if it
//! is a small file, or read its link target), and listing the next names of a directory (a chunk
//! at a time: one thread lists a directory, in order). What a fetch does, and every check it
//! makes, is what the serial walk did, relative to the parent's handle; only when it happens
//! changes. An error is the writer's when it reaches that position, as in the serial walk.
//!
//! Memory and handles are bounded whatever the tree: at most [`Lookahead::entries`] entries are
//! fetched ahead of the writer (each holds at most one open handle, two for a directory being
//! listed), about four times that many names are listed ahead, and at most
//! [`Lookahead::bytes`] of small files' contents are held; a file larger than [`SMALL_FILE`], or
//! met when that budget is spent, is opened and checked ahead but read by the writer as it
//! archives it. The writer never waits on a limit: the entry it needs next, if no worker has
//! taken it, it fetches itself (so a walk with no workers is the serial walk).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Stat};

use super::tree::{display, io_err, TreeError, DIR_NOFOLLOW, MAX_DEPTH};

/// Files up to this size are read ahead whole (while the byte budget lasts); larger ones are
/// streamed by the writer from the handle opened ahead.
pub const SMALL_FILE: u64 = 512 * 1024;
/// Names listed per turn of a directory's listing at most.
const LISTING_CHUNK: usize = 128;

/// How far and how wide the walk looks ahead of the writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookahead {
    /// Threads fetching ahead. 0: the writer fetches each entry itself, one after the other.
    pub workers: usize,
    /// Entries fetched ahead of the writer at most (each holds at most one handle, a directory
    /// being listed two).
    pub entries: usize,
    /// Bytes of small files read ahead of the writer at most.
    pub bytes: usize,
    /// A fetch that took this long waited for a round trip: another worker joins. One starts at
    /// once, so a tree in the page cache is walked by one or two, a tree on EFS by all of them
    /// within a few round trips. Zero: every fetch lets another join.
    pub round_trip: Duration,
}

impl Default for Lookahead {
    /// Up to 64 round trips in flight (scripts/bench_archive.py: 17x `tar | zstd` under the EFS
    /// latency model); 256 entries and 8 MiB keep every worker busy with room to spare; 200 us is
    /// longer than any answer from the page cache and shorter than any EFS round trip.
    fn default() -> Self {
        Self {
            workers: 64,
            entries: 256,
            bytes: 8 << 20,
            round_trip: Duration::from_micros(200),
        }
    }
}

/// A position in the walk's order.
pub(super) type Position = Vec<u32>;

/// An entry as the writer archives it.
pub(super) enum Fetched {
    /// Its stat as listed (the serial walk archived that one too).
    Directory(Stat),
    /// Its stat through the handle opened on it.
    File {
        st: Stat,
        content: Content,
    },
    Symlink {
        st: Stat,
        target: Vec<u8>,
    },
    /// A FIFO, socket or device file: never opened.
    Skipped,
}

pub(super) enum Content {
    /// Exactly the file's size in bytes (counted against the byte budget until written).
    Read(Vec<u8>),
    /// Opened and checked; the writer reads it.
    Open(std::fs::File),
}

/// What the writer finds at a position.
pub(super) enum Slot {
    Entry {
        rel: Vec<u8>,
        fetched: Result<Fetched, TreeError>,
    },
    /// The directory's listing ended before this position.
    End,
    /// Listing the directory failed at this position.
    Failed(TreeError),
}

/// A directory whose names are being listed.
struct Listing {
    /// The directory's handle, which its entries are reached through.
    fd: Arc<OwnedFd>,
    /// The listing's own handle (a duplicate: its position moves), opened at its first turn.
    dir: Option<Dir>,
    rel: Vec<u8>,
}

enum Job {
    Fetch {
        parent: Arc<OwnedFd>,
        name: Vec<u8>,
        rel: Vec<u8>,
    },
    List(Listing),
}

/// A job's result, published under the lock.
enum Done {
    Fetched {
        rel: Vec<u8>,
        fetched: Result<Fetched, TreeError>,
        /// A directory's listing, to start at its first position.
        listing: Option<Listing>,
    },
    Listed {
        names: Vec<(Position, Job)>,
        /// The listing's next turn, or how it ended, at `next`.
        next: Position,
        rest: Result<Option<Listing>, TreeError>,
    },
}

#[derive(Default)]
struct State {
    fetches: BTreeMap<Position, Job>,
    listings: BTreeMap<Position, Job>,
    ready: HashMap<Position, Slot>,
    /// Entries taken by a fetch and not yet handed to the writer.
    admitted: usize,
    /// Names listed and not yet handed to the writer.
    known: usize,
    /// Bytes of contents read ahead and not yet written.
    buffered: usize,
    /// Workers waiting for work.
    idle: usize,
    /// The position the writer waits for.
    waiting: Option<Position>,
    stop: bool,
    /// The most `admitted`, `known` and `buffered` ever were.
    #[cfg(test)]
    high: [usize; 3],
}

pub(super) struct Prefetch {
    limits: Lookahead,
    /// The top's device: no directory on another is entered.
    device: u64,
    state: Mutex<State>,
    work: Condvar,
    ready: Condvar,
}

impl Prefetch {
    /// A walk of the directory `top` (on `device`), its first listing queued.
    pub(super) fn new(top: OwnedFd, device: u64, limits: Lookahead) -> Self {
        let mut state = State::default();
        state.listings.insert(
            vec![0],
            Job::List(Listing {
                fd: Arc::new(top),
                dir: None,
                rel: Vec::new(),
            }),
        );
        Self {
            limits: Lookahead {
                entries: limits.entries.max(1),
                ..limits
            },
            device,
            state: Mutex::new(state),
            work: Condvar::new(),
            ready: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker: takes the smallest position waiting within the limits until stopped. `grow`
    /// starts one more worker (false once there are as many as allowed).
    pub(super) fn work(&self, grow: impl Fn() -> bool) {
        let mut st = self.lock();
        let mut full = false;
        loop {
            if st.stop {
                return;
            }
            if let Some((pos, job)) = self.take(&mut st) {
                drop(st);
                let started = Instant::now();
                let done = self.run(&pos, job);
                let slow = started.elapsed() >= self.limits.round_trip;
                st = self.lock();
                self.publish(&mut st, pos, done, slow);
                // A round trip: more workers help, so one more joins (woken, or started: their
                // number doubles at every round trip while there is work). Work answered from
                // a cache is done faster by the workers already awake than by more threads.
                if slow && self.runnable(&st) {
                    if st.idle > 0 {
                        self.work.notify_one();
                    } else if !full {
                        drop(st);
                        full = !grow();
                        st = self.lock();
                    }
                }
                continue;
            }
            st.idle += 1;
            st = self.work.wait(st).unwrap_or_else(PoisonError::into_inner);
            st.idle -= 1;
        }
    }

    /// The workers' next job: the smallest position of either kind that its limit lets run.
    fn take(&self, st: &mut State) -> Option<(Position, Job)> {
        let fetch = st
            .fetches
            .first_key_value()
            .filter(|_| st.admitted < self.limits.entries)
            .map(|(k, _)| k);
        let list = st
            .listings
            .first_key_value()
            .filter(|_| st.known < 4 * self.limits.entries)
            .map(|(k, _)| k);
        let listing = match (fetch, list) {
            (Some(f), Some(l)) => l < f,
            (Some(_), None) => false,
            (None, Some(_)) => true,
            (None, None) => return None,
        };
        if listing {
            self.take_listing(st)
        } else {
            st.admitted += 1;
            #[cfg(test)]
            note_high(st);
            st.fetches.pop_first()
        }
    }

    /// The first listing turn, its names counted as known already: turns running at once never
    /// list more than their chunks past the limit.
    fn take_listing(&self, st: &mut State) -> Option<(Position, Job)> {
        st.known += self.chunk();
        st.listings.pop_first()
    }

    fn chunk(&self) -> usize {
        self.limits.entries.min(LISTING_CHUNK)
    }

    /// The slot at `pos` for the writer, waiting for it (or fetching it) as long as it takes, but
    /// never past the deadline.
    pub(super) fn next(
        &self,
        pos: &Position,
        deadline: Option<Instant>,
    ) -> Result<Slot, TreeError> {
        let mut st = self.lock();
        loop {
            if let Some(slot) = st.ready.remove(pos) {
                if let Slot::Entry { .. } = slot {
                    st.admitted -= 1;
                    st.known -= 1;
                    // Room again under a limit: a worker is woken once a quarter of it is free
                    // (not at every entry: a worker per entry costs more than it saves).
                    let entries = self.limits.entries;
                    if st.idle > 0
                        && (st.admitted == entries * 3 / 4 || st.known == 3 * entries)
                        && self.runnable(&st)
                    {
                        self.work.notify_one();
                    }
                }
                return Ok(slot);
            }
            // The writer's next entry, not taken yet: fetched here rather than waited for.
            let job = if first_is(&st.fetches, pos) {
                st.admitted += 1;
                st.fetches.pop_first()
            } else if first_is(&st.listings, pos) {
                self.take_listing(&mut st)
            } else {
                None
            };
            if let Some((_, job)) = job {
                drop(st);
                let done = self.run(pos, job);
                st = self.lock();
                self.publish(&mut st, pos.clone(), done, false);
                continue;
            }
            st.waiting = Some(pos.clone());
            st = match deadline {
                None => self.ready.wait(st).unwrap_or_else(PoisonError::into_inner),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        st.waiting = None;
                        return Err(TreeError::Deadline);
                    }
                    self.ready
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
            st.waiting = None;
        }
    }

    /// The most entries fetched ahead, names listed ahead and bytes read ahead at once.
    #[cfg(test)]
    pub(super) fn high(&self) -> [usize; 3] {
        self.lock().high
    }

    /// Written: its bytes leave the budget.
    pub(super) fn release(&self, bytes: usize) {
        if bytes > 0 {
            let mut st = self.lock();
            st.buffered -= bytes;
        }
    }

    /// Stops the workers and drops what was fetched ahead (its handles close).
    pub(super) fn stop(&self) {
        let (fetches, listings, ready) = {
            let mut st = self.lock();
            st.stop = true;
            (
                std::mem::take(&mut st.fetches),
                std::mem::take(&mut st.listings),
                std::mem::take(&mut st.ready),
            )
        };
        self.work.notify_all();
        drop((fetches, listings, ready));
    }

    /// Whether a worker could take a job now.
    fn runnable(&self, st: &State) -> bool {
        (!st.fetches.is_empty() && st.admitted < self.limits.entries)
            || (!st.listings.is_empty() && st.known < 4 * self.limits.entries)
    }

    /// Publishes a job's result and the jobs it adds; wakes the writer if it waits for it, and
    /// workers for the new jobs: as many as there are after a round trip, one otherwise.
    fn publish(&self, st: &mut State, pos: Position, done: Done, slow: bool) {
        let mut added = 0;
        let (at, slot) = match done {
            Done::Fetched {
                rel,
                fetched,
                listing,
            } => {
                if let Some(listing) = listing {
                    let mut first = pos.clone();
                    first.push(0);
                    st.listings.insert(first, Job::List(listing));
                    added += 1;
                }
                (pos, Some(Slot::Entry { rel, fetched }))
            }
            Done::Listed { names, next, rest } => {
                st.known = st.known + names.len() - self.chunk();
                added += names.len();
                st.fetches.extend(names);
                match rest {
                    Ok(Some(listing)) => {
                        st.listings.insert(next.clone(), Job::List(listing));
                        added += 1;
                        (next, None)
                    }
                    Ok(None) => (next, Some(Slot::End)),
                    Err(e) => (next, Some(Slot::Failed(e))),
                }
            }
        };
        if let Some(slot) = slot {
            st.ready.insert(at, slot);
        }
        // The writer waits for its slot, or for its job to be queued (past the limits, no
        // worker takes it: the writer does).
        if let Some(pos) = &st.waiting {
            if st.ready.contains_key(pos)
                || first_is(&st.fetches, pos)
                || first_is(&st.listings, pos)
            {
                self.ready.notify_one();
            }
        }
        #[cfg(test)]
        note_high(st);
        let wake = if slow { added } else { added.min(1) };
        for _ in 0..wake.min(st.idle) {
            self.work.notify_one();
        }
    }

    fn run(&self, pos: &Position, job: Job) -> Done {
        let rel = match &job {
            Job::Fetch { rel, .. } | Job::List(Listing { rel, .. }) => rel.clone(),
        };
        let fetch = matches!(job, Job::Fetch { .. });
        match catch_unwind(AssertUnwindSafe(|| match job {
            Job::Fetch { parent, name, rel } => {
                let (fetched, listing) = self.fetch(pos, &parent, &name, &rel);
                Done::Fetched {
                    rel,
                    fetched,
                    listing,
                }
            }
            Job::List(listing) => self.list(pos, listing),
        })) {
            Ok(done) => done,
            // A bug, not the file system: the walk fails at this entry rather than hang.
            Err(_) => {
                let failed = io_err("walk", &rel, io::Error::other("a walker panicked"));
                if fetch {
                    Done::Fetched {
                        rel,
                        fetched: Err(failed),
                        listing: None,
                    }
                } else {
                    Done::Listed {
                        names: Vec::new(),
                        next: pos.clone(),
                        rest: Err(failed),
                    }
                }
            }
        }
    }

    /// One entry, as the serial walk took it: stat relative to the parent's handle without
    /// following a link; a directory on the same device and within [`MAX_DEPTH`] opened
    /// (`O_NOFOLLOW`) and checked to be the one listed; a file opened the same way and checked,
    /// then read whole when small; a link's target read.
    fn fetch(
        &self,
        pos: &Position,
        parent: &OwnedFd,
        name: &[u8],
        rel: &[u8],
    ) -> (Result<Fetched, TreeError>, Option<Listing>) {
        let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(e) => return (Err(io_err("stat", rel, e)), None),
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if st.st_dev != self.device {
                    let refused = io_err("refuse (another device)", rel, io::ErrorKind::Other);
                    return (Err(refused), None);
                }
                if pos.len() > MAX_DEPTH {
                    return (Err(TreeError::TooDeep(display(rel))), None);
                }
                #[cfg(test)]
                tests::race(parent.as_fd(), name);
                let opened = rfs::openat(parent, name, DIR_NOFOLLOW, Mode::empty())
                    .map_err(|e| io_err("open dir", rel, e))
                    .and_then(|fd| same_entry(&fd, &st, rel).map(|_| fd));
                match opened {
                    Ok(fd) => (
                        Ok(Fetched::Directory(st)),
                        Some(Listing {
                            fd: Arc::new(fd),
                            dir: None,
                            rel: rel.to_vec(),
                        }),
                    ),
                    Err(e) => (Err(e), None),
                }
            }
            FileType::RegularFile => (self.fetch_file(parent, name, rel, &st), None),
            FileType::Symlink => {
                let fetched = rfs::readlinkat(parent, name, Vec::new())
                    .map(|target| Fetched::Symlink {
                        st,
                        target: target.into_bytes(),
                    })
                    .map_err(|e| io_err("read link", rel, e));
                (fetched, None)
            }
            _ => (Ok(Fetched::Skipped), None),
        }
    }

    fn fetch_file(
        &self,
        parent: &OwnedFd,
        name: &[u8],
        rel: &[u8],
        listed: &Stat,
    ) -> Result<Fetched, TreeError> {
        #[cfg(test)]
        tests::race(parent.as_fd(), name);
        let fd = rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
            Mode::empty(),
        )
        .map_err(|e| io_err("open file", rel, e))?;
        let st = same_entry(&fd, listed, rel)?;
        let size = st.st_size as u64;
        let file = std::fs::File::from(fd);
        if size > SMALL_FILE || !self.reserve(size as usize) {
            return Ok(Fetched::File {
                st,
                content: Content::Open(file),
            });
        }
        // Exactly its size, as the tar header says: one that shrank is an error, one that grew
        // is cut at that size.
        let mut bytes = Vec::with_capacity(size as usize);
        let read = file.take(size).read_to_end(&mut bytes);
        let short = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            )
        };
        match read {
            Ok(n) if n as u64 == size => Ok(Fetched::File {
                st,
                content: Content::Read(bytes),
            }),
            other => {
                self.release(size as usize);
                Err(io_err("tar", rel, other.err().unwrap_or_else(short)))
            }
        }
    }

    /// Takes `bytes` from the read-ahead budget, if they fit.
    fn reserve(&self, bytes: usize) -> bool {
        let mut st = self.lock();
        if st.buffered + bytes > self.limits.bytes && bytes > 0 {
            return false;
        }
        st.buffered += bytes;
        #[cfg(test)]
        note_high(&mut st);
        true
    }

    /// The directory's next names (a chunk), each a fetch at its position, then the listing's
    /// next turn or its end.
    fn list(&self, pos: &Position, mut listing: Listing) -> Done {
        let mut next = pos.clone();
        let mut names = Vec::new();
        let where_ = |rel: &[u8]| {
            if rel.is_empty() {
                b".".to_vec()
            } else {
                rel.to_vec()
            }
        };
        let dir = match listing.dir.as_mut() {
            Some(dir) => dir,
            None => {
                let opened = rustix::io::dup(listing.fd.as_fd()).and_then(Dir::new);
                match opened {
                    Ok(dir) => listing.dir.insert(dir),
                    Err(e) => {
                        return Done::Listed {
                            names,
                            next,
                            rest: Err(io_err("read dir", &where_(&listing.rel), e)),
                        }
                    }
                }
            }
        };
        while names.len() < self.chunk() {
            let entry = match dir.read() {
                None => {
                    return Done::Listed {
                        names,
                        next,
                        rest: Ok(None),
                    }
                }
                Some(Err(e)) => {
                    return Done::Listed {
                        names,
                        next,
                        rest: Err(io_err("read dir", &listing.rel, e)),
                    }
                }
                Some(Ok(entry)) => entry,
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            let mut rel = listing.rel.clone();
            if !rel.is_empty() {
                rel.push(b'/');
            }
            rel.extend_from_slice(name);
            names.push((
                next.clone(),
                Job::Fetch {
                    parent: listing.fd.clone(),
                    name: name.to_vec(),
                    rel,
                },
            ));
            *next.last_mut().expect("a position below the top") += 1;
        }
        Done::Listed {
            names,
            next,
            rest: Ok(Some(listing)),
        }
    }
}

#[cfg(test)]
fn note_high(st: &mut State) {
    let now = [st.admitted, st.known, st.buffered];
    st.high = std::array::from_fn(|i| st.high[i].max(now[i]));
}

fn first_is(jobs: &BTreeMap<Position, Job>, pos: &Position) -> bool {
    jobs.first_key_value().is_some_and(|(k, _)| k == pos)
}

/// The handle opened is the entry that was listed (same inode and type), not a replacement.
pub(super) fn same_entry(fd: &OwnedFd, listed: &Stat, rel: &[u8]) -> Result<Stat, TreeError> {
    let st = rfs::fstat(fd.as_fd()).map_err(|e| io_err("stat", rel, e))?;
    if st.st_ino != listed.st_ino
        || st.st_dev != listed.st_dev
        || FileType::from_raw_mode(st.st_mode) != FileType::from_raw_mode(listed.st_mode)
    {
        return Err(io_err(
            "refuse (replaced while archiving)",
            rel,
            io::ErrorKind::Other,
        ));
    }
    Ok(st)
}

#[cfg(test)]
pub(super) mod tests {
    use std::os::fd::BorrowedFd;

    type Hook = fn(BorrowedFd<'_>, &[u8]);

    /// Racers waiting for an entry of a given name (unique to their test, so tests running at
    /// once never meet them), run once, on whichever thread fetches that entry, between its stat
    /// and its open.
    static RACERS: std::sync::Mutex<Vec<(&'static [u8], Hook, bool)>> =
        std::sync::Mutex::new(Vec::new());

    pub(super) fn race(dir: BorrowedFd<'_>, name: &[u8]) {
        let hook = RACERS.lock().unwrap().iter_mut().find_map(|r| {
            let due = r.0 == name && !r.2;
            r.2 |= due;
            due.then_some(r.1)
        });
        if let Some(hook) = hook {
            hook(dir, name);
        }
    }

    /// Runs `f` with `hook` waiting for `name`; returns whether the hook ran.
    pub(crate) fn with_racer<T>(
        name: &'static [u8],
        hook: Hook,
        f: impl FnOnce() -> T,
    ) -> (T, bool) {
        RACERS.lock().unwrap().push((name, hook, false));
        let out = f();
        let mut racers = RACERS.lock().unwrap();
        let i = racers.iter().position(|r| r.0 == name).unwrap();
        (out, racers.remove(i).2)
    }
}
