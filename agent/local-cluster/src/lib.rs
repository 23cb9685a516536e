//! gitsync-local-cluster: an emulated Kubernetes API server on loopback.
//!
//! It is the embedded default backend (so `gitsync sync example-repo --cluster local`
//! runs with no cluster) and the API server every integration test stands on. It speaks
//! plain HTTP on 127.0.0.1, so `kube::Client` and `kubectl` reach it through an ordinary
//! kubeconfig (written to `<state_dir>/kubeconfig`), and keeps its state under a
//! directory in an append-only journal (`store.jsonl`), compacted as it grows.
//!
//! What it serves (first cut): discovery for the built-in kinds gitsync handles; get,
//! list (label and field selectors, paging), create, update (optimistic concurrency),
//! JSON merge patch, strategic merge patch (merged by the API types' patch keys, with
//! kubectl's `$patch`, `$retainKeys`, `$setElementOrder` and `$deleteFromPrimitiveList`
//! directives; see `strategic`), server-side apply with
//! managedFields per manager, conflicts (409 naming each field and manager) and force,
//! dry-run, delete and deletecollection (a Namespace takes its contents); defaulting, validation and the
//! immutable fields of the example app's kinds; `Status` errors. Controllers are
//! simulated (see `rollout`): Deployments roll out through ReplicaSets and Pods on a
//! clock tests can advance (`LocalCluster::advance_clock`, `POST /_gitsync/clock`,
//! `GITSYNC_LOCAL_CLUSTER_TIME_SCALE`), with failure injection by pod-template
//! annotation; Services get Endpoints; PVCs bind through their StorageClass (see
//! `storage`: a default `standard` class, `Immediate` or `WaitForFirstConsumer`
//! binding, expansion where the class allows it). Watch streams
//! (ADDED/MODIFIED/DELETED, BOOKMARK, resume, 410 Gone); finalizers, propagation
//! through ownerReferences and terminating namespaces (see `deletion`); a
//! CustomResourceDefinition serves its kind (discovery, CRUD, watch) until deleted,
//! when its objects go with it. Admission webhooks: the MutatingWebhookConfigurations
//! and ValidatingWebhookConfigurations stored are called over HTTPS on writes and
//! deletes, in the API server's order and with its matching, failure policies and
//! dry-run rules (see `webhooks`).
//! Where it cannot be exact it rejects rather than accepts.
//!
//! `GET /_gitsync/stats` returns request counters (reads, writes, dry runs, per verb) and
//! `DELETE /_gitsync/stats` resets them, so tests can count the writes of a sync.
//!
//! Failure injection: besides the rollout annotations above, requests to `/api` and
//! `/apis` can be slowed and failed (see `faults`). `latencyMs` delays every one of them
//! (`GITSYNC_LOCAL_CLUSTER_LATENCY_MS` at start); rules, tried in order, fail the next
//! `count` matching requests (by `verbs`, `resource`, `name`, `dryRun`) with a `Status`
//! of the given code and an optional `Retry-After`, or with `"disconnect": true` by
//! closing the connection before any response. Set with [`LocalCluster::set_faults`] or
//! `POST /_gitsync/faults` (`{"latencyMs": 5, "rules": [{"status": 429, "count": 2,
//! "verbs": ["patch"], "resource": "configmaps"}]}`), read back with remaining counts by
//! `GET`, cleared by `DELETE`. Failed requests change nothing and are counted as
//! `injected` in the stats. `kube::Client` retries 429, 503 and 504 by itself (up to 15
//! times, honouring `Retry-After`), so a test of gitsync's own retries uses another code
//! or a client with `default_retry` off.

mod admit;
mod api;
mod clock;
mod deletion;
mod discovery;
mod events;
pub mod faults;
mod kinds;
mod managed;
mod patch;
mod path;
mod rollout;
mod selector;
mod server;
mod status;
mod storage;
mod store;
mod strategic;
mod watch;
mod webhooks;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

pub use faults::{FaultRule, Faults};

/// Errors starting or running the local cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use the state directory {path}")]
    State {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another local cluster (pid {pid}) is using {path}; stop it with `gitsync local-cluster stop` or use another --local-dir"
    )]
    Busy { pid: u32, path: String },
    #[error("cannot listen on 127.0.0.1:{port}")]
    Listen {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("the local cluster server failed")]
    Serve(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where and how to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// State directory: objects, kubeconfig, pid and url files.
    pub state_dir: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
}

/// Request counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    pub dry_run: u64,
    pub by_verb: BTreeMap<String, u64>,
    /// Requests failed by an injected fault ([`Faults`]); they reached no handler and
    /// are not counted in the other fields.
    #[serde(default)]
    pub injected: u64,
    /// The most API write requests (dry runs included) handled at once since the last
    /// reset, added latency included: the client's write concurrency.
    #[serde(default)]
    pub max_writes_in_flight: u64,
    /// Writes per namespace ("" for cluster-scoped objects).
    #[serde(default)]
    pub writes_by_namespace: BTreeMap<String, u64>,
}

