//! Fetch: which ECS tasks use a workspace. The cluster is listed once per batch and again right
//! before a move; a failed or partial read is an error, never "not in use".

use std::sync::Arc;
use std::time::Duration;

// Tokio's clock, so a test can run the listings on paused time.
use tokio::time::Instant;

use lifecycle_domain::tasks::{InUse, WorkspaceRef};
use lifecycle_ports::{read_in_use, ServiceError};

use crate::event::Expired;
use crate::TtlExpiry;

/// The cluster's in-use index, shared by the records of a batch and listed again when it is older
/// than asked for (the check right before a move may not lean on a listing from seconds ago),
/// unless it was started after the record asked: such a listing is as fresh as one the record
/// would start itself, so records waiting on a slow listing share the next one instead of each
/// listing in turn.
#[derive(Default)]
pub(crate) struct InUseCell(tokio::sync::Mutex<Option<(Instant, Arc<InUse>)>>);

/// How old the listing used right before a move may be.
pub(crate) const FRESH_IN_USE: Duration = Duration::from_secs(2);

impl TtlExpiry {
    /// The cluster's in-use index, listed again if older than `max_age`: every task with its
    /// tags, environment and EFS mounts, and every access point a task mounts described (so a
    /// task is seen through any access point of a workspace). A failed or partial read of either
    /// is an error, never "not in use".
    async fn in_use_index(
        &self,
        cell: &InUseCell,
        max_age: Option<Duration>,
    ) -> Result<Arc<InUse>, ServiceError> {
        let asked = Instant::now();
        let mut slot = cell.0.lock().await;
        if let Some((at, index)) = slot.as_ref() {
            if max_age.is_none_or(|age| *at >= asked || at.elapsed() <= age) {
                return Ok(index.clone());
            }
        }
        let listed_at = Instant::now();
        let index =
            Arc::new(read_in_use(self.tasks.as_deref(), self.access_points.as_ref()).await?);
        *slot = Some((listed_at, index.clone()));
        Ok(index)
    }

    /// The tasks using this workspace.
    pub(crate) async fn in_use_by(
        &self,
        work: &Expired,
        cell: &InUseCell,
        max_age: Option<Duration>,
    ) -> Result<Vec<String>, ServiceError> {
        let index = self.in_use_index(cell, max_age).await?;
        let access_points: Vec<String> = work
            .access_point_id()
            .map(str::to_string)
            .into_iter()
            .collect();
        Ok(index.users(
            WorkspaceRef {
                workspace: work.workspace.as_str(),
                tenant: Some(work.tenant.as_str()),
                access_points: &access_points,
            },
            self.config.efs_file_system_id.as_deref(),
        ))
    }
}
