//! deploy/ installs what it claims. Both installs (`deploy/`, cluster-wide, and
//! `deploy/namespaced/`, one tenant namespace) are followed from their kustomization.yaml
//! through every `resources` entry (files, and directories with their own kustomization);
//! every document is server-side applied to the local cluster (Namespaces first), must be
//! accepted and read back with what was sent, and the read-back objects must keep the
//! properties a reviewer checks: a non-root, read-only, unprivileged agent with probes and
//! resources; RBAC without wildcards or escalation; a config that parses. With kubectl
//! installed, `kubectl apply -k --dry-run=server` must accept both installs as well.
//!
//! The files are applied as written (kustomize is not run), so each one names its
//! namespace itself; the kubectl check covers what kustomize adds.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{Cluster, http_with, workspace};

/// One document of a manifest file, with where it came from.
struct Doc {
    at: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value["kind"].as_str().unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.value["metadata"]["name"].as_str().unwrap_or_default()
    }

    fn namespace(&self) -> Option<&str> {
        self.value["metadata"]["namespace"].as_str()
    }
}

fn kustomization(dir: &Path) -> Value {
    let path = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut docs = gitsync_core::yaml::parse_documents(&path.display().to_string(), &text)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(docs.len(), 1, "{}: one document", path.display());
    docs.remove(0).value
}

/// The manifest files an install consists of: its kustomization's `resources`, files as
/// they are and directories through their own kustomization.yaml.
fn resource_files(dir: &Path) -> Vec<PathBuf> {
    let kustomization = kustomization(dir);
    assert_eq!(kustomization["kind"], "Kustomization", "{}", dir.display());
    let resources = kustomization["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("{}: no resources", dir.display()));
    let mut files = Vec::new();
    for resource in resources {
        let name = resource.as_str().expect("a resource is a path");
        let path = dir.join(name);
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("{}: resource {name}: {e}", dir.display()));
        if path.is_dir() {
            files.extend(resource_files(&path));
        } else {
            assert!(path.is_file(), "{}: {name} is not a file", dir.display());
            files.push(path);
        }
    }
    files
}

/// The strategic-merge patch files of an install's kustomization (`patches[].path`).
fn patch_files(dir: &Path) -> Vec<PathBuf> {
    kustomization(dir)["patches"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["path"].as_str())
        .map(|name| {
            dir.join(name)
                .canonicalize()
                .unwrap_or_else(|e| panic!("{}: patch {name}: {e}", dir.display()))
        })
        .collect()
}

fn documents(files: &[PathBuf]) -> Vec<Doc> {
    let root = workspace().canonicalize().expect("workspace");
    let mut docs = Vec::new();
    for path in files {
        let shown = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let parsed =
            gitsync_core::yaml::parse_documents(&shown, &text).unwrap_or_else(|e| panic!("{e}"));
        assert!(!parsed.is_empty(), "{shown}: no manifest");
        for doc in parsed {
            let at = format!("{shown}:{}", doc.line);
            assert!(
                gitsync_core::ObjectId::of(&doc.value).is_some(),
                "{at}: apiVersion, kind and metadata.name are required"
            );
            docs.push(Doc {
                at,
                value: doc.value,
            });
        }
    }
    docs
}

/// The REST path of a document's object, from the server's discovery (an apiVersion or
/// kind the server does not serve fails here, naming the file and line).
fn object_path(cluster: &Cluster, doc: &Doc) -> String {
    let api_version = doc.value["apiVersion"].as_str().unwrap_or_default();
    let base = if api_version.contains('/') {
        format!("/apis/{api_version}")
    } else {
        format!("/api/{api_version}")
    };
    let discovery = cluster
        .get(&base)
        .unwrap_or_else(|| panic!("{}: apiVersion {api_version} is not served", doc.at));
    let resource = discovery["resources"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["kind"] == doc.kind() && !r["name"].as_str().unwrap_or("/").contains('/'))
        .unwrap_or_else(|| {
            panic!(
                "{}: kind {} is not served in {api_version}",
                doc.at,
                doc.kind()
            )
        });
    let plural = resource["name"].as_str().expect("name");
    if resource["namespaced"] == true {
        let namespace = doc.namespace().unwrap_or_else(|| {
            panic!(
                "{}: a namespaced {} must name its namespace (the file is applied as written)",
                doc.at,
                doc.kind()
            )
        });
        format!("{base}/namespaces/{namespace}/{plural}/{}", doc.name())
    } else {
        assert!(
            doc.namespace().is_none(),
            "{}: cluster-scoped {} with a namespace",
            doc.at,
            doc.kind()
        );
        format!("{base}/{plural}/{}", doc.name())
    }
}

