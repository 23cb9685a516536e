//! `gitsync local-cluster start|stop|status|kubeconfig`: the embedded emulated API
//! server as a background process on loopback. `start` re-runs this binary as
//! `local-cluster serve` detached, waits until it answers, and prints the kubeconfig.

use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gitsync_local_cluster::Config;

use crate::args::LocalArgs;
use crate::output;

fn state_dir(args: &LocalArgs) -> PathBuf {
    args.local_dir
        .clone()
        .unwrap_or_else(gitsync_agent::config::default_local_dir)
}

/// URL of the running server, if it answers.
fn running(dir: &Path) -> Option<String> {
    let url = std::fs::read_to_string(dir.join("server.url")).ok()?;
    let url = url.trim().to_owned();
    let addr: std::net::SocketAddr = url
        .strip_prefix("http://")?
        .trim_end_matches('/')
        .parse()
        .ok()?;
    std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    Some(url)
}

pub async fn start(args: &LocalArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(args);
    if let Some(url) = running(&dir) {
        output::note(&format!("local cluster already running at {url}"));
        output::line(&dir.join("kubeconfig").display().to_string());
        return Ok(ExitCode::SUCCESS);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let _ = std::fs::remove_file(dir.join("server.url"));
    let log =
        std::fs::File::create(dir.join("server.log")).context("cannot create the server log")?;
    let exe = std::env::current_exe().context("cannot find the gitsync binary")?;
    let mut child = std::process::Command::new(exe)
        .args([
            "local-cluster",
            "serve",
            "--port",
            &args.port.to_string(),
            "--local-dir",
        ])
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("cannot start the local cluster process")?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(url) = running(&dir) {
            output::note(&format!(
                "local cluster running at {url} (pid {}, state in {})",
                child.id(),
                dir.display()
            ));
            output::line(&dir.join("kubeconfig").display().to_string());
            return Ok(ExitCode::SUCCESS);
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the local cluster exited ({status}); see {}",
                dir.join("server.log").display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the local cluster did not answer within 20s; see {}",
                dir.join("server.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn stop(args: &LocalArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(args);
    let Some(url) = running(&dir) else {
        output::line("local cluster is not running");
        return Ok(ExitCode::SUCCESS);
    };
    let pid = std::fs::read_to_string(dir.join("server.pid"))
        .context("the local cluster runs but left no server.pid")?;
    let pid = pid.trim();
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid])
        .status()
        .context("cannot run kill")?;
    if !status.success() {
        bail!("cannot stop the local cluster (pid {pid})");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(&dir).is_some() {
        if Instant::now() > deadline {
            bail!("the local cluster at {url} (pid {pid}) did not stop within 10s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    output::line(&format!("local cluster stopped (was {url})"));
    Ok(ExitCode::SUCCESS)
}

pub fn status(args: &LocalArgs) -> ExitCode {
    let dir = state_dir(args);
    if let Some(url) = running(&dir) {
        output::line(&format!("running at {url}, state in {}", dir.display()));
        ExitCode::SUCCESS
    } else {
        output::line(&format!("not running (state in {})", dir.display()));
        ExitCode::from(1)
    }
}

pub fn kubeconfig(args: &LocalArgs) -> anyhow::Result<ExitCode> {
    let path = state_dir(args).join("kubeconfig");
    if !path.exists() {
        bail!(
            "no kubeconfig at {}: run `gitsync local-cluster start` first",
            path.display()
        );
    }
    output::line(&path.display().to_string());
    Ok(ExitCode::SUCCESS)
}

pub fn reset(args: &LocalArgs) -> anyhow::Result<ExitCode> {
    let dir = state_dir(args);
    if let Some(url) = running(&dir) {
        bail!(
            "the local cluster is running at {url}: stop it first with `gitsync local-cluster stop`"
        );
    }
    gitsync_local_cluster::reset(&dir)
        .with_context(|| format!("cannot reset {}", dir.display()))?;
    output::line(&format!("local cluster state in {} deleted", dir.display()));
    Ok(ExitCode::SUCCESS)
}

pub async fn serve(args: &LocalArgs) -> anyhow::Result<ExitCode> {
    let config = Config {
        state_dir: state_dir(args),
        port: args.port,
    };
    gitsync_local_cluster::serve_forever(config, |cluster| {
        tracing::info!(url = %cluster.url(), "local cluster serving");
    })
    .await
    .context("local cluster failed")?;
    Ok(ExitCode::SUCCESS)
}
