//! `lifecycle`: the same planners and adapters as the functions, from a terminal. What `plan`
//! shows is exactly what the function (and `apply`) would do.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_dynamodb::types::AttributeValue;
use clap::{Parser, Subcommand};
use lifecycle_aws::sdk_config_loader;
use lifecycle_aws::DynamoTable;
use lifecycle_aws::EcrRegistry;
use lifecycle_aws::EcsTasks;
use lifecycle_aws::EfsAccessPoints;
use lifecycle_domain::layout::TrashName;
use lifecycle_domain::prune::Verdict;
use lifecycle_domain::time::now_epoch;
use lifecycle_domain::StoredRecord;
use lifecycle_domain::WorkspaceId;
use lifecycle_fs::WorkspaceFs;
use lifecycle_ports::Tasks;
use lifecycle_ports::WorkspaceTable;
use lifecycle_runtime::config::Config;
use lifecycle_runtime::config::Env;
use lifecycle_runtime::config::NO_CLUSTER;
use lifecycle_runtime::config::SHARED_VARS;
use serde_json::{json, Value};
use tree_deleter::ParallelDeleter;

#[derive(Parser)]
#[command(
    name = "lifecycle",
    version,
    about = "See and steer the workspace storage lifecycle"
)]
struct Cli {
    /// AWS endpoint (for example the local moto server).
    #[arg(long, env = "AWS_ENDPOINT_URL", global = true)]
    endpoint_url: Option<String>,
    #[arg(long, env = "AWS_REGION", global = true)]
    region: Option<String>,
    #[arg(long, env = "AWS_PROFILE", global = true)]
    profile: Option<String>,
    /// The workspace table (WORKSPACE_TABLE).
    #[arg(long, env = "WORKSPACE_TABLE", global = true)]
    table: Option<String>,
    /// Where the workspaces' file system is mounted (EFS_ROOT).
    #[arg(long, env = "EFS_ROOT", global = true)]
    efs_root: Option<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Put a trashed workspace back: data, record (fresh expiry) and access point.
    Restore {
        workspace_id: String,
        /// The tier, where the trash kept no record (an orphan) or one that cannot be read.
        #[arg(long, value_parser = parse_tier)]
        tier: Option<lifecycle_domain::Tier>,
        /// The subscription status, in the same cases.
        #[arg(long, value_parser = parse_status)]
        status: Option<lifecycle_domain::SubscriptionStatus>,
        /// The user, in the same cases.
        #[arg(long)]
        user: Option<String>,
        /// Which trash entry (its name under `.trash`), when several could be meant.
        #[arg(long)]
        entry: Option<String>,
    },
    /// Workspaces by tier and status, what expires soon, holds, trash, orphans.
    Status,
    /// What a heartbeat does: push the workspace's expiry forward.
    Touch { workspace_id: String },
    /// What DynamoDB TTL would do now: delete expired records and hand the deletions to ttl-expiry.
    Expire,
}

#[derive(Subcommand, Clone)]
enum Job {
    /// The efs-sweeper's plan.
    Sweep,
    /// The ecr-pruner's plan.
    Prune {
        /// Only this repository (name or glob).
        #[arg(long)]
        repo: Option<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
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
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One clear line: the chain joined, no backtrace.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("lifecycle: error: {msg}");
            ExitCode::FAILURE
        }
    }
}

struct Ctx {
    sdk: aws_config::SdkConfig,
    vars: HashMap<String, String>,
}

