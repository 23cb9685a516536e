use super::*;

fn info(method: Method, path: &str, query: &[(&str, &str)]) -> Option<Info> {
    let query = query
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    describe(&method, path, &query)
}

/// What the parser must make of a request for an object.
fn want(
    verb: &'static str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Info {
    Info {
        verb,
        group: group.to_owned(),
        resource: resource.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

#[test]
fn core_namespaced_paths() {
    let p = "/api/v1/namespaces/team/configmaps";
    assert_eq!(
        info(Method::GET, p, &[]),
        Some(want("list", "", "configmaps", Some("team"), None))
    );
    assert_eq!(
        info(Method::GET, p, &[("watch", "true")]),
        Some(want("watch", "", "configmaps", Some("team"), None))
    );
    assert_eq!(
        info(Method::GET, p, &[("watch", "1")]),
        Some(want("watch", "", "configmaps", Some("team"), None))
    );
    assert_eq!(
        info(Method::GET, p, &[("watch", "false")]),
        Some(want("list", "", "configmaps", Some("team"), None))
    );
    assert_eq!(
        info(Method::POST, p, &[]),
        Some(want("create", "", "configmaps", Some("team"), None))
    );
    assert_eq!(
        info(Method::DELETE, p, &[]),
        Some(want(
            "deletecollection",
            "",
            "configmaps",
            Some("team"),
            None
        ))
    );
    let one = "/api/v1/namespaces/team/configmaps/web";
    for (method, verb) in [
        (Method::GET, "get"),
        (Method::PUT, "update"),
        (Method::PATCH, "patch"),
        (Method::DELETE, "delete"),
    ] {
        assert_eq!(
            info(method, one, &[]),
            Some(want(verb, "", "configmaps", Some("team"), Some("web")))
        );
    }
    assert_eq!(
        info(Method::PUT, "/api/v1/namespaces/team/pods/p/status", &[]),
        Some(want("update", "", "pods/status", Some("team"), Some("p")))
    );
}

#[test]
fn a_namespace_is_the_object_itself() {
    assert_eq!(
        info(Method::GET, "/api/v1/namespaces/team", &[]),
        Some(want("get", "", "namespaces", None, Some("team")))
    );
    assert_eq!(
        info(Method::GET, "/api/v1/namespaces", &[]),
        Some(want("list", "", "namespaces", None, None))
    );
    assert_eq!(
        info(Method::DELETE, "/api/v1/namespaces/team", &[]),
        Some(want("delete", "", "namespaces", None, Some("team")))
    );
    assert_eq!(
        info(Method::PUT, "/api/v1/namespaces/team/finalize", &[]),
        Some(want(
            "update",
            "",
            "namespaces/finalize",
            None,
            Some("team")
        ))
    );
    assert_eq!(
        info(Method::PATCH, "/api/v1/namespaces/team/status", &[]),
        Some(want("patch", "", "namespaces/status", None, Some("team")))
    );
}

#[test]
fn cluster_scoped_and_group_paths() {
    assert_eq!(
        info(Method::GET, "/api/v1/nodes/n1", &[]),
        Some(want("get", "", "nodes", None, Some("n1")))
    );
    assert_eq!(
        info(
            Method::PATCH,
            "/apis/apps/v1/namespaces/team/deployments/web",
            &[]
        ),
        Some(want(
            "patch",
            "apps",
            "deployments",
            Some("team"),
            Some("web")
        ))
    );
    assert_eq!(
        info(
            Method::PUT,
            "/apis/apps/v1/namespaces/team/deployments/web/scale",
            &[]
        ),
        Some(want(
            "update",
            "apps",
            "deployments/scale",
            Some("team"),
            Some("web")
        ))
    );
    assert_eq!(
        info(Method::GET, "/apis/apps/v1/deployments", &[]),
        Some(want("list", "apps", "deployments", None, None))
    );
    assert_eq!(
        info(
            Method::DELETE,
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.com",
            &[]
        ),
        Some(want(
            "delete",
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            None,
            Some("widgets.example.com")
        ))
    );
    // A namespaced group resource whose plural is `status` is still a resource.
    assert_eq!(
        info(
            Method::GET,
            "/apis/example.com/v1/namespaces/team/status",
            &[]
        ),
        Some(want("list", "example.com", "status", Some("team"), None))
    );
}

#[test]
fn discovery_and_other_paths_are_not_requests_for_objects() {
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps",
        "/apis/apps/v1",
        "/version",
        "/openapi/v3",
        "/_gitsync/faults",
        "/api/v2/pods",
        "/api/v1/namespaces/team/configmaps/web/status/extra",
    ] {
        assert_eq!(info(Method::GET, path, &[]), None, "{path}");
    }
    assert_eq!(info(Method::HEAD, "/api/v1/namespaces", &[]), None);
}

#[test]
fn only_api_paths_get_faults() {
    for path in ["/api", "/api/v1", "/apis", "/apis/apps/v1/deployments"] {
        assert!(is_api(path), "{path}");
    }
    for path in [
        "/_gitsync/faults",
        "/_gitsync/stats",
        "/version",
        "/healthz",
        "/openapi/v3",
        "/apisix",
        "/",
    ] {
        assert!(!is_api(path), "{path}");
    }
}

fn rule(json: Value) -> FaultRule {
    serde_json::from_value(json).expect("rule")
}

#[test]
fn rules_match_on_every_given_field() {
    let cm = Info {
        verb: "patch",
        group: String::new(),
        resource: "configmaps".into(),
        namespace: Some("team".into()),
        name: Some("web".into()),
    };
    assert!(matches(&rule(json!({"status": 500})), &cm, false));
    assert!(matches(&rule(json!({"status": 500})), &cm, true));
    assert!(matches(
        &rule(
            json!({"status": 500, "verbs": ["create", "patch"], "resource": "configmaps", "name": "web"})
        ),
        &cm,
        false
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "verbs": ["create"]})),
        &cm,
        false
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "resource": "secrets"})),
        &cm,
        false
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "resource": "configmaps/status"})),
        &cm,
        false
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "name": "db"})),
        &cm,
        false
    ));
    assert!(matches(
        &rule(json!({"status": 500, "dryRun": true})),
        &cm,
        true
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "dryRun": true})),
        &cm,
        false
    ));
    assert!(matches(
        &rule(json!({"status": 500, "dryRun": false})),
        &cm,
        false
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "dryRun": false})),
        &cm,
        true
    ));
    assert!(!matches(
        &rule(json!({"status": 500, "count": 0})),
        &cm,
        false
    ));
    assert!(matches(
        &rule(json!({"status": 500, "count": 1})),
        &cm,
        false
    ));
}

