//! Fresh reads right before an act: does a record exist again, does a task use the workspace
//! now, is a trash entry the only data of a record.

use lifecycle_domain::access_point::identify;
use lifecycle_domain::layout::{TrashName, PURGING_PREFIX};
use lifecycle_domain::tasks::{InUse, WorkspaceRef};
use lifecycle_domain::{TenantId, WorkspaceId};
use lifecycle_ports::{read_in_use, ServiceError};

use crate::acts::ActError;
use crate::Sweeper;

impl Sweeper {
    /// One complete listing of the cluster's active tasks (a failed or partial one is an error),
    /// with every mounted access point described, so a task is seen through any access point of
    /// a workspace.
    pub(crate) async fn in_use(&self) -> Result<InUse, ServiceError> {
        read_in_use(self.tasks.as_deref(), self.access_points.as_ref()).await
    }

    /// The tasks using a workspace now (a fresh listing), through its tag, environment, access
    /// points or directory.
    pub(crate) async fn users_now(
        &self,
        tenant: &TenantId,
        ws: &WorkspaceId,
    ) -> Result<Vec<String>, ActError> {
        let in_use = self.in_use().await?;
        let serving: Vec<String> = match &self.config.efs_file_system_id {
            Some(fs_id) => self
                .access_points
                .list(fs_id)
                .await?
                .into_iter()
                .filter(|ap| {
                    identify(ap, &self.config.access_points)
                        .is_ok_and(|owner| owner.workspace.as_str() == ws.as_str())
                })
                .map(|ap| ap.id)
                .collect(),
            None => Vec::new(),
        };
        Ok(in_use.users(
            WorkspaceRef {
                workspace: ws.as_str(),
                tenant: Some(tenant.as_str()),
                access_points: &serving,
            },
            self.config.efs_file_system_id.as_deref(),
        ))
    }

    /// The tasks using access point `id` (or its workspace) now, from a fresh listing.
    pub(crate) async fn access_point_users_now(
        &self,
        id: &str,
        ws: &WorkspaceId,
    ) -> Result<Vec<String>, ActError> {
        Ok(self.in_use().await?.users(
            WorkspaceRef {
                workspace: ws.as_str(),
                tenant: None,
                access_points: std::slice::from_ref(&id.to_string()),
            },
            self.config.efs_file_system_id.as_deref(),
        ))
    }

    /// Right before a purge: a trash entry whose workspace has a record again and no live data
    /// (no directory, an empty one, or a link) is that record's only data (a move that raced a
    /// re-creation, a record put back by hand, a re-created record whose new access point made an
    /// empty root). It is never purged; the run reports it (`NotDone`, which an alarm watches).
    pub(crate) async fn owned_trash_entry(&self, entry: &str) -> Result<Option<String>, ActError> {
        let Ok(name) = entry
            .strip_prefix(PURGING_PREFIX)
            .unwrap_or(entry)
            .parse::<TrashName>()
        else {
            return Ok(None);
        };
        if !self.has_record(&name.workspace).await? {
            return Ok(None);
        }
        let fs = self.fs.clone();
        let (tenant, ws) = (name.tenant.clone(), name.workspace.clone());
        let has_data =
            tokio::task::spawn_blocking(move || fs.workspace_has_data(&tenant, &ws)).await??;
        Ok((!has_data).then(|| {
            format!(
                "workspace {} has a record and no live data (no directory, or an empty one): this entry may be its only data; kept",
                name.workspace
            )
        }))
    }

    /// The fresh re-check right before acting: a consistent read of the workspace's record.
    pub(crate) async fn has_record(&self, ws: &WorkspaceId) -> Result<bool, ServiceError> {
        Ok(self.table.get(ws).await?.is_some())
    }
}
