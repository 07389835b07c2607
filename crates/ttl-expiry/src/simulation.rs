//! A dry run's memory within one batch. The real run's earlier records of a workspace change what
//! its later ones see (a record put back, data moved to the trash or back, an access point
//! deleted); a dry run changes nothing, so it remembers here what it would have changed, and a
//! later record of the same workspace is shown what the real run would do after them. Reads
//! consult it before the world; only a dry run writes to it, and each batch starts it afresh.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use lifecycle_domain::layout::TrashName;
use lifecycle_domain::{TenantId, WorkspaceId};

/// Where an earlier record of the batch would have left a workspace's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DataAt {
    /// Moved to this trash entry.
    Trash(TrashName),
    /// Moved back to its live place.
    Live,
}

/// What the earlier records of the batch would have changed for one workspace id: its record
/// (one per id), and each tenant's data under that id (`<tenant>/<id>` is one directory per
/// tenant).
#[derive(Debug, Clone, Default)]
pub(crate) struct Simulated {
    pub record_put_back: bool,
    pub data: BTreeMap<TenantId, DataAt>,
    pub deleted_access_points: BTreeSet<String>,
}

#[derive(Debug, Default)]
pub(crate) struct Simulation(Mutex<HashMap<WorkspaceId, Simulated>>);

impl Simulation {
    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn of(&self, workspace: &WorkspaceId) -> Simulated {
        self.lock().get(workspace).cloned().unwrap_or_default()
    }

    /// Where an earlier record would have left `<tenant>/<workspace>`'s data, if one moved it.
    pub fn data(&self, tenant: &TenantId, workspace: &WorkspaceId) -> Option<DataAt> {
        self.lock()
            .get(workspace)
            .and_then(|s| s.data.get(tenant).cloned())
    }

    pub fn set_data(&self, tenant: &TenantId, workspace: &WorkspaceId, at: DataAt) {
        self.update(workspace, |s| {
            s.data.insert(tenant.clone(), at);
        });
    }

    pub fn update(&self, workspace: &WorkspaceId, change: impl FnOnce(&mut Simulated)) {
        change(self.lock().entry(workspace.clone()).or_default());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkspaceId, Simulated>> {
        // A panic elsewhere cannot leave a half-written entry: every change is one assignment.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
