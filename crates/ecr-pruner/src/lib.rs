//! ecr-pruner: lists every selected repository, builds the set of digests in use, plans with
//! [`lifecycle_core::prune::plan_repository`], re-checks what is in use, and deletes in waves
//! (indexes before their children) with per-image retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use lifecycle_core::config::{ConfigError, Env};
use lifecycle_core::observe::{emit_metrics, Action};
use lifecycle_core::ports::{Deployments, ImageUse, Registry, ServiceError};
use lifecycle_core::prune::{
    in_use_in, index_children, plan_repository, Image, PrunePolicy, RepoPlan, Verdict,
};
use serde::Serialize;
use tracing::{info, warn};

#[derive(Debug, Clone)]
pub struct Settings {
    /// `ECR_REPOSITORIES`: names or globs, comma-separated (default `*`).
    pub repositories: Vec<glob::Pattern>,
    pub policy: PrunePolicy,
    /// `KEEP_TASK_DEFINITION_REVISIONS`: ACTIVE revisions per family whose images count as in use.
    pub keep_revisions: usize,
    pub max_actions: usize,
    pub max_action_percent: u32,
    pub dry_run: bool,
    /// `ECS_CLUSTERS`: only these clusters count for "in use" (default: every cluster).
    pub ecs_clusters: Option<Vec<String>>,
}

impl Settings {
    /// The variables the pruner reads.
    pub const VARS: &'static [&'static str] = &[
        "ECR_REPOSITORIES",
        "PRUNE_POLICY",
        "KEEP_TASK_DEFINITION_REVISIONS",
        "MAX_ACTIONS",
        "MAX_ACTION_PERCENT",
        "DRY_RUN",
        "ECS_CLUSTERS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let err = |var: &'static str, problem: String| ConfigError { var, problem };
        let repositories = env
            .get("ECR_REPOSITORIES")?
            .unwrap_or_else(|| "*".into())
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|p| {
                glob::Pattern::new(p).map_err(|e| err("ECR_REPOSITORIES", format!("{p:?}: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let policy = match env.get("PRUNE_POLICY")? {
            Some(text) => {
                PrunePolicy::from_json(&text).map_err(|e| err("PRUNE_POLICY", e.to_string()))?
            }
            None => PrunePolicy::default(),
        };
        Ok(Self {
            repositories,
            policy,
            keep_revisions: env.number("KEEP_TASK_DEFINITION_REVISIONS", 5, 0..=100)?,
            max_actions: env.number("MAX_ACTIONS", 1000, 0..=1_000_000)?,
            max_action_percent: env.number("MAX_ACTION_PERCENT", 100, 0..=100)?,
            dry_run: env.bool("DRY_RUN", false)?,
            ecs_clusters: env.get("ECS_CLUSTERS")?.map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            }),
        })
    }
}

impl Settings {
    /// The ECS inventory these settings ask for (every cluster unless `ECS_CLUSTERS` names some).
    pub fn inventory(&self, client: aws_sdk_ecs::Client) -> lifecycle_core::aws::EcsDeployments {
        let inventory = lifecycle_core::aws::EcsDeployments::new(client);
        match &self.ecs_clusters {
            Some(clusters) => inventory.only_clusters(clusters.clone()),
            None => inventory,
        }
    }
}

