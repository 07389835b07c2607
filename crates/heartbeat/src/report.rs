//! Report: what happened to each workspace ([`Outcome`]), the invocation's [`Summary`], its
//! metrics, and the error that makes Lambda retry an invocation that left work undone.

use lifecycle_domain::activity::SkipReason;
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_domain::WorkspaceId;
use lifecycle_ports::ServiceError;
use lifecycle_runtime::batch::{Report, Settled};
use lifecycle_runtime::observe::{emit_metrics, Audit};
use serde::Serialize;
use tracing::{error, info};

#[derive(Debug, thiserror::Error)]
pub enum HeartbeatError {
    #[error(transparent)]
    Input(#[from] lifecycle_domain::activity::InputError),
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
    /// Tasks (or access points they mount) the scheduled scan could not read: the workspaces they
    /// name may not have been extended; the invocation fails, to be retried.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unread: Vec<Unread>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Unread {
    /// A task's ARN or an access point's id.
    pub what: String,
    pub error: String,
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
    pub reason: SkipReason,
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

/// What happened to one workspace; a failure is the `Err` beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Extended(i64),
    Skipped(SkipReason),
    Unknown,
    Recomputed {
        expires_at: Option<i64>,
        shortened: bool,
    },
    Invalid {
        error: String,
        kept_alive_until: Option<i64>,
    },
}

impl Summary {
    /// One workspace's outcome, in its list.
    pub(crate) fn record(&mut self, id: &WorkspaceId, outcome: Outcome) {
        let workspace_id = id.to_string();
        match outcome {
            Outcome::Extended(expires_at) => self.extended.push(Extended {
                workspace_id,
                expires_at,
            }),
            Outcome::Skipped(reason) => self.skipped.push(Skipped {
                workspace_id,
                reason,
            }),
            Outcome::Unknown => self.unknown.push(workspace_id),
            Outcome::Recomputed {
                expires_at,
                shortened,
            } => self.recomputed.push(Recomputed {
                workspace_id,
                expires_at,
                shortened,
            }),
            Outcome::Invalid {
                error,
                kept_alive_until,
            } => self.invalid.push(Invalid {
                workspace_id,
                error,
                kept_alive_until,
            }),
        }
    }

    pub(crate) fn fail(&mut self, id: impl ToString, error: impl ToString) {
        self.failed.push(Failed {
            workspace_id: id.to_string(),
            error: error.to_string(),
        });
    }

    /// Every workspace of a batch, by id; a workspace that did not settle is `failed`.
    pub(crate) fn record_batch(&mut self, report: Report<WorkspaceId, Outcome, ServiceError>) {
        let mut settled = report.settled;
        settled.sort_by(|a, b| a.0.cmp(&b.0));
        for (id, settled) in settled {
            match settled {
                Settled::Done(outcome) => self.record(&id, outcome),
                Settled::Failed(e) => self.fail(&id, e),
                Settled::Panicked(message) => self.fail(&id, format!("panicked: {message}")),
                Settled::AfterFailure => self.fail(&id, "an earlier update of it failed"),
                Settled::PastDeadline => {
                    self.fail(&id, "not started before the invocation's deadline")
                }
            }
        }
    }

    /// The invocation's metrics: each list of the summary counted, and the skips that were a
    /// heartbeat coalescing into a recent one apart from the others (held, cancelled, ...).
    pub(crate) fn metrics(&self) -> Vec<(&'static str, f64, &'static str)> {
        let coalesced = self
            .skipped
            .iter()
            .filter(|s| s.reason == SkipReason::Coalesced)
            .count();
        let count = |n: usize| n as f64;
        vec![
            ("Extended", count(self.extended.len()), "Count"),
            ("Coalesced", count(coalesced), "Count"),
            ("Skipped", count(self.skipped.len() - coalesced), "Count"),
            ("Unknown", count(self.unknown.len()), "Count"),
            ("Recomputed", count(self.recomputed.len()), "Count"),
            ("Notices", count(self.notices.len()), "Count"),
            ("Failed", count(self.failed.len()), "Count"),
            ("InvalidRecords", count(self.invalid.len()), "Count"),
            ("UnreadTasks", count(self.unread.len()), "Count"),
        ]
    }

    /// Logs and metrics; the invocation's error if anything failed or cannot be read.
    pub(crate) fn finish(mut self) -> Result<Summary, HeartbeatError> {
        // A record seen twice in one run (touched, then scanned for notices) is reported once.
        let mut seen = std::collections::HashSet::new();
        self.invalid.retain(|i| seen.insert(i.workspace_id.clone()));
        info!(
            extended = self.extended.len(),
            skipped = self.skipped.len(),
            unknown = self.unknown.len(),
            recomputed = self.recomputed.len(),
            notices = self.notices.len(),
            failed = self.failed.len(),
            invalid = self.invalid.len(),
            unread = self.unread.len(),
            "heartbeat done"
        );
        emit_metrics("heartbeat", &self.metrics());
        let failed = self.failed.len() + self.invalid.len() + self.unread.len();
        if failed > 0 {
            return Err(HeartbeatError::Partial {
                failed,
                summary: serde_json::to_string(&self).expect("summary serializes"),
            });
        }
        Ok(self)
    }
}

/// The audit line and the error log line of a record that cannot be read.
pub(crate) fn reject(id: &str, e: &dyn std::fmt::Display, what: &str, dry_run: bool) {
    let id: String = id.chars().take(160).collect();
    Audit::new(&id, Action::RejectRecord, Reason::InvalidRecord, dry_run)
        .error(e)
        .emit();
    error!(workspaceId = %id, error = %e, "unreadable workspace record ({what}); fix it (README, \"Invalid records\")");
}
