//! The resources the local cluster serves: group, version, plural, kind, scope, verbs,
//! short names and whether they have a `status` subresource, as a real API server's
//! discovery documents them.

use serde_json::Value;

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub has_status: bool,
}

impl Resource {
    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Verbs every served resource supports.
pub fn verbs() -> &'static [&'static str] {
    VERBS
}

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, [$($short:expr),*], $status:expr) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: &[$($short),*],
            has_status: $status,
        }
    };
}

/// Every built-in resource, grouped by group/version in discovery order.
pub const RESOURCES: &[Resource] = &[
    resource!(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        false,
        ["ns"],
        true
    ),
    resource!(
        "",
        "v1",
        "configmaps",
        "configmap",
        "ConfigMap",
        true,
        ["cm"],
        false
    ),
    resource!("", "v1", "secrets", "secret", "Secret", true, [], false),
    resource!(
        "",
        "v1",
        "services",
        "service",
        "Service",
        true,
        ["svc"],
        true
    ),
    resource!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        ["sa"],
        false
    ),
    resource!(
        "",
        "v1",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        "PersistentVolumeClaim",
        true,
        ["pvc"],
        true
    ),
    resource!("", "v1", "pods", "pod", "Pod", true, ["po"], true),
    resource!("", "v1", "events", "event", "Event", true, ["ev"], false),
    resource!(
        "",
        "v1",
        "endpoints",
        "endpoints",
        "Endpoints",
        true,
        ["ep"],
        false
    ),
    resource!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        ["deploy"],
        true
    ),
    resource!(
        "apps",
        "v1",
        "replicasets",
        "replicaset",
        "ReplicaSet",
        true,
        ["rs"],
        true
    ),
    resource!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        ["sts"],
        true
    ),
    resource!(
        "apps",
        "v1",
        "daemonsets",
        "daemonset",
        "DaemonSet",
        true,
        ["ds"],
        true
    ),
    resource!("batch", "v1", "jobs", "job", "Job", true, [], true),
    resource!(
        "batch",
        "v1",
        "cronjobs",
        "cronjob",
        "CronJob",
        true,
        ["cj"],
        true
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        ["ing"],
        true
    ),
    resource!(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "networkpolicy",
        "NetworkPolicy",
        true,
        ["netpol"],
        false
    ),
    resource!(
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
        "horizontalpodautoscaler",
        "HorizontalPodAutoscaler",
        true,
        ["hpa"],
        true
    ),
    resource!(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "poddisruptionbudget",
        "PodDisruptionBudget",
        true,
        ["pdb"],
        true
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "roles",
        "role",
        "Role",
        true,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        [],
        false
    ),
    resource!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        [],
        false
    ),
    resource!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        [],
        false
    ),
    resource!(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        ["crd", "crds"],
        true
    ),
];

/// True for kinds with a `scale` subresource.
pub fn has_scale(kind: &str) -> bool {
    matches!(kind, "Deployment" | "ReplicaSet" | "StatefulSet")
}

/// The built-in resource served at `group/version/plural`.
pub fn by_plural(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The resources one cluster serves: the built-in table plus the kinds its
/// CustomResourceDefinitions define (every served version of each).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    custom: Vec<&'static Resource>,
}

impl Catalog {
    /// The catalog for a set of stored CRDs.
    pub fn from_crds<'a>(crds: impl Iterator<Item = &'a Value>) -> Self {
        let mut custom: Vec<&'static Resource> = crds.flat_map(resources_of_crd).collect();
        custom.sort_by_key(|r| (r.group, r.version, r.plural));
        custom.dedup();
        Self { custom }
    }

    /// Every served resource, built-in first.
    pub fn all(&self) -> impl Iterator<Item = &'static Resource> + '_ {
        RESOURCES.iter().chain(self.custom.iter().copied())
    }

    /// The resource served at `group/version/plural`.
    pub fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
        self.all()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// The groups other than core with their versions, in first-seen order.
    pub fn groups(&self) -> Vec<(&'static str, Vec<&'static str>)> {
        let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
        for r in self.all().filter(|r| !r.group.is_empty()) {
            match out.iter_mut().find(|(g, _)| *g == r.group) {
                Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version),
                Some(_) => {}
                None => out.push((r.group, vec![r.version])),
            }
        }
        out
    }
}

/// The served versions of a CRD as resources. Built-in groups cannot be redefined.
fn resources_of_crd(crd: &Value) -> Vec<&'static Resource> {
    let spec = &crd["spec"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let group = text(&spec["group"]);
    let names = &spec["names"];
    let plural = text(&names["plural"]);
    let kind = text(&names["kind"]);
    if group.is_empty()
        || plural.is_empty()
        || kind.is_empty()
        || RESOURCES.iter().any(|r| r.group == group)
    {
        return Vec::new();
    }
    let singular = names["singular"]
        .as_str()
        .map_or_else(|| kind.to_lowercase(), str::to_owned);
    let short: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let has_status = v.pointer("/subresources/status").is_some();
            Some(intern(
                &group, version, &plural, &singular, &kind, namespaced, &short, has_status,
            ))
        })
        .collect()
}

/// One leaked `Resource` per distinct definition, shared by every cluster in the
/// process, so re-creating a CRD does not leak again.
#[allow(clippy::too_many_arguments)]
fn intern(
    group: &str,
    version: &str,
    plural: &str,
    singular: &str,
    kind: &str,
    namespaced: bool,
    short: &[String],
    has_status: bool,
) -> &'static Resource {
    static INTERNED: std::sync::Mutex<Vec<&'static Resource>> = std::sync::Mutex::new(Vec::new());
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let same = |r: &&&'static Resource| {
        r.group == group
            && r.version == version
            && r.plural == plural
            && r.singular == singular
            && r.kind == kind
            && r.namespaced == namespaced
            && r.has_status == has_status
            && r.short_names
                .iter()
                .copied()
                .eq(short.iter().map(String::as_str))
    };
    if let Some(found) = interned.iter().find(same) {
        return found;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let short_names: &'static [&'static str] = Box::leak(
        short
            .iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    );
    let resource: &'static Resource = Box::leak(Box::new(Resource {
        group: leak(group),
        version: leak(version),
        plural: leak(plural),
        singular: leak(singular),
        kind: leak(kind),
        namespaced,
        short_names,
        has_status,
    }));
    interned.push(resource);
    resource
}
