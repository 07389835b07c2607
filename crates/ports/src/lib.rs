//! What the decisions need from the outside world, as small traits over domain types. The AWS
//! adapters are in `lifecycle-aws`; in-memory fakes for handler tests are in [`fakes`].

use async_trait::async_trait;
use lifecycle_domain::access_point::{AccessPointInfo, AccessPointSpec};
use lifecycle_domain::activity::ExpiryNotice;
use lifecycle_domain::ids::WorkspaceId;
use lifecycle_domain::prune::{ImageDetail, ImageStatus, ImageUse, StorageClass};
use lifecycle_domain::record::{Attributes, Observed};
use lifecycle_domain::tasks::{InUse, TaskSummary};

pub mod archive;
pub mod fakes;
pub mod fanout;
pub mod posture;

pub use archive::{ArchiveStore, ArchivedObject, ObjectSpec, Readiness, UploadedPart};
pub use fanout::{Claim, Finish, RunLedger, WorkQueue};

/// How a call failed, which is what a caller decides on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// Throttling, 5xx, timeouts and dropped connections: the same call may succeed later.
    Retryable,
    /// Refused for good (access denied, validation, not found where it must exist): retrying
    /// the same call gives the same answer.
    Permanent,
    /// The world changed under the call (a condition or a concurrent writer): read again and
    /// decide again; never retry the same call blindly.
    Conflict,
}

/// A failed call to a service, classified once so every caller can decide what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation} failed ({}): {message}", lifecycle_domain::reasons::code(.failure))]
pub struct ServiceError {
    pub operation: &'static str,
    pub message: String,
    pub failure: Failure,
}

impl ServiceError {
    pub fn new(operation: &'static str, message: impl Into<String>, failure: Failure) -> Self {
        Self {
            operation,
            message: message.into(),
            failure,
        }
    }

    pub fn retryable(operation: &'static str, message: impl Into<String>) -> Self {
        Self::new(operation, message, Failure::Retryable)
    }

    pub fn permanent(operation: &'static str, message: impl Into<String>) -> Self {
        Self::new(operation, message, Failure::Permanent)
    }

    pub fn conflict(operation: &'static str, message: impl Into<String>) -> Self {
        Self::new(operation, message, Failure::Conflict)
    }

    /// Whether the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.failure == Failure::Retryable
    }
}

/// The workspace table: the only source of truth about which workspaces exist.
#[async_trait]
pub trait WorkspaceTable: Send + Sync {
    /// A strongly consistent read of one record; `None` only when it truly does not exist.
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Attributes>, ServiceError>;

    /// Writes `record` only if no record with its id exists. `Ok(false)`: one already exists.
    async fn put_if_absent(&self, record: Attributes) -> Result<bool, ServiceError>;

    /// Strongly consistent reads of many records (any number of ids; absent ones are left out).
    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Attributes>, ServiceError>;

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
    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Attributes>, ServiceError>;

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

    /// Records `access_point_id` as the workspace's access point, only if the record exists and
    /// every value in `observed` is still what was read (a restore re-creating the access point
    /// of the record it wrote must not attach it to another record). `Ok(false)`: re-read.
    async fn set_access_point(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        access_point_id: &str,
    ) -> Result<bool, ServiceError>;
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

    /// Creates an access point as `spec` describes (root directory, tags); its id.
    async fn create(&self, spec: &AccessPointSpec) -> Result<String, ServiceError>;
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

    /// For a liveness scan (heartbeat), never for a guard: every active task with what of it
    /// could be read (its tags and overrides always; its definition's mounts and environment
    /// when the definition could be read), and the tasks whose definition could not be read. A
    /// listing that fails or is cut short is still an error. By default all or nothing.
    async fn active_tasks_for_liveness(&self) -> Result<ActiveTasks, ServiceError> {
        Ok(ActiveTasks {
            tasks: self.active_tasks().await?,
            unread: Vec::new(),
        })
    }
}

/// [`Tasks::active_tasks_for_liveness`]: the tasks, and what could not be read of them (what,
/// why).
#[derive(Debug, Default)]
pub struct ActiveTasks {
    pub tasks: Vec<TaskSummary>,
    pub unread: Vec<(String, ServiceError)>,
}

