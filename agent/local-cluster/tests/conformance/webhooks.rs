//! Admission webhooks (`admissionregistration.k8s.io/v1`): configurations validated and
//! defaulted as the API server does it; mutating webhooks change creates, server-side
//! applies and their dry runs (what they change is no manager's); validating webhooks
//! refuse writes and deletes with their own code and message; a webhook that cannot be
//! called fails the write or is skipped by its failure policy; an untrusted certificate
//! is named as the problem.
//!
//! The webhooks here are HTTPS servers on this machine's loopback, which a real API
//! server cannot reach: those tests skip, saying so, with `GITSYNC_TEST_KUBECONFIG` set.

use std::io::Write as _;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::{Server, config_map, status};

type Handler = dyn Fn(&Value) -> Value + Send + Sync;

/// An HTTPS admission webhook on loopback answering each AdmissionReview with what
/// its handler makes of it, and keeping the reviews it was sent.
struct Webhook {
    port: u16,
    cert: String,
    reviews: Arc<Mutex<Vec<Value>>>,
}

impl Webhook {
    fn start(handler: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Self {
        let (cert, key) = gitsync_tls::testing::self_signed("127.0.0.1");
        let reviews = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen = Arc::clone(&reviews);
        let port = gitsync_tls::testing::serve(&cert, &key, move |tls| {
            let Some(review) = read_request(tls) else {
                return;
            };
            seen.lock().expect("reviews").push(review.clone());
            let body = handler(&review).to_string();
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            tls.write_all(answer.as_bytes()).ok();
        });
        Self {
            port,
            cert,
            reviews,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.port)
    }

    /// `clientConfig` with this webhook's URL, trusting its certificate.
    fn client_config(&self, path: &str) -> Value {
        json!({"url": self.url(path), "caBundle": base64(&self.cert)})
    }

    fn reviews(&self) -> Vec<Value> {
        self.reviews.lock().expect("reviews").clone()
    }
}

/// The JSON body of an HTTP request (`None` when the connection ends first).
fn read_request(stream: &mut impl std::io::Read) -> Option<Value> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return serde_json::from_slice(&data[end + 4..end + 4 + length]).ok();
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => data.extend_from_slice(&chunk[..n]),
        }
    }
}

