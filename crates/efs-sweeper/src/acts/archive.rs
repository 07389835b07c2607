//! Archive, then purge: a trash entry whose policy says archive is streamed to the archive
//! bucket, the upload verified, and the EFS copy purged only after fresh re-checks.

use std::time::Instant;

use lifecycle_domain::archive::{archive_key, record_key};
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::reasons::Action;
use lifecycle_domain::sweep::{describe, SweepReason, SweepTarget};
use lifecycle_fs::archive::{archive_trash_entry, ArchiveError, TreeError};
use lifecycle_fs::changed::Fingerprint;

use super::{audit, invalid, ActError, Freed, Outcome, Outcome::Done, Outcome::NotDone};
use crate::report::Unfinished;
use crate::Sweeper;

impl Sweeper {
    /// Archives `.trash/<entry>` (kept `retention_days`), then purges it. Before the upload and
    /// again right before the purge, as for any purge: an entry whose workspace has a record and
    /// no live data may be that record's only data, and is kept (archived or not); and before the purge the archive must be in the
    /// bucket with the size and checksum that were sent. A failed or cut-short upload is aborted
    /// and purges nothing; the next run archives the entry again from the start.
    pub(super) async fn archive_then_purge(
        &self,
        entry: &str,
        retention_days: u32,
        reason: SweepReason,
        deadline: Option<Instant>,
    ) -> Result<Outcome, ActError> {
        let dry_run = self.config.dry_run;
        let Some(archive) = &self.archive else {
            return Err(invalid("an archive was planned without ARCHIVE_BUCKET"));
        };
        let what = describe(&SweepTarget::PurgeTrash {
            entry: entry.to_string(),
        });
        let name: TrashName = entry.parse().map_err(invalid)?;
        let key = archive_key(&name);
        let tenant = Some(name.tenant.as_str());
        // As for a purge: an entry that may be the only data of a record is kept.
        if let Some(why) = self.owned_trash_entry(entry).await? {
            audit(&what, tenant, Action::Skip, reason, dry_run)
                .error(format!("{why} (re-check): not archived, not purged"))
                .emit();
            return Ok(NotDone(
                Unfinished::RecordExistsWithoutData,
                Freed::default(),
            ));
        }
        // Read before the walk and again right before the purge: data written in between (a
        // process that kept a file open writes on through the rename) is in no archive. The
        // reading fails as the walk would (`data` not a directory, a tree too deep), so a dry
        // run shows that failure too, and a real run fails before uploading anything.
        let before = match self.fingerprint(&name, deadline).await {
            Ok(print) => print,
            Err(ActError::Fs(e)) if e.is_deadline() => {
                audit(&what, tenant, Action::ArchiveTrashEntry, reason, dry_run)
                    .resource(&key)
                    .error("stopped at the deadline before the archive; the next run archives it")
                    .emit();
                return Ok(NotDone(Unfinished::StoppedAtDeadline, Freed::default()));
            }
            Err(e) => return Err(e),
        };
        if dry_run {
            audit(&what, tenant, Action::ArchiveTrashEntry, reason, true)
                .resource(&key)
                .emit();
            audit(&what, tenant, Action::PurgeTrashEntry, reason, true).emit();
            return Ok(Done(Freed::default()));
        }
        let archived = match archive_trash_entry(
            &self.fs,
            archive.store.clone(),
            &name,
            retention_days,
            archive.part_size,
            deadline,
        )
        .await
        {
            Ok(archived) => archived,
            Err(ArchiveError::Tree(TreeError::Deadline)) => {
                audit(&what, tenant, Action::ArchiveTrashEntry, reason, false)
                    .resource(&key)
                    .error("stopped at the deadline; the upload was aborted and the next run archives it again")
                    .emit();
                return Ok(NotDone(Unfinished::StoppedAtDeadline, Freed::default()));
            }
            Err(e) => return Err(e.into()),
        };
        audit(&what, tenant, Action::ArchiveTrashEntry, reason, false)
            .resource(&key)
            .freed(archived.stats.files, archived.stats.bytes)
            .emit();
        // The fresh re-check right before the purge: the archive as it is in the bucket now, and
        // the table now.
        let object = archive.store.head(&key).await?;
        let mut verified = match &object {
            None => Err("the archive is not in the bucket".to_string()),
            Some(object) => archived.matches(object),
        };
        // The record beside it too: without it a restore would have to be told tier and status.
        if verified.is_ok()
            && archived.with_record
            && archive.store.head(&record_key(&name)).await?.is_none()
        {
            verified = Err("the record beside the archive is not in the bucket".to_string());
        }
        if let Err(why) = verified {
            audit(&what, tenant, Action::Skip, reason, false)
                .error(format!("{key}: {why}; the EFS copy is kept"))
                .emit();
            return Err(ArchiveError::Verify { key, why }.into());
        }
        let after = match self.fingerprint(&name, deadline).await {
            Ok(print) => print,
            Err(ActError::Fs(e)) if e.is_deadline() => {
                audit(&what, tenant, Action::Skip, reason, false)
                    .resource(&key)
                    .error("stopped at the deadline after the archive, before the purge; the next run archives it again")
                    .emit();
                return Ok(NotDone(Unfinished::StoppedAtDeadline, Freed::default()));
            }
            Err(e) => return Err(e),
        };
        if after != before {
            audit(&what, tenant, Action::Skip, reason, false)
                .resource(&key)
                .error(
                    "the entry's data changed while it was archived (something still writes to \
                     it): archived, not purged; a later run archives it again, whole",
                )
                .emit();
            return Ok(NotDone(Unfinished::Changed, Freed::default()));
        }
        if let Some(why) = self.owned_trash_entry(entry).await? {
            audit(&what, tenant, Action::Skip, reason, false)
                .error(format!("{why} (re-check): archived, not purged"))
                .emit();
            return Ok(NotDone(
                Unfinished::RecordExistsWithoutData,
                Freed::default(),
            ));
        }
        self.purge_now(entry, reason, deadline).await
    }

    async fn fingerprint(
        &self,
        name: &TrashName,
        deadline: Option<Instant>,
    ) -> Result<Fingerprint, ActError> {
        let (fs, name) = (self.fs.clone(), name.clone());
        Ok(
            tokio::task::spawn_blocking(move || fs.trash_data_fingerprint(&name, deadline))
                .await??,
        )
    }
}
