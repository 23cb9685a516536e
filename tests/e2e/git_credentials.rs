//! An app's Git credentials come from a Secret in the agent's namespace: a token goes
//! to the Git server as Basic credentials, a refused or missing one fails the app
//! (naming the Secret, never the token) without touching the others, a rotated token
//! is used without restarting the agent, and `gitsync rollback` from a machine without
//! the token hands back the git commands instead; and the same over HTTPS: against a
//! TLS server whose certificate is not trusted the fetch fails at once, naming the
//! certificate, and it succeeds once `SSL_CERT_FILE` or `ca.crt` in the Secret
//! vouches for it.

use std::time::Duration;

use gitsync_tests::git_http::GitHttp;

use crate::service::{secret, serve, serve_env};
use crate::support::{
    Cluster, Fixture, commit_all, eventually, http, http_patch, self_signed_certificate,
    write_files,
};

const WAIT: Duration = Duration::from_mins(1);

fn app(base: &str, name: &str) -> serde_json::Value {
    let (_, body) = http(base, "GET", &format!("/api/v1/apps/{name}"));
    serde_json::from_str(&body).unwrap_or_default()
}

/// Waits until app `name`'s last error contains `text`; returns the app.
fn failing_with(base: &str, name: &str, text: &str) -> serde_json::Value {
    eventually(WAIT, &format!("{name} failing with {text:?}"), || {
        let a = app(base, name);
        a["lastError"]
            .as_str()
            .is_some_and(|e| e.contains(text))
            .then_some(a)
    })
}

