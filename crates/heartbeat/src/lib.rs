//! heartbeat: activity (a dispatch, an ECS task event, a running task) pushes a workspace's expiry
//! forward by its tier's and subscription's retention; it never shortens one, never creates a
//! record and never gives a held workspace an expiry. On its schedule it also sends expiry notices.

use std::collections::HashMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt};
use lifecycle_domain::activity::dedup_ids;
use lifecycle_domain::activity::notice_due;
use lifecycle_domain::activity::parse_input;
use lifecycle_domain::activity::plan_keep_alive;
use lifecycle_domain::activity::plan_recompute;
use lifecycle_domain::activity::plan_touch;
use lifecycle_domain::activity::ExpiryNotice;
use lifecycle_domain::activity::HeartbeatInput;
use lifecycle_domain::activity::InputError;
use lifecycle_domain::activity::RecomputePlan;
use lifecycle_domain::activity::RecomputeScope;
use lifecycle_domain::activity::SkipReason;
use lifecycle_domain::activity::TouchPlan;
use lifecycle_domain::reasons::Action;
use lifecycle_domain::reasons::Reason;
use lifecycle_domain::record::attr;
use lifecycle_domain::record::Lifetime;
use lifecycle_domain::record::Observed;
use lifecycle_domain::record::RecordError;
use lifecycle_domain::record::{Attributes as Item, Value as StoredValue};
use lifecycle_domain::tasks::workspaces_in_use;
use lifecycle_domain::StoredRecord;
use lifecycle_domain::WorkspaceId;
use lifecycle_ports::Notices;
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
use serde_json::Value;
use tracing::{error, info, warn};

pub const DEFAULT_MIN_INTERVAL_SECONDS: i64 = 300;
pub const DEFAULT_NOTICE_DAYS: u32 = 3;
/// Re-reads after a lost conditional write before giving up on one workspace in this run.
const MAX_ATTEMPTS: usize = 3;

/// heartbeat's own settings, beside the shared [`Config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `HEARTBEAT_MIN_INTERVAL_SECONDS`: activity this close to the stored one is not written.
    pub min_interval: i64,
    /// `EXPIRY_NOTICE_DAYS`: how far ahead a workspace's expiry is announced.
    pub notice_days: u32,
    /// `NOTICE_EVENT_BUS` (`default` unless set; `off` disables notices).
    pub notice_bus: Option<String>,
}

impl Settings {
    /// The variables heartbeat reads beside [`lifecycle_runtime::config::SHARED_VARS`].
    pub const VARS: &'static [&'static str] = &[
        "HEARTBEAT_MIN_INTERVAL_SECONDS",
        "EXPIRY_NOTICE_DAYS",
        "NOTICE_EVENT_BUS",
    ];

    pub fn from<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let notice_bus = match env.get("NOTICE_EVENT_BUS")?.as_deref() {
            Some("off") => None,
            Some(bus) => Some(bus.to_string()),
            None => Some("default".to_string()),
        };
        Ok(Self {
            min_interval: env.number(
                "HEARTBEAT_MIN_INTERVAL_SECONDS",
                DEFAULT_MIN_INTERVAL_SECONDS,
                0..=86_400,
            )?,
            notice_days: env.number("EXPIRY_NOTICE_DAYS", DEFAULT_NOTICE_DAYS, 1..=365)?,
            notice_bus,
        })
    }
}

pub struct Heartbeat {
    pub table: Arc<dyn WorkspaceTable>,
    /// `None` without `ECS_CLUSTER`: no scheduled scan of running tasks.
    pub tasks: Option<Arc<dyn Tasks>>,
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
        Heartbeat::handle(self, event, invocation.now).await
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// Some workspaces could not be updated, or their records could not be read; the
    /// invocation fails (after all the valid work) so it is retried and the Errors alarm fires
    /// (safe: a repeated heartbeat coalesces). The summary says which (`failed`, `invalid`).
    #[error("{failed} workspace(s) failed or have unreadable records: {summary}")]
    Partial { failed: usize, summary: String },
}

