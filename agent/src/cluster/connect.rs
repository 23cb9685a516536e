//! Choosing and connecting to a cluster, exactly as kubectl does: `--kubeconfig`, then
//! `KUBECONFIG`, then `~/.kube/config`, with `--context`; the in-cluster service account
//! when there is no kubeconfig; or the local cluster (`--cluster local`), reusing a
//! running `gitsync local-cluster start` server or starting one in this process.

use std::path::{Path, PathBuf};

use gitsync_local_cluster::{Config as LocalConfig, LocalCluster};
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use super::{Error, Result};

/// Which cluster to talk to, and how much of it.
#[derive(Debug, Clone)]
pub struct Target {
    pub endpoint: Endpoint,
    /// The namespaces gitsync is confined to (empty: the whole cluster). Confined, it
    /// lists and watches only in them and refuses objects elsewhere and cluster-scoped
    /// ones, so that it works with Roles in those namespaces and no ClusterRole.
    pub namespaces: Vec<String>,
}

/// The API server.
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// The emulated local cluster with its state under `state_dir`.
    Local { state_dir: PathBuf },
    /// A real cluster from a kubeconfig (explicit path or the usual lookup) or in-cluster.
    Kube {
        kubeconfig: Option<PathBuf>,
        context: Option<String>,
    },
}

impl From<Endpoint> for Target {
    /// The whole cluster behind `endpoint`.
    fn from(endpoint: Endpoint) -> Self {
        Self {
            endpoint,
            namespaces: Vec::new(),
        }
    }
}

pub(super) struct Connected {
    pub client: Client,
    pub url: String,
    pub local: Option<LocalCluster>,
}

pub(super) async fn connect(endpoint: &Endpoint) -> Result<Connected> {
    match endpoint {
        Endpoint::Local { state_dir } => connect_local(state_dir).await,
        Endpoint::Kube {
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
    // `--kubeconfig`, else the files `KUBECONFIG` lists; neither: the usual lookup.
    let chosen = match path {
        Some(path) => {
            let shown = path.display().to_string();
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| Error::Kubeconfig {
                path: shown.clone(),
                message: format!("{e:#}"),
            })?;
            Some((kubeconfig, shown))
        }
        None => kubeconfig_env()?.map(|k| (k, "$KUBECONFIG".to_owned())),
    };
    if let Some((kubeconfig, shown)) = chosen {
        return Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| Error::Kubeconfig {
                path: shown,
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

/// The files listed in `KUBECONFIG`, merged as kubectl (client-go) merges them: empty
/// entries and files that do not exist are skipped, the first file to set a value wins,
/// a file that exists but does not parse is an error naming it. `None` when the
/// variable is unset or lists no existing file (then `~/.kube/config`, or in-cluster).
fn kubeconfig_env() -> Result<Option<Kubeconfig>> {
    let Some(value) = std::env::var_os("KUBECONFIG") else {
        return Ok(None);
    };
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(&value) {
        if path.as_os_str().is_empty() || !path.exists() {
            continue;
        }
        let error = |message: String| Error::Kubeconfig {
            path: path.display().to_string(),
            message,
        };
        let file = Kubeconfig::read_from(&path).map_err(|e| error(format!("{e:#}")))?;
        merged = Some(match merged {
            None => file,
            Some(first) => first.merge(file).map_err(|e| error(e.to_string()))?,
        });
    }
    Ok(merged)
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

/// Idle connections kept open to the API server. A sync writes with up to 32 requests
/// in flight; keeping every one of those connections (kube's default pool keeps all,
/// forever, each holding its buffers) would cost about 45 KiB apiece between syncs.
const IDLE_CONNECTIONS: usize = 8;

/// How long an idle connection is kept.
const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A client for `config`, as kube builds one (its TLS, authentication, base URL and
/// header layers, its connect and read timeouts) with two differences: no retry layer
/// (its backoff grows without a useful cap, up to 15 tries and minutes per request, so
/// one slow object could hold a sync far past a newer revision; sync retries itself,
/// capped and cancellable, see `execute::retry`), and a connection pool that closes
/// idle connections beyond [`IDLE_CONNECTIONS`] and after [`IDLE_TIMEOUT`].
fn client_for(mut config: Config, url: &str) -> Result<Client> {
    use kube::client::ConfigExt as _;
    config.default_retry = false;
    let unreachable = |source| Error::Unreachable {
        url: url.to_owned(),
        source,
    };
    if config.proxy_url.is_some() {
        // kube's own builder reports the proxy support it lacks.
        return Client::try_from(config).map_err(unreachable);
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let https = config
        .rustls_https_connector_with_connector(http)
        .map_err(unreachable)?;
    let mut connector = hyper_timeout::TimeoutConnector::new(https);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let pool = hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_CONNECTIONS)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .build(connector);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer().map_err(unreachable)?)
        .layer(config.extra_headers_layer().map_err(unreachable)?)
        .map_err(tower::BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// An HTTP/1.1 server that answers every request after `delay`, keeping the
    /// connection open; counts the connections open now and ever.
    async fn slow_server(delay: Duration) -> (String, Arc<AtomicUsize>, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (open, opened) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let counters = (Arc::clone(&open), Arc::clone(&opened));
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counters.0.fetch_add(1, Ordering::SeqCst);
                counters.1.fetch_add(1, Ordering::SeqCst);
                let open = Arc::clone(&counters.0);
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    // Each read is one whole request (small GETs without a body).
                    while matches!(socket.read(&mut buffer).await, Ok(n) if n > 0) {
                        tokio::time::sleep(delay).await;
                        let body = r#"{"major":"1","minor":"33"}"#;
                        let response = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if socket.write_all(response.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        (url, open, opened)
    }

    #[tokio::test]
    async fn a_burst_of_requests_leaves_a_bounded_number_of_idle_connections() {
        let (url, open, opened) = slow_server(Duration::from_millis(300)).await;
        let client = super::client_for_url(&url).expect("client");
        let requests = (0..32).map(|_| {
            let client = client.clone();
            async move {
                let request = http::Request::get("/version")
                    .body(Vec::new())
                    .expect("request");
                client.request_text(request).await.expect("answer")
            }
        });
        futures::future::join_all(requests).await;
        assert!(
            opened.load(Ordering::SeqCst) > super::IDLE_CONNECTIONS,
            "the burst needed more connections than are kept idle"
        );
        // Connections beyond the idle limit are closed once their request is done.
        for _ in 0..100 {
            if open.load(Ordering::SeqCst) <= super::IDLE_CONNECTIONS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{} connections left open after the burst",
            open.load(Ordering::SeqCst)
        );
    }
}
