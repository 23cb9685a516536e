//! The sync engine through `gitsync sync`/`diff` against the local cluster: waves and
//! health, CRDs with their resources, replaces, pruning guards, ownership, preflight,
//! and faults (429 floods, an API server that goes away).

use serde_json::{Value, json};

use crate::support::{Cluster, app_dir, history, write_files};

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: eng\n";

fn config_map(name: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: eng\n{extra}data:\n  k: v\n"
    )
}

fn deployment(
    name: &str,
    app_label: &str,
    annotations: &str,
    template_annotations: &str,
) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  namespace: eng\n  annotations: {annotations}\nspec:\n  replicas: 1\n  progressDeadlineSeconds: 2\n  selector:\n    matchLabels: {{app: {app_label}}}\n  template:\n    metadata:\n      labels: {{app: {app_label}}}\n      annotations: {template_annotations}\n    spec:\n      containers:\n        - name: main\n          image: nginx:1.27\n"
    )
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8")
}

#[test]
fn each_wave_waits_for_the_previous_one_to_be_healthy() {
    let cluster = Cluster::start();
    let broken = deployment(
        "db",
        "db",
        "{gitsync.dev/wave: \"0\"}",
        "{local-cluster.gitsync.dev/never-ready: \"true\"}",
    );
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("db.yaml", &broken),
        (
            "web.yaml",
            &config_map("web", "  annotations: {gitsync.dev/wave: \"1\"}\n"),
        ),
    ]);
    let run = cluster.gitsync(&[
        "sync",
        path(&app),
        "--app",
        "eng",
        "--health-timeout",
        "20s",
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("Deployment/eng/db") && run.stderr.contains("degraded"),
        "{run:?}"
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/eng/configmaps/web")
            .is_none(),
        "wave 1 must not start while wave 0 is unhealthy"
    );

    let healthy = deployment("db", "db", "{gitsync.dev/wave: \"0\"}", "{}");
    write_files(app.path(), &[("db.yaml", &healthy)]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng", "--force"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        cluster
            .get("/api/v1/namespaces/eng/configmaps/web")
            .is_some()
    );
    let db = cluster
        .get("/apis/apps/v1/namespaces/eng/deployments/db")
        .expect("db");
    assert_eq!(db["status"]["availableReplicas"], 1, "synced means healthy");
}

#[test]
fn a_crd_is_established_before_its_resources_are_applied() {
    let cluster = Cluster::start();
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {plural: widgets, singular: widget, kind: Widget}\n  versions:\n    - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}\n";
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\n  namespace: eng\nspec:\n  size: 3\n";
    let app = app_dir(&[("ns.yaml", NS), ("crd.yaml", crd), ("widget.yaml", widget)]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    let w = cluster
        .get("/apis/example.com/v1/namespaces/eng/widgets/w1")
        .expect("widget");
    assert_eq!(w["spec"]["size"], 3);
    let again = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert!(again.stdout.contains("in sync"), "{again:?}");
}

#[test]
fn an_immutable_change_fails_clearly_and_replaces_only_when_opted_in() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("web.yaml", &deployment("web", "web", "{}", "{}")),
    ]);
    assert_eq!(
        cluster.gitsync(&["sync", path(&app), "--app", "eng"]).code,
        0
    );
    let uid = |c: &Cluster| {
        c.get("/apis/apps/v1/namespaces/eng/deployments/web")
            .expect("web")["metadata"]["uid"]
            .clone()
    };
    let before = uid(&cluster);

    write_files(
        app.path(),
        &[("web.yaml", &deployment("web", "web2", "{}", "{}"))],
    );
    let diff = cluster.gitsync(&["diff", path(&app), "--app", "eng"]);
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(
        diff.stdout.contains("=== replace Deployment/eng/web")
            && diff.stdout.contains("=== blocked Deployment/eng/web"),
        "{diff:?}"
    );
    cluster.reset_stats();
    let refused = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains(".spec.selector is immutable")
            && refused.stderr.contains("gitsync.dev/replace: \"true\"")
            && refused.stderr.contains("nothing was changed"),
        "{refused:?}"
    );
    assert_eq!(cluster.writes(), 0);
    assert_eq!(uid(&cluster), before);

    let opted = deployment("web", "web2", "{gitsync.dev/replace: \"true\"}", "{}");
    write_files(app.path(), &[("web.yaml", &opted)]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 replaced"), "{run:?}");
    assert_ne!(uid(&cluster), before, "deleted and created again");
    let web = cluster
        .get("/apis/apps/v1/namespaces/eng/deployments/web")
        .expect("web");
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web2");
}

