//! One function per command. Each returns the process exit code; errors become exit 2.

mod control;
mod history;
mod local_cluster;
mod plan;
mod published;
mod render;
mod status;

use std::process::ExitCode;

use gitsync_core::rollout::Command as Rollout;

use crate::args::{Cli, Command, LocalClusterCommand};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Render(args) => render::run(&args),
        Command::Diff(args) => plan::diff(&args).await,
        Command::Plan(mut args) => {
            args.strategy = true;
            plan::diff(&args).await
        }
        Command::Sync(args) => plan::sync(&args).await,
        Command::Status(args) => status::run(&args).await,
        Command::History(args) => history::run(&args).await,
        Command::Promote(args) => control::rollout(&args, Rollout::Promote).await,
        Command::Abort(args) => control::rollout(&args, Rollout::Abort).await,
        Command::Rollback(args) => control::rollback(&args).await,
        Command::Suspend(args) => control::suspend(&args).await,
        Command::Resume(args) => control::resume(&args).await,
        Command::LocalCluster(cmd) => match cmd {
            LocalClusterCommand::Start(a) => local_cluster::start(&a).await,
            LocalClusterCommand::Stop(a) => local_cluster::stop(&a).await,
            LocalClusterCommand::Status(a) => Ok(local_cluster::status(&a)),
            LocalClusterCommand::Kubeconfig(a) => local_cluster::kubeconfig(&a),
            LocalClusterCommand::Reset(a) => local_cluster::reset(&a),
            LocalClusterCommand::Serve(a) => local_cluster::serve(&a).await,
        },
    }
}
