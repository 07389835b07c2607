//! S3: a bucket's lifecycle rules and versioning (the storage audit).

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_s3::types::{BucketVersioningStatus, ExpirationStatus};
use lifecycle_domain::audit::{BucketFacts, Versioning};
use lifecycle_ports::posture::Buckets;
use lifecycle_ports::ServiceError;

use crate::sdk::service_error;

#[derive(Debug, Clone)]
pub struct S3Buckets {
    client: aws_sdk_s3::Client,
}

impl S3Buckets {
    /// With an endpoint override (a local emulator) buckets are addressed by path: a
    /// `bucket.127.0.0.1` host name does not resolve. AWS itself gets virtual-host addressing.
    pub fn new(sdk: &SdkConfig) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
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
