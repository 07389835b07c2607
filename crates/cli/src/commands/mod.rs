//! One module per command; [`run`] dispatches.

pub mod apply;
pub mod archive;
pub mod audit;
pub mod image;
pub mod plan;
pub mod replay;
pub mod restore;
pub mod runs;
pub mod status;
pub mod touch;

use anyhow::Result;
use lifecycle_fs::restore::Supplied;

use crate::cli::{Cli, Command};
use crate::context::Context;
use crate::render::Output;

pub async fn run(cli: Cli) -> Result<()> {
    let ctx = Context::new(&cli.global).await?;
    let output = Output {
        json: cli.global.json,
    };
    match cli.command {
        Command::Plan { what } => plan::run(&ctx, what, output).await,
        Command::Apply { what, yes } => apply::run(&ctx, what, yes, output).await,
        Command::Restore {
            workspace_id,
            tier,
            status,
            user,
            retention_days,
            entry,
        } => {
            let supplied = Supplied {
                tier,
                subscription_status: status,
                user_id: user,
                retention_days: retention_days.map(|r| r.0),
            };
            restore::run(&ctx, &workspace_id, entry.as_deref(), &supplied, output).await
        }
        Command::Status => status::run(&ctx, output).await,
        Command::Replay {
            bucket,
            prefix,
            keys,
            all,
            files,
            dry_run,
            yes,
        } => {
            let sources = replay::Sources {
                bucket,
                prefix,
                keys,
                files,
                all,
            };
            replay::run(&ctx, sources, yes, dry_run, output).await
        }
        Command::Archive {
            what: crate::cli::ArchiveCommand::Ls { tenant },
        } => archive::ls(&ctx, tenant.as_deref(), output).await,
        Command::Image {
            what: crate::cli::ImageCommand::Restore { reference },
        } => image::restore(&ctx, &reference, output).await,
        Command::Touch { workspace_id } => touch::run(&ctx, &workspace_id, output).await,
        Command::Runs {
            runs_table,
            function,
        } => runs::run(&ctx, &runs_table, function.as_deref(), output).await,
        Command::Audit { fail_on } => audit::run(&ctx, fail_on, output).await,
    }
}
