use std::cell::RefCell;

use super::*;
use crate::kinds::by_plural;

fn res(group: &str, plural: &str) -> &'static Resource {
    let version = if plural == "horizontalpodautoscalers" {
        "v2"
    } else {
        "v1"
    };
    by_plural(group, version, plural).expect("served")
}

fn cm(labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "c", "namespace": "ns", "labels": labels}, "data": {"a": "1"}})
}

fn create(resource: &Resource, namespace: &str, name: &str) -> Request {
    Request::write(resource, None, namespace, name, None, false, "gitsync")
}

/// A webhook configuration with one webhook (`extra` merged into it).
fn configuration(name: &str, hook: &str, extra: Value) -> Value {
    let mut webhook = json!({
        "name": hook,
        "clientConfig": {"url": "https://127.0.0.1:1/hook"},
        "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"]}],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
    });
    crate::patch::merge(&webhook.clone(), &extra).clone_into(&mut webhook);
    json!({"metadata": {"name": name}, "webhooks": [webhook]})
}

fn hook(mutating: bool, extra: Value) -> Hook {
    Hook::of_configuration(&configuration("c", "a.example.com", extra), mutating)
        .pop()
        .expect("one webhook")
}

fn plan(request: Request, mutating: Vec<Hook>, validating: Vec<Hook>) -> Plan {
    Plan {
        request,
        mutating,
        validating,
        namespace_labels: Some(json!({"env": "prod"})),
        equivalents: Vec::new(),
    }
}

/// A caller answering as `answer` says, and recording the reviews it was sent.
struct Stub<F> {
    answer: F,
    seen: RefCell<Vec<(String, Value)>>,
}

impl<F: Fn(&Hook, &Value) -> Result<Value, String>> Stub<F> {
    fn new(answer: F) -> Self {
        Self {
            answer,
            seen: RefCell::new(Vec::new()),
        }
    }

    fn call(&self, hook: &Hook, review: &Value) -> Result<Value, String> {
        self.seen
            .borrow_mut()
            .push((hook.name.clone(), review.clone()));
        (self.answer)(hook, review)
    }

    fn names(&self) -> Vec<String> {
        self.seen.borrow().iter().map(|(n, _)| n.clone()).collect()
    }
}