#[test]
fn a_token_from_a_secret_is_sent_refused_reported_and_rotated() {
    const OLD: &str = "old-token-4f1c";
    const NEW: &str = "new-token-9b2e";
    let cluster = Cluster::start();
    let (root, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let repo = root.path().join("private");
    write_files(
        &repo,
        &[
            (
                "app/ns.yaml",
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: private\n",
            ),
            (
                "app/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n  namespace: private\ndata:\n  v: \"1\"\n",
            ),
        ],
    );
    let first = commit_all(&repo, "private app");
    let server = GitHttp::serve(root.path(), Some(("deploy", NEW)));
    secret(
        &cluster,
        "git-token",
        &[("username", "deploy"), ("token", OLD)],
    );

    let config = format!(
        "apps:\n  - {{name: private, repo: '{url}', path: app, interval: 1s, credentials: {{secret: git-token}}}}\n  \
         - {{name: nosecret, repo: '{url}', path: app, interval: 1s, credentials: {{secret: absent}}}}\n",
        url = server.url("private"),
    );
    let (agent, base) = serve(&cluster, &config, work.path(), &[]);

    // The old token is refused: the app fails saying so; the server saw Basic
    // credentials (a request it answered 401 is logged like any other).
    let refused = failing_with(&base, "private", "rejected the token");
    assert_eq!(refused["sync"], "Failed", "{refused}");
    assert!(
        !server.requests().is_empty(),
        "the agent reached the server"
    );
    let missing = failing_with(
        &base,
        "nosecret",
        "the credentials Secret absent does not exist",
    );
    assert_eq!(missing["sync"], "Failed", "{missing}");

    // The token is rotated in the Secret: the next fetch uses it, no restart.
    let status = http_patch(
        &cluster.url,
        "/api/v1/namespaces/gitsync-system/secrets/git-token",
        &format!(r#"{{"stringData": {{"token": "{NEW}"}}}}"#),
    );
    assert_eq!(status, 200);
    let synced = eventually(WAIT, "the app synced with the rotated token", || {
        let a = app(&base, "private");
        (a["sync"] == "Synced").then_some(a)
    });
    assert!(synced["lastError"].is_null(), "{synced}");
    let cm = cluster
        .get("/api/v1/namespaces/private/configmaps/cm")
        .expect("the app's ConfigMap");
    assert_eq!(cm["data"]["v"], "1");
    assert_eq!(
        app(&base, "nosecret")["sync"],
        "Failed",
        "the other app still lacks its Secret"
    );

    // `gitsync rollback` on a machine without the token: it cannot fetch, and hands
    // back the git commands that do the same with the person's own credentials.
    let run = cluster.gitsync(&["rollback", "private", "--to", &first]);
    assert_eq!(run.code, 1, "{run:?}");
    for expected in [
        "cannot fetch",
        &format!("git clone {}", server.url("private")),
        &format!("to=$(git rev-parse --verify '{first}^{{commit}}')"),
        "git checkout \"$to\" -- app",
        "git push origin HEAD:main",
    ] {
        assert!(
            run.stdout.contains(expected),
            "{expected:?} missing: {run:?}"
        );
    }

    // Neither token is ever shown: not in the API, the metrics or the logs.
    let (_, apps) = http(&base, "GET", "/api/v1/apps");
    let (_, metrics) = http(&base, "GET", "/metrics");
    let logs = agent.stop();
    for (what, text) in [("API", &apps), ("metrics", &metrics), ("logs", &logs)] {
        for token in [OLD, NEW] {
            assert!(!text.contains(token), "the token is in the {what}:\n{text}");
        }
    }
}

#[test]
fn https_refuses_an_untrusted_certificate_at_once_and_trusts_ssl_cert_file_or_ca_crt() {
    let cluster = Cluster::start();
    let (root, work) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let repo = root.path().join("tls");
    write_files(
        &repo,
        &[(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: over-tls\n  namespace: default\ndata:\n  v: \"1\"\n",
        )],
    );
    commit_all(&repo, "over tls");
    let (cert, key) = self_signed_certificate(work.path());
    // `git http-backend` over TLS, every request needing the token.
    let server = Fixture::start(
        "git_https.py",
        &[
            root.path(),
            &cert,
            &key,
            "deploy".as_ref(),
            "tls-token".as_ref(),
        ],
    );
    secret(
        &cluster,
        "git-tls",
        &[("username", "deploy"), ("token", "tls-token")],
    );
    let config = format!(
        "apps:\n  - {{name: tls, repo: 'https://127.0.0.1:{}/tls', path: app, interval: 1s, credentials: {{secret: git-tls}}}}\n",
        server.1
    );
    let start = |env: &[(&str, &std::path::Path)]| serve_env(&cluster, &config, work.path(), env);
    let value = || {
        cluster
            .get("/api/v1/namespaces/default/configmaps/over-tls")
            .and_then(|cm| cm["data"]["v"].as_str().map(str::to_owned))
    };
    // Another certificate stands for the platform's roots, so "not trusted" does not
    // depend on what this machine trusts.
    let other = tempfile::tempdir().expect("tmp");
    let (unrelated, _) = self_signed_certificate(other.path());

    // Not trusted: the fetch fails at once, naming the certificate, the cluster is
    // untouched, and SIGTERM still ends the agent.
    let (agent, base) = start(&[("SSL_CERT_FILE", &unrelated)]);
    let refused = failing_with(&base, "tls", "the certificate of 127.0.0.1 is refused");
    let error = refused["lastError"].as_str().unwrap_or_default();
    assert!(
        error.contains("self-signed") && error.contains("ca.crt"),
        "{error}"
    );
    assert_eq!(value(), None);
    assert!(
        agent.terminate(Duration::from_secs(20)).is_some(),
        "SIGTERM did not end the agent"
    );

    // The server's certificate trusted through SSL_CERT_FILE (as OpenSSL reads it, for
    // a private CA): fetched over TLS with the token.
    let (agent, base) = start(&[("SSL_CERT_FILE", &cert)]);
    eventually(WAIT, "synced over TLS", || {
        (value().as_deref() == Some("1") && app(&base, "tls")["sync"] == "Synced").then_some(())
    });
    drop(agent);

    // Trusted through ca.crt in the app's credentials Secret instead, added while the
    // agent runs: the next fetch trusts it, no restart.
    write_files(
        &repo,
        &[(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: over-tls\n  namespace: default\ndata:\n  v: \"2\"\n",
        )],
    );
    commit_all(&repo, "over tls, trusted by the Secret");
    let (agent, base) = start(&[("SSL_CERT_FILE", &unrelated)]);
    failing_with(&base, "tls", "the certificate of 127.0.0.1 is refused");
    let pem = std::fs::read_to_string(&cert).expect("cert");
    let body = serde_json::json!({"stringData": {"ca.crt": pem}});
    let status = http_patch(
        &cluster.url,
        "/api/v1/namespaces/gitsync-system/secrets/git-tls",
        &body.to_string(),
    );
    assert_eq!(status, 200);
    eventually(WAIT, "synced over TLS trusted by ca.crt", || {
        (value().as_deref() == Some("2")).then_some(())
    });
    drop(agent);
}
