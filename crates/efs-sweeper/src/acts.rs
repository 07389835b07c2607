//! One planned action each, after its fresh re-checks: what was done, or why not. The acts
//! themselves are in [`trash`] (the file system) and [`access_point`] (EFS access points).

use std::time::Instant;

use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::{
    audit_subject, describe, finish_eligible, purge_eligible, Planned, SweepReason, SweepTarget,
};
use lifecycle_fs::{FsError, MoveOutcome};
use lifecycle_ports::{Failure, ServiceError};
use lifecycle_runtime::observe::Audit;

use crate::report::Unfinished;
use crate::Sweeper;

mod access_point;
mod archive;
mod trash;

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
    #[error(transparent)]
    Archive(#[from] lifecycle_fs::archive::ArchiveError),
    /// A name in the plan that does not parse (a planner's plan never has one).
    #[error("{0}")]
    Invalid(String),
}

impl ActError {
    /// The service failure's kind; `None` for the file system and the rest.
    pub(crate) fn failure(&self) -> Option<Failure> {
        match self {
            ActError::Service(e) => Some(e.failure),
            ActError::Archive(lifecycle_fs::archive::ArchiveError::Service(e)) => Some(e.failure),
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
        SweepTarget::ArchiveTrash { .. } => Action::ArchiveTrashEntry,
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
    // A described trash entry or orphan directory names its workspace and tenant: those go in
    // the line's fields and the path in its resource (a later `.resource` replaces it).
    let subject = audit_subject(what);
    let mut line = Audit::new(subject.workspace, action, reason, dry_run);
    if let Some(resource) = subject.resource {
        line = line.resource(resource);
    }
    match tenant.map(str::to_string).or(subject.tenant) {
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
    /// An action whose reason does not hold now: audited as kept, not done.
    fn not_eligible(&self, planned: &Planned, why: &str) -> Outcome {
        audit(
            &describe(&planned.target),
            None,
            Action::Skip,
            planned.reason,
            self.config.dry_run,
        )
        .error(format!("{why} (re-check); kept"))
        .emit();
        NotDone(Unfinished::NotEligible, Freed::default())
    }

    /// One planned action, after the fresh re-checks its kind needs.
    pub(crate) async fn act(
        &self,
        planned: &Planned,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        let reason = planned.reason;
        match &planned.target {
            SweepTarget::PurgeTrash { entry } | SweepTarget::ArchiveTrash { entry, .. }
                if purge_eligible(entry, now, &self.rules()).is_err() =>
            {
                let why = purge_eligible(entry, now, &self.rules()).unwrap_err();
                Ok(self.not_eligible(planned, &why))
            }
            SweepTarget::FinishStaged { entry } if finish_eligible(entry, now).is_err() => {
                let why = finish_eligible(entry, now).unwrap_err();
                Ok(self.not_eligible(planned, &why))
            }
            SweepTarget::PurgeTrash { entry } => self.purge(entry, reason, deadline).await,
            SweepTarget::ArchiveTrash {
                entry,
                retention_days,
                ..
            } => {
                self.archive_then_purge(entry, *retention_days, reason, deadline)
                    .await
            }
            SweepTarget::FinishStaged { entry } => self.finish_staged(entry, reason).await,
            SweepTarget::TrashOrphan { tenant, workspace } => {
                self.trash_orphan(tenant, workspace, reason, now).await
            }
            SweepTarget::DeleteAccessPoint {
                id,
                workspace,
                listed,
            } => {
                self.delete_access_point(id, workspace, listed, reason, now)
                    .await
            }
            SweepTarget::MarkAccessPoint {
                id,
                workspace,
                since,
            } => self.mark_access_point(id, workspace, *since, reason).await,
            SweepTarget::UnmarkAccessPoint { id, workspace } => {
                self.unmark_access_point(id, workspace, reason).await
            }
        }
    }
}
