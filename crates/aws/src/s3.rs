//! S3: a bucket's lifecycle rules and versioning (the storage audit), and ttl-expiry's failed
//! batches (the objects Lambda's on-failure destination writes, for `lifecycle replay`), and the
//! archive bucket (trash entries archived before their purge).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    BucketVersioningStatus, ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload,
    CompletedPart, ExpirationStatus, GlacierJobParameters, RestoreRequest, Tier,
};
use lifecycle_domain::audit::{BucketFacts, Versioning};
use lifecycle_ports::posture::Buckets;
use lifecycle_ports::{
    ArchiveStore, ArchivedObject, FailedBatches, Failure, ObjectSpec, ServiceError, StoredObject,
    UploadedPart,
};

use crate::sdk::service_error;

#[derive(Debug, Clone)]
pub struct S3Buckets {
    client: aws_sdk_s3::Client,
}

/// With an endpoint override (a local emulator) buckets are addressed by path: a
/// `bucket.127.0.0.1` host name does not resolve. AWS itself gets virtual-host addressing.
fn client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(sdk.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

impl S3Buckets {
    pub fn new(sdk: &SdkConfig) -> Self {
        Self {
            client: client(sdk),
        }
    }
}

#[async_trait]
impl Buckets for S3Buckets {
    async fn describe(&self, bucket: &str) -> Result<BucketFacts, ServiceError> {
        let (enabled_rules, expires_noncurrent) = match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => {
                let enabled: Vec<_> = out
                    .rules()
                    .iter()
                    .filter(|r| r.status() == &ExpirationStatus::Enabled)
                    .collect();
                let noncurrent = enabled.iter().any(|r| {
                    r.noncurrent_version_expiration()
                        .is_some_and(|n| n.noncurrent_days().is_some_and(|d| d > 0))
                });
                (enabled.len(), noncurrent)
            }
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => (0, false),
            Err(e) => return Err(service_error("S3 GetBucketLifecycleConfiguration", e)),
        };
        let versioning = self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| service_error("S3 GetBucketVersioning", e))?;
        let versioning = match versioning.status() {
            Some(BucketVersioningStatus::Enabled) => Versioning::Enabled,
            Some(BucketVersioningStatus::Suspended) => Versioning::Suspended,
            _ => Versioning::Never,
        };
        Ok(BucketFacts {
            name: bucket.to_string(),
            enabled_rules,
            expires_noncurrent,
            versioning,
        })
    }
}

/// ttl-expiry's failed batches: one bucket's objects, listed and read.
#[derive(Debug, Clone)]
pub struct S3FailedBatches {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3FailedBatches {
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        Self {
            client: client(sdk),
            bucket: bucket.into(),
        }
    }
}

#[async_trait]
impl FailedBatches for S3FailedBatches {
    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("S3 ListObjectsV2", e))?;
            more = page.is_truncated() == Some(true)
                || crate::sdk::names_next(page.next_continuation_token());
            for object in page.contents() {
                let Some(key) = object.key() else {
                    return Err(ServiceError::new(
                        "S3 ListObjectsV2",
                        "an object without a key in the listing",
                        Failure::Retryable,
                    ));
                };
                objects.push(StoredObject {
                    key: key.to_string(),
                    size: object.size().unwrap_or_default(),
                    last_modified: object.last_modified().map(|t| t.secs()),
                    storage_class: object.storage_class().map(|c| c.as_str().to_string()),
                });
            }
        }
        crate::sdk::listing_complete("S3 ListObjectsV2", more)?;
        Ok(objects)
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ServiceError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(e) => return Err(service_error("S3 GetObject", e)),
        };
        let size = out.content_length().unwrap_or_default();
        if size < 0 || size as u64 > max_bytes {
            return Err(ServiceError::new(
                "S3 GetObject",
                format!("{key} is {size} bytes, more than the {max_bytes} a failed batch can be"),
                Failure::Permanent,
            ));
        }
        let body = out.body.collect().await.map_err(|e| {
            ServiceError::new(
                "S3 GetObject",
                format!("reading the body: {e}"),
                Failure::Retryable,
            )
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }
}

/// The archive bucket: multipart uploads with SHA-256 part checksums, read back by range.
#[derive(Debug, Clone)]
pub struct S3Archive {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Archive {
    pub fn new(sdk: &SdkConfig, bucket: impl Into<String>) -> Self {
        // Archives are read by ranges, which a whole-object checksum cannot check: the SDK checks
        // response checksums only where a call asks (HeadObject does). What is read is checked
        // by the zstd frame's own checksum, to the end of the stream.
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            )
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: bucket.into(),
        }
    }
}

/// `k=v&k=v`, URL-encoded, as the `x-amz-tagging` header takes tags.
fn tagging(tags: &std::collections::BTreeMap<String, String>) -> Option<String> {
    fn encode(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    }
    (!tags.is_empty()).then(|| {
        tags.iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    })
}

/// A SHA-256 checksum as S3 reports it (base64, with `-<parts>` after a multipart upload's).
fn decode_sha256(text: &str) -> Option<[u8; 32]> {
    let digest = text.split('-').next()?;
    aws_smithy_types::base64::decode(digest)
        .ok()?
        .try_into()
        .ok()
}

