//! `lifecycle`: the same planners and adapters as the functions, from a terminal. What `plan`
//! shows is exactly what the function (and `apply`) would do.

mod cli;
mod commands;
mod confirm;
mod context;
mod render;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match cli::parse() {
        Ok(cli) => cli,
        Err(usage) => return usage,
    };
    match commands::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifecycle: error: {}", render::error(&e));
            ExitCode::FAILURE
        }
    }
}
