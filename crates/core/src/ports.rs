//! What the decisions need from the outside world, as small traits. The AWS adapters live in
//! [`crate::aws`], the in-memory fakes used by unit tests in [`crate::memory`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_dynamo::Item;

use crate::ids::WorkspaceId;
use crate::tasks::TaskSummary;

/// A failed call to a service, classified once so every caller can decide "retry" vs "give up".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed{}: {message}", if *.retryable { " (retryable)" } else { "" })]
pub struct ServiceError {
    pub operation: &'static str,
    pub message: String,
    /// Throttling, 5xx, timeouts and dropped connections: the same call may succeed later.
    pub retryable: bool,
}

impl ServiceError {
    pub fn new(operation: &'static str, message: impl Into<String>, retryable: bool) -> Self {
        Self {
            operation,
            message: message.into(),
            retryable,
        }
    }
}

/// The workspace table: the only source of truth about which workspaces exist.
#[async_trait]
pub trait WorkspaceTable: Send + Sync {
    /// A strongly consistent read of one record; `None` only when it truly does not exist.
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Item>, ServiceError>;

    /// Writes `item` only if no record with its id exists. `Ok(false)`: one already exists.
    async fn put_if_absent(&self, item: Item) -> Result<bool, ServiceError>;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPointInfo {
    pub id: String,
    pub file_system_id: String,
    pub root_path: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[async_trait]
pub trait AccessPoints: Send + Sync {
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError>;

    /// Deletes an access point. `Ok(false)`: it was already gone, which counts as success.
    async fn delete(&self, id: &str) -> Result<bool, ServiceError>;
}

#[async_trait]
pub trait Tasks: Send + Sync {
    /// Every task of the cluster that is running or about to run (desired status RUNNING), with
    /// its tags and container environment overrides. All pages; never a partial list.
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError>;
}
