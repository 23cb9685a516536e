//! Discovery of the built-in kinds gitsync handles: each at its group/version, with its
//! scope, verbs, short names and categories as `kubectl api-resources -o wide` shows
//! them on a real cluster; and the verbs it lists are served.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResource;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::json;

use crate::fixture::{Server, config_map, status};

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// One row of `kubectl api-resources -o wide`.
struct Row {
    api_version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
}

const fn row(
    api_version: &'static str,
    plural: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    categories: &'static [&'static str],
) -> Row {
    Row {
        api_version,
        plural,
        kind,
        namespaced,
        short,
        categories,
    }
}

/// The kinds of issue 3, and StorageClass.
const ROWS: &[Row] = &[
    row("v1", "namespaces", "Namespace", false, &["ns"], &[]),
    row("v1", "configmaps", "ConfigMap", true, &["cm"], &[]),
    row("v1", "secrets", "Secret", true, &[], &[]),
    row("v1", "services", "Service", true, &["svc"], &["all"]),
    row(
        "v1",
        "serviceaccounts",
        "ServiceAccount",
        true,
        &["sa"],
        &[],
    ),
    row(
        "v1",
        "persistentvolumeclaims",
        "PersistentVolumeClaim",
        true,
        &["pvc"],
        &[],
    ),
    row("v1", "pods", "Pod", true, &["po"], &["all"]),
    row("v1", "events", "Event", true, &["ev"], &[]),
    row(
        "apps/v1",
        "deployments",
        "Deployment",
        true,
        &["deploy"],
        &["all"],
    ),
    row(
        "apps/v1",
        "replicasets",
        "ReplicaSet",
        true,
        &["rs"],
        &["all"],
    ),
    row(
        "apps/v1",
        "statefulsets",
        "StatefulSet",
        true,
        &["sts"],
        &["all"],
    ),
    row(
        "apps/v1",
        "daemonsets",
        "DaemonSet",
        true,
        &["ds"],
        &["all"],
    ),
    row("batch/v1", "jobs", "Job", true, &[], &["all"]),
    row("batch/v1", "cronjobs", "CronJob", true, &["cj"], &["all"]),
    row(
        "networking.k8s.io/v1",
        "ingresses",
        "Ingress",
        true,
        &["ing"],
        &[],
    ),
    row(
        "networking.k8s.io/v1",
        "networkpolicies",
        "NetworkPolicy",
        true,
        &["netpol"],
        &[],
    ),
    row(
        "autoscaling/v2",
        "horizontalpodautoscalers",
        "HorizontalPodAutoscaler",
        true,
        &["hpa"],
        &["all"],
    ),
    row(
        "policy/v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        true,
        &["pdb"],
        &[],
    ),
    row(
        "rbac.authorization.k8s.io/v1",
        "roles",
        "Role",
        true,
        &[],
        &[],
    ),
    row(
        "rbac.authorization.k8s.io/v1",
        "rolebindings",
        "RoleBinding",
        true,
        &[],
        &[],
    ),
    row(
        "rbac.authorization.k8s.io/v1",
        "clusterroles",
        "ClusterRole",
        false,
        &[],
        &[],
    ),
    row(
        "rbac.authorization.k8s.io/v1",
        "clusterrolebindings",
        "ClusterRoleBinding",
        false,
        &[],
        &[],
    ),
    row("coordination.k8s.io/v1", "leases", "Lease", true, &[], &[]),
    row(
        "storage.k8s.io/v1",
        "storageclasses",
        "StorageClass",
        false,
        &["sc"],
        &[],
    ),
    row(
        "admissionregistration.k8s.io/v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        false,
        &[],
        &["api-extensions"],
    ),
    row(
        "admissionregistration.k8s.io/v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        false,
        &[],
        &["api-extensions"],
    ),
    row(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
    ),
];

async fn resources(server: &Server, api_version: &str) -> Vec<APIResource> {
    let list = if api_version == "v1" {
        server.client.list_core_api_resources("v1").await
    } else {
        server.client.list_api_group_resources(api_version).await
    };
    let list = list.unwrap_or_else(|e| panic!("discovery of {api_version}: {e}"));
    assert_eq!(list.group_version, api_version);
    list.resources
}

