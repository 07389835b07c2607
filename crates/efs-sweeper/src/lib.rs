//! efs-sweeper: weekly, purges trash entries whose grace has elapsed, moves workspace
//! directories that no record owns into the trash, and deletes workspace access points no record
//! owns (marking those of unknown age first, so a later run can delete them).
//!
//! A run is two steps with a value between them:
//! - [`Sweeper::plan`] lists the file system, the table, the access points and the cluster's
//!   tasks, and decides with [`lifecycle_domain::sweep::plan_sweep`]: a [`SweepPlan`] whose
//!   actions are within the caps (what a cap holds back is `skipped_cap`, and `cap_exceeded`
//!   says why). Reads only.
//! - [`Sweeper::execute`] carries out exactly that plan: each action re-checked from fresh reads
//!   right before it is taken, nothing done that is not in the plan.
//!
//! The Lambda handler does both ([`Sweeper::run`]); `lifecycle apply sweep` shows the plan and
//! executes it once the operator confirms.

mod acts;
mod deleter;
mod execute;
pub mod fanout;
mod plan;
mod recheck;
pub mod report;
pub mod settings;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use lifecycle_domain::archive::ArchivePolicy;
use lifecycle_domain::sweep::SweepPlan;
use lifecycle_fs::{FsError, WorkspaceFs};
use lifecycle_ports::{AccessPoints, ArchiveStore, ServiceError, Tasks, WorkspaceTable};
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::fanout::{route, FanOut, Route};
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};

pub use deleter::LazyDeleter;
pub use report::{Done, NotDone, SweepSummary, Unfinished};
pub use settings::{Settings, DEFAULT_MAX_PURGE_PERCENT};

pub struct Sweeper {
    pub table: Arc<dyn WorkspaceTable>,
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `ECS_CLUSTER` is `none`: the in-use guard was explicitly switched off.
    pub tasks: Option<Arc<dyn Tasks>>,
    pub fs: WorkspaceFs,
    pub deleter: Arc<LazyDeleter>,
    pub config: Config,
    pub settings: Settings,
    /// `ARCHIVE_BUCKET`: entries the policy archives are archived before their purge; `None`:
    /// every entry past its grace is purged, as before.
    pub archive: Option<ArchiveTarget>,
    /// `WORK_QUEUE_URL` and `RUNS_TABLE`: a scheduled run coordinates, an SQS event's units are
    /// worked ([`fanout`]); `None`: one invocation plans and acts.
    pub fan_out: Option<FanOut>,
}

/// What an invocation returns: a whole run's summary, a coordinator's run, or a worker's
/// partial batch response (the messages SQS delivers again).
#[derive(Debug, serde::Serialize)]
#[serde(untagged)]
pub enum SweepOutput {
    Run(SweepSummary),
    Coordinated(fanout::SweepCoordinated),
    Units(SqsBatchResponse),
}

/// Where and how trash entries are archived before their purge.
pub struct ArchiveTarget {
    pub store: Arc<dyn ArchiveStore>,
    pub policy: ArchivePolicy,
    /// Every upload part but the last is this size ([`lifecycle_fs::archive::PART_SIZE`]).
    pub part_size: usize,
}

impl Function for Sweeper {
    const VARS: &'static [&'static str] = Settings::VARS;
    /// A purge stops cleanly; the rest waits for the next run.
    const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

    type Output = SweepOutput;
    type Error = SweepError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let (config, settings) = (Config::from(env)?, Settings::from(env)?);
        Ok(Self {
            table: aws.table(&config),
            access_points: aws.access_points(),
            tasks: aws.tasks(&config),
            fs: WorkspaceFs::new(&config.efs_root),
            deleter: Arc::new(LazyDeleter::new(settings.delete_concurrency)),
            archive: settings.archive.as_ref().map(|a| ArchiveTarget {
                store: aws.archive(&a.bucket),
                policy: a.policy.clone(),
                part_size: lifecycle_fs::archive::PART_SIZE,
            }),
            fan_out: settings
                .fan_out
                .as_ref()
                .map(|f| aws.fan_out("efs-sweeper", f, config.dry_run)),
            config,
            settings,
        })
    }

    /// An SQS event's units are worked; any other event (the schedule's, a manual invoke) runs
    /// the sweep, or with fan-out coordinates it.
    async fn handle(
        &self,
        event: serde_json::Value,
        invocation: Invocation,
    ) -> Result<SweepOutput, SweepError> {
        match route(self.fan_out.as_ref(), &event).map_err(SweepError::Event)? {
            Route::Work(fan_out) => {
                let response = fan_out
                    .work(event, invocation, |body, invocation| {
                        self.work_unit(body, invocation)
                    })
                    .await
                    .map_err(|e| SweepError::Event(e.to_string()))?;
                Ok(SweepOutput::Units(response))
            }
            Route::Coordinate(fan_out) => Ok(SweepOutput::Coordinated(
                self.coordinate(fan_out, invocation.now).await?,
            )),
            Route::Run => Ok(SweepOutput::Run(
                self.run(invocation.now, invocation.deadline).await?,
            )),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A listing failed: the run stops before deciding anything, because a failed read must
    /// never look like "nothing exists" (and so "everything is orphaned").
    #[error("listing failed, nothing was done: {0}")]
    Service(#[from] ServiceError),
    #[error("listing failed, nothing was done: {0}")]
    Fs(#[from] FsError),
    #[error("a task failed: {0}")]
    Task(String),
    #[error("event refused, nothing was done: {0}")]
    Event(String),
    /// The run's ledger could not be opened (another run still going, or a failed write):
    /// no unit was sent.
    #[error("no run opened, nothing was done: {0}")]
    Run(ServiceError),
    /// Some units' messages could not be sent: the others go on; these wait for the next run.
    #[error("run {run_id}: {count} units could not be sent (the others go on): {units}")]
    NotEnqueued {
        run_id: String,
        count: usize,
        units: String,
    },
}

impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(e: SweepError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "SweepFailed".into(),
            error_message: e.to_string(),
        }
    }
}

impl Sweeper {
    /// The whole run, as the Lambda handler does it: [`Sweeper::plan`], then
    /// [`Sweeper::execute`] of that plan, then the run's metrics (its duration counts the
    /// listing too).
    pub async fn run(
        &self,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<SweepSummary, SweepError> {
        let started = Instant::now();
        let plan: SweepPlan = self.plan(now).await?;
        let mut summary = self.execute(plan, now, deadline).await;
        summary.duration_ms = started.elapsed().as_millis() as u64;
        summary.emit_metrics();
        Ok(summary)
    }
}
