//! A directory tree → a tar stream compressed with zstd, walked through directory handles only.
//!
//! Every entry is reached relative to its parent's open handle (`statat`/`openat` with
//! `O_NOFOLLOW`): a symlink is archived as a link (its target, byte for byte), never followed; a
//! file is read through a handle checked to be the very file that was listed; the walk never
//! crosses onto another device. Names and link targets are kept byte for byte (non-UTF-8, long,
//! with newlines: GNU long-name records past 100 bytes) and mtimes to the nanosecond (a PAX
//! record). Memory is
//! bounded: one open directory per level (at most [`MAX_DEPTH`]) and the tar and zstd buffers.
//! FIFOs, sockets and device files hold no data and are never opened: counted as skipped.

use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags, Stat};
use serde::Serialize;

/// Directories below the top that a walk (or an extraction) holds open at once: a deeper tree is
/// refused, never truncated (the entry then stays in the trash, reported).
pub const MAX_DEPTH: usize = 256;
/// zstd's default level: most of the ratio at a fraction of the CPU of higher levels.
pub const ZSTD_LEVEL: i32 = 3;

const DIR_NOFOLLOW: OFlags = OFlags::RDONLY
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

/// One directory being walked: its listing (which owns the handle) and its path in the archive.
struct Level {
    dir: Dir,
    rel: Vec<u8>,
}

/// Writes the tree under `top` (a directory handle) to `sink` as tar + zstd and returns the sink
/// and what was archived. The top itself is the entry `.` (its mode and times).
pub fn write_tree<W: Write>(
    top: OwnedFd,
    sink: W,
    deadline: Option<Instant>,
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
    let device = top_stat.st_dev;
    append(
        &mut tar,
        b".",
        &top_stat,
        tar::EntryType::Directory,
        None,
        io::empty(),
    )?;
    stats.directories += 1;
    let mut stack = vec![Level {
        dir: Dir::new(top).map_err(|e| io_err("read dir", b".", e))?,
        rel: Vec::new(),
    }];
    loop {
        let depth = stack.len();
        let Some(level) = stack.last_mut() else {
            break;
        };
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TreeError::Deadline);
        }
        let entry = match level.dir.read() {
            None => {
                stack.pop();
                continue;
            }
            Some(Err(e)) => return Err(io_err("read dir", &level.rel, e)),
            Some(Ok(entry)) => entry,
        };
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        let name = name.to_vec();
        let mut rel = level.rel.clone();
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(&name);
        let parent = level
            .dir
            .fd()
            .map_err(|e| io_err("dir handle", &level.rel, e))?;
        let st = rfs::statat(parent, name.as_slice(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_err("stat", &rel, e))?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => {
                if st.st_dev != device {
                    return Err(io_err(
                        "refuse (another device)",
                        &rel,
                        io::ErrorKind::Other,
                    ));
                }
                if depth > MAX_DEPTH {
                    return Err(TreeError::TooDeep(display(&rel)));
                }
                let fd = rfs::openat(parent, name.as_slice(), DIR_NOFOLLOW, Mode::empty())
                    .map_err(|e| io_err("open dir", &rel, e))?;
                same_entry(&fd, &st, &rel)?;
                append(
                    &mut tar,
                    &rel,
                    &st,
                    tar::EntryType::Directory,
                    None,
                    io::empty(),
                )?;
                stats.directories += 1;
                stack.push(Level {
                    dir: Dir::new(fd).map_err(|e| io_err("read dir", &rel, e))?,
                    rel,
                });
            }
            FileType::RegularFile => {
                let fd = rfs::openat(
                    parent,
                    name.as_slice(),
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
                    Mode::empty(),
                )
                .map_err(|e| io_err("open file", &rel, e))?;
                let st = same_entry(&fd, &st, &rel)?;
                let size = st.st_size as u64;
                let exact = Exact {
                    inner: std::fs::File::from(fd),
                    left: size,
                };
                append(&mut tar, &rel, &st, tar::EntryType::Regular, None, exact)?;
                stats.files += 1;
                stats.bytes += size;
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(parent, name.as_slice(), Vec::new())
                    .map_err(|e| io_err("read link", &rel, e))?;
                let target = target.into_bytes();
                append(
                    &mut tar,
                    &rel,
                    &st,
                    tar::EntryType::Symlink,
                    Some(&target),
                    io::empty(),
                )?;
                stats.symlinks += 1;
            }
            _ => stats.skipped += 1,
        }
    }
    let encoder = tar.into_inner().map_err(|e| io_err("tar", b".", e))?;
    let sink = encoder.finish().map_err(|e| io_err("zstd", b".", e))?;
    Ok((sink, stats))
}

/// The handle opened is the entry that was listed (same inode and type), not a replacement.
fn same_entry(fd: &OwnedFd, listed: &Stat, rel: &[u8]) -> Result<Stat, TreeError> {
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
