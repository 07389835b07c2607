//! Act on the file system: a record's data into the trash with its record, and back out when a
//! record appears. Every step goes through `lifecycle-fs` (directory handles, no symlink ever
//! followed) on a blocking thread.

use lifecycle_domain::layout::TrashName;
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::{attr, Attributes};
use lifecycle_fs::{FsError, MoveOutcome, Presence};
use serde::{Deserialize, Serialize};

use crate::event::Expired;
use crate::report::RecordFailure;
use crate::simulation::DataAt;
use crate::TtlExpiry;

/// What the trash keeps beside the data, so `lifecycle restore` can put the record back.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrashRecord<'a> {
    deleted_at: i64,
    reason: Reason,
    item: Option<&'a Attributes>,
    /// Why the record could not be read, when it could not (restore then needs an operator).
    #[serde(skip_serializing_if = "Option::is_none")]
    invalid: Option<&'a str>,
}

/// A `record.json` as any writer leaves it (the sweeper writes its own reasons, and no item).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeptRecord {
    #[allow(
        dead_code,
        reason = "required: a record.json without it is not a trash record"
    )]
    deleted_at: i64,
    #[allow(
        dead_code,
        reason = "required: a record.json without it is not a trash record"
    )]
    reason: String,
    item: Option<Attributes>,
}

fn trash_record_json(work: &Expired) -> Vec<u8> {
    serde_json::to_vec_pretty(&TrashRecord {
        deleted_at: work.deleted_at,
        reason: Reason::TtlExpired,
        item: Some(&work.item),
        invalid: work.record.as_ref().err().map(String::as_str),
    })
    .expect("an item always serializes")
}

impl TtlExpiry {
    pub(crate) fn entry_name(&self, work: &Expired) -> TrashName {
        TrashName::new(
            work.deleted_at,
            work.tenant.clone(),
            work.workspace.clone(),
            work.nonce(),
        )
    }

    fn entry_path(&self, name: &TrashName) -> String {
        self.fs
            .trash_path()
            .join(name.to_string())
            .display()
            .to_string()
    }

