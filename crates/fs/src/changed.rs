//! A trash entry's fingerprint: the check between an archive and the purge of the EFS copy. A
//! trash entry should never change, but a process that kept a file of the workspace open writes on
//! through the rename into the trash; what it writes after the archive's walk reached that file is
//! in no archive. So the entry is fingerprinted before the walk and again after the upload is
//! verified, and a different fingerprint keeps the EFS copy (a later run archives it again, whole).
//!
//! The fingerprint is every entry under `data` (the directory itself included): its path, inode,
//! type and mode, link count, size, and modification and status-change times to the nanosecond,
//! and a regular file's content (hashed as it is read), folded in an order-free sum, so it needs
//! no clock (a file server's and ours may differ) and no memory per entry. Any write, append, new
//! or removed name, rename or mode change between the two readings changes it; the content
//! because a write through a shared memory map into a page already dirty changes no time at all
//! (the kernel stamps a mapped page's first write only). Entries are stat'ed through directory handles, never following a
//! link, never crossing onto another device, several directories at once: under EFS a stat is a
//! round trip, and one at a time would cost as much as the archive's own walk.

use std::ffi::OsStr;
use std::hash::{Hash, Hasher};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Stat};
use rustix::io::Errno;

use lifecycle_domain::layout::{TrashName, TRASH_DATA};

use crate::{FsError, WorkspaceFs, DIR_NOFOLLOW};

/// Directories listed at once: enough to hide EFS's round trips, few enough not to crowd the
/// platform's own I/O.
const WORKERS: usize = 16;
/// The operation of [`FsError::is_deadline`].
pub(crate) const DEADLINE: &str = "fingerprint (stopped at the deadline)";
// Directories below `data` the fingerprint descends: the archive's own limit, so a tree the
// archive refuses has no fingerprint either (an error), and one it takes has one.
use crate::archive::tree::MAX_DEPTH;

/// What a trash entry's data is, as far as a change to it would show: equal fingerprints taken
/// at two moments mean nothing under `data` changed between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub entries: u64,
    sum: u128,
}

impl Fingerprint {
    fn add(&mut self, relative: &Path, stat: &Stat, content: u64) {
        // SipHash with fixed keys: the same in every run of this process, which is all a
        // comparison of two readings needs.
        #[allow(
            deprecated,
            reason = "SipHasher's fixed keys are what a repeatable fold needs"
        )]
        let mut h = std::hash::SipHasher::new();
        relative.as_os_str().as_bytes().hash(&mut h);
        // The fields as the platform types them (their widths differ between x86_64 and arm64).
        (stat.st_ino, stat.st_mode, stat.st_nlink, stat.st_size).hash(&mut h);
        (stat.st_mtime, stat.st_mtime_nsec).hash(&mut h);
        (stat.st_ctime, stat.st_ctime_nsec).hash(&mut h);
        content.hash(&mut h);
        self.entries += 1;
        self.sum = self.sum.wrapping_add(u128::from(h.finish()));
    }

    fn merge(&mut self, other: Fingerprint) {
        self.entries += other.entries;
        self.sum = self.sum.wrapping_add(other.sum);
    }
}

struct Queue {
    /// Directories still to list: handle, path relative to `data`, depth.
    dirs: Vec<(OwnedFd, PathBuf, usize)>,
    /// Workers listing a directory now (which may add more).
    busy: usize,
    print: Fingerprint,
    /// The first error: every worker stops at it.
    failed: Option<FsError>,
}

impl WorkspaceFs {
    /// The fingerprint of `.trash/<entry>/data`. A failed read is an error, never a fingerprint;
    /// so is `deadline` passing before it is read whole ([`FsError::is_deadline`]).
    pub fn trash_data_fingerprint(
        &self,
        entry: &TrashName,
        deadline: Option<std::time::Instant>,
    ) -> Result<Fingerprint, FsError> {
        let root = self.open_root()?;
        let (_trash, entry_fd) = self.open_entry(&root, entry)?;
        let data_path = self.trash_path().join(entry.to_string()).join(TRASH_DATA);
        let data = rfs::openat(&entry_fd, TRASH_DATA, DIR_NOFOLLOW, Mode::empty())
            .map_err(|e| FsError::new("open trash data", &data_path, e))?;
        let top = rfs::fstat(&data).map_err(|e| FsError::new("stat", &data_path, e))?;
        let mut print = Fingerprint::default();
        print.add(Path::new(""), &top, 0);
        let queue = Mutex::new(Queue {
            dirs: vec![(data, PathBuf::new(), 0)],
            busy: 0,
            print,
            failed: None,
        });
        let ready = Condvar::new();
        std::thread::scope(|scope| {
            for _ in 0..WORKERS {
                scope.spawn(|| work(&queue, &ready, &data_path, top.st_dev, deadline));
            }
        });
        let queue = queue.into_inner().unwrap_or_else(|p| p.into_inner());
        match queue.failed {
            Some(e) => Err(e),
            None => Ok(queue.print),
        }
    }
}

