//! efs-sweeper: weekly, purges trash entries whose grace has elapsed, moves workspace
//! directories that no record owns into the trash, and deletes workspace access points no record
//! owns (marking those of unknown age first, so a later run can delete them).
//! List, plan ([`lifecycle_domain::sweep::plan_sweep`]), re-check, act, report.

use std::sync::Arc;
use std::time::Instant;

use lifecycle_domain::access_point::ORPHAN_SINCE_TAG;
use lifecycle_domain::layout::fresh_nonce;
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::layout::PURGING_PREFIX;
use lifecycle_domain::reasons::Action;
use lifecycle_domain::record::attr;
use lifecycle_domain::record::Value as StoredValue;
use lifecycle_domain::sweep::describe;
use lifecycle_domain::sweep::owners_from;
use lifecycle_domain::sweep::plan_sweep;
use lifecycle_domain::sweep::AccessPointEntry;
use lifecycle_domain::sweep::SweepPlan;
use lifecycle_domain::sweep::SweepReason;
use lifecycle_domain::sweep::SweepRules;
use lifecycle_domain::sweep::SweepTarget;
use lifecycle_domain::tasks::InUse;
use lifecycle_domain::tasks::WorkspaceRef;
use lifecycle_domain::TenantId;
use lifecycle_domain::WorkspaceId;
use lifecycle_fs::FsError;
use lifecycle_fs::MoveOutcome;
use lifecycle_fs::Presence;
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::AccessPoints;
use lifecycle_ports::ServiceError;
use lifecycle_ports::Tasks;
use lifecycle_ports::WorkspaceTable;
use lifecycle_runtime::config::Config;
use lifecycle_runtime::config::ConfigError;
use lifecycle_runtime::config::Env;
use lifecycle_runtime::observe::emit_metrics;
use lifecycle_runtime::observe::Audit;
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};
use serde::Serialize;
use tracing::{info, warn};
use tree_deleter::ParallelDeleter;
use tree_deleter::DEFAULT_DELETE_WORKERS;

/// efs-sweeper's own settings, beside the shared [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub orphan_min_age_hours: u32,
    pub max_actions: usize,
    pub max_action_percent: u32,
    pub max_purge_percent: u32,
    pub delete_concurrency: usize,
}

impl Settings {
    /// The variables the sweeper reads beside [`lifecycle_runtime::config::SHARED_VARS`].
    pub const VARS: &'static [&'static str] = &[
        "ORPHAN_MIN_AGE_HOURS",
        "MAX_ACTIONS",
        "MAX_ACTION_PERCENT",
        "DELETE_CONCURRENCY",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        Ok(Self {
            orphan_min_age_hours: env.number("ORPHAN_MIN_AGE_HOURS", 24, 1..=8760)?,
            max_actions: env.number("MAX_ACTIONS", 100, 0..=1_000_000)?,
            max_action_percent: env.number("MAX_ACTION_PERCENT", 20, 0..=100)?,
            max_purge_percent: env.number(
                "MAX_PURGE_PERCENT",
                DEFAULT_MAX_PURGE_PERCENT,
                0..=100,
            )?,
            delete_concurrency: env.number(
                "DELETE_CONCURRENCY",
                DEFAULT_DELETE_WORKERS,
                1..=512,
            )?,
        })
    }
}

/// A weekly run with a 7-day grace finds about half the trash due; all of it says the clock or
/// `TRASH_GRACE_DAYS` is wrong.
pub const DEFAULT_MAX_PURGE_PERCENT: u32 = 75;

pub struct Sweeper {
    pub table: Arc<dyn WorkspaceTable>,
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `ECS_CLUSTER` is `none`: the in-use guard was explicitly switched off.
    pub tasks: Option<Arc<dyn Tasks>>,
    pub fs: WorkspaceFs,
    pub deleter: Arc<ParallelDeleter>,
    pub config: Config,
    pub settings: Settings,
}

