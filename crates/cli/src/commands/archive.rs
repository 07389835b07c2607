//! `lifecycle archive ls`: what the archive bucket holds, per archived workspace.

use anyhow::{bail, Context as _, Result};
use lifecycle_domain::archive::{entry_of_key, ARCHIVE_PREFIX};
use lifecycle_domain::retention::SECONDS_PER_DAY;
use serde::Serialize;

use crate::context::Context;
use crate::render::{self, Output};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Archived {
    pub workspace_id: String,
    pub tenant_id: String,
    /// The trash entry it was (`lifecycle restore --entry`).
    pub entry: String,
    pub size: u64,
    /// Epoch seconds.
    pub deleted_at: i64,
    pub archived_at: Option<i64>,
    /// When the bucket's lifecycle rule expires it (archived + its `retentionDays`).
    pub expires_at: Option<i64>,
    pub storage_class: String,
}

pub async fn ls(ctx: &Context, tenant: Option<&str>, output: Output) -> Result<()> {
    let Some(store) = ctx.archive()? else {
        bail!("ARCHIVE_BUCKET is not set: there is no archive");
    };
    let objects = store
        .list(ARCHIVE_PREFIX)
        .await
        .context("listing the archive")?;
    let mut rows = Vec::new();
    for object in objects {
        let Some(entry) = entry_of_key(&object.key) else {
            continue;
        };
        if tenant.is_some_and(|t| t != entry.tenant.as_str()) {
            continue;
        }
        // One HEAD per archive: its retention and storage class are not in the listing.
        let head = store
            .head(&object.key)
            .await
            .with_context(|| format!("describing {}", object.key))?;
        let Some(head) = head else { continue };
        let days = head
            .metadata
            .get("retention-days")
            .and_then(|d| d.parse::<i64>().ok());
        let archived_at = head.last_modified.or(object.last_modified);
        rows.push(Archived {
            workspace_id: entry.workspace.to_string(),
            tenant_id: entry.tenant.to_string(),
            entry: entry.to_string(),
            size: head.size,
            deleted_at: entry.deleted_at,
            archived_at,
            expires_at: archived_at
                .zip(days)
                .map(|(at, d)| at + d * SECONDS_PER_DAY),
            storage_class: head.storage_class.unwrap_or_else(|| "STANDARD".into()),
        });
    }
    rows.sort_by(|a, b| {
        (&a.tenant_id, &a.workspace_id, b.deleted_at).cmp(&(
            &b.tenant_id,
            &b.workspace_id,
            a.deleted_at,
        ))
    });
    output.show(&rows, |rows| render::archived(rows))
}
