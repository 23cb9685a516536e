//! The agent as a service: many apps from many repositories out of one configuration
//! file, the HTTP API (reads, and actions behind a bearer token), metrics, suspend and
//! resume, direct rollback, and a revert commit recorded as a rollback.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::support::{
    Agent, Cluster, await_listen, commit_all, eventually, free_port, history, http, http_json,
    http_with, write_files,
};

const WAIT: Duration = Duration::from_mins(1);

fn config_map(ns: &str, name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {ns}\ndata:\n  value: \"{value}\"\n"
    )
}

fn namespace(ns: &str) -> String {
    format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
}

/// The `value` of ConfigMap `ns/name`, if it exists.
fn value(cluster: &Cluster, ns: &str, name: &str) -> Option<String> {
    cluster
        .get(&format!("/api/v1/namespaces/{ns}/configmaps/{name}"))
        .and_then(|cm| cm["data"]["value"].as_str().map(str::to_owned))
}

/// Creates Secret `name` in gitsync-system with `data` as stringData.
pub fn secret(cluster: &Cluster, name: &str, data: &[(&str, &str)]) {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    let body = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": "gitsync-system"},
        "stringData": data,
    });
    let (code, text) = http_json(
        &cluster.url,
        "POST",
        "/api/v1/namespaces/gitsync-system/secrets",
        &body.to_string(),
    );
    assert_eq!(code, 201, "{text}");
}

/// An agent serving `config` (YAML) on a free port; returns it and its base URL once
/// it answers.
pub fn serve(cluster: &Cluster, config: &str, dir: &Path, extra: &[&str]) -> (Agent, String) {
    serve_on(cluster, config, dir, free_port(), extra)
}

/// [`serve`] on `port`.
pub fn serve_on(
    cluster: &Cluster,
    config: &str,
    dir: &Path,
    port: u16,
    extra: &[&str],
) -> (Agent, String) {
    start_agent(cluster, config, dir, port, extra, &[])
}

/// [`serve`] with these environment variables set.
pub fn serve_env(
    cluster: &Cluster,
    config: &str,
    dir: &Path,
    env: &[(&str, &Path)],
) -> (Agent, String) {
    start_agent(cluster, config, dir, free_port(), &[], env)
}

fn start_agent(
    cluster: &Cluster,
    config: &str,
    dir: &Path,
    port: u16,
    extra: &[&str],
    env: &[(&str, &Path)],
) -> (Agent, String) {
    let file = dir.join("config.yaml");
    std::fs::write(&file, config).expect("write config");
    let listen = format!("127.0.0.1:{port}");
    let cache = dir.join("cache");
    let mut args = vec![
        "--config",
        file.to_str().expect("utf-8"),
        "--listen",
        &listen,
        "--cache-dir",
        cache.to_str().expect("utf-8"),
    ];
    args.extend(cluster.flags());
    args.extend(extra);
    let agent = Agent::start_env(&args, env);
    await_listen(&listen);
    (agent, format!("http://{listen}"))
}

fn get_json(base: &str, path: &str) -> Value {
    let (code, body) = http(base, "GET", path);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).expect("JSON")
}

