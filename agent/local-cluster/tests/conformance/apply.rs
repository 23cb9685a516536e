//! Server-side apply, the other write verbs people use by hand, and paging, as a real
//! API server does them: managedFields per manager and operation in fieldsV1 with the
//! list-map keys the real server records, shared ownership of equal values, conflicts
//! that name each field and manager, `force`, removal of what a manager stops applying
//! (and only that), `fieldManager` required; JSON patch, the scale subresource,
//! dry-run of apply, patch and delete; limit/continue paging.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{Server, config_map, status};

fn cm(data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": data})
}

async fn apply(api: &Api<ConfigMap>, manager: &str, data: Value) -> Result<ConfigMap, kube::Error> {
    api.patch("c", &PatchParams::apply(manager), &Patch::Apply(cm(data)))
        .await
}

/// `(manager, operation)` of every managedFields entry.
fn managers(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Vec<(String, String)> {
    meta.managed_fields
        .iter()
        .flatten()
        .map(|e| {
            (
                e.manager.clone().unwrap_or_default(),
                e.operation.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test]
async fn apply_shares_equal_values_conflicts_on_others_forces_and_removes() {
    let server = Server::start().await;
    let api = server.config_maps();
    let first = apply(&api, "gitsync", json!({"a": "1", "b": "2"}))
        .await
        .expect("apply");
    let rv = first.metadata.resource_version.clone();
    assert_eq!(
        apply(&api, "gitsync", json!({"a": "1", "b": "2"}))
            .await
            .expect("again")
            .metadata
            .resource_version,
        rv,
        "re-applying the same configuration writes nothing"
    );
    // The same value from another manager: shared.
    let shared = apply(&api, "other", json!({"a": "1"}))
        .await
        .expect("shared");
    assert_eq!(
        managers(&shared.metadata),
        [
            ("gitsync".to_owned(), "Apply".to_owned()),
            ("other".to_owned(), "Apply".to_owned())
        ]
    );
    // Another value: 409, each field and its manager named.
    let conflict = status(apply(&api, "other", json!({"b": "3"})).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("conflict with \"gitsync\"")
            && conflict.message.contains(".data.b"),
        "{}",
        conflict.message
    );
    let causes = conflict
        .details
        .as_ref()
        .map(|d| d.causes.clone())
        .unwrap_or_default();
    assert!(
        causes
            .iter()
            .any(|c| c.field == ".data.b" && c.reason == "FieldManagerConflict"),
        "{causes:?}"
    );
    // force: taken.
    let forced = api
        .patch(
            "c",
            &PatchParams::apply("other").force(),
            &Patch::Apply(cm(json!({"b": "3"}))),
        )
        .await
        .expect("forced");
    assert_eq!(forced.data.unwrap_or_default()["b"], "3");
    // `other` no longer applies a (gitsync alone owns it); when gitsync stops applying
    // it too, it goes. b, taken by force, stays.
    let after = apply(&api, "gitsync", json!({})).await.expect("apply");
    assert_eq!(
        after
            .data
            .unwrap_or_default()
            .into_iter()
            .collect::<Vec<_>>(),
        [("b".to_owned(), "3".to_owned())]
    );
    server.finish().await;
}

#[tokio::test]
async fn apply_needs_a_field_manager() {
    let server = Server::start().await;
    let url = format!("/api/v1/namespaces/{}/configmaps/c", server.ns);
    let request = http::Request::patch(url)
        .header("Content-Type", "application/apply-patch+yaml")
        .body(serde_json::to_vec(&cm(json!({"a": "1"}))).expect("body"))
        .expect("request");
    let refused = status(server.client.request_text(request).await);
    assert_eq!(refused.code, 400, "{refused:?}");
    assert!(
        refused.message.contains("fieldManager"),
        "{}",
        refused.message
    );
    server.finish().await;
}

#[tokio::test]
async fn managed_fields_key_list_items_as_the_real_server_does() {
    let server = Server::start().await;
    let api: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{"name": "web", "image": "nginx:1.27",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"}],
                    "volumeMounts": [{"name": "logs", "mountPath": "/var/log"}]}],
                "volumes": [{"name": "logs", "emptyDir": {}}]}}}});
    let applied = api
        .patch(
            "web",
            &PatchParams::apply("gitsync"),
            &Patch::Apply(&deployment),
        )
        .await
        .expect("apply");
    let entry = applied
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some("gitsync"))
        .expect("gitsync's entry");
    assert_eq!(entry.operation.as_deref(), Some("Apply"));
    assert_eq!(entry.fields_type.as_deref(), Some("FieldsV1"));
    let fields = serde_json::to_value(&entry.fields_v1).expect("fieldsV1");
    let pod = &fields["f:spec"]["f:template"]["f:spec"];
    let container = &pod["f:containers"][r#"k:{"name":"web"}"#];
    assert!(container.is_object(), "{fields:#}");
    assert!(container["f:image"].is_object(), "{container:#}");
    assert!(
        container["f:ports"][r#"k:{"containerPort":80,"protocol":"TCP"}"#].is_object(),
        "{container:#}"
    );
    assert!(
        container["f:env"][r#"k:{"name":"A"}"#]["f:value"].is_object(),
        "{container:#}"
    );
    assert!(
        container["f:volumeMounts"][r#"k:{"mountPath":"/var/log"}"#].is_object(),
        "{container:#}"
    );
    assert!(
        pod["f:volumes"][r#"k:{"name":"logs"}"#].is_object(),
        "{pod:#}"
    );
    server.finish().await;
}

#[tokio::test]
async fn json_patch_scale_and_dry_runs_of_apply_patch_and_delete() {
    let server = Server::start().await;
    let api = server.config_maps();
    apply(&api, "gitsync", json!({"a": "1"}))
        .await
        .expect("apply");
    // JSON patch (kubectl patch --type json).
    let patched = api
        .patch(
            "c",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "add", "path": "/data/b", "value": "2"}]))
                    .expect("json patch"),
            ),
        )
        .await
        .expect("json patch");
    assert_eq!(patched.data.unwrap_or_default().len(), 2);
    // Dry runs: the would-be object back, nothing stored.
    let dry = PatchParams {
        dry_run: true,
        ..PatchParams::apply("gitsync")
    };
    let would = api
        .patch("c", &dry, &Patch::Apply(cm(json!({"a": "1", "z": "9"}))))
        .await
        .expect("dry-run apply");
    assert_eq!(would.data.unwrap_or_default()["z"], "9");
    let merge_dry = PatchParams {
        dry_run: true,
        ..PatchParams::default()
    };
    api.patch("c", &merge_dry, &Patch::Merge(json!({"data": {"y": "8"}})))
        .await
        .expect("dry-run merge patch");
    api.delete(
        "c",
        &DeleteParams {
            dry_run: true,
            ..DeleteParams::default()
        },
    )
    .await
    .expect("dry-run delete");
    let stored = api
        .get("c")
        .await
        .expect("still there")
        .data
        .unwrap_or_default();
    assert!(
        !stored.contains_key("z") && !stored.contains_key("y"),
        "{stored:?}"
    );

    // The scale subresource (kubectl scale): the Deployment's replicas, owned by the
    // scaling manager through `scale`.
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}}))
    .expect("deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create");
    deployments
        .patch_scale(
            "web",
            &PatchParams {
                field_manager: Some("kubectl".into()),
                ..PatchParams::default()
            },
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale");
    let scaled = deployments.get("web").await.expect("get");
    assert_eq!(scaled.spec.replicas, Some(3));
    let scaler = scaled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .find(|e| e.manager.as_deref() == Some("kubectl"))
        .expect("kubectl's entry");
    assert_eq!(scaler.subresource.as_deref(), Some("scale"));
    server.finish().await;
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let server = Server::start().await;
    let api = server.config_maps();
    for i in 0..5 {
        api.create(
            &PostParams::default(),
            &config_map(&format!("p{i}"), json!({})),
        )
        .await
        .expect("create");
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(2);
    loop {
        let page = api.list(&params).await.expect("list");
        assert!(page.items.len() <= 2);
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => break,
        }
    }
    let mut wanted: Vec<String> = (0..5).map(|i| format!("p{i}")).collect();
    // kube-root-ca.crt and the like on a real cluster.
    names.retain(|n| n.starts_with('p'));
    wanted.sort();
    assert_eq!(names, wanted);
    server.finish().await;
}

#[tokio::test]
async fn a_map_applied_empty_then_with_keys_keeps_them() {
    let server = Server::start().await;
    let api = server.config_maps();
    let params = PatchParams::apply("tester");
    let apply = |annotations: serde_json::Value| {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "m", "annotations": annotations}, "data": {"a": "1"}})
    };
    api.patch("m", &params, &Patch::Apply(apply(json!({}))))
        .await
        .expect("first apply");
    let second = api
        .patch("m", &params, &Patch::Apply(apply(json!({"k": "v"}))))
        .await
        .expect("second apply");
    let annotations = second.metadata.annotations.unwrap_or_default();
    assert_eq!(annotations.get("k").map(String::as_str), Some("v"));
    // Applied without the map at all: it goes.
    let third = api
        .patch(
            "m",
            &params,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "m"}, "data": {"a": "1"}})),
        )
        .await
        .expect("third apply");
    assert!(
        !third
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("k")
    );
    server.finish().await;
}
