//! The EFS mount as the functions see it: safe moves into the trash and purges out of it.
//! Every operation works relative to open directory handles with `O_NOFOLLOW`, so a symlink planted
//! at `<tenantId>` or `<workspaceId>` can never redirect a move or a delete outside the root.

pub mod archive;
pub mod changed;
pub mod restore;

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use lifecycle_domain::ids::{TenantId, WorkspaceId};
use lifecycle_domain::layout::{
    TrashName, PURGING_PREFIX, TAKING_PREFIX, TRASH_DATA, TRASH_DIR, TRASH_RECORD,
};
use lifecycle_domain::sweep::{LiveEntry, TrashEntry};
use tree_deleter::{remove_tree_at, ParallelDeleter, RemovalReport};

/// Tenants listed at once by [`WorkspaceFs::list_live`]: each stat on EFS is a round trip.
pub const LISTING_THREADS: usize = 16;

/// One tenant's listing, with its place in the root's order.
type TenantListing = (usize, Result<Vec<LiveEntry>, FsError>);

/// How every directory below the root is opened: never through a symlink.
pub(crate) const DIR_NOFOLLOW: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

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

    pub fn is_not_found(&self) -> bool {
        self.source.raw_os_error() == Some(Errno::NOENT.raw_os_error())
    }

    /// A reading stopped because the deadline passed ([`changed`]): not a fault of the entry.
    pub fn is_deadline(&self) -> bool {
        self.op == changed::DEADLINE
    }

    /// A `record.json` that is not a regular file of a record's size (or a link): what it holds
    /// is not known to be a record.
    pub fn is_not_a_record(&self) -> bool {
        matches!(
            self.source.raw_os_error().map(Errno::from_raw_os_error),
            Some(Errno::INVAL | Errno::FBIG | Errno::LOOP)
        )
    }

    /// A symlink or a file where a directory must be: refused, and refusing again will not
    /// change (not worth a retry; an operator looks at it).
    pub fn is_refused_link(&self) -> bool {
        matches!(
            self.source.raw_os_error().map(Errno::from_raw_os_error),
            Some(Errno::LOOP | Errno::NOTDIR)
        )
    }

    /// The trash entry a move would publish is taken by something that is not that move's
    /// finished entry: refused, the data left in place (not worth a retry either).
    pub fn is_refused_entry(&self) -> bool {
        self.op == REFUSE_TAKEN_ENTRY
    }
}

/// The largest `record.json` read from a trash entry (and back from the archive bucket): a
/// DynamoDB item is at most 400 KB, and its JSON (binary attributes as arrays of numbers,
/// pretty-printed) can be ten times that.
pub const MAX_TRASH_RECORD_BYTES: u64 = 16 * 1024 * 1024;

