//! `lifecycle touch`: what a heartbeat does for one workspace (its expiry pushed forward), done
//! by the heartbeat function itself.

use anyhow::{bail, Result};
use lifecycle_runtime::{Function, Invocation};

use crate::context::{Access, Context};
use crate::render::{self, Output};

pub async fn run(ctx: &Context, workspace_id: &str, output: Output) -> Result<()> {
    // A touch sends no expiry notice (that is the scheduled run's).
    let heartbeat: heartbeat::Heartbeat =
        ctx.function(Access::Read, &[("NOTICE_EVENT_BUS", "off")])?;
    let event = serde_json::json!({ "workspaceId": workspace_id });
    let summary = Function::handle(&heartbeat, event, Invocation::at(ctx.now)).await?;
    output.show(&summary, |s| render::touched(workspace_id, s))?;
    if !summary.unknown.is_empty() {
        bail!("no workspace {workspace_id} in the table");
    }
    Ok(())
}
