//! Choosing and connecting to a cluster, exactly as kubectl does: `--kubeconfig`, then
//! `KUBECONFIG`, then `~/.kube/config`, with `--context`; the in-cluster service account
//! when there is no kubeconfig; or the local cluster (`--cluster local`), reusing a
//! running `gitsync local-cluster start` server or starting one in this process.

use std::path::{Path, PathBuf};

use gitsync_local_cluster::{Config as LocalConfig, LocalCluster};
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::{Error, Result};

/// Which cluster to talk to.
#[derive(Debug, Clone)]
pub enum Target {
    /// The emulated local cluster with its state under `state_dir`.
    Local { state_dir: PathBuf },
    /// A real cluster from a kubeconfig (explicit path or the usual lookup) or in-cluster.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
}

pub(super) struct Connected {
    pub client: Client,
    pub url: String,
    pub local: Option<LocalCluster>,
}

pub(super) async fn connect(target: &Target) -> Result<Connected> {
    match target {
        Target::Local { state_dir } => connect_local(state_dir).await,
        Target::Kube {
            kubeconfig,
            context,
        } => {
            let config = kube_config(kubeconfig.as_deref(), context.clone()).await?;
            let url = config.cluster_url.to_string();
            let client = client_for(config, &url)?;
            Ok(Connected {
                client,
                url,
                local: None,
            })
        }
    }
}

async fn kube_config(path: Option<&Path>, context: Option<String>) -> Result<Config> {
    let options = KubeConfigOptions {
        context,
        ..KubeConfigOptions::default()
    };
    if let Some(path) = path {
        let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
            path: path.display().to_string(),
            message: format!("{e:#}"),
        })?;
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| Error::Kubeconfig {
                path: path.display().to_string(),
                message: e.to_string(),
            });
    }
    match Config::from_kubeconfig(&options).await {
        Ok(config) => Ok(config),
        Err(kubeconfig_error) => {
            if options.context.is_none()
                && let Ok(config) = Config::incluster()
            {
                return Ok(config);
            }
            Err(Error::NoConfig {
                message: kubeconfig_error.to_string(),
            })
        }
    }
}

async fn connect_local(state_dir: &Path) -> Result<Connected> {
    if let Some(url) = running_url(state_dir) {
        let client = client_for_url(&url)?;
        return Ok(Connected {
            client,
            url,
            local: None,
        });
    }
    let local = LocalCluster::start(LocalConfig {
        state_dir: state_dir.to_path_buf(),
        port: 0,
    })
    .await
    .map_err(Error::Local)?;
    let url = local.url();
    let client = client_for_url(&url)?;
    Ok(Connected {
        client,
        url,
        local: Some(local),
    })
}

fn client_for_url(url: &str) -> Result<Client> {
    let uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| Error::Kubeconfig {
            path: url.to_owned(),
            message: e.to_string(),
        })?;
    client_for(Config::new(uri), url)
}

/// A client without kube's own retry layer: its backoff grows without a useful cap
/// (up to 15 tries and minutes per request), so one slow object could hold a sync far
/// past a newer revision. Sync retries itself, capped and cancellable (see
/// `execute::retry`).
fn client_for(mut config: Config, url: &str) -> Result<Client> {
    config.default_retry = false;
    Client::try_from(config).map_err(|source| Error::Unreachable {
        url: url.to_owned(),
        source,
    })
}

/// URL of a `gitsync local-cluster start` server on `state_dir`, if one answers.
fn running_url(state_dir: &Path) -> Option<String> {
    let url = std::fs::read_to_string(state_dir.join("server.url")).ok()?;
    let url = url.trim().to_owned();
    let authority = url.strip_prefix("http://")?.trim_end_matches('/');
    let addr: std::net::SocketAddr = authority.parse().ok()?;
    std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(500)).ok()?;
    Some(url)
}