#[test]
fn invalid_rules_are_refused_with_their_index() {
    let faults = |rules: Value| -> Faults {
        serde_json::from_value(json!({"rules": rules})).expect("faults")
    };
    assert!(
        faults(json!([{"status": 429}, {"disconnect": true}]))
            .validate()
            .is_ok()
    );
    for (rules, problem) in [
        (
            json!([{"status": 429}, {}]),
            "rules[1]: status or disconnect is required",
        ),
        (
            json!([{"status": 200}]),
            "rules[0]: status 200 is not between 400 and 599",
        ),
        (
            json!([{"status": 503, "disconnect": true}]),
            "rules[0]: set either status or disconnect, not both",
        ),
        (
            json!([{"disconnect": true, "retryAfterSeconds": 1}]),
            "rules[0]: retryAfterSeconds needs a status",
        ),
    ] {
        let err = faults(rules).validate().expect_err(problem);
        assert_eq!(err.to_string(), problem);
    }
    let err = faults(json!([{"status": 500, "verbs": ["apply"]}]))
        .validate()
        .expect_err("unknown verb");
    assert!(
        err.to_string()
            .starts_with("rules[0]: unknown verb \"apply\""),
        "{err}"
    );
    // Misspelt fields are refused, not ignored.
    assert!(
        serde_json::from_value::<Faults>(json!({"rules": [{"status": 500, "dryrun": true}]}))
            .is_err()
    );
    assert!(serde_json::from_value::<Faults>(json!({"latency": 5})).is_err());
}

#[test]
fn the_configuration_round_trips_in_camel_case() {
    let faults = Faults {
        latency_ms: 5,
        rules: vec![FaultRule {
            status: Some(429),
            count: Some(2),
            verbs: vec!["patch".into()],
            resource: Some("configmaps".into()),
            retry_after_seconds: Some(3),
            dry_run: Some(false),
            ..FaultRule::default()
        }],
    };
    let text = serde_json::to_value(&faults).expect("json");
    assert_eq!(
        text,
        json!({"latencyMs": 5, "rules": [{"status": 429, "count": 2, "verbs": ["patch"], "resource": "configmaps", "retryAfterSeconds": 3, "dryRun": false}]})
    );
    assert_eq!(
        serde_json::from_value::<Faults>(text).expect("back"),
        faults
    );
    assert_eq!(
        serde_json::from_value::<Faults>(json!({})).expect("empty"),
        Faults::default()
    );
}

#[test]
fn reasons_are_the_kubernetes_ones() {
    assert_eq!(reason(429), "TooManyRequests");
    assert_eq!(reason(500), "InternalError");
    assert_eq!(reason(503), "ServiceUnavailable");
    assert_eq!(reason(409), "Conflict");
}
