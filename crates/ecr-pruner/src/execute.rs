//! Act on a plan: first every restore of every repository (archived images in use or pinned
//! back to standard storage: safe, not capped, no re-check needed); then per repository, right
//! before archiving and deleting, everything is read again and planned again
//! ([`lifecycle_domain::prune::replan_repository`]), and only what both plans archive is
//! archived and only what both delete goes, in waves (indexes before their children, subjects
//! before their referrers).
//!
//! How a failure decides:
//! - A restore fails: retried like a delete; still failing, it is reported (`failed`, metric
//!   `RestoreFailures`) and the run ends in [`crate::PruneError::Restore`] after everything else.
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
use std::time::{Duration, Instant};

use lifecycle_domain::prune::{Decision, PrunePlan, RepoPlan, StorageClass, Verdict};
use lifecycle_domain::reasons::Action;
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
        self.execute_with_progress(plan, now, None, &Silent).await
    }

    /// [`Pruner::execute`], telling `progress` after each repository: its planned deletions
    /// (done or not) and the bytes freed.
    pub async fn execute_with_progress(
        &self,
        plan: PrunePlan,
        now: i64,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> Result<PruneSummary, PruneError> {
        let dry_run = self.settings.dry_run;
        let mut summary = PruneSummary {
            dry_run,
            ..PruneSummary::default()
        };
        // Restores first, before anything else: an image in use that cannot be pulled is the
        // one thing here that may already be failing a deploy.
        let mut outs: Vec<RepoSummary> = plan.repositories.iter().map(RepoSummary::of).collect();
        for (planned, out) in plan.repositories.iter().zip(outs.iter_mut()) {
            self.restore(planned, out).await;
            progress.advance(planned.restores.len() as u64, 0);
        }
        for (repository, mut out) in plan.repositories.into_iter().zip(outs) {
            let steps = (repository.deletes().len() + repository.archives().len()) as u64;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // Its re-check and changes could outlast the invocation: the next run plans
                // it again. Restores, which come first, are done.
                out.keeps_of(&repository, Some(NotDeleted::StoppedAtDeadline));
                summary.stopped_at_deadline = true;
                progress.advance(steps, 0);
                summary.add(out);
                continue;
            }
            let repo = self.execute_repository(repository, now, out).await;
            progress.advance(steps, repo.bytes_freed);
            summary.add(repo);
        }
        info!(
            deleted = summary.deleted,
            archived = summary.archived,
            restored = summary.restored,
            bytesFreed = summary.bytes_freed,
            dryRun = dry_run,
            "prune done"
        );
        let failed = summary.recheck_failed();
        let restores_failed = summary.restore_failed();
        if !failed.is_empty() {
            Err(PruneError::Recheck {
                failed,
                summary: Box::new(summary),
            })
        } else if !restores_failed.is_empty() {
            Err(PruneError::Restore {
                failed: restores_failed,
                summary: Box::new(summary),
            })
        } else {
            Ok(summary)
        }
    }

    /// The plan's restores, each asked once (retried when it fails retryably). No re-check:
    /// a restore only makes an image pullable again.
    async fn restore(&self, planned: &RepoPlan, out: &mut RepoSummary) {
        let decision_of: BTreeMap<&str, &Decision> = planned
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Restore)
            .map(|d| (d.digest.as_str(), d))
            .collect();
        for digest in &planned.restores {
            let Some(decision) = decision_of.get(digest.as_str()) else {
                error!(digest = %digest, "a restore without its decision: not restored");
                continue;
            };
            if self.settings.dry_run {
                out.restored(decision, true);
                continue;
            }
            match self
                .set_storage_class(&planned.repository, digest, StorageClass::Standard)
                .await
            {
                Ok(()) => out.restored(decision, false),
                Err(e) => {
                    error!(repository = %planned.repository, digest = %digest, error = %e, "restore failed: an image in use stays archived");
                    out.failed.push(Failed {
                        digest: digest.clone(),
                        action: Action::RestoreImage,
                        failure: e.failure,
                        error: e.to_string(),
                    });
                }
            }
        }
    }

    /// One storage-class change, asked again while it fails retryably (up to
    /// [`DELETE_ATTEMPTS`] attempts, with the deletes' backoff).
    async fn set_storage_class(
        &self,
        repository: &str,
        digest: &str,
        class: StorageClass,
    ) -> Result<(), ServiceError> {
        let mut attempt = 1;
        loop {
            match self
                .registry
                .set_storage_class(repository, digest, class)
                .await
            {
                Ok(_) => return Ok(()),
                Err(e) if e.is_retryable() && attempt < DELETE_ATTEMPTS => {
                    warn!(digest = %digest, class = class.as_str(), error = %e, attempt, "storage class change failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * 4u64.pow(attempt - 1))).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn execute_repository(
        &self,
        planned: RepoPlan,
        now: i64,
        mut out: RepoSummary,
    ) -> RepoSummary {
        if let Some(why) = &planned.cap_exceeded {
            warn!(repository = %planned.repository, cap = %why, "cap exceeded: deleting and archiving nothing here");
        }
        if self.settings.dry_run
            || (planned.delete_waves.is_empty() && planned.archive_waves.is_empty())
        {
            out.keeps_of(&planned, None);
            self.archive_waves(&planned, &planned, &mut out).await;
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
        self.archive_waves(&planned, &fresh, &mut out).await;
        self.delete_waves(&planned, &fresh, &mut out).await;
        out
    }

    /// Archives `fresh`'s archive waves, each image only if `planned` archives it too, and
    /// none whose index or subject was not archived (an index never stays pullable with a
    /// child archived).
    async fn archive_waves(&self, planned: &RepoPlan, fresh: &RepoPlan, out: &mut RepoSummary) {
        let dry_run = self.settings.dry_run;
        let shown = planned.archives();
        let decision_of: BTreeMap<&str, &Decision> = fresh
            .decisions
            .iter()
            .filter(|d| d.verdict == Verdict::Archive)
            .map(|d| (d.digest.as_str(), d))
            .collect();
        let mut not_archived: BTreeSet<&str> = BTreeSet::new();
        for wave in &fresh.archive_waves {
            for digest in wave {
                if !shown.contains(digest.as_str()) {
                    error!(digest = %digest, "not in the plan: not archived");
                    not_archived.insert(digest);
                    continue;
                }
                let blocked = fresh
                    .archive_after
                    .get(digest)
                    .into_iter()
                    .flatten()
                    .find(|first| not_archived.contains(first.as_str()));
                if let Some(first) = blocked {
                    warn!(digest = %digest, after = %first, "not archived: what it belongs to was not archived");
                    out.keep(NotDeleted::SkippedParentNotDeleted.as_str());
                    not_archived.insert(digest);
                    continue;
                }
                let decision = decision_of[digest.as_str()];
                if dry_run {
                    out.archived(decision, true);
                    continue;
                }
                match self
                    .set_storage_class(&fresh.repository, digest, StorageClass::Archive)
                    .await
                {
                    Ok(()) => out.archived(decision, false),
                    Err(e) => {
                        not_archived.insert(digest);
                        out.failed.push(Failed {
                            digest: digest.clone(),
                            action: Action::ArchiveImage,
                            failure: e.failure,
                            error: e.to_string(),
                        });
                    }
                }
            }
        }
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
                                action: Action::DeleteImage,
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
