//! The weekly sweep (pure): which trash entries have served their grace, which workspace
//! directories and access points no record owns, and whether the run stays within its caps.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::access_point::{identify, AccessPointRules, WorkspaceAccessPoint};
use crate::access_point::{AccessPointInfo, ORPHAN_SINCE_TAG};
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

/// An access point of the file system as listed, with what the ownership rule
/// ([`identify`]) says of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPointEntry {
    pub info: AccessPointInfo,
    /// The workspace it serves, or why it is not a workspace access point (then it is never
    /// touched: not deleted, not marked, not unmarked).
    pub owner: Result<WorkspaceAccessPoint, String>,
}

impl AccessPointEntry {
    pub fn new(info: AccessPointInfo, rules: &AccessPointRules) -> Self {
        let owner = identify(&info, rules);
        Self { info, owner }
    }
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
    SkippedNotWorkspace,
    SkippedCap,
    SkippedInUse,
    SkippedStaging,
    /// A purge that stopped (deadline, error) after it renamed the entry: finished now.
    PurgeResumed,
    /// A move into the trash stopped half-way long enough ago that nothing is still doing it.
    StagingAbandoned,
    /// An orphan access point of unknown age: marked now, deleted by a later run.
    OrphanAgeUnknown,
    /// A marked access point whose workspace has a record again.
    OwnerRegained,
}

