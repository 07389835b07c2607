//! `lifecycle restore`: a trashed (or archived) workspace back in place, with its record (fresh
//! expiry) and a new access point like the one it had. The trash comes first; past it, the
//! archive bucket (`ARCHIVE_BUCKET`).

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use lifecycle_domain::access_point::AccessPointSpec;
use lifecycle_domain::archive::{entry_of_key, workspace_prefix};
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::record::{attr, Attributes, Observed};
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_fs::restore::Supplied;
use lifecycle_ports::{AccessPoints, ArchiveStore, WorkspaceTable};
use serde::Serialize;

use crate::context::{Access, Context};
use crate::render::{self, Output};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Restored {
    pub workspace_id: String,
    pub tenant_id: String,
    pub place: PathBuf,
    pub expires_at: Option<i64>,
    /// The new access point, when the workspace had one.
    pub access_point_id: Option<String>,
}

pub async fn run(
    ctx: &Context,
    workspace_id: &str,
    chosen: Option<&str>,
    supplied: &Supplied,
    output: Output,
) -> Result<()> {
    let config = ctx.config(Access::Read)?;
    let ws = WorkspaceId::parse(workspace_id)?;
    let fs = ctx.fs(&config);
    let entries = lifecycle_fs::restore::entries_for(&fs, ws.as_str())?;
    let table = ctx.table(&config);
    // The trash first (any entry still there); else the archive, when there is one.
    let (entry, restored) = match choose(&entries, chosen, &ws, config.trash_grace_days, ctx.now) {
        Ok(entry) => {
            let restored = lifecycle_fs::restore::restore(
                table.as_ref(),
                &fs,
                entry,
                &config.retention,
                supplied,
                ctx.now,
            )
            .await?;
            (entry.clone(), restored)
        }
        Err(not_in_trash) => {
            let Some(store) = ctx.archive()? else {
                return Err(not_in_trash);
            };
            let archived = archived_entries(store.as_ref(), &ws).await?;
            let entry = choose_archived(&archived, chosen, &ws)
                .map_err(|e| e.context(format!("{not_in_trash:#}")))?
                .clone();
            let restored = lifecycle_fs::archive::restore_from_archive(
                table.as_ref(),
                &fs,
                store,
                &entry,
                &config.retention,
                supplied,
                ctx.now,
            )
            .await?;
            (entry, restored)
        }
    };
    let entry = &entry;
    // The access point was deleted with the workspace: make a new one like it, and record it.
    let access_point_id = match (&restored.access_point_id, &config.efs_file_system_id) {
        (Some(_), Some(fs_id)) => {
            let spec = AccessPointSpec::for_workspace(
                fs_id,
                &config.access_points,
                &entry.tenant,
                &entry.workspace,
                ctx.now,
            );
            let access_points = ctx.access_points();
            Some(recreate_access_point(table.as_ref(), access_points.as_ref(), &spec, entry).await?)
        }
        _ => None,
    };
    let restored = Restored {
        workspace_id: restored.workspace_id,
        tenant_id: restored.tenant_id,
        place: restored.place,
        expires_at: restored.expires_at,
        access_point_id,
    };
    output.show(&restored, render::restored)
}

/// The archived generations of a workspace, newest first (from the bucket's listing).
async fn archived_entries(store: &dyn ArchiveStore, ws: &WorkspaceId) -> Result<Vec<TrashName>> {
    let mut names: Vec<TrashName> = store
        .list(&workspace_prefix(ws.as_str()))
        .await
        .context("listing the archive")?
        .iter()
        .filter_map(|o| entry_of_key(&o.key))
        .collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.deleted_at));
    Ok(names)
}

/// The archive to restore: the one named, or the newest (two of the same second: the operator
/// chooses).
fn choose_archived<'a>(
    archived: &'a [TrashName],
    chosen: Option<&str>,
    ws: &WorkspaceId,
) -> Result<&'a TrashName> {
    if let Some(name) = chosen {
        return archived
            .iter()
            .find(|e| e.to_string() == name)
            .with_context(|| format!("{name} is not an archive of {ws}"));
    }
    let newest = archived
        .first()
        .with_context(|| format!("and {ws} has no archive"))?;
    let tied: Vec<String> = archived
        .iter()
        .filter(|e| e.deleted_at == newest.deleted_at)
        .map(|e| e.to_string())
        .collect();
    if tied.len() > 1 {
        bail!(
            "{} archives of {ws} were deleted in the same second; choose one with --entry: {}",
            tied.len(),
            tied.join(", ")
        );
    }
    Ok(newest)
}

