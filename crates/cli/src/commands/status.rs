//! `lifecycle status`: the fleet by tier and status, what expires soon, holds, the trash, and
//! the orphans a dry sweep finds; then the forecast (workspaces and bytes expiring per day for
//! the next 30 days) and the trash by age.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result};
use lifecycle_domain::forecast::{self, AgeBand, Expiring, Forecast, TrashAge};
use lifecycle_domain::layout::{workspace_rel_path, TrashName};
use lifecycle_domain::record::Attributes;
use lifecycle_domain::sweep::{SweepPlan, SweepReason, SweepTarget};
use lifecycle_domain::StoredRecord;
use serde::Serialize;

use crate::commands::plan;
use crate::context::{Access, Context};
use crate::render::{self, Output};

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(flatten)]
    pub fleet: Fleet,
    pub trash: TrashUsage,
    pub orphans: usize,
    pub sweep_cap_exceeded: Option<String>,
    pub forecast: Forecast,
    pub trash_by_age: Vec<AgeBand>,
    /// Names in the trash that are not a trash entry's (staging, purging, foreign).
    pub trash_other: AgeBand,
    /// The archive bucket (`ARCHIVE_BUCKET`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveUsage>,
}

/// What the archive holds, and what it and the trash cost a month at list prices.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveUsage {
    pub archives: usize,
    pub bytes: u64,
    /// Archives and bytes per storage class.
    pub by_class: BTreeMap<String, (usize, u64)>,
    pub monthly_usd: f64,
    /// The trash on EFS Standard, for comparison.
    pub trash_monthly_usd: f64,
}

/// Sums the archive listing (archive objects only, not their records).
pub fn archive_usage(objects: &[lifecycle_ports::StoredObject], trash_bytes: u64) -> ArchiveUsage {
    use lifecycle_domain::archive::{
        entry_of_key, monthly_usd, s3_usd_per_gb_month, EFS_STANDARD_USD_PER_GB_MONTH,
    };
    let mut usage = ArchiveUsage {
        trash_monthly_usd: monthly_usd(trash_bytes, EFS_STANDARD_USD_PER_GB_MONTH),
        ..ArchiveUsage::default()
    };
    for o in objects.iter().filter(|o| entry_of_key(&o.key).is_some()) {
        let bytes = o.size.max(0) as u64;
        usage.archives += 1;
        usage.bytes += bytes;
        usage.monthly_usd += monthly_usd(bytes, s3_usd_per_gb_month(o.storage_class.as_deref()));
        let class = o.storage_class.clone().unwrap_or_else(|| "STANDARD".into());
        let slot = usage.by_class.entry(class).or_default();
        slot.0 += 1;
        slot.1 += bytes;
    }
    usage
}

/// How many days the forecast covers.
pub const FORECAST_DAYS: usize = 30;

/// The records, counted.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Fleet {
    pub workspaces: usize,
    pub invalid_records: usize,
    pub by_tier: BTreeMap<String, usize>,
    pub by_status: BTreeMap<String, usize>,
    #[serde(rename = "expiringWithin24h")]
    pub expiring_within_day: usize,
    #[serde(rename = "expiringWithin7d")]
    pub expiring_within_week: usize,
    pub held: usize,
}

#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct TrashUsage {
    pub entries: usize,
    pub files: u64,
    pub bytes: u64,
}

