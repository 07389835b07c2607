//! The weekly sweep (pure): which trash entries have served their grace, which workspace
//! directories and access points no record owns, and whether the run stays within its caps.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::ids::{TenantId, WorkspaceId};
use crate::layout::{TrashName, PURGING_PREFIX, STAGING_PREFIX};
use crate::retention::SECONDS_PER_DAY;
use crate::tasks::{InUse, WorkspaceRef};

/// A directory entry `<EFS_ROOT>/<tenant>/<workspace>` as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveEntry {
    pub tenant: String,
    /// `None` for a tenant-level entry that could not be listed (not a directory, unreadable).
    pub workspace: Option<String>,
    /// Epoch seconds of the newest of mtime/ctime: a directory being set up looks young.
    pub changed_at: i64,
}

/// An entry of `<EFS_ROOT>/.trash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrashEntry {
    pub name: String,
}

/// A record as the sweep needs it: the tenant whose directory it owns. (A held workspace has a
/// record like any other, so it is owned and never touched.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub tenant: String,
}

/// An access point of the file system, with the workspace it serves (tag `workspaceId`, else the
/// last component of its root directory) and, when known, its age.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPointEntry {
    pub id: String,
    pub workspace: Option<String>,
    pub created_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepRules {
    pub trash_grace_days: u32,
    pub orphan_min_age_hours: u32,
    pub max_actions: usize,
    pub max_action_percent: u32,
    /// Purges are irreversible: at most this percent of the trash's entries in one run (a clock
    /// gone wrong or `TRASH_GRACE_DAYS=0` makes every entry look due).
    pub max_purge_percent: u32,
    /// The file system the workspaces live on (for tasks that mount a directory of it).
    pub file_system_id: Option<String>,
}

/// Below this many candidates of a kind, only `MAX_ACTIONS` applies: one orphan among three
/// workspaces is 33% but no sign of a misconfigured table.
pub const MIN_POPULATION_FOR_PERCENT: usize = 10;

/// Seconds after which a `.staging+` entry is finished by the sweeper: longer than a stream
/// record can be retried (24 hours).
pub const STAGING_ABANDONED_AFTER: i64 = 2 * SECONDS_PER_DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SweepReason {
    TrashGraceElapsed,
    OrphanNoRecord,
    OrphanAccessPoint,
    SkippedTooYoung,
    SkippedWithinGrace,
    SkippedInvalidName,
    SkippedTenantMismatch,
    SkippedAgeUnknown,
    SkippedUnidentified,
    SkippedCap,
    SkippedInUse,
    SkippedStaging,
    /// A purge that stopped (deadline, error) after it renamed the entry: finished now.
    PurgeResumed,
    /// A move into the trash stopped half-way long enough ago that nothing is still doing it.
    StagingAbandoned,
}

