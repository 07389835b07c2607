//! What the commands print: a table for people or, with `--json`, the value itself. Each
//! renderer takes the value a command produced and returns the text, so what is shown is
//! exactly that value.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use lifecycle_domain::prune::{RepoPlan, Verdict};
use lifecycle_domain::sweep::{describe, SweepPlan, SweepTarget};
use serde::Serialize;

use crate::commands::replay::{Listed, ReplaySummary, Replayed};
use crate::commands::restore::Restored;
use crate::commands::status::Status;

/// Where a command's result goes: stdout, as a table or as JSON.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// `value` as JSON, or `human(value)`.
    pub fn show<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(value)?);
        } else {
            println!("{}", human(value));
        }
        Ok(())
    }

    /// Text only people read (a plan shown before a question); nothing in JSON mode.
    pub fn note(&self, text: &str) {
        if !self.json {
            println!("{text}");
        }
    }
}

/// An error as one line: the chain joined, no backtrace.
pub fn error(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

pub fn date(epoch: i64) -> String {
    lifecycle_domain::time::format_epoch(epoch)
}

pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

fn kind(target: &SweepTarget) -> &'static str {
    match target {
        SweepTarget::PurgeTrash { .. } => "purge_trash",
        SweepTarget::ArchiveTrash { .. } => "archive_then_purge",
        SweepTarget::FinishStaged { .. } => "finish_staged",
        SweepTarget::TrashOrphan { .. } => "move_to_trash",
        SweepTarget::DeleteAccessPoint { .. } => "delete_access_point",
        SweepTarget::MarkAccessPoint { .. } => "mark_access_point",
        SweepTarget::UnmarkAccessPoint { .. } => "unmark_access_point",
    }
}

/// The line saying a cap held back `what`; a plan that carries a cap shows it.
fn cap_line(cap: &str, what: &str) -> String {
    format!("cap exceeded: {cap}; {what} holds back everything of that kind")
}

pub fn sweep_plan(plan: &SweepPlan) -> String {
    let mut out = format!("{:<20} {:<60} REASON\n", "ACTION", "TARGET");
    for a in &plan.actions {
        let target = describe(&a.target);
        // An archive says for how long and why: the operator sees exactly what would happen.
        let archive = match &a.target {
            SweepTarget::ArchiveTrash {
                retention_days,
                archive_reason,
                ..
            } => format!(
                " (archive kept {retention_days} days: {})",
                archive_reason.as_str()
            ),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<20} {target:<60} {}{archive}",
            kind(&a.target),
            a.reason.as_str()
        );
    }
    for s in &plan.skipped {
        let _ = writeln!(out, "{:<20} {:<60} {}", "keep", s.what, s.reason.as_str());
    }
    let _ = write!(
        out,
        "total: {} actions, {} kept",
        plan.actions.len(),
        plan.skipped.len()
    );
    if let Some(cap) = &plan.cap_exceeded {
        let _ = write!(out, "\n{}", cap_line(cap, "the sweep"));
    }
    out
}

pub fn prune_plans(plans: &[RepoPlan]) -> String {
    let mut out = String::new();
    let (mut deleted, mut bytes, mut archived, mut restored) = (0, 0, 0, 0);
    for plan in plans {
        let _ = writeln!(out, "{}:", plan.repository);
        let _ = writeln!(
            out,
            "  {:<19} {:<24} {:<7} {:<26} {:>10}",
            "DIGEST", "TAGS", "VERDICT", "REASON", "SIZE"
        );
        for d in &plan.decisions {
            let verdict = match d.verdict {
                Verdict::Delete => "delete",
                Verdict::Keep => "keep",
                Verdict::Archive => "archive",
                Verdict::Restore => "restore",
            };
            let status = if d.status.is_active() {
                String::new()
            } else {
                format!(" ({})", d.status.as_str())
            };
            let _ = writeln!(
                out,
                "  {:<19} {:<24} {:<7} {:<26} {:>10}{status}",
                &d.digest[..d.digest.len().min(19)],
                d.tags.join(","),
                verdict,
                d.reason.as_str(),
                human(d.size)
            );
        }
        let n = plan.delete_waves.iter().map(Vec::len).sum::<usize>();
        let _ = writeln!(
            out,
            "  {n} to delete of {}, {} freed",
            plan.decisions.len(),
            human(plan.bytes_freed)
        );
        let archives = plan.archives().len();
        if archives > 0 {
            let _ = writeln!(
                out,
                "  {archives} to archive ({}), deleted after archiveDays",
                human(plan.bytes_archived)
            );
        }
        if !plan.restores.is_empty() {
            let _ = writeln!(
                out,
                "  {} to restore (archived, in use or pinned): first, whatever the caps",
                plan.restores.len()
            );
        }
        archived += archives;
        restored += plan.restores.len();
        if let Some(cap) = &plan.cap_exceeded {
            let _ = writeln!(out, "  {}", cap_line(cap, &plan.repository));
        }
        deleted += n;
        bytes += plan.bytes_freed;
    }
    let _ = write!(
        out,
        "total: {deleted} images to delete, {} freed",
        human(bytes)
    );
    if archived + restored > 0 {
        let _ = write!(out, "; {archived} to archive, {restored} to restore");
    }
    out
}

