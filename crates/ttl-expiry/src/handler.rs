//! One TTL deletion: fetch (the record again, the tasks), decide
//! ([`lifecycle_domain::expiry::plan_expiry`]), act (put back, trash, delete the access point),
//! with one audit line per action. [`TtlExpiry::handle`] lifts it to a stream batch.

use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::streams::DynamoDbEventResponse;
use lifecycle_domain::expiry::{
    access_point_belongs, expired_by_ttl, plan_expiry, ExpiryFacts, ExpiryPlan,
};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_runtime::batch::Batch;
use lifecycle_runtime::observe::Audit;
use serde_json::Value;
use tracing::{info, Instrument};

use crate::event::{self, EventError, Expired};
use crate::in_use::{InUseCell, FRESH_IN_USE};
use crate::report::{self, Outcome, RecordFailure};
use crate::simulation::DataAt;
use crate::TtlExpiry;

impl TtlExpiry {
    /// Handles one batch. Records of one workspace keep stream order, different workspaces run
    /// concurrently; failed records are returned in `batchItemFailures` (by sequence number) so
    /// Lambda retries them. Malformed and hostile records are audited and dropped.
    pub async fn handle(
        &self,
        event: Value,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<DynamoDbEventResponse, EventError> {
        let dry_run = self.config.dry_run;
        let batch = event::parse(&event, now, dry_run)?;
        let in_use = InUseCell::default();
        self.simulated.clear();
        let report = Batch::new(self.config.record_concurrency, deadline)
            .run(
                batch.expired.into_iter().map(Arc::new).collect(),
                |work| work.workspace.clone(),
                Arc::clone,
                |work| {
                    let span = tracing::info_span!(
                        "record",
                        sequence = work.sequence.as_deref().unwrap_or("?"),
                        workspaceId = %work.workspace,
                    );
                    let in_use = &in_use;
                    async move { self.handle_record(&work, now, in_use).await }.instrument(span)
                },
            )
            .await;
        let response = report::response(&report, dry_run);
        report::emit_metrics(batch.records, &report);
        info!(
            records = batch.records,
            failed = response.batch_item_failures.len(),
            dryRun = dry_run,
            "batch done"
        );
        Ok(response)
    }

    /// One record. A symlink where a directory must be, or a trash entry name taken by something
    /// that is not this move's, is refused for good: what is there is not known to be ours, and a
    /// retry cannot change that, so it is audited with the old image and not reported for a
    /// retry. The data stays where it is, and the record goes back beside it.
    async fn handle_record(
        &self,
        work: &Expired,
        now: i64,
        in_use: &InUseCell,
    ) -> Result<Outcome, RecordFailure> {
        match self.expire(work, now, in_use).await {
            Err(RecordFailure::Fs(e)) if e.is_refused_link() || e.is_refused_entry() => {
                let reason = if e.is_refused_entry() {
                    Reason::RefusedTrashEntry
                } else {
                    Reason::RefusedSymlink
                };
                let image = serde_json::to_string(&work.item).unwrap_or_default();
                self.audit(work, Action::Skip, reason)
                    .error(format!("{e}; old image: {image}"))
                    .emit();
                // The data and access point stay, so the record goes back as it was: the
                // workspace stays whole (its next expiry meets the same refusal until an
                // operator looks), and nothing lives on only in a log line.
                if self.write_back(work, work.item.clone()).await? {
                    self.audit(work, Action::PutBackRecord, reason).emit();
                }
                Ok(Outcome::Kept)
            }
            result => result,
        }
    }

    /// Whether the workspace has a record (in a dry run: or an earlier record of the batch would
    /// have put one back).
    pub(crate) async fn record_exists(&self, work: &Expired) -> Result<bool, RecordFailure> {
        if self.config.dry_run && self.simulated.of(&work.workspace).record_put_back {
            return Ok(true);
        }
        Ok(self.table.get(&work.workspace).await?.is_some())
    }

    /// Writes `item` back only if no record exists; `Ok(false)`: one does (theirs wins). A dry
    /// run answers what the write would, and remembers it for the batch's later records.
    async fn write_back(
        &self,
        work: &Expired,
        item: lifecycle_domain::record::Attributes,
    ) -> Result<bool, RecordFailure> {
        if work.superseded {
            self.audit(work, Action::Skip, Reason::Superseded).emit();
            return Ok(false);
        }
        if !self.config.dry_run {
            return Ok(self.table.put_if_absent(item).await?);
        }
        if self.record_exists(work).await? {
            return Ok(false);
        }
        self.simulated
            .update(&work.workspace, |s| s.record_put_back = true);
        Ok(true)
    }

    pub(crate) fn audit(&self, work: &Expired, action: Action, reason: Reason) -> Audit {
        Audit::new(work.workspace.as_str(), action, reason, self.config.dry_run)
            .tenant(work.tenant.as_str())
    }

    async fn expire(
        &self,
        work: &Expired,
        now: i64,
        in_use: &InUseCell,
    ) -> Result<Outcome, RecordFailure> {
        let exists_again = self.record_exists(work).await?;
        let hold = work.held();
        let image_expires_at = work.item.stored_expiry();
        let expired = expired_by_ttl(image_expires_at, work.deleted_at);
        // The listing only decides between removing and putting back: not needed when the
        // record is kept or put back whatever it says.
        let in_use_by = if exists_again || hold || !expired {
            Vec::new()
        } else {
            self.in_use_by(work, in_use, None).await?
        };
        let nonce = work.nonce();
        let facts = ExpiryFacts {
            workspace: &work.workspace,
            tenant: &work.tenant,
            record: work.record.as_ref().map_err(String::as_str),
            hold,
            access_point_id: work.access_point_id(),
            image_expires_at,
            exists_again,
            in_use_by: &in_use_by,
            deleted_at: work.deleted_at,
            now,
            nonce: &nonce,
        };
        match plan_expiry(&facts, &self.config.retention) {
            ExpiryPlan::Keep { reason } => {
                // An earlier delivery of this record may have moved the data before the record
                // came back: the data goes back with it.
                self.move_back(work, &self.entry_name(work)).await?;
                self.audit(work, Action::Skip, reason).emit();
                Ok(Outcome::kept(reason))
            }
            ExpiryPlan::PutBack { reason, expires_at } => {
                self.put_back(work, reason, expires_at, &in_use_by).await?;
                Ok(Outcome::kept(reason))
            }
            ExpiryPlan::Remove {
                access_point_id,
                trash,
            } => {
                // A fresh listing right before the move: a task may have started since the
                // batch's listing.
                let users = self.in_use_by(work, in_use, Some(FRESH_IN_USE)).await?;
                if !users.is_empty() {
                    let expires_at = match &work.record {
                        Ok(record) => self.config.retention.expires_at(record, now),
                        Err(_) => Some(now.saturating_add(
                            i64::from(self.config.retention.longest_days()) * 86_400,
                        )),
                    };
                    self.put_back(work, Reason::SkippedInUse, expires_at, &users)
                        .await?;
                    return Ok(Outcome::SkippedInUse);
                }
                if !self.move_to_trash(work, &trash).await? {
                    return Ok(Outcome::Kept);
                }
                if let Some(ap) = access_point_id {
                    // The irreversible step last, after its own fresh re-check; a record that
                    // appeared by now gets its data back too.
                    if !self.config.dry_run && self.record_exists(work).await? {
                        self.move_back(work, &trash).await?;
                        self.audit(work, Action::Skip, Reason::Recreated)
                            .resource(ap)
                            .emit();
                        return Ok(Outcome::Kept);
                    }
                    self.delete_access_point(work, &ap).await?;
                }
                Ok(Outcome::Trashed)
            }
        }
    }

    /// Puts the old image back (only if no record exists) and, if an earlier delivery of this
    /// record already moved the data to the trash, the data too: a workspace that is kept keeps
    /// its data in place.
    async fn put_back(
        &self,
        work: &Expired,
        reason: Reason,
        expires_at: Option<i64>,
        users: &[String],
    ) -> Result<(), RecordFailure> {
        let written = self
            .write_back(work, work.item_with_expiry(expires_at))
            .await?;
        if written {
            self.audit(work, Action::PutBackRecord, reason)
                .resource(users.join(","))
                .emit();
        } else if !work.superseded {
            // Someone re-created it between our read and our write: theirs wins.
            self.audit(work, Action::Skip, Reason::Recreated).emit();
        }
        if !self.move_back(work, &self.entry_name(work)).await? {
            self.warn_if_no_data(work).await?;
        }
        Ok(())
    }

    /// After a put-back that brought nothing back: if nothing is live either, the record is back
    /// without its data, which nobody would notice until its owner does. Said on a warning line.
    async fn warn_if_no_data(&self, work: &Expired) -> Result<(), RecordFailure> {
        let simulated = self
            .config
            .dry_run
            .then(|| self.simulated.data(&work.tenant, &work.workspace));
        let absent = match simulated.flatten() {
            // An earlier record of the batch would have moved the data.
            Some(DataAt::Live) => false,
            Some(DataAt::Trash(_)) => true,
            None => {
                let fs = self.fs.clone();
                let (tenant, workspace) = (work.tenant.clone(), work.workspace.clone());
                let presence =
                    tokio::task::spawn_blocking(move || fs.workspace_presence(&tenant, &workspace))
                        .await
                        .map_err(|e| RecordFailure::Task(e.to_string()))??;
                presence == lifecycle_fs::Presence::Absent
            }
        };
        if absent {
            self.audit(work, Action::Skip, Reason::RecordWithoutData)
                .error(
                    "the record is back, but its data is neither live nor in the trash (purged \
                     before the record came back, or never there): find out before its owner does",
                )
                .emit();
        }
        Ok(())
    }

    /// Deletes the access point the record names, if it is this workspace's by the ownership
    /// rule; otherwise leaves it (`access_point_mismatch`). Not found counts as done.
    async fn delete_access_point(&self, work: &Expired, ap: &str) -> Result<(), RecordFailure> {
        let deleted_earlier = self.config.dry_run
            && self
                .simulated
                .of(&work.workspace)
                .deleted_access_points
                .contains(ap);
        let described = if deleted_earlier {
            None
        } else {
            self.access_points.describe(ap).await?
        };
        let Some(info) = described else {
            self.audit(work, Action::DeleteAccessPoint, Reason::AlreadyAbsent)
                .resource(ap)
                .emit();
            return Ok(());
        };
        let ownership = match &work.record {
            Ok(record) => access_point_belongs(
                &info,
                record,
                self.config.efs_file_system_id.as_deref(),
                &self.config.access_points,
            ),
            Err(_) => Err(
                "the record cannot be read, so the access point is not known to be its own"
                    .to_string(),
            ),
        };
        if let Err(why) = ownership {
            self.audit(work, Action::Skip, Reason::AccessPointMismatch)
                .resource(ap)
                .error(why)
                .emit();
            return Ok(());
        }
        let deleted = if self.config.dry_run {
            self.simulated.update(&work.workspace, |s| {
                s.deleted_access_points.insert(ap.to_string());
            });
            true
        } else {
            self.access_points.delete(ap).await?
        };
        let reason = if deleted {
            Reason::TtlExpired
        } else {
            Reason::AlreadyAbsent
        };
        self.audit(work, Action::DeleteAccessPoint, reason)
            .resource(ap)
            .emit();
        Ok(())
    }
}