/// An allowing answer to `review`, with a JSON patch when given.
fn allow(review: &Value, patch: Option<Value>) -> Value {
    let mut response = json!({"uid": review["request"]["uid"], "allowed": true});
    if let Some(patch) = patch {
        response["patchType"] = json!("JSONPatch");
        response["patch"] =
            json!(base64::engine::general_purpose::STANDARD.encode(patch.to_string()));
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

fn deny(review: &Value, status: Value) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": review["request"]["uid"], "allowed": false, "status": status}})
}

fn rule(operations: &[&str], groups: &[&str], resources: &[&str], scope: &str) -> Value {
    json!({"operations": operations, "apiGroups": groups, "apiVersions": ["*"],
        "resources": resources, "scope": scope})
}

#[test]
fn rules_match_operations_groups_versions_resources_and_scope() {
    let configmap = create(res("", "configmaps"), "ns", "c");
    let own = |r: &Request| r.resource.clone();
    let matches = |rule: &Value, request: &Request| rule_matches(rule, request, &own(request));
    assert!(matches(
        &rule(&["CREATE"], &[""], &["configmaps"], "*"),
        &configmap
    ));
    assert!(matches(
        &rule(&["*"], &["*"], &["*"], "Namespaced"),
        &configmap
    ));
    assert!(!matches(
        &rule(&["UPDATE", "DELETE"], &[""], &["configmaps"], "*"),
        &configmap
    ));
    assert!(!matches(
        &rule(&["CREATE"], &["apps"], &["configmaps"], "*"),
        &configmap
    ));
    assert!(!matches(
        &rule(&["CREATE"], &[""], &["secrets"], "*"),
        &configmap
    ));
    assert!(!matches(
        &rule(&["CREATE"], &[""], &["configmaps"], "Cluster"),
        &configmap
    ));
    let mut versions = rule(&["CREATE"], &[""], &["configmaps"], "*");
    versions["apiVersions"] = json!(["v2"]);
    assert!(!matches(&versions, &configmap));

    // Subresources: `*` is every resource but none of their subresources.
    let old = json!({});
    let status = Request::write(
        res("apps", "deployments"),
        Some("status"),
        "ns",
        "d",
        Some(&old),
        false,
        "m",
    );
    assert!(!matches(
        &rule(&["UPDATE"], &["apps"], &["*"], "*"),
        &status
    ));
    assert!(!matches(
        &rule(&["UPDATE"], &["apps"], &["deployments"], "*"),
        &status
    ));
    for resources in [
        &["*/*"][..],
        &["deployments/*"],
        &["*/status"],
        &["deployments/status"],
    ] {
        assert!(
            matches(&rule(&["UPDATE"], &["apps"], resources, "*"), &status),
            "{resources:?}"
        );
    }
    assert!(!matches(
        &rule(&["UPDATE"], &["apps"], &["*/scale"], "*"),
        &status
    ));
    let main = Request::write(
        res("apps", "deployments"),
        None,
        "ns",
        "d",
        Some(&old),
        false,
        "m",
    );
    assert!(matches(
        &rule(&["UPDATE"], &["apps"], &["deployments/*"], "*"),
        &main
    ));

    // Scope: a Namespace is cluster-scoped, though its request names it as namespace.
    let namespace = create(res("", "namespaces"), "", "team");
    assert_eq!(namespace.namespace, "team");
    assert!(matches(
        &rule(&["CREATE"], &[""], &["namespaces"], "Cluster"),
        &namespace
    ));
    assert!(!matches(
        &rule(&["CREATE"], &[""], &["namespaces"], "Namespaced"),
        &namespace
    ));
    let class = create(res("storage.k8s.io", "storageclasses"), "", "fast");
    assert_eq!(class.namespace, "");
    assert!(matches(
        &rule(&["CREATE"], &["*"], &["*"], "Cluster"),
        &class
    ));
    assert!(!matches(
        &rule(&["CREATE"], &["*"], &["*"], "Namespaced"),
        &class
    ));
}

#[test]
fn selectors_see_the_namespace_labels_and_the_new_or_the_old_object() {
    let selecting = |field: &str, selector: Value| {
        let mut extra = json!({});
        extra[field] = selector;
        hook(false, extra)
    };
    let p = plan(create(res("", "configmaps"), "ns", "c"), vec![], vec![]);
    let object = cm(json!({"app": "web"}));
    let prod = selecting("namespaceSelector", json!({"matchLabels": {"env": "prod"}}));
    let dev = selecting("namespaceSelector", json!({"matchLabels": {"env": "dev"}}));
    assert!(p.invocation(&prod, Some(&object)).is_some());
    assert!(p.invocation(&dev, Some(&object)).is_none());
    let web = selecting("objectSelector", json!({"matchLabels": {"app": "web"}}));
    let db = selecting("objectSelector", json!({"matchLabels": {"app": "db"}}));
    assert!(p.invocation(&web, Some(&object)).is_some());
    assert!(p.invocation(&db, Some(&object)).is_none());
    // The old object's labels count too (a label being removed still matches).
    let old = cm(json!({"app": "db"}));
    let update = Request::write(
        res("", "configmaps"),
        None,
        "ns",
        "c",
        Some(&old),
        false,
        "m",
    );
    let p = plan(update, vec![], vec![]);
    assert!(p.invocation(&db, Some(&object)).is_some());

    // A Namespace being created is matched on its own new labels.
    let mut rules = json!({"rules": [rule(&["CREATE"], &[""], &["namespaces"], "*")]});
    rules["namespaceSelector"] =
        json!({"matchExpressions": [{"key": "team", "operator": "Exists"}]});
    let ns_hook = hook(false, rules);
    let p = plan(create(res("", "namespaces"), "", "t"), vec![], vec![]);
    let labelled = json!({"metadata": {"name": "t", "labels": {"team": "a"}}});
    assert!(p.invocation(&ns_hook, Some(&labelled)).is_some());
    assert!(
        p.invocation(&ns_hook, Some(&json!({"metadata": {"name": "t"}})))
            .is_none()
    );
    // Other cluster-scoped objects are never excluded by a namespaceSelector.
    let mut rules = json!({"rules": [rule(&["CREATE"], &["*"], &["*"], "*")]});
    rules["namespaceSelector"] = json!({"matchLabels": {"env": "dev"}});
    let any = hook(false, rules);
    let p = plan(
        create(res("storage.k8s.io", "storageclasses"), "", "fast"),
        vec![],
        vec![],
    );
    assert!(p.invocation(&any, Some(&json!({}))).is_some());
}

#[test]
fn equivalent_match_policy_reaches_other_served_versions() {
    let widget_v2 = Resource {
        group: "example.com",
        version: "v2",
        plural: "widgets",
        singular: "widget",
        kind: "Widget",
        namespaced: true,
        short_names: &[],
        categories: &[],
        has_status: false,
    };
    let mut p = plan(create(&widget_v2, "ns", "w"), vec![], vec![]);
    p.equivalents = vec![Invocation {
        resource: Gv::new("example.com", "v1", "widgets"),
        kind: Gv::new("example.com", "v1", "Widget"),
    }];
    let v1_only = json!({"rules": [{"operations": ["CREATE"], "apiGroups": ["example.com"], "apiVersions": ["v1"], "resources": ["widgets"]}]});
    let equivalent = hook(false, v1_only.clone());
    let found = p
        .invocation(&equivalent, Some(&json!({})))
        .expect("equivalent");
    assert_eq!(found.resource.version, "v1");
    let mut exact = v1_only;
    exact["matchPolicy"] = json!("Exact");
    assert!(
        p.invocation(&hook(false, exact), Some(&json!({})))
            .is_none()
    );
}

#[test]
fn the_review_names_the_request_and_carries_both_objects() {
    let old = cm(json!({}));
    let request = Request::write(
        res("", "configmaps"),
        None,
        "ns",
        "c",
        Some(&old),
        true,
        "gitsync",
    );
    let invocation = Invocation {
        resource: request.resource.clone(),
        kind: request.kind.clone(),
    };
    let new = cm(json!({"a": "b"}));
    let review = review(&request, &invocation, Some(&new), Some(&old), "v1", "u-1");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(review["kind"], "AdmissionReview");
    let r = &review["request"];
    assert_eq!(r["uid"], "u-1");
    assert_eq!(
        r["kind"],
        json!({"group": "", "version": "v1", "kind": "ConfigMap"})
    );
    assert_eq!(
        r["resource"],
        json!({"group": "", "version": "v1", "resource": "configmaps"})
    );
    assert_eq!(r["requestKind"], r["kind"]);
    assert_eq!(r["requestResource"], r["resource"]);
    assert!(r.get("subResource").is_none(), "omitted when empty");
    assert_eq!(
        (r["name"].as_str(), r["namespace"].as_str()),
        (Some("c"), Some("ns"))
    );
    assert_eq!(r["operation"], "UPDATE");
    assert_eq!(r["userInfo"]["username"], "system:anonymous");
    assert_eq!(r["object"], new);
    assert_eq!(r["oldObject"], old);
    assert_eq!(r["dryRun"], true);
    assert_eq!(
        r["options"],
        json!({"kind": "UpdateOptions", "apiVersion": "meta.k8s.io/v1", "dryRun": ["All"], "fieldManager": "gitsync"})
    );
    let created = create(res("", "configmaps"), "ns", "c");
    let review = super::review(&created, &invocation, Some(&new), None, "v1beta1", "u-2");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1beta1");
    assert_eq!(review["request"]["oldObject"], Value::Null);
    assert_eq!(review["request"]["options"]["kind"], "CreateOptions");
}

#[test]
fn answers_are_checked_as_the_api_server_checks_them() {
    let review = json!({"request": {"uid": "u"}});
    let ok = allow(
        &review,
        Some(json!([{"op": "add", "path": "/x", "value": 1}])),
    );
    let verdict = verify(&ok, "u", "v1", true).expect("valid");
    assert!(verdict.allowed);
    assert_eq!(verdict.patch_type, "JSONPatch");
    let err =
        |answer: &Value, mutating: bool| verify(answer, "u", "v1", mutating).expect_err("invalid");
    assert_eq!(err(&json!({}), true), "webhook response was absent");
    let mut other_uid = ok.clone();
    other_uid["response"]["uid"] = json!("v");
    assert_eq!(
        err(&other_uid, true),
        "expected response.uid=\"u\", got \"v\""
    );
    let mut beta = ok.clone();
    beta["apiVersion"] = json!("admission.k8s.io/v1beta1");
    assert_eq!(
        err(&beta, true),
        "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got admission.k8s.io/v1beta1, Kind=AdmissionReview"
    );
    let mut untyped = ok.clone();
    untyped["response"]
        .as_object_mut()
        .expect("map")
        .remove("patchType");
    assert_eq!(
        err(&untyped, true),
        "webhook returned response.patch but not response.patchType"
    );
    assert_eq!(
        err(&ok, false),
        "validating webhook may not return response.patch"
    );
    // v1beta1 answers were never checked for uid or patch type.
    let old_style = json!({"response": {"allowed": true, "patch": ok["response"]["patch"]}});
    assert_eq!(
        verify(&old_style, "u", "v1beta1", true)
            .expect("lenient")
            .patch_type,
        "JSONPatch"
    );
}

#[test]
fn a_refusal_keeps_the_webhooks_code_and_says_who_refused() {
    let e = denial(
        "deny.example.com",
        Some(&json!({"code": 403, "message": "no", "reason": "Forbidden"})),
    );
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request: no"
    );
    assert_eq!(e.to_status()["reason"], "Forbidden");
    let e = denial("deny.example.com", None);
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "admission webhook \"deny.example.com\" denied the request without explanation"
    );
    assert!(e.to_status().get("reason").is_none());
    let e = denial(
        "d.example.com",
        Some(&json!({"code": 200, "reason": "Later"})),
    );
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            400,
            "admission webhook \"d.example.com\" denied the request: Later"
        )
    );
}

