//! `lifecycle plan`: what a function would do now, changing nothing. The plan values come from
//! here for `apply` too, so what `apply` shows and executes is what `plan` shows.

use anyhow::Result;
use lifecycle_domain::prune::PrunePlan;
use lifecycle_domain::sweep::SweepPlan;

use crate::cli::Job;
use crate::context::{Access, Context};
use crate::render::{self, Output};

/// The efs-sweeper's plan: listings of the file system, the table and the access points, and
/// the in-use guard (when configured). Reads only.
pub async fn sweep(sweeper: &efs_sweeper::Sweeper, now: i64) -> Result<SweepPlan> {
    Ok(sweeper.plan(now).await?)
}

/// The ecr-pruner's plan, one per selected repository (each within its caps). Reads only.
pub async fn prune(pruner: &ecr_pruner::Pruner, now: i64) -> Result<PrunePlan> {
    Ok(pruner.plan(now).await?)
}

pub async fn run(ctx: &Context, job: Job, output: Output) -> Result<()> {
    match job {
        Job::Sweep => {
            let plan = sweep(&ctx.sweeper(Access::Plan)?, ctx.now).await?;
            output.show(&plan, render::sweep_plan)
        }
        Job::Prune { repo } => {
            let plans = prune(&ctx.pruner(repo.as_deref(), Access::Plan)?, ctx.now).await?;
            output.show(&plans, |p| render::prune_plans(&p.repositories))
        }
    }
}
