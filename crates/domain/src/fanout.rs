//! Fan-out (pure): one run's decision split into units of work that workers carry out apart.
//!
//! A coordinator plans the whole run (fleet-wide caps included) and splits what it decided into
//! units; each unit travels as a message with its run's id, and a worker acts on exactly the
//! unit's targets. The run's ledger knows every unit (by the SHA-256 of its message), so a
//! worker acts only on what the coordinator decided, and counts each unit once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::sweep::{Planned, SweepTarget};

/// The format of a unit's message; a worker refuses any other.
pub const UNIT_VERSION: u32 = 1;

/// SQS takes at most 256 KiB per message; a unit is kept well under it.
pub const MAX_UNIT_BYTES: usize = 240 * 1024;

/// A run's counts by metric name (`TrashPurged`, `FilesFreed`, …): what its units did, added up
/// as they finish, and what the coordinator decided (`CapExceeded`, `AccessPoints`, …).
pub type Counters = BTreeMap<String, i64>;

/// What every unit's message starts with; the rest of the message is the function's own work.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitHeader {
    pub v: u32,
    pub run_id: String,
    pub unit: String,
    /// The run's `DRY_RUN`, in the message itself (which the ledger's digest covers) as well as
    /// in the run's header.
    pub dry_run: bool,
}

/// A run as its coordinator opens it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHeader {
    pub run_id: String,
    /// The function whose run it is (`efs-sweeper`, `ecr-pruner`).
    pub function: String,
    pub started_at: i64,
    /// A unit of this run met after this (epoch seconds) is dropped, not acted on: its plan is
    /// too old to carry out.
    pub valid_until: i64,
    /// Planned as a dry run: its units are carried out only by a worker in a dry run too.
    pub dry_run: bool,
    /// What the coordinator decided (counts), which the run's report carries.
    pub counters: Counters,
}

/// One unit as the ledger knows it: its id in the run, and the SHA-256 (hex) of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitEntry {
    pub unit: String,
    pub digest: String,
}

/// A run as read back from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunState {
    pub function: String,
    pub started_at: i64,
    pub valid_until: i64,
    /// Units not yet finished (continuations add to it).
    pub units_left: i64,
    pub dry_run: bool,
    pub counters: Counters,
}

/// A run as `lifecycle runs` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedRun {
    pub run_id: String,
    pub function: String,
    pub started_at: i64,
    pub valid_until: i64,
    pub dry_run: bool,
    pub units_total: i64,
    pub units_left: i64,
    /// When its last unit finished and its report was written.
    pub reported_at: Option<i64>,
    pub counters: Counters,
}

/// A sweep's actions split into units, in plan order within each:
/// - a purge or an archive alone (each may take a whole invocation);
/// - orphan directories of one tenant, at most `max_actions` together;
/// - access point actions, and finished half-moves, at most `max_actions` together.
///
/// Purge units come first: they take longest, so they start first. Every action is in exactly
/// one unit.
pub fn split_sweep(actions: Vec<Planned>, max_actions: usize) -> Vec<Vec<Planned>> {
    let max_actions = max_actions.max(1);
    let mut alone = Vec::new();
    let mut by_tenant: BTreeMap<String, Vec<Planned>> = BTreeMap::new();
    let mut staged = Vec::new();
    let mut access_points = Vec::new();
    for planned in actions {
        match &planned.target {
            SweepTarget::PurgeTrash { .. } | SweepTarget::ArchiveTrash { .. } => {
                alone.push(vec![planned])
            }
            SweepTarget::TrashOrphan { tenant, .. } => {
                by_tenant.entry(tenant.clone()).or_default().push(planned)
            }
            SweepTarget::FinishStaged { .. } => staged.push(planned),
            SweepTarget::DeleteAccessPoint { .. }
            | SweepTarget::MarkAccessPoint { .. }
            | SweepTarget::UnmarkAccessPoint { .. } => access_points.push(planned),
        }
    }
    let mut units = alone;
    let groups = by_tenant
        .into_values()
        .chain([staged, access_points])
        .filter(|g| !g.is_empty());
    for group in groups {
        units.extend(group.chunks(max_actions).map(<[Planned]>::to_vec));
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::SweepReason;
    use proptest::prelude::*;

    fn action(kind: u8, n: u8) -> Planned {
        let target = match kind % 5 {
            0 => SweepTarget::PurgeTrash {
                entry: format!("e{n}"),
            },
            1 => SweepTarget::TrashOrphan {
                tenant: format!("t{}", n % 3),
                workspace: format!("w{n}"),
            },
            2 => SweepTarget::FinishStaged {
                entry: format!(".staging+{n}"),
            },
            3 => SweepTarget::MarkAccessPoint {
                id: format!("fsap-{n}"),
                workspace: format!("w{n}"),
                since: 1,
            },
            _ => SweepTarget::UnmarkAccessPoint {
                id: format!("fsap-{n}"),
                workspace: format!("w{n}"),
            },
        };
        Planned {
            target,
            reason: SweepReason::OrphanNoRecord,
        }
    }

    proptest! {
        #[test]
        fn every_action_is_in_exactly_one_unit_within_its_bounds(
            kinds in proptest::collection::vec((0u8..5, 0u8..40), 0..120),
            max in 1usize..8,
        ) {
            let actions: Vec<Planned> = kinds.iter().map(|(k, n)| action(*k, *n)).collect();
            let units = split_sweep(actions.clone(), max);
            let mut all: Vec<Planned> = units.iter().flatten().cloned().collect();
            let mut want = actions;
            all.sort();
            want.sort();
            prop_assert_eq!(all, want);
            let mut purges_over = false;
            for unit in &units {
                prop_assert!(!unit.is_empty() && unit.len() <= max);
                let purge = matches!(unit[0].target, SweepTarget::PurgeTrash { .. });
                if purge {
                    prop_assert!(!purges_over, "purge units come first");
                    prop_assert_eq!(unit.len(), 1);
                } else {
                    purges_over = true;
                }
                let tenants: std::collections::BTreeSet<_> = unit
                    .iter()
                    .filter_map(|p| match &p.target {
                        SweepTarget::TrashOrphan { tenant, .. } => Some(tenant.clone()),
                        _ => None,
                    })
                    .collect();
                prop_assert!(tenants.len() <= 1, "one tenant's orphans per unit");
                if !tenants.is_empty() {
                    let only_orphans = unit
                        .iter()
                        .all(|p| matches!(p.target, SweepTarget::TrashOrphan { .. }));
                    prop_assert!(only_orphans, "an orphan unit holds orphans only");
                }
            }
        }
    }

    #[test]
    fn a_plan_survives_the_trip_through_a_message() {
        let planned = vec![
            action(0, 1),
            Planned {
                target: SweepTarget::ArchiveTrash {
                    entry: "e2".into(),
                    retention_days: 90,
                    archive_reason: crate::archive::ArchiveReason::PolicyArchive,
                },
                reason: SweepReason::TrashGraceElapsed,
            },
            action(1, 3),
            action(2, 4),
            action(3, 5),
            action(4, 6),
        ];
        let json = serde_json::to_string(&planned).unwrap();
        let back: Vec<Planned> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, planned);
    }
}
