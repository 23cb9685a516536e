//! Command-line configuration shared by `gitsync` and `gitsync-agent`: which cluster to
//! talk to, parsed and validated before any I/O. Every flag also reads a `GITSYNC_*`
//! environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::cluster::{Endpoint, ExecuteOptions, Target};

/// Which kind of cluster backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    /// The current kubeconfig context (or in-cluster service account), like kubectl.
    Kube,
    /// The embedded emulated API server (state under --local-dir).
    Local,
}

/// Cluster selection flags.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Cluster backend: `kube` uses --kubeconfig/--context/KUBECONFIG or the in-cluster
    /// service account; `local` uses the embedded local cluster.
    #[arg(long, value_enum, default_value = "kube", env = "GITSYNC_CLUSTER")]
    pub cluster: Backend,
    /// Path to a kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, env = "GITSYNC_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, env = "GITSYNC_CONTEXT")]
    pub context: Option<String>,
    /// State directory of the local cluster.
    #[arg(long, env = "GITSYNC_LOCAL_DIR")]
    pub local_dir: Option<PathBuf>,
    /// Confine gitsync to these namespaces (comma-separated): it lists and watches only
    /// in them, and an object in another namespace, or a cluster-scoped one, fails its
    /// sync before anything is written. For installs with Roles and no ClusterRole
    /// (deploy/namespaced).
    #[arg(long, env = "GITSYNC_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
}

impl ClusterArgs {
    /// The cluster these flags select.
    pub fn target(&self) -> Target {
        let endpoint = match self.cluster {
            Backend::Local => Endpoint::Local {
                state_dir: self.local_state_dir(),
            },
            Backend::Kube => Endpoint::Kube {
                kubeconfig: self.kubeconfig.clone(),
                context: self.context.clone(),
            },
        };
        Target {
            endpoint,
            namespaces: self
                .namespaces
                .iter()
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    /// The local cluster's state directory (flag or default).
    pub fn local_state_dir(&self) -> PathBuf {
        self.local_dir.clone().unwrap_or_else(default_local_dir)
    }
}

/// `$XDG_STATE_HOME/gitsync/local-cluster`, else `~/.local/state/gitsync/local-cluster`,
/// else `.gitsync/local-cluster` in the working directory.
pub fn default_local_dir() -> PathBuf {
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(state).join("gitsync/local-cluster");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(home).join(".local/state/gitsync/local-cluster");
    }
    PathBuf::from(".gitsync/local-cluster")
}

/// Parses `30s`, `5m`, `1h`, `500ms`, or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    gitsync_core::duration::parse(text)
}

/// How a sync prunes: flags shared by `gitsync diff`, `gitsync sync` and the agent.
#[derive(Debug, Clone, Args)]
pub struct PruneFlags {
    /// Do not prune objects the app no longer renders.
    #[arg(long, env = "GITSYNC_NO_PRUNE")]
    pub no_prune: bool,
    /// Prune even when more than --max-prune-percent of the app's objects would go.
    #[arg(long, env = "GITSYNC_FORCE_PRUNE")]
    pub force_prune: bool,
    /// Largest share (percent) of the app's objects one sync may prune without
    /// --force-prune.
    #[arg(long, env = "GITSYNC_MAX_PRUNE_PERCENT", default_value_t = 50,
        value_parser = clap::value_parser!(u8).range(0..=100))]
    pub max_prune_percent: u8,
}

/// How a sync executes: flags shared by `gitsync sync` and the agent.
#[derive(Debug, Clone, Args)]
pub struct ExecuteFlags {
    /// Take over fields another field manager owns instead of failing on the conflict
    /// (server-side apply `force`).
    #[arg(long, env = "GITSYNC_FORCE")]
    pub force: bool,
    /// How long to wait for the app to become healthy after applying it.
    #[arg(long, env = "GITSYNC_HEALTH_TIMEOUT", default_value = "10m", value_parser = parse_duration)]
    pub health_timeout: Duration,
    /// Do not wait for health at the end (waves and CRDs are still waited for).
    #[arg(long, env = "GITSYNC_NO_WAIT")]
    pub no_wait: bool,
    /// Writes in flight at once.
    #[arg(long, env = "GITSYNC_CONCURRENCY", default_value_t = 32,
        value_parser = clap::value_parser!(u16).range(1..=512))]
    pub concurrency: u16,
}

impl PruneFlags {
    /// The plan options these flags select.
    pub fn plan_options(&self) -> gitsync_core::plan::Options {
        gitsync_core::plan::Options {
            prune: !self.no_prune,
            force_prune: self.force_prune,
            max_prune_percent: self.max_prune_percent,
        }
    }
}

impl ExecuteFlags {
    /// The execution options these flags select.
    pub fn execute_options(&self) -> ExecuteOptions {
        ExecuteOptions {
            force: self.force,
            health_timeout: (!self.no_wait).then_some(self.health_timeout),
            concurrency: usize::from(self.concurrency),
            ..ExecuteOptions::default()
        }
    }
}

/// The agent's namespace: the service account's when running in a cluster, else
/// [`crate::history::DEFAULT_NAMESPACE`].
pub fn agent_namespace() -> String {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|ns| ns.trim().to_owned())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| crate::history::DEFAULT_NAMESPACE.to_owned())
}
