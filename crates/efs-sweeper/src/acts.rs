//! One planned action each, after its fresh re-checks: what was done, or why not.

use std::time::Instant;

use lifecycle_domain::access_point::{AccessPointInfo, ORPHAN_SINCE_TAG};
use lifecycle_domain::layout::{fresh_nonce, TrashName};
use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::{describe, Planned, SweepReason, SweepTarget};
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_fs::{FsError, MoveOutcome};
use lifecycle_ports::{Failure, ServiceError};
use lifecycle_runtime::observe::Audit;

use crate::report::Unfinished;
use crate::Sweeper;

/// What a purge freed (nothing for other actions).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Freed {
    pub files: Option<u64>,
    pub bytes: Option<u64>,
}

/// What became of one planned action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Done(Freed),
    NotDone(Unfinished, Freed),
}

use Outcome::{Done, NotDone};

/// Why an action could not be re-checked or taken.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ActError {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("a task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// A name in the plan that does not parse (a planner's plan never has one).
    #[error("{0}")]
    Invalid(String),
}

impl ActError {
    /// The service failure's kind; `None` for the file system and the rest.
    pub(crate) fn failure(&self) -> Option<Failure> {
        match self {
            ActError::Service(e) => Some(e.failure),
            _ => None,
        }
    }
}

fn invalid(e: impl std::fmt::Display) -> ActError {
    ActError::Invalid(e.to_string())
}

pub(crate) fn action_of(target: &SweepTarget) -> Action {
    match target {
        SweepTarget::PurgeTrash { .. } => Action::PurgeTrashEntry,
        SweepTarget::FinishStaged { .. } | SweepTarget::TrashOrphan { .. } => Action::MoveToTrash,
        SweepTarget::DeleteAccessPoint { .. } => Action::DeleteAccessPoint,
        SweepTarget::MarkAccessPoint { .. } => Action::MarkOrphanAccessPoint,
        SweepTarget::UnmarkAccessPoint { .. } => Action::UnmarkAccessPoint,
    }
}

pub(crate) fn audit(
    what: &str,
    tenant: Option<&str>,
    action: Action,
    reason: SweepReason,
    dry_run: bool,
) -> Audit {
    let line = Audit::new(what, action, reason, dry_run);
    match tenant {
        Some(t) => line.tenant(t),
        None => line,
    }
}

fn moved(outcome: &MoveOutcome, absent: &str) -> String {
    match outcome {
        MoveOutcome::Moved { entry } | MoveOutcome::AlreadyInTrash { entry } => {
            entry.display().to_string()
        }
        MoveOutcome::Absent => absent.to_string(),
    }
}

/// `Done` when the thing acted on was there, `AlreadyAbsent` when it was gone.
fn done_if(present: bool) -> Outcome {
    if present {
        Done(Freed::default())
    } else {
        NotDone(Unfinished::AlreadyAbsent, Freed::default())
    }
}

impl Sweeper {
    /// One planned action, after the fresh re-checks its kind needs.
    pub(crate) async fn act(
        &self,
        planned: &Planned,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        let reason = planned.reason;
        match &planned.target {
            SweepTarget::PurgeTrash { entry } => self.purge(entry, reason, deadline).await,
            SweepTarget::FinishStaged { entry } => self.finish_staged(entry, reason).await,
            SweepTarget::TrashOrphan { tenant, workspace } => {
                self.trash_orphan(tenant, workspace, reason, now).await
            }
            SweepTarget::DeleteAccessPoint {
                id,
                workspace,
                listed,
            } => {
                self.delete_access_point(id, workspace, listed, reason)
                    .await
            }
            SweepTarget::MarkAccessPoint {
                id,
                workspace,
                since,
            } => {
                // Harmless (a tag), so no re-check: a later run re-checks before deleting.
                let dry_run = self.config.dry_run;
                let present = dry_run
                    || self
                        .access_points
                        .tag(id, ORPHAN_SINCE_TAG, &since.to_string())
                        .await?;
                audit(
                    workspace,
                    None,
                    Action::MarkOrphanAccessPoint,
                    reason,
                    dry_run,
                )
                .resource(id)
                .emit();
                Ok(done_if(present))
            }
            SweepTarget::UnmarkAccessPoint { id, workspace } => {
                let dry_run = self.config.dry_run;
                let present = dry_run || self.access_points.untag(id, ORPHAN_SINCE_TAG).await?;
                audit(workspace, None, Action::UnmarkAccessPoint, reason, dry_run)
                    .resource(id)
                    .emit();
                Ok(done_if(present))
            }
        }
    }

