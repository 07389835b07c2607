//! Act on a plan: exactly its actions, in its order, each re-checked from fresh reads right
//! before it is taken ([`crate::acts`]); nothing that is not in the plan.
//!
//! How a failure decides (a service call's [`Failure`]; file-system errors are their own kind):
//! - While planning, any failed listing stops the run before anything is decided
//!   ([`crate::SweepError`]): a failed read must never look like "nothing exists".
//! - A re-check or an act that fails leaves its action undone (`not_done`, reason `failed`, with
//!   the failure kind and the error). The run goes on: every other action has its own re-checks.
//!   - `Retryable` (throttling, 5xx, timeouts, after the SDK's own retries) and `Conflict` (the
//!     world changed under the call: a concurrent writer, the file system's lifecycle state):
//!     the action is taken up once more at the end of the run, deadline permitting, from the
//!     start: every re-check read again and decided again, never the same call blindly.
//!   - `Permanent` (access denied, validation): the same call would get the same answer; not
//!     taken up again in this run.
//!   - File-system errors: not taken up again in this run (a purge that stopped part-way keeps
//!     its `.purging+` name, which the next run finishes).
//!
//! Whatever stays undone, the next run plans again from fresh listings.

use std::time::Instant;

use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::{describe, Planned, SweepPlan, SweepReason, SweepTarget};
use lifecycle_ports::Failure;
use lifecycle_runtime::progress::{Progress, Silent};
use tracing::{info, warn};

use crate::acts::{action_of, audit, ActError, Freed, Outcome};
use crate::report::{Done, NotDone, SweepSummary, Unfinished};
use crate::Sweeper;

impl Sweeper {
    /// Carries out exactly `plan` (made by [`Sweeper::plan`], shown or not): its actions in its
    /// order, each after fresh re-checks (a record again, a task using it now, an access point
    /// changed since the listing, a trash entry that is a record's only data). Nothing outside
    /// `plan.actions` is touched: what became an orphan after the plan waits for the next one.
    /// `now` stamps trash entries; an action not started by `deadline` is reported undone. A dry
    /// run (`DRY_RUN`) re-checks and reports without acting.
    pub async fn execute(
        &self,
        plan: SweepPlan,
        now: i64,
        deadline: Option<Instant>,
    ) -> SweepSummary {
        self.execute_with_progress(plan, now, deadline, &Silent)
            .await
    }

    /// [`Sweeper::execute`], telling `progress` after each action (the CLI's progress bar).
    pub async fn execute_with_progress(
        &self,
        plan: SweepPlan,
        now: i64,
        deadline: Option<Instant>,
        progress: &dyn Progress,
    ) -> SweepSummary {
        let started = Instant::now();
        let dry_run = self.config.dry_run;
        for skip in &plan.skipped {
            if skip.reason == SweepReason::SkippedCap {
                audit(&skip.what, None, Action::Skip, skip.reason, dry_run).emit();
            }
        }
        if let Some(why) = &plan.cap_exceeded {
            warn!(cap = %why, "cap exceeded: acting on nothing of that kind");
        }
        let mut summary = SweepSummary {
            dry_run,
            skipped: plan.skipped,
            cap_exceeded: plan.cap_exceeded,
            access_points: plan.access_points,
            ..SweepSummary::default()
        };
        let mut again = Vec::new();
        let mut freed = 0;
        // The bytes the summary gained since the last step.
        let mut step = |summary: &SweepSummary| {
            progress.advance(1, summary.bytes_freed - freed);
            freed = summary.bytes_freed;
        };
        for planned in plan.actions {
            match self.attempt(&planned, now, deadline).await {
                Err(e) if e.failure().is_some_and(|f| f != Failure::Permanent) => {
                    warn!(target = %describe(&planned.target), error = %e, "failed; taken up again at the end of the run");
                    again.push(planned);
                }
                result => {
                    record(&mut summary, planned, result, dry_run);
                    step(&summary);
                }
            }
        }
        for planned in again {
            let result = self.attempt(&planned, now, deadline).await;
            record(&mut summary, planned, result, dry_run);
            step(&summary);
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        info!(
            actions = summary.actions.len(),
            notDone = summary.not_done.len(),
            skipped = summary.skipped.len(),
            capExceeded = summary.cap_exceeded.is_some(),
            bytesFreed = summary.bytes_freed,
            dryRun = dry_run,
            "sweep done"
        );
        summary
    }

    /// One action, unless the deadline has passed.
    async fn attempt(
        &self,
        planned: &Planned,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(Outcome::NotDone(Unfinished::Deadline, Freed::default()));
        }
        self.act(planned, now, deadline).await
    }
}

/// Adds one action's outcome to the summary (a failure is audited here, once).
fn record(
    summary: &mut SweepSummary,
    planned: Planned,
    result: Result<Outcome, ActError>,
    dry_run: bool,
) {
    let Planned { target, reason } = planned;
    let (why, freed, failure, error) = match result {
        Ok(Outcome::Done(freed)) => {
            add_freed(summary, freed);
            summary.actions.push(Done {
                target,
                reason,
                files: freed.files,
                bytes: freed.bytes,
            });
            return;
        }
        Ok(Outcome::NotDone(why, freed)) => (why, freed, None, None),
        Err(e) => {
            let line = match &target {
                // An access point's line names its workspace; the id is the resource.
                SweepTarget::DeleteAccessPoint { id, workspace, .. }
                | SweepTarget::MarkAccessPoint { id, workspace, .. }
                | SweepTarget::UnmarkAccessPoint { id, workspace } => {
                    audit(workspace, None, action_of(&target), reason, dry_run).resource(id)
                }
                _ => audit(
                    &describe(&target),
                    None,
                    action_of(&target),
                    reason,
                    dry_run,
                ),
            };
            line.error(&e).emit();
            (
                Unfinished::Failed,
                Freed::default(),
                e.failure(),
                Some(e.to_string()),
            )
        }
    };
    add_freed(summary, freed);
    if matches!(why, Unfinished::Deadline | Unfinished::StoppedAtDeadline) {
        summary.stopped_at_deadline = true;
    }
    summary.not_done.push(NotDone {
        target,
        reason: why,
        failure,
        error,
        files: freed.files,
        bytes: freed.bytes,
    });
}

fn add_freed(summary: &mut SweepSummary, freed: Freed) {
    summary.files_freed += freed.files.unwrap_or(0);
    summary.bytes_freed += freed.bytes.unwrap_or(0);
}
