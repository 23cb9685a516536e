//! API conformance: each rule of the Kubernetes API that gitsync relies on, written
//! against `kube::Client` so it runs unchanged against a real API server.
//!
//! By default every test starts its own emulated local cluster. With
//! `GITSYNC_TEST_KUBECONFIG` set, the same tests run against that cluster instead, each
//! in a fresh namespace it deletes afterwards; tests that need something only the
//! emulator offers (its clock, its request counters) say so and skip there.

mod apply;
mod bad_input;
mod concurrency;
mod crd;
mod deletion;
mod discovery;
mod faults;
mod fixture;
mod objects;
mod patches;
mod rollout;
mod selectors;
mod storage;
mod watch;
mod webhooks;
