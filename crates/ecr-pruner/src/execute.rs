//! Act on a plan: per repository, right before deleting, everything is read again and planned
//! again ([`lifecycle_domain::prune::replan_repository`]), and only what both plans delete goes,
//! in waves (indexes before their children, subjects before their referrers).
//!
//! How a failure decides:
//! - The re-check of a repository (what is in use, its images, its manifests) fails, whatever
//!   the kind: nothing is deleted in it (`skipped_recheck_failed`), the others go on, and the run
//!   ends in [`crate::PruneError::Recheck`] with the summary.
//! - A delete fails `Retryable` (throttled, `ImageReferencedByManifestList` while the index
//!   deleted a wave before is still visible): the same delete is asked again, up to
//!   [`DELETE_ATTEMPTS`] times with a backoff.
//! - A delete fails `Permanent` or `Conflict`: not asked again (the same call would get the same
//!   answer, or the world changed and only a fresh read may decide again, which the next run's
//!   plan is). It is reported in `failed`, and what must go after it stays.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use lifecycle_domain::prune::{Decision, PrunePlan, RepoPlan, Verdict};
use lifecycle_ports::ServiceError;
use lifecycle_runtime::progress::{Progress, Silent};
use tracing::{error, info, warn};

use crate::report::{Failed, NotDeleted, PruneSummary, RepoSummary};
use crate::{PruneError, Pruner};

/// Attempts of one image's delete when it fails retryably.
pub const DELETE_ATTEMPTS: u32 = 3;

impl Pruner {
    /// Carries out `plan` (made by [`Pruner::plan`], shown or not). Right before each
    /// repository's deletes, what is in use and the repository are read again and planned again:
    /// only what both plans delete is deleted, so an image that came into use, was promoted, or
    /// is no longer what was planned stays, and an image the plan kept is never deleted (even if
    /// it has become deletable since: that waits for the next plan). A dry run (`DRY_RUN`)
    /// reports the plan's deletes without the re-check and without deleting.
    pub async fn execute(&self, plan: PrunePlan, now: i64) -> Result<PruneSummary, PruneError> {
        self.execute_with_progress(plan, now, &Silent).await
    }

    /// [`Pruner::execute`], telling `progress` after each repository: its planned deletions
    /// (done or not) and the bytes freed.
    pub async fn execute_with_progress(
        &self,
        plan: PrunePlan,
        now: i64,
        progress: &dyn Progress,
    ) -> Result<PruneSummary, PruneError> {
        let dry_run = self.settings.dry_run;
        let mut summary = PruneSummary {
            dry_run,
            ..PruneSummary::default()
        };
        for repository in plan.repositories {
            let steps = repository.deletes().len() as u64;
            let repo = self.execute_repository(repository, now).await;
            progress.advance(steps, repo.bytes_freed);
            summary.add(repo);
        }
        info!(
            deleted = summary.deleted,
            bytesFreed = summary.bytes_freed,
            dryRun = dry_run,
            "prune done"
        );
        let failed = summary.recheck_failed();
        if failed.is_empty() {
            Ok(summary)
        } else {
            Err(PruneError::Recheck {
                failed,
                summary: Box::new(summary),
            })
        }
    }

    async fn execute_repository(&self, planned: RepoPlan, now: i64) -> RepoSummary {
        let mut out = RepoSummary::of(&planned);
        if let Some(why) = &planned.cap_exceeded {
            warn!(repository = %planned.repository, cap = %why, "cap exceeded: deleting nothing here");
        }
        if self.settings.dry_run || planned.delete_waves.is_empty() {
            out.keeps_of(&planned, None);
            self.delete_waves(&planned, &planned, &mut out).await;
            return out;
        }
        // The fresh re-check: everything read again, planned again, and only what both plans
        // delete goes (a task started, a tag moved, an index came into use meanwhile).
        let fresh = match self.recheck(&planned, now).await {
            Ok(fresh) => fresh,
            Err(e) => {
                warn!(repository = %planned.repository, error = %e, "re-check failed: deleting nothing here");
                out.keeps_of(&planned, Some(NotDeleted::SkippedRecheckFailed));
                out.error = Some(format!("{}: {e}", planned.repository));
                return out;
            }
        };
        out.images = fresh.decisions.len();
        out.cap_exceeded = fresh.cap_exceeded.clone();
        out.keeps_of(&fresh, None);
        self.delete_waves(&planned, &fresh, &mut out).await;
        out
    }

    /// What is in use now, and the repository planned again against `planned`.
    async fn recheck(&self, planned: &RepoPlan, now: i64) -> Result<RepoPlan, ServiceError> {
        // Read again right before each repository's deletes: a task that started while earlier
        // repositories were pruned counts.
        let uses = self
            .deployments
            .images_in_use(self.settings.keep_revisions)
            .await?;
        let uses = lifecycle_domain::prune::UseIndex::new(&uses);
        self.plan_repository(&planned.repository, &uses, now, Some(planned))
            .await
    }

    /// Deletes `fresh`'s waves, each image only if `planned` deletes it too.
    async fn delete_waves(&self, planned: &RepoPlan, fresh: &RepoPlan, out: &mut RepoSummary) {
        let dry_run = self.settings.dry_run;
        let shown = planned.deletes();
        let decision_of: BTreeMap<&str, &Decision> = fresh
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Delete)
            .map(|d| (d.digest.as_str(), d))
            .collect();
        // What is not deleted (failed, or skipped for that reason) keeps what must go after it.
        let mut not_deleted: BTreeSet<String> = BTreeSet::new();
        for wave in &fresh.delete_waves {
            let mut pending: Vec<String> = Vec::new();
            for digest in wave {
                if !shown.contains(digest.as_str()) {
                    // The re-check deletes only what the plan deletes; an image the plan kept
                    // is never deleted, whatever path led here.
                    error!(digest = %digest, "not in the plan: not deleted");
                    not_deleted.insert(digest.clone());
                    continue;
                }
                let blocked = fresh
                    .delete_after
                    .get(digest)
                    .into_iter()
                    .flatten()
                    .find(|first| not_deleted.contains(*first));
                if let Some(first) = blocked {
                    warn!(digest = %digest, after = %first, "not deleted: what it belongs to was not deleted");
                    out.keep(NotDeleted::SkippedParentNotDeleted.as_str());
                    not_deleted.insert(digest.clone());
                } else {
                    pending.push(digest.clone());
                }
            }
            if dry_run {
                for digest in pending {
                    out.deleted(decision_of[digest.as_str()], true);
                }
                continue;
            }
            for attempt in 1..=DELETE_ATTEMPTS {
                if pending.is_empty() {
                    break;
                }
                let results = match self.registry.delete(&fresh.repository, &pending).await {
                    Ok(results) => results,
                    Err(e) => pending
                        .iter()
                        .map(|d| (d.clone(), Err(e.clone())))
                        .collect(),
                };
                pending.clear();
                for (digest, result) in results {
                    match result {
                        Ok(()) => out.deleted(decision_of[digest.as_str()], false),
                        Err(e) if e.is_retryable() && attempt < DELETE_ATTEMPTS => {
                            warn!(digest = %digest, error = %e, attempt, "delete failed; retrying");
                            pending.push(digest);
                        }
                        Err(e) => {
                            not_deleted.insert(digest.clone());
                            out.failed.push(Failed {
                                digest,
                                failure: e.failure,
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
    }
}