/// The operation of [`FsError::is_refused_entry`].
const REFUSE_TAKEN_ENTRY: &str = "refuse (trash entry taken by something else)";

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
    Moved {
        entry: PathBuf,
    },
    /// Nothing at the workspace's path, and no entry of this name: nothing to move.
    Absent,
    /// The entry exists already (an earlier attempt published it); the live path, if anything is
    /// there, is left alone: it appeared after the move.
    AlreadyInTrash {
        entry: PathBuf,
    },
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
        match rfs::openat(root, tenant.as_str(), DIR_NOFOLLOW, Mode::empty()) {
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

    /// Whether the workspace has live data: a directory (never a link) with at least one entry.
    /// An empty directory is not data: EFS creates an access point's root directory on its first
    /// mount, so a re-created record's fresh access point makes one without any of the old data.
    pub fn workspace_has_data(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
    ) -> Result<bool, FsError> {
        let path = self.root.join(tenant.as_str()).join(workspace.as_str());
        let root = self.open_root()?;
        let Some(tenant_fd) = self.open_tenant(&root, tenant)? else {
            return Ok(false);
        };
        let dir = match rfs::openat(&tenant_fd, workspace.as_str(), DIR_NOFOLLOW, Mode::empty()) {
            Ok(dir) => dir,
            // Absent, a file, or a link: none of them is the workspace's data.
            Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => return Ok(false),
            Err(e) => return Err(FsError::new("open workspace", &path, e)),
        };
        let entries =
            rfs::Dir::read_from(&dir).map_err(|e| FsError::new("read workspace", &path, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| FsError::new("read workspace", &path, e))?;
            if !matches!(entry.file_name().to_bytes(), b"." | b"..") {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn ensure_dir(&self, parent: &OwnedFd, name: &str, path: &Path) -> Result<OwnedFd, FsError> {
        match rfs::mkdirat(parent, name, Mode::RWXU) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(FsError::new("mkdir", path, e)),
        }
        rfs::openat(parent, name, DIR_NOFOLLOW, Mode::empty())
            .map_err(|e| FsError::new("open", path, e))
    }

    /// Moves the workspace directory into the trash as `.trash/<name>/data` with the record that
    /// owned it beside it as `record.json`. The entry is assembled under `.staging+<name>` and
    /// published by one rename, so the data and its record enter the trash together; the data
    /// itself moves by one rename on the same file system, so it is at all times either fully in
    /// place or fully in the trash. Running it again after success, or after a crash at any
    /// step, finishes the same entry and moves nothing else.
    pub fn move_to_trash(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
        name: &TrashName,
        record_json: &[u8],
    ) -> Result<MoveOutcome, FsError> {
        let root = self.open_root()?;
        let trash_path = self.trash_path();
        let entry_path = trash_path.join(name.to_string());
        if let Some(entry) = self.finished_entry(tenant, workspace, name)? {
            return Ok(MoveOutcome::AlreadyInTrash { entry });
        }
        let tenant_fd = self.open_tenant(&root, tenant)?;
        let ws_path = self.root.join(tenant.as_str()).join(workspace.as_str());
        let st = match &tenant_fd {
            None => None,
            Some(fd) => match rfs::statat(fd, workspace.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some(st),
                Err(Errno::NOENT) => None,
                Err(e) => return Err(FsError::new("stat workspace", ws_path, e)),
            },
        };
        let (Some(tenant_fd), Some(st)) = (tenant_fd, st) else {
            // Nothing live: an earlier attempt may have moved the data and stopped before
            // publishing the entry.
            return self.publish_staged(&root, name);
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
        let trash = self.ensure_dir(&root, TRASH_DIR, &trash_path)?;
        let staging_name = name.staging();
        let staging_path = trash_path.join(&staging_name);
        let staging = self.ensure_dir(&trash, &staging_name, &staging_path)?;
        write_file_at(&staging, TRASH_RECORD, record_json)
            .map_err(|e| FsError::new("write record", staging_path.join(TRASH_RECORD), e))?;
        match rfs::renameat_with(
            &tenant_fd,
            workspace.as_str(),
            &staging,
            TRASH_DATA,
            rfs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => {}
            Err(Errno::NOENT) => return self.publish_staged(&root, name),
            Err(e) => return Err(FsError::new("rename into trash", ws_path, e)),
        }
        publish(&trash, name, entry_path)
    }

    /// Whether the move to `.trash/<name>` is already done: `Ok(None)` when the
    /// name is free, `Ok(Some(entry))` when the entry is that move's finished entry (a directory
    /// holding `data`, and no data live: at most the empty directory EFS makes for a mounted
    /// access point). Anything else (a link, a file, an empty or record-only directory, or any
    /// entry while data is live) is not known to be this move's: refused
    /// ([`FsError::is_refused_entry`]), the data left where it is. Read-only, so a dry run asks it
    /// too.
    pub fn finished_entry(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
        name: &TrashName,
    ) -> Result<Option<PathBuf>, FsError> {
        let root = self.open_root()?;
        let Some(trash) = self.open_trash(&root)? else {
            return Ok(None);
        };
        let entry_name = name.to_string();
        let entry_path = self.trash_path().join(&entry_name);
        match rfs::statat(&trash, entry_name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(FsError::new("stat trash entry", entry_path, e)),
        }
        // Data live beside it means the entry is not known to be this move's (a decoy planted
        // under a predictable name, or a new generation): refused, so nothing irreversible
        // follows while the data is live.
        if entry_data_kind(&trash, &entry_name, &entry_path)?.is_some()
            && !self.workspace_has_data(tenant, workspace)?
            && self.workspace_presence(tenant, workspace)? != Presence::NotADirectory
        {
            return Ok(Some(entry_path));
        }
        Err(FsError::new(REFUSE_TAKEN_ENTRY, entry_path, Errno::EXIST))
    }

    /// The trash entry whose data goes back when a record of this workspace is kept or put back
    /// and nothing is live: the record's own entry if it holds the data, else the newest entry of
    /// this workspace that holds a data directory (an earlier record of the same workspace, in
    /// this batch or an earlier one, may have moved it). `None` when something is live or no
    /// entry holds data. Read-only, so a dry run asks it too.
    pub fn entry_to_move_back(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
        own: &TrashName,
    ) -> Result<Option<TrashName>, FsError> {
        if self.workspace_presence(tenant, workspace)? != Presence::Absent {
            return Ok(None);
        }
        let root = self.open_root()?;
        let Some(trash) = self.open_trash(&root)? else {
            return Ok(None);
        };
        let holds_dir = |name: &TrashName| -> Result<bool, FsError> {
            let entry_name = name.to_string();
            let path = self.trash_path().join(&entry_name);
            Ok(entry_data_kind(&trash, &entry_name, &path)? == Some(FileType::Directory))
        };
        if holds_dir(own)? {
            return Ok(Some(own.clone()));
        }
        let names =
            read_names(&trash).map_err(|e| FsError::new("list trash", self.trash_path(), e))?;
        let mut candidates: Vec<TrashName> = names
            .iter()
            .filter_map(|n| n.parse::<TrashName>().ok())
            .filter(|n| &n.tenant == tenant && &n.workspace == workspace)
            .collect();
        candidates.sort_by_key(|n| std::cmp::Reverse((n.deleted_at, n.to_string())));
        for name in candidates {
            if holds_dir(&name)? {
                return Ok(Some(name));
            }
        }
        Ok(None)
    }

    /// Finishes an entry whose move stopped half-way: publishes `.staging+<name>` as `<name>` when
    /// it holds the data; when it holds only the record (the data never moved), removes it
    /// (never recursively: anything else in it makes this fail and leaves it for an operator).
    pub fn finish_staged(&self, name: &TrashName) -> Result<MoveOutcome, FsError> {
        let root = self.open_root()?;
        let outcome = self.publish_staged(&root, name)?;
        if outcome == MoveOutcome::Absent {
            if let Some(trash) = self.open_trash(&root)? {
                let staging_name = name.staging();
                let staging_path = self.trash_path().join(&staging_name);
                if let Ok(staging) =
                    rfs::openat(&trash, staging_name.as_str(), DIR_NOFOLLOW, Mode::empty())
                {
                    for file in [TRASH_RECORD, "record.json.tmp"] {
                        match rfs::unlinkat(&staging, file, AtFlags::empty()) {
                            Ok(()) | Err(Errno::NOENT) => {}
                            Err(e) => {
                                return Err(FsError::new("discard staging", &staging_path, e))
                            }
                        }
                    }
                    rfs::unlinkat(&trash, staging_name.as_str(), AtFlags::REMOVEDIR)
                        .map_err(|e| FsError::new("discard staging", &staging_path, e))?;
                }
            }
        }
        Ok(outcome)
    }

    /// Publishes `.staging+<name>` as `<name>` if it holds moved data; otherwise nothing was moved.
    fn publish_staged(&self, root: &OwnedFd, name: &TrashName) -> Result<MoveOutcome, FsError> {
        let Some(trash) = self.open_trash(root)? else {
            return Ok(MoveOutcome::Absent);
        };
        let staging_name = name.staging();
        let staging_path = self.trash_path().join(&staging_name);
        let staging = match rfs::openat(&trash, staging_name.as_str(), DIR_NOFOLLOW, Mode::empty())
        {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(MoveOutcome::Absent),
            Err(e) => return Err(FsError::new("open staging entry", staging_path, e)),
        };
        match rfs::statat(&staging, TRASH_DATA, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => {}
            Err(Errno::NOENT) => return Ok(MoveOutcome::Absent),
            Err(e) => return Err(FsError::new("stat staged data", staging_path, e)),
        }
        let entry_name = name.to_string();
        let entry_path = self.trash_path().join(&entry_name);
        publish(&trash, name, entry_path)
    }

    /// Replaces the `record.json` of a trash entry (written atomically, never through a link).
    pub fn write_trash_record(&self, entry: &TrashName, record_json: &[u8]) -> Result<(), FsError> {
        let root = self.open_root()?;
        let entry_path = self.trash_path().join(entry.to_string());
        let (_trash, entry_fd) = self.open_entry(&root, entry)?;
        write_file_at(&entry_fd, TRASH_RECORD, record_json)
            .map_err(|e| FsError::new("write record", entry_path.join(TRASH_RECORD), e))
    }

    /// Removes `.trash/<entry>` and everything in it; stops at `deadline`, to be finished later.
    pub fn purge_trash_entry(
        &self,
        entry: &str,
        deadline: Option<Instant>,
    ) -> Result<RemovalReport, FsError> {
        self.purge_trash_entry_with(None, entry, deadline)
    }

    /// [`WorkspaceFs::purge_trash_entry`] with many calls in flight when a deleter is given.
    pub fn purge_trash_entry_with(
        &self,
        deleter: Option<&ParallelDeleter>,
        entry: &str,
        deadline: Option<Instant>,
    ) -> Result<RemovalReport, FsError> {
        if entry.is_empty() || entry.contains('/') || entry == "." || entry == ".." {
            return Err(FsError::new("refuse trash entry", entry, Errno::INVAL));
        }
        let root = self.open_root()?;
        let trash_path = self.trash_path();
        let trash = match rfs::openat(&root, TRASH_DIR, DIR_NOFOLLOW, Mode::empty()) {
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
        // Committed to deletion: the entry leaves the names a restore looks at before anything in
        // it is removed (a purge that stops at the deadline resumes under this name).
        let purging = if entry.starts_with(PURGING_PREFIX) {
            entry.to_string()
        } else {
            let purging = format!("{PURGING_PREFIX}{entry}");
            match rfs::renameat_with(
                &trash,
                entry,
                &trash,
                purging.as_str(),
                rfs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {}
                Err(Errno::NOENT) => {
                    return Ok(RemovalReport {
                        complete: true,
                        ..RemovalReport::default()
                    })
                }
                Err(e) => return Err(FsError::new("rename for purge", trash_path.join(entry), e)),
            }
            purging
        };
        let (name, path) = (OsStr::new(purging.as_str()), trash_path.join(&purging));
        Ok(match deleter {
            Some(d) => d.remove_tree_at(trash.as_fd(), name, &path, dev, deadline),
            None => remove_tree_at(trash.as_fd(), name, &path, dev, deadline),
        })
    }

    fn open_trash(&self, root: &OwnedFd) -> Result<Option<OwnedFd>, FsError> {
        match rfs::openat(root, TRASH_DIR, DIR_NOFOLLOW, Mode::empty()) {
            Ok(fd) => Ok(Some(fd)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(FsError::new("open trash", self.trash_path(), e)),
        }
    }

    /// Every `<tenant>/<workspace>` entry under the root (not `.trash`), with its age. A tenant
    /// entry that is not a directory, or cannot be listed, is returned without a workspace.
    ///
    /// Tenants are listed [`LISTING_THREADS`] at a time: on EFS each stat is a round trip, and a
    /// fleet of a million workspaces is a million of them. The order is the root's, then each
    /// tenant's; any failed read fails the whole listing.
    pub fn list_live(&self) -> Result<Vec<LiveEntry>, FsError> {
        let root = self.open_root()?;
        let tenants: Vec<String> = read_names(&root)
            .map_err(|e| FsError::new("list root", &self.root, e))?
            .into_iter()
            .filter(|t| t != TRASH_DIR)
            .collect();
        let next = std::sync::atomic::AtomicUsize::new(0);
        let listed: Vec<Vec<TenantListing>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..LISTING_THREADS.min(tenants.len()))
                .map(|_| {
                    scope.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(tenant) = tenants.get(i) else {
                                return mine;
                            };
                            mine.push((i, self.list_tenant(&root, tenant)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().expect("a listing thread does not panic"))
                .collect()
        });
        let mut by_tenant: Vec<TenantListing> = listed.into_iter().flatten().collect();
        by_tenant.sort_by_key(|(i, _)| *i);
        let mut out = Vec::new();
        for (_, entries) in by_tenant {
            out.extend(entries?);
        }
        Ok(out)
    }

    /// One tenant's workspaces, with their ages (see [`WorkspaceFs::list_live`]).
    fn list_tenant(&self, root: &OwnedFd, tenant: &str) -> Result<Vec<LiveEntry>, FsError> {
        let unlisted = || {
            vec![LiveEntry {
                tenant: tenant.to_string(),
                workspace: None,
                changed_at: 0,
            }]
        };
        // Not a tenant's name (lost+found, .snapshot, …): reported, never entered.
        if TenantId::parse(tenant).is_err() {
            return Ok(unlisted());
        }
        let Ok(tenant_fd) = rfs::openat(root, tenant, DIR_NOFOLLOW, Mode::empty()) else {
            return Ok(unlisted());
        };
        let names = read_names(&tenant_fd)
            .map_err(|e| FsError::new("list tenant", self.root.join(tenant), e))?;
        let mut out = Vec::with_capacity(names.len());
        for ws in names {
            let changed_at = match rfs::statat(&tenant_fd, ws.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st.st_mtime.max(st.st_ctime),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(FsError::new("stat", self.root.join(tenant).join(&ws), e)),
            };
            out.push(LiveEntry {
                tenant: tenant.to_string(),
                workspace: Some(ws),
                changed_at,
            });
        }
        Ok(out)
    }

    /// When `<tenant>/<workspace>` last changed (the newest of its mtime and ctime, as
    /// [`WorkspaceFs::list_live`] reports it), read now; `None` when it is not there.
    pub fn live_changed_at(
        &self,
        tenant: &TenantId,
        workspace: &WorkspaceId,
    ) -> Result<Option<i64>, FsError> {
        let root = self.open_root()?;
        let Some(tenant_fd) = self.open_tenant(&root, tenant)? else {
            return Ok(None);
        };
        match rfs::statat(&tenant_fd, workspace.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st.st_mtime.max(st.st_ctime))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(FsError::new(
                "stat workspace",
                self.root.join(tenant.as_str()).join(workspace.as_str()),
                e,
            )),
        }
    }

    /// The names in `.trash` (none when it does not exist yet).
    pub fn list_trash(&self) -> Result<Vec<TrashEntry>, FsError> {
        let root = self.open_root()?;
        let Some(trash) = self.open_trash(&root)? else {
            return Ok(Vec::new());
        };
        let names =
            read_names(&trash).map_err(|e| FsError::new("list trash", self.trash_path(), e))?;
        Ok(names.into_iter().map(|name| TrashEntry { name }).collect())
    }

    /// The `record.json` kept with a trash entry, if it has one. Only a regular file of at most
    /// [`MAX_TRASH_RECORD_BYTES`] is read (a FIFO planted there is never waited on, a huge file
    /// never held in memory): anything else is an error, never "no record".
    pub fn read_trash_record(&self, entry: &TrashName) -> Result<Option<Vec<u8>>, FsError> {
        let path = self.trash_path().join(entry.to_string()).join(TRASH_RECORD);
        let root = self.open_root()?;
        let Some(trash) = self.open_trash(&root)? else {
            return Ok(None);
        };
        let entry_fd = match rfs::openat(
            &trash,
            entry.to_string().as_str(),
            DIR_NOFOLLOW,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(FsError::new("open trash entry", path, e)),
        };
        match rfs::openat(
            &entry_fd,
            TRASH_RECORD,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => {
                let stat = rfs::fstat(&fd).map_err(|e| FsError::new("stat", &path, e))?;
                if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
                    return Err(FsError::new(
                        "read (not a regular file)",
                        path,
                        Errno::INVAL,
                    ));
                }
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(std::fs::File::from(fd), MAX_TRASH_RECORD_BYTES + 1),
                    &mut bytes,
                )
                .map_err(|e| FsError {
                    op: "read",
                    path: path.clone(),
                    source: e,
                })?;
                if bytes.len() as u64 > MAX_TRASH_RECORD_BYTES {
                    return Err(FsError::new(
                        "read (larger than a record can be)",
                        path,
                        Errno::FBIG,
                    ));
                }
                Ok(Some(bytes))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(FsError::new("open", path, e)),
        }
    }

    /// Moves `.trash/<entry>/data` back to `<tenant>/<workspace>` (never over anything that is
    /// there: the rename refuses to replace) and removes the emptied entry.
    pub fn restore_from_trash(&self, entry: &TrashName) -> Result<PathBuf, FsError> {
        let place = self.take_from_trash(entry)?;
        self.discard_emptied_entry(entry);
        Ok(place)
    }

    fn open_entry(&self, root: &OwnedFd, entry: &TrashName) -> Result<(OwnedFd, OwnedFd), FsError> {
        let entry_path = self.trash_path().join(entry.to_string());
        let trash = self
            .open_trash(root)?
            .ok_or_else(|| FsError::new("open trash", self.trash_path(), Errno::NOENT))?;
        let entry_fd = rfs::openat(
            &trash,
            entry.to_string().as_str(),
            DIR_NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| FsError::new("open trash entry", &entry_path, e))?;
        Ok((trash, entry_fd))
    }

    /// Moves `.trash/<entry>/data` back to `<tenant>/<workspace>` (never over anything: the
    /// rename refuses to replace) and leaves the entry with its record, so that a step after
    /// this one that fails can [`WorkspaceFs::return_to_trash`].
    pub fn take_from_trash(&self, entry: &TrashName) -> Result<PathBuf, FsError> {
        let root = self.open_root()?;
        let (trash, entry_fd) = self.open_entry(&root, entry)?;
        // The entry is claimed by a rename before its data moves: a purge renames it to
        // `.purging+` before deleting, and moving the data out of an entry a purge holds would
        // put a tree being deleted in the workspace's place. Whichever rename comes first wins.
        let claim = format!("{TAKING_PREFIX}{entry}");
        let name = entry.to_string();
        let entry_path = self.trash_path().join(&name);
        rfs::renameat_with(
            &trash,
            name.as_str(),
            &trash,
            claim.as_str(),
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            FsError::new(
                "restore (claim the entry; a purge may hold it)",
                &entry_path,
                e,
            )
        })?;
        let taken = self.take_claimed(&root, &trash, &entry_fd, &claim, entry);
        // The claim ends at once, whatever happened: the entry is back under its name (emptied,
        // or whole if the move failed).
        let released = rfs::renameat_with(
            &trash,
            claim.as_str(),
            &trash,
            name.as_str(),
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| FsError::new("restore (release the claim)", &entry_path, e));
        let place = taken?;
        released?;
        Ok(place)
    }

    fn take_claimed(
        &self,
        root: &OwnedFd,
        trash: &OwnedFd,
        entry_fd: &OwnedFd,
        claim: &str,
        entry: &TrashName,
    ) -> Result<PathBuf, FsError> {
        // What was claimed is the entry that was opened (not something swapped in by name).
        let opened =
            rfs::fstat(entry_fd).map_err(|e| FsError::new("stat", self.trash_path(), e))?;
        let claimed = rfs::statat(trash, claim, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| FsError::new("stat", self.trash_path().join(claim), e))?;
        if (opened.st_dev, opened.st_ino) != (claimed.st_dev, claimed.st_ino) {
            return Err(FsError::new(
                "restore (the entry was replaced)",
                self.trash_path().join(entry.to_string()),
                Errno::STALE,
            ));
        }
        let tenant_path = self.root.join(entry.tenant.as_str());
        let tenant_fd = self.ensure_dir(root, entry.tenant.as_str(), &tenant_path)?;
        let place = tenant_path.join(entry.workspace.as_str());
        // Only a directory is a workspace's data: a link or a file put in its place would become
        // a "workspace" pointing anywhere.
        match rfs::statat(entry_fd, TRASH_DATA, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {}
            Ok(_) => {
                return Err(FsError::new(
                    "restore (data is not a directory)",
                    self.trash_path().join(entry.to_string()).join(TRASH_DATA),
                    Errno::NOTDIR,
                ))
            }
            Err(e) => {
                return Err(FsError::new(
                    "restore (stat data)",
                    self.trash_path().join(entry.to_string()).join(TRASH_DATA),
                    e,
                ))
            }
        }
        rfs::renameat_with(
            entry_fd,
            TRASH_DATA,
            &tenant_fd,
            entry.workspace.as_str(),
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| FsError::new("restore (rename back)", &place, e))?;
        Ok(place)
    }

    /// Undoes [`WorkspaceFs::take_from_trash`]: the data goes back into its entry.
    pub fn return_to_trash(&self, entry: &TrashName) -> Result<(), FsError> {
        let root = self.open_root()?;
        let (_trash, entry_fd) = self.open_entry(&root, entry)?;
        let tenant_fd = self.open_tenant(&root, &entry.tenant)?.ok_or_else(|| {
            FsError::new(
                "open tenant dir",
                self.root.join(entry.tenant.as_str()),
                Errno::NOENT,
            )
        })?;
        rfs::renameat_with(
            &tenant_fd,
            entry.workspace.as_str(),
            &entry_fd,
            TRASH_DATA,
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| {
            FsError::new(
                "return to trash",
                self.trash_path().join(entry.to_string()),
                e,
            )
        })
    }

    /// Removes an entry whose data was taken back: its record files and the empty directory
    /// (never recursively). Best effort: what is left is an empty entry the sweeper purges.
    pub fn discard_emptied_entry(&self, entry: &TrashName) {
        let Ok(root) = self.open_root() else { return };
        let Ok((trash, entry_fd)) = self.open_entry(&root, entry) else {
            return;
        };
        for name in [TRASH_RECORD, "record.json.tmp"] {
            let _ = rfs::unlinkat(&entry_fd, name, AtFlags::empty());
        }
        let _ = rfs::unlinkat(&trash, entry.to_string().as_str(), AtFlags::REMOVEDIR);
    }
}

/// What `.trash/<name>/data` is (of any kind: it is what the move renamed, never followed), when
/// `.trash/<name>` is a directory (never a link) holding it; `None` otherwise.
fn entry_data_kind(trash: &OwnedFd, name: &str, path: &Path) -> Result<Option<FileType>, FsError> {
    let entry = match rfs::openat(trash, name, DIR_NOFOLLOW, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::LOOP | Errno::NOTDIR | Errno::NOENT) => return Ok(None),
        Err(e) => return Err(FsError::new("open trash entry", path, e)),
    };
    match rfs::statat(&entry, TRASH_DATA, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(FsError::new("stat trash data", path.join(TRASH_DATA), e)),
    }
}

/// The one rename that puts an assembled entry into the trash (never over another entry).
fn publish(trash: &OwnedFd, name: &TrashName, entry_path: PathBuf) -> Result<MoveOutcome, FsError> {
    rfs::renameat_with(
        trash,
        name.staging().as_str(),
        trash,
        name.to_string().as_str(),
        rfs::RenameFlags::NOREPLACE,
    )
    .map_err(|e| FsError::new("publish trash entry", &entry_path, e))?;
    Ok(MoveOutcome::Moved { entry: entry_path })
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

/// The names in a directory (not `.`/`..`). Non-UTF-8 names are returned lossily; they never
/// validate as ids, so they are reported and left alone.
fn read_names(dir: &OwnedFd) -> Result<Vec<String>, Errno> {
    let mut names = Vec::new();
    let mut d = rfs::Dir::read_from(dir)?;
    while let Some(entry) = d.read() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push(String::from_utf8_lossy(name).into_owned());
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(root: &Path, data: impl FnOnce(&Path)) -> TrashName {
        let name = TrashName::new(
            1_700_000_000,
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-1").unwrap(),
            "0123456789abcdef".into(),
        );
        let dir = root.join(TRASH_DIR).join(name.to_string());
        std::fs::create_dir_all(&dir).unwrap();
        data(&dir.join(TRASH_DATA));
        name
    }

    /// Red team 5: a record as large as a DynamoDB item allows is read whole (and so archived
    /// and restored); a FIFO is never waited on, a huge file never held, a link never followed.
    #[test]
    fn a_trash_record_is_read_only_when_it_is_a_bounded_regular_file() {
        let root = tempfile::tempdir().unwrap();
        let fs = WorkspaceFs::new(root.path());
        let name = entry(root.path(), |data| std::fs::create_dir(data).unwrap());
        let record = root
            .path()
            .join(TRASH_DIR)
            .join(name.to_string())
            .join(TRASH_RECORD);
        let large = vec![b' '; 5 * 1024 * 1024];
        std::fs::write(&record, &large).unwrap();
        assert_eq!(
            fs.read_trash_record(&name).unwrap().unwrap().len(),
            large.len()
        );

        std::fs::write(&record, vec![b' '; MAX_TRASH_RECORD_BYTES as usize + 1]).unwrap();
        assert!(fs.read_trash_record(&name).is_err(), "too large");
        std::fs::remove_file(&record).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &record,
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        assert!(fs.read_trash_record(&name).is_err(), "a FIFO");
        std::fs::remove_file(&record).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &record).unwrap();
        assert!(fs.read_trash_record(&name).is_err(), "a link");
        std::fs::remove_file(&record).unwrap();
        assert_eq!(fs.read_trash_record(&name).unwrap(), None);
    }

    /// Red team 7 F2: taking data out of the trash claims the entry by a rename first, so a purge
    /// that starts meanwhile finds no entry to delete (and a purge that came first leaves none to
    /// take); the claim ends under the entry's own name.
    #[test]
    fn taking_data_out_claims_the_entry_against_a_purge() {
        let root = tempfile::tempdir().unwrap();
        let fs = WorkspaceFs::new(root.path());
        let name = entry(root.path(), |data| {
            std::fs::create_dir_all(data.join("src")).unwrap();
            std::fs::write(data.join("src/f"), b"kept").unwrap();
        });
        let trash = root.path().join(TRASH_DIR);
        // Mid-take: the entry holds the claim name; a purge of it finds nothing.
        let claimed = trash.join(format!("{TAKING_PREFIX}{name}"));
        std::fs::rename(trash.join(name.to_string()), &claimed).unwrap();
        let purged = fs.purge_trash_entry_with(None, &name.to_string(), None);
        assert!(
            claimed.join("data/src/f").exists(),
            "the purge deleted nothing: {purged:?}"
        );
        std::fs::rename(&claimed, trash.join(name.to_string())).unwrap();

        let place = fs.take_from_trash(&name).unwrap();
        assert_eq!(std::fs::read(place.join("src/f")).unwrap(), b"kept");
        let left: Vec<String> = std::fs::read_dir(&trash)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![name.to_string()], "released under its own name");

        // A purge that came first holds it: nothing is taken.
        let other = entry(root.path(), |data| std::fs::create_dir(data).unwrap());
        std::fs::remove_dir_all(root.path().join("acme/ws-1")).unwrap();
        let purging = trash.join(format!("{PURGING_PREFIX}{other}"));
        std::fs::rename(trash.join(other.to_string()), &purging).unwrap();
        assert!(fs.take_from_trash(&other).is_err());
        assert!(purging.join("data").exists());
        assert!(!root.path().join("acme/ws-1").exists());
    }

    #[test]
    fn only_a_directory_comes_back_out_of_the_trash() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let fs = WorkspaceFs::new(root.path());
        let linked = entry(root.path(), |data| {
            std::os::unix::fs::symlink(outside.path(), data).unwrap()
        });
        let err = fs.take_from_trash(&linked).unwrap_err();
        assert!(err.to_string().contains("not a directory"), "{err}");
        assert!(std::fs::symlink_metadata(root.path().join("acme/ws-1")).is_err());

        let root = tempfile::tempdir().unwrap();
        let fs = WorkspaceFs::new(root.path());
        let real = entry(root.path(), |data| {
            std::fs::create_dir(data).unwrap();
            std::fs::write(data.join("f"), b"1").unwrap();
        });
        let place = fs.take_from_trash(&real).unwrap();
        assert_eq!(std::fs::read(place.join("f")).unwrap(), b"1");
    }

    #[test]
    fn an_empty_or_linked_workspace_directory_is_no_data() {
        let root = tempfile::tempdir().unwrap();
        let fs = WorkspaceFs::new(root.path());
        let (tenant, ws) = (
            TenantId::parse("acme").unwrap(),
            WorkspaceId::parse("ws-1").unwrap(),
        );
        assert!(!fs.workspace_has_data(&tenant, &ws).unwrap());
        let dir = root.path().join("acme/ws-1");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!fs.workspace_has_data(&tenant, &ws).unwrap());
        std::fs::write(dir.join("f"), b"1").unwrap();
        assert!(fs.workspace_has_data(&tenant, &ws).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("f"), b"1").unwrap();
        std::os::unix::fs::symlink(outside.path(), &dir).unwrap();
        assert!(
            !fs.workspace_has_data(&tenant, &ws).unwrap(),
            "a link is never followed"
        );
    }
}
