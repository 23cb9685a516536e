//! `cargo bench -p gitsync-agent --bench agent`: the `gitsync-agent` binary as it runs
//! in a cluster, against the local cluster (in this process, on loopback), serving an
//! app from a Git repository with a GitHub webhook receiver.
//!
//! 1. **Webhook to first write**: an app of N = 5,000 ConfigMaps (+1 Namespace) is
//!    synced; then 100 times: one ConfigMap changes in a new commit, a signed GitHub
//!    push is POSTed, and the time until the API server sees the first write to the
//!    app's namespace is measured (the emulator's write counter, polled every 0.2 ms;
//!    the agent's history entry in its own namespace is not counted). The next push
//!    waits until that sync finished. The app's interval is an hour, so only the
//!    webhook can explain the write. Peer: Argo CD notices a commit by polling every
//!    120–180 s by default (its documented `timeout.reconciliation` of 120 s plus up to
//!    60 s of jitter), without a webhook configured.
//! 2. **Resident memory**: a fresh agent syncs N = 1,000 and 10,000 ConfigMaps and its
//!    RSS (`/proc/<pid>/status` VmRSS) is sampled every second over the last minute of
//!    a settle time, 10 minutes as the target says (`GITSYNC_BENCH_SETTLE=60` for a
//!    quicker look), with fetches (every minute), drift checks and watches running as
//!    usual: the median is the agent's size, the max includes a fetch or a drift check
//!    caught while it runs. Peers, as published: Flux's kustomize-controller about
//!    175 MiB for about 4,000 objects; Argo CD's application controller 384–765 MiB for
//!    about 4,200.
//!
//! `GITSYNC_BENCH_WEBHOOK_OBJECTS=5000`, `GITSYNC_BENCH_PUSHES=100`,
//! `GITSYNC_BENCH_MEMORY=1000,10000`, `GITSYNC_BENCH_SETTLE=600` choose the sizes;
//! `GITSYNC_BENCH_AGENT_LOG=info` shows the agent's log at that level;
//! `GITSYNC_BENCH_AGENT_BIN=PATH` runs another build of the agent (to compare builds).
#![allow(
    clippy::print_stdout,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use gitsync_local_cluster::LocalCluster;
use hmac::{KeyInit as _, Mac as _};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, PostParams};
use tokio::runtime::Runtime;

const NAMESPACE: &str = "bench";
const SECRET: &str = "bench-webhook-secret";

fn main() {
    let objects = env_usize("GITSYNC_BENCH_WEBHOOK_OBJECTS", 5_000);
    let pushes = env_usize("GITSYNC_BENCH_PUSHES", 100);
    let memory = std::env::var("GITSYNC_BENCH_MEMORY").map_or_else(
        |_| vec![1_000, 10_000],
        |s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
    );
    let settle = Duration::from_secs(
        std::env::var("GITSYNC_BENCH_SETTLE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600),
    );
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("lc-server")
        .enable_all()
        .build()
        .expect("runtime");

    if objects > 0 && pushes > 0 {
        webhook_latency(&server, objects, pushes);
    }
    if !memory.is_empty() {
        println!(
            "\n2. agent resident memory {} s after syncing N ConfigMaps",
            settle.as_secs()
        );
        println!(
            "{:>7}  {:>10}  {:>10}  {:>8}  peers (published)",
            "N", "RSS MiB", "max MiB", "target"
        );
        for n in memory {
            let (median, max) = resident_after(&server, n, settle);
            let target = if n <= 1_000 { "≤ 25" } else { "≤ 60" };
            println!(
                "{n:>7}  {median:>10.1}  {max:>10.1}  {target:>8}  Flux kustomize-controller ~175 MiB @ ~4,000; Argo CD controller 384–765 MiB @ ~4,200"
            );
        }
    }
}

fn webhook_latency(server: &Runtime, objects: usize, pushes: usize) {
    let setup = Setup::new(server, objects, "1h");
    let mut agent = setup.agent();
    Setup::wait_synced(&agent, Duration::from_mins(10));
    let mut latencies = Vec::with_capacity(pushes);
    for i in 0..pushes {
        setup.write(i % objects, &format!("push-{i}"));
        let commit = setup.commit(&format!("change {i}"));
        let before = setup.app_writes();
        let sent = Instant::now();
        setup.push(&agent, &commit);
        let first = loop {
            if setup.app_writes() > before {
                break sent.elapsed();
            }
            assert!(
                sent.elapsed() < Duration::from_mins(1),
                "no write within a minute"
            );
            std::thread::sleep(Duration::from_micros(200));
        };
        latencies.push(first);
        Setup::wait_revision(&agent, &commit);
    }
    agent.stop();
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "1. webhook → first write at the API server, app of {objects} ConfigMaps, one changed, {pushes} pushes"
    );
    println!(
        "{:>10}  {:>10}  {:>10}  {:>10}  {:>10}  peer",
        "p50", "p90", "p99", "max", "target"
    );
    println!(
        "{:>8.1}ms  {:>8.1}ms  {:>8.1}ms  {:>8.1}ms  {:>10}  Argo CD polls every 120–180 s (no webhook)",
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(0.99)),
        ms(at(1.0)),
        "p50≤250ms p99≤1s"
    );
}

