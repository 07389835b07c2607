//! Archiving a trash entry to the archive bucket before its purge, and bringing it back.
//!
//! - [`tree`]: the entry's `data` directory → tar + zstd, through directory handles only, with a
//!   bounded pool of threads fetching ahead of the one writer (the archive is the same whatever
//!   the pool: see `prefetch`).
//! - [`extract`]: tar + zstd → a directory, refusing anything that could land outside it.
//! - [`archive_trash_entry`]: the walk streamed into a multipart upload of fixed-size parts (the
//!   part being filled and the part being uploaded are the only ones in memory, whatever the
//!   workspace's size), each part with its SHA-256 (S3 checks it on receipt), then the object
//!   described again and its size and composite checksum compared with what was sent, then read
//!   back and listed as a restore would read it (names, kinds, bytes, the zstd checksum) and
//!   compared with what the walk archived. Any failure aborts the upload. The record kept with the entry is a second, small object beside the
//!   archive: user metadata holds 2 KB of ASCII at most, and a record keeps every attribute
//!   (unknown ones too, any text); as an object of its own it is read without downloading the
//!   archive (a restore checks it before anything else).
//! - [`restore_from_archive`]: the archive read back by ranges into a `.restoring+` entry of the
//!   trash (which no sweep touches), published as a trash entry once whole, then restored as any
//!   trash entry is ([`crate::restore::restore`]).

pub mod extract;
mod prefetch;
pub mod tree;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Instant;

use lifecycle_domain::archive::{archive_key, record_key, RETENTION_TAG};
use lifecycle_domain::layout::{TrashName, RESTORING_PREFIX, TRASH_DATA, TRASH_RECORD};
use lifecycle_domain::retention::RetentionPolicy;
use lifecycle_ports::{
    ArchiveStore, ArchivedObject, ObjectSpec, Readiness, ServiceError, UploadedPart, WorkspaceTable,
};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use crate::restore::{restore, RestoreError, Restored, Supplied};
use crate::{write_file_at, FsError, Presence, WorkspaceFs, DIR_NOFOLLOW};
pub use tree::{Lookahead, TreeError, TreeStats};

/// Every part but the last is this size: 8 MiB, so S3's 10,000 parts hold 78 GiB of compressed
/// workspace; a larger one fails (and stays in the trash, reported).
pub const PART_SIZE: usize = 8 * 1024 * 1024;
/// S3's limit.
pub const MAX_PARTS: usize = 10_000;
/// Days S3 keeps the readable copy of a GLACIER / DEEP_ARCHIVE archive it restored: time for
/// the operator to run the restore again.
pub const RESTORED_COPY_DAYS: i32 = 7;
/// The largest `record.json` read back from the bucket: the largest one archived (read from the
/// trash entry with the same limit), so every record archived can be restored.
pub const MAX_RECORD_BYTES: u64 = crate::MAX_TRASH_RECORD_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error(transparent)]
    Tree(#[from] TreeError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    /// The object S3 describes is not the one sent (size or checksum), or is missing.
    #[error("archive {key} does not verify: {why}")]
    Verify { key: String, why: String },
    #[error("archive of {0} is larger than {MAX_PARTS} parts of {PART_SIZE} bytes")]
    TooLarge(String),
    #[error("a task failed: {0}")]
    Task(String),
}

/// A finished, verified archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub key: String,
    pub size: u64,
    pub sha256: [u8; 32],
    pub parts: usize,
    pub stats: TreeStats,
    /// Whether the entry had a `record.json` (stored beside the archive).
    pub with_record: bool,
}

impl Archived {
    /// Whether S3's description is this archive: same size, same composite checksum.
    pub fn matches(&self, object: &ArchivedObject) -> Result<(), String> {
        if object.size != self.size {
            return Err(format!("{} bytes in S3, {} sent", object.size, self.size));
        }
        match object.sha256 {
            Some(sum) if sum == self.sha256 => Ok(()),
            Some(_) => Err("S3's SHA-256 checksum differs from the parts sent".into()),
            None => Err("S3 keeps no SHA-256 checksum for it".into()),
        }
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The checksum S3 keeps for a multipart upload with SHA-256 parts: the SHA-256 of the parts'
/// digests, concatenated in part order.
pub fn composite_sha256(parts: &[UploadedPart]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.sha256);
    }
    hasher.finalize().into()
}

