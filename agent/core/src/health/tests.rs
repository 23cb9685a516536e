use super::*;
use serde_json::json;

fn progressing(reason: &str) -> Health {
    Health {
        status: Status::Progressing,
        reason: reason.to_owned(),
    }
}

fn degraded(reason: &str) -> Health {
    Health {
        status: Status::Degraded,
        reason: reason.to_owned(),
    }
}

fn missing(reason: &str) -> Health {
    Health {
        status: Status::Missing,
        reason: reason.to_owned(),
    }
}

fn of(live: &Value) -> Health {
    assess(Some(live))
}

/// A live object as the API server returns it: metadata filled in, `spec` and `status`
/// as given (omitted when null).
fn live(api_version: &str, kind: &str, generation: i64, spec: Value, status: Value) -> Value {
    let mut o = json!({
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": "web", "namespace": "demo", "uid": "5f0c7c6e-8d0e-4b7a-9c1e-2f1d3c4b5a69",
            "resourceVersion": "4711", "generation": generation,
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"app.kubernetes.io/managed-by": "gitsync", "gitsync.dev/app": "demo"}
        }
    });
    if !spec.is_null() {
        o["spec"] = spec;
    }
    if !status.is_null() {
        o["status"] = status;
    }
    o
}

fn cond(kind: &str, status: &str, reason: &str, message: &str) -> Value {
    json!({"type": kind, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": "2025-01-01T00:00:00Z"})
}

// ---- the types and worst() ----

#[test]
fn no_live_object_is_missing() {
    assert_eq!(assess(None), missing("object does not exist"));
    assert!(!assess(None).is_healthy());
}

#[test]
fn severity_order_is_healthy_progressing_missing_degraded() {
    let mut all = [
        Status::Degraded,
        Status::Healthy,
        Status::Missing,
        Status::Progressing,
    ];
    all.sort();
    assert_eq!(
        all,
        [
            Status::Healthy,
            Status::Progressing,
            Status::Missing,
            Status::Degraded
        ]
    );
}

#[test]
fn serializes_variant_names_and_skips_an_empty_reason() {
    assert_eq!(
        serde_json::to_value(Health::healthy()).expect("json"),
        json!({"status": "Healthy"})
    );
    assert_eq!(
        serde_json::to_value(progressing("rollout paused")).expect("json"),
        json!({"status": "Progressing", "reason": "rollout paused"})
    );
    assert_eq!(Status::Missing.to_string(), "Missing");
}

#[test]
fn healthy_has_no_reason() {
    assert!(Health::healthy().is_healthy());
    assert!(Health::healthy().reason.is_empty());
    assert!(!progressing("x").is_healthy());
}

#[test]
fn worst_of_nothing_is_healthy() {
    assert_eq!(worst([]), Health::healthy());
    assert_eq!(
        worst(&[Health::healthy(), Health::healthy()]),
        Health::healthy()
    );
}

#[test]
fn worst_follows_severity_and_keeps_only_the_worst_reasons() {
    let p1 = progressing("1 of 3 new replicas updated");
    let p2 = progressing("waiting for a load-balancer address");
    let m = missing("object does not exist");
    let d1 = degraded("container web: CrashLoopBackOff");
    let d2 = degraded("job failed: BackoffLimitExceeded");

    assert_eq!(
        worst(&[Health::healthy(), p1.clone(), p2.clone()]),
        progressing("1 of 3 new replicas updated; waiting for a load-balancer address")
    );
    assert_eq!(worst(&[p1.clone(), m.clone(), p2.clone()]), m);
    assert_eq!(
        worst(&[d1.clone(), m.clone(), p1.clone(), d2.clone()]),
        degraded("container web: CrashLoopBackOff; job failed: BackoffLimitExceeded")
    );
    // The order of the items does not change the status.
    assert_eq!(worst(&[m.clone(), d1.clone()]).status, Status::Degraded);
    assert_eq!(worst(&[d1.clone(), m.clone()]).status, Status::Degraded);
}

#[test]
fn worst_lists_a_repeated_reason_once() {
    let m = missing("object does not exist");
    assert_eq!(worst(&[m.clone(), m.clone(), m.clone()]), m);
}

// ---- deletion ----

#[test]
fn an_object_being_deleted_names_its_finalizers() {
    let mut cm = live("v1", "ConfigMap", 1, Value::Null, Value::Null);
    cm["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:05:00Z");
    cm["metadata"]["deletionGracePeriodSeconds"] = json!(0);
    assert_eq!(of(&cm), progressing("being deleted"));

    cm["metadata"]["finalizers"] = json!(["example.com/cleanup", "kubernetes.io/pvc-protection"]);
    assert_eq!(
        of(&cm),
        progressing(
            "being deleted (finalizers: example.com/cleanup, kubernetes.io/pvc-protection)"
        )
    );
}

#[test]
fn deletion_wins_over_a_healthy_status() {
    let mut pvc = claim_in_phase("Bound");
    pvc["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:05:00Z");
    pvc["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
    assert_eq!(
        of(&pvc),
        progressing("being deleted (finalizers: kubernetes.io/pvc-protection)")
    );
}

// ---- Deployment ----

fn deployment(generation: i64, spec: Value, status: Value) -> Value {
    let mut spec_full = json!({
        "selector": {"matchLabels": {"app": "web"}},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
        "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    });
    if let (Some(full), Some(extra)) = (spec_full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    live("apps/v1", "Deployment", generation, spec_full, status)
}

fn rolled_out_status(generation: i64, replicas: i64) -> Value {
    json!({
        "observedGeneration": generation,
        "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas,
        "availableReplicas": replicas,
        "conditions": [
            cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
            cond("Progressing", "True", "NewReplicaSetAvailable", "ReplicaSet \"web-7d4b9c\" has successfully progressed.")
        ]
    })
}

#[test]
fn deployment_rolled_out_is_healthy() {
    let d = deployment(3, json!({"replicas": 3}), rolled_out_status(3, 3));
    assert_eq!(of(&d), Health::healthy());
}

#[test]
fn deployment_replicas_default_to_one() {
    let d = deployment(1, json!({}), rolled_out_status(1, 1));
    assert_eq!(of(&d), Health::healthy());
    let d = deployment(1, json!({}), json!({"observedGeneration": 1}));
    assert_eq!(of(&d), progressing("0 of 1 new replicas updated"));
}

#[test]
fn deployment_scaled_to_zero_is_healthy_with_counts_omitted() {
    // The API server omits zero counts from the status.
    let d = deployment(2, json!({"replicas": 0}), json!({"observedGeneration": 2}));
    assert_eq!(of(&d), Health::healthy());
}

#[test]
fn deployment_spec_not_yet_observed() {
    let d = deployment(4, json!({"replicas": 3}), rolled_out_status(3, 3));
    assert_eq!(
        of(&d),
        progressing("waiting for the rollout to be observed (generation 4, observed 3)")
    );
    let fresh = deployment(1, json!({"replicas": 3}), Value::Null);
    assert_eq!(
        of(&fresh),
        progressing("waiting for the rollout to be observed (generation 1, observed 0)")
    );
}

#[test]
fn deployment_past_its_progress_deadline_is_degraded() {
    let d = deployment(
        2,
        json!({"replicas": 3}),
        json!({
            "observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
            "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1,
            "conditions": [
                cond("Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."),
                cond("Progressing", "False", "ProgressDeadlineExceeded",
                    "ReplicaSet \"web-5f6d8\" has timed out progressing.")
            ]
        }),
    );
    assert_eq!(
        of(&d),
        degraded(
            "rollout exceeded its progress deadline: ReplicaSet \"web-5f6d8\" has timed out progressing."
        )
    );
}

#[test]
fn deployment_waits_for_new_replicas() {
    let d = deployment(
        2,
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "replicas": 4, "updatedReplicas": 1,
            "readyReplicas": 3, "availableReplicas": 3, "unavailableReplicas": 1,
            "conditions": [cond("Progressing", "True", "ReplicaSetUpdated", "ReplicaSet \"web-5f6d8\" is progressing.")]}),
    );
    assert_eq!(of(&d), progressing("1 of 3 new replicas updated"));
}

#[test]
fn deployment_waits_for_old_replicas_to_terminate() {
    let status = |replicas: i64| {
        json!({"observedGeneration": 2, "replicas": replicas, "updatedReplicas": 3,
            "readyReplicas": 3, "availableReplicas": 3})
    };
    let d = deployment(2, json!({"replicas": 3}), status(4));
    assert_eq!(of(&d), progressing("1 old replica pending termination"));
    let d = deployment(2, json!({"replicas": 3}), status(5));
    assert_eq!(of(&d), progressing("2 old replicas pending termination"));
}

#[test]
fn deployment_waits_for_updated_replicas_to_be_available() {
    let d = deployment(
        2,
        json!({"replicas": 3}),
        json!({"observedGeneration": 2, "replicas": 3, "updatedReplicas": 3,
            "readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1}),
    );
    assert_eq!(of(&d), progressing("2 of 3 updated replicas available"));
}

#[test]
fn deployment_paused_is_progressing() {
    let d = deployment(
        3,
        json!({"replicas": 3, "paused": true}),
        json!({"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1,
            "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [cond("Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")]}),
    );
    assert_eq!(of(&d), progressing("rollout paused"));
}

#[test]
fn a_custom_kind_named_deployment_is_not_an_apps_deployment() {
    let d = live(
        "example.com/v1",
        "Deployment",
        5,
        json!({"replicas": 3}),
        json!({}),
    );
    assert_eq!(of(&d), Health::healthy());
}

// ---- StatefulSet ----

fn stateful_set(spec: Value, status: Value) -> Value {
    let mut full = json!({
        "replicas": 3, "serviceName": "web", "podManagementPolicy": "OrderedReady",
        "selector": {"matchLabels": {"app": "web"}},
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
        "template": {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    live("apps/v1", "StatefulSet", 2, full, status)
}

fn sts_status(ready: i64, updated: i64, current: &str, update: &str) -> Value {
    json!({
        "observedGeneration": 2, "replicas": 3, "readyReplicas": ready,
        "currentReplicas": 3 - updated, "updatedReplicas": updated, "availableReplicas": ready,
        "currentRevision": current, "updateRevision": update, "collisionCount": 0
    })
}

#[test]
fn stateful_set_rolled_out_is_healthy() {
    let s = stateful_set(json!({}), sts_status(3, 3, "web-6b9f", "web-6b9f"));
    assert_eq!(of(&s), Health::healthy());
}

#[test]
fn stateful_set_spec_not_yet_observed() {
    let mut status = sts_status(3, 3, "web-6b9f", "web-6b9f");
    status["observedGeneration"] = json!(1);
    let s = stateful_set(json!({}), status);
    assert_eq!(
        of(&s),
        progressing("waiting for the rollout to be observed (generation 2, observed 1)")
    );
}

#[test]
fn stateful_set_waits_for_ready_pods() {
    let s = stateful_set(json!({}), sts_status(1, 3, "web-6b9f", "web-6b9f"));
    assert_eq!(of(&s), progressing("1 of 3 pods ready"));
}

#[test]
fn stateful_set_waits_for_pods_above_the_partition() {
    let spec =
        json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 1}}});
    let s = stateful_set(spec.clone(), sts_status(3, 1, "web-6b9f", "web-8c1a"));
    assert_eq!(of(&s), progressing("1 of 2 pods updated"));
    // Partitioned rollout done: the pods below the partition stay at the old revision.
    let s = stateful_set(spec, sts_status(3, 2, "web-6b9f", "web-8c1a"));
    assert_eq!(of(&s), Health::healthy());
}

#[test]
fn stateful_set_waits_for_the_update_revision() {
    let s = stateful_set(json!({}), sts_status(3, 3, "web-6b9f", "web-8c1a"));
    assert_eq!(
        of(&s),
        progressing("waiting for the update to revision web-8c1a to finish")
    );
}

#[test]
fn stateful_set_on_delete_only_waits_for_ready_pods() {
    let spec = json!({"updateStrategy": {"type": "OnDelete"}});
    let s = stateful_set(spec.clone(), sts_status(3, 0, "web-6b9f", "web-8c1a"));
    assert_eq!(of(&s), Health::healthy());
    let s = stateful_set(spec, sts_status(2, 0, "web-6b9f", "web-8c1a"));
    assert_eq!(of(&s), progressing("2 of 3 pods ready"));
}

// ---- DaemonSet ----

fn daemon_set(strategy: &str, status: Value) -> Value {
    live(
        "apps/v1",
        "DaemonSet",
        4,
        json!({
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": strategy},
            "template": {"metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "agent", "image": "agent:2"}]}}
        }),
        status,
    )
}

fn ds_status(observed: i64, updated: i64, available: i64) -> Value {
    json!({
        "observedGeneration": observed, "currentNumberScheduled": 3, "desiredNumberScheduled": 3,
        "numberMisscheduled": 0, "numberReady": available, "numberAvailable": available,
        "updatedNumberScheduled": updated
    })
}

#[test]
fn daemon_set_rolled_out_is_healthy() {
    assert_eq!(
        of(&daemon_set("RollingUpdate", ds_status(4, 3, 3))),
        Health::healthy()
    );
}

#[test]
fn daemon_set_spec_not_yet_observed() {
    assert_eq!(
        of(&daemon_set("RollingUpdate", ds_status(3, 3, 3))),
        progressing("waiting for the rollout to be observed (generation 4, observed 3)")
    );
}

#[test]
fn daemon_set_waits_for_updated_then_available_pods() {
    assert_eq!(
        of(&daemon_set("RollingUpdate", ds_status(4, 1, 3))),
        progressing("1 of 3 pods updated")
    );
    assert_eq!(
        of(&daemon_set("RollingUpdate", ds_status(4, 3, 2))),
        progressing("2 of 3 pods available")
    );
}

#[test]
fn daemon_set_on_delete_does_not_wait_for_the_update() {
    assert_eq!(
        of(&daemon_set("OnDelete", ds_status(4, 0, 3))),
        Health::healthy()
    );
    assert_eq!(
        of(&daemon_set("OnDelete", ds_status(4, 0, 1))),
        progressing("1 of 3 pods available")
    );
}

#[test]
fn daemon_set_on_no_nodes_is_healthy() {
    let ds = daemon_set(
        "RollingUpdate",
        json!({"observedGeneration": 4, "currentNumberScheduled": 0,
            "desiredNumberScheduled": 0, "numberMisscheduled": 0, "numberReady": 0}),
    );
    assert_eq!(of(&ds), Health::healthy());
}

// ---- ReplicaSet ----

fn replica_set(status: Value) -> Value {
    live(
        "apps/v1",
        "ReplicaSet",
        1,
        json!({"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]}}}),
        status,
    )
}

#[test]
fn replica_set_health() {
    let ok = json!({"observedGeneration": 1, "replicas": 2, "fullyLabeledReplicas": 2,
        "readyReplicas": 2, "availableReplicas": 2});
    assert_eq!(of(&replica_set(ok)), Health::healthy());

    let unobserved = json!({"replicas": 0});
    assert_eq!(
        of(&replica_set(unobserved)),
        progressing("waiting for the rollout to be observed (generation 1, observed 0)")
    );

    let starting = json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 1,
        "availableReplicas": 1});
    assert_eq!(
        of(&replica_set(starting)),
        progressing("1 of 2 replicas available")
    );

    let forbidden = json!({"observedGeneration": 1, "replicas": 0, "conditions": [cond(
        "ReplicaFailure", "True", "FailedCreate",
        "pods \"web-5f6d8-x2k4q\" is forbidden: exceeded quota: compute")]});
    assert_eq!(
        of(&replica_set(forbidden)),
        degraded(
            "cannot create pods: FailedCreate: pods \"web-5f6d8-x2k4q\" is forbidden: exceeded quota: compute"
        )
    );
}

// ---- Job and CronJob ----

fn job(spec: Value, status: Value) -> Value {
    let mut full = json!({
        "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
        "template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "migrate", "image": "migrate:1"}]}}
    });
    if let (Some(full), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        full.extend(extra.clone());
    }
    live("batch/v1", "Job", 1, full, status)
}

#[test]
fn job_complete_is_healthy() {
    let j = job(
        json!({"completions": 1}),
        json!({"startTime": "2025-01-01T00:00:00Z", "completionTime": "2025-01-01T00:00:09Z",
        "succeeded": 1, "ready": 0, "terminating": 0,
        "conditions": [
            cond("SuccessCriteriaMet", "True", "CompletionsReached", "Reached expected number of succeeded pods"),
            cond("Complete", "True", "CompletionsReached", "Reached expected number of succeeded pods")
        ]}),
    );
    assert_eq!(of(&j), Health::healthy());
}

#[test]
fn job_failed_is_degraded_with_its_reason() {
    let j = job(
        json!({"completions": 1}),
        json!({"startTime": "2025-01-01T00:00:00Z", "failed": 7, "ready": 0,
        "conditions": [
            cond("FailureTarget", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit"),
            cond("Failed", "True", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
        ]}),
    );
    assert_eq!(
        of(&j),
        degraded("job failed: BackoffLimitExceeded: Job has reached the specified backoff limit")
    );
}

#[test]
fn job_suspended_is_progressing() {
    let j = job(
        json!({"suspend": true}),
        json!({"conditions": [cond("Suspended", "True", "JobSuspended", "Job suspended")]}),
    );
    assert_eq!(of(&j), progressing("suspended"));
}

#[test]
fn job_running_counts_completions() {
    let j = job(
        json!({"completions": 5, "parallelism": 2}),
        json!({"startTime": "2025-01-01T00:00:00Z", "active": 2, "succeeded": 2, "ready": 2}),
    );
    assert_eq!(of(&j), progressing("2 of 5 completions succeeded"));
    let j = job(json!({}), json!({"active": 1, "ready": 0}));
    assert_eq!(of(&j), progressing("0 of 1 completions succeeded"));
}

#[test]
fn cron_job_is_healthy() {
    let c = live(
        "batch/v1",
        "CronJob",
        1,
        json!({"schedule": "*/5 * * * *", "suspend": false, "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "tick", "image": "busybox:1.36"}]}}}}}),
        json!({"lastScheduleTime": "2025-01-01T00:05:00Z",
            "lastSuccessfulTime": "2025-01-01T00:05:07Z"}),
    );
    assert_eq!(of(&c), Health::healthy());
}

// ---- Pod ----

fn pod(restart_policy: &str, status: Value) -> Value {
    let mut p = live(
        "v1",
        "Pod",
        1,
        json!({"restartPolicy": restart_policy, "nodeName": "node-1",
            "containers": [{"name": "web", "image": "nginx:1.27"}]}),
        status,
    );
    // Pods carry no metadata.generation in most clusters.
    if let Some(meta) = p["metadata"].as_object_mut() {
        meta.remove("generation");
    }
    p
}

fn running(ready: &str, reason: &str, container_state: Value) -> Value {
    let mut ready_cond = json!({"type": "Ready", "status": ready,
        "lastTransitionTime": "2025-01-01T00:00:00Z"});
    if !reason.is_empty() {
        ready_cond["reason"] = json!(reason);
        ready_cond["message"] = json!("containers with unready status: [web]");
    }
    json!({
        "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.0.7", "qosClass": "BestEffort",
        "startTime": "2025-01-01T00:00:00Z",
        "conditions": [
            {"type": "PodReadyToStartContainers", "status": "True"},
            {"type": "Initialized", "status": "True"},
            ready_cond,
            {"type": "ContainersReady", "status": ready},
            {"type": "PodScheduled", "status": "True"}
        ],
        "containerStatuses": [{
            "name": "web", "image": "nginx:1.27", "imageID": "", "containerID": "containerd://abc",
            "ready": ready == "True", "restartCount": 0, "started": ready == "True",
            "state": container_state
        }]
    })
}

#[test]
fn pod_running_and_ready_is_healthy() {
    let p = pod(
        "Always",
        running(
            "True",
            "",
            json!({"running": {"startedAt": "2025-01-01T00:00:01Z"}}),
        ),
    );
    assert_eq!(of(&p), Health::healthy());
}

#[test]
fn pod_succeeded_is_healthy() {
    let p = pod(
        "Never",
        json!({"phase": "Succeeded", "containerStatuses": [{"name": "web", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}),
    );
    assert_eq!(of(&p), Health::healthy());
}

#[test]
fn pod_failed_is_degraded_with_its_reason() {
    let evicted = pod(
        "Always",
        json!({"phase": "Failed", "reason": "Evicted",
            "message": "The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi."}),
    );
    assert_eq!(
        of(&evicted),
        degraded(
            "Evicted: The node was low on resource: memory. Threshold quantity: 100Mi, available: 80Mi."
        )
    );

    let exited = pod(
        "Never",
        json!({"phase": "Failed", "containerStatuses": [{"name": "web", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 3, "reason": "Error"}}}]}),
    );
    assert_eq!(of(&exited), degraded("container web exited with code 3"));

    let bare = pod("Never", json!({"phase": "Failed"}));
    assert_eq!(of(&bare), degraded("pod failed"));
}

#[test]
fn pod_with_a_stuck_container_is_degraded() {
    for (reason, message, expected) in [
        (
            "CrashLoopBackOff",
            "back-off 5m0s restarting failed container=web pod=web_demo",
            "container web: CrashLoopBackOff: back-off 5m0s restarting failed container=web pod=web_demo",
        ),
        (
            "ImagePullBackOff",
            "Back-off pulling image \"nginx:nope\"",
            "container web: ImagePullBackOff: Back-off pulling image \"nginx:nope\"",
        ),
        ("ErrImagePull", "", "container web: ErrImagePull"),
        (
            "CreateContainerConfigError",
            "secret \"db\" not found",
            "container web: CreateContainerConfigError: secret \"db\" not found",
        ),
        (
            "InvalidImageName",
            "Failed to apply default image tag \"NGINX\"",
            "container web: InvalidImageName: Failed to apply default image tag \"NGINX\"",
        ),
    ] {
        let mut waiting = json!({"reason": reason});
        if !message.is_empty() {
            waiting["message"] = json!(message);
        }
        let p = pod(
            "Always",
            running("False", "ContainersNotReady", json!({"waiting": waiting})),
        );
        assert_eq!(of(&p), degraded(expected), "{reason}");
    }
}

#[test]
fn pod_with_a_stuck_init_container_is_degraded() {
    let p = pod(
        "Always",
        json!({
            "phase": "Pending",
            "conditions": [{"type": "Initialized", "status": "False", "reason": "ContainersNotInitialized"},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "PodScheduled", "status": "True"}],
            "initContainerStatuses": [{"name": "wait-db", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull", "message": "pull access denied"}}}],
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "PodInitializing"}}}]
        }),
    );
    assert_eq!(
        of(&p),
        degraded("init container wait-db: ErrImagePull: pull access denied")
    );
}

#[test]
fn pod_starting_is_progressing_not_degraded() {
    let p = pod(
        "Always",
        json!({
            "phase": "Pending",
            "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady",
                "message": "containers with unready status: [web]"},
                {"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "web", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]
        }),
    );
    assert_eq!(of(&p), progressing("pod not ready: ContainersNotReady"));
}

#[test]
fn pod_running_but_not_ready() {
    let p = pod(
        "Always",
        running(
            "False",
            "ContainersNotReady",
            json!({"running": {"startedAt": "2025-01-01T00:00:01Z"}}),
        ),
    );
    assert_eq!(of(&p), progressing("pod not ready: ContainersNotReady"));
    let fresh = pod("Always", json!({"phase": "Pending"}));
    assert_eq!(of(&fresh), progressing("pod not ready"));
}

#[test]
fn pod_unschedulable_is_progressing_with_the_scheduler_message() {
    let p = pod(
        "Always",
        json!({"phase": "Pending", "qosClass": "Burstable", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient cpu."}]}),
    );
    assert_eq!(
        of(&p),
        progressing("pod not scheduled: 0/3 nodes are available: 3 Insufficient cpu.")
    );
}

#[test]
fn pod_that_runs_to_completion_is_progressing_until_it_succeeds() {
    for policy in ["Never", "OnFailure"] {
        let p = pod(
            policy,
            running(
                "True",
                "",
                json!({"running": {"startedAt": "2025-01-01T00:00:01Z"}}),
            ),
        );
        assert_eq!(
            of(&p),
            progressing("pod is running to completion"),
            "{policy}"
        );
    }
}

// ---- PersistentVolumeClaim ----

fn claim_in_phase(phase: &str) -> Value {
    let mut c = live(
        "v1",
        "PersistentVolumeClaim",
        1,
        json!({"accessModes": ["ReadWriteOnce"], "storageClassName": "standard",
            "volumeMode": "Filesystem", "resources": {"requests": {"storage": "1Gi"}}}),
        json!({"phase": phase}),
    );
    if let Some(meta) = c["metadata"].as_object_mut() {
        meta.remove("generation");
    }
    c["metadata"]["finalizers"] = json!(["kubernetes.io/pvc-protection"]);
    if phase == "Bound" {
        c["spec"]["volumeName"] = json!("pvc-5f0c7c6e");
        c["status"]["accessModes"] = json!(["ReadWriteOnce"]);
        c["status"]["capacity"] = json!({"storage": "1Gi"});
    }
    c
}

#[test]
fn claim_bound_is_healthy_and_lost_is_degraded() {
    assert_eq!(of(&claim_in_phase("Bound")), Health::healthy());
    assert_eq!(
        of(&claim_in_phase("Lost")),
        degraded("the claim lost its volume")
    );
}

#[test]
fn claim_pending_waits_for_binding() {
    assert_eq!(
        of(&claim_in_phase("Pending")),
        progressing("waiting for the claim to be bound")
    );
    assert_eq!(
        assess_pvc_with_binding_mode(&claim_in_phase("Pending"), false),
        progressing("waiting for the claim to be bound")
    );
}

#[test]
fn claim_pending_for_its_first_consumer_is_healthy() {
    let pending = claim_in_phase("Pending");
    assert_eq!(
        assess_pvc_with_binding_mode(&pending, true),
        Health::healthy()
    );
    assert_eq!(
        assess_pvc_with_binding_mode(&claim_in_phase("Lost"), true),
        degraded("the claim lost its volume")
    );
    assert_eq!(
        assess_pvc_with_binding_mode(&claim_in_phase("Bound"), true),
        Health::healthy()
    );
}

// ---- Service and Ingress ----

fn service(kind: &str, status: Value) -> Value {
    let mut s = live(
        "v1",
        "Service",
        1,
        json!({"type": kind, "selector": {"app": "web"}, "clusterIP": "10.96.12.34",
            "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]}),
        status,
    );
    if let Some(meta) = s["metadata"].as_object_mut() {
        meta.remove("generation");
    }
    s
}

#[test]
fn service_health() {
    assert_eq!(
        of(&service("ClusterIP", json!({"loadBalancer": {}}))),
        Health::healthy()
    );
    assert_eq!(
        of(&service("NodePort", json!({"loadBalancer": {}}))),
        Health::healthy()
    );
    assert_eq!(
        of(&service("LoadBalancer", json!({"loadBalancer": {}}))),
        progressing("waiting for a load-balancer address")
    );
    assert_eq!(
        of(&service(
            "LoadBalancer",
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10", "ipMode": "VIP"}]}})
        )),
        Health::healthy()
    );
    assert_eq!(
        of(&service(
            "LoadBalancer",
            json!({"loadBalancer": {"ingress": [{"hostname": "a1b2.elb.amazonaws.com"}]}})
        )),
        Health::healthy()
    );
}

#[test]
fn ingress_health() {
    let ingress = |status: Value| {
        live(
            "networking.k8s.io/v1",
            "Ingress",
            1,
            json!({"ingressClassName": "nginx", "rules": [{"host": "web.example.com",
                "http": {"paths": [{"path": "/", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}),
            status,
        )
    };
    assert_eq!(
        of(&ingress(
            json!({"loadBalancer": {"ingress": [{"ip": "203.0.113.10"}]}})
        )),
        Health::healthy()
    );
    assert_eq!(
        of(&ingress(json!({"loadBalancer": {}}))),
        progressing("waiting for an address from the ingress controller")
    );
    assert_eq!(
        of(&ingress(Value::Null)),
        progressing("waiting for an address from the ingress controller")
    );
}

// ---- HorizontalPodAutoscaler ----

fn hpa(conditions: Value) -> Value {
    let mut status = json!({"currentReplicas": 2, "desiredReplicas": 2,
        "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu",
            "current": {"averageUtilization": 12, "averageValue": "6m"}}}]});
    if !conditions.is_null() {
        status["conditions"] = conditions;
    }
    live(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        1,
        json!({"minReplicas": 2, "maxReplicas": 10,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}}]}),
        status,
    )
}

#[test]
fn autoscaler_reporting_is_healthy() {
    let h = hpa(json!([
        cond(
            "AbleToScale",
            "True",
            "ReadyForNewScale",
            "recommended size matches current size"
        ),
        cond(
            "ScalingActive",
            "True",
            "ValidMetricFound",
            "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)"
        ),
        cond(
            "ScalingLimited",
            "True",
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count"
        )
    ]));
    assert_eq!(of(&h), Health::healthy());
}

#[test]
fn autoscaler_without_conditions_is_progressing() {
    assert_eq!(
        of(&hpa(Value::Null)),
        progressing("waiting for the autoscaler to report")
    );
    assert_eq!(
        of(&hpa(json!([]))),
        progressing("waiting for the autoscaler to report")
    );
}

#[test]
fn autoscaler_unable_to_scale_is_degraded() {
    let h = hpa(json!([cond(
        "AbleToScale",
        "False",
        "FailedGetScale",
        "the HPA controller was unable to get the target's current scale: deployments/scale.apps \"web\" not found"
    ),]));
    assert_eq!(
        of(&h),
        degraded(
            "cannot scale: FailedGetScale: the HPA controller was unable to get the target's current scale: deployments/scale.apps \"web\" not found"
        )
    );
}

#[test]
fn autoscaler_failing_to_read_metrics_is_degraded() {
    let h = hpa(json!([
        cond(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale"
        ),
        cond(
            "ScalingActive",
            "False",
            "FailedGetResourceMetric",
            "the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu"
        )
    ]));
    assert_eq!(
        of(&h),
        degraded(
            "cannot compute a replica count: FailedGetResourceMetric: the HPA was unable to compute the replica count: failed to get cpu utilization: missing request for cpu"
        )
    );
}

#[test]
fn autoscaler_with_scaling_disabled_is_healthy() {
    let h = hpa(json!([
        cond(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale"
        ),
        cond(
            "ScalingActive",
            "False",
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero"
        )
    ]));
    assert_eq!(of(&h), Health::healthy());
}

#[test]
fn autoscaler_v1_reads_conditions_from_the_annotation() {
    let conditions = json!([
        cond(
            "AbleToScale",
            "True",
            "SucceededGetScale",
            "the HPA controller was able to get the target's current scale"
        ),
        cond(
            "ScalingActive",
            "False",
            "FailedGetResourceMetric",
            "missing request for cpu"
        )
    ]);
    let mut h = live(
        "autoscaling/v1",
        "HorizontalPodAutoscaler",
        1,
        json!({"minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80,
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}}),
        json!({"currentReplicas": 2, "desiredReplicas": 2}),
    );
    h["metadata"]["annotations"] =
        json!({"autoscaling.alpha.kubernetes.io/conditions": conditions.to_string()});
    assert_eq!(
        of(&h),
        degraded(
            "cannot compute a replica count: FailedGetResourceMetric: missing request for cpu"
        )
    );
}

// ---- CustomResourceDefinition ----

fn crd(conditions: Value) -> Value {
    let mut c = live(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        1,
        json!({"group": "example.com", "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object"}}}]}),
        json!({"acceptedNames": {"kind": "", "plural": ""}, "storedVersions": ["v1"],
            "conditions": conditions}),
    );
    if let Some(meta) = c["metadata"].as_object_mut() {
        meta.remove("namespace");
    }
    c["metadata"]["name"] = json!("widgets.example.com");
    c
}

#[test]
fn crd_health() {
    let established = crd(json!([
        cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
        cond(
            "Established",
            "True",
            "InitialNamesAccepted",
            "the initial names have been accepted"
        )
    ]));
    assert_eq!(of(&established), Health::healthy());

    let conflict = crd(json!([
        cond(
            "NamesAccepted",
            "False",
            "PluralConflict",
            "\"widgets\" is already in use"
        ),
        cond(
            "Established",
            "False",
            "NotAccepted",
            "not all names are accepted"
        )
    ]));
    assert_eq!(
        of(&conflict),
        degraded("names not accepted: PluralConflict: \"widgets\" is already in use")
    );

    let pending = crd(json!([
        cond("NamesAccepted", "True", "NoConflicts", "no conflicts found"),
        cond(
            "Established",
            "False",
            "Installing",
            "the initial names have been accepted"
        )
    ]));
    assert_eq!(
        of(&pending),
        progressing("waiting for the CRD to be established")
    );
    assert_eq!(
        of(&crd(json!([]))),
        progressing("waiting for the CRD to be established")
    );
}

// ---- Namespace ----

#[test]
fn namespace_health() {
    let ns = |phase: &str| {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "demo", "uid": "1", "resourceVersion": "9",
                "labels": {"kubernetes.io/metadata.name": "demo"}},
            "spec": {"finalizers": ["kubernetes"]},
            "status": {"phase": phase}})
    };
    assert_eq!(of(&ns("Active")), Health::healthy());
    assert_eq!(
        of(&ns("Terminating")),
        progressing("namespace is terminating")
    );
    let mut deleting = ns("Terminating");
    deleting["metadata"]["deletionTimestamp"] = json!("2025-01-01T00:05:00Z");
    assert_eq!(of(&deleting), progressing("being deleted"));
}

// ---- everything else ----

#[test]
fn kinds_without_health_are_healthy() {
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "ServiceAccount"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
        ("policy/v1", "PodDisruptionBudget"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("example.com/v1", "Widget"),
    ] {
        let o = json!({"apiVersion": api_version, "kind": kind,
            "metadata": {"name": "x", "namespace": "demo", "uid": "1", "resourceVersion": "2"}});
        assert_eq!(of(&o), Health::healthy(), "{kind}");
    }
}

#[test]
fn custom_resources_report_their_ready_condition() {
    let certificate = |ready: Value| {
        live(
            "cert-manager.io/v1",
            "Certificate",
            1,
            json!({"secretName": "web-tls", "dnsNames": ["web.example.com"],
                "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}),
            json!({"conditions": [ready]}),
        )
    };
    assert_eq!(
        of(&certificate(cond(
            "Ready",
            "True",
            "Ready",
            "Certificate is up to date and has not expired"
        ))),
        Health::healthy()
    );
    assert_eq!(
        of(&certificate(cond(
            "Ready",
            "False",
            "DoesNotExist",
            "Issuing certificate as Secret does not exist"
        ))),
        progressing("not ready: Issuing certificate as Secret does not exist")
    );
    assert_eq!(
        of(&certificate(
            json!({"type": "Ready", "status": "Unknown", "reason": "Pending"})
        )),
        progressing("not ready: Pending")
    );
    assert_eq!(
        of(&certificate(json!({"type": "Ready", "status": "False"}))),
        progressing("not ready")
    );
    assert_eq!(
        of(&certificate(cond(
            "Issuing",
            "True",
            "DoesNotExist",
            "Issuing"
        ))),
        Health::healthy()
    );
}