impl SweepReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SweepReason::TrashGraceElapsed => "trash_grace_elapsed",
            SweepReason::OrphanNoRecord => "orphan_no_record",
            SweepReason::OrphanAccessPoint => "orphan_access_point",
            SweepReason::SkippedTooYoung => "skipped_too_young",
            SweepReason::SkippedWithinGrace => "skipped_within_grace",
            SweepReason::SkippedInvalidName => "skipped_invalid_name",
            SweepReason::SkippedTenantMismatch => "skipped_tenant_mismatch",
            SweepReason::SkippedAgeUnknown => "skipped_age_unknown",
            SweepReason::SkippedUnidentified => "skipped_unidentified",
            SweepReason::SkippedCap => "skipped_cap",
            SweepReason::SkippedInUse => "skipped_in_use",
            SweepReason::SkippedStaging => "skipped_staging",
            SweepReason::PurgeResumed => "purge_resumed",
            SweepReason::StagingAbandoned => "staging_abandoned",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SweepTarget {
    PurgeTrash {
        entry: String,
    },
    /// A `.staging+` entry whose move stopped half-way: published (data and record) or, when the
    /// data never moved, its lone record removed. Never deletes data.
    FinishStaged {
        entry: String,
    },
    TrashOrphan {
        tenant: String,
        workspace: String,
    },
    DeleteAccessPoint {
        id: String,
        workspace: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Planned {
    #[serde(flatten)]
    pub target: SweepTarget,
    pub reason: SweepReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    pub what: String,
    pub reason: SweepReason,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepPlan {
    /// What to do, in order: purges, then orphan directories, then access points.
    pub actions: Vec<Planned>,
    pub skipped: Vec<Skip>,
    /// Set when a cap is exceeded: then nothing of that kind is in `actions`, and this says
    /// which caps and by how much.
    pub cap_exceeded: Option<String>,
}

fn cap_check(
    kind: &str,
    count: usize,
    population: usize,
    max_actions: usize,
    (percent_var, max_percent): (&str, u32),
) -> Option<String> {
    if count > max_actions {
        return Some(format!("{count} {kind} exceed MAX_ACTIONS={max_actions}"));
    }
    if population >= MIN_POPULATION_FOR_PERCENT && count * 100 > population * max_percent as usize {
        return Some(format!(
            "{count} of {population} {kind} exceed {percent_var}={max_percent}"
        ));
    }
    None
}

pub fn plan_sweep(
    live: &[LiveEntry],
    trash: &[TrashEntry],
    owners: &BTreeMap<String, Owner>,
    access_points: &[AccessPointEntry],
    in_use: &InUse,
    now: i64,
    rules: &SweepRules,
) -> SweepPlan {
    let mut plan = SweepPlan::default();
    let min_age = i64::from(rules.orphan_min_age_hours) * 3600;
    let grace = i64::from(rules.trash_grace_days) * SECONDS_PER_DAY;

    let mut resumed = Vec::new();
    let mut purges = Vec::new();
    let mut trash_entries = 0usize;
    for entry in trash {
        let what = format!(".trash/{}", entry.name);
        if entry.name.starts_with(PURGING_PREFIX) {
            // Already committed to deletion by an earlier run (which was capped then).
            resumed.push(Planned {
                target: SweepTarget::PurgeTrash {
                    entry: entry.name.clone(),
                },
                reason: SweepReason::PurgeResumed,
            });
            continue;
        }
        if let Some(staged) = entry.name.strip_prefix(STAGING_PREFIX) {
            // ttl-expiry retries a record for up to a day (the stream's retention): only an
            // entry older than that is surely abandoned.
            match staged.parse::<TrashName>() {
                Ok(name) if now.saturating_sub(name.deleted_at) >= STAGING_ABANDONED_AFTER => {
                    resumed.push(Planned {
                        target: SweepTarget::FinishStaged {
                            entry: staged.to_string(),
                        },
                        reason: SweepReason::StagingAbandoned,
                    })
                }
                _ => plan.skipped.push(Skip {
                    what,
                    reason: SweepReason::SkippedStaging,
                }),
            }
            continue;
        }
        trash_entries += 1;
        match entry.name.parse::<TrashName>() {
            Ok(name) if now.saturating_sub(name.deleted_at) >= grace => purges.push(Planned {
                target: SweepTarget::PurgeTrash {
                    entry: entry.name.clone(),
                },
                reason: SweepReason::TrashGraceElapsed,
            }),
            Ok(_) => plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedWithinGrace,
            }),
            Err(_) => plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedInvalidName,
            }),
        }
    }

    let mut orphan_dirs = Vec::new();
    let mut live_workspaces = 0usize;
    let mut dir_age: BTreeMap<&str, i64> = BTreeMap::new();
    for entry in live {
        let what = match &entry.workspace {
            Some(ws) => format!("{}/{ws}", entry.tenant),
            None => entry.tenant.clone(),
        };
        let Some(ws) = &entry.workspace else {
            plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedInvalidName,
            });
            continue;
        };
        if TenantId::parse(entry.tenant.as_str()).is_err()
            || WorkspaceId::parse(ws.as_str()).is_err()
        {
            plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedInvalidName,
            });
            continue;
        }
        live_workspaces += 1;
        dir_age.insert(ws, entry.changed_at);
        let serving: Vec<String> = access_points
            .iter()
            .filter(|ap| ap.workspace.as_deref() == Some(ws.as_str()))
            .map(|ap| ap.id.clone())
            .collect();
        let users = in_use.users(
            WorkspaceRef {
                workspace: ws,
                tenant: Some(entry.tenant.as_str()),
                access_points: &serving,
            },
            rules.file_system_id.as_deref(),
        );
        match owners.get(ws) {
            Some(owner) if owner.tenant == entry.tenant => {}
            Some(_) => plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedTenantMismatch,
            }),
            None if !users.is_empty() => plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedInUse,
            }),
            None if now - entry.changed_at < min_age => plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedTooYoung,
            }),
            None => orphan_dirs.push(Planned {
                target: SweepTarget::TrashOrphan {
                    tenant: entry.tenant.clone(),
                    workspace: ws.clone(),
                },
                reason: SweepReason::OrphanNoRecord,
            }),
        }
    }

    // Where EFS gives no creation time, an access point is as old as its workspace's directory,
    // or as its workspace's deletion (trash entry); otherwise its age is unknown and it is kept.
    let trashed_at: BTreeMap<String, i64> = trash
        .iter()
        .filter_map(|e| e.name.parse::<TrashName>().ok())
        .map(|n| (n.workspace.to_string(), n.deleted_at))
        .collect();
    let mut orphan_aps = Vec::new();
    for ap in access_points {
        let Some(ws) = ap
            .workspace
            .as_deref()
            .filter(|w| WorkspaceId::parse(*w).is_ok())
        else {
            plan.skipped.push(Skip {
                what: ap.id.clone(),
                reason: SweepReason::SkippedUnidentified,
            });
            continue;
        };
        if owners.contains_key(ws) {
            continue;
        }
        let age_from = ap
            .created_at
            .or_else(|| dir_age.get(ws).copied())
            .or_else(|| trashed_at.get(ws).copied());
        match age_from {
            None => plan.skipped.push(Skip {
                what: ap.id.clone(),
                reason: SweepReason::SkippedAgeUnknown,
            }),
            Some(at) if now - at < min_age => plan.skipped.push(Skip {
                what: ap.id.clone(),
                reason: SweepReason::SkippedTooYoung,
            }),
            Some(_) => orphan_aps.push(Planned {
                target: SweepTarget::DeleteAccessPoint {
                    id: ap.id.clone(),
                    workspace: ws.to_string(),
                },
                reason: SweepReason::OrphanAccessPoint,
            }),
        }
    }

    // Each kind is capped on its own: over its cap, nothing of that kind is done, and the run
    // says so. A wrong table or a failed listing must not look like "everything is orphaned",
    // nor a wrong clock like "everything is past its grace".
    let purge_percent = ("MAX_PURGE_PERCENT", rules.max_purge_percent);
    let action_percent = ("MAX_ACTION_PERCENT", rules.max_action_percent);
    let kinds = [
        ("trash purges", purges, trash_entries, purge_percent),
        (
            "orphan directories",
            orphan_dirs,
            live_workspaces,
            action_percent,
        ),
        (
            "orphan access points",
            orphan_aps,
            access_points.len(),
            action_percent,
        ),
    ];
    let mut exceeded = Vec::new();
    plan.actions.extend(resumed);
    for (kind, actions, population, percent) in kinds {
        match cap_check(kind, actions.len(), population, rules.max_actions, percent) {
            None => plan.actions.extend(actions),
            Some(why) => {
                plan.skipped.extend(actions.into_iter().map(|a| Skip {
                    what: describe(&a.target),
                    reason: SweepReason::SkippedCap,
                }));
                exceeded.push(why);
            }
        }
    }
    if !exceeded.is_empty() {
        plan.cap_exceeded = Some(exceeded.join("; "));
    }
    plan
}