impl WorkspaceFs {
    /// `.trash/<entry>/data`, opened as a directory without following a link.
    pub fn open_trash_data(&self, entry: &TrashName) -> Result<OwnedFd, FsError> {
        let root = self.open_root()?;
        let (_trash, entry_fd) = self.open_entry(&root, entry)?;
        let path = self.trash_path().join(entry.to_string()).join(TRASH_DATA);
        rfs::openat(&entry_fd, TRASH_DATA, DIR_NOFOLLOW, Mode::empty())
            .map_err(|e| FsError::new("open trash data (a directory, never a link)", path, e))
    }

    /// A fresh `.trash/.restoring+<entry>/data` to extract into: what an earlier, interrupted
    /// restore left there is removed first (through handles, never following a link).
    fn start_restoring(&self, entry: &TrashName) -> Result<OwnedFd, FsError> {
        let root = self.open_root()?;
        let trash_path = self.trash_path();
        let trash = self.ensure_dir(&root, lifecycle_domain::layout::TRASH_DIR, &trash_path)?;
        let name = format!("{RESTORING_PREFIX}{entry}");
        let path = trash_path.join(&name);
        self.discard_restoring(entry);
        rfs::mkdirat(&trash, name.as_str(), Mode::RWXU)
            .map_err(|e| FsError::new("create restoring entry", &path, e))?;
        let entry_fd = rfs::openat(&trash, name.as_str(), DIR_NOFOLLOW, Mode::empty())
            .map_err(|e| FsError::new("open restoring entry", &path, e))?;
        rfs::mkdirat(&entry_fd, TRASH_DATA, Mode::RWXU)
            .map_err(|e| FsError::new("create", path.join(TRASH_DATA), e))?;
        rfs::openat(&entry_fd, TRASH_DATA, DIR_NOFOLLOW, Mode::empty())
            .map_err(|e| FsError::new("open", path.join(TRASH_DATA), e))
    }

    /// Removes `.trash/.restoring+<entry>` (best effort: a later restore tries again).
    fn discard_restoring(&self, entry: &TrashName) {
        let Ok(root) = self.open_root() else { return };
        let Ok(Some(trash)) = self.open_trash(&root) else {
            return;
        };
        let Ok(st) = rfs::fstat(&trash) else { return };
        let name = format!("{RESTORING_PREFIX}{entry}");
        let path = self.trash_path().join(&name);
        let _ = tree_deleter::remove_tree_at(
            std::os::fd::AsFd::as_fd(&trash),
            std::ffi::OsStr::new(name.as_str()),
            &path,
            st.st_dev,
            None,
        );
    }

    /// Writes the record into the restoring entry and publishes it as `.trash/<entry>` (one
    /// rename that never replaces an entry).
    fn publish_restoring(&self, entry: &TrashName, record: Option<&[u8]>) -> Result<(), FsError> {
        let root = self.open_root()?;
        let trash = self
            .open_trash(&root)?
            .ok_or_else(|| FsError::new("open trash", self.trash_path(), Errno::NOENT))?;
        let name = format!("{RESTORING_PREFIX}{entry}");
        let path = self.trash_path().join(&name);
        if let Some(bytes) = record {
            let entry_fd = rfs::openat(&trash, name.as_str(), DIR_NOFOLLOW, Mode::empty())
                .map_err(|e| FsError::new("open restoring entry", &path, e))?;
            write_file_at(&entry_fd, TRASH_RECORD, bytes)
                .map_err(|e| FsError::new("write record", path.join(TRASH_RECORD), e))?;
        }
        rfs::renameat_with(
            &trash,
            name.as_str(),
            &trash,
            entry.to_string().as_str(),
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| FsError::new("publish restored entry", &path, e))
    }

    /// Whether `.trash/<entry>/data` is a directory (only a directory is archived or restored).
    pub fn trash_data_is_directory(&self, entry: &TrashName) -> Result<bool, FsError> {
        let root = self.open_root()?;
        let (_trash, entry_fd) = self.open_entry(&root, entry)?;
        match rfs::statat(&entry_fd, TRASH_DATA, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            Err(Errno::NOENT) => Ok(false),
            Err(e) => Err(FsError::new(
                "stat trash data",
                self.trash_path().join(entry.to_string()).join(TRASH_DATA),
                e,
            )),
        }
    }
}

