//! heartbeat: activity (a dispatch, an ECS task event, a running task) pushes a workspace's expiry
//! forward by its tier's and subscription's retention; it never shortens one, never creates a
//! record and never gives a held workspace an expiry. On its schedule it also sends expiry notices.
//!
//! Parse ([`event`]), fetch and lift the per-workspace handlers to the batch ([`handler`]),
//! decide and act per workspace ([`touch`], [`recompute`], [`notices`], every write conditioned
//! on what was read: [`write`]), report ([`report`]).

mod event;
mod handler;
mod notices;
mod recompute;
mod report;
mod settings;
#[cfg(test)]
mod tests;
mod touch;
mod write;

use std::sync::Arc;

use lifecycle_ports::{AccessPoints, Notices, Tasks, WorkspaceTable};
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};
use serde_json::Value;

pub use lifecycle_domain::activity::SkipReason;
pub use report::{
    Extended, Failed, HeartbeatError, Invalid, Noticed, Recomputed, Skipped, Summary,
};
pub use settings::{Settings, DEFAULT_MIN_INTERVAL_SECONDS, DEFAULT_NOTICE_DAYS};

pub struct Heartbeat {
    pub table: Arc<dyn WorkspaceTable>,
    /// `None` without `ECS_CLUSTER`: no scheduled scan of running tasks.
    pub tasks: Option<Arc<dyn Tasks>>,
    /// The scheduled scan describes the access points tasks mount: their `workspaceId` tag
    /// names the workspace of a task that names it no other way.
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `NOTICE_EVENT_BUS=off`.
    pub notices: Option<Arc<dyn Notices>>,
    pub config: Config,
    pub settings: Settings,
}

impl Function for Heartbeat {
    const VARS: &'static [&'static str] = Settings::VARS;

    type Output = Summary;
    type Error = HeartbeatError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let (config, settings) = (Config::from(env)?, Settings::from(env)?);
        Ok(Self {
            table: aws.table(&config),
            tasks: aws.tasks(&config),
            access_points: aws.access_points(),
            notices: settings.notice_bus.as_deref().map(|bus| aws.notices(bus)),
            config,
            settings,
        })
    }

    async fn handle(
        &self,
        event: Value,
        invocation: Invocation,
    ) -> Result<Summary, HeartbeatError> {
        self.handle_invocation(event, invocation).await
    }
}
