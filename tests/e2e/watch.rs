//! `gitsync-agent --watch DIR`: a working directory synced on every save; a broken
//! file fails that sync and leaves the cluster as it was, the fix syncs.

use std::time::Duration;

use crate::support::{Agent, Cluster, eventually, write_files};

const WAIT: Duration = Duration::from_secs(30);

fn value(cluster: &Cluster) -> Option<String> {
    cluster
        .get("/api/v1/namespaces/watched/configmaps/settings")
        .and_then(|cm| cm["data"]["level"].as_str().map(str::to_owned))
}

fn settings(level: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: watched\ndata:\n  level: \"{level}\"\n"
    )
}

#[test]
fn every_save_syncs_and_a_broken_save_changes_nothing() {
    let cluster = Cluster::start();
    let dir = tempfile::tempdir().expect("tmp");
    write_files(
        dir.path(),
        &[
            (
                "ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: watched\n",
            ),
            ("settings.yaml", &settings("1")),
        ],
    );
    let mut args = vec![
        "--watch",
        dir.path().to_str().expect("utf-8"),
        "--app",
        "watched",
    ];
    args.extend(cluster.flags());
    let agent = Agent::start(&args);
    eventually(WAIT, "the first sync", || {
        (value(&cluster).as_deref() == Some("1")).then_some(())
    });

    write_files(dir.path(), &[("settings.yaml", &settings("2"))]);
    eventually(WAIT, "the save synced", || {
        (value(&cluster).as_deref() == Some("2")).then_some(())
    });

    // A half-written file: that sync fails with the file and line; nothing changes.
    write_files(
        dir.path(),
        &[(
            "settings.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: [\n",
        )],
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(value(&cluster).as_deref(), Some("2"));

    write_files(dir.path(), &[("settings.yaml", &settings("3"))]);
    eventually(WAIT, "the fix synced", || {
        (value(&cluster).as_deref() == Some("3")).then_some(())
    });
    let log = agent.stop();
    assert!(
        log.contains("settings.yaml:3"),
        "the broken save named its file and line:\n{log}"
    );
}
