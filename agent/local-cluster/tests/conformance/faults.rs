//! Injected latency and failures (`/_gitsync/faults`, `LocalCluster::set_faults`):
//! emulator only, so these skip, saying so, against a real cluster.
//!
//! `kube::Client` retries 429, 503 and 504 itself (up to 15 times, honouring
//! `Retry-After`), so these tests talk through a client with that turned off, except
//! the one that shows it.

use std::time::{Duration, Instant};

use gitsync_local_cluster::{FaultRule, Faults, LocalCluster};
use http::Request;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{Server, config_map, status};

/// The emulator, and a client of it that does not retry.
struct Fx {
    server: Server,
    client: Client,
}

impl Fx {
    fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.server.ns)
    }

    async fn finish(self) {
        self.server.finish().await;
    }
}

async fn start() -> Option<Fx> {
    let server = Server::start_local("fault injection is the emulator's").await?;
    let local = server.local().expect("the emulator");
    let mut config = kube::Config::new(local.url().parse().expect("url"));
    config.default_retry = false;
    let client = Client::try_from(config).expect("client");
    Some(Fx { server, client })
}

fn local(fx: &Fx) -> &LocalCluster {
    fx.server.local().expect("emulator")
}

async fn set(fx: &Fx, rules: Value) {
    let faults: Faults = serde_json::from_value(json!({"rules": rules})).expect("faults");
    local(fx).set_faults(faults).await.expect("valid faults");
}

async fn create(fx: &Fx, name: &str, value: &str) {
    fx.config_maps()
        .create(
            &PostParams::default(),
            &config_map(name, json!({"k": value})),
        )
        .await
        .expect("create");
}

async fn patch(fx: &Fx, name: &str, value: &str, dry_run: bool) -> kube::Result<ConfigMap> {
    let params = PatchParams {
        dry_run,
        ..PatchParams::default()
    };
    fx.config_maps()
        .patch(name, &params, &Patch::Merge(json!({"data": {"k": value}})))
        .await
}

async fn data(fx: &Fx, name: &str) -> Option<String> {
    fx.config_maps()
        .get_opt(name)
        .await
        .expect("get")
        .and_then(|cm| cm.data?.get("k").cloned())
}

/// An HTTP call to the emulator's own endpoints: (code, JSON body).
async fn call(fx: &Fx, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(body).expect("body"))
        .expect("request");
    let response = fx.client.send(request.map(Into::into)).await;
    let response = response.expect("response");
    let code = response.status().as_u16();
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), usize::MAX)
        .await
        .expect("body");
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_429_rule_with_count_two_fails_two_patches_then_lets_them_through() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    set(
        &fx,
        json!([{"status": 429, "count": 2, "verbs": ["patch"], "retryAfterSeconds": 1}]),
    )
    .await;
    for attempt in 1..=2 {
        let failed = status(patch(&fx, "web", &attempt.to_string(), false).await);
        assert_eq!(failed.code, 429, "attempt {attempt}");
        assert_eq!(failed.reason, "TooManyRequests");
        assert!(failed.message.contains("injected"), "{}", failed.message);
        assert_eq!(data(&fx, "web").await.as_deref(), Some("0"));
    }
    patch(&fx, "web", "3", false).await.expect("third patch");
    assert_eq!(data(&fx, "web").await.as_deref(), Some("3"));
    let stats = local(&fx).stats();
    assert_eq!(stats.injected, 2);
    assert_eq!(stats.by_verb.get("patch"), Some(&1), "{stats:?}");
    fx.finish().await;
}

#[tokio::test]
async fn an_injected_status_is_a_kubernetes_status_with_retry_after() {
    let Some(fx) = start().await else { return };
    set(
        &fx,
        json!([{"status": 503, "count": 1, "resource": "configmaps", "name": "web", "retryAfterSeconds": 7}]),
    )
    .await;
    let path = format!("/api/v1/namespaces/{}/configmaps/web", fx.server.ns);
    let request = Request::get(&path).body(Vec::new()).expect("request");
    let response = fx
        .client
        .send(request.map(Into::into))
        .await
        .expect("response");
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(
        response
            .headers()
            .get(http::header::RETRY_AFTER)
            .map(http::HeaderValue::as_bytes),
        Some(&b"7"[..])
    );
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), usize::MAX)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("json");
    assert_eq!(body["kind"], "Status");
    assert_eq!(body["apiVersion"], "v1");
    assert_eq!(body["status"], "Failure");
    assert_eq!(body["code"], 503);
    assert_eq!(body["reason"], "ServiceUnavailable");
    assert_eq!(body["details"]["name"], "web");
    assert_eq!(body["details"]["kind"], "configmaps");
    assert_eq!(body["details"]["retryAfterSeconds"], 7);
    // Spent: the same request now reaches the store (and is not found there).
    assert_eq!(status(fx.config_maps().get("web").await).code, 404);
    fx.finish().await;
}

