//! ttl-expiry's failed batches in S3: the objects Lambda's on-failure destination writes.

use async_trait::async_trait;
use aws_sdk_s3::operation::get_object::GetObjectError;
use lifecycle_ports::{FailedBatches, Failure, ServiceError, StoredObject};

use crate::sdk::service_error;

#[derive(Debug, Clone)]
pub struct S3FailedBatches {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3FailedBatches {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
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
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("S3 ListObjectsV2", e))?;
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
        Ok(objects)
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, ServiceError> {
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