#[test]
fn one_rejected_object_among_fifty_good_ones_applies_nothing() {
    let cluster = Cluster::start();
    let app = app_dir(&[("ns.yaml", NS)]);
    assert_eq!(
        cluster.gitsync(&["sync", path(&app), "--app", "eng"]).code,
        0
    );
    let mut files: Vec<(String, String)> = (0..50)
        .map(|i| {
            (
                format!("cm-{i:02}.yaml"),
                config_map(&format!("cm-{i:02}"), ""),
            )
        })
        .collect();
    // A Service whose port is out of range: valid YAML, rejected by the API server.
    files.push((
        "bad.yaml".into(),
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\n  namespace: eng\nspec:\n  ports:\n    - port: 700000\n".into(),
    ));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    write_files(app.path(), &refs);
    cluster.reset_stats();
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("Service/eng/bad (bad.yaml:1:1)")
            && run.stderr.contains("nothing was changed"),
        "{run:?}"
    );
    assert_eq!(cluster.writes(), 0, "the dry run found it; nothing applied");
    assert!(
        cluster
            .get("/api/v1/namespaces/eng/configmaps/cm-00")
            .is_none()
    );
}

#[test]
fn pruning_guards_refuse_mass_deletion_and_keep_claims() {
    let cluster = Cluster::start();
    let pvc = "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n  namespace: eng\nspec:\n  accessModes: [ReadWriteOnce]\n  resources: {requests: {storage: 1Gi}}\n";
    let mut files: Vec<(String, String)> = (0..9)
        .map(|i| (format!("cm-{i}.yaml"), config_map(&format!("cm-{i}"), "")))
        .collect();
    files.push(("pvc.yaml".into(), pvc.into()));
    files.push(("ns.yaml".into(), NS.into()));
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let app = app_dir(&refs);
    assert_eq!(
        cluster.gitsync(&["sync", path(&app), "--app", "eng"]).code,
        0
    );

    // 8 of the app's 11 objects go: refused, nothing deleted.
    let gone: Vec<(String, &str)> = (1..9).map(|i| (format!("cm-{i}.yaml"), "")).collect();
    let gone: Vec<(&str, &str)> = gone.iter().map(|(p, c)| (p.as_str(), *c)).collect();
    write_files(app.path(), &gone);
    let doomed: Vec<String> = (1..9).map(|i| format!("ConfigMap/eng/cm-{i}")).collect();

    // diff lists every one of the 8 prunes, each with the guard that stops it.
    let diff = cluster.gitsync(&["diff", path(&app), "--app", "eng"]);
    assert_eq!(diff.code, 1, "{diff:?}");
    for object in &doomed {
        assert!(
            diff.stdout.contains(&format!("=== prune {object}\n")),
            "{object}: {diff:?}"
        );
        assert!(
            diff.stdout.contains(&format!(
                "=== blocked {object}: refusing to prune 8 of 11 live objects of app \"eng\" (more than 50%)"
            )),
            "{object}: {diff:?}"
        );
    }
    assert!(
        diff.stdout
            .contains("8 to prune (all blocked by a pruning guard)"),
        "{diff:?}"
    );
    let json: Value = cluster
        .gitsync(&["diff", path(&app), "--app", "eng", "-o", "json"])
        .json();
    assert_eq!(
        json["prune_guard"],
        json!({"guard": "prune_share", "prune": 8, "managed": 11, "max_percent": 50}),
        "{json}"
    );
    let mut blocked: Vec<String> = json["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s["action"] == "prune")
        .inspect(|s| {
            assert!(
                s["blocked"]
                    .as_str()
                    .is_some_and(|b| b.contains("refusing to prune 8 of 11")),
                "{s}"
            );
        })
        .map(|s| format!("ConfigMap/eng/{}", s["id"]["name"].as_str().expect("name")))
        .collect();
    blocked.sort();
    assert_eq!(blocked, doomed);
    // A higher share lets the same diff through.
    let allowed = cluster.gitsync(&[
        "diff",
        path(&app),
        "--app",
        "eng",
        "--max-prune-percent",
        "80",
    ]);
    assert_eq!(allowed.code, 1, "{allowed:?}");
    assert!(!allowed.stdout.contains("=== blocked"), "{allowed:?}");

    cluster.reset_stats();
    let refused = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("refusing to prune 8 of 11")
            && refused.stderr.contains("--force-prune")
            && refused.stderr.contains("nothing was changed")
            && refused.stderr.contains("not pruned: ConfigMap/eng/cm-8"),
        "{refused:?}"
    );
    assert_eq!(cluster.writes(), 0);
    let entries = history(&cluster, "eng");
    assert_eq!(entries[0]["result"], "PruneRefused", "{entries:?}");

    // The PVC leaves git too; with --force-prune the ConfigMaps go, the claim stays.
    write_files(app.path(), &[("pvc.yaml", "")]);
    let diff = cluster.gitsync(&["diff", path(&app), "--app", "eng", "--force-prune"]);
    assert!(
        diff.stdout.contains("=== keep PersistentVolumeClaim/eng/data (not pruned: PersistentVolumeClaims are pruned only with gitsync.dev/prune: \"true\")"),
        "{diff:?}"
    );
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng", "--force-prune"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("8 pruned"), "{run:?}");
    assert!(
        run.stdout.contains("kept PersistentVolumeClaim/eng/data"),
        "{run:?}"
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/eng/persistentvolumeclaims/data")
            .is_some()
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/eng/configmaps/cm-1")
            .is_none()
    );
}

