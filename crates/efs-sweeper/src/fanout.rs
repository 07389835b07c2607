//! The sweep past one invocation (`WORK_QUEUE_URL`, `RUNS_TABLE`): the scheduled run is the
//! coordinator, which plans the whole sweep (the caps are the fleet's, decided from its counts
//! before anything is done) and sends it as units; the same function on the queue's events is
//! a worker, which carries out one unit's actions exactly as [`Sweeper::execute`] does: each
//! re-checked from fresh reads right before it is taken.
//!
//! A purge that stops at the deadline goes on at once as a new unit of the same run (its
//! `.purging+` entry), instead of waiting for next week's run.

use lifecycle_domain::access_point::AccessPointInfo;
use lifecycle_domain::fanout::{split_sweep, MAX_UNIT_BYTES};
use lifecycle_domain::layout::PURGING_PREFIX;
use lifecycle_domain::sweep::{Planned, SweepPlan, SweepReason, SweepTarget};
use lifecycle_runtime::fanout::{FanOut, RunOpened, UnitDone};
use lifecycle_runtime::Invocation;
use serde::{Deserialize, Serialize};

use crate::acts::audit;
use crate::report::{SweepSummary, Unfinished};
use crate::{SweepError, Sweeper};
use lifecycle_domain::reasons::Action;

/// One action as a unit carries it: the planned action, and for an access point's deletion
/// what the listing said of it (the deletion happens only if a fresh description still says
/// exactly that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitAction {
    pub action: Planned,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listed: Option<AccessPointInfo>,
}

impl UnitAction {
    fn from_planned(action: Planned) -> Self {
        let listed = match &action.target {
            SweepTarget::DeleteAccessPoint { listed, .. } => Some(listed.clone()),
            _ => None,
        };
        Self { action, listed }
    }

    fn into_planned(self) -> Planned {
        let mut action = self.action;
        if let SweepTarget::DeleteAccessPoint { listed, .. } = &mut action.target {
            // Without what was listed, nothing matches a fresh description: kept (`changed`).
            *listed = self.listed.unwrap_or_default();
        }
        action
    }
}

/// A sweep unit's own work (the envelope, run and unit id, is the runtime's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepUnit {
    pub kind: SweepUnitKind,
    pub actions: Vec<UnitAction>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepUnitKind {
    Sweep,
}

impl SweepUnit {
    fn of(actions: Vec<Planned>) -> serde_json::Value {
        let unit = SweepUnit {
            kind: SweepUnitKind::Sweep,
            actions: actions.into_iter().map(UnitAction::from_planned).collect(),
        };
        serde_json::to_value(unit).expect("a unit serializes")
    }
}

/// Room kept in a message for its envelope (format, run id, unit id).
const ENVELOPE_ROOM: usize = 1024;

/// Each unit as its message's work, halved until it fits in a message (an access point's
/// deletion carries its listed tags, so 50 of them can outgrow one). Order is kept.
pub fn fitted(units: Vec<Vec<Planned>>) -> Vec<serde_json::Value> {
    let mut out = Vec::with_capacity(units.len());
    let mut stack: Vec<Vec<Planned>> = units.into_iter().rev().collect();
    while let Some(mut unit) = stack.pop() {
        let work = SweepUnit::of(unit.clone());
        let size = serde_json::to_string(&work).map_or(usize::MAX, |s| s.len());
        if size > MAX_UNIT_BYTES - ENVELOPE_ROOM && unit.len() > 1 {
            let back = unit.split_off(unit.len() / 2);
            stack.push(back);
            stack.push(unit);
        } else {
            out.push(work);
        }
    }
    out
}

/// What the coordinator returns: the plan's counts and the run it opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepCoordinated {
    #[serde(flatten)]
    pub run: RunOpened,
    pub dry_run: bool,
    pub actions: usize,
    pub skipped: usize,
    pub cap_exceeded: Option<String>,
    pub access_points: usize,
}

