//! Webhooks: a signed push deploys at once (the interval is an hour), bad requests are
//! refused with the right status and change nothing, and a burst of pushes coalesces
//! into a few fetches.

use std::path::Path;
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};

use crate::service::{secret, serve};
use crate::support::{Cluster, commit_all, eventually, http, http_with, write_files};

const WAIT: Duration = Duration::from_secs(30);
const GITHUB_SECRET: &str = "gh-hook-secret";
const GITLAB_SECRET: &str = "gl-hook-secret";
const GENERIC_SECRET: &str = "generic-hook-secret";

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn write(repo: &Path, v: &str) -> String {
    write_files(
        repo,
        &[
            (
                "hook/ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: hook\n",
            ),
            (
                "hook/cm.yaml",
                &format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\n  namespace: hook\ndata:\n  value: \"{v}\"\n"
                ),
            ),
        ],
    );
    commit_all(repo, &format!("v{v}"))
}

fn value(cluster: &Cluster) -> Option<String> {
    cluster
        .get("/api/v1/namespaces/hook/configmaps/web")
        .and_then(|cm| cm["data"]["value"].as_str().map(str::to_owned))
}

fn github_push(repo: &Path, reference: &str, after: &str) -> String {
    serde_json::json!({
        "ref": reference,
        "after": after,
        "repository": {"clone_url": repo.display().to_string(), "full_name": "t/t"},
    })
    .to_string()
}

fn github(base: &str, event: &str, signature: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", event),
    ];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    http_with(base, "POST", "/hooks/github", &headers, body)
}