#[async_trait]
pub trait Notices: Send + Sync {
    /// Publishes notices; one result per notice, in order (`Err` carries the reason it failed).
    /// A failed call fails only the notices it carried: each result decides its own claim.
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>>;
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
    /// Moves one image to `class` (ECR UpdateImageStorageClass): archives it, or restores it
    /// (ECR then reports it ACTIVATING until it is back). Returns the status the registry
    /// reports after the call.
    async fn set_storage_class(
        &self,
        repository: &str,
        digest: &str,
        class: StorageClass,
    ) -> Result<ImageStatus, ServiceError>;
}

/// One object of a bucket, as a listing gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub key: String,
    pub size: i64,
    /// Epoch seconds.
    pub last_modified: Option<i64>,
    /// As the listing says (`None`: not said, STANDARD).
    pub storage_class: Option<String>,
}

/// The bucket Lambda writes a stream's failed batches to (its S3 on-failure destination).
#[async_trait]
pub trait FailedBatches: Send + Sync {
    /// Every object whose key starts with `prefix` (all pages; never a partial list).
    async fn list(&self, prefix: &str) -> Result<Vec<StoredObject>, ServiceError>;
    /// One object's content; `None` only when S3 says it does not exist. An object larger than
    /// `max_bytes` is an error, read no further.
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Option<Vec<u8>>, ServiceError>;
}

#[async_trait]
pub trait Deployments: Send + Sync {
    /// Images something depends on: for ECS, running and pending tasks and service deployments
    /// in every cluster and the newest `keep_revisions` ACTIVE revisions of every task-definition
    /// family; for Lambda, every version of every function packaged as an image. Never partial:
    /// an answer with unread elements is an error.
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError>;
}

/// Every source of "in use", read one after the other; any failure fails the whole read.
pub struct AllDeployments(pub Vec<std::sync::Arc<dyn Deployments>>);

#[async_trait]
impl Deployments for AllDeployments {
    /// Every source read at the same time (ECS and Lambda do not wait on each other); the
    /// first failure fails the whole.
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let reads = self.0.iter().map(|s| s.images_in_use(keep_revisions));
        Ok(futures::future::try_join_all(reads)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

/// The workspaces running tasks name, for a liveness scan (heartbeat): by tag, environment or
/// the `workspaceId` tag of an access point they mount. What could not be read (a task's
/// definition, a mounted access point) is returned beside it, so the workspaces that were read
/// are still extended; a failed listing is an error.
pub async fn workspaces_named_by_tasks(
    tasks: &dyn Tasks,
    access_points: &dyn AccessPoints,
) -> Result<(Vec<String>, Vec<(String, ServiceError)>), ServiceError> {
    let ActiveTasks { tasks, mut unread } = tasks.active_tasks_for_liveness().await?;
    let mut index = InUse::from_tasks(&tasks);
    let mut described = Vec::new();
    for id in index.mounted_access_points() {
        match access_points.describe(&id).await {
            Ok(Some(info)) => described.push(info),
            Ok(None) => {}
            Err(e) => unread.push((id, e)),
        }
    }
    index.resolve_access_points(&described);
    Ok((
        index.named_workspaces().map(str::to_string).collect(),
        unread,
    ))
}

/// The in-use index now: one complete listing of the cluster's active tasks (a failed or partial
/// one is an error, never "not in use") with every access point a task mounts described, so a
/// task is seen through any access point of a workspace. `tasks` is `None` only when the guard
/// was explicitly switched off (`ECS_CLUSTER=none`).
pub async fn read_in_use(
    tasks: Option<&dyn Tasks>,
    access_points: &dyn AccessPoints,
) -> Result<InUse, ServiceError> {
    let Some(tasks) = tasks else {
        return Ok(InUse::unguarded());
    };
    let mut index = InUse::from_tasks(&tasks.active_tasks().await?);
    let mut described = Vec::new();
    for id in index.mounted_access_points() {
        if let Some(info) = access_points.describe(&id).await? {
            described.push(info);
        }
    }
    index.resolve_access_points(&described);
    Ok(index)
}
