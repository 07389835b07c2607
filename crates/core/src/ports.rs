//! What the decisions need from the outside world, as small traits. The AWS adapters live in
//! [`crate::aws`], the in-memory fakes used by unit tests in [`crate::memory`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Serialize;
use serde_dynamo::Item;

use crate::ids::WorkspaceId;
use crate::record::Observed;
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

    /// Strongly consistent reads of many records (any number of ids; absent ones are left out).
    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Item>, ServiceError>;

    /// Sets `lastActivityAt` and `expiresAt`, only if the record exists, is not held, neither
    /// stored value is larger than the new one, and every value in `observed` is still what the
    /// plan read (a tier downgraded meanwhile must not get the old tier's extension).
    /// `Ok(false)`: the condition failed (re-read and re-plan).
    async fn extend(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last_activity_at: i64,
        expires_at: i64,
    ) -> Result<bool, ServiceError>;

    /// Sets (or with `None` removes) `expiresAt`, only if the record exists and every value in
    /// `observed` is still what the plan read (no heartbeat, upgrade or hold raced us).
    async fn set_expiry(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: Option<i64>,
    ) -> Result<bool, ServiceError>;

    /// Every record (all pages), or with `expiring` = `(from, to)` only records whose
    /// `expiresAt` lies in `(from, to]`.
    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Item>, ServiceError>;

    /// Records that a notice for `expires_at` is being sent, only if the record still expires at
    /// exactly that time, is not held, no notice was recorded for it, and every value in
    /// `observed` (what the notice says) is still what was read. `Ok(false)`: re-read.
    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: i64,
    ) -> Result<bool, ServiceError>;

    /// Undoes [`WorkspaceTable::claim_notice`] when the notice could not be sent.
    async fn release_notice(&self, id: &WorkspaceId, expires_at: i64) -> Result<(), ServiceError>;
}

/// An access point as EFS describes it. Which workspace (if any) it serves is decided by
/// [`crate::access_point::identify`], never inferred here.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessPointInfo {
    pub id: String,
    pub file_system_id: String,
    pub root_path: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// Tag an access point may carry with its creation time (epoch seconds or RFC 3339): EFS itself
/// reports none, and the sweeper needs an age before it deletes one.
pub const CREATED_AT_TAG: &str = "createdAt";

/// Tag the sweeper puts on an orphan access point of unknown age (epoch seconds of the run that
/// found it), so a later run knows how long it has been an orphan.
pub const ORPHAN_SINCE_TAG: &str = "lifecycle:orphanSince";

impl AccessPointInfo {
    pub fn created_at(&self) -> Option<i64> {
        epoch_or_rfc3339(self.tags.get(CREATED_AT_TAG)?)
    }

    /// When a sweep first found it orphaned; `None` when unmarked (or the mark is unreadable).
    pub fn orphan_since(&self) -> Option<i64> {
        epoch_or_rfc3339(self.tags.get(ORPHAN_SINCE_TAG)?)
    }
}

fn epoch_or_rfc3339(text: &str) -> Option<i64> {
    text.parse().ok().or_else(|| {
        chrono::DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| t.timestamp())
    })
}

#[async_trait]
pub trait AccessPoints: Send + Sync {
    /// One access point, read fresh; `None` only when EFS says it does not exist.
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError>;

    /// Deletes an access point. `Ok(false)`: it was already gone, which counts as success.
    async fn delete(&self, id: &str) -> Result<bool, ServiceError>;

    /// Every access point of a file system (all pages; never a partial list).
    async fn list(&self, file_system_id: &str) -> Result<Vec<AccessPointInfo>, ServiceError>;

    /// Sets one tag. `Ok(false)`: the access point is gone.
    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<bool, ServiceError>;

    /// Removes one tag. `Ok(false)`: the access point is gone.
    async fn untag(&self, id: &str, key: &str) -> Result<bool, ServiceError>;
}

#[async_trait]
pub trait Tasks: Send + Sync {
    /// Every task of the cluster that is running or about to run (desired status RUNNING), with
    /// its tags and container environment overrides. All pages; never a partial list.
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError>;

    /// One task with its tags; `None` only if ECS says it no longer knows it (`MISSING`); any
    /// other failure is an error, never "no task".
    async fn describe(&self, cluster: &str, arn: &str)
        -> Result<Option<TaskSummary>, ServiceError>;
}

/// The event a customer-facing system turns into a warning before a workspace expires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExpiryNotice {
    pub workspace_id: String,
    pub tenant_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub tier: crate::record::Tier,
    pub subscription_status: crate::record::SubscriptionStatus,
    pub expires_at: i64,
}

#[async_trait]
pub trait Notices: Send + Sync {
    /// Publishes notices; one result per notice, in order (`Err` carries the reason it failed).
    /// A failed call fails only the notices it carried: each result decides its own claim.
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>>;
}

/// An image as the registry lists it (manifests are read separately).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageDetail {
    pub digest: String,
    pub tags: Vec<String>,
    pub pushed_at: i64,
    pub size: u64,
    /// The manifest's media type; empty when the registry does not say.
    pub media_type: String,
    /// For a referrer (signature, attestation): the digest it is about, when the registry says.
    pub subject: Option<String>,
}

#[async_trait]
pub trait Registry: Send + Sync {
    /// Every repository name (all pages).
    async fn repositories(&self) -> Result<Vec<String>, ServiceError>;
    /// Every image of a repository (all pages). An image the answer lists without a digest or a
    /// push time is an error, never an image left out.
    async fn images(&self, repository: &str) -> Result<Vec<ImageDetail>, ServiceError>;
    /// Manifest documents by digest; per digest, the text or why it could not be read (after
    /// retries: an element a partial answer left out is never "no manifest").
    async fn manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<String, String>)>, ServiceError>;
    /// Deletes by digest; per digest, success (an image already gone counts as deleted) or why
    /// not, classified retryable or not.
    async fn delete(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<(), ServiceError>)>, ServiceError>;
}

/// An image reference something (ECS, Lambda) depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// As written: `registry/repo:tag` or `registry/repo@sha256:…`.
    pub image: String,
    /// The digest it actually runs, when ECS or Lambda reports it.
    pub digest: Option<String>,
    pub kind: crate::prune::InUseKind,
    /// The task, service, task definition or function that uses it.
    pub by: String,
}

#[async_trait]
pub trait Deployments: Send + Sync {
    /// Images something depends on: for ECS, running and pending tasks and service deployments
    /// in every cluster and the newest `keep_revisions` ACTIVE revisions of every task-definition
    /// family; for Lambda, every version of every function packaged as an image. Never partial:
    /// an answer with unread elements is an error.
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError>;
}
