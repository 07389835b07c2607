//! ttl-expiry: when DynamoDB TTL deletes a workspace record, remove that workspace's access point
//! and move its data to the trash, safely and idempotently.
//!
//! Parse, fetch, decide, act, report: each record is classified ([`lifecycle_domain::stream`]),
//! re-checked against the table and ECS, planned ([`lifecycle_domain::expiry::plan_expiry`]) and
//! then acted on, with one audit line per action.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use futures::FutureExt;
use lifecycle_domain::expiry::access_point_belongs;
use lifecycle_domain::expiry::plan_expiry;
use lifecycle_domain::expiry::ExpiryFacts;
use lifecycle_domain::expiry::ExpiryPlan;
use lifecycle_domain::layout::nonce_for;
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::reasons::Action;
use lifecycle_domain::reasons::Reason;
use lifecycle_domain::record::attr;
use lifecycle_domain::record::WorkspaceRecord;
use lifecycle_domain::record::{Attributes, Value as StoredValue};
use lifecycle_domain::stream::classify;
use lifecycle_domain::stream::StreamRecordKind;
use lifecycle_domain::tasks::InUse;
use lifecycle_domain::tasks::WorkspaceRef;
use lifecycle_domain::StoredRecord;
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
use lifecycle_runtime::config::{Config, Env};
use lifecycle_runtime::observe::Audit;
use lifecycle_runtime::{Aws, BuildError, Function, Invocation};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::{debug, info, warn, Instrument};

/// Everything the function needs, built once in `main` and shared by every invocation.
pub struct TtlExpiry {
    pub table: Arc<dyn WorkspaceTable>,
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `ECS_CLUSTER` is `none`: the in-use guard was explicitly switched off.
    pub tasks: Option<Arc<dyn Tasks>>,
    pub fs: WorkspaceFs,
    pub config: Config,
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a DynamoDB stream event: expected an object with a \"Records\" array")]
    NotAStreamEvent,
}

/// Why a record could not be handled this time.
#[derive(Debug, thiserror::Error)]
enum RecordFailure {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("file-system task failed: {0}")]
    Task(String),
    #[error("an earlier record of the same workspace failed in this batch")]
    EarlierFailed,
    #[error("not started before the invocation's deadline")]
    Deadline,
    #[error("panicked: {0}")]
    Panic(String),
}

impl RecordFailure {
    fn retryable(&self) -> bool {
        match self {
            RecordFailure::Service(e) => e.is_retryable(),
            RecordFailure::Fs(e) => e.is_retryable(),
            _ => true,
        }
    }
}

/// A TTL deletion ready to act on: its ids are valid; the rest of the record may not be.
struct Expired {
    index: usize,
    sequence: Option<String>,
    workspace: WorkspaceId,
    tenant: TenantId,
    /// The old image as the stream delivered it (every attribute, readable or not).
    item: Attributes,
    /// The typed record, or why it could not be read.
    record: Result<WorkspaceRecord, String>,
    deleted_at: i64,
}

impl Expired {
    /// A hold, or an unreadable `hold` attribute: either way, not positively "not held".
    fn held(&self) -> bool {
        match self.item.get(attr::HOLD) {
            None | Some(StoredValue::Bool(false)) | Some(StoredValue::Null(_)) => false,
            Some(_) => true,
        }
    }

    fn access_point_id(&self) -> Option<String> {
        match self.item.get(attr::ACCESS_POINT_ID) {
            Some(StoredValue::S(ap)) if !ap.is_empty() => Some(ap.clone()),
            _ => None,
        }
    }

    /// The trash entry's nonce: the same on every delivery of this stream record.
    fn nonce(&self) -> String {
        nonce_for(&format!(
            "{}:{}",
            self.sequence.as_deref().unwrap_or(""),
            self.deleted_at
        ))
    }

    /// The old image with `expiresAt` replaced (or removed), every other attribute kept.
    fn item_with_expiry(&self, expires_at: Option<i64>) -> Attributes {
        self.item.with_expiry(expires_at)
    }
}

/// What the trash keeps beside the data, so `lifecycle restore` can put the record back.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TrashRecord {
    deleted_at: i64,
    reason: String,
    item: Option<Attributes>,
    /// Why the record could not be read, when it could not (restore then needs an operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    invalid: Option<String>,
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