pub fn describe(target: &SweepTarget) -> String {
    match target {
        SweepTarget::PurgeTrash { entry } => format!(".trash/{entry}"),
        SweepTarget::FinishStaged { entry } => format!(".trash/{STAGING_PREFIX}{entry}"),
        SweepTarget::TrashOrphan { tenant, workspace } => format!("{tenant}/{workspace}"),
        SweepTarget::DeleteAccessPoint { id, .. } => id.clone(),
    }
}

/// Every workspace the records name, for "is this directory owned?".
pub fn owners_from<'a>(
    records: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> BTreeMap<String, Owner> {
    records
        .into_iter()
        .map(|(ws, tenant)| {
            (
                ws.to_string(),
                Owner {
                    tenant: tenant.to_string(),
                },
            )
        })
        .collect()
}

/// The planned targets only (what a dry run and the real run must agree on).
pub fn targets(plan: &SweepPlan) -> BTreeSet<SweepTarget> {
    plan.actions.iter().map(|a| a.target.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3600;
    const NOW: i64 = 1_000 * 86_400;

    fn rules() -> SweepRules {
        SweepRules {
            trash_grace_days: 7,
            orphan_min_age_hours: 24,
            max_actions: 100,
            max_action_percent: 20,
            max_purge_percent: 100,
            file_system_id: None,
        }
    }

    fn live(t: &str, w: &str, age_h: i64) -> LiveEntry {
        LiveEntry {
            tenant: t.into(),
            workspace: Some(w.into()),
            changed_at: NOW - age_h * H,
        }
    }

    fn owners(list: &[(&str, &str)]) -> BTreeMap<String, Owner> {
        owners_from(list.iter().copied())
    }

    #[test]
    fn orphans_young_and_owned() {
        let plan = plan_sweep(
            &[
                live("acme", "owned", 100),
                live("acme", "orphan", 48),
                live("acme", "young", 2),
                live("other", "owned", 100),
                live("acme", "..x", 100),
                LiveEntry {
                    tenant: "lost+found".into(),
                    workspace: None,
                    changed_at: 0,
                },
            ],
            &[],
            &owners(&[("owned", "acme")]),
            &[],
            &InUse::default(),
            NOW,
            &rules(),
        );
        assert_eq!(
            plan.actions,
            vec![Planned {
                target: SweepTarget::TrashOrphan {
                    tenant: "acme".into(),
                    workspace: "orphan".into()
                },
                reason: SweepReason::OrphanNoRecord,
            }]
        );
        let reasons: Vec<_> = plan
            .skipped
            .iter()
            .map(|s| (s.what.as_str(), s.reason))
            .collect();
        assert!(reasons.contains(&("acme/young", SweepReason::SkippedTooYoung)));
        assert!(reasons.contains(&("other/owned", SweepReason::SkippedTenantMismatch)));
        assert!(reasons.contains(&("acme/..x", SweepReason::SkippedInvalidName)));
        assert!(reasons.contains(&("lost+found", SweepReason::SkippedInvalidName)));
    }

    #[test]
    fn trash_by_name_time_and_access_points_by_owner_and_age() {
        let old = format!("{}+acme+gone", NOW - 8 * 86_400);
        let fresh = format!("{}+acme+recent", NOW - 86_400);
        let plan = plan_sweep(
            &[],
            &[
                TrashEntry { name: old.clone() },
                TrashEntry { name: fresh },
                TrashEntry {
                    name: "junk".into(),
                },
            ],
            &owners(&[("kept", "acme")]),
            &[
                AccessPointEntry {
                    id: "fsap-1".into(),
                    workspace: Some("gone".into()),
                    created_at: None,
                },
                AccessPointEntry {
                    id: "fsap-2".into(),
                    workspace: Some("kept".into()),
                    created_at: None,
                },
                AccessPointEntry {
                    id: "fsap-3".into(),
                    workspace: Some("new".into()),
                    created_at: Some(NOW - H),
                },
                AccessPointEntry {
                    id: "fsap-4".into(),
                    workspace: Some("mystery".into()),
                    created_at: None,
                },
                AccessPointEntry {
                    id: "fsap-5".into(),
                    workspace: None,
                    created_at: Some(0),
                },
            ],
            &InUse::default(),
            NOW,
            &rules(),
        );
        let targets: Vec<_> = plan.actions.iter().map(|a| describe(&a.target)).collect();
        assert_eq!(targets, vec![format!(".trash/{old}"), "fsap-1".to_string()]);
        let reasons: BTreeMap<_, _> = plan
            .skipped
            .iter()
            .map(|s| (s.what.clone(), s.reason))
            .collect();
        assert_eq!(reasons["fsap-3"], SweepReason::SkippedTooYoung);
        assert_eq!(reasons["fsap-4"], SweepReason::SkippedAgeUnknown);
        assert_eq!(reasons["fsap-5"], SweepReason::SkippedUnidentified);
        assert_eq!(reasons[".trash/junk"], SweepReason::SkippedInvalidName);
    }

    #[test]
    fn caps_stop_everything() {
        let many: Vec<_> = (0..30)
            .map(|i| live("acme", &format!("ws{i}"), 100))
            .collect();
        let all_owned: Vec<(String, &str)> = (0..20).map(|i| (format!("ws{i}"), "acme")).collect();
        let owned = owners_from(all_owned.iter().map(|(w, t)| (w.as_str(), *t)));
        let plan = plan_sweep(&many, &[], &owned, &[], &InUse::default(), NOW, &rules());
        assert!(plan.actions.is_empty());
        assert!(plan.cap_exceeded.unwrap().contains("10 of 30"));
        assert_eq!(
            plan.skipped
                .iter()
                .filter(|s| s.reason == SweepReason::SkippedCap)
                .count(),
            10
        );
        let mut tight = rules();
        tight.max_actions = 2;
        let plan = plan_sweep(
            &many[..3],
            &[],
            &BTreeMap::new(),
            &[],
            &InUse::default(),
            NOW,
            &tight,
        );
        assert!(plan.cap_exceeded.unwrap().contains("MAX_ACTIONS=2"));
    }

    #[test]
    fn purges_are_capped_by_count_and_by_share_of_the_trash() {
        let due: Vec<_> = (0..300)
            .map(|i| TrashEntry {
                name: format!("{}+acme+ws{i}", NOW - 30 * 86_400),
            })
            .collect();
        let mut tight = rules();
        tight.max_actions = 5;
        let plan = plan_sweep(
            &[],
            &due,
            &BTreeMap::new(),
            &[],
            &InUse::default(),
            NOW,
            &tight,
        );
        assert!(plan.actions.is_empty(), "{:?}", plan.actions.len());
        assert!(plan
            .cap_exceeded
            .unwrap()
            .contains("300 trash purges exceed MAX_ACTIONS=5"));
        let mut share = rules();
        share.max_actions = 1_000;
        share.max_purge_percent = 50;
        let plan = plan_sweep(
            &[],
            &due,
            &BTreeMap::new(),
            &[],
            &InUse::default(),
            NOW,
            &share,
        );
        assert!(plan.actions.is_empty());
        assert!(plan.cap_exceeded.unwrap().contains("MAX_PURGE_PERCENT=50"));
    }

    #[test]
    fn one_kind_over_its_cap_does_not_stop_the_others() {
        let due = [TrashEntry {
            name: format!("{}+acme+gone", NOW - 30 * 86_400),
        }];
        let orphans: Vec<_> = (0..3)
            .map(|i| live("acme", &format!("o{i}"), 100))
            .collect();
        let mut tight = rules();
        tight.max_actions = 2;
        let plan = plan_sweep(
            &orphans,
            &due,
            &BTreeMap::new(),
            &[],
            &InUse::default(),
            NOW,
            &tight,
        );
        assert_eq!(plan.actions.len(), 1);
        assert!(matches!(
            plan.actions[0].target,
            SweepTarget::PurgeTrash { .. }
        ));
        assert!(plan.cap_exceeded.unwrap().contains("orphan directories"));
    }

    #[test]
    fn orphan_directories_in_use_are_kept_and_resumed_purges_are_finished() {
        use crate::tasks::{EfsMount, TaskSummary};
        let in_use = InUse::from_tasks(&[
            TaskSummary {
                arn: "t-tag".into(),
                last_status: "RUNNING".into(),
                tags: vec![("workspaceId".into(), "busy".into())],
                ..TaskSummary::default()
            },
            TaskSummary {
                arn: "t-ap".into(),
                last_status: "RUNNING".into(),
                efs_mounts: vec![EfsMount {
                    file_system_id: "fs-1".into(),
                    access_point_id: Some("fsap-9".into()),
                    root_directory: None,
                }],
                ..TaskSummary::default()
            },
        ]);
        let plan = plan_sweep(
            &[
                live("acme", "busy", 100),
                live("acme", "mounted", 100),
                live("acme", "idle", 100),
            ],
            &[
                TrashEntry {
                    name: ".purging+1+acme+x".into(),
                },
                TrashEntry {
                    name: ".staging+1+acme+y+0123456789abcdef".into(),
                },
            ],
            &BTreeMap::new(),
            &[AccessPointEntry {
                id: "fsap-9".into(),
                workspace: Some("mounted".into()),
                created_at: Some(NOW),
            }],
            &in_use,
            NOW,
            &rules(),
        );
        let targets: Vec<_> = plan.actions.iter().map(|a| describe(&a.target)).collect();
        assert_eq!(
            targets,
            vec![
                ".trash/.purging+1+acme+x",
                ".trash/.staging+1+acme+y+0123456789abcdef",
                "acme/idle"
            ]
        );
        let reasons: BTreeMap<_, _> = plan
            .skipped
            .iter()
            .map(|s| (s.what.clone(), s.reason))
            .collect();
        assert_eq!(reasons["acme/busy"], SweepReason::SkippedInUse);
        assert_eq!(reasons["acme/mounted"], SweepReason::SkippedInUse);
    }

    proptest! {
        /// An owned workspace is never planned for removal, whatever else is there.
        #[test]
        fn owned_is_never_touched(names in proptest::collection::vec("[a-c]{1,2}", 0..12), owned in proptest::collection::vec("[a-c]{1,2}", 0..12), age in 0i64..200) {
            let entries: Vec<_> = names.iter().map(|n| live("t", n, age)).collect();
            let owners = owners_from(owned.iter().map(|w| (w.as_str(), "t")));
            let aps: Vec<_> = names.iter().enumerate().map(|(i, n)| AccessPointEntry { id: format!("fsap-{i}"), workspace: Some(n.clone()), created_at: Some(0) }).collect();
            let plan = plan_sweep(&entries, &[], &owners, &aps, &InUse::default(), NOW, &rules());
            for a in &plan.actions {
                match &a.target {
                    SweepTarget::TrashOrphan { workspace, .. } | SweepTarget::DeleteAccessPoint { workspace, .. } => {
                        prop_assert!(!owners.contains_key(workspace));
                    }
                    SweepTarget::PurgeTrash { .. } | SweepTarget::FinishStaged { .. } => {}
                }
            }
        }
    }
}
