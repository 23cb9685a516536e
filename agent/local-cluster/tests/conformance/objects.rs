//! Object metadata and writes: generation, resourceVersion, creationTimestamp, the
//! namespace rules, optimistic concurrency, the status subresource, dry-run and
//! immutable fields, as a real API server applies them.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{Server, config_map, status};

fn deployment(name: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}},
    }))
    .expect("deployment")
}

fn service(name: &str) -> Service {
    serde_json::from_value(json!({"metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}}))
    .expect("service")
}

fn merge(patch: Value) -> Patch<Value> {
    Patch::Merge(patch)
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        ..PostParams::default()
    }
}

fn rv(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> u64 {
    meta.resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("a numeric resourceVersion")
}

#[tokio::test]
async fn generation_moves_on_spec_and_deployment_annotation_changes_only() {
    let server = Server::start().await;
    let pp = PatchParams::default();
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    let created = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    let labelled = deployments
        .patch(
            "web",
            &pp,
            &merge(json!({"metadata": {"labels": {"x": "1"}}})),
        )
        .await
        .expect("label");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "labels do not move it"
    );
    let annotated = deployments
        .patch(
            "web",
            &pp,
            &merge(json!({"metadata": {"annotations": {"x": "1"}}})),
        )
        .await
        .expect("annotate");
    assert_eq!(
        annotated.metadata.generation,
        Some(2),
        "a Deployment's annotations do (they are copied to its ReplicaSets)"
    );
    let status_written = deployments
        .patch_status(
            "web",
            &pp,
            &merge(json!({"metadata": {"annotations": {"y": "1"}}, "status": {}})),
        )
        .await
        .expect("status write");
    assert_eq!(
        status_written.metadata.generation,
        Some(2),
        "status writes do not"
    );
    let scaled = deployments
        .patch("web", &pp, &merge(json!({"spec": {"replicas": 2}})))
        .await
        .expect("scale");
    assert_eq!(scaled.metadata.generation, Some(3), "spec changes do");

    // Neither a ConfigMap nor a Service moves on label or annotation changes.
    let cm = server
        .config_maps()
        .create(&PostParams::default(), &config_map("c", json!({"k": "v"})))
        .await
        .expect("configmap");
    let services: Api<Service> = Api::namespaced(server.client.clone(), &server.ns);
    let svc = services
        .create(&PostParams::default(), &service("s"))
        .await
        .expect("service");
    let meta = json!({"metadata": {"labels": {"x": "1"}, "annotations": {"y": "2"}}});
    let cm_after = server
        .config_maps()
        .patch("c", &pp, &merge(meta.clone()))
        .await
        .expect("patch configmap");
    let svc_after = services
        .patch("s", &pp, &merge(meta))
        .await
        .expect("patch service");
    assert_eq!(cm_after.metadata.generation, cm.metadata.generation);
    assert_eq!(svc_after.metadata.generation, svc.metadata.generation);
    assert_ne!(
        cm_after.metadata.resource_version,
        cm.metadata.resource_version
    );
    server.finish().await;
}

#[tokio::test]
async fn resource_versions_increase_across_the_whole_store() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let pp = PatchParams::default();
    let a = cms
        .create(&PostParams::default(), &config_map("a", json!({})))
        .await
        .expect("a");
    let b = cms
        .create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("b");
    let a2 = cms
        .patch("a", &pp, &merge(json!({"data": {"k": "1"}})))
        .await
        .expect("patch a");
    let b2 = cms
        .patch("b", &pp, &merge(json!({"data": {"k": "1"}})))
        .await
        .expect("patch b");
    let versions = [&a, &b, &a2, &b2].map(|cm| rv(&cm.metadata));
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "every write of any object takes a higher version: {versions:?}"
    );
    server.finish().await;
}

