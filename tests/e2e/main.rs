//! End-to-end tests: the real `gitsync` and `gitsync-agent` binaries against the local
//! cluster, run as a separate process on loopback like a newcomer would run it.

mod admission;
mod agent;
mod bad_input;
mod deploy;
mod drift;
mod engine;
mod git_credentials;
mod git_faults;
mod ha;
mod history;
mod kubectl;
mod namespaced;
mod page;
mod real_cluster;
mod rollout_agent;
mod rollout_faults;
mod rollouts;
mod service;
mod storage;
mod support;
mod sync;
mod watch;
mod webhooks;
