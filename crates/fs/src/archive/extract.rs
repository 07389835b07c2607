//! A tar + zstd stream → a directory, as carefully as the deleter removes one.
//!
//! Every entry is created relative to its parent's open handle, and every directory on the way is
//! opened with `O_NOFOLLOW`, so nothing lands outside the top directory: an absolute name or a
//! `..` component is refused, a symlink the archive planted earlier is never walked or written
//! through (opening it as a directory fails; creating a file over it fails, `O_EXCL`), and an
//! entry whose name exists already is refused rather than replacing anything. Only directories,
//! regular files and symlinks are accepted: hard links, device files, FIFOs and anything else
//! refuse the whole archive. Modes (without set-uid/set-gid), owners (when the process may set
//! them) and mtimes (to the nanosecond, from the PAX header) are restored; a directory's mode and
//! times are set once its entries are written. The zstd frame's checksum is checked to the end.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::tree::{display, io_err, TreeError, TreeStats, MAX_DEPTH};

const DIR_NOFOLLOW: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// Mode bits restored: permissions and sticky; never set-uid or set-gid from an archive.
const MODE_BITS: u32 = 0o1777;

/// What an entry asks for its mode, owner and times.
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timespec,
}

/// A directory created by this extraction and still open: its mode and times are set when the
/// walk leaves it (writing its entries would change its mtime).
struct Open {
    name: Vec<u8>,
    fd: OwnedFd,
    meta: Option<Meta>,
}

fn refused(rel: &[u8], why: impl Into<String>) -> TreeError {
    TreeError::Refused {
        path: display(rel),
        why: why.into(),
    }
}

/// The name's components: relative, no `..`, `.` and empty components dropped.
fn components(rel: &[u8]) -> Result<Vec<&[u8]>, TreeError> {
    if rel.first() == Some(&b'/') {
        return Err(refused(rel, "an absolute name"));
    }
    let mut out = Vec::new();
    for part in rel.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(refused(rel, "a `..` component")),
            _ if part.contains(&0) => return Err(refused(rel, "a NUL byte in a name")),
            _ => out.push(part),
        }
    }
    Ok(out)
}