/// A server-side apply (`PATCH`, `application/apply-patch+yaml`): (status, body).
fn apply(cluster: &Cluster, path: &str, object: &Value) -> (u16, String) {
    let body = object.to_string(); // JSON is YAML
    http_with(
        &cluster.url,
        "PATCH",
        &format!("{path}?fieldManager=gitsync-e2e"),
        &[("Content-Type", "application/apply-patch+yaml")],
        body.as_bytes(),
    )
}

/// Whether everything in `want` is in `got` (objects by key, lists item by item).
fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(got), Value::Object(want)) => want
            .iter()
            .all(|(k, w)| got.get(k).is_some_and(|g| contains(g, w))),
        (Value::Array(got), Value::Array(want)) => {
            got.len() == want.len() && got.iter().zip(want).all(|(g, w)| contains(g, w))
        }
        (Value::Number(g), Value::Number(w)) => g.as_f64() == w.as_f64(),
        _ => got == want,
    }
}

/// Applies an install to a fresh local cluster; returns its documents, each with the
/// object read back.
fn install(dir: &str) -> (Cluster, Vec<(Doc, Value)>) {
    let files = resource_files(&workspace().join(dir));
    let mut docs = documents(&files);
    // Namespaces before what lives in them.
    docs.sort_by_key(|d| d.kind() != "Namespace");
    let cluster = Cluster::start();
    let mut installed = Vec::new();
    for doc in docs {
        let path = object_path(&cluster, &doc);
        let (code, body) = apply(&cluster, &path, &doc.value);
        assert!(
            (200..300).contains(&code),
            "{}: apply of {} {} refused: {code} {body}",
            doc.at,
            doc.kind(),
            doc.name()
        );
        let live = cluster
            .get(&path)
            .unwrap_or_else(|| panic!("{}: {path} not found after apply", doc.at));
        assert!(
            contains(&live, &doc.value),
            "{}: read back differs from what was applied:\n{live:#}",
            doc.at
        );
        installed.push((doc, live));
    }
    (cluster, installed)
}

