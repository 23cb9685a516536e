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

/// mimalloc settings for a long-running agent, which between syncs should hold no more
/// memory than it uses: freed pages go back to the OS at once instead of after a
/// second (idle threads would never get to it), no spare empty pages are kept per
/// size class, pages left by exited threads (Git and render run on the blocking
/// pool) are adopted when freed into, and each thread collects the blocks other
/// threads freed into its pages every 1,000 slow-path allocations rather than every
/// 10,000 (a worker that goes quiet after a sync would otherwise keep pages that are
/// empty but for those blocks: 1.6 MiB of 28 at 1,000 objects).
const ALLOCATOR_SETTINGS: [(&str, &str); 4] = [
    ("MIMALLOC_PURGE_DELAY", "0"),
    ("MIMALLOC_PAGE_FULL_RETAIN", "0"),
    ("MIMALLOC_PAGE_RECLAIM_ON_FREE", "1"),
    ("MIMALLOC_GENERIC_COLLECT", "1"),
];

/// glibc malloc settings for the C libraries (libgit2, OpenSSL, libssh2), whose heap
/// would otherwise keep what reading thousands of blobs fragmented: at most two arenas
/// (not one per thread that ever ran Git), blocks from 64 KiB up mapped on their own
/// and unmapped when freed, free memory at a heap's top beyond 128 KiB returned.
const C_ALLOCATOR_SETTINGS: (&str, &str) = (
    "GLIBC_TUNABLES",
    "glibc.malloc.arena_max=2:glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=131072",
);

/// Applies [`ALLOCATOR_SETTINGS`] and [`C_ALLOCATOR_SETTINGS`]: both allocators read
/// their settings from the environment once, before `main`, so the program executes
/// itself again (same process id, same arguments) with them set. Any `MIMALLOC_*`
/// variable already set means the operator chose mimalloc's, `GLIBC_TUNABLES` glibc's:
/// those are left as they are. Returns only when it did not (or could not) re-execute.
pub fn tune_allocator() {
    use std::os::unix::process::CommandExt as _;
    let set = |prefix: &str| {
        std::env::vars_os().any(|(key, _)| key.to_str().is_some_and(|k| k.starts_with(prefix)))
    };
    let mut settings: Vec<(&str, &str)> = Vec::new();
    if !set("MIMALLOC_") {
        settings.extend(ALLOCATOR_SETTINGS);
    }
    if !set(C_ALLOCATOR_SETTINGS.0) {
        settings.push(C_ALLOCATOR_SETTINGS);
    }
    if settings.is_empty() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let mut args = std::env::args_os();
    let mut command = std::process::Command::new(exe);
    if let Some(argv0) = args.next() {
        command.arg0(argv0);
    }
    // `exec` returns only on failure; the agent then runs with the defaults.
    let _ = command.args(args).envs(settings).exec();
}

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
