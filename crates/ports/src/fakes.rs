//! In-memory fakes of the ports, with the same semantics as the AWS adapters (conditional puts,
//! not-found as success), for unit tests of handlers without the emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use lifecycle_domain::access_point::{AccessPointInfo, AccessPointSpec};
use lifecycle_domain::activity::ExpiryNotice;
use lifecycle_domain::ids::WorkspaceId;
use lifecycle_domain::prune::{ImageDetail, ImageStatus, ImageUse, StorageClass};
use lifecycle_domain::record::{attr, Attributes, Observed, Value};
use lifecycle_domain::tasks::TaskSummary;

pub mod archive;
pub mod fanout;
pub mod posture;

use crate::{AccessPoints, Deployments, Notices, Registry, ServiceError, Tasks, WorkspaceTable};

/// The table in memory. Its conditional writes evaluate the same conditions as the DynamoDB
/// adapter's expressions, so a write the adapter would refuse is refused here too.
#[derive(Debug, Default)]
pub struct MemoryTable {
    pub items: Mutex<BTreeMap<String, Attributes>>,
    /// Test hook: items that replace their record right before the next conditional write to
    /// it, as a control-plane write between a function's read and its write would.
    pub changes_before_write: Mutex<HashMap<String, Attributes>>,
}

impl MemoryTable {
    /// Replaces the record with `item` right before the next conditional write to it.
    pub fn change_before_next_write(&self, item: Attributes) {
        if let Some(id) = item.workspace_id() {
            let id = id.to_string();
            self.changes_before_write.lock().unwrap().insert(id, item);
        }
    }

    /// Runs `write` on the record (after any pending change to it) if it exists.
    fn write<T>(&self, id: &WorkspaceId, absent: T, write: impl FnOnce(&mut Attributes) -> T) -> T {
        let change = self
            .changes_before_write
            .lock()
            .unwrap()
            .remove(id.as_str());
        let mut items = self.items.lock().unwrap();
        if let Some(item) = change {
            items.insert(id.to_string(), item);
        }
        let Some(item) = items.get_mut(id.as_str()) else {
            return absent;
        };
        write(item)
    }
}

fn held(item: &Attributes) -> bool {
    matches!(item.get(attr::HOLD), Some(Value::Bool(true)))
}

fn observed_in(observed: &Observed, item: &Attributes) -> bool {
    observed.matches(item)
}

#[async_trait]
impl WorkspaceTable for MemoryTable {
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Attributes>, ServiceError> {
        Ok(self.items.lock().unwrap().get(id.as_str()).cloned())
    }

