//! ttl-expiry: when DynamoDB TTL deletes a workspace record, remove that workspace's access point
//! and move its data to the trash, safely and idempotently.
//!
//! Parse, fetch, decide, act, report: each record is classified ([`lifecycle_core::stream`]),
//! re-checked against the table and ECS, planned ([`lifecycle_core::expiry::plan_expiry`]) and
//! then acted on, with one audit line per action.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use futures::stream::{self, StreamExt};
use lifecycle_core::config::Config;
use lifecycle_core::efs::{FsError, MoveOutcome, Presence, WorkspaceFs};
use lifecycle_core::expiry::{access_point_belongs, plan_expiry, ExpiryFacts, ExpiryPlan};
use lifecycle_core::layout::TrashName;
use lifecycle_core::observe::{Action, Audit, Reason};
use lifecycle_core::ports::{AccessPoints, ServiceError, Tasks, WorkspaceTable};
use lifecycle_core::stream::{classify, StreamRecordKind};
use lifecycle_core::tasks::workspaces_in_use;
use lifecycle_core::StoredRecord;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::OnceCell;
use tracing::{debug, info, warn, Instrument};

/// Everything the function needs, built once in `main` and shared by every invocation.
pub struct TtlExpiry {
    pub table: Arc<dyn WorkspaceTable>,
    pub access_points: Arc<dyn AccessPoints>,
    /// `None` when `ECS_CLUSTER` is not set: no in-use guard.
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
}

impl RecordFailure {
    fn retryable(&self) -> bool {
        match self {
            RecordFailure::Service(e) => e.retryable,
            RecordFailure::Fs(e) => e.is_retryable(),
            RecordFailure::Task(_) | RecordFailure::EarlierFailed => true,
        }
    }
}

/// A TTL deletion ready to act on.
struct Expired {
    index: usize,
    sequence: Option<String>,
    stored: StoredRecord,
    deleted_at: i64,
}

/// What the trash keeps beside the data, so `lifecycle restore` can put the record back.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrashRecord<'a> {
    deleted_at: i64,
    reason: &'static str,
    item: &'a serde_dynamo::Item,
}