fn find<'a>(objects: &'a [(Doc, Value)], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|(d, _)| d.kind() == kind && d.name() == name)
        .map(|(_, live)| live)
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// The agent's Deployment as read back: the properties a reviewer checks.
fn check_deployment(objects: &[(Doc, Value)]) {
    let deployment = find(objects, "Deployment", "gitsync-agent").expect("Deployment");
    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_u64() >= Some(2), "HA: two replicas");
    assert_eq!(spec["strategy"]["type"], "RollingUpdate");
    let pod = &spec["template"]["spec"];
    let template_labels = &spec["template"]["metadata"]["labels"];
    for (key, value) in spec["selector"]["matchLabels"]
        .as_object()
        .expect("selector")
    {
        assert_eq!(
            &template_labels[key], value,
            "the selector selects the pods"
        );
    }
    assert_eq!(pod["automountServiceAccountToken"], true);
    let account = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert!(
        find(objects, "ServiceAccount", account).is_some(),
        "ServiceAccount {account} is installed"
    );
    let pod_security = &pod["securityContext"];
    assert_eq!(pod_security["runAsNonRoot"], true, "pod runs as non-root");
    assert!(
        pod_security["runAsUser"]
            .as_u64()
            .is_some_and(|uid| uid != 0),
        "pod runs as a non-zero uid"
    );
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = |name: &str| {
        volumes
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("volume {name}"))
    };
    let containers = pod["containers"].as_array().expect("containers");
    assert!(!containers.is_empty());
    for container in containers {
        let name = container["name"].as_str().unwrap_or("?");
        let security = &container["securityContext"];
        assert_eq!(
            security["allowPrivilegeEscalation"], false,
            "{name}: allowPrivilegeEscalation"
        );
        assert_eq!(
            security["readOnlyRootFilesystem"], true,
            "{name}: readOnlyRootFilesystem"
        );
        assert!(
            strings(&security["capabilities"]["drop"]).contains(&"ALL"),
            "{name}: drops ALL capabilities"
        );
        assert_ne!(security["runAsNonRoot"], false, "{name}: runAsNonRoot");
        assert_ne!(security["privileged"], true, "{name}: privileged");
        let seccomp = security["seccompProfile"]["type"]
            .as_str()
            .or_else(|| pod_security["seccompProfile"]["type"].as_str());
        assert_eq!(seccomp, Some("RuntimeDefault"), "{name}: seccomp");
        let ports: Vec<&str> = container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let get = &container[probe]["httpGet"];
            assert_eq!(get["path"], path, "{name}: {probe}");
            let port = &get["port"];
            assert!(
                port.is_u64() || port.as_str().is_some_and(|p| ports.contains(&p)),
                "{name}: {probe} port {port} is a container port"
            );
        }
        let resources = &container["resources"];
        for field in ["/requests/cpu", "/requests/memory", "/limits/memory"] {
            assert!(
                resources.pointer(field).is_some(),
                "{name}: resources{field} is set"
            );
        }
        // A read-only root filesystem needs writable scratch and cache directories.
        for dir in ["/tmp", "/var/cache/gitsync"] {
            let mount = container["volumeMounts"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| m["mountPath"] == dir)
                .unwrap_or_else(|| panic!("{name}: {dir} is mounted"));
            let source = volume(mount["name"].as_str().expect("volume name"));
            assert!(source.get("emptyDir").is_some(), "{dir} is an emptyDir");
        }
    }
    let agent = &containers[0];
    let env = agent["env"].as_array().expect("env");
    let pod_name = env
        .iter()
        .find(|e| e["name"] == "GITSYNC_POD_NAME")
        .expect("GITSYNC_POD_NAME");
    assert_eq!(
        pod_name["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    // --config names a file in a volume from the installed ConfigMap, and that file is a
    // config with apps.
    let args = strings(&agent["args"]);
    let config_path = args
        .iter()
        .position(|a| *a == "--config")
        .and_then(|i| args.get(i + 1))
        .expect("--config PATH");
    let mount = agent["volumeMounts"]
        .as_array()
        .expect("mounts")
        .iter()
        .find(|m| {
            m["mountPath"]
                .as_str()
                .is_some_and(|dir| config_path.starts_with(&format!("{dir}/")))
        })
        .expect("the config file is in a mounted volume");
    let source = &volume(mount["name"].as_str().expect("name"))["configMap"];
    let config_map = source["name"]
        .as_str()
        .expect("config volume is a ConfigMap");
    let key = config_path.rsplit('/').next().expect("file name");
    let text = find(objects, "ConfigMap", config_map)
        .unwrap_or_else(|| panic!("ConfigMap {config_map} is installed"))["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("ConfigMap {config_map} has {key}"))
        .to_owned();
    let config = gitsync_core::yaml::parse_documents(key, &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.len(), 1, "{key}: one document");
    let apps = config[0].value["apps"].as_array().expect("apps: a list");
    assert!(!apps.is_empty(), "{key}: at least one app");
    for app in apps {
        for field in ["name", "repo", "ref", "path"] {
            assert!(
                app[field].is_string(),
                "{key}: every app has {field}: {app}"
            );
        }
    }
    // The Service reaches the pods on a port they declare.
    let service = find(objects, "Service", "gitsync-agent").expect("Service");
    for (key, value) in service["spec"]["selector"].as_object().expect("selector") {
        assert_eq!(&template_labels[key], value, "the Service selects the pods");
    }
    for port in service["spec"]["ports"].as_array().expect("ports") {
        let target = port["targetPort"].as_str().expect("a named targetPort");
        assert!(
            strings(&Value::Array(
                agent["ports"]
                    .as_array()
                    .expect("ports")
                    .iter()
                    .map(|p| p["name"].clone())
                    .collect()
            ))
            .contains(&target),
            "Service targetPort {target} is a container port"
        );
    }
}

/// RBAC: no wildcards, no way to grant more than it holds, Secrets of its own namespace
/// only by name, and every binding joins an installed role to an installed account.
fn check_rbac(objects: &[(Doc, Value)]) {
    let accounts: BTreeSet<(String, String)> = objects
        .iter()
        .filter(|(d, _)| d.kind() == "ServiceAccount")
        .map(|(d, _)| {
            (
                d.namespace().unwrap_or_default().to_owned(),
                d.name().to_owned(),
            )
        })
        .collect();
    for (doc, live) in objects {
        match doc.kind() {
            "Role" | "ClusterRole" => {
                for rule in live["rules"].as_array().expect("rules") {
                    for field in ["apiGroups", "resources", "verbs"] {
                        assert!(
                            !strings(&rule[field]).contains(&"*"),
                            "{}: wildcard in {field}",
                            doc.at
                        );
                    }
                    for verb in ["escalate", "bind", "impersonate"] {
                        assert!(
                            !strings(&rule["verbs"]).contains(&verb),
                            "{}: {verb} is not granted by default",
                            doc.at
                        );
                    }
                    let own_secrets = doc.kind() == "Role"
                        && doc.namespace() == Some("gitsync-system")
                        && strings(&rule["resources"]).contains(&"secrets");
                    if own_secrets {
                        assert!(
                            !strings(&rule["resourceNames"]).is_empty(),
                            "{}: the agent reads its own Secrets by name only",
                            doc.at
                        );
                        assert_eq!(strings(&rule["verbs"]), ["get"], "{}", doc.at);
                    }
                }
            }
            "RoleBinding" | "ClusterRoleBinding" => {
                let role = &live["roleRef"];
                let role_kind = role["kind"].as_str().expect("roleRef.kind");
                let role_name = role["name"].as_str().expect("roleRef.name");
                let installed = objects.iter().any(|(d, _)| {
                    d.kind() == role_kind
                        && d.name() == role_name
                        && (role_kind == "ClusterRole" || d.namespace() == doc.namespace())
                });
                assert!(
                    installed,
                    "{}: binds {role_kind} {role_name}, which is not installed",
                    doc.at
                );
                for subject in live["subjects"].as_array().expect("subjects") {
                    assert_eq!(subject["kind"], "ServiceAccount", "{}", doc.at);
                    let key = (
                        subject["namespace"].as_str().unwrap_or_default().to_owned(),
                        subject["name"].as_str().unwrap_or_default().to_owned(),
                    );
                    assert!(
                        accounts.contains(&key),
                        "{}: subject {key:?} is not installed",
                        doc.at
                    );
                }
            }
            _ => {}
        }
    }
}

#[test]
fn cluster_install_applies_reads_back_and_is_locked_down() {
    let (_cluster, objects) = install("deploy");
    check_deployment(&objects);
    check_rbac(&objects);
    let kinds: BTreeSet<&str> = objects.iter().map(|(d, _)| d.kind()).collect();
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(kind), "deploy/ installs a {kind}");
    }
    // The ClusterRole covers what the agent reads for health and writes for Events.
    let role = find(&objects, "ClusterRole", "gitsync-agent").expect("ClusterRole");
    let grants = |group: &str, resource: &str, verb: &str| {
        role["rules"].as_array().into_iter().flatten().any(|r| {
            strings(&r["apiGroups"]).contains(&group)
                && strings(&r["resources"]).contains(&resource)
                && strings(&r["verbs"]).contains(&verb)
        })
    };
    for (group, resource, verb) in [
        ("apps", "deployments", "patch"),
        ("", "pods", "list"),
        ("", "events", "create"),
        (
            "apiextensions.k8s.io",
            "customresourcedefinitions",
            "delete",
        ),
    ] {
        assert!(grants(group, resource, verb), "{verb} {group}/{resource}");
    }
    assert!(!grants("", "pods", "delete"), "pods are read only");
    assert!(
        !grants("apps", "replicasets", "patch"),
        "ReplicaSets are read only"
    );
}

