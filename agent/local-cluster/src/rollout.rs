//! What the controllers and the kubelet would do, simulated on a clock tests can
//! advance ([`crate::clock::SimClock`]).
//!
//! - **Deployments** get one ReplicaSet per pod-template hash (`<name>-<hash>`, owned
//!   by the Deployment) and are rolled as the deployment controller does: `Recreate`
//!   scales the old ReplicaSets to zero and waits for their pods to go before scaling
//!   up the new one; `RollingUpdate` keeps at most `replicas + maxSurge` pods and at
//!   least `replicas - maxUnavailable` available (defaults 25% / 25%). Status moves
//!   as a real one: observedGeneration, replicas, updatedReplicas, readyReplicas,
//!   availableReplicas, `Available` and `Progressing` conditions; no progress for
//!   `progressDeadlineSeconds` turns `Progressing=False, ProgressDeadlineExceeded`.
//! - **ReplicaSets** create and delete Pods (owned by the ReplicaSet) to match.
//! - **Pods** start Pending, become Running and Ready after a simulated start
//!   ([`START_MS`]); available once Ready for the Deployment's `minReadySeconds`.
//! - **PersistentVolumeClaims** are bound as the PersistentVolume controller binds them
//!   (see [`crate::storage`]).
//! - **Services** get Endpoints listing their ready pods; `LoadBalancer` Services and
//!   Ingresses get a load-balancer address; **HPAs** report their conditions.
//!
//! Failure injection, through pod-template annotations:
//!
//! | annotation | effect |
//! |---|---|
//! | `local-cluster.gitsync.dev/never-ready: "true"` | containers run but never pass readiness |
//! | `local-cluster.gitsync.dev/crash-loop: "true"` | containers restart every start period, never ready (`CrashLoopBackOff`) |
//! | `local-cluster.gitsync.dev/start-seconds: "N"` | pods take N simulated seconds to become ready |

use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use crate::clock;
use crate::store::{Key, Store};

/// Simulated time from a pod's creation to Ready.
pub const START_MS: u64 = 1_000;

const ANNOTATION_PREFIX: &str = "local-cluster.gitsync.dev/";
/// Where a pod records when it started (simulated milliseconds since the epoch).
const STARTED_MS: &str = "local-cluster.gitsync.dev/started-ms";
/// When a pod became Ready (simulated milliseconds).
const READY_MS: &str = "local-cluster.gitsync.dev/ready-ms";
const MANAGER: &str = "kube-controller-manager";

/// Runs every controller once at simulated time `now_ms`.
pub fn reconcile(store: &mut Store, now_ms: u64) -> std::io::Result<()> {
    pods(store, now_ms)?;
    for deployment in snapshot(store, "apps", "deployments") {
        deploy(store, &deployment, now_ms)?;
    }
    for rs in snapshot(store, "apps", "replicasets") {
        replica_set(store, &rs, now_ms)?;
    }
    for service in snapshot(store, "", "services") {
        endpoints(store, &service, now_ms)?;
        load_balancer(store, "", "services", &service, now_ms)?;
    }
    for ingress in snapshot(store, "networking.k8s.io", "ingresses") {
        load_balancer(store, "networking.k8s.io", "ingresses", &ingress, now_ms)?;
    }
    for hpa in snapshot(store, "autoscaling", "horizontalpodautoscalers") {
        autoscaler(store, &hpa, now_ms)?;
    }
    for crd in snapshot(store, "apiextensions.k8s.io", "customresourcedefinitions") {
        establish(store, &crd, now_ms)?;
    }
    // After the ReplicaSets, so a claim waiting for its first consumer binds in the
    // pass that created the Pod.
    crate::storage::reconcile(store, now_ms)
}

