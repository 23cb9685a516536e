//! Deletion: finalizers and deletionTimestamp, propagation through ownerReferences,
//! namespaces taking their contents, preconditions.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use serde_json::json;

use crate::fixture::{Server, config_map, eventually, status};

const HOLD: &str = "example.com/hold";

fn held(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name, "finalizers": [HOLD]}})).expect("cm")
}

async fn release(cms: &Api<ConfigMap>, name: &str) {
    cms.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("remove finalizers");
}

async fn exists(cms: &Api<ConfigMap>, name: &str) -> bool {
    cms.get_opt(name).await.expect("get").is_some()
}

/// An owner and a dependent ConfigMap; the dependent's ownerReference can block.
async fn owner_and_dependent(cms: &Api<ConfigMap>, dependent_finalizer: bool) {
    let owner = cms
        .create(&PostParams::default(), &config_map("owner", json!({})))
        .await
        .expect("owner");
    let mut meta = json!({
        "name": "dependent",
        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid, "blockOwnerDeletion": true}],
    });
    if dependent_finalizer {
        meta["finalizers"] = json!([HOLD]);
    }
    let dependent = serde_json::from_value(json!({"metadata": meta})).expect("cm");
    cms.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent");
}

#[tokio::test]
async fn a_finalizer_holds_the_object_until_it_is_removed() {
    let server = Server::start().await;
    let cms = server.config_maps();
    cms.create(&PostParams::default(), &held("kept"))
        .await
        .expect("create");
    let response = cms
        .delete("kept", &DeleteParams::default())
        .await
        .expect("delete");
    let cm = response
        .left()
        .expect("the held object comes back, not a Status");
    assert!(cm.metadata.deletion_timestamp.is_some(), "{cm:?}");
    let now = cms.get("kept").await.expect("still there");
    assert!(now.metadata.deletion_timestamp.is_some());
    assert_eq!(
        now.metadata.finalizers.as_deref(),
        Some(&[HOLD.to_owned()][..])
    );
    // Still writable while terminating, but no new finalizers.
    let more = Patch::Merge(json!({"metadata": {"finalizers": [HOLD, "example.com/more"]}}));
    let s = status(cms.patch("kept", &PatchParams::default(), &more).await);
    assert_eq!(s.code, 422, "{s:?}");
    release(&cms, "kept").await;
    eventually("the released object is gone", || async {
        !exists(&cms, "kept").await
    })
    .await;
    server.finish().await;
}

#[tokio::test]
async fn background_deletion_collects_dependents() {
    let server = Server::start().await;
    let cms = server.config_maps();
    owner_and_dependent(&cms, false).await;
    cms.delete("owner", &DeleteParams::background())
        .await
        .expect("delete");
    assert!(!exists(&cms, "owner").await, "the owner goes at once");
    eventually("the dependent is collected", || async {
        !exists(&cms, "dependent").await
    })
    .await;
    server.finish().await;
}

#[tokio::test]
async fn orphan_deletion_keeps_dependents_without_the_reference() {
    let server = Server::start().await;
    let cms = server.config_maps();
    owner_and_dependent(&cms, false).await;
    cms.delete("owner", &DeleteParams::orphan())
        .await
        .expect("delete");
    eventually("the owner is gone", || async {
        !exists(&cms, "owner").await
    })
    .await;
    let dependent = cms.get("dependent").await.expect("the dependent stays");
    assert!(
        dependent
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "its reference to the owner is removed"
    );
    server.finish().await;
}

#[tokio::test]
async fn foreground_deletion_waits_for_blocking_dependents() {
    let server = Server::start().await;
    let cms = server.config_maps();
    owner_and_dependent(&cms, true).await;
    cms.delete("owner", &DeleteParams::foreground())
        .await
        .expect("delete");
    let owner = cms.get("owner").await.expect("the owner waits");
    assert!(owner.metadata.deletion_timestamp.is_some());
    assert!(
        owner
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"foregroundDeletion".to_owned()),
        "foregroundDeletion finalizer"
    );
    eventually("the dependent is being deleted", || async {
        cms.get("dependent")
            .await
            .is_ok_and(|d| d.metadata.deletion_timestamp.is_some())
    })
    .await;
    release(&cms, "dependent").await;
    eventually("both are gone", || async {
        !exists(&cms, "dependent").await && !exists(&cms, "owner").await
    })
    .await;
    server.finish().await;
}

#[tokio::test]
async fn a_terminating_namespace_refuses_new_content_and_goes_when_empty() {
    let server = Server::start().await;
    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    let name = format!("{}-doomed", server.ns);
    let ns = serde_json::from_value(json!({"metadata": {"name": name}})).expect("ns");
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace");
    let cms: Api<ConfigMap> = Api::namespaced(server.client.clone(), &name);
    cms.create(&PostParams::default(), &held("kept"))
        .await
        .expect("held cm");
    cms.create(&PostParams::default(), &config_map("plain", json!({})))
        .await
        .expect("cm");
    namespaces
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete namespace");
    let terminating = namespaces
        .get(&name)
        .await
        .expect("namespace held by its content");
    assert_eq!(
        terminating.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    eventually("the plain content is deleted", || async {
        !exists(&cms, "plain").await
    })
    .await;
    let s = status(
        cms.create(&PostParams::default(), &config_map("late", json!({})))
            .await,
    );
    assert_eq!(s.code, 403, "{s:?}");
    assert_eq!(s.reason, "Forbidden", "{s:?}");
    release(&cms, "kept").await;
    eventually("the namespace is gone", || async {
        namespaces.get_opt(&name).await.expect("get").is_none()
    })
    .await;
    server.finish().await;
}

#[tokio::test]
async fn a_failed_precondition_is_409_and_deletes_nothing() {
    let server = Server::start().await;
    let cms = server.config_maps();
    cms.create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("create");
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("not-the-uid".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let s = status(cms.delete("a", &params).await);
    assert_eq!(s.code, 409, "{s:?}");
    assert!(exists(&cms, "a").await);
    server.finish().await;
}
