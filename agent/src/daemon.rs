//! The `gitsync-agent` daemon: one [`worker`] per app of the configuration, run while
//! this replica leads (always, without leader election), and the [`Hub`] the HTTP
//! server reads them through. A worker that fails never stops another; a replica that
//! loses the lead stops its workers, and one that gains it starts them, resuming every
//! rollout in flight from its state in the cluster.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::cluster::{Cluster, ExecuteOptions, Target};
use crate::control::{AppSource, Control};
use crate::git;
use crate::history::History;
use crate::lease::{self, Elector, Leadership};
use crate::reconcile::App;
use crate::registry::{AppStatus, Registry};
use crate::rollouts::Rollouts;
use crate::secrets::Secrets;
use crate::settings::{AppSpec, Settings};
use crate::worker::{self, Env, Handle, Spec};

/// Errors that stop the daemon before its loop starts.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the cluster")]
    Cluster(#[source] crate::cluster::Error),
}

/// The daemon's configuration, validated before any I/O.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub target: Target,
    pub cache_dir: PathBuf,
    /// Namespace of the history, rollout states, controls, Secrets and the Lease.
    pub namespace: String,
    pub drift_interval: Duration,
    pub self_heal_delay: Duration,
    /// Execution options every app starts from (concurrency, wait for health).
    pub execute: ExecuteOptions,
    /// Pruning guard: the largest share of an app's objects a sync may prune, and
    /// whether to prune past it anyway, unless the settings' `defaults` say.
    pub max_prune_percent: u8,
    pub force_prune: bool,
    /// This replica's name in the Lease, and the address followers forward to.
    pub identity: String,
    pub address: Option<String>,
    pub lease: lease::Timing,
    /// Run one fetch pass per app and return.
    pub once: bool,
}

impl Config {
    /// The worker configuration of one app.
    fn spec(&self, app: &AppSpec) -> Spec {
        let mut execute = self.execute.clone();
        execute.force = app.force;
        if execute.health_timeout.is_some() {
            execute.health_timeout = Some(self.settings.health_timeout(app));
        }
        Spec {
            app: App {
                name: app.name.clone(),
                vars: app.vars.clone(),
                namespace: app.namespace.clone(),
                options: gitsync_core::plan::Options {
                    prune: app.prune,
                    force_prune: self.settings.force_prune(app, self.force_prune),
                    max_prune_percent: self.settings.max_prune_percent(app, self.max_prune_percent),
                },
                execute,
                cache: None,
            },
            source: git::Source {
                url: app.repo.clone(),
                reference: app.reference.clone(),
                path: app.path.clone(),
                access: git::Access {
                    timeout: self.settings.git_timeout(app),
                    ..git::Access::default()
                },
            },
            credentials: app.credentials.as_ref().map(|c| c.secret.clone()),
            policies: app.policies.clone(),
            cache_dir: self.cache_dir.clone(),
            interval: self.settings.interval(app),
            drift_interval: self.drift_interval,
            self_heal: app.self_heal,
            self_heal_delay: self.self_heal_delay,
        }
    }
}

/// What the HTTP server reaches the apps through: the stores and registry the
/// workers share ([`Env`]), the configuration, who leads, and the running workers.
pub struct Hub {
    pub env: Env,
    pub settings: Settings,
    pub leadership: watch::Receiver<Leadership>,
    handles: RwLock<BTreeMap<String, Handle>>,
}

impl Hub {
    /// The running worker of `app` (none on a follower, or for an unknown app).
    pub fn handle(&self, app: &str) -> Option<Handle> {
        self.handles.read().ok()?.get(app).cloned()
    }

    /// The app's configuration.
    pub fn spec(&self, app: &str) -> Option<&AppSpec> {
        self.settings.apps.iter().find(|a| a.name == app)
    }
}

/// Connects to the cluster and builds the hub (before the server starts, so that it
/// can answer at once).
pub async fn connect(config: &Config) -> Result<(Arc<Hub>, watch::Sender<Leadership>), Error> {
    let cluster = Cluster::connect(&config.target)
        .await
        .map_err(Error::Cluster)?;
    let client = cluster.client().clone();
    let registry = Registry::default();
    registry.update_agent(|a| a.identity.clone_from(&config.identity));
    for app in &config.settings.apps {
        registry.add(AppStatus {
            name: app.name.clone(),
            repo: app.repo.clone(),
            reference: app.reference.clone(),
            path: app.path.display().to_string(),
            sync: "Unknown".into(),
            health: "Unknown".into(),
            ..AppStatus::default()
        });
    }
    let (tx, rx) = watch::channel(Leadership::default());
    let hub = Hub {
        env: Env {
            history: History::new(client.clone(), &config.namespace)
                .with_limit(config.settings.history_limit),
            rollouts: Rollouts::new(client.clone(), &config.namespace),
            control: Control::new(client.clone(), &config.namespace),
            secrets: Secrets::new(client, &config.namespace),
            cluster: Arc::new(cluster),
            registry,
            git_locks: worker::GitLocks::default(),
        },
        settings: config.settings.clone(),
        leadership: rx,
        handles: RwLock::default(),
    };
    Ok((Arc::new(hub), tx))
}