fn work(
    queue: &Mutex<Queue>,
    ready: &Condvar,
    data_path: &Path,
    device: u64,
    deadline: Option<std::time::Instant>,
) {
    loop {
        let (dir, relative, depth) = {
            let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if q.failed.is_some() {
                    ready.notify_all();
                    return;
                }
                if let Some(next) = q.dirs.pop() {
                    q.busy += 1;
                    break next;
                }
                if q.busy == 0 {
                    ready.notify_all();
                    return;
                }
                q = ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        let listed = if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            Err(FsError::new(DEADLINE, data_path, Errno::TIMEDOUT))
        } else {
            list(&dir, &relative, depth, data_path, device, deadline)
        };
        let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
        q.busy -= 1;
        match listed {
            Ok((print, subdirs)) => {
                q.print.merge(print);
                q.dirs.extend(subdirs);
            }
            Err(e) => {
                q.failed.get_or_insert(e);
            }
        }
        ready.notify_all();
    }
}

type Subdirectories = Vec<(OwnedFd, PathBuf, usize)>;

/// Stats every name in one directory; its subdirectories on the same device are returned to be
/// listed in turn.
fn list(
    dir: &OwnedFd,
    relative: &Path,
    depth: usize,
    data_path: &Path,
    device: u64,
    deadline: Option<std::time::Instant>,
) -> Result<(Fingerprint, Subdirectories), FsError> {
    let mut print = Fingerprint::default();
    let mut subdirs = Vec::new();
    let here = data_path.join(relative);
    let mut names = rfs::Dir::read_from(dir).map_err(|e| FsError::new("list", &here, e))?;
    while let Some(entry) = names.read() {
        let entry = entry.map_err(|e| FsError::new("list", &here, e))?;
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        let child = relative.join(OsStr::from_bytes(name.to_bytes()));
        let stat = rfs::statat(dir.as_fd(), name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::new("stat", data_path.join(&child), e))?;
        let content = if FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile {
            content_hash(dir, name, &stat, &data_path.join(&child), deadline)?
        } else {
            0
        };
        print.add(&child, &stat, content);
        let is_dir = FileType::from_raw_mode(stat.st_mode) == FileType::Directory;
        if is_dir && stat.st_dev == device {
            if depth + 1 > MAX_DEPTH {
                return Err(FsError::new("descend", data_path.join(&child), Errno::LOOP));
            }
            let fd = rfs::openat(dir.as_fd(), name, DIR_NOFOLLOW, Mode::empty())
                .map_err(|e| FsError::new("open", data_path.join(&child), e))?;
            subdirs.push((fd, child, depth + 1));
        }
    }
    Ok((print, subdirs))
}

