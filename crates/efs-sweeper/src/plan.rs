//! Fetch and decide: every listing the sweep needs, then the pure planner. Reads only.

use lifecycle_domain::record::{attr, Value as StoredValue};
use std::collections::BTreeMap;

use lifecycle_domain::layout::TrashName;
use lifecycle_domain::sweep::{
    owners_from, plan_sweep, purges_due, route_purges, AccessPointEntry, SweepPlan, SweepRules,
};
use lifecycle_fs::FsError;

use crate::{SweepError, Sweeper};

impl Sweeper {
    /// The planner's rules from this sweeper's configuration (caps included).
    pub fn rules(&self) -> SweepRules {
        self.settings.rules(&self.config)
    }

    /// Lists the file system, the table, the access points and the cluster's tasks, and plans:
    /// the returned [`SweepPlan`] is what [`Sweeper::execute`] will do (its actions are within
    /// the caps; `cap_exceeded` says which tripped). Reads only; any failed or partial listing is
    /// an error, never "nothing exists".
    pub async fn plan(&self, now: i64) -> Result<SweepPlan, SweepError> {
        let fs = self.fs.clone();
        let (live, trash) = tokio::task::spawn_blocking(move || {
            Ok::<_, FsError>((fs.list_live()?, fs.list_trash()?))
        })
        .await
        .map_err(|e| SweepError::Task(e.to_string()))??;
        let records = self.table.scan(None).await?;
        let owned: Vec<(String, String)> = records
            .iter()
            .filter_map(
                |item| match (item.get(attr::WORKSPACE_ID), item.get(attr::TENANT_ID)) {
                    (Some(StoredValue::S(ws)), Some(StoredValue::S(t))) => {
                        Some((ws.clone(), t.clone()))
                    }
                    (Some(StoredValue::S(ws)), _) => Some((ws.clone(), String::new())),
                    _ => None,
                },
            )
            .collect();
        // A record without a readable tenant owns its id under no tenant: every directory of that
        // id is then a tenant mismatch, which the planner keeps.
        let owners = owners_from(owned.iter().map(|(w, t)| (w.as_str(), t.as_str())));
        let access_points = match &self.config.efs_file_system_id {
            Some(fs_id) => self
                .access_points
                .list(fs_id)
                .await?
                .into_iter()
                .map(|info| AccessPointEntry::new(info, &self.config.access_points))
                .collect(),
            None => Vec::new(),
        };
        let in_use = self.in_use().await?;
        let plan = plan_sweep(
            &live,
            &trash,
            &owners,
            &access_points,
            &in_use,
            now,
            &self.rules(),
        );
        let Some(archive) = &self.archive else {
            return Ok(plan);
        };
        // The records kept with the entries due, for the archive policy. One that cannot be read
        // is left out, and an entry without its record is archived for the longest retention.
        let (fs, due) = (self.fs.clone(), purges_due(&plan));
        let kept = tokio::task::spawn_blocking(move || {
            due.into_iter()
                .filter_map(|entry| {
                    let name = entry.parse::<TrashName>().ok()?;
                    let record = fs.read_trash_record(&name).ok()?;
                    Some((entry, record))
                })
                .collect::<BTreeMap<_, _>>()
        })
        .await
        .map_err(|e| SweepError::Task(e.to_string()))?;
        Ok(route_purges(plan, &archive.policy, &kept))
    }
}
