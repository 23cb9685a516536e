//! `gitsync-agent`: keeps a cluster in sync with apps in Git repositories.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gitsync_agent::config::{ClusterArgs, ExecuteFlags, PruneFlags, parse_duration};
use gitsync_agent::settings::{AppSpec, Settings};
use gitsync_agent::{daemon, lease, reconcile::App, server, telemetry, watch};

#[global_allocator]
static ALLOCATOR: gitsync_agent::Allocator = gitsync_agent::Allocator;

/// Keeps a cluster in sync with Git: serves every app of a configuration file (or one
/// app given by flags), fetching each every interval and on webhooks, and syncing it
/// when the tree of its path changed. `--watch DIR` syncs a working directory on every
/// save instead (local development).
#[derive(Debug, Parser)]
#[command(name = "gitsync-agent", version)]
struct Args {
    /// The agent's configuration file (YAML: apps, webhooks, API token, leader
    /// election), usually mounted from the ConfigMap gitsync-config.
    #[arg(long, env = "GITSYNC_CONFIG", conflicts_with_all = ["repo", "watch"])]
    config: Option<PathBuf>,
    /// One app's repository URL (https, ssh) or local path, instead of --config.
    #[arg(long, env = "GITSYNC_REPO", conflicts_with = "watch")]
    repo: Option<String>,
    /// Sync this working directory on every save (debounced), instead of Git.
    #[arg(long, value_name = "DIR")]
    watch: Option<PathBuf>,
    /// Branch, tag, commit or semver range over tags to track (with --repo).
    #[arg(long = "ref", env = "GITSYNC_REF", default_value = "main")]
    reference: String,
    /// The app's directory inside the repository (with --repo).
    #[arg(long, env = "GITSYNC_PATH", default_value = ".")]
    path: PathBuf,
    /// App name (the `gitsync.dev/app` label); default: the last component of --path,
    /// or of the repository for the root.
    #[arg(long, env = "GITSYNC_APP")]
    app: Option<String>,
    /// How often to fetch (e.g. 30s, 5m) (with --repo).
    #[arg(long, env = "GITSYNC_INTERVAL", default_value = "1m", value_parser = parse_duration)]
    interval: Duration,
    /// Directory for the cached clones (one per repository).
    #[arg(long, env = "GITSYNC_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Set a ${VAR} for rendering (repeatable), e.g. --var TAG=1.2 (with --repo).
    #[arg(long = "var", value_name = "KEY=VALUE", value_parser = parse_var)]
    vars: Vec<(String, String)>,
    /// Namespace of the sync history, rollout states, the leader Lease and the
    /// agent's Secrets (default: the config's historyNamespace, else the agent's own
    /// namespace in a cluster, else gitsync-system).
    #[arg(long, env = "GITSYNC_NAMESPACE")]
    namespace: Option<String>,
    /// How often to compare the live objects with the synced revision (watch events
    /// on them trigger a check too).
    #[arg(long, env = "GITSYNC_DRIFT_INTERVAL", default_value = "5m", value_parser = parse_duration)]
    drift_interval: Duration,
    /// Re-apply the synced revision when drift is found (with --repo; a config file
    /// sets selfHeal per app).
    #[arg(long, env = "GITSYNC_SELF_HEAL")]
    self_heal: bool,
    /// How long after finding drift self-heal re-applies.
    #[arg(long, env = "GITSYNC_SELF_HEAL_DELAY", default_value = "5s", value_parser = parse_duration)]
    self_heal_delay: Duration,
    #[command(flatten)]
    prune: PruneFlags,
    #[command(flatten)]
    execute: ExecuteFlags,
    /// Serve the status page, the API, webhooks, /healthz, /readyz and /metrics on
    /// this address (e.g. 0.0.0.0:8080).
    #[arg(long, env = "GITSYNC_LISTEN")]
    listen: Option<std::net::SocketAddr>,
    /// This replica's name in the leader Lease (default: the pod's name, else the
    /// host name and process id).
    #[arg(long, env = "GITSYNC_POD_NAME")]
    identity: Option<String>,
    /// The address other replicas reach this one at (default: http://$GITSYNC_POD_IP
    /// with the --listen port).
    #[arg(long, env = "GITSYNC_ADVERTISE_URL")]
    advertise_url: Option<String>,
    /// How long a leader's Lease lasts without renewal.
    #[arg(long, env = "GITSYNC_LEASE_DURATION", default_value = "15s", value_parser = parse_duration)]
    lease_duration: Duration,
    /// How often the leader renews and followers retry.
    #[arg(long, env = "GITSYNC_LEASE_RETRY", default_value = "2s", value_parser = parse_duration)]
    lease_retry: Duration,
    /// Run one pass per app and exit (not with --watch, which runs until stopped).
    #[arg(long, conflicts_with = "watch")]
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

/// The app name for `--repo` / `--watch`: `--app`, else the last component of the
/// path, else of the repository.
fn app_name(args: &Args, repo: &str) -> String {
    if let Some(app) = &args.app {
        return app.clone();
    }
    let from_path = args
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| n != "." && !n.is_empty());
    from_path.unwrap_or_else(|| {
        repo.trim_end_matches('/')
            .trim_end_matches(".git")
            .rsplit(['/', ':'])
            .next()
            .unwrap_or("app")
            .to_owned()
    })
}

