//! The status page in a real headless browser (Debian's `chromium`): what a person sees
//! when a canary waits for promotion and someone edited a Secret by hand — the app's
//! sync, health and drift, the rollout's step and weight, the last syncs with their
//! diffs, and no Secret value anywhere.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::rollout_agent::rollout_of;
use crate::rollouts::{CANARY, NS, SERVICE, policy, web};
use crate::service::serve;
use crate::support::{Cluster, commit_all, eventually, write_files};

const WAIT: Duration = Duration::from_mins(1);
const SECRET_VALUE: &str = "hunter2-do-not-show";

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// The DOM after the page loaded, as the browser built it.
fn dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().expect("tmp");
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            &format!("--user-data-dir={}", profile.path().display()),
            "--virtual-time-budget=2000",
            "--dump-dom",
            url,
        ])
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write(repo: &Path, image: &str) {
    let secret = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n  namespace: ro\nstringData:\n  password: {SECRET_VALUE}-{image}\n"
    );
    write_files(
        &repo.join("apps/ro"),
        &[
            ("ns.yaml", NS),
            ("svc.yaml", SERVICE),
            ("secret.yaml", &secret),
            ("policy.yaml", &policy("careful", CANARY)),
            ("web.yaml", &web(image, 4, "careful", "")),
        ],
    );
    commit_all(repo, &format!("release {image}"));
}

#[test]
fn the_status_page_shows_a_person_the_apps_the_rollout_and_the_diffs() {
    let Some(browser) = chromium() else {
        eprintln!("skipping: chromium is not installed (apt-get install chromium)");
        return;
    };
    let cluster = Cluster::start();
    let (repo, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write(repo.path(), "web:1");
    let config = format!(
        "apps:\n  - {{name: ro, repo: '{}', path: apps/ro, interval: 1s}}\n",
        repo.path().display()
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    eventually(WAIT, "v1 synced", || {
        crate::rollout_agent::image(&cluster, "web").filter(|i| i == "web:1")
    });
    write(repo.path(), "web:2");
    eventually(WAIT, "the canary at its manual pause", || {
        rollout_of(&cluster, "web")
            .filter(|r| r["phase"] == "Paused" && r["awaitingPromote"] == true)
    });
    // Someone edits the Secret by hand: drift, reported (no self-heal), its value
    // never shown.
    let status = crate::support::http_patch(
        &cluster.url,
        "/api/v1/namespaces/ro/secrets/creds?fieldManager=kubectl-edit",
        &format!(r#"{{"stringData": {{"password": "{SECRET_VALUE}-by-hand"}}}}"#),
    );
    assert_eq!(status, 200);
    let app = eventually(WAIT, "the drift reported", || {
        let (_, body) = crate::support::http(&base, "GET", "/api/v1/apps/ro");
        let app: serde_json::Value = serde_json::from_str(&body).ok()?;
        app["drift"]
            .as_array()
            .is_some_and(|d| !d.is_empty())
            .then_some(app)
    });
    let health = app["health"].as_str().expect("health").to_owned();
    // The page refreshes itself; give the agent a tick to report the pause.
    std::thread::sleep(Duration::from_secs(3));

    let page = dom(browser, &format!("{base}/"));
    assert!(page.contains("<title>gitsync: 1 apps</title>"), "{page}");
    assert!(
        page.contains("http-equiv=\"refresh\""),
        "the page refreshes itself"
    );
    for seen in [
        // Drifted: out of sync with its revision, even as rollout passes go on.
        "<h2>ro<span class=\"badge OutOfSync\">OutOfSync</span>",
        "apps/ro",
        "release web:2",
        "<strong>Rollout</strong> Deployment/ro/web: canary (careful)",
        "<span class=\"badge Paused\">Paused</span>",
        "step 4 of 5",
        "weight 50%",
        "waiting for `gitsync promote`",
        "<h3>Last syncs</h3>",
        "# create Deployment/ro/web-canary",
        "image: web:2",
        "password: &lt;masked sha256:",
        &format!("<span class=\"badge {health}\">{health}</span>"),
        "· 1 drifted</div>",
        "<tr><th>Drift</th><td>Secret/ro/creds: .data.password",
    ] {
        assert!(page.contains(seen), "{seen:?} not on the page:\n{page}");
    }
    assert!(
        !page.contains(SECRET_VALUE),
        "a Secret value is on the page:\n{page}"
    );
    drop(agent);
}