    /// Moves the data back to the live path if nothing is there and a trash entry holds it: this
    /// record's own entry, or the newest of this workspace's (an earlier record of the same
    /// workspace may have moved it). `Ok(true)` when it did (or, in a dry run, would).
    pub(crate) async fn move_back(
        &self,
        work: &Expired,
        trash: &TrashName,
    ) -> Result<bool, RecordFailure> {
        // Back only for a record of this tenant: the same id re-created under another tenant
        // does not own `<this tenant>/<id>`, and data moved there would belong to no record.
        let others = match self.table.get(&work.workspace).await? {
            Some(record) => record.text(attr::TENANT_ID) != Some(work.tenant.as_str()),
            None => false,
        };
        let fs = self.fs.clone();
        let (tenant, workspace, own) = (work.tenant.clone(), work.workspace.clone(), trash.clone());
        let dry_run = self.config.dry_run;
        // In a dry run, where an earlier record of the batch would have left the data.
        let simulated = dry_run
            .then(|| self.simulated.data(&work.tenant, &work.workspace))
            .flatten();
        let moved = blocking(move || {
            let found = match simulated {
                Some(DataAt::Live) => None,
                Some(DataAt::Trash(entry)) => Some(entry),
                None => fs.entry_to_move_back(&tenant, &workspace, &own)?,
            };
            let Some(entry) = found else {
                return Ok(None);
            };
            if others {
                return Ok(Some(Err(entry)));
            }
            if dry_run {
                return Ok(Some(Ok(entry)));
            }
            match fs.restore_from_trash(&entry) {
                Ok(_) => Ok(Some(Ok(entry))),
                Err(e) if e.is_not_found() => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await?;
        let entry = match moved {
            None => return Ok(false),
            Some(Ok(entry)) => entry,
            Some(Err(entry)) => {
                self.audit(work, Action::Skip, Reason::OtherTenantsRecord)
                    .resource(self.entry_path(&entry))
                    .error("the workspace id has a record under another tenant: this data stays in the trash")
                    .emit();
                return Ok(false);
            }
        };
        if dry_run {
            self.simulated
                .set_data(&work.tenant, &work.workspace, DataAt::Live);
        }
        self.audit(work, Action::MoveBack, Reason::RecordAppeared)
            .resource(self.entry_path(&entry))
            .emit();
        Ok(true)
    }

    /// Moves the data to the trash with its record, re-checking the record right before the move
    /// and once more after it (moving the data back if a record appeared). `Ok(false)`: a record
    /// exists again and the data is (back) in place.
    pub(crate) async fn move_to_trash(
        &self,
        work: &Expired,
        trash: &TrashName,
    ) -> Result<bool, RecordFailure> {
        if self.record_exists(work).await? {
            self.audit(work, Action::Skip, Reason::Recreated).emit();
            return Ok(false);
        }
        let outcome = if self.config.dry_run {
            self.would_move_to_trash(work, trash).await?
        } else {
            let json = trash_record_json(work);
            let fs = self.fs.clone();
            let (tenant, workspace, name) =
                (work.tenant.clone(), work.workspace.clone(), trash.clone());
            blocking(move || fs.move_to_trash(&tenant, &workspace, &name, &json)).await?
        };
        match outcome {
            MoveOutcome::Moved { entry } => {
                if !self.config.dry_run && self.record_exists(work).await? {
                    if !self.move_back(work, trash).await? {
                        // The record came back while the data moved, and its place is already
                        // taken (a new generation): the moved data stays in the trash, where an
                        // operator must see it before its grace ends.
                        self.audit(work, Action::MoveToTrash, Reason::RecordAppeared)
                            .resource(entry.display().to_string())
                            .error(
                                "a record appeared during the move and its place is taken by \
                                 new data; this data stays in the trash entry (restore it by \
                                 hand if it is wanted)",
                            )
                            .emit();
                    }
                    return Ok(false);
                }
                self.audit(work, Action::MoveToTrash, Reason::TtlExpired)
                    .resource(entry.display().to_string())
                    .emit();
            }
            MoveOutcome::AlreadyInTrash { entry } => {
                self.audit(work, Action::MoveToTrash, Reason::AlreadyAbsent)
                    .resource(entry.display().to_string())
                    .emit();
            }
            MoveOutcome::Absent => self.complete_sweepers_entry(work).await?,
        }
        Ok(true)
    }

    /// What the move would find, read-only (a dry run): the real run's refusals (a taken entry
    /// name refuses here too) and its outcome, after what the batch's earlier records of this
    /// workspace would have done; remembered for its later ones.
    async fn would_move_to_trash(
        &self,
        work: &Expired,
        trash: &TrashName,
    ) -> Result<MoveOutcome, RecordFailure> {
        let entry = self.fs.trash_path().join(trash.to_string());
        let outcome = match self.simulated.data(&work.tenant, &work.workspace) {
            Some(DataAt::Trash(moved)) if &moved == trash => MoveOutcome::AlreadyInTrash { entry },
            Some(DataAt::Trash(_)) => MoveOutcome::Absent,
            simulated => {
                let fs = self.fs.clone();
                let (tenant, workspace, name) =
                    (work.tenant.clone(), work.workspace.clone(), trash.clone());
                let live_again = simulated == Some(DataAt::Live);
                blocking(move || {
                    if live_again {
                        // Moved back by an earlier record: live, and its entry name free again.
                        return Ok(MoveOutcome::Moved { entry });
                    }
                    if let Some(entry) = fs.finished_entry(&tenant, &workspace, &name)? {
                        return Ok(MoveOutcome::AlreadyInTrash { entry });
                    }
                    Ok(match fs.workspace_presence(&tenant, &workspace)? {
                        Presence::Absent => MoveOutcome::Absent,
                        _ => MoveOutcome::Moved { entry },
                    })
                })
                .await?
            }
        };
        if matches!(outcome, MoveOutcome::Moved { .. }) {
            self.simulated
                .set_data(&work.tenant, &work.workspace, DataAt::Trash(trash.clone()));
        }
        Ok(outcome)
    }

    /// Nothing was live: if the sweeper moved the directory to the trash as an orphan before this
    /// record arrived, its entry has no record; write this one into it so it can be restored (a
    /// dry run only says which).
    async fn complete_sweepers_entry(&self, work: &Expired) -> Result<(), RecordFailure> {
        let fs = self.fs.clone();
        let (tenant, workspace) = (work.tenant.clone(), work.workspace.clone());
        let json = trash_record_json(work);
        let dry_run = self.config.dry_run;
        let completed = blocking(move || {
            let mut candidates: Vec<TrashName> = fs
                .list_trash()?
                .into_iter()
                .filter_map(|e| e.name.parse::<TrashName>().ok())
                .filter(|n| n.tenant == tenant && n.workspace == workspace)
                .collect();
            candidates.sort_by_key(|n| std::cmp::Reverse(n.deleted_at));
            for name in candidates {
                let bytes = match fs.read_trash_record(&name) {
                    Ok(Some(bytes)) => bytes,
                    // Not a record (a FIFO, a link, a huge file): not the sweeper's entry.
                    Err(e) if e.is_not_a_record() => continue,
                    Ok(None) => continue,
                    Err(e) => return Err(e),
                };
                let kept: Option<KeptRecord> = serde_json::from_slice(&bytes).ok();
                if kept.is_some_and(|k| k.item.is_none()) {
                    if !dry_run {
                        fs.write_trash_record(&name, &json)?;
                    }
                    return Ok(Some(name));
                }
            }
            Ok(None)
        })
        .await?;
        match completed {
            Some(name) => self
                .audit(
                    work,
                    Action::CompleteTrashRecord,
                    Reason::TrashedFirstBySweeper,
                )
                .resource(self.entry_path(&name))
                .emit(),
            None => self
                .audit(work, Action::MoveToTrash, Reason::AlreadyAbsent)
                .emit(),
        }
        Ok(())
    }
}

/// Runs a file-system step on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, RecordFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RecordFailure::Task(e.to_string()))?
        .map_err(RecordFailure::from)
}