/// The configuration: the file, or one app from the flags.
fn settings(args: &Args) -> Result<Settings, String> {
    if let Some(path) = &args.config {
        return Settings::load(path).map_err(|e| format!("{:#}", anyhow::Error::new(e)));
    }
    let Some(repo) = &args.repo else {
        return Err("give --config FILE, --repo URL, or --watch DIR".into());
    };
    let app = AppSpec {
        name: app_name(args, repo),
        repo: repo.clone(),
        reference: args.reference.clone(),
        path: args.path.clone(),
        namespace: None,
        prune: !args.prune.no_prune,
        force_prune: None,
        max_prune_percent: None,
        self_heal: args.self_heal,
        force: args.execute.force,
        interval: Some(args.interval),
        git_timeout: None,
        health_timeout: Some(args.execute.health_timeout),
        vars: args.vars.iter().cloned().collect::<BTreeMap<_, _>>(),
        policies: Vec::new(),
        credentials: None,
    };
    Ok(Settings {
        apps: vec![app],
        ..Settings::default()
    })
}

fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "agent".into(), |h| h.trim().to_owned());
    format!("{host}-{}", std::process::id())
}

fn main() -> ExitCode {
    gitsync_agent::tune_allocator();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("gitsync-agent: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(run());
    // A Git operation still blocking a thread (bounded by gitTimeout, up to minutes)
    // must not hold the exit: it is abandoned, and the next start fetches again.
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    code
}

/// How long work still running on blocking threads may delay the exit.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

async fn run() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_json, "info,kube=warn,hyper=warn");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        gitsync_local_cluster::shutdown_signal().await;
        let _ = stop.send(true);
    });
    if let Some(dir) = &args.watch {
        let app = App {
            name: app_name(&args, &dir.display().to_string()),
            vars: args.vars.iter().cloned().collect(),
            namespace: None,
            options: args.prune.plan_options(),
            execute: args.execute.execute_options(),
            cache: None,
        };
        return match watch::run(dir, app, &args.cluster.target(), stopped).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "watch stopped");
                ExitCode::from(2)
            }
        };
    }
    let settings = match settings(&args) {
        Ok(s) => s,
        Err(message) => {
            tracing::error!(error = %message, "invalid configuration");
            return ExitCode::from(2);
        }
    };
    let cache_dir = args.cache_dir.clone().unwrap_or_else(|| {
        gitsync_agent::config::default_local_dir()
            .parent()
            .map_or_else(|| PathBuf::from(".gitsync"), |p| p.join("git"))
    });
    let namespace = args
        .namespace
        .clone()
        .or_else(|| settings.history_namespace.clone())
        .unwrap_or_else(gitsync_agent::config::agent_namespace);
    let address = args.advertise_url.clone().or_else(|| {
        let ip = std::env::var("GITSYNC_POD_IP").ok()?;
        let port = args.listen?.port();
        Some(format!("http://{ip}:{port}"))
    });
    let config = daemon::Config {
        settings,
        target: args.cluster.target(),
        cache_dir,
        namespace,
        drift_interval: args.drift_interval,
        self_heal_delay: args.self_heal_delay,
        execute: args.execute.execute_options(),
        max_prune_percent: args.prune.max_prune_percent,
        force_prune: args.prune.force_prune,
        identity: args.identity.clone().unwrap_or_else(identity),
        address,
        lease: lease::Timing {
            duration: args.lease_duration,
            retry: args.lease_retry,
        },
        once: args.once,
    };
    let (hub, leadership) = match daemon::connect(&config).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(
                error = format!("{:#}", anyhow::Error::new(e)),
                "agent stopped"
            );
            return ExitCode::from(2);
        }
    };
    if let Some(addr) = args.listen {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                let router = server::router(hub.clone());
                tokio::spawn(async move { axum::serve(listener, router).await });
            }
            Err(e) => {
                tracing::error!(%addr, error = %e, "cannot listen");
                return ExitCode::from(2);
            }
        }
    }
    daemon::run(config, hub, leadership, stopped).await;
    ExitCode::SUCCESS
}
