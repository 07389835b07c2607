//! A directory tree → a tar stream compressed with zstd, walked through directory handles only.
//!
//! Every entry is reached relative to its parent's open handle (`statat`/`openat` with
//! `O_NOFOLLOW`): a symlink is archived as a link (its target, byte for byte), never followed; a
//! file is read through a handle checked to be the very file that was listed; the walk never
//! crosses onto another device. Names and link targets are kept byte for byte (non-UTF-8, long,
//! with newlines: GNU long-name records past 100 bytes) and mtimes to the nanosecond (a PAX
//! record). FIFOs, sockets and device files hold no data and are never opened: counted as
//! skipped.
//!
//! One writer archives the entries in the order of a serial depth-first walk (each directory in
//! its listing order); a bounded pool of threads lists, stats, opens and reads ahead of it
//! (`prefetch`), so the archive is the same whatever the pool's size. Memory is bounded:
//! the look-ahead's entries and bytes ([`Lookahead`]), the directories on the way to the entry
//! being written (at most [`MAX_DEPTH`]), and the tar and zstd buffers.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use rustix::fs::{self as rfs, OFlags, Stat};
use serde::Serialize;

use super::prefetch::{Content, Fetched, Position, Prefetch, Slot};
pub use super::prefetch::{Lookahead, SMALL_FILE};

/// Directories below the top that a walk (or an extraction) holds open at once: a deeper tree is
/// refused, never truncated (the entry then stays in the trash, reported).
pub const MAX_DEPTH: usize = 256;
/// zstd's default level: most of the ratio at a fraction of the CPU of higher levels.
pub const ZSTD_LEVEL: i32 = 3;

pub(super) const DIR_NOFOLLOW: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// What an archive holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TreeStats {
    pub files: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of file content.
    pub bytes: u64,
    /// FIFOs, sockets and device files: not archived.
    pub skipped: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("stopped at the deadline")]
    Deadline,
    #[error("{0}: more than {MAX_DEPTH} directories deep")]
    TooDeep(PathBuf),
    /// An archive entry that extraction refuses (hostile or unsupported): nothing is kept.
    #[error("refused archive entry {path}: {why}")]
    Refused { path: PathBuf, why: String },
}

pub(crate) fn display(rel: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(rel))
}

pub(crate) fn io_err(op: &'static str, rel: &[u8], e: impl Into<io::Error>) -> TreeError {
    TreeError::Io {
        op,
        path: display(rel),
        source: e.into(),
    }
}

/// Writes the tree under `top` (a directory handle) to `sink` as tar + zstd and returns the sink
/// and what was archived. The top itself is the entry `.` (its mode and times).
pub fn write_tree<W: Write>(
    top: OwnedFd,
    sink: W,
    deadline: Option<Instant>,
) -> Result<(W, TreeStats), TreeError> {
    write_tree_with(top, sink, deadline, Lookahead::default())
}

/// [`write_tree`], fetching ahead as `lookahead` says: the archive is the same whatever it says.
pub fn write_tree_with<W: Write>(
    top: OwnedFd,
    sink: W,
    deadline: Option<Instant>,
    lookahead: Lookahead,
) -> Result<(W, TreeStats), TreeError> {
    let mut encoder =
        zstd::stream::write::Encoder::new(sink, ZSTD_LEVEL).map_err(|e| io_err("zstd", b".", e))?;
    // The frame's own checksum: a reader detects a corrupted archive, whatever S3 said.
    encoder
        .include_checksum(true)
        .map_err(|e| io_err("zstd", b".", e))?;
    let mut tar = tar::Builder::new(encoder);
    let mut stats = TreeStats::default();
    let top_stat = rfs::fstat(&top).map_err(|e| io_err("stat", b".", e))?;
    append(
        &mut tar,
        b".",
        &top_stat,
        tar::EntryType::Directory,
        None,
        io::empty(),
    )?;
    stats.directories += 1;
    let prefetch = Prefetch::new(top, top_stat.st_dev, lookahead);
    with_workers(&prefetch, lookahead.workers, || {
        write_entries(&prefetch, &mut tar, &mut stats, deadline)
    })?;
    let encoder = tar.into_inner().map_err(|e| io_err("tar", b".", e))?;
    let sink = encoder.finish().map_err(|e| io_err("zstd", b".", e))?;
    Ok((sink, stats))
}

