//! ecr-pruner: deletes the ECR images nobody needs, never one in use; indexes before their
//! children, subjects before their referrers.
//!
//! A run is two steps with a value between them:
//! - [`Pruner::plan`] reads what is in use (by digest) and every selected repository, and plans
//!   each with [`lifecycle_domain::prune::plan_repository`] within its caps: a [`PrunePlan`]
//!   with a verdict and a reason for every image. Reads only.
//! - [`Pruner::execute`] carries out that plan: first the restores of archived images in use
//!   (every repository), then right before each repository's archives and deletes it reads
//!   everything again and plans again ([`lifecycle_domain::prune::replan_repository`]), and
//!   archives only what both plans archive and deletes only what both plans delete, with
//!   per-image retries of retryable failures.
//!
//! The Lambda handler does both ([`Pruner::run`]); `lifecycle apply prune` shows the plan and
//! executes it once the operator confirms.

mod execute;
pub mod fanout;
mod plan;
pub mod report;
pub mod settings;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use lifecycle_domain::prune::{ManifestFacts, PrunePlan};
use lifecycle_ports::{Deployments, Registry, ServiceError};
use lifecycle_runtime::config::Env;
use lifecycle_runtime::fanout::{route, FanOut, Route};
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};

pub use execute::DELETE_ATTEMPTS;
pub use report::{Failed, NotDeleted, PruneSummary, RepoSummary};
pub use settings::Settings;

pub struct Pruner {
    pub registry: Arc<dyn Registry>,
    pub deployments: Arc<dyn Deployments>,
    pub settings: Settings,
    /// What each manifest read so far says. A digest is the hash of its manifest, so this
    /// never goes stale: the re-check reads only manifests it has not seen.
    manifests: Mutex<HashMap<String, ManifestFacts>>,
    /// `WORK_QUEUE_URL` and `RUNS_TABLE`: a scheduled run coordinates (one unit per
    /// repository), an SQS event's units are worked ([`fanout`]).
    pub fan_out: Option<FanOut>,
}

/// What an invocation returns: a whole run's summary, a coordinator's run, or a worker's
/// partial batch response.
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum PruneOutput {
    Run(PruneSummary),
    Coordinated(fanout::PruneCoordinated),
    Units(SqsBatchResponse),
}

impl Function for Pruner {
    const VARS: &'static [&'static str] = Settings::VARS;

    type Output = PruneOutput;
    type Error = PruneError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let settings = Settings::from(env)?;
        let mut pruner = Self::new(
            aws.registry(),
            aws.deployments(settings.ecs_clusters.as_deref()),
            settings,
        );
        pruner.fan_out = pruner
            .settings
            .fan_out
            .as_ref()
            .map(|f| aws.fan_out("ecr-pruner", f, pruner.settings.dry_run));
        Ok(pruner)
    }

    /// An SQS event's units are worked; any other event (the daily schedule's, a manual invoke)
    /// runs the pruner, or with fan-out coordinates it.
    async fn handle(
        &self,
        event: serde_json::Value,
        invocation: Invocation,
    ) -> Result<PruneOutput, PruneError> {
        match route(self.fan_out.as_ref(), &event).map_err(PruneError::Event)? {
            Route::Work(fan_out) => {
                let response = fan_out
                    .work(event, invocation, |body, invocation| {
                        self.work_unit(body, invocation)
                    })
                    .await
                    .map_err(|e| PruneError::Event(e.to_string()))?;
                Ok(PruneOutput::Units(response))
            }
            Route::Coordinate(fan_out) => Ok(PruneOutput::Coordinated(
                self.coordinate(fan_out, invocation.now).await?,
            )),
            Route::Run => Ok(PruneOutput::Run(
                self.run_until(invocation.now, invocation.deadline).await?,
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// A listing failed: nothing is deleted, because a failed read must never look like
    /// "nothing is in use".
    #[error("listing failed, nothing was deleted: {0}")]
    Service(#[from] ServiceError),
    /// The re-check of some repositories could not read them: nothing was deleted there (the
    /// others were pruned; the summary says what happened).
    #[error("re-check failed, nothing was deleted in {}: {}", .failed.join(", "), .summary.repositories.iter().filter_map(|r| r.error.as_deref()).collect::<Vec<_>>().join("; "))]
    Recheck {
        failed: Vec<String>,
        summary: Box<PruneSummary>,
    },
    /// Archived images in use could not be restored (`repository@digest`): they still cannot
    /// be pulled. Everything else was done; the summary says what.
    #[error("restore failed, still archived though in use: {}", .failed.join(", "))]
    Restore {
        failed: Vec<String>,
        summary: Box<PruneSummary>,
    },
    #[error("event refused, nothing was deleted: {0}")]
    Event(String),
    /// The run's ledger could not be opened (another run still going, or a failed write).
    #[error("no run opened, nothing was deleted: {0}")]
    Run(ServiceError),
    /// Some units' messages could not be sent: the others go on; these wait for the next run.
    #[error("run {run_id}: {count} units could not be sent (the others go on): {units}")]
    NotEnqueued {
        run_id: String,
        count: usize,
        units: String,
    },
}

impl From<PruneError> for lambda_runtime::Diagnostic {
    fn from(e: PruneError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "PruneFailed".into(),
            error_message: e.to_string(),
        }
    }
}

impl Pruner {
    pub fn new(
        registry: Arc<dyn Registry>,
        deployments: Arc<dyn Deployments>,
        settings: Settings,
    ) -> Self {
        Self {
            registry,
            deployments,
            settings,
            manifests: Mutex::new(HashMap::new()),
            fan_out: None,
        }
    }

    /// The whole run, as the Lambda handler does it: [`Pruner::plan`], then
    /// [`Pruner::execute`] of that plan, then the run's metrics.
    pub async fn run(&self, now: i64) -> Result<PruneSummary, PruneError> {
        self.run_until(now, None).await
    }

    /// [`Pruner::run`], starting no repository's archives or deletions after `deadline` (the
    /// invocation's, less its margin): those are planned again by the next run.
    pub async fn run_until(
        &self,
        now: i64,
        deadline: Option<std::time::Instant>,
    ) -> Result<PruneSummary, PruneError> {
        let plan: PrunePlan = self.plan(now).await?;
        let result = self
            .execute_with_progress(plan, now, deadline, &lifecycle_runtime::progress::Silent)
            .await;
        match &result {
            Ok(summary) => summary.emit_metrics(),
            Err(PruneError::Recheck { summary, .. } | PruneError::Restore { summary, .. }) => {
                summary.emit_metrics()
            }
            Err(
                PruneError::Service(_)
                | PruneError::Event(_)
                | PruneError::Run(_)
                | PruneError::NotEnqueued { .. },
            ) => {}
        }
        result
    }
}
