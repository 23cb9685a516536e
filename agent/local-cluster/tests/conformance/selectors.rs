//! Label and field selectors as kube-rs and kubectl put them on the wire: every
//! operator, URL-encoded both ways (`+` and `%20` for spaces, escaped or bare
//! parentheses and commas), through the HTTP server.

use http::Request;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams, ObjectList, PostParams};
use serde_json::json;

use crate::fixture::{Server, config_map};

/// Creates a, b, c and d, all labelled `suite=sel` so a real cluster's other
/// ConfigMaps (kube-root-ca.crt) stay out of every answer.
async fn objects(server: &Server) {
    let labels = [
        ("a", json!({"suite": "sel", "app": "web", "tier": "front"})),
        ("b", json!({"suite": "sel", "app": "web", "tier": "back"})),
        ("c", json!({"suite": "sel", "app": "db"})),
        ("d", json!({"suite": "sel"})),
    ];
    for (name, labels) in labels {
        let mut cm = config_map(name, json!({}));
        cm.metadata.labels = serde_json::from_value(labels).expect("labels");
        server
            .config_maps()
            .create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
}

fn names(list: ObjectList<ConfigMap>) -> Vec<String> {
    let mut names: Vec<String> = list
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn label_selectors_as_kube_rs_encodes_them() {
    let server = Server::start().await;
    objects(&server).await;
    let cases = [
        ("app=web", "a b"),
        ("app==web", "a b"),
        ("app!=web", "c d"),
        ("tier in (front,back)", "a b"),
        ("tier in (front, back)", "a b"),
        ("tier notin (front)", "b c d"),
        ("tier", "a b"),
        ("!tier", "c d"),
        ("app=web,tier notin (back)", "a"),
        ("app in (web,db),!tier", "c"),
    ];
    for (selector, expected) in cases {
        let selector = format!("suite=sel,{selector}");
        let list = server
            .config_maps()
            .list(&ListParams::default().labels(&selector))
            .await
            .expect("list");
        assert_eq!(names(list).join(" "), expected, "{selector}");
    }
    server.finish().await;
}

#[tokio::test]
async fn label_and_field_selectors_in_raw_query_encodings() {
    let server = Server::start().await;
    objects(&server).await;
    let ns = &server.ns;
    // What Go's url.Values.Encode (kubectl) and form_urlencoded (kube-rs) send, and
    // the bare forms a person types into curl.
    let cases = [
        (
            "labelSelector=suite%3Dsel%2Ctier+in+%28front%2Cback%29",
            "a b",
        ),
        ("labelSelector=suite=sel,tier%20in%20(front,back)", "a b"),
        (
            "labelSelector=suite%3Dsel%2Ctier+notin+%28front%29",
            "b c d",
        ),
        ("labelSelector=suite%3Dsel%2C%21tier", "c d"),
        ("labelSelector=suite=sel,!tier", "c d"),
        ("labelSelector=suite%3Dsel%2Capp%21%3Dweb", "c d"),
        ("labelSelector=suite%3Dsel%2Ctier", "a b"),
        ("fieldSelector=metadata.name%3Db", "b"),
        ("fieldSelector=metadata.name==b", "b"),
        (
            "fieldSelector=metadata.name%21%3Db&labelSelector=suite%3Dsel",
            "a c d",
        ),
        (
            &format!("fieldSelector=metadata.namespace%3D{ns}%2Cmetadata.name%3Dc"),
            "c",
        ),
    ];
    for (query, expected) in cases {
        let path = format!("/api/v1/namespaces/{ns}/configmaps?{query}");
        let request = Request::get(&path).body(Vec::new()).expect("request");
        let list: ObjectList<ConfigMap> = server.client.request(request).await.expect(&path);
        assert_eq!(names(list).join(" "), expected, "{query}");
    }
    // Across namespaces, the namespace field selector picks the test's.
    let everywhere: Api<ConfigMap> = Api::all(server.client.clone());
    let list = everywhere
        .list(
            &ListParams::default()
                .fields(&format!("metadata.namespace={ns}"))
                .labels("suite=sel"),
        )
        .await
        .expect("list");
    assert_eq!(names(list).join(" "), "a b c d");
    server.finish().await;
}

#[tokio::test]
async fn a_malformed_selector_is_400() {
    let server = Server::start().await;
    for selector in ["tier in front", "tier in (a", "a b"] {
        let result = server
            .config_maps()
            .list(&ListParams::default().labels(selector))
            .await;
        let s = crate::fixture::status(result);
        assert_eq!(s.code, 400, "{selector}: {s:?}");
    }
    server.finish().await;
}
