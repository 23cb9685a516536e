//! Every transition of the three machines, with an injected clock and a simulated
//! cluster: `Sim` keeps what a pass applied as live, and a test says which pods became
//! available.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::preview::{Simulation, available};
use super::*;
use crate::manifest::Source;
use crate::policy;

const MINUTE: u64 = 60_000;
const T0: u64 = 1_800_000_000_000;

fn manifest(object: Value) -> Manifest {
    let mut object = object;
    object["metadata"]["labels"]["gitsync.dev/app"] = json!("demo");
    let digest = crate::digest::stamp(&mut object);
    Manifest {
        id: ObjectId::of(&object).expect("identity"),
        source: Source {
            file: "web.yaml".into(),
            line: 1,
            column: 1,
        },
        object,
        digest,
    }
}

fn deployment(image: &str, replicas: Option<i64>) -> Manifest {
    let mut d = json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"}},
                "spec": {"containers": [{"name": "web", "image": image}]}}}});
    if let Some(n) = replicas {
        d["spec"]["replicas"] = json!(n);
    }
    manifest(d)
}

fn service() -> Manifest {
    manifest(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
}

fn nginx_ingress() -> Manifest {
    manifest(
        json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "pgk.example.com", "http": {"paths": [
            {"path": "/demo", "pathType": "Prefix",
             "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}),
    )
}

fn hpa() -> Manifest {
    manifest(
        json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web", "namespace": "demo"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 10}}),
    )
}

fn policy(strategy: &str) -> Policy {
    let text = format!(
        "apiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {{name: p}}\nspec:\n{strategy}"
    );
    policy::parse("p.yaml", &text)
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

const CANARY: &str = "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 25}, {pause: 1m}, {weight: 50}, {pause: {}}, {weight: 100}]\n      health: {maxRestarts: 2}\n      progressDeadlineSeconds: 300\n";
const BLUE_GREEN: &str = "  strategy:\n    type: blueGreen\n    blueGreen: {scaleDownAfter: 30s, progressDeadlineSeconds: 300}\n";

/// A cluster as the passes left it: what each decision applied, with a status the test
/// controls.
#[derive(Default)]
struct Sim {
    inner: Simulation,
    restarts: BTreeMap<String, u32>,
    check: Option<Result<(), String>>,
}

impl std::ops::Deref for Sim {
    type Target = Simulation;
    fn deref(&self) -> &Simulation {
        &self.inner
    }
}

impl std::ops::DerefMut for Sim {
    fn deref_mut(&mut self) -> &mut Simulation {
        &mut self.inner
    }
}

impl Sim {
    /// Starts from a live Deployment running `image` with `n` pods available.
    fn with_stable(image: &str, n: i64) -> Self {
        let mut sim = Self::default();
        let mut live = deployment(image, Some(n)).object;
        let hash = template_hash(&live["spec"]["template"]);
        live["metadata"]["annotations"][ANNOTATION_TEMPLATE] = json!(hash);
        sim.live.push(available(live, n));
        sim
    }

    fn pass(
        &mut self,
        policy: &Policy,
        rendered: &[Manifest],
        command: Option<Command>,
        now: u64,
    ) -> Result<Decision, Error> {
        let workload = Workload {
            policy,
            deployment: rendered
                .iter()
                .find(|m| m.id.kind == "Deployment")
                .expect("a Deployment"),
            rendered,
        };
        self.inner
            .pass(&workload, command, now, &self.restarts, self.check.as_ref())
    }

    fn find(&self, kind_: &str, name_: &str) -> Option<&Value> {
        self.live
            .iter()
            .find(|l| kind(l) == kind_ && name(l) == name_)
    }

    fn deployment(&self, name: &str) -> &Value {
        self.find("Deployment", name)
            .unwrap_or_else(|| panic!("no Deployment {name}: {:#?}", self.live))
    }

    fn deployment_mut(&mut self, name_: &str) -> &mut Value {
        self.live
            .iter_mut()
            .find(|l| kind(l) == "Deployment" && name(l) == name_)
            .unwrap_or_else(|| panic!("no Deployment {name_}"))
    }

    /// The controller rolled the Deployment: all its pods are available.
    fn ready(&mut self, name: &str) {
        let live = self.deployment_mut(name);
        let n = live["spec"]["replicas"].as_i64().unwrap_or(1);
        *live = available(live.clone(), n);
    }

    fn stalled(&mut self, name: &str) {
        self.deployment_mut(name)["status"] = json!({"observedGeneration": 1, "replicas": 1,
            "updatedReplicas": 1, "availableReplicas": 0,
            "conditions": [{"type": "Progressing", "status": "False",
                "reason": "ProgressDeadlineExceeded", "message": "ReplicaSet web-x has timed out progressing."}]});
    }

    fn selector(&self, service: &str) -> &Value {
        &self.find("Service", service).expect("service")["spec"]["selector"]
    }

    fn image(&self, deployment: &str) -> &str {
        self.deployment(deployment)["spec"]["template"]["spec"]["containers"][0]["image"]
            .as_str()
            .unwrap_or_default()
    }

    fn replicas(&self, deployment: &str) -> Option<i64> {
        self.deployment(deployment)["spec"]["replicas"].as_i64()
    }

    fn phase(&self) -> Phase {
        self.state.as_ref().expect("state").phase
    }
}

/// The image of the template the stored state rolls back to.
fn previous_image(sim: &Sim) -> &str {
    sim.state.as_ref().expect("state").previous["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap_or_default()
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

#[test]
fn canary_walks_its_steps_to_promotion() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let mut sim = Sim::with_stable("web:1", 4);

    // Step 1, weight 25: one canary pod of four, as in the seeds.
    let d = sim.pass(&p, &rendered, None, T0).expect("pass");
    assert_eq!(
        d.waiting,
        Some(Wait::Health("web-canary: not created yet".into()))
    );
    assert_eq!(
        (sim.replicas("web"), sim.replicas("web-canary")),
        (Some(3), Some(1))
    );
    assert_eq!(
        (sim.image("web"), sim.image("web-canary")),
        ("web:1", "web:2")
    );
    assert_eq!(
        sim.deployment("web-canary")["spec"]["template"]["metadata"]["labels"],
        json!({"app": "web", "tier": "front", "gitsync.dev/track": "canary"})
    );
    assert_eq!(
        sim.selector("web"),
        &json!({"app": "web"}),
        "the Service selects both"
    );
    assert!(d.notes[0].contains("started"), "{:?}", d.notes);

    // Healthy: on to the timed pause.
    sim.ready("web-canary");
    let d = sim.pass(&p, &rendered, None, T0 + 1_000).expect("pass");
    assert_eq!(d.waiting, Some(Wait::Until(T0 + 1_000 + MINUTE)));
    assert_eq!(sim.phase(), Phase::Paused);
    let d = sim.pass(&p, &rendered, None, T0 + 30_000).expect("pass");
    assert_eq!(
        d.waiting,
        Some(Wait::Until(T0 + 1_000 + MINUTE)),
        "still pausing"
    );

    // The pause is over: weight 50 is 2 of 4.
    let d = sim.pass(&p, &rendered, None, T0 + 62_000).expect("pass");
    assert!(
        matches!(d.waiting, Some(Wait::Health(_))),
        "{:?}",
        d.waiting
    );
    assert_eq!(
        (sim.replicas("web"), sim.replicas("web-canary")),
        (Some(2), Some(2))
    );
    sim.ready("web-canary");
    let d = sim.pass(&p, &rendered, None, T0 + 63_000).expect("pass");
    assert_eq!(d.waiting, Some(Wait::Promote), "a manual pause");
    let d = sim.pass(&p, &rendered, None, T0 + 3_600_000).expect("pass");
    assert_eq!(
        d.waiting,
        Some(Wait::Promote),
        "time does not end a manual pause"
    );

    // Promote: weight 100, then stable takes the template, then the canary goes.
    let d = sim
        .pass(&p, &rendered, Some(Command::Promote), T0 + 3_601_000)
        .expect("pass");
    assert!(
        d.notes.iter().any(|n| n.contains("promote")),
        "{:?}",
        d.notes
    );
    assert_eq!(
        (sim.replicas("web"), sim.replicas("web-canary")),
        (Some(0), Some(4))
    );
    sim.ready("web-canary");
    sim.pass(&p, &rendered, None, T0 + 3_602_000).expect("pass");
    assert_eq!(sim.image("web"), "web:2", "stable takes the new template");
    assert_eq!(
        sim.replicas("web-canary"),
        Some(4),
        "the canary serves until stable is up"
    );
    sim.ready("web");
    let d = sim.pass(&p, &rendered, None, T0 + 3_603_000).expect("pass");
    assert_eq!(d.waiting, None);
    assert_eq!(sim.phase(), Phase::Completed);
    assert!(
        sim.find("Deployment", "web-canary").is_none(),
        "canary removed"
    );
    assert_eq!((sim.image("web"), sim.replicas("web")), ("web:2", Some(4)));

    // Settled: further passes change nothing.
    let before = sim.live.clone();
    let d = sim.pass(&p, &rendered, None, T0 + 4_000_000).expect("pass");
    assert_eq!((d.waiting, d.notes.len()), (None, 0));
    assert_eq!(sim.live, before);
}

#[test]
fn the_first_deploy_has_nothing_to_compare_with() {
    let p = policy(CANARY);
    let rendered = [deployment("web:1", Some(4)), service()];
    let mut sim = Sim::default();
    let d = sim.pass(&p, &rendered, None, T0).expect("pass");
    assert_eq!(d.waiting, None);
    assert_eq!(sim.phase(), Phase::Completed);
    assert_eq!((sim.image("web"), sim.replicas("web")), ("web:1", Some(4)));
    assert!(sim.find("Deployment", "web-canary").is_none());
}

#[test]
fn a_canary_that_restarts_too_often_is_aborted_and_stable_keeps_serving() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    sim.restarts.insert("web-canary".into(), 3);
    let d = sim.pass(&p, &rendered, None, T0 + 5_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert!(
        d.notes[0].contains("restarted 3 times (maxRestarts 2)"),
        "{:?}",
        d.notes
    );
    assert!(sim.find("Deployment", "web-canary").is_none());
    assert_eq!((sim.image("web"), sim.replicas("web")), ("web:1", Some(4)));
    // Aborted stays aborted for this template; a new commit starts again.
    sim.restarts.clear();
    let d = sim.pass(&p, &rendered, None, T0 + 10_000).expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Aborted, None));
    let next = [deployment("web:3", Some(4)), service()];
    sim.pass(&p, &next, None, T0 + 20_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Progressing);
    assert_eq!(
        (sim.image("web"), sim.image("web-canary")),
        ("web:1", "web:3")
    );
}

#[test]
fn a_canary_that_never_becomes_ready_aborts_at_the_deadline() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    let d = sim.pass(&p, &rendered, None, T0 + 299_000).expect("pass");
    assert!(matches!(d.waiting, Some(Wait::Health(_))));
    let d = sim.pass(&p, &rendered, None, T0 + 301_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert!(
        d.notes[0].contains("not healthy within 300 s"),
        "{:?}",
        d.notes
    );
    // A controller that gave up aborts at once.
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    sim.stalled("web-canary");
    sim.pass(&p, &rendered, None, T0 + 1_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
}

#[test]
fn abort_and_a_failing_http_check_remove_the_canary() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    sim.ready("web-canary");
    sim.pass(&p, &rendered, None, T0 + 1_000).expect("pass");
    let d = sim
        .pass(&p, &rendered, Some(Command::Abort), T0 + 2_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert!(d.notes[0].contains("gitsync abort"), "{:?}", d.notes);
    assert!(sim.find("Deployment", "web-canary").is_none());

    let checked = policy(&CANARY.replace(
        "{maxRestarts: 2}",
        "{maxRestarts: 2, url: http://web/healthz}",
    ));
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&checked, &rendered, None, T0).expect("pass");
    sim.ready("web-canary");
    let d = sim
        .pass(&checked, &rendered, None, T0 + 1_000)
        .expect("pass");
    assert_eq!(d.waiting, Some(Wait::Health("the HTTP check".into())));
    sim.check = Some(Err("GET http://web/healthz: 503".into()));
    let d = sim
        .pass(&checked, &rendered, None, T0 + 2_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert!(d.notes[0].contains("503"), "{:?}", d.notes);
}

#[test]
fn a_new_revision_mid_canary_queues_or_restarts_as_the_policy_says() {
    let rendered = [deployment("web:2", Some(4)), service()];
    let next = [deployment("web:3", Some(4)), service()];

    let queue = policy(CANARY);
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&queue, &rendered, None, T0).expect("pass");
    sim.pass(&queue, &next, None, T0 + 1_000).expect("pass");
    assert_eq!(
        sim.image("web-canary"),
        "web:2",
        "queue: the rollout in progress goes on"
    );
    // Aborted with web:3 queued: the next pass is due at once, and starts web:3.
    let d = sim
        .pass(&queue, &next, Some(Command::Abort), T0 + 2_000)
        .expect("pass");
    assert_eq!(
        (d.state.phase, d.waiting.clone()),
        (Phase::Aborted, Some(Wait::Queued))
    );
    let d = sim.pass(&queue, &next, None, T0 + 3_000).expect("pass");
    assert_eq!(d.state.phase, Phase::Progressing, "{:?}", d.notes);
    assert_eq!(sim.image("web-canary"), "web:3");

    let restart = policy(&format!("  onNewRevision: restart\n{CANARY}"));
    let mut sim = Sim::with_stable("web:1", 4);
    sim.pass(&restart, &rendered, None, T0).expect("pass");
    let d = sim.pass(&restart, &next, None, T0 + 1_000).expect("pass");
    assert_eq!(
        sim.image("web-canary"),
        "web:3",
        "restart: the new revision"
    );
    assert_eq!(
        (sim.image("web"), sim.state.as_ref().map(|s| s.step)),
        ("web:1", Some(0))
    );
    assert!(d.notes[0].contains("starts over"), "{:?}", d.notes);
}

#[test]
fn an_ingress_nginx_service_gets_an_exact_weight() {
    let p = policy(CANARY);
    let rendered = [deployment("web:1", Some(4)), service(), nginx_ingress()];
    let mut sim = Sim::default();
    sim.pass(&p, &rendered, None, T0).expect("first deploy");
    sim.ready("web");
    assert_eq!(
        sim.deployment("web")["spec"]["template"]["metadata"]["labels"]["gitsync.dev/track"],
        "stable"
    );
    let next = [deployment("web:2", Some(4)), service(), nginx_ingress()];
    sim.pass(&p, &next, None, T0 + 1_000).expect("pass");
    let canary = sim.find("Ingress", "web-canary").expect("canary ingress");
    assert_eq!(
        canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary"],
        "true"
    );
    assert_eq!(
        canary["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-weight"],
        "25"
    );
    assert_eq!(
        canary["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"],
        "web-canary"
    );
    assert_eq!(
        sim.selector("web-canary"),
        &json!({"app": "web", "gitsync.dev/track": "canary"})
    );
    assert_eq!(
        sim.selector("web"),
        &json!({"app": "web", "gitsync.dev/track": "stable"})
    );
}

#[test]
fn under_an_hpa_the_canary_takes_its_share_and_stable_stays_the_hpas() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", None), service(), hpa()];
    let mut sim = Sim::with_stable("web:1", 6);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    assert_eq!(sim.replicas("web"), Some(6), "the HPA's count is kept");
    assert_eq!(
        sim.deployment("web").pointer("/spec/replicas"),
        Some(&json!(6))
    );
    assert_eq!(sim.replicas("web-canary"), Some(2), "ceil(6 × 25%)");
}

#[test]
fn canary_bad_input_is_an_error_before_anything_changes() {
    let p = policy(CANARY);
    let no_service = [deployment("web:2", Some(4))];
    let mut sim = Sim::with_stable("web:1", 4);
    let err = sim.pass(&p, &no_service, None, T0).expect_err("no service");
    assert!(err.to_string().contains("needs a Service"), "{err}");

    let named = policy(&CANARY.replace("canary:\n", "canary:\n      service: api\n"));
    let err = sim
        .pass(&named, &[deployment("web:2", Some(4)), service()], None, T0)
        .expect_err("unknown service");
    assert!(err.to_string().contains("names Service \"api\""), "{err}");

    // The Service selects by a label whose value changes with the version.
    let mut versioned = deployment("web:2", Some(4)).object;
    versioned["spec"]["template"]["metadata"]["labels"]["version"] = json!("2");
    let mut svc = service().object;
    svc["spec"]["selector"]["version"] = json!("2");
    let mut sim = Sim::with_stable("web:1", 4);
    sim.live[0]["spec"]["template"]["metadata"]["labels"]["version"] = json!("1");
    let err = sim
        .pass(&p, &[manifest(versioned), manifest(svc)], None, T0)
        .expect_err("label the canary cannot share");
    assert!(err.to_string().contains("cannot share"), "{err}");
    assert!(sim.state.is_none(), "nothing decided");
}

#[test]
fn blue_green_switches_after_promote_and_scales_the_old_slot_down() {
    let p = policy(BLUE_GREEN);
    let mut sim = Sim::default();
    let v1 = [deployment("web:1", Some(3)), service()];
    sim.pass(&p, &v1, None, T0).expect("first deploy");
    assert_eq!(sim.phase(), Phase::Completed);
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:1", Some(3))
    );
    assert_eq!(
        sim.selector("web"),
        &json!({"app": "web", "gitsync.dev/slot": "blue"})
    );
    assert_eq!(
        sim.selector("web-preview"),
        &json!({"app": "web", "gitsync.dev/slot": "green"})
    );
    sim.ready("web-blue");

    let v2 = [deployment("web:2", Some(3)), service()];
    let d = sim.pass(&p, &v2, None, T0 + 1_000).expect("pass");
    assert_eq!(
        (sim.image("web-green"), sim.replicas("web-green")),
        ("web:2", Some(3))
    );
    assert_eq!(
        sim.selector("web")["gitsync.dev/slot"],
        "blue",
        "not switched yet"
    );
    assert!(matches!(d.waiting, Some(Wait::Health(_))));
    sim.ready("web-green");
    let d = sim.pass(&p, &v2, None, T0 + 2_000).expect("pass");
    assert_eq!(d.waiting, Some(Wait::Promote));
    assert!(
        d.notes[0].contains("preview at Service web-preview"),
        "{:?}",
        d.notes
    );

    let d = sim
        .pass(&p, &v2, Some(Command::Promote), T0 + 10_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Switched);
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "green");
    assert_eq!(
        sim.replicas("web-blue"),
        Some(3),
        "kept for the rollback window"
    );
    assert_eq!(d.waiting, Some(Wait::Until(T0 + 40_000)));
    let d = sim.pass(&p, &v2, None, T0 + 40_000).expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Completed, None));
    assert_eq!(sim.replicas("web-blue"), Some(0));
    assert_eq!(sim.image("web-blue"), "web:1");
    assert!(
        sim.find("Deployment", "web").is_none(),
        "no unslotted Deployment"
    );
}