fn snapshot(store: &Store, group: &str, plural: &str) -> Vec<Value> {
    store.list(group, plural, None).collect()
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn int(v: &Value, pointer: &str, default: i64) -> i64 {
    v.pointer(pointer)
        .and_then(Value::as_i64)
        .unwrap_or(default)
}

fn key_of(group: &str, plural: &str, object: &Value) -> Key {
    Key {
        group: group.to_owned(),
        plural: plural.to_owned(),
        namespace: text(object, "/metadata/namespace").to_owned(),
        name: text(object, "/metadata/name").to_owned(),
    }
}

fn terminating(object: &Value) -> bool {
    crate::deletion::is_terminating(object)
}

/// Stores `object` when it differs from what is stored, at a new resourceVersion.
fn save(store: &mut Store, key: Key, object: Value) -> std::io::Result<()> {
    if store.get(&key).as_ref() != Some(&object) {
        store.put_versioned(key, object)?;
    }
    Ok(())
}

/// Writes `status` onto `object` when it changed.
fn save_status(store: &mut Store, key: Key, object: &Value, status: Value) -> std::io::Result<()> {
    if object.get("status") == Some(&status) {
        return Ok(());
    }
    let mut next = object.clone();
    next["status"] = status;
    save(store, key, next)
}

/// A new object as a controller creates it.
fn create(store: &mut Store, key: Key, mut object: Value, now_ms: u64) -> std::io::Result<()> {
    let api_version = object["apiVersion"].clone();
    let meta = &mut object["metadata"];
    meta["uid"] = json!(clock::uid(&format!("{key:?}")));
    meta["creationTimestamp"] = json!(clock::rfc3339(now_ms / 1000));
    meta["managedFields"] = json!([{"manager": MANAGER, "operation": "Update",
        "apiVersion": api_version, "time": clock::rfc3339(now_ms / 1000),
        "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {}}}]);
    save(store, key, object)
}

fn owner_ref(owner: &Value, api_version: &str, kind: &str) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true})
}

fn owned_by<'a>(
    store: &'a Store,
    group: &'a str,
    plural: &'a str,
    owner: &'a Value,
) -> impl Iterator<Item = Value> + 'a {
    let uid = text(owner, "/metadata/uid");
    let ns = text(owner, "/metadata/namespace");
    store.list(group, plural, Some(ns)).filter(move |o| {
        o.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .is_some_and(|refs| {
                refs.iter()
                    .any(|r| r["uid"] == uid && r["controller"] == true)
            })
    })
}

/// `"25%"` or `3` of `total`, rounded up or down.
fn scaled(value: Option<&Value>, total: i64, default_percent: i64, round_up: bool) -> i64 {
    let percent = |p: i64| {
        let n = total * p;
        if round_up { (n + 99) / 100 } else { n / 100 }
    };
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s
            .trim_end_matches('%')
            .parse()
            .map_or(percent(default_percent), percent),
        _ => percent(default_percent),
    }
}

fn template_hash(template: &Value) -> String {
    let canonical = serde_json::to_vec(template).unwrap_or_default();
    let digest = hex::encode(Sha256::digest(&canonical));
    // Pod-template hashes are short, DNS-safe strings.
    digest[..10].to_owned()
}

fn annotation<'a>(template: &'a Value, name: &str) -> Option<&'a str> {
    template
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(format!("{ANNOTATION_PREFIX}{name}")))
        .and_then(Value::as_str)
}

