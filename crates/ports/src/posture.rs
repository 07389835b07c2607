//! What the storage audit reads: small read-only ports over the audit's domain types
//! ([`lifecycle_domain::audit`]). Every call is a read or a listing (all pages); a failed or
//! partial answer is an error, which the audit reports as "could not check".

use async_trait::async_trait;
use lifecycle_domain::audit::{
    AuditReport, BucketFacts, FileSystemFacts, LogGroupFacts, StreamConsumer, TableFacts,
};

use crate::ServiceError;

/// DynamoDB: how a table is set up, and which functions read its stream.
#[async_trait]
pub trait TableSettings: Send + Sync {
    /// TTL, stream, point-in-time recovery and deletion protection of `table`.
    async fn describe(&self, table: &str) -> Result<TableFacts, ServiceError>;
    /// The Lambda event source mappings of a stream (all pages).
    async fn stream_consumers(&self, stream_arn: &str)
        -> Result<Vec<StreamConsumer>, ServiceError>;
}

/// EFS: a file system's lifecycle policy and how many access points it has.
#[async_trait]
pub trait FileSystems: Send + Sync {
    async fn describe(&self, file_system_id: &str) -> Result<FileSystemFacts, ServiceError>;
}

/// ECR: what governs a repository besides the pruner, and what ECR archived.
#[async_trait]
pub trait RegistryPolicies: Send + Sync {
    /// Whether a native lifecycle policy is set (`false` only when ECR says there is none).
    async fn has_lifecycle_policy(&self, repository: &str) -> Result<bool, ServiceError>;
    /// Digests of the repository's images whose status is ARCHIVED (all pages).
    async fn archived_images(&self, repository: &str) -> Result<Vec<String>, ServiceError>;
}

/// CloudWatch Logs.
#[async_trait]
pub trait LogGroups: Send + Sync {
    /// Every log group whose name starts with `prefix` (all pages).
    async fn with_prefix(&self, prefix: &str) -> Result<Vec<LogGroupFacts>, ServiceError>;
}

/// S3.
#[async_trait]
pub trait Buckets: Send + Sync {
    /// A bucket's lifecycle rules and versioning (no lifecycle configuration: no rules).
    async fn describe(&self, bucket: &str) -> Result<BucketFacts, ServiceError>;
}

/// Where an audit's findings go (one event per audit).
#[async_trait]
pub trait AuditReports: Send + Sync {
    async fn publish(&self, report: &AuditReport) -> Result<(), ServiceError>;
}
