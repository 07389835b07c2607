//! The weekly sweep (pure): which trash entries have served their grace, which workspace
//! directories and access points no record owns, and whether the run stays within its caps.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access_point::{identify, AccessPointRules, WorkspaceAccessPoint};
use crate::access_point::{AccessPointInfo, ORPHAN_SINCE_TAG};
use crate::archive::{ArchiveDecision, ArchivePolicy, ArchiveReason};
use crate::caps::{self, Caps, PercentSetting, MIN_POPULATION_FOR_PERCENT};
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

impl SweepRules {
    /// Purges: `MAX_ACTIONS`, and `MAX_PURGE_PERCENT` of the trash's entries (from ten on).
    pub fn purge_caps(&self) -> Caps {
        Caps {
            max_actions: self.max_actions,
            max_percent: self.max_purge_percent,
            percent_setting: PercentSetting::MaxPurgePercent,
            min_population: MIN_POPULATION_FOR_PERCENT,
        }
    }

    /// Orphan directories and orphan access points, each kind on its own: `MAX_ACTIONS`, and
    /// `MAX_ACTION_PERCENT` of the workspace directories (or workspace access points), from ten on.
    pub fn orphan_caps(&self) -> Caps {
        Caps {
            max_actions: self.max_actions,
            max_percent: self.max_action_percent,
            percent_setting: PercentSetting::MaxActionPercent,
            min_population: MIN_POPULATION_FOR_PERCENT,
        }
    }
}

/// Seconds after which a `.staging+` entry is finished by the sweeper: longer than a stream
/// record can be retried (24 hours).
pub const STAGING_ABANDONED_AFTER: i64 = 2 * SECONDS_PER_DAY;

/// The least age of a trash entry before it is purged, whatever the grace: the stream's
/// retention, the longest a TTL deletion can wait to be handled (and its record put back).
pub const MIN_TRASH_AGE: i64 = SECONDS_PER_DAY;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// Grace elapsed, and the archive policy does not archive its status (cancelled): purged
    /// without an archive, as without `ARCHIVE_BUCKET`.
    NotArchived,
}

crate::serde_codes!(SweepReason);

impl std::fmt::Display for SweepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SweepTarget {
    PurgeTrash {
        entry: String,
    },
    /// Grace elapsed and the archive policy archives it: archived to the archive bucket, the
    /// upload verified, then (after fresh re-checks) the EFS copy purged.
    #[serde(rename_all = "camelCase")]
    ArchiveTrash {
        entry: String,
        /// Days the archive is kept (its `retentionDays` tag).
        retention_days: u32,
        /// Why the policy archives it (`policy_archive`, `record_unknown`).
        archive_reason: ArchiveReason,
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

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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

/// A whole sweep, decided: what to do (within the caps), what is kept and why, and which caps
/// tripped. It is a value: shown by `lifecycle plan sweep`, then carried out as shown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepPlan {
    /// What to do, in order: purges, then orphan directories, then access points (deletes and
    /// marks), then removals of marks.
    pub actions: Vec<Planned>,
    pub skipped: Vec<Skip>,
    /// Set when a cap is exceeded: then nothing of that kind is in `actions` (each is in
    /// `skipped` as `skipped_cap`), and this says which caps and by how much.
    pub cap_exceeded: Option<String>,
    /// How many access points the file system has (all of them, ours or not): EFS allows
    /// 10,000 per file system, and past that no workspace can be created.
    pub access_points: usize,
}

impl SweepRules {
    /// A trash entry's grace, never less than [`MIN_TRASH_AGE`].
    pub fn grace(&self) -> i64 {
        (i64::from(self.trash_grace_days) * SECONDS_PER_DAY).max(MIN_TRASH_AGE)
    }
}

/// Whether `entry` may be purged (or archived, then purged) at `now`, from its name alone, as
/// the planner decided it: a `.purging+` entry is committed already; any other must be a trash
/// entry whose grace has elapsed. Checked again right before the act, so an action that did not
/// come from this planner (a unit of work changed on its way) is not taken.
pub fn purge_eligible(entry: &str, now: i64, rules: &SweepRules) -> Result<(), String> {
    if entry.starts_with(PURGING_PREFIX) {
        return Ok(());
    }
    let name: TrashName = entry
        .parse()
        .map_err(|e| format!("not a trash entry's name: {e}"))?;
    if now.saturating_sub(name.deleted_at) < rules.grace() {
        return Err(format!(
            "within its grace ({} s old, grace {} s)",
            now.saturating_sub(name.deleted_at),
            rules.grace()
        ));
    }
    Ok(())
}

/// Whether a half-move (`.staging+<entry>`, named here without its prefix) may be finished at
/// `now`: only one abandoned long enough that no ttl-expiry is still moving it.
pub fn finish_eligible(entry: &str, now: i64) -> Result<(), String> {
    let name: TrashName = entry
        .parse()
        .map_err(|e| format!("not a trash entry's name: {e}"))?;
    if now.saturating_sub(name.deleted_at) < STAGING_ABANDONED_AFTER {
        return Err("its move may still be going on".into());
    }
    Ok(())
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
    let mut plan = SweepPlan {
        access_points: access_points.len(),
        ..SweepPlan::default()
    };
    let min_age = i64::from(rules.orphan_min_age_hours) * 3600;
    // Never less than a day, whatever `TRASH_GRACE_DAYS` says (0 included): a TTL deletion may
    // wait that long in the stream (its retention) before ttl-expiry puts a held or in-use record
    // back, and until then the workspace's data may sit in the trash as an orphan the sweeper
    // moved. A purge before that could take data a record comes back to own (red team).
    let grace = rules.grace();

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

    // Each kind is capped on its own (`caps`): over its cap, nothing of that kind is done, and
    // the plan says so. A wrong table or a failed listing must not look like "everything is
    // orphaned", nor a wrong clock like "everything is past its grace". Not capped: resumed
    // purges (an earlier, capped run committed to them) and finished half-moves (they delete
    // nothing).
    let kinds = [
        ("trash purges", purges, trash_entries, rules.purge_caps()),
        (
            "orphan directories",
            orphan_dirs,
            live_workspaces,
            rules.orphan_caps(),
        ),
        (
            "orphan access points",
            orphan_aps,
            workspace_aps,
            rules.orphan_caps(),
        ),
    ];
    let mut exceeded = Vec::new();
    plan.actions.extend(resumed);
    for (kind, actions, population, caps) in kinds {
        let capped = caps.apply(kind, actions, population);
        plan.actions.extend(capped.allowed);
        plan.skipped
            .extend(capped.skipped.into_iter().map(|a| Skip {
                what: describe(&a.target),
                reason: SweepReason::SkippedCap,
            }));
        exceeded.extend(capped.exceeded);
    }
    plan.cap_exceeded = caps::describe(&exceeded);
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
        SweepTarget::PurgeTrash { entry } | SweepTarget::ArchiveTrash { entry, .. } => {
            format!(".trash/{entry}")
        }
        SweepTarget::FinishStaged { entry } => format!(".trash/{STAGING_PREFIX}{entry}"),
        SweepTarget::TrashOrphan { tenant, workspace } => format!("{tenant}/{workspace}"),
        SweepTarget::DeleteAccessPoint { id, .. }
        | SweepTarget::MarkAccessPoint { id, .. }
        | SweepTarget::UnmarkAccessPoint { id, .. } => id.clone(),
    }
}