pub struct Pruner {
    pub registry: Arc<dyn Registry>,
    pub deployments: Arc<dyn Deployments>,
    pub settings: Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A listing failed: nothing is deleted, because a failed read must never look like
    /// "nothing is in use".
    #[error("listing failed, nothing was deleted: {0}")]
    Service(#[from] ServiceError),
}

impl From<PruneError> for lambda_runtime::Diagnostic {
    fn from(e: PruneError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "PruneFailed".into(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSummary {
    pub repository: String,
    pub images: usize,
    pub kept: BTreeMap<String, usize>,
    pub deleted: BTreeMap<String, usize>,
    pub bytes_freed: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_exceeded: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub digest: String,
    pub error: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneSummary {
    pub dry_run: bool,
    pub repositories: Vec<RepoSummary>,
    pub deleted: usize,
    pub bytes_freed: u64,
}

/// Per-image retries of a failed delete (throttled or still referenced a moment ago).
const DELETE_ATTEMPTS: u32 = 3;

impl Pruner {
    fn selected(&self, name: &str) -> bool {
        self.settings.repositories.iter().any(|p| p.matches(name))
    }

    /// Lists and plans every selected repository. Reads only.
    pub async fn plan(&self, now: i64) -> Result<Vec<RepoPlan>, PruneError> {
        let uses = self
            .deployments
            .images_in_use(self.settings.keep_revisions)
            .await?;
        let mut names: Vec<String> = self
            .registry
            .repositories()
            .await?
            .into_iter()
            .filter(|n| self.selected(n))
            .collect();
        names.sort();
        let mut plans = Vec::with_capacity(names.len());
        for name in names {
            let images = self.images(&name).await?;
            let in_use = in_use_in(&name, &images, &uses);
            let rules = self.settings.policy.rules_for(&name);
            plans.push(plan_repository(&name, &images, &in_use, &rules, now));
        }
        Ok(plans)
    }

    /// A repository's images with the children of every index read from its manifest.
    async fn images(&self, repository: &str) -> Result<Vec<Image>, ServiceError> {
        let details = self.registry.images(repository).await?;
        let mut images: Vec<Image> = details
            .into_iter()
            .map(|d| Image {
                digest: d.digest,
                tags: d.tags,
                pushed_at: d.pushed_at,
                size: d.size,
                media_type: d.media_type,
                manifests: None,
            })
            .collect();
        let indexes: Vec<String> = images
            .iter()
            .filter(|i| i.is_index())
            .map(|i| i.digest.clone())
            .collect();
        if !indexes.is_empty() {
            let manifests: BTreeMap<String, Result<String, String>> = self
                .registry
                .manifests(repository, &indexes)
                .await?
                .into_iter()
                .collect();
            for image in images.iter_mut().filter(|i| i.is_index()) {
                let children = match manifests.get(&image.digest) {
                    Some(Ok(text)) => index_children(text),
                    Some(Err(e)) => Err(e.clone()),
                    None => Err("manifest not returned".into()),
                };
                image.manifests = Some(children);
            }
        }
        Ok(images)
    }

    pub async fn run(&self, now: i64) -> Result<PruneSummary, PruneError> {
        let plans = self.plan(now).await?;
        let dry_run = self.settings.dry_run;
        // The fresh re-check: what is in use right before deleting (a task may have started).
        let fresh: Vec<ImageUse> = if dry_run || plans.iter().all(|p| p.delete_waves.is_empty()) {
            Vec::new()
        } else {
            self.deployments
                .images_in_use(self.settings.keep_revisions)
                .await?
        };
        let mut summary = PruneSummary {
            dry_run,
            ..PruneSummary::default()
        };
        for plan in plans {
            let repo = self.execute(plan, &fresh).await;
            summary.deleted += repo.deleted.values().sum::<usize>();
            summary.bytes_freed += repo.bytes_freed;
            summary.repositories.push(repo);
        }
        emit_metrics(
            "ecr-pruner",
            &[
                ("ImagesDeleted", summary.deleted as f64, "Count"),
                ("BytesFreed", summary.bytes_freed as f64, "Bytes"),
                (
                    "DeleteFailures",
                    summary
                        .repositories
                        .iter()
                        .map(|r| r.failed.len())
                        .sum::<usize>() as f64,
                    "Count",
                ),
                (
                    "CapExceeded",
                    summary
                        .repositories
                        .iter()
                        .filter(|r| r.cap_exceeded.is_some())
                        .count() as f64,
                    "Count",
                ),
            ],
        );
        info!(
            deleted = summary.deleted,
            bytesFreed = summary.bytes_freed,
            dryRun = dry_run,
            "prune done"
        );
        Ok(summary)
    }

    async fn execute(&self, plan: RepoPlan, fresh_uses: &[ImageUse]) -> RepoSummary {
        let dry_run = self.settings.dry_run;
        let mut out = RepoSummary {
            repository: plan.repository.clone(),
            images: plan.decisions.len(),
            ..RepoSummary::default()
        };
        let deletes = plan
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .count();
        let cap = if deletes > self.settings.max_actions {
            Some(format!(
                "{deletes} deletions exceed MAX_ACTIONS={}",
                self.settings.max_actions
            ))
        } else if deletes * 100 > plan.decisions.len() * self.settings.max_action_percent as usize {
            Some(format!(
                "{deletes} of {} images exceed MAX_ACTION_PERCENT={}",
                plan.decisions.len(),
                self.settings.max_action_percent
            ))
        } else {
            None
        };
        for d in &plan.decisions {
            if d.verdict == Verdict::Keep || cap.is_some() {
                let reason = if d.verdict == Verdict::Keep {
                    d.reason.as_str()
                } else {
                    "skipped_cap"
                };
                *out.kept.entry(reason.to_string()).or_default() += 1;
            }
        }
        if let Some(why) = cap {
            warn!(repository = %plan.repository, cap = %why, "cap exceeded: deleting nothing here");
            out.cap_exceeded = Some(why);
            return out;
        }
        let decision_of: BTreeMap<&str, &lifecycle_core::prune::Decision> = plan
            .decisions
            .iter()
            .map(|d| (d.digest.as_str(), d))
            .collect();
        // Anything that came into use since the plan was made is kept after all.
        let images: Vec<Image> = plan
            .decisions
            .iter()
            .map(|d| Image {
                digest: d.digest.clone(),
                tags: d.tags.clone(),
                pushed_at: 0,
                size: d.size,
                media_type: String::new(),
                manifests: None,
            })
            .collect();
        let now_in_use = in_use_in(&plan.repository, &images, fresh_uses);
        for wave in &plan.delete_waves {
            let mut pending: Vec<String> = Vec::new();
            for digest in wave {
                if let Some(kind) = now_in_use.get(digest) {
                    *out.kept.entry(kind.as_str().to_string()).or_default() += 1;
                    warn!(digest = %digest, "came into use since planning; kept");
                } else {
                    pending.push(digest.clone());
                }
            }
            if dry_run {
                for digest in pending {
                    self.record_deleted(&mut out, decision_of[digest.as_str()], true);
                }
                continue;
            }
            for attempt in 1..=DELETE_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let results = match self.registry.delete(&plan.repository, &pending).await {
                    Ok(results) => results,
                    Err(e) => pending
                        .iter()
                        .map(|d| (d.clone(), Err(e.to_string())))
                        .collect(),
                };
                pending.clear();
                for (digest, result) in results {
                    match result {
                        Ok(()) => {
                            self.record_deleted(&mut out, decision_of[digest.as_str()], false)
                        }
                        Err(e) if attempt < DELETE_ATTEMPTS => {
                            warn!(digest = %digest, error = %e, attempt, "delete failed; retrying");
                            pending.push(digest);
                        }
                        Err(e) => out.failed.push(Failed { digest, error: e }),
                    }
                }
                if !pending.is_empty() {
                    tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                }
            }
        }
        out
    }

    fn record_deleted(
        &self,
        out: &mut RepoSummary,
        decision: &lifecycle_core::prune::Decision,
        dry_run: bool,
    ) {
        *out.deleted
            .entry(decision.reason.as_str().to_string())
            .or_default() += 1;
        out.bytes_freed += decision.size;
        // The image's own audit line: same target and shape as the workspace ones.
        tracing::info!(
            target: "audit",
            repository = %out.repository,
            digest = %decision.digest,
            tags = %decision.tags.join(","),
            action = Action::DeleteImage.as_str(),
            reason = decision.reason.as_str(),
            dryRun = dry_run,
            bytes = decision.size,
            "audit"
        );
    }
}
