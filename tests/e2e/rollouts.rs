//! Rollout strategies end to end: `gitsync sync`, `plan` (and `diff --strategy`),
//! `promote`, `abort` and `status` against the local cluster's rollout simulator, each
//! strategy's happy path, a new version that never becomes ready, aborts before and
//! after a blue/green switch, what `status` shows of a canary (on a terminal too), and
//! bad policies refused before anything changes.

use serde_json::Value;

use crate::support::{Cluster, app_dir, history, write_files};

pub const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ro\n";

/// The app's Service: selects `app: web` on port 80.
pub const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  namespace: ro\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n";

/// Deployment `web` with `replicas` pods of `image`, rolled by `policy`; `pod` adds
/// pod-template annotations (the simulator's failure injection).
pub fn web(image: &str, replicas: u32, policy: &str, pod: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: ro\n  annotations: {{gitsync.dev/strategy: {policy}}}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n      annotations: {{{pod}}}\n    spec:\n      containers:\n        - name: web\n          image: {image}\n"
    )
}

/// An app policy named `name` with this `strategy:` body (indented under `spec:`).
pub fn policy(name: &str, strategy: &str) -> String {
    format!(
        "apiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata:\n  name: {name}\nspec:\n{strategy}"
    )
}

pub const CANARY: &str = "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 25}, {pause: 1s}, {weight: 50}, {pause: {}}, {weight: 100}]\n      health: {maxRestarts: 1}\n      progressDeadlineSeconds: 6\n";
const BLUE_GREEN: &str = "  strategy:\n    type: blueGreen\n    blueGreen: {scaleDownAfter: 1s, progressDeadlineSeconds: 6}\n";
const RAMPED: &str = "  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, maxUnavailable: 0, progressDeadlineSeconds: 6, rollbackOnFailure: true}\n";
const RECREATE: &str = "  strategy:\n    type: recreate\n";

const NEVER_READY: &str = "local-cluster.gitsync.dev/never-ready: \"true\"";

const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/ro/deployments";

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8")
}

/// An app at image `web:1`, synced (a first deploy has nothing to roll).
fn deployed(cluster: &Cluster, name: &str, strategy: &str) -> tempfile::TempDir {
    let app = app_dir(&[
        ("ns.yaml", NS),
        ("svc.yaml", SERVICE),
        ("policy.yaml", &policy(name, strategy)),
        ("web.yaml", &web("web:1", 4, name, "")),
    ]);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    app
}

fn deployment(cluster: &Cluster, name: &str) -> Option<Value> {
    cluster.get(&format!("{DEPLOYMENTS}/{name}"))
}

fn image(cluster: &Cluster, name: &str) -> String {
    let d = deployment(cluster, name).unwrap_or_else(|| panic!("no Deployment {name}"));
    d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn replicas(cluster: &Cluster, name: &str) -> i64 {
    deployment(cluster, name).expect("deployment")["spec"]["replicas"]
        .as_i64()
        .unwrap_or(-1)
}

fn selector(cluster: &Cluster, service: &str) -> Value {
    cluster
        .get(&format!("/api/v1/namespaces/ro/services/{service}"))
        .unwrap_or_else(|| panic!("no Service {service}"))["spec"]["selector"]
        .clone()
}

/// Reasons of the Events recorded on a Deployment.
fn event_reasons(cluster: &Cluster, deployment: &str) -> Vec<String> {
    let events = cluster.get("/api/v1/namespaces/ro/events").expect("events");
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["involvedObject"]["name"] == deployment)
        .filter_map(|e| e["reason"].as_str().map(str::to_owned))
        .collect()
}

fn bump(app: &tempfile::TempDir, name: &str, image: &str, pod: &str) {
    write_files(app.path(), &[("web.yaml", &web(image, 4, name, pod))]);
}