/// Archives `.trash/<entry>` (its `data` tree and its `record.json`) into the store, kept for
/// `retention_days` (the object tag the bucket's lifecycle rules expire by), and verifies the
/// upload. Nothing on the file system changes. On any failure the multipart upload is aborted.
pub async fn archive_trash_entry(
    fs: &WorkspaceFs,
    store: Arc<dyn ArchiveStore>,
    entry: &TrashName,
    retention_days: u32,
    part_size: usize,
    deadline: Option<Instant>,
) -> Result<Archived, ArchiveError> {
    let (f, e) = (fs.clone(), entry.clone());
    let (record, top) = tokio::task::spawn_blocking(move || {
        Ok::<_, FsError>((f.read_trash_record(&e)?, f.open_trash_data(&e)?))
    })
    .await
    .map_err(|e| ArchiveError::Task(e.to_string()))??;
    let tags = BTreeMap::from([(RETENTION_TAG.to_string(), retention_days.to_string())]);
    let metadata = BTreeMap::from([
        ("trash-entry".to_string(), entry.to_string()),
        ("tenant-id".to_string(), entry.tenant.to_string()),
        ("workspace-id".to_string(), entry.workspace.to_string()),
        ("deleted-at".to_string(), entry.deleted_at.to_string()),
        ("retention-days".to_string(), retention_days.to_string()),
        (
            "record".to_string(),
            if record.is_some() { "beside" } else { "none" }.to_string(),
        ),
    ]);
    // The record first: the archive, verified, is what makes the entry archived, and a record
    // object without one is harmless (it expires by the same tag).
    let with_record = record.is_some();
    if let Some(bytes) = record {
        let spec = ObjectSpec {
            key: record_key(entry),
            metadata: metadata.clone(),
            tags: tags.clone(),
        };
        store.put(&spec, bytes).await?;
    }
    let spec = ObjectSpec {
        key: archive_key(entry),
        metadata,
        tags,
    };
    let mut archived = upload_tree(store.clone(), &spec, top, part_size, deadline).await?;
    archived.with_record = with_record;
    read_back(store, &archived, deadline).await?;
    Ok(archived)
}

/// Reads the archive back from the bucket and lists it as a restore would (every name, kind and
/// byte, and the zstd checksum), comparing what it holds with what the walk put in: an archive
/// that could not be restored is never taken for one. Writes nothing.
pub async fn read_back(
    store: Arc<dyn ArchiveStore>,
    archived: &Archived,
    deadline: Option<Instant>,
) -> Result<(), ArchiveError> {
    let (key, size, walked) = (archived.key.clone(), archived.size, archived.stats);
    let read = tokio::task::spawn_blocking(move || {
        extract::read_tree(RangeReader::new(store, &key, size), deadline)
    })
    .await
    .map_err(|e| ArchiveError::Task(e.to_string()))??;
    let counted = |s: &TreeStats| (s.files, s.directories, s.symlinks, s.bytes);
    if counted(&read) != counted(&walked) {
        return Err(ArchiveError::Verify {
            key: archived.key.clone(),
            why: format!("read back it holds {read:?}, the walk archived {walked:?}"),
        });
    }
    Ok(())
}

/// Streams the tree under `top` as tar + zstd into a multipart upload of `spec.key`, then checks
/// S3's description of the object against what was sent.
pub async fn upload_tree(
    store: Arc<dyn ArchiveStore>,
    spec: &ObjectSpec,
    top: OwnedFd,
    part_size: usize,
    deadline: Option<Instant>,
) -> Result<Archived, ArchiveError> {
    upload_tree_with(store, spec, top, part_size, deadline, Lookahead::default()).await
}

/// [`upload_tree`] with the walk fetching ahead as `lookahead` says (the archive is the same).
pub async fn upload_tree_with(
    store: Arc<dyn ArchiveStore>,
    spec: &ObjectSpec,
    top: OwnedFd,
    part_size: usize,
    deadline: Option<Instant>,
    lookahead: Lookahead,
) -> Result<Archived, ArchiveError> {
    let key = spec.key.clone();
    let upload_id = store.start_upload(spec).await?;
    let result = upload_parts(
        store.as_ref(),
        &key,
        &upload_id,
        top,
        part_size,
        deadline,
        lookahead,
    )
    .await;
    let (parts, size, stats) = match result {
        Ok(done) => done,
        Err(e) => {
            // Best effort: a failed abort leaves parts the bucket's lifecycle rule removes.
            let _ = store.abort_upload(&key, &upload_id).await;
            return Err(e);
        }
    };
    if let Err(e) = store.complete_upload(&key, &upload_id, &parts).await {
        let _ = store.abort_upload(&key, &upload_id).await;
        return Err(e.into());
    }
    let archived = Archived {
        key: key.clone(),
        size,
        sha256: composite_sha256(&parts),
        parts: parts.len(),
        stats,
        with_record: false,
    };
    let object = store
        .head(&key)
        .await?
        .ok_or_else(|| ArchiveError::Verify {
            key: key.clone(),
            why: "not found after the upload completed".into(),
        })?;
    archived
        .matches(&object)
        .map_err(|why| ArchiveError::Verify { key, why })?;
    Ok(archived)
}

