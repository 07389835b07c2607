//! Report: how each record of a batch ended, the audit line of every failure, and the
//! `batchItemFailures` Lambda retries.
//!
//! Every failure is reported: no record is ever dropped because its failure looked hopeless.
//! What the failure's kind decides is what the report says and keeps ([`Disposition`]).

use std::sync::Arc;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use lifecycle_domain::reasons::{Action, Reason};
use lifecycle_fs::FsError;
use lifecycle_ports::{Failure, ServiceError};
use lifecycle_runtime::batch::{Report, Settled};
use lifecycle_runtime::observe::{emit_metrics as emit, Audit};
use serde::Serialize;
use tracing::{error, warn};

use crate::event::Expired;

/// Why a record could not be handled this time.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordFailure {
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Fs(#[from] FsError),
    #[error("file-system task failed: {0}")]
    Task(String),
}

/// How a record that was handled ended, for the batch's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The data is in the trash (the access point deleted, or left where it was not ours).
    Trashed,
    /// Kept because a running task uses it: the record put back, the data in place.
    SkippedInUse,
    /// Kept for another reason: held, re-created, a user's delete, a link refused, nothing left.
    Kept,
}

impl Outcome {
    /// The outcome of keeping a workspace for `reason`.
    pub fn kept(reason: Reason) -> Self {
        if reason == Reason::SkippedInUse {
            Outcome::SkippedInUse
        } else {
            Outcome::Kept
        }
    }
}

/// What reporting a failed record leads to. Either way it is in `batchItemFailures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Disposition {
    /// A retryable failure, or a conflict (the world changed under a call): Lambda delivers the
    /// record again, and the handler reads everything again and decides afresh.
    Retry,
    /// A permanent failure (denied, invalid): the same calls will get the same answer. Reported
    /// all the same, so after the event source's bounded retries the batch reaches the failure
    /// queue and its alarm; that queue keeps only sequence numbers, so the old image goes into
    /// the audit line, where it survives.
    DeadLetter,
}

lifecycle_domain::serde_codes!(Disposition);

impl RecordFailure {
    pub fn disposition(&self) -> Disposition {
        let permanent = match self {
            RecordFailure::Service(e) => match e.failure {
                Failure::Retryable | Failure::Conflict => false,
                Failure::Permanent => true,
            },
            RecordFailure::Fs(e) => !e.is_retryable(),
            // A file-system task that panicked or was cancelled: nothing says it would again.
            RecordFailure::Task(_) => false,
        };
        if permanent {
            Disposition::DeadLetter
        } else {
            Disposition::Retry
        }
    }
}

/// The audit and log lines of a record that did not end well; `true` when it is reported.
fn settle(work: &Expired, settled: &Settled<Outcome, RecordFailure>, dry_run: bool) -> bool {
    let (error, disposition) = match settled {
        Settled::Done(_) => return false,
        Settled::Failed(e) => (e.to_string(), e.disposition()),
        Settled::Panicked(message) => (format!("panicked: {message}"), Disposition::Retry),
        Settled::AfterFailure => (
            "an earlier record of the same workspace failed in this batch".to_string(),
            Disposition::Retry,
        ),
        Settled::PastDeadline => (
            "not started before the invocation's deadline".to_string(),
            Disposition::Retry,
        ),
    };
    let span = tracing::info_span!(
        "record",
        sequence = work.sequence.as_deref().unwrap_or("?"),
        workspaceId = %work.workspace,
    );
    let audit = Audit::new(
        work.workspace.as_str(),
        Action::Skip,
        Reason::Failed,
        dry_run,
    )
    .tenant(work.tenant.as_str());
    match disposition {
        Disposition::Retry => {
            audit.error(&error).emit();
            warn!(parent: &span, disposition = disposition.as_str(), %error, "record failed; reported for retry");
        }
        Disposition::DeadLetter => {
            let image = serde_json::to_string(&work.item).unwrap_or_default();
            audit
                .error(format!("{error}; a retry cannot help; old image: {image}"))
                .emit();
            error!(parent: &span, disposition = disposition.as_str(), %error, "record failed for good; reported so it reaches the failure queue");
        }
    }
    true
}

/// Audits every failure and lists the failed records' sequence numbers, in stream order.
pub(crate) fn response(
    report: &Report<Arc<Expired>, Outcome, RecordFailure>,
    dry_run: bool,
) -> DynamoDbEventResponse {
    let mut response = DynamoDbEventResponse::default();
    for (work, settled) in &report.settled {
        if settle(work, settled, dry_run) {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = work.sequence.clone();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// The batch's metrics: records delivered, TTL deletions handled, how the handled ones ended,
/// and the failed ones by what their failure leads to.
pub(crate) fn metrics(
    records: usize,
    report: &Report<Arc<Expired>, Outcome, RecordFailure>,
) -> Vec<(&'static str, f64, &'static str)> {
    let settled = || report.settled.iter().map(|(_, settled)| settled);
    let ended = |o: Outcome| {
        settled()
            .filter(|s| matches!(s, Settled::Done(done) if *done == o))
            .count() as f64
    };
    let failed: Vec<Disposition> = settled()
        .filter_map(|settled| match settled {
            Settled::Done(_) => None,
            Settled::Failed(e) => Some(e.disposition()),
            _ => Some(Disposition::Retry),
        })
        .collect();
    let count = |d: Disposition| failed.iter().filter(|f| **f == d).count() as f64;
    vec![
        ("Records", records as f64, "Count"),
        ("TtlDeletions", report.settled.len() as f64, "Count"),
        ("Trashed", ended(Outcome::Trashed), "Count"),
        ("SkippedInUse", ended(Outcome::SkippedInUse), "Count"),
        ("Kept", ended(Outcome::Kept), "Count"),
        ("Failed", failed.len() as f64, "Count"),
        ("FailedRetry", count(Disposition::Retry), "Count"),
        ("FailedPermanent", count(Disposition::DeadLetter), "Count"),
    ]
}

/// [`metrics`] as one EMF line (inside Lambda only).
pub(crate) fn emit_metrics(records: usize, report: &Report<Arc<Expired>, Outcome, RecordFailure>) {
    emit("ttl-expiry", &metrics(records, report));
}
