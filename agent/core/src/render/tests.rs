use super::*;
use serde_json::json;

fn tree(files: &[(&str, &str)]) -> AppTree {
    let mut t = AppTree::new();
    for (p, c) in files {
        t.insert(*p, c.as_bytes().to_vec());
    }
    t
}

fn ctx() -> Context {
    Context {
        app: "demo".into(),
        revision: Some("abc".into()),
        vars: BTreeMap::new(),
        namespace: None,
    }
}

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: web:${TAG}\n          env:\n            - name: VERSION\n              valueFrom:\n                configMapKeyRef: {name: cfg, key: VERSION}\n";

fn example() -> AppTree {
    tree(&[
        (
            "gitsync.yaml",
            "namespace: demo\ncommonLabels: {team: a}\nvars: {TAG: \"1\"}\nconfigMapGenerator:\n  - name: cfg\n    files: [config/VERSION]\n",
        ),
        ("config/VERSION", "1.0"),
        (
            "ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: demo\n",
        ),
        ("web/deploy.yaml", DEPLOY),
        (
            "web/svc.yml",
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n---\n",
        ),
        ("README.md", "not a manifest"),
        (
            ".hidden/x.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hidden}\n",
        ),
    ])
}

#[test]
fn renders_with_options_generators_and_tracking() {
    let out = render(&example(), &ctx()).expect("render").manifests;
    let names: Vec<String> = out.iter().map(|m| m.id.short()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    assert!(
        names[0].starts_with("ConfigMap/demo/cfg-"),
        "generated first: {names:?}"
    );
    assert_eq!(
        &names[1..],
        ["Namespace/demo", "Deployment/demo/web", "Service/demo/web"]
    );

    let deploy = &out[2].object;
    let cm_name = out[0].id.name.clone();
    assert_eq!(
        deploy.pointer("/spec/template/spec/containers/0/env/0/valueFrom/configMapKeyRef/name"),
        Some(&json!(cm_name))
    );
    assert_eq!(
        deploy.pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("web:1"))
    );
    assert_eq!(
        deploy.pointer("/spec/template/metadata/labels/team"),
        Some(&json!("a"))
    );
    assert_eq!(
        deploy.pointer("/spec/selector/matchLabels"),
        Some(&json!({"app": "web"})),
        "selectors untouched"
    );
    assert_eq!(
        deploy.pointer("/metadata/labels/gitsync.dev~1app"),
        Some(&json!("demo"))
    );
    assert_eq!(
        deploy.pointer("/metadata/labels/app.kubernetes.io~1managed-by"),
        Some(&json!("gitsync"))
    );
    assert_eq!(
        deploy.pointer("/metadata/annotations/gitsync.dev~1revision"),
        Some(&json!("abc"))
    );
    assert_eq!(
        deploy.pointer("/metadata/annotations/gitsync.dev~1digest"),
        Some(&json!(out[2].digest))
    );
    assert_eq!(
        out[1].object.pointer("/metadata/namespace"),
        None,
        "namespaces are cluster-scoped"
    );
    assert_eq!(out[3].source.file, "web/svc.yml");
}

#[test]
fn config_change_renames_the_generated_map_and_changes_the_workload() {
    let a = render(&example(), &ctx()).expect("render").manifests;
    let mut changed = example();
    changed.insert("config/VERSION", b"2.0".to_vec());
    let b = render(&changed, &ctx()).expect("render").manifests;
    assert_ne!(a[0].id.name, b[0].id.name);
    assert_ne!(a[2].digest, b[2].digest, "the pod template changed");
    assert_eq!(a[3].digest, b[3].digest, "the service did not");
}

#[test]
fn revision_does_not_change_digests() {
    let a = render(&example(), &ctx()).expect("render").manifests;
    let mut other = ctx();
    other.revision = Some("def".into());
    let b = render(&example(), &other).expect("render").manifests;
    assert!(a.iter().zip(&b).all(|(x, y)| x.digest == y.digest));
}

#[test]
fn cli_vars_override_file_vars() {
    let mut c = ctx();
    c.vars.insert("TAG".into(), "9".into());
    let out = render(&example(), &c).expect("render").manifests;
    assert_eq!(
        out[2]
            .object
            .pointer("/spec/template/spec/containers/0/image"),
        Some(&json!("web:9"))
    );
}