/// Runs `writer` with up to `workers` threads fetching ahead of it, stopped when it returns.
/// One starts at once; more start only while fetches wait for round trips
/// ([`Lookahead::round_trip`]).
fn with_workers<T>(prefetch: &Prefetch, workers: usize, writer: impl FnOnce() -> T) -> T {
    let left = AtomicUsize::new(workers);
    std::thread::scope(|scope| {
        // However the writer leaves (done, an error, a panic), the workers stop.
        let _stop = StopOnDrop(prefetch);
        start_worker(scope, prefetch, &left);
        writer()
    })
}

/// Starts one more worker if `left` allows; false when it does not (or the system would not).
/// Fewer workers is slower, never wrong: the writer fetches what none took.
fn start_worker<'scope>(
    scope: &'scope std::thread::Scope<'scope, '_>,
    prefetch: &'scope Prefetch,
    left: &'scope AtomicUsize,
) -> bool {
    if left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_err()
    {
        return false;
    }
    std::thread::Builder::new()
        .name("archive-walk".into())
        .stack_size(WORKER_STACK)
        .spawn_scoped(scope, move || {
            prefetch.work(|| start_worker(scope, prefetch, left))
        })
        .is_ok()
}

/// A worker's stack: system calls and small buffers (contents are on the heap).
const WORKER_STACK: usize = 256 * 1024;

struct StopOnDrop<'a>(&'a Prefetch);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// The writer: every entry in the walk's order (a directory, everything under it, its next
/// sibling), as the look-ahead hands them over.
fn write_entries<W: Write>(
    prefetch: &Prefetch,
    tar: &mut tar::Builder<W>,
    stats: &mut TreeStats,
    deadline: Option<Instant>,
) -> Result<(), TreeError> {
    let mut pos: Position = vec![0];
    loop {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TreeError::Deadline);
        }
        let (rel, fetched) = match prefetch.next(&pos, deadline)? {
            Slot::End => {
                // Back to the parent directory's next entry; the top's end is the walk's.
                pos.pop();
                match pos.last_mut() {
                    Some(i) => *i += 1,
                    None => return Ok(()),
                }
                continue;
            }
            Slot::Failed(e) => return Err(e),
            Slot::Entry { rel, fetched } => (rel, fetched?),
        };
        match fetched {
            Fetched::Directory(st) => {
                append(tar, &rel, &st, tar::EntryType::Directory, None, io::empty())?;
                stats.directories += 1;
                pos.push(0);
                continue;
            }
            Fetched::File { st, content } => {
                let size = st.st_size as u64;
                match content {
                    Content::Read(bytes) => {
                        append(tar, &rel, &st, tar::EntryType::Regular, None, &bytes[..])?;
                        prefetch.release(bytes.len());
                    }
                    Content::Open(inner) => {
                        let exact = Exact { inner, left: size };
                        append(tar, &rel, &st, tar::EntryType::Regular, None, exact)?;
                    }
                }
                stats.files += 1;
                stats.bytes += size;
            }
            Fetched::Symlink { st, target } => {
                append(
                    tar,
                    &rel,
                    &st,
                    tar::EntryType::Symlink,
                    Some(&target),
                    io::empty(),
                )?;
                stats.symlinks += 1;
            }
            Fetched::Skipped => stats.skipped += 1,
        }
        *pos.last_mut().expect("an entry's position") += 1;
    }
}

/// One entry: a PAX header with its mtime to the nanosecond, GNU long-name records for a name or
/// link target longer than the header holds, then the GNU header. Names and targets are written
/// byte for byte (never through `Path`, which would normalise `a//b` or a trailing `/`), and
/// never in PAX records: the `tar` crate's reader splits those at newlines, which a file name
/// may contain.
fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    rel: &[u8],
    st: &Stat,
    kind: tar::EntryType,
    link: Option<&[u8]>,
    data: impl Read,
) -> Result<(), TreeError> {
    let mtime = format!(
        "{}.{:09}",
        st.st_mtime.max(0),
        st.st_mtime_nsec.clamp(0, 999_999_999)
    );
    tar.append_pax_extensions([("mtime", mtime.as_bytes())])
        .map_err(|e| io_err("tar", rel, e))?;
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(st.st_mode & 0o7777);
    header.set_uid(u64::from(st.st_uid));
    header.set_gid(u64::from(st.st_gid));
    header.set_mtime(st.st_mtime.max(0) as u64);
    header.set_size(if kind == tar::EntryType::Regular {
        st.st_size as u64
    } else {
        0
    });
    let gnu = header.as_gnu_mut().expect("a GNU header");
    if !fits(&mut gnu.name, rel) {
        long_record(tar, tar::EntryType::GNULongName, rel)?;
        fits(&mut gnu.name, b"gnu-long-name");
    }
    if let Some(target) = link {
        if !fits(&mut gnu.linkname, target) {
            long_record(tar, tar::EntryType::GNULongLink, target)?;
            fits(&mut gnu.linkname, b"gnu-long-link");
        }
    }
    header.set_cksum();
    tar.append(&header, data).map_err(|e| io_err("tar", rel, e))
}