/// The cluster's in-use index, shared by the records of a batch and listed again when it is older
/// than asked for (the check right before a move may not lean on a listing from seconds ago).
#[derive(Default)]
struct InUseCell(tokio::sync::Mutex<Option<(Instant, Arc<InUse>)>>);

/// How old the listing used right before a move may be.
const FRESH_IN_USE: std::time::Duration = std::time::Duration::from_secs(2);

impl TtlExpiry {
    /// Handles one batch. Records that failed are returned in `batchItemFailures` (by sequence
    /// number) so Lambda retries them; malformed and hostile records are audited and dropped, so
    /// a poison record never blocks the shard.
    pub async fn handle(
        &self,
        event: Value,
        now: i64,
        deadline: Option<Instant>,
    ) -> Result<DynamoDbEventResponse, EventError> {
        let Some(raw_records) = event.get("Records").and_then(Value::as_array) else {
            return Err(EventError::NotAStreamEvent);
        };
        let mut expired = Vec::new();
        for (index, raw) in raw_records.iter().enumerate() {
            if let Some(work) = self.triage(index, raw, now) {
                expired.push(work);
            }
        }

        // Records of one workspace stay in stream order; different workspaces run concurrently.
        let mut groups: Vec<Vec<Expired>> = Vec::new();
        let mut group_of: BTreeMap<String, usize> = BTreeMap::new();
        for work in expired {
            let id = work.workspace.to_string();
            let g = *group_of.entry(id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(work);
        }

        let in_use = InUseCell::default();
        let mut failures: Vec<(usize, Option<String>)> = stream::iter(groups)
            .map(|group| self.handle_group(group, now, deadline, &in_use))
            .buffer_unordered(self.config.record_concurrency)
            .flat_map(stream::iter)
            .collect()
            .await;
        failures.sort();
        info!(
            records = raw_records.len(),
            failed = failures.len(),
            dryRun = self.config.dry_run,
            "batch done"
        );
        let mut response = DynamoDbEventResponse::default();
        for (_, sequence) in failures {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = sequence;
            response.batch_item_failures.push(failure);
        }
        Ok(response)
    }

    /// Parses and classifies one raw record; `Some` for a TTL deletion whose ids are valid.
    fn triage(&self, index: usize, raw: &Value, now: i64) -> Option<Expired> {
        let dry_run = self.config.dry_run;
        let record: EventRecord = match serde_json::from_value(raw.clone()) {
            Ok(r) => r,
            Err(e) => {
                Audit::new("", Action::RejectRecord, Reason::InvalidRecord, dry_run)
                    .resource(format!("record #{index}"))
                    .error(format!("malformed stream record: {e}"))
                    .emit();
                return None;
            }
        };
        let identity = record
            .user_identity
            .as_ref()
            .map(|u| (u.type_.as_str(), u.principal_id.as_str()));
        let kind = classify(&record.event_name, identity);
        if kind != StreamRecordKind::TtlDelete {
            debug!(event = %record.event_name, ?kind, sequence = ?record.change.sequence_number, "ignored: not a TTL deletion");
            return None;
        }
        let Ok(item) = old_image(&record) else {
            Audit::new("", Action::RejectRecord, Reason::InvalidRecord, dry_run)
                .resource(format!("record #{index}"))
                .error("the old image cannot be read as a record")
                .emit();
            return None;
        };
        let text = |name: &str| match item.get(name) {
            Some(StoredValue::S(s)) => Some(s.clone()),
            _ => None,
        };
        let ids = (
            text(attr::WORKSPACE_ID).map(WorkspaceId::parse),
            text(attr::TENANT_ID).map(TenantId::parse),
        );
        let (Some(Ok(workspace)), Some(Ok(tenant))) = ids else {
            // Without valid ids nothing can be located safely: touch nothing, keep the image in
            // the audit line (the log is where it survives), and never block the shard.
            let id: String = text(attr::WORKSPACE_ID)
                .unwrap_or_default()
                .chars()
                .take(160)
                .collect();
            let image = serde_json::to_string(&item).unwrap_or_default();
            Audit::new(id, Action::RejectRecord, Reason::InvalidRecord, dry_run)
                .resource(format!(
                    "sequence {}",
                    record.change.sequence_number.as_deref().unwrap_or("?")
                ))
                .error(format!(
                    "workspaceId or tenantId missing or invalid; old image: {}",
                    image.chars().take(4_000).collect::<String>()
                ))
                .emit();
            return None;
        };
        let parsed = StoredRecord::parse(item.clone())
            .map(|s| s.record)
            .map_err(|e| e.to_string());
        if let Err(e) = &parsed {
            // Still a record: the in-use guard applies, and its image goes to the trash with it.
            Audit::new(
                workspace.as_str(),
                Action::Skip,
                Reason::InvalidRecord,
                dry_run,
            )
            .tenant(tenant.as_str())
            .error(format!("{e}; handled as a record whose tier is unknown"))
            .emit();
        }
        let created = record.change.approximate_creation_date_time.timestamp();
        Some(Expired {
            index,
            sequence: record.change.sequence_number.clone(),
            workspace,
            tenant,
            item,
            record: parsed,
            deleted_at: deletion_time(created, now),
        })
    }

    /// Handles one workspace's records in order; returns the failed ones.
    async fn handle_group(
        &self,
        group: Vec<Expired>,
        now: i64,
        deadline: Option<Instant>,
        in_use: &InUseCell,
    ) -> Vec<(usize, Option<String>)> {
        let mut failed = Vec::new();
        for work in group {
            let span = tracing::info_span!(
                "record",
                sequence = work.sequence.as_deref().unwrap_or("?"),
                workspaceId = %work.workspace,
            );
            let result = if !failed.is_empty() {
                Err(RecordFailure::EarlierFailed)
            } else if deadline.is_some_and(|d| Instant::now() >= d) {
                Err(RecordFailure::Deadline)
            } else {
                // A panic is this record's failure, never the batch's or the process's.
                AssertUnwindSafe(self.expire(&work, now, in_use).instrument(span.clone()))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| Err(RecordFailure::Panic(panic_message(&panic))))
            };
            match result {
                Ok(()) => {}
                Err(RecordFailure::Fs(e)) if e.is_refused_link() => {
                    // Permanent: retrying cannot change it, and the data behind a link is not ours.
                    // The old image goes into the audit line: the log is where it survives.
                    let image = serde_json::to_string(&work.item).unwrap_or_default();
                    Audit::new(
                        work.workspace.as_str(),
                        Action::Skip,
                        Reason::RefusedSymlink,
                        self.config.dry_run,
                    )
                    .tenant(work.tenant.as_str())
                    .error(format!("{e}; old image: {image}"))
                    .emit();
                }
                Err(e) => {
                    Audit::new(
                        work.workspace.as_str(),
                        Action::Skip,
                        Reason::Failed,
                        self.config.dry_run,
                    )
                    .tenant(work.tenant.as_str())
                    .error(&e)
                    .emit();
                    warn!(parent: &span, retryable = e.retryable(), error = %e, "record failed; reported for retry");
                    failed.push((work.index, work.sequence));
                }
            }
        }
        failed
    }

