//! Strategic merge patches as `kubectl apply` (client-side), `kubectl edit` and
//! `kubectl patch` send them: lists merged on their patch keys, the directives
//! obeyed and never stored.

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::Server;

fn deployment(containers: &[&str]) -> Deployment {
    let containers: Vec<Value> = containers
        .iter()
        .map(|n| json!({"name": n, "image": format!("{n}:1")}))
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": "web", "finalizers": ["example.com/a", "example.com/b"]},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": containers}}},
    }))
    .expect("deployment")
}

fn containers(d: &Deployment) -> Vec<String> {
    d.spec
        .template
        .spec
        .as_ref()
        .map(|p| p.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

async fn strategic(api: &Api<Deployment>, patch: Value) -> Deployment {
    api.patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic merge patch")
}

#[tokio::test]
async fn kubectl_client_side_apply_patches_add_remove_and_reorder_containers() {
    let server = Server::start().await;
    let api: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    api.create(&PostParams::default(), &deployment(&["a", "b"]))
        .await
        .expect("create");
    // The bodies kubectl 1.32 sent for [a, b] -> [a, b, c] -> [a, c] -> [c, a].
    let added = strategic(
        &api,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"image": "c:1", "name": "c"}]}}}}),
    )
    .await;
    assert_eq!(containers(&added), ["a", "b", "c"]);
    let removed = strategic(
        &api,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
            "containers": [{"$patch": "delete", "name": "b"}]}}}}),
    )
    .await;
    assert_eq!(containers(&removed), ["a", "c"]);
    let reordered = strategic(
        &api,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}}}}),
    )
    .await;
    assert_eq!(containers(&reordered), ["c", "a"]);
    // kubectl's body for finalizers [a, b] -> [b] and strategy -> Recreate.
    let recreated = strategic(
        &api,
        json!({"metadata": {
                "$deleteFromPrimitiveList/finalizers": ["example.com/a"],
                "$setElementOrder/finalizers": ["example.com/b"]},
            "spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}}),
    )
    .await;
    assert_eq!(
        recreated.metadata.finalizers.as_deref(),
        Some(&["example.com/b".to_owned()][..])
    );
    let strategy = serde_json::to_value(&recreated.spec.strategy).expect("json");
    assert_eq!(strategy, json!({"type": "Recreate"}));
    let stored = serde_json::to_string(&api.get_opt("web").await.expect("get")).expect("json");
    assert!(!stored.contains("$setElementOrder"), "{stored}");
    assert!(!stored.contains("$patch"), "{stored}");
    assert!(!stored.contains("$retainKeys"), "{stored}");
    // Let a real cluster delete it.
    strategic(
        &api,
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/b"]}}),
    )
    .await;
    server.finish().await;
}

#[tokio::test]
async fn a_bad_directive_is_400_and_changes_nothing() {
    let server = Server::start().await;
    let api: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    let created = api
        .create(&PostParams::default(), &deployment(&["a"]))
        .await
        .expect("create");
    for patch in [
        json!({"spec": {"template": {"spec": {"containers": [{"image": "no-name:1"}]}}}}),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {"maxSurge": 2}}}}),
    ] {
        let result = api
            .patch(
                "web",
                &PatchParams::default(),
                &Patch::Strategic(patch.clone()),
            )
            .await;
        let s = crate::fixture::status(result);
        assert_eq!(s.code, 400, "{patch}: {s:?}");
    }
    let live = api.get("web").await.expect("get");
    assert_eq!(
        live.metadata.resource_version,
        created.metadata.resource_version
    );
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release");
    server.finish().await;
}
