//! Watch: events in order, resume after a resourceVersion, 410 when too old, label
//! selectors seen from the watcher's side, bookmarks.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use serde_json::json;

use crate::fixture::{Server, config_map};

type Events =
    std::pin::Pin<Box<dyn futures::Stream<Item = kube::Result<WatchEvent<ConfigMap>>> + Send>>;

async fn watch(server: &Server, params: &WatchParams, version: &str) -> Events {
    server
        .config_maps()
        .watch(params, version)
        .await
        .expect("start watch")
        .boxed()
}

/// The next event that is not a bookmark, as ("ADDED", name).
async fn next(events: &mut Events) -> (String, String) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .expect("an event within 10s")
            .expect("watch ok")
            .expect("stream still open");
        let (kind, cm) = match event {
            WatchEvent::Added(cm) => ("ADDED", cm),
            WatchEvent::Modified(cm) => ("MODIFIED", cm),
            WatchEvent::Deleted(cm) => ("DELETED", cm),
            WatchEvent::Bookmark(_) => continue,
            WatchEvent::Error(status) => panic!("watch error {status:?}"),
        };
        return (kind.to_owned(), cm.metadata.name.unwrap_or_default());
    }
}

fn pair(kind: &str, name: &str) -> (String, String) {
    (kind.to_owned(), name.to_owned())
}

async fn current_version(server: &Server) -> String {
    server
        .config_maps()
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resourceVersion")
}

#[tokio::test]
async fn watch_streams_added_modified_deleted_in_order() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let rv = current_version(&server).await;
    let mut events = watch(&server, &WatchParams::default().timeout(20), &rv).await;
    cms.create(&PostParams::default(), &config_map("a", json!({"k": "1"})))
        .await
        .expect("create");
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "2"}})),
    )
    .await
    .expect("patch");
    cms.delete("a", &DeleteParams::default())
        .await
        .expect("delete");
    assert_eq!(next(&mut events).await, pair("ADDED", "a"));
    assert_eq!(next(&mut events).await, pair("MODIFIED", "a"));
    assert_eq!(next(&mut events).await, pair("DELETED", "a"));
    server.finish().await;
}

#[tokio::test]
async fn watch_without_version_starts_with_the_current_objects() {
    let server = Server::start().await;
    let cms = server.config_maps();
    cms.create(&PostParams::default(), &config_map("existing", json!({})))
        .await
        .expect("create");
    let mut events = watch(&server, &WatchParams::default().timeout(20), "0").await;
    assert_eq!(next(&mut events).await, pair("ADDED", "existing"));
    server.finish().await;
}

#[tokio::test]
async fn watch_resumes_after_a_resource_version() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let created = cms
        .create(&PostParams::default(), &config_map("a", json!({"k": "1"})))
        .await
        .expect("create");
    let rv = created.metadata.resource_version.expect("rv");
    for value in ["2", "3"] {
        cms.patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"k": value}})),
        )
        .await
        .expect("patch");
    }
    cms.create(&PostParams::default(), &config_map("b", json!({})))
        .await
        .expect("create b");
    // Only what happened after `rv`: the two patches and b.
    let mut events = watch(&server, &WatchParams::default().timeout(20), &rv).await;
    assert_eq!(next(&mut events).await, pair("MODIFIED", "a"));
    assert_eq!(next(&mut events).await, pair("MODIFIED", "a"));
    assert_eq!(next(&mut events).await, pair("ADDED", "b"));
    server.finish().await;
}

#[tokio::test]
async fn watch_from_a_compacted_version_is_410_gone() {
    let server = Server::start().await;
    let cms = server.config_maps();
    // More writes than the emulator keeps (a real cluster compacts after 5 minutes, so
    // version 1 is long gone there).
    cms.create(
        &PostParams::default(),
        &config_map("busy", json!({"n": "0"})),
    )
    .await
    .expect("create");
    futures::stream::iter(1..=1_050)
        .map(|n| {
            let cms = cms.clone();
            async move {
                let patch = Patch::Merge(json!({"data": {"n": n.to_string()}}));
                cms.patch("busy", &PatchParams::default(), &patch).await
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .expect("patches");
    let mut events = watch(&server, &WatchParams::default().timeout(20), "1").await;
    let first = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("in time");
    match first {
        Ok(Some(WatchEvent::Error(status))) => {
            assert_eq!(status.code, 410, "{status:?}");
            assert_eq!(status.reason, "Expired", "{status:?}");
        }
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("expected 410 Gone, got {other:?}"),
    }
    server.finish().await;
}

#[tokio::test]
async fn label_selected_watch_sees_objects_enter_and_leave() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let rv = current_version(&server).await;
    let params = WatchParams::default().labels("tier=web").timeout(20);
    let mut events = watch(&server, &params, &rv).await;
    let label = |v: serde_json::Value| Patch::Merge(json!({"metadata": {"labels": {"tier": v}}}));
    cms.create(&PostParams::default(), &config_map("other", json!({})))
        .await
        .expect("create unlabelled");
    cms.create(&PostParams::default(), &config_map("web", json!({})))
        .await
        .expect("create");
    cms.patch("web", &PatchParams::default(), &label(json!("web")))
        .await
        .expect("label");
    cms.patch("web", &PatchParams::default(), &label(json!(null)))
        .await
        .expect("unlabel");
    cms.patch("other", &PatchParams::default(), &label(json!("web")))
        .await
        .expect("label other");
    // The watcher sees "web" enter, then leave, then "other" enter; nothing of the
    // unlabelled writes.
    assert_eq!(next(&mut events).await, pair("ADDED", "web"));
    assert_eq!(next(&mut events).await, pair("DELETED", "web"));
    assert_eq!(next(&mut events).await, pair("ADDED", "other"));
    server.finish().await;
}

#[tokio::test]
async fn bookmarks_come_before_the_watch_times_out() {
    let server = Server::start().await;
    let rv = current_version(&server).await;
    let mut params = WatchParams::default().timeout(4);
    params.bookmarks = true;
    let mut events = watch(&server, &params, &rv).await;
    let mut bookmarks = 0;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.try_next())
        .await
        .expect("stream ends by its timeout")
        .expect("watch ok")
    {
        if let WatchEvent::Bookmark(b) = event {
            assert!(
                !b.metadata.resource_version.is_empty(),
                "bookmark carries a version"
            );
            bookmarks += 1;
        }
    }
    assert!(bookmarks >= 1, "a bookmark before the timeout");
    server.finish().await;
}