#[test]
fn canary_walks_its_steps_pauses_for_promote_and_completes() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "careful", CANARY);
    bump(&app, "careful", "web:2", "");

    // The plan shows the steps before anything changes.
    let plan = cluster.gitsync(&["plan", path(&app), "--app", "ro"]);
    assert_eq!(plan.code, 1, "{plan:?}");
    for step in [
        "=== rollout Deployment/ro/web (policy careful, canary)",
        "apply Deployment web-canary: 1 pod, image web:2",
        "pause 1 s",
        "wait for `gitsync promote`",
        "web promoted: stable runs the new template; canary removed",
    ] {
        assert!(plan.stdout.contains(step), "{step:?} missing: {plan:?}");
    }
    assert!(deployment(&cluster, "web-canary").is_none(), "plan wrote");

    // sync follows the rollout to the manual pause.
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    for line in [
        "canary rollout of web started",
        "step 1: weight 25%: canary healthy (1 of 4 pods)",
        "step 3: weight 50%: canary healthy (2 of 4 pods)",
        "paused; run `gitsync promote ro`",
    ] {
        assert!(run.stdout.contains(line), "{line:?} missing: {run:?}");
    }
    assert_eq!(image(&cluster, "web"), "web:1", "stable untouched");
    assert_eq!(image(&cluster, "web-canary"), "web:2");
    assert_eq!(replicas(&cluster, "web-canary"), 2);
    assert_eq!(replicas(&cluster, "web"), 2, "4 pods in all");

    let status = cluster.gitsync(&["status", "ro"]);
    assert_eq!(status.code, 0, "{status:?}");
    for text in [
        "rollout Deployment/ro/web: canary (policy careful), Paused, step 4 of 5, weight 50%",
        "waiting for: `gitsync promote`",
    ] {
        assert!(status.stdout.contains(text), "{text:?} missing: {status:?}");
    }
    let json: Value = cluster.gitsync(&["status", "ro", "-o", "json"]).json();
    assert_eq!(json["rollouts"][0]["phase"], "Paused", "{json}");
    assert_eq!(json["rollouts"][0]["awaitingPromote"], true, "{json}");

    let promote = cluster.gitsync(&["promote", "ro"]);
    assert_eq!(promote.code, 0, "{promote:?}");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("step 4: pause ended by `gitsync promote`")
            && run.stdout.contains("web promoted"),
        "{run:?}"
    );
    assert_eq!(image(&cluster, "web"), "web:2");
    assert_eq!(replicas(&cluster, "web"), 4);
    assert!(
        deployment(&cluster, "web-canary").is_none(),
        "canary pruned"
    );

    // Every step is in the history and in Events; a sync after changes nothing.
    let notes: Vec<String> = history(&cluster, "ro")
        .iter()
        .flat_map(|e| e["rollout"].as_array().cloned().unwrap_or_default())
        .filter_map(|n| n.as_str().map(str::to_owned))
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("weight 25%"))
            && notes.iter().any(|n| n.contains("promoted")),
        "{notes:?}"
    );
    let reasons = event_reasons(&cluster, "web");
    assert!(
        reasons.contains(&"RolloutStep".to_owned())
            && reasons.contains(&"RolloutCompleted".to_owned()),
        "{reasons:?}"
    );
    let again = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert!(again.stdout.contains("in sync, nothing to do"), "{again:?}");
    let nothing = cluster.gitsync(&["promote", "ro"]);
    assert_eq!(nothing.code, 2, "{nothing:?}");
    assert!(
        nothing.stderr.contains("no rollout in progress"),
        "{nothing:?}"
    );
}

#[test]
fn a_canary_that_never_becomes_ready_is_aborted_and_abort_removes_one() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "careful", CANARY);
    bump(&app, "careful", "web:2", NEVER_READY);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("rollout of Deployment/ro/web ended Aborted")
            && run.stderr.contains("canary not healthy within 6 s"),
        "{run:?}"
    );
    assert!(
        deployment(&cluster, "web-canary").is_none(),
        "canary removed"
    );
    assert_eq!(image(&cluster, "web"), "web:1");
    assert_eq!(replicas(&cluster, "web"), 4, "stable serves alone");
    assert!(event_reasons(&cluster, "web").contains(&"RolloutAborted".to_owned()));

    // A healthy version that an operator stops at the manual pause.
    bump(&app, "careful", "web:3", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(image(&cluster, "web-canary"), "web:3");
    assert_eq!(cluster.gitsync(&["abort", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("aborted by `gitsync abort`"), "{run:?}");
    assert!(deployment(&cluster, "web-canary").is_none());
    assert_eq!(image(&cluster, "web"), "web:1");
}

#[test]
fn blue_green_switches_on_promote_and_never_to_a_slot_that_is_not_ready() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "bg", BLUE_GREEN);
    assert_eq!(image(&cluster, "web-blue"), "web:1");
    assert!(
        deployment(&cluster, "web").is_none(),
        "the slots replace web"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "blue");

    bump(&app, "bg", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("paused; run `gitsync promote ro`"),
        "{run:?}"
    );
    assert_eq!(image(&cluster, "web-green"), "web:2");
    assert_eq!(
        replicas(&cluster, "web-green"),
        4,
        "the idle slot at full size"
    );
    assert_eq!(
        selector(&cluster, "web")["gitsync.dev/slot"],
        "blue",
        "not yet"
    );
    assert_eq!(
        selector(&cluster, "web-preview")["gitsync.dev/slot"],
        "green"
    );

    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "green");
    assert_eq!(
        replicas(&cluster, "web-blue"),
        0,
        "old slot scaled down after 1s"
    );

    // A version that never becomes ready: the Service never moves.
    bump(&app, "bg", "web:3", NEVER_READY);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("ended Aborted") && run.stderr.contains("the Service never switched"),
        "{run:?}"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "green");
    assert_eq!(image(&cluster, "web-green"), "web:2");
}