    /// Purges a trash entry, unless it is now the only data of a record.
    async fn purge(
        &self,
        entry: &str,
        reason: SweepReason,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let what = describe(&SweepTarget::PurgeTrash {
            entry: entry.to_string(),
        });
        if let Some(why) = self.owned_trash_entry(entry).await? {
            audit(&what, None, Action::Skip, reason, dry_run)
                .error(&why)
                .emit();
            return Ok(NotDone(
                Unfinished::RecordExistsWithoutData,
                Freed::default(),
            ));
        }
        if dry_run {
            audit(&what, None, Action::PurgeTrashEntry, reason, true).emit();
            return Ok(Done(Freed::default()));
        }
        let (fs, deleter, entry) = (self.fs.clone(), self.deleter.clone(), entry.to_string());
        let report = tokio::task::spawn_blocking(move || {
            fs.purge_trash_entry_with(Some(&deleter), &entry, deadline)
        })
        .await??;
        let freed = Freed {
            files: Some(report.files),
            bytes: Some(report.bytes),
        };
        let line = audit(&what, None, Action::PurgeTrashEntry, reason, false)
            .freed(report.files, report.bytes);
        if report.complete {
            line.emit();
            Ok(Done(freed))
        } else if report.stopped_at_deadline {
            line.error("stopped at the deadline; the next run finishes it")
                .emit();
            Ok(NotDone(Unfinished::StoppedAtDeadline, freed))
        } else {
            let first = report
                .errors
                .first()
                .map(|e| format!("{}: {}", e.path.display(), e.error));
            line.error(format!(
                "{} entries left: {}",
                report.errors.len(),
                first.unwrap_or_default()
            ))
            .emit();
            Ok(NotDone(Unfinished::Incomplete, freed))
        }
    }

    /// Publishes an abandoned half-move (data and record), or removes its lone record.
    async fn finish_staged(&self, entry: &str, reason: SweepReason) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let what = describe(&SweepTarget::FinishStaged {
            entry: entry.to_string(),
        });
        let name: TrashName = entry.parse().map_err(invalid)?;
        if dry_run {
            audit(&what, None, Action::MoveToTrash, reason, true).emit();
            return Ok(Done(Freed::default()));
        }
        let fs = self.fs.clone();
        let outcome = tokio::task::spawn_blocking(move || fs.finish_staged(&name)).await??;
        audit(&what, None, Action::MoveToTrash, reason, false)
            .resource(moved(
                &outcome,
                "no data had moved; its lone record removed",
            ))
            .emit();
        Ok(Done(Freed::default()))
    }

    /// Moves an orphan directory into the trash, unless a record or a task claims it now.
    async fn trash_orphan(
        &self,
        tenant: &str,
        workspace: &str,
        reason: SweepReason,
        now: i64,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let tenant = TenantId::parse(tenant).map_err(invalid)?;
        let ws = WorkspaceId::parse(workspace).map_err(invalid)?;
        let line =
            |action, reason| audit(workspace, Some(tenant.as_str()), action, reason, dry_run);
        if self.has_record(&ws).await? {
            line(Action::Skip, SweepReason::OrphanNoRecord)
                .error("a record exists again (re-check); kept")
                .emit();
            return Ok(NotDone(Unfinished::Recreated, Freed::default()));
        }
        // A fresh listing right before the move: a task may have started since the plan.
        let users = self.users_now(&tenant, &ws).await?;
        if !users.is_empty() {
            line(Action::Skip, SweepReason::SkippedInUse)
                .resource(users.join(","))
                .emit();
            return Ok(NotDone(Unfinished::SkippedInUse, Freed::default()));
        }
        if dry_run {
            line(Action::MoveToTrash, reason).emit();
            return Ok(Done(Freed::default()));
        }
        let name = TrashName::new(now, tenant.clone(), ws.clone(), fresh_nonce());
        let json = serde_json::to_vec_pretty(
            &serde_json::json!({"deletedAt": now, "reason": reason.as_str(), "item": null}),
        )
        .expect("json serializes");
        let (fs, t, w) = (self.fs.clone(), tenant.clone(), ws.clone());
        let outcome =
            tokio::task::spawn_blocking(move || fs.move_to_trash(&t, &w, &name, &json)).await??;
        line(Action::MoveToTrash, reason)
            .resource(moved(&outcome, "already absent"))
            .emit();
        Ok(Done(Freed::default()))
    }

    /// Deletes an orphan access point, only if it is still exactly what was judged an orphan,
    /// still has no record, and no task uses it.
    async fn delete_access_point(
        &self,
        id: &str,
        workspace: &str,
        listed: &AccessPointInfo,
        reason: SweepReason,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let ws = WorkspaceId::parse(workspace).map_err(invalid)?;
        let keep = |why: &str, unfinished| {
            audit(
                workspace,
                None,
                Action::Skip,
                SweepReason::OrphanAccessPoint,
                dry_run,
            )
            .resource(id)
            .error(why)
            .emit();
            Ok(NotDone(unfinished, Freed::default()))
        };
        if self.has_record(&ws).await? {
            return keep(
                "a record exists again (re-check); kept",
                Unfinished::Recreated,
            );
        }
        // Fresh description: deleted only if it is still exactly what was judged an orphan.
        match self.access_points.describe(id).await? {
            None => return Ok(NotDone(Unfinished::AlreadyAbsent, Freed::default())),
            Some(fresh) if fresh != *listed => {
                return keep(
                    "its root or tags changed since the listing (re-check); kept",
                    Unfinished::Changed,
                );
            }
            Some(_) => {}
        }
        // A fresh listing of the cluster: a task that mounts it, or uses its workspace, keeps it.
        let users = self.access_point_users_now(id, &ws).await?;
        if !users.is_empty() {
            let why = format!("in use by {} (re-check); kept", users.join(","));
            return keep(&why, Unfinished::SkippedInUse);
        }
        let deleted = dry_run || self.access_points.delete(id).await?;
        audit(workspace, None, Action::DeleteAccessPoint, reason, dry_run)
            .resource(id)
            .emit();
        Ok(done_if(deleted))
    }
}
