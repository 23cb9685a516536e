//! One app's loop in the agent: fetch the tracked ref every interval (sooner on a
//! webhook's hint), and when the tree of the app's path changed, render, plan and sync
//! it. While a rollout is in progress the synced revision is passed again every
//! [`ROLLOUT_TICK`] (to move it on, and to carry out `promote` and `abort`). Drift is
//! checked periodically and on watch events. Nothing here is fatal: an error is
//! reported in the app's status and retried, and apps never wait for each other.
//!
//! A fetch that fails keeps the last synced state, marks the app Stale and is retried
//! with exponential backoff (1 s doubling, capped at the interval). A suspended app
//! (`gitsync rollback --direct`, `suspend`) is neither fetched nor synced until resumed.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{Instrument as _, debug, info, info_span, warn};

use gitsync_core::deflated::DeflatedText;
use gitsync_core::diff::Action;
use gitsync_core::drift::Drift;
use gitsync_core::manifest::Packed;
use gitsync_core::plan::Plan;
use gitsync_core::tree::AppTree;

use crate::cluster::{Cancel, Cluster, Event, EventType, LiveCache, Outcome, SyncResult};
use crate::control::{Control, Suspension};
use crate::git::{self, Mirror, Revision};
use crate::history::History;
use crate::reconcile::{self, App, Record};
use crate::registry::{self, Registry};
use crate::rollouts::{Rollout, Rollouts};

/// How often a rollout in progress is passed again.
pub const ROLLOUT_TICK: Duration = Duration::from_secs(2);

/// Changes seen by the watches are checked this long after the first one (a rollout
/// or a burst of edits makes many).
const DRIFT_DEBOUNCE: Duration = Duration::from_secs(3);

/// The first retry after a failed fetch; doubled on each failure up to the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// The diff kept for the status page is cut at this size.
const DIFF_LIMIT: usize = 64 * 1024;

/// One app's configuration.
#[derive(Debug, Clone)]
pub struct Spec {
    pub app: App,
    pub source: git::Source,
    /// The Secret (in the agent's namespace) with the app's Git credentials.
    pub credentials: Option<String>,
    /// Shared policy directories of the repository (see [`crate::policies`]).
    pub policies: Vec<PathBuf>,
    pub cache_dir: PathBuf,
    pub interval: Duration,
    pub drift_interval: Duration,
    /// Re-apply the synced revision when drift is found (after `self_heal_delay`).
    pub self_heal: bool,
    pub self_heal_delay: Duration,
}

/// What every worker shares: the cluster, the stores of the agent's namespace, the
/// registry it reports to, and one lock per Git cache (apps of one repository share
/// its clone, and libgit2 must not fetch into it twice at once).
#[derive(Clone)]
pub struct Env {
    pub cluster: Arc<Cluster>,
    pub history: History,
    pub rollouts: Rollouts,
    pub control: Control,
    pub registry: Registry,
    pub secrets: crate::secrets::Secrets,
    pub git_locks: GitLocks,
}

/// One mutex per repository URL.
pub type GitLocks =
    Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<std::sync::Mutex<()>>>>>;

/// The answer to a [`Request`]: JSON for the API, or why it failed.
pub type Reply = oneshot::Sender<Result<serde_json::Value, String>>;

/// What an operator (the HTTP API) can ask a worker for, with the answer.
#[derive(Debug)]
pub enum Request {
    /// Fetch now and sync the tip even if its tree did not change.
    Sync(Reply),
    /// Fetch, and plan the tip against the live objects: what a sync would change.
    Diff(Reply),
    /// Apply the render of an earlier revision now and suspend automatic sync.
    RollbackDirect { to: String, reply: Reply },
    /// Commit a revert of the app's path to an earlier revision and push it.
    Revert { to: String, reply: Reply },
}

/// The ways into a running worker. Hints coalesce: any number of webhooks for the
/// app while a fetch runs make one more fetch.
#[derive(Debug, Clone)]
pub struct Handle {
    pub fetch: Arc<Notify>,
    pub roll: Arc<Notify>,
    pub requests: mpsc::Sender<Request>,
}

/// Channels for a worker and the handle that feeds them.
pub fn channels() -> (Handle, mpsc::Receiver<Request>) {
    let (tx, rx) = mpsc::channel(8);
    let handle = Handle {
        fetch: Arc::new(Notify::new()),
        roll: Arc::new(Notify::new()),
        requests: tx,
    };
    (handle, rx)
}

/// What the last successful sync left, for drift checks and rollout passes.
struct Synced {
    revision: Revision,
    desired: Packed,
    rollouts: Vec<Rollout>,
    waiting: bool,
}