pub async fn run(ctx: &Context, output: Output) -> Result<()> {
    let config = ctx.config(Access::Read)?;
    let items = ctx.table(&config).scan(None).await?;
    let fs = ctx.fs(&config);
    let trash = fs.list_trash()?;
    let entries = trash.len();
    // One walk of each entry gives both the totals and the ages.
    let sizes: Vec<(u64, u64)> = trash
        .iter()
        .map(|e| usage(&fs.trash_path().join(&e.name)))
        .collect();
    let files = sizes.iter().map(|s| s.0).sum();
    let bytes = sizes.iter().map(|s| s.1).sum();
    let plan = plan::sweep(&ctx.sweeper(Access::Plan)?, ctx.now).await?;
    let expiring = expiring(&items, fs.root(), ctx.now);
    let ages: Vec<TrashAge> = trash
        .iter()
        .zip(&sizes)
        .map(|(e, &(_, bytes))| TrashAge {
            deleted_at: e.name.parse::<TrashName>().ok().map(|n| n.deleted_at),
            bytes,
        })
        .collect();
    let (trash_by_age, trash_other) =
        forecast::trash_by_age(&ages, ctx.now, config.trash_grace_days);
    let archive = match ctx.archive()? {
        Some(store) => {
            let objects = store
                .list(lifecycle_domain::archive::ARCHIVE_PREFIX)
                .await
                .context("listing the archive")?;
            Some(archive_usage(&objects, bytes))
        }
        None => None,
    };
    let status = Status {
        fleet: Fleet::of(&items, ctx.now),
        trash: TrashUsage {
            entries,
            files,
            bytes,
        },
        orphans: orphans(&plan),
        sweep_cap_exceeded: plan.cap_exceeded,
        forecast: forecast::expiring_by_day(&expiring, ctx.now, FORECAST_DAYS),
        trash_by_age,
        trash_other,
        archive,
    };
    output.show(&status, render::status)
}

/// The serde name of a code (`pro`, `suspended`).
fn code(value: impl Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Fleet {
    pub fn of(items: &[Attributes], now: i64) -> Self {
        let mut fleet = Fleet {
            workspaces: items.len(),
            ..Fleet::default()
        };
        for item in items {
            let Ok(stored) = StoredRecord::parse(item.clone()) else {
                fleet.invalid_records += 1;
                continue;
            };
            let r = stored.record;
            *fleet.by_tier.entry(code(r.tier)).or_default() += 1;
            *fleet
                .by_status
                .entry(code(r.subscription_status))
                .or_default() += 1;
            if r.hold {
                fleet.held += 1;
            } else if let Some(e) = r.expires_at {
                fleet.expiring_within_day += usize::from(e <= now + 86_400);
                fleet.expiring_within_week += usize::from(e <= now + 7 * 86_400);
            }
        }
        fleet
    }
}

/// Each readable record with its expiry and, when it expires within the forecast, the size of
/// its data (only those are walked: a fleet's worth of trees is not read for a chart).
fn expiring(items: &[Attributes], root: &Path, now: i64) -> Vec<Expiring> {
    let horizon = now + (FORECAST_DAYS as i64 + 1) * 86_400;
    items
        .iter()
        .filter_map(|item| StoredRecord::parse(item.clone()).ok())
        .map(|stored| {
            let r = stored.record;
            let soon = !r.hold && r.expires_at.is_some_and(|e| e < horizon);
            Expiring {
                expires_at: r.expires_at,
                held: r.hold,
                bytes: if soon {
                    usage(&root.join(workspace_rel_path(&r.tenant_id, &r.workspace_id))).1
                } else {
                    0
                },
            }
        })
        .collect()
}

/// What a dry sweep would take as orphans: everything but purges and unmarks, and what a cap
/// held back.
fn orphans(plan: &SweepPlan) -> usize {
    let acted = plan
        .actions
        .iter()
        .filter(|a| {
            !matches!(
                a.target,
                SweepTarget::PurgeTrash { .. }
                    | SweepTarget::ArchiveTrash { .. }
                    | SweepTarget::UnmarkAccessPoint { .. }
            )
        })
        .count();
    acted
        + plan
            .skipped
            .iter()
            .filter(|s| s.reason == SweepReason::SkippedCap)
            .count()
}

/// Files and bytes under `path` (itself, when it is not a directory), without following a
/// symlink (one counts as a file).
fn usage(path: &Path) -> (u64, u64) {
    match path.symlink_metadata() {
        Ok(meta) if !meta.is_dir() => return (1, meta.len()),
        Err(_) => return (0, 0),
        Ok(_) => {}
    }
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = e.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifecycle_domain::record::Value;

    fn record(ws: &str, tier: &str, status: &str, expiry: Option<i64>, hold: bool) -> Attributes {
        let mut item: Attributes = [
            ("workspaceId", Value::S(ws.into())),
            ("tenantId", Value::S("acme".into())),
            ("tier", Value::S(tier.into())),
            ("subscriptionStatus", Value::S(status.into())),
            ("lastActivityAt", Value::N("0".into())),
        ]
        .into_iter()
        .collect();
        if let Some(at) = expiry {
            item.insert("expiresAt", Value::N(at.to_string()));
        }
        if hold {
            item.insert("hold", Value::Bool(true));
        }
        item
    }

    #[test]
    fn the_fleet_is_counted_by_tier_status_expiry_and_hold() {
        let now = 1_000_000;
        let unreadable = record("ws-bad", "platinum", "active", Some(now), false);
        let items = [
            record("ws-1", "free", "active", Some(now - 60), false),
            record("ws-2", "pro", "active", Some(now + 3_600), false),
            record(
                "ws-3",
                "enterprise",
                "cancelled",
                Some(now + 3 * 86_400),
                false,
            ),
            record("ws-4", "pro", "suspended", Some(now + 30 * 86_400), false),
            record("ws-5", "pro", "active", None, true),
            unreadable,
        ];
        let fleet = Fleet::of(&items, now);
        let counted = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
        };
        assert_eq!(
            fleet,
            Fleet {
                workspaces: 6,
                invalid_records: 1,
                by_tier: counted(&[("enterprise", 1), ("free", 1), ("pro", 3)]),
                by_status: counted(&[("active", 3), ("cancelled", 1), ("suspended", 1)]),
                expiring_within_day: 2,
                expiring_within_week: 3,
                held: 1,
            }
        );
        let json = serde_json::to_value(&fleet).unwrap();
        for key in [
            "expiringWithin24h",
            "expiringWithin7d",
            "invalidRecords",
            "byTier",
        ] {
            assert!(json.get(key).is_some(), "{key} in {json}");
        }
    }

    #[test]
    fn trash_usage_counts_files_and_does_not_follow_links() {
        let dir = tempfile::tempdir().unwrap();
        let entry = dir.path().join("1+acme+ws-1/data/src");
        std::fs::create_dir_all(&entry).unwrap();
        std::fs::write(entry.join("a"), [0u8; 10]).unwrap();
        std::fs::write(entry.join("b"), [0u8; 5]).unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("big"), [0u8; 4096]).unwrap();
        std::os::unix::fs::symlink(outside.path(), entry.join("link")).unwrap();
        let (files, bytes) = usage(dir.path());
        assert_eq!(files, 3, "two files and the link itself");
        assert!((15..4096).contains(&bytes), "{bytes}");
    }
}