/// The deployment controller.
fn deploy(store: &mut Store, deployment: &Value, now_ms: u64) -> std::io::Result<()> {
    if terminating(deployment) {
        return Ok(());
    }
    let desired = int(deployment, "/spec/replicas", 1);
    let template = deployment
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(json!({}));
    let hash = template_hash(&template);
    let name = text(deployment, "/metadata/name").to_owned();
    let ns = text(deployment, "/metadata/namespace").to_owned();
    let new_name = format!("{name}-{hash}");
    let owned: Vec<Value> = owned_by(store, "apps", "replicasets", deployment).collect();
    let (new_rs, old): (Vec<Value>, Vec<Value>) = owned
        .into_iter()
        .partition(|rs| text(rs, "/metadata/name") == new_name);
    let min_ready_ms =
        u64::try_from(int(deployment, "/spec/minReadySeconds", 0)).unwrap_or(0) * 1000;
    let pods_of =
        |store: &Store, rs: &Value| -> Vec<Value> { owned_by(store, "", "pods", rs).collect() };
    let count = |pods: &[Value], f: fn(&Value, u64, u64) -> bool| -> i64 {
        i64::try_from(pods.iter().filter(|p| f(p, now_ms, min_ready_ms)).count()).unwrap_or(0)
    };
    let old_pods: Vec<Value> = old.iter().flat_map(|rs| pods_of(store, rs)).collect();
    let new_pods: Vec<Value> = new_rs
        .first()
        .map(|rs| pods_of(store, rs))
        .unwrap_or_default();
    let spec_of = |rs: &Value| int(rs, "/spec/replicas", 0);
    let old_total: i64 = old.iter().map(spec_of).sum();
    let new_current = new_rs.first().map_or(0, spec_of);
    let recreate = text(deployment, "/spec/strategy/type") == "Recreate";

    // How many the new ReplicaSet should have, and what the old ones keep.
    let mut old_targets: Vec<(Value, i64)> =
        old.iter().map(|rs| (rs.clone(), spec_of(rs))).collect();
    let new_target = if recreate {
        for (_, target) in &mut old_targets {
            *target = 0;
        }
        if old_pods.is_empty() {
            desired
        } else {
            new_current
        }
    } else if old_total == 0 {
        desired
    } else {
        let rolling = deployment.pointer("/spec/strategy/rollingUpdate");
        let surge = scaled(rolling.and_then(|r| r.get("maxSurge")), desired, 25, true);
        let mut unavailable = scaled(
            rolling.and_then(|r| r.get("maxUnavailable")),
            desired,
            25,
            false,
        );
        if surge == 0 && unavailable == 0 {
            unavailable = 1;
        }
        let new_target = new_current
            .max(desired + surge - old_total)
            .clamp(0, desired);
        // Scale old ones down while enough stay available.
        let available = count(&old_pods, is_available) + count(&new_pods, is_available);
        let mut removable = (available - (desired - unavailable)).max(0);
        for (rs, target) in &mut old_targets {
            let pods = pods_of(store, rs);
            // Unavailable old pods can go at once.
            let unhealthy = i64::try_from(pods.len()).unwrap_or(0) - count(&pods, is_available);
            let cut = unhealthy.min(*target).max(0);
            *target -= cut;
            let more = removable.min(*target);
            *target -= more;
            removable -= more;
        }
        new_target
    };
    let new_rs_key = Key {
        group: "apps".into(),
        plural: "replicasets".into(),
        namespace: ns.clone(),
        name: new_name.clone(),
    };
    match new_rs.first() {
        None => {
            let mut rs_template = template.clone();
            rs_template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
            let mut selector = deployment
                .pointer("/spec/selector")
                .cloned()
                .unwrap_or(json!({}));
            selector["matchLabels"]["pod-template-hash"] = json!(hash);
            let mut labels = template
                .pointer("/metadata/labels")
                .cloned()
                .unwrap_or(json!({}));
            labels["pod-template-hash"] = json!(hash);
            let rs = json!({
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": new_name, "namespace": ns, "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": (old.len() + 1).to_string(),
                        "deployment.kubernetes.io/desired-replicas": desired.to_string()},
                    "ownerReferences": [owner_ref(deployment, "apps/v1", "Deployment")], "generation": 1},
                "spec": {"replicas": new_target, "minReadySeconds": int(deployment, "/spec/minReadySeconds", 0),
                    "selector": selector, "template": rs_template},
            });
            create(store, new_rs_key, rs, now_ms)?;
        }
        Some(rs) if spec_of(rs) != new_target => {
            let mut rs = rs.clone();
            rs["spec"]["replicas"] = json!(new_target);
            save(store, new_rs_key, rs)?;
        }
        Some(_) => {}
    }
    for (rs, target) in old_targets {
        if spec_of(&rs) != target {
            let key = key_of("apps", "replicasets", &rs);
            let mut rs = rs;
            rs["spec"]["replicas"] = json!(target);
            save(store, key, rs)?;
        }
    }
    deployment_status(
        store,
        deployment,
        &new_name,
        &new_pods,
        &old_pods,
        desired,
        now_ms,
        min_ready_ms,
    )
}

