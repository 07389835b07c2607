//! Acts on access points: delete an orphan one (after its re-checks), mark one of unknown
//! age, remove a mark.

use lifecycle_domain::access_point::{AccessPointInfo, ORPHAN_SINCE_TAG};
use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::SweepReason;
use lifecycle_domain::WorkspaceId;

use super::{audit, done_if, invalid, ActError, Freed, Outcome, Outcome::NotDone};
use crate::report::Unfinished;
use crate::Sweeper;

impl Sweeper {
    /// Deletes an orphan access point, only if it is still exactly what was judged an orphan,
    /// still has no record, and no task uses it.
    pub(super) async fn delete_access_point(
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

    /// Tags an orphan access point of unknown age with the time it was found. Harmless (a tag),
    /// so no re-check: a later run re-checks before deleting.
    pub(super) async fn mark_access_point(
        &self,
        id: &str,
        workspace: &str,
        since: i64,
        reason: SweepReason,
    ) -> Result<Outcome, ActError> {
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

    /// Removes the mark of an access point whose workspace has a record again (only ever delays
    /// a delete, so no re-check).
    pub(super) async fn unmark_access_point(
        &self,
        id: &str,
        workspace: &str,
        reason: SweepReason,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let present = dry_run || self.access_points.untag(id, ORPHAN_SINCE_TAG).await?;
        audit(workspace, None, Action::UnmarkAccessPoint, reason, dry_run)
            .resource(id)
            .emit();
        Ok(done_if(present))
    }
}
