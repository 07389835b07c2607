//! `lifecycle apply`: plan (with the code `plan` uses), show the plan, ask, then hand that same
//! plan value to the execute step. Nothing is planned again between the question and the
//! execution, so the operator confirms exactly what is executed (the functions' own re-check
//! right before each delete still applies).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{bail, Result};
use lifecycle_domain::prune::PrunePlan;
use lifecycle_domain::sweep::SweepPlan;
use lifecycle_runtime::progress::Progress;
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
    /// What the progress bar says while executing.
    const DOING: &'static str;
    /// The refusal when the answer is no.
    const NOT_CONFIRMED: &'static str = "not confirmed; nothing was done";

    async fn plan(&self, now: i64) -> Result<Self::Plan>;
    fn render(plan: &Self::Plan) -> String;
    /// How many things the plan would change (none: nothing to ask).
    fn changes(plan: &Self::Plan) -> usize;
    /// What is asked, as in "… these 3 actions?".
    fn question(changes: usize) -> String;
    /// Carries out `plan`, the value that was shown and confirmed, telling `progress` as it goes
    /// (one step per change [`Apply::changes`] counted).
    async fn execute(
        &self,
        plan: Self::Plan,
        now: i64,
        progress: &dyn Progress,
    ) -> Result<Self::Summary>;
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
    let bar = Bar::new(J::DOING, changes as u64);
    let summary = job.execute(plan, now, &bar).await;
    bar.0.finish_and_clear();
    output.show(&summary?, J::render_summary)
}

/// A progress bar on stderr (hidden when stderr is not a terminal): steps done of the plan's,
/// rate, time left, and the bytes freed so far.
struct Bar(indicatif::ProgressBar, AtomicU64, &'static str);

impl Bar {
    fn new(doing: &'static str, steps: u64) -> Self {
        let bar = indicatif::ProgressBar::new(steps);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(doing);
        bar.enable_steady_tick(Duration::from_millis(200));
        Bar(bar, AtomicU64::new(0), doing)
    }
}

impl Progress for Bar {
    fn advance(&self, steps: u64, bytes_freed: u64) {
        let freed = self.1.fetch_add(bytes_freed, Ordering::Relaxed) + bytes_freed;
        self.0
            .set_message(format!("{}, {} freed", self.2, render::human(freed)));
        self.0.inc(steps);
    }
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
    async fn execute(
        &self,
        plan: SweepPlan,
        now: i64,
        progress: &dyn Progress,
    ) -> Result<Self::Summary> {
        Ok(self
            .0
            .execute_with_progress(plan, now, None, progress)
            .await)
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
    const NOT_CONFIRMED: &'static str = "not confirmed; nothing was deleted, archived or restored";

    async fn plan(&self, now: i64) -> Result<PrunePlan> {
        plan::prune(&self.0, now).await
    }
    fn render(plan: &PrunePlan) -> String {
        render::prune_plans(&plan.repositories)
    }
    /// Restores, archives and deletes: each changes an image.
    fn changes(plan: &PrunePlan) -> usize {
        plan.restores() + plan.archives() + plan.deletes()
    }
    fn question(changes: usize) -> String {
        format!("change these {changes} images (restore, archive, delete as shown)")
    }
    async fn execute(
        &self,
        plan: PrunePlan,
        now: i64,
        progress: &dyn Progress,
    ) -> Result<Self::Summary> {
        Ok(self
            .0
            .execute_with_progress(plan, now, None, progress)
            .await?)
    }
    fn render_summary(summary: &Self::Summary) -> String {
        render::prune_done(summary)
    }
}

#[cfg(test)]
mod tests;