/// `secs[.fraction]` as PAX writes mtimes.
fn pax_time(text: &[u8]) -> Option<Timespec> {
    let text = std::str::from_utf8(text).ok()?;
    let (secs, frac) = text.split_once('.').unwrap_or((text, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    let digits: String = frac.chars().take(9).collect();
    if !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let tv_nsec = format!("{digits:0<9}").parse().ok()?;
    Some(Timespec { tv_sec, tv_nsec })
}

fn set_meta(fd: BorrowedFd<'_>, meta: &Meta, rel: &[u8]) -> Result<(), TreeError> {
    chown_if_allowed(rfs::fchown(
        fd,
        Some(Uid::from_raw(meta.uid as u32)),
        Some(Gid::from_raw(meta.gid as u32)),
    ))
    .map_err(|e| io_err("chown", rel, e))?;
    rfs::fchmod(fd, Mode::from_raw_mode(meta.mode & MODE_BITS))
        .map_err(|e| io_err("chmod", rel, e))?;
    let times = Timestamps {
        last_access: meta.mtime,
        last_modification: meta.mtime,
    };
    rfs::futimens(fd, &times).map_err(|e| io_err("set times", rel, e))
}

/// Owners are restored when the process may set them (root); otherwise the files are the
/// restoring user's, as a restore by that user would make them.
fn chown_if_allowed(result: Result<(), Errno>) -> Result<(), Errno> {
    match result {
        Err(Errno::PERM) => Ok(()),
        other => other,
    }
}

/// Extracts the tar + zstd stream `source` into `top` (an empty directory handle). On an error,
/// what was written so far stays under `top` for the caller to remove; nothing is ever written
/// anywhere else.
pub fn extract_tree<R: Read>(
    source: R,
    top: &OwnedFd,
    deadline: Option<Instant>,
) -> Result<TreeStats, TreeError> {
    let decoder = zstd::stream::read::Decoder::new(source).map_err(|e| io_err("zstd", b".", e))?;
    let mut archive = tar::Archive::new(decoder);
    let mut stats = TreeStats::default();
    let mut open: Vec<Open> = Vec::new();
    let mut top_meta = None;
    for entry in archive.entries().map_err(|e| io_err("tar", b".", e))? {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TreeError::Deadline);
        }
        let mut entry = entry.map_err(|e| io_err("tar", b".", e))?;
        let rel = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        let header = entry.header();
        let mut meta = Meta {
            mode: header.mode().map_err(|e| io_err("tar", &rel, e))?,
            uid: header.uid().map_err(|e| io_err("tar", &rel, e))?,
            gid: header.gid().map_err(|e| io_err("tar", &rel, e))?,
            mtime: Timespec {
                tv_sec: header.mtime().map_err(|e| io_err("tar", &rel, e))? as i64,
                tv_nsec: 0,
            },
        };
        let link = entry.link_name_bytes().map(|l| l.into_owned());
        if let Some(pax) = entry.pax_extensions().map_err(|e| io_err("tar", &rel, e))? {
            for ext in pax {
                let ext = ext.map_err(|e| io_err("tar", &rel, e))?;
                if ext.key_bytes() == b"mtime" {
                    if let Some(t) = pax_time(ext.value_bytes()) {
                        meta.mtime = t;
                    }
                }
            }
        }
        let parts = components(&rel)?;
        match kind {
            tar::EntryType::Directory | tar::EntryType::Regular | tar::EntryType::Symlink => {}
            other => {
                return Err(refused(
                    &rel,
                    format!("entry type {other:?} (only directories, files and symlinks)"),
                ))
            }
        }
        let Some((leaf, parents)) = parts.split_last() else {
            if kind != tar::EntryType::Directory {
                return Err(refused(&rel, "the top of the archive is not a directory"));
            }
            top_meta = Some(meta);
            continue;
        };
        // Leave the directories that are not on this entry's way, setting their mode and times.
        let common = open
            .iter()
            .zip(parents.iter())
            .take_while(|(o, p)| o.name.as_slice() == **p)
            .count();
        while open.len() > common {
            close(open.pop().expect("non-empty"), &rel)?;
        }
        for part in &parents[common..] {
            if open.len() >= MAX_DEPTH {
                return Err(TreeError::TooDeep(display(&rel)));
            }
            let parent = open.last().map_or(top.as_fd(), |o| o.fd.as_fd());
            let fd = match rfs::openat(parent, *part, DIR_NOFOLLOW, Mode::empty()) {
                Ok(fd) => fd,
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    return Err(refused(
                        &rel,
                        "a link or a file stands where a directory must be (never followed)",
                    ))
                }
                Err(Errno::NOENT) => {
                    return Err(refused(
                        &rel,
                        "its directory is not in the archive before it",
                    ))
                }
                Err(e) => return Err(io_err("open dir", &rel, e)),
            };
            // Entered again after it was left (an archive out of order): its mode and times were
            // set already and stay as they are.
            open.push(Open {
                name: part.to_vec(),
                fd,
                meta: None,
            });
        }
        let parent = open.last().map_or(top.as_fd(), |o| o.fd.as_fd());
        let exists = |e: Errno| match e {
            Errno::EXIST => refused(
                &rel,
                "the name exists already (a duplicate or a planted link)",
            ),
            e => io_err("create", &rel, e),
        };
        match kind {
            tar::EntryType::Directory => {
                if open.len() >= MAX_DEPTH {
                    return Err(TreeError::TooDeep(display(&rel)));
                }
                rfs::mkdirat(parent, *leaf, Mode::RWXU).map_err(exists)?;
                let fd = rfs::openat(parent, *leaf, DIR_NOFOLLOW, Mode::empty())
                    .map_err(|e| io_err("open dir", &rel, e))?;
                open.push(Open {
                    name: leaf.to_vec(),
                    fd,
                    meta: Some(meta),
                });
                stats.directories += 1;
            }
            tar::EntryType::Regular => {
                let fd = rfs::openat(
                    parent,
                    *leaf,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC
                        | OFlags::NOCTTY,
                    Mode::RUSR | Mode::WUSR,
                )
                .map_err(exists)?;
                let mut file = std::fs::File::from(fd);
                let bytes =
                    io::copy(&mut entry, &mut file).map_err(|e| io_err("write", &rel, e))?;
                set_meta(file.as_fd(), &meta, &rel)?;
                stats.files += 1;
                stats.bytes += bytes;
            }
            _ => {
                let target = link
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| refused(&rel, "a symlink without a target"))?;
                if target.contains(&0) {
                    return Err(refused(&rel, "a NUL byte in a link target"));
                }
                rfs::symlinkat(OsStr::from_bytes(&target), parent, *leaf).map_err(exists)?;
                chown_if_allowed(rfs::chownat(
                    parent,
                    *leaf,
                    Some(Uid::from_raw(meta.uid as u32)),
                    Some(Gid::from_raw(meta.gid as u32)),
                    AtFlags::SYMLINK_NOFOLLOW,
                ))
                .map_err(|e| io_err("chown", &rel, e))?;
                let times = Timestamps {
                    last_access: meta.mtime,
                    last_modification: meta.mtime,
                };
                rfs::utimensat(parent, *leaf, &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| io_err("set times", &rel, e))?;
                stats.symlinks += 1;
            }
        }
    }
    while let Some(dir) = open.pop() {
        close(dir, b".")?;
    }
    if let Some(meta) = top_meta {
        set_meta(top.as_fd(), &meta, b".")?;
        stats.directories += 1;
    }
    // Read the stream to its end, so the zstd frame's checksum is checked: a corrupted archive
    // fails here even when its tar structure looked whole.
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| io_err("zstd (checksum)", b".", e))?;
    Ok(stats)
}

