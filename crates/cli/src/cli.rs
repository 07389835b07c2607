//! The command line: global flags, commands and their arguments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lifecycle_domain::audit::Severity;
use lifecycle_domain::{SubscriptionStatus, Tier};

#[derive(Parser)]
#[command(
    name = "lifecycle",
    version,
    about = "See and steer the workspace storage lifecycle"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes; each defaults to the variable the functions read.
#[derive(clap::Args)]
pub struct Global {
    /// AWS endpoint (for example the local moto server).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    pub endpoint_url: Option<String>,
    #[arg(long, env = "AWS_REGION", global = true)]
    pub region: Option<String>,
    #[arg(long, env = "AWS_PROFILE", global = true)]
    pub profile: Option<String>,
    /// The workspace table (WORKSPACE_TABLE).
    #[arg(long, env = "WORKSPACE_TABLE", global = true)]
    pub table: Option<String>,
    /// Where the workspaces' file system is mounted (EFS_ROOT).
    #[arg(long, env = "EFS_ROOT", global = true)]
    pub efs_root: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Show what a function would do now, changing nothing.
    Plan {
        #[command(subcommand)]
        what: Job,
    },
    /// Do what `plan` shows, under the same caps.
    Apply {
        #[command(subcommand)]
        what: Job,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y', global = true)]
        yes: bool,
    },
    /// Put a trashed workspace back: data, record (fresh expiry) and access point. From the
    /// trash within its grace, else from the archive bucket (ARCHIVE_BUCKET).
    Restore {
        workspace_id: String,
        /// The tier, where the trash kept no record (an orphan) or one that cannot be read.
        #[arg(long, value_parser = parse_tier)]
        tier: Option<Tier>,
        /// The subscription status, in the same cases.
        #[arg(long, value_parser = parse_status)]
        status: Option<SubscriptionStatus>,
        /// The user, in the same cases.
        #[arg(long)]
        user: Option<String>,
        /// The retention override in days, or `none` for the tier's, where the kept one cannot
        /// be read (out of range, not a number).
        #[arg(long, value_parser = parse_retention_days)]
        retention_days: Option<RetentionDays>,
        /// Which trash entry (its name under `.trash`, or of its archive), when several could
        /// be meant.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Workspaces by tier and status, what expires soon, holds, trash, orphans; the expiry
    /// forecast for 30 days and the trash by age.
    Status,
    /// Hand ttl-expiry's failed batches (its S3 on-failure destination) to it again. With only
    /// a bucket: list them.
    Replay {
        /// The failed-batch bucket (the stack's output TtlExpiryFailedBatchBucketName).
        #[arg(long, env = "FAILED_BATCH_BUCKET")]
        bucket: Option<String>,
        /// Only objects under this prefix (with --all, or when listing).
        #[arg(long, default_value = "")]
        prefix: String,
        /// One object to replay (repeatable).
        #[arg(long = "key")]
        keys: Vec<String>,
        /// Every object under the prefix.
        #[arg(long, conflicts_with = "keys")]
        all: bool,
        /// A failed batch saved to a file (repeatable): the object as Lambda wrote it, or a
        /// stream event.
        #[arg(long = "file")]
        files: Vec<PathBuf>,
        /// Decide and audit every record, change nothing (DRY_RUN=true for this run).
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// ECR images.
    Image {
        #[command(subcommand)]
        what: ImageCommand,
    },
    /// The archive bucket (ARCHIVE_BUCKET).
    Archive {
        #[command(subcommand)]
        what: ArchiveCommand,
    },
    /// What a heartbeat does: push the workspace's expiry forward.
    Touch { workspace_id: String },
    /// The fan-out's runs (efs-sweeper, ecr-pruner) in the runs table: units done and left,
    /// what they did, whether the run has reported. Reads only.
    Runs {
        /// The runs table (RUNS_TABLE).
        #[arg(long, env = "RUNS_TABLE")]
        runs_table: String,
        /// Only this function's runs (efs-sweeper, ecr-pruner).
        #[arg(long)]
        function: Option<String>,
    },
    /// The storage posture: table, file system, registry, logs and buckets, each finding with
    /// its fix. Reads only.
    Audit {
        /// Exit non-zero when a finding at or above this severity exists
        /// (critical, high, medium, low, info).
        #[arg(long, value_parser = parse_severity, default_value = "high")]
        fail_on: Severity,
    },
}

#[derive(Subcommand, Clone)]
pub enum ArchiveCommand {
    /// Archived workspaces: size, when deleted and archived, storage class and expiry.
    Ls {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Subcommand, Clone)]
pub enum ImageCommand {
    /// Bring an archived image back to standard storage (ECR answers ACTIVATING until it can be
    /// pulled again), with the archived children of an index whose manifest can be read. Only
    /// restores: nothing is deleted or archived.
    Restore {
        /// `repository@sha256:<hex>` or `repository:tag` (a registry host before the
        /// repository is ignored).
        reference: String,
    },
}

#[derive(Subcommand, Clone)]
pub enum Job {
    /// The efs-sweeper's plan.
    Sweep,
    /// The ecr-pruner's plan.
    Prune {
        /// Only this repository (name or glob).
        #[arg(long)]
        repo: Option<String>,
    },
}

/// The command line, or the exit code to leave with: help and version print and exit 0; a usage
/// error is one line on stderr and exit code 2.
pub fn parse() -> Result<Cli, ExitCode> {
    match Cli::try_parse() {
        Ok(cli) => Ok(cli),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            eprintln!("lifecycle: error: {first} (see lifecycle --help)");
            Err(ExitCode::from(2))
        }
    }
}

/// `--retention-days`: a number of days in the record's range, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionDays(pub Option<u32>);

fn parse_retention_days(s: &str) -> Result<RetentionDays, String> {
    if s == "none" {
        return Ok(RetentionDays(None));
    }
    let days: i64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of days or `none`"))?;
    if !lifecycle_domain::record::RETENTION_DAYS_RANGE.contains(&days) {
        return Err(format!(
            "{days} is out of range {:?}",
            lifecycle_domain::record::RETENTION_DAYS_RANGE
        ));
    }
    Ok(RetentionDays(Some(days as u32)))
}

fn parse_tier(text: &str) -> Result<Tier, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("{text:?} is not free, pro or enterprise"))
}

fn parse_status(text: &str) -> Result<SubscriptionStatus, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("{text:?} is not active, suspended or cancelled"))
}

fn parse_severity(text: &str) -> Result<Severity, String> {
    Severity::parse(text)
        .ok_or_else(|| format!("{text:?} is not critical, high, medium, low or info"))
}