/// A small app is guarded by the same share: removing both of its objects (while the
/// render holds a new one) is 100% of it.
#[test]
fn the_share_guard_holds_for_a_two_object_app() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("a.yaml", &config_map("a", "")),
        ("b.yaml", &config_map("b", "")),
    ]);
    let flags = ["--app", "small"];
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", path(&app)];
        args.extend(flags);
        args.extend(extra);
        cluster.gitsync(&args)
    };
    // The namespace comes first, outside the app.
    let ns = app_dir(&[("ns.yaml", NS)]);
    assert_eq!(cluster.gitsync(&["sync", path(&ns), "--app", "ns"]).code, 0);
    assert_eq!(sync(&[]).code, 0);
    write_files(
        app.path(),
        &[
            ("a.yaml", ""),
            ("b.yaml", ""),
            ("c.yaml", &config_map("c", "")),
        ],
    );
    let refused = sync(&[]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("refusing to prune 2 of 2"),
        "{refused:?}"
    );
    assert!(cluster.get("/api/v1/namespaces/eng/configmaps/c").is_none());
    let forced = sync(&["--force-prune"]);
    assert_eq!(forced.code, 0, "{forced:?}");
    assert!(
        forced.stdout.contains("1 created") && forced.stdout.contains("2 pruned"),
        "{forced:?}"
    );
}

/// A Deployment whose pods never become ready, without a progress deadline that would
/// call it degraded first: the sync runs out of its health timeout.
#[test]
fn a_sync_that_never_becomes_healthy_ends_with_the_health_timeout_and_records_it() {
    let cluster = Cluster::start();
    let stuck = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: stuck\n  namespace: eng\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: stuck}\n  template:\n    metadata:\n      labels: {app: stuck}\n      annotations: {local-cluster.gitsync.dev/never-ready: \"true\"}\n    spec:\n      containers:\n        - name: main\n          image: nginx:1.27\n";
    let app = app_dir(&[("ns.yaml", NS), ("stuck.yaml", stuck)]);
    let started = std::time::Instant::now();
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng", "--health-timeout", "3s"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains(
            "error: eng applied, but the app is not healthy: not healthy after 3s: Deployment/eng/stuck:"
        ),
        "{run:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_mins(1),
        "bounded by the timeout"
    );
    assert!(
        cluster
            .get("/apis/apps/v1/namespaces/eng/deployments/stuck")
            .is_some(),
        "applied"
    );
    let entries = history(&cluster, "eng");
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["result"], "HealthTimeout", "{entries:?}");
    assert_eq!(entries[0]["created"], 2, "{entries:?}");
    assert!(
        entries[0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("not healthy after 3s: Deployment/eng/stuck:")),
        "{entries:?}"
    );
    let json = cluster.gitsync(&[
        "sync",
        path(&app),
        "--app",
        "eng",
        "--health-timeout",
        "3s",
        "-o",
        "json",
    ]);
    assert_eq!(json.code, 2, "{json:?}");
    assert_eq!(
        json.json()["outcome"]["result"],
        "HealthTimeout",
        "{json:?}"
    );
}