#[test]
fn ramped_rolls_back_a_version_that_never_becomes_ready() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "steady", RAMPED);
    let live = deployment(&cluster, "web").expect("web");
    assert_eq!(
        live["spec"]["strategy"]["rollingUpdate"]["maxSurge"], 1,
        "{live}"
    );

    bump(&app, "steady", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("ramped rollout of web started"),
        "{run:?}"
    );
    assert_eq!(image(&cluster, "web"), "web:2");

    bump(&app, "steady", "web:3", NEVER_READY);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("ended RolledBack"), "{run:?}");
    assert_eq!(
        image(&cluster, "web"),
        "web:2",
        "the previous template is back"
    );
    assert!(event_reasons(&cluster, "web").contains(&"RolledBack".to_owned()));
}

#[test]
fn recreate_records_the_downtime_it_observed() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "stop-start", RECREATE);
    assert_eq!(
        deployment(&cluster, "web").expect("web")["spec"]["strategy"]["type"],
        "Recreate"
    );
    bump(&app, "stop-start", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("without an available pod"), "{run:?}");
    let json: Value = cluster.gitsync(&["status", "ro", "-o", "json"]).json();
    let downtime = &json["rollouts"][0]["downtime"];
    assert!(
        downtime["toMs"].as_u64() >= downtime["fromMs"].as_u64(),
        "{json}"
    );
}

#[test]
fn bad_policies_and_workloads_are_refused_before_anything_changes() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "careful", CANARY);
    // The controller moves status (and so resourceVersion); spec and generation are ours.
    let before = deployment(&cluster, "web").expect("web")["spec"].clone();
    let refused = |files: &[(&str, &str)], expected: &[&str]| {
        write_files(app.path(), files);
        let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
        assert_eq!(run.code, 2, "{run:?}");
        for text in expected {
            assert!(run.stderr.contains(text), "{text:?} missing: {run:?}");
        }
        let now = deployment(&cluster, "web").expect("web");
        assert_eq!(now["spec"], before, "something changed");
        assert!(
            deployment(&cluster, "web-canary").is_none(),
            "a canary started"
        );
    };
    let web2 = web("web:2", 4, "careful", "");
    refused(
        &[
            ("web.yaml", &web2),
            (
                "policy.yaml",
                &policy(
                    "careful",
                    &CANARY.replace("canary:\n", "canary:\n      service: nope\n"),
                ),
            ),
        ],
        &["web.yaml:1:1", "names Service \"nope\""],
    );
    refused(
        &[(
            "policy.yaml",
            &policy("careful", &CANARY.replace("{weight: 50}", "{weight: 20}")),
        )],
        &["policy.yaml:1:1", "weight 20 goes down from 25"],
    );
    refused(
        &[(
            "policy.yaml",
            &policy("careful", &CANARY.replace("{weight: 100}", "{weight: 120}")),
        )],
        &["policy.yaml:1:1", "weight 120 must be between 1 and 100"],
    );
    // The Service selects a version label: the canary's pods and stable's differ.
    let versioned = web2.replace("labels: {app: web}", "labels: {app: web, version: \"2\"}");
    refused(
        &[
            ("policy.yaml", &policy("careful", CANARY)),
            ("web.yaml", &versioned),
            (
                "svc.yaml",
                &SERVICE.replace("{app: web}", "{app: web, version: \"2\"}"),
            ),
        ],
        &[
            "web.yaml:1:1",
            "selects by label version, which the canary cannot share",
        ],
    );
    write_files(app.path(), &[("web.yaml", &web2), ("svc.yaml", SERVICE)]);
    refused(
        &[
            ("svc.yaml", ""),
            ("policy.yaml", &policy("careful", BLUE_GREEN)),
        ],
        &["web.yaml:1:1", "the app renders none"],
    );
    refused(
        &[("web.yaml", &web("web:2", 4, "nonexistent", ""))],
        &["web.yaml:1:1", "no strategy policy named \"nonexistent\""],
    );
    refused(
        &[(
            "policy.yaml",
            &policy(
                "careful",
                &CANARY.replace("maxRestarts: 1", "maxRestarts: 1, colour: red"),
            ),
        )],
        &["policy.yaml:1:1", "unknown field `colour`"],
    );
}