impl Ctx {
    fn env(&self) -> Env<impl Fn(&str) -> Option<String> + '_> {
        Env(move |k: &str| {
            self.vars
                .get(k)
                .cloned()
                .or_else(|| std::env::var_os(k).map(|v| v.to_string_lossy().into_owned()))
        })
    }

    /// The configuration for a command that deletes: `ECS_CLUSTER` is required (or `none`), as
    /// for the functions.
    fn config(&self) -> Result<Config> {
        Ok(Config::from(&self.env())?)
    }

    /// The configuration for a command that deletes nothing: without `ECS_CLUSTER` it runs with
    /// no in-use guard, which only reading and restoring do not need.
    fn read_config(&self) -> Result<Config> {
        let env = self.env();
        if (env.0)("ECS_CLUSTER").is_none() {
            return Ok(Config::from(&Env(|k: &str| {
                if k == "ECS_CLUSTER" {
                    Some(NO_CLUSTER.to_string())
                } else {
                    (env.0)(k)
                }
            }))?);
        }
        Ok(Config::from(&env)?)
    }

    fn table(&self, config: &Config) -> Arc<DynamoTable> {
        Arc::new(DynamoTable::new(
            aws_sdk_dynamodb::Client::new(&self.sdk),
            &config.table,
        ))
    }

    fn tasks(&self, config: &Config) -> Option<Arc<dyn Tasks>> {
        config.ecs_cluster.as_ref().map(|c| {
            Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&self.sdk), c)) as Arc<dyn Tasks>
        })
    }

    fn sweeper(&self, dry_run: bool) -> Result<efs_sweeper::Sweeper> {
        let mut config = if dry_run {
            self.read_config()?
        } else {
            self.config()?
        };
        config.dry_run = dry_run;
        let settings = efs_sweeper::Settings::from(&self.env())?;
        Ok(efs_sweeper::Sweeper {
            table: self.table(&config),
            access_points: Arc::new(EfsAccessPoints::new(aws_sdk_efs::Client::new(&self.sdk))),
            tasks: config.ecs_cluster.as_ref().map(|c| {
                Arc::new(EcsTasks::new(aws_sdk_ecs::Client::new(&self.sdk), c))
                    as Arc<dyn lifecycle_ports::Tasks>
            }),
            fs: WorkspaceFs::new(&config.efs_root),
            deleter: Arc::new(ParallelDeleter::new(settings.delete_concurrency)?),
            config,
            settings,
        })
    }

    fn pruner(&self, repo: Option<&str>, dry_run: bool) -> Result<ecr_pruner::Pruner> {
        let mut settings = ecr_pruner::Settings::from(&self.env())?;
        if let Some(repo) = repo {
            settings.repositories = vec![glob::Pattern::new(repo).context("--repo")?];
        }
        settings.dry_run = dry_run;
        Ok(ecr_pruner::Pruner::new(
            Arc::new(EcrRegistry::new(aws_sdk_ecr::Client::new(&self.sdk))),
            lifecycle_runtime::Aws::new(self.sdk.clone())
                .deployments(settings.ecs_clusters.as_deref()),
            settings,
        ))
    }
}

async fn run(cli: Cli) -> Result<()> {
    let mut loader = sdk_config_loader();
    if let Some(url) = &cli.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    if let Some(region) = &cli.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &cli.profile {
        loader = loader.profile_name(profile);
    }
    // The same start-up check as the functions': a misspelled or blank setting stops here.
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .collect();
    Env::process().check(
        names.iter().map(String::as_str),
        &[
            SHARED_VARS,
            heartbeat::Settings::VARS,
            efs_sweeper::Settings::VARS,
            ecr_pruner::Settings::VARS,
        ]
        .concat(),
    )?;
    let mut vars = HashMap::new();
    if let Some(t) = &cli.table {
        vars.insert("WORKSPACE_TABLE".to_string(), t.clone());
    }
    if let Some(r) = &cli.efs_root {
        vars.insert("EFS_ROOT".to_string(), r.display().to_string());
    }
    let ctx = Ctx {
        sdk: loader.load().await,
        vars,
    };
    let now = now_epoch();
    match cli.command {
        Command::Plan { what: Job::Sweep } => {
            let plan = ctx.sweeper(true)?.plan(now).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_sweep_plan(&plan);
            }
        }
        Command::Plan {
            what: Job::Prune { repo },
        } => {
            let plans = ctx.pruner(repo.as_deref(), true)?.plan(now).await?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&plans)?);
            } else {
                print_prune_plans(&plans.repositories);
            }
        }
        Command::Apply { what, yes } => apply(&ctx, what, yes, cli.json, now).await?,
        Command::Restore {
            workspace_id,
            tier,
            status,
            user,
            entry,
        } => {
            let supplied = lifecycle_fs::restore::Supplied {
                tier,
                subscription_status: status,
                user_id: user,
            };
            restore(
                &ctx,
                &workspace_id,
                entry.as_deref(),
                &supplied,
                cli.json,
                now,
            )
            .await?
        }
        Command::Status => status(&ctx, cli.json, now).await?,
        Command::Touch { workspace_id } => {
            let config = ctx.read_config()?;
            let settings = heartbeat::Settings::from(&Env(|k: &str| {
                if k == "NOTICE_EVENT_BUS" {
                    Some("off".into())
                } else {
                    std::env::var_os(k).map(|v| v.to_string_lossy().into_owned())
                }
            }))?;
            let hb = heartbeat::Heartbeat {
                table: ctx.table(&config),
                tasks: None,
                notices: None,
                config,
                settings,
            };
            let summary = hb
                .handle(json!({ "workspaceId": workspace_id }), now)
                .await?;
            print_json_or(cli.json, &serde_json::to_value(&summary)?, || {
                if let Some(e) = summary.extended.first() {
                    println!("{workspace_id}: expires {}", date(e.expires_at));
                } else if let Some(s) = summary.skipped.first() {
                    println!("{workspace_id}: unchanged ({})", s.reason);
                } else {
                    println!("{workspace_id}: no such workspace");
                }
            });
            if !summary.unknown.is_empty() {
                bail!("no workspace {workspace_id} in the table");
            }
        }
        Command::Expire => expire(&ctx, cli.json, now).await?,
    }
    Ok(())
}