#[test]
fn an_object_of_another_app_is_never_taken_over() {
    let cluster = Cluster::start();
    let first = app_dir(&[("ns.yaml", NS), ("shared.yaml", &config_map("shared", ""))]);
    assert_eq!(
        cluster
            .gitsync(&["sync", path(&first), "--app", "billing"])
            .code,
        0
    );
    let second = app_dir(&[("shared.yaml", &config_map("shared", ""))]);
    let run = cluster.gitsync(&["sync", path(&second), "--app", "shop"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("owned by app \"billing\"") && run.stderr.contains("shared.yaml:1:1"),
        "{run:?}"
    );
    let cm = cluster
        .get("/api/v1/namespaces/eng/configmaps/shared")
        .expect("cm");
    assert_eq!(cm["metadata"]["labels"]["gitsync.dev/app"], "billing");
}

#[test]
fn a_flood_of_429s_is_retried_until_it_passes() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("a.yaml", &config_map("a", "")),
        ("b.yaml", &config_map("b", "")),
    ]);
    // Reads and writes of ConfigMaps meet 429s first, with Retry-After as API
    // priority and fairness sends it.
    cluster.faults(&json!({"rules": [
        {"status": 429, "count": 4, "verbs": ["list"], "resource": "configmaps", "retryAfterSeconds": 1},
        {"status": 429, "count": 8, "verbs": ["patch"], "resource": "configmaps", "retryAfterSeconds": 1}
    ]}));
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(cluster.get("/api/v1/namespaces/eng/configmaps/b").is_some());
    assert_eq!(
        cluster.stats()["injected"],
        12,
        "every injected 429 was met"
    );
}

#[test]
fn a_first_sync_into_a_new_namespace_is_dry_run_there_and_refused_whole() {
    let cluster = Cluster::start();
    // Everything in a namespace the sync creates; one Deployment does not select its
    // own pods (422).
    let app = app_dir(&[
        (
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: fresh\n",
        ),
        (
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: fresh\n",
        ),
        (
            "web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: fresh\nspec:\n  \
             selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: other}\n    \
             spec:\n      containers: [{name: web, image: web:1}]\n",
        ),
    ]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "fresh"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("Deployment/fresh/web") && run.stderr.contains("web.yaml"),
        "names the object and its file: {run:?}"
    );
    assert!(
        run.stderr.contains("selector"),
        "the server's reason: {run:?}"
    );
    assert!(
        cluster
            .get("/api/v1/namespaces/fresh/configmaps/a")
            .is_none()
    );
    crate::support::eventually(
        std::time::Duration::from_secs(30),
        "the namespace made for the dry run gone",
        || {
            cluster
                .get("/api/v1/namespaces/fresh")
                .is_none()
                .then_some(())
        },
    );
}

#[test]
fn writes_run_with_bounded_concurrency() {
    let cluster = Cluster::start();
    let maps: Vec<(String, String)> = (0..24)
        .map(|i| (format!("cm{i}.yaml"), config_map(&format!("cm{i}"), "")))
        .collect();
    let mut files: Vec<(&str, &str)> = vec![("ns.yaml", NS)];
    files.extend(maps.iter().map(|(f, c)| (f.as_str(), c.as_str())));
    let app = app_dir(&files);
    // Every request takes 100 ms, so the writes a client keeps going overlap.
    cluster.faults(&json!({"latencyMs": 100}));
    cluster.reset_stats();
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng", "--concurrency", "3"]);
    assert_eq!(run.code, 0, "{run:?}");
    let most = cluster.stats()["max_writes_in_flight"]
        .as_u64()
        .expect("stat");
    assert!(
        (2..=3).contains(&most),
        "{most} writes in flight at once with --concurrency 3"
    );
    cluster.faults(&json!({}));
}

