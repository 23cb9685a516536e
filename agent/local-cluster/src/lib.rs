//! Local cluster.
