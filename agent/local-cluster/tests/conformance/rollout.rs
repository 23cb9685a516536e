//! The emulator's rollout simulation: ReplicaSets and Pods per template, RollingUpdate
//! and Recreate bounds, progress deadlines, Endpoints of ready pods, failure
//! injection. Emulator only (its clock is advanced, its images are not real): these
//! skip, saying so, against a real cluster.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Endpoints, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::fixture::Server;

fn deployment(name: &str, replicas: i32, strategy: &Value, annotations: &Value) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "strategy": strategy,
            "progressDeadlineSeconds": 30,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "app", "image": "example/app:1", "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .expect("deployment")
}

struct Sim {
    server: Server,
}

impl Sim {
    async fn start() -> Option<Self> {
        let server = Server::start_local("rollout simulation is the emulator's").await?;
        Some(Self { server })
    }

    fn deployments(&self) -> Api<Deployment> {
        Api::namespaced(self.server.client.clone(), &self.server.ns)
    }

    async fn pods(&self) -> Vec<Pod> {
        let api: Api<Pod> = Api::namespaced(self.server.client.clone(), &self.server.ns);
        api.list(&ListParams::default()).await.expect("pods").items
    }

    /// Advances simulated time in steps until `check` holds (at most 15 minutes of it).
    async fn until<T>(&self, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
        let local = self.server.local().expect("emulator");
        for _ in 0..1_800 {
            if let Some(v) = check().await {
                return v;
            }
            local.advance_clock(Duration::from_millis(500));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("never happened: {what}");
    }

    async fn rolled_out(&self, name: &str, replicas: i32) {
        self.until("the rollout completes", async || {
            let d = self.deployments().get(name).await.ok()?;
            let s = d.status?;
            let done = s.observed_generation == d.metadata.generation
                && s.updated_replicas == Some(replicas)
                && s.available_replicas == Some(replicas)
                && s.replicas == Some(replicas);
            done.then_some(())
        })
        .await;
    }

    async fn set_image(&self, name: &str, image: &str) {
        let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": image}]}}}});
        self.deployments()
            .patch(name, &PatchParams::default(), &Patch::Strategic(patch))
            .await
            .expect("new image");
    }
}

fn image(pod: &Pod) -> String {
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn a_deployment_gets_a_replica_set_ready_pods_and_endpoints() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    let ns = sim.server.ns.clone();
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("web", 3, &json!({}), &json!({})),
        )
        .await
        .expect("create");
    let service = serde_json::from_value(json!({"metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    .expect("svc");
    Api::namespaced(sim.server.client.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .map(|_: k8s_openapi::api::core::v1::Service| ())
        .expect("service");
    let fresh = sim.deployments().get("web").await.expect("get");
    assert_ne!(
        fresh.status.and_then(|s| s.available_replicas),
        Some(3),
        "not available the instant it is created"
    );
    sim.rolled_out("web", 3).await;
    let sets: Api<ReplicaSet> = Api::namespaced(sim.server.client.clone(), &ns);
    let sets = sets.list(&ListParams::default()).await.expect("rs").items;
    assert_eq!(sets.len(), 1);
    let hash = sets[0]
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-template-hash"))
        .cloned()
        .expect("hash label");
    let pods = sim.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| {
        ready(p)
            && p.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("pod-template-hash"))
                == Some(&hash)
    }));
    let endpoints: Api<Endpoints> = Api::namespaced(sim.server.client.clone(), &ns);
    let addresses = sim
        .until("endpoints list the ready pods", async || {
            let e = endpoints.get("web").await.ok()?;
            let n = e.subsets?.first()?.addresses.as_ref()?.len();
            (n == 3).then_some(n)
        })
        .await;
    assert_eq!(addresses, 3);
    // Deleting the Deployment takes its ReplicaSet and Pods with it.
    sim.deployments()
        .delete("web", &DeleteParams::background())
        .await
        .expect("delete");
    sim.until("pods are collected", async || {
        sim.pods().await.is_empty().then_some(())
    })
    .await;
    sim.server.finish().await;
}

#[tokio::test]
async fn rolling_update_stays_within_surge_and_unavailability() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("web", 4, &strategy, &json!({})),
        )
        .await
        .expect("create");
    sim.rolled_out("web", 4).await;
    sim.set_image("web", "example/app:2").await;
    let mut peak = 0;
    let mut least_ready = usize::MAX;
    sim.until("every pod runs the new image", async || {
        let pods = sim.pods().await;
        peak = peak.max(pods.len());
        least_ready = least_ready.min(pods.iter().filter(|p| ready(p)).count());
        let done = pods.len() == 4 && pods.iter().all(|p| image(p) == "example/app:2" && ready(p));
        done.then_some(())
    })
    .await;
    assert!(
        peak <= 5,
        "maxSurge 1 over 4 replicas: at most 5 pods, saw {peak}"
    );
    assert!(
        least_ready >= 4,
        "maxUnavailable 0: never fewer than 4 ready, saw {least_ready}"
    );
    sim.rolled_out("web", 4).await;
    sim.server.finish().await;
}

