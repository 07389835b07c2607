//! The prune past one invocation (`WORK_QUEUE_URL`, `RUNS_TABLE`): the scheduled run is the
//! coordinator, which reads what is in use once and sends one unit per selected repository,
//! carrying the uses that may name it; the same function on the queue's events prunes one
//! repository: plans it with those uses, then, right before its archives and deletes, reads what
//! is in use again and plans again, as one invocation does.

use lifecycle_domain::fanout::Counters;
use lifecycle_domain::prune::{ImageUse, PrunePlan, UseIndex};
use lifecycle_runtime::fanout::{FanOut, RunOpened, UnitDone};
use lifecycle_runtime::Invocation;
use serde::{Deserialize, Serialize};

use crate::report::PruneSummary;
use crate::{PruneError, Pruner};

/// A prune unit's own work (the envelope, run and unit id, is the runtime's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneUnit {
    pub kind: PruneUnitKind,
    pub repository: String,
    /// The uses that may name it, read once by the coordinator.
    pub uses: Vec<ImageUse>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PruneUnitKind {
    Prune,
}

/// What the coordinator returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneCoordinated {
    #[serde(flatten)]
    pub run: RunOpened,
    pub dry_run: bool,
    pub repositories: usize,
    pub uses: usize,
}

impl Pruner {
    /// The coordinator: what is in use (once), the selected repositories, one unit each.
    pub async fn coordinate(
        &self,
        fan_out: &FanOut,
        now: i64,
    ) -> Result<PruneCoordinated, PruneError> {
        let (uses, names) = self.uses_and_repositories().await?;
        let index = UseIndex::new(&uses);
        let works = names
            .iter()
            .map(|repository| {
                let unit = PruneUnit {
                    kind: PruneUnitKind::Prune,
                    repository: repository.clone(),
                    uses: index.uses_for(repository),
                };
                serde_json::to_value(unit).expect("a unit serializes")
            })
            .collect();
        // Every count a unit adds starts at zero, so the run's metric set is whole.
        let mut counters = PruneSummary::default().counters();
        counters.insert("Repositories".into(), names.len() as i64);
        let run = fan_out
            .open_run(now, counters, works)
            .await
            .map_err(PruneError::Run)?;
        if !run.not_enqueued.is_empty() {
            return Err(PruneError::NotEnqueued {
                run_id: run.run_id.clone().unwrap_or_default(),
                count: run.not_enqueued.len(),
                units: run.not_enqueued.join(","),
            });
        }
        Ok(PruneCoordinated {
            run,
            dry_run: self.settings.dry_run,
            repositories: names.len(),
            uses: uses.len(),
        })
    }

    /// A worker's unit: one repository planned with the uses it carries, then pruned with the
    /// usual re-check (what is in use read again right before its deletes).
    pub async fn work_unit(
        &self,
        body: String,
        invocation: Invocation,
    ) -> Result<UnitDone, String> {
        let unit: PruneUnit =
            serde_json::from_str(&body).map_err(|e| format!("not a prune unit: {e}"))?;
        if !self.settings.selects(&unit.repository) {
            // Not a repository this function prunes, whatever the message says.
            return Err(format!(
                "{} is not selected by ECR_REPOSITORIES: not pruned",
                unit.repository
            ));
        }
        let uses = UseIndex::new(&unit.uses);
        let plan = self
            .plan_repository(&unit.repository, &uses, invocation.now, None)
            .await
            .map_err(|e| e.to_string())?;
        let plan = PrunePlan {
            repositories: vec![plan],
        };
        let result = self
            .execute_with_progress(
                plan,
                invocation.now,
                invocation.deadline,
                &lifecycle_runtime::progress::Silent,
            )
            .await;
        let (summary, failed) = match result {
            Ok(summary) => (summary, 0),
            Err(PruneError::Recheck { summary, .. } | PruneError::Restore { summary, .. }) => {
                (*summary, 1)
            }
            Err(e) => return Err(e.to_string()),
        };
        let mut counters: Counters = summary.counters();
        counters.insert("RepositoriesFailed".into(), failed);
        Ok(UnitDone {
            counters,
            continuation: None,
        })
    }
}
