//! The EFS mount as the functions see it: safe moves into the trash and purges out of it.
//! Every operation works relative to open directory handles with `O_NOFOLLOW`, so a symlink planted
//! at `<tenantId>` or `<workspaceId>` can never redirect a move or a delete outside the root.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::deleter::{remove_tree_at, RemovalReport};
use crate::ids::{TenantId, WorkspaceId};
use crate::layout::{TrashName, TRASH_DATA, TRASH_DIR, TRASH_RECORD};

#[derive(Debug, thiserror::Error)]
#[error("{op} {path}: {source}")]
pub struct FsError {
    pub op: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl FsError {
    fn new(op: &'static str, path: impl Into<PathBuf>, errno: Errno) -> Self {
        Self {
            op,
            path: path.into(),
            source: errno.into(),
        }
    }

    /// Transient conditions worth a retry of the whole record (NFS hiccups, descriptor pressure).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.source.raw_os_error().map(Errno::from_raw_os_error),
            Some(
                Errno::BUSY
                    | Errno::AGAIN
                    | Errno::INTR
                    | Errno::IO
                    | Errno::TIMEDOUT
                    | Errno::NFILE
                    | Errno::MFILE
                    | Errno::STALE
                    | Errno::NOMEM
            )
        )
    }
}

/// What is at a workspace's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    Absent,
    Directory,
    /// A symlink or file where a directory should be: it is moved as it is, never followed.
    NotADirectory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveOutcome {
    Moved { entry: PathBuf },
    Absent,
}

/// The EFS mount rooted at `EFS_ROOT`.
#[derive(Debug, Clone)]
pub struct WorkspaceFs {
    root: PathBuf,
}

impl WorkspaceFs {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn trash_path(&self) -> PathBuf {
        self.root.join(TRASH_DIR)
    }

    fn open_root(&self) -> Result<OwnedFd, FsError> {
        // The root itself is configuration and may be a mount point or a link to one.
        rfs::open(
            &self.root,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open root", &self.root, e))
    }

    /// Opens `<root>/<tenant>` without following a link; `None` when it does not exist.
    fn open_tenant(&self, root: &OwnedFd, tenant: &TenantId) -> Result<Option<OwnedFd>, FsError> {
        match rfs::openat(
            root,
            tenant.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            // ELOOP/ENOTDIR: the tenant path is a symlink or a file. Refuse rather than follow.
            Err(e) => Err(FsError::new(
                "open tenant dir",
                self.root.join(tenant.as_str()),
                e,
            )),
        }
    }

    pub fn workspace_presence(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
    ) -> Result<Presence, FsError> {
        let root = self.open_root()?;
        let Some(tenant_fd) = self.open_tenant(&root, tenant)? else {
            return Ok(Presence::Absent);
        };
        match rfs::statat(&tenant_fd, workspace.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                Ok(Presence::Directory)
            }
            Ok(_) => Ok(Presence::NotADirectory),
            Err(Errno::NOENT) => Ok(Presence::Absent),
            Err(e) => Err(FsError::new(
                "stat workspace",
                self.root.join(tenant.as_str()).join(workspace.as_str()),
                e,
            )),
        }
    }

    fn ensure_dir(&self, parent: &OwnedFd, name: &str, path: &Path) -> Result<OwnedFd, FsError> {
        match rfs::mkdirat(parent, name, Mode::RWXU) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(FsError::new("mkdir", path, e)),
        }
        rfs::openat(
            parent,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open", path, e))
    }

    /// Atomically renames the workspace directory to `.trash/<name>/data` and writes the record
    /// that owned it beside it. Running it again after success finds nothing to move.
    pub fn move_to_trash(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
        name: &TrashName,
        record_json: &[u8],
    ) -> Result<MoveOutcome, FsError> {
        let root = self.open_root()?;
        let Some(tenant_fd) = self.open_tenant(&root, tenant)? else {
            return Ok(MoveOutcome::Absent);
        };
        let ws_path = self.root.join(tenant.as_str()).join(workspace.as_str());
        let st = match rfs::statat(&tenant_fd, workspace.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(MoveOutcome::Absent),
            Err(e) => return Err(FsError::new("stat workspace", ws_path, e)),
        };
        let root_dev = rfs::fstat(&root)
            .map_err(|e| FsError::new("stat root", &self.root, e))?
            .st_dev;
        if st.st_dev != root_dev {
            return Err(FsError::new(
                "refuse (another file system)",
                ws_path,
                Errno::XDEV,
            ));
        }
        let trash_path = self.trash_path();
        let trash = self.ensure_dir(&root, TRASH_DIR, &trash_path)?;
        let entry_name = name.to_string();
        let entry_path = trash_path.join(&entry_name);
        let entry = self.ensure_dir(&trash, &entry_name, &entry_path)?;
        write_file_at(&entry, TRASH_RECORD, record_json)
            .map_err(|e| FsError::new("write record", entry_path.join(TRASH_RECORD), e))?;
        // The one step that matters: a single rename on the same file system, so the data is at
        // all times either fully in place or fully in the trash.
        match rfs::renameat(&tenant_fd, workspace.as_str(), &entry, TRASH_DATA) {
            Ok(()) => Ok(MoveOutcome::Moved { entry: entry_path }),
            Err(Errno::NOENT) => Ok(MoveOutcome::Absent),
            Err(e) => Err(FsError::new("rename into trash", ws_path, e)),
        }
    }

    /// Removes `.trash/<entry>` and everything in it; stops at `deadline`, to be finished later.
    pub fn purge_trash_entry(
        &self,
        entry: &str,
        deadline: Option<Instant>,
    ) -> Result<RemovalReport, FsError> {
        if entry.is_empty() || entry.contains('/') || entry == "." || entry == ".." {
            return Err(FsError::new("refuse trash entry", entry, Errno::INVAL));
        }
        let root = self.open_root()?;
        let trash_path = self.trash_path();
        let trash = match rfs::openat(
            &root,
            TRASH_DIR,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => {
                return Ok(RemovalReport {
                    complete: true,
                    ..RemovalReport::default()
                })
            }
            Err(e) => return Err(FsError::new("open trash", trash_path, e)),
        };
        let dev = rfs::fstat(&trash)
            .map_err(|e| FsError::new("stat trash", &trash_path, e))?
            .st_dev;
        Ok(remove_tree_at(
            trash.as_fd(),
            OsStr::new(entry),
            &trash_path.join(entry),
            dev as u64,
            deadline,
        ))
    }
}

/// Writes a small file via a temporary name and a rename, so a reader never sees half of it.
fn write_file_at(dir: &OwnedFd, name: &str, bytes: &[u8]) -> Result<(), Errno> {
    let tmp = format!("{name}.tmp");
    let fd = rfs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::TRUNC | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::RUSR | Mode::WUSR,
    )?;
    let mut file = std::fs::File::from(fd);
    file.write_all(bytes)
        .map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
    drop(file);
    rfs::renameat(dir, tmp.as_str(), dir, name)
}
