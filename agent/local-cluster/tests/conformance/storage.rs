//! StorageClasses and claims: a class's defaults and immutable fields, the default
//! class a claim gets, binding modes (a `WaitForFirstConsumer` claim waits for a Pod),
//! a claim of a missing class, and expansion only where the class allows it.
//!
//! Classes are cluster-scoped, so each test names its own after its namespace and
//! deletes them. What needs the emulator's provisioner (claims that bind) skips against
//! a real cluster, saying so.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Event, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{Server, eventually, status};

fn classes(server: &Server) -> Api<StorageClass> {
    Api::all(server.client.clone())
}

fn claims(server: &Server) -> Api<PersistentVolumeClaim> {
    Api::namespaced(server.client.clone(), &server.ns)
}

/// Creates a class named `<namespace>-<suffix>` with these fields.
async fn create_class(server: &Server, suffix: &str, fields: &Value) -> String {
    let name = format!("{}-{suffix}", server.ns);
    let mut body = json!({"metadata": {"name": name}, "provisioner": "example.com/none"});
    if let (Some(b), Some(f)) = (body.as_object_mut(), fields.as_object()) {
        b.extend(f.clone());
    }
    let class = serde_json::from_value(body).expect("class");
    classes(server)
        .create(&PostParams::default(), &class)
        .await
        .expect("create class");
    name
}

async fn delete_classes(server: &Server, names: &[&str]) {
    for name in names {
        let _ = classes(server).delete(name, &DeleteParams::default()).await;
    }
}