/// A regular file's content, hashed as it is read (64 KiB at a time), through a handle checked
/// to be the file just stat'ed (a file replaced since is an error: not known to be unchanged).
fn content_hash(
    dir: &OwnedFd,
    name: &std::ffi::CStr,
    stat: &Stat,
    path: &Path,
    deadline: Option<std::time::Instant>,
) -> Result<u64, FsError> {
    let fd = rfs::openat(
        dir.as_fd(),
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FsError::new("open", path, e))?;
    let opened = rfs::fstat(&fd).map_err(|e| FsError::new("stat", path, e))?;
    if (opened.st_dev, opened.st_ino) != (stat.st_dev, stat.st_ino) {
        return Err(FsError::new(
            "read (replaced since listed)",
            path,
            Errno::STALE,
        ));
    }
    #[allow(
        deprecated,
        reason = "SipHasher's fixed keys are what a repeatable fold needs"
    )]
    let mut h = std::hash::SipHasher::new();
    let mut file = std::fs::File::from(fd);
    let mut buf = vec![0u8; 64 * 1024];
    for chunk in 0u64.. {
        // A huge file (a sparse disk image) is read a long time: the deadline is looked at
        // every 16 MiB.
        if chunk % 256 == 255 && deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            return Err(FsError::new(DEADLINE, path, Errno::TIMEDOUT));
        }
        let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| FsError {
            op: "read",
            path: path.to_path_buf(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        h.write(&buf[..n]);
    }
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::ids::{TenantId, WorkspaceId};

    fn entry(root: &Path) -> (TrashName, PathBuf) {
        let name = TrashName::new(
            1_000,
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-1").unwrap(),
            "n1".into(),
        );
        let data = root.join(".trash").join(name.to_string()).join("data");
        for d in 0..20 {
            let dir = data.join(format!("d{d}/inner"));
            std::fs::create_dir_all(&dir).unwrap();
            for f in 0..5 {
                std::fs::write(dir.join(format!("f{f}")), b"x").unwrap();
            }
        }
        std::os::unix::fs::symlink("/etc", data.join("link")).unwrap();
        (name, data)
    }

    #[test]
    fn any_change_between_two_readings_changes_the_fingerprint() {
        type Change = fn(&Path);
        let changes: [(&str, Change); 7] = [
            ("an append deep down", |d| {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new()
                    .append(true)
                    .open(d.join("d13/inner/f4"))
                    .unwrap();
                f.write_all(b"more").unwrap();
            }),
            ("a new file", |d| {
                std::fs::write(d.join("d2/new"), b"").unwrap()
            }),
            ("a removed file", |d| {
                std::fs::remove_file(d.join("d7/inner/f0")).unwrap()
            }),
            ("a rename", |d| {
                std::fs::rename(d.join("d7/inner/f1"), d.join("d7/inner/g1")).unwrap()
            }),
            ("a mode change", |d| {
                use std::os::unix::fs::PermissionsExt;
                let p = std::fs::Permissions::from_mode(0o600);
                std::fs::set_permissions(d.join("d3/inner/f2"), p).unwrap();
            }),
            ("a link retargeted", |d| {
                std::fs::remove_file(d.join("link")).unwrap();
                std::os::unix::fs::symlink("/usr", d.join("link")).unwrap();
            }),
            ("a new empty directory", |d| {
                std::fs::create_dir(d.join("d19/inner/sub")).unwrap()
            }),
        ];
        for (what, change) in changes {
            let root = tempfile::tempdir().unwrap();
            let (name, data) = entry(root.path());
            let fs = WorkspaceFs::new(root.path());
            let before = fs.trash_data_fingerprint(&name, None).unwrap();
            assert_eq!(before.entries, 1 + 20 * 2 + 100 + 1, "every entry is read");
            assert_eq!(
                fs.trash_data_fingerprint(&name, None).unwrap(),
                before,
                "{what}: stable"
            );
            change(&data);
            assert_ne!(
                fs.trash_data_fingerprint(&name, None).unwrap(),
                before,
                "{what}"
            );
        }
    }

    /// Red team 6 N1: a write through a shared memory map into a page already dirty changes no
    /// time and no size; the content still tells.
    #[test]
    fn a_write_through_a_shared_map_changes_the_fingerprint() {
        use rustix::mm::{mmap, munmap, MapFlags, ProtFlags};
        let root = tempfile::tempdir().unwrap();
        let (name, data) = entry(root.path());
        let file = data.join("d5/inner/f3");
        std::fs::write(&file, vec![b'a'; 4096]).unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .unwrap();
        let fs = WorkspaceFs::new(root.path());
        unsafe {
            let map = mmap(
                std::ptr::null_mut(),
                4096,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &f,
                0,
            )
            .unwrap()
            .cast::<u8>();
            // The first write stamps the page; the fingerprint is read after it.
            *map = b'b';
            let before = fs.trash_data_fingerprint(&name, None).unwrap();
            let stamped = std::fs::metadata(&file).unwrap();
            *map.add(1) = b'c';
            let after = std::fs::metadata(&file).unwrap();
            use std::os::unix::fs::MetadataExt;
            assert_eq!(
                (stamped.mtime_nsec(), stamped.ctime_nsec(), stamped.len()),
                (after.mtime_nsec(), after.ctime_nsec(), after.len()),
                "set-up: the second write through the map changes no metadata"
            );
            assert_ne!(fs.trash_data_fingerprint(&name, None).unwrap(), before);
            munmap(map.cast(), 4096).unwrap();
        }
    }

    #[test]
    fn a_deadline_that_passed_stops_it_with_an_error() {
        let root = tempfile::tempdir().unwrap();
        let (name, _) = entry(root.path());
        let fs = WorkspaceFs::new(root.path());
        let err = fs
            .trash_data_fingerprint(&name, Some(std::time::Instant::now()))
            .unwrap_err();
        assert!(err.is_deadline(), "{err}");
    }

    #[test]
    fn a_missing_entry_or_a_link_as_data_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let (name, data) = entry(root.path());
        let fs = WorkspaceFs::new(root.path());
        let other = TrashName::new(
            1_000,
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-2").unwrap(),
            "n2".into(),
        );
        assert!(fs.trash_data_fingerprint(&other, None).is_err());
        std::fs::rename(&data, root.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(root.path().join("moved"), &data).unwrap();
        assert!(
            fs.trash_data_fingerprint(&name, None).is_err(),
            "a link as data is never followed"
        );
    }
}
