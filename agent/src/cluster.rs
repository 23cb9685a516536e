//! The Kubernetes edge: connecting (kubeconfig, in-cluster, or the local cluster),
//! discovery, reading the live objects of an app, and executing a plan with server-side
//! apply (field manager `gitsync`).
//!
//! The same `kube::Client` code path serves a real cluster and the local one. Nothing
//! here decides *what* to change: that is [`gitsync_core::plan`].

mod cache;
mod connect;
mod events;
mod execute;

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt as _, TryStreamExt as _};
use gitsync_core::manifest::{LABEL_APP, Manifest, ObjectId};
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope, verbs};
use kube::{Client, core::GroupVersionKind};
use serde_json::Value;
use tokio::sync::RwLock;

pub use cache::LiveCache;
pub use connect::{Endpoint, Target};
pub use events::Type as EventType;
pub(crate) use execute::retry;
pub use execute::{Cancel, Event, Options as ExecuteOptions, Outcome, SyncResult};

/// Errors talking to a cluster.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read kubeconfig {path}: {message}")]
    Kubeconfig { path: String, message: String },
    #[error(
        "no cluster configured: {message} (pass --kubeconfig/--context, set KUBECONFIG, or use --cluster local)"
    )]
    NoConfig { message: String },
    #[error("cannot start the local cluster")]
    Local(#[source] gitsync_local_cluster::Error),
    #[error("cannot reach the cluster at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{object} is outside the namespaces gitsync is confined to ({namespaces}); \
         it may only manage namespaced objects in them"
    )]
    OutOfScope { object: String, namespaces: String },
    #[error("the cluster does not serve {kind} in {api_version} (is its CRD installed?)")]
    UnknownKind { api_version: String, kind: String },
    #[error("cannot list {kind}")]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read {object}")]
    Get {
        object: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Desired objects of one kind and namespace missing from the labelled lists from
/// which on they are found by listing the namespace rather than one GET each.
const LIST_INSTEAD_OF_GETS: usize = 16;

/// A connected cluster with its discovery.
pub struct Cluster {
    client: Client,
    url: String,
    discovery: RwLock<Discovery>,
    /// The namespaces it is confined to; empty: the whole cluster.
    scope: Vec<String>,
    /// Keeps an in-process local cluster alive while this handle lives.
    _local: Option<gitsync_local_cluster::LocalCluster>,
}

impl Cluster {
    /// Connects to `target` and runs discovery (so an unreachable cluster fails here,
    /// with the URL in the message).
    pub async fn connect(target: &Target) -> Result<Self> {
        let connected = connect::connect(&target.endpoint).await?;
        let discovery = Discovery::new(connected.client.clone())
            .run()
            .await
            .map_err(|source| Error::Unreachable {
                url: connected.url.clone(),
                source,
            })?;
        Ok(Self {
            client: connected.client,
            url: connected.url,
            discovery: RwLock::new(discovery),
            scope: target.namespaces.clone(),
            _local: connected.local,
        })
    }

    /// The API server URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every live object of `app` (by its label, across all listable kinds, listed),
    /// plus the live versions of desired objects that do not carry the label yet.
    pub async fn live_objects(&self, app: &str, desired: &[Manifest]) -> Result<Vec<Value>> {
        let labelled = self.labelled(app, None).await?;
        self.with_unlabelled(labelled, desired).await
    }

    /// Every live object carrying `app`'s label, across all listable kinds: the kinds
    /// `cache` holds ready from it, the others listed. Needs no render, so a sync reads
    /// it while it renders.
    pub async fn labelled(&self, app: &str, cache: Option<&LiveCache>) -> Result<Vec<Value>> {
        let mut live = Vec::new();
        let mut resources = self.listable_resources().await;
        if let Some(cache) = cache {
            resources.retain(|(ar, _)| match cache.objects(&ar.group, &ar.kind) {
                Some(objects) => {
                    live.extend(objects);
                    false
                }
                None => true,
            });
        }
        live.extend(
            self.list_all(resources, &format!("{LABEL_APP}={app}"))
                .await?,
        );
        Ok(live)
    }

    /// `live` (an app's [`labelled`](Self::labelled) objects) with the live versions of
    /// the desired objects that do not carry the label yet.
    pub async fn with_unlabelled(
        &self,
        mut live: Vec<Value>,
        desired: &[Manifest],
    ) -> Result<Vec<Value>> {
        // Hashed: thousands of keys sharing group, kind and namespace compare slowly.
        let seen: std::collections::HashSet<_> =
            gitsync_core::manifest::index(&live).into_keys().collect();
        let missing: Vec<&Manifest> = desired
            .iter()
            .filter(|m| !seen.contains(&m.id.group_kind_key()))
            .collect();
        // A few are read one by one; many of one kind and namespace (a first sync) by
        // one unfiltered list of that namespace, not thousands of GETs.
        let mut groups: BTreeMap<(&str, &str, &str, Option<&str>), Vec<&Manifest>> =
            BTreeMap::new();
        for m in missing {
            let id = &m.id;
            groups
                .entry((&id.group, &id.version, &id.kind, id.namespace.as_deref()))
                .or_default()
                .push(m);
        }
        let mut gets = Vec::new();
        for ((_, _, _, namespace), members) in groups {
            if members.len() < LIST_INSTEAD_OF_GETS {
                gets.extend(members.iter().map(|m| &m.id));
                continue;
            }
            let wanted: BTreeSet<&str> = members.iter().map(|m| m.id.name.as_str()).collect();
            for object in self.list_in(&members[0].id, namespace).await? {
                let name = object.pointer("/metadata/name").and_then(Value::as_str);
                if name.is_some_and(|n| wanted.contains(n)) {
                    live.push(object);
                }
            }
        }
        let found = futures::stream::iter(gets.into_iter().map(|id| self.get(id)))
            .buffer_unordered(8)
            .try_collect::<Vec<_>>()
            .await?;
        live.extend(found.into_iter().flatten());
        Ok(live)
    }

    /// Every object of `id`'s kind in `namespace` (all namespaces when `None`); none
    /// when the kind is not served yet.
    async fn list_in(&self, id: &ObjectId, namespace: Option<&str>) -> Result<Vec<Value>> {
        let Ok((ar, api)) = self.api(id, namespace).await else {
            return Ok(Vec::new());
        };
        list_values(&api, &ar, &ListParams::default())
            .await
            .map_err(|source| Error::List {
                kind: ar.kind.clone(),
                source,
            })
    }

    /// Where a list or watch of a kind looks: `[None]` (every namespace, or a
    /// cluster-scoped kind) for the whole cluster; confined, each namespace of the
    /// scope for a namespaced kind and nowhere for a cluster-scoped one.
    pub(crate) fn list_namespaces(&self, caps: &ApiCapabilities) -> Vec<Option<&str>> {
        match caps.scope {
            Scope::Namespaced => self.namespaced_scope(),
            Scope::Cluster if self.scope.is_empty() => vec![None],
            Scope::Cluster => Vec::new(),
        }
    }

    /// Where a namespaced kind is looked for: every namespace, or each of the scope.
    fn namespaced_scope(&self) -> Vec<Option<&str>> {
        if self.scope.is_empty() {
            vec![None]
        } else {
            self.scope.iter().map(|n| Some(n.as_str())).collect()
        }
    }

    /// The live object, if it exists. A kind the cluster does not serve yet (a CRD
    /// applied in the same sync) reads as absent.
    pub async fn get(&self, id: &ObjectId) -> Result<Option<Value>> {
        let Ok((ar, api)) = self.api(id, id.namespace.as_deref()).await else {
            return Ok(None);
        };
        let object = retry(&Cancel::default(), || api.get_opt(&id.name))
            .await
            .map_err(|source| Error::Get {
                object: id.short(),
                source,
            })?;
        Ok(object.map(|o| to_value(o, &ar)))
    }

    /// Every object matching a label selector, across all listable kinds.
    pub async fn list_labeled(&self, selector: &str) -> Result<Vec<Value>> {
        let resources = self.listable_resources().await;
        self.list_all(resources, selector).await
    }

    /// Every object of `resources` matching a label selector.
    async fn list_all(
        &self,
        resources: Vec<(ApiResource, ApiCapabilities)>,
        selector: &str,
    ) -> Result<Vec<Value>> {
        let lists = futures::stream::iter(resources.into_iter().map(|(ar, caps)| async move {
            self.list_in_each(&ar, self.list_namespaces(&caps), selector)
                .await
        }))
        .buffer_unordered(8)
        .try_collect::<Vec<_>>()
        .await?;
        Ok(lists.into_iter().flatten().collect())
    }

    /// Every object of a namespaced kind matching `selector`: across the cluster, or
    /// in each namespace gitsync is confined to.
    async fn list(&self, ar: &ApiResource, selector: &str) -> Result<Vec<Value>> {
        self.list_in_each(ar, self.namespaced_scope(), selector)
            .await
    }

    /// [`list_one`](Self::list_one) in each of `namespaces`, together.
    async fn list_in_each(
        &self,
        ar: &ApiResource,
        namespaces: Vec<Option<&str>>,
        selector: &str,
    ) -> Result<Vec<Value>> {
        let mut all = Vec::new();
        for namespace in namespaces {
            all.extend(self.list_one(ar, namespace, selector).await?);
        }
        Ok(all)
    }

    /// Every object of a kind matching `selector` in `namespace` (`None`: all).
    async fn list_one(
        &self,
        ar: &ApiResource,
        namespace: Option<&str>,
        selector: &str,
    ) -> Result<Vec<Value>> {
        let api = api_in(&self.client, ar, namespace);
        match list_values(&api, ar, &ListParams::default().labels(selector)).await {
            Ok(list) => Ok(list),
            // Least-privilege RBAC: a kind the agent may not list holds nothing it manages.
            Err(kube::Error::Api(status)) if status.code == 403 => {
                tracing::debug!(kind = %ar.kind, "not allowed to list; skipped");
                Ok(Vec::new())
            }
            Err(source) => Err(Error::List {
                kind: ar.kind.clone(),
                source,
            }),
        }
    }

    /// Preferred version of every kind that can be listed, without the noisy
    /// controller-made kinds nobody applies (Events, Endpoints, EndpointSlices).
    async fn listable_resources(&self) -> Vec<(ApiResource, ApiCapabilities)> {
        let discovery = self.discovery.read().await;
        discovery
            .groups()
            .flat_map(kube::discovery::ApiGroup::recommended_resources)
            .filter(|(ar, caps)| {
                caps.supports_operation(verbs::LIST)
                    && caps.supports_operation(verbs::PATCH)
                    && !matches!(ar.kind.as_str(), "Event" | "Endpoints" | "EndpointSlice")
            })
            .collect()
    }

    /// The resource of `id`'s kind, and an `Api` for it in `namespace`.
    pub(crate) async fn api(
        &self,
        id: &ObjectId,
        namespace: Option<&str>,
    ) -> Result<(ApiResource, Api<DynamicObject>)> {
        let (ar, caps) = self.resolve(id).await?;
        if !self.scope.is_empty() {
            let inside = match (&caps.scope, namespace) {
                (Scope::Namespaced, Some(ns)) => self.scope.iter().any(|s| s == ns),
                _ => false,
            };
            if !inside {
                return Err(Error::OutOfScope {
                    object: id.short(),
                    namespaces: self.scope.join(", "),
                });
            }
        }
        let api = api_for(&self.client, &ar, &caps, namespace);
        Ok((ar, api))
    }

    /// The API resource serving `id`'s kind; re-runs discovery once on a miss (a CRD
    /// may just have been created).
    pub(crate) async fn resolve(&self, id: &ObjectId) -> Result<(ApiResource, ApiCapabilities)> {
        let gvk = GroupVersionKind::gvk(&id.group, &id.version, &id.kind);
        if let Some(found) = self.discovery.read().await.resolve_gvk(&gvk) {
            return Ok(found);
        }
        let mut discovery = self.discovery.write().await;
        // Another caller may have refreshed it while this one waited for the lock.
        if let Some(found) = discovery.resolve_gvk(&gvk) {
            return Ok(found);
        }
        if let Ok(fresh) = Discovery::new(self.client.clone()).run().await {
            *discovery = fresh;
        }
        discovery
            .resolve_gvk(&gvk)
            .ok_or_else(|| Error::UnknownKind {
                api_version: id.api_version(),
                kind: id.kind.clone(),
            })
    }
}

/// An `Api` for a resource in one namespace, or across all of them (`None`).
pub(crate) fn api_in(
    client: &Client,
    ar: &ApiResource,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, ar),
        None => Api::all_with(client.clone(), ar),
    }
}