fn close(dir: Open, rel: &[u8]) -> Result<(), TreeError> {
    match dir.meta {
        Some(meta) => set_meta(dir.fd.as_fd(), &meta, rel),
        None => Ok(()),
    }
}

/// Reads a tar + zstd stream to its end as [`extract_tree`] would, writing nothing: every name
/// checked, every entry's kind accepted, the content read through and the zstd checksum checked.
/// What it holds, counted as [`super::tree::write_tree`] counts.
pub fn read_tree<R: Read>(source: R, deadline: Option<Instant>) -> Result<TreeStats, TreeError> {
    let decoder = zstd::stream::read::Decoder::new(source).map_err(|e| io_err("zstd", b".", e))?;
    let mut archive = tar::Archive::new(decoder);
    let mut stats = TreeStats::default();
    for entry in archive.entries().map_err(|e| io_err("tar", b".", e))? {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(TreeError::Deadline);
        }
        let mut entry = entry.map_err(|e| io_err("tar", b".", e))?;
        let rel = entry.path_bytes().into_owned();
        let parts = components(&rel)?;
        if let Some(pax) = entry.pax_extensions().map_err(|e| io_err("tar", &rel, e))? {
            for ext in pax {
                ext.map_err(|e| io_err("tar", &rel, e))?;
            }
        }
        match entry.header().entry_type() {
            tar::EntryType::Directory => stats.directories += 1,
            tar::EntryType::Regular if !parts.is_empty() => {
                stats.files += 1;
                stats.bytes +=
                    io::copy(&mut entry, &mut io::sink()).map_err(|e| io_err("read", &rel, e))?;
            }
            tar::EntryType::Symlink if !parts.is_empty() => {
                let target = entry.link_name_bytes().map(|t| t.into_owned());
                if target.is_none_or(|t| t.is_empty() || t.contains(&0)) {
                    return Err(refused(&rel, "a symlink without a usable target"));
                }
                stats.symlinks += 1;
            }
            other => return Err(refused(&rel, format!("entry type {other:?}"))),
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| io_err("zstd (checksum)", b".", e))?;
    Ok(stats)
}