/// A running local cluster; stops when shut down or dropped.
pub struct LocalCluster {
    url: String,
    dir: PathBuf,
    kubeconfig: PathBuf,
    shared: Arc<server::Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// The simulated controllers' loop.
    controllers: tokio::task::JoinHandle<()>,
    /// The state directory is removed when the cluster stops (see [`LocalCluster::ephemeral`]).
    ephemeral: bool,
}

impl LocalCluster {
    /// Loads the state, binds 127.0.0.1 and serves in a background task.
    pub async fn start(config: Config) -> Result<Self> {
        let dir = config.state_dir.clone();
        let state_err = |source| Error::State {
            path: dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(state_err)?;
        take_lock(&dir)?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port))
            .await
            .map_err(|source| Error::Listen {
                port: config.port,
                source,
            });
        let listener = match listener {
            Ok(l) => l,
            Err(e) => {
                release_lock(&dir);
                return Err(e);
            }
        };
        let addr = listener.local_addr().map_err(state_err)?;
        let url = format!("http://{addr}");
        let loaded = store::Store::load(&dir).and_then(|mut s| {
            api::bootstrap(&mut s).map_err(|e| std::io::Error::other(e.message))?;
            Ok(s)
        });
        let store = match loaded {
            Ok(s) => s,
            Err(source) => {
                release_lock(&dir);
                return Err(state_err(source));
            }
        };
        let shared = Arc::new(server::Shared {
            store: Mutex::new(store),
            counters: server::Counters::default(),
            url: url.clone(),
            clock: clock::SimClock::new(time_scale()),
            faults: faults::State::new(latency_ms()),
        });
        let controllers = tokio::spawn(run_controllers(Arc::clone(&shared)));
        let kubeconfig = dir.join("kubeconfig");
        store::write_atomic(&kubeconfig, kubeconfig_text(&url).as_bytes()).map_err(state_err)?;
        store::write_atomic(&dir.join("server.url"), url.as_bytes()).map_err(state_err)?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let router = server::router(Arc::clone(&shared));
        let task = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        tracing::debug!(%url, dir = %dir.display(), "local cluster started");
        Ok(Self {
            url,
            dir,
            kubeconfig,
            shared,
            stop: Some(stop),
            task: Some(task),
            controllers,
            ephemeral: false,
        })
    }

    /// Starts a throw-away cluster on a free port with its state in a fresh temporary
    /// directory, removed when it stops: the fixture for tests.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = gitsync_local_cluster::LocalCluster::ephemeral().await?;
    /// let client = cluster.client()?;
    /// let kubeconfig = cluster.kubeconfig_path(); // for kubectl or a child process
    /// # Ok(()) }
    /// ```
    pub async fn ephemeral() -> Result<Self> {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state_dir = std::env::temp_dir().join(format!(
            "gitsync-local-cluster-{}-{n}-{}",
            std::process::id(),
            clock::uid("ephemeral").get(..8).unwrap_or("x"),
        ));
        let mut cluster = Self::start(Config { state_dir, port: 0 }).await?;
        cluster.ephemeral = true;
        Ok(cluster)
    }

    /// A `kube::Client` for this server.
    pub fn client(&self) -> Result<kube::Client> {
        let uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Serve(std::io::Error::other(e)))?;
        kube::Client::try_from(kube::Config::new(uri))
            .map_err(|e| Error::Serve(std::io::Error::other(e)))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The kubeconfig that points at this server.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Request counters so far.
    pub fn stats(&self) -> Stats {
        self.shared.counters.snapshot()
    }

    /// Moves the simulated controllers' clock forward (pods start, minReadySeconds and
    /// progress deadlines pass), as `POST /_gitsync/clock?advance=30s` does over HTTP.
    pub fn advance_clock(&self, by: std::time::Duration) {
        self.shared.clock.advance(by);
    }

    /// Simulated time on the controllers' clock, in milliseconds since the epoch (what
    /// `GET /_gitsync/clock` answers as `nowMs`).
    pub fn now_ms(&self) -> u64 {
        self.shared.clock.now_ms()
    }

    /// Replaces the injected latency and failure rules, as `POST /_gitsync/faults` does.
    ///
    /// ```no_run
    /// # async fn demo(cluster: &gitsync_local_cluster::LocalCluster) -> Result<(), Box<dyn std::error::Error>> {
    /// use gitsync_local_cluster::{FaultRule, Faults};
    /// // The next two patches of ConfigMaps get 429 Too Many Requests.
    /// cluster.set_faults(Faults {
    ///     latency_ms: 5,
    ///     rules: vec![FaultRule {
    ///         status: Some(429),
    ///         count: Some(2),
    ///         verbs: vec!["patch".into()],
    ///         resource: Some("configmaps".into()),
    ///         retry_after_seconds: Some(1),
    ///         ..FaultRule::default()
    ///     }],
    /// }).await?;
    /// # Ok(()) }
    /// ```
    pub async fn set_faults(&self, faults: Faults) -> Result<(), faults::Error> {
        self.shared.faults.set(faults).await
    }

    /// The injected latency and rules, with what remains of each rule's count.
    pub async fn faults(&self) -> Faults {
        self.shared.faults.get().await
    }

    /// No added latency, no failure rules.
    pub async fn clear_faults(&self) {
        self.shared.faults.clear().await;
    }

    /// Stops serving (state is already persisted).
    pub async fn shutdown(mut self) -> Result<()> {
        self.controllers.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => match task.await {
                Ok(r) => r.map_err(Error::Serve),
                Err(e) => Err(Error::Serve(std::io::Error::other(e))),
            },
            None => Ok(()),
        };
        release_lock(&self.dir);
        if self.ephemeral {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        result
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.controllers.abort();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
            release_lock(&self.dir);
            if self.ephemeral {
                let _ = std::fs::remove_dir_all(&self.dir);
            }
        }
    }
}

