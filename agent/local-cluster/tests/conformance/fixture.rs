//! The server under test: a fresh emulator, or the real cluster named by
//! `GITSYNC_TEST_KUBECONFIG`, with a namespace of the test's own.

use gitsync_local_cluster::LocalCluster;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::KubeConfigOptions;
use kube::{Client, Config};
use serde_json::json;

pub struct Server {
    pub client: Client,
    /// A namespace that exists for this test only.
    pub ns: String,
    local: Option<LocalCluster>,
}

impl Server {
    pub async fn start() -> Self {
        let (client, local) = if let Some(path) = std::env::var_os("GITSYNC_TEST_KUBECONFIG") {
            let kubeconfig = kube::config::Kubeconfig::read_from(&path).expect("read kubeconfig");
            let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .expect("kubeconfig");
            (Client::try_from(config).expect("client"), None)
        } else {
            let local = LocalCluster::ephemeral()
                .await
                .expect("start local cluster");
            (local.client().expect("client"), Some(local))
        };
        let ns = format!("conformance-{}", unique());
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let namespace = serde_json::from_value(json!({"metadata": {"name": ns}})).expect("ns");
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .expect("create test namespace");
        Self { client, ns, local }
    }

    /// The server, when it is the emulator; on a real cluster `None`, having said that
    /// the test skips because `why` (what only the emulator has or does).
    pub async fn start_local(why: &str) -> Option<Self> {
        let server = Self::start().await;
        if server.local.is_none() {
            eprintln!("skipped: {why} (GITSYNC_TEST_KUBECONFIG is set)");
            server.finish().await;
            return None;
        }
        Some(server)
    }

    /// The emulator, when this is one (tests of emulator-only behaviour skip otherwise).
    pub fn local(&self) -> Option<&LocalCluster> {
        self.local.as_ref()
    }

    pub fn config_maps(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Deletes the test namespace (on a real cluster; the emulator just goes away).
    pub async fn finish(self) {
        if self.local.is_none() {
            let namespaces: Api<Namespace> = Api::all(self.client.clone());
            let _ = namespaces.delete(&self.ns, &DeleteParams::default()).await;
        }
    }
}

/// A ConfigMap named `name` with `data`.
pub fn config_map(name: &str, data: serde_json::Value) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data})).expect("configmap")
}

/// The `Status` of a failed call.
pub fn status(result: Result<impl std::fmt::Debug, kube::Error>) -> Box<kube::core::Status> {
    match result {
        Err(kube::Error::Api(status)) => status,
        other => panic!("expected an API error Status, got {other:?}"),
    }
}

fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{nanos:x}", std::process::id())
}

/// Polls `check` every 50 ms for up to 10 s (controllers on a real cluster are
/// asynchronous).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}