#[test]
fn blue_green_never_switches_to_a_slot_that_is_not_ready() {
    let p = policy(BLUE_GREEN);
    let mut sim = Sim::default();
    sim.pass(&p, &[deployment("web:1", Some(3)), service()], None, T0)
        .expect("first deploy");
    sim.ready("web-blue");
    let v2 = [deployment("web:2", Some(3)), service()];
    sim.pass(&p, &v2, None, T0 + 1_000).expect("pass");
    let d = sim
        .pass(&p, &v2, Some(Command::Promote), T0 + 2_000)
        .expect("pass");
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");
    assert!(
        d.notes.iter().any(|n| n.contains("not ready yet")),
        "{:?}",
        d.notes
    );
    let d = sim.pass(&p, &v2, None, T0 + 302_000).expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert!(d.notes[0].contains("never switched"), "{:?}", d.notes);
    assert_eq!(sim.replicas("web-green"), Some(0));
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "blue");
}

#[test]
fn blue_green_auto_promotes_and_abort_switches_back() {
    let p =
        policy(&BLUE_GREEN.replace("{scaleDownAfter", "{autoPromoteAfter: 10s, scaleDownAfter"));
    let mut sim = Sim::default();
    sim.pass(&p, &[deployment("web:1", Some(2)), service()], None, T0)
        .expect("first deploy");
    sim.ready("web-blue");
    let v2 = [deployment("web:2", Some(2)), service()];
    sim.pass(&p, &v2, None, T0 + 1_000).expect("pass");
    sim.ready("web-green");
    let d = sim.pass(&p, &v2, None, T0 + 2_000).expect("pass");
    assert_eq!(d.waiting, Some(Wait::Until(T0 + 12_000)));
    sim.pass(&p, &v2, None, T0 + 12_000).expect("pass");
    assert_eq!(sim.selector("web")["gitsync.dev/slot"], "green");
    sim.pass(&p, &v2, Some(Command::Abort), T0 + 15_000)
        .expect("pass");
    assert_eq!(sim.phase(), Phase::Aborted);
    assert_eq!(
        sim.selector("web")["gitsync.dev/slot"],
        "blue",
        "instant rollback"
    );
    assert_eq!(
        (sim.image("web-blue"), sim.replicas("web-blue")),
        ("web:1", Some(2))
    );
    assert_eq!(sim.replicas("web-green"), Some(0));
}

