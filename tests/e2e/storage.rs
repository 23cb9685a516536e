//! Storage on the local cluster: a claim of a `WaitForFirstConsumer` class stays
//! `Pending` until a Pod mounts it, and a sync does not wait on it for the wave that
//! creates the Pod.

use std::time::{Duration, Instant};

use crate::support::{Cluster, app_dir, eventually};

const NAMESPACE: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: store\n";

const CLASS: &str = "apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: wffc
provisioner: example.com/disk
volumeBindingMode: WaitForFirstConsumer
";

const CLAIM: &str = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: store
spec:
  storageClassName: wffc
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
";

/// In wave 1, after the claim's wave: the claim's first consumer.
const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: db
  namespace: store
  annotations: {gitsync.dev/wave: \"1\"}
spec:
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: example/db:1
        volumeMounts: [{name: data, mountPath: /data}]
      volumes:
      - name: data
        persistentVolumeClaim: {claimName: data}
";

fn claim_phase(cluster: &Cluster) -> Option<String> {
    let claim = cluster.get("/api/v1/namespaces/store/persistentvolumeclaims/data")?;
    claim["status"]["phase"].as_str().map(str::to_owned)
}

#[test]
fn a_claim_waiting_for_its_first_consumer_does_not_hold_its_wave() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NAMESPACE),
        ("class.yaml", CLASS),
        ("claim.yaml", CLAIM),
        ("deployment.yaml", DEPLOYMENT),
    ]);
    let dir = app.path().to_str().expect("utf-8 path");
    let started = Instant::now();
    let run = cluster.gitsync(&["sync", dir, "--app", "store", "--health-timeout", "20s"]);
    let took = started.elapsed();
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        took < Duration::from_secs(15),
        "the sync took {took:?}: did the Pending claim hold wave 0 until the timeout?\n{run:?}"
    );
    eventually(
        Duration::from_secs(10),
        "the claim binds once the Deployment's pod mounts it",
        || (claim_phase(&cluster).as_deref() == Some("Bound")).then_some(()),
    );
    let claim = cluster
        .get("/api/v1/namespaces/store/persistentvolumeclaims/data")
        .expect("claim");
    assert_eq!(
        claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"], "local-node",
        "bound where its pod runs"
    );
    let pods = cluster.get("/api/v1/namespaces/store/pods").expect("pods");
    assert!(
        pods["items"].as_array().is_some_and(|p| !p.is_empty()),
        "{pods}"
    );
}

#[test]
fn a_claim_alone_waits_for_its_first_consumer() {
    let cluster = Cluster::start();
    let app = app_dir(&[
        ("ns.yaml", NAMESPACE),
        ("class.yaml", CLASS),
        ("claim.yaml", CLAIM),
    ]);
    let dir = app.path().to_str().expect("utf-8 path");
    let run = cluster.gitsync(&["sync", dir, "--app", "store", "--no-wait"]);
    assert_eq!(run.code, 0, "{run:?}");
    let event = eventually(
        Duration::from_secs(10),
        "the controller records why the claim waits",
        || {
            let events = cluster.get("/api/v1/namespaces/store/events")?;
            events["items"]
                .as_array()?
                .iter()
                .find(|e| {
                    e["involvedObject"]["name"] == "data" && e["reason"] == "WaitForFirstConsumer"
                })
                .cloned()
        },
    );
    assert_eq!(
        event["message"],
        "waiting for first consumer to be created before binding"
    );
    assert_eq!(claim_phase(&cluster).as_deref(), Some("Pending"));
}