fn print_json_or(json: bool, value: &Value, table: impl FnOnce()) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    } else {
        table();
    }
}

fn date(epoch: i64) -> String {
    lifecycle_domain::time::format_epoch(epoch)
}

fn human(bytes: u64) -> String {
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

fn print_sweep_plan(plan: &lifecycle_domain::sweep::SweepPlan) {
    println!("{:<20} {:<60} REASON", "ACTION", "TARGET");
    for a in &plan.actions {
        let kind = match &a.target {
            lifecycle_domain::sweep::SweepTarget::PurgeTrash { .. } => "purge_trash",
            lifecycle_domain::sweep::SweepTarget::FinishStaged { .. } => "finish_staged",
            lifecycle_domain::sweep::SweepTarget::TrashOrphan { .. } => "move_to_trash",
            lifecycle_domain::sweep::SweepTarget::DeleteAccessPoint { .. } => "delete_access_point",
            lifecycle_domain::sweep::SweepTarget::MarkAccessPoint { .. } => "mark_access_point",
            lifecycle_domain::sweep::SweepTarget::UnmarkAccessPoint { .. } => "unmark_access_point",
        };
        println!(
            "{:<20} {:<60} {}",
            kind,
            lifecycle_domain::sweep::describe(&a.target),
            a.reason.as_str()
        );
    }
    for s in &plan.skipped {
        println!("{:<20} {:<60} {}", "keep", s.what, s.reason.as_str());
    }
    println!(
        "total: {} actions, {} kept",
        plan.actions.len(),
        plan.skipped.len()
    );
    if let Some(cap) = &plan.cap_exceeded {
        println!("cap exceeded: {cap}; the sweep would act on nothing");
    }
}

fn print_prune_plans(plans: &[lifecycle_domain::prune::RepoPlan]) {
    let (mut deleted, mut bytes) = (0, 0);
    for plan in plans {
        println!("{}:", plan.repository);
        println!(
            "  {:<19} {:<24} {:<7} {:<26} {:>10}",
            "DIGEST", "TAGS", "VERDICT", "REASON", "SIZE"
        );
        for d in &plan.decisions {
            let verdict = if d.verdict == Verdict::Delete {
                "delete"
            } else {
                "keep"
            };
            println!(
                "  {:<19} {:<24} {:<7} {:<26} {:>10}",
                &d.digest[..d.digest.len().min(19)],
                d.tags.join(","),
                verdict,
                d.reason.as_str(),
                human(d.size)
            );
        }
        let n = plan.delete_waves.iter().map(Vec::len).sum::<usize>();
        println!(
            "  {n} to delete of {}, {} freed",
            plan.decisions.len(),
            human(plan.bytes_freed)
        );
        deleted += n;
        bytes += plan.bytes_freed;
    }
    println!("total: {deleted} images to delete, {} freed", human(bytes));
}

fn confirm(question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {question} without a terminal to confirm on; pass --yes");
    }
    print!("{question}? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes"))
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

