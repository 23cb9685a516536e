//! Bad input gets the 4xx `Status` a real API server returns, and leaves the store as
//! it was.

use http::Request;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;

use crate::fixture::{Server, config_map, status};

/// Sends a raw request; the error `Status` when it fails.
async fn send(
    server: &Server,
    method: &str,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> Result<String, kube::Error> {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body)
        .expect("request");
    server.client.request_text(request).await
}

/// POSTs a raw body to the test namespace's ConfigMaps.
async fn post(server: &Server, content_type: &str, body: Vec<u8>) -> Result<String, kube::Error> {
    send(server, "POST", &collection(server), content_type, body).await
}

fn collection(server: &Server) -> String {
    format!("/api/v1/namespaces/{}/configmaps", server.ns)
}

async fn names(server: &Server) -> Vec<String> {
    server
        .config_maps()
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect()
}

#[tokio::test]
async fn malformed_json_is_400_and_stores_nothing() {
    let server = Server::start().await;
    let path = collection(&server);
    for body in [
        &b"{\"metadata\": {\"name\": \"x\""[..],
        b"not json at all",
        b"",
    ] {
        let s = status(send(&server, "POST", &path, "application/json", body.to_vec()).await);
        assert_eq!(s.code, 400, "{body:?}: {s:?}");
        assert_eq!(s.reason, "BadRequest", "{s:?}");
    }
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn malformed_apply_yaml_is_400() {
    let server = Server::start().await;
    let path = format!("{}/x?fieldManager=test", collection(&server));
    let s = status(
        send(
            &server,
            "PATCH",
            &path,
            "application/apply-patch+yaml",
            b"metadata: [unclosed".to_vec(),
        )
        .await,
    );
    assert_eq!(s.code, 400, "{s:?}");
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn unknown_kinds_are_404() {
    let server = Server::start().await;
    let path = format!("/apis/example.com/v1/namespaces/{}/widgets", server.ns);
    let body = serde_json::to_vec(
        &json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}),
    )
    .expect("json");
    let s = status(send(&server, "POST", &path, "application/json", body).await);
    assert_eq!(s.code, 404, "{s:?}");
    assert_eq!(s.reason, "NotFound", "{s:?}");
    server.finish().await;
}

#[tokio::test]
async fn wrong_content_types_are_415() {
    let server = Server::start().await;
    let body = serde_json::to_vec(&config_map("x", json!({}))).expect("json");
    let s = status(post(&server, "text/plain", body.clone()).await);
    assert_eq!(s.code, 415, "{s:?}");
    assert_eq!(s.reason, "UnsupportedMediaType", "{s:?}");
    let path = format!("{}/x", collection(&server));
    let s = status(send(&server, "PATCH", &path, "application/xml", body).await);
    assert_eq!(s.code, 415, "{s:?}");
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn bodies_over_3_mib_are_413() {
    let server = Server::start().await;
    let big = "x".repeat(3 * 1024 * 1024 + 1);
    let body = serde_json::to_vec(&config_map("big", json!({"blob": big}))).expect("json");
    let s = status(post(&server, "application/json", body).await);
    assert_eq!(s.code, 413, "{s:?}");
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn names_that_are_not_dns_1123_are_422_naming_the_field() {
    let server = Server::start().await;
    for name in [
        "Upper",
        "under_score",
        "-leading",
        "trailing-",
        &"a".repeat(254),
    ] {
        let result = server
            .config_maps()
            .create(&PostParams::default(), &config_map(name, json!({})))
            .await;
        let s = status(result);
        assert_eq!(s.code, 422, "{name}: {s:?}");
        assert_eq!(s.reason, "Invalid", "{s:?}");
        let causes = s
            .details
            .as_ref()
            .map(|d| d.causes.clone())
            .unwrap_or_default();
        assert!(
            causes.iter().any(|c| c.field == "metadata.name"),
            "{name}: {s:?}"
        );
    }
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn a_body_of_another_kind_is_400() {
    let server = Server::start().await;
    let body = serde_json::to_vec(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
    )
    .expect("json");
    let s = status(post(&server, "application/json", body).await);
    assert_eq!(s.code, 400, "{s:?}");
    assert!(names(&server).await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn the_store_still_works_after_bad_input() {
    let server = Server::start().await;
    let path = collection(&server);
    let _ = send(&server, "POST", &path, "application/json", b"{".to_vec()).await;
    let _ = send(&server, "POST", &path, "text/plain", b"x".to_vec()).await;
    let created: ConfigMap = server
        .config_maps()
        .create(
            &PostParams::default(),
            &config_map("good", json!({"k": "v"})),
        )
        .await
        .expect("a good create after bad ones");
    assert_eq!(
        created.data.and_then(|d| d.get("k").cloned()).as_deref(),
        Some("v")
    );
    assert_eq!(names(&server).await, ["good"]);
    server.finish().await;
}

#[tokio::test]
async fn a_job_template_is_immutable() {
    use k8s_openapi::api::batch::v1::Job;
    use kube::api::{Api, Patch, PatchParams};
    let server = Server::start().await;
    let jobs: Api<Job> = Api::namespaced(server.client.clone(), &server.ns);
    let job: Job = serde_json::from_value(json!({
        "metadata": {"name": "once"},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "run", "image": "busybox:1.36", "command": ["true"]}]}}},
    }))
    .expect("job");
    jobs.create(&PostParams::default(), &job)
        .await
        .expect("create");
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "run", "image": "busybox:1.37"}]}}}});
    let s = status(
        jobs.patch("once", &PatchParams::default(), &Patch::Strategic(patch))
            .await,
    );
    assert_eq!(s.code, 422, "{s:?}");
    assert!(s.message.contains("spec.template"), "{s:?}");
    server.finish().await;
}

#[tokio::test]
async fn service_ports_out_of_range_are_422_naming_the_port() {
    let server = Server::start().await;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(server.client.clone(), &server.ns);
    let service = serde_json::from_value(json!({"metadata": {"name": "bad"},
        "spec": {"ports": [{"port": 80}, {"port": 700_000}]}}))
    .expect("service");
    let s = status(services.create(&PostParams::default(), &service).await);
    assert_eq!(s.code, 422, "{s:?}");
    let causes = s.details.map(|d| d.causes).unwrap_or_default();
    assert!(
        causes.iter().any(|c| c.field == "spec.ports[1].port"),
        "{causes:?}"
    );
    let missing = serde_json::from_value(json!({"metadata": {"name": "noports"}, "spec": {}}))
        .expect("service");
    let s = status(services.create(&PostParams::default(), &missing).await);
    assert_eq!(s.code, 422, "{s:?}");
    server.finish().await;
}