#[test]
fn server_errors_and_stale_writes_are_retried() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("a.yaml", &config_map("a", "")),
        ("b.yaml", &config_map("b", "")),
    ]);
    // 500s on the applies (kube's client retries 503 and 504 itself, not 500), and
    // 409 Conflicts on the history's writes (made with a resourceVersion): each
    // retried with backoff until it passes.
    cluster.faults(&json!({"rules": [
        {"status": 500, "count": 3, "verbs": ["patch"], "resource": "configmaps", "dryRun": false},
        {"status": 409, "count": 2, "verbs": ["create", "update"], "resource": "configmaps", "dryRun": false}
    ]}));
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(cluster.get("/api/v1/namespaces/eng/configmaps/b").is_some());
    assert_eq!(
        cluster.stats()["injected"],
        5,
        "every injected error was met"
    );
    let entries = crate::support::history(&cluster, "eng");
    assert_eq!(entries[0]["result"], "Succeeded", "{entries:#?}");
}

#[test]
fn an_api_server_that_goes_away_mid_sync_fails_clearly_and_the_next_sync_finishes() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("a.yaml", &config_map("a", "")),
        ("web.yaml", &deployment("web", "web", "{}", "{}")),
    ]);
    // Dry runs pass; the first real write of a Deployment finds the server gone.
    cluster.faults(&json!({"rules": [
        {"disconnect": true, "verbs": ["patch"], "resource": "deployments", "dryRun": false}
    ]}));
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng", "--no-wait"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("Deployment/eng/web"), "{run:?}");
    assert!(
        cluster
            .get("/apis/apps/v1/namespaces/eng/deployments/web")
            .is_none(),
        "nothing half-written"
    );
    cluster.faults(&json!({}));
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("1 created"), "{run:?}");
    let status: Value = cluster
        .gitsync(&["status", "--app", "eng", "-o", "json"])
        .json();
    assert!(
        status["objects"]
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["state"] == "Synced"),
        "{status}"
    );
}

#[test]
fn an_object_annotated_force_conflicts_takes_back_what_another_manager_owns() {
    let cluster = Cluster::start();
    let forced = "  annotations: {gitsync.dev/force-conflicts: \"true\"}\n";
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("a.yaml", &config_map("a", forced)),
        ("b.yaml", &config_map("b", "")),
    ]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    let value = |name: &str| {
        cluster
            .get(&format!("/api/v1/namespaces/eng/configmaps/{name}"))
            .and_then(|cm| cm["data"]["k"].as_str().map(str::to_owned))
    };
    for name in ["a", "b"] {
        let code = crate::support::http_patch(
            &cluster.url,
            &format!("/api/v1/namespaces/eng/configmaps/{name}?fieldManager=kubectl-edit"),
            r#"{"data":{"k":"by hand"}}"#,
        );
        assert_eq!(code, 200);
    }

    // b's conflict fails the sync before any write; a's is not one.
    let refused = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(refused.code, 2, "{refused:?}");
    assert!(
        refused.stderr.contains("ConfigMap/eng/b") && refused.stderr.contains("kubectl-edit"),
        "{refused:?}"
    );
    assert!(!refused.stderr.contains("ConfigMap/eng/a"), "{refused:?}");
    assert_eq!(value("a").as_deref(), Some("by hand"));

    // Annotated too, b is taken back as well; nothing else of the app is forced.
    write_files(app.path(), &[("b.yaml", &config_map("b", forced))]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "eng"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        (value("a").as_deref(), value("b").as_deref()),
        (Some("v"), Some("v"))
    );
    let a = cluster
        .get("/api/v1/namespaces/eng/configmaps/a")
        .expect("a");
    let managers: Vec<&str> = a["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.pointer("/fieldsV1/f:data/f:k").is_some())
        .filter_map(|e| e["manager"].as_str())
        .collect();
    assert_eq!(
        managers,
        ["gitsync"],
        "the field is gitsync's alone again: {a}"
    );
}
