//! CustomResourceDefinitions: creating one serves its kind (discovery, CRUD, Established
//! condition); deleting it stops serving the kind and removes its objects.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Discovery;
use serde_json::json;

use crate::fixture::{Server, eventually, status};

/// A CRD for `widgets.<unique group>` so tests on a shared real cluster do not collide.
fn widget_crd(group: &str) -> CustomResourceDefinition {
    serde_json::from_value(json!({
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}},
            }],
        },
    }))
    .expect("crd")
}

fn widgets(server: &Server, group: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk(group, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    Api::namespaced_with(server.client.clone(), &server.ns, &resource)
}

fn widget(group: &str, name: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": name}, "spec": {"size": 3},
    }))
    .expect("widget")
}

async fn served(server: &Server, group: &str) -> bool {
    let discovery = Discovery::new(server.client.clone())
        .filter(&[group])
        .run()
        .await
        .expect("discovery");
    discovery.groups().any(|g| g.name() == group)
}

#[tokio::test]
async fn a_crd_serves_its_kind_until_it_is_deleted() {
    let server = Server::start().await;
    let group = format!("{}.example.com", server.ns);
    let crds: Api<CustomResourceDefinition> = Api::all(server.client.clone());
    let api = widgets(&server, &group);
    // Before: the kind is unknown.
    let s = status(
        api.create(&PostParams::default(), &widget(&group, "early"))
            .await,
    );
    assert_eq!(s.code, 404, "{s:?}");

    crds.create(&PostParams::default(), &widget_crd(&group))
        .await
        .expect("create crd");
    let name = format!("widgets.{group}");
    eventually("the CRD is Established", || async {
        crds.get(&name)
            .await
            .ok()
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            })
    })
    .await;
    eventually("discovery lists the group", || async {
        served(&server, &group).await
    })
    .await;

    let created = api
        .create(&PostParams::default(), &widget(&group, "first"))
        .await
        .expect("create widget");
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    let fetched = api.get("first").await.expect("get widget");
    assert_eq!(fetched.data["spec"]["size"], 3);

    crds.delete(&name, &DeleteParams::default())
        .await
        .expect("delete crd");
    eventually("the kind is no longer served", || async {
        matches!(api.get("first").await, Err(kube::Error::Api(s)) if s.code == 404)
            && !served(&server, &group).await
    })
    .await;
    // Re-created, it starts empty: the objects went with the definition.
    crds.create(&PostParams::default(), &widget_crd(&group))
        .await
        .expect("re-create crd");
    eventually("served again", || async {
        api.list(&kube::api::ListParams::default()).await.is_ok()
    })
    .await;
    assert!(api.get_opt("first").await.expect("get").is_none());
    crds.delete(&name, &DeleteParams::default())
        .await
        .expect("clean up");
    server.finish().await;
}

#[tokio::test]
async fn an_invalid_crd_is_422() {
    let server = Server::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(server.client.clone());
    let mut crd = widget_crd("bad.example.com");
    crd.metadata.name = Some("not-the-right-name".into());
    let s = status(crds.create(&PostParams::default(), &crd).await);
    assert_eq!(s.code, 422, "{s:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_custom_resource_status_write_takes_only_status_and_strategic_patches_are_415() {
    use kube::api::{Patch, PatchParams};
    let server = Server::start().await;
    let group = format!("status-{}.example.com", server.ns);
    let crds: Api<CustomResourceDefinition> = Api::all(server.client.clone());
    crds.create(&PostParams::default(), &widget_crd(&group))
        .await
        .expect("create crd");
    let api = widgets(&server, &group);
    eventually("the kind is served", || async {
        api.list(&kube::api::ListParams::default()).await.is_ok()
    })
    .await;
    let mut w = widget(&group, "w");
    w.data["status"] = json!({"phase": "from-create"});
    let created = api
        .create(&PostParams::default(), &w)
        .await
        .expect("create widget");
    assert!(
        created.data.get("status").is_none(),
        "status is cleared on create"
    );
    let written = api
        .patch_status(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "1"}},
                "spec": {"size": 9}, "status": {"phase": "Ready"}})),
        )
        .await
        .expect("status write");
    assert_eq!(written.data["status"]["phase"], "Ready");
    assert_eq!(written.data["spec"]["size"], 3, "spec untouched");
    assert!(
        written.metadata.labels.is_none_or(|l| l.is_empty()),
        "a custom resource's /status takes no metadata"
    );
    assert_eq!(written.metadata.generation, Some(1));
    let s = status(
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 4}})),
        )
        .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (415, "UnsupportedMediaType"),
        "{s:?}"
    );
    crds.delete(&format!("widgets.{group}"), &DeleteParams::default())
        .await
        .expect("clean up");
    server.finish().await;
}
