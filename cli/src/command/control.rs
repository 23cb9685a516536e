//! The operator's controls of an app: `promote`, `abort`, `suspend`, `resume` and
//! `rollback`, each through the agent's API (`--agent URL`) or straight on the cluster
//! (the state they change is kept there, and the agent reads it on its next pass).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use gitsync_agent::client::Agent;
use gitsync_agent::cluster::{Cluster, ExecuteOptions};
use gitsync_agent::control::{AppSource, Control, Suspension};
use gitsync_agent::history::History;
use gitsync_agent::reconcile::{self, App, Record};
use gitsync_agent::rollouts::Rollouts;
use gitsync_core::rollout::Command;
use serde_json::{Value, json};

use crate::args::{CommandArgs, RollbackArgs, SuspendArgs};
use crate::output;

/// The agent client, when `--agent` was given.
fn agent(args: &CommandArgs) -> Option<Agent> {
    args.agent.client()
}

async fn connect(args: &CommandArgs) -> anyhow::Result<Cluster> {
    Cluster::connect(&args.cluster.target())
        .await
        .context("cannot connect to the cluster")
}

/// POSTs `action` for the app to the agent and prints its answer.
async fn through_agent(
    agent: &Agent,
    app: &str,
    action: &str,
    body: &Value,
) -> anyhow::Result<ExitCode> {
    let answer = agent
        .post(&format!("/api/v1/apps/{app}/{action}"), body)
        .await?;
    output::line(&format!("{app}: {action}: {answer}"));
    Ok(ExitCode::SUCCESS)
}

/// `gitsync promote` / `gitsync abort`.
pub async fn rollout(args: &CommandArgs, command: Command) -> anyhow::Result<ExitCode> {
    let word = match command {
        Command::Promote => "promote",
        Command::Abort => "abort",
    };
    if let Some(agent) = agent(args) {
        return through_agent(&agent, &args.app, word, &json!({})).await;
    }
    let cluster = connect(args).await?;
    let rollouts = Rollouts::new(cluster.client().clone(), &args.history.namespace);
    let request = rollouts.request(&args.app, command).await?;
    output::line(&format!(
        "{}: {} requested at {}; the agent carries it out within seconds (or run `gitsync sync` on the app)",
        args.app, request.command, request.at
    ));
    Ok(ExitCode::SUCCESS)
}

/// `gitsync suspend`.
pub async fn suspend(args: &SuspendArgs) -> anyhow::Result<ExitCode> {
    let c = &args.command;
    if let Some(agent) = agent(c) {
        return through_agent(&agent, &c.app, "suspend", &json!({"reason": args.reason})).await;
    }
    let cluster = connect(c).await?;
    let suspension = Suspension::new(args.reason.clone(), None);
    Control::new(cluster.client().clone(), &c.history.namespace)
        .set_suspension(&c.app, Some(&suspension))
        .await?;
    output::line(&format!(
        "{}: automatic sync suspended until `gitsync resume {}`",
        c.app, c.app
    ));
    Ok(ExitCode::SUCCESS)
}

/// `gitsync resume`.
pub async fn resume(args: &CommandArgs) -> anyhow::Result<ExitCode> {
    if let Some(agent) = agent(args) {
        return through_agent(&agent, &args.app, "resume", &json!({})).await;
    }
    let cluster = connect(args).await?;
    Control::new(cluster.client().clone(), &args.history.namespace)
        .set_suspension(&args.app, None)
        .await?;
    output::line(&format!(
        "{}: automatic sync resumed; the agent syncs it on its next pass",
        args.app
    ));
    Ok(ExitCode::SUCCESS)
}

/// `gitsync rollback`.
pub async fn rollback(args: &RollbackArgs) -> anyhow::Result<ExitCode> {
    let c = &args.command;
    if let Some(agent) = agent(c) {
        let body = json!({"to": args.to, "direct": args.direct});
        return through_agent(&agent, &c.app, "rollback", &body).await;
    }
    let cluster = connect(c).await?;
    let control = Control::new(cluster.client().clone(), &c.history.namespace);
    let source = source(args, &control).await?;
    if args.direct {
        direct(args, &cluster, &control, &source).await
    } else {
        revert(args, &source).await
    }
}