/// What a unit left to do: a purge stopped at the deadline goes on under its `.purging+` name;
/// an action the deadline kept from starting goes on as `planned` has it. An archive stopped
/// before its purge began waits for the next run (it starts again from the beginning).
pub fn continuation(planned: &[Planned], summary: &SweepSummary) -> Vec<Planned> {
    summary
        .not_done
        .iter()
        .filter_map(|n| match (n.reason, &n.target) {
            (Unfinished::Deadline, target) => planned.iter().find(|p| &p.target == target).cloned(),
            // `files` is set once the purge itself began: the entry is `.purging+` now.
            (
                Unfinished::StoppedAtDeadline,
                SweepTarget::PurgeTrash { entry } | SweepTarget::ArchiveTrash { entry, .. },
            ) if n.files.is_some() => Some(Planned {
                target: SweepTarget::PurgeTrash {
                    entry: if entry.starts_with(PURGING_PREFIX) {
                        entry.clone()
                    } else {
                        format!("{PURGING_PREFIX}{entry}")
                    },
                },
                reason: SweepReason::PurgeResumed,
            }),
            _ => None,
        })
        .collect()
}

impl Sweeper {
    /// The coordinator: plans the whole sweep and sends it as units of one run. Acts on
    /// nothing itself.
    pub async fn coordinate(
        &self,
        fan_out: &FanOut,
        now: i64,
    ) -> Result<SweepCoordinated, SweepError> {
        let plan: SweepPlan = self.plan(now).await?;
        let dry_run = self.config.dry_run;
        for skip in &plan.skipped {
            if skip.reason == SweepReason::SkippedCap {
                audit(&skip.what, None, Action::Skip, skip.reason, dry_run).emit();
            }
        }
        // Every count a unit adds starts at zero, so the run's metric set is whole.
        let mut counters = SweepSummary::default().counters();
        counters.extend([
            ("Actions".to_string(), plan.actions.len() as i64),
            ("Skipped".into(), plan.skipped.len() as i64),
            ("CapExceeded".into(), i64::from(plan.cap_exceeded.is_some())),
            ("AccessPoints".into(), plan.access_points as i64),
        ]);
        let coordinated = SweepCoordinated {
            dry_run,
            actions: plan.actions.len(),
            skipped: plan.skipped.len(),
            cap_exceeded: plan.cap_exceeded.clone(),
            access_points: plan.access_points,
            ..SweepCoordinated::default()
        };
        let works = fitted(split_sweep(plan.actions, self.settings.unit_max_actions));
        let run = fan_out
            .open_run(now, counters, works)
            .await
            .map_err(SweepError::Run)?;
        if !run.not_enqueued.is_empty() {
            // A failed invocation, so the Errors alarm says so; the units sent go on.
            return Err(SweepError::NotEnqueued {
                run_id: run.run_id.clone().unwrap_or_default(),
                count: run.not_enqueued.len(),
                units: run.not_enqueued.join(","),
            });
        }
        Ok(SweepCoordinated { run, ..coordinated })
    }

    /// A worker's unit: exactly its actions, each re-checked right before it is taken.
    pub async fn work_unit(
        &self,
        body: String,
        invocation: Invocation,
    ) -> Result<UnitDone, String> {
        let unit: SweepUnit =
            serde_json::from_str(&body).map_err(|e| format!("not a sweep unit: {e}"))?;
        let actions: Vec<Planned> = unit
            .actions
            .into_iter()
            .map(UnitAction::into_planned)
            .collect();
        let plan = SweepPlan {
            actions: actions.clone(),
            ..SweepPlan::default()
        };
        let summary = self
            .execute(plan, invocation.now, invocation.deadline)
            .await;
        let rest = continuation(&actions, &summary);
        let mut counters = summary.counters();
        // What goes on in the continuation is counted there, not as undone here.
        *counters.entry("NotDone".into()).or_default() -= rest.len() as i64;
        Ok(UnitDone {
            counters,
            continuation: (!rest.is_empty()).then(|| SweepUnit::of(rest)),
        })
    }
}