/// How often the simulated controllers run (real time).
const CONTROLLER_TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// `GITSYNC_LOCAL_CLUSTER_TIME_SCALE`: how much faster than the wall clock simulated
/// time runs (default 1).
fn time_scale() -> f64 {
    std::env::var("GITSYNC_LOCAL_CLUSTER_TIME_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0)
}

/// `GITSYNC_LOCAL_CLUSTER_LATENCY_MS`: milliseconds added before every API request
/// (default 0).
fn latency_ms() -> u64 {
    let Ok(text) = std::env::var("GITSYNC_LOCAL_CLUSTER_LATENCY_MS") else {
        return 0;
    };
    text.trim().parse().unwrap_or_else(|_| {
        tracing::warn!(value = %text, "GITSYNC_LOCAL_CLUSTER_LATENCY_MS is not a number of milliseconds; no latency added");
        0
    })
}

async fn run_controllers(shared: Arc<server::Shared>) {
    let mut tick = tokio::time::interval(CONTROLLER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = shared.clock.now_ms();
        let Ok(mut store) = shared.store.lock() else {
            return;
        };
        if let Err(e) = rollout::reconcile(&mut store, now) {
            tracing::warn!(error = %e, "simulated controllers failed to write");
        }
    }
}

/// Deletes every stored object and counter under `state_dir` (the cluster must not be
/// running). The kubeconfig is kept.
pub fn reset(state_dir: &Path) -> std::io::Result<()> {
    for path in [state_dir.join("objects")] {
        match std::fs::remove_dir_all(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    for file in ["state.json", "store.jsonl"] {
        match std::fs::remove_file(state_dir.join(file)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Serves until SIGTERM or Ctrl-C (the `gitsync local-cluster serve` process).
pub async fn serve_forever(config: Config, ready: impl FnOnce(&LocalCluster)) -> Result<()> {
    let cluster = LocalCluster::start(config).await?;
    ready(&cluster);
    shutdown_signal().await;
    cluster.shutdown().await
}

/// Resolves on SIGTERM (how Kubernetes and `gitsync local-cluster stop` end a process)
/// or Ctrl-C.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Takes `<dir>/server.pid`, refusing when a live process holds it.
fn take_lock(dir: &Path) -> Result<()> {
    let pid_file = dir.join("server.pid");
    if let Ok(text) = std::fs::read_to_string(&pid_file)
        && let Ok(pid) = text.trim().parse::<u32>()
        && pid != std::process::id()
        && Path::new(&format!("/proc/{pid}")).exists()
    {
        return Err(Error::Busy {
            pid,
            path: dir.display().to_string(),
        });
    }
    store::write_atomic(&pid_file, std::process::id().to_string().as_bytes()).map_err(|source| {
        Error::State {
            path: dir.display().to_string(),
            source,
        }
    })
}

fn release_lock(dir: &Path) {
    let pid_file = dir.join("server.pid");
    let ours = std::fs::read_to_string(&pid_file)
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        == Some(std::process::id());
    if ours {
        let _ = std::fs::remove_file(pid_file);
        let _ = std::fs::remove_file(dir.join("server.url"));
    }
}

fn kubeconfig_text(url: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: gitsync-local\n  cluster:\n    server: {url}\ncontexts:\n- name: gitsync-local\n  context:\n    cluster: gitsync-local\n    user: gitsync-local\n    namespace: default\ncurrent-context: gitsync-local\nusers:\n- name: gitsync-local\n  user: {{}}\n"
    )
}