#[test]
fn mutating_webhooks_patch_in_order_and_validating_ones_see_the_result() {
    let first = Hook {
        name: "first.example.com".into(),
        ..hook(true, json!({}))
    };
    let second = Hook {
        name: "second.example.com".into(),
        ..hook(true, json!({}))
    };
    let check = hook(false, json!({}));
    let p = plan(
        create(res("", "configmaps"), "ns", "c"),
        vec![first, second],
        vec![check],
    );
    let stub = Stub::new(|hook: &Hook, review: &Value| {
        let patch = match hook.name.as_str() {
            "first.example.com" => {
                json!([{"op": "add", "path": "/metadata/labels/injected", "value": "1"}])
            }
            "second.example.com" => {
                // Sees the first one's label.
                assert_eq!(
                    review["request"]["object"]["metadata"]["labels"]["injected"],
                    "1"
                );
                json!([{"op": "replace", "path": "/data/a", "value": "2"}])
            }
            _ => return Ok(allow(review, None)),
        };
        Ok(allow(review, Some(patch)))
    });
    let mut object = cm(json!({}));
    let mut defaulted = 0;
    p.mutate_with(Some(&mut object), &mut |_| defaulted += 1, &|h, r| {
        stub.call(h, r)
    })
    .expect("admitted");
    assert_eq!(object["metadata"]["labels"]["injected"], "1");
    assert_eq!(object["data"]["a"], "2");
    assert_eq!(defaulted, 2, "defaults again after each patch");
    p.validate_with(Some(&object), &|h, r| stub.call(h, r))
        .expect("allowed");
    let seen = stub.seen.borrow();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[2].1["request"]["object"]["data"]["a"], "2");
}