impl Synced {
    /// Keeps what a sync of this revision applied and where its rollouts are, and logs
    /// what they did; returns the sync's plan and outcome.
    fn absorb(&mut self, synced: reconcile::Synced) -> (Plan, Outcome) {
        self.waiting = synced.waiting().is_some();
        for progress in &synced.rollouts {
            for note in &progress.notes {
                info!(workload = %progress.rollout.workload, "{note}");
            }
        }
        self.desired = Packed::pack(&synced.desired);
        self.rollouts = synced.rollouts.into_iter().map(|p| p.rollout).collect();
        (synced.plan, synced.outcome)
    }
}

/// A worker's state between events.
struct Worker {
    spec: Spec,
    env: Env,
    mirror: Arc<std::sync::Mutex<Mirror>>,
    lock: Arc<std::sync::Mutex<()>>,
    synced: Option<Synced>,
    /// Tree id of the app's path → the newest commit synced with it (to know a revert
    /// when one arrives); loaded from the history on first use.
    synced_trees: Option<std::collections::HashMap<String, String>>,
    reported: BTreeSet<String>,
    backoff: Option<Duration>,
    /// The app's live objects as watches see them (also `spec.app.cache`, read by syncs
    /// of new revisions and drift checks); its change ticks trigger drift checks.
    live: Arc<LiveCache>,
}

