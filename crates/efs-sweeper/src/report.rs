//! What a sweep did: the summary the handler returns, and the run's metrics.

use lifecycle_domain::fanout::Counters;
use lifecycle_domain::sweep::{Skip, SweepReason, SweepTarget};
use lifecycle_ports::Failure;
use lifecycle_runtime::observe::emit_metrics;
use serde::Serialize;

/// A planned action that was taken (in a dry run: would be taken).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Done {
    #[serde(flatten)]
    pub target: SweepTarget,
    /// The plan's reason for it.
    pub reason: SweepReason,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

/// Why a planned action was not taken, or not finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unfinished {
    /// The deadline had passed before it started; the next run plans it again.
    Deadline,
    /// A purge stopped at the deadline; its entry is `.purging+` and the next run finishes it.
    StoppedAtDeadline,
    /// A purge left entries it could not remove.
    Incomplete,
    /// The workspace has a record again (fresh read): kept.
    Recreated,
    /// The trash entry's workspace has a record and no live directory: the entry may be that
    /// record's only data, so it is kept.
    RecordExistsWithoutData,
    /// Changed since it was read: an access point's root or tags since the listing, or a trash
    /// entry's data while it was archived. Kept.
    Changed,
    /// A task uses it now (fresh listing): kept.
    SkippedInUse,
    /// It was gone already.
    AlreadyAbsent,
    /// The plan's reason does not hold right before the act (a trash entry within its grace,
    /// an access point that is not a workspace one of this file system): not done. A plan this
    /// sweeper made never has one; a unit of work changed on its way may.
    NotEligible,
    /// A re-check or the act itself failed (`failure` and `error` say how): nothing was done.
    Failed,
}

lifecycle_domain::serde_codes!(Unfinished);

/// A planned action that was not taken (or not finished), and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotDone {
    #[serde(flatten)]
    pub target: SweepTarget,
    pub reason: Unfinished,
    /// For [`Unfinished::Failed`] on a service call: how it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    pub not_done: Vec<NotDone>,
    /// What the plan kept, and why (`skipped_cap`: held back by a cap).
    pub skipped: Vec<Skip>,
    /// The plan's caps that tripped, if any.
    pub cap_exceeded: Option<String>,
    pub files_freed: u64,
    pub bytes_freed: u64,
    pub stopped_at_deadline: bool,
    pub duration_ms: u64,
    /// How many access points the file system has (the quota is 10,000).
    pub access_points: usize,
}

impl SweepSummary {
    fn count(&self, kind: fn(&SweepTarget) -> bool) -> i64 {
        self.actions.iter().filter(|a| kind(&a.target)).count() as i64
    }

    /// What its actions did, by metric name: a run's metrics, and what a unit adds to its run.
    pub fn counters(&self) -> Counters {
        Counters::from([
            (
                "TrashPurged".to_string(),
                self.count(|t| {
                    matches!(
                        t,
                        SweepTarget::PurgeTrash { .. } | SweepTarget::ArchiveTrash { .. }
                    )
                }),
            ),
            (
                "TrashArchived".into(),
                self.count(|t| matches!(t, SweepTarget::ArchiveTrash { .. })),
            ),
            (
                "OrphanDirectories".into(),
                self.count(|t| matches!(t, SweepTarget::TrashOrphan { .. })),
            ),
            (
                "OrphanAccessPoints".into(),
                self.count(|t| matches!(t, SweepTarget::DeleteAccessPoint { .. })),
            ),
            (
                "OrphanAccessPointsMarked".into(),
                self.count(|t| matches!(t, SweepTarget::MarkAccessPoint { .. })),
            ),
            ("FilesFreed".into(), self.files_freed as i64),
            ("BytesFreed".into(), self.bytes_freed as i64),
            ("NotDone".into(), self.not_done.len() as i64),
        ])
    }

    /// The run's metrics (one EMF line, inside Lambda only).
    pub fn emit_metrics(&self) {
        let counters = self.counters();
        let mut metrics: Vec<(&str, f64, &str)> = counters
            .iter()
            .map(|(name, value)| {
                let unit = if name == "BytesFreed" {
                    "Bytes"
                } else {
                    "Count"
                };
                (name.as_str(), *value as f64, unit)
            })
            .collect();
        metrics.extend([
            (
                "CapExceeded",
                f64::from(u8::from(self.cap_exceeded.is_some())),
                "Count",
            ),
            ("AccessPoints", self.access_points as f64, "Count"),
            ("DurationMs", self.duration_ms as f64, "Milliseconds"),
        ]);
        emit_metrics("efs-sweeper", &metrics);
    }
}
