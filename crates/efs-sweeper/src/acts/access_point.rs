//! Acts on access points: delete an orphan one (after its re-checks), mark one of unknown
//! age, remove a mark.

use lifecycle_domain::access_point::{identify, AccessPointInfo, ORPHAN_SINCE_TAG};
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
        now: i64,
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
        let fresh = match self.access_points.describe(id).await? {
            None => return Ok(NotDone(Unfinished::AlreadyAbsent, Freed::default())),
            Some(fresh) if fresh != *listed => {
                return keep(
                    "its root or tags changed since the listing (re-check); kept",
                    Unfinished::Changed,
                );
            }
            Some(fresh) => fresh,
        };
        // Ours, as the planner decides it, from the fresh description: a workspace access point
        // of this file system, of this workspace (whatever the action was handed).
        let of_this_fs =
            self.config.efs_file_system_id.as_deref() == Some(fresh.file_system_id.as_str());
        let owner = identify(&fresh, &self.config.access_points);
        if !of_this_fs || !owner.as_ref().is_ok_and(|o| o.workspace == ws) {
            let why = match owner {
                Err(why) => why,
                Ok(_) if !of_this_fs => "not on this file system".into(),
                Ok(o) => format!("serves {}, not {workspace}", o.workspace),
            };
            return keep(
                &format!("not this workspace's access point: {why} (re-check); kept"),
                Unfinished::NotEligible,
            );
        }
        // Orphaned long enough by its own tags (the older of `createdAt` and the sweeper's mark,
        // as the planner combines them). Without either, its age came from the file system: it
        // is marked now and deleted by a later run, so no deletion rests on evidence read
        // minutes or hours before.
        let min_age = i64::from(self.settings.orphan_min_age_hours) * 3600;
        let since = match (fresh.created_at(), fresh.orphan_since()) {
            (Some(created), Some(mark)) => Some(created.min(mark)),
            (created, mark) => created.or(mark),
        };
        match since {
            None => {
                if !dry_run {
                    self.access_points
                        .tag(id, ORPHAN_SINCE_TAG, &now.to_string())
                        .await?;
                }
                return keep(
                    "no createdAt tag or mark to date it (re-check): marked now, a later run deletes it",
                    Unfinished::NotEligible,
                );
            }
            Some(at) if at > now.saturating_sub(min_age) => {
                return keep(
                    "orphaned less than ORPHAN_MIN_AGE_HOURS by its tags (re-check); kept",
                    Unfinished::NotEligible,
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

    /// Tags an orphan access point of unknown age with the time it was found, unless its
    /// workspace has a record again (a later run re-checks everything before deleting).
    pub(super) async fn mark_access_point(
        &self,
        id: &str,
        workspace: &str,
        since: i64,
        reason: SweepReason,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let ws = WorkspaceId::parse(workspace).map_err(invalid)?;
        if self.has_record(&ws).await? {
            audit(workspace, None, Action::Skip, reason, dry_run)
                .resource(id)
                .error("a record exists again (re-check); not marked")
                .emit();
            return Ok(NotDone(Unfinished::Recreated, Freed::default()));
        }
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