    async fn put_if_absent(&self, item: Attributes) -> Result<bool, ServiceError> {
        let Some(id) = item.workspace_id().map(str::to_string) else {
            return Err(ServiceError::permanent(
                "PutAttributes",
                "item has no string workspaceId",
            ));
        };
        let mut items = self.items.lock().unwrap();
        if items.contains_key(&id) {
            return Ok(false);
        }
        items.insert(id, item);
        Ok(true)
    }

    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Attributes>, ServiceError> {
        let items = self.items.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| items.get(id.as_str()).cloned())
            .collect())
    }

    async fn extend(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last: i64,
        expires: i64,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            let at_most = |name: &str, value: i64| match item.get(name) {
                None => true,
                Some(Value::N(n)) => n.parse::<f64>().is_ok_and(|n| n <= value as f64),
                // DynamoDB's `<=` between a number and another type is false.
                Some(_) => false,
            };
            if held(item)
                || !at_most(attr::LAST_ACTIVITY_AT, last)
                || !at_most(attr::EXPIRES_AT, expires)
                || !observed_in(observed, item)
            {
                return false;
            }
            item.insert(attr::LAST_ACTIVITY_AT, Value::N(last.to_string()));
            item.insert(attr::EXPIRES_AT, Value::N(expires.to_string()));
            true
        }))
    }

    async fn set_expiry(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires: Option<i64>,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            if !observed_in(observed, item) {
                return false;
            }
            match expires {
                Some(at) => item.insert(attr::EXPIRES_AT, Value::N(at.to_string())),
                None => item.remove(attr::EXPIRES_AT),
            };
            true
        }))
    }

    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Attributes>, ServiceError> {
        let items = self.items.lock().unwrap();
        Ok(items
            .values()
            .filter(|item| match expiring {
                None => true,
                Some((from, to)) => {
                    number(item, attr::EXPIRES_AT).is_some_and(|e| e > from && e <= to)
                }
            })
            .cloned()
            .collect())
    }

    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires: i64,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            let is = |name: &str, value: i64| {
                matches!(item.get(name), Some(Value::N(n)) if n.parse::<f64>().is_ok_and(|n| n == value as f64))
            };
            if held(item)
                || !is(attr::EXPIRES_AT, expires)
                || is(attr::NOTICE_SENT_FOR, expires)
                || !observed_in(observed, item)
            {
                return false;
            }
            item.insert(attr::NOTICE_SENT_FOR, Value::N(expires.to_string()));
            true
        }))
    }

    async fn release_notice(&self, id: &WorkspaceId, expires: i64) -> Result<(), ServiceError> {
        let mut items = self.items.lock().unwrap();
        if let Some(item) = items.get_mut(id.as_str()) {
            if number(item, attr::NOTICE_SENT_FOR) == Some(expires) {
                item.remove(attr::NOTICE_SENT_FOR);
            }
        }
        Ok(())
    }

    async fn set_access_point(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        access_point_id: &str,
    ) -> Result<bool, ServiceError> {
        Ok(self.write(id, false, |item| {
            if !observed_in(observed, item) {
                return false;
            }
            item.insert(attr::ACCESS_POINT_ID, Value::S(access_point_id.to_string()));
            true
        }))
    }
}