impl Function for Sweeper {
    const VARS: &'static [&'static str] = Settings::VARS;
    /// A purge stops cleanly; the rest waits for the next run.
    const DEADLINE_MARGIN: std::time::Duration = std::time::Duration::from_secs(30);

    type Output = SweepSummary;
    type Error = SweepError;

    fn build<L: Fn(&str) -> Option<String>>(env: &Env<L>, aws: &Aws) -> Result<Self, BuildError> {
        let (config, settings) = (Config::from(env)?, Settings::from(env)?);
        Ok(Self {
            table: aws.table(&config),
            access_points: aws.access_points(),
            tasks: aws.tasks(&config),
            fs: WorkspaceFs::new(&config.efs_root),
            deleter: Arc::new(ParallelDeleter::new(settings.delete_concurrency)?),
            config,
            settings,
        })
    }

    /// Any event runs the sweep (the schedule's, or a manual invoke).
    async fn handle(
        &self,
        _event: serde_json::Value,
        invocation: Invocation,
    ) -> Result<SweepSummary, SweepError> {
        self.run(invocation.now, invocation.deadline).await
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
}

impl From<SweepError> for lambda_runtime::Diagnostic {
    fn from(e: SweepError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "SweepFailed".into(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    #[serde(flatten)]
    pub target: SweepTarget,
    pub reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepSummary {
    pub dry_run: bool,
    /// What was done (or, in a dry run, would be done).
    pub actions: Vec<Done>,
    /// Planned actions not taken at the last moment (re-created record, deadline, error).
    pub not_done: Vec<Done>,
    pub skipped: Vec<lifecycle_domain::sweep::Skip>,
    pub cap_exceeded: Option<String>,
    pub files_freed: u64,
    pub bytes_freed: u64,
    pub stopped_at_deadline: bool,
    pub duration_ms: u64,
}

impl Sweeper {
    pub fn rules(&self) -> SweepRules {
        SweepRules {
            trash_grace_days: self.config.trash_grace_days,
            orphan_min_age_hours: self.settings.orphan_min_age_hours,
            max_actions: self.settings.max_actions,
            max_action_percent: self.settings.max_action_percent,
            max_purge_percent: self.settings.max_purge_percent,
            file_system_id: self.config.efs_file_system_id.clone(),
        }
    }

    /// One complete listing of the cluster's active tasks (a failed or partial one is an error).
    async fn in_use(&self) -> Result<InUse, ServiceError> {
        let Some(tasks) = &self.tasks else {
            return Ok(InUse::unguarded());
        };
        let mut index = InUse::from_tasks(&tasks.active_tasks().await?);
        // What each mounted access point is (its root, its workspace tag), so a task is seen
        // through any access point of a workspace.
        let mut described = Vec::new();
        for id in index.mounted_access_points() {
            if let Some(info) = self.access_points.describe(&id).await? {
                described.push(info);
            }
        }
        index.resolve_access_points(&described);
        Ok(index)
    }

    /// Lists the file system, the table and the access points, and plans. Reads only.
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
        Ok(plan_sweep(
            &live,
            &trash,
            &owners,
            &access_points,
            &in_use,
            now,
            &self.rules(),
        ))
    }

    pub async fn run(
        &self,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<SweepSummary, SweepError> {
        let started = Instant::now();
        let plan = self.plan(now).await?;
        Ok(self.execute(plan, now, deadline, started).await)
    }

    /// Acts on a plan: each action re-checked right before it is taken.
    pub async fn execute(
        &self,
        plan: SweepPlan,
        now: i64,
        deadline: Option<Instant>,
        started: Instant,
    ) -> SweepSummary {
        let dry_run = self.config.dry_run;
        let mut summary = SweepSummary {
            dry_run,
            skipped: plan.skipped.clone(),
            cap_exceeded: plan.cap_exceeded.clone(),
            ..SweepSummary::default()
        };
        for skip in &plan.skipped {
            if skip.reason == SweepReason::SkippedCap {
                audit(&skip.what, None, Action::Skip, skip.reason, dry_run).emit();
            }
        }
        if let Some(why) = &plan.cap_exceeded {
            warn!(cap = %why, "cap exceeded: acting on nothing");
        }
        for planned in plan.actions {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                summary.stopped_at_deadline = true;
                summary.not_done.push(Done {
                    target: planned.target,
                    reason: "deadline".into(),
                    files: None,
                    bytes: None,
                });
                continue;
            }
            match self
                .act(&planned.target, planned.reason, now, deadline)
                .await
            {
                Ok(done) => {
                    summary.files_freed += done.files.unwrap_or(0);
                    summary.bytes_freed += done.bytes.unwrap_or(0);
                    if done.reason == planned.reason.as_str() {
                        summary.actions.push(done);
                    } else {
                        if done.reason == "stopped_at_deadline" {
                            summary.stopped_at_deadline = true;
                        }
                        summary.not_done.push(done);
                    }
                }
                Err(e) => {
                    audit(
                        &describe(&planned.target),
                        None,
                        action_of(&planned.target),
                        planned.reason,
                        dry_run,
                    )
                    .error(&e)
                    .emit();
                    summary.not_done.push(Done {
                        target: planned.target,
                        reason: format!("error: {e}"),
                        files: None,
                        bytes: None,
                    });
                }
            }
        }
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let count = |kind: fn(&SweepTarget) -> bool| {
            summary.actions.iter().filter(|a| kind(&a.target)).count() as f64
        };
        emit_metrics(
            "efs-sweeper",
            &[
                (
                    "TrashPurged",
                    count(|t| matches!(t, SweepTarget::PurgeTrash { .. })),
                    "Count",
                ),
                (
                    "OrphanDirectories",
                    count(|t| matches!(t, SweepTarget::TrashOrphan { .. })),
                    "Count",
                ),
                (
                    "OrphanAccessPoints",
                    count(|t| matches!(t, SweepTarget::DeleteAccessPoint { .. })),
                    "Count",
                ),
                (
                    "OrphanAccessPointsMarked",
                    count(|t| matches!(t, SweepTarget::MarkAccessPoint { .. })),
                    "Count",
                ),
                ("FilesFreed", summary.files_freed as f64, "Count"),
                ("BytesFreed", summary.bytes_freed as f64, "Bytes"),
                (
                    "CapExceeded",
                    if summary.cap_exceeded.is_some() {
                        1.0
                    } else {
                        0.0
                    },
                    "Count",
                ),
                ("NotDone", summary.not_done.len() as f64, "Count"),
                ("DurationMs", summary.duration_ms as f64, "Milliseconds"),
            ],
        );
        info!(
            actions = summary.actions.len(),
            notDone = summary.not_done.len(),
            skipped = summary.skipped.len(),
            capExceeded = summary.cap_exceeded.is_some(),
            bytesFreed = summary.bytes_freed,
            dryRun = dry_run,
            "sweep done"
        );
        summary
    }

    /// One planned action, after a fresh re-check where a record could have appeared.
    async fn act(
        &self,
        target: &SweepTarget,
        reason: SweepReason,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<Done, String> {
        let dry_run = self.config.dry_run;
        let done = |reason: &str, files: Option<u64>, bytes: Option<u64>| Done {
            target: target.clone(),
            reason: reason.to_string(),
            files,
            bytes,
        };
        match target {
            SweepTarget::PurgeTrash { entry } => {
                if let Some(why) = self.owned_trash_entry(entry).await? {
                    audit(&describe(target), None, Action::Skip, reason, dry_run)
                        .error(&why)
                        .emit();
                    return Ok(done("record_exists_without_data", None, None));
                }
                if dry_run {
                    audit(
                        &describe(target),
                        None,
                        Action::PurgeTrashEntry,
                        reason,
                        true,
                    )
                    .emit();
                    return Ok(done(reason.as_str(), None, None));
                }
                let (fs, deleter, entry) = (self.fs.clone(), self.deleter.clone(), entry.clone());
                let report = tokio::task::spawn_blocking(move || {
                    fs.purge_trash_entry_with(Some(&deleter), &entry, deadline)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?;
                let line = audit(
                    &describe(target),
                    None,
                    Action::PurgeTrashEntry,
                    reason,
                    false,
                )
                .freed(report.files, report.bytes);
                if report.complete {
                    line.emit();
                    Ok(done(
                        reason.as_str(),
                        Some(report.files),
                        Some(report.bytes),
                    ))
                } else if report.stopped_at_deadline {
                    line.error("stopped at the deadline; the next run finishes it")
                        .emit();
                    Ok(done(
                        "stopped_at_deadline",
                        Some(report.files),
                        Some(report.bytes),
                    ))
                } else {
                    let first = report
                        .errors
                        .first()
                        .map(|e| format!("{}: {}", e.path.display(), e.error));
                    line.error(format!(
                        "{} entries left: {}",
                        report.errors.len(),
                        first.unwrap_or_default()
                    ))
                    .emit();
                    Ok(done("incomplete", Some(report.files), Some(report.bytes)))
                }
            }
            SweepTarget::FinishStaged { entry } => {
                let name: TrashName = entry
                    .parse()
                    .map_err(|e: lifecycle_domain::layout::TrashNameError| e.to_string())?;
                if dry_run {
                    audit(&describe(target), None, Action::MoveToTrash, reason, true).emit();
                    return Ok(done(reason.as_str(), None, None));
                }
                let fs = self.fs.clone();
                let outcome = tokio::task::spawn_blocking(move || fs.finish_staged(&name))
                    .await
                    .map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
                let resource = match &outcome {
                    MoveOutcome::Moved { entry } | MoveOutcome::AlreadyInTrash { entry } => {
                        entry.display().to_string()
                    }
                    MoveOutcome::Absent => "no data had moved; its lone record removed".into(),
                };
                audit(&describe(target), None, Action::MoveToTrash, reason, false)
                    .resource(resource)
                    .emit();
                Ok(done(reason.as_str(), None, None))
            }
            SweepTarget::TrashOrphan { tenant, workspace } => {
                let (tenant, ws) = (
                    TenantId::parse(tenant.as_str()).map_err(|e| e.to_string())?,
                    WorkspaceId::parse(workspace.as_str()).map_err(|e| e.to_string())?,
                );
                if self.has_record(&ws).await? {
                    audit(
                        workspace,
                        Some(tenant.as_str()),
                        Action::Skip,
                        SweepReason::OrphanNoRecord,
                        dry_run,
                    )
                    .error("a record exists again (re-check); kept")
                    .emit();
                    return Ok(done("recreated", None, None));
                }
                // A fresh listing right before the move: a task may have started since the plan.
                let users = self.users_now(&tenant, &ws).await?;
                if !users.is_empty() {
                    audit(
                        workspace,
                        Some(tenant.as_str()),
                        Action::Skip,
                        SweepReason::SkippedInUse,
                        dry_run,
                    )
                    .resource(users.join(","))
                    .emit();
                    return Ok(done(SweepReason::SkippedInUse.as_str(), None, None));
                }
                if dry_run {
                    audit(
                        workspace,
                        Some(tenant.as_str()),
                        Action::MoveToTrash,
                        reason,
                        true,
                    )
                    .emit();
                    return Ok(done(reason.as_str(), None, None));
                }
                let name = TrashName::new(now, tenant.clone(), ws.clone(), fresh_nonce());
                let json = serde_json::to_vec_pretty(
                    &serde_json::json!({"deletedAt": now, "reason": reason.as_str(), "item": null}),
                )
                .expect("json serializes");
                let fs = self.fs.clone();
                let (t, w) = (tenant.clone(), ws.clone());
                let outcome =
                    tokio::task::spawn_blocking(move || fs.move_to_trash(&t, &w, &name, &json))
                        .await
                        .map_err(|e| e.to_string())?
                        .map_err(|e| e.to_string())?;
                let resource = match &outcome {
                    MoveOutcome::Moved { entry } | MoveOutcome::AlreadyInTrash { entry } => {
                        entry.display().to_string()
                    }
                    MoveOutcome::Absent => "already absent".to_string(),
                };
                audit(
                    workspace,
                    Some(tenant.as_str()),
                    Action::MoveToTrash,
                    reason,
                    false,
                )
                .resource(resource)
                .emit();
                Ok(done(reason.as_str(), None, None))
            }
            SweepTarget::DeleteAccessPoint {
                id,
                workspace,
                listed,
            } => {
                let ws = WorkspaceId::parse(workspace.as_str()).map_err(|e| e.to_string())?;
                let keep = |why: &str| {
                    audit(
                        workspace,
                        None,
                        Action::Skip,
                        SweepReason::OrphanAccessPoint,
                        dry_run,
                    )
                    .resource(id)
                    .error(why)
                    .emit();
                };
                if self.has_record(&ws).await? {
                    keep("a record exists again (re-check); kept");
                    return Ok(done("recreated", None, None));
                }
                // Fresh description: deleted only if it is still exactly what was judged an orphan.
                match self
                    .access_points
                    .describe(id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    None => return Ok(done("already_absent", None, None)),
                    Some(fresh) if fresh != *listed => {
                        keep("its root or tags changed since the listing (re-check); kept");
                        return Ok(done("changed", None, None));
                    }
                    Some(_) => {}
                }
                // A fresh listing of the cluster: a task that mounts it, or uses its workspace,
                // keeps it.
                let users = self.in_use().await.map_err(|e| e.to_string())?.users(
                    WorkspaceRef {
                        workspace: ws.as_str(),
                        tenant: None,
                        access_points: std::slice::from_ref(id),
                    },
                    self.config.efs_file_system_id.as_deref(),
                );
                if !users.is_empty() {
                    keep(&format!("in use by {} (re-check); kept", users.join(",")));
                    return Ok(done(SweepReason::SkippedInUse.as_str(), None, None));
                }
                let deleted = dry_run
                    || self
                        .access_points
                        .delete(id)
                        .await
                        .map_err(|e| e.to_string())?;
                audit(workspace, None, Action::DeleteAccessPoint, reason, dry_run)
                    .resource(id)
                    .emit();
                Ok(done(
                    if deleted {
                        reason.as_str()
                    } else {
                        "already_absent"
                    },
                    None,
                    None,
                ))
            }
            SweepTarget::MarkAccessPoint {
                id,
                workspace,
                since,
            } => {
                // Harmless (a tag), so no re-check: a later run re-checks before deleting.
                let present = dry_run
                    || self
                        .access_points
                        .tag(id, ORPHAN_SINCE_TAG, &since.to_string())
                        .await
                        .map_err(|e| e.to_string())?;
                audit(
                    workspace,
                    None,
                    Action::MarkOrphanAccessPoint,
                    reason,
                    dry_run,
                )
                .resource(id)
                .emit();
                Ok(done(
                    if present {
                        reason.as_str()
                    } else {
                        "already_absent"
                    },
                    None,
                    None,
                ))
            }
            SweepTarget::UnmarkAccessPoint { id, workspace } => {
                let present = dry_run
                    || self
                        .access_points
                        .untag(id, ORPHAN_SINCE_TAG)
                        .await
                        .map_err(|e| e.to_string())?;
                audit(workspace, None, Action::UnmarkAccessPoint, reason, dry_run)
                    .resource(id)
                    .emit();
                Ok(done(
                    if present {
                        reason.as_str()
                    } else {
                        "already_absent"
                    },
                    None,
                    None,
                ))
            }
        }
    }
}

impl Sweeper {
    /// The tasks using a workspace now (a fresh listing), through its tag, environment, access
    /// points or directory.
    async fn users_now(&self, tenant: &TenantId, ws: &WorkspaceId) -> Result<Vec<String>, String> {
        let in_use = self.in_use().await.map_err(|e| e.to_string())?;
        let serving: Vec<String> = match &self.config.efs_file_system_id {
            Some(fs_id) => self
                .access_points
                .list(fs_id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|ap| {
                    lifecycle_domain::access_point::identify(ap, &self.config.access_points)
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

    /// Right before a purge: a trash entry whose workspace has a record again and no live
    /// directory is that record's only data (a move that raced a re-creation, or a record put
    /// back by hand). It is never purged; the run reports it (`NotDone`, which an alarm watches).
    async fn owned_trash_entry(&self, entry: &str) -> Result<Option<String>, String> {
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
        let presence = tokio::task::spawn_blocking(move || fs.workspace_presence(&tenant, &ws))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        Ok((presence == Presence::Absent).then(|| {
            format!(
                "workspace {} has a record and no live directory: this entry may be its only data; kept",
                name.workspace
            )
        }))
    }

    /// The fresh re-check right before acting: a consistent read of the workspace's record.
    async fn has_record(&self, ws: &WorkspaceId) -> Result<bool, String> {
        Ok(self
            .table
            .get(ws)
            .await
            .map_err(|e| e.to_string())?
            .is_some())
    }
}

fn action_of(target: &SweepTarget) -> Action {
    match target {
        SweepTarget::PurgeTrash { .. } => Action::PurgeTrashEntry,
        SweepTarget::FinishStaged { .. } => Action::MoveToTrash,
        SweepTarget::TrashOrphan { .. } => Action::MoveToTrash,
        SweepTarget::DeleteAccessPoint { .. } => Action::DeleteAccessPoint,
        SweepTarget::MarkAccessPoint { .. } => Action::MarkOrphanAccessPoint,
        SweepTarget::UnmarkAccessPoint { .. } => Action::UnmarkAccessPoint,
    }
}

fn audit(
    what: &str,
    tenant: Option<&str>,
    action: Action,
    reason: SweepReason,
    dry_run: bool,
) -> Audit {
    let mut line = Audit::new(what, action, reason, dry_run);
    if let Some(t) = tenant {
        line = line.tenant(t);
    }
    line
}
