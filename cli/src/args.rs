//! The command line: clap types only, parsed and validated before any I/O.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use gitsync_agent::config::{ClusterArgs, ExecuteFlags, PruneFlags};

/// gitsync: a GitOps sync agent for Kubernetes.
///
/// Render an app directory, preview what a sync would change with `diff`, apply it with
/// `sync`, and inspect what is managed with `status`. `--cluster local` uses an embedded
/// emulated API server, so all of it works without a cluster.
#[derive(Debug, Parser)]
#[command(name = "gitsync", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log as JSON lines (logs go to stderr; RUST_LOG sets the level).
    #[arg(long, global = true, env = "GITSYNC_LOG_JSON")]
    pub log_json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the rendered manifests of an app as YAML (like `kubectl kustomize`).
    Render(RenderArgs),
    /// Show what a sync would change: a unified diff per object, secrets masked.
    ///
    /// Exit code 0: nothing would change; 1: something would; 2: error.
    Diff(PlanArgs),
    /// Show the steps each rollout of a change will go through (recreate, ramped,
    /// blue/green, canary), then its diff: `gitsync diff --strategy`.
    ///
    /// Exit code 0: nothing would change; 1: something would; 2: error.
    Plan(PlanArgs),
    /// Apply an app to the cluster (server-side apply), then prune what it no longer
    /// renders.
    Sync(SyncArgs),
    /// List the objects gitsync manages, with their sync state.
    Status(StatusArgs),
    /// Show the recorded syncs of an app, newest first (kept in the cluster).
    History(HistoryArgs),
    /// Move an app's rollouts past a manual pause (canary `pause: {}`), or switch a
    /// blue/green Service to the new slot now.
    ///
    /// The request is kept in the cluster; the agent carries it out on its next pass
    /// (within seconds), or the next `gitsync sync` of the app does.
    Promote(CommandArgs),
    /// Stop an app's rollouts: remove the canary (stable keeps serving) or switch a
    /// blue/green Service back to the old slot.
    ///
    /// The request is kept in the cluster; the agent carries it out on its next pass
    /// (within seconds), or the next `gitsync sync` of the app does.
    Abort(CommandArgs),
    /// Roll an app back to an earlier revision: by default a revert commit on the
    /// tracked branch that restores the app's path to REV's content, pushed (or the
    /// exact git commands printed when it cannot push), which the agent then syncs
    /// like any change.
    ///
    /// With --direct (emergencies): apply REV's render now and suspend automatic sync
    /// until `gitsync resume APP`; recorded in the history and shown in status.
    Rollback(RollbackArgs),
    /// Stop the agent from syncing an app (drift is still reported) until resumed.
    Suspend(SuspendArgs),
    /// Let the agent sync an app again after `suspend` or `rollback --direct`.
    Resume(CommandArgs),
    /// Run the embedded local cluster as a background process.
    #[command(subcommand)]
    LocalCluster(LocalClusterCommand),
}

/// What to render.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The app directory (with --agent: the app's name).
    pub path: PathBuf,
    /// App name for the `gitsync.dev/app` label (default: the directory's name).
    #[arg(long)]
    pub app: Option<String>,
    /// Set a ${VAR} (repeatable), e.g. --var TAG=1.2; wins over gitsync.yaml.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    pub vars: Vec<(String, String)>,
    /// Render the app as of this commit (a sha, tag, branch or `HEAD~1`), read from
    /// the Git repository that holds the directory, instead of the files on disk:
    /// `gitsync diff --revision REV` previews syncing an older commit. Without it the
    /// files on disk are rendered and labelled with the repository's HEAD commit.
    #[arg(long)]
    pub revision: Option<String>,
}

/// What to plan, and against which cluster.
#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub render: RenderArgs,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Format,
    /// Color: auto (when stdout is a terminal), always, never.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: Color,
    #[command(flatten)]
    pub prune: PruneFlags,
    #[command(flatten)]
    pub history: HistoryNamespace,
    /// Also show, for each workload bound to a strategy policy, the steps its rollout
    /// will go through (what `gitsync plan` shows).
    #[arg(long)]
    pub strategy: bool,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// Sync options.
