//! The Git source: a cached bare clone per repository, fetching only the tracked ref,
//! and reading an app's directory straight out of a commit's tree (no checkout).
//!
//! A fetch first lists the remote's refs (one round trip, one `GET info/refs` over
//! HTTP) and downloads nothing when the cache already holds the advertised commit.
//! Every network operation runs with the source's [`Access`]: credentials handed out
//! once, SSH host keys pinned to known_hosts, and a timeout enforced by a loopback relay
//! (`git/relay.rs`). Errors say whether they are worth retrying
//! ([`Error::is_transient`]). [`revert_to`] rolls an app back by pushing a new commit.
//!
//! Every function here blocks (libgit2); async callers wrap them in `spawn_blocking`.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use git2::{AutotagOption, Direction, Oid, Repository};

mod access;
mod endpoint;
pub mod known_hosts;
mod read;
mod refs;
mod relay;
mod revert;
mod semver_ref;
mod transport;

pub use access::{Access, Auth, DEFAULT_TIMEOUT};
pub use revert::{Author, Rollback, commands_by_hand, revert_to, rollback_target};

use refs::Target;
use transport::Session;

/// Errors from the Git source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the cache at {path}")]
    Cache {
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error("cannot fetch {reference:?} from {url}")]
    Fetch {
        url: String,
        reference: String,
        #[source]
        source: git2::Error,
    },
    #[error("{url} did not answer within {after:?}")]
    TimedOut { url: String, after: Duration },
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("network error talking to {url}")]
    Network {
        url: String,
        #[source]
        source: git2::Error,
    },
    #[error("authentication to {url} failed: {reason}")]
    Auth { url: String, reason: String },
    #[error("cannot talk TLS to {url}: {reason}")]
    Certificate { url: String, reason: String },
    #[error(transparent)]
    HostKey(known_hosts::Error),
    #[error("{reference:?} is not a branch, tag or commit of {url}")]
    UnknownRef { url: String, reference: String },
    #[error("{range:?} is not a semver range")]
    BadRange {
        range: String,
        #[source]
        source: semver::Error,
    },
    #[error("no tag of {url} is a version in {range:?}")]
    NoTagInRange { url: String, range: String },
    #[error("path {path:?} does not exist in commit {commit}")]
    MissingPath { path: String, commit: String },
    #[error("path {path:?} climbs out of the repository")]
    OutsideRepo { path: String },
    #[error("{path}: symlink to {target:?} points outside the repository; refusing to read it")]
    SymlinkOutside { path: String, target: String },
    #[error("{path}: {size} bytes is over the {limit}-byte limit for a manifest file")]
    TooLarge {
        path: String,
        size: usize,
        limit: usize,
    },
    #[error("cannot read {path} in commit {commit}")]
    Read {
        path: String,
        commit: String,
        #[source]
        source: git2::Error,
    },
    #[error("{path} is already at {revision}: nothing to roll back")]
    AlreadyAt { path: String, revision: String },
    #[error("cannot {action} in the rollback clone at {path}")]
    Scratch {
        action: &'static str,
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "cannot push the rollback to {branch} of {url}: {reason}; to do it by hand, run:\n{commands}"
    )]
    Push {
        url: String,
        branch: String,
        reason: String,
        /// Shell commands that make the same commit by hand.
        commands: String,
    },
}

impl Error {
    /// Whether retrying later may succeed: the server was unreachable, timed out or the
    /// connection failed. Keep the last good state and back off. Refused credentials or
    /// host keys, unknown refs and bad paths need a person.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::TimedOut { .. } | Self::Unreachable { .. } | Self::Network { .. }
        )
    }

    /// Whether the repository could not be fetched from here at all: unreachable, or
    /// refused (credentials, host key), as opposed to a problem with what was fetched.
    pub fn is_unfetchable(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                Self::Auth { .. } | Self::HostKey(_) | Self::Fetch { .. }
            )
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an app lives in Git.
#[derive(Debug, Clone)]
pub struct Source {
    /// Clone URL or local path.
    pub url: String,
    /// Branch, tag, commit sha, or a semver range over tags (`~1.2`, `^1`,
    /// `>=1.0.0, <2.0.0`, `1.x`, `semver:1.2.3`): a range only when no branch or tag has
    /// exactly that name and it starts with `semver:`, contains one of `^~<>=*,` or a
    /// space, or has an `x` part. Its highest matching tag is fetched (`v` prefix allowed,
    /// pre-releases only when the range names one).
    pub reference: String,
    /// The app's directory inside the repository.
    pub path: PathBuf,
    /// Credentials and timeout for the remote.
    pub access: Access,
}

