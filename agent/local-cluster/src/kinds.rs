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
    /// Groups such as `all` that `kubectl get <category>` expands to.
    pub categories: &'static [&'static str],
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

    /// True for a kind of the built-in table, false for one a CRD defines.
    pub fn is_builtin(&self) -> bool {
        by_plural(self.group, self.version, self.plural).is_some()
    }
}

/// Every verb of a collection and its objects.
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

/// Namespaces cannot be deleted as a collection.
const NAMESPACE_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

/// The verbs `res` serves, as its discovery document lists them.
pub fn verbs(res: &Resource) -> &'static [&'static str] {
    if res.group.is_empty() && res.plural == "namespaces" {
        NAMESPACE_VERBS
    } else {
        VERBS
    }
}

macro_rules! resource {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr,
     short: [$($short:expr),*], categories: [$($category:expr),*], status: $status:expr) => {
        Resource {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: &[$($short),*],
            categories: &[$($category),*],
            has_status: $status,
        }
    };
}

/// Every built-in resource, grouped by group/version in discovery order, with the short
/// names and categories `kubectl api-resources -o wide` shows for it on a real cluster.
#[rustfmt::skip]
pub const RESOURCES: &[Resource] = &[
    resource!("", "v1", "namespaces", "namespace", "Namespace", false, short: ["ns"], categories: [], status: true),
    resource!("", "v1", "configmaps", "configmap", "ConfigMap", true, short: ["cm"], categories: [], status: false),
    resource!("", "v1", "secrets", "secret", "Secret", true, short: [], categories: [], status: false),
    resource!("", "v1", "services", "service", "Service", true, short: ["svc"], categories: ["all"], status: true),
    resource!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, short: ["sa"], categories: [], status: false),
    resource!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, short: ["pvc"], categories: [], status: true),
    resource!("", "v1", "pods", "pod", "Pod", true, short: ["po"], categories: ["all"], status: true),
    resource!("", "v1", "events", "event", "Event", true, short: ["ev"], categories: [], status: false),
    resource!("", "v1", "endpoints", "endpoints", "Endpoints", true, short: ["ep"], categories: [], status: false),
    resource!("apps", "v1", "deployments", "deployment", "Deployment", true, short: ["deploy"], categories: ["all"], status: true),
    resource!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, short: ["rs"], categories: ["all"], status: true),
    resource!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, short: ["sts"], categories: ["all"], status: true),
    resource!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, short: ["ds"], categories: ["all"], status: true),
    resource!("batch", "v1", "jobs", "job", "Job", true, short: [], categories: ["all"], status: true),
    resource!("batch", "v1", "cronjobs", "cronjob", "CronJob", true, short: ["cj"], categories: ["all"], status: true),
    resource!("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, short: ["ing"], categories: [], status: true),
    resource!("networking.k8s.io", "v1", "networkpolicies", "networkpolicy", "NetworkPolicy", true, short: ["netpol"], categories: [], status: false),
    resource!("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, short: ["hpa"], categories: ["all"], status: true),
    resource!("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, short: ["pdb"], categories: [], status: true),
    resource!("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, short: [], categories: [], status: false),
    resource!("rbac.authorization.k8s.io", "v1", "rolebindings", "rolebinding", "RoleBinding", true, short: [], categories: [], status: false),
    resource!("rbac.authorization.k8s.io", "v1", "clusterroles", "clusterrole", "ClusterRole", false, short: [], categories: [], status: false),
    resource!("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false, short: [], categories: [], status: false),
    resource!("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, short: [], categories: [], status: false),
    resource!("storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, short: ["sc"], categories: [], status: false),
    resource!("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", "mutatingwebhookconfiguration", "MutatingWebhookConfiguration", false, short: [], categories: ["api-extensions"], status: false),
    resource!("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", "validatingwebhookconfiguration", "ValidatingWebhookConfiguration", false, short: [], categories: ["api-extensions"], status: false),
    resource!("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false, short: ["crd", "crds"], categories: ["api-extensions"], status: true),
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
    /// The catalog for a set of stored CRDs: the kinds of those Established.
    pub fn from_crds<'a>(crds: impl Iterator<Item = &'a Value>) -> Self {
        let mut custom: Vec<&'static Resource> = crds
            .filter(|crd| crate::rollout::established(crd))
            .flat_map(resources_of_crd)
            .collect();
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
    let strings = |list: &Value| -> Vec<String> {
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let short = strings(&names["shortNames"]);
    let categories = strings(&names["categories"]);
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    spec["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|v| v["served"].as_bool().unwrap_or(true))
        .filter_map(|v| {
            let version = v["name"].as_str()?;
            let has_status = v.pointer("/subresources/status").is_some();
            Some(intern(&Definition {
                group: &group,
                version,
                plural: &plural,
                singular: &singular,
                kind: &kind,
                namespaced,
                short: &short,
                categories: &categories,
                has_status,
            }))
        })
        .collect()
}

/// What a CRD's served version defines.
struct Definition<'a> {
    group: &'a str,
    version: &'a str,
    plural: &'a str,
    singular: &'a str,
    kind: &'a str,
    namespaced: bool,
    short: &'a [String],
    categories: &'a [String],
    has_status: bool,
}

/// One leaked `Resource` per distinct definition, shared by every cluster in the
/// process, so re-creating a CRD does not leak again.
fn intern(d: &Definition<'_>) -> &'static Resource {
    static INTERNED: std::sync::Mutex<Vec<&'static Resource>> = std::sync::Mutex::new(Vec::new());
    let mut interned = INTERNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let same_list = |a: &[&str], b: &[String]| a.iter().copied().eq(b.iter().map(String::as_str));
    let same = |r: &&&'static Resource| {
        r.group == d.group
            && r.version == d.version
            && r.plural == d.plural
            && r.singular == d.singular
            && r.kind == d.kind
            && r.namespaced == d.namespaced
            && r.has_status == d.has_status
            && same_list(r.short_names, d.short)
            && same_list(r.categories, d.categories)
    };
    if let Some(found) = interned.iter().find(same) {
        return found;
    }
    let leak = |s: &str| -> &'static str { Box::leak(s.to_owned().into_boxed_str()) };
    let leak_list = |list: &[String]| -> &'static [&'static str] {
        Box::leak(
            list.iter()
                .map(|s| leak(s))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        )
    };
    let resource: &'static Resource = Box::leak(Box::new(Resource {
        group: leak(d.group),
        version: leak(d.version),
        plural: leak(d.plural),
        singular: leak(d.singular),
        kind: leak(d.kind),
        namespaced: d.namespaced,
        short_names: leak_list(d.short),
        categories: leak_list(d.categories),
        has_status: d.has_status,
    }));
    interned.push(resource);
    resource
}