#[test]
fn if_needed_webhooks_are_called_again_after_a_later_change() {
    let early = Hook {
        name: "early.example.com".into(),
        ..hook(true, json!({"reinvocationPolicy": "IfNeeded"}))
    };
    let never = Hook {
        name: "never.example.com".into(),
        ..hook(true, json!({}))
    };
    let late = Hook {
        name: "late.example.com".into(),
        ..hook(true, json!({}))
    };
    let p = plan(
        create(res("", "configmaps"), "ns", "c"),
        vec![early, never, late],
        vec![],
    );
    let stub = Stub::new(|hook: &Hook, review: &Value| {
        let patch = (hook.name == "late.example.com"
            && review["request"]["object"]["data"]["late"].is_null())
        .then(|| json!([{"op": "add", "path": "/data/late", "value": "x"}]));
        Ok(allow(review, patch))
    });
    let mut object = cm(json!({}));
    p.mutate_with(Some(&mut object), &mut |_| {}, &|h, r| stub.call(h, r))
        .expect("admitted");
    assert_eq!(
        stub.names(),
        [
            "early.example.com",
            "never.example.com",
            "late.example.com",
            "early.example.com"
        ]
    );
}

#[test]
fn failure_policy_decides_what_a_failed_call_does() {
    let failing = |extra: Value| {
        let p = plan(
            create(res("", "configmaps"), "ns", "c"),
            vec![],
            vec![hook(false, extra)],
        );
        p.validate_with(Some(&cm(json!({}))), &|_, _| {
            Err("failed to call webhook: Post \"https://127.0.0.1:1/hook?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused".into())
        })
    };
    let e = failing(json!({})).expect_err("Fail is the default");
    assert_eq!(e.code, 500);
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"a.example.com\": failed to call webhook: Post \"https://127.0.0.1:1/hook?timeout=10s\": dial tcp 127.0.0.1:1: connect: connection refused"
    );
    assert_eq!(e.to_status()["reason"], "InternalError");
    failing(json!({"failurePolicy": "Ignore"})).expect("ignored");

    // A refusal is a refusal whatever the policy; an invalid answer is a failed call.
    let p = plan(
        create(res("", "configmaps"), "ns", "c"),
        vec![],
        vec![hook(false, json!({"failurePolicy": "Ignore"}))],
    );
    let e = p
        .validate_with(Some(&cm(json!({}))), &|_, r| {
            Ok(deny(r, json!({"code": 422, "message": "bad"})))
        })
        .expect_err("denied");
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            422,
            "admission webhook \"a.example.com\" denied the request: bad"
        )
    );
    p.validate_with(Some(&cm(json!({}))), &|_, _| Ok(json!({})))
        .expect("an absent answer is ignored under Ignore");
    let p = plan(
        create(res("", "configmaps"), "ns", "c"),
        vec![],
        vec![hook(false, json!({}))],
    );
    let e = p
        .validate_with(Some(&cm(json!({}))), &|_, _| Ok(json!({})))
        .expect_err("Fail");
    assert_eq!(
        e.message,
        "Internal error occurred: failed calling webhook \"a.example.com\": received invalid webhook response: webhook response was absent"
    );
}

