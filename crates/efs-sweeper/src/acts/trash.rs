//! Acts on the file system: purge a trash entry, finish a half-move, trash an orphan directory.

use std::time::Instant;

use lifecycle_domain::layout::{fresh_nonce, TrashName};
use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::{describe, SweepReason, SweepTarget};
use lifecycle_domain::{TenantId, WorkspaceId};

use super::{audit, invalid, moved, ActError, Freed, Outcome, Outcome::Done, Outcome::NotDone};
use crate::report::Unfinished;
use crate::Sweeper;

impl Sweeper {
    /// Purges a trash entry, unless it is now the only data of a record.
    pub(super) async fn purge(
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
        self.purge_now(entry, reason, deadline).await
    }

    /// The purge itself, after its re-checks: rename to `.purging+`, then the deleter.
    pub(super) async fn purge_now(
        &self,
        entry: &str,
        reason: SweepReason,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        let what = describe(&SweepTarget::PurgeTrash {
            entry: entry.to_string(),
        });
        let (fs, deleter, entry) = (self.fs.clone(), self.deleter.get()?, entry.to_string());
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
    pub(super) async fn finish_staged(
        &self,
        entry: &str,
        reason: SweepReason,
    ) -> Result<Outcome, ActError> {
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
    pub(super) async fn trash_orphan(
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
        // Its age again, right before the move: a unit may run hours after its plan, and a
        // directory removed and made again since (a workspace being set up) is young again.
        let (fs, t, w) = (self.fs.clone(), tenant.clone(), ws.clone());
        let changed_at = tokio::task::spawn_blocking(move || fs.live_changed_at(&t, &w)).await??;
        let min_age = i64::from(self.settings.orphan_min_age_hours) * 3600;
        if changed_at.is_some_and(|at| at > now.saturating_sub(min_age)) {
            line(Action::Skip, SweepReason::SkippedTooYoung)
                .error("changed since the plan (young again, re-check); kept")
                .emit();
            return Ok(NotDone(Unfinished::Changed, Freed::default()));
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
}