#[test]
fn namespaced_install_applies_and_grants_nothing_cluster_wide() {
    let (_cluster, objects) = install("deploy/namespaced");
    check_deployment(&objects);
    check_rbac(&objects);
    for (doc, _) in &objects {
        assert!(
            !matches!(doc.kind(), "ClusterRole" | "ClusterRoleBinding"),
            "{}: the namespaced install grants nothing cluster-wide",
            doc.at
        );
        if doc.kind() != "Namespace" {
            assert!(
                doc.namespace().is_some(),
                "{}: only Namespaces are cluster-scoped",
                doc.at
            );
        }
    }
    let tenant_role = objects
        .iter()
        .find(|(d, _)| d.kind() == "Role" && d.namespace() != Some("gitsync-system"))
        .map(|(d, _)| d.namespace().unwrap_or_default().to_owned())
        .expect("a Role in the target namespace");
    assert!(
        objects
            .iter()
            .any(|(d, _)| d.kind() == "Namespace" && d.name() == tenant_role),
        "the target namespace {tenant_role} is installed with its Role"
    );
    assert!(
        objects
            .iter()
            .any(|(d, _)| d.kind() == "RoleBinding" && d.namespace() == Some(tenant_role.as_str())),
        "the Role in {tenant_role} is bound"
    );
    // The agent is confined (GITSYNC_NAMESPACES) to exactly the namespace its Role
    // covers, by a patch of its Deployment's container.
    let dir = workspace().join("deploy/namespaced");
    let patches = documents(&patch_files(&dir));
    let confine = patches
        .iter()
        .find(|d| d.kind() == "Deployment" && d.name() == "gitsync-agent")
        .expect("a patch of the agent Deployment");
    let container = &confine.value["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "agent", "{}", confine.at);
    let env = container["env"].as_array().expect("env");
    assert!(
        env.iter()
            .any(|e| e["name"] == "GITSYNC_NAMESPACES" && e["value"] == tenant_role.as_str()),
        "{}: GITSYNC_NAMESPACES={tenant_role}",
        confine.at
    );
}

/// Every manifest under deploy/ belongs to an install: nothing lies there unused.
#[test]
fn every_deploy_manifest_belongs_to_an_install() {
    let root = workspace().join("deploy").canonicalize().expect("deploy/");
    let mut listed: BTreeSet<PathBuf> = BTreeSet::new();
    for install in ["", "namespaced"] {
        listed.extend(resource_files(&root.join(install)));
        listed.extend(patch_files(&root.join(install)));
    }
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let manifest = path.extension().is_some_and(|ext| {
                ["yaml", "yml", "json"]
                    .iter()
                    .any(|m| ext.eq_ignore_ascii_case(m))
            });
            if manifest && name != "kustomization.yaml" {
                assert!(
                    listed.contains(&path),
                    "{} is in no install's kustomization",
                    path.display()
                );
            }
        }
    }
}

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn kubectl_dry_run_accepts_both_installs() {
    if !kubectl_available() {
        eprintln!("skipped: kubectl is not installed");
        return;
    }
    for dir in ["deploy", "deploy/namespaced"] {
        // A server dry run creates nothing, so the namespaces must exist first, as they
        // would after a first install: apply the install, then dry-run it again through
        // kubectl's own kustomize.
        let (cluster, _) = install(dir);
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(["apply", "-k", dir, "--dry-run=server"])
            .current_dir(workspace())
            .output()
            .expect("run kubectl");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "kubectl apply -k {dir} --dry-run=server:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("deployment.apps/gitsync-agent"),
            "{dir}: {stdout}"
        );
    }
}
