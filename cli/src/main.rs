//! `gitsync`: render, diff, sync and inspect GitOps apps, and run the local cluster.

mod args;
mod command;
mod output;

use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: gitsync_agent::Allocator = gitsync_agent::Allocator;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    gitsync_agent::telemetry::init(cli.log_json, "warn");
    match command::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            output::error(&error);
            ExitCode::from(2)
        }
    }
}
