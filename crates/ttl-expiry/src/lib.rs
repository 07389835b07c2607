//! ttl-expiry: when DynamoDB TTL deletes a workspace record, remove that workspace's access point
//! and move its data to the trash, safely and idempotently.
//!
//! Parse ([`event`]), fetch, decide, act ([`handler`], with [`in_use`] and [`trash`]), report
//! ([`report`]): each record is classified ([`lifecycle_domain::stream`]), re-checked against the
//! table and ECS, planned ([`lifecycle_domain::expiry::plan_expiry`]) and then acted on, with one
//! audit line per action; [`lifecycle_runtime::batch`] lifts the per-record handler to a batch.

mod event;
mod handler;
mod in_use;
pub mod replay;
mod report;
mod simulation;
#[cfg(test)]
mod tests;
mod trash;

use std::sync::Arc;

use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::{AccessPoints, Tasks, WorkspaceTable};
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};
use serde_json::Value;

pub use aws_lambda_events::event::streams::DynamoDbEventResponse;
pub use event::EventError;

/// Everything the function needs, built once in `main` and shared by every invocation.
pub struct TtlExpiry {
    pub table: Arc<dyn WorkspaceTable>,
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `ECS_CLUSTER` is `none`: the in-use guard was explicitly switched off.
    pub tasks: Option<Arc<dyn Tasks>>,
    pub fs: WorkspaceFs,
    pub config: Config,
    /// A dry run's memory of what the batch's earlier records would have changed.
    pub(crate) simulated: simulation::Simulation,
}

impl Function for TtlExpiry {
    const VARS: &'static [&'static str] = &[];

    type Output = DynamoDbEventResponse;
    type Error = EventError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let config = Config::from(env)?;
        Ok(Self {
            table: aws.table(&config),
            access_points: aws.access_points(),
            tasks: aws.tasks(&config),
            fs: WorkspaceFs::new(&config.efs_root),
            config,
            simulated: Default::default(),
        })
    }

    async fn handle(
        &self,
        event: Value,
        invocation: Invocation,
    ) -> Result<DynamoDbEventResponse, EventError> {
        TtlExpiry::handle(self, event, invocation.now, invocation.deadline).await
    }
}
