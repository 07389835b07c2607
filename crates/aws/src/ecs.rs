//! ECS: the tasks that use workspaces, and the images tasks, services and task definitions run.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use lifecycle_domain::prune::{ImageUse, InUseKind};
use lifecycle_domain::tasks::{EfsMount, TaskSummary};
use lifecycle_ports::{Deployments, ServiceError, Tasks};

use crate::sdk::{partial_backoff, service_error, PARTIAL_ATTEMPTS};

/// ECS tasks of one cluster.
#[derive(Debug, Clone)]
pub struct EcsTasks {
    client: aws_sdk_ecs::Client,
    cluster: String,
    /// Task definition ARN -> its EFS volumes. A revision never changes, so this lives as long as
    /// the process (warm invocations skip DescribeTaskDefinition).
    #[allow(clippy::type_complexity)]
    mounts:
        std::sync::Arc<std::sync::Mutex<HashMap<String, (Vec<EfsMount>, Vec<(String, String)>)>>>,
}

impl EcsTasks {
    pub fn new(client: aws_sdk_ecs::Client, cluster: impl Into<String>) -> Self {
        Self {
            client,
            cluster: cluster.into(),
            mounts: Default::default(),
        }
    }
}

/// DescribeTasks accepts at most this many task ARNs per call.
const DESCRIBE_TASKS_BATCH: usize = 100;

impl EcsTasks {
    /// Every task that runs or may still run: desired status RUNNING (so PENDING ones too), and
    /// those told to stop whose containers have not stopped yet. Described with tags; any task
    /// the answer lists under `failures` is asked again, and if it still cannot be read the whole
    /// listing fails: a task we could not read may be the one using the workspace.
    async fn described_tasks(&self) -> Result<Vec<aws_sdk_ecs::types::Task>, ServiceError> {
        let mut arns = Vec::new();
        for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
            let mut pages = self
                .client
                .list_tasks()
                .cluster(&self.cluster)
                .desired_status(desired)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| service_error("ECS ListTasks", e))?;
                arns.extend(page.task_arns().iter().cloned());
            }
        }
        arns.sort();
        arns.dedup();
        let mut tasks = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_TASKS_BATCH) {
            tasks.extend(self.describe_all(chunk).await?);
        }
        Ok(tasks)
    }

    /// DescribeTasks for up to 100 ARNs, asking again for the ones answered as `failures`.
    async fn describe_all(
        &self,
        arns: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Task>, ServiceError> {
        let mut pending = arns.to_vec();
        let mut tasks = Vec::with_capacity(arns.len());
        for attempt in 0..PARTIAL_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
            let out = self
                .client
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(pending.clone()))
                .include(TaskField::Tags)
                .send()
                .await
                .map_err(|e| service_error("ECS DescribeTasks", e))?;
            let answered: Vec<&str> = out.tasks().iter().filter_map(|t| t.task_arn()).collect();
            pending.retain(|arn| !answered.contains(&arn.as_str()));
            tasks.extend(out.tasks().iter().cloned());
            if pending.is_empty() {
                return Ok(tasks);
            }
        }
        Err(ServiceError::retryable(
            "ECS DescribeTasks",
            format!(
                "{} task(s) could not be described after {PARTIAL_ATTEMPTS} attempts (first: {})",
                pending.len(),
                pending[0]
            ),
        ))
    }

    /// The EFS volumes of a task definition (cached; a failed read is an error, never "none").
    /// What a task definition says about the workspaces its tasks use: its volumes (EFS, and
    /// host bind mounts, whose file system is unknown) and its containers' environment (a
    /// `WORKSPACE_ID` written into the definition counts like an override). Cached: a revision
    /// never changes. A failed read is an error, never "nothing".
    async fn definition_uses(
        &self,
        task_definition: &str,
    ) -> Result<(Vec<EfsMount>, Vec<(String, String)>), ServiceError> {
        if let Some(m) = self.mounts.lock().unwrap().get(task_definition) {
            return Ok(m.clone());
        }
        let out = self
            .client
            .describe_task_definition()
            .task_definition(task_definition)
            .send()
            .await
            .map_err(|e| service_error("ECS DescribeTaskDefinition", e))?;
        let Some(td) = out.task_definition() else {
            return Err(ServiceError::retryable(
                "ECS DescribeTaskDefinition",
                format!("no task definition in the answer for {task_definition}"),
            ));
        };
        let mut mounts: Vec<EfsMount> = td
            .volumes()
            .iter()
            .filter_map(|v| v.efs_volume_configuration())
            .map(|efs| EfsMount {
                file_system_id: efs.file_system_id().to_string(),
                access_point_id: efs
                    .authorization_config()
                    .and_then(|a| a.access_point_id())
                    .map(str::to_string),
                root_directory: efs.root_directory().map(str::to_string),
            })
            .collect();
        mounts.extend(
            td.volumes()
                .iter()
                .filter_map(|v| v.host()?.source_path())
                .map(|path| EfsMount {
                    file_system_id: String::new(),
                    access_point_id: None,
                    root_directory: Some(path.to_string()),
                }),
        );
        let env: Vec<(String, String)> = td
            .container_definitions()
            .iter()
            .flat_map(|c| c.environment())
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect();
        let uses = (mounts, env);
        self.mounts
            .lock()
            .unwrap()
            .insert(task_definition.to_string(), uses.clone());
        Ok(uses)
    }

    /// The images (and, where ECS reports it, the exact digest) of every active task.
    pub async fn active_task_images(&self) -> Result<Vec<ImageUse>, ServiceError> {
        let tasks = self.described_tasks().await?;
        Ok(tasks
            .iter()
            .filter(|t| t.last_status() != Some("STOPPED"))
            .flat_map(|t| {
                let by = t.task_arn().unwrap_or_default().to_string();
                t.containers().iter().filter_map(move |c| {
                    Some(ImageUse {
                        image: c.image()?.to_string(),
                        digest: c.image_digest().map(str::to_string),
                        kind: InUseKind::InUseTask,
                        by: by.clone(),
                    })
                })
            })
            .collect())
    }
}

