//! One heartbeat event: parse it, find the workspaces it is about, and lift the per-workspace
//! handlers ([`crate::touch`], [`crate::recompute`]) to them with [`Batch`]; on the schedule, the
//! expiry notices ([`crate::notices`]).

use lifecycle_domain::activity::{RecomputeScope, SkipReason};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::record::by_stored_id;
use lifecycle_domain::WorkspaceId;
use lifecycle_ports::workspaces_named_by_tasks;
use lifecycle_runtime::batch::Batch;
use lifecycle_runtime::observe::Audit;
use lifecycle_runtime::Invocation;
use serde_json::Value;
use tracing::{info, warn};

use crate::event::{self, HeartbeatInput};
use crate::report::{reject, HeartbeatError, Invalid, Skipped, Summary, Unread};
use crate::Heartbeat;

impl Heartbeat {
    /// Handles one event at `now`, without a deadline (the CLI, tests).
    pub async fn handle(&self, event: Value, now: i64) -> Result<Summary, HeartbeatError> {
        self.handle_invocation(event, Invocation::at(now)).await
    }

    /// Handles one event; workspaces not started before the invocation's deadline are `failed`.
    pub async fn handle_invocation(
        &self,
        event: Value,
        invocation: Invocation,
    ) -> Result<Summary, HeartbeatError> {
        let now = invocation.now;
        let batch = Batch::new(self.config.record_concurrency, invocation.deadline);
        let mut summary = Summary {
            dry_run: self.config.dry_run,
            ..Summary::default()
        };
        match event::parse(&event)? {
            HeartbeatInput::Touch { ids, at } => {
                let at = event::activity_at(at, now);
                self.touch(&batch, ids, at, now, &mut summary).await;
            }
            HeartbeatInput::TaskStateChange {
                task,
                cluster_arn,
                at,
            } => {
                let mut ids: Vec<String> = task.workspaces().map(str::to_string).collect();
                if ids.is_empty() {
                    // The event carries no tags: ask ECS for them (a failed describe is an
                    // error, so the event is retried; only MISSING means "no such task").
                    let cluster = cluster_arn.or_else(|| self.config.ecs_cluster.clone());
                    match (&self.tasks, cluster) {
                        (Some(tasks), Some(cluster)) => {
                            if let Some(described) = tasks.describe(&cluster, &task.arn).await? {
                                ids = described.workspaces().map(str::to_string).collect();
                            }
                        }
                        _ => {
                            warn!(task = %task.arn, "ECS_CLUSTER=none: the task cannot be described")
                        }
                    }
                }
                if ids.is_empty() {
                    info!(task = %task.arn, "task names no workspace; nothing to touch");
                }
                let at = event::activity_at(Some(at), now);
                self.touch(&batch, ids, at, now, &mut summary).await;
            }
            HeartbeatInput::Scheduled { at } => {
                if let Some(tasks) = &self.tasks {
                    // A liveness scan: the workspaces of the tasks that could be read are
                    // extended; a task (or access point) that could not be read is reported,
                    // and the invocation fails after the others were extended, to be retried.
                    let (ids, unread) =
                        workspaces_named_by_tasks(tasks.as_ref(), self.access_points.as_ref())
                            .await?;
                    let at = event::activity_at(Some(at), now);
                    self.touch(&batch, ids, at, now, &mut summary).await;
                    for (what, e) in unread {
                        warn!(task = %what, error = %e, "could not be read: its workspaces may not be extended this time");
                        summary.unread.push(Unread {
                            what,
                            error: e.to_string(),
                        });
                    }
                }
                if self.notices.is_some() {
                    self.send_notices(now, &mut summary).await?;
                }
            }
            HeartbeatInput::Recompute(scope) => self.recompute(&batch, scope, &mut summary).await?,
        }
        summary.finish()
    }

    /// Valid, distinct ids; the invalid ones are reported and audited, never looked up.
    fn valid_ids(&self, ids: Vec<String>, summary: &mut Summary) -> Vec<WorkspaceId> {
        let ids = event::ids(ids);
        for (id, e) in ids.invalid {
            let shown: String = id.chars().take(160).collect();
            Audit::new(
                shown,
                Action::RejectRecord,
                Reason::InvalidRecord,
                self.config.dry_run,
            )
            .error(e)
            .emit();
            summary.skipped.push(Skipped {
                workspace_id: id,
                reason: SkipReason::InvalidId,
            });
        }
        ids.valid
    }

    /// Activity at `at` for each workspace named: one batch read, then per workspace a
    /// conditional write (concurrently, [`crate::touch`]).
    async fn touch(
        &self,
        batch: &Batch,
        ids: Vec<String>,
        at: i64,
        now: i64,
        summary: &mut Summary,
    ) {
        let ids = self.valid_ids(ids, summary);
        if ids.is_empty() {
            return;
        }
        let mut items = match self.table.get_many(&ids).await {
            Ok(items) => by_stored_id(items),
            Err(e) => {
                for id in &ids {
                    summary.fail(id, &e);
                }
                return;
            }
        };
        let work = ids
            .into_iter()
            .map(|id| {
                let item = items.remove(id.as_str());
                (id, item)
            })
            .collect();
        let report = batch
            .run(
                work,
                |(id, _)| id.clone(),
                |(id, _)| id.clone(),
                |(id, item)| async move { self.touch_one(&id, item, at, now).await },
            )
            .await;
        summary.record_batch(report);
    }

    /// Re-derives the expiry of the records named (or all) from their last activity.
    async fn recompute(
        &self,
        batch: &Batch,
        scope: RecomputeScope,
        summary: &mut Summary,
    ) -> Result<(), HeartbeatError> {
        let items = match scope {
            RecomputeScope::All => self.table.scan(None).await?,
            RecomputeScope::Ids(ids) => {
                let ids = self.valid_ids(ids, summary);
                let items = self.table.get_many(&ids).await?;
                let found = by_stored_id(items.clone());
                summary.unknown.extend(
                    ids.iter()
                        .filter(|id| !found.contains_key(id.as_str()))
                        .map(|id| id.to_string()),
                );
                items
            }
        };
        let mut readable = Vec::with_capacity(items.len());
        for item in items {
            match item.record_id() {
                Ok(id) => readable.push((id, item)),
                Err(unreadable) => {
                    let dry_run = self.config.dry_run;
                    reject(
                        &unreadable.raw,
                        &unreadable.error,
                        "its id is not readable",
                        dry_run,
                    );
                    summary.invalid.push(Invalid {
                        workspace_id: unreadable.raw,
                        error: unreadable.error,
                        kept_alive_until: None,
                    });
                }
            }
        }
        let report = batch
            .run(
                readable,
                |(id, _)| id.clone(),
                |(id, _)| id.clone(),
                |(id, item)| async move { self.recompute_one(&id, item).await },
            )
            .await;
        summary.record_batch(report);
        Ok(())
    }
}
