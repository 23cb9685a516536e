//! `gitsync-agent`: syncs one app from a Git repository to a cluster, continuously.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gitsync_agent::config::{ClusterArgs, ExecuteFlags, PruneFlags, parse_duration};
use gitsync_agent::{daemon, git, reconcile::App, server, telemetry};

#[global_allocator]
static ALLOCATOR: gitsync_agent::Allocator = gitsync_agent::Allocator;

/// Keeps a cluster in sync with a path of a Git repository: clones it, syncs it, then
/// fetches every interval and syncs again when the tree of the app's path changed.
#[derive(Debug, Parser)]
#[command(name = "gitsync-agent", version)]
struct Args {
    /// Repository URL (https, ssh) or local path.
    #[arg(long, env = "GITSYNC_REPO")]
    repo: String,
    /// Branch, tag or commit to track.
    #[arg(long = "ref", env = "GITSYNC_REF", default_value = "main")]
    reference: String,
    /// The app's directory inside the repository.
    #[arg(long, env = "GITSYNC_PATH", default_value = ".")]
    path: PathBuf,
    /// App name (the `gitsync.dev/app` label); default: the last component of --path,
    /// or of the repository for the root.
    #[arg(long, env = "GITSYNC_APP")]
    app: Option<String>,
    /// How often to fetch (e.g. 30s, 5m).
    #[arg(long, env = "GITSYNC_INTERVAL", default_value = "30s", value_parser = parse_duration)]
    interval: Duration,
    /// Directory for the cached clone.
    #[arg(long, env = "GITSYNC_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Set a ${VAR} for rendering (repeatable), e.g. --var TAG=1.2.
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Namespace for the sync history (default: the agent's own namespace in a
    /// cluster, else gitsync-system).
    #[arg(long, env = "GITSYNC_NAMESPACE")]
    namespace: Option<String>,
    /// How often to compare the live objects with the synced revision (watch events
    /// on them trigger a check too).
    #[arg(long, env = "GITSYNC_DRIFT_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    drift_interval: Duration,
    /// Re-apply the synced revision when drift is found; without it drift is only
    /// reported (status, Events, metrics, log).
    #[arg(long, env = "GITSYNC_SELF_HEAL")]
    self_heal: bool,
    /// How long after finding drift self-heal re-applies.
    #[arg(long, env = "GITSYNC_SELF_HEAL_DELAY", default_value = "5s", value_parser = parse_duration)]
    self_heal_delay: Duration,
    #[command(flatten)]
    prune: PruneFlags,
    #[command(flatten)]
    execute: ExecuteFlags,
    /// Serve /healthz, /readyz and /metrics on this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "GITSYNC_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// Run one pass and exit.
    #[arg(long)]
    once: bool,
    /// Log as JSON lines.
    #[arg(long, env = "GITSYNC_LOG_JSON")]
    log_json: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn parse_var(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {text:?}"))
}

fn app_name(args: &Args) -> String {
    if let Some(app) = &args.app {
        return app.clone();
    }
    let from_path = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && !n.is_empty());
    from_path.unwrap_or_else(|| {
        args.repo
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("app")
            .to_owned()
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_json, "info,kube=warn,hyper=warn");
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        gitsync_agent::config::default_local_dir()
            .parent()
            .map_or_else(|| PathBuf::from(".gitsync"), |p| p.join("git"))
    });
    let config = daemon::Config {
        source: git::Source {
            url: args.repo.clone(),
            reference: args.reference.clone(),
            path: args.path.clone(),
        },
        cache_dir,
        app: App {
            name: app_name(&args),
            vars: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
            options: args.prune.plan_options(),
            execute: args.execute.execute_options(),
        },
        target: args.cluster.target(),
        interval: args.interval,
        history_namespace: args
            .namespace
            .clone()
            .unwrap_or_else(gitsync_agent::config::agent_namespace),
        drift_interval: args.drift_interval,
        self_heal: args.self_heal,
        self_heal_delay: args.self_heal_delay,
        once: args.once,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        gitsync_local_cluster::shutdown_signal().await;
        let _ = stop.send(true);
    });
    let status = server::Shared::default();
    if let Some(addr) = args.listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let router = server::router(status.clone());
                tokio::spawn(async move { axum::serve(listener, router).await });
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                return ExitCode::from(2);
            }
        }
    }
    match daemon::run(config, status, stopped).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::new(e)),
                "agent stopped"
            );
            ExitCode::from(2)
        }
    }
}
