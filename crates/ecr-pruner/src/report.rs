//! What a prune did: the summary the handler returns, and the run's metrics.

use std::collections::BTreeMap;

use lifecycle_domain::fanout::Counters;
use lifecycle_domain::prune::{Decision, RepoPlan, Verdict};
use lifecycle_domain::reasons::Action;
use lifecycle_ports::Failure;
use lifecycle_runtime::observe::emit_metrics;
use serde::Serialize;

/// Why a delete the plan made was not done when the plan was carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotDeleted {
    /// The re-check could not read the repository or what is in use: nothing deleted there.
    SkippedRecheckFailed,
    /// Something it must go after (its index, its subject) was not deleted (or archived).
    SkippedParentNotDeleted,
    /// The invocation's deadline came before this repository's turn: the next run plans it.
    StoppedAtDeadline,
}

lifecycle_domain::serde_codes!(NotDeleted);

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepoSummary {
    pub repository: String,
    pub images: usize,
    /// Images kept, by reason code (a `PruneReason`, or a [`NotDeleted`]).
    pub kept: BTreeMap<&'static str, usize>,
    /// Images deleted (in a dry run: that would be), by reason code.
    pub deleted: BTreeMap<&'static str, usize>,
    pub bytes_freed: u64,
    /// Images archived (in a dry run: that would be), by the reason they would have been deleted.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub archived: BTreeMap<&'static str, usize>,
    #[serde(skip_serializing_if = "is_zero")]
    pub bytes_archived: u64,
    /// Archived images restored to standard storage (in a dry run: that would be), by the
    /// reason they are needed.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub restored: BTreeMap<&'static str, usize>,
    /// The plan's restores (done or not): counted there, not again among the re-check's keeps.
    #[serde(skip)]
    pub(crate) restoring: std::collections::BTreeSet<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failed: Vec<Failed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap_exceeded: Option<String>,
    /// The re-check could not read the repository: nothing was deleted in it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A delete, archive or restore that failed (after retries, for a retryable failure).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Failed {
    pub digest: String,
    /// What failed (`delete_image`, `archive_image`, `restore_image`).
    pub action: Action,
    pub failure: Failure,
    pub error: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PruneSummary {
    pub dry_run: bool,
    pub repositories: Vec<RepoSummary>,
    pub deleted: usize,
    pub bytes_freed: u64,
    #[serde(skip_serializing_if = "is_zero_count")]
    pub archived: usize,
    #[serde(skip_serializing_if = "is_zero_count")]
    pub restored: usize,
    /// Repositories were left for the next run: the deadline came first.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped_at_deadline: bool,
}

fn is_zero_count(n: &usize) -> bool {
    *n == 0
}

impl RepoSummary {
    pub(crate) fn of(plan: &RepoPlan) -> Self {
        Self {
            repository: plan.repository.clone(),
            images: plan.decisions.len(),
            cap_exceeded: plan.cap_exceeded.clone(),
            restoring: plan.restores.iter().cloned().collect(),
            ..Self::default()
        }
    }

    pub(crate) fn keep(&mut self, code: &'static str) {
        *self.kept.entry(code).or_default() += 1;
    }

    /// Counts the plan's keeps (and, with `not_deleted`, its deletes and archives as not done
    /// for that reason). Restores are counted when they are done.
    pub(crate) fn keeps_of(&mut self, plan: &RepoPlan, not_deleted: Option<NotDeleted>) {
        for d in &plan.decisions {
            if self.restoring.contains(&d.digest) {
                continue;
            }
            match (d.verdict, not_deleted) {
                (Verdict::Keep, _) => self.keep(d.reason.as_str()),
                (Verdict::Delete | Verdict::Archive, Some(why)) => self.keep(why.as_str()),
                (Verdict::Delete | Verdict::Archive | Verdict::Restore, None) => {}
                (Verdict::Restore, Some(_)) => {}
            }
        }
    }

    /// One image deleted (or, in a dry run, that would be), with its audit line.
    pub(crate) fn deleted(&mut self, decision: &Decision, dry_run: bool) {
        *self.deleted.entry(decision.reason.as_str()).or_default() += 1;
        self.bytes_freed += decision.size;
        self.audit(decision, Action::DeleteImage, dry_run);
    }

    /// One image archived (or, in a dry run, that would be), with its audit line.
    pub(crate) fn archived(&mut self, decision: &Decision, dry_run: bool) {
        *self.archived.entry(decision.reason.as_str()).or_default() += 1;
        self.bytes_archived += decision.size;
        self.audit(decision, Action::ArchiveImage, dry_run);
    }

    /// One archived image restored (or, in a dry run, that would be), with its audit line.
    pub(crate) fn restored(&mut self, decision: &Decision, dry_run: bool) {
        *self.restored.entry(decision.reason.as_str()).or_default() += 1;
        self.audit(decision, Action::RestoreImage, dry_run);
    }

    /// The image's own audit line: same target and shape as the workspace ones.
    fn audit(&self, decision: &Decision, action: Action, dry_run: bool) {
        tracing::info!(
            target: "audit",
            repository = %self.repository,
            digest = %decision.digest,
            tags = %decision.tags.join(","),
            action = action.as_str(),
            reason = decision.reason.as_str(),
            status = decision.status.as_str(),
            dryRun = dry_run,
            bytes = decision.size,
            "audit"
        );
    }

    /// Restores that failed.
    pub fn restore_failures(&self) -> impl Iterator<Item = &Failed> {
        self.failed
            .iter()
            .filter(|f| f.action == Action::RestoreImage)
    }
}

impl PruneSummary {
    pub(crate) fn add(&mut self, repository: RepoSummary) {
        self.deleted += repository.deleted.values().sum::<usize>();
        self.archived += repository.archived.values().sum::<usize>();
        self.restored += repository.restored.values().sum::<usize>();
        self.bytes_freed += repository.bytes_freed;
        self.repositories.push(repository);
    }

    /// Repositories whose re-check failed (nothing was deleted in them).
    pub fn recheck_failed(&self) -> Vec<String> {
        self.repositories
            .iter()
            .filter(|r| r.error.is_some())
            .map(|r| r.repository.clone())
            .collect()
    }

    /// Archived images in use whose restore failed: `repository@digest`.
    pub fn restore_failed(&self) -> Vec<String> {
        self.repositories
            .iter()
            .flat_map(|r| {
                r.restore_failures()
                    .map(move |f| format!("{}@{}", r.repository, f.digest))
            })
            .collect()
    }

    /// What it did, by metric name: a run's metrics, and what a unit adds to its run.
    /// `ImagesRestored` counts restores asked for and failed alike: each is an image in use
    /// that could not be pulled.
    pub fn counters(&self) -> Counters {
        let failures: usize = self
            .repositories
            .iter()
            .map(|r| r.failed.len() + usize::from(r.error.is_some()))
            .sum();
        let restore_failures = self.restore_failed().len();
        let capped = self
            .repositories
            .iter()
            .filter(|r| r.cap_exceeded.is_some())
            .count();
        Counters::from([
            ("ImagesDeleted".to_string(), self.deleted as i64),
            ("BytesFreed".into(), self.bytes_freed as i64),
            ("DeleteFailures".into(), failures as i64),
            ("CapExceeded".into(), capped as i64),
            ("ImagesArchived".into(), self.archived as i64),
            (
                "ImagesRestored".into(),
                (self.restored + restore_failures) as i64,
            ),
            ("RestoreFailures".into(), restore_failures as i64),
            (
                "StoppedAtDeadline".into(),
                i64::from(self.stopped_at_deadline),
            ),
        ])
    }

    /// The run's metrics (one EMF line, inside Lambda only).
    pub fn emit_metrics(&self) {
        let counters = self.counters();
        let metrics: Vec<(&str, f64, &str)> = counters
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
        emit_metrics("ecr-pruner", &metrics);
    }
}