/// A fetched revision: the commit and the tree of the app's path in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revision {
    pub commit: String,
    /// Tree id of the app's directory: unchanged means nothing to render.
    pub tree: String,
    /// The commit's author (`Name <email>`) and the first line of its message.
    pub author: String,
    pub message: String,
    /// The tag the reference resolved to (an exact tag, or a semver range's pick).
    pub tag: Option<String>,
    /// The commit this one rolls back to, from its message (see [`rollback_target`]).
    pub rollback_to: Option<String>,
}

/// A bare clone of one repository in a cache directory.
pub struct Mirror {
    repo: Repository,
    source: Source,
}

impl Mirror {
    /// Opens (or initializes) the cache for `source` under `cache_dir`.
    pub fn open(cache_dir: &Path, source: Source) -> Result<Self> {
        check_relative(&source.path)?;
        let dir = cache_dir.join(cache_name(&source.url));
        let repo = Repository::open_bare(&dir)
            .or_else(|_| Repository::init_bare(&dir))
            .map_err(|source| Error::Cache {
                path: dir.display().to_string(),
                source,
            })?;
        Ok(Self { repo, source })
    }

    /// Replaces the credentials and timeout used by the next fetch (a rotated token).
    pub fn set_access(&mut self, access: Access) {
        self.source.access = access;
    }

    /// Fetches the tracked ref and resolves the app's tree in it. Lists the remote's
    /// refs first and downloads only when the tracked ref moved; a full commit sha the
    /// cache holds needs no network at all.
    pub fn fetch(&self) -> Result<Revision> {
        let reference = &self.source.reference;
        if reference.len() == 40
            && is_sha(reference)
            && let Some(commit) = self.local_commit(reference)
        {
            return self.revision(commit, None);
        }
        let session = Session::open(&self.source.url, &self.source.access)?;
        let fail = |e| session.error(e, |e| self.fetch_error(e));
        let mut remote = self
            .repo
            .remote_anonymous(session.url())
            .map_err(|e| self.fetch_error(e))?;
        let mut connection = remote
            .connect_auth(
                Direction::Fetch,
                Some(session.callbacks()),
                Some(Session::proxy_options()),
            )
            .map_err(fail)?;
        let advertised: Vec<(String, Oid)> = connection
            .list()
            .map_err(fail)?
            .iter()
            .map(|head| (head.name().to_owned(), head.oid()))
            .collect();
        let target = Target::pick(&self.source.url, reference, &advertised)?;
        if !self.holds(&target) {
            let mut options = session.fetch_options();
            options.download_tags(AutotagOption::None);
            connection
                .remote()
                .fetch(&target.refspecs(), Some(&mut options), None)
                .map_err(fail)?;
        }
        drop(connection);
        let commit = self.resolve(&target)?;
        self.revision(commit, target.tag_name().map(str::to_owned))
    }

    /// Whether the cache already has what the remote advertises for `target`.
    fn holds(&self, target: &Target) -> bool {
        match (target.local_ref(), target.advertised()) {
            (Some(name), Some(oid)) => self
                .repo
                .refname_to_id(&name)
                .is_ok_and(|local| local == oid),
            _ => match target {
                Target::Commit(sha) => self.local_commit(sha).is_some(),
                Target::Branch { .. } | Target::Tag { .. } => false,
            },
        }
    }

    fn local_commit(&self, spec: &str) -> Option<Oid> {
        let object = self.repo.revparse_single(spec).ok()?;
        object.peel_to_commit().ok().map(|c| c.id())
    }

