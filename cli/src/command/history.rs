//! `gitsync history APP`: the app's recorded syncs, newest first, read from the
//! cluster (the agent and `gitsync sync` both record there), or through the agent's
//! API with `--agent URL`.

use std::process::ExitCode;

use anyhow::Context as _;
use gitsync_agent::cluster::Cluster;
use gitsync_agent::history::{Entry, History};

use crate::args::{Format, HistoryArgs};
use crate::output;

pub async fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let entries: Vec<Entry> = if let Some(agent) = args.agent.client() {
        let answer = agent
            .get(&format!("/api/v1/apps/{}/history", args.app))
            .await?;
        serde_json::from_value(answer).context("the agent's history is not a list of syncs")?
    } else {
        let cluster = Cluster::connect(&args.cluster.target())
            .await
            .context("cannot connect to the cluster")?;
        let history = History::new(cluster.client().clone(), &args.history.namespace);
        history.list(&args.app).await?
    };
    match args.output {
        Format::Json => output::json(&entries),
        Format::Text if entries.is_empty() => output::line(&format!(
            "no syncs recorded for {} (namespace {})",
            args.app, args.history.namespace
        )),
        Format::Text => output::text(&table(&entries)),
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per sync, then its reason indented when it has one.
fn table(entries: &[Entry]) -> String {
    let mut out = format!(
        "{:<20}  {:<8}  {:<13}  {:<7}  {:>4} {:>4} {:>4} {:>4} {:>5}  {}\n",
        "STARTED", "REVISION", "RESULT", "BY", "NEW", "UPD", "REPL", "PRN", "SAME", "MESSAGE"
    );
    for e in entries {
        let revision = e.revision.as_deref().map_or("-", |r| &r[..r.len().min(8)]);
        out.push_str(&format!(
            "{:<20}  {:<8}  {:<13}  {:<7}  {:>4} {:>4} {:>4} {:>4} {:>5}  {}\n",
            e.started,
            revision,
            format!("{:?}", e.result),
            e.trigger,
            e.created,
            e.updated,
            e.replaced,
            e.pruned,
            e.unchanged,
            e.message.as_deref().unwrap_or_default()
        ));
        if let Some(reason) = &e.reason {
            out.push_str(&format!("    {reason}\n"));
        }
    }
    out
}
