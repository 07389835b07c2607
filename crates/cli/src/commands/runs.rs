//! `lifecycle runs`: the fan-out's runs as the ledger has them, newest first.

use anyhow::Result;
use lifecycle_domain::fanout::ListedRun;

use crate::context::Context;
use crate::render::{self, Output};

pub async fn run(
    ctx: &Context,
    runs_table: &str,
    function: Option<&str>,
    output: Output,
) -> Result<()> {
    let mut runs: Vec<ListedRun> = ctx
        .aws()
        .run_ledger(runs_table)
        .runs()
        .await?
        .into_iter()
        .filter(|r| function.is_none_or(|f| r.function == f))
        .collect();
    runs.sort_by(|a, b| {
        b.started_at
            .cmp(&a.started_at)
            .then(a.run_id.cmp(&b.run_id))
    });
    output.show(&runs, |runs| render::runs(runs, ctx.now))
}
