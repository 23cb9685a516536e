//! gitsync-core: the pure stages of gitsync.
//!
//! Render, normalize, digest, three-way diff, plan and rollout decisions take values and
//! return values:
//! no I/O, no clocks, no cluster. The agent and the CLI do the I/O at the edges and call
//! into these stages. Dependencies enforce it: no tokio, git2, kube or axum here.

pub mod deflated;
pub mod diff;
pub mod digest;
pub mod drift;
pub mod duration;
pub mod fields;
pub mod health;
pub mod immutable;
pub mod kinds;
pub mod manifest;
pub mod plan;
pub mod policy;
pub mod render;
pub mod rollout;
pub mod time;
pub mod tree;
pub mod yaml;

pub use manifest::{Manifest, ObjectId, Source};