#[async_trait]
impl ArchiveStore for S3Archive {
    async fn start_upload(&self, spec: &ObjectSpec) -> Result<String, ServiceError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&spec.key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_metadata(Some(spec.metadata.clone().into_iter().collect()))
            .set_tagging(tagging(&spec.tags))
            .send()
            .await
            .map_err(|e| service_error("S3 CreateMultipartUpload", e))?;
        out.upload_id().map(str::to_string).ok_or_else(|| {
            ServiceError::new(
                "S3 CreateMultipartUpload",
                "no upload id in the answer",
                Failure::Retryable,
            )
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: i32,
        body: Vec<u8>,
        sha256: [u8; 32],
    ) -> Result<UploadedPart, ServiceError> {
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(aws_smithy_types::base64::encode(sha256))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| service_error("S3 UploadPart", e))?;
        let etag = out.e_tag().map(str::to_string).ok_or_else(|| {
            ServiceError::new("S3 UploadPart", "no ETag in the answer", Failure::Retryable)
        })?;
        // S3 echoes the checksum it computed; one that differs means the part is not what we sent.
        if let Some(echoed) = out.checksum_sha256() {
            if decode_sha256(echoed) != Some(sha256) {
                return Err(ServiceError::new(
                    "S3 UploadPart",
                    format!("part {number}: S3 computed checksum {echoed}, not the one sent"),
                    Failure::Retryable,
                ));
            }
        }
        Ok(UploadedPart {
            number,
            etag,
            sha256,
        })
    }

    async fn complete_upload(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[UploadedPart],
    ) -> Result<(), ServiceError> {
        let completed = parts
            .iter()
            .map(|p| {
                CompletedPart::builder()
                    .part_number(p.number)
                    .e_tag(&p.etag)
                    .checksum_sha256(aws_smithy_types::base64::encode(p.sha256))
                    .build()
            })
            .collect();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(completed))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| service_error("S3 CompleteMultipartUpload", e))?;
        Ok(())
    }

    async fn abort_upload(&self, key: &str, upload_id: &str) -> Result<(), ServiceError> {
        match self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(()),
            Err(e) => Err(service_error("S3 AbortMultipartUpload", e)),
        }
    }

    async fn put(&self, spec: &ObjectSpec, body: Vec<u8>) -> Result<(), ServiceError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&spec.key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .set_metadata(Some(spec.metadata.clone().into_iter().collect()))
            .set_tagging(tagging(&spec.tags))
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| service_error("S3 PutObject", e))?;
        Ok(())
    }

    async fn head(&self, key: &str) -> Result<Option<ArchivedObject>, ServiceError> {
        let out = match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(HeadObjectError::NotFound(_))) => {
                return Ok(None)
            }
            Err(e) => return Err(service_error("S3 HeadObject", e)),
        };
        let size = u64::try_from(out.content_length().unwrap_or(-1)).map_err(|_| {
            ServiceError::new("S3 HeadObject", "no object size", Failure::Retryable)
        })?;
        Ok(Some(ArchivedObject {
            key: key.to_string(),
            size,
            sha256: out.checksum_sha256().and_then(decode_sha256),
            last_modified: out.last_modified().map(|t| t.secs()),
            storage_class: out.storage_class().map(|c| c.as_str().to_string()),
            restore: out.restore().map(str::to_string),
            metadata: out
                .metadata()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .unwrap_or_default(),
        }))
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>, ServiceError> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| service_error("S3 GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| {
            ServiceError::new(
                "S3 GetObject",
                format!("reading the body: {e}"),
                Failure::Retryable,
            )
        })?;
        let bytes = body.into_bytes().to_vec();
        if bytes.len() as u64 > len {
            return Err(ServiceError::new(
                "S3 GetObject",
                format!("asked for {len} bytes, got {}", bytes.len()),
                Failure::Retryable,
            ));
        }
        Ok(bytes)
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ServiceError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if matches!(e.as_service_error(), Some(GetObjectError::NoSuchKey(_))) => {
                return Ok(None)
            }
            Err(e) => return Err(service_error("S3 GetObject", e)),
        };
        let size = out.content_length().unwrap_or_default();
        if size < 0 || size as u64 > max_bytes {
            return Err(ServiceError::new(
                "S3 GetObject",
                format!("{key} is {size} bytes, more than {max_bytes}"),
                Failure::Permanent,
            ));
        }
        let body = out.body.collect().await.map_err(|e| {
            ServiceError::new(
                "S3 GetObject",
                format!("reading the body: {e}"),
                Failure::Retryable,
            )
        })?;
        Ok(Some(body.into_bytes().to_vec()))
    }

    async fn request_restore(&self, key: &str, days: i32) -> Result<bool, ServiceError> {
        let job = GlacierJobParameters::builder()
            .tier(Tier::Standard)
            .build()
            .map_err(|e| {
                ServiceError::new("S3 RestoreObject", e.to_string(), Failure::Permanent)
            })?;
        let request = RestoreRequest::builder()
            .days(days)
            .glacier_job_parameters(job)
            .build();
        match self
            .client
            .restore_object()
            .bucket(&self.bucket)
            .key(key)
            .restore_request(request)
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("RestoreAlreadyInProgress") => Ok(false),
            Err(e) => Err(service_error("S3 RestoreObject", e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError> {
        S3FailedBatches {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
        }
        .list(prefix)
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_url_encoded_and_checksums_decoded() {
        let tags = std::collections::BTreeMap::from([
            ("retentionDays".to_string(), "30".to_string()),
            ("a b".to_string(), "x&y=z".to_string()),
        ]);
        assert_eq!(tagging(&tags).unwrap(), "a%20b=x%26y%3Dz&retentionDays=30");
        assert_eq!(tagging(&Default::default()), None);
        let digest = [7u8; 32];
        let text = aws_smithy_types::base64::encode(digest);
        assert_eq!(decode_sha256(&text), Some(digest));
        assert_eq!(decode_sha256(&format!("{text}-3")), Some(digest));
        assert_eq!(decode_sha256("AAAA"), None);
    }
}