#[tokio::test]
async fn rules_fail_only_the_verbs_resources_and_names_they_name() {
    let Some(fx) = start().await else { return };
    set(
        &fx,
        json!([
            {"status": 500, "verbs": ["create"], "resource": "configmaps", "name": "a"},
            {"status": 409, "verbs": ["delete"], "resource": "configmaps"},
        ]),
    )
    .await;
    let failed = status(
        fx.config_maps()
            .create(&PostParams::default(), &config_map("a", json!({"k": "1"})))
            .await,
    );
    assert_eq!(
        (failed.code, failed.reason.as_str()),
        (500, "InternalError")
    );
    assert_eq!(data(&fx, "a").await, None, "nothing was created");
    create(&fx, "b", "1").await;
    let secrets: Api<Secret> = Api::namespaced(fx.client.clone(), &fx.server.ns);
    let secret = serde_json::from_value(json!({"metadata": {"name": "a"}})).expect("secret");
    secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("secrets are not named by the rules");
    secrets
        .delete("a", &DeleteParams::default())
        .await
        .expect("nor are their deletes");
    patch(&fx, "b", "2", false)
        .await
        .expect("patches are not named");
    let failed = status(fx.config_maps().delete("b", &DeleteParams::default()).await);
    assert_eq!((failed.code, failed.reason.as_str()), (409, "Conflict"));
    assert_eq!(data(&fx, "b").await.as_deref(), Some("2"), "not deleted");
    // Rules without a count never run out; clearing them ends them.
    assert_eq!(
        status(fx.config_maps().delete("b", &DeleteParams::default()).await).code,
        409
    );
    local(&fx).clear_faults().await;
    fx.config_maps()
        .delete("b", &DeleteParams::default())
        .await
        .expect("cleared");
    assert_eq!(local(&fx).stats().injected, 3);
    fx.finish().await;
}

#[tokio::test]
async fn the_dry_run_filter_tells_dry_runs_from_real_writes() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    set(&fx, json!([{"status": 503, "dryRun": true}])).await;
    patch(&fx, "web", "1", false)
        .await
        .expect("a real patch passes");
    assert_eq!(status(patch(&fx, "web", "2", true).await).code, 503);
    let dry_delete = DeleteParams {
        dry_run: true,
        ..DeleteParams::default()
    };
    // kube-rs sends a delete's dryRun in the body, not the query.
    assert_eq!(
        status(fx.config_maps().delete("web", &dry_delete).await).code,
        503
    );
    set(&fx, json!([{"status": 503, "dryRun": false}])).await;
    patch(&fx, "web", "3", true)
        .await
        .expect("a dry run passes");
    fx.config_maps()
        .delete("web", &dry_delete)
        .await
        .expect("a dry-run delete passes");
    assert_eq!(status(patch(&fx, "web", "4", false).await).code, 503);
    assert_eq!(
        status(fx.config_maps().get("web").await).code,
        503,
        "reads are not dry runs either"
    );
    local(&fx).clear_faults().await;
    assert_eq!(data(&fx, "web").await.as_deref(), Some("1"));
    fx.finish().await;
}

#[tokio::test]
async fn added_latency_delays_every_api_request() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    local(&fx)
        .set_faults(Faults {
            latency_ms: 150,
            rules: Vec::new(),
        })
        .await
        .expect("latency");
    let started = Instant::now();
    data(&fx, "web").await;
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(150), "{elapsed:?}");
    let started = Instant::now();
    patch(&fx, "web", "1", false).await.expect("patch");
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    fx.finish().await;
}

