//! Logs, audit lines and metrics. Every line is JSON on stdout (CloudWatch Logs ingests it as is).
//! Audit lines carry `target = "audit"`, so one filter pattern finds every destructive decision.

use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// JSON logs at `RUST_LOG` (default `info`). Call once, first thing in `main`.
pub fn init_tracing() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(true)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

/// What was done (or, in a dry run, would have been).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    DeleteAccessPoint,
    MarkOrphanAccessPoint,
    UnmarkAccessPoint,
    MoveToTrash,
    PurgeTrashEntry,
    PutBackRecord,
    Skip,
    RejectRecord,
    ExtendExpiry,
    SetExpiry,
    SendNotice,
    DeleteImage,
    /// Data moved back out of the trash because its record appeared during the move.
    MoveBack,
    /// The old image written into a trash entry that had none (the sweeper was first).
    CompleteTrashRecord,
}

/// Why. Exactly one per audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// DynamoDB TTL deleted the record.
    TtlExpired,
    /// The record exists again (re-created after the TTL delete).
    Recreated,
    /// A running or pending ECS task uses the workspace.
    SkippedInUse,
    /// The record is under hold and must never expire.
    SkippedHold,
    /// The access point belongs to another workspace or file system.
    AccessPointMismatch,
    /// Nothing was there: a redelivery, or already cleaned up.
    AlreadyAbsent,
    /// `TRASH_GRACE_DAYS=0`: purge without a grace period.
    NoGracePeriod,
    /// The record is malformed or names a hostile id; nothing was touched.
    InvalidRecord,
    /// The action failed; see `error`.
    Failed,
    /// A dispatch, an ECS task event or a running task showed activity.
    Activity,
    /// `recompute` re-derived the expiry from the last activity (a tier or status change).
    Recomputed,
    /// `recompute` shortened the expiry: the one path that may.
    RecomputeShortened,
    /// The workspace expires within `EXPIRY_NOTICE_DAYS`.
    ExpiringSoon,
    /// A symlink or a file stands where a tenant or workspace directory must be: never followed,
    /// not retried; an operator looks at it.
    RefusedSymlink,
    /// A record for the workspace appeared while its data was being moved.
    RecordAppeared,
    /// The sweeper trashed the directory first (as an orphan); its entry now has the record.
    TrashedFirstBySweeper,
    /// The record cannot be read but the workspace is in use: kept alive for the policy's
    /// longest retention until an operator fixes the record.
    InvalidRecordInUse,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::DeleteAccessPoint => "delete_access_point",
            Action::MarkOrphanAccessPoint => "mark_orphan_access_point",
            Action::UnmarkAccessPoint => "unmark_access_point",
            Action::MoveToTrash => "move_to_trash",
            Action::PurgeTrashEntry => "purge_trash_entry",
            Action::PutBackRecord => "put_back_record",
            Action::Skip => "skip",
            Action::RejectRecord => "reject_record",
            Action::ExtendExpiry => "extend_expiry",
            Action::SetExpiry => "set_expiry",
            Action::SendNotice => "send_notice",
            Action::DeleteImage => "delete_image",
            Action::MoveBack => "move_back",
            Action::CompleteTrashRecord => "complete_trash_record",
        }
    }
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::TtlExpired => "ttl_expired",
            Reason::Recreated => "recreated",
            Reason::SkippedInUse => "skipped_in_use",
            Reason::SkippedHold => "skipped_hold",
            Reason::AccessPointMismatch => "access_point_mismatch",
            Reason::AlreadyAbsent => "already_absent",
            Reason::NoGracePeriod => "no_grace_period",
            Reason::InvalidRecord => "invalid_record",
            Reason::Failed => "failed",
            Reason::Activity => "activity",
            Reason::Recomputed => "recomputed",
            Reason::RecomputeShortened => "recompute_shortened",
            Reason::ExpiringSoon => "expiring_soon",
            Reason::RefusedSymlink => "refused_symlink",
            Reason::RecordAppeared => "record_appeared",
            Reason::TrashedFirstBySweeper => "trashed_first_by_sweeper",
            Reason::InvalidRecordInUse => "invalid_record_in_use",
        }
    }
}

/// One audit line: what, to which workspace, why, and how much.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Audit {
    pub workspace_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    pub action: String,
    pub reason: String,
    pub dry_run: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Audit {
    pub fn new(
        workspace_id: impl Into<String>,
        action: Action,
        reason: Reason,
        dry_run: bool,
    ) -> Self {
        Self::coded(workspace_id, action, reason.as_str(), dry_run)
    }

    /// An audit line with a reason code of another vocabulary (the sweeper's, the pruner's).
    pub fn coded(
        workspace_id: impl Into<String>,
        action: Action,
        reason: &str,
        dry_run: bool,
    ) -> Self {
        Self {
            workspace_id: workspace_id.into(),
            action: action.as_str().into(),
            reason: reason.into(),
            dry_run,
            ..Self::default()
        }
    }

    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant_id = Some(tenant.into());
        self
    }

    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn freed(mut self, files: u64, bytes: u64) -> Self {
        self.files = Some(files);
        self.bytes = Some(bytes);
        self
    }

    pub fn error(mut self, error: impl std::fmt::Display) -> Self {
        self.error = Some(error.to_string());
        self
    }

    /// Emits the line (warn level for failures and rejections, info otherwise).
    pub fn emit(&self) {
        macro_rules! line {
            ($level:ident) => {
                tracing::$level!(
                    target: "audit",
                    workspaceId = %self.workspace_id,
                    tenantId = self.tenant_id.as_deref(),
                    action = %self.action,
                    reason = %self.reason,
                    dryRun = self.dry_run,
                    resource = self.resource.as_deref(),
                    files = self.files,
                    bytes = self.bytes,
                    error = self.error.as_deref(),
                    "audit"
                )
            };
        }
        let warn = [
            Reason::InvalidRecord,
            Reason::RefusedSymlink,
            Reason::RecordAppeared,
        ];
        if self.error.is_some() || warn.iter().any(|r| self.reason == r.as_str()) {
            line!(warn);
        } else {
            line!(info);
        }
    }
}

/// The CloudWatch namespace of the project's metrics.
pub const METRICS_NAMESPACE: &str = "WorkspaceLifecycle";

/// One line of CloudWatch Embedded Metric Format on stdout: CloudWatch turns it into metrics
/// (dimension `Function`) without an API call. `metrics` are `(name, value, unit)`. Emitted only
/// when running in Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set).
pub fn emit_metrics(function: &str, metrics: &[(&str, f64, &str)]) {
    // Only inside Lambda: from the CLI or a test, stdout belongs to the caller.
    if std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_none() {
        return;
    }
    let definitions: Vec<_> = metrics
        .iter()
        .map(|(name, _, unit)| serde_json::json!({"Name": name, "Unit": unit}))
        .collect();
    let mut line = serde_json::json!({
        "_aws": {
            "Timestamp": std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0),
            "CloudWatchMetrics": [{
                "Namespace": METRICS_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    for (name, value, _) in metrics {
        line[*name] = serde_json::json!(value);
    }
    println!("{line}");
}
