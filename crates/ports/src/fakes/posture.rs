//! The audit's ports in memory: each resource's answer, or the error its read gives.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use lifecycle_domain::audit::{
    AuditReport, BucketFacts, FileSystemFacts, LogGroupFacts, StreamConsumer, TableFacts,
};

use crate::posture::{
    AuditReports, Buckets, FileSystems, LogGroups, RegistryPolicies, TableSettings,
};
use crate::ServiceError;

/// Answers by resource name; a resource it does not know is a permanent "not found" error
/// (never a default that would look fine).
#[derive(Debug, Default)]
pub struct MemoryPosture {
    pub tables: BTreeMap<String, Result<TableFacts, ServiceError>>,
    pub consumers: BTreeMap<String, Result<Vec<StreamConsumer>, ServiceError>>,
    pub file_systems: BTreeMap<String, Result<FileSystemFacts, ServiceError>>,
    pub lifecycle_policies: BTreeMap<String, Result<bool, ServiceError>>,
    pub archived: BTreeMap<String, Vec<String>>,
    pub log_groups: Vec<LogGroupFacts>,
    /// Prefixes whose listing fails.
    pub failing_prefixes: BTreeMap<String, ServiceError>,
    pub buckets: BTreeMap<String, Result<BucketFacts, ServiceError>>,
    pub published: Mutex<Vec<AuditReport>>,
}

fn unknown<T>(operation: &'static str, name: &str) -> Result<T, ServiceError> {
    Err(ServiceError::permanent(
        operation,
        format!("{name} not found"),
    ))
}

#[async_trait]
impl TableSettings for MemoryPosture {
    async fn describe(&self, table: &str) -> Result<TableFacts, ServiceError> {
        self.tables
            .get(table)
            .cloned()
            .unwrap_or_else(|| unknown("DescribeTable", table))
    }

    async fn stream_consumers(
        &self,
        stream_arn: &str,
    ) -> Result<Vec<StreamConsumer>, ServiceError> {
        self.consumers
            .get(stream_arn)
            .cloned()
            .unwrap_or(Ok(vec![]))
    }
}

#[async_trait]
impl FileSystems for MemoryPosture {
    async fn describe(&self, id: &str) -> Result<FileSystemFacts, ServiceError> {
        self.file_systems
            .get(id)
            .cloned()
            .unwrap_or_else(|| unknown("DescribeFileSystems", id))
    }
}

#[async_trait]
impl RegistryPolicies for MemoryPosture {
    async fn has_lifecycle_policy(&self, repository: &str) -> Result<bool, ServiceError> {
        self.lifecycle_policies
            .get(repository)
            .cloned()
            .unwrap_or(Ok(false))
    }

    async fn archived_images(&self, repository: &str) -> Result<Vec<String>, ServiceError> {
        Ok(self.archived.get(repository).cloned().unwrap_or_default())
    }
}

#[async_trait]
impl LogGroups for MemoryPosture {
    async fn with_prefix(&self, prefix: &str) -> Result<Vec<LogGroupFacts>, ServiceError> {
        if let Some(e) = self.failing_prefixes.get(prefix) {
            return Err(e.clone());
        }
        Ok(self
            .log_groups
            .iter()
            .filter(|g| g.name.starts_with(prefix))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl Buckets for MemoryPosture {
    async fn describe(&self, bucket: &str) -> Result<BucketFacts, ServiceError> {
        self.buckets
            .get(bucket)
            .cloned()
            .unwrap_or_else(|| unknown("GetBucketLifecycleConfiguration", bucket))
    }
}

#[async_trait]
impl AuditReports for MemoryPosture {
    async fn publish(&self, report: &AuditReport) -> Result<(), ServiceError> {
        self.published.lock().unwrap().push(report.clone());
        Ok(())
    }
}