/// Copies `bytes` into a fixed header field (NUL-padded) if they fit; `false` when they do not.
fn fits(field: &mut [u8], bytes: &[u8]) -> bool {
    if bytes.len() > field.len() {
        return false;
    }
    field.fill(0);
    field[..bytes.len()].copy_from_slice(bytes);
    true
}

/// A GNU `L` (name) or `K` (link target) record: the bytes, NUL-terminated, as the entry's data.
fn long_record<W: Write>(
    tar: &mut tar::Builder<W>,
    kind: tar::EntryType,
    bytes: &[u8],
) -> Result<(), TreeError> {
    let mut header = tar::Header::new_gnu();
    fits(
        &mut header.as_gnu_mut().expect("a GNU header").name,
        b"././@LongLink",
    );
    header.set_mode(0o644);
    header.set_entry_type(kind);
    header.set_size(bytes.len() as u64 + 1);
    header.set_cksum();
    tar.append(&header, bytes.chain(&[0u8][..]))
        .map_err(|e| io_err("tar", bytes, e))
}

/// A file's content, exactly as many bytes as its size said: a file that shrank is an error
/// (the tar header already promised the size), one that grew is cut at that size.
struct Exact {
    inner: std::fs::File,
    left: u64,
}

impl Read for Exact {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::BorrowedFd;
    use std::path::Path;
    use std::time::Duration;

    use rustix::fs::Mode;

    use super::super::prefetch::tests::with_racer;
    use super::*;