/// The agent's resident memory over the last minute of `settle` (the last tenth when
/// shorter), sampled every second: (median, max). A drift check or fetch running at a
/// sample's moment shows in the max, not as the agent's steady size.
fn resident_after(server: &Runtime, n: usize, settle: Duration) -> (f64, f64) {
    let setup = Setup::new(server, n, "1m");
    let mut agent = setup.agent();
    Setup::wait_synced(&agent, Duration::from_mins(15));
    let window = Duration::from_mins(1)
        .min(settle / 10)
        .max(Duration::from_secs(1));
    std::thread::sleep(settle.saturating_sub(window));
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < window {
        samples.push(agent.rss_mib());
        std::thread::sleep(Duration::from_secs(1));
    }
    agent.stop();
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[samples.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A local cluster with the agent's Secret, a repository holding the app, and the
/// agent's configuration.
struct Setup {
    local: LocalCluster,
    dir: tempfile::TempDir,
    repo: git2::Repository,
    config: PathBuf,
}

/// A running agent.
struct Agent {
    child: Child,
    base: String,
}

impl Agent {
    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Setup {
    fn new(server: &Runtime, objects: usize, interval: &str) -> Self {
        let local = server
            .block_on(LocalCluster::ephemeral())
            .expect("local cluster");
        let client = {
            let _runtime = server.enter();
            local.client().expect("client")
        };
        server.block_on(async {
            let ns: Api<Namespace> = Api::all(client.clone());
            let body: Namespace = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "gitsync-system"}
            }))
            .expect("namespace");
            ns.create(&PostParams::default(), &body)
                .await
                .expect("namespace");
            let secrets: Api<Secret> = Api::namespaced(client, "gitsync-system");
            let secret: Secret = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "gitsync-webhooks"},
                "stringData": {"github": SECRET},
            }))
            .expect("secret");
            secrets
                .create(&PostParams::default(), &secret)
                .await
                .expect("secret");
        });
        let dir = tempfile::tempdir().expect("tmp");
        let repo = git2::Repository::init(dir.path().join("repo")).expect("repo");
        let setup = Self {
            local,
            config: dir.path().join("config.yaml"),
            dir,
            repo,
        };
        let app = setup.app_dir();
        std::fs::create_dir_all(&app).expect("app dir");
        std::fs::write(
            app.join("ns.yaml"),
            format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n"),
        )
        .expect("write");
        for i in 0..objects {
            setup.write(i, "v0");
        }
        setup.commit("app");
        let repo_path = setup.repo_path();
        std::fs::write(
            &setup.config,
            format!(
                "webhooks:\n  github: {{secret: {{name: gitsync-webhooks, key: github}}}}\n\
                 apps:\n  - {{name: bench, repo: '{}', path: app, interval: {interval}}}\n",
                repo_path.display()
            ),
        )
        .expect("config");
        setup
    }

    fn repo_path(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    fn app_dir(&self) -> PathBuf {
        self.repo_path().join("app")
    }

    fn write(&self, i: usize, value: &str) {
        std::fs::write(
            self.app_dir().join(format!("cm-{i:05}.yaml")),
            format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i:05}\n  namespace: {NAMESPACE}\ndata:\n  value: \"{value}\"\n"
            ),
        )
        .expect("write");
    }

    fn commit(&self, message: &str) -> String {
        let mut index = self.repo.index().expect("index");
        index
            .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
            .expect("add");
        index.write().expect("index");
        let tree = self
            .repo
            .find_tree(index.write_tree().expect("tree"))
            .expect("tree");
        let sig = git2::Signature::now("bench", "bench@example.com").expect("sig");
        let parent = self
            .repo
            .find_reference("refs/heads/main")
            .ok()
            .and_then(|r| r.peel_to_commit().ok());
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        self.repo
            .commit(
                Some("refs/heads/main"),
                &sig,
                &sig,
                message,
                &tree,
                &parents,
            )
            .expect("commit")
            .to_string()
    }

    fn agent(&self) -> Agent {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let binary = std::env::var_os("GITSYNC_BENCH_AGENT_BIN").map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_gitsync-agent")),
            PathBuf::from,
        );
        let child = Command::new(binary)
            .args(["--config", path(&self.config), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--cache-dir", path(&self.dir.path().join("cache"))])
            .args([
                "--cluster",
                "kube",
                "--kubeconfig",
                path(self.local.kubeconfig_path()),
            ])
            .args(["--namespace", "gitsync-system"])
            .env(
                "RUST_LOG",
                std::env::var("GITSYNC_BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(if std::env::var_os("GITSYNC_BENCH_AGENT_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .expect("start gitsync-agent");
        Agent {
            child,
            base: format!("127.0.0.1:{port}"),
        }
    }

    fn app_writes(&self) -> u64 {
        self.local
            .stats()
            .writes_by_namespace
            .get(NAMESPACE)
            .copied()
            .unwrap_or(0)
    }

    /// The app's status from the agent's API, if it answers.
    fn status(agent: &Agent) -> Option<serde_json::Value> {
        let (code, body) = request(&agent.base, "GET", "/api/v1/apps/bench", &[], b"")?;
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    fn wait_synced(agent: &Agent, limit: Duration) {
        let started = Instant::now();
        loop {
            if Self::status(agent).is_some_and(|s| s["sync"] == "Synced") {
                return;
            }
            assert!(
                started.elapsed() < limit,
                "the first sync took over {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_revision(agent: &Agent, commit: &str) {
        let started = Instant::now();
        loop {
            if Self::status(agent).is_some_and(|s| s["revision"]["commit"] == commit) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_mins(2),
                "{commit} not synced"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn push(&self, agent: &Agent, commit: &str) {
        let body = serde_json::json!({
            "ref": "refs/heads/main",
            "after": commit,
            "repository": {"clone_url": self.repo_path().display().to_string()},
        })
        .to_string();
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(body.as_bytes());
        let signature = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        let headers = [
            ("X-GitHub-Event", "push"),
            ("X-Hub-Signature-256", signature.as_str()),
            ("Content-Type", "application/json"),
        ];
        let (code, text) = request(
            &agent.base,
            "POST",
            "/hooks/github",
            &headers,
            body.as_bytes(),
        )
        .expect("push");
        assert_eq!(code, 202, "{text}");
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// One HTTP/1.1 request over a new connection: (status, body).
fn request(
    authority: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_nodelay(true).ok()?;
    let extra = headers.iter().fold(String::new(), |mut out, (k, v)| {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
        out
    });
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let code = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, rest.to_owned()))
}