#[allow(clippy::too_many_arguments)]
fn deployment_status(
    store: &mut Store,
    deployment: &Value,
    rs_name: &str,
    new_pods: &[Value],
    old_pods: &[Value],
    desired: i64,
    now_ms: u64,
    min_ready_ms: u64,
) -> std::io::Result<()> {
    let n = |pods: &[Value], f: fn(&Value, u64, u64) -> bool| {
        i64::try_from(pods.iter().filter(|p| f(p, now_ms, min_ready_ms)).count()).unwrap_or(0)
    };
    let all: Vec<Value> = new_pods.iter().chain(old_pods).cloned().collect();
    let total = i64::try_from(all.len()).unwrap_or(0);
    let updated = i64::try_from(new_pods.len()).unwrap_or(0);
    let ready = n(&all, is_ready);
    let available = n(&all, is_available);
    let rolling = deployment.pointer("/spec/strategy/rollingUpdate");
    let max_unavailable = if text(deployment, "/spec/strategy/type") == "Recreate" {
        0
    } else {
        scaled(
            rolling.and_then(|r| r.get("maxUnavailable")),
            desired,
            25,
            false,
        )
    };
    let old_status = deployment.get("status").cloned().unwrap_or(json!({}));
    let now = clock::rfc3339(now_ms / 1000);
    let complete = updated == desired && total == desired && n(new_pods, is_available) == desired;
    let counts = |s: &Value| {
        [
            "replicas",
            "updatedReplicas",
            "readyReplicas",
            "availableReplicas",
        ]
        .map(|f| s.get(f).and_then(Value::as_i64).unwrap_or(0))
    };
    let new_counts = [total, updated, ready, available];
    let generation = deployment
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let moved = counts(&old_status) != new_counts
        || old_status.get("observedGeneration") != Some(&generation);
    let previous = condition(&old_status, "Progressing");
    let deadline_ms =
        u64::try_from(int(deployment, "/spec/progressDeadlineSeconds", 600)).unwrap_or(600) * 1000;
    let last_progress_ms = previous
        .and_then(|c| c.get("lastUpdateTime"))
        .and_then(Value::as_str)
        .and_then(clock::parse_rfc3339)
        .map_or(now_ms, |s| s * 1000);
    let progressing = if complete {
        keep_time(
            previous,
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
            "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed."), "lastUpdateTime": now, "lastTransitionTime": now}),
        )
    } else if moved || previous.is_none() {
        keep_time(
            previous,
            json!({"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
            "message": format!("ReplicaSet \"{rs_name}\" is progressing."), "lastUpdateTime": now, "lastTransitionTime": now}),
        )
    } else if now_ms.saturating_sub(last_progress_ms) > deadline_ms {
        keep_time(
            previous,
            json!({"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": format!("ReplicaSet \"{rs_name}\" has timed out progressing."), "lastUpdateTime": now, "lastTransitionTime": now}),
        )
    } else {
        previous.cloned().unwrap_or(Value::Null)
    };
    let is_available_now = available >= desired - max_unavailable;
    let available_condition = keep_time(
        condition(&old_status, "Available"),
        if is_available_now {
            json!({"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
        } else {
            json!({"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                "message": "Deployment does not have minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now})
        },
    );
    let mut status = json!({
        "observedGeneration": generation,
        "conditions": [available_condition, progressing],
    });
    // Counts of zero are left out, as the API's `omitempty` leaves them.
    for (field, n) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", total - available),
    ] {
        if n > 0 {
            status[field] = json!(n);
        }
    }
    save_status(
        store,
        key_of("apps", "deployments", deployment),
        deployment,
        status,
    )
}

fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// A condition keeps its transition time while its status stays, and its update time
/// while nothing about it changes (so re-running a controller writes nothing).
fn keep_time(previous: Option<&Value>, mut next: Value) -> Value {
    if let Some(previous) = previous
        && previous["status"] == next["status"]
    {
        next["lastTransitionTime"] = previous["lastTransitionTime"].clone();
        if previous["reason"] == next["reason"]
            && next["reason"] != "ReplicaSetUpdated"
            && next.get("lastUpdateTime").is_some()
        {
            next["lastUpdateTime"] = previous["lastUpdateTime"].clone();
        }
    }
    next
}

fn is_ready(pod: &Value, _now: u64, _min_ready: u64) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn is_available(pod: &Value, now_ms: u64, min_ready_ms: u64) -> bool {
    if !is_ready(pod, now_ms, min_ready_ms) {
        return false;
    }
    let ready_at = pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(READY_MS))
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or(0);
    now_ms >= ready_at + min_ready_ms
}

