//! Test support: the real binaries, temporary local clusters and apps, a tiny HTTP
//! client for the local cluster's API, and polling with a deadline (tests never sleep
//! to wait for something).

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Path of a workspace binary, built once per test run with the same profile.
pub fn bin(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // target/<profile>/deps/e2e-<hash> → target/<profile>
        let exe = std::env::current_exe().expect("test executable path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .to_path_buf();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args([
            "build",
            "--quiet",
            "--bin",
            "gitsync",
            "--bin",
            "gitsync-agent",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        let status = cmd
            .current_dir(workspace())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
        dir
    });
    dir.join(name)
}

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// `example-repo/` in the workspace.
pub fn example_repo() -> PathBuf {
    workspace().join("example-repo")
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The result of running a binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn from(output: &Output) -> Self {
        Self {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A local cluster running as a `gitsync local-cluster start` process in a temporary
/// state directory; stopped on drop.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub url: String,
}

impl Cluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let run = gitsync_in(dir.path(), &["local-cluster", "start"]);
        assert_eq!(run.code, 0, "{run:?}");
        let url = std::fs::read_to_string(dir.path().join("server.url"))
            .expect("server.url")
            .trim()
            .to_owned();
        // The agent's namespace, as `deploy/` installs it; the sync history goes there.
        let (code, body) = http_json(
            &url,
            "POST",
            "/api/v1/namespaces",
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"gitsync-system"}}"#,
        );
        assert_eq!(code, 201, "{body}");
        Self { dir, url }
    }

    /// `--cluster local --local-dir <dir>`: the flags that point either binary here.
    pub fn flags(&self) -> [&str; 4] {
        let dir = self.dir.path().to_str().expect("utf-8 path");
        ["--cluster", "local", "--local-dir", dir]
    }

    /// Runs `gitsync <args> --cluster local --local-dir <dir>`.
    pub fn gitsync(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(self.flags());
        gitsync_in(&workspace(), &all)
    }

    /// Runs `gitsync <args> --cluster local --local-dir <dir>` on a pseudo-terminal
    /// (util-linux `script`), as a person at a shell would: stdout and stderr both reach
    /// the terminal (returned, with `\r\n` as `\n`), colors on by default.
    pub fn gitsync_on_a_terminal(&self, args: &[&str]) -> (i32, String) {
        let line = std::iter::once(bin("gitsync").display().to_string())
            .chain(args.iter().chain(&self.flags()).map(|a| format!("'{a}'")))
            .collect::<Vec<_>>()
            .join(" ");
        let out = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(workspace())
            .env_remove("NO_COLOR")
            .env("TERM", "xterm")
            .output()
            .expect("script (util-linux)");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        )
    }

    /// GET a path of the API; `None` on 404.
    pub fn get(&self, path: &str) -> Option<Value> {
        let (code, body) = http(&self.url, "GET", path);
        match code {
            200 => Some(serde_json::from_str(&body).expect("JSON body")),
            404 => None,
            other => panic!("GET {path}: {other} {body}"),
        }
    }

    /// Write requests counted by the emulator since the last reset, apart from the
    /// sync history's (in gitsync-system): the writes to the app's objects.
    pub fn writes(&self) -> u64 {
        let stats = self.stats();
        let history = stats["writes_by_namespace"]["gitsync-system"]
            .as_u64()
            .unwrap_or(0);
        stats["writes"].as_u64().expect("writes") - history
    }

    pub fn reset_stats(&self) {
        http(&self.url, "DELETE", "/_gitsync/stats");
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Sets the emulator's injected faults (`POST /_gitsync/faults`).
    pub fn faults(&self, config: &Value) {
        let (code, body) = http_json(&self.url, "POST", "/_gitsync/faults", &config.to_string());
        assert_eq!(code, 200, "{body}");
    }

    /// The emulator's request counters.
    pub fn stats(&self) -> Value {
        let (_, body) = http(&self.url, "GET", "/_gitsync/stats");
        serde_json::from_str(&body).expect("stats JSON")
    }
}

/// A temporary app directory with these files (path, content).
pub fn app_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    write_files(dir.path(), files);
    dir
}