#[test]
fn blue_green_needs_a_service_and_moves_the_hpa() {
    let p = policy(BLUE_GREEN);
    let mut sim = Sim::default();
    let err = sim
        .pass(&p, &[deployment("web:1", Some(3))], None, T0)
        .expect_err("no service");
    assert!(err.to_string().contains("renders none"), "{err}");

    let rendered = [deployment("web:1", None), service(), hpa()];
    sim.pass(&p, &rendered, None, T0).expect("first deploy");
    assert_eq!(
        sim.find("HorizontalPodAutoscaler", "web").expect("hpa")["spec"]["scaleTargetRef"]["name"],
        "web-blue"
    );
    assert_eq!(
        sim.replicas("web-blue"),
        Some(2),
        "the HPA's minimum to start"
    );
}

#[test]
fn ramped_sets_the_rolling_update_and_rolls_back_on_failure() {
    let p = policy(
        "  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, maxUnavailable: 0, minReadySeconds: 5, progressDeadlineSeconds: 120}\n",
    );
    let mut sim = Sim::with_stable("web:1", 3);
    let rendered = [deployment("web:2", Some(3)), service()];
    let d = sim.pass(&p, &rendered, None, T0).expect("pass");
    let web = sim.deployment("web");
    assert_eq!(
        web["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}})
    );
    assert_eq!(
        (
            web["spec"]["minReadySeconds"].clone(),
            web["spec"]["progressDeadlineSeconds"].clone()
        ),
        (json!(5), json!(120))
    );
    assert!(matches!(d.waiting, Some(Wait::Health(_))));
    sim.stalled("web");
    let d = sim.pass(&p, &rendered, None, T0 + 130_000).expect("pass");
    assert_eq!(sim.phase(), Phase::RolledBack);
    assert!(d.notes[0].contains("rolled back"), "{:?}", d.notes);
    assert_eq!(sim.image("web"), "web:1", "the previous template again");
    // Rolled back stays so until git changes.
    sim.pass(&p, &rendered, None, T0 + 140_000).expect("pass");
    assert_eq!(
        (sim.phase(), sim.image("web")),
        (Phase::RolledBack, "web:1")
    );

    let mut sim = Sim::with_stable("web:1", 3);
    sim.pass(&p, &rendered, None, T0).expect("pass");
    sim.ready("web");
    let d = sim.pass(&p, &rendered, None, T0 + 20_000).expect("pass");
    assert_eq!((sim.phase(), d.waiting), (Phase::Completed, None));
    assert!(d.notes[0].contains("rolled out in 20 s"), "{:?}", d.notes);
}

#[test]
fn recreate_records_the_window_without_pods() {
    let p = policy("  strategy: {type: recreate}\n");
    let mut sim = Sim::with_stable("web:1", 2);
    let rendered = [deployment("web:2", Some(2)), service()];
    sim.pass(&p, &rendered, None, T0).expect("pass");
    assert_eq!(
        sim.deployment("web")["spec"]["strategy"],
        json!({"type": "Recreate"})
    );
    // Old pods gone, new ones starting: the next pass sees none available.
    sim.pass(&p, &rendered, None, T0 + 1_000).expect("pass");
    sim.ready("web");
    let d = sim.pass(&p, &rendered, None, T0 + 4_000).expect("pass");
    let state = sim.state.as_ref().expect("state");
    assert_eq!(state.phase, Phase::Completed);
    assert_eq!(
        state.downtime,
        Some(Downtime {
            from_ms: T0 + 1_000,
            to_ms: Some(T0 + 4_000)
        })
    );
    assert!(
        d.notes[0].contains("3000 ms without an available pod"),
        "{:?}",
        d.notes
    );
}

/// The first decision for `rendered` (its Deployment first) over a stable `web:1` of
/// 4 pods.
fn first_decision(p: &Policy, rendered: &[Manifest]) -> Decision {
    let sim = Sim::with_stable("web:1", 4);
    let live = crate::manifest::index(&sim.live);
    let restarts = BTreeMap::new();
    let observed = Observed {
        live: &live,
        restarts: &restarts,
        check: None,
    };
    let workload = Workload {
        policy: p,
        deployment: &rendered[0],
        rendered,
    };
    decide(&workload, None, &observed, None, T0).expect("decide")
}

#[test]
fn effective_replaces_the_workload_and_adds_the_strategys_objects() {
    let p = policy(CANARY);
    let rendered = vec![deployment("web:2", Some(4)), service()];
    let d = first_decision(&p, &rendered);
    let out = effective(rendered.clone(), std::slice::from_ref(&d));
    let names: Vec<(&str, &str)> = out
        .iter()
        .map(|m| (m.id.kind.as_str(), m.id.name.as_str()))
        .collect();
    assert_eq!(
        names,
        [
            ("Service", "web"),
            ("Deployment", "web"),
            ("Deployment", "web-canary")
        ]
    );
    for m in &out {
        assert_eq!(
            m.digest,
            crate::digest::of_object(&{
                let mut o = m.object.clone();
                o["metadata"]["annotations"]
                    .as_object_mut()
                    .expect("annotations")
                    .remove(crate::manifest::ANNOTATION_DIGEST);
                o
            })
        );
        assert_eq!(m.source.file, "web.yaml");
    }
}

#[test]
fn a_rewritten_object_keeps_its_own_file_and_added_ones_take_the_workloads() {
    let p = policy(BLUE_GREEN);
    let mut svc = service();
    svc.source.file = "svc.yaml".into();
    svc.source.line = 3;
    let rendered = vec![deployment("web:2", Some(4)), svc];
    let d = first_decision(&p, &rendered);
    assert!(d.replaces.iter().any(|id| id.kind == "Service"), "{d:?}");
    let out = effective(rendered.clone(), std::slice::from_ref(&d));
    let source = |kind: &str, name: &str| {
        let m = out
            .iter()
            .find(|m| m.id.kind == kind && m.id.name == name)
            .unwrap_or_else(|| panic!("no {kind}/{name}"));
        (m.source.file.clone(), m.source.line)
    };
    assert_eq!(source("Service", "web"), ("svc.yaml".to_owned(), 3));
    assert_eq!(source("Service", "web-preview"), ("web.yaml".to_owned(), 1));
    assert_eq!(source("Deployment", "web-blue").0, "web.yaml");
}

#[test]
fn preview_walks_a_canary_through_every_step_and_leaves_nothing_behind() {
    let p = policy(CANARY);
    let rendered = [deployment("web:2", Some(4)), service()];
    let workload = Workload {
        policy: &p,
        deployment: &rendered[0],
        rendered: &rendered,
    };
    let live = Sim::with_stable("web:1", 4).live.clone();
    let walked = preview(&workload, &live, None, T0).expect("preview");
    assert!(walked.changes);
    assert_eq!(walked.strategy, "canary");
    let steps = walked.steps.join("\n");
    for expected in [
        "canary rollout of web started",
        "apply Deployment web-canary: 1 pod, image web:2",
        "step 1: weight 25%: canary healthy (1 of 4 pods)",
        "pause 60 s",
        "apply Deployment web-canary: 2 pods, image web:2",
        "wait for `gitsync promote`",
        "step 4: pause ended by `gitsync promote`",
        "apply Deployment web: 4 pods, image web:2",
        "web promoted: stable runs the new template; canary removed",
    ] {
        assert!(
            steps.contains(expected),
            "{expected:?} missing from:\n{steps}"
        );
    }
    let order = |s: &str| steps.find(s).expect("present");
    assert!(
        order("pause 60 s") < order("wait for `gitsync promote`"),
        "{steps}"
    );

    // Nothing to roll out when the template is what runs.
    let same = [deployment("web:1", Some(4)), service()];
    let workload = Workload {
        policy: &p,
        deployment: &same[0],
        rendered: &same,
    };
    let unchanged = preview(&workload, &live, None, T0).expect("preview");
    assert!(!unchanged.changes, "{unchanged:?}");
}

#[test]
fn preview_shows_the_blue_green_switch_and_reports_bad_input() {
    let p = policy(BLUE_GREEN);
    let rendered = [deployment("web:2", Some(3)), service()];
    let workload = Workload {
        policy: &p,
        deployment: &rendered[0],
        rendered: &rendered,
    };
    let steps = preview(&workload, &[], None, T0).expect("preview").steps;
    let text = steps.join("\n");
    assert!(
        text.contains("Service web: selects app=web,gitsync.dev/slot=blue"),
        "{text}"
    );

    let alone = [deployment("web:2", Some(3))];
    let workload = Workload {
        policy: &p,
        deployment: &alone[0],
        rendered: &alone,
    };
    let err = preview(&workload, &[], None, T0).expect_err("no service");
    assert!(err.message.contains("Service"), "{err}");
}

mod blue_green;
mod canary;
mod hpa;
mod rolling;