fn base64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An AdmissionReview answer to `review`.
fn answer(review: &Value, response: Value) -> Value {
    let mut response = response;
    response["uid"] = review["request"]["uid"].clone();
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Adds the label `injected: "true"` and the annotation `webhook: seen`, and rewrites
/// `data.mode` to `webhook`.
fn mutate(review: &Value) -> Value {
    let object = &review["request"]["object"];
    let mut ops = Vec::new();
    let meta = &object["metadata"];
    ops.push(if meta["labels"].is_object() {
        json!({"op": "add", "path": "/metadata/labels/injected", "value": "true"})
    } else {
        json!({"op": "add", "path": "/metadata/labels", "value": {"injected": "true"}})
    });
    ops.push(if meta["annotations"].is_object() {
        json!({"op": "add", "path": "/metadata/annotations/webhook", "value": "seen"})
    } else {
        json!({"op": "add", "path": "/metadata/annotations", "value": {"webhook": "seen"}})
    });
    if object["data"]["mode"].is_string() {
        ops.push(json!({"op": "replace", "path": "/data/mode", "value": "webhook"}));
    }
    answer(
        review,
        json!({"allowed": true, "patchType": "JSONPatch", "patch": base64(&Value::Array(ops).to_string())}),
    )
}

/// The server, unless it is a real cluster (which cannot reach this machine's
/// loopback): then `None`, having said so.
async fn start() -> Option<Server> {
    Server::start_local(
        "the webhook runs on this machine's loopback, which a real API server cannot call",
    )
    .await
}

/// The webhook configurations of `K` (mutating or validating).
fn configurations<K>(server: &Server) -> Api<K>
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>,
{
    Api::all(server.client.clone())
}

/// One webhook for ConfigMaps (`operations`), calling `client_config`.
fn webhook(name: &str, client_config: Value, operations: &[&str], extra: Value) -> Value {
    let mut hook = json!({
        "name": name,
        "clientConfig": client_config,
        "rules": [{"operations": operations, "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    if let (Some(h), Some(e)) = (hook.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    hook
}

/// Stores a configuration `name` of `kind` (mutating or validating) with one webhook.
async fn add<K>(server: &Server, name: &str, hook: Value) -> K
where
    K: kube::Resource<Scope = kube::core::ClusterResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let configuration =
        serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": [hook]}))
            .expect("configuration");
    configurations::<K>(server)
        .create(&PostParams::default(), &configuration)
        .await
        .expect("create the webhook configuration")
}

async fn add_mutating(server: &Server, name: &str, hook: Value) -> MutatingWebhookConfiguration {
    add(server, name, hook).await
}

async fn add_validating(server: &Server, name: &str, hook: Value) {
    add::<ValidatingWebhookConfiguration>(server, name, hook).await;
}

/// The [`mutate`] webhook, configured as `inject` for ConfigMap creates and updates.
async fn injector(server: &Server) -> Webhook {
    let hook = Webhook::start(mutate);
    add_mutating(
        server,
        "inject",
        webhook(
            "inject.gitsync.test",
            hook.client_config("/mutate"),
            &["CREATE", "UPDATE"],
            json!({}),
        ),
    )
    .await;
    hook
}

fn labels(cm: &ConfigMap) -> Vec<(String, String)> {
    cm.metadata
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect()
}

fn data(cm: &ConfigMap, key: &str) -> Option<String> {
    cm.data.as_ref().and_then(|d| d.get(key).cloned())
}

#[tokio::test]
async fn a_mutating_webhook_changes_what_a_create_stores() {
    let Some(server) = start().await else { return };
    let hook = injector(&server).await;
    let api = server.config_maps();
    let mut cm = config_map("c", json!({"mode": "user"}));
    cm.metadata.labels = Some([("app".to_owned(), "web".to_owned())].into());
    let created = api
        .create(&PostParams::default(), &cm)
        .await
        .expect("create");
    assert_eq!(
        labels(&created),
        [
            ("app".into(), "web".into()),
            ("injected".into(), "true".into())
        ]
    );
    assert_eq!(
        created
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("webhook"))
            .map(String::as_str),
        Some("seen")
    );
    assert_eq!(data(&created, "mode").as_deref(), Some("webhook"));
    assert_eq!(
        api.get("c").await.expect("get").data,
        created.data,
        "stored so"
    );

    let reviews = hook.reviews();
    assert_eq!(reviews.len(), 1);
    let request = &reviews[0]["request"];
    assert_eq!(reviews[0]["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(request["operation"], "CREATE");
    assert_eq!(
        request["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        request["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(
        (request["name"].as_str(), request["namespace"].as_str()),
        (Some("c"), Some(server.ns.as_str()))
    );
    assert_eq!(request["dryRun"], false);
    assert_eq!(request["object"]["data"]["mode"], "user");
    assert_eq!(request["oldObject"], Value::Null);
    assert_eq!(request["options"]["kind"], "CreateOptions");

    // Writes to the configurations themselves call no webhook, even one for every
    // resource.
    let everything = webhook(
        "all.gitsync.test",
        hook.client_config("/mutate"),
        &["*"],
        json!({}),
    );
    let mut everything = everything;
    everything["rules"] = json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*"]}]);
    add_mutating(&server, "zz-everything", everything).await;
    configurations::<MutatingWebhookConfiguration>(&server)
        .delete("inject", &DeleteParams::default())
        .await
        .expect("delete a configuration");
    assert_eq!(hook.reviews().len(), 1);
    server.finish().await;
}

#[tokio::test]
async fn server_side_apply_and_its_dry_run_are_mutated_and_the_webhooks_changes_are_no_managers() {
    let Some(server) = start().await else { return };
    let hook = injector(&server).await;
    let api = server.config_maps();
    let applied = |name: &str, mode: &str| {
        Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "web"}}, "data": {"mode": mode}}))
    };
    let created = api
        .patch("c", &PatchParams::apply("gitsync"), &applied("c", "user"))
        .await
        .expect("apply");
    assert_eq!(data(&created, "mode").as_deref(), Some("webhook"));
    assert!(labels(&created).contains(&("injected".into(), "true".into())));
    let entries = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(entries.len(), 1, "no entry for the webhook: {entries:?}");
    assert_eq!(entries[0].manager.as_deref(), Some("gitsync"));
    let owned = entries[0]
        .fields_v1
        .as_ref()
        .map(|f| f.0.to_string())
        .unwrap_or_default();
    assert!(
        owned.contains("f:mode") && owned.contains("f:app"),
        "{owned}"
    );
    assert!(
        !owned.contains("injected") && !owned.contains("f:annotations"),
        "the webhook's label and annotation are no manager's: {owned}"
    );
    assert_eq!(hook.reviews()[0]["request"]["operation"], "CREATE");
    assert_eq!(
        hook.reviews()[0]["request"]["options"]["fieldManager"],
        "gitsync"
    );

    // A dry-run apply: the webhook is called with dryRun, the answer is mutated,
    // nothing is stored.
    let dry = api
        .patch(
            "c",
            &PatchParams::apply("gitsync").dry_run(),
            &applied("c", "other"),
        )
        .await
        .expect("dry-run apply");
    assert_eq!(data(&dry, "mode").as_deref(), Some("webhook"));
    let last = hook.reviews().last().cloned().expect("called");
    assert_eq!(last["request"]["dryRun"], true);
    assert_eq!(last["request"]["operation"], "UPDATE");
    assert_eq!(last["request"]["object"]["data"]["mode"], "other");
    assert_eq!(last["request"]["oldObject"]["data"]["mode"], "webhook");
    assert_eq!(
        api.get("c").await.expect("get").metadata.resource_version,
        created.metadata.resource_version,
        "a dry run stores nothing"
    );
    let new = api
        .patch(
            "d",
            &PatchParams::apply("gitsync").dry_run(),
            &applied("d", "user"),
        )
        .await
        .expect("dry-run create");
    assert_eq!(data(&new, "mode").as_deref(), Some("webhook"));
    assert!(labels(&new).contains(&("injected".into(), "true".into())));
    assert_eq!(status(api.get("d").await).code, 404);
    server.finish().await;
}

#[tokio::test]
async fn a_validating_webhook_refuses_writes_and_deletes_with_its_code_and_message() {
    let Some(server) = start().await else { return };
    let hook = Webhook::start(|review| {
        let request = &review["request"];
        let object = if request["operation"] == "DELETE" {
            &request["oldObject"]
        } else {
            &request["object"]
        };
        if object["data"]["forbidden"].is_string() {
            answer(
                review,
                json!({"allowed": false, "status": {"code": 403, "message": "the key forbidden is not allowed"}}),
            )
        } else if object["metadata"]["labels"]["protected"] == "true" {
            answer(
                review,
                json!({"allowed": false, "status": {"code": 409, "reason": "Conflict", "message": "protected"}}),
            )
        } else {
            answer(review, json!({"allowed": true}))
        }
    });
    add_validating(
        &server,
        "policy",
        webhook(
            "policy.gitsync.test",
            hook.client_config("/validate"),
            &["CREATE", "UPDATE", "DELETE"],
            json!({}),
        ),
    )
    .await;
    let api = server.config_maps();
    let refused = status(
        api.create(
            &PostParams::default(),
            &config_map("c", json!({"forbidden": "x"})),
        )
        .await,
    );
    assert_eq!(refused.code, 403);
    assert_eq!(
        refused.message,
        "admission webhook \"policy.gitsync.test\" denied the request: the key forbidden is not allowed"
    );
    assert_eq!(status(api.get("c").await).code, 404, "nothing stored");

    // An update is refused with the webhook's code and reason.
    api.create(&PostParams::default(), &config_map("p", json!({"a": "1"})))
        .await
        .expect("create");
    let mut protected = api.get("p").await.expect("get");
    protected.metadata.labels = Some([("protected".to_owned(), "true".to_owned())].into());
    let refused = status(api.replace("p", &PostParams::default(), &protected).await);
    assert_eq!((refused.code, refused.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        refused.message,
        "admission webhook \"policy.gitsync.test\" denied the request: protected"
    );
    assert!(
        labels(&api.get("p").await.expect("get")).is_empty(),
        "unchanged"
    );
    // A delete is shown the object as oldObject.
    api.delete("p", &DeleteParams::default())
        .await
        .expect("delete");
    let delete_review = hook.reviews().last().cloned().expect("called");
    assert_eq!(delete_review["request"]["operation"], "DELETE");
    assert_eq!(delete_review["request"]["object"], Value::Null);
    assert_eq!(
        delete_review["request"]["oldObject"]["metadata"]["name"],
        "p"
    );
    assert_eq!(delete_review["request"]["options"]["kind"], "DeleteOptions");
    server.finish().await;
}

#[tokio::test]
async fn a_protected_object_cannot_be_deleted_past_a_validating_webhook() {
    let Some(server) = start().await else { return };
    let hook = Webhook::start(|review| {
        let protected = review["request"]["oldObject"]["metadata"]["labels"]["protected"] == "true";
        answer(
            review,
            json!({"allowed": !protected, "status": {"message": "protected"}}),
        )
    });
    add_validating(
        &server,
        "keep",
        webhook(
            "keep.gitsync.test",
            hook.client_config("/"),
            &["DELETE"],
            json!({}),
        ),
    )
    .await;
    let api = server.config_maps();
    let mut cm = config_map("p", json!({}));
    cm.metadata.labels = Some([("protected".to_owned(), "true".to_owned())].into());
    api.create(&PostParams::default(), &cm)
        .await
        .expect("create");
    let refused = status(api.delete("p", &DeleteParams::default()).await);
    assert_eq!(refused.code, 400, "no code below 400 comes back");
    assert_eq!(
        refused.message,
        "admission webhook \"keep.gitsync.test\" denied the request: protected"
    );
    api.get("p").await.expect("still there");
    server.finish().await;
}

#[tokio::test]
async fn an_unreachable_webhook_fails_the_write_under_fail_and_is_skipped_under_ignore() {
    let Some(server) = start().await else { return };
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("https://127.0.0.1:{closed}/hook");
    let config = add_mutating(
        &server,
        "down",
        webhook(
            "down.gitsync.test",
            json!({"url": url}),
            &["CREATE"],
            json!({}),
        ),
    )
    .await;
    let hooks = config.webhooks.clone().unwrap_or_default();
    assert_eq!(
        hooks[0].failure_policy.as_deref(),
        Some("Fail"),
        "the v1 default"
    );
    assert_eq!(hooks[0].timeout_seconds, Some(10));
    let api = server.config_maps();
    let failed = status(
        api.create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!(
        (failed.code, failed.reason.as_str()),
        (500, "InternalError")
    );
    let prefix = format!(
        "Internal error occurred: failed calling webhook \"down.gitsync.test\": failed to call webhook: Post \"https://127.0.0.1:{closed}/hook?timeout=10s\": "
    );
    assert!(failed.message.starts_with(&prefix), "{}", failed.message);
    assert!(
        failed.message.contains("connection refused"),
        "{}",
        failed.message
    );
    assert_eq!(status(api.get("c").await).code, 404);

    let ignoring = configurations::<MutatingWebhookConfiguration>(&server)
        .patch(
            "down",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}
                ]))
                .expect("patch"),
            ),
        )
        .await
        .expect("set Ignore");
    assert_eq!(ignoring.metadata.generation, Some(2), "webhooks changed");
    api.create(&PostParams::default(), &config_map("c", json!({})))
        .await
        .expect("the webhook is skipped");
    server.finish().await;
}