fn post(base: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let (code, text) = http_with(base, "POST", path, &headers, body.as_bytes());
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[test]
fn one_agent_serves_many_apps_and_a_broken_one_blocks_none() {
    let cluster = Cluster::start();
    let (repo_a, repo_b, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write_files(
        repo_a.path(),
        &[
            ("apps/a/ns.yaml", &namespace("svc-a")),
            ("apps/a/cm.yaml", &config_map("svc-a", "a", "1")),
            (
                "apps/c/bad.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata: [oops\n",
            ),
        ],
    );
    commit_all(repo_a.path(), "a and c");
    write_files(
        repo_b.path(),
        &[
            ("ns.yaml", &namespace("svc-b")),
            ("cm.yaml", &config_map("svc-b", "b", "1")),
        ],
    );
    commit_all(repo_b.path(), "b");
    let (a, b) = (repo_a.path().display(), repo_b.path().display());
    let config = format!(
        "apps:\n  - {{name: a, repo: '{a}', path: apps/a, interval: 1s}}\n  \
         - {{name: b, repo: '{b}', interval: 1s}}\n  \
         - {{name: c, repo: '{a}', path: apps/c, interval: 1s}}\n"
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    eventually(WAIT, "apps a and b synced", || {
        (value(&cluster, "svc-a", "a").is_some() && value(&cluster, "svc-b", "b").is_some())
            .then_some(())
    });
    eventually(WAIT, "ready once every app was attempted", || {
        (http(&base, "GET", "/readyz").0 == 200).then_some(())
    });

    let apps = get_json(&base, "/api/v1/apps");
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .expect("apps")
        .iter()
        .filter_map(|a| a["name"].as_str())
        .collect();
    assert_eq!(names, ["a", "b", "c"], "{apps}");
    assert_eq!(apps["agent"]["leader"], true, "{apps}");
    let c = get_json(&base, "/api/v1/apps/c");
    assert_eq!(c["sync"], "Failed", "{c}");
    let error = c["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("bad.yaml:3"), "{c}");
    let a_status = get_json(&base, "/api/v1/apps/a");
    assert_eq!(a_status["sync"], "Synced", "{a_status}");
    assert_eq!(a_status["health"], "Healthy", "{a_status}");
    assert_eq!(a_status["ref"], "main");
    assert!(a_status["revision"]["commit"].is_string(), "{a_status}");

    let history = get_json(&base, "/api/v1/apps/a/history");
    assert_eq!(history[0]["result"], "Succeeded", "{history}");
    let diff = get_json(&base, "/api/v1/apps/b/diff");
    assert_eq!(diff["changes"], false, "{diff}");
    assert_eq!(http(&base, "GET", "/api/v1/apps/nope").0, 404);

    // Actions need a token, and none is configured.
    let (code, body) = post(&base, "/api/v1/apps/a/sync", Some("x"), "");
    assert_eq!(code, 403, "{body}");

    let (_, metrics) = http(&base, "GET", "/metrics");
    for line in [
        "gitsync_sync_duration_seconds_bucket{app=\"a\",le=\"+Inf\"} 1",
        "gitsync_syncs_total{app=\"a\",result=\"Succeeded\"} 1",
        "gitsync_syncs_total{app=\"c\",result=\"Failed\"}",
        "gitsync_objects{app=\"b\",state=\"synced\"} 2",
        "gitsync_drifted_objects{app=\"a\"} 0",
        "gitsync_git_fetch_duration_seconds_count{app=\"b\"}",
        "# TYPE gitsync_webhook_requests_total counter",
        "gitsync_leader 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    let stamp = metrics
        .lines()
        .find_map(|l| l.strip_prefix("gitsync_last_successful_sync_timestamp_seconds{app=\"a\"} "))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("last successful sync of a");
    assert!(stamp > 1_700_000_000, "{stamp}");

    // Events on the objects the syncs changed.
    let events = cluster
        .get("/api/v1/namespaces/svc-a/events")
        .and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e["reason"] == "Synced"
            && e["involvedObject"]["name"] == "a"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("created by gitsync at revision"))),
        "{events:#?}"
    );

    // The broken app is fixed by a commit: it syncs, the others never stopped.
    write_files(
        repo_a.path(),
        &[("apps/c/bad.yaml", &config_map("svc-a", "c", "1"))],
    );
    commit_all(repo_a.path(), "fix c");
    eventually(WAIT, "app c synced after its fix", || {
        value(&cluster, "svc-a", "c")
    });
    drop(agent);
}

/// One app `web` (a Namespace and ConfigMap `web` in `ns`) in its own repository,
/// served by an agent whose API token is `token`.
struct Web {
    repo: tempfile::TempDir,
    _work: tempfile::TempDir,
    ns: &'static str,
    _agent: Agent,
    base: String,
    /// The first commit (value "1").
    v1: String,
}

impl Web {
    fn start(cluster: &Cluster, ns: &'static str, token: &str) -> Self {
        let (repo, work) = (
            tempfile::tempdir().expect("tmp"),
            tempfile::tempdir().expect("tmp"),
        );
        let v1 = commit_value(repo.path(), ns, "1");
        secret(cluster, "gitsync-api", &[("token", token)]);
        let config = format!(
            "api:\n  tokenSecret: {{name: gitsync-api, key: token}}\napps:\n  - {{name: web, repo: '{}', path: web, interval: 1s}}\n",
            repo.path().display()
        );
        let (agent, base) = serve(cluster, &config, work.path(), &[]);
        let web = Self {
            repo,
            _work: work,
            ns,
            _agent: agent,
            base,
            v1,
        };
        web.wait(cluster, "1");
        web
    }

    /// Commits value `v`; returns the commit.
    fn write(&self, v: &str) -> String {
        commit_value(self.repo.path(), self.ns, v)
    }

    /// Waits until ConfigMap `web` holds `v`.
    fn wait(&self, cluster: &Cluster, v: &str) {
        eventually(WAIT, &format!("value {v} synced"), || {
            (value(cluster, self.ns, "web").as_deref() == Some(v)).then_some(())
        });
    }
}

/// Commits app `web` (Namespace `ns`, ConfigMap `web` = `v`) to the repository at
/// `repo`; returns the commit.
fn commit_value(repo: &Path, ns: &str, v: &str) -> String {
    write_files(
        repo,
        &[
            ("web/ns.yaml", &namespace(ns)),
            ("web/cm.yaml", &config_map(ns, "web", v)),
        ],
    );
    commit_all(repo, &format!("web {v}"))
}

#[test]
fn api_actions_suspend_resume_and_roll_back() {
    let cluster = Cluster::start();
    let web = Web::start(&cluster, "svc-web", "s3cret-token\n");
    let (base, v1) = (web.base.clone(), web.v1.clone());
    let sync = "/api/v1/apps/web/sync";
    assert_eq!(post(&base, sync, None, "").0, 401);
    assert_eq!(post(&base, sync, Some("wrong"), "").0, 401);
    let (code, body) = post(&base, sync, Some("s3cret-token"), "");
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["synced"], v1.as_str(), "{body}");
    let (code, body) = post(&base, "/api/v1/apps/web/promote", Some("s3cret-token"), "");
    assert_eq!(code, 409, "nothing to promote: {body}");
    let (code, _) = post(&base, "/api/v1/apps/web/explode", Some("s3cret-token"), "");
    assert_eq!(code, 404);

    web.write("2");
    web.wait(&cluster, "2");

    // Emergency: straight back to v1, and automatic sync suspended.
    let body = format!("{{\"to\": \"{v1}\", \"direct\": true}}");
    let (code, reply) = post(
        &base,
        "/api/v1/apps/web/rollback",
        Some("s3cret-token"),
        &body,
    );
    assert_eq!(code, 200, "{reply}");
    assert_eq!(value(&cluster, "svc-web", "web").as_deref(), Some("1"));
    let status = get_json(&base, "/api/v1/apps/web");
    assert_eq!(status["suspended"]["revision"], v1.as_str(), "{status}");
    let entry = &history(&cluster, "web")[0];
    assert_eq!(entry["trigger"], "rollback", "{entry}");
    assert_eq!(entry["rollbackTo"], v1.as_str(), "{entry}");

    let v3 = web.write("3");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        value(&cluster, "svc-web", "web").as_deref(),
        Some("1"),
        "a suspended app is not synced"
    );
    let (code, _) = post(&base, "/api/v1/apps/web/resume", Some("s3cret-token"), "");
    assert_eq!(code, 200);
    web.wait(&cluster, "3");
    let status = eventually(WAIT, "v3 recorded as synced", || {
        let s = get_json(&base, "/api/v1/apps/web");
        (s["revision"]["commit"] == v3.as_str()).then_some(s)
    });
    assert!(status["suspended"].is_null(), "{status}");

    // A person reverts to v1's content: the history calls it a rollback to v1.
    let reverted = web.write("1");
    eventually(WAIT, "the revert synced", || {
        let h = history(&cluster, "web");
        (h[0]["revision"] == reverted.as_str() && h[0]["result"] == "Succeeded").then_some(())
    });
    let entry = &history(&cluster, "web")[0];
    assert_eq!(entry["trigger"], "rollback", "{entry}");
    assert_eq!(entry["rollbackTo"], v1.as_str(), "{entry}");
    drop(web);
}

