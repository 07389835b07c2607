//! The archive bucket: trash entries streamed to S3 as multipart uploads (each part with its
//! SHA-256, which S3 checks on receipt and combines into the object's checksum), and read back.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::{ServiceError, StoredObject};

/// What an object is created with: its key, user metadata (`x-amz-meta-*`, small ASCII values)
/// and tags (the bucket's lifecycle rules expire archives by their `retentionDays` tag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectSpec {
    pub key: String,
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
}

/// One part of a multipart upload as S3 acknowledged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPart {
    pub number: i32,
    pub etag: String,
    /// The part's SHA-256, as sent with it (S3 refuses a part whose body does not match).
    pub sha256: [u8; 32],
}

/// An object as S3 describes it (HeadObject with checksums on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedObject {
    pub key: String,
    pub size: u64,
    /// The object's SHA-256 checksum as S3 keeps it: for a multipart upload the SHA-256 of the
    /// concatenated part digests (a "composite" checksum); `None` when S3 keeps none.
    pub sha256: Option<[u8; 32]>,
    /// Epoch seconds.
    pub last_modified: Option<i64>,
    /// `STANDARD`, `GLACIER_IR`, `DEEP_ARCHIVE`, … (`None`: STANDARD).
    pub storage_class: Option<String>,
    /// S3's `x-amz-restore` for an archived (GLACIER, DEEP_ARCHIVE) object: absent when no
    /// restore was asked for, `ongoing-request="true"` while S3 restores it,
    /// `ongoing-request="false", expiry-date=…` once a temporary copy is readable.
    pub restore: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Whether an object's content can be read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Readable,
    /// In GLACIER or DEEP_ARCHIVE with no restore asked for.
    Frozen,
    /// S3 is restoring it.
    Restoring,
}

impl ArchivedObject {
    pub fn readiness(&self) -> Readiness {
        let frozen = matches!(
            self.storage_class.as_deref(),
            Some("GLACIER" | "DEEP_ARCHIVE")
        );
        match self.restore.as_deref() {
            _ if !frozen => Readiness::Readable,
            Some(r) if r.contains("ongoing-request=\"false\"") => Readiness::Readable,
            Some(r) if r.contains("ongoing-request=\"true\"") => Readiness::Restoring,
            _ => Readiness::Frozen,
        }
    }
}

#[async_trait]
pub trait ArchiveStore: Send + Sync {
    /// Starts a multipart upload with SHA-256 checksums; returns its upload id.
    async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError>;
    /// Uploads part `number` (1-based) with its SHA-256.
    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
        sha256: [u8; 32],
    ) -> Result<UploadedPart, ServiceError>;
    /// Completes the upload from its parts, in order.
    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), ServiceError>;
    /// Aborts an upload, so its parts stop costing (not found counts as done).
    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), ServiceError>;
    /// Writes a small object in one call, with its SHA-256.
    async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError>;
    /// The object's description; `None` only when S3 says it does not exist.
    async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError>;
    /// Bytes `start..start + len` of an object (fewer only at its end).
    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, ServiceError>;
    /// A small object's content; `None` only when S3 says it does not exist; an object larger
    /// than `max_bytes` is an error.
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ServiceError>;
    /// Every object whose key starts with `prefix` (all pages; never a partial list).
    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError>;
    /// Asks S3 to make a GLACIER / DEEP_ARCHIVE object readable for `days` (Standard
    /// retrieval); `false` when a restore is already in progress.
    async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError>;
}