fn fetches(base: &str) -> u64 {
    let (_, metrics) = http(base, "GET", "/metrics");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gitsync_git_fetch_duration_seconds_count{app=\"web\"} "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn signed_pushes_deploy_at_once_and_bad_ones_are_refused() {
    let cluster = Cluster::start();
    let (repo, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write(repo.path(), "1");
    secret(
        &cluster,
        "gitsync-webhooks",
        &[
            ("github", GITHUB_SECRET),
            ("gitlab", GITLAB_SECRET),
            ("generic", GENERIC_SECRET),
        ],
    );
    let config = format!(
        "webhooks:\n  github: {{secret: {{name: gitsync-webhooks, key: github}}}}\n  \
         gitlab: {{secret: {{name: gitsync-webhooks, key: gitlab}}}}\n  \
         generic: {{secret: {{name: gitsync-webhooks, key: generic}}}}\n\
         apps:\n  - {{name: web, repo: '{}', path: hook, interval: 1h}}\n",
        repo.path().display()
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    eventually(WAIT, "v1 synced", || {
        (value(&cluster).as_deref() == Some("1")).then_some(())
    });

    // Ping.
    let ping = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    assert_eq!(
        github(&base, "ping", Some(&sign(GITHUB_SECRET, ping)), ping).0,
        200
    );

    let v2 = write(repo.path(), "2");
    let push = github_push(repo.path(), "refs/heads/main", &v2);
    let body = push.as_bytes();
    // Refused: no signature, a wrong one, the right one over another body, malformed
    // JSON, too large. None of them deploys.
    assert_eq!(github(&base, "push", None, body).0, 401);
    assert_eq!(
        github(&base, "push", Some(&sign("wrong", body)), body).0,
        401
    );
    assert_eq!(
        github(&base, "push", Some(&sign(GITHUB_SECRET, b"{}")), body).0,
        401
    );
    let broken = b"{\"ref\": ";
    let (code, text) = github(&base, "push", Some(&sign(GITHUB_SECRET, broken)), broken);
    assert_eq!(code, 400, "{text}");
    let huge = vec![b'x'; 10 << 20];
    assert_eq!(
        github(&base, "push", Some(&sign(GITHUB_SECRET, &huge)), &huge).0,
        413
    );
    // A push to another branch wakes no app.
    let other = github_push(repo.path(), "refs/heads/feature", &v2);
    let (code, text) = github(
        &base,
        "push",
        Some(&sign(GITHUB_SECRET, other.as_bytes())),
        other.as_bytes(),
    );
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("\"apps\":[]"), "{text}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        value(&cluster).as_deref(),
        Some("1"),
        "nothing deployed yet"
    );

    // The signed push deploys within moments (the interval is an hour).
    let sent = Instant::now();
    let (code, text) = github(&base, "push", Some(&sign(GITHUB_SECRET, body)), body);
    assert_eq!(code, 202, "{text}");
    assert!(text.contains("\"web\""), "{text}");
    eventually(WAIT, "v2 deployed by the webhook", || {
        (value(&cluster).as_deref() == Some("2")).then_some(())
    });
    eprintln!("github push to applied: {:?}", sent.elapsed());

    // GitLab: the token header.
    write(repo.path(), "3");
    let gl = serde_json::json!({
        "object_kind": "push", "ref": "refs/heads/main",
        "project": {"git_http_url": repo.path().display().to_string()},
    })
    .to_string();
    let gitlab = |token: &str| {
        http_with(
            &base,
            "POST",
            "/hooks/gitlab",
            &[("X-Gitlab-Event", "Push Hook"), ("X-Gitlab-Token", token)],
            gl.as_bytes(),
        )
    };
    assert_eq!(gitlab("nope").0, 401);
    assert_eq!(gitlab(GITLAB_SECRET).0, 202);
    eventually(WAIT, "v3 deployed by GitLab's hook", || {
        (value(&cluster).as_deref() == Some("3")).then_some(())
    });

    // Generic: HMAC over {"repo": …}.
    write(repo.path(), "4");
    let generic = serde_json::json!({"repo": repo.path().display().to_string()}).to_string();
    let sig = sign(GENERIC_SECRET, generic.as_bytes());
    let headers = [("X-Gitsync-Signature", sig.as_str())];
    assert_eq!(
        http_with(
            &base,
            "POST",
            "/hooks/generic",
            &headers,
            generic.as_bytes()
        )
        .0,
        202
    );
    eventually(WAIT, "v4 deployed by the generic hook", || {
        (value(&cluster).as_deref() == Some("4")).then_some(())
    });

    // A burst: 1,000 signed deliveries of one push make a couple of fetches (those
    // that arrive while the first fetch and sync run make one more; the rest find
    // the app at the pushed commit already).
    let v5 = write(repo.path(), "5");
    let before = fetches(&base);
    let push = github_push(repo.path(), "refs/heads/main", &v5);
    let body = push.as_bytes();
    let signature = sign(GITHUB_SECRET, body);
    let started = Instant::now();
    for _ in 0..1000 {
        assert_eq!(github(&base, "push", Some(&signature), body).0, 202);
    }
    let took = started.elapsed();
    eventually(WAIT, "v5 deployed after the burst", || {
        (value(&cluster).as_deref() == Some("5")).then_some(())
    });
    let made = fetches(&base) - before;
    eprintln!("1000 pushes in {took:?} made {made} fetches");
    assert!(made <= 3, "1000 pushes made {made} fetches");

    let (_, metrics) = http(&base, "GET", "/metrics");
    for line in [
        "gitsync_webhook_requests_total{receiver=\"github\",result=\"unauthorized\"} 3",
        "gitsync_webhook_requests_total{receiver=\"github\",result=\"malformed\"} 1",
        "gitsync_webhook_requests_total{receiver=\"github\",result=\"too_large\"} 1",
        "gitsync_webhook_requests_total{receiver=\"github\",result=\"ping\"} 1",
        "gitsync_webhook_requests_total{receiver=\"gitlab\",result=\"unauthorized\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    drop(agent);
}

#[test]
fn a_receiver_without_its_secret_is_not_enabled() {
    let cluster = Cluster::start();
    let (repo, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    write(repo.path(), "1");
    // GitHub is configured but its Secret does not exist; GitLab is not configured.
    let config = format!(
        "webhooks:\n  github: {{secret: {{name: missing, key: github}}}}\n\
         apps:\n  - {{name: web, repo: '{}', path: hook, interval: 1h}}\n",
        repo.path().display()
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);
    let push = github_push(repo.path(), "refs/heads/main", "0");
    let (code, text) = github(
        &base,
        "push",
        Some(&sign("", push.as_bytes())),
        push.as_bytes(),
    );
    assert_eq!(code, 503, "{text}");
    assert!(text.contains("missing"), "{text}");
    let (code, _) = http_with(&base, "POST", "/hooks/gitlab", &[], b"{}");
    assert_eq!(code, 404);
    drop(agent);
}
