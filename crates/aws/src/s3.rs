//! S3: a bucket's lifecycle rules and versioning (the storage audit), and ttl-expiry's failed
//! batches (the objects Lambda's on-failure destination writes, for `lifecycle replay`).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_s3::operation::get_object::GetObjectError;
use aws_sdk_s3::types::{BucketVersioningStatus, ExpirationStatus};
use lifecycle_domain::audit::{BucketFacts, Versioning};
use lifecycle_ports::posture::Buckets;
use lifecycle_ports::{FailedBatches, Failure, ServiceError, StoredObject};

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