    fn open_dir(path: &Path) -> OwnedFd {
        rfs::open(path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap()
    }

    /// A tree of `dirs` directories of `files` small files each, the entry `raced` among them.
    fn tree(top: &Path, dirs: usize, files: usize, raced: &str) {
        for d in 0..dirs {
            let dir = top.join(format!("d{d}"));
            std::fs::create_dir(&dir).unwrap();
            for f in 0..files {
                std::fs::write(dir.join(format!("f{f}")), vec![b'x'; 100 + f]).unwrap();
            }
        }
        std::fs::create_dir(top.join("d0/sub")).unwrap();
        std::fs::write(top.join("d0/sub").join(raced), b"the file listed").unwrap();
    }

    fn archive(top: &Path, workers: usize) -> Result<(Vec<u8>, TreeStats), TreeError> {
        let lookahead = Lookahead {
            workers,
            entries: 8,
            bytes: 4096,
            round_trip: Duration::ZERO,
        };
        write_tree_with(open_dir(top), Vec::new(), None, lookahead)
    }

    /// The racers, run between an entry's stat and its open, on whichever thread fetches it.
    fn replace_with_file(dir: BorrowedFd<'_>, name: &[u8]) {
        rfs::renameat(dir, name, dir, "moved-away").unwrap();
        let fd = rfs::openat(dir, name, OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
        rustix::io::write(&fd, b"a replacement").unwrap();
    }

    fn replace_with_link(dir: BorrowedFd<'_>, name: &[u8]) {
        rfs::renameat(dir, name, dir, "moved-away").unwrap();
        rfs::symlinkat("/etc/passwd", dir, name).unwrap();
    }

    fn replace_dir_with_link(dir: BorrowedFd<'_>, name: &[u8]) {
        rfs::renameat(dir, name, dir, "moved-away").unwrap();
        rfs::symlinkat("/etc", dir, name).unwrap();
    }

    fn refused_as(result: Result<(Vec<u8>, TreeStats), TreeError>, op: &str, path: &str) {
        match result {
            Err(TreeError::Io {
                op: got, path: p, ..
            }) => {
                assert_eq!((got, p.to_str().unwrap()), (op, path));
            }
            Err(e) => panic!("{e}"),
            Ok((_, stats)) => panic!("archived: {stats:?}"),
        }
    }

    #[test]
    fn an_entry_replaced_between_listing_and_reading_is_refused_whatever_the_workers() {
        for workers in [0, 1, 8] {
            let name: &'static str = format!("raced-file-{workers}").leak();
            let base = tempfile::tempdir().unwrap();
            tree(base.path(), 4, 40, name);
            let (result, ran) = with_racer(name.as_bytes(), replace_with_file, || {
                archive(base.path(), workers)
            });
            assert!(ran, "the racer ran");
            refused_as(
                result,
                "refuse (replaced while archiving)",
                &format!("d0/sub/{name}"),
            );

            // A link put in its place is never followed.
            let name: &'static str = format!("raced-link-{workers}").leak();
            let base = tempfile::tempdir().unwrap();
            tree(base.path(), 4, 40, name);
            let (result, ran) = with_racer(name.as_bytes(), replace_with_link, || {
                archive(base.path(), workers)
            });
            assert!(ran, "the racer ran");
            refused_as(result, "open file", &format!("d0/sub/{name}"));

            // A directory swapped for a link is never entered.
            let name: &'static str = format!("raced-dir-{workers}").leak();
            let base = tempfile::tempdir().unwrap();
            tree(base.path(), 4, 40, "f");
            std::fs::create_dir(base.path().join("d2").join(name)).unwrap();
            let (result, ran) = with_racer(name.as_bytes(), replace_dir_with_link, || {
                archive(base.path(), workers)
            });
            assert!(ran, "the racer ran");
            refused_as(result, "open dir", &format!("d2/{name}"));
        }
    }

    #[test]
    fn what_is_fetched_ahead_stays_within_its_limits() {
        let base = tempfile::tempdir().unwrap();
        tree(base.path(), 6, 300, "f");
        std::fs::write(base.path().join("d3/large"), vec![7u8; 600 * 1024]).unwrap();
        let limits = Lookahead {
            workers: 16,
            entries: 12,
            bytes: 5000,
            round_trip: Duration::ZERO,
        };
        let top = open_dir(base.path());
        let device = rfs::fstat(&top).unwrap().st_dev;
        let prefetch = Prefetch::new(top, device, limits);
        let mut tar = tar::Builder::new(Vec::new());
        let mut stats = TreeStats::default();
        with_workers(&prefetch, limits.workers, || {
            write_entries(&prefetch, &mut tar, &mut stats, None)
        })
        .unwrap();
        assert_eq!(stats.files, 6 * 300 + 2);
        let [admitted, known, buffered] = prefetch.high();
        // The writer may fetch its next entry itself beyond the limit: one more.
        assert!(admitted <= limits.entries + 1, "{admitted}");
        // Four times the entries, and a listing turn's chunk (no more than the entries limit)
        // past that, and the writer's own turn.
        assert!(known <= 6 * limits.entries, "{known}");
        assert!(buffered <= limits.bytes + SMALL_FILE as usize, "{buffered}");
        assert!(admitted > 1 && known > 1, "it did look ahead");
    }

    #[test]
    fn a_tree_deeper_than_the_limit_is_refused_whatever_the_workers() {
        let base = tempfile::tempdir().unwrap();
        let mut deepest = base.path().to_path_buf();
        for _ in 0..MAX_DEPTH {
            deepest.push("d");
        }
        std::fs::create_dir_all(&deepest).unwrap();
        std::fs::write(deepest.join("f"), b"at the limit").unwrap();
        for workers in [0, 8] {
            let (_, stats) = archive(base.path(), workers).unwrap();
            assert_eq!(stats.directories as usize, MAX_DEPTH + 1);
        }
        std::fs::create_dir(deepest.join("d")).unwrap();
        for workers in [0, 8] {
            let err = archive(base.path(), workers).unwrap_err();
            assert!(matches!(err, TreeError::TooDeep(_)), "{err}");
        }
    }

    #[test]
    fn the_archive_is_the_same_whatever_the_workers() {
        let base = tempfile::tempdir().unwrap();
        tree(base.path(), 5, 200, "f");
        std::fs::write(base.path().join("d1/large"), vec![1u8; 700 * 1024]).unwrap();
        std::os::unix::fs::symlink("d1/large", base.path().join("d4/link")).unwrap();
        let (serial, stats) = archive(base.path(), 0).unwrap();
        for workers in [1, 3, 32] {
            let (bytes, s) = archive(base.path(), workers).unwrap();
            assert_eq!(s, stats);
            assert!(bytes == serial, "{workers} workers: a different archive");
        }
    }
}
