//! Reading an app's files straight out of a commit's tree (no checkout): symlinks are
//! followed only inside the repository, and no file over the size cap is read.

use std::path::Path;

use git2::{ObjectType, Oid};
use gitsync_core::tree::{AppTree, MAX_FILE_BYTES};

use super::{Error, Mirror, Result, Revision, normalize};

impl Mirror {
    /// Reads the app's files at `revision` into an [`AppTree`]. Symlinks are followed
    /// only when they stay inside the repository; no file over the size cap is read.
    pub fn read_app(&self, revision: &Revision) -> Result<AppTree> {
        let read = |source| Error::Read {
            path: String::new(),
            commit: revision.commit.clone(),
            source,
        };
        let tree = Oid::from_str(&revision.tree).map_err(read)?;
        self.read_tree(&revision.commit, tree)
    }

    /// Reads another directory of the repository (`path`, relative to its root) at
    /// `revision`'s commit, as [`Mirror::read_app`] reads the app's.
    pub fn read_path(&self, revision: &Revision, path: &Path) -> Result<AppTree> {
        super::check_relative(path)?;
        let commit = Oid::from_str(&revision.commit).map_err(|source| Error::Read {
            path: path.display().to_string(),
            commit: revision.commit.clone(),
            source,
        })?;
        let tree = self.tree_id(commit, path)?;
        self.read_tree(&revision.commit, tree)
    }

    /// Every file under tree `tree` of `commit`.
    fn read_tree(&self, commit: &str, tree: Oid) -> Result<AppTree> {
        let read = |path: &str, source| Error::Read {
            path: path.to_owned(),
            commit: commit.to_owned(),
            source,
        };
        let oid = Oid::from_str(commit).map_err(|e| read("", e))?;
        let root = self
            .repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|e| read("", e))?;
        let app_tree = self.repo.find_tree(tree).map_err(|e| read("", e))?;
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