#[tokio::test]
async fn recreate_never_runs_old_and_new_together() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("db", 2, &json!({"type": "Recreate"}), &json!({})),
        )
        .await
        .expect("create");
    sim.rolled_out("db", 2).await;
    sim.set_image("db", "example/app:2").await;
    let mut mixed = false;
    sim.until("the new version runs", async || {
        let pods = sim.pods().await;
        let images: std::collections::BTreeSet<String> = pods.iter().map(image).collect();
        mixed |= images.len() > 1;
        (pods.len() == 2
            && images.len() == 1
            && images.contains("example/app:2")
            && pods.iter().all(ready))
        .then_some(())
    })
    .await;
    assert!(!mixed, "old and new pods never coexist under Recreate");
    sim.server.finish().await;
}

#[tokio::test]
async fn a_never_ready_rollout_exceeds_its_progress_deadline() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    let annotations = json!({"local-cluster.gitsync.dev/never-ready": "true"});
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("stuck", 2, &json!({}), &annotations),
        )
        .await
        .expect("create");
    let reason = sim
        .until("Progressing=False", async || {
            let d = sim.deployments().get("stuck").await.ok()?;
            let conditions = d.status?.conditions?;
            let p = conditions
                .iter()
                .find(|c| c.type_.as_deref() == Some("Progressing"))?;
            (p.status.as_deref() == Some("False")).then(|| p.reason.clone().unwrap_or_default())
        })
        .await;
    assert_eq!(reason, "ProgressDeadlineExceeded");
    let d = sim.deployments().get("stuck").await.expect("get");
    assert_eq!(d.status.and_then(|s| s.available_replicas).unwrap_or(0), 0);
    sim.server.finish().await;
}

#[tokio::test]
async fn a_crash_looping_pod_restarts_and_is_never_ready() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    let annotations = json!({"local-cluster.gitsync.dev/crash-loop": "true"});
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("crash", 1, &json!({}), &annotations),
        )
        .await
        .expect("create");
    let restarts = sim
        .until("restarts pile up", async || {
            let pods = sim.pods().await;
            let status = pods.first()?.status.clone()?;
            let c = status.container_statuses?.first()?.clone();
            (c.restart_count >= 3 && !c.ready).then_some(c.restart_count)
        })
        .await;
    assert!(restarts >= 3);
    assert!(sim.pods().await.iter().all(|p| !ready(p)));
    sim.server.finish().await;
}

/// The Deployment's condition of this type: (status, reason, message).
fn condition(d: &Deployment, kind: &str) -> Option<(String, String, String)> {
    let c = d
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_.as_deref() == Some(kind))?
        .clone();
    Some((
        c.status.unwrap_or_default(),
        c.reason.unwrap_or_default(),
        c.message.unwrap_or_default(),
    ))
}

/// When the pod last turned Ready, in simulated milliseconds (its `Ready` condition's
/// `lastTransitionTime`, to the second).
fn ready_since_ms(pod: &Pod) -> u64 {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| u64::try_from(t.0.as_second()).unwrap_or(0) * 1000)
        .expect("a Ready condition with its transition time")
}

