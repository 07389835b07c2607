//! ecr-pruner: lists every selected repository, builds the set of digests in use, plans with
//! [`lifecycle_domain::prune::plan_repository`], then right before deleting re-reads both and plans
//! again ([`lifecycle_domain::prune::replan_repository`]), deleting only what both plans delete, in
//! waves (indexes before their children, subjects before their referrers) with per-image retries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifecycle_domain::prune::in_use_in;
use lifecycle_domain::prune::manifest_facts;
use lifecycle_domain::prune::plan_repository;
use lifecycle_domain::prune::replan_repository;
use lifecycle_domain::prune::Image;
use lifecycle_domain::prune::ImageUse;
use lifecycle_domain::prune::ManifestFacts;
use lifecycle_domain::prune::PrunePolicy;
use lifecycle_domain::prune::RepoPlan;
use lifecycle_domain::prune::Subject;
use lifecycle_domain::prune::Verdict;
use lifecycle_domain::reasons::Action;
use lifecycle_ports::Deployments;
use lifecycle_ports::Registry;
use lifecycle_ports::ServiceError;
use lifecycle_runtime::config::ConfigError;
use lifecycle_runtime::config::Env;
use lifecycle_runtime::observe::emit_metrics;
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};
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

impl Function for Pruner {
    const VARS: &'static [&'static str] = Settings::VARS;

    type Output = PruneSummary;
    type Error = PruneError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let settings = Settings::from(env)?;
        Ok(Self::new(
            aws.registry(),
            aws.deployments(settings.ecs_clusters.as_deref()),
            settings,
        ))
    }

    /// Any event runs the pruner (the daily schedule's, or a manual invoke).
    async fn handle(
        &self,
        _event: serde_json::Value,
        invocation: Invocation,
    ) -> Result<PruneSummary, PruneError> {
        self.run(invocation.now).await
    }
}

