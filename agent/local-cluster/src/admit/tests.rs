use super::*;
use crate::kinds::by_plural;

#[test]
fn names_follow_dns_rules() {
    assert!(is_subdomain("a.b-c"));
    assert!(!is_subdomain("A"));
    assert!(!is_subdomain("-a"));
    assert!(!is_label("a.b"));
    let svc = by_plural("", "v1", "services").expect("svc");
    let bad = json!({"metadata": {"name": "a.b"}});
    assert!(validate(svc, &bad, None).is_err());
}

#[test]
fn label_values_follow_is_valid_label_value() {
    assert!(is_label_value("") && is_label_value("a.b_c-1"));
    assert!(!is_label_value("-a") && !is_label_value(&"a".repeat(64)));
}

#[test]
fn deployment_selector_is_immutable_and_must_match() {
    let deploy = by_plural("apps", "v1", "deployments").expect("deploy");
    let d = |sel: &str, lbl: &str| {
        json!({"metadata": {"name": "d"}, "spec": {
        "selector": {"matchLabels": {"app": sel}},
        "template": {"metadata": {"labels": {"app": lbl}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    };
    assert!(validate(deploy, &d("a", "a"), None).is_ok());
    assert!(validate(deploy, &d("a", "b"), None).is_err());
    let err = validate(deploy, &d("b", "b"), Some(&d("a", "a"))).expect_err("immutable");
    assert!(
        err.iter()
            .any(|(f, m)| f == "spec.selector" && m.contains("immutable"))
    );
}

fn defaulted(plural: &str, group: &str, mut object: Value) -> Value {
    let res = by_plural(group, "v1", plural).expect("served");
    apply_defaults(res, &mut object, || "10.96.0.1".into());
    object
}

fn pod_spec() -> Value {
    json!({"containers": [{"name": "c", "image": "web:1", "ports": [{"containerPort": 80}]}]})
}

/// The pod-spec defaults every pod template gets.
fn assert_pod_defaults(pod: &Value, restart: &str) {
    assert_eq!(pod["restartPolicy"], restart);
    assert_eq!(pod["terminationGracePeriodSeconds"], 30);
    assert_eq!(pod["dnsPolicy"], "ClusterFirst");
    assert_eq!(pod["schedulerName"], "default-scheduler");
    assert_eq!(pod["securityContext"], json!({}));
    let c = &pod["containers"][0];
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    assert_eq!(c["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(c["terminationMessagePolicy"], "File");
    assert_eq!(c["ports"][0]["protocol"], "TCP");
}

#[test]
fn deployment_service_and_claim_defaults() {
    let d = defaulted(
        "deployments",
        "apps",
        json!({"spec": {"template": {"spec": pod_spec()}}}),
    );
    assert_eq!(d["spec"]["replicas"], 1);
    assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
    assert_eq!(
        d["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_pod_defaults(&d["spec"]["template"]["spec"], "Always");
    let latest = defaulted(
        "pods",
        "",
        json!({"spec": {"containers": [{"name": "c", "image": "registry:5000/web"}]}}),
    );
    assert_eq!(latest["spec"]["containers"][0]["imagePullPolicy"], "Always");

    let s = defaulted("services", "", json!({"spec": {"ports": [{"port": 80}]}}));
    assert_eq!(s["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(s["spec"]["clusterIPs"], json!(["10.96.0.1"]));
    assert_eq!(s["spec"]["type"], "ClusterIP");
    assert_eq!(s["spec"]["sessionAffinity"], "None");
    assert_eq!(
        s["spec"]["ports"][0],
        json!({"port": 80, "protocol": "TCP", "targetPort": 80})
    );

    let pvc = defaulted(
        "persistentvolumeclaims",
        "",
        json!({"spec": {"accessModes": ["ReadWriteOnce"]}}),
    );
    assert_eq!(pvc["spec"]["volumeMode"], "Filesystem");
}

#[test]
fn job_and_cron_job_defaults() {
    let mut template = json!({"metadata": {"labels": {"app": "once"}}, "spec": pod_spec()});
    template["spec"]["restartPolicy"] = json!("Never");
    let job = defaulted(
        "jobs",
        "batch",
        json!({"metadata": {"name": "once"}, "spec": {"template": template}}),
    );
    let spec = &job["spec"];
    assert_eq!(spec["backoffLimit"], 6);
    assert_eq!(spec["completions"], 1);
    assert_eq!(spec["parallelism"], 1);
    assert_eq!(spec["completionMode"], "NonIndexed");
    assert_eq!(spec["suspend"], false);
    assert_eq!(spec["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        job["metadata"]["labels"],
        json!({"app": "once"}),
        "labels from the template"
    );
    assert_pod_defaults(&spec["template"]["spec"], "Never");

    let parallel = defaulted(
        "jobs",
        "batch",
        json!({"spec": {"parallelism": 3, "backoffLimitPerIndex": 1, "podFailurePolicy": {"rules": []}}}),
    );
    assert!(
        parallel["spec"].get("completions").is_none(),
        "no completions for a work queue"
    );
    assert_eq!(parallel["spec"]["backoffLimit"], i32::MAX);
    assert_eq!(parallel["spec"]["podReplacementPolicy"], "Failed");

    let cron = defaulted(
        "cronjobs",
        "batch",
        json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}}),
    );
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow");
    assert_eq!(cron["spec"]["suspend"], false);
    assert_eq!(cron["spec"]["successfulJobsHistoryLimit"], 3);
    assert_eq!(cron["spec"]["failedJobsHistoryLimit"], 1);
    assert_pod_defaults(
        &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "Always",
    );
}

#[test]
fn a_job_without_a_restart_policy_is_refused() {
    let jobs = by_plural("batch", "v1", "jobs").expect("jobs");
    let job = defaulted(
        "jobs",
        "batch",
        json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": pod_spec()}}}),
    );
    let causes = validate(jobs, &job, None).expect_err("Always is refused");
    assert_eq!(
        causes,
        [(
            "spec.template.spec.restartPolicy".to_owned(),
            "Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".to_owned()
        )]
    );
    let cron_jobs = by_plural("batch", "v1", "cronjobs").expect("cronjobs");
    let cron = defaulted(
        "cronjobs",
        "batch",
        json!({"metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": pod_spec()}}}}}),
    );
    let causes = validate(cron_jobs, &cron, None).expect_err("Always is refused");
    assert_eq!(
        causes[0].0,
        "spec.jobTemplate.spec.template.spec.restartPolicy"
    );
}

#[test]
fn a_created_job_selects_its_pods_by_uid() {
    let mut job = json!({"metadata": {"name": "once"}, "spec": {"template": {"metadata": {"labels": {"app": "once"}}}}});
    job_selector(&mut job, "u-1");
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"],
        json!({"app": "once", "batch.kubernetes.io/controller-uid": "u-1", "controller-uid": "u-1",
            "batch.kubernetes.io/job-name": "once", "job-name": "once"})
    );
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    let mut manual =
        json!({"metadata": {"name": "m"}, "spec": {"manualSelector": true, "template": {}}});
    job_selector(&mut manual, "u-2");
    assert!(manual["spec"].get("selector").is_none());
}

#[test]
fn stateful_set_and_daemon_set_defaults() {
    let sts = defaulted(
        "statefulsets",
        "apps",
        json!({"spec": {"template": {"spec": pod_spec()},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}}),
    );
    let spec = &sts["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(spec["podManagementPolicy"], "OrderedReady");
    assert_eq!(spec["revisionHistoryLimit"], 10);
    assert_eq!(
        spec["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        spec["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(
        spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_pod_defaults(&spec["template"]["spec"], "Always");
    let on_delete = defaulted(
        "statefulsets",
        "apps",
        json!({"spec": {"updateStrategy": {"type": "OnDelete"}}}),
    );
    assert_eq!(
        on_delete["spec"]["updateStrategy"],
        json!({"type": "OnDelete"})
    );

    let ds = defaulted(
        "daemonsets",
        "apps",
        json!({"spec": {"template": {"spec": pod_spec()}}}),
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_pod_defaults(&ds["spec"]["template"]["spec"], "Always");
}

#[test]
fn an_update_without_the_cluster_ip_keeps_it() {
    let svc = by_plural("", "v1", "services").expect("svc");
    let old = json!({"spec": {"clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"]}});
    let mut new = json!({"spec": {"ports": [{"port": 80}]}});
    keep_allocated(svc, &old, &mut new);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.7");
    assert_eq!(new["spec"]["clusterIPs"], json!(["10.96.0.7"]));
    let mut other = json!({"spec": {"clusterIP": "10.96.0.8"}});
    keep_allocated(svc, &old, &mut other);
    assert_eq!(
        other["spec"]["clusterIP"], "10.96.0.8",
        "a change is left for validation"
    );
}