/// Answers every HTTP request on loopback with `status`; returns the URL.
fn http_server(status: &'static str) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/healthz", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 1024];
            let _ = stream.read(&mut buf);
            let answer =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    url
}

#[test]
fn canary_gates_on_restarts_and_on_its_http_check() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "careful", CANARY);

    // Crash-looping canary pods: the restart gate fails before the deadline.
    bump(
        &app,
        "careful",
        "web:2",
        "local-cluster.gitsync.dev/crash-loop: \"true\"",
    );
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("canary containers restarted")
            && run.stderr.contains("(maxRestarts 1)"),
        "{run:?}"
    );
    assert!(deployment(&cluster, "web-canary").is_none());

    // A healthy canary whose HTTP check answers 500.
    let url = http_server("500 Internal Server Error");
    let checked = CANARY.replace(
        "{maxRestarts: 1}",
        &format!("{{maxRestarts: 1, url: \"{url}\"}}"),
    );
    write_files(app.path(), &[("policy.yaml", &policy("careful", &checked))]);
    bump(&app, "careful", "web:3", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("HTTP check failed: GET http://127.0.0.1:")
            && run.stderr.contains("500 Internal Server Error"),
        "{run:?}"
    );
    assert!(deployment(&cluster, "web-canary").is_none());
    assert_eq!(image(&cluster, "web"), "web:1");

    // The same check answering 200 lets it through to the manual pause.
    let url = http_server("200 OK");
    let checked = CANARY.replace(
        "{maxRestarts: 1}",
        &format!("{{maxRestarts: 1, url: \"{url}\"}}"),
    );
    write_files(app.path(), &[("policy.yaml", &policy("careful", &checked))]);
    bump(&app, "careful", "web:4", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    let status = cluster.gitsync(&["status", "ro"]);
    assert!(
        status.stdout.contains("waiting for: `gitsync promote`"),
        "{status:?}"
    );
}