async fn apply(ctx: &Ctx, what: Job, yes: bool, json: bool, now: i64) -> Result<()> {
    match what {
        Job::Sweep => {
            let sweeper = ctx.sweeper(false)?;
            let plan = sweeper.plan(now).await?;
            if !json {
                print_sweep_plan(&plan);
            }
            if plan.actions.is_empty() {
                return Ok(());
            }
            if !yes && !confirm(&format!("apply these {} actions", plan.actions.len()))? {
                bail!("not confirmed; nothing was done");
            }
            let bar = spinner("sweeping");
            let summary = sweeper.execute(plan, now, None).await;
            bar.finish_and_clear();
            print_json_or(json, &serde_json::to_value(&summary)?, || {
                println!(
                    "done: {} actions, {} not done, {} files / {} freed",
                    summary.actions.len(),
                    summary.not_done.len(),
                    summary.files_freed,
                    human(summary.bytes_freed)
                );
            });
        }
        Job::Prune { repo } => {
            // The plan shown is the plan applied (with its fresh re-check right before deleting).
            let pruner = ctx.pruner(repo.as_deref(), false)?;
            let plans = pruner.plan(now).await?;
            if !json {
                print_prune_plans(&plans.repositories);
            }
            let n = plans.deletes();
            if n == 0 {
                return Ok(());
            }
            if !yes && !confirm(&format!("delete these {n} images"))? {
                bail!("not confirmed; nothing was deleted");
            }
            let bar = spinner("pruning");
            let summary = pruner.execute(plans, now).await?;
            bar.finish_and_clear();
            print_json_or(json, &serde_json::to_value(&summary)?, || {
                println!(
                    "done: {} images deleted, {} freed",
                    summary.deleted,
                    human(summary.bytes_freed)
                );
            });
        }
    }
    Ok(())
}

fn parse_tier(text: &str) -> Result<lifecycle_domain::Tier, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("{text:?} is not free, pro or enterprise"))
}

fn parse_status(text: &str) -> Result<lifecycle_domain::SubscriptionStatus, String> {
    serde_json::from_value(serde_json::Value::String(text.into()))
        .map_err(|_| format!("{text:?} is not active, suspended or cancelled"))
}