/// Where the app comes from: the flags over what its agent published.
async fn source(args: &RollbackArgs, control: &Control) -> anyhow::Result<AppSource> {
    let published = control.source(&args.command.app).await?;
    let mut source = match (published, &args.repo) {
        (Some(s), _) => s,
        (None, Some(repo)) => AppSource {
            repo: repo.clone(),
            reference: "main".into(),
            path: ".".into(),
            namespace: None,
            vars: std::collections::BTreeMap::new(),
            policies: Vec::new(),
        },
        (None, None) => bail!(
            "no agent has published where {} comes from; give --repo (and --ref, --path)",
            args.command.app
        ),
    };
    if let Some(repo) = &args.repo {
        source.repo.clone_from(repo);
    }
    if let Some(reference) = &args.reference {
        source.reference.clone_from(reference);
    }
    if let Some(path) = &args.path {
        source.path = path.display().to_string();
    }
    Ok(source)
}

/// Applies REV's render now, recorded as a rollback, and suspends automatic sync.
async fn direct(
    args: &RollbackArgs,
    cluster: &Cluster,
    control: &Control,
    source: &AppSource,
) -> anyhow::Result<ExitCode> {
    let app = &args.command.app;
    let super::published::Fetched { revision, tree } =
        super::published::fetch(source, Some(&args.to)).await?;
    let suspension = Suspension::rollback(&revision.commit);
    control.set_suspension(app, Some(&suspension)).await?;
    let history = History::new(cluster.client().clone(), &args.command.history.namespace);
    let rollouts = Rollouts::new(cluster.client().clone(), &args.command.history.namespace);
    let target = App {
        name: app.clone(),
        vars: source.vars.clone(),
        namespace: source.namespace.clone(),
        options: gitsync_core::plan::Options::default(),
        execute: ExecuteOptions::default(),
        cache: None,
    };
    let record = Record {
        history: Some(&history),
        rollouts: Some(&rollouts),
        trigger: "rollback",
        rollback_to: Some(&revision.commit),
    };
    let synced = reconcile::sync(cluster, &target, &tree, Some(&revision), record, &|_| {})
        .await
        .map_err(anyhow::Error::new)?;
    let o = &synced.outcome;
    output::line(&format!(
        "{app}: rolled back to {} ({} created, {} updated, {} pruned); automatic sync suspended until `gitsync resume {app}`",
        revision.commit, o.created, o.updated, o.pruned
    ));
    Ok(if o.is_success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Commits a revert of the app's path to REV on the tracked branch and pushes it (with
/// no credentials of its own: a public or local repository, or a push the server
/// allows); when it cannot fetch or push, says so with the exact commands to do it by
/// hand with the person's git.
async fn revert(args: &RollbackArgs, source: &AppSource) -> anyhow::Result<ExitCode> {
    let rollback = gitsync_agent::git::Rollback {
        url: source.repo.clone(),
        branch: source.reference.clone(),
        path: PathBuf::from(&source.path),
        to: args.to.clone(),
        access: gitsync_agent::git::Access::default(),
        author: author(),
    };
    let scratch = super::published::scratch()?;
    let dir = scratch.path().to_path_buf();
    let commands = gitsync_agent::git::commands_by_hand(&rollback);
    let result =
        tokio::task::spawn_blocking(move || gitsync_agent::git::revert_to(&rollback, &dir)).await?;
    let app = &args.command.app;
    match result {
        Ok(commit) => {
            output::line(&format!(
                "{app}: pushed {commit} to {} of {}: it restores {} to {}; the agent syncs it like any change",
                source.reference, source.repo, source.path, args.to
            ));
            Ok(ExitCode::SUCCESS)
        }
        Err(e @ gitsync_agent::git::Error::Push { .. }) => {
            output::line(&format!("{app}: {e}"));
            Ok(ExitCode::from(1))
        }
        // gitsync's Git client has no credentials here (or the server is out of reach
        // from this machine): the person's own git may still get through.
        Err(e) if e.is_unfetchable() => {
            output::line(&format!(
                "{app}: cannot fetch {} from here: {:#}\nto roll back with your own git, run:\n{commands}",
                source.repo,
                anyhow::Error::new(e)
            ));
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("cannot roll {app} back to {}", args.to)))
        }
    }
}

/// The commit author: git's `user.name` and `user.email`, else gitsync.
fn author() -> gitsync_agent::git::Author {
    let config = git2::Config::open_default().ok();
    let get = |key: &str| config.as_ref().and_then(|c| c.get_string(key).ok());
    gitsync_agent::git::Author {
        name: get("user.name").unwrap_or_else(|| "gitsync".into()),
        email: get("user.email").unwrap_or_else(|| "gitsync@localhost".into()),
    }
}
