//! `cargo bench -p gitsync-agent --bench pipeline`: render and diff at scale, side by
//! side with `kubectl kustomize` on the same trees when kubectl is installed.
//!
//! Generates app trees of 1,000, 5,000 and 10,000 objects (Deployments, Services and
//! ConfigMaps, one per file, plus a kustomization.yaml listing them) in a temporary
//! directory, then times:
//! - gitsync: read the directory, render, and print the YAML stream (what
//!   `gitsync render` does), best of 3;
//! - kubectl kustomize on the same directory, once (it is slow);
//! - the three-way diff and plan of 2,000 objects with 10% changed, best of 5.
//!
//! `GITSYNC_BENCH_PEER_MAX=N` skips kubectl for trees larger than N objects;
//! `GITSYNC_BENCH_SIZES=1000,5000` picks the sizes.
#![allow(clippy::print_stdout, clippy::cast_precision_loss)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gitsync_core::fields::FieldSet;
use gitsync_core::plan;
use gitsync_core::render::{self, Context};
use serde_json::{Value, json};

#[global_allocator]
static ALLOCATOR: gitsync_agent::Allocator = gitsync_agent::Allocator;

fn main() {
    let sizes: Vec<usize> = std::env::var("GITSYNC_BENCH_SIZES").ok().map_or_else(
        || vec![1_000, 5_000, 10_000],
        |s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
    );
    let peer_max: usize = std::env::var("GITSYNC_BENCH_PEER_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(usize::MAX);
    let kubectl = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());

    println!("render (read + render + print YAML), one object per file");
    println!(
        "{:>8}  {:>12}  {:>16}  {:>8}",
        "objects", "gitsync", "kubectl kustomize", "ratio"
    );
    let mut gitsync_times = BTreeMap::new();
    for &n in &sizes {
        let dir = tempfile::tempdir().expect("temp dir");
        let app = dir.path().join("app");
        generate(&app, n);
        let ours = best_of(3, || render_dir(&app.join("manifests"), n));
        gitsync_times.insert(n, ours);
        let peer = (kubectl && n <= peer_max).then(|| time(|| kustomize(&app)));
        let (peer_text, ratio) = match peer {
            Some(p) => (
                format!("{:.3} s", p.as_secs_f64()),
                format!("{:.0}x", p.as_secs_f64() / ours.as_secs_f64()),
            ),
            None => ("skipped".to_owned(), "-".to_owned()),
        };
        println!(
            "{n:>8}  {:>10.3} s  {peer_text:>16}  {ratio:>8}",
            ours.as_secs_f64()
        );
    }
    if let (Some(a), Some(b)) = (gitsync_times.get(&5_000), gitsync_times.get(&10_000)) {
        println!(
            "growth 5k -> 10k: {:.2}x (linear is 2.0x)",
            b.as_secs_f64() / a.as_secs_f64()
        );
    }

    let (desired, live) = diff_fixture(2_000, 10);
    let planned = best_of(5, || {
        let p = plan::plan("bench", &desired, &live, plan::Options::default()).expect("plan");
        assert_eq!(p.summary().update, 200);
    });
    println!(
        "\ndiff + plan of 2000 objects, 10% changed: {:.3} s",
        planned.as_secs_f64()
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs).map(|_| time(&mut f)).min().unwrap_or_default()
}

fn render_dir(app: &Path, n: usize) {
    let tree = gitsync_agent::tree_fs::load_app(app, app).expect("load");
    let context = Context {
        app: "bench".into(),
        revision: Some("0".repeat(40)),
        vars: BTreeMap::new(),
        namespace: None,
    };
    let manifests = render::render(&tree, &context).expect("render").manifests;
    assert_eq!(manifests.len(), n);
    let out = render::to_yaml_stream(&manifests);
    std::hint::black_box(out);
}

fn kustomize(app: &Path) {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(app)
        .output()
        .expect("kubectl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The i-th generated object: a Deployment, a Service or a ConfigMap.
fn object(i: usize, image_tag: &str) -> Value {
    let name = format!("app-{i:05}");
    match i % 3 {
        0 => json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "bench", "labels": {"app": name}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": name}},
                "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{
                    "name": "web", "image": format!("registry.example.com/web:{image_tag}"),
                    "ports": [{"containerPort": 8080}],
                    "env": [{"name": "MODE", "value": "bench"}],
                    "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}}}),
        1 => json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "bench"},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}),
        _ => json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "bench"},
            "data": {"config.yaml": format!("index: {i}\nmode: bench\n")}}),
    }
}

/// `app/manifests/obj-NNNNN.yaml`, and `app/kustomization.yaml` listing them.
fn generate(app: &Path, n: usize) {
    let manifests = app.join("manifests");
    std::fs::create_dir_all(&manifests).expect("mkdir");
    let mut resources = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n",
    );
    for i in 0..n {
        let file = format!("obj-{i:05}.yaml");
        let yaml = gitsync_core::yaml::to_yaml(&object(i, "1.0"));
        std::fs::write(manifests.join(&file), yaml).expect("write");
        resources.push_str(&format!("  - manifests/{file}\n"));
    }
    std::fs::write(app.join("kustomization.yaml"), resources).expect("write");
}

/// Desired manifests for `n` objects and their live state as the API server would hold
/// it after a previous apply, with `percent` of the Deployments' images changed since.
fn diff_fixture(n: usize, percent: usize) -> (Vec<gitsync_core::Manifest>, Vec<Value>) {
    let mut tree = gitsync_core::tree::AppTree::new();
    let changed = n * percent / 100;
    let mut live = Vec::with_capacity(n);
    for i in 0..n {
        // The first `changed` objects (all three kinds) render differently now.
        let old = object(i, "1.0");
        let new = if i < changed { bump(&old) } else { old.clone() };
        tree.insert(
            format!("obj-{i:05}.yaml"),
            gitsync_core::yaml::to_yaml(&new).into_bytes(),
        );
        live.push(old);
    }
    let context = Context {
        app: "bench".into(),
        revision: None,
        vars: BTreeMap::new(),
        namespace: None,
    };
    let desired = render::render(&tree, &context).expect("render").manifests;
    // Live = what the previous render applied, plus server-populated fields.
    let previous_tree = {
        let mut t = gitsync_core::tree::AppTree::new();
        for (i, obj) in live.iter().enumerate() {
            t.insert(
                format!("obj-{i:05}.yaml"),
                gitsync_core::yaml::to_yaml(obj).into_bytes(),
            );
        }
        t
    };
    let previous = render::render(&previous_tree, &context)
        .expect("render")
        .manifests;
    let live = previous
        .into_iter()
        .map(|m| {
            let mut o = m.object.clone();
            o["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000000");
            o["metadata"]["resourceVersion"] = json!("1");
            o["metadata"]["managedFields"] = json!([{"manager": "gitsync", "operation": "Apply",
                "apiVersion": m.id.api_version(), "fieldsType": "FieldsV1",
                "fieldsV1": FieldSet::from_applied(&m.object).to_fields_v1()}]);
            o["status"] = json!({"observedGeneration": 1});
            o
        })
        .collect();
    (desired, live)
}

fn bump(object: &Value) -> Value {
    let mut o = object.clone();
    match o["kind"].as_str() {
        Some("Deployment") => {
            o["spec"]["template"]["spec"]["containers"][0]["image"] =
                json!("registry.example.com/web:2.0");
        }
        Some("Service") => o["spec"]["ports"][0]["targetPort"] = json!(9090),
        _ => o["data"]["config.yaml"] = json!("changed: true\n"),
    }
    o
}