#[cfg(test)]
mod archive_tests {
    use super::*;
    use lifecycle_ports::StoredObject;

    #[test]
    fn archive_usage_counts_archives_not_records_and_prices_each_class() {
        let object = |key: &str, size: i64, class: Option<&str>| StoredObject {
            key: key.into(),
            size,
            last_modified: None,
            storage_class: class.map(str::to_string),
        };
        let name = "1700000000+acme+ws-1+0123456789abcdef";
        let objects = [
            object(
                &format!("workspaces/ws-1/{name}.tar.zst"),
                1_000_000_000,
                None,
            ),
            object(&format!("workspaces/ws-1/{name}.record.json"), 500, None),
            object(
                "workspaces/ws-2/1700000000+acme+ws-2+0123456789abcdef.tar.zst",
                2_000_000_000,
                Some("DEEP_ARCHIVE"),
            ),
            object("elsewhere/x.tar.zst", 9_000_000_000, None),
        ];
        let usage = archive_usage(&objects, 3_000_000_000);
        assert_eq!(usage.archives, 2);
        assert_eq!(usage.bytes, 3_000_000_000);
        assert_eq!(usage.by_class["DEEP_ARCHIVE"], (1, 2_000_000_000));
        assert!((usage.monthly_usd - (0.023 + 2.0 * 0.00099)).abs() < 1e-9);
        assert!((usage.trash_monthly_usd - 0.90).abs() < 1e-9);
    }
}