/// The trash entry to restore: the one named, or the newest. Any entry still in the trash may be
/// restored, past its grace too (the weekly purge has not reached it yet, or it was kept: changed
/// while archived, failed): restoring it from the trash is never worse than from an archive,
/// and a purge that starts meanwhile renames it first, so only one of the two takes it.
fn choose<'a>(
    entries: &'a [TrashName],
    chosen: Option<&str>,
    ws: &WorkspaceId,
    grace_days: u32,
    _now: i64,
) -> Result<&'a TrashName> {
    let within: Vec<&TrashName> = entries.iter().collect();
    if let Some(name) = chosen {
        return within
            .iter()
            .find(|e| e.to_string() == name)
            .copied()
            .with_context(|| format!("{name} is not a trash entry of {ws}"));
    }
    let newest = within.first().copied().with_context(|| {
        format!("no trash entry of {ws} (purged: the trash keeps entries {grace_days} days)")
    })?;
    // Two generations deleted in the same second: which is newer is not known from the names,
    // so the operator chooses.
    let tied: Vec<String> = within
        .iter()
        .filter(|e| e.deleted_at == newest.deleted_at)
        .map(|e| e.to_string())
        .collect();
    if tied.len() > 1 {
        bail!(
            "{} trash entries of {ws} were deleted in the same second; choose one with --entry: {}",
            tied.len(),
            tied.join(", ")
        );
    }
    Ok(newest)
}

/// Why the record as read now must not get a new access point, if it must not: it is no longer
/// the record the restore wrote for this tenant, or it names an access point already.
fn refuse_access_point(record: Option<&Attributes>, tenant: &TenantId) -> Option<String> {
    let Some(record) = record else {
        return Some("its record is gone".into());
    };
    if record.text(attr::TENANT_ID) != Some(tenant.as_str()) {
        return Some(format!("its record is no longer tenant {tenant}'s"));
    }
    if record.get(attr::ACCESS_POINT_ID).is_some() {
        return Some("its record names an access point already".into());
    }
    None
}

/// A conditional write that keeps failing is another writer at work: stop and say so.
const RECORD_ATTEMPTS: usize = 3;

/// Creates the access point `spec` describes and records it on the restored record. Each write
/// is conditioned on the record as just read, and decided again on a conflict (a heartbeat may
/// touch the record meanwhile); an access point no record can take is deleted again.
async fn recreate_access_point(
    table: &dyn WorkspaceTable,
    access_points: &dyn AccessPoints,
    spec: &AccessPointSpec,
    entry: &TrashName,
) -> Result<String> {
    let (ws, tenant) = (&entry.workspace, &entry.tenant);
    let mut created: Option<String> = None;
    for _ in 0..RECORD_ATTEMPTS {
        let record = table.get(ws).await.context("reading the restored record")?;
        // Our own write landed though its answer was lost (a retried call then fails its
        // condition): the record names the access point made for it.
        if let Some(id) = created.as_deref() {
            if record.as_ref().and_then(|r| r.text(attr::ACCESS_POINT_ID)) == Some(id) {
                return Ok(id.to_string());
            }
        }
        if let Some(why) = refuse_access_point(record.as_ref(), tenant) {
            return Err(give_up(access_points, created.as_deref(), ws, &why).await);
        }
        let observed = Observed::known(record.as_ref().expect("refused when absent"));
        let id = match &created {
            Some(id) => id.clone(),
            None => {
                let id = access_points
                    .create(spec)
                    .await
                    .context("re-creating the access point (data and record are restored)")?;
                created.insert(id).clone()
            }
        };
        if table
            .set_access_point(ws, &observed, &id)
            .await
            .with_context(|| format!("recording the new access point {id}"))?
        {
            return Ok(id);
        }
    }
    let why = format!("its record kept changing ({RECORD_ATTEMPTS} attempts)");
    Err(give_up(access_points, created.as_deref(), ws, &why).await)
}

/// The error for an access point that cannot be recorded, after deleting the one made for it
/// (nothing else knows its id yet).
async fn give_up(
    access_points: &dyn AccessPoints,
    created: Option<&str>,
    ws: &WorkspaceId,
    why: &str,
) -> anyhow::Error {
    let Some(id) = created else {
        return anyhow::anyhow!(
            "data and record of {ws} are restored, but no access point was made: {why}"
        );
    };
    match access_points.delete(id).await {
        Ok(_) => anyhow::anyhow!(
            "data and record of {ws} are restored, but the new access point {id} could not be \
             recorded and was deleted again: {why}"
        ),
        Err(e) => anyhow::anyhow!(
            "data and record of {ws} are restored, but the new access point {id} could not be \
             recorded ({why}), nor deleted again: {e}"
        ),
    }
}

#[cfg(test)]
mod tests;