#[tokio::test]
async fn min_ready_seconds_delays_availability() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    let local = sim.server.local().expect("emulator");
    let mut web = deployment("web", 2, &json!({}), &json!({}));
    web.spec.min_ready_seconds = Some(30);
    sim.deployments()
        .create(&PostParams::default(), &web)
        .await
        .expect("create");
    let ready = sim
        .until("both pods are ready", async || {
            let d = sim.deployments().get("web").await.ok()?;
            (d.status.as_ref()?.ready_replicas == Some(2)).then_some(d)
        })
        .await;
    let status = ready.status.clone().expect("status");
    assert_eq!(
        status.available_replicas.unwrap_or(0),
        0,
        "ready is not yet available"
    );
    assert_eq!(status.unavailable_replicas, Some(2));
    let (available, reason, _) = condition(&ready, "Available").expect("Available");
    assert_eq!(
        (available.as_str(), reason.as_str()),
        ("False", "MinimumReplicasUnavailable")
    );
    let ready_at = sim
        .pods()
        .await
        .iter()
        .map(ready_since_ms)
        .max()
        .unwrap_or(0);
    let available_at = sim
        .until("both pods are available", async || {
            let d = sim.deployments().get("web").await.ok()?;
            let now = local.now_ms();
            (d.status?.available_replicas == Some(2)).then_some(now)
        })
        .await;
    // Ready within the second of `ready_at`; available once ready for 30 s.
    assert!(
        available_at >= ready_at + 30_000,
        "available {} ms after ready, before minReadySeconds",
        available_at.saturating_sub(ready_at)
    );
    assert!(
        available_at <= ready_at + 40_000,
        "available only {} ms after ready",
        available_at.saturating_sub(ready_at)
    );
    let done = sim.deployments().get("web").await.expect("get");
    let (available, reason, _) = condition(&done, "Available").expect("Available");
    assert_eq!(
        (available.as_str(), reason.as_str()),
        ("True", "MinimumReplicasAvailable")
    );
    sim.server.finish().await;
}

#[tokio::test]
async fn a_finished_rollout_reports_what_the_deployment_controller_reports() {
    let Some(sim) = Sim::start().await else {
        return;
    };
    sim.deployments()
        .create(
            &PostParams::default(),
            &deployment("web", 3, &json!({}), &json!({})),
        )
        .await
        .expect("create");
    sim.rolled_out("web", 3).await;
    sim.set_image("web", "example/app:2").await;
    let mut progressing = None;
    sim.until("the new ReplicaSet has every pod available", async || {
        let d = sim.deployments().get("web").await.ok()?;
        let (_, reason, message) = condition(&d, "Progressing")?;
        if reason == "ReplicaSetUpdated" {
            progressing = Some(message);
        }
        (reason == "NewReplicaSetAvailable" && d.status?.observed_generation == Some(2))
            .then_some(())
    })
    .await;
    let sets: Api<ReplicaSet> = Api::namespaced(sim.server.client.clone(), &sim.server.ns);
    let sets = sets.list(&ListParams::default()).await.expect("rs").items;
    let revision = |rs: &ReplicaSet| {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("deployment.kubernetes.io/revision"))
            .cloned()
    };
    let new_set = sets
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("2"))
        .expect("the new ReplicaSet");
    let new_name = new_set.metadata.name.clone().expect("name");
    assert_eq!(
        progressing,
        Some(format!("ReplicaSet \"{new_name}\" is progressing.")),
        "while rolling"
    );
    let old_set = sets
        .iter()
        .find(|rs| revision(rs).as_deref() == Some("1"))
        .expect("the old ReplicaSet is kept for rollbacks");
    assert_eq!(old_set.spec.replicas, Some(0));

    let done = sim.deployments().get("web").await.expect("get");
    let status = done.status.clone().expect("status");
    assert_eq!(done.metadata.generation, Some(2));
    assert_eq!(status.observed_generation, Some(2));
    assert_eq!(status.replicas, Some(3));
    assert_eq!(status.updated_replicas, Some(3));
    assert_eq!(status.ready_replicas, Some(3));
    assert_eq!(status.available_replicas, Some(3));
    assert_eq!(status.unavailable_replicas, None, "zero is left out");
    assert_eq!(
        condition(&done, "Available"),
        Some((
            "True".to_owned(),
            "MinimumReplicasAvailable".to_owned(),
            "Deployment has minimum availability.".to_owned()
        ))
    );
    assert_eq!(
        condition(&done, "Progressing"),
        Some((
            "True".to_owned(),
            "NewReplicaSetAvailable".to_owned(),
            format!("ReplicaSet \"{new_name}\" has successfully progressed.")
        ))
    );
    let pods = sim.pods().await;
    assert_eq!(pods.len(), 3);
    assert!(pods.iter().all(|p| image(p) == "example/app:2" && ready(p)));
    sim.server.finish().await;
}