#[test]
fn the_cli_rolls_back_directly_suspends_and_resumes_with_or_without_the_agent() {
    let cluster = Cluster::start();
    let web = Web::start(&cluster, "cli-web", "cli-token");
    let (base, v1) = (web.base.clone(), web.v1.clone());
    web.write("2");
    web.wait(&cluster, "2");

    // Straight on the cluster: the CLI reads where the app comes from (published by
    // its agent), applies v1's render and suspends the app.
    let run = cluster.gitsync(&["rollback", "web", "--to", &v1, "--direct"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("resume web"), "{run:?}");
    assert_eq!(value(&cluster, "cli-web", "web").as_deref(), Some("1"));
    let entry = &history(&cluster, "web")[0];
    assert_eq!(entry["trigger"], "rollback", "{entry}");
    assert_eq!(entry["rollbackTo"], v1.as_str(), "{entry}");
    web.write("3");
    eventually(WAIT, "the agent shows the app suspended", || {
        let s = get_json(&base, "/api/v1/apps/web");
        (s["suspended"]["revision"] == v1.as_str()).then_some(())
    });
    assert_eq!(value(&cluster, "cli-web", "web").as_deref(), Some("1"));
    let status = cluster.gitsync(&["status", "web"]);
    assert!(
        status.stdout.contains("automatic sync suspended since"),
        "{status:?}"
    );
    assert!(status.stdout.contains("direct rollback to"), "{status:?}");
    let run = cluster.gitsync(&["resume", "web"]);
    assert_eq!(run.code, 0, "{run:?}");
    web.wait(&cluster, "3");

    // Through the agent's API.
    let run = cluster.gitsync(&[
        "suspend",
        "web",
        "--agent",
        &base,
        "--token",
        "cli-token",
        "--reason",
        "freeze",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        get_json(&base, "/api/v1/apps/web")["suspended"]["reason"],
        "freeze"
    );
    let run = cluster.gitsync(&["resume", "web", "--agent", &base, "--token", "wrong"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("401"), "{run:?}");
    let run = cluster.gitsync(&["resume", "web", "--agent", &base, "--token", "cli-token"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(get_json(&base, "/api/v1/apps/web")["suspended"].is_null());
    drop(web);
}

/// `git <args>` in `dir`, which must succeed.
fn git(dir: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn rollback_makes_a_revert_commit_that_the_agent_syncs() {
    let cluster = Cluster::start();
    let (tmp, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    // A bare repository stands in for the Git server; people work in a clone of it.
    let origin = tmp.path().join("origin.git");
    let clone = tmp.path().join("clone");
    git(
        tmp.path(),
        &[
            "init",
            "-q",
            "--bare",
            "-b",
            "main",
            origin.to_str().expect("utf-8"),
        ],
    );
    git(
        tmp.path(),
        &["init", "-q", "-b", "main", clone.to_str().expect("utf-8")],
    );
    git(
        &clone,
        &["remote", "add", "origin", origin.to_str().expect("utf-8")],
    );
    let write = |v: &str| {
        git(&clone, &["pull", "-q", "--ff-only", "origin", "main"]);
        write_files(
            &clone,
            &[
                ("web/ns.yaml", &namespace("rv-web")),
                ("web/cm.yaml", &config_map("rv-web", "web", v)),
                ("other/keep.txt", v),
            ],
        );
        let commit = commit_all(&clone, &format!("web {v}"));
        git(&clone, &["push", "-q", "origin", "main"]);
        commit
    };
    write_files(&clone, &[("README", "app\n")]);
    commit_all(&clone, "init");
    git(&clone, &["push", "-q", "origin", "main"]);
    let v1 = write("1");
    secret(&cluster, "gitsync-api", &[("token", "rv-token")]);
    let config = format!(
        "api:\n  tokenSecret: {{name: gitsync-api, key: token}}\napps:\n  - {{name: web, repo: '{}', path: web, interval: 1s}}\n",
        origin.display()
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    let cluster = &cluster;
    let at = |v: &'static str| {
        move || (value(cluster, "rv-web", "web").as_deref() == Some(v)).then_some(())
    };
    eventually(WAIT, "v1 synced", at("1"));
    write("2");
    eventually(WAIT, "v2 synced", at("2"));

    // Through the API: the agent commits the revert, pushes it and syncs it.
    let body = format!("{{\"to\": \"{v1}\"}}");
    let (code, reply) = post(&base, "/api/v1/apps/web/rollback", Some("rv-token"), &body);
    assert_eq!(code, 200, "{reply}");
    let reverted = reply["reverted"].as_str().expect("commit").to_owned();
    eventually(WAIT, "the revert synced", at("1"));
    let server = git2::Repository::open_bare(&origin).expect("origin");
    let tip = server
        .find_reference("refs/heads/main")
        .and_then(|r| r.peel_to_commit())
        .expect("tip");
    assert_eq!(tip.id().to_string(), reverted);
    assert!(
        tip.message()
            .unwrap_or_default()
            .contains(&format!("Gitsync-Rollback-To: {v1}")),
        "{:?}",
        tip.message()
    );
    let entry = eventually(WAIT, "the rollback in the history", || {
        history(cluster, "web")
            .into_iter()
            .find(|e| e["revision"] == reverted.as_str() && e["result"] == "Succeeded")
    });
    assert_eq!(entry["trigger"], "rollback", "{entry}");
    assert_eq!(entry["rollbackTo"], v1.as_str(), "{entry}");
    // Other paths keep the tip's content.
    git(&clone, &["pull", "-q", "--ff-only", "origin", "main"]);
    assert_eq!(
        std::fs::read_to_string(clone.join("other/keep.txt")).expect("read"),
        "2"
    );

    // The CLI does the same from anywhere (the agent published the app's source).
    let v3 = write("3");
    eventually(WAIT, "v3 synced", at("3"));
    let run = cluster.gitsync(&["rollback", "web", "--to", &v1]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("the agent syncs it"), "{run:?}");
    eventually(WAIT, "the CLI's revert synced", at("1"));

    // A push the server refuses (its branch is locked): the exact commands to do it
    // by hand.
    write("4");
    eventually(WAIT, "v4 synced", at("4"));
    std::fs::write(origin.join("refs/heads/main.lock"), "").expect("lock the branch");
    let run = cluster.gitsync(&["rollback", "web", "--to", &v3]);
    assert_eq!(run.code, 1, "{run:?}");
    for expected in [
        "git clone",
        &format!("git checkout {v3} -- web"),
        "git push origin HEAD:main",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing: {run:?}"
        );
    }
    assert_eq!(value(cluster, "rv-web", "web").as_deref(), Some("4"));
    drop(agent);
}

#[test]
fn an_app_uses_the_shared_policies_its_config_names_and_nothing_else_from_them() {
    let cluster = Cluster::start();
    let (repo, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let recreate = crate::rollouts::policy("team-recreate", "  strategy:\n    type: recreate\n");
    write_files(
        repo.path(),
        &[
            ("policies/team.yaml", &recreate),
            ("bad-policies/cm.yaml", &config_map("ro", "sneaky", "1")),
            ("apps/ro/ns.yaml", crate::rollouts::NS),
            ("apps/ro/svc.yaml", crate::rollouts::SERVICE),
            (
                "apps/ro/web.yaml",
                &crate::rollouts::web("web:1", 2, "team-recreate", ""),
            ),
        ],
    );
    commit_all(repo.path(), "shared policies");
    let repo_path = repo.path().display();
    let config = format!(
        "apps:\n  - {{name: ro, repo: '{repo_path}', path: apps/ro, interval: 1s, policies: [policies]}}\n  \
         - {{name: other, repo: '{repo_path}', path: apps/ro, interval: 1s, policies: [bad-policies]}}\n"
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    let ro = eventually(WAIT, "app ro synced with its shared policy", || {
        let s = get_json(&base, "/api/v1/apps/ro");
        (s["sync"] == "Synced").then_some(s)
    });
    let rollouts = ro["rollouts"].as_array().cloned().unwrap_or_default();
    assert!(
        rollouts.iter().any(|r| r["policy"] == "team-recreate"),
        "{ro}"
    );
    let other = eventually(WAIT, "app other refused", || {
        let s = get_json(&base, "/api/v1/apps/other");
        (s["sync"] == "Failed").then_some(s)
    });
    let error = other["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("shared-policies/bad-policies/cm.yaml:1:1")
            && error.contains("not a ConfigMap"),
        "{other}"
    );
    assert!(value(&cluster, "ro", "sneaky").is_none());
    drop(agent);
}

#[test]
fn the_cli_reads_diffs_and_syncs_through_the_agent() {
    let cluster = Cluster::start();
    let web = Web::start(&cluster, "svc-cli", "cli-token");
    let agent = ["--agent", web.base.as_str()];
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(agent);
        crate::support::gitsync(&all)
    };

    let all = run(&["status"]);
    assert_eq!(all.code, 0, "{all:?}");
    assert!(
        all.stdout
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("Synced") && l.contains(&web.v1[..8])),
        "{all:?}"
    );
    let one = run(&["status", "web", "-o", "json"]);
    assert_eq!(one.json()["revision"]["commit"], web.v1.as_str(), "{one:?}");
    let history = run(&["history", "web", "-o", "json"]);
    assert_eq!(history.json()[0]["result"], "Succeeded", "{history:?}");
    let unknown = run(&["history", "nope"]);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("no app named"), "{unknown:?}");

    // Suspended, a new commit waits: diff says what a sync would do, sync does it.
    let suspended = run(&["suspend", "web", "--token", "cli-token"]);
    assert_eq!(suspended.code, 0, "{suspended:?}");
    let v2 = web.write("2");
    let diff = eventually(WAIT, "the diff to see v2", || {
        let d = run(&["diff", "web"]);
        d.stdout.contains(&v2).then_some(d)
    });
    assert_eq!(diff.code, 1, "{diff:?}");
    assert!(diff.stdout.contains("+  value: \"2\""), "{diff:?}");
    assert!(diff.stdout.contains("1 to update"), "{diff:?}");
    let synced = run(&["sync", "web", "--token", "cli-token"]);
    assert_eq!(synced.code, 0, "{synced:?}");
    assert_eq!(value(&cluster, "svc-cli", "web").as_deref(), Some("2"));
    let clean = run(&["diff", "web"]);
    assert_eq!(clean.code, 0, "{clean:?}");
}
