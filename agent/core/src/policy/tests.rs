use super::*;
use serde_json::json;

fn policies_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn load(name: &str) -> Vec<Policy> {
    let text = std::fs::read_to_string(policies_dir().join(name)).expect("policy file");
    parse(name, &text).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_shipped_policy_parses() {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(policies_dir()).expect("policies/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let file = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        names.extend(load(&file).into_iter().map(|p| p.name));
    }
    names.sort();
    assert_eq!(names, vec!["blue-green", "canary", "ramped", "recreate"]);
}

#[test]
fn canary_steps_are_read_in_order() {
    let canary = load("canary.yaml").remove(0);
    assert_eq!(canary.on_new_revision, OnNewRevision::Queue);
    assert_eq!(canary.progress_deadline, Duration::from_mins(10));
    let Strategy::Canary {
        steps,
        max_restarts,
        traffic,
        ..
    } = canary.strategy
    else {
        panic!("not a canary");
    };
    assert_eq!(
        steps,
        vec![
            CanaryStep::Weight(10),
            CanaryStep::Pause(Some(Duration::from_mins(1))),
            CanaryStep::Weight(50),
            CanaryStep::Pause(None),
            CanaryStep::Weight(100),
        ]
    );
    assert_eq!(max_restarts, 2);
    assert_eq!(traffic, Traffic::Auto);
}

#[test]
fn invalid_policies_name_file_and_line() {
    let text = "# a comment\n---\napiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {name: x}\nspec:\n  strategy:\n    type: canary\n    canary:\n      steps:\n        - setWeight: 50\n        - setWeight: 10\n";
    let err = parse("bad.yaml", text).expect_err("decreasing weights");
    let shown = err.to_string();
    assert!(shown.starts_with("bad.yaml:3:"), "{shown}");
    assert!(shown.contains("step 2"), "{shown}");
    assert!(shown.contains("goes down"), "{shown}");

    let unknown = "apiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {name: x}\nspec:\n  strategy: {type: yolo}\n";
    assert!(
        parse("u.yaml", unknown)
            .expect_err("unknown")
            .to_string()
            .contains("yolo")
    );
}

#[test]
fn annotation_beats_selector_and_default_is_none() {
    let mut all = load("canary.yaml");
    all.extend(load("recreate.yaml"));
    let labelled = json!({"metadata": {"labels": {"gitsync.dev/rollout": "canary"}}});
    assert_eq!(
        select(&all, &labelled)
            .expect("ok")
            .map(|p| p.name.as_str()),
        Some("canary")
    );
    let annotated = json!({"metadata": {"labels": {"gitsync.dev/rollout": "canary"},
        "annotations": {"gitsync.dev/strategy": "recreate"}}});
    assert_eq!(
        select(&all, &annotated)
            .expect("ok")
            .map(|p| p.name.as_str()),
        Some("recreate")
    );
    assert!(
        select(&all, &json!({"metadata": {}}))
            .expect("ok")
            .is_none()
    );
    let missing = json!({"metadata": {"annotations": {"gitsync.dev/strategy": "nope"}}});
    assert!(select(&all, &missing).is_err());
}

fn policy(strategy: &str) -> String {
    format!(
        "apiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {{name: p}}\nspec:\n{strategy}"
    )
}

#[test]
fn the_issue_step_syntax_and_argo_style_both_parse() {
    let text = policy(
        "  strategy:\n    type: canary\n    canary:\n      steps:\n        - weight: 10\n        - pause: 1m\n        - setWeight: 50\n        - pause: {duration: 30s}\n        - pause: {}\n        - weight: 100\n",
    );
    let p = parse("p.yaml", &text).expect("parses").remove(0);
    let Strategy::Canary { steps, .. } = p.strategy else {
        panic!("canary")
    };
    assert_eq!(
        steps,
        vec![
            CanaryStep::Weight(10),
            CanaryStep::Pause(Some(Duration::from_mins(1))),
            CanaryStep::Weight(50),
            CanaryStep::Pause(Some(Duration::from_secs(30))),
            CanaryStep::Pause(None),
            CanaryStep::Weight(100),
        ]
    );
}

#[test]
fn bad_policies_say_what_is_wrong() {
    let cases = [
        (
            "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 120}]\n",
            "between 1 and 100",
        ),
        (
            "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 10, pause: 1m}]\n",
            "exactly one of weight or pause",
        ),
        (
            "  strategy:\n    type: canary\n    canary:\n      steps: [{pause: 60}]\n",
            "with its unit",
        ),
        (
            "  strategy:\n    type: canary\n    canary:\n      steps: [{weight: 10}]\n      health: {url: ftp://x}\n",
            "http://",
        ),
        (
            "  onNewRevision: later\n  strategy: {type: recreate}\n",
            "onNewRevision",
        ),
        (
            "  strategy:\n    type: blueGreen\n    blueGreen: {scaleDownAfter: soon}\n",
            "scaleDownAfter",
        ),
        (
            "  strategy:\n    type: ramped\n    ramped: {maxSurge: 0, maxUnavailable: 0%}\n",
            "both be 0",
        ),
        (
            "  strategy:\n    type: ramped\n    ramped: {maxSurge: 1, surprise: true}\n",
            "surprise",
        ),
    ];
    for (spec, expected) in cases {
        let err = parse("p.yaml", &policy(spec)).expect_err(spec).to_string();
        assert!(err.starts_with("p.yaml:1:"), "{err}");
        assert!(err.contains(expected), "{spec}: {err}");
    }
}

#[test]
fn defaults_follow_the_issue() {
    let p = parse("p.yaml", &policy("  strategy: {type: blueGreen}\n"))
        .expect("parses")
        .remove(0);
    assert_eq!(
        p.strategy,
        Strategy::BlueGreen {
            service: None,
            auto_promote_after: None,
            scale_down_after: Duration::from_secs(30),
            preview_service: true,
        }
    );
    assert_eq!(p.on_new_revision, OnNewRevision::Queue);
    let names: Vec<String> = built_in().into_iter().map(|p| p.name).collect();
    assert_eq!(names, ["recreate", "ramped", "blue-green", "canary"]);
}
