//! Kubernetes Events on the objects gitsync manages (`kubectl describe` and
//! `kubectl get events` show them): drift found, drift healed, sync failures.

use std::time::{SystemTime, UNIX_EPOCH};

use gitsync_core::manifest::ObjectId;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, PostParams};

use super::{Cluster, Error, Result};

/// `Normal` or `Warning`, as Kubernetes defines event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Normal,
    Warning,
}

impl Cluster {
    /// Records an Event about `object` (in its namespace, `default` when cluster-scoped).
    pub async fn event(
        &self,
        object: &ObjectId,
        kind: Type,
        reason: &str,
        message: &str,
    ) -> Result<()> {
        let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{}.{nanos:x}", object.name)),
                namespace: Some(namespace.clone()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                api_version: Some(object.api_version()),
                kind: Some(object.kind.clone()),
                name: Some(object.name.clone()),
                namespace: object.namespace.clone(),
                ..ObjectReference::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.chars().take(1024).collect()),
            type_: Some(match kind {
                Type::Normal => "Normal".into(),
                Type::Warning => "Warning".into(),
            }),
            source: Some(EventSource {
                component: Some("gitsync".into()),
                host: None,
            }),
            reporting_component: Some("gitsync".into()),
            reporting_instance: Some("gitsync".into()),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        api.create(&PostParams::default(), &event)
            .await
            .map(|_| ())
            .map_err(|source| Error::Get {
                object: format!("Event for {}", object.short()),
                source,
            })
    }
}