#[test]
fn dry_runs_reach_only_webhooks_without_side_effects() {
    let dry = Request::write(res("", "configmaps"), None, "ns", "c", None, true, "m");
    let p = plan(
        dry.clone(),
        vec![hook(true, json!({"sideEffects": "NoneOnDryRun"}))],
        vec![],
    );
    let stub = Stub::new(|_: &Hook, r: &Value| Ok(allow(r, None)));
    p.mutate_with(Some(&mut cm(json!({}))), &mut |_| {}, &|h, r| {
        stub.call(h, r)
    })
    .expect("called");
    assert_eq!(stub.seen.borrow()[0].1["request"]["dryRun"], true);
    // Side effects (a configuration stored before v1 could hold them) refuse the dry run
    // without calling, whatever the failure policy.
    let p = plan(
        dry,
        vec![],
        vec![hook(
            false,
            json!({"sideEffects": "Some", "failurePolicy": "Ignore"}),
        )],
    );
    let e = p
        .validate_with(Some(&cm(json!({}))), &|_, _| panic!("not called"))
        .expect_err("refused");
    assert_eq!((e.code, e.reason), (400, "BadRequest"));
    assert_eq!(
        e.message,
        "admission webhook \"a.example.com\" does not support dry run"
    );
}

#[test]
fn a_delete_shows_the_old_object_and_cannot_be_patched() {
    let old = cm(json!({}));
    let request = Request::delete(
        res("", "configmaps"),
        "ns",
        "c",
        old.clone(),
        false,
        json!({"kind": "DeleteOptions", "apiVersion": "meta.k8s.io/v1"}),
    );
    let deleting = json!({"rules": [rule(&["DELETE"], &[""], &["configmaps"], "*")]});
    let p = plan(
        request,
        vec![hook(true, deleting.clone())],
        vec![hook(false, deleting)],
    );
    let stub = Stub::new(|hook: &Hook, r: &Value| {
        assert_eq!(r["request"]["object"], Value::Null);
        assert_eq!(r["request"]["operation"], "DELETE");
        let patch = hook
            .mutating
            .then(|| json!([{"op": "add", "path": "/x", "value": 1}]));
        Ok(allow(r, patch))
    });
    let e = p
        .mutate_with(None, &mut |_| {}, &|h, r| stub.call(h, r))
        .expect_err("no object to patch");
    assert_eq!(
        e.message,
        "Internal error occurred: admission webhook \"a.example.com\" attempted to modify the object, which is not supported for this operation"
    );
    p.validate_with(None, &|h, r| stub.call(h, r))
        .expect("allowed");
    assert_eq!(stub.seen.borrow()[1].1["request"]["oldObject"], old);
}