/// Runs until `shutdown` flips to true (or after one pass per app with `once`).
pub async fn run(
    config: Config,
    hub: Arc<Hub>,
    leadership: watch::Sender<Leadership>,
    shutdown: watch::Receiver<bool>,
) {
    let mut leading = leadership.subscribe();
    if config.settings.leader_election {
        let elector = Elector::new(
            hub.env.cluster.client().clone(),
            &config.namespace,
            &config.identity,
            config.address.clone(),
            config.lease,
        );
        tokio::spawn(elector.run(leadership, shutdown.clone()));
    } else {
        leadership.send_replace(Leadership {
            leading: true,
            leader: Some(config.identity.clone()),
            address: config.address.clone(),
        });
    }
    info!(
        apps = config.settings.apps.len(),
        cluster = hub.env.cluster.url(),
        "agent started"
    );
    let mut shutdown = shutdown;
    let mut workers: Option<Workers> = None;
    loop {
        let now = leading.borrow_and_update().clone();
        hub.env.registry.update_agent(|a| {
            a.leader = now.leading;
            a.leader_identity.clone_from(&now.leader);
        });
        match (&workers, now.leading) {
            (None, true) => workers = Some(start(&config, &hub, &shutdown)),
            (Some(_), false) => {
                warn!("lost the lead: stopping every app's worker");
                // Dropping the workers cancels them where they are; a sync cut off
                // is marked interrupted and redone by whoever leads next.
                workers = None;
                if let Ok(mut h) = hub.handles.write() {
                    h.clear();
                }
            }
            _ => {}
        }
        let running = async {
            match workers.as_mut() {
                Some(w) => {
                    while w.next().await.is_some() {}
                    // A worker that gave up (its Git cache cannot be opened) reported
                    // it; the others go on. Only `once` ends when all have.
                    if !config.once {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.changed() => {
                info!("shutting down");
                return;
            }
            changed = leading.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = running => return,
        }
    }
}

/// The running workers: polled by the daemon's task (not spawned: a worker's future
/// is not `Send`), each doing its CPU work in short stretches between its awaits.
type Workers = FuturesUnordered<std::pin::Pin<Box<dyn Future<Output = ()>>>>;

/// Starts one worker per app and publishes their handles.
fn start(config: &Config, hub: &Hub, shutdown: &watch::Receiver<bool>) -> Workers {
    let set = Workers::new();
    let mut handles = BTreeMap::new();
    for app in &config.settings.apps {
        let spec = config.spec(app);
        let (handle, requests) = worker::channels();
        handles.insert(app.name.clone(), handle.clone());
        let env = hub.env.clone();
        let source = AppSource {
            repo: app.repo.clone(),
            reference: app.reference.clone(),
            path: app.path.display().to_string(),
            namespace: app.namespace.clone(),
            vars: app.vars.clone(),
            policies: app.policies.clone(),
        };
        let shutdown = shutdown.clone();
        let once = config.once;
        set.push(Box::pin(async move {
            if let Err(e) = env.control.publish_source(&spec.app.name, &source).await {
                warn!(app = %spec.app.name, error = %crate::error_chain(&e), "cannot publish the app's source");
            }
            worker::run(spec, env, handle, requests, shutdown, once).await;
        }));
    }
    if let Ok(mut h) = hub.handles.write() {
        *h = handles;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Endpoint;

    fn config(settings: &str, max_prune_percent: u8, force_prune: bool) -> Config {
        Config {
            settings: Settings::parse("config.yaml", settings).expect("settings"),
            target: Target::from(Endpoint::Local {
                state_dir: PathBuf::from("/nonexistent"),
            }),
            cache_dir: PathBuf::from("/nonexistent"),
            namespace: "gitsync-system".into(),
            drift_interval: Duration::from_mins(5),
            self_heal_delay: Duration::from_secs(5),
            execute: ExecuteOptions::default(),
            max_prune_percent,
            force_prune,
            identity: "test".into(),
            address: None,
            lease: lease::Timing::default(),
            once: true,
        }
    }

    #[test]
    fn the_pruning_guard_comes_from_the_defaults_else_the_flags() {
        let configured = config(
            "defaults: {maxPrunePercent: 40, forcePrune: true}\napps:\n  - {name: a, repo: r}\n",
            50,
            false,
        );
        let options = configured.spec(&configured.settings.apps[0]).app.options;
        assert_eq!(options.max_prune_percent, 40);
        assert!(options.force_prune);

        let flags_only = config("apps:\n  - {name: a, repo: r}\n", 70, true);
        let options = flags_only.spec(&flags_only.settings.apps[0]).app.options;
        assert_eq!(options.max_prune_percent, 70);
        assert!(options.force_prune);
    }
}