    /// Opens the (working) repository that holds `app_dir`, to read the app at other
    /// revisions than the checked-out files (`gitsync diff --revision`).
    pub fn enclosing(app_dir: &Path) -> Result<Self> {
        let repo = Repository::discover(app_dir).map_err(|source| Error::Cache {
            path: app_dir.display().to_string(),
            source,
        })?;
        let workdir = repo
            .workdir()
            .and_then(|w| std::fs::canonicalize(w).ok())
            .unwrap_or_default();
        let app_dir = std::fs::canonicalize(app_dir).unwrap_or_else(|_| app_dir.to_path_buf());
        let path = app_dir
            .strip_prefix(&workdir)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let url = workdir.display().to_string();
        Ok(Self {
            repo,
            source: Source {
                url,
                reference: "HEAD".into(),
                path,
                access: Access::default(),
            },
        })
    }

    /// Resolves any revision Git understands (`HEAD~2`, a tag, a sha) to the app's
    /// revision in it.
    pub fn at(&self, spec: &str) -> Result<Revision> {
        let commit = self.local_commit(spec).ok_or_else(|| Error::UnknownRef {
            url: self.source.url.clone(),
            reference: spec.to_owned(),
        })?;
        self.revision(commit, None)
    }

    fn revision(&self, commit: Oid, tag: Option<String>) -> Result<Revision> {
        let tree = self.app_tree_id(commit)?;
        let (author, message, rollback_to) = self
            .repo
            .find_commit(commit)
            .map(|c| {
                let who = c.author();
                (
                    format!(
                        "{} <{}>",
                        who.name().unwrap_or_default(),
                        who.email().unwrap_or_default()
                    ),
                    c.summary().ok().flatten().unwrap_or_default().to_owned(),
                    c.message().ok().and_then(rollback_target),
                )
            })
            .unwrap_or_default();
        Ok(Revision {
            commit: commit.to_string(),
            tree: tree.to_string(),
            author,
            message,
            tag,
            rollback_to,
        })
    }

    fn fetch_error(&self, source: git2::Error) -> Error {
        Error::Fetch {
            url: self.source.url.clone(),
            reference: self.source.reference.clone(),
            source,
        }
    }

    fn resolve(&self, target: &Target) -> Result<Oid> {
        let found = match target {
            Target::Commit(sha) => self.local_commit(sha),
            Target::Branch { .. } | Target::Tag { .. } => target.local_ref().and_then(|name| {
                let reference = self.repo.find_reference(&name).ok()?;
                reference.peel_to_commit().ok().map(|c| c.id())
            }),
        };
        found.ok_or_else(|| Error::UnknownRef {
            url: self.source.url.clone(),
            reference: self.source.reference.clone(),
        })
    }

    fn app_tree_id(&self, commit: Oid) -> Result<Oid> {
        self.tree_id(commit, &self.source.path)
    }

    /// The id of the tree at `path` (relative to the repository root) in `commit`.
    fn tree_id(&self, commit: Oid, path: &Path) -> Result<Oid> {
        let read = |source| Error::Read {
            path: path.display().to_string(),
            commit: commit.to_string(),
            source,
        };
        let root = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(read)?;
        if is_root(path) {
            return Ok(root.id());
        }
        let entry = root.get_path(path).map_err(|_| Error::MissingPath {
            path: path.display().to_string(),
            commit: commit.to_string(),
        })?;
        Ok(entry.id())
    }
}

/// A commit sha as people read it: its first 12 characters.
pub fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The HEAD commit of the Git repository enclosing `path`, if there is one.
pub fn head_commit(path: &Path) -> Option<String> {
    let repo = Repository::discover(path).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}

/// Lexically resolves `.` and `..`; `None` when the path climbs above the root.
fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

fn check_relative(path: &Path) -> Result<()> {
    if normalize(path).is_none() {
        return Err(Error::OutsideRepo {
            path: path.display().to_string(),
        });
    }
    Ok(())
}

fn is_root(path: &Path) -> bool {
    normalize(path).is_some_and(|p| p.as_os_str().is_empty())
}

fn is_sha(reference: &str) -> bool {
    (7..=40).contains(&reference.len()) && reference.chars().all(|c| c.is_ascii_hexdigit())
}

/// A stable directory name for a URL: readable prefix plus a short hash.
fn cache_name(url: &str) -> String {
    let readable: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    let hash = gitsync_core::digest::of_bytes(url.as_bytes());
    format!("{readable}-{}", &hash[..12])
}

#[cfg(test)]
mod tests;
