//! `gitsync promote` and `gitsync abort`: a request kept in the cluster beside the
//! app's rollout state, carried out by the next pass (the agent's, or `gitsync sync`).

use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::cluster::Cluster;
use gitsync_agent::rollouts::Rollouts;
use gitsync_core::rollout::Command;

use crate::args::CommandArgs;
use crate::output;

pub async fn request(args: &CommandArgs, command: Command) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")?;
    let rollouts = Rollouts::new(cluster.client().clone(), &args.history.namespace);
    let request = rollouts.request(&args.app, command).await?;
    output::line(&format!(
        "{}: {} requested at {}; the agent carries it out within seconds (or run `gitsync sync` on the app)",
        args.app, request.command, request.at
    ));
    Ok(ExitCode::SUCCESS)
}
