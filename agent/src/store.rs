//! Small documents gitsync keeps about apps (sync history, rollout state) in ConfigMaps
//! of the agent's namespace: readable by the CLI, surviving agent restarts, and never
//! labelled as an app's object (so never pruned with one).
//!
//! Writes are read-modify-write serialized by the ConfigMap's resourceVersion: a writer
//! that lost a race reads again and re-applies its change.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};

use crate::cluster::{Cancel, retry};

/// The agent's namespace when none is configured (as in `deploy/`).
pub const DEFAULT_NAMESPACE: &str = "gitsync-system";

/// How many times a write is re-applied after losing a race.
const ATTEMPTS: usize = 10;

/// The data of one ConfigMap.
pub type Data = BTreeMap<String, String>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read ConfigMap {namespace}/{name}")]
    Read {
        name: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write ConfigMap {namespace}/{name}")]
    Write {
        name: String,
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write ConfigMap {namespace}/{name}: {ATTEMPTS} concurrent writers won")]
    Contended { name: String, namespace: String },
}

/// The ConfigMaps of one namespace.
#[derive(Clone)]
pub struct Store {
    client: Client,
    namespace: String,
}

impl Store {
    pub fn new(client: Client, namespace: &str) -> Self {
        Self {
            client,
            namespace: namespace.to_owned(),
        }
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    fn api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// The data of ConfigMap `name` (`None` when it does not exist).
    pub async fn read(&self, name: &str) -> Result<Option<Data>, Error> {
        let api = self.api();
        let found = retry(&Cancel::default(), || api.get_opt(name))
            .await
            .map_err(|source| Error::Read {
                name: name.to_owned(),
                namespace: self.namespace.clone(),
                source,
            })?;
        Ok(found.map(|cm| cm.data.unwrap_or_default()))
    }

    /// Rewrites ConfigMap `name` with what `change` makes of its data (empty when it
    /// does not exist yet; it is then created, with the label `label`, and the namespace
    /// too if needed). `change` may run more than once: when another writer got in
    /// between, it is applied again to what that writer left.
    pub async fn update(
        &self,
        name: &str,
        label: (&str, &str),
        mut change: impl FnMut(Data) -> Data,
    ) -> Result<(), Error> {
        let write_error = |source| Error::Write {
            name: name.to_owned(),
            namespace: self.namespace.clone(),
            source,
        };
        let api = self.api();
        for _ in 0..ATTEMPTS {
            let current = retry(&Cancel::default(), || api.get_opt(name))
                .await
                .map_err(write_error)?;
            let result = if let Some(mut cm) = current {
                cm.data = Some(change(cm.data.take().unwrap_or_default()));
                api.replace(name, &PostParams::default(), &cm).await
            } else {
                self.ensure_namespace().await.map_err(write_error)?;
                let cm = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(name.to_owned()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(BTreeMap::from([(label.0.to_owned(), label.1.to_owned())])),
                        ..ObjectMeta::default()
                    },
                    data: Some(change(Data::new())),
                    ..ConfigMap::default()
                };
                api.create(&PostParams::default(), &cm).await
            };
            match result {
                Ok(_) => return Ok(()),
                // Someone wrote in between (409 on resourceVersion or AlreadyExists).
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(source) => return Err(write_error(source)),
            }
        }
        Err(Error::Contended {
            name: name.to_owned(),
            namespace: self.namespace.clone(),
        })
    }

    async fn ensure_namespace(&self) -> Result<(), kube::Error> {
        let api: Api<Namespace> = Api::all(self.client.clone());
        match api.get_opt(&self.namespace).await {
            Ok(Some(_)) => return Ok(()),
            Ok(None) => {}
            // Roles only (deploy/namespaced): Namespaces cannot be read, and the agent's
            // own namespace is created by the install. Writing in it says if it is not.
            Err(kube::Error::Api(status)) if status.code == 403 => return Ok(()),
            Err(e) => return Err(e),
        }
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(self.namespace.clone()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        match api.create(&PostParams::default(), &ns).await {
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