async fn restore(
    ctx: &Ctx,
    workspace_id: &str,
    chosen: Option<&str>,
    supplied: &lifecycle_fs::restore::Supplied,
    json: bool,
    now: i64,
) -> Result<()> {
    let config = ctx.read_config()?;
    let ws = WorkspaceId::parse(workspace_id)?;
    let fs = WorkspaceFs::new(&config.efs_root);
    let entries = lifecycle_fs::restore::entries_for(&fs, ws.as_str())?;
    let grace = i64::from(config.trash_grace_days) * 86_400;
    let within: Vec<&TrashName> = entries
        .iter()
        .filter(|e| now - e.deleted_at < grace || config.trash_grace_days == 0)
        .collect();
    let entry: &TrashName = match chosen {
        Some(name) => within
            .iter()
            .find(|e| e.to_string() == name)
            .copied()
            .with_context(|| {
                format!("{name} is not a trash entry of {workspace_id} within the grace")
            })?,
        None => {
            let newest = within.first().copied().with_context(|| {
                format!(
                    "no trash entry of {workspace_id} within the {}-day grace",
                    config.trash_grace_days
                )
            })?;
            // Two generations deleted in the same second: which is newer is not known from the
            // names, so the operator chooses.
            let tied: Vec<String> = within
                .iter()
                .filter(|e| e.deleted_at == newest.deleted_at)
                .map(|e| e.to_string())
                .collect();
            if tied.len() > 1 {
                anyhow::bail!(
                    "{} trash entries of {workspace_id} were deleted in the same second; choose one with --entry: {}",
                    tied.len(),
                    tied.join(", ")
                );
            }
            newest
        }
    };
    let table = ctx.table(&config);
    let restored = lifecycle_fs::restore::restore(
        table.as_ref(),
        &fs,
        entry,
        &config.retention,
        supplied,
        now,
    )
    .await?;
    // The access point was deleted with the workspace: make a new one like it, and record it.
    let mut access_point = None;
    if let (Some(_), Some(fs_id)) = (&restored.access_point_id, &config.efs_file_system_id) {
        let efs = aws_sdk_efs::Client::new(&ctx.sdk);
        let created = efs
            .create_access_point()
            .file_system_id(fs_id)
            .root_directory(
                aws_sdk_efs::types::RootDirectory::builder()
                    // Where the layout puts workspaces (ACCESS_POINT_ROOT_PREFIX), so the new
                    // access point is recognised as this workspace's and mounts its data.
                    .path(format!(
                        "{}/{}/{}",
                        config.access_points.root_prefix, restored.tenant_id, restored.workspace_id
                    ))
                    .build(),
            )
            .tags(
                aws_sdk_efs::types::Tag::builder()
                    .key("workspaceId")
                    .value(&restored.workspace_id)
                    .build()?,
            )
            .tags(
                aws_sdk_efs::types::Tag::builder()
                    .key("createdAt")
                    .value(now.to_string())
                    .build()?,
            )
            .send()
            .await
            .context("re-creating the access point (data and record are restored)")?;
        let id = created.access_point_id.unwrap_or_default();
        aws_sdk_dynamodb::Client::new(&ctx.sdk)
            .update_item()
            .table_name(&config.table)
            .key(
                "workspaceId",
                AttributeValue::S(restored.workspace_id.clone()),
            )
            .update_expression("SET accessPointId = :ap")
            .condition_expression("attribute_exists(workspaceId)")
            .expression_attribute_values(":ap", AttributeValue::S(id.clone()))
            .send()
            .await
            .context("recording the new access point")?;
        access_point = Some(id);
    }
    let out = json!({
        "workspaceId": restored.workspace_id, "tenantId": restored.tenant_id,
        "place": restored.place, "expiresAt": restored.expires_at, "accessPointId": access_point,
    });
    print_json_or(json, &out, || {
        println!(
            "restored {} to {}",
            restored.workspace_id,
            restored.place.display()
        );
        println!(
            "  record re-created, expires {}",
            restored.expires_at.map_or("never (hold)".into(), date)
        );
        if let Some(ap) = &access_point {
            println!("  access point re-created: {ap}");
        }
    });
    Ok(())
}

