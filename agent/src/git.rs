//! The Git source: a cached bare clone per repository, fetching only the tracked ref,
//! and reading an app's directory straight out of a commit's tree (no checkout).
//!
//! Every function here blocks (libgit2); async callers wrap them in `spawn_blocking`.

use std::path::{Component, Path, PathBuf};

use git2::{FetchOptions, ObjectType, Oid, Repository};
use gitsync_core::tree::{AppTree, MAX_FILE_BYTES};

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
    #[error("{reference:?} is not a branch, tag or commit of {url}")]
    UnknownRef { url: String, reference: String },
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
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where an app lives in Git.
#[derive(Debug, Clone)]
pub struct Source {
    /// Clone URL or local path.
    pub url: String,
    /// Branch, tag or commit sha.
    pub reference: String,
    /// The app's directory inside the repository.
    pub path: PathBuf,
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

    /// Fetches the tracked ref and resolves the app's tree in it.
    pub fn fetch(&self) -> Result<Revision> {
        let reference = &self.source.reference;
        let refspecs = [
            format!("+refs/heads/{reference}:refs/remotes/origin/{reference}"),
            format!("+refs/tags/{reference}:refs/tags/{reference}"),
        ];
        let mut remote = self
            .repo
            .remote_anonymous(&self.source.url)
            .map_err(|e| self.fetch_error(e))?;
        let mut options = FetchOptions::new();
        options.download_tags(git2::AutotagOption::None);
        // A ref that is neither a branch nor a tag (a commit sha) makes one refspec
        // fail to match, which libgit2 accepts; a sha is resolved below.
        let fetched = remote.fetch(&refspecs, Some(&mut options), None);
        if let Err(e) = fetched {
            if !is_sha(reference) {
                return Err(self.fetch_error(e));
            }
            let mut options = FetchOptions::new();
            remote
                .fetch(
                    &["+refs/heads/*:refs/remotes/origin/*"],
                    Some(&mut options),
                    None,
                )
                .map_err(|e| self.fetch_error(e))?;
        }
        let commit = self.resolve()?;
        self.revision(commit)
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
            },
        })
    }

    /// Resolves any revision Git understands (`HEAD~2`, a tag, a sha) to the app's
    /// revision in it.
    pub fn at(&self, spec: &str) -> Result<Revision> {
        let commit = self
            .repo
            .revparse_single(spec)
            .and_then(|o| o.peel_to_commit())
            .map_err(|_| Error::UnknownRef {
                url: self.source.url.clone(),
                reference: spec.to_owned(),
            })?;
        self.revision(commit.id())
    }

    fn revision(&self, commit: Oid) -> Result<Revision> {
        let tree = self.app_tree_id(commit)?;
        let (author, message) = self
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
                )
            })
            .unwrap_or_default();
        Ok(Revision {
            commit: commit.to_string(),
            tree: tree.to_string(),
            author,
            message,
        })
    }

    fn fetch_error(&self, source: git2::Error) -> Error {
        Error::Fetch {
            url: self.source.url.clone(),
            reference: self.source.reference.clone(),
            source,
        }
    }

    fn resolve(&self) -> Result<Oid> {
        let reference = &self.source.reference;
        let candidates = [
            format!("refs/remotes/origin/{reference}"),
            format!("refs/tags/{reference}"),
        ];
        for name in &candidates {
            if let Ok(r) = self.repo.find_reference(name)
                && let Ok(commit) = r.peel_to_commit()
            {
                return Ok(commit.id());
            }
        }
        if is_sha(reference)
            && let Ok(commit) = self
                .repo
                .revparse_single(reference)
                .and_then(|o| o.peel_to_commit())
        {
            return Ok(commit.id());
        }
        Err(Error::UnknownRef {
            url: self.source.url.clone(),
            reference: reference.clone(),
        })
    }

    fn app_tree_id(&self, commit: Oid) -> Result<Oid> {
        let read = |source| Error::Read {
            path: self.source.path.display().to_string(),
            commit: commit.to_string(),
            source,
        };
        let root = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(read)?;
        if is_root(&self.source.path) {
            return Ok(root.id());
        }
        let entry = root
            .get_path(&self.source.path)
            .map_err(|_| Error::MissingPath {
                path: self.source.path.display().to_string(),
                commit: commit.to_string(),
            })?;
        Ok(entry.id())
    }

    /// Reads the app's files at `revision` into an [`AppTree`]. Symlinks are followed
    /// only when they stay inside the repository; no file over the size cap is read.
    pub fn read_app(&self, revision: &Revision) -> Result<AppTree> {
        let commit = Oid::from_str(&revision.commit).map_err(|source| Error::Read {
            path: String::new(),
            commit: revision.commit.clone(),
            source,
        })?;
        let read = |path: &str, source| Error::Read {
            path: path.to_owned(),
            commit: revision.commit.clone(),
            source,
        };
        let root = self
            .repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| read("", e))?;
        let app_tree = self
            .repo
            .find_tree(Oid::from_str(&revision.tree).map_err(|e| read("", e))?)
            .map_err(|e| read("", e))?;
        let mut tree = AppTree::new();
        let mut failure = None;
        app_tree
            .walk(git2::TreeWalkMode::PreOrder, |dir, entry| {
                if entry.kind() != Some(ObjectType::Blob) {
                    return git2::TreeWalkResult::Ok;
                }
                let rel = format!("{dir}{}", entry.name().unwrap_or_default());
                match self.read_entry(&root, &rel, entry) {
                    Ok(bytes) => {
                        tree.insert(rel, bytes);
                        git2::TreeWalkResult::Ok
                    }
                    Err(e) => {
                        failure = Some(e);
                        git2::TreeWalkResult::Abort
                    }
                }
            })
            .ok();
        match failure {
            Some(e) => Err(e),
            None => Ok(tree),
        }
    }

    fn read_entry(
        &self,
        root: &git2::Tree<'_>,
        rel: &str,
        entry: &git2::TreeEntry<'_>,
    ) -> Result<Vec<u8>> {
        let in_repo = self.source.path.join(rel);
        let display = in_repo.display().to_string();
        let read = |source| Error::Read {
            path: display.clone(),
            commit: String::new(),
            source,
        };
        let blob = self.repo.find_blob(entry.id()).map_err(read)?;
        let blob = if entry.filemode() == 0o120_000 {
            // A symlink: its content is the target, relative to the link's directory.
            let target = String::from_utf8_lossy(blob.content()).into_owned();
            let base = in_repo.parent().unwrap_or(Path::new(""));
            let resolved = normalize(&base.join(&target)).ok_or_else(|| Error::SymlinkOutside {
                path: display.clone(),
                target: target.clone(),
            })?;
            let found = root
                .get_path(&resolved)
                .map_err(|_| Error::SymlinkOutside {
                    path: display.clone(),
                    target: target.clone(),
                })?;
            self.repo.find_blob(found.id()).map_err(read)?
        } else {
            blob
        };
        if blob.size() > MAX_FILE_BYTES {
            return Err(Error::TooLarge {
                path: display,
                size: blob.size(),
                limit: MAX_FILE_BYTES,
            });
        }
        Ok(blob.content().to_vec())
    }
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
