//! Server-side apply: what a manager stops applying is removed, and only that.

use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::fixture::Server;

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
