//! The data folders parse, so they never rot: deploy/ (every manifest valid, every file
//! listed in its kustomization, least-privilege RBAC without wildcards).

use crate::support::workspace;

#[test]
fn deploy_manifests_parse_and_are_all_listed() {
    let dir = workspace().join("deploy");
    let kustomization =
        std::fs::read_to_string(dir.join("kustomization.yaml")).expect("kustomization");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("deploy/") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name == "kustomization.yaml" {
            continue;
        }
        assert!(
            kustomization.contains(&name),
            "{name} is not listed in deploy/kustomization.yaml"
        );
        let text = std::fs::read_to_string(&path).expect("read");
        let docs =
            gitsync_core::yaml::parse_documents(&name, &text).unwrap_or_else(|e| panic!("{e}"));
        for doc in docs {
            let id = gitsync_core::ObjectId::of(&doc.value)
                .unwrap_or_else(|| panic!("{name}:{}: no identity", doc.line));
            if id.kind == "ClusterRole" {
                let rules = doc.value["rules"].as_array().expect("rules");
                for rule in rules {
                    for field in ["apiGroups", "resources", "verbs"] {
                        let values = rule[field].as_array().expect("list");
                        assert!(
                            values.iter().all(|v| v != "*"),
                            "{name}: wildcard in {field}"
                        );
                    }
                }
            }
            kinds.push(id.kind);
        }
    }
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "Namespace",
            "Service",
            "ServiceAccount"
        ]
    );
}