/// Opens the app's Git cache; then runs until `shutdown` flips to true, or after
/// the first fetch pass with `once`.
pub async fn run(
    spec: Spec,
    env: Env,
    handle: Handle,
    mut requests: mpsc::Receiver<Request>,
    mut shutdown: watch::Receiver<bool>,
    once: bool,
) {
    let name = spec.app.name.clone();
    let span = info_span!("app", app = %name);
    // A cache that cannot be opened (a full disk, a bad path) is retried with backoff;
    // the app's status says why meanwhile.
    let mut backoff = FIRST_BACKOFF;
    let mut worker = loop {
        if let Some(w) = Worker::open(spec.clone(), env.clone())
            .instrument(span.clone())
            .await
        {
            break w;
        }
        if once {
            return;
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(spec.interval);
    };
    let mut next_fetch = tokio::time::Instant::now();
    let mut rollout_due: Option<tokio::time::Instant> = None;
    let mut drift_due: Option<tokio::time::Instant> = None;
    let mut drift_ticker = tokio::time::interval(worker.spec.drift_interval);
    drift_ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut changes = worker.live.take_ticks();
    loop {
        let next_change = async {
            match changes.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        // Whether a pass ran (it may have written to the app's objects).
        let passed = tokio::select! {
            biased;
            _ = shutdown.changed() => return,
            Some(request) = requests.recv() => {
                worker.serve(request).instrument(span.clone()).await;
                rollout_due = worker.rollout_due(rollout_due);
                true
            }
            () = tokio::time::sleep_until(next_fetch) => {
                next_fetch = worker.fetch_pass(false).instrument(span.clone()).await;
                rollout_due = worker.rollout_due(rollout_due);
                if once {
                    return;
                }
                true
            }
            () = handle.fetch.notified() => {
                next_fetch = worker.fetch_pass(false).instrument(span.clone()).await;
                rollout_due = worker.rollout_due(rollout_due);
                true
            }
            () = sleep_until(rollout_due) => {
                worker.roll_on().instrument(span.clone()).await;
                rollout_due = worker.rollout_due(None);
                true
            }
            () = handle.roll.notified() => {
                worker.roll_on().instrument(span.clone()).await;
                rollout_due = worker.rollout_due(None);
                true
            }
            _ = drift_ticker.tick() => {
                drift_due = Some(tokio::time::Instant::now());
                false
            }
            Some(()) = next_change => {
                drift_due.get_or_insert_with(|| tokio::time::Instant::now() + DRIFT_DEBOUNCE);
                false
            }
            () = sleep_until(drift_due) => {
                drift_due = None;
                worker.check_drift().instrument(span.clone()).await;
                true
            }
        };
        if passed {
            discard(&mut changes);
        }
    }
}

/// Drops the change ticks that arrived while a pass ran: they are its own writes (a
/// change made by hand meanwhile is found by the next periodic drift check).
fn discard(changes: &mut Option<mpsc::Receiver<()>>) {
    if let Some(rx) = changes.as_mut() {
        while rx.try_recv().is_ok() {}
    }
}

impl Worker {
    async fn open(mut spec: Spec, env: Env) -> Option<Self> {
        env.registry.update(&spec.app.name, |s| {
            s.sync = "Unknown".into();
            s.health = "Unknown".into();
        });
        // Apps of one repository share its cache: one opens (creates) it at a time.
        let lock = env
            .git_locks
            .lock()
            .map(|mut locks| Arc::clone(locks.entry(spec.source.url.clone()).or_default()))
            .unwrap_or_default();
        let source = spec.source.clone();
        let cache_dir = spec.cache_dir.clone();
        let repo_lock = Arc::clone(&lock);
        let opened = tokio::task::spawn_blocking(move || {
            let _repo = repo_lock.lock();
            Mirror::open(&cache_dir, source)
        })
        .await;
        let mirror = match opened {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                let error = crate::error_chain(&e);
                warn!(error, "cannot open the git cache; retrying");
                report_failure(&env.registry, &spec.app.name, &error);
                return None;
            }
            Err(_) => return None,
        };
        match env.history.interrupt_stale(&spec.app.name).await {
            Ok(0) => {}
            Ok(n) => warn!(count = n, "an earlier sync was interrupted; syncing again"),
            Err(e) => {
                let error = crate::error_chain(&e);
                warn!(error, "cannot read the sync history");
            }
        }
        info!(url = %spec.source.url, reference = %spec.source.reference,
            path = %spec.source.path.display(), "serving app");
        let live = Arc::new(LiveCache::new(&spec.app.name));
        // Syncs of new revisions and drift checks read the kinds it watches from it.
        spec.app.cache = Some(Arc::clone(&live));
        Some(Self {
            spec,
            env,
            mirror: Arc::new(std::sync::Mutex::new(mirror)),
            lock,
            synced: None,
            synced_trees: None,
            reported: BTreeSet::new(),
            backoff: None,
            live,
        })
    }

    fn name(&self) -> &str {
        &self.spec.app.name
    }

    /// When to pass the synced revision again: `None` when no rollout waits, else the
    /// time already set (fetch passes every second must not push it back forever),
    /// else a [`ROLLOUT_TICK`] from now.
    fn rollout_due(&self, set: Option<tokio::time::Instant>) -> Option<tokio::time::Instant> {
        let waiting = self.synced.as_ref().is_some_and(|s| s.waiting);
        waiting.then(|| set.unwrap_or_else(|| tokio::time::Instant::now() + ROLLOUT_TICK))
    }

    fn record<'a>(&'a self, trigger: &'a str, rollback_to: Option<&'a str>) -> Record<'a> {
        Record {
            history: Some(&self.env.history),
            rollouts: Some(&self.env.rollouts),
            trigger,
            rollback_to,
        }
    }

    /// The app's suspension, read from the cluster (an unreadable one is logged and
    /// treated as none: the worst case is one more automatic sync).
    async fn suspension(&self) -> Option<Suspension> {
        let found = self.env.control.suspension(self.name()).await;
        let suspension = found
            .inspect_err(
                |e| debug!(error = %crate::error_chain(e), "cannot read the app's controls"),
            )
            .ok()
            .flatten();
        let shown = suspension.clone();
        self.env
            .registry
            .update(self.name(), |s| s.suspended = shown);
        suspension
    }

    /// Runs `work` on the mirror on a blocking thread, holding the repository's lock;
    /// `Err` only when the lock or the thread failed.
    async fn with_mirror<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Mirror) -> T + Send + 'static,
    ) -> Result<T, String> {
        let mirror = Arc::clone(&self.mirror);
        let lock = Arc::clone(&self.lock);
        tokio::task::spawn_blocking(move || {
            let _repo = lock
                .lock()
                .map_err(|_| "git cache lock poisoned".to_owned())?;
            let mut mirror = mirror
                .lock()
                .map_err(|_| "git cache lock poisoned".to_owned())?;
            Ok(work(&mut mirror))
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The app's files at `revision`, with its shared policies.
    async fn read(&self, revision: Revision) -> Result<AppTree, String> {
        let paths = self.spec.policies.clone();
        self.with_mirror(move |m| {
            let mut tree = m.read_app(&revision).map_err(|e| crate::error_chain(&e))?;
            crate::policies::add(m, &revision, &mut tree, &paths)?;
            Ok(tree)
        })
        .await?
    }

    /// Fetches; when the app's tree changed (or `force`), syncs. Returns when to fetch
    /// next.
    async fn fetch_pass(&mut self, force: bool) -> tokio::time::Instant {
        let interval = self.spec.interval;
        let later = |d: Duration| tokio::time::Instant::now() + d;
        if !force && self.suspension().await.is_some() {
            self.env
                .registry
                .update(self.name(), |s| s.attempted = true);
            return later(interval + crate::settings::jitter(interval, self.name()));
        }
        match self.fetch_classified().await {
            Err((message, transient)) => {
                let backoff = self
                    .backoff
                    .map_or(FIRST_BACKOFF, |b| (b * 2).min(interval));
                self.backoff = Some(backoff);
                warn!(error = %message, transient, retry_in = ?backoff, "fetch failed; keeping the last synced state");
                self.env.registry.update(self.name(), |s| {
                    // Unreachable: Stale, the last good state kept. Refused (credentials,
                    // a changed host key, an unknown ref): a person must act.
                    if !transient {
                        s.sync = "Failed".into();
                        s.last_error = Some(message.clone());
                    }
                    s.stale = Some(message);
                    s.attempted = true;
                    s.counters.fetch_failures += 1;
                });
                later(backoff)
            }
            Ok(fetched) => {
                self.backoff = None;
                self.env.registry.update(self.name(), |s| s.stale = None);
                let unchanged = self
                    .synced
                    .as_ref()
                    .is_some_and(|s| s.revision.tree == fetched.tree);
                if unchanged && !force {
                    debug!(commit = %fetched.commit, "app tree unchanged; nothing to do");
                } else if let Err(message) = self.sync_revision(fetched, "agent", None).await {
                    warn!(error = %message, "sync failed; retrying next interval");
                }
                later(interval + crate::settings::jitter(interval, self.name()))
            }
        }
    }

    async fn fetch(&self) -> Result<Revision, String> {
        self.fetch_classified()
            .await
            .map_err(|(message, _)| message)
    }

    /// Fetches; an error says whether it is transient (the server unreachable).
    async fn fetch_classified(&self) -> Result<Revision, (String, bool)> {
        let access = self.access().await.map_err(|message| (message, false))?;
        let started = Instant::now();
        let fetched = self
            .with_mirror(|m| {
                m.set_access(access);
                m.fetch()
                    .map_err(|e| (crate::error_chain(&e), e.is_transient()))
            })
            .await
            .unwrap_or_else(|message| Err((message, true)));
        let took = started.elapsed();
        self.env
            .registry
            .update(self.name(), |s| s.counters.fetch_seconds.observe(took));
        fetched
    }

    /// How Git is reached: the app's timeout, and the credentials in its Secret as they
    /// are now (read through the agent's Secret cache, so a rotated token is used
    /// within [`crate::secrets::TTL`]).
    async fn access(&self) -> Result<git::Access, String> {
        let (auth, ca) = credentials(&self.env.secrets, self.spec.credentials.as_deref()).await?;
        Ok(git::Access {
            auth,
            ca,
            ..self.spec.source.access.clone()
        })
    }

    /// The earlier synced revision whose app tree `revision` restores, if any: a
    /// revert merged by a person is a rollback like `gitsync rollback`.
    async fn restores(&mut self, revision: &Revision) -> Option<String> {
        // Said in the commit (`Gitsync-Rollback-To:`, `This reverts commit …`).
        if let Some(to) = &revision.rollback_to {
            return Some(to.clone());
        }
        if self.synced_trees.is_none() {
            self.synced_trees = Some(self.load_synced_trees().await);
        }
        let current = self.synced.as_ref().map(|s| s.revision.commit.as_str());
        self.synced_trees
            .as_ref()?
            .get(&revision.tree)
            .filter(|c| Some(c.as_str()) != current && **c != revision.commit)
            .cloned()
    }

    /// The app's tree in every revision its history says was synced, to the newest
    /// commit with that tree (read once; kept up to date by each sync after).
    async fn load_synced_trees(&self) -> std::collections::HashMap<String, String> {
        let entries = self.env.history.list(self.name()).await.unwrap_or_default();
        let mut commits: Vec<String> = Vec::new();
        // Oldest first, so that the newest commit of a tree wins.
        for e in entries.into_iter().rev() {
            if e.result == crate::history::Result::Succeeded
                && let Some(commit) = e.revision
                && !commits.contains(&commit)
            {
                commits.push(commit);
            }
        }
        self.with_mirror(move |m| {
            commits
                .into_iter()
                .filter_map(|c| m.at(&c).ok().map(|r| (r.tree, c)))
                .collect()
        })
        .await
        .unwrap_or_default()
    }

    /// Reads, renders and syncs `revision`; on success it becomes the synced state.
    /// `trigger` is `agent` or `api` for the tracked ref's tip (a newer commit
    /// supersedes the sync, and a tip that restores an earlier revision is recorded as
    /// a rollback to it), or `rollback` for a direct rollback to `rollback_to`.
    async fn sync_revision(
        &mut self,
        revision: Revision,
        trigger: &'static str,
        rollback_to: Option<String>,
    ) -> Result<String, String> {
        let started = Instant::now();
        let rev = revision.clone();
        let read = self.read(rev).await;
        debug!(took = ?started.elapsed(), "read the app's tree");
        let tree = match read {
            Ok(t) => t,
            Err(message) => {
                self.failed(&message);
                return Err(message);
            }
        };
        let started = Instant::now();
        let rollback_to = match rollback_to {
            None if trigger == "agent" => self.restores(&revision).await,
            given => given,
        };
        debug!(took = ?started.elapsed(), "looked for a restored revision");
        // A direct rollback applies an older revision on purpose: the tip must not
        // supersede it.
        let supersedable = trigger != "rollback";
        let trigger = if rollback_to.is_some() {
            "rollback"
        } else {
            trigger
        };
        if let Some(to) = &rollback_to {
            info!(commit = %revision.commit, to, "this commit rolls the app back");
        }
        let started = Instant::now();
        let attempt = gitsync_core::time::rfc3339(crate::now_ms() / 1000);
        self.env.registry.update(self.name(), |s| {
            s.sync = "Syncing".into();
            s.last_attempt = Some(attempt);
        });
        // A newer commit of the app supersedes this sync (it may be retrying for a
        // long time against a busy API server): keep fetching meanwhile.
        let mut app = self.spec.app.clone();
        app.execute.cancel = Cancel::default();
        let watcher = supersedable.then(|| {
            tokio::spawn(watch_for_newer(
                Arc::clone(&self.mirror),
                Arc::clone(&self.lock),
                revision.tree.clone(),
                app.execute.cancel.clone(),
                self.spec.interval,
            ))
        });
        let record = self.record(trigger, rollback_to.as_deref());
        let synced = reconcile::sync(
            &self.env.cluster,
            &app,
            &tree,
            Some(&revision),
            record,
            &log_failures,
        )
        .await;
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        let took = started.elapsed();
        let synced = match synced {
            Ok(s) => s,
            Err(e) => {
                let message = crate::error_chain(&e);
                self.env.registry.update(self.name(), |s| {
                    s.counters.sync_seconds.observe(took);
                    *s.counters.syncs.entry("Failed".into()).or_default() += 1;
                });
                self.failed(&message);
                return Err(message);
            }
        };
        let mut done = Synced {
            revision,
            desired: Packed::default(),
            rollouts: Vec::new(),
            waiting: false,
        };
        let (plan, outcome) = done.absorb(synced);
        let commit = done.revision.commit.clone();
        self.env.registry.update(self.name(), |s| {
            s.counters.sync_seconds.observe(took);
            *s.counters
                .syncs
                .entry(format!("{:?}", outcome.result))
                .or_default() += 1;
        });
        let result = judge(&outcome, &commit);
        self.report(trigger, &done, &plan, &outcome, result.as_ref().err());
        match result {
            Ok(()) => {
                info!(%commit, created = outcome.created, updated = outcome.updated,
                    pruned = outcome.pruned, unchanged = plan.summary().unchanged, "synced");
                self.env
                    .cluster
                    .watch_app(&self.live, done.desired.kinds())
                    .await;
                if let Some(trees) = self.synced_trees.as_mut() {
                    trees.insert(done.revision.tree.clone(), commit.clone());
                }
                self.synced = Some(done);
                self.reported.clear();
                Ok(commit)
            }
            Err(message) => Err(message),
        }
    }

    /// Folds a sync into the app's status.
    fn report(
        &self,
        trigger: &str,
        done: &Synced,
        plan: &Plan,
        outcome: &Outcome,
        error: Option<&String>,
    ) {
        let recent = plan.has_changes().then(|| registry::RecentSync {
            commit: done.revision.commit.clone(),
            trigger: trigger.to_owned(),
            result: format!("{:?}", outcome.result),
            at: gitsync_core::time::rfc3339(crate::now_ms() / 1000),
            summary: format!(
                "{} created, {} updated, {} replaced, {} pruned",
                outcome.created, outcome.updated, outcome.replaced, outcome.pruned
            ),
            diff: DeflatedText::new(&plan_text(plan)),
        });
        let objects = done.desired.len() as u64;
        let rollouts = done.rollouts.clone();
        let revision = registry::Revision::from(&done.revision);
        let health = outcome
            .health
            .as_ref()
            .map_or_else(|| "Unknown".to_owned(), |h| format!("{:?}", h.status));
        self.env.registry.update(self.name(), |s| {
            s.attempted = true;
            s.counters.objects_applied += (outcome.created + outcome.updated) as u64;
            s.counters.objects_pruned += outcome.pruned as u64;
            s.health = health;
            if let Some(recent) = recent {
                s.recent.insert(0, recent);
                s.recent.truncate(registry::RECENT);
            }
            s.rollouts = rollouts;
            match error {
                None => {
                    s.revision = Some(revision);
                    // A rollout pass applies the rolled workloads only: drift elsewhere
                    // is still there (the next drift check says what is).
                    if trigger == reconcile::ROLLOUT && !s.drift.is_empty() {
                        s.sync = "OutOfSync".into();
                    } else {
                        s.sync = "Synced".into();
                        s.drift.clear();
                        s.objects = [("synced".to_owned(), objects)].into();
                    }
                    s.last_success = Some(crate::now_ms() / 1000);
                    // A rollout that gave up is the app's error until the next one.
                    s.last_error = done.rollouts.iter().find_map(Rollout::failure);
                }
                Some(message) => {
                    s.sync = "Failed".into();
                    s.last_error = Some(message.clone());
                }
            }
        });
    }

    fn failed(&self, message: &str) {
        report_failure(&self.env.registry, self.name(), message);
    }

    /// The app's tree at the synced revision, read again rather than kept between
    /// passes (it is most of an app's memory, and rollout passes and self-heal are
    /// seconds apart at most); `None` (logged with `failure`) when it cannot be read.
    async fn synced_tree(&self, failure: &str) -> Option<AppTree> {
        let revision = self.synced.as_ref()?.revision.clone();
        match self.read(revision).await {
            Ok(tree) => Some(tree),
            Err(message) => {
                warn!(error = %message, "{failure}");
                None
            }
        }
    }

    /// Passes the synced revision again to move its rollouts on.
    async fn roll_on(&mut self) {
        let Some(tree) = self.synced_tree("rollout pass failed; retrying").await else {
            return;
        };
        let Some(done) = self.synced.as_mut() else {
            return;
        };
        let record = Record {
            history: Some(&self.env.history),
            rollouts: Some(&self.env.rollouts),
            trigger: reconcile::ROLLOUT,
            rollback_to: None,
        };
        let synced = reconcile::sync(
            &self.env.cluster,
            &self.spec.app,
            &tree,
            Some(&done.revision),
            record,
            &log_failures,
        )
        .await;
        let synced = match synced {
            Ok(s) => s,
            Err(e) => {
                let message = crate::error_chain(&e);
                warn!(error = %message, "rollout pass failed; retrying");
                return;
            }
        };
        let (plan, outcome) = done.absorb(synced);
        let commit = done.revision.commit.clone();
        let result = judge(&outcome, &commit).err();
        if let Some(message) = &result {
            warn!(error = %message, "rollout pass failed; retrying");
        }
        let done = self.synced.as_ref().expect("synced above");
        self.report(reconcile::ROLLOUT, done, &plan, &outcome, result.as_ref());
    }

    /// Compares the live objects with the synced revision; reports drift (status, log,
    /// an Event per newly drifted object) and, with self-heal, re-applies it.
    async fn check_drift(&mut self) {
        let Some(done) = &self.synced else {
            return;
        };
        let drift = match reconcile::drift(&self.env.cluster, &self.spec.app, &done.desired).await {
            Ok(d) => d,
            Err(e) => {
                let error = crate::error_chain(&e);
                warn!(error, "drift check failed");
                return;
            }
        };
        let summaries: Vec<String> = drift.iter().map(Drift::summary).collect();
        let total = done.desired.len() as u64;
        let drifted = summaries.len() as u64;
        self.env.registry.update(&self.spec.app.name, |s| {
            s.drift.clone_from(&summaries);
            s.counters.drift_checks += 1;
            s.objects = [
                ("synced".to_owned(), total.saturating_sub(drifted)),
                ("drifted".to_owned(), drifted),
            ]
            .into();
            if s.sync == "Synced" || s.sync == "OutOfSync" {
                s.sync = if drifted == 0 { "Synced" } else { "OutOfSync" }.into();
            }
        });
        if drift.is_empty() {
            self.reported.clear();
            return;
        }
        for d in &drift {
            let summary = d.summary();
            if self.reported.insert(summary.clone()) {
                warn!(drift = %summary, "drift");
                let message = format!(
                    "live object differs from revision {}: {summary}",
                    done.revision.commit
                );
                if let Err(e) = self
                    .env
                    .cluster
                    .event(&d.object, EventType::Warning, "Drifted", &message)
                    .await
                {
                    debug!(error = %e, "cannot record the drift event");
                }
            }
        }
        if !self.spec.self_heal || self.suspension().await.is_some() {
            return;
        }
        tokio::time::sleep(self.spec.self_heal_delay).await;
        let Some(tree) = self
            .synced_tree("cannot read the synced revision to heal drift")
            .await
        else {
            return;
        };
        let Some(done) = &self.synced else {
            return;
        };
        let mut healing = self.spec.app.clone();
        // Git wins over whoever changed the fields.
        healing.execute.force = true;
        let record = self.record("self-heal", None);
        let healed = reconcile::sync(
            &self.env.cluster,
            &healing,
            &tree,
            Some(&done.revision),
            record,
            &|_| {},
        )
        .await;
        match healed {
            Ok(healed) if healed.outcome.failed.is_empty() => {
                info!(objects = drift.len(), "drift healed");
                for d in &drift {
                    let _ = self
                        .env
                        .cluster
                        .event(
                            &d.object,
                            EventType::Normal,
                            "DriftHealed",
                            &format!("re-applied revision {}", done.revision.commit),
                        )
                        .await;
                }
                self.reported.clear();
                self.env.registry.update(&self.spec.app.name, |s| {
                    s.drift.clear();
                    s.sync = "Synced".into();
                    s.counters.self_heals += 1;
                });
            }
            Ok(healed) => warn!(failed = healed.outcome.failed.len(), "self-heal failed"),
            Err(e) => {
                let error = crate::error_chain(&e);
                warn!(error, "self-heal failed");
            }
        }
    }

    /// Carries out an operator's request.
    async fn serve(&mut self, request: Request) {
        match request {
            Request::Sync(reply) => {
                let result = match self.fetch().await {
                    Ok(fetched) => self.sync_revision(fetched, "api", None).await,
                    Err(message) => Err(message),
                };
                let _ = reply.send(result.map(|commit| serde_json::json!({"synced": commit})));
            }
            Request::Diff(reply) => {
                let _ = reply.send(self.diff().await);
            }
            Request::RollbackDirect { to, reply } => {
                let result = self.rollback_direct(&to).await;
                let _ =
                    reply.send(result.map(
                        |commit| serde_json::json!({"rolledBackTo": commit, "suspended": true}),
                    ));
            }
            Request::Revert { to, reply } => {
                let result = self.revert(&to).await;
                if result.is_ok() {
                    // The agent syncs its own commit like any other, now.
                    self.fetch_pass(false).await;
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Commits a revert of the app's path to `to` and pushes it.
    async fn revert(&self, to: &str) -> Result<serde_json::Value, String> {
        let rollback = git::Rollback {
            url: self.spec.source.url.clone(),
            branch: self.spec.source.reference.clone(),
            path: self.spec.source.path.clone(),
            to: to.to_owned(),
            access: self.access().await?,
            author: git::Author {
                name: "gitsync".into(),
                email: "gitsync@localhost".into(),
            },
        };
        let scratch = self
            .spec
            .cache_dir
            .join(format!("rollback-{}", self.name()));
        let lock = Arc::clone(&self.lock);
        let commit = tokio::task::spawn_blocking(move || {
            let _repo = lock.lock();
            git::revert_to(&rollback, &scratch).map_err(|e| crate::error_chain(&e))
        })
        .await
        .map_err(|e| e.to_string())??;
        info!(%commit, to, "pushed a rollback commit; syncing it");
        Ok(serde_json::json!({"reverted": commit, "to": to}))
    }

    /// What a sync of the tracked ref's tip would change now.
    async fn diff(&self) -> Result<serde_json::Value, String> {
        let fetched = self.fetch().await?;
        let rev = fetched.clone();
        let tree = self.read(rev).await?;
        let planned = reconcile::plan(
            &self.env.cluster,
            &self.spec.app,
            &tree,
            Some(&fetched.commit),
            Some(&self.env.rollouts),
            false,
        )
        .await
        .map_err(|e| crate::error_chain(&e))?;
        let summary = planned.plan.summary();
        Ok(serde_json::json!({
            "revision": registry::Revision::from(&fetched),
            "summary": summary,
            "changes": planned.plan.has_changes(),
            "diff": plan_text(&planned.plan),
        }))
    }

    /// Applies the render of `to` now and suspends automatic sync until resumed.
    async fn rollback_direct(&mut self, to: &str) -> Result<String, String> {
        let spec = to.to_owned();
        let revision = self
            .with_mirror(move |m| m.at(&spec).map_err(|e| crate::error_chain(&e)))
            .await??;
        let commit = revision.commit.clone();
        // Suspend first: the next interval must not undo the rollback.
        let suspension = Suspension::rollback(&commit);
        self.env
            .control
            .set_suspension(self.name(), Some(&suspension))
            .await
            .map_err(|e| format!("cannot suspend the app: {}", crate::error_chain(&e)))?;
        self.env
            .registry
            .update(self.name(), |s| s.suspended = Some(suspension));
        self.sync_revision(revision, "rollback", Some(commit)).await
    }
}

/// Marks the app Failed with `message` (it was attempted: readiness counts it).
fn report_failure(registry: &Registry, app: &str, message: &str) {
    registry.update(app, |s| {
        s.attempted = true;
        s.sync = "Failed".into();
        s.last_error = Some(message.to_owned());
    });
}

/// A sync's outcome as the app's result: `Err` with the reason unless it succeeded.
fn judge(outcome: &Outcome, commit: &str) -> Result<(), String> {
    if outcome.result == SyncResult::Superseded {
        Err(format!(
            "the sync of commit {commit} was superseded by a newer commit"
        ))
    } else if outcome.is_success() {
        Ok(())
    } else if outcome.failed.is_empty() {
        Err(format!(
            "commit {commit} applied, but the app is not healthy ({:?}): {}",
            outcome.result,
            outcome
                .health
                .as_ref()
                .map(|h| h.reason.clone())
                .unwrap_or_default()
        ))
    } else {
        Err(failures(outcome, commit))
    }
}

/// The plan's changes as unified diffs with a header per object (Secrets are masked
/// by the diff stage), cut at [`DIFF_LIMIT`].
pub fn plan_text(plan: &Plan) -> String {
    let mut out = String::new();
    for step in plan
        .steps
        .iter()
        .filter(|s| s.diff.action != Action::Unchanged)
    {
        out.push_str(&format!(
            "# {} {}\n",
            step.diff.action.as_str(),
            step.diff.id.short()
        ));
        if step.diff.action == Action::Prune {
            out.push('\n');
            continue;
        }
        out.push_str(&step.diff.unified());
        out.push('\n');
        if out.len() > DIFF_LIMIT {
            let cut = (0..=DIFF_LIMIT)
                .rev()
                .find(|&i| out.is_char_boundary(i))
                .unwrap_or(0);
            out.truncate(cut);
            out.push_str("\n… (cut)\n");
            break;
        }
    }
    out
}

/// Logs every write that failed.
fn log_failures(event: Event<'_>) {
    if let Event::Failed(step, message) = event {
        warn!(object = %step.diff.id.short(), error = message, "write failed");
    }
}

/// The failed writes of an outcome, in one line.
fn failures(outcome: &Outcome, commit: &str) -> String {
    format!(
        "{} object(s) failed at commit {commit}: {}",
        outcome.failed.len(),
        outcome
            .failed
            .iter()
            .map(|f| format!("{}: {}", f.object, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    )
}

/// The Git credentials in Secret `name`: `token` (and `username`) for HTTPS, or
/// `sshPrivateKey` and `knownHosts` (and `passphrase`) for SSH.
/// The credentials in Secret `name`, and the extra CA certificates (`ca.crt`) an
/// https remote is trusted with.
async fn credentials(
    secrets: &crate::secrets::Secrets,
    name: Option<&str>,
) -> Result<(git::Auth, Option<String>), String> {
    let Some(name) = name else {
        return Ok((git::Auth::None, None));
    };
    let data = secrets
        .data(name)
        .await
        .map_err(|e| crate::error_chain(&e))?
        .ok_or_else(|| format!("the credentials Secret {name} does not exist"))?;
    let text = |key: &str| {
        data.get(key)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .filter(|v| !v.is_empty())
    };
    let ca = text("ca.crt");
    if let Some(key) = text("sshPrivateKey") {
        let known_hosts = text("knownHosts").ok_or_else(|| {
            format!("Secret {name} has sshPrivateKey but no knownHosts: host keys must be pinned")
        })?;
        let auth = git::Auth::Ssh {
            private_key: key,
            passphrase: text("passphrase"),
            known_hosts,
        };
        return Ok((auth, ca));
    }
    if let Some(token) = text("token") {
        let auth = git::Auth::token(&text("username").unwrap_or_default(), token.trim());
        return Ok((auth, ca));
    }
    if ca.is_some() {
        return Ok((git::Auth::None, ca));
    }
    Err(format!(
        "Secret {name} has neither token (HTTPS), sshPrivateKey and knownHosts (SSH), \
         nor ca.crt"
    ))
}

/// Sleeps until `at`, forever when `None`.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Fetches every `interval` until the app's tree differs from `tree`, then cancels.
async fn watch_for_newer(
    mirror: Arc<std::sync::Mutex<Mirror>>,
    lock: Arc<std::sync::Mutex<()>>,
    tree: String,
    cancel: Cancel,
    interval: Duration,
) {
    loop {
        tokio::time::sleep(interval).await;
        let m = Arc::clone(&mirror);
        let l = Arc::clone(&lock);
        let fetched = tokio::task::spawn_blocking(move || {
            let _repo = l.lock().ok()?;
            m.lock().ok()?.fetch().ok()
        })
        .await;
        if let Ok(Some(rev)) = fetched
            && rev.tree != tree
        {
            info!(commit = %rev.commit, "a newer commit supersedes the running sync");
            cancel.cancel();
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_names_the_failure() {
        let ok = Outcome::default();
        assert!(judge(&ok, "abc").is_ok());
        let superseded = Outcome {
            result: SyncResult::Superseded,
            ..Outcome::default()
        };
        assert!(
            judge(&superseded, "abc")
                .expect_err("superseded")
                .contains("superseded")
        );
    }
}
