//! Many writers at once on one object: optimistic concurrency loses no write.

use std::collections::BTreeSet;

use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::fixture::{Server, config_map};

const WRITERS: usize = 8;
const WRITES_EACH: usize = 50;

/// Each writer counts its own key of one ConfigMap up to `WRITES_EACH`, one merge
/// patch at a time, each naming the resourceVersion it read and read again after a
/// 409 Conflict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_merge_patches_lose_no_write() {
    let server = Server::start().await;
    let cms = server.config_maps();
    let created = cms
        .create(&PostParams::default(), &config_map("counters", json!({})))
        .await
        .expect("create");
    let first: u64 = created
        .metadata
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .expect("rv");
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let cms = cms.clone();
        writers.push(tokio::spawn(async move {
            let key = format!("w{writer}");
            let (mut versions, mut conflicts) = (Vec::new(), 0);
            for _ in 0..WRITES_EACH {
                loop {
                    let live = cms.get("counters").await.expect("get");
                    let count: usize = live
                        .data
                        .as_ref()
                        .and_then(|d| d.get(&key))
                        .map_or(0, |v| v.parse().expect("a count"));
                    let patch = json!({
                        "metadata": {"resourceVersion": live.metadata.resource_version},
                        "data": {&key: (count + 1).to_string()},
                    });
                    match cms
                        .patch("counters", &PatchParams::default(), &Patch::Merge(patch))
                        .await
                    {
                        Ok(written) => {
                            versions.push(written.metadata.resource_version.expect("rv"));
                            break;
                        }
                        Err(kube::Error::Api(s)) if s.code == 409 => conflicts += 1,
                        Err(e) => panic!("writer {writer}: {e}"),
                    }
                }
            }
            (versions, conflicts)
        }));
    }
    let mut versions = BTreeSet::new();
    let mut conflicts = 0;
    for writer in writers {
        let (mine, theirs) = writer.await.expect("writer");
        conflicts += theirs;
        versions.extend(mine);
    }
    assert_eq!(
        versions.len(),
        WRITERS * WRITES_EACH,
        "every successful write has a version of its own"
    );
    let last = cms.get("counters").await.expect("get");
    let data = last.data.unwrap_or_default();
    for writer in 0..WRITERS {
        assert_eq!(
            data.get(&format!("w{writer}")).map(String::as_str),
            Some(WRITES_EACH.to_string().as_str()),
            "writer {writer} lost a write ({conflicts} conflicts retried)"
        );
    }
    if server.local().is_some() {
        // Nothing else writes to the emulator: the store moved once per write.
        let rv: u64 = last
            .metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse().ok())
            .expect("rv");
        assert_eq!(rv - first, (WRITERS * WRITES_EACH) as u64);
    }
    server.finish().await;
}
