//! `lifecycle apply`: plan (with the code `plan` uses), show the plan, ask, then hand that same
//! plan value to the execute step. Nothing is planned again between the question and the
//! execution, so the operator confirms exactly what is executed (the functions' own re-check
//! right before each delete still applies).

use std::time::Duration;

use anyhow::{bail, Result};
use lifecycle_domain::prune::PrunePlan;
use lifecycle_domain::sweep::SweepPlan;
use serde::Serialize;

use crate::cli::Job;
use crate::commands::plan;
use crate::confirm::{Confirm, Terminal, Yes};
use crate::context::{Access, Context};
use crate::render::{self, Output};

/// A job `apply` can do: a plan, its rendering, and the execution of that plan.
pub(crate) trait Apply {
    type Plan: Serialize;
    type Summary: Serialize;
    /// What the spinner says while executing.
    const DOING: &'static str;
    /// The refusal when the answer is no.
    const NOT_CONFIRMED: &'static str = "not confirmed; nothing was done";

    async fn plan(&self, now: i64) -> Result<Self::Plan>;
    fn render(plan: &Self::Plan) -> String;
    /// How many things the plan would change (none: nothing to ask).
    fn changes(plan: &Self::Plan) -> usize;
    /// What is asked, as in "… these 3 actions?".
    fn question(changes: usize) -> String;
    /// Carries out `plan`, the value that was shown and confirmed.
    async fn execute(&self, plan: Self::Plan, now: i64) -> Result<Self::Summary>;
    fn render_summary(summary: &Self::Summary) -> String;
}

pub async fn run(ctx: &Context, job: Job, yes: bool, output: Output) -> Result<()> {
    let mut confirm: Box<dyn Confirm> = if yes {
        Box::new(Yes)
    } else {
        Box::new(Terminal)
    };
    match job {
        Job::Sweep => {
            let sweep = Sweep(ctx.sweeper(Access::Delete)?);
            apply(&sweep, confirm.as_mut(), output, ctx.now).await
        }
        Job::Prune { repo } => {
            let prune = Prune(ctx.pruner(repo.as_deref(), Access::Delete)?);
            apply(&prune, confirm.as_mut(), output, ctx.now).await
        }
    }
}

/// Plan, show, ask, execute that plan, report.
pub(crate) async fn apply<J: Apply>(
    job: &J,
    confirm: &mut dyn Confirm,
    output: Output,
    now: i64,
) -> Result<()> {
    let plan = job.plan(now).await?;
    output.note(&J::render(&plan));
    let changes = J::changes(&plan);
    if changes == 0 {
        return Ok(());
    }
    if !confirm.confirm(&J::question(changes))? {
        bail!(J::NOT_CONFIRMED);
    }
    let bar = spinner(J::DOING);
    let summary = job.execute(plan, now).await;
    bar.finish_and_clear();
    output.show(&summary?, J::render_summary)
}

fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

struct Sweep(efs_sweeper::Sweeper);

impl Apply for Sweep {
    type Plan = SweepPlan;
    type Summary = efs_sweeper::SweepSummary;
    const DOING: &'static str = "sweeping";

    async fn plan(&self, now: i64) -> Result<SweepPlan> {
        plan::sweep(&self.0, now).await
    }
    fn render(plan: &SweepPlan) -> String {
        render::sweep_plan(plan)
    }
    fn changes(plan: &SweepPlan) -> usize {
        plan.actions.len()
    }
    fn question(changes: usize) -> String {
        format!("apply these {changes} actions")
    }
    async fn execute(&self, plan: SweepPlan, now: i64) -> Result<Self::Summary> {
        Ok(self.0.execute(plan, now, None).await)
    }
    fn render_summary(summary: &Self::Summary) -> String {
        render::sweep_done(summary)
    }
}

struct Prune(ecr_pruner::Pruner);

impl Apply for Prune {
    type Plan = PrunePlan;
    type Summary = ecr_pruner::PruneSummary;
    const DOING: &'static str = "pruning";
    const NOT_CONFIRMED: &'static str = "not confirmed; nothing was deleted";

    async fn plan(&self, now: i64) -> Result<PrunePlan> {
        plan::prune(&self.0, now).await
    }
    fn render(plan: &PrunePlan) -> String {
        render::prune_plans(&plan.repositories)
    }
    fn changes(plan: &PrunePlan) -> usize {
        plan.deletes()
    }
    fn question(changes: usize) -> String {
        format!("delete these {changes} images")
    }
    async fn execute(&self, plan: PrunePlan, now: i64) -> Result<Self::Summary> {
        Ok(self.0.execute(plan, now).await?)
    }
    fn render_summary(summary: &Self::Summary) -> String {
        render::prune_done(summary)
    }
}

#[cfg(test)]
mod tests;