    /// The cluster's in-use index, listed again if older than `max_age`: every task with its
    /// tags, environment and EFS mounts, and every access point a task mounts described (so a
    /// task is seen through any access point of a workspace). A failed or partial read of either
    /// is an error, never "not in use".
    async fn in_use_index(
        &self,
        cell: &InUseCell,
        max_age: Option<std::time::Duration>,
    ) -> Result<Arc<InUse>, ServiceError> {
        let Some(tasks) = &self.tasks else {
            return Ok(Arc::new(InUse::unguarded()));
        };
        let mut slot = cell.0.lock().await;
        if let Some((at, index)) = slot.as_ref() {
            if max_age.is_none_or(|age| at.elapsed() <= age) {
                return Ok(index.clone());
            }
        }
        let listed_at = Instant::now();
        let mut index = InUse::from_tasks(&tasks.active_tasks().await?);
        let mut described = Vec::new();
        for id in index.mounted_access_points() {
            if let Some(info) = self.access_points.describe(&id).await? {
                described.push(info);
            }
        }
        index.resolve_access_points(&described);
        let index = Arc::new(index);
        *slot = Some((listed_at, index.clone()));
        Ok(index)
    }

    /// The tasks using this workspace.
    async fn in_use_by(
        &self,
        work: &Expired,
        cell: &InUseCell,
        max_age: Option<std::time::Duration>,
    ) -> Result<Vec<String>, ServiceError> {
        let index = self.in_use_index(cell, max_age).await?;
        let access_points: Vec<String> = work.access_point_id().into_iter().collect();
        Ok(index.users(
            WorkspaceRef {
                workspace: work.workspace.as_str(),
                tenant: Some(work.tenant.as_str()),
                access_points: &access_points,
            },
            self.config.efs_file_system_id.as_deref(),
        ))
    }