#[async_trait]
impl Tasks for EcsTasks {
    async fn active_tasks(&self) -> Result<Vec<TaskSummary>, ServiceError> {
        let mut out = Vec::new();
        for task in self.described_tasks().await? {
            if task.last_status() == Some("STOPPED") {
                continue;
            }
            let mut summary = task_summary(&task);
            if let Some(td) = task.task_definition_arn() {
                let (mounts, env) = self.definition_uses(td).await?;
                summary.efs_mounts = mounts;
                // The definition's environment first: an override of the same name wins at run
                // time, and both are honoured.
                summary.override_env.splice(0..0, env);
            }
            out.push(summary);
        }
        Ok(out)
    }

    async fn describe(
        &self,
        cluster: &str,
        arn: &str,
    ) -> Result<Option<TaskSummary>, ServiceError> {
        let out = self
            .client
            .describe_tasks()
            .cluster(cluster)
            .tasks(arn)
            .include(TaskField::Tags)
            .send()
            .await
            .map_err(|e| service_error("ECS DescribeTasks", e))?;
        described_one(out.tasks(), out.failures())
    }
}

/// The one task a DescribeTasks answer describes. Only `MISSING` means "ECS no longer knows
/// it"; any other failure, or an answer with neither the task nor a failure, is a failed read.
fn described_one(
    tasks: &[aws_sdk_ecs::types::Task],
    failures: &[aws_sdk_ecs::types::Failure],
) -> Result<Option<TaskSummary>, ServiceError> {
    // One ARN was asked for: the task in the answer is that one (by full or short id).
    if let Some(task) = tasks.first() {
        return Ok(Some(task_summary(task)));
    }
    match failures.first() {
        Some(f) if f.reason() == Some("MISSING") => Ok(None),
        Some(f) => Err(ServiceError::retryable(
            "ECS DescribeTasks",
            format!(
                "{}: {}",
                f.reason().unwrap_or("failure"),
                f.detail().unwrap_or_default()
            ),
        )),
        None => Err(ServiceError::retryable(
            "ECS DescribeTasks",
            "the answer has neither the task nor a failure for it",
        )),
    }
}

pub fn task_summary(task: &aws_sdk_ecs::types::Task) -> TaskSummary {
    TaskSummary {
        arn: task.task_arn().unwrap_or_default().to_string(),
        last_status: task.last_status().unwrap_or_default().to_string(),
        tags: task
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect(),
        efs_mounts: Vec::new(),
        override_env: task
            .overrides()
            .map(|o| o.container_overrides())
            .unwrap_or_default()
            .iter()
            .flat_map(|c| c.environment())
            .filter_map(|kv| Some((kv.name()?.to_string(), kv.value()?.to_string())))
            .collect(),
    }
}

/// What ECS runs and is set to run, in every cluster (or only the ones named).
#[derive(Debug, Clone)]
pub struct EcsDeployments {
    client: aws_sdk_ecs::Client,
    clusters: Option<Vec<String>>,
}

impl EcsDeployments {
    pub fn new(client: aws_sdk_ecs::Client) -> Self {
        Self {
            client,
            clusters: None,
        }
    }

    /// Looks only at these clusters: for accounts where the registry serves no other cluster.
    pub fn only_clusters(mut self, clusters: Vec<String>) -> Self {
        self.clusters = Some(clusters);
        self
    }