fn sorted(list: &[String]) -> Vec<String> {
    let mut list = list.to_vec();
    list.sort();
    list
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn every_built_in_kind_is_discovered_as_a_real_cluster_lists_it() {
    let server = Server::start().await;
    for want in ROWS {
        let served = resources(&server, want.api_version).await;
        let what = format!("{} {}", want.api_version, want.plural);
        let found = served
            .iter()
            .find(|r| r.name == want.plural)
            .unwrap_or_else(|| panic!("{what} is not served"));
        assert_eq!(found.kind, want.kind, "{what}");
        assert_eq!(found.namespaced, want.namespaced, "{what}");
        assert_eq!(
            found.short_names.clone().unwrap_or_default(),
            strings(want.short),
            "{what}"
        );
        assert_eq!(
            found.categories.clone().unwrap_or_default(),
            strings(want.categories),
            "{what}"
        );
        let verbs: Vec<&str> = if want.plural == "namespaces" {
            ALL_VERBS
                .iter()
                .copied()
                .filter(|v| *v != "deletecollection")
                .collect()
        } else {
            ALL_VERBS.to_vec()
        };
        assert_eq!(sorted(&found.verbs), strings(&verbs), "{what}");
        assert_eq!(
            found.singular_name,
            want.kind.to_lowercase(),
            "{what}: singularName"
        );
    }
    server.finish().await;
}

#[tokio::test]
async fn status_and_scale_subresources_are_listed_with_their_kinds() {
    let server = Server::start().await;
    let apps = resources(&server, "apps/v1").await;
    let find = |name: &str| {
        apps.iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("{name} is not listed"))
    };
    let scale = find("deployments/scale");
    assert_eq!(
        (
            scale.group.as_deref(),
            scale.version.as_deref(),
            scale.kind.as_str()
        ),
        (Some("autoscaling"), Some("v1"), "Scale")
    );
    assert_eq!(sorted(&scale.verbs), strings(&["get", "patch", "update"]));
    let status = find("deployments/status");
    assert_eq!(status.kind, "Deployment");
    assert_eq!(sorted(&status.verbs), strings(&["get", "patch", "update"]));
    let storage = resources(&server, "storage.k8s.io/v1").await;
    assert!(
        storage.iter().all(|r| r.name != "storageclasses/status"),
        "a StorageClass has no status"
    );
    server.finish().await;
}

#[tokio::test]
async fn every_group_is_listed_with_its_preferred_version() {
    let server = Server::start().await;
    let groups = server.client.list_api_groups().await.expect("/apis");
    for want in ROWS.iter().filter(|r| r.api_version.contains('/')) {
        let (group, version) = want.api_version.split_once('/').expect("group/version");
        let found = groups
            .groups
            .iter()
            .find(|g| g.name == group)
            .unwrap_or_else(|| panic!("group {group} is not listed"));
        assert!(
            found.versions.iter().any(|v| v.version == version),
            "{group} lists {version}"
        );
        assert_eq!(
            found
                .preferred_version
                .as_ref()
                .map(|v| v.group_version.as_str()),
            Some(want.api_version),
            "{group}'s preferred version"
        );
    }
    let core = server.client.list_core_api_versions().await.expect("/api");
    assert_eq!(core.versions, vec!["v1".to_owned()]);
    server.finish().await;
}

#[tokio::test]
async fn deletecollection_deletes_what_the_selector_matches() {
    let server = Server::start().await;
    let maps = server.config_maps();
    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let mut cm = config_map(name, json!({}));
        cm.metadata.labels = Some([("tier".to_owned(), tier.to_owned())].into());
        maps.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let deleted = maps
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("tier=web"),
        )
        .await
        .expect("deletecollection");
    let names: Vec<String> = deleted
        .left()
        .expect("the deleted objects")
        .items
        .into_iter()
        .filter_map(|cm: ConfigMap| cm.metadata.name)
        .collect();
    assert_eq!(sorted(&names), strings(&["a", "b"]));
    crate::fixture::eventually("the web ConfigMaps are gone", || async {
        let left = maps
            .list(&ListParams::default().labels("tier"))
            .await
            .expect("list");
        left.items.len() == 1 && left.items[0].metadata.name.as_deref() == Some("c")
    })
    .await;
    server.finish().await;
}

#[tokio::test]
async fn namespaces_are_not_deleted_as_a_collection() {
    let server = Server::start().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(server.client.clone());
    let refused = status(
        namespaces
            .delete_collection(
                &DeleteParams::default(),
                &ListParams::default().labels("nothing-has-this"),
            )
            .await,
    );
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (405, "MethodNotAllowed")
    );
    server.finish().await;
}
