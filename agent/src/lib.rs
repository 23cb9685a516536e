//! gitsync-agent: the I/O edges of gitsync (Git, the cluster, the local filesystem, the
//! HTTP server) and the reconcile loop that joins them to the pure stages of
//! `gitsync-core`. The `gitsync` CLI reuses this library; the `gitsync-agent` daemon is
//! a thin `main` over [`daemon`].

pub mod client;
pub mod cluster;
pub mod config;
pub mod control;
pub mod daemon;
pub mod git;
pub mod history;
pub mod lease;
pub mod metrics;
pub mod page;
pub mod policies;
pub mod probe;
pub mod reconcile;
pub mod registry;
pub mod rollouts;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod store;
pub mod telemetry;
pub mod tree_fs;
pub mod watch;
pub mod webhook;
pub mod worker;

/// The allocator both binaries and the benchmarks install (`#[global_allocator]`): a
/// sync builds and frees many small JSON trees, where mimalloc costs about half of
/// glibc's malloc.
pub use mimalloc::MiMalloc as Allocator;

/// Milliseconds since the epoch, as history entries and rollout states record time.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// An error with its sources, `a: b: c`.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