impl From<HeartbeatError> for lambda_runtime::Diagnostic {
    fn from(e: HeartbeatError) -> Self {
        let error_type = match &e {
            HeartbeatError::Input(_) => "InvalidEvent",
            HeartbeatError::Service(_) => "ServiceError",
            HeartbeatError::Partial { .. } => "PartialFailure",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: e.to_string(),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    pub dry_run: bool,
    pub extended: Vec<Extended>,
    pub skipped: Vec<Skipped>,
    pub unknown: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recomputed: Vec<Recomputed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notices: Vec<Noticed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    /// Records that exist but cannot be read (README, "Invalid records"): reported, never skipped.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid: Vec<Invalid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Extended {
    pub workspace_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    pub workspace_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recomputed {
    pub workspace_id: String,
    pub expires_at: Option<i64>,
    pub shortened: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Noticed {
    pub workspace_id: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub workspace_id: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invalid {
    pub workspace_id: String,
    pub error: String,
    /// Set when the workspace is in use and its expiry was pushed out (or already was) so it
    /// does not lapse meanwhile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept_alive_until: Option<i64>,
}

/// What happened to one workspace.
enum Outcome {
    Extended(i64),
    Skipped(&'static str),
    Unknown,
    Recomputed {
        expires_at: Option<i64>,
        shortened: bool,
    },
    Failed(ServiceError),
    Invalid {
        error: String,
        kept_alive_until: Option<i64>,
    },
}

/// One try at a conditional write planned on a read.
enum Attempt {
    Done(Outcome),
    /// The record changed since it was read: read it again and plan again.
    Stale,
}

/// A lost race after every re-read: reported as failed (so the invocation is retried), never
/// as skipped, because a workspace in use that was not extended may lapse.
fn still_contended() -> Outcome {
    Outcome::Failed(ServiceError::retryable(
        "DynamoDB UpdateItem",
        format!("the record changed between every read and write ({MAX_ATTEMPTS} attempts)"),
    ))
}

fn skip_code(reason: SkipReason) -> &'static str {
    match reason {
        SkipReason::Held => "held",
        SkipReason::Coalesced => "coalesced",
        SkipReason::NotNewer => "not_newer",
    }
}

impl Heartbeat {
    pub async fn handle(&self, event: Value, now: i64) -> Result<Summary, HeartbeatError> {
        let mut summary = Summary {
            dry_run: self.config.dry_run,
            ..Summary::default()
        };
        match parse_input(&event)? {
            HeartbeatInput::Touch { ids, at } => {
                // A dispatch "in the future" is clamped: a clock skew must not buy extra retention.
                let at = at.map_or(now, |t| t.min(now));
                self.touch(ids, at, now, &mut summary).await;
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
                self.touch(ids, at.min(now), now, &mut summary).await;
            }
            HeartbeatInput::Scheduled { at } => {
                if let Some(tasks) = &self.tasks {
                    let running = tasks.active_tasks().await?;
                    let ids = workspaces_in_use(&running).into_keys().collect();
                    self.touch(ids, at.min(now), now, &mut summary).await;
                }
                if self.notices.is_some() {
                    self.send_notices(now, &mut summary).await?;
                }
            }
            HeartbeatInput::Recompute(scope) => self.recompute(scope, &mut summary).await?,
        }
        // A record seen twice in one run (touched, then scanned for notices) is reported once.
        let mut seen = std::collections::HashSet::new();
        summary
            .invalid
            .retain(|i| seen.insert(i.workspace_id.clone()));
        info!(
            extended = summary.extended.len(),
            skipped = summary.skipped.len(),
            unknown = summary.unknown.len(),
            recomputed = summary.recomputed.len(),
            notices = summary.notices.len(),
            failed = summary.failed.len(),
            invalid = summary.invalid.len(),
            "heartbeat done"
        );
        emit_metrics(
            "heartbeat",
            &[
                ("Extended", summary.extended.len() as f64, "Count"),
                ("Failed", summary.failed.len() as f64, "Count"),
                ("InvalidRecords", summary.invalid.len() as f64, "Count"),
            ],
        );
        let failed = summary.failed.len() + summary.invalid.len();
        if failed > 0 {
            return Err(HeartbeatError::Partial {
                failed,
                summary: serde_json::to_string(&summary).expect("summary serializes"),
            });
        }
        Ok(summary)
    }

    /// Valid, distinct ids; the invalid ones are reported and audited, never looked up.
    fn valid_ids(&self, ids: Vec<String>, summary: &mut Summary) -> Vec<WorkspaceId> {
        let mut valid = Vec::new();
        for id in dedup_ids(ids) {
            match WorkspaceId::parse(id.clone()) {
                Ok(id) => valid.push(id),
                Err(e) => {
                    Audit::new(
                        id.chars().take(160).collect::<String>(),
                        Action::RejectRecord,
                        Reason::InvalidRecord,
                        self.config.dry_run,
                    )
                    .error(e)
                    .emit();
                    summary.skipped.push(Skipped {
                        workspace_id: id,
                        reason: "invalid_id".into(),
                    });
                }
            }
        }
        valid
    }

    async fn touch(&self, ids: Vec<String>, at: i64, now: i64, summary: &mut Summary) {
        let ids = self.valid_ids(ids, summary);
        if ids.is_empty() {
            return;
        }
        let items = match self.table.get_many(&ids).await {
            Ok(items) => by_id(items),
            Err(e) => {
                fail_all(&ids, &e, summary);
                return;
            }
        };
        let outcomes: Vec<(WorkspaceId, Outcome)> = stream::iter(ids)
            .map(|id| {
                let item = items.get(id.as_str()).cloned();
                async move {
                    let outcome = self.touch_one(&id, item, at, now).await;
                    (id, outcome)
                }
            })
            .buffer_unordered(self.config.record_concurrency)
            .collect()
            .await;
        record_outcomes(outcomes, summary);
    }

    /// Reads, plans and writes conditioned on what was read; a lost race re-reads and re-plans.
    async fn touch_one(
        &self,
        id: &WorkspaceId,
        mut item: Option<Item>,
        at: i64,
        now: i64,
    ) -> Outcome {
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Outcome::Unknown;
            };
            let attempt = match StoredRecord::parse(current.clone()) {
                Ok(stored) => self.extend_valid(id, &stored, at).await,
                Err(e) => self.keep_alive(id, &current, e, at, now).await,
            };
            match attempt {
                Attempt::Done(outcome) => return outcome,
                Attempt::Stale => {}
            }
            // Someone wrote in between (another heartbeat, an upgrade, a hold, a deletion).
            item = match self.table.get(id).await {
                Ok(item) => item,
                Err(e) => return Outcome::Failed(e),
            };
        }
        still_contended()
    }

    async fn extend_valid(&self, id: &WorkspaceId, stored: &StoredRecord, at: i64) -> Attempt {
        let record = &stored.record;
        let (last, expires) = match plan_touch(
            record,
            at,
            &self.config.retention,
            self.settings.min_interval,
        ) {
            TouchPlan::Skip(reason) => return Attempt::Done(Outcome::Skipped(skip_code(reason))),
            TouchPlan::Extend {
                last_activity_at,
                expires_at,
            } => (last_activity_at, expires_at),
        };
        let observed = Observed::plan_inputs(&stored.attributes);
        match self.write_extension(id, &observed, last, expires).await {
            Err(e) => Attempt::Done(Outcome::Failed(e)),
            Ok(false) => Attempt::Stale,
            Ok(true) => {
                if record.expires_at != Some(expires) {
                    Audit::new(
                        id.as_str(),
                        Action::ExtendExpiry,
                        Reason::Activity,
                        self.config.dry_run,
                    )
                    .tenant(record.tenant_id.as_str())
                    .resource(format!(
                        "expiresAt {} -> {expires}",
                        record.expires_at.map_or("none".into(), |e| e.to_string())
                    ))
                    .emit();
                }
                Attempt::Done(Outcome::Extended(expires))
            }
        }
    }

    async fn write_extension(
        &self,
        id: &WorkspaceId,
        observed: &Observed,
        last: i64,
        expires: i64,
    ) -> Result<bool, ServiceError> {
        if self.config.dry_run {
            return Ok(true);
        }
        self.table.extend(id, observed, last, expires).await
    }

    /// A record that cannot be read is still a record: it is reported as invalid, and if the
    /// workspace is in use and its times are readable, kept alive conservatively (the policy's
    /// longest retention, never shorter, conditioned on the record being unchanged).
    async fn keep_alive(
        &self,
        id: &WorkspaceId,
        item: &Item,
        e: RecordError,
        at: i64,
        now: i64,
    ) -> Attempt {
        let invalid = |kept_alive_until| {
            Attempt::Done(Outcome::Invalid {
                error: e.to_string(),
                kept_alive_until,
            })
        };
        let Some(lifetime) = Lifetime::read(item) else {
            self.reject(
                id.as_str(),
                &e,
                "its times or hold are unreadable too: not extended",
            );
            return invalid(None);
        };
        let (last, expires) = match plan_keep_alive(
            &lifetime,
            at,
            now,
            &self.config.retention,
            self.settings.min_interval,
        ) {
            TouchPlan::Skip(SkipReason::Held) => {
                self.reject(id.as_str(), &e, "held: not extended");
                return invalid(None);
            }
            TouchPlan::Skip(_) => {
                self.reject(id.as_str(), &e, "in use; expiry already far enough");
                return invalid(Some(lifetime.expires_at));
            }
            TouchPlan::Extend {
                last_activity_at,
                expires_at,
            } => (last_activity_at, expires_at),
        };
        match self
            .write_extension(id, &Observed::known(item), last, expires)
            .await
        {
            Err(write_error) => Attempt::Done(Outcome::Failed(write_error)),
            Ok(false) => Attempt::Stale,
            Ok(true) => {
                self.reject(
                    id.as_str(),
                    &e,
                    "in use: kept alive for the longest retention",
                );
                Audit::new(
                    id.as_str(),
                    Action::ExtendExpiry,
                    Reason::InvalidRecordInUse,
                    self.config.dry_run,
                )
                .resource(format!("expiresAt {} -> {expires}", lifetime.expires_at))
                .error(&e)
                .emit();
                invalid(Some(expires))
            }
        }
    }

    /// The audit line and the error log line of a record that cannot be read.
    fn reject(&self, id: &str, e: &dyn std::fmt::Display, what: &str) {
        Audit::new(
            id.chars().take(160).collect::<String>(),
            Action::RejectRecord,
            Reason::InvalidRecord,
            self.config.dry_run,
        )
        .error(e)
        .emit();
        error!(workspaceId = %id.chars().take(160).collect::<String>(), error = %e, "unreadable workspace record ({what}); fix it (README, \"Invalid records\")");
    }

    async fn recompute(
        &self,
        scope: RecomputeScope,
        summary: &mut Summary,
    ) -> Result<(), ServiceError> {
        let items = match scope {
            RecomputeScope::All => self.table.scan(None).await?,
            RecomputeScope::Ids(ids) => {
                let ids = self.valid_ids(ids, summary);
                let items = self.table.get_many(&ids).await?;
                let found = by_id(items.clone());
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
            match record_id(&item) {
                Ok(id) => readable.push((id, item)),
                Err((raw, e)) => {
                    self.reject(&raw, &e, "its id is not readable");
                    summary.invalid.push(Invalid {
                        workspace_id: raw,
                        error: e,
                        kept_alive_until: None,
                    });
                }
            }
        }
        let outcomes: Vec<(WorkspaceId, Outcome)> = stream::iter(readable)
            .map(|(id, item)| async move {
                let outcome = self.recompute_one(&id, item).await;
                (id, outcome)
            })
            .buffer_unordered(self.config.record_concurrency)
            .collect()
            .await;
        record_outcomes(outcomes, summary);
        Ok(())
    }

    async fn recompute_one(&self, id: &WorkspaceId, item: Item) -> Outcome {
        let mut item = Some(item);
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Outcome::Unknown;
            };
            let stored = match StoredRecord::parse(current) {
                Ok(stored) => stored,
                Err(e) => {
                    self.reject(id.as_str(), &e, "not recomputed");
                    return Outcome::Invalid {
                        error: e.to_string(),
                        kept_alive_until: None,
                    };
                }
            };
            let record = &stored.record;
            let RecomputePlan::Set {
                expires_at,
                shortened,
            } = plan_recompute(record, &self.config.retention)
            else {
                return Outcome::Skipped("unchanged");
            };
            // Conditioned on every input of the plan: an upgrade or a hold that lands between
            // the read and the write makes it fail, and the record is read and planned again.
            let observed = Observed::plan_inputs(&stored.attributes);
            let written = self.config.dry_run
                || match self.table.set_expiry(id, &observed, expires_at).await {
                    Ok(written) => written,
                    Err(e) => return Outcome::Failed(e),
                };
            if written {
                let reason = if shortened {
                    Reason::RecomputeShortened
                } else {
                    Reason::Recomputed
                };
                Audit::new(id.as_str(), Action::SetExpiry, reason, self.config.dry_run)
                    .tenant(record.tenant_id.as_str())
                    .resource(format!(
                        "expiresAt {} -> {} ({:?}/{:?})",
                        record.expires_at.map_or("none".into(), |e| e.to_string()),
                        expires_at.map_or("none".into(), |e| e.to_string()),
                        record.tier,
                        record.subscription_status
                    ))
                    .emit();
                return Outcome::Recomputed {
                    expires_at,
                    shortened,
                };
            }
            item = match self.table.get(id).await {
                Ok(item) => item,
                Err(e) => return Outcome::Failed(e),
            };
        }
        still_contended()
    }

    /// Announces every workspace expiring within `EXPIRY_NOTICE_DAYS`, once per expiry date.
    ///
    /// A projected, filtered Scan rather than a GSI: a GSI on `expiresAt` needs a partition key,
    /// and a constant one makes a hot partition written by every heartbeat; the scan runs at most
    /// every 15 minutes, reads only the record attributes, and costs the same RCUs as the table's
    /// size whatever the filter. The claim (a conditional write of `noticeSentFor`) comes before
    /// the send, so no notice is ever sent twice; a failed send releases the claim for next time.
    async fn send_notices(&self, now: i64, summary: &mut Summary) -> Result<(), ServiceError> {
        let Some(notices) = &self.notices else {
            return Ok(());
        };
        let horizon = now
            + i64::from(self.settings.notice_days) * lifecycle_domain::retention::SECONDS_PER_DAY;
        let mut claimed = Vec::new();
        for item in self.table.scan(Some((now, horizon))).await? {
            let id = match record_id(&item) {
                Ok(id) => id,
                Err((raw, e)) => {
                    self.reject(&raw, &e, "no expiry notice");
                    summary.invalid.push(Invalid {
                        workspace_id: raw,
                        error: e,
                        kept_alive_until: None,
                    });
                    continue;
                }
            };
            match self.claim_notice(&id, item, now).await {
                Ok(Some(notice)) => claimed.push(notice),
                Ok(None) => {}
                Err(Outcome::Invalid {
                    error,
                    kept_alive_until,
                }) => summary.invalid.push(Invalid {
                    workspace_id: id.to_string(),
                    error,
                    kept_alive_until,
                }),
                Err(Outcome::Failed(e)) => summary.failed.push(Failed {
                    workspace_id: id.to_string(),
                    error: e.to_string(),
                }),
                Err(_) => unreachable!("claim_notice ends in a notice, nothing, invalid or failed"),
            }
        }
        if claimed.is_empty() {
            return Ok(());
        }
        let results = if self.config.dry_run {
            claimed.iter().map(|_| Ok(())).collect()
        } else {
            notices.publish(&claimed).await
        };
        for (notice, result) in claimed.into_iter().zip(results) {
            match result {
                Ok(()) => {
                    Audit::new(
                        &notice.workspace_id,
                        Action::SendNotice,
                        Reason::ExpiringSoon,
                        self.config.dry_run,
                    )
                    .tenant(&notice.tenant_id)
                    .resource(format!("expiresAt {}", notice.expires_at))
                    .emit();
                    summary.notices.push(Noticed {
                        workspace_id: notice.workspace_id,
                        expires_at: notice.expires_at,
                    });
                }
                Err(error) => {
                    // Only this notice failed: its claim is released so the next run sends it.
                    let id = WorkspaceId::parse(notice.workspace_id.clone()).expect("validated");
                    if let Err(e) = self.table.release_notice(&id, notice.expires_at).await {
                        warn!(workspaceId = %id, error = %e, "could not release a notice claim; that notice is lost");
                    }
                    summary.failed.push(Failed {
                        workspace_id: notice.workspace_id,
                        error,
                    });
                }
            }
        }
        Ok(())
    }

    /// Claims the notice a record is due, conditioned on everything the notice says; a lost race
    /// re-reads and decides again. `Ok(None)`: no notice is due (any more). `Err` carries an
    /// [`Outcome::Invalid`] or [`Outcome::Failed`].
    async fn claim_notice(
        &self,
        id: &WorkspaceId,
        item: Item,
        now: i64,
    ) -> Result<Option<ExpiryNotice>, Outcome> {
        let mut item = Some(item);
        for _ in 0..MAX_ATTEMPTS {
            let Some(current) = item.take() else {
                return Ok(None);
            };
            let stored = StoredRecord::parse(current).map_err(|e| {
                self.reject(id.as_str(), &e, "no expiry notice");
                Outcome::Invalid {
                    error: e.to_string(),
                    kept_alive_until: None,
                }
            })?;
            let record = &stored.record;
            let Some(expires_at) = notice_due(record, now, self.settings.notice_days) else {
                return Ok(None);
            };
            let claimed = self.config.dry_run
                || self
                    .table
                    .claim_notice(id, &Observed::notice_inputs(&stored.attributes), expires_at)
                    .await
                    .map_err(Outcome::Failed)?;
            if claimed {
                return Ok(Some(ExpiryNotice {
                    workspace_id: record.workspace_id.to_string(),
                    tenant_id: record.tenant_id.to_string(),
                    user_id: record.user_id.clone(),
                    tier: record.tier,
                    subscription_status: record.subscription_status,
                    expires_at,
                }));
            }
            item = self.table.get(id).await.map_err(Outcome::Failed)?;
        }
        Err(still_contended())
    }
}

/// The record's id, or its raw text (shortened) and why it is not a valid id.
fn record_id(item: &Item) -> Result<WorkspaceId, (String, String)> {
    match item.get(attr::WORKSPACE_ID) {
        Some(StoredValue::S(raw)) => WorkspaceId::parse(raw.clone())
            .map_err(|e| (raw.chars().take(160).collect(), e.to_string())),
        _ => Err((
            "<no string workspaceId>".to_string(),
            "record has no string workspaceId".to_string(),
        )),
    }
}

fn by_id(items: Vec<Item>) -> HashMap<String, Item> {
    items
        .into_iter()
        .filter_map(|item| match item.get(attr::WORKSPACE_ID) {
            Some(StoredValue::S(id)) => Some((id.clone(), item)),
            _ => None,
        })
        .collect()
}

fn fail_all(ids: &[WorkspaceId], e: &ServiceError, summary: &mut Summary) {
    summary.failed.extend(ids.iter().map(|id| Failed {
        workspace_id: id.to_string(),
        error: e.to_string(),
    }));
}

fn record_outcomes(mut outcomes: Vec<(WorkspaceId, Outcome)>, summary: &mut Summary) {
    outcomes.sort_by(|a, b| a.0.cmp(&b.0));
    for (id, outcome) in outcomes {
        let workspace_id = id.to_string();
        match outcome {
            Outcome::Extended(expires_at) => summary.extended.push(Extended {
                workspace_id,
                expires_at,
            }),
            Outcome::Skipped(reason) => summary.skipped.push(Skipped {
                workspace_id,
                reason: reason.into(),
            }),
            Outcome::Unknown => summary.unknown.push(workspace_id),
            Outcome::Recomputed {
                expires_at,
                shortened,
            } => summary.recomputed.push(Recomputed {
                workspace_id,
                expires_at,
                shortened,
            }),
            Outcome::Failed(e) => summary.failed.push(Failed {
                workspace_id,
                error: e.to_string(),
            }),
            Outcome::Invalid {
                error,
                kept_alive_until,
            } => summary.invalid.push(Invalid {
                workspace_id,
                error,
                kept_alive_until,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The handler over the in-memory fakes, whose conditional writes evaluate the same
    //! conditions as DynamoDB's, with the record changed between the handler's read and write.

    use super::*;
    use lifecycle_domain::retention::RetentionPolicy;
    use lifecycle_domain::retention::SECONDS_PER_DAY as DAY;
    use lifecycle_domain::SubscriptionStatus;
    use lifecycle_domain::Tier;
    use lifecycle_domain::WorkspaceRecord;
    use lifecycle_ports::fakes::MemoryNotices;
    use lifecycle_ports::fakes::MemoryTable;
    use proptest::prelude::*;
    use serde_json::json;

    fn heartbeat(table: Arc<MemoryTable>, notices: Option<Arc<MemoryNotices>>) -> Heartbeat {
        let env = Env(|k: &str| match k {
            "WORKSPACE_TABLE" => Some("workspaces".into()),
            "ECS_CLUSTER" => Some("none".into()),
            _ => None,
        });
        Heartbeat {
            table,
            tasks: None,
            notices: notices.map(|n| n as Arc<dyn Notices>),
            config: Config::from(&env).unwrap(),
            settings: Settings::from(&env).unwrap(),
        }
    }

    fn item(record: &WorkspaceRecord) -> Item {
        Item::from(record)
    }

    fn stored(table: &MemoryTable) -> WorkspaceRecord {
        let items = table.items.lock().unwrap();
        StoredRecord::parse(items["ws"].clone()).unwrap().record
    }

    fn tier() -> impl Strategy<Value = Tier> {
        prop_oneof![Just(Tier::Free), Just(Tier::Pro), Just(Tier::Enterprise)]
    }
    fn status() -> impl Strategy<Value = SubscriptionStatus> {
        prop_oneof![
            Just(SubscriptionStatus::Active),
            Just(SubscriptionStatus::Suspended),
            Just(SubscriptionStatus::Cancelled)
        ]
    }

    const T0: i64 = 1_700_000_000;

    fn record() -> impl Strategy<Value = WorkspaceRecord> {
        (
            tier(),
            status(),
            proptest::option::of(1u32..400),
            proptest::bool::weighted(0.2),
            0i64..60 * DAY,
            proptest::option::of(-100 * DAY..200 * DAY),
        )
            .prop_map(|(tier, status, retention, hold, last, expires)| {
                let last = T0 + last;
                WorkspaceRecord {
                    workspace_id: WorkspaceId::parse("ws").unwrap(),
                    tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
                    user_id: None,
                    tier,
                    subscription_status: status,
                    last_activity_at: last,
                    expires_at: expires.map(|e| (last + e).max(0)),
                    retention_days: retention,
                    access_point_id: None,
                    hold,
                    notice_sent_for: None,
                }
            })
    }

    /// A new tier, status, override, hold; times moved by; the expiry removed.
    type Change = (
        Option<Tier>,
        Option<SubscriptionStatus>,
        Option<Option<u32>>,
        Option<bool>,
        Option<i64>,
        bool,
    );

    /// What another writer (the control plane, another heartbeat) may change meanwhile.
    fn change() -> impl Strategy<Value = Change> {
        (
            proptest::option::of(tier()),
            proptest::option::of(status()),
            proptest::option::of(proptest::option::of(1u32..400)),
            proptest::option::of(any::<bool>()),
            proptest::option::of(-5 * DAY..5 * DAY),
            any::<bool>(),
        )
    }

    fn changed(
        r: &WorkspaceRecord,
        (tier, status, retention, hold, moved, drop_expiry): Change,
    ) -> WorkspaceRecord {
        let mut r = r.clone();
        r.tier = tier.unwrap_or(r.tier);
        r.subscription_status = status.unwrap_or(r.subscription_status);
        r.retention_days = retention.unwrap_or(r.retention_days);
        if let Some(hold) = hold {
            r.hold = hold;
        }
        if let Some(d) = moved {
            r.last_activity_at += d;
            r.expires_at = r.expires_at.map(|e| (e + d).max(0));
        }
        // A hold placed by the control plane takes the expiry away with it.
        if drop_expiry || (hold == Some(true)) {
            r.expires_at = None;
        }
        r
    }

    fn run<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    proptest! {
        /// No conditional write can lower an expiry or give a held record one: whatever changes
        /// between the read and the write, a heartbeat never leaves an expiry below the one the
        /// other writer left, and a held record keeps the expiry the other writer left it.
        #[test]
        fn a_heartbeat_never_lowers_an_expiry_or_gives_a_held_record_one(
            before in record(), change in change(), at in -40 * DAY..40 * DAY,
        ) {
            let after = changed(&before, change);
            let table = Arc::new(MemoryTable::default());
            table.items.lock().unwrap().insert("ws".into(), item(&before));
            table.change_before_next_write(item(&after));
            let now = before.last_activity_at + 40 * DAY;
            let _ = run(heartbeat(table.clone(), None).handle(json!({"workspaceIds": ["ws"], "at": now + at}), now));
            let wrote = table.changes_before_write.lock().unwrap().is_empty();
            let end = stored(&table);
            let base = if wrote { &after } else { &before };
            if base.hold {
                prop_assert_eq!(end.expires_at, base.expires_at, "a held record keeps what it had");
            }
            if let Some(e) = base.expires_at {
                prop_assert!(end.expires_at.is_some_and(|x| x >= e), "never lowered: {:?} < {}", end.expires_at, e);
            }
            // Nothing but the two times ever changes, and they change only as the record now says.
            prop_assert_eq!((end.tier, end.subscription_status, end.retention_days, end.hold), (base.tier, base.subscription_status, base.retention_days, base.hold));
            if end.expires_at != base.expires_at {
                let policy = RetentionPolicy::default();
                prop_assert_eq!(end.expires_at, policy.expires_at(&end, end.last_activity_at).max(base.expires_at));
            }
        }

        /// A recompute lands only on the record it planned on: after a change meanwhile, the
        /// expiry is the one the changed record calls for (never one planned before an upgrade),
        /// and a record held meanwhile never gets one.
        #[test]
        fn a_recompute_lands_only_on_what_it_read(before in record(), change in change()) {
            let after = changed(&before, change);
            let table = Arc::new(MemoryTable::default());
            table.items.lock().unwrap().insert("ws".into(), item(&before));
            table.change_before_next_write(item(&after));
            let _ = run(heartbeat(table.clone(), None).handle(json!({"recompute": "all"}), T0));
            let wrote = table.changes_before_write.lock().unwrap().is_empty();
            let end = stored(&table);
            let base = if wrote { &after } else { &before };
            let policy = RetentionPolicy::default();
            let target = policy.expires_at(base, base.last_activity_at);
            prop_assert!(
                end.expires_at == base.expires_at || end.expires_at == target,
                "{:?} is neither what the record had ({:?}) nor what it calls for ({:?})",
                end.expires_at, base.expires_at, target
            );
            if base.hold {
                prop_assert!(end.expires_at.is_none() || end.expires_at == base.expires_at);
            }
            if wrote {
                prop_assert_eq!(end.expires_at, target, "re-read and re-planned");
            }
        }
    }

    #[test]
    fn settings_read_only_their_declared_variables_and_refuse_blanks() {
        let read = std::sync::Mutex::new(Vec::new());
        Settings::from(&Env(|k: &str| {
            read.lock().unwrap().push(k.to_string());
            None
        }))
        .unwrap();
        let read = read.into_inner().unwrap();
        assert!(
            read.iter().all(|k| Settings::VARS.contains(&k.as_str())),
            "{read:?}"
        );
        let blank = Settings::from(&Env(|k: &str| (k == "NOTICE_EVENT_BUS").then(String::new)));
        assert_eq!(blank.unwrap_err().var, "NOTICE_EVENT_BUS");
        let off = Settings::from(&Env(|k: &str| {
            (k == "NOTICE_EVENT_BUS").then(|| "off".into())
        }));
        assert_eq!(off.unwrap().notice_bus, None);
    }

    #[tokio::test]
    async fn a_bus_that_refuses_one_notice_fails_only_that_one() {
        let table = Arc::new(MemoryTable::default());
        let now = T0;
        for ws in ["ws-a", "ws-b", "ws-c"] {
            let mut r = WorkspaceRecord {
                workspace_id: WorkspaceId::parse(ws).unwrap(),
                tenant_id: lifecycle_domain::TenantId::parse("acme").unwrap(),
                user_id: None,
                tier: Tier::Pro,
                subscription_status: SubscriptionStatus::Active,
                last_activity_at: now - 28 * DAY,
                expires_at: Some(now + 2 * DAY),
                retention_days: None,
                access_point_id: None,
                hold: false,
                notice_sent_for: None,
            };
            r.user_id = Some("u".into());
            table.items.lock().unwrap().insert(ws.into(), item(&r));
        }
        let notices = Arc::new(MemoryNotices::default());
        notices.refuse.lock().unwrap().insert("ws-b".into());
        let hb = heartbeat(table.clone(), Some(notices.clone()));
        let tick = json!({"detail-type": "Scheduled Event", "source": "aws.events", "time": lifecycle_domain::time::rfc3339(now), "detail": {}});
        let err = hb.handle(tick.clone(), now).await.unwrap_err();
        assert!(
            matches!(err, HeartbeatError::Partial { failed: 1, .. }),
            "{err}"
        );
        notices.refuse.lock().unwrap().clear();
        let summary = hb.handle(tick, now).await.unwrap();
        assert_eq!(summary.notices.len(), 1);
        let mut sent: Vec<_> = notices
            .sent
            .lock()
            .unwrap()
            .iter()
            .map(|n| n.workspace_id.clone())
            .collect();
        sent.sort();
        assert_eq!(sent, vec!["ws-a", "ws-b", "ws-c"], "each exactly once");
    }
}