/// A part handed to the uploader, and the signal it sends back once the part is uploaded.
type Part = (Vec<u8>, oneshot::Sender<()>);

async fn upload_parts(
    store: &dyn ArchiveStore,
    key: &str,
    upload_id: &str,
    top: OwnedFd,
    part_size: usize,
    deadline: Option<Instant>,
    lookahead: Lookahead,
) -> Result<(Vec<UploadedPart>, u64, TreeStats), ArchiveError> {
    // A part size of zero would never fill; S3 itself refuses parts under 5 MiB but the last.
    let part_size = part_size.max(1);
    let (tx, mut rx) = mpsc::channel::<Part>(1);
    let walker = tokio::task::spawn_blocking(move || {
        let writer = PartWriter {
            buf: Vec::with_capacity(part_size),
            part_size,
            tx,
            uploaded: None,
            total: 0,
        };
        let (writer, stats) = tree::write_tree_with(top, writer, deadline, lookahead)?;
        let total = writer
            .finish()
            .map_err(|e| tree::io_err("upload", b".", e))?;
        Ok::<_, TreeError>((total, stats))
    });
    let mut parts = Vec::new();
    let mut failure = None;
    while let Some((body, done)) = rx.recv().await {
        if parts.len() >= MAX_PARTS {
            failure = Some(ArchiveError::TooLarge(key.to_string()));
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            failure = Some(ArchiveError::Tree(TreeError::Deadline));
            break;
        }
        let digest = sha256(&body);
        let number = parts.len() as i32 + 1;
        match store
            .upload_part(key, upload_id, number, body, digest)
            .await
        {
            Ok(part) => parts.push(part),
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
        let _ = done.send(());
    }
    // Closing the channel stops the walker at its next part (its send fails).
    drop(rx);
    let walked = walker
        .await
        .map_err(|e| ArchiveError::Task(e.to_string()))?;
    if let Some(e) = failure {
        return Err(e);
    }
    let (total, stats) = walked?;
    Ok((parts, total, stats))
}

/// The walk's sink: fills one part at a time and hands it to the uploader once the part before
/// it is uploaded, so at most two parts are in memory (one filling, one uploading).
struct PartWriter {
    buf: Vec<u8>,
    part_size: usize,
    tx: mpsc::Sender<Part>,
    /// Signalled when the part sent last is uploaded.
    uploaded: Option<oneshot::Receiver<()>>,
    total: u64,
}

fn broken() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "the upload stopped")
}

impl PartWriter {
    fn send(&mut self) -> io::Result<()> {
        if let Some(previous) = self.uploaded.take() {
            previous.blocking_recv().map_err(|_| broken())?;
        }
        let part = std::mem::replace(&mut self.buf, Vec::with_capacity(self.part_size));
        self.total += part.len() as u64;
        let (done, uploaded) = oneshot::channel();
        self.tx.blocking_send((part, done)).map_err(|_| broken())?;
        self.uploaded = Some(uploaded);
        Ok(())
    }

    /// Sends the last part (an empty archive still has one) and returns the bytes sent.
    fn finish(mut self) -> io::Result<u64> {
        if !self.buf.is_empty() || self.total == 0 {
            self.send()?;
        }
        if let Some(previous) = self.uploaded.take() {
            previous.blocking_recv().map_err(|_| broken())?;
        }
        Ok(self.total)
    }
}

