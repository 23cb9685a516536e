//! Operator controls of an app kept in the cluster (ConfigMap `gitsync-control-<app>`
//! in the agent's namespace), so that the CLI, the HTTP API and every agent replica see
//! the same: whether automatic sync is suspended (and why, since when, at which
//! revision), and where the app comes from (repo, ref, path), which the agent publishes
//! so that `gitsync rollback` knows which repository to revert in.

use serde::{Deserialize, Serialize};

use crate::store::{self, Store};

/// Label on the control ConfigMaps naming their app.
pub const LABEL_CONTROL_OF: &str = "gitsync.dev/control-of";
const SUSPENDED_KEY: &str = "suspended.json";
const SOURCE_KEY: &str = "source.json";

/// Automatic sync is off for the app until `gitsync resume`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Suspension {
    /// Why: `rollback to <rev>` or the operator's reason.
    pub reason: String,
    /// The revision the app was pinned at, if any (a direct rollback's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    /// RFC 3339.
    pub since: String,
}

impl Suspension {
    /// A suspension starting now.
    pub fn new(reason: impl Into<String>, revision: Option<String>) -> Self {
        Self {
            reason: reason.into(),
            revision,
            since: gitsync_core::time::rfc3339(crate::now_ms() / 1000),
        }
    }

    /// The suspension of a direct rollback to `commit`.
    pub fn rollback(commit: &str) -> Self {
        Self::new(
            format!("direct rollback to {}", crate::git::short_commit(commit)),
            Some(commit.to_owned()),
        )
    }
}

/// Where an app's manifests come from, as its agent serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppSource {
    pub repo: String,
    #[serde(rename = "ref")]
    pub reference: String,
    pub path: String,
    /// The app's target namespace and `${VAR}` values, so that the CLI renders the
    /// app as its agent does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub vars: std::collections::BTreeMap<String, String>,
    /// The app's shared policy directories (see [`crate::policies`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<std::path::PathBuf>,
}

/// The control ConfigMaps of one namespace.
#[derive(Clone)]
pub struct Control {
    store: Store,
}

fn name(app: &str) -> String {
    format!("gitsync-control-{app}")
}

impl Control {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Self {
            store: Store::new(client, namespace),
        }
    }

    /// The app's suspension, if suspended. An unreadable record counts as not
    /// suspended (and is logged by the caller through the error).
    pub async fn suspension(&self, app: &str) -> Result<Option<Suspension>, store::Error> {
        let data = self.store.read(&name(app)).await?.unwrap_or_default();
        Ok(data
            .get(SUSPENDED_KEY)
            .and_then(|text| serde_json::from_str(text).ok()))
    }

    /// Suspends (`Some`) or resumes (`None`) automatic sync of the app.
    pub async fn set_suspension(
        &self,
        app: &str,
        suspension: Option<&Suspension>,
    ) -> Result<(), store::Error> {
        let text = suspension.map(|s| serde_json::to_string(s).unwrap_or_default());
        self.store
            .update(&name(app), (LABEL_CONTROL_OF, app), |mut data| {
                match &text {
                    Some(t) => data.insert(SUSPENDED_KEY.to_owned(), t.clone()),
                    None => data.remove(SUSPENDED_KEY),
                };
                data
            })
            .await
    }

    /// Where the app comes from, as its agent last published it.
    pub async fn source(&self, app: &str) -> Result<Option<AppSource>, store::Error> {
        let data = self.store.read(&name(app)).await?.unwrap_or_default();
        Ok(data
            .get(SOURCE_KEY)
            .and_then(|text| serde_json::from_str(text).ok()))
    }

    /// Publishes where the app comes from (written only when it changed).
    pub async fn publish_source(&self, app: &str, source: &AppSource) -> Result<(), store::Error> {
        if self.source(app).await?.as_ref() == Some(source) {
            return Ok(());
        }
        let text = serde_json::to_string(source).unwrap_or_default();
        self.store
            .update(&name(app), (LABEL_CONTROL_OF, app), |mut data| {
                data.insert(SOURCE_KEY.to_owned(), text.clone());
                data
            })
            .await
    }
}
