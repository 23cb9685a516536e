//! A watch-fed cache of one app's live objects, per kind the app renders: what a sync
//! of a new revision plans against instead of listing every kind again (listing
//! thousands of objects is most of a sync's time before its first write). Each event
//! after the initial listing also ticks the app's drift check (the app's loop discards
//! the ticks of its own writes).
//!
//! Consistency: a watch lags the API server by the time an event takes to arrive. A
//! plan made against a slightly stale object is still safe: server-side apply of the
//! desired state is idempotent, deleting an object already gone succeeds, and drift
//! the cache had not seen yet is found by the drift check its event triggers. Kinds
//! without a ready cache (not rendered at the last sync, still listing, or their watch
//! interrupted) are listed as before. Objects are kept as compact JSON text: a parsed
//! tree costs several times its text.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt as _;
use gitsync_core::manifest::{LABEL_APP, ObjectId};
use kube::api::DynamicObject;
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Cluster, to_value};

/// The watched kinds of one app and what their watches have seen.
pub struct LiveCache {
    app: String,
    /// (group, kind) → its watch.
    kinds: Mutex<BTreeMap<(String, String), Kind>>,
    ticks: mpsc::Sender<()>,
    /// The receiving end of `ticks`, until the app's loop takes it.
    receiver: Mutex<Option<mpsc::Receiver<()>>>,
}

/// One kind's watches: one over the whole cluster, or one per namespace when gitsync is
/// confined to some (their objects are disjoint).
struct Kind {
    watches: Vec<Watch>,
}

/// A watch task and the objects it has seen.
struct Watch {
    store: Arc<Mutex<Store>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A kind's objects, each found by its namespace and name, in that order (the order
/// lists have, which the plan's indexes build from fastest).
type Objects = BTreeSet<Cached>;

/// One object in a single allocation: `namespace NUL name NUL json` (names cannot hold
/// a NUL), equal to and ordered by its namespace and name only, so that a probe of
/// those two finds it.
struct Cached(Box<str>);

impl Cached {
    fn new(namespace: Option<&str>, name: &str, json: &str) -> Self {
        let mut text =
            String::with_capacity(namespace.map_or(0, str::len) + name.len() + json.len() + 2);
        text.push_str(namespace.unwrap_or_default());
        text.push('\0');
        text.push_str(name);
        text.push('\0');
        text.push_str(json);
        Self(text.into_boxed_str())
    }

    /// `namespace NUL name NUL`.
    fn key(&self) -> &str {
        Self::key_of(&self.0)
    }

    fn key_of(text: &str) -> &str {
        let mut nuls = text.match_indices('\0').map(|(i, _)| i);
        let end = nuls.nth(1).map_or(text.len(), |i| i + 1);
        &text[..end]
    }

    /// The object's JSON in a cached entry's text.
    fn json_of(text: &str) -> &str {
        &text[Self::key_of(text).len()..]
    }

    fn json(&self) -> &str {
        Self::json_of(&self.0)
    }
}

impl PartialEq for Cached {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for Cached {}

impl Ord for Cached {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(other.key())
    }
}

impl PartialOrd for Cached {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Default)]
struct Store {
    /// The initial listing is complete and the watch is not interrupted.
    ready: bool,
    objects: Objects,
}

