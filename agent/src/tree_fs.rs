//! Loading an app directory from the local filesystem into an [`AppTree`], refusing
//! anything that would read outside the repository: an app path that climbs out of it,
//! or a symlink whose target resolves outside it. Files over the size cap are refused by
//! their metadata, unread.

use std::path::{Path, PathBuf};

use gitsync_core::tree::{AppTree, MAX_FILE_BYTES};

/// Errors loading an app directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: not found")]
    Missing { path: String },
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    #[error("{path} is outside the repository {repo}; refusing to read it")]
    OutsideRepo { path: String, repo: String },
    #[error("{path}: {size} bytes is over the {limit}-byte limit for a manifest file")]
    TooLarge {
        path: String,
        size: u64,
        limit: usize,
    },
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The nearest ancestor of `start` (itself included) that holds `.git`, else `start`.
pub fn find_repo_root(start: &Path) -> PathBuf {
    let start = std::fs::canonicalize(start).unwrap_or_else(|_| start.to_path_buf());
    start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map_or_else(|| start.clone(), Path::to_path_buf)
}

/// Loads every regular file under `app_path` (relative to `repo_root`, or absolute
/// inside it).
pub fn load_app(repo_root: &Path, app_path: &Path) -> Result<AppTree, Error> {
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Read { path, source }
    };
    let root = std::fs::canonicalize(repo_root).map_err(read_err(repo_root))?;
    let joined = if app_path.is_absolute() {
        app_path.to_path_buf()
    } else {
        root.join(app_path)
    };
    let app = match std::fs::canonicalize(&joined) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Missing {
                path: app_path.display().to_string(),
            });
        }
        Err(e) => return Err(read_err(&joined)(e)),
    };
    if !app.starts_with(&root) {
        return Err(Error::OutsideRepo {
            path: app_path.display().to_string(),
            repo: root.display().to_string(),
        });
    }
    if !app.is_dir() {
        return Err(Error::NotADirectory {
            path: app_path.display().to_string(),
        });
    }
    let mut tree = AppTree::new();
    walk(&root, &app, &app, &mut tree)?;
    Ok(tree)
}

fn walk(root: &Path, app: &Path, dir: &Path, tree: &mut AppTree) -> Result<(), Error> {
    let read_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::Read { path, source }
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(read_err(dir))?
        .collect::<Result<_, _>>()
        .map_err(read_err(dir))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let file_type = entry.file_type().map_err(read_err(&path))?;
        let rel = path
            .strip_prefix(app)
            .unwrap_or(&path)
            .to_string_lossy()
            .replace('\\', "/");
        let target = if file_type.is_symlink() {
            let resolved = std::fs::canonicalize(&path).map_err(read_err(&path))?;
            if !resolved.starts_with(root) {
                return Err(Error::OutsideRepo {
                    path: rel,
                    repo: root.display().to_string(),
                });
            }
            resolved
        } else {
            path.clone()
        };
        let meta = std::fs::metadata(&target).map_err(read_err(&path))?;
        if meta.is_dir() {
            if rel.split('/').any(|p| p.starts_with('.')) {
                continue;
            }
            // A symlinked directory is walked under its link name, unless it points at
            // one of its own ancestors (a cycle).
            if file_type.is_symlink() && path.starts_with(&target) {
                continue;
            }
            walk(root, app, &path, tree)?;
        } else if meta.is_file() {
            if meta.len() > MAX_FILE_BYTES as u64 {
                return Err(Error::TooLarge {
                    path: rel,
                    size: meta.len(),
                    limit: MAX_FILE_BYTES,
                });
            }
            let bytes = std::fs::read(&target).map_err(read_err(&path))?;
            tree.insert(rel, bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_files_sorted_and_refuses_links_out_of_the_repo() {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        let app = repo.join("app");
        std::fs::create_dir_all(app.join("sub")).expect("mkdir");
        std::fs::write(app.join("b.yaml"), "b").expect("write");
        std::fs::write(app.join("sub/a.yaml"), "a").expect("write");
        std::fs::write(repo.join("shared.yaml"), "s").expect("write");
        std::os::unix::fs::symlink(repo.join("shared.yaml"), app.join("link.yaml")).expect("link");
        let tree = load_app(&repo, Path::new("app")).expect("load");
        let paths: Vec<&str> = tree.paths().collect();
        assert_eq!(paths, ["b.yaml", "link.yaml", "sub/a.yaml"]);

        std::fs::write(tmp.path().join("outside.yaml"), "o").expect("write");
        std::os::unix::fs::symlink(tmp.path().join("outside.yaml"), app.join("z.yaml"))
            .expect("link");
        let err = load_app(&repo, Path::new("app")).expect_err("refused");
        assert!(matches!(err, Error::OutsideRepo { .. }), "{err}");
        assert!(err.to_string().contains("z.yaml"));
    }

    #[test]
    fn paths_climbing_out_are_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(&repo).expect("mkdir");
        std::fs::create_dir_all(tmp.path().join("elsewhere")).expect("mkdir");
        let err = load_app(&repo, Path::new("../elsewhere")).expect_err("refused");
        assert!(matches!(err, Error::OutsideRepo { .. }), "{err}");
        let err = load_app(&repo, Path::new("nope")).expect_err("missing");
        assert!(matches!(err, Error::Missing { .. }), "{err}");
    }

    #[test]
    fn oversized_files_are_refused_unread() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = std::fs::File::create(tmp.path().join("big.yaml")).expect("create");
        file.set_len(MAX_FILE_BYTES as u64 + 1).expect("grow");
        let err = load_app(tmp.path(), Path::new(".")).expect_err("refused");
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }
}