/// An `Api` for one object's resource and namespace.
fn api_for(
    client: &Client,
    ar: &ApiResource,
    caps: &ApiCapabilities,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    match (&caps.scope, namespace) {
        (Scope::Namespaced, Some(ns)) => Api::namespaced_with(client.clone(), ns, ar),
        (Scope::Namespaced, None) => Api::default_namespaced_with(client.clone(), ar),
        (Scope::Cluster, _) => Api::all_with(client.clone(), ar),
    }
}

/// A list response with its items as plain JSON, decoded once (no typed metadata, no
/// buffering of the whole list as `ObjectList`'s flattened type fields do).
#[derive(serde::Deserialize)]
struct RawList {
    #[serde(default)]
    items: Option<Vec<Value>>,
}

/// A list request (retried), its items as plain JSON with apiVersion and kind.
async fn list_values(
    api: &Api<DynamicObject>,
    ar: &ApiResource,
    params: &ListParams,
) -> Result<Vec<Value>, kube::Error> {
    let client: Client = api.clone().into_client();
    let list = retry(&Cancel::default(), || async {
        let mut request = kube::core::Request::new(api.resource_url())
            .list(params)
            .map_err(kube::Error::BuildRequest)?;
        request.extensions_mut().insert("list");
        client.request::<RawList>(request).await
    })
    .await?;
    let mut items = list.items.unwrap_or_default();
    for item in &mut items {
        set_type(item, ar);
    }
    Ok(items)
}

/// A dynamic object as plain JSON, with apiVersion and kind filled in (list items
/// come without them).
pub(crate) fn to_value(object: DynamicObject, ar: &ApiResource) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    set_type(&mut value, ar);
    value
}

fn set_type(value: &mut Value, ar: &ApiResource) {
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), Value::String(ar.api_version.clone()));
        map.insert("kind".into(), Value::String(ar.kind.clone()));
    }
}