impl std::fmt::Debug for LiveCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LiveCache")
            .field("app", &self.app)
            .field("kinds", &kinds.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl LiveCache {
    /// An empty cache for `app`.
    pub fn new(app: &str) -> Self {
        let (ticks, receiver) = mpsc::channel(16);
        Self {
            app: app.to_owned(),
            kinds: Mutex::new(BTreeMap::new()),
            ticks,
            receiver: Mutex::new(Some(receiver)),
        }
    }

    /// The receiver of the change ticks, once: a tick after each change to a watched
    /// object. Once it is dropped, the watches stop.
    pub fn take_ticks(&self) -> Option<mpsc::Receiver<()>> {
        self.receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// The app's live objects of `group`/`kind` as the watch last saw them, or `None`
    /// when that kind is not watched or its watch is not ready.
    pub fn objects(&self, group: &str, kind: &str) -> Option<Vec<Value>> {
        // Copied out, parsed without holding up the watches.
        let mut texts: Vec<Box<str>> = Vec::new();
        for store in self.stores(group, kind)? {
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            if !store.ready {
                return None;
            }
            texts.extend(store.objects.iter().map(|c| c.0.clone()));
        }
        Some(
            texts
                .iter()
                .filter_map(|text| serde_json::from_str(Cached::json_of(text)).ok())
                .collect(),
        )
    }

    fn stores(&self, group: &str, kind: &str) -> Option<Vec<Arc<Mutex<Store>>>> {
        let kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let kind = kinds.get(&(group.to_owned(), kind.to_owned()))?;
        Some(kind.watches.iter().map(|w| Arc::clone(&w.store)).collect())
    }

    /// The live object `id` as the watch last saw it: `None` when its kind is not
    /// watched or its watch is not ready, `Some(None)` when the watch saw no such
    /// object carrying the app's label.
    pub fn object(&self, id: &ObjectId) -> Option<Option<Value>> {
        let probe = Cached::new(id.namespace.as_deref(), &id.name, "");
        for store in self.stores(&id.group, &id.kind)? {
            let store = store.lock().unwrap_or_else(PoisonError::into_inner);
            if !store.ready {
                return None;
            }
            if let Some(found) = store.objects.get(&probe) {
                return Some(serde_json::from_str(found.json()).ok());
            }
        }
        Some(None)
    }
}

impl Cluster {
    /// Makes `cache` watch exactly the kinds of the app's `desired` objects (by the
    /// app's label): watches of kinds still rendered carry on, new kinds start one
    /// (listing first), kinds no longer rendered stop.
    pub async fn watch_app<'a>(
        &self,
        cache: &LiveCache,
        desired: impl IntoIterator<Item = &'a ObjectId>,
    ) {
        let mut wanted: BTreeMap<(String, String), &ObjectId> = BTreeMap::new();
        for id in desired {
            wanted
                .entry((id.group.clone(), id.kind.clone()))
                .or_insert(id);
        }
        let mut started = Vec::new();
        for (key, id) in &wanted {
            if cache
                .kinds
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(key)
            {
                continue;
            }
            // A kind the cluster does not serve yet is listed until it is; so is one
            // outside the namespaces gitsync is confined to (which lists nothing).
            let Ok((ar, caps)) = self.resolve(id).await else {
                continue;
            };
            let namespaces = self.list_namespaces(&caps);
            if namespaces.is_empty() {
                continue;
            }
            let watches = namespaces
                .into_iter()
                .map(|namespace| {
                    let api = super::api_in(&self.client, &ar, namespace);
                    let config =
                        watcher::Config::default().labels(&format!("{LABEL_APP}={}", cache.app));
                    let store = Arc::new(Mutex::new(Store::default()));
                    let task = tokio::spawn(follow(
                        watcher(api, config).default_backoff(),
                        ar.clone(),
                        Arc::clone(&store),
                        cache.ticks.clone(),
                    ));
                    Watch { store, task }
                })
                .collect();
            started.push((key.clone(), Kind { watches }));
        }
        let mut kinds = cache.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        kinds.retain(|key, _| wanted.contains_key(key));
        kinds.extend(started);
    }
}

/// Applies a kind's watch events to its store, ticking `ticks` on every change after
/// the initial listing.
async fn follow(
    stream: impl futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>>,
    ar: kube::discovery::ApiResource,
    store: Arc<Mutex<Store>>,
    ticks: mpsc::Sender<()>,
) {
    let mut stream = std::pin::pin!(stream);
    // A relisting fills this and replaces the objects at once when it is complete.
    let mut relisted: Option<Objects> = None;
    while let Some(event) = stream.next().await {
        let tick = {
            let mut store = store.lock().unwrap_or_else(PoisonError::into_inner);
            match event {
                Ok(watcher::Event::Init) => {
                    relisted = Some(BTreeSet::new());
                    false
                }
                Ok(watcher::Event::InitApply(object)) => {
                    if let Some(listed) = relisted.as_mut() {
                        listed.replace(cached(object, &ar));
                    }
                    false
                }
                Ok(watcher::Event::InitDone) => {
                    let was_ready = store.ready;
                    if let Some(listed) = relisted.take() {
                        store.objects = listed;
                    }
                    store.ready = true;
                    // A relisting after an interruption may hide changes.
                    was_ready
                }
                Ok(watcher::Event::Apply(object)) => {
                    store.objects.replace(cached(object, &ar));
                    store.ready = relisted.is_none();
                    true
                }
                Ok(watcher::Event::Delete(object)) => {
                    let probe = Cached::new(
                        object.metadata.namespace.as_deref(),
                        object.metadata.name.as_deref().unwrap_or_default(),
                        "",
                    );
                    store.objects.remove(&probe);
                    store.ready = relisted.is_none();
                    true
                }
                Err(e) => {
                    tracing::debug!(kind = %ar.kind, error = %e, "watch interrupted; resuming");
                    store.ready = false;
                    false
                }
            }
        };
        if tick && let Err(mpsc::error::TrySendError::Closed(())) = ticks.try_send(()) {
            return;
        }
    }
}

fn cached(object: DynamicObject, ar: &kube::discovery::ApiResource) -> Cached {
    let namespace = object.metadata.namespace.clone();
    let name = object.metadata.name.clone().unwrap_or_default();
    let json = serde_json::to_string(&to_value(object, ar)).unwrap_or_default();
    Cached::new(namespace.as_deref(), &name, &json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gitsync_core::Manifest;
    use kube::api::Api;

    /// The app's ConfigMaps in namespace `default`, as render would give them.
    fn desired(names: &[&str]) -> Vec<Manifest> {
        names
            .iter()
            .map(|name| {
                let object = serde_json::json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default",
                        "labels": {LABEL_APP: "shop"}},
                    "data": {"v": "1"},
                });
                Manifest {
                    id: ObjectId::of(&object).expect("id"),
                    source: gitsync_core::manifest::Source {
                        file: format!("{name}.yaml"),
                        line: 1,
                        column: 1,
                    },
                    digest: String::new(),
                    object,
                }
            })
            .collect()
    }

    fn names(live: &[Value], kind: &str) -> Vec<String> {
        let mut names: Vec<String> = live
            .iter()
            .filter(|o| o["kind"] == kind)
            .filter_map(|o| o.pointer("/metadata/name")?.as_str().map(str::to_owned))
            .collect();
        names.sort();
        names
    }

    async fn until(mut done: impl FnMut() -> bool) {
        for _ in 0..500 {
            if done() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the cache did not catch up within 5 s");
    }

    #[test]
    fn a_cached_object_is_found_by_namespace_and_name() {
        let mut objects = Objects::new();
        objects.replace(Cached::new(Some("ns"), "a", r#"{"v":1}"#));
        objects.replace(Cached::new(None, "a", r#"{"v":2}"#));
        objects.replace(Cached::new(Some("ns"), "a", r#"{"v":3}"#));
        assert_eq!(objects.len(), 2);
        let probe = Cached::new(Some("ns"), "a", "");
        assert_eq!(objects.get(&probe).map(Cached::json), Some(r#"{"v":3}"#));
        assert!(objects.remove(&Cached::new(None, "a", "")));
        assert_eq!(objects.len(), 1);
    }

    #[tokio::test]
    async fn a_sync_reads_watched_kinds_from_the_cache_and_sees_others_changes() {
        let local = gitsync_local_cluster::LocalCluster::ephemeral()
            .await
            .expect("local cluster");
        let cluster = Cluster::connect(
            &super::super::Endpoint::Kube {
                kubeconfig: Some(local.kubeconfig_path().to_path_buf()),
                context: None,
            }
            .into(),
        )
        .await
        .expect("connect");
        let desired = desired(&["a", "b"]);
        let api: Api<DynamicObject> = Api::namespaced_with(
            cluster.client().clone(),
            "default",
            &kube::discovery::ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()),
        );
        let apply = kube::api::PatchParams::apply("kubectl");
        for m in &desired {
            api.patch(&m.id.name, &apply, &kube::api::Patch::Apply(&m.object))
                .await
                .expect("apply");
        }
        let cache = LiveCache::new("shop");
        let mut ticks = cache.take_ticks().expect("ticks");
        cluster
            .watch_app(&cache, desired.iter().map(|m| &m.id))
            .await;
        until(|| cache.objects("", "ConfigMap").is_some_and(|o| o.len() == 2)).await;
        // One object by its identity: there, not there, or a kind not watched.
        let one = cache
            .object(&desired[0].id)
            .expect("watched")
            .expect("cached");
        assert_eq!(one["metadata"]["name"], "a");
        let mut missing = desired[0].id.clone();
        missing.name = "nope".into();
        assert_eq!(cache.object(&missing), Some(None));
        missing.kind = "Secret".into();
        assert_eq!(cache.object(&missing), None);

        // Read through the cache: every kind but ConfigMaps is listed.
        let lists = |local: &gitsync_local_cluster::LocalCluster| {
            local.stats().by_verb.get("list").copied().unwrap_or(0)
        };
        let before = lists(&local);
        let live = cluster.labelled("shop", Some(&cache)).await.expect("live");
        let through_cache = lists(&local) - before;
        assert_eq!(names(&live, "ConfigMap"), ["a", "b"]);
        let before = lists(&local);
        let fresh = cluster.live_objects("shop", &desired).await.expect("live");
        assert_eq!(lists(&local) - before, through_cache + 1);
        assert_eq!(names(&fresh, "ConfigMap"), ["a", "b"]);

        // Someone else's edit and deletion reach the cache, and tick.
        while ticks.try_recv().is_ok() {}
        api.patch(
            "a",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"data": {"v": "edited"}})),
        )
        .await
        .expect("edit");
        api.delete("b", &kube::api::DeleteParams::default())
            .await
            .expect("delete");
        until(|| {
            cache.objects("", "ConfigMap").is_some_and(|o| {
                o.len() == 1 && o[0].pointer("/data/v") == Some(&Value::from("edited"))
            })
        })
        .await;
        assert!(ticks.try_recv().is_ok(), "a change by others ticks");

        // A kind no longer rendered stops being watched (and is listed again).
        cluster.watch_app(&cache, []).await;
        assert!(cache.objects("", "ConfigMap").is_none());
    }
}