#[test]
fn a_second_commit_mid_canary_restarts_it_when_the_policy_says_so() {
    let cluster = Cluster::start();
    let restart = CANARY.replace("  strategy:", "  onNewRevision: restart\n  strategy:");
    let app = deployed(&cluster, "eager", &restart);
    bump(&app, "eager", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(image(&cluster, "web-canary"), "web:2");

    bump(&app, "eager", "web:3", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains("the canary of") && run.stdout.contains("starts over"),
        "{run:?}"
    );
    assert_eq!(image(&cluster, "web-canary"), "web:3");
    assert_eq!(image(&cluster, "web"), "web:1", "stable never ran web:2");
}

#[test]
fn an_ingress_nginx_canary_gets_an_exact_weight() {
    let cluster = Cluster::start();
    let ingress = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\n  namespace: ro\nspec:\n  ingressClassName: nginx\n  rules:\n    - host: pgk.example.com\n      http:\n        paths:\n          - path: /demo\n            pathType: Prefix\n            backend: {service: {name: web, port: {number: 80}}}\n";
    let app = deployed(&cluster, "careful", CANARY);
    write_files(app.path(), &[("ingress.yaml", ingress)]);
    assert_eq!(
        cluster.gitsync(&["sync", path(&app), "--app", "ro"]).code,
        0
    );
    bump(&app, "careful", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    let canary = cluster
        .get("/apis/networking.k8s.io/v1/namespaces/ro/ingresses/web-canary")
        .expect("canary Ingress");
    let annotations = &canary["metadata"]["annotations"];
    assert_eq!(annotations["nginx.ingress.kubernetes.io/canary"], "true");
    assert_eq!(
        annotations["nginx.ingress.kubernetes.io/canary-weight"],
        "50"
    );
    assert_eq!(
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    assert_eq!(
        selector(&cluster, "web-canary")["gitsync.dev/track"],
        "canary"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/track"], "stable");

    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        cluster
            .get("/apis/networking.k8s.io/v1/namespaces/ro/ingresses/web-canary")
            .is_none(),
        "canary Ingress removed"
    );
    assert_eq!(image(&cluster, "web"), "web:2");
}

/// The HPA of the app's Deployment (rewritten by blue/green to target the active slot).
const HPA: &str = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: web\n  namespace: ro\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 10\n  metrics:\n    - type: Resource\n      resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}\n";

/// The HPA scaling `deployment` to `n` through the scale subresource, as it does.
fn hpa_scales(cluster: &Cluster, deployment: &str, n: u32) {
    let code = crate::support::http_patch(
        &cluster.url,
        &format!("{DEPLOYMENTS}/{deployment}/scale?fieldManager=horizontal-pod-autoscaler"),
        &format!(r#"{{"spec":{{"replicas":{n}}}}}"#),
    );
    assert_eq!(code, 200);
}

#[test]
fn blue_green_restarting_in_the_rollback_window_takes_the_old_slot_back_from_the_hpa() {
    let cluster = Cluster::start();
    // A long rollback window, and a new commit restarts the rollout.
    let strategy = "  onNewRevision: restart\n  strategy:\n    type: blueGreen\n    blueGreen: {scaleDownAfter: 1h, progressDeadlineSeconds: 6}\n";
    let app = deployed(&cluster, "bgr", strategy);
    write_files(app.path(), &[("hpa.yaml", HPA)]);
    let sync = |extra: &[&str]| {
        let mut args = vec!["sync", path(&app), "--app", "ro"];
        args.extend(extra);
        cluster.gitsync(&args)
    };
    assert_eq!(sync(&[]).code, 0);
    hpa_scales(&cluster, "web-blue", 5);

    bump(&app, "bgr", "web:2", "");
    let run = sync(&[]);
    assert!(
        run.stdout.contains("paused; run `gitsync promote ro`"),
        "{run:?}"
    );
    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    let run = sync(&["--detach"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "green");
    // The HPA follows green and scales it; blue keeps the 5 pods the HPA gave it.
    hpa_scales(&cluster, "web-green", 7);
    assert_eq!(replicas(&cluster, "web-blue"), 5);

    // web:3 restarts the rollout in blue, at the HPA's count of the active slot: blue's
    // spec.replicas is still the HPA's field, so gitsync forces that one object.
    bump(&app, "bgr", "web:3", "");
    let run = sync(&[]);
    assert_eq!(run.code, 0, "no conflict with the HPA: {run:?}");
    assert_eq!(image(&cluster, "web-blue"), "web:3");
    assert_eq!(replicas(&cluster, "web-blue"), 7);
    assert_eq!(
        selector(&cluster, "web")["gitsync.dev/slot"],
        "green",
        "not yet"
    );
    let hpa = cluster
        .get("/apis/autoscaling/v2/namespaces/ro/horizontalpodautoscalers/web")
        .expect("hpa");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "web-green");
}

#[test]
fn an_hpa_keeps_scaling_stable_while_the_canary_takes_its_share() {
    let cluster = Cluster::start();
    let app = deployed(&cluster, "careful", CANARY);
    write_files(app.path(), &[("hpa.yaml", HPA)]);
    assert_eq!(
        cluster.gitsync(&["sync", path(&app), "--app", "ro"]).code,
        0
    );
    // The HPA scales the workload to 6 (through the scale subresource, as it does).
    hpa_scales(&cluster, "web", 6);

    bump(&app, "careful", "web:2", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .contains("weight 25%: canary healthy (2 of 8 pods)"),
        "{run:?}"
    );
    assert_eq!(replicas(&cluster, "web"), 6, "stable stays the HPA's");
    assert_eq!(replicas(&cluster, "web-canary"), 3, "50% of 6, rounded up");
    let diff = cluster.gitsync(&["diff", path(&app), "--app", "ro"]);
    assert_eq!(diff.code, 0, "no fight over replicas: {diff:?}");
}

#[test]
fn status_shows_the_canary_step_weight_gates_and_wait_with_a_bar_on_a_terminal() {
    let cluster = Cluster::start();
    let patient = CANARY.replace("progressDeadlineSeconds: 6", "progressDeadlineSeconds: 60");
    let app = deployed(&cluster, "careful", &patient);
    // Canary pods that take a minute to start: the first step waits on its gates.
    bump(
        &app,
        "careful",
        "web:2",
        "local-cluster.gitsync.dev/start-seconds: \"60\"",
    );
    // The first pass starts the canary; the second sees it (status shows the last pass).
    for _ in 0..2 {
        let run = cluster.gitsync(&["sync", path(&app), "--app", "ro", "--detach"]);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let json: Value = cluster.gitsync(&["status", "ro", "-o", "json"]).json();
    let r = &json["rollouts"][0];
    for (field, expected) in [
        ("workload", serde_json::json!("Deployment/ro/web")),
        ("strategy", serde_json::json!("canary")),
        ("policy", serde_json::json!("careful")),
        ("phase", serde_json::json!("Progressing")),
        ("step", serde_json::json!(0)),
        ("steps", serde_json::json!(5)),
        ("weight", serde_json::json!(25)),
        ("progress", serde_json::json!(0)),
        ("awaitingPromote", serde_json::json!(false)),
    ] {
        assert_eq!(r[field], expected, "{field}: {r:#}");
    }
    assert!(
        r["waiting"]
            .as_str()
            .is_some_and(|w| w.starts_with("health: web-canary: ")),
        "{r:#}"
    );
    assert_eq!(
        r["gates"],
        serde_json::json!([
            {"name": "available", "passed": false, "detail": "0 of 1 canary pods available"},
            {"name": "restarts", "passed": true, "detail": "0 restarts (at most 1)"},
        ]),
        "{r:#}"
    );

    // In text: the same, with the progress as a number when piped, as a bar on a
    // terminal.
    let lines = [
        "rollout Deployment/ro/web: canary (policy careful), Progressing, step 1 of 5, weight 25%\n",
        "  waiting for: health: web-canary: ",
        "  gate wait available: 0 of 1 canary pods available\n",
        "  gate ok   restarts: 0 restarts (at most 1)\n",
    ];
    let piped = cluster.gitsync(&["status", "ro"]);
    assert_eq!(piped.code, 0, "{piped:?}");
    let (code, terminal) = cluster.gitsync_on_a_terminal(&["status", "ro"]);
    assert_eq!(code, 0, "{terminal}");
    for line in lines {
        assert!(piped.stdout.contains(line), "{line:?} missing: {piped:?}");
        assert!(terminal.contains(line), "{line:?} missing:\n{terminal}");
    }
    assert!(piped.stdout.contains("\n  progress: 0%\n"), "{piped:?}");
    assert!(!piped.stdout.contains("] 0%"), "{piped:?}");
    assert!(
        terminal.contains("\n  [--------------------] 0%\n"),
        "{terminal}"
    );
    assert!(!terminal.contains("progress: 0%"), "{terminal}");

    // Stopped, then a healthy version at the manual pause: half the bar, no gates.
    assert_eq!(cluster.gitsync(&["abort", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stdout
            .contains("canary aborted at step 1: aborted by `gitsync abort`"),
        "{run:?}"
    );
    bump(&app, "careful", "web:3", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    let (_, terminal) = cluster.gitsync_on_a_terminal(&["status", "ro"]);
    for line in [
        "rollout Deployment/ro/web: canary (policy careful), Paused, step 4 of 5, weight 50%\n",
        "\n  [##########----------] 50%\n",
        "  waiting for: `gitsync promote`\n",
    ] {
        assert!(terminal.contains(line), "{line:?} missing:\n{terminal}");
    }
    assert!(!terminal.contains("gate "), "{terminal}");
}

#[test]
fn blue_green_abort_keeps_the_service_before_the_switch_and_switches_back_after() {
    let cluster = Cluster::start();
    // The old slot stays up a minute after a switch: long enough to switch back.
    let window = BLUE_GREEN.replace("scaleDownAfter: 1s", "scaleDownAfter: 60s");
    let app = deployed(&cluster, "bg", &window);
    bump(&app, "bg", "web:2", "");

    // `diff --strategy` is `plan`: the steps, then the diff `diff` alone prints.
    let plan = cluster.gitsync(&["plan", path(&app), "--app", "ro"]);
    let strategy = cluster.gitsync(&["diff", "--strategy", path(&app), "--app", "ro"]);
    let diff = cluster.gitsync(&["diff", path(&app), "--app", "ro"]);
    assert_eq!(strategy.code, 1, "{strategy:?}");
    assert_eq!(strategy.stdout, plan.stdout);
    for step in [
        "=== rollout Deployment/ro/web (policy bg, blueGreen)\n",
        ". apply Deployment web-green: 4 pods, image web:2\n",
        ". wait for `gitsync promote`\n",
        ". apply Service web: selects app=web,gitsync.dev/slot=green\n",
        ". pause 60 s\n",
        ". apply Deployment web-blue: 0 pods, image web:1\n",
    ] {
        assert!(
            strategy.stdout.contains(step),
            "{step:?} missing: {strategy:?}"
        );
    }
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(!diff.stdout.contains("=== rollout"), "{diff:?}");
    assert!(strategy.stdout.ends_with(&diff.stdout), "{strategy:?}");

    // Aborted before the switch: the Service never moves, the new slot goes to zero.
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        selector(&cluster, "web-preview")["gitsync.dev/slot"],
        "green"
    );
    assert_eq!(cluster.gitsync(&["abort", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("ended Aborted: aborted by `gitsync abort` before the switch"),
        "{run:?}"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "blue");
    assert_eq!(image(&cluster, "web-blue"), "web:1");
    assert_eq!(replicas(&cluster, "web-blue"), 4);
    assert_eq!(replicas(&cluster, "web-green"), 0);
    let json: Value = cluster.gitsync(&["status", "ro", "-o", "json"]).json();
    assert_eq!(json["rollouts"][0]["phase"], "Aborted", "{json}");
    assert_eq!(json["rollouts"][0]["activeSlot"], "blue", "{json}");

    // Aborted after the switch, within scaleDownAfter: straight back to blue.
    bump(&app, "bg", "web:3", "");
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(cluster.gitsync(&["promote", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro", "--detach"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.contains(
            "switched Service web to web-green (gitsync promote); web-blue stays up for 60 s"
        ),
        "{run:?}"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "green");
    assert_eq!(replicas(&cluster, "web-blue"), 4, "kept for the window");
    assert_eq!(cluster.gitsync(&["abort", "ro"]).code, 0);
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr
            .contains("ended Aborted: aborted by `gitsync abort`: switched back to web-blue"),
        "{run:?}"
    );
    assert_eq!(selector(&cluster, "web")["gitsync.dev/slot"], "blue");
    assert_eq!(
        selector(&cluster, "web-preview")["gitsync.dev/slot"],
        "green"
    );
    assert_eq!(image(&cluster, "web-blue"), "web:1");
    assert_eq!(replicas(&cluster, "web-blue"), 4);
    assert_eq!(image(&cluster, "web-green"), "web:3");
    assert_eq!(replicas(&cluster, "web-green"), 0);
    assert!(event_reasons(&cluster, "web").contains(&"RolloutAborted".to_owned()));
}

#[test]
fn a_pod_annotation_added_to_an_empty_map_is_applied_in_one_pass() {
    let cluster = Cluster::start();
    // `web()` writes the pod template's `annotations: {}`.
    let app = deployed(&cluster, "stop-start", RECREATE);
    assert_eq!(
        deployment(&cluster, "web").expect("web")["spec"]["template"]["metadata"]["annotations"],
        serde_json::json!({})
    );
    bump(
        &app,
        "stop-start",
        "web:2",
        "local-cluster.gitsync.dev/start-seconds: \"5\"",
    );
    let run = cluster.gitsync(&["sync", path(&app), "--app", "ro", "--detach"]);
    assert_eq!(run.code, 0, "{run:?}");
    // One pass applies the whole template: the rollout's next pass judges the pods of
    // the template it started, not a template without the annotation.
    let live = deployment(&cluster, "web").expect("web");
    assert_eq!(
        live["spec"]["template"]["metadata"]["annotations"],
        serde_json::json!({"local-cluster.gitsync.dev/start-seconds": "5"}),
        "{live:#}"
    );
}