type InUse = BTreeMap<String, Vec<String>>;

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
            let id = work.stored.record.workspace_id.to_string();
            let g = *group_of.entry(id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[g].push(work);
        }

        let in_use: OnceCell<Result<InUse, ServiceError>> = OnceCell::new();
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

    /// Parses and classifies one raw record; `Some` only for a well-formed TTL deletion.
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
        let stored = match StoredRecord::from_item(record.change.old_image.clone()) {
            Ok(stored) => stored,
            Err(e) => {
                let id = match record.change.old_image.get("workspaceId") {
                    Some(serde_dynamo::AttributeValue::S(s)) => s.chars().take(160).collect(),
                    _ => String::new(),
                };
                Audit::new(id, Action::RejectRecord, Reason::InvalidRecord, dry_run)
                    .resource(format!(
                        "sequence {}",
                        record.change.sequence_number.as_deref().unwrap_or("?")
                    ))
                    .error(e)
                    .emit();
                return None;
            }
        };
        let created = record.change.approximate_creation_date_time.timestamp();
        Some(Expired {
            index,
            sequence: record.change.sequence_number.clone(),
            stored,
            deleted_at: if created > 0 { created } else { now },
        })
    }

    /// Handles one workspace's records in order; returns the failed ones.
    async fn handle_group(
        &self,
        group: Vec<Expired>,
        now: i64,
        deadline: Option<Instant>,
        in_use: &OnceCell<Result<InUse, ServiceError>>,
    ) -> Vec<(usize, Option<String>)> {
        let mut failed = Vec::new();
        for work in group {
            let span = tracing::info_span!(
                "record",
                sequence = work.sequence.as_deref().unwrap_or("?"),
                workspaceId = %work.stored.record.workspace_id,
            );
            if !failed.is_empty() {
                warn!(parent: &span, error = %RecordFailure::EarlierFailed, "record deferred");
                failed.push((work.index, work.sequence));
                continue;
            }
            let result = self
                .expire(&work, now, deadline, in_use)
                .instrument(span.clone())
                .await;
            if let Err(e) = result {
                let r = &work.stored.record;
                Audit::new(
                    r.workspace_id.as_str(),
                    Action::Skip,
                    Reason::Failed,
                    self.config.dry_run,
                )
                .tenant(r.tenant_id.as_str())
                .error(&e)
                .emit();
                warn!(parent: &span, retryable = e.retryable(), error = %e, "record failed; reported for retry");
                failed.push((work.index, work.sequence));
            }
        }
        failed
    }

    async fn in_use_by(
        &self,
        workspace: &str,
        in_use: &OnceCell<Result<InUse, ServiceError>>,
    ) -> Result<Vec<String>, ServiceError> {
        let Some(tasks) = &self.tasks else {
            return Ok(Vec::new());
        };
        // One ECS scan per batch, shared by every record that needs it.
        let map = in_use
            .get_or_init(|| async { tasks.active_tasks().await.map(|t| workspaces_in_use(&t)) })
            .await
            .as_ref()
            .map_err(Clone::clone)?;
        Ok(map.get(workspace).cloned().unwrap_or_default())
    }

    async fn expire(
        &self,
        work: &Expired,
        now: i64,
        deadline: Option<Instant>,
        in_use: &OnceCell<Result<InUse, ServiceError>>,
    ) -> Result<(), RecordFailure> {
        let record = &work.stored.record;
        let dry_run = self.config.dry_run;
        let audit = |action, reason| {
            Audit::new(record.workspace_id.as_str(), action, reason, dry_run)
                .tenant(record.tenant_id.as_str())
        };

        let exists_again = self.table.get(&record.workspace_id).await?.is_some();
        let in_use_by = if exists_again || record.hold {
            Vec::new()
        } else {
            self.in_use_by(record.workspace_id.as_str(), in_use).await?
        };
        let facts = ExpiryFacts {
            record,
            exists_again,
            in_use_by: &in_use_by,
            deleted_at: work.deleted_at,
            now,
            trash_grace_days: self.config.trash_grace_days,
        };
        match plan_expiry(&facts, &self.config.retention) {
            ExpiryPlan::Keep { reason } => audit(Action::Skip, reason).emit(),
            ExpiryPlan::PutBack { reason, expires_at } => {
                let written = dry_run
                    || self
                        .table
                        .put_if_absent(work.stored.item_with_expiry(expires_at))
                        .await?;
                let line = audit(Action::PutBackRecord, reason).resource(in_use_by.join(","));
                if written {
                    line.emit();
                } else {
                    // Someone re-created it between our read and our write: theirs wins.
                    audit(Action::Skip, Reason::Recreated).emit();
                }
            }
            ExpiryPlan::Remove {
                access_point_id,
                trash,
                purge_now,
            } => {
                if let Some(ap) = access_point_id {
                    self.delete_access_point(record, &ap).await?;
                }
                self.move_to_trash(work, &trash).await?;
                if purge_now {
                    self.purge(record, &trash, deadline).await?;
                }
            }
        }
        Ok(())
    }

    async fn delete_access_point(
        &self,
        record: &lifecycle_core::WorkspaceRecord,
        ap: &str,
    ) -> Result<(), RecordFailure> {
        let dry_run = self.config.dry_run;
        let audit = |reason| {
            Audit::new(
                record.workspace_id.as_str(),
                Action::DeleteAccessPoint,
                reason,
                dry_run,
            )
            .tenant(record.tenant_id.as_str())
            .resource(ap)
        };
        let Some(info) = self.access_points.describe(ap).await? else {
            audit(Reason::AlreadyAbsent).emit();
            return Ok(());
        };
        if let Err(why) = access_point_belongs(
            &info,
            record,
            self.config.efs_file_system_id.as_deref(),
            &self.config.access_points,
        ) {
            Audit::new(
                record.workspace_id.as_str(),
                Action::Skip,
                Reason::AccessPointMismatch,
                dry_run,
            )
            .tenant(record.tenant_id.as_str())
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

    async fn move_to_trash(&self, work: &Expired, trash: &TrashName) -> Result<(), RecordFailure> {
        let record = &work.stored.record;
        let dry_run = self.config.dry_run;
        let fs = self.fs.clone();
        let (tenant, workspace) = (record.tenant_id.clone(), record.workspace_id.clone());
        let entry = self.fs.trash_path().join(trash.to_string());
        let moved = if dry_run {
            let presence = blocking(move || fs.workspace_presence(&tenant, &workspace)).await?;
            presence != Presence::Absent
        } else {
            let json = serde_json::to_vec_pretty(&TrashRecord {
                deleted_at: work.deleted_at,
                reason: Reason::TtlExpired.as_str(),
                item: &work.stored.item,
            })
            .expect("an item always serializes");
            let trash = trash.clone();
            let outcome =
                blocking(move || fs.move_to_trash(&tenant, &workspace, &trash, &json)).await?;
            matches!(outcome, MoveOutcome::Moved { .. })
        };
        let reason = if moved {
            Reason::TtlExpired
        } else {
            Reason::AlreadyAbsent
        };
        Audit::new(
            record.workspace_id.as_str(),
            Action::MoveToTrash,
            reason,
            dry_run,
        )
        .tenant(record.tenant_id.as_str())
        .resource(entry.display().to_string())
        .emit();
        Ok(())
    }

    async fn purge(
        &self,
        record: &lifecycle_core::WorkspaceRecord,
        trash: &TrashName,
        deadline: Option<Instant>,
    ) -> Result<(), RecordFailure> {
        let dry_run = self.config.dry_run;
        let line = Audit::new(
            record.workspace_id.as_str(),
            Action::PurgeTrashEntry,
            Reason::NoGracePeriod,
            dry_run,
        )
        .tenant(record.tenant_id.as_str())
        .resource(
            self.fs
                .trash_path()
                .join(trash.to_string())
                .display()
                .to_string(),
        );
        if dry_run {
            line.emit();
            return Ok(());
        }
        let fs = self.fs.clone();
        let name = trash.to_string();
        let report = blocking(move || fs.purge_trash_entry(&name, deadline)).await?;
        let line = line.freed(report.files, report.bytes);
        if report.complete {
            line.emit();
        } else {
            // What is left stays in the trash, where the sweeper finishes it; not a record failure.
            let why = if report.stopped_at_deadline {
                "stopped at the deadline; the sweeper finishes it".to_string()
            } else {
                format!(
                    "{} entries could not be removed: {:?}",
                    report.errors.len(),
                    report.errors.first()
                )
            };
            line.error(why).emit();
        }
        Ok(())
    }
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
    use lifecycle_core::config::Env;
    use lifecycle_core::memory::{MemoryAccessPoints, MemoryTable, MemoryTasks};
    use lifecycle_core::ports::AccessPointInfo;
    use lifecycle_core::tasks::TaskSummary;
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
            override_env: vec![],
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
        assert!(root.path().join(".trash/5000+acme+ws-old/data").is_dir());
        let items = table.items.lock().unwrap();
        assert_eq!(
            items["ws-busy"].get("expiresAt"),
            Some(&serde_dynamo::AttributeValue::N(
                (10_000 + 7 * 86_400).to_string()
            ))
        );
        assert!(items["ws-held"].get("expiresAt").is_none());
        assert!(
            root.path().join("acme/ws-busy").is_dir() && root.path().join("acme/ws-held").is_dir()
        );
    }
}