/// Writes (or with empty content, removes) files under `root`.
pub fn write_files(root: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let path = root.join(path);
        if content.is_empty() {
            let _ = std::fs::remove_file(&path);
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, content).expect("write");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = gitsync_in(
            &workspace(),
            &[
                "local-cluster",
                "stop",
                "--local-dir",
                self.dir.path().to_str().unwrap_or_default(),
            ],
        );
    }
}

/// Runs `gitsync` with `--local-dir` pointing at `dir` for local-cluster commands.
fn gitsync_in(cwd: &Path, args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("gitsync"));
    cmd.args(args).current_dir(cwd).env("NO_COLOR", "1");
    if args.first() == Some(&"local-cluster") && !args.contains(&"--local-dir") {
        cmd.arg("--local-dir").arg(cwd);
    }
    Run::from(&cmd.output().expect("run gitsync"))
}

/// Runs `gitsync` without a cluster (render, and error cases).
pub fn gitsync(args: &[&str]) -> Run {
    let mut cmd = Command::new(bin("gitsync"));
    cmd.args(args).current_dir(workspace()).env("NO_COLOR", "1");
    Run::from(&cmd.output().expect("run gitsync"))
}

/// Starts `gitsync-agent` in the background; killed on drop.
/// A running `gitsync-agent`; its log is drained as it is written (an agent blocked
/// on a full stderr pipe would stall the test), and returned by [`Agent::stop`].
pub struct Agent(Child, std::thread::JoinHandle<String>);

impl Agent {
    /// Starts an agent syncing `path` of the repository at `repo` onto `cluster`,
    /// fetching every second, its cache in `cache`; `extra` flags appended.
    pub fn for_app(
        cluster: &Cluster,
        repo: &Path,
        path: &str,
        cache: &Path,
        extra: &[&str],
    ) -> Self {
        let mut args = vec![
            "--repo",
            repo.to_str().expect("utf-8"),
            "--ref",
            "main",
            "--path",
            path,
            "--interval",
            "1s",
            "--cache-dir",
            cache.to_str().expect("utf-8"),
        ];
        args.extend(cluster.flags());
        args.extend(extra);
        Self::start(&args)
    }

    pub fn start(args: &[&str]) -> Self {
        Self::start_env(args, &[])
    }

    /// [`start`](Self::start) with these environment variables set.
    pub fn start_env(args: &[&str], env: &[(&str, &Path)]) -> Self {
        let mut child = Command::new(bin("gitsync-agent"))
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agent");
        let mut err = child.stderr.take().expect("stderr");
        let log = std::thread::spawn(move || {
            let mut raw = Vec::new();
            let _ = err.read_to_end(&mut raw);
            String::from_utf8_lossy(&raw).into_owned()
        });
        Self(child, log)
    }

    /// The running agent's environment (`/proc/<pid>/environ`), one `KEY=VALUE` per
    /// entry.
    pub fn environment(&self) -> Vec<String> {
        let raw = std::fs::read(format!("/proc/{}/environ", self.0.id())).unwrap_or_default();
        raw.split(|b| *b == 0)
            .map(|e| String::from_utf8_lossy(e).into_owned())
            .collect()
    }