crate::serde_codes!(SweepReason);

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
        /// As listed: it is deleted only if a fresh description still says exactly this.
        #[serde(skip)]
        listed: AccessPointInfo,
    },
    /// Tags an orphan access point of unknown age with `since` (`lifecycle:orphanSince`).
    MarkAccessPoint {
        id: String,
        workspace: String,
        since: i64,
    },
    /// Removes that tag from an access point whose workspace has a record again.
    UnmarkAccessPoint {
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
    /// What to do, in order: purges, then orphan directories, then access points (deletes and
    /// marks), then removals of marks.
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
        // A name that is not UTF-8 was listed lossily and cannot be addressed: reported only.
        if entry.name.contains(char::REPLACEMENT_CHARACTER) {
            plan.skipped.push(Skip {
                what,
                reason: SweepReason::SkippedInvalidName,
            });
            continue;
        }
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
        let serving: Vec<String> = access_points
            .iter()
            .filter(|ap| {
                ap.owner
                    .as_ref()
                    .is_ok_and(|o| o.workspace.as_str() == ws.as_str())
            })
            .map(|ap| ap.info.id.clone())
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

    let ages = AgeEvidence::new(live, trash);
    // Deletes and marks: what the access point cap counts, out of workspace access points only.
    let mut orphan_aps = Vec::new();
    let mut unmarks = Vec::new();
    let mut workspace_aps = 0usize;
    for ap in access_points {
        let id = &ap.info.id;
        let Ok(owner) = &ap.owner else {
            plan.skipped.push(Skip {
                what: id.clone(),
                reason: SweepReason::SkippedNotWorkspace,
            });
            continue;
        };
        workspace_aps += 1;
        let ws = owner.workspace.as_str();
        let tenant = owner.tenant.as_ref().map(TenantId::as_str);
        if let Some(record) = owners.get(ws) {
            // Any record of this id stops the orphan clock; a record of another tenant than the
            // one its root names does not own it, but is no licence to delete it either.
            if ap.info.tags.contains_key(ORPHAN_SINCE_TAG) {
                unmarks.push(Planned {
                    target: SweepTarget::UnmarkAccessPoint {
                        id: id.clone(),
                        workspace: ws.to_string(),
                    },
                    reason: SweepReason::OwnerRegained,
                });
            }
            if tenant.is_some_and(|t| t != record.tenant) {
                plan.skipped.push(Skip {
                    what: id.clone(),
                    reason: SweepReason::SkippedTenantMismatch,
                });
            }
            continue;
        }
        // A task that mounts it, or that uses its workspace, keeps it whatever the table says.
        let users = in_use.users(
            WorkspaceRef {
                workspace: ws,
                tenant,
                access_points: std::slice::from_ref(id),
            },
            rules.file_system_id.as_deref(),
        );
        if !users.is_empty() {
            plan.skipped.push(Skip {
                what: id.clone(),
                reason: SweepReason::SkippedInUse,
            });
            continue;
        }
        // Orphan since the mark, or since its age evidence when that is older.
        let age = ap.info.created_at().or_else(|| ages.of(tenant, ws));
        let since = match (ap.info.orphan_since(), age) {
            (Some(mark), Some(age)) => Some(mark.min(age)),
            (mark, age) => mark.or(age),
        };
        match since {
            None => orphan_aps.push(Planned {
                target: SweepTarget::MarkAccessPoint {
                    id: id.clone(),
                    workspace: ws.to_string(),
                    since: now,
                },
                reason: SweepReason::OrphanAgeUnknown,
            }),
            Some(at) if now - at < min_age => plan.skipped.push(Skip {
                what: id.clone(),
                reason: SweepReason::SkippedTooYoung,
            }),
            Some(_) => orphan_aps.push(Planned {
                target: SweepTarget::DeleteAccessPoint {
                    id: id.clone(),
                    workspace: ws.to_string(),
                    listed: ap.info.clone(),
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
            workspace_aps,
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
    // Removing a mark only ever delays a deletion, so no cap holds it back.
    plan.actions.extend(unmarks);
    plan
}

/// When EFS gives no creation time: an access point is as old as its workspace's directory, or
/// as its workspace's deletion (trash entry). By tenant and workspace; for an access point whose
/// tenant is unknown, the youngest of any tenant.
struct AgeEvidence {
    by_tenant: BTreeMap<(String, String), i64>,
    any_tenant: BTreeMap<String, i64>,
}

impl AgeEvidence {
    fn new(live: &[LiveEntry], trash: &[TrashEntry]) -> Self {
        let dirs = live.iter().filter_map(|e| {
            let ws = e.workspace.as_ref()?;
            Some((e.tenant.clone(), ws.clone(), e.changed_at))
        });
        let trashed = trash.iter().filter_map(|e| {
            let name = e.name.parse::<TrashName>().ok()?;
            Some((
                name.tenant.to_string(),
                name.workspace.to_string(),
                name.deleted_at,
            ))
        });
        let (mut dir_age, mut trash_age) = (Self::empty(), Self::empty());
        for (tenant, ws, at) in dirs {
            dir_age.add(tenant, ws, at);
        }
        for (tenant, ws, at) in trashed {
            trash_age.add(tenant, ws, at);
        }
        // A directory's age comes first (as before); a trash entry's only where there is none.
        for (key, at) in trash_age.by_tenant {
            dir_age.by_tenant.entry(key).or_insert(at);
        }
        for (ws, at) in trash_age.any_tenant {
            dir_age.any_tenant.entry(ws).or_insert(at);
        }
        dir_age
    }

    fn empty() -> Self {
        Self {
            by_tenant: BTreeMap::new(),
            any_tenant: BTreeMap::new(),
        }
    }

    fn add(&mut self, tenant: String, ws: String, at: i64) {
        let newest = |old: &mut i64| *old = (*old).max(at);
        self.by_tenant
            .entry((tenant, ws.clone()))
            .and_modify(newest)
            .or_insert(at);
        self.any_tenant.entry(ws).and_modify(newest).or_insert(at);
    }

    fn of(&self, tenant: Option<&str>, ws: &str) -> Option<i64> {
        match tenant {
            Some(t) => self
                .by_tenant
                .get(&(t.to_string(), ws.to_string()))
                .copied(),
            None => self.any_tenant.get(ws).copied(),
        }
    }
}

pub fn describe(target: &SweepTarget) -> String {
    match target {
        SweepTarget::PurgeTrash { entry } => format!(".trash/{entry}"),
        SweepTarget::FinishStaged { entry } => format!(".trash/{STAGING_PREFIX}{entry}"),
        SweepTarget::TrashOrphan { tenant, workspace } => format!("{tenant}/{workspace}"),
        SweepTarget::DeleteAccessPoint { id, .. }
        | SweepTarget::MarkAccessPoint { id, .. }
        | SweepTarget::UnmarkAccessPoint { id, .. } => id.clone(),
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
    use crate::access_point::Ownership;
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

    fn ap_in(
        id: &str,
        root: &str,
        tags: &[(&str, &str)],
        rules: &AccessPointRules,
    ) -> AccessPointEntry {
        AccessPointEntry::new(
            AccessPointInfo {
                id: id.into(),
                file_system_id: "fs-1".into(),
                root_path: Some(root.into()),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            rules,
        )
    }

    /// An access point under the default rules (layout root `/<tenant>/<workspace>`).
    fn ap(id: &str, root: &str, tags: &[(&str, &str)]) -> AccessPointEntry {
        ap_in(id, root, tags, &AccessPointRules::default())
    }

    fn skipped(plan: &SweepPlan) -> BTreeMap<String, SweepReason> {
        plan.skipped
            .iter()
            .map(|s| (s.what.clone(), s.reason))
            .collect()
    }

    #[test]
    fn trash_by_name_time_and_access_points_by_owner_and_age() {
        let old = format!("{}+acme+gone", NOW - 8 * 86_400);
        let fresh = format!("{}+acme+recent", NOW - 86_400);
        let an_hour_ago = (NOW - H).to_string();
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
                ap("fsap-1", "/acme/gone", &[]),
                ap("fsap-2", "/acme/kept", &[]),
                ap("fsap-3", "/acme/new", &[("createdAt", &an_hour_ago)]),
                ap("fsap-4", "/acme/mystery", &[]),
                ap("fsap-5", "/acme", &[("createdAt", "0")]),
            ],
            &InUse::default(),
            NOW,
            &rules(),
        );
        let targets: Vec<_> = plan.actions.iter().map(|a| describe(&a.target)).collect();
        assert_eq!(
            targets,
            vec![format!(".trash/{old}"), "fsap-1".into(), "fsap-4".into()]
        );
        assert!(matches!(
            plan.actions[2].target,
            SweepTarget::MarkAccessPoint { since: NOW, .. }
        ));
        let reasons = skipped(&plan);
        assert_eq!(reasons["fsap-3"], SweepReason::SkippedTooYoung);
        assert_eq!(reasons["fsap-5"], SweepReason::SkippedNotWorkspace);
        assert_eq!(reasons[".trash/junk"], SweepReason::SkippedInvalidName);
        assert!(!reasons.contains_key("fsap-2") && !reasons.contains_key("fsap-4"));
    }

    #[test]
    fn the_orphan_clock_starts_at_the_mark_or_at_an_older_creation() {
        let at = |secs_ago: i64| (NOW - secs_ago).to_string();
        let (two_h, day_plus, month) = (at(2 * H), at(25 * H), at(30 * 86_400));
        let plan = plan_sweep(
            &[],
            &[],
            &owners(&[("back", "acme"), ("moved", "globex")]),
            &[
                ap("fsap-new-mark", "/acme/a", &[(ORPHAN_SINCE_TAG, &two_h)]),
                ap(
                    "fsap-old-created",
                    "/acme/b",
                    &[(ORPHAN_SINCE_TAG, &two_h), ("createdAt", &month)],
                ),
                ap("fsap-old-mark", "/acme/c", &[(ORPHAN_SINCE_TAG, &day_plus)]),
                ap("fsap-bad-mark", "/acme/d", &[(ORPHAN_SINCE_TAG, "soon")]),
                ap("fsap-back", "/acme/back", &[(ORPHAN_SINCE_TAG, &day_plus)]),
                ap(
                    "fsap-moved",
                    "/acme/moved",
                    &[(ORPHAN_SINCE_TAG, &day_plus)],
                ),
                ap(
                    "fsap-foreign",
                    "/srv/x/data",
                    &[(ORPHAN_SINCE_TAG, &day_plus)],
                ),
            ],
            &InUse::default(),
            NOW,
            &rules(),
        );
        let actions: Vec<_> = plan
            .actions
            .iter()
            .map(|a| (describe(&a.target), a.reason))
            .collect();
        assert_eq!(
            actions,
            vec![
                ("fsap-old-created".into(), SweepReason::OrphanAccessPoint),
                ("fsap-old-mark".into(), SweepReason::OrphanAccessPoint),
                ("fsap-bad-mark".into(), SweepReason::OrphanAgeUnknown),
                ("fsap-back".into(), SweepReason::OwnerRegained),
                ("fsap-moved".into(), SweepReason::OwnerRegained),
            ]
        );
        let reasons = skipped(&plan);
        assert_eq!(reasons["fsap-new-mark"], SweepReason::SkippedTooYoung);
        assert_eq!(reasons["fsap-moved"], SweepReason::SkippedTenantMismatch);
        assert_eq!(reasons["fsap-foreign"], SweepReason::SkippedNotWorkspace);
    }

    #[test]
    fn the_access_point_cap_counts_marks_and_workspace_access_points_only() {
        let mut aps: Vec<_> = (0..20)
            .map(|i| {
                ap(
                    &format!("fsap-f{i:02}"),
                    &format!("/srv/app{i}/data"),
                    &[("createdAt", "0")],
                )
            })
            .collect();
        let owned: Vec<(String, &str)> = (0..7).map(|i| (format!("ws{i}"), "acme")).collect();
        for i in 0..10 {
            aps.push(ap(&format!("fsap-w{i}"), &format!("/acme/ws{i}"), &[]));
        }
        let owned = owners_from(owned.iter().map(|(w, t)| (w.as_str(), *t)));
        // Three orphans to mark out of ten workspace access points: 30% > 20%, although they are
        // 10% of all thirty access points.
        let plan = plan_sweep(&[], &[], &owned, &aps, &InUse::default(), NOW, &rules());
        assert!(plan.actions.is_empty(), "{:?}", plan.actions);
        assert!(plan.cap_exceeded.unwrap().contains("3 of 10"));
        assert_eq!(
            plan.skipped
                .iter()
                .filter(|s| s.reason == SweepReason::SkippedCap)
                .count(),
            3
        );
        // Over a cap, a mark is still removed from an access point that regained its owner.
        let marked = ap("fsap-m", "/acme/ws0", &[(ORPHAN_SINCE_TAG, "0")]);
        aps.push(marked);
        let plan = plan_sweep(&[], &[], &owned, &aps, &InUse::default(), NOW, &rules());
        assert!(plan.cap_exceeded.is_some());
        assert_eq!(plan.actions.len(), 1);
        assert_eq!(plan.actions[0].reason, SweepReason::OwnerRegained);
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
            &[ap(
                "fsap-9",
                "/acme/mounted",
                &[("createdAt", &NOW.to_string())],
            )],
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

    fn component() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec![
            "workspaces",
            "a",
            "b",
            "acme",
            "ws-a",
            "ws-b",
            "..",
            ".",
            "",
        ])
    }

    fn any_access_point() -> impl Strategy<Value = AccessPointInfo> {
        (
            proptest::option::of((proptest::collection::vec(component(), 0..5), any::<bool>())),
            proptest::option::of(prop::sample::select(vec![
                "ws-a",
                "ws-b",
                "acme",
                "workspaces",
                "../x",
                "",
                "a/b",
            ])),
            proptest::option::of(prop::sample::select(vec![0i64, NOW])),
            proptest::option::of(prop::sample::select(vec![0i64, NOW])),
        )
            .prop_map(|(root, tag, created, mark)| {
                let mut tags = BTreeMap::new();
                if let Some(t) = tag {
                    tags.insert("workspaceId".to_string(), t.to_string());
                }
                if let Some(c) = created {
                    tags.insert(CREATED_AT.to_string(), c.to_string());
                }
                if let Some(m) = mark {
                    tags.insert(ORPHAN_SINCE_TAG.to_string(), m.to_string());
                }
                AccessPointInfo {
                    id: String::new(),
                    file_system_id: "fs-1".into(),
                    root_path: root.map(|(parts, slash)| {
                        format!("/{}{}", parts.join("/"), if slash { "/" } else { "" })
                    }),
                    tags,
                }
            })
    }

    const CREATED_AT: &str = crate::access_point::CREATED_AT_TAG;

    proptest! {
        /// No access point that is not a workspace access point is ever acted on (deleted,
        /// marked or unmarked), whatever its root, tags, the prefix and the own id; each is
        /// reported once.
        #[test]
        fn only_workspace_access_points_are_candidates(
            infos in proptest::collection::vec(any_access_point(), 0..12),
            prefix in prop::sample::select(vec!["", "/workspaces", "/a/b"]),
            own in proptest::option::of(0usize..12),
            tag_only in any::<bool>(),
            owned in proptest::collection::vec((prop::sample::select(vec!["ws-a", "ws-b", "acme", "workspaces"]), prop::sample::select(vec!["acme", "a"])), 0..4),
        ) {
            let rules_ap = AccessPointRules {
                root_prefix: prefix.to_string(),
                own_id: own.map(|i| format!("fsap-{i}")),
                ownership: if tag_only { Ownership::Tag } else { Ownership::TagOrRoot },
            };
            let entries: Vec<_> = infos
                .into_iter()
                .enumerate()
                .map(|(i, mut info)| {
                    info.id = format!("fsap-{i}");
                    AccessPointEntry::new(info, &rules_ap)
                })
                .collect();
            let owners = owners_from(owned.iter().copied());
            let mut lenient = rules();
            lenient.max_action_percent = 100;
            let plan = plan_sweep(&[], &[], &owners, &entries, &InUse::default(), NOW, &lenient);
            for a in &plan.actions {
                let (id, ws, destructive) = match &a.target {
                    SweepTarget::DeleteAccessPoint { id, workspace, .. }
                    | SweepTarget::MarkAccessPoint { id, workspace, .. } => (id, workspace, true),
                    SweepTarget::UnmarkAccessPoint { id, workspace } => (id, workspace, false),
                    _ => continue,
                };
                let info = &entries.iter().find(|e| &e.info.id == id).unwrap().info;
                prop_assert!(rules_ap.own_id.as_ref() != Some(id));
                let root = info.root_path.clone().unwrap_or_else(|| "/".into());
                match info.tags.get("workspaceId") {
                    Some(tag) => prop_assert_eq!(tag, ws),
                    None => {
                        prop_assert!(!tag_only);
                        let tenant = root
                            .strip_prefix(&format!("{prefix}/"))
                            .and_then(|r| r.strip_suffix(&format!("/{ws}")));
                        prop_assert!(tenant.is_some_and(|t| TenantId::parse(t).is_ok()), "{root}");
                    }
                }
                let leaf = root.trim_end_matches('/').rsplit('/').next().unwrap_or("");
                prop_assert!(leaf.is_empty() || leaf == ws.as_str(), "{root} for {ws}");
                prop_assert!(WorkspaceId::parse(ws.as_str()).is_ok());
                prop_assert_eq!(destructive, !owners.contains_key(ws));
            }
            for e in &entries {
                let reports = plan.skipped.iter().filter(|s| s.what == e.info.id).count();
                if e.owner.is_err() {
                    prop_assert_eq!(reports, 1);
                    prop_assert!(plan.actions.iter().all(|a| describe(&a.target) != e.info.id));
                }
            }
        }

        /// An owned workspace is never planned for removal, whatever else is there.
        #[test]
        fn owned_is_never_touched(names in proptest::collection::vec("[a-c]{1,2}", 0..12), owned in proptest::collection::vec("[a-c]{1,2}", 0..12), age in 0i64..200) {
            let entries: Vec<_> = names.iter().map(|n| live("t", n, age)).collect();
            let owners = owners_from(owned.iter().map(|w| (w.as_str(), "t")));
            let aps: Vec<_> = names.iter().enumerate().map(|(i, n)| ap(&format!("fsap-{i}"), &format!("/t/{n}"), &[("createdAt", "0")])).collect();
            let plan = plan_sweep(&entries, &[], &owners, &aps, &InUse::default(), NOW, &rules());
            for a in &plan.actions {
                match &a.target {
                    SweepTarget::TrashOrphan { workspace, .. }
                    | SweepTarget::DeleteAccessPoint { workspace, .. }
                    | SweepTarget::MarkAccessPoint { workspace, .. } => {
                        prop_assert!(!owners.contains_key(workspace));
                    }
                    SweepTarget::PurgeTrash { .. } | SweepTarget::FinishStaged { .. } | SweepTarget::UnmarkAccessPoint { .. } => {}
                }
            }
        }
    }
}