pub struct Pruner {
    pub registry: Arc<dyn Registry>,
    pub deployments: Arc<dyn Deployments>,
    pub settings: Settings,
    /// What each manifest read so far says. A digest is the hash of its manifest, so this
    /// never goes stale: the re-check reads only manifests it has not seen.
    manifests: Mutex<HashMap<String, ManifestFacts>>,
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A listing failed: nothing is deleted, because a failed read must never look like
    /// "nothing is in use".
    #[error("listing failed, nothing was deleted: {0}")]
    Service(#[from] ServiceError),
    /// The re-check of some repositories could not read them: nothing was deleted there (the
    /// others were pruned; the summary says what happened).
    #[error("re-check failed, nothing was deleted in {}: {}", .failed.join(", "), .summary.repositories.iter().filter_map(|r| r.error.as_deref()).collect::<Vec<_>>().join("; "))]
    Recheck {
        failed: Vec<String>,
        summary: Box<PruneSummary>,
    },
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
    /// The re-check could not read the repository: nothing was deleted in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    pub fn new(
        registry: Arc<dyn Registry>,
        deployments: Arc<dyn Deployments>,
        settings: Settings,
    ) -> Self {
        Self {
            registry,
            deployments,
            settings,
            manifests: Mutex::new(HashMap::new()),
        }
    }

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
            plans.push(self.plan_one(&name, &uses, now, None).await?);
        }
        Ok(plans)
    }

    /// Reads a repository and plans it (with `first`: the re-check of that plan). Manifests
    /// the plan needs (indexes, possible referrers it would delete) are read until none is
    /// missing; each image is read at most once, so this ends.
    async fn plan_one(
        &self,
        repository: &str,
        uses: &[ImageUse],
        now: i64,
        first: Option<&RepoPlan>,
    ) -> Result<RepoPlan, ServiceError> {
        let mut images = self.images(repository).await?;
        let rules = self.settings.policy.rules_for(repository);
        loop {
            let in_use = in_use_in(repository, &images, uses);
            let plan = match first {
                None => plan_repository(repository, &images, &in_use, &rules, now),
                Some(first) => replan_repository(first, &images, &in_use, &rules, now),
            };
            if plan.unread_subjects.is_empty() {
                return Ok(plan);
            }
            self.read_manifests(repository, &mut images, &plan.unread_subjects)
                .await?;
        }
    }

    /// A repository's images, with the manifest of every index (and of every image whose
    /// type the registry did not report) read.
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
                subject: d.subject.map_or(Subject::Unknown, Subject::Of),
            })
            .collect();
        // Manifests read before (by the plan this re-checks) are known without a call.
        let known = self.manifests.lock().unwrap().clone();
        for image in images.iter_mut() {
            if let Some(facts) = known.get(&image.digest) {
                image.learn(Ok(facts));
            }
        }
        let needed: Vec<String> = images
            .iter()
            .filter(|i| i.needs_manifest())
            .map(|i| i.digest.clone())
            .collect();
        self.read_manifests(repository, &mut images, &needed)
            .await?;
        Ok(images)
    }

    /// Reads manifests (those not read before) and records what they say in `images`.
    async fn read_manifests(
        &self,
        repository: &str,
        images: &mut [Image],
        digests: &[String],
    ) -> Result<(), ServiceError> {
        let mut read: BTreeMap<String, Result<ManifestFacts, String>> = BTreeMap::new();
        let unseen: Vec<String> = {
            let known = self.manifests.lock().unwrap();
            for d in digests {
                if let Some(facts) = known.get(d) {
                    read.insert(d.clone(), Ok(facts.clone()));
                }
            }
            digests
                .iter()
                .filter(|d| !known.contains_key(*d))
                .cloned()
                .collect()
        };
        if !unseen.is_empty() {
            for (digest, text) in self.registry.manifests(repository, &unseen).await? {
                let facts = text.and_then(|t| manifest_facts(&t));
                if let Ok(f) = &facts {
                    self.manifests
                        .lock()
                        .unwrap()
                        .insert(digest.clone(), f.clone());
                }
                read.insert(digest, facts);
            }
        }
        let wanted: BTreeSet<&str> = digests.iter().map(String::as_str).collect();
        for image in images
            .iter_mut()
            .filter(|i| wanted.contains(i.digest.as_str()))
        {
            match read.get(&image.digest) {
                Some(Ok(facts)) => image.learn(Ok(facts)),
                Some(Err(e)) => image.learn(Err(e)),
                None => image.learn(Err("manifest not returned")),
            }
        }
        Ok(())
    }

    pub async fn run(&self, now: i64) -> Result<PruneSummary, PruneError> {
        let plans = self.plan(now).await?;
        self.apply(plans, now).await
    }

    /// Carries out plans made by [`Pruner::plan`] (the function's own, or the ones `lifecycle
    /// apply` showed): right before deleting, every repository with deletions is read again and
    /// planned again with a fresh in-use set, and only what both plans delete is deleted.
    pub async fn apply(&self, plans: Vec<RepoPlan>, now: i64) -> Result<PruneSummary, PruneError> {
        let dry_run = self.settings.dry_run;
        let mut summary = PruneSummary {
            dry_run,
            ..PruneSummary::default()
        };
        for plan in plans {
            // What is in use is read again right before each repository's deletes: a task that
            // started while earlier repositories were pruned counts.
            let fresh: Option<Vec<ImageUse>> = if dry_run || plan.delete_waves.is_empty() {
                None
            } else {
                Some(
                    self.deployments
                        .images_in_use(self.settings.keep_revisions)
                        .await?,
                )
            };
            let repo = self.execute(plan, fresh.as_deref(), now).await;
            summary.deleted += repo.deleted.values().sum::<usize>();
            summary.bytes_freed += repo.bytes_freed;
            summary.repositories.push(repo);
        }
        let failures = summary
            .repositories
            .iter()
            .map(|r| r.failed.len() + usize::from(r.error.is_some()))
            .sum::<usize>();
        emit_metrics(
            "ecr-pruner",
            &[
                ("ImagesDeleted", summary.deleted as f64, "Count"),
                ("BytesFreed", summary.bytes_freed as f64, "Bytes"),
                ("DeleteFailures", failures as f64, "Count"),
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
        let failed: Vec<String> = summary
            .repositories
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.repository.clone())
            .collect();
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(PruneError::Recheck {
                failed,
                summary: Box::new(summary),
            })
        }
    }

    async fn execute(
        &self,
        plan: RepoPlan,
        fresh_uses: Option<&[ImageUse]>,
        now: i64,
    ) -> RepoSummary {
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
        if let Some(why) = cap {
            for d in &plan.decisions {
                let reason = match d.verdict {
                    Verdict::Keep => d.reason.as_str(),
                    Verdict::Delete => "skipped_cap",
                };
                *out.kept.entry(reason.to_string()).or_default() += 1;
            }
            warn!(repository = %plan.repository, cap = %why, "cap exceeded: deleting nothing here");
            out.cap_exceeded = Some(why);
            return out;
        }
        // The fresh re-check: everything read again, planned again, and only what both plans
        // delete goes (a task started, a tag moved, an index came into use meanwhile).
        let plan = match fresh_uses {
            Some(uses) if !plan.delete_waves.is_empty() => {
                match self
                    .plan_one(&plan.repository, uses, now, Some(&plan))
                    .await
                {
                    Ok(fresh) => fresh,
                    Err(e) => {
                        warn!(repository = %plan.repository, error = %e, "re-check failed: deleting nothing here");
                        for d in &plan.decisions {
                            let reason = match d.verdict {
                                Verdict::Keep => d.reason.as_str(),
                                Verdict::Delete => "skipped_recheck_failed",
                            };
                            *out.kept.entry(reason.to_string()).or_default() += 1;
                        }
                        out.error = Some(format!("{}: {e}", plan.repository));
                        return out;
                    }
                }
            }
            _ => plan,
        };
        out.images = plan.decisions.len();
        for d in plan.decisions.iter().filter(|d| d.verdict == Verdict::Keep) {
            *out.kept.entry(d.reason.as_str().to_string()).or_default() += 1;
        }
        let decision_of: BTreeMap<&str, &lifecycle_domain::prune::Decision> = plan
            .decisions
            .iter()
            .map(|d| (d.digest.as_str(), d))
            .collect();
        // What is not deleted (failed, or skipped for that reason) keeps what must go after it.
        let mut not_deleted: BTreeSet<String> = BTreeSet::new();
        for wave in &plan.delete_waves {
            let mut pending: Vec<String> = Vec::new();
            for digest in wave {
                let blocked = plan
                    .delete_after
                    .get(digest)
                    .into_iter()
                    .flatten()
                    .find(|first| not_deleted.contains(*first));
                if let Some(first) = blocked {
                    warn!(digest = %digest, after = %first, "not deleted: what it belongs to was not deleted");
                    *out.kept
                        .entry("skipped_parent_not_deleted".into())
                        .or_default() += 1;
                    not_deleted.insert(digest.clone());
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
                        .map(|d| (d.clone(), Err(e.clone())))
                        .collect(),
                };
                pending.clear();
                for (digest, result) in results {
                    match result {
                        Ok(()) => {
                            self.record_deleted(&mut out, decision_of[digest.as_str()], false)
                        }
                        Err(e) if e.is_retryable() && attempt < DELETE_ATTEMPTS => {
                            warn!(digest = %digest, error = %e, attempt, "delete failed; retrying");
                            pending.push(digest);
                        }
                        Err(e) => {
                            not_deleted.insert(digest.clone());
                            out.failed.push(Failed {
                                digest,
                                error: e.to_string(),
                            });
                        }
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
        decision: &lifecycle_domain::prune::Decision,
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

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::prune::ImageDetail;
    use lifecycle_domain::prune::InUseKind;
    use lifecycle_domain::prune::INDEX_MEDIA_TYPES;
    use lifecycle_ports::fakes::MemoryDeployments;
    use lifecycle_ports::fakes::MemoryRegistry;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_000 * DAY;
    const REPO: &str = "app";
    const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    fn d(n: u32) -> String {
        format!("sha256:{n:064x}")
    }

    fn put(
        reg: &MemoryRegistry,
        n: u32,
        tags: &[&str],
        age_days: i64,
        manifest: serde_json::Value,
    ) {
        let media_type = manifest["mediaType"]
            .as_str()
            .unwrap_or(MANIFEST)
            .to_string();
        reg.put(
            REPO,
            ImageDetail {
                digest: d(n),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                pushed_at: NOW - age_days * DAY,
                size: 100,
                media_type,
                subject: None,
            },
            &manifest.to_string(),
        );
    }

    fn image(reg: &MemoryRegistry, n: u32, tags: &[&str], age_days: i64) {
        put(
            reg,
            n,
            tags,
            age_days,
            serde_json::json!({"mediaType": MANIFEST, "layers": []}),
        );
    }

    fn index(reg: &MemoryRegistry, n: u32, age_days: i64, children: &[u32]) {
        let manifests: Vec<_> = children
            .iter()
            .map(|c| serde_json::json!({"mediaType": MANIFEST, "digest": d(*c), "size": 1}))
            .collect();
        put(
            reg,
            n,
            &[],
            age_days,
            serde_json::json!({"mediaType": INDEX_MEDIA_TYPES[0], "manifests": manifests}),
        );
    }

    fn pruner(reg: &Arc<MemoryRegistry>, uses: &Arc<MemoryDeployments>) -> Pruner {
        let policy = r#"{"default": {"keepLastTagged": 1, "keepSemverReleases": 0, "protectTags": ["prod-*"], "untaggedMaxAgeDays": 7}}"#;
        let settings = Settings::from(&Env(|k: &str| {
            (k == "PRUNE_POLICY").then(|| policy.to_string())
        }))
        .unwrap();
        Pruner::new(reg.clone(), uses.clone(), settings)
    }

    fn in_use(uses: &MemoryDeployments, digest: &str) {
        uses.uses.lock().unwrap().push(ImageUse {
            image: format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{REPO}@{digest}"),
            digest: None,
            kind: InUseKind::InUseService,
            by: "service/web".into(),
        });
    }

    #[tokio::test]
    async fn an_index_that_comes_into_use_before_the_delete_keeps_its_children() {
        let (reg, uses) = (
            Arc::new(MemoryRegistry::default()),
            Arc::new(MemoryDeployments::default()),
        );
        index(&reg, 1, 30, &[11, 12]);
        image(&reg, 11, &[], 30);
        image(&reg, 12, &[], 30);
        let p = pruner(&reg, &uses);
        let plans = p.plan(NOW).await.unwrap();
        assert_eq!(plans[0].deletes().len(), 3);
        in_use(&uses, &d(1)); // deployed between the plan and the delete
        let summary = p.apply(plans, NOW).await.unwrap();
        assert_eq!(summary.deleted, 0, "{summary:?}");
        assert!(
            reg.delete_calls.lock().unwrap().is_empty(),
            "nothing was even asked"
        );
        assert_eq!(
            summary.repositories[0].kept.get("child_of_kept_index"),
            Some(&2)
        );
    }

    #[tokio::test]
    async fn an_image_tagged_protected_after_the_plan_is_kept() {
        let (reg, uses) = (
            Arc::new(MemoryRegistry::default()),
            Arc::new(MemoryDeployments::default()),
        );
        image(&reg, 1, &["build-1"], 30);
        image(&reg, 2, &["build-2"], 1);
        let p = pruner(&reg, &uses);
        let plans = p.plan(NOW).await.unwrap();
        assert_eq!(plans[0].deletes(), BTreeSet::from([d(1).as_str()]));
        reg.tag(REPO, &d(1), "prod-1"); // promoted between the plan and the delete
        let summary = p.apply(plans, NOW).await.unwrap();
        assert_eq!(summary.deleted, 0, "{summary:?}");
        assert!(reg.digests(REPO).contains(&d(1)));
        assert_eq!(summary.repositories[0].kept.get("protected_tag"), Some(&1));
    }

    #[tokio::test]
    async fn children_of_an_index_whose_delete_failed_are_not_deleted() {
        let (reg, uses) = (
            Arc::new(MemoryRegistry::default()),
            Arc::new(MemoryDeployments::default()),
        );
        index(&reg, 1, 30, &[11, 12]);
        image(&reg, 11, &[], 30);
        image(&reg, 12, &[], 30);
        // A referrer (signature) of a plain image whose delete fails.
        image(&reg, 2, &[], 30);
        put(
            &reg,
            21,
            &[],
            30,
            serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(2), "size": 1}}),
        );
        for n in [1, 2] {
            reg.delete_failures.lock().unwrap().insert(
                d(n),
                ServiceError::permanent("ECR BatchDeleteImage", "InvalidImageDigest: no"),
            );
        }
        let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
        let r = &summary.repositories[0];
        assert_eq!(r.failed.len(), 2, "{r:?}");
        assert_eq!(r.kept.get("skipped_parent_not_deleted"), Some(&3), "{r:?}");
        let calls = reg.delete_calls.lock().unwrap().clone();
        assert_eq!(
            calls,
            vec![d(1), d(2)],
            "asked once each (not retryable), children never"
        );
        assert_eq!(reg.digests(REPO).len(), 5);
    }

    #[tokio::test]
    async fn retryable_delete_failures_are_retried_and_others_are_not() {
        let (reg, uses) = (
            Arc::new(MemoryRegistry::default()),
            Arc::new(MemoryDeployments::default()),
        );
        image(&reg, 1, &[], 30);
        image(&reg, 2, &[], 30);
        reg.delete_failures.lock().unwrap().insert(
            d(1),
            ServiceError::retryable("ECR BatchDeleteImage", "KmsError: busy"),
        );
        let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
        let calls = reg.delete_calls.lock().unwrap().clone();
        assert_eq!(
            calls.iter().filter(|c| **c == d(1)).count(),
            DELETE_ATTEMPTS as usize
        );
        assert_eq!(calls.iter().filter(|c| **c == d(2)).count(), 1);
        assert_eq!(summary.deleted, 1);
        assert_eq!(summary.repositories[0].failed[0].digest, d(1));
    }

    #[tokio::test]
    async fn a_signature_of_a_kept_image_stays_and_of_a_deleted_one_goes() {
        let (reg, uses) = (
            Arc::new(MemoryRegistry::default()),
            Arc::new(MemoryDeployments::default()),
        );
        image(&reg, 1, &[], 30); // in use
        put(
            &reg,
            11,
            &[],
            30,
            serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(1), "size": 1}}),
        );
        image(&reg, 2, &[], 30);
        put(
            &reg,
            21,
            &[],
            1,
            serde_json::json!({"mediaType": MANIFEST, "subject": {"digest": d(2), "size": 1}}),
        );
        in_use(&uses, &d(1));
        let summary = pruner(&reg, &uses).run(NOW).await.unwrap();
        let r = &summary.repositories[0];
        assert_eq!(r.kept.get("referrer_of_kept_image"), Some(&1), "{r:?}");
        assert_eq!(
            r.deleted.get("referrer_of_deleted_image"),
            Some(&1),
            "{r:?}"
        );
        assert_eq!(reg.digests(REPO), vec![d(1), d(11)]);
        let calls = reg.delete_calls.lock().unwrap().clone();
        assert_eq!(calls, vec![d(2), d(21)], "the subject first");
    }
}