#[test]
fn configuration_writes_are_exempt() {
    let request = create(res(GROUP, "validatingwebhookconfigurations"), "", "v");
    assert!(request.exempt());
    assert!(!create(res("", "configmaps"), "ns", "c").exempt());
}

fn causes(mutating: bool, configuration: &Value) -> Vec<String> {
    let mut out = Vec::new();
    validate_configuration(mutating, configuration, &mut out);
    out.into_iter().map(|(f, m)| format!("{f}: {m}")).collect()
}

#[test]
fn configurations_are_validated_as_the_api_server_validates_them() {
    assert_eq!(
        causes(true, &configuration("c", "a.example.com", json!({}))),
        Vec::<String>::new()
    );
    let bad = |extra: Value| causes(true, &configuration("c", "a.example.com", extra));
    assert_eq!(
        causes(false, &configuration("c", "webhook", json!({}))),
        [
            "webhooks[0].name: Invalid value: \"webhook\": should be a domain with at least three segments separated by dots"
        ]
    );
    let mut no_side_effects = configuration("c", "a.example.com", json!({}));
    no_side_effects["webhooks"][0]
        .as_object_mut()
        .expect("map")
        .remove("sideEffects");
    assert_eq!(
        causes(true, &no_side_effects),
        ["webhooks[0].sideEffects: Required value: must specify one of None, NoneOnDryRun"]
    );
    assert_eq!(
        bad(json!({"sideEffects": "Some"})),
        [
            "webhooks[0].sideEffects: Unsupported value: \"Some\": supported values: \"None\", \"NoneOnDryRun\""
        ]
    );
    assert_eq!(
        bad(json!({"clientConfig": {"url": "http://h/x?a=b#f"}})),
        [
            "webhooks[0].clientConfig.url: Invalid value: \"http\": 'https' is the only allowed URL scheme; desired format: https://host[/path]",
            "webhooks[0].clientConfig.url: Invalid value: \"f\": fragments are not permitted in the URL",
            "webhooks[0].clientConfig.url: Invalid value: \"a=b\": query parameters are not permitted in the URL",
        ]
    );
    assert_eq!(
        bad(json!({"clientConfig": {"service": {"name": "s", "namespace": "n"}}})),
        ["webhooks[0].clientConfig: Required value: exactly one of url or service is required"]
    );
    assert_eq!(
        bad(json!({"admissionReviewVersions": ["v2"]})),
        [
            "webhooks[0].admissionReviewVersions: Invalid value: [\"v2\"]: must include at least one of v1, v1beta1"
        ]
    );
    assert_eq!(
        bad(json!({"timeoutSeconds": 31, "failurePolicy": "Maybe"})),
        [
            "webhooks[0].failurePolicy: Unsupported value: \"Maybe\": supported values: \"Fail\", \"Ignore\"",
            "webhooks[0].timeoutSeconds: Invalid value: 31: the timeout value must be between 1 and 30 seconds",
        ]
    );
    assert_eq!(
        bad(
            json!({"rules": [{"operations": ["GET"], "apiGroups": [""], "apiVersions": ["v1"], "resources": ["*", "pods"]}]})
        ),
        [
            "webhooks[0].rules[0].operations[0]: Unsupported value: \"GET\": supported values: \"*\", \"CONNECT\", \"CREATE\", \"DELETE\", \"UPDATE\"",
            "webhooks[0].rules[0].resources: Invalid value: [\"*\",\"pods\"]: if '*' is present, must not specify other resources without subresources",
        ]
    );
    assert_eq!(
        bad(json!({"objectSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})),
        [
            "webhooks[0].objectSelector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        ]
    );
    assert_eq!(
        bad(json!({"matchConditions": [{"name": "x", "expression": "true"}]})).len(),
        1
    );
    let mut twice = configuration("c", "a.example.com", json!({}));
    let copy = twice["webhooks"][0].clone();
    twice["webhooks"].as_array_mut().expect("list").push(copy);
    assert_eq!(
        causes(false, &twice),
        ["webhooks[1].name: Duplicate value: \"a.example.com\""]
    );
}

#[test]
fn configurations_are_defaulted_as_the_api_server_defaults_them() {
    let mut mutating = configuration(
        "c",
        "a.example.com",
        json!({"clientConfig": {"url": null, "service": {"name": "s", "namespace": "n"}}}),
    );
    apply_defaults(true, &mut mutating);
    let w = &mutating["webhooks"][0];
    assert_eq!(w["failurePolicy"], "Fail");
    assert_eq!(w["matchPolicy"], "Equivalent");
    assert_eq!(w["timeoutSeconds"], 10);
    assert_eq!(w["namespaceSelector"], json!({}));
    assert_eq!(w["objectSelector"], json!({}));
    assert_eq!(w["reinvocationPolicy"], "Never");
    assert_eq!(w["rules"][0]["scope"], "*");
    assert_eq!(w["clientConfig"]["service"]["port"], 443);
    let mut validating = configuration("c", "a.example.com", json!({}));
    apply_defaults(false, &mut validating);
    assert!(
        validating["webhooks"][0]
            .get("reinvocationPolicy")
            .is_none()
    );
}

#[test]
fn urls_and_http_answers_are_taken_apart() {
    let url = call::parse_url("https://127.0.0.1:8443/mutate?timeout=10s").expect("url");
    assert_eq!(
        (url.authority, url.host, url.port, url.target.as_str()),
        ("127.0.0.1:8443", "127.0.0.1", 8443, "/mutate?timeout=10s")
    );
    let url = call::parse_url("https://[::1]?timeout=1s").expect("url");
    assert_eq!(
        (url.host, url.port, url.target.as_str()),
        ("::1", 443, "/?timeout=1s")
    );
    assert!(call::parse_url("http://h/").is_err());

    let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(
        call::parse_response(whole).expect("ok"),
        Some((200, b"{}".to_vec()))
    );
    assert_eq!(
        call::parse_response(&whole[..whole.len() - 1]).expect("ok"),
        None
    );
    let chunked =
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1;x=y\r\n}\r\n0\r\n\r\n";
    assert_eq!(
        call::parse_response(chunked).expect("ok"),
        Some((200, b"{}".to_vec()))
    );
    assert_eq!(call::dechunk(b"2\r\n{}").expect("ok"), None);
    assert!(call::parse_response(b"garbage\r\n\r\n").is_err());
}