    /// The images of a task definition's containers. A 200 answer without the task definition
    /// is asked again, then an error: never "it runs nothing".
    async fn task_definition_images(
        &self,
        arn: &str,
        kind: InUseKind,
    ) -> Result<Vec<ImageUse>, ServiceError> {
        for attempt in 1..=PARTIAL_ATTEMPTS {
            let out = self
                .client
                .describe_task_definition()
                .task_definition(arn)
                .send()
                .await
                .map_err(|e| service_error("ECS DescribeTaskDefinition", e))?;
            if let Some(td) = out.task_definition() {
                return Ok(td
                    .container_definitions()
                    .iter()
                    .filter_map(|c| c.image())
                    .map(|image| ImageUse {
                        image: image.to_string(),
                        digest: None,
                        kind,
                        by: arn.to_string(),
                    })
                    .collect());
            }
            if attempt < PARTIAL_ATTEMPTS {
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Err(ServiceError::retryable(
            "ECS DescribeTaskDefinition",
            format!("{arn}: answered without the task definition"),
        ))
    }

    /// Services by ARN, every one of them: those a 200 answer lists under `failures` are asked
    /// again (bounded, with backoff), then the read fails.
    async fn described_services(
        &self,
        cluster: &str,
        arns: &[String],
    ) -> Result<Vec<aws_sdk_ecs::types::Service>, ServiceError> {
        let mut services = Vec::with_capacity(arns.len());
        for chunk in arns.chunks(DESCRIBE_SERVICES_BATCH) {
            let mut unread: Vec<String> = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = self
                    .client
                    .describe_services()
                    .cluster(cluster)
                    .set_services(Some(unread.clone()))
                    .send()
                    .await
                    .map_err(|e| service_error("ECS DescribeServices", e))?;
                for service in out.services() {
                    unread.retain(|a| Some(a.as_str()) != service.service_arn());
                    services.push(service.clone());
                }
                if unread.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    return Err(ServiceError::retryable(
                        "ECS DescribeServices",
                        format!(
                            "{} service(s) not described after {PARTIAL_ATTEMPTS} attempts: {}",
                            unread.len(),
                            ecs_failures(out.failures(), &unread)
                        ),
                    ));
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Ok(services)
    }

    /// What each service revision runs: the image and the digest ECS resolved when it
    /// deployed it (a tag moved since then does not change what the service runs).
    async fn service_revision_images(
        &self,
        arns: &[String],
    ) -> Result<Vec<ImageUse>, ServiceError> {
        let mut uses = Vec::new();
        for chunk in arns.chunks(DESCRIBE_SERVICE_REVISIONS_BATCH) {
            let mut unread: Vec<String> = chunk.to_vec();
            for attempt in 1..=PARTIAL_ATTEMPTS {
                let out = self
                    .client
                    .describe_service_revisions()
                    .set_service_revision_arns(Some(unread.clone()))
                    .send()
                    .await
                    .map_err(|e| service_error("ECS DescribeServiceRevisions", e))?;
                for revision in out.service_revisions() {
                    unread.retain(|a| Some(a.as_str()) != revision.service_revision_arn());
                    uses.extend(service_revision_uses(revision));
                }
                if unread.is_empty() {
                    break;
                }
                if attempt == PARTIAL_ATTEMPTS {
                    return Err(ServiceError::retryable(
                        "ECS DescribeServiceRevisions",
                        format!(
                            "{} revision(s) not described after {PARTIAL_ATTEMPTS} attempts: {}",
                            unread.len(),
                            ecs_failures(out.failures(), &unread)
                        ),
                    ));
                }
                tokio::time::sleep(partial_backoff(attempt)).await;
            }
        }
        Ok(uses)
    }

    /// The newest `keep` ACTIVE revisions of a family. `familyPrefix` matches by prefix and the
    /// service's order is not relied on: every page is read, the family's own revisions kept,
    /// and the newest taken by revision number.
    async fn newest_revisions(
        &self,
        family: &str,
        keep: usize,
    ) -> Result<Vec<String>, ServiceError> {
        let mut pages = self
            .client
            .list_task_definitions()
            .family_prefix(family)
            .status(aws_sdk_ecs::types::TaskDefinitionStatus::Active)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .into_paginator()
            .send();
        let mut own: Vec<(u64, String)> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECS ListTaskDefinitions", e))?;
            for arn in page.task_definition_arns() {
                if let Some((f, revision)) =
                    arn.rsplit('/').next().and_then(|fr| fr.rsplit_once(':'))
                {
                    if f == family {
                        // An ARN whose revision is not a number sorts first: kept, not skipped.
                        own.push((revision.parse().unwrap_or(u64::MAX), arn.clone()));
                    }
                }
            }
        }
        own.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(own.into_iter().take(keep).map(|(_, arn)| arn).collect())
    }
}

/// DescribeServices accepts at most this many services per call.
const DESCRIBE_SERVICES_BATCH: usize = 10;
/// DescribeServiceRevisions accepts at most this many revisions per call.
const DESCRIBE_SERVICE_REVISIONS_BATCH: usize = 20;

fn ecs_failures(failures: &[aws_sdk_ecs::types::Failure], unread: &[String]) -> String {
    let listed: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{} ({})",
                f.arn().unwrap_or("?"),
                f.reason().unwrap_or("no reason")
            )
        })
        .collect();
    if listed.is_empty() {
        format!("left out of the answer: {}", unread.join(", "))
    } else {
        listed.join(", ")
    }
}

