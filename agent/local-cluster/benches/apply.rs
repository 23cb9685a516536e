#![allow(clippy::print_stdout)]
//! Emulator throughput: 2,000 server-side applies of ConfigMaps from one client with
//! 16 in flight (requests per second), then the process's resident memory with
//! 10,000 stored objects.
//!
//! Run with `cargo bench -p gitsync-local-cluster --bench apply`. The emulator runs in
//! this process, so the RSS figure includes the client: an upper bound for the server.

use std::time::Instant;

use futures::{StreamExt, TryStreamExt};
use gitsync_local_cluster::LocalCluster;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

#[path = "../../benches/common/rss.rs"]
mod rss;
use rss::rss_mib;

const APPLIES: usize = 2_000;
const IN_FLIGHT: usize = 16;
const STORED: usize = 10_000;

async fn apply_many(api: &Api<ConfigMap>, range: std::ops::Range<usize>, round: usize) -> f64 {
    let params = PatchParams::apply("bench").force();
    let started = Instant::now();
    let count = range.len();
    futures::stream::iter(range)
        .map(|i| {
            let api = api.clone();
            let params = params.clone();
            async move {
                let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("cm-{i:05}"), "labels": {"bench": "apply"}},
                    "data": {"round": round.to_string(), "payload": "x".repeat(200)}});
                api.patch(&format!("cm-{i:05}"), &params, &Patch::Apply(&cm))
                    .await
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await
        .expect("applies succeed");
    #[allow(clippy::cast_precision_loss)]
    let rate = count as f64 / started.elapsed().as_secs_f64();
    rate
}

#[tokio::main]
async fn main() {
    let cluster = LocalCluster::ephemeral().await.expect("start");
    let api: Api<ConfigMap> = Api::namespaced(cluster.client().expect("client"), "default");
    let baseline = rss_mib();
    let create = apply_many(&api, 0..APPLIES, 1).await;
    let update = apply_many(&api, 0..APPLIES, 2).await;
    let noop = apply_many(&api, 0..APPLIES, 2).await;
    println!("local-cluster server-side apply, {APPLIES} ConfigMaps, {IN_FLIGHT} in flight:");
    println!("  create   {create:>8.0} applies/s");
    println!("  update   {update:>8.0} applies/s");
    println!("  no-op    {noop:>8.0} applies/s");
    let fill = apply_many(&api, APPLIES..STORED, 1).await;
    println!("  fill to {STORED}: {fill:.0} applies/s");
    println!(
        "  RSS with {STORED} stored objects: {:.1} MiB (process; {baseline:.1} MiB before the first apply)",
        rss_mib()
    );
    cluster.shutdown().await.expect("shutdown");
}