/// The ReplicaSet controller.
fn replica_set(store: &mut Store, rs: &Value, now_ms: u64) -> std::io::Result<()> {
    let wanted = if terminating(rs) {
        0
    } else {
        int(rs, "/spec/replicas", 1)
    };
    let mut pods: Vec<Value> = owned_by(store, "", "pods", rs).collect();
    let have = i64::try_from(pods.len()).unwrap_or(0);
    let ns = text(rs, "/metadata/namespace").to_owned();
    let rs_name = text(rs, "/metadata/name").to_owned();
    if have < wanted {
        for i in 0..(wanted - have) {
            let suffix = &clock::uid(&format!("{rs_name}/{i}/{now_ms}"))[..5];
            let name = format!("{rs_name}-{suffix}");
            let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
            let mut meta = template.get("metadata").cloned().unwrap_or(json!({}));
            meta["name"] = json!(name);
            meta["namespace"] = json!(ns);
            meta["ownerReferences"] = json!([owner_ref(rs, "apps/v1", "ReplicaSet")]);
            meta["annotations"][STARTED_MS] = json!(now_ms.to_string());
            let mut spec = template.get("spec").cloned().unwrap_or(json!({}));
            spec["nodeName"] = json!("local-node");
            let ip_n = store.next_cluster_ip();
            let pod_ip = ip_n.replacen("10.96.", "10.244.", 1);
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
                "status": {"phase": "Pending", "podIP": pod_ip, "startTime": clock::rfc3339(now_ms / 1000),
                    "conditions": [{"type": "PodScheduled", "status": "True"}]}});
            let key = Key {
                group: String::new(),
                plural: "pods".into(),
                namespace: ns.clone(),
                name,
            };
            create(store, key, pod, now_ms)?;
        }
    } else if have > wanted {
        // Not-ready pods go first, then the newest.
        pods.sort_by_key(|p| (is_ready(p, now_ms, 0), std::cmp::Reverse(started_ms(p))));
        for pod in pods
            .iter()
            .take(usize::try_from(have - wanted).unwrap_or(0))
        {
            store.remove(&key_of("", "pods", pod))?;
        }
    }
    let pods: Vec<Value> = owned_by(store, "", "pods", rs).collect();
    let min_ready_ms = u64::try_from(int(rs, "/spec/minReadySeconds", 0)).unwrap_or(0) * 1000;
    let n = |f: fn(&Value, u64, u64) -> bool| {
        pods.iter().filter(|p| f(p, now_ms, min_ready_ms)).count()
    };
    let mut status = json!({"replicas": pods.len(),
        "observedGeneration": rs.pointer("/metadata/generation").cloned().unwrap_or(json!(1))});
    // `replicas` is always there; the other counts only when not zero (`omitempty`).
    for (field, count) in [
        ("fullyLabeledReplicas", pods.len()),
        ("readyReplicas", n(is_ready)),
        ("availableReplicas", n(is_available)),
    ] {
        if count > 0 {
            status[field] = json!(count);
        }
    }
    let key = key_of("apps", "replicasets", rs);
    if store.contains(&key) {
        save_status(store, key, rs, status)?;
    }
    Ok(())
}

