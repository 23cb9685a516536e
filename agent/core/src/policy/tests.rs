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
    let Strategy::Canary {
        steps,
        max_restarts,
        traffic,
    } = canary.strategy
    else {
        panic!("not a canary");
    };
    assert_eq!(
        steps,
        vec![
            CanaryStep::SetWeight(10),
            CanaryStep::Pause(Some(Duration::from_mins(1))),
            CanaryStep::SetWeight(50),
            CanaryStep::Pause(None),
            CanaryStep::SetWeight(100),
        ]
    );
    assert_eq!(max_restarts, 2);
    assert_eq!(traffic, Traffic::Replicas);
}

#[test]
fn invalid_policies_name_file_and_line() {
    let text = "# a comment\n---\napiVersion: gitsync.dev/v1alpha1\nkind: StrategyPolicy\nmetadata: {name: x}\nspec:\n  strategy:\n    type: canary\n    canary:\n      steps:\n        - setWeight: 50\n        - setWeight: 10\n";
    let err = parse("bad.yaml", text).expect_err("decreasing weights");
    let shown = err.to_string();
    assert!(shown.starts_with("bad.yaml:3:"), "{shown}");
    assert!(shown.contains("step 2"), "{shown}");

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