impl Write for PartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.part_size - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == self.part_size {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An object read by ranges of [`PART_SIZE`] (one range in memory), from a blocking thread.
pub struct RangeReader {
    store: Arc<dyn ArchiveStore>,
    runtime: tokio::runtime::Handle,
    key: String,
    size: u64,
    position: u64,
    chunk: io::Cursor<Vec<u8>>,
}

impl RangeReader {
    pub fn new(store: Arc<dyn ArchiveStore>, key: &str, size: u64) -> Self {
        Self {
            store,
            runtime: tokio::runtime::Handle::current(),
            key: key.to_string(),
            size,
            position: 0,
            chunk: io::Cursor::new(Vec::new()),
        }
    }
}

impl Read for RangeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.chunk.read(buf)?;
        if n > 0 || self.position >= self.size {
            return Ok(n);
        }
        let len = (self.size - self.position).min(PART_SIZE as u64);
        let bytes = self
            .runtime
            .block_on(self.store.get_range(&self.key, self.position, len))
            .map_err(io::Error::other)?;
        if bytes.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "{} ended at {} of {} bytes",
                    self.key, self.position, self.size
                ),
            ));
        }
        self.position += bytes.len() as u64;
        self.chunk = io::Cursor::new(bytes);
        self.chunk.read(buf)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveRestoreError {
    #[error("workspace {0} has no archive")]
    NotArchived(String),
    /// A GLACIER / DEEP_ARCHIVE object: S3 was asked to restore it now (`started`) or is
    /// restoring it already; the restore finishes on a later call.
    #[error(
        "archive {key} is in {class}: {}; run this again once it is ready (Standard retrieval: \
         Glacier Flexible Retrieval 3-5 hours, Deep Archive within 12 hours)",
        if *started { "S3 was asked to restore it now" } else { "S3 is restoring it" }
    )]
    NotReadyYet {
        key: String,
        class: String,
        started: bool,
    },
    #[error(transparent)]
    Restore(#[from] RestoreError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

/// Restores a workspace from its archive: refuses (downloading nothing) if its record exists
/// again or its place is taken; extracts into a `.restoring+` entry of the trash, publishes it as
/// the trash entry it was, and restores that entry as any other (which checks everything again).
pub async fn restore_from_archive(
    table: &dyn WorkspaceTable,
    fs: &WorkspaceFs,
    store: Arc<dyn ArchiveStore>,
    entry: &TrashName,
    policy: &RetentionPolicy,
    supplied: &Supplied,
    now: i64,
) -> Result<Restored, ArchiveRestoreError> {
    let ws = entry.workspace.to_string();
    if table
        .get(&entry.workspace)
        .await
        .map_err(RestoreError::from)?
        .is_some()
    {
        return Err(RestoreError::RecordExists(ws).into());
    }
    if fs
        .workspace_presence(&entry.tenant, &entry.workspace)
        .map_err(RestoreError::from)?
        != Presence::Absent
    {
        return Err(RestoreError::PlaceTaken(
            fs.root()
                .join(entry.tenant.as_str())
                .join(entry.workspace.as_str()),
        )
        .into());
    }
    let key = archive_key(entry);
    let object = store
        .head(&key)
        .await
        .map_err(ArchiveError::from)?
        .ok_or_else(|| ArchiveRestoreError::NotArchived(ws.clone()))?;
    let class = object.storage_class.clone().unwrap_or_default();
    match object.readiness() {
        Readiness::Readable => {}
        Readiness::Restoring => {
            return Err(ArchiveRestoreError::NotReadyYet {
                key,
                class,
                started: false,
            })
        }
        Readiness::Frozen => {
            let started = store
                .request_restore(&key, RESTORED_COPY_DAYS)
                .await
                .map_err(ArchiveError::from)?;
            return Err(ArchiveRestoreError::NotReadyYet {
                key,
                class,
                started,
            });
        }
    }
    let record = store
        .get(&record_key(entry), MAX_RECORD_BYTES)
        .await
        .map_err(ArchiveError::from)?;
    let has_item = record.as_deref().is_some_and(|bytes| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .is_ok_and(|v| v.get("item").is_some_and(|i| !i.is_null()))
    });
    if !has_item && (supplied.tier.is_none() || supplied.subscription_status.is_none()) {
        return Err(RestoreError::NoRecord(entry.to_string()).into());
    }
    let (f, e, s) = (fs.clone(), entry.clone(), store.clone());
    let size = object.size;
    let extracted = tokio::task::spawn_blocking(move || {
        let top = f.start_restoring(&e).map_err(ArchiveError::from)?;
        let reader = RangeReader::new(s, &archive_key(&e), size);
        let result = extract::extract_tree(reader, &top, None)
            .map_err(ArchiveError::from)
            .and_then(|_| {
                f.publish_restoring(&e, record.as_deref())
                    .map_err(ArchiveError::from)
            });
        if result.is_err() {
            f.discard_restoring(&e);
        }
        result
    })
    .await
    .map_err(|e| ArchiveError::Task(e.to_string()))?;
    extracted?;
    Ok(restore(table, fs, entry, policy, supplied, now).await?)
}