fn started_ms(pod: &Value) -> u64 {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(STARTED_MS))
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The kubelet: pods start, become ready, or fail as their annotations ask.
fn pods(store: &mut Store, now_ms: u64) -> std::io::Result<()> {
    for pod in snapshot(store, "", "pods") {
        let started = started_ms(&pod);
        let start_ms = annotation(&pod, "start-seconds")
            .and_then(|s| s.parse::<u64>().ok())
            .map_or(START_MS, |s| s * 1000);
        let never_ready = annotation(&pod, "never-ready") == Some("true");
        let crash_loop = annotation(&pod, "crash-loop") == Some("true");
        let up = now_ms >= started + start_ms;
        let ready = up && !never_ready && !crash_loop;
        let restarts = if crash_loop && up {
            (now_ms - started) / start_ms.max(1)
        } else {
            0
        };
        let containers: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|c| {
                let state = if crash_loop && up {
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting failed container (local-cluster.gitsync.dev/crash-loop)"}})
                } else if up {
                    json!({"running": {"startedAt": clock::rfc3339((started + start_ms) / 1000)}})
                } else {
                    json!({"waiting": {"reason": "ContainerCreating"}})
                };
                json!({"name": c["name"], "image": c["image"], "ready": ready, "started": up && !crash_loop,
                    "restartCount": restarts, "state": state})
            })
            .collect();
        let flag = |b: bool| if b { "True" } else { "False" };
        let at = |ms: u64| clock::rfc3339(ms / 1000);
        // Readiness last changed when the pod came up (or, not ready, when it started).
        let ready_changed = at(if ready { started + start_ms } else { started });
        let mut next = pod.clone();
        next["status"]["phase"] = json!(if up { "Running" } else { "Pending" });
        next["status"]["containerStatuses"] = json!(containers);
        next["status"]["conditions"] = json!([
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": at(started)},
            {"type": "Initialized", "status": "True", "lastTransitionTime": at(started)},
            {"type": "ContainersReady", "status": flag(ready), "lastTransitionTime": ready_changed},
            {"type": "Ready", "status": flag(ready), "lastTransitionTime": ready_changed},
        ]);
        let annotations = next["metadata"]["annotations"].as_object_mut();
        if let Some(a) = annotations {
            if ready && !a.contains_key(READY_MS) {
                a.insert(READY_MS.into(), json!((started + start_ms).to_string()));
            } else if !ready {
                a.remove(READY_MS);
            }
        }
        save(store, key_of("", "pods", &pod), next)?;
    }
    Ok(())
}

