//! gitsync-agent: the I/O edges of gitsync (Git, the cluster, the local filesystem, the
//! HTTP server) and the reconcile loop that joins them to the pure stages of
//! `gitsync-core`. The `gitsync` CLI reuses this library; the `gitsync-agent` daemon is
//! a thin `main` over [`daemon`].

pub mod cluster;
pub mod config;
pub mod daemon;
pub mod git;
pub mod history;
pub mod reconcile;
pub mod server;
pub mod telemetry;
pub mod tree_fs;