#[tokio::test]
async fn creation_timestamp_and_uid_are_the_servers() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let mut cm = config_map("c", json!({"k": "v"}));
    let long_ago = json!("2001-01-01T00:00:00Z");
    cm.metadata.creation_timestamp = serde_json::from_value(long_ago.clone()).expect("time");
    cm.metadata.uid = Some("not-a-server-uid".into());
    let created = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let stamp = created.metadata.creation_timestamp.clone().expect("set");
    assert_ne!(
        serde_json::to_value(&stamp).expect("json"),
        long_ago,
        "set by the server"
    );
    assert_ne!(created.metadata.uid.as_deref(), Some("not-a-server-uid"));
    let mut changed = created.clone();
    changed.metadata.creation_timestamp = serde_json::from_value(long_ago).expect("time");
    changed.data = Some([("k".to_owned(), "w".to_owned())].into());
    let updated = cms
        .replace("c", &PostParams::default(), &changed)
        .await
        .expect("update");
    assert_eq!(
        updated.metadata.creation_timestamp,
        Some(stamp),
        "kept on update"
    );
    assert_eq!(updated.metadata.uid, created.metadata.uid);
    server.finish().await;
}

#[tokio::test]
async fn a_namespaced_object_is_written_in_the_namespace_of_its_url() {
    let server = Server::start().await;
    // No namespace in the URL: only lists are served there.
    let everywhere: Api<ConfigMap> = Api::all(server.client.clone());
    let s = status(
        everywhere
            .create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!(
        (s.code, s.reason.as_str()),
        (405, "MethodNotAllowed"),
        "{s:?}"
    );
    // A body naming another namespace than the URL.
    let mut elsewhere = config_map("c", json!({}));
    elsewhere.metadata.namespace = Some("other".into());
    let s = status(
        server
            .config_maps()
            .create(&PostParams::default(), &elsewhere)
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
    assert!(
        s.message.contains(
            "the namespace of the provided object does not match the namespace sent on the request"
        ),
        "{s:?}"
    );
    let created = server
        .config_maps()
        .create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .expect("create");
    let mut moved = created;
    moved.metadata.namespace = Some("other".into());
    let s = status(
        server
            .config_maps()
            .replace("c", &PostParams::default(), &moved)
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (400, "BadRequest"), "{s:?}");
    // A namespace that does not exist.
    let missing: Api<ConfigMap> =
        Api::namespaced(server.client.clone(), &format!("{}-missing", server.ns));
    let s = status(
        missing
            .create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!(s.code, 404, "{s:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_stale_resource_version_is_a_conflict_for_patches_and_updates() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let pp = PatchParams::default();
    let first = cms
        .create(&PostParams::default(), &config_map("c", json!({"k": "1"})))
        .await
        .expect("create");
    let stale = first.metadata.resource_version.clone().expect("rv");
    let second = cms
        .patch("c", &pp, &merge(json!({"data": {"k": "2"}})))
        .await
        .expect("patch");
    let s = status(
        cms.patch(
            "c",
            &pp,
            &merge(json!({"metadata": {"resourceVersion": stale}, "data": {"k": "3"}})),
        )
        .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}");
    let s = status(cms.replace("c", &PostParams::default(), &first).await);
    assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"), "{s:?}");
    let current = second.metadata.resource_version.clone().expect("rv");
    let third = cms
        .patch(
            "c",
            &pp,
            &merge(json!({"metadata": {"resourceVersion": current}, "data": {"k": "3"}})),
        )
        .await
        .expect("a current resourceVersion is accepted");
    assert_eq!(
        third.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("3")
    );
    server.finish().await;
}

#[tokio::test]
async fn a_status_write_changes_status_and_metadata_but_never_spec() {
    let server = Server::start().await;
    let pp = PatchParams::default();
    let services: Api<Service> = Api::namespaced(server.client.clone(), &server.ns);
    let created = services
        .create(&PostParams::default(), &service("s"))
        .await
        .expect("create");
    let condition = json!({"type": "Checked", "status": "True", "reason": "Test",
        "message": "set through /status", "lastTransitionTime": "2024-01-01T00:00:00Z"});
    let written = services
        .patch_status(
            "s",
            &pp,
            &merge(json!({
                "metadata": {"labels": {"via": "status"}},
                "spec": {"ports": [{"port": 81}], "sessionAffinity": "ClientIP"},
                "status": {"conditions": [condition]},
            })),
        )
        .await
        .expect("status write");
    assert_eq!(written.spec, created.spec, "spec untouched");
    let status_json = serde_json::to_value(&written.status).expect("json");
    assert_eq!(status_json["conditions"][0]["type"], "Checked");
    assert_eq!(
        written
            .metadata
            .labels
            .and_then(|l| l.get("via").cloned())
            .as_deref(),
        Some("status"),
        "a Service's /status takes metadata"
    );

    // A Deployment's /status keeps its labels too; its annotations may change.
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create deployment");
    let written = deployments
        .patch_status(
            "web",
            &pp,
            &merge(json!({
                "metadata": {"labels": {"app": "changed"}, "annotations": {"note": "via status"}},
                "spec": {"replicas": 5},
                "status": {},
            })),
        )
        .await
        .expect("deployment status write");
    assert_eq!(written.spec.replicas, Some(1));
    let labels = written.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"));
    let annotations = written.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("note").map(String::as_str),
        Some("via status")
    );
    server.finish().await;
}

#[tokio::test]
async fn the_main_resource_ignores_status() {
    let server = Server::start().await;
    let services: Api<Service> = Api::namespaced(server.client.clone(), &server.ns);
    let mut svc = service("s");
    svc.status =
        serde_json::from_value(json!({"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}))
            .expect("status");
    let created = services
        .create(&PostParams::default(), &svc)
        .await
        .expect("create");
    let ingress = |s: &Service| {
        serde_json::to_value(&s.status).expect("json")["loadBalancer"]["ingress"].clone()
    };
    assert_eq!(ingress(&created), Value::Null, "status cleared on create");
    let patched = services
        .patch(
            "s",
            &PatchParams::default(),
            &merge(json!({"metadata": {"labels": {"x": "1"}},
                "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}})),
        )
        .await
        .expect("patch");
    assert_eq!(ingress(&patched), Value::Null, "status kept on update");
    assert!(patched.metadata.labels.is_some_and(|l| l.contains_key("x")));
    server.finish().await;
}

#[tokio::test]
async fn dry_run_creates_and_updates_default_and_validate_but_store_nothing() {
    let server = Server::start().await;
    let deployments: Api<Deployment> = Api::namespaced(server.client.clone(), &server.ns);
    let would = deployments
        .create(&dry_run(), &deployment("web"))
        .await
        .expect("dry-run create");
    let spec = serde_json::to_value(would.spec).expect("json");
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(spec["progressDeadlineSeconds"], 600);
    assert_eq!(
        spec["template"]["spec"]["containers"][0]["terminationMessagePath"],
        "/dev/termination-log"
    );
    assert!(
        deployments.get_opt("web").await.expect("get").is_none(),
        "nothing stored"
    );

    let services: Api<Service> = Api::namespaced(server.client.clone(), &server.ns);
    let would = services
        .create(&dry_run(), &service("s"))
        .await
        .expect("dry-run service");
    let spec = would.spec.expect("spec");
    assert!(
        spec.cluster_ip.is_some_and(|ip| !ip.is_empty()),
        "a clusterIP"
    );
    assert_eq!(spec.session_affinity.as_deref(), Some("None"));
    assert!(
        services.get_opt("s").await.expect("get").is_none(),
        "nothing stored"
    );

    let mut invalid = deployment("bad");
    invalid.spec.template.spec = None;
    let s = status(deployments.create(&dry_run(), &invalid).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");

    // Updates.
    let live = deployments
        .create(&PostParams::default(), &deployment("web"))
        .await
        .expect("create");
    let mut changed = live.clone();
    let template = changed.spec.template.spec.as_mut().expect("pod spec");
    template.containers[0].image = Some("nginx:1.28".into());
    template.containers[0].termination_message_path = None;
    let would = deployments
        .replace("web", &dry_run(), &changed)
        .await
        .expect("dry-run update");
    let container =
        serde_json::to_value(&would.spec).expect("json")["template"]["spec"]["containers"][0]
            .clone();
    assert_eq!(container["image"], "nginx:1.28");
    assert_eq!(container["terminationMessagePath"], "/dev/termination-log");
    let stored = deployments.get("web").await.expect("get");
    assert_eq!(
        stored.metadata.resource_version,
        live.metadata.resource_version
    );
    let image = stored.spec.template.spec.expect("pod spec").containers[0]
        .image
        .clone();
    assert_eq!(image.as_deref(), Some("nginx:1.27"), "nothing stored");
    let mut reselected = live;
    let spec = &mut reselected.spec;
    spec.selector.match_labels = Some([("app".to_owned(), "other".to_owned())].into());
    spec.template.metadata.as_mut().expect("meta").labels =
        Some([("app".to_owned(), "other".to_owned())].into());
    let s = status(deployments.replace("web", &dry_run(), &reselected).await);
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_service_cluster_ip_is_immutable_and_kept_when_left_out() {
    let server = Server::start().await;
    let services: Api<Service> = Api::namespaced(server.client.clone(), &server.ns);
    let created = services
        .create(&PostParams::default(), &service("s"))
        .await
        .expect("create");
    let ip = created
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.clone())
        .expect("clusterIP");
    let other = if ip == "10.96.0.250" {
        "10.96.0.251"
    } else {
        "10.96.0.250"
    };
    let s = status(
        services
            .patch(
                "s",
                &PatchParams::default(),
                &merge(json!({"spec": {"clusterIP": other, "clusterIPs": [other]}})),
            )
            .await,
    );
    assert_eq!((s.code, s.reason.as_str()), (422, "Invalid"), "{s:?}");
    assert!(s.message.contains("clusterIP"), "{s:?}");
    // An update that leaves the allocated address out keeps it.
    let mut replacement = created;
    let spec = replacement.spec.as_mut().expect("spec");
    spec.cluster_ip = None;
    spec.cluster_ips = None;
    let updated = services
        .replace("s", &PostParams::default(), &replacement)
        .await
        .expect("update without clusterIP");
    assert_eq!(updated.spec.and_then(|s| s.cluster_ip), Some(ip));
    server.finish().await;
}

#[tokio::test]
async fn a_claim_spec_is_immutable_apart_from_its_requested_storage() {
    let server = Server::start().await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(server.client.clone(), &server.ns);
    let claim = serde_json::from_value(json!({"metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    .expect("claim");
    claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create");
    let pp = PatchParams::default();
    for change in [
        json!({"spec": {"accessModes": ["ReadWriteMany"]}}),
        json!({"spec": {"volumeMode": "Block"}}),
        json!({"spec": {"resources": {"requests": {"cpu": "1"}}}}),
    ] {
        let s = status(claims.patch("data", &pp, &merge(change.clone())).await);
        assert_eq!(
            (s.code, s.reason.as_str()),
            (422, "Invalid"),
            "{change}: {s:?}"
        );
    }
    if server.local().is_some() {
        // A real server also wants the claim bound through a StorageClass that allows
        // expansion, which a test cluster may not have.
        let grown = claims
            .patch(
                "data",
                &pp,
                &merge(json!({"spec": {"resources": {"requests": {"storage": "2Gi"}}}})),
            )
            .await
            .expect("a storage increase is accepted");
        let requests = grown
            .spec
            .and_then(|s| s.resources)
            .and_then(|r| r.requests);
        assert_eq!(
            requests
                .and_then(|r| r.get("storage").cloned())
                .map(|q| q.0),
            Some("2Gi".to_owned())
        );
    }
    server.finish().await;
}