async fn status(ctx: &Ctx, json: bool, now: i64) -> Result<()> {
    let config = ctx.read_config()?;
    let table = ctx.table(&config);
    let items = table.scan(None).await?;
    let mut by_tier: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let (mut held, mut within_day, mut within_week, mut invalid) = (0, 0, 0, 0);
    for item in items.iter().cloned() {
        let Ok(stored) = StoredRecord::parse(item) else {
            invalid += 1;
            continue;
        };
        let r = stored.record;
        *by_tier
            .entry(format!("{:?}", r.tier).to_lowercase())
            .or_default() += 1;
        *by_status
            .entry(format!("{:?}", r.subscription_status).to_lowercase())
            .or_default() += 1;
        if r.hold {
            held += 1;
        } else if let Some(e) = r.expires_at {
            within_day += usize::from(e <= now + 86_400);
            within_week += usize::from(e <= now + 7 * 86_400);
        }
    }
    let fs = WorkspaceFs::new(&config.efs_root);
    let trash = fs.list_trash()?;
    let (mut trash_files, mut trash_bytes) = (0u64, 0u64);
    let mut stack = vec![fs.trash_path()];
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
                trash_files += 1;
                trash_bytes += meta.len();
            }
        }
    }
    let plan = ctx.sweeper(true)?.plan(now).await?;
    let orphans = plan
        .actions
        .iter()
        .filter(|a| {
            !matches!(
                a.target,
                lifecycle_domain::sweep::SweepTarget::PurgeTrash { .. }
                    | lifecycle_domain::sweep::SweepTarget::UnmarkAccessPoint { .. }
            )
        })
        .count()
        + plan
            .skipped
            .iter()
            .filter(|s| s.reason.as_str() == "skipped_cap")
            .count();
    let out = json!({
        "workspaces": items.len(), "invalidRecords": invalid, "byTier": by_tier, "byStatus": by_status,
        "expiringWithin24h": within_day, "expiringWithin7d": within_week, "held": held,
        "trash": {"entries": trash.len(), "files": trash_files, "bytes": trash_bytes},
        "orphans": orphans, "sweepCapExceeded": plan.cap_exceeded,
    });
    print_json_or(json, &out, || {
        println!(
            "workspaces      {} ({} invalid records)",
            items.len(),
            invalid
        );
        println!(
            "  by tier       {}",
            by_tier
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!(
            "  by status     {}",
            by_status
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        println!("  expiring      {within_day} within 24 h, {within_week} within 7 days");
        println!("  held          {held}");
        println!(
            "trash           {} entries, {} files, {}",
            trash.len(),
            trash_files,
            human(trash_bytes)
        );
        println!(
            "orphans         {orphans} (dry sweep){}",
            plan.cap_exceeded
                .as_ref()
                .map(|c| format!("; cap exceeded: {c}"))
                .unwrap_or_default()
        );
    });
    Ok(())
}

async fn expire(ctx: &Ctx, json: bool, now: i64) -> Result<()> {
    let config = ctx.config()?;
    let client = aws_sdk_dynamodb::Client::new(&ctx.sdk);
    let table = ctx.table(&config);
    let mut records = Vec::new();
    for item in table.scan(Some((0, now))).await? {
        let Some(key) = item
            .workspace_id()
            .map(|id| AttributeValue::S(id.to_string()))
        else {
            continue;
        };
        // Delete only if still expired: a heartbeat may have just saved it.
        let out = client
            .delete_item()
            .table_name(&config.table)
            .key("workspaceId", key)
            .condition_expression("expiresAt <= :now")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllOld)
            .send()
            .await;
        let old = match out {
            Ok(out) => out.attributes,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_conditional_check_failed_exception()) =>
            {
                None
            }
            Err(e) => return Err(anyhow::Error::new(e).context("DeleteItem")),
        };
        let Some(old) = old else { continue };
        let old: serde_dynamo::Item = old.into();
        records.push(json!({
            "eventID": format!("lifecycle-expire-{}", records.len()),
            "eventName": "REMOVE", "eventVersion": "1.1", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
            "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"},
            "dynamodb": {"ApproximateCreationDateTime": now, "Keys": {"workspaceId": serde_json::to_value(&old)?["workspaceId"].clone()},
                         "OldImage": serde_json::to_value(&old)?, "SequenceNumber": format!("{:021}", records.len() + 1),
                         "SizeBytes": 0, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        }));
    }
    let expired: Vec<String> = records
        .iter()
        .filter_map(|r| {
            r["dynamodb"]["OldImage"]["workspaceId"]["S"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    let function = ttl_expiry::TtlExpiry {
        table: table.clone(),
        access_points: Arc::new(EfsAccessPoints::new(aws_sdk_efs::Client::new(&ctx.sdk))),
        tasks: ctx.tasks(&config),
        fs: WorkspaceFs::new(&config.efs_root),
        config,
    };
    let response = function
        .handle(json!({ "Records": records }), now, None)
        .await?;
    let failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .filter_map(|f| f.item_identifier.clone())
        .collect();
    let out = json!({"expired": expired, "failedSequenceNumbers": failed});
    print_json_or(json, &out, || {
        println!(
            "expired {} record(s): {}",
            expired.len(),
            expired.join(", ")
        );
        if !failed.is_empty() {
            println!("failed (would be retried): {}", failed.join(", "));
        }
    });
    if !failed.is_empty() {
        bail!("{} record(s) failed; see the log lines above", failed.len());
    }
    Ok(())
}