#[test]
fn problems_name_file_line_and_column() {
    let t = tree(&[
        (
            "a.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ),
        ("b.yaml", "apiVersion: v1\nmetadata:\n  name: why\n"),
        (
            "c.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
        ),
        ("d.yaml", "a: [\n"),
        ("e.yaml", "- 1\n- 2\n"),
        (
            "f.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ${NOPE}\n",
        ),
    ]);
    let err = render(&t, &ctx()).expect_err("invalid");
    let text = err.to_string();
    assert!(text.contains("b.yaml:1:1: manifest has no kind"), "{text}");
    assert!(
        text.contains("c.yaml:1:1: ConfigMap/x is defined twice: here and at a.yaml:1:1"),
        "{text}"
    );
    assert!(text.contains("d.yaml:"), "{text}");
    assert!(
        text.contains("e.yaml:1:1: a manifest must be a mapping"),
        "{text}"
    );
    assert!(
        text.contains("f.yaml:4:9: variable NOPE is not defined"),
        "{text}"
    );
    let t = tree(&[(
        "g.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: yes\n",
    )]);
    let text = render(&t, &ctx()).expect_err("bool name").to_string();
    assert!(
        text.contains("g.yaml:1:1: metadata.name must be a string"),
        "{text}"
    );
}

#[test]
fn oversized_and_binary_files_are_refused() {
    let mut t = AppTree::new();
    t.insert("big.yaml", vec![b'a'; MAX_FILE_BYTES + 1]);
    t.insert("bin.yaml", vec![0xff, 0xfe]);
    let text = render(&t, &ctx()).expect_err("refused").to_string();
    assert!(
        text.contains("big.yaml:1:1: file is") && text.contains("bin.yaml:1:1: file is not UTF-8"),
        "{text}"
    );
}

#[test]
fn bad_options_are_named() {
    let t = tree(&[("gitsync.yaml", "namespace: demo\nnamspace: typo\n")]);
    let text = render(&t, &ctx()).expect_err("unknown field").to_string();
    assert!(text.starts_with("gitsync.yaml:2:"), "{text}");
    let t = tree(&[(
        "gitsync.yaml",
        "configMapGenerator:\n  - name: cfg\n    files: [missing.txt]\n",
    )]);
    let text = render(&t, &ctx()).expect_err("missing file").to_string();
    assert!(
        text.contains("gitsync.yaml:2:1: generator cfg: file missing.txt does not exist"),
        "{text}"
    );
}

#[test]
fn secrets_generate_base64_data() {
    let t = tree(&[(
        "gitsync.yaml",
        "namespace: demo\nsecretGenerator:\n  - name: s\n    literals: [\"PASSWORD=${PW:-dev}\"]\n",
    )]);
    let out = render(&t, &ctx()).expect("render").manifests;
    assert_eq!(out[0].id.kind, "Secret");
    assert_eq!(
        out[0].object.pointer("/data/PASSWORD"),
        Some(&json!("ZGV2"))
    );
    assert_eq!(out[0].object.pointer("/type"), Some(&json!("Opaque")));
}

mod laws {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Render is deterministic and does not depend on the order files were added.
        #[test]
        fn render_is_deterministic(
            names in prop::collection::btree_set("[a-z]{1,6}", 1..12),
            seed in any::<u64>(),
        ) {
            let files: Vec<(String, String)> = names
                .iter()
                .map(|n| (format!("{n}.yaml"), format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"{n}\"\ndata:\n  k: \"{seed}\"\n")))
                .collect();
            let mut forward = AppTree::new();
            for (p, c) in &files { forward.insert(p.clone(), c.clone().into_bytes()); }
            let mut backward = AppTree::new();
            for (p, c) in files.iter().rev() { backward.insert(p.clone(), c.clone().into_bytes()); }
            let a = to_yaml_stream(&render(&forward, &ctx()).expect("render").manifests);
            let b = to_yaml_stream(&render(&backward, &ctx()).expect("render").manifests);
            let c = to_yaml_stream(&render(&forward, &ctx()).expect("render").manifests);
            prop_assert_eq!(&a, &b);
            prop_assert_eq!(&a, &c);
        }
    }
}

#[test]
fn kustomize_files_are_refused_with_a_hint() {
    let t = tree(&[(
        "kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [a.yaml]\n",
    )]);
    let text = render(&t, &ctx()).expect_err("kustomize").to_string();
    assert!(
        text.contains("kustomization.yaml:1:1: this is a kustomize file"),
        "{text}"
    );
}

#[test]
fn a_workload_scaled_by_an_hpa_leaves_replicas_to_it() {
    let t = tree(&[
        ("gitsync.yaml", "namespace: demo\n"),
        (
            "web.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {replicas: 3}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec: {replicas: 2}\n",
        ),
        (
            "hpa.yaml",
            "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 1\n  maxReplicas: 5\n",
        ),
    ]);
    let out = render(&t, &ctx()).expect("render").manifests;
    let replicas = |name: &str| {
        out.iter()
            .find(|m| m.id.kind == "Deployment" && m.id.name == name)
            .and_then(|m| m.object.pointer("/spec/replicas").cloned())
    };
    assert_eq!(replicas("web"), None);
    assert_eq!(replicas("api"), Some(json!(2)));
}

const POLICY: &str = "apiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {name: slow}\nspec:\n  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, maxUnavailable: 0}\n";

#[test]
fn strategy_policies_are_kept_apart_from_the_manifests() {
    let mut t = example();
    t.insert(
        "policies/slow.yaml",
        format!("{POLICY}---\n{}", POLICY.replace("slow", "fast")).into_bytes(),
    );
    let out = render(&t, &ctx()).expect("render");
    let names: Vec<&str> = out.policies.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["slow", "fast"]);
    assert!(
        out.manifests.iter().all(|m| m.id.kind != "StrategyPolicy"),
        "a policy is never applied"
    );
}

#[test]
fn a_bad_or_duplicate_policy_fails_the_render_with_its_file_and_line() {
    let mut t = example();
    t.insert(
        "policies/bad.yaml",
        format!(
            "{POLICY}---\n{}",
            POLICY.replace("maxSurge: 1", "maxSurge: 1, surge: 2")
        )
        .into_bytes(),
    );
    t.insert("policies/again.yaml", POLICY.as_bytes().to_vec());
    let text = render(&t, &ctx()).expect_err("invalid").to_string();
    assert!(
        text.contains("policies/bad.yaml:9:1:") && text.contains("unknown field `surge`"),
        "{text}"
    );
    assert!(
        text.contains("policies/bad.yaml:1:1: duplicate StrategyPolicy \"slow\" (also defined at policies/again.yaml:1:1)"),
        "{text}"
    );
}