fn number(item: &Attributes, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(Value::N(n)) => n.parse().ok(),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub struct MemoryAccessPoints {
    pub points: Mutex<HashMap<String, AccessPointInfo>>,
    /// Deletes of these access points fail with this error, as EFS answers them (throttled,
    /// denied), and leave the access point in place.
    pub delete_failures: Mutex<HashMap<String, ServiceError>>,
}

#[async_trait]
impl AccessPoints for MemoryAccessPoints {
    async fn describe(&self, id: &str) -> Result<Option<AccessPointInfo>, ServiceError> {
        Ok(self.points.lock().unwrap().get(id).cloned())
    }

    async fn delete(&self, id: &str) -> Result<bool, ServiceError> {
        if let Some(e) = self.delete_failures.lock().unwrap().get(id) {
            return Err(e.clone());
        }
        Ok(self.points.lock().unwrap().remove(id).is_some())
    }

    async fn list(&self, file_system_id: &str) -> Result<Vec<AccessPointInfo>, ServiceError> {
        let mut out: Vec<_> = self
            .points
            .lock()
            .unwrap()
            .values()
            .filter(|ap| ap.file_system_id == file_system_id)
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    async fn tag(&self, id: &str, key: &str, value: &str) -> Result<bool, ServiceError> {
        Ok(match self.points.lock().unwrap().get_mut(id) {
            Some(ap) => {
                ap.tags.insert(key.to_string(), value.to_string());
                true
            }
            None => false,
        })
    }

    async fn untag(&self, id: &str, key: &str) -> Result<bool, ServiceError> {
        Ok(match self.points.lock().unwrap().get_mut(id) {
            Some(ap) => {
                ap.tags.remove(key);
                true
            }
            None => false,
        })
    }

    async fn create(&self, spec: &AccessPointSpec) -> Result<String, ServiceError> {
        // A fresh id, as EFS gives one: never one given before, even after a delete.
        static CREATED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = CREATED.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        let id = format!("fsap-{n:017x}");
        self.points.lock().unwrap().insert(
            id.clone(),
            AccessPointInfo {
                id: id.clone(),
                file_system_id: spec.file_system_id.clone(),
                root_path: Some(spec.root_path.clone()),
                tags: spec.tags.clone(),
            },
        );
        Ok(id)
    }
}

#[derive(Debug, Default)]
pub struct MemoryTasks {
    pub tasks: Mutex<Vec<TaskSummary>>,
    /// Tasks whose definition cannot be read: a guard's listing fails; a liveness listing
    /// returns them without their definition's mounts and environment, and says so.
    pub unreadable_definitions: Mutex<Vec<String>>,
}

#[async_trait]
impl Tasks for MemoryTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        if let Some(arn) = self.unreadable_definitions.lock().unwrap().first() {
            return Err(ServiceError::retryable(
                "ECS DescribeTaskDefinition",
                format!("{arn}: throttled"),
            ));
        }
        Ok(self.tasks.lock().unwrap().clone())
    }

    async fn active_tasks_for_liveness(&self) -> Result<crate::ActiveTasks, ServiceError> {
        let unreadable = self.unreadable_definitions.lock().unwrap().clone();
        let mut out = crate::ActiveTasks::default();
        for mut task in self.tasks.lock().unwrap().clone() {
            if unreadable.contains(&task.arn) {
                task.efs_mounts.clear();
                out.unread.push((
                    task.arn.clone(),
                    ServiceError::retryable("ECS DescribeTaskDefinition", "throttled"),
                ));
            }
            out.tasks.push(task);
        }
        Ok(out)
    }

    async fn describe(
        &self,
        _cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskSummary>, ServiceError> {
        Ok(self
            .tasks
            .lock()
            .unwrap()
            .iter()
            .find(|t| t.arn == arn)
            .cloned())
    }
}

/// Notices kept in memory, in the order they were published.
#[derive(Debug, Default)]
pub struct MemoryNotices {
    pub sent: Mutex<Vec<ExpiryNotice>>,
    /// Workspaces whose notices the bus refuses (per entry, as PutEvents reports it).
    pub refuse: Mutex<std::collections::HashSet<String>>,
}

#[async_trait]
impl Notices for MemoryNotices {
    async fn publish(&self, notices: &[ExpiryNotice]) -> Vec<Result<(), String>> {
        let refuse = self.refuse.lock().unwrap();
        let mut sent = self.sent.lock().unwrap();
        notices
            .iter()
            .map(|n| {
                if refuse.contains(&n.workspace_id) {
                    return Err("InternalFailure: refused".to_string());
                }
                sent.push(n.clone());
                Ok(())
            })
            .collect()
    }
}

/// A registry in memory: repository -> digest -> (listing, manifest document). Like ECR it
/// refuses to delete a manifest an index still references; `delete_failures` injects the
/// per-image failures ECR reports in a 200 answer. Images have a storage status: an archive
/// makes one ARCHIVED (`lastArchivedAt` = `clock`), a restore ACTIVATING (`settle` makes it
/// ACTIVE); `storage_failures` injects failures of those calls.
/// A repository in memory: digest -> (listing, manifest document).
pub type MemoryRepository = BTreeMap<String, (ImageDetail, String)>;

#[derive(Debug, Default)]
pub struct MemoryRegistry {
    pub repositories: Mutex<BTreeMap<String, MemoryRepository>>,
    pub delete_failures: Mutex<BTreeMap<String, ServiceError>>,
    /// Every digest a delete call asked for, in order.
    pub delete_calls: Mutex<Vec<String>>,
    /// Every storage-class change asked for, in order: (digest, target class).
    pub storage_calls: Mutex<Vec<(String, StorageClass)>>,
    /// Every change asked for, in order, as `<repository> delete|archive|standard <digest>`.
    pub changes: Mutex<Vec<String>>,
    pub storage_failures: Mutex<BTreeMap<String, ServiceError>>,
    /// What an archive stamps as `lastArchivedAt`.
    pub clock: Mutex<i64>,
    /// Whether manifests of archived images are refused (as a pull of one is).
    pub archived_manifests_unreadable: Mutex<bool>,
}

impl MemoryRegistry {
    pub fn put(&self, repository: &str, detail: ImageDetail, manifest: &str) {
        self.repositories
            .lock()
            .unwrap()
            .entry(repository.to_string())
            .or_default()
            .insert(detail.digest.clone(), (detail, manifest.to_string()));
    }

    /// Moves `tag` to `digest` (as a push of that tag does).
    pub fn tag(&self, repository: &str, digest: &str, tag: &str) {
        let mut repos = self.repositories.lock().unwrap();
        let images = repos.entry(repository.to_string()).or_default();
        for (detail, _) in images.values_mut() {
            detail.tags.retain(|t| t != tag);
        }
        if let Some((detail, _)) = images.get_mut(digest) {
            detail.tags.push(tag.to_string());
        }
    }

    /// An image's storage status and `lastArchivedAt`.
    pub fn status(&self, repository: &str, digest: &str) -> Option<(ImageStatus, Option<i64>)> {
        let repos = self.repositories.lock().unwrap();
        let (detail, _) = repos.get(repository)?.get(digest)?;
        Some((detail.status, detail.archived_at))
    }

    /// Sets an image's storage status (as ECR's own lifecycle rules, or a person, would).
    pub fn set_status(&self, repository: &str, digest: &str, status: ImageStatus, at: Option<i64>) {
        let mut repos = self.repositories.lock().unwrap();
        if let Some((detail, _)) = repos
            .get_mut(repository)
            .and_then(|images| images.get_mut(digest))
        {
            detail.status = status;
            detail.archived_at = at.or(detail.archived_at);
        }
    }

    /// Every ACTIVATING image becomes ACTIVE (ECR finished restoring).
    pub fn settle(&self) {
        for images in self.repositories.lock().unwrap().values_mut() {
            for (detail, _) in images.values_mut() {
                if detail.status == ImageStatus::Activating {
                    detail.status = ImageStatus::Active;
                }
            }
        }
    }

    pub fn digests(&self, repository: &str) -> Vec<String> {
        self.repositories
            .lock()
            .unwrap()
            .get(repository)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }
}

fn no_repository(operation: &'static str, repository: &str) -> ServiceError {
    ServiceError::permanent(
        operation,
        format!("RepositoryNotFoundException: {repository}"),
    )
}

#[async_trait]
impl Registry for MemoryRegistry {
    async fn repositories(&self) -> Result<Vec<String>, ServiceError> {
        Ok(self.repositories.lock().unwrap().keys().cloned().collect())
    }

    async fn images(&self, repository: &str) -> Result<Vec<ImageDetail>, ServiceError> {
        let repos = self.repositories.lock().unwrap();
        let images = repos
            .get(repository)
            .ok_or_else(|| no_repository("DescribeImages", repository))?;
        Ok(images.values().map(|(d, _)| d.clone()).collect())
    }

    async fn manifests(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<String, String>)>, ServiceError> {
        let refuse_archived = *self.archived_manifests_unreadable.lock().unwrap();
        let repos = self.repositories.lock().unwrap();
        let images = repos
            .get(repository)
            .ok_or_else(|| no_repository("BatchGetImage", repository))?;
        Ok(digests
            .iter()
            .map(|d| {
                let found = match images.get(d) {
                    Some((detail, _))
                        if refuse_archived && detail.status != ImageStatus::Active =>
                    {
                        Err("ImageNotFound: the image is archived".to_string())
                    }
                    Some((_, m)) => Ok(m.clone()),
                    None => Err("ImageNotFound".to_string()),
                };
                (d.clone(), found)
            })
            .collect())
    }

    async fn delete(
        &self,
        repository: &str,
        digests: &[String],
    ) -> Result<Vec<(String, Result<(), ServiceError>)>, ServiceError> {
        self.delete_calls
            .lock()
            .unwrap()
            .extend(digests.iter().cloned());
        self.changes
            .lock()
            .unwrap()
            .extend(digests.iter().map(|d| format!("{repository} delete {d}")));
        let failures = self.delete_failures.lock().unwrap().clone();
        let mut repos = self.repositories.lock().unwrap();
        let images = repos
            .get_mut(repository)
            .ok_or_else(|| no_repository("BatchDeleteImage", repository))?;
        let mut out = Vec::with_capacity(digests.len());
        for d in digests {
            if let Some(e) = failures.get(d) {
                out.push((d.clone(), Err(e.clone())));
                continue;
            }
            let referenced = images.values().any(|(_, manifest)| {
                lifecycle_domain::prune::manifest_facts(manifest)
                    .is_ok_and(|f| f.children.is_some_and(|c| c.contains(d)))
            });
            if referenced {
                out.push((
                    d.clone(),
                    Err(ServiceError::retryable(
                        "ECR BatchDeleteImage",
                        "ImageReferencedByManifestList: referenced by an index",
                    )),
                ));
                continue;
            }
            images.remove(d);
            out.push((d.clone(), Ok(())));
        }
        Ok(out)
    }

    async fn set_storage_class(
        &self,
        repository: &str,
        digest: &str,
        class: StorageClass,
    ) -> Result<ImageStatus, ServiceError> {
        const OP: &str = "ECR UpdateImageStorageClass";
        self.storage_calls
            .lock()
            .unwrap()
            .push((digest.to_string(), class));
        self.changes
            .lock()
            .unwrap()
            .push(format!("{repository} {} {digest}", class.as_str()));
        if let Some(e) = self.storage_failures.lock().unwrap().get(digest) {
            return Err(e.clone());
        }
        let now = *self.clock.lock().unwrap();
        let mut repos = self.repositories.lock().unwrap();
        let (detail, _) = repos
            .get_mut(repository)
            .ok_or_else(|| no_repository(OP, repository))?
            .get_mut(digest)
            .ok_or_else(|| {
                ServiceError::permanent(OP, format!("ImageNotFoundException: {digest}"))
            })?;
        detail.status = match (class, detail.status) {
            (StorageClass::Archive, ImageStatus::Active) => {
                detail.archived_at = Some(now);
                ImageStatus::Archived
            }
            (StorageClass::Standard, ImageStatus::Archived) => ImageStatus::Activating,
            (_, status) => {
                return Err(ServiceError::permanent(
                    OP,
                    format!("ImageStorageClassUpdateNotSupportedException: {digest} is {status:?}"),
                ))
            }
        };
        Ok(detail.status)
    }
}

/// What runs, in memory: tests change it between a plan and its re-check.
#[derive(Debug, Default)]
pub struct MemoryDeployments {
    pub uses: Mutex<Vec<ImageUse>>,
}

#[async_trait]
impl Deployments for MemoryDeployments {
    async fn images_in_use(&self, _keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        Ok(self.uses.lock().unwrap().clone())
    }
}

/// One call to a [`WorkspaceTable`], as a [`TableHook`] sees it.
#[derive(Debug, Clone, Copy)]
pub enum TableCall<'a> {
    Get(&'a WorkspaceId),
    PutIfAbsent(&'a Attributes),
    GetMany(&'a [WorkspaceId]),
    Extend(&'a WorkspaceId),
    SetExpiry(&'a WorkspaceId),
    Scan,
    ClaimNotice(&'a WorkspaceId),
    ReleaseNotice(&'a WorkspaceId),
    SetAccessPoint(&'a WorkspaceId),
}

impl TableCall<'_> {
    /// The one workspace the call is about, if it is about one.
    pub fn workspace(&self) -> Option<&str> {
        match self {
            TableCall::Get(id)
            | TableCall::Extend(id)
            | TableCall::SetExpiry(id)
            | TableCall::ClaimNotice(id)
            | TableCall::ReleaseNotice(id)
            | TableCall::SetAccessPoint(id) => Some(id.as_str()),
            TableCall::PutIfAbsent(item) => item.workspace_id(),
            TableCall::GetMany(_) | TableCall::Scan => None,
        }
    }

    /// A write conditioned on what a plan read (the race window a hook may open).
    pub fn is_conditional_write(&self) -> bool {
        matches!(
            self,
            TableCall::Extend(_)
                | TableCall::SetExpiry(_)
                | TableCall::ClaimNotice(_)
                | TableCall::SetAccessPoint(_)
        )
    }
}

/// What the world does around the calls of a [`HookedTable`]: another writer changing a record
/// between a function's read and its write, an injected failure or panic. A hook acts through
/// real calls (the table it is given, or a client of its own), so the table's own semantics
/// decide what the function sees.
#[async_trait]
pub trait TableHook: Send + Sync {
    /// Runs before the call reaches the table. An `Err` is the call's answer, and the table is
    /// not called (a service refusing the call).
    async fn before(
        &self,
        _call: TableCall<'_>,
        _table: &dyn WorkspaceTable,
    ) -> Result<(), ServiceError> {
        Ok(())
    }

    /// Runs after the table answered. An `Err` replaces the answer.
    async fn after(
        &self,
        _call: TableCall<'_>,
        _table: &dyn WorkspaceTable,
    ) -> Result<(), ServiceError> {
        Ok(())
    }
}

/// Any table (the in-memory one, the DynamoDB adapter) with a [`TableHook`] around its calls.
pub struct HookedTable<H> {
    pub inner: Arc<dyn WorkspaceTable>,
    pub hook: H,
}

impl<H: TableHook> HookedTable<H> {
    pub fn around(inner: Arc<dyn WorkspaceTable>, hook: H) -> Arc<Self> {
        Arc::new(Self { inner, hook })
    }

    async fn call<T, F>(&self, call: TableCall<'_>, answer: F) -> Result<T, ServiceError>
    where
        F: std::future::Future<Output = Result<T, ServiceError>> + Send,
    {
        self.hook.before(call, self.inner.as_ref()).await?;
        let answer = answer.await;
        self.hook.after(call, self.inner.as_ref()).await?;
        answer
    }
}

#[async_trait]
impl<H: TableHook> WorkspaceTable for HookedTable<H> {
    async fn get(&self, id: &WorkspaceId) -> Result<Option<Attributes>, ServiceError> {
        self.call(TableCall::Get(id), self.inner.get(id)).await
    }

    async fn put_if_absent(&self, record: Attributes) -> Result<bool, ServiceError> {
        let call = TableCall::PutIfAbsent(&record);
        self.hook.before(call, self.inner.as_ref()).await?;
        let answer = self.inner.put_if_absent(record.clone()).await;
        self.hook
            .after(TableCall::PutIfAbsent(&record), self.inner.as_ref())
            .await?;
        answer
    }

    async fn get_many(&self, ids: &[WorkspaceId]) -> Result<Vec<Attributes>, ServiceError> {
        self.call(TableCall::GetMany(ids), self.inner.get_many(ids))
            .await
    }

    async fn extend(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last_activity_at: i64,
        expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let answer = self
            .inner
            .extend(id, observed, last_activity_at, expires_at);
        self.call(TableCall::Extend(id), answer).await
    }

    async fn set_expiry(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: Option<i64>,
    ) -> Result<bool, ServiceError> {
        let answer = self.inner.set_expiry(id, observed, expires_at);
        self.call(TableCall::SetExpiry(id), answer).await
    }

    async fn scan(&self, expiring: Option<(i64, i64)>) -> Result<Vec<Attributes>, ServiceError> {
        self.call(TableCall::Scan, self.inner.scan(expiring)).await
    }

    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        expires_at: i64,
    ) -> Result<bool, ServiceError> {
        let answer = self.inner.claim_notice(id, observed, expires_at);
        self.call(TableCall::ClaimNotice(id), answer).await
    }

    async fn release_notice(&self, id: &WorkspaceId, expires_at: i64) -> Result<(), ServiceError> {
        let answer = self.inner.release_notice(id, expires_at);
        self.call(TableCall::ReleaseNotice(id), answer).await
    }

    async fn set_access_point(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        access_point_id: &str,
    ) -> Result<bool, ServiceError> {
        let answer = self.inner.set_access_point(id, observed, access_point_id);
        self.call(TableCall::SetAccessPoint(id), answer).await
    }
}