pub fn sweep_done(summary: &efs_sweeper::SweepSummary) -> String {
    format!(
        "done: {} actions, {} not done, {} files / {} freed",
        summary.actions.len(),
        summary.not_done.len(),
        summary.files_freed,
        human(summary.bytes_freed)
    )
}

pub fn prune_done(summary: &ecr_pruner::PruneSummary) -> String {
    let mut out = format!(
        "done: {} images deleted, {} freed",
        summary.deleted,
        human(summary.bytes_freed)
    );
    if summary.archived + summary.restored > 0 {
        let _ = write!(
            out,
            "; {} archived, {} restored",
            summary.archived, summary.restored
        );
    }
    out
}

pub fn restored(r: &Restored) -> String {
    let mut out = format!("restored {} to {}\n", r.workspace_id, r.place.display());
    let expires = r.expires_at.map_or("never (hold)".into(), date);
    let _ = write!(out, "  record re-created, expires {expires}");
    if let Some(ap) = &r.access_point_id {
        let _ = write!(out, "\n  access point re-created: {ap}");
    }
    out
}

/// What `touch` did to `workspace_id`.
pub fn touched(workspace_id: &str, summary: &heartbeat::Summary) -> String {
    if let Some(e) = summary.extended.first() {
        format!("{workspace_id}: expires {}", date(e.expires_at))
    } else if let Some(s) = summary.skipped.first() {
        format!("{workspace_id}: unchanged ({})", s.reason)
    } else {
        format!("{workspace_id}: no such workspace")
    }
}

