//! The tasks that use workspaces: running, pending and stopping tasks with their tags,
//! environment and EFS mounts.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_ecs::types::{DesiredStatus, TaskField};
use lifecycle_domain::prune::{ImageUse, InUseKind};
use lifecycle_domain::tasks::{EfsMount, TaskSummary};
use lifecycle_ports::{ActiveTasks, ServiceError, Tasks};

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
            let mut more = false;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| service_error("ECS ListTasks", e))?;
                more = crate::sdk::names_next(page.next_token());
                arns.extend(page.task_arns().iter().cloned());
            }
            crate::sdk::listing_complete("ECS ListTasks", more)?;
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

    async fn active_tasks_for_liveness(&self) -> Result<ActiveTasks, ServiceError> {
        let mut out = ActiveTasks::default();
        for task in self.described_tasks().await? {
            if task.last_status() == Some("STOPPED") {
                continue;
            }
            let mut summary = task_summary(&task);
            if let Some(td) = task.task_definition_arn() {
                match self.definition_uses(td).await {
                    Ok((mounts, env)) => {
                        summary.efs_mounts = mounts;
                        summary.override_env.splice(0..0, env);
                    }
                    // Its tags and overrides still name workspaces; what its definition
                    // would add is reported unread.
                    Err(e) => out.unread.push((summary.arn.clone(), e)),
                }
            }
            out.tasks.push(summary);
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