    async fn record_exists(&self, work: &Expired) -> Result<bool, RecordFailure> {
        Ok(self.table.get(&work.workspace).await?.is_some())
    }

    fn audit(&self, work: &Expired, action: Action, reason: Reason) -> Audit {
        Audit::new(work.workspace.as_str(), action, reason, self.config.dry_run)
            .tenant(work.tenant.as_str())
    }

    async fn expire(
        &self,
        work: &Expired,
        now: i64,
        in_use: &InUseCell,
    ) -> Result<(), RecordFailure> {
        let dry_run = self.config.dry_run;
        let exists_again = self.record_exists(work).await?;
        let hold = work.held();
        let in_use_by = if exists_again || hold {
            Vec::new()
        } else {
            self.in_use_by(work, in_use, None).await?
        };
        let access_point_id = work.access_point_id();
        let nonce = work.nonce();
        let facts = ExpiryFacts {
            workspace: &work.workspace,
            tenant: &work.tenant,
            record: work.record.as_ref().map_err(String::as_str),
            hold,
            access_point_id: access_point_id.as_deref(),
            exists_again,
            in_use_by: &in_use_by,
            deleted_at: work.deleted_at,
            now,
            nonce: &nonce,
        };
        match plan_expiry(&facts, &self.config.retention) {
            ExpiryPlan::Keep { reason } => {
                // An earlier delivery of this record may have moved the data before the record
                // came back: the data goes back with it.
                let trash = self.entry_name(work);
                self.move_back(work, &trash).await?;
                self.audit(work, Action::Skip, reason).emit();
            }
            ExpiryPlan::PutBack { reason, expires_at } => {
                self.put_back(work, reason, expires_at, &in_use_by).await?;
            }
            ExpiryPlan::Remove {
                access_point_id,
                trash,
            } => {
                // A fresh listing right before the move: a task may have started since the
                // batch's listing.
                let users = self.in_use_by(work, in_use, Some(FRESH_IN_USE)).await?;
                if !users.is_empty() {
                    let expires_at = match &work.record {
                        Ok(record) => self.config.retention.expires_at(record, now),
                        Err(_) => Some(now.saturating_add(
                            i64::from(self.config.retention.longest_days()) * 86_400,
                        )),
                    };
                    return self
                        .put_back(work, Reason::SkippedInUse, expires_at, &users)
                        .await;
                }
                if !self.move_to_trash(work, &trash).await? {
                    return Ok(());
                }
                if let Some(ap) = access_point_id {
                    // The irreversible step last, after its own fresh re-check; a record that
                    // appeared by now gets its data back too.
                    if !dry_run && self.record_exists(work).await? {
                        self.move_back(work, &trash).await?;
                        self.audit(work, Action::Skip, Reason::Recreated)
                            .resource(ap)
                            .emit();
                        return Ok(());
                    }
                    self.delete_access_point(work, &ap).await?;
                }
            }
        }
        Ok(())
    }

    /// Puts the old image back (only if no record exists) and, if an earlier delivery of this
    /// record already moved the data to the trash, the data too: a workspace that is kept keeps
    /// its data in place.
    async fn put_back(
        &self,
        work: &Expired,
        reason: Reason,
        expires_at: Option<i64>,
        users: &[String],
    ) -> Result<(), RecordFailure> {
        let written = self.config.dry_run
            || self
                .table
                .put_if_absent(work.item_with_expiry(expires_at))
                .await?;
        if written {
            self.audit(work, Action::PutBackRecord, reason)
                .resource(users.join(","))
                .emit();
        } else {
            // Someone re-created it between our read and our write: theirs wins.
            self.audit(work, Action::Skip, Reason::Recreated).emit();
        }
        let trash = self.entry_name(work);
        self.move_back(work, &trash).await?;
        Ok(())
    }