/// Whom an audit line is about, read back from a [`describe`]d target (or a skipped item's
/// `what`): a trash entry or an orphan directory names its workspace and tenant, and the path
/// goes in the line's resource; anything else (a workspace id, an access point id) is kept as
/// it is. A trash entry whose name names no workspace is `-`: a path is never a workspace id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSubject {
    pub workspace: String,
    pub tenant: Option<String>,
    pub resource: Option<String>,
}

pub fn audit_subject(what: &str) -> AuditSubject {
    let named = |workspace: &str, tenant: &str| AuditSubject {
        workspace: workspace.to_string(),
        tenant: Some(tenant.to_string()),
        resource: Some(what.to_string()),
    };
    if let Some(entry) = what.strip_prefix(".trash/") {
        let entry = entry
            .strip_prefix(STAGING_PREFIX)
            .or_else(|| entry.strip_prefix(PURGING_PREFIX))
            .unwrap_or(entry);
        return match entry.parse::<TrashName>() {
            Ok(name) => named(name.workspace.as_str(), name.tenant.as_str()),
            Err(_) => AuditSubject {
                workspace: "-".to_string(),
                tenant: None,
                resource: Some(what.to_string()),
            },
        };
    }
    if let Some((tenant, workspace)) = what.split_once('/') {
        if TenantId::parse(tenant).is_ok() && WorkspaceId::parse(workspace).is_ok() {
            return named(workspace, tenant);
        }
        return AuditSubject {
            workspace: "-".to_string(),
            tenant: None,
            resource: Some(what.to_string()),
        };
    }
    AuditSubject {
        workspace: what.to_string(),
        tenant: None,
        resource: None,
    }
}

/// With an archive bucket: each purge of an entry whose grace elapsed becomes what the archive
/// policy says of the record kept with it (`kept`: entry name → its `record.json`, `None` when it
/// has none): archived then purged, or purged without an archive (`not_archived`). An entry whose
/// record was not read is archived for the longest retention: never purged unarchived on a guess.
/// Resumed purges (`.purging+`, committed by an earlier run) stay purges; the caps, applied
/// before, count archives as the purges they end in.
pub fn route_purges(
    mut plan: SweepPlan,
    policy: &ArchivePolicy,
    kept: &BTreeMap<String, Option<Vec<u8>>>,
) -> SweepPlan {
    for action in &mut plan.actions {
        let SweepTarget::PurgeTrash { entry } = &action.target else {
            continue;
        };
        if action.reason != SweepReason::TrashGraceElapsed {
            continue;
        }
        let decision = match kept.get(entry) {
            Some(record) => policy.decide_kept(record.as_deref()),
            None => ArchiveDecision::Archive {
                days: policy.longest_days(),
                reason: ArchiveReason::RecordUnknown,
            },
        };
        match decision {
            ArchiveDecision::Archive { days, reason } => {
                action.target = SweepTarget::ArchiveTrash {
                    entry: entry.clone(),
                    retention_days: days,
                    archive_reason: reason,
                };
            }
            ArchiveDecision::Terminate { .. } => action.reason = SweepReason::NotArchived,
        }
    }
    plan
}

/// The trash entries a plan purges because their grace elapsed: whose records
/// [`route_purges`] needs.
pub fn purges_due(plan: &SweepPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match &a.target {
            SweepTarget::PurgeTrash { entry } if a.reason == SweepReason::TrashGraceElapsed => {
                Some(entry.clone())
            }
            _ => None,
        })
        .collect()
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
mod tests;