async fn create_claim(server: &Server, name: &str, class: Option<&str>) -> PersistentVolumeClaim {
    let mut body = json!({"metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
    if let Some(class) = class {
        body["spec"]["storageClassName"] = json!(class);
    }
    let claim = serde_json::from_value(body).expect("claim");
    claims(server)
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim")
}

fn phase(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim.status.as_ref().and_then(|s| s.phase.as_deref())
}

async fn phase_of(server: &Server, name: &str) -> Option<String> {
    let claim = claims(server).get(name).await.ok()?;
    phase(&claim).map(str::to_owned)
}

/// The event about the claim `name` with this reason, once recorded (within 10 s).
async fn event(server: &Server, name: &str, reason: &str) -> Event {
    let events: Api<Event> = Api::namespaced(server.client.clone(), &server.ns);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        let list = events.list(&ListParams::default()).await.expect("events");
        let found = list.items.into_iter().find(|e| {
            e.involved_object.name.as_deref() == Some(name) && e.reason.as_deref() == Some(reason)
        });
        if let Some(event) = found {
            return event;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {reason} event about {name}");
}

fn storage_patch(size: &str) -> Patch<Value> {
    Patch::Merge(json!({"spec": {"resources": {"requests": {"storage": size}}}}))
}

#[tokio::test]
async fn a_storage_class_is_defaulted_and_keeps_its_provisioner_and_modes() {
    let server = Server::start().await;
    let name = create_class(&server, "plain", &json!({})).await;
    let class = classes(&server).get(&name).await.expect("get");
    assert_eq!(class.reclaim_policy.as_deref(), Some("Delete"));
    assert_eq!(class.volume_binding_mode.as_deref(), Some("Immediate"));
    assert_eq!(class.allow_volume_expansion, None, "not defaulted");
    assert_eq!(
        class.metadata.generation, None,
        "a StorageClass has no generation"
    );
    let pp = PatchParams::default();
    let grown = classes(&server)
        .patch(
            &name,
            &pp,
            &Patch::Merge(json!({"allowVolumeExpansion": true})),
        )
        .await
        .expect("allowVolumeExpansion changes");
    assert_eq!(grown.allow_volume_expansion, Some(true));
    for (change, field, message) in [
        (
            json!({"provisioner": "example.com/other"}),
            "provisioner",
            "Forbidden: updates to provisioner are forbidden.",
        ),
        (
            json!({"reclaimPolicy": "Retain"}),
            "reclaimPolicy",
            "Forbidden: updates to reclaimPolicy are forbidden.",
        ),
        (
            json!({"parameters": {"type": "ssd"}}),
            "parameters",
            "Forbidden: updates to parameters are forbidden.",
        ),
        (
            json!({"volumeBindingMode": "WaitForFirstConsumer"}),
            "volumeBindingMode",
            "field is immutable",
        ),
    ] {
        let s = status(
            classes(&server)
                .patch(&name, &pp, &Patch::Merge(change))
                .await,
        );
        assert_eq!(
            (s.code, s.reason.as_str()),
            (422, "Invalid"),
            "{field}: {s:?}"
        );
        assert!(
            s.message.contains(&format!("{field}: ")) && s.message.contains(message),
            "{field}: {}",
            s.message
        );
    }
    delete_classes(&server, &[&name]).await;
    server.finish().await;
}

#[tokio::test]
async fn a_storage_class_needs_a_provisioner_and_supported_modes() {
    let server = Server::start().await;
    for (body, field) in [
        (
            json!({"metadata": {"name": "no-provisioner"}, "provisioner": ""}),
            "provisioner",
        ),
        (
            json!({"metadata": {"name": "bad-policy"}, "provisioner": "example.com/none", "reclaimPolicy": "Recycle"}),
            "reclaimPolicy",
        ),
        (
            json!({"metadata": {"name": "bad-mode"}, "provisioner": "example.com/none", "volumeBindingMode": "Later"}),
            "volumeBindingMode",
        ),
        (
            json!({"metadata": {"name": "bad-name"}, "provisioner": "not a name"}),
            "provisioner",
        ),
    ] {
        let mut body = body;
        let name = format!(
            "{}-{}",
            server.ns,
            body["metadata"]["name"].as_str().unwrap_or("x")
        );
        body["metadata"]["name"] = json!(name);
        let class: StorageClass = serde_json::from_value(body).expect("class");
        let s = status(
            classes(&server)
                .create(&PostParams::default(), &class)
                .await,
        );
        assert_eq!(
            (s.code, s.reason.as_str()),
            (422, "Invalid"),
            "{field}: {s:?}"
        );
        assert!(s.message.contains(&format!("{field}: ")), "{}", s.message);
        delete_classes(&server, &[&name]).await;
    }
    server.finish().await;
}

#[tokio::test]
async fn a_fresh_cluster_has_a_default_class_that_binds_at_once() {
    let Some(server) = Server::start_local("the `standard` class is the emulator's").await else {
        return;
    };
    let standard = classes(&server).get("standard").await.expect("standard");
    let annotations = standard.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("storageclass.kubernetes.io/is-default-class")
            .map(String::as_str),
        Some("true")
    );
    assert_eq!(standard.volume_binding_mode.as_deref(), Some("Immediate"));
    let claim = create_claim(&server, "data", None).await;
    assert_eq!(phase(&claim), Some("Bound"), "bound as it is created");
    let spec = claim.spec.expect("spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
    let uid = claim.metadata.uid.expect("uid");
    assert_eq!(spec.volume_name, Some(format!("pvc-{uid}")));
    server.finish().await;
}

#[tokio::test]
async fn a_claim_without_a_class_gets_the_default_one() {
    let server = Server::start().await;
    let listed = classes(&server)
        .list(&ListParams::default())
        .await
        .expect("classes");
    let is_default = |c: &&StorageClass| {
        c.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
            .is_some_and(|v| v == "true")
    };
    let mut defaults: Vec<&StorageClass> = listed.items.iter().filter(is_default).collect();
    defaults.sort_by_key(|c| {
        (
            std::cmp::Reverse(c.metadata.creation_timestamp.clone().map(|t| t.0)),
            c.metadata.name.clone(),
        )
    });
    let Some(default) = defaults.first().and_then(|c| c.metadata.name.clone()) else {
        eprintln!("skipped: this cluster has no default StorageClass");
        server.finish().await;
        return;
    };
    let claim = create_claim(&server, "data", None).await;
    assert_eq!(claim.spec.and_then(|s| s.storage_class_name), Some(default));
    // An empty class is a choice: no class, and no default either.
    let unclassed = create_claim(&server, "static", Some("")).await;
    assert_eq!(
        unclassed.spec.and_then(|s| s.storage_class_name),
        Some(String::new())
    );
    server.finish().await;
}

#[tokio::test]
async fn a_claim_waits_for_its_first_consumer_then_binds() {
    let server = Server::start().await;
    let class = create_class(
        &server,
        "wffc",
        &json!({"volumeBindingMode": "WaitForFirstConsumer"}),
    )
    .await;
    let claim = create_claim(&server, "data", Some(&class)).await;
    assert_eq!(phase(&claim), Some("Pending"));
    let waiting = event(&server, "data", "WaitForFirstConsumer").await;
    assert_eq!(waiting.type_.as_deref(), Some("Normal"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("waiting for first consumer to be created before binding")
    );
    assert_eq!(
        waiting.involved_object.kind.as_deref(),
        Some("PersistentVolumeClaim")
    );
    assert_eq!(phase_of(&server, "data").await.as_deref(), Some("Pending"));
    // A grown request is refused while the claim is unbound.
    let s = status(
        claims(&server)
            .patch("data", &PatchParams::default(), &storage_patch("2Gi"))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    if server.local().is_none() {
        eprintln!("skipped binding: the class's provisioner is the emulator's");
        delete_classes(&server, &[&class]).await;
        server.finish().await;
        return;
    }
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "db"},
        "spec": {"selector": {"matchLabels": {"app": "db"}}, "template": {
            "metadata": {"labels": {"app": "db"}},
            "spec": {"containers": [{"name": "db", "image": "example/db:1",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}},
    }))
    .expect("deployment");
    Api::<Deployment>::namespaced(server.client.clone(), &server.ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    eventually("the claim binds once a Pod mounts it", || async {
        phase_of(&server, "data").await.as_deref() == Some("Bound")
    })
    .await;
    let bound = claims(&server).get("data").await.expect("get");
    let annotations = bound.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations
            .get("volume.kubernetes.io/selected-node")
            .map(String::as_str),
        Some("local-node")
    );
    assert_eq!(
        bound
            .status
            .and_then(|s| s.capacity)
            .and_then(|c| c.get("storage").cloned())
            .map(|q| q.0),
        Some("1Gi".to_owned())
    );
    delete_classes(&server, &[&class]).await;
    server.finish().await;
}

#[tokio::test]
async fn a_claim_of_a_class_that_does_not_exist_stays_pending() {
    let server = Server::start().await;
    let missing = format!("{}-missing", server.ns);
    let claim = create_claim(&server, "data", Some(&missing)).await;
    assert_eq!(phase(&claim), Some("Pending"));
    let failed = event(&server, "data", "ProvisioningFailed").await;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert_eq!(
        failed.message,
        Some(format!(
            "storageclass.storage.k8s.io \"{missing}\" not found"
        ))
    );
    assert_eq!(phase_of(&server, "data").await.as_deref(), Some("Pending"));
    server.finish().await;
}

#[tokio::test]
async fn a_bound_claim_grows_only_where_its_class_allows_expansion() {
    let Some(server) = Server::start_local("binding needs the emulator's provisioner").await else {
        return;
    };
    let fixed = create_class(&server, "fixed", &json!({})).await;
    let elastic = create_class(&server, "elastic", &json!({"allowVolumeExpansion": true})).await;
    let pp = PatchParams::default();
    assert_eq!(
        phase(&create_claim(&server, "fixed", Some(&fixed)).await),
        Some("Bound")
    );
    let s = status(
        claims(&server)
            .patch("fixed", &pp, &storage_patch("2Gi"))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (403, "Forbidden"), "{s:?}");
    assert_eq!(
        s.message,
        "persistentvolumeclaims \"fixed\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize"
    );
    assert_eq!(
        phase(&create_claim(&server, "elastic", Some(&elastic)).await),
        Some("Bound")
    );
    let grown = claims(&server)
        .patch("elastic", &pp, &storage_patch("2Gi"))
        .await
        .expect("a class that allows expansion");
    let capacity = grown
        .status
        .and_then(|s| s.capacity)
        .and_then(|c| c.get("storage").cloned())
        .map(|q| q.0);
    assert_eq!(capacity.as_deref(), Some("2Gi"));
    let s = status(
        claims(&server)
            .patch("elastic", &pp, &storage_patch("1Gi"))
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(
        s.message.contains(
            "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity"
        ),
        "{}",
        s.message
    );
    delete_classes(&server, &[&fixed, &elastic]).await;
    server.finish().await;
}