    fn entry_name(&self, work: &Expired) -> TrashName {
        TrashName::new(
            work.deleted_at,
            work.tenant.clone(),
            work.workspace.clone(),
            work.nonce(),
        )
    }

    /// Moves this record's trash entry back to the live path if it holds the data and nothing
    /// is there. `Ok(true)` when it did.
    async fn move_back(&self, work: &Expired, trash: &TrashName) -> Result<bool, RecordFailure> {
        if self.config.dry_run {
            // Read-only: what the real run would move back.
            let data = self.fs.trash_path().join(trash.to_string()).join("data");
            let live = self
                .fs
                .root()
                .join(work.tenant.as_str())
                .join(work.workspace.as_str());
            let would = std::fs::symlink_metadata(&data).is_ok()
                && std::fs::symlink_metadata(&live).is_err();
            if would {
                self.audit(work, Action::MoveBack, Reason::RecordAppeared)
                    .resource(data.display().to_string())
                    .emit();
            }
            return Ok(would);
        }
        let fs = self.fs.clone();
        let (tenant, workspace, entry) =
            (work.tenant.clone(), work.workspace.clone(), trash.clone());
        let moved = blocking(move || {
            if fs.workspace_presence(&tenant, &workspace)? != Presence::Absent {
                return Ok(false);
            }
            match fs.restore_from_trash(&entry) {
                Ok(_) => Ok(true),
                Err(e) if e.is_not_found() => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await?;
        if moved {
            self.audit(work, Action::MoveBack, Reason::RecordAppeared)
                .resource(
                    self.fs
                        .trash_path()
                        .join(trash.to_string())
                        .display()
                        .to_string(),
                )
                .emit();
        }
        Ok(moved)
    }

    async fn delete_access_point(&self, work: &Expired, ap: &str) -> Result<(), RecordFailure> {
        let dry_run = self.config.dry_run;
        let audit = |reason| {
            self.audit(work, Action::DeleteAccessPoint, reason)
                .resource(ap)
        };
        let Some(info) = self.access_points.describe(ap).await? else {
            audit(Reason::AlreadyAbsent).emit();
            return Ok(());
        };
        let ownership = match &work.record {
            Ok(record) => access_point_belongs(
                &info,
                record,
                self.config.efs_file_system_id.as_deref(),
                &self.config.access_points,
            ),
            Err(_) => Err(
                "the record cannot be read, so the access point is not known to be its own"
                    .to_string(),
            ),
        };
        if let Err(why) = ownership {
            self.audit(work, Action::Skip, Reason::AccessPointMismatch)
                .resource(ap)
                .error(why)
                .emit();
            return Ok(());
        }
        let deleted = dry_run || self.access_points.delete(ap).await?;
        audit(if deleted {
            Reason::TtlExpired
        } else {
            Reason::AlreadyAbsent
        })
        .emit();
        Ok(())
    }

    /// Moves the data to the trash with its record, re-checking the record right before the move
    /// and once more after it (moving the data back if a record appeared). `Ok(false)`: a record
    /// exists again and the data is (back) in place.
    async fn move_to_trash(
        &self,
        work: &Expired,
        trash: &TrashName,
    ) -> Result<bool, RecordFailure> {
        let dry_run = self.config.dry_run;
        let entry = self.fs.trash_path().join(trash.to_string());
        if dry_run {
            let fs = self.fs.clone();
            let (tenant, workspace) = (work.tenant.clone(), work.workspace.clone());
            let presence = blocking(move || fs.workspace_presence(&tenant, &workspace)).await?;
            let reason = if presence == Presence::Absent {
                Reason::AlreadyAbsent
            } else {
                Reason::TtlExpired
            };
            self.audit(work, Action::MoveToTrash, reason)
                .resource(entry.display().to_string())
                .emit();
            return Ok(true);
        }
        if self.record_exists(work).await? {
            self.audit(work, Action::Skip, Reason::Recreated).emit();
            return Ok(false);
        }
        let json = trash_record_json(work, Reason::TtlExpired);
        let fs = self.fs.clone();
        let (tenant, workspace, name) =
            (work.tenant.clone(), work.workspace.clone(), trash.clone());
        let outcome = blocking(move || fs.move_to_trash(&tenant, &workspace, &name, &json)).await?;
        match outcome {
            MoveOutcome::Moved { entry } => {
                if self.record_exists(work).await? {
                    self.move_back(work, trash).await?;
                    return Ok(false);
                }
                self.audit(work, Action::MoveToTrash, Reason::TtlExpired)
                    .resource(entry.display().to_string())
                    .emit();
            }
            MoveOutcome::AlreadyInTrash { entry } => {
                self.audit(work, Action::MoveToTrash, Reason::AlreadyAbsent)
                    .resource(entry.display().to_string())
                    .emit();
            }
            MoveOutcome::Absent => self.complete_sweepers_entry(work).await?,
        }
        Ok(true)
    }

    /// Nothing was live: if the sweeper moved the directory to the trash as an orphan before this
    /// record arrived, its entry has no record; write this one into it so it can be restored.
    async fn complete_sweepers_entry(&self, work: &Expired) -> Result<(), RecordFailure> {
        let fs = self.fs.clone();
        let (tenant, workspace) = (work.tenant.clone(), work.workspace.clone());
        let json = trash_record_json(work, Reason::TtlExpired);
        let completed = blocking(move || {
            let mut candidates: Vec<TrashName> = fs
                .list_trash()?
                .into_iter()
                .filter_map(|e| e.name.parse::<TrashName>().ok())
                .filter(|n| n.tenant == tenant && n.workspace == workspace)
                .collect();
            candidates.sort_by_key(|n| std::cmp::Reverse(n.deleted_at));
            for name in candidates {
                let Some(bytes) = fs.read_trash_record(&name)? else {
                    continue;
                };
                let kept: Option<TrashRecord> = serde_json::from_slice(&bytes).ok();
                if kept.is_some_and(|k| k.item.is_none()) {
                    fs.write_trash_record(&name, &json)?;
                    return Ok(Some(name));
                }
            }
            Ok(None)
        })
        .await?;
        match completed {
            Some(name) => self
                .audit(
                    work,
                    Action::CompleteTrashRecord,
                    Reason::TrashedFirstBySweeper,
                )
                .resource(
                    self.fs
                        .trash_path()
                        .join(name.to_string())
                        .display()
                        .to_string(),
                )
                .emit(),
            None => self
                .audit(work, Action::MoveToTrash, Reason::AlreadyAbsent)
                .emit(),
        }
        Ok(())
    }
}

/// The deletion time a trash entry is named by (the grace counts from it): the stream record's
/// creation time when it is plausible (a stream keeps records 24 hours; a little clock skew),
/// else now. A zero, a time in milliseconds or one far off would shorten or stretch the grace.
fn deletion_time(created: i64, now: i64) -> i64 {
    const OLDEST: i64 = 7 * 86_400;
    const SKEW: i64 = 300;
    if (now.saturating_sub(OLDEST)..=now.saturating_add(SKEW)).contains(&created) {
        created
    } else {
        now
    }
}

fn trash_record_json(work: &Expired, reason: Reason) -> Vec<u8> {
    serde_json::to_vec_pretty(&TrashRecord {
        deleted_at: work.deleted_at,
        reason: reason.as_str().to_string(),
        item: Some(work.item.clone()),
        invalid: work.record.as_ref().err().cloned(),
    })
    .expect("an item always serializes")
}

/// The stream's old image as the domain's attributes (the event carries DynamoDB JSON).
fn old_image(record: &EventRecord) -> Result<Attributes, serde_json::Error> {
    serde_json::to_value(&record.change.old_image).and_then(serde_json::from_value)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, RecordFailure> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RecordFailure::Task(e.to_string()))?
        .map_err(RecordFailure::from)
}

impl From<EventError> for lambda_runtime::Diagnostic {
    fn from(e: EventError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: "InvalidEvent".into(),
            error_message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::access_point::AccessPointInfo;
    use lifecycle_domain::tasks::TaskSummary;
    use lifecycle_ports::fakes::MemoryAccessPoints;
    use lifecycle_ports::fakes::MemoryTable;
    use lifecycle_ports::fakes::MemoryTasks;
    use lifecycle_runtime::config::Env;
    use serde_json::json;

    fn image(ws: &str, extra: Value) -> Value {
        let mut image = json!({
            "workspaceId": {"S": ws}, "tenantId": {"S": "acme"}, "tier": {"S": "free"},
            "subscriptionStatus": {"S": "active"}, "lastActivityAt": {"N": "1000"}, "expiresAt": {"N": "2000"},
        });
        image
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        image
    }

    fn ttl_remove(seq: &str, old: Value) -> Value {
        json!({"eventID": seq, "eventName": "REMOVE", "awsRegion": "us-east-1",
               "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
               "dynamodb": {"ApproximateCreationDateTime": 5000, "OldImage": old, "SequenceNumber": seq,
                            "SizeBytes": 1, "StreamViewType": "NEW_AND_OLD_IMAGES"}})
    }

    /// The handler over the in-memory fakes: the same decisions without the emulator.
    #[test]
    fn implausible_creation_times_do_not_move_the_grace() {
        let now = 1_800_000_000;
        assert_eq!(deletion_time(now - 3_600, now), now - 3_600);
        assert_eq!(deletion_time(1, now), now);
        assert_eq!(deletion_time(now * 1_000, now), now);
        assert_eq!(deletion_time(now - 30 * 86_400, now), now);
        assert_eq!(deletion_time(i64::MIN, i64::MIN + 1), i64::MIN);
    }

    #[tokio::test]
    async fn expires_keeps_in_use_and_holds_with_fakes() {
        let root = tempfile::tempdir().unwrap();
        for ws in ["ws-old", "ws-busy", "ws-held"] {
            std::fs::create_dir_all(root.path().join("acme").join(ws)).unwrap();
        }
        let root_path = root.path().display().to_string();
        let config = Config::from(&Env(move |k: &str| match k {
            "WORKSPACE_TABLE" => Some("workspaces".into()),
            "EFS_ROOT" => Some(root_path.clone()),
            "EFS_FILE_SYSTEM_ID" => Some("fs-1".into()),
            "ECS_CLUSTER" => Some("none".into()),
            _ => None,
        }))
        .unwrap();
        let table = Arc::new(MemoryTable::default());
        let access_points = Arc::new(MemoryAccessPoints::default());
        access_points.points.lock().unwrap().insert(
            "fsap-1".into(),
            AccessPointInfo {
                id: "fsap-1".into(),
                file_system_id: "fs-1".into(),
                root_path: Some("/acme/ws-old".into()),
                tags: Default::default(),
            },
        );
        let tasks = Arc::new(MemoryTasks::default());
        tasks.tasks.lock().unwrap().push(TaskSummary {
            arn: "task-1".into(),
            last_status: "RUNNING".into(),
            tags: vec![("workspaceId".into(), "ws-busy".into())],
            ..TaskSummary::default()
        });
        let function = TtlExpiry {
            table: table.clone(),
            access_points: access_points.clone(),
            tasks: Some(tasks),
            fs: WorkspaceFs::new(root.path()),
            config,
        };
        let event = json!({"Records": [
            ttl_remove("1", image("ws-old", json!({"accessPointId": {"S": "fsap-1"}}))),
            ttl_remove("2", image("ws-busy", json!({}))),
            ttl_remove("3", image("ws-held", json!({"hold": {"BOOL": true}}))),
        ]});
        let response = function.handle(event, 10_000, None).await.unwrap();
        assert!(response.batch_item_failures.is_empty());
        assert!(access_points.points.lock().unwrap().is_empty());
        let entries: Vec<String> = std::fs::read_dir(root.path().join(".trash"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        assert!(entries[0].starts_with("5000+acme+ws-old+"));
        assert!(root
            .path()
            .join(".trash")
            .join(&entries[0])
            .join("data")
            .is_dir());
        let items = table.items.lock().unwrap();
        assert_eq!(
            items["ws-busy"].get("expiresAt"),
            Some(&lifecycle_domain::record::Value::N(
                (10_000 + 7 * 86_400).to_string()
            ))
        );
        assert!(items["ws-held"].get("expiresAt").is_none());
        assert!(
            root.path().join("acme/ws-busy").is_dir() && root.path().join("acme/ws-held").is_dir()
        );
    }
}