    /// Sends SIGTERM (as the kubelet does) and waits up to `within` for the agent to
    /// exit on its own: its exit status, or `None` (then it is killed).
    pub fn terminate(mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.0.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Stops the agent and returns its log.
    pub fn stop(mut self) -> String {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let log = std::mem::replace(&mut self.1, std::thread::spawn(String::new));
        log.join().unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A self-signed certificate for 127.0.0.1 and its key, as PEM files in `dir` (see
/// [`gitsync_tls::testing::self_signed`]).
pub fn self_signed_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = gitsync_tls::testing::self_signed("127.0.0.1");
    let paths = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&paths.0, cert).expect("write the certificate");
    std::fs::write(&paths.1, key).expect("write the key");
    paths
}

/// A Python server of `tests/e2e/fixtures/` that prints the port it listens on; killed
/// on drop.
pub struct Fixture(Child, pub u16);

impl Fixture {
    pub fn start(script: &str, args: &[&Path]) -> Self {
        use std::io::BufRead as _;
        let mut child = Command::new("python3")
            .arg(workspace().join("tests/e2e/fixtures").join(script))
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("port");
        let port = line.trim().parse().expect("a port");
        Self(child, port)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `addr` (an agent started with `--listen addr`).
pub fn await_listen(addr: &str) {
    eventually(Duration::from_secs(20), "the agent to listen", || {
        TcpStream::connect(addr).ok().map(drop)
    });
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 request to the local cluster: (status code, body).
pub fn http(base: &str, method: &str, path: &str) -> (u16, String) {
    request(base, method, path, None)
}

/// A request with a JSON body: (status code, body).
pub fn http_json(base: &str, method: &str, path: &str, body: &str) -> (u16, String) {
    request(base, method, path, Some(("application/json", body)))
}

/// A JSON merge patch; returns the status code.
pub fn http_patch(base: &str, path: &str, body: &str) -> u16 {
    request(
        base,
        "PATCH",
        path,
        Some(("application/merge-patch+json", body)),
    )
    .0
}

/// Sends one request, with an optional (content type, body): (status code, body).
fn request(base: &str, method: &str, path: &str, body: Option<(&str, &str)>) -> (u16, String) {
    let mut headers = Vec::new();
    if let Some((t, _)) = body {
        headers.push(("Content-Type", t));
    }
    let body = body.map_or(&b""[..], |(_, b)| b.as_bytes());
    http_with(base, method, path, &headers, body)
}

/// A request with any headers and a raw body: (status code, body). A server that
/// answers before reading a large body (413) is fine: the answer is still read.
pub fn http_with(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let authority = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = TcpStream::connect(authority).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let extra = headers.iter().fold(String::new(), |mut out, (k, v)| {
        out.push_str(&format!("{k}: {v}\r\n"));
        out
    });
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\n{extra}Connection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("write");
    // The server may refuse the body part-way (413) and close: keep its answer.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (code, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Commits everything in the working tree of the repository at `dir` (created if need
/// be) on `main`, which HEAD then names; returns the commit.
pub fn commit_all(dir: &Path, message: &str) -> String {
    let repo = git2::Repository::open(dir)
        .or_else(|_| git2::Repository::init(dir))
        .expect("repo");
    let oid = commit_worktree(&repo, "refs/heads/main", Some("refs/heads/main"), message);
    repo.set_head("refs/heads/main").expect("head");
    oid
}

/// Commits everything in `repo`'s working tree with `parent`'s tip as its parent (none:
/// a root commit) and points `reference` at it, whatever it pointed at before (a new
/// branch, or a force push); returns the commit.
pub fn commit_worktree(
    repo: &git2::Repository,
    reference: &str,
    parent: Option<&str>,
    message: &str,
) -> String {
    let mut index = repo.index().expect("index");
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .expect("add");
    index.update_all(["*"], None).expect("update");
    index.write().expect("write index");
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::now("test", "test@example.com").expect("sig");
    let parent = parent
        .and_then(|p| repo.find_reference(p).ok())
        .and_then(|r| r.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    let oid = repo
        .commit(None, &sig, &sig, message, &tree, &parents)
        .expect("commit");
    repo.reference(reference, oid, true, message)
        .expect("reference");
    oid.to_string()
}

/// The HEAD commit of the repository holding `dir`.
pub fn git_head(dir: &Path) -> String {
    let repo = git2::Repository::discover(dir).expect("repo");
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .expect("HEAD commit");
    head.id().to_string()
}

/// The app's history entries, newest first, straight from the cluster.
pub fn history(cluster: &Cluster, app: &str) -> Vec<Value> {
    let path = format!("/api/v1/namespaces/gitsync-system/configmaps/gitsync-history-{app}");
    cluster.get(&path).map_or_else(Vec::new, |cm| {
        let text = cm["data"]["history.json"]
            .as_str()
            .unwrap_or("[]")
            .to_owned();
        serde_json::from_str(&text).expect("history JSON")
    })
}
