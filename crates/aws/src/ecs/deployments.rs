//! The images ECS runs and is set to run: tasks, service deployments and revisions, and the
//! newest ACTIVE task-definition revisions.

use std::collections::BTreeSet;

use async_trait::async_trait;
use lifecycle_domain::prune::{ImageUse, InUseKind};
use lifecycle_ports::{Deployments, ServiceError};

use super::tasks::EcsTasks;
use crate::sdk::{partial_backoff, service_error, PARTIAL_ATTEMPTS};

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
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECS ListTaskDefinitions", e))?;
            more = crate::sdk::names_next(page.next_token());
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
        // Cut short, the newest revisions (the ones in use) may be the ones left out.
        crate::sdk::listing_complete("ECS ListTaskDefinitions", more)?;
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

/// Clusters (and task-definition families) read at the same time: the inventory is a few calls
/// per cluster, each waiting on ECS, so an account's clusters are read in a few calls' time
/// instead of one after the other (ECS's read rate is far above 8 calls in flight).
const INVENTORY_CONCURRENCY: usize = 8;

impl EcsDeployments {
    /// What one cluster runs (its active tasks) and is set to run (its services' task
    /// definitions and revisions).
    async fn cluster_images(&self, cluster: &str) -> Result<Vec<ImageUse>, ServiceError> {
        let tasks = EcsTasks::new(self.client.clone(), cluster.to_string());
        let (mut uses, services) =
            futures::try_join!(tasks.active_task_images(), self.services(cluster))?;
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
        Ok(uses)
    }

    /// Every service of a cluster, described.
    async fn services(
        &self,
        cluster: &str,
    ) -> Result<Vec<aws_sdk_ecs::types::Service>, ServiceError> {
        let mut service_arns = Vec::new();
        let mut pages = self
            .client
            .list_services()
            .cluster(cluster)
            .into_paginator()
            .send();
        let mut more = false;
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| service_error("ECS ListServices", e))?;
            more = crate::sdk::names_next(page.next_token());
            service_arns.extend(page.service_arns().iter().cloned());
        }
        crate::sdk::listing_complete("ECS ListServices", more)?;
        self.described_services(cluster, &service_arns).await
    }

    /// The images of a family's newest `keep` ACTIVE revisions.
    async fn family_images(
        &self,
        family: &str,
        keep: usize,
    ) -> Result<Vec<ImageUse>, ServiceError> {
        let mut uses = Vec::new();
        for arn in self.newest_revisions(family, keep).await? {
            uses.extend(
                self.task_definition_images(&arn, InUseKind::InUseTaskDefinition)
                    .await?,
            );
        }
        Ok(uses)
    }
}

/// Runs the reads, at most [`INVENTORY_CONCURRENCY`] at a time, and concatenates their results
/// in order; the first failure fails the whole (a partial inventory is never "not in use").
async fn all_of<F>(reads: Vec<F>) -> Result<Vec<ImageUse>, ServiceError>
where
    F: std::future::Future<Output = Result<Vec<ImageUse>, ServiceError>>,
{
    use futures::stream::{self, StreamExt, TryStreamExt};
    let parts: Vec<Vec<ImageUse>> = stream::iter(reads)
        .buffered(INVENTORY_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(parts.into_iter().flatten().collect())
}

#[async_trait]
impl Deployments for EcsDeployments {
    async fn images_in_use(&self, keep_revisions: usize) -> Result<Vec<ImageUse>, ServiceError> {
        let clusters = match &self.clusters {
            // Named clusters: no listing (a ListClusters whose answer is not used).
            Some(clusters) => clusters.clone(),
            None => {
                let mut clusters = Vec::new();
                let mut pages = self.client.list_clusters().into_paginator().send();
                let mut more = false;
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| service_error("ECS ListClusters", e))?;
                    more = crate::sdk::names_next(page.next_token());
                    clusters.extend(page.cluster_arns().iter().cloned());
                }
                crate::sdk::listing_complete("ECS ListClusters", more)?;
                clusters
            }
        };
        let mut uses = all_of(clusters.iter().map(|c| self.cluster_images(c)).collect()).await?;
        if keep_revisions > 0 {
            let mut families = Vec::new();
            let mut pages = self
                .client
                .list_task_definition_families()
                .status(aws_sdk_ecs::types::TaskDefinitionFamilyStatus::Active)
                .into_paginator()
                .send();
            let mut more = false;
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| service_error("ECS ListTaskDefinitionFamilies", e))?;
                more = crate::sdk::names_next(page.next_token());
                families.extend(page.families().iter().cloned());
            }
            crate::sdk::listing_complete("ECS ListTaskDefinitionFamilies", more)?;
            let reads = families
                .iter()
                .map(|f| self.family_images(f, keep_revisions));
            uses.extend(all_of(reads.collect()).await?);
        }
        Ok(uses)
    }
}