#[tokio::test]
async fn a_slow_webhook_times_out_and_a_service_reference_cannot_be_called() {
    let Some(server) = start().await else { return };
    let slow = Webhook::start(|review| {
        std::thread::sleep(std::time::Duration::from_secs(3));
        answer(review, json!({"allowed": true}))
    });
    add_validating(
        &server,
        "slow",
        webhook(
            "slow.gitsync.test",
            slow.client_config("/slow"),
            &["CREATE"],
            json!({"timeoutSeconds": 1}),
        ),
    )
    .await;
    let api = server.config_maps();
    let started = std::time::Instant::now();
    let failed = status(
        api.create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "timeoutSeconds bounds the call"
    );
    assert_eq!(
        failed.message,
        format!(
            "Internal error occurred: failed calling webhook \"slow.gitsync.test\": failed to call webhook: Post \"{}?timeout=1s\": context deadline exceeded",
            slow.url("/slow")
        )
    );
    configurations::<ValidatingWebhookConfiguration>(&server)
        .delete("slow", &DeleteParams::default())
        .await
        .expect("delete");

    add_validating(
        &server,
        "in-cluster",
        webhook(
            "in-cluster.gitsync.test",
            json!({"service": {"namespace": "hooks", "name": "policy", "path": "/validate"}}),
            &["CREATE"],
            json!({}),
        ),
    )
    .await;
    let failed = status(
        api.create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!(failed.code, 500);
    assert!(
        failed.message.contains("service hooks/policy")
            && failed
                .message
                .contains("give the webhook clientConfig.url instead"),
        "{}",
        failed.message
    );
    server.finish().await;
}

#[tokio::test]
async fn an_untrusted_certificate_fails_the_call_naming_the_problem() {
    let Some(server) = start().await else { return };
    let hook = Webhook::start(mutate);
    let (other, _) = gitsync_tls::testing::self_signed("127.0.0.1");
    add_mutating(
        &server,
        "untrusted",
        webhook(
            "untrusted.gitsync.test",
            json!({"url": hook.url("/mutate"), "caBundle": base64(&other)}),
            &["CREATE"],
            json!({}),
        ),
    )
    .await;
    let failed = status(
        server
            .config_maps()
            .create(&PostParams::default(), &config_map("c", json!({})))
            .await,
    );
    assert_eq!(failed.code, 500);
    assert!(
        failed
            .message
            .contains("tls: failed to verify certificate: it is a self-signed CA certificate that is not trusted"),
        "{}",
        failed.message
    );
    assert!(hook.reviews().is_empty(), "nothing was sent");
    server.finish().await;
}

#[tokio::test]
async fn webhook_configurations_are_validated_and_defaulted() {
    // Nothing here calls a webhook, so this runs against a real cluster too.
    let server = Server::start().await;
    let api = configurations::<MutatingWebhookConfiguration>(&server);
    let name = format!("gitsync-conformance-{}", server.ns);
    let never = json!({"objectSelector": {"matchLabels": {"gitsync-conformance": "never-set"}}});
    let create = |hook: Value| {
        let configuration: MutatingWebhookConfiguration =
            serde_json::from_value(json!({"metadata": {"name": name}, "webhooks": [hook]}))
                .expect("configuration");
        let api = api.clone();
        async move { api.create(&PostParams::default(), &configuration).await }
    };
    let url = json!({"url": "https://127.0.0.1:9/hook"});
    let invalid = status(create(webhook("webhook", url.clone(), &["CREATE"], never.clone())).await);
    assert_eq!(invalid.code, 422);
    assert!(
        invalid.message.contains(
            "webhooks[0].name: Invalid value: \"webhook\": should be a domain with at least three segments separated by dots"
        ),
        "{}",
        invalid.message
    );
    let mut side_effects = never.clone();
    side_effects["sideEffects"] = json!("Some");
    let invalid = status(
        create(webhook(
            "a.gitsync.test",
            url.clone(),
            &["CREATE"],
            side_effects,
        ))
        .await,
    );
    assert_eq!(invalid.code, 422);
    assert!(
        invalid.message.contains(
            "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""
        ),
        "{}",
        invalid.message
    );
    let invalid = status(
        create(webhook(
            "a.gitsync.test",
            json!({"url": "http://127.0.0.1:9/hook"}),
            &["CREATE"],
            never.clone(),
        ))
        .await,
    );
    assert!(
        invalid.message.contains(
            "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]"
        ),
        "{}",
        invalid.message
    );

    let created = create(webhook("a.gitsync.test", url, &["CREATE"], never))
        .await
        .expect("valid");
    let hook = &created.webhooks.clone().unwrap_or_default()[0];
    assert_eq!(hook.failure_policy.as_deref(), Some("Fail"));
    assert_eq!(hook.match_policy.as_deref(), Some("Equivalent"));
    assert_eq!(hook.reinvocation_policy.as_deref(), Some("Never"));
    assert_eq!(hook.timeout_seconds, Some(10));
    assert!(hook.namespace_selector.is_some());
    assert_eq!(
        hook.rules.clone().unwrap_or_default()[0].scope.as_deref(),
        Some("*")
    );
    assert_eq!(created.metadata.generation, Some(1));
    api.delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    server.finish().await;
}
