//! Secrets the agent itself needs (the API token, webhook secrets, Git credentials),
//! read from its namespace and cached briefly so that a burst of webhooks costs one
//! read, while a rotated Secret is picked up within [`TTL`]. Values never leave this
//! module except to the code that checks or uses them; they are never logged.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

/// How long a read Secret is trusted.
pub const TTL: Duration = Duration::from_secs(10);

type Cached = (Instant, Option<BTreeMap<String, Vec<u8>>>);

/// The Secrets of the agent's namespace.
#[derive(Clone)]
pub struct Secrets {
    api: Api<Secret>,
    namespace: String,
    cache: Arc<Mutex<BTreeMap<String, Cached>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read Secret {namespace}/{name}")]
    Read {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Secrets {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            cache: Arc::default(),
        }
    }

    /// The data of Secret `name` (`None` when it does not exist).
    pub async fn data(&self, name: &str) -> Result<Option<BTreeMap<String, Vec<u8>>>, Error> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, data)) = cache.get(name)
            && at.elapsed() < TTL
        {
            return Ok(data.clone());
        }
        let secret = self.api.get_opt(name).await.map_err(|source| Error::Read {
            namespace: self.namespace.clone(),
            name: name.to_owned(),
            source,
        })?;
        let data = secret.map(|s| {
            let mut data: BTreeMap<String, Vec<u8>> = s
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            for (k, v) in s.string_data.unwrap_or_default() {
                data.insert(k, v.into_bytes());
            }
            data
        });
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(name.to_owned(), (Instant::now(), data.clone()));
        }
        Ok(data)
    }

    /// One key of a Secret (`None` when the Secret or the key is missing, or empty).
    pub async fn key(&self, key: &crate::settings::SecretKey) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .data(&key.name)
            .await?
            .and_then(|mut d| d.remove(&key.key))
            .filter(|v| !v.is_empty()))
    }
}