fn selects(selector: &Map<String, Value>, pod: &Value) -> bool {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    !selector.is_empty()
        && selector
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// Endpoints of a Service: its ready pods.
fn endpoints(store: &mut Store, service: &Value, now_ms: u64) -> std::io::Result<()> {
    let Some(selector) = service.pointer("/spec/selector").and_then(Value::as_object) else {
        return Ok(());
    };
    let ns = text(service, "/metadata/namespace");
    let name = text(service, "/metadata/name");
    let addresses: Vec<Value> = store
        .list("", "pods", Some(ns))
        .filter(|p| selects(selector, p) && is_ready(p, 0, 0) && !terminating(p))
        .map(|p| json!({"ip": p["status"]["podIP"], "nodeName": "local-node",
            "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"], "uid": p["metadata"]["uid"]}}))
        .collect();
    let ports: Vec<Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let port = p.get("targetPort").filter(|t| t.is_number()).or_else(|| p.get("port")).cloned();
            let mut out = json!({"port": port, "protocol": p.get("protocol").cloned().unwrap_or(json!("TCP"))});
            if let Some(n) = p.get("name") {
                out["name"] = n.clone();
            }
            out
        })
        .collect();
    let subsets = if addresses.is_empty() {
        json!([])
    } else {
        json!([{"addresses": addresses, "ports": ports}])
    };
    let key = Key {
        group: String::new(),
        plural: "endpoints".into(),
        namespace: ns.to_owned(),
        name: name.to_owned(),
    };
    if let Some(mut existing) = store.get(&key) {
        if existing.get("subsets").unwrap_or(&json!([])) != &subsets {
            existing["subsets"] = subsets;
            save(store, key, existing)?;
        }
        return Ok(());
    }
    let labels = service["metadata"]
        .get("labels")
        .cloned()
        .unwrap_or(json!({}));
    let object = json!({"apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "subsets": subsets});
    create(store, key, object, now_ms)
}

/// A load-balancer address for `LoadBalancer` Services and Ingresses.
fn load_balancer(
    store: &mut Store,
    group: &str,
    plural: &str,
    object: &Value,
    _now_ms: u64,
) -> std::io::Result<()> {
    if plural == "services" && text(object, "/spec/type") != "LoadBalancer" {
        return Ok(());
    }
    if object.pointer("/status/loadBalancer/ingress").is_some() || terminating(object) {
        return Ok(());
    }
    let mut next = object.clone();
    next["status"]["loadBalancer"] = json!({"ingress": [{"ip": "127.0.0.1"}]});
    save(store, key_of(group, plural, object), next)
}

/// Whether the establishing controller has marked a CRD Established: its kind is
/// served from then on (see `kinds::Catalog`).
pub(crate) fn established(crd: &Value) -> bool {
    condition(&crd["status"], "Established").is_some_and(|c| c["status"] == "True")
}

/// The establishing controller: a CRD whose names were accepted becomes Established.
fn establish(store: &mut Store, crd: &Value, now_ms: u64) -> std::io::Result<()> {
    let Some(established) = condition(&crd["status"], "Established") else {
        return Ok(());
    };
    if established["status"] == "True" || terminating(crd) {
        return Ok(());
    }
    let mut next = crd.clone();
    if let Some(c) = next
        .pointer_mut("/status/conditions")
        .and_then(Value::as_array_mut)
        .and_then(|conditions| conditions.iter_mut().find(|c| c["type"] == "Established"))
    {
        *c = json!({"type": "Established", "status": "True",
            "reason": "InitialNamesAccepted", "message": "the initial names have been accepted",
            "lastTransitionTime": clock::rfc3339(now_ms / 1000)});
    }
    save(
        store,
        key_of("apiextensions.k8s.io", "customresourcedefinitions", crd),
        next,
    )
}

/// The HPA controller's conditions (no metrics: it keeps the current size within bounds).
fn autoscaler(store: &mut Store, hpa: &Value, now_ms: u64) -> std::io::Result<()> {
    let ns = text(hpa, "/metadata/namespace");
    let target_kind = text(hpa, "/spec/scaleTargetRef/kind");
    let target_name = text(hpa, "/spec/scaleTargetRef/name");
    let plural = match target_kind {
        "Deployment" => "deployments",
        "StatefulSet" => "statefulsets",
        "ReplicaSet" => "replicasets",
        _ => "",
    };
    let target = store.get(&Key {
        group: "apps".into(),
        plural: plural.into(),
        namespace: ns.into(),
        name: target_name.into(),
    });
    let now = clock::rfc3339(now_ms / 1000);
    let old = hpa.get("status").cloned().unwrap_or(json!({}));
    let cond = |kind: &str, ok: bool, reason: &str, message: &str| {
        keep_time(
            condition(&old, kind),
            json!({"type": kind, "status": if ok {"True"} else {"False"},
            "reason": reason, "message": message, "lastTransitionTime": now}),
        )
    };
    let status = match target {
        Some(t) => {
            let current = int(&t, "/status/replicas", int(&t, "/spec/replicas", 1));
            let min = int(hpa, "/spec/minReplicas", 1);
            let max = int(hpa, "/spec/maxReplicas", 1);
            let desired = current.clamp(min, max);
            json!({"currentReplicas": current, "desiredReplicas": desired, "conditions": [
                cond("AbleToScale", true, "ReadyForNewScale", "recommended size matches current size"),
                cond("ScalingActive", true, "ValidMetricFound", "the HPA was able to successfully calculate a replica count"),
                cond("ScalingLimited", desired != current, if desired == current {"DesiredWithinRange"} else {"TooFewReplicas"},
                    "the desired count is within the acceptable range"),
            ]})
        }
        None => json!({"currentReplicas": 0, "desiredReplicas": 0, "conditions": [
            cond("AbleToScale", false, "FailedGetScale",
                &format!("the HPA controller was unable to get the target's current scale: {plural} \"{target_name}\" not found")),
        ]}),
    };
    save_status(
        store,
        key_of("autoscaling", "horizontalpodautoscalers", hpa),
        hpa,
        status,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_the_controller_does() {
        assert_eq!(scaled(None, 4, 25, true), 1);
        assert_eq!(scaled(None, 3, 25, true), 1);
        assert_eq!(scaled(None, 3, 25, false), 0);
        assert_eq!(scaled(Some(&json!("50%")), 5, 25, true), 3);
        assert_eq!(scaled(Some(&json!(2)), 5, 25, true), 2);
    }

    #[test]
    fn the_template_hash_follows_the_template() {
        let a = template_hash(&json!({"spec": {"containers": [{"image": "a:1"}]}}));
        let b = template_hash(&json!({"spec": {"containers": [{"image": "a:2"}]}}));
        assert_ne!(a, b);
        assert_eq!(a.len(), 10);
    }
}