fn counts(by: &BTreeMap<String, usize>) -> String {
    by.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn status(s: &Status) -> String {
    let f = &s.fleet;
    let cap = s
        .sweep_cap_exceeded
        .as_ref()
        .map(|c| format!("; cap exceeded: {c}"))
        .unwrap_or_default();
    [
        format!(
            "workspaces      {} ({} invalid records)",
            f.workspaces, f.invalid_records
        ),
        format!("  by tier       {}", counts(&f.by_tier)),
        format!("  by status     {}", counts(&f.by_status)),
        format!(
            "  expiring      {} within 24 h, {} within 7 days",
            f.expiring_within_day, f.expiring_within_week
        ),
        format!("  held          {}", f.held),
        format!(
            "trash           {} entries, {} files, {}",
            s.trash.entries,
            s.trash.files,
            human(s.trash.bytes)
        ),
        format!("orphans         {} (dry sweep){cap}", s.orphans),
        archive_lines(s),
        String::new(),
        forecast_chart(&s.forecast),
        String::new(),
        trash_chart(&s.trash_by_age, &s.trash_other),
    ]
    .join("\n")
}

/// The archive's line (and the monthly cost of trash and archive at list prices), if any.
fn archive_lines(s: &Status) -> String {
    let Some(a) = &s.archive else {
        return "archive         none (ARCHIVE_BUCKET not set)".into();
    };
    let classes: Vec<String> = a
        .by_class
        .iter()
        .map(|(class, (n, bytes))| format!("{class} {n} ({})", human(*bytes)))
        .collect();
    format!(
        "archive         {} archives, {}: {}\n  per month     trash on EFS ${:.2}, archive ${:.2} (list prices)",
        a.archives,
        human(a.bytes),
        classes.join(", "),
        a.trash_monthly_usd,
        a.monthly_usd
    )
}

/// The failed batches about to be replayed.
pub fn replay_batches(batches: &[Replayed]) -> String {
    let mut out = String::from("failed batches\n");
    for b in batches {
        let _ = writeln!(
            out,
            "  {}  {} records{}{}{}",
            b.source,
            b.records,
            b.condition
                .as_ref()
                .map(|c| format!(", {c}"))
                .unwrap_or_default(),
            b.timestamp
                .as_ref()
                .map(|t| format!(", failed at {t}"))
                .unwrap_or_default(),
            match (&b.first_sequence, &b.last_sequence) {
                (Some(first), Some(last)) => format!(", sequence {first}..{last}"),
                _ => String::new(),
            }
        );
    }
    out.trim_end().to_string()
}

pub fn replayed(s: &ReplaySummary) -> String {
    let mode = if s.dry_run { " (dry run)" } else { "" };
    let mut out = format!("replayed{mode}\n");
    for b in &s.batches {
        let _ = writeln!(
            out,
            "  {}  {} records, {} failed again{}",
            b.source,
            b.records,
            b.failed_again.len(),
            if b.failed_again.is_empty() {
                String::new()
            } else {
                format!(": {}", b.failed_again.join(", "))
            }
        );
    }
    out.trim_end().to_string()
}

pub fn failed_batch_objects(bucket: &str, objects: &[Listed]) -> String {
    if objects.is_empty() {
        return format!("no failed batches in s3://{bucket}");
    }
    let mut out = format!("failed batches in s3://{bucket} (replay with --key KEY or --all)\n");
    for o in objects {
        let _ = writeln!(
            out,
            "  {}  {}  {}",
            o.last_modified.map(date).unwrap_or_default(),
            human(o.size.max(0) as u64),
            o.key
        );
    }
    out.trim_end().to_string()
}

/// Width of the longest bar in a chart, in cells.
const BAR_WIDTH: usize = 40;

/// A bar `value / max` of [`BAR_WIDTH`], in eighths of a cell so small values still show.
fn bar(value: u64, max: u64) -> String {
    if value == 0 || max == 0 {
        return String::new();
    }
    let eighths = ((value as u128 * BAR_WIDTH as u128 * 8).div_ceil(max as u128)) as usize;
    // One eighth to seven eighths of a cell.
    const PARTIAL: [char; 7] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    let mut text = "█".repeat(eighths / 8);
    if let Some(&partial) = (eighths % 8).checked_sub(1).and_then(|i| PARTIAL.get(i)) {
        text.push(partial);
    }
    text
}

fn forecast_chart(f: &lifecycle_domain::forecast::Forecast) -> String {
    let max = f
        .days
        .iter()
        .chain(std::iter::once(&f.overdue))
        .map(|d| d.workspaces as u64)
        .max()
        .unwrap_or(0);
    let mut out = format!(
        "expiring per day, next {} days (held, never expiring: {})\n",
        f.days.len(),
        f.held
    );
    for d in std::iter::once(&f.overdue).chain(&f.days) {
        let _ = writeln!(
            out,
            "  {:<10} {:>6} {:>10}  {}",
            d.day,
            d.workspaces,
            human(d.bytes),
            bar(d.workspaces as u64, max)
        );
    }
    out.trim_end().to_string()
}

fn trash_chart(
    bands: &[lifecycle_domain::forecast::AgeBand],
    other: &lifecycle_domain::forecast::AgeBand,
) -> String {
    let max = bands.iter().map(|b| b.bytes).max().unwrap_or(0);
    let mut out = String::from("trash by age (bytes)\n");
    for b in bands {
        let due = if b.purge_due { "purge due" } else { "" };
        let _ = writeln!(
            out,
            "  {:<10} {:>6} {:>10}  {:<9}  {}",
            b.label,
            b.entries,
            human(b.bytes),
            due,
            bar(b.bytes, max)
        );
    }
    if other.entries > 0 {
        let _ = writeln!(
            out,
            "  {} entries, {}: {}",
            other.entries,
            human(other.bytes),
            other.label
        );
    }
    out.trim_end().to_string()
}

#[cfg(test)]
mod tests;

/// `archive ls`: one line per archive.
pub fn archived(rows: &[crate::commands::archive::Archived]) -> String {
    let mut out = format!(
        "{:<16} {:<24} {:>10} {:<20} {:<20} {:<20} CLASS\n",
        "TENANT", "WORKSPACE", "SIZE", "DELETED", "ARCHIVED", "EXPIRES"
    );
    let when = |t: Option<i64>| t.map_or("-".to_string(), date);
    for r in rows {
        let _ = writeln!(
            out,
            "{:<16} {:<24} {:>10} {:<20} {:<20} {:<20} {}",
            r.tenant_id,
            r.workspace_id,
            human(r.size),
            date(r.deleted_at),
            when(r.archived_at),
            when(r.expires_at),
            r.storage_class
        );
    }
    let bytes: u64 = rows.iter().map(|r| r.size).sum();
    let _ = write!(out, "total: {} archives, {}", rows.len(), human(bytes));
    out
}

/// The fan-out's runs: one line each, then what each did (its counts, zeros left out).
pub fn runs(runs: &[lifecycle_domain::fanout::ListedRun], now: i64) -> String {
    if runs.is_empty() {
        return "no runs in the runs table".into();
    }
    let mut out = String::new();
    for r in runs {
        let state = match r.reported_at {
            Some(at) => format!("done, reported {}", date(at)),
            None if now > r.valid_until => {
                format!("ended unfinished ({} units never done)", r.units_left)
            }
            None => format!("running, {} of {} units left", r.units_left, r.units_total),
        };
        out.push_str(&format!(
            "{}  {}  started {}  {} units  {}\n",
            r.run_id,
            r.function,
            date(r.started_at),
            r.units_total,
            state
        ));
        let counts: Vec<String> = r
            .counters
            .iter()
            .filter(|(_, v)| **v != 0)
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        if !counts.is_empty() {
            out.push_str(&format!("    {}\n", counts.join(", ")));
        }
    }
    out.trim_end().to_string()
}