#[tokio::test]
async fn the_control_api_replaces_reports_and_clears_the_faults() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    let config = json!({"latencyMs": 1, "rules": [
        {"status": 429, "count": 3, "verbs": ["patch"]},
        {"status": 500, "resource": "secrets"},
    ]});
    let (code, echoed) = call(&fx, "POST", "/_gitsync/faults", &config).await;
    assert_eq!((code, &echoed), (200, &config));
    assert_eq!(status(patch(&fx, "web", "1", false).await).code, 429);
    let (code, now) = call(&fx, "GET", "/_gitsync/faults", &Value::Null).await;
    assert_eq!(code, 200);
    assert_eq!(now["latencyMs"], 1);
    assert_eq!(now["rules"][0]["count"], 2, "{now}");
    assert_eq!(now["rules"][1].get("count"), None, "{now}");
    let reported = local(&fx).faults().await;
    assert_eq!(reported.rules[0].count, Some(2));
    // Internal endpoints and discovery are never failed.
    let (code, stats) = call(&fx, "GET", "/_gitsync/stats", &Value::Null).await;
    assert_eq!((code, &stats["injected"]), (200, &json!(1)));
    call(
        &fx,
        "POST",
        "/_gitsync/faults",
        &json!({"rules": [{"status": 500}]}),
    )
    .await;
    fx.client.list_core_api_versions().await.expect("discovery");
    fx.client.apiserver_version().await.expect("version");
    let (code, _) = call(&fx, "DELETE", "/_gitsync/faults", &Value::Null).await;
    assert_eq!(code, 204);
    assert_eq!(local(&fx).faults().await, Faults::default());
    patch(&fx, "web", "2", false).await.expect("cleared");
    fx.finish().await;
}

#[tokio::test]
async fn invalid_fault_configurations_are_refused() {
    let Some(fx) = start().await else { return };
    for config in [
        json!({"rules": [{"count": 1}]}),
        json!({"rules": [{"status": 200}]}),
        json!({"rules": [{"status": 500, "verbs": ["apply"]}]}),
        json!({"rules": [{"status": 500, "dryrun": true}]}),
        json!({"latencyMs": "5"}),
    ] {
        let (code, body) = call(&fx, "POST", "/_gitsync/faults", &config).await;
        assert_eq!(
            (code, &body["reason"]),
            (400, &json!("BadRequest")),
            "{config}"
        );
    }
    let before = local(&fx).faults().await;
    let missing = FaultRule {
        count: Some(1),
        ..FaultRule::default()
    };
    let refused = local(&fx)
        .set_faults(Faults {
            latency_ms: 0,
            rules: vec![missing],
        })
        .await;
    assert!(refused.is_err());
    assert_eq!(local(&fx).faults().await, before, "unchanged");
    fx.finish().await;
}

#[tokio::test]
async fn a_disconnect_closes_the_connection_without_a_response() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    set(
        &fx,
        json!([{"disconnect": true, "count": 1, "verbs": ["patch"]}]),
    )
    .await;
    match patch(&fx, "web", "1", false).await {
        // hyper: "connection closed before message completed" (IncompleteMessage).
        Err(kube::Error::Service(_)) => {}
        other => panic!("expected the connection to close without a response, got {other:?}"),
    }
    assert_eq!(data(&fx, "web").await.as_deref(), Some("0"));
    patch(&fx, "web", "2", false).await.expect("spent");
    assert_eq!(local(&fx).stats().injected, 1);
    fx.finish().await;
}

#[tokio::test]
async fn kube_clients_retry_429_by_default_and_each_try_is_counted() {
    let Some(fx) = start().await else { return };
    create(&fx, "web", "0").await;
    set(
        &fx,
        json!([{"status": 429, "count": 2, "verbs": ["patch"]}]),
    )
    .await;
    let retrying: Api<ConfigMap> = Api::namespaced(fx.server.client.clone(), &fx.server.ns);
    retrying
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": "1"}})),
        )
        .await
        .expect("the third try succeeds");
    let stats = local(&fx).stats();
    assert_eq!((stats.injected, stats.by_verb.get("patch")), (2, Some(&1)));
    assert_eq!(local(&fx).faults().await.rules[0].count, Some(0));
    fx.finish().await;
}
