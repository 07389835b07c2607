//! An archive bucket in memory: multipart uploads with SHA-256 parts, checked like S3 checks
//! them, and a switch that makes every part after the first `n` fail (an upload that dies
//! half-way).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::archive::{ArchiveStore, ArchivedObject, ObjectSpec, UploadedPart};
use crate::{Failure, ServiceError, StoredObject};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryObject {
    pub body: Vec<u8>,
    pub sha256: [u8; 32],
    pub metadata: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub storage_class: Option<String>,
    /// As S3's `x-amz-restore` header says it.
    pub restore: Option<String>,
}

#[derive(Debug, Default)]
struct Upload {
    spec: ObjectSpec,
    parts: BTreeMap<i32, (Vec<u8>, [u8; 32])>,
}

#[derive(Debug, Default)]
pub struct MemoryArchive {
    pub objects: Mutex<BTreeMap<String, MemoryObject>>,
    uploads: Mutex<BTreeMap<String, Upload>>,
    next_upload: Mutex<u64>,
    /// Parts accepted before every later one fails (`None`: none fail).
    pub fail_parts_after: Mutex<Option<usize>>,
    parts_accepted: Mutex<usize>,
    /// Upload ids aborted, in order.
    pub aborted: Mutex<Vec<String>>,
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl MemoryArchive {
    /// Multipart uploads started and neither completed nor aborted.
    pub fn open_uploads(&self) -> usize {
        self.uploads.lock().unwrap().len()
    }

    pub fn object(&self, key: &str) -> Option<MemoryObject> {
        self.objects.lock().unwrap().get(key).cloned()
    }

    /// What the bucket's lifecycle rule does: the object moves to `class`.
    pub fn transition(&self, key: &str, class: &str) {
        if let Some(o) = self.objects.lock().unwrap().get_mut(key) {
            o.storage_class = Some(class.to_string());
            o.restore = None;
        }
    }

    /// S3 finishes a restore it was asked for.
    pub fn finish_restore(&self, key: &str) {
        if let Some(o) = self.objects.lock().unwrap().get_mut(key) {
            o.restore = Some(
                "ongoing-request=\"false\", expiry-date=\"Fri, 21 Dec 2029 00:00:00 GMT\"".into(),
            );
        }
    }
}

fn not_found(op: &'static str, key: &str) -> ServiceError {
    ServiceError::new(op, format!("NoSuchUpload {key}"), Failure::Permanent)
}

#[async_trait]
impl ArchiveStore for MemoryArchive {
    async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
        let mut next = self.next_upload.lock().unwrap();
        *next += 1;
        let id = format!("upload-{next}");
        self.uploads.lock().unwrap().insert(
            id.clone(),
            Upload {
                spec: spec.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
        digest: [u8; 32],
    ) -> Result<UploadedPart, ServiceError> {
        {
            let mut accepted = self.parts_accepted.lock().unwrap();
            if self
                .fail_parts_after
                .lock()
                .unwrap()
                .is_some_and(|n| *accepted >= n)
            {
                return Err(ServiceError::new(
                    "S3 UploadPart",
                    "connection reset",
                    Failure::Retryable,
                ));
            }
            *accepted += 1;
        }
        if sha256(&body) != digest {
            return Err(ServiceError::new(
                "S3 UploadPart",
                "BadDigest",
                Failure::Permanent,
            ));
        }
        let mut uploads = self.uploads.lock().unwrap();
        let upload = uploads
            .get_mut(upload_id)
            .filter(|u| u.spec.key == key)
            .ok_or_else(|| not_found("S3 UploadPart", key))?;
        upload.parts.insert(number, (body, digest));
        Ok(UploadedPart {
            number,
            etag: format!("\"{number}\""),
            sha256: digest,
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), ServiceError> {
        let upload = self
            .uploads
            .lock()
            .unwrap()
            .remove(upload_id)
            .filter(|u| u.spec.key == key)
            .ok_or_else(|| not_found("S3 CompleteMultipartUpload", key))?;
        let mut body = Vec::new();
        let mut digests = Vec::new();
        for part in parts {
            let (bytes, digest) = upload.parts.get(&part.number).ok_or_else(|| {
                ServiceError::new(
                    "S3 CompleteMultipartUpload",
                    "InvalidPart",
                    Failure::Permanent,
                )
            })?;
            if *digest != part.sha256 {
                return Err(ServiceError::new(
                    "S3 CompleteMultipartUpload",
                    "InvalidPart (checksum)",
                    Failure::Permanent,
                ));
            }
            body.extend_from_slice(bytes);
            digests.extend_from_slice(digest);
        }
        self.objects.lock().unwrap().insert(
            key.to_string(),
            MemoryObject {
                body,
                sha256: sha256(&digests),
                metadata: upload.spec.metadata,
                tags: upload.spec.tags,
                storage_class: None,
                restore: None,
            },
        );
        Ok(())
    }

    async fn abort_upload(&self, _key: &str, upload_id: &str) -> Result<(), ServiceError> {
        self.uploads.lock().unwrap().remove(upload_id);
        self.aborted.lock().unwrap().push(upload_id.to_string());
        Ok(())
    }

    async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
        self.objects.lock().unwrap().insert(
            spec.key.clone(),
            MemoryObject {
                sha256: sha256(&body),
                body,
                metadata: spec.metadata.clone(),
                tags: spec.tags.clone(),
                storage_class: None,
                restore: None,
            },
        );
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
        Ok(self.object(key).map(|o| ArchivedObject {
            key: key.to_string(),
            size: o.body.len() as u64,
            sha256: Some(o.sha256),
            last_modified: Some(0),
            storage_class: o.storage_class,
            restore: o.restore,
            metadata: o.metadata,
        }))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, ServiceError> {
        let o = self
            .object(key)
            .ok_or_else(|| ServiceError::new("S3 GetObject", "NoSuchKey", Failure::Permanent))?;
        let readable = ArchivedObject {
            key: key.to_string(),
            size: 0,
            sha256: None,
            last_modified: None,
            storage_class: o.storage_class.clone(),
            restore: o.restore.clone(),
            metadata: BTreeMap::new(),
        }
        .readiness()
            == crate::archive::Readiness::Readable;
        if !readable {
            return Err(ServiceError::new(
                "S3 GetObject",
                "InvalidObjectState",
                Failure::Permanent,
            ));
        }
        let start = (start as usize).min(o.body.len());
        let end = start.saturating_add(len as usize).min(o.body.len());
        Ok(o.body[start..end].to_vec())
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ServiceError> {
        match self.object(key) {
            Some(o) if o.body.len() as u64 > max_bytes => Err(ServiceError::new(
                "S3 GetObject",
                "too large",
                Failure::Permanent,
            )),
            Some(o) => Ok(Some(o.body)),
            None => Ok(None),
        }
    }

    async fn request_restore(&self, key: &str, _days: i32) -> Result<bool, ServiceError> {
        let mut objects = self.objects.lock().unwrap();
        let o = objects.get_mut(key).ok_or_else(|| {
            ServiceError::new("S3 RestoreObject", "NoSuchKey", Failure::Permanent)
        })?;
        if o.restore.as_deref().is_some_and(|r| r.contains("\"true\"")) {
            return Ok(false);
        }
        o.restore = Some("ongoing-request=\"true\"".into());
        Ok(true)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
        Ok(self
            .objects
            .lock()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, o)| StoredObject {
                key: k.clone(),
                size: o.body.len() as i64,
                last_modified: Some(0),
                storage_class: o.storage_class.clone(),
            })
            .collect())
    }
}