/// The images of one service revision, with the digests ECS resolved for them.
pub fn service_revision_uses(revision: &aws_sdk_ecs::types::ServiceRevision) -> Vec<ImageUse> {
    let by = revision
        .service_revision_arn()
        .unwrap_or_default()
        .to_string();
    revision
        .container_images()
        .iter()
        .filter_map(|c| {
            Some(ImageUse {
                image: c.image()?.to_string(),
                digest: c.image_digest().map(str::to_string),
                kind: InUseKind::InUseService,
                by: by.clone(),
            })
        })
        .collect()
}

#[async_trait]
impl Deployments for EcsDeployments {
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let mut uses = Vec::new();
        let mut clusters = self.clusters.clone().unwrap_or_default();
        let mut pages = self.client.list_clusters().into_paginator().send();
        while let Some(page) = pages.next().await.filter(|_| self.clusters.is_none()) {
            clusters.extend(
                page.map_err(|e| service_error("ECS ListClusters", e))?
                    .cluster_arns()
                    .iter()
                    .cloned(),
            );
        }
        for cluster in &clusters {
            let tasks = EcsTasks::new(self.client.clone(), cluster.clone());
            uses.extend(tasks.active_task_images().await?);
            let mut service_arns = Vec::new();
            let mut pages = self
                .client
                .list_services()
                .cluster(cluster)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                service_arns.extend(
                    page.map_err(|e| service_error("ECS ListServices", e))?
                        .service_arns()
                        .iter()
                        .cloned(),
                );
            }
            let services = self.described_services(cluster, &service_arns).await?;
            let mut definitions = BTreeSet::new();
            let mut revisions = BTreeSet::new();
            for service in &services {
                for deployment in service.deployments() {
                    definitions.extend(deployment.task_definition().map(str::to_string));
                }
                definitions.extend(service.task_definition().map(str::to_string));
                revisions.extend(
                    service
                        .current_service_revisions()
                        .iter()
                        .filter_map(|r| r.arn().map(str::to_string)),
                );
            }
            for td in &definitions {
                uses.extend(
                    self.task_definition_images(td, InUseKind::InUseService)
                        .await?,
                );
            }
            // Services that report their revisions (every service deployed since ECS has them)
            // say which digest each revision resolved; the call's failure fails the inventory.
            let revisions: Vec<String> = revisions.into_iter().collect();
            uses.extend(self.service_revision_images(&revisions).await?);
        }
        if keep_revisions > 0 {
            let mut families = Vec::new();
            let mut pages = self
                .client
                .list_task_definition_families()
                .status(aws_sdk_ecs::types::TaskDefinitionFamilyStatus::Active)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                families.extend(
                    page.map_err(|e| service_error("ECS ListTaskDefinitionFamilies", e))?
                        .families()
                        .iter()
                        .cloned(),
                );
            }
            for family in families {
                for arn in self.newest_revisions(&family, keep_revisions).await? {
                    uses.extend(
                        self.task_definition_images(&arn, InUseKind::InUseTaskDefinition)
                            .await?,
                    );
                }
            }
        }
        Ok(uses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecs::types::{Failure, Task};

    #[test]
    fn only_missing_means_no_task() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:task/agents/abc";
        let task = Task::builder().task_arn(arn).last_status("RUNNING").build();
        let failure = |reason: &str| Failure::builder().arn(arn).reason(reason).build();
        assert_eq!(described_one(&[task], &[]).unwrap().unwrap().arn, arn);
        assert_eq!(described_one(&[], &[failure("MISSING")]), Ok(None));
        for answer in [vec![failure("ACCESS_DENIED")], vec![]] {
            let e = described_one(&[], &answer).unwrap_err();
            assert_eq!(e.operation, "ECS DescribeTasks");
        }
        assert!(described_one(&[], &[failure("ACCESS_DENIED")])
            .unwrap_err()
            .message
            .contains("ACCESS_DENIED"));
    }
}