#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub plan: PlanArgs,
    #[command(flatten)]
    pub execute: ExecuteFlags,
    /// Return after the first pass instead of following rollouts to their end (the
    /// agent, or the next `sync`, moves them on).
    #[arg(long)]
    pub detach: bool,
    /// History entries kept for the app (default: the bound its history already
    /// holds, else 50); kept with the history, so the agent keeps it too until its
    /// own historyLimit says otherwise.
    #[arg(long, env = "GITSYNC_HISTORY_LIMIT", value_name = "N", value_parser = parse_history_limit)]
    pub history_limit: Option<usize>,
}

/// Where sync history and rollout state are kept.
#[derive(Debug, Args)]
pub struct HistoryNamespace {
    /// Namespace of the sync history and rollout state (the agent's namespace).
    #[arg(long = "history-namespace", env = "GITSYNC_NAMESPACE", default_value = gitsync_agent::history::DEFAULT_NAMESPACE)]
    pub namespace: String,
}

/// `promote`, `abort`, `resume` options.
#[derive(Debug, Args)]
pub struct CommandArgs {
    /// The app's name.
    pub app: String,
    #[command(flatten)]
    pub history: HistoryNamespace,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
}

/// Talking to the agent's HTTP API instead of the cluster.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// The agent's URL (e.g. http://gitsync-agent.gitsync-system): go through its API
    /// instead of the cluster, naming the app instead of a directory.
    #[arg(long, env = "GITSYNC_AGENT")]
    pub agent: Option<String>,
    /// Bearer token for the agent's API (the Secret named by api.tokenSecret).
    #[arg(long, env = "GITSYNC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl AgentArgs {
    /// The agent's client, when `--agent` was given.
    pub fn client(&self) -> Option<gitsync_agent::client::Agent> {
        self.agent
            .as_deref()
            .map(|url| gitsync_agent::client::Agent::new(url, self.token.clone()))
    }
}

/// `rollback` options.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// The revision to go back to: a commit sha (or prefix), tag, or `main~2`.
    #[arg(long, value_name = "REV")]
    pub to: String,
    /// Apply REV's render now and suspend automatic sync (emergencies).
    #[arg(long)]
    pub direct: bool,
    /// The app's repository (default: what its agent published in the cluster).
    #[arg(long)]
    pub repo: Option<String>,
    /// The tracked branch (default: the agent's).
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// The app's path in the repository (default: the agent's).
    #[arg(long)]
    pub path: Option<PathBuf>,
}

/// `suspend` options.
#[derive(Debug, Args)]
pub struct SuspendArgs {
    #[command(flatten)]
    pub command: CommandArgs,
    /// Why (shown in status and on the page).
    #[arg(long, default_value = "suspended with gitsync suspend")]
    pub reason: String,
}

/// History options.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The app's name.
    pub app: String,
    #[command(flatten)]
    pub history: HistoryNamespace,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Format,
}

/// Status options.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// An app directory: compare each object with its render (Synced / OutOfSync /
    /// Missing / Orphan), and show the app's rollouts. An app name (not a directory):
    /// its objects and rollouts. Without it, list everything gitsync manages.
    pub path: Option<PathBuf>,
    /// Only this app.
    #[arg(long)]
    pub app: Option<String>,
    #[command(flatten)]
    pub cluster: ClusterArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// Output format.
    #[arg(short, long, value_enum, default_value = "text")]
    pub output: Format,
    #[command(flatten)]
    pub history: HistoryNamespace,
}

#[derive(Debug, Subcommand)]
pub enum LocalClusterCommand {
    /// Start the local cluster in the background and print its kubeconfig path.
    Start(LocalArgs),
    /// Stop the background local cluster.
    Stop(LocalArgs),
    /// Say whether the local cluster is running, and where.
    Status(LocalArgs),
    /// Print the kubeconfig path of the local cluster.
    Kubeconfig(LocalArgs),
    /// Delete every object of the (stopped) local cluster.
    Reset(LocalArgs),
    /// Serve the local cluster in the foreground (what `start` runs).
    #[command(hide = true)]
    Serve(LocalArgs),
}

/// Local cluster options.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// State directory (default: $XDG_STATE_HOME/gitsync/local-cluster).
    #[arg(long, env = "GITSYNC_LOCAL_DIR")]
    pub local_dir: Option<PathBuf>,
    /// Port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

fn parse_history_limit(text: &str) -> Result<usize, String> {
    use gitsync_agent::settings::MAX_HISTORY_LIMIT;
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_HISTORY_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("expected 1 to {MAX_HISTORY_LIMIT}, got {text:?}")),
    }
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}
