use super::*;

mod remote;
mod revert;
mod ssh;

/// Commits `files` (path, content, is_symlink) to branch main of a new repo at `dir`.
fn commit(repo: &Repository, files: &[(&str, &str, bool)], message: &str) -> Oid {
    let mut index = repo.index().expect("index");
    for (path, content, link) in files {
        let blob = repo.blob(content.as_bytes()).expect("blob");
        let entry = git2::IndexEntry {
            ctime: git2::IndexTime::new(0, 0),
            mtime: git2::IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode: if *link { 0o120_000 } else { 0o100_644 },
            uid: 0,
            gid: 0,
            file_size: u32::try_from(content.len()).expect("small"),
            id: blob,
            flags: 0,
            flags_extended: 0,
            path: path.as_bytes().to_vec(),
        };
        index.add(&entry).expect("add");
    }
    let tree = repo
        .find_tree(index.write_tree().expect("tree"))
        .expect("tree");
    let sig = git2::Signature::now("t", "t@example.com").expect("sig");
    let parent = repo
        .find_reference("refs/heads/main")
        .ok()
        .and_then(|r| r.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(
        Some("refs/heads/main"),
        &sig,
        &sig,
        message,
        &tree,
        &parents,
    )
    .expect("commit")
}

fn source(url: &Path, path: &str) -> Source {
    Source {
        url: url.display().to_string(),
        reference: "main".into(),
        path: PathBuf::from(path),
        access: Access::default(),
    }
}

#[test]
fn fetches_and_reads_an_app_and_sees_tree_changes_only_under_its_path() {
    let origin = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = Repository::init(origin.path()).expect("init");
    commit(
        &repo,
        &[
            ("app/a.yaml", "a: 1\n", false),
            ("other/x.yaml", "x: 1\n", false),
        ],
        "one",
    );
    let mirror = Mirror::open(cache.path(), source(origin.path(), "app")).expect("open");
    let first = mirror.fetch().expect("fetch");
    let tree = mirror.read_app(&first).expect("read");
    assert_eq!(tree.get("a.yaml"), Some(&b"a: 1\n"[..]));
    assert_eq!(tree.len(), 1);

    commit(
        &repo,
        &[("other/x.yaml", "x: 2\n", false)],
        "outside the app",
    );
    let second = mirror.fetch().expect("fetch");
    assert_ne!(first.commit, second.commit);
    assert_eq!(first.tree, second.tree, "app tree unchanged");

    commit(&repo, &[("app/a.yaml", "a: 2\n", false)], "inside the app");
    let third = mirror.fetch().expect("fetch");
    assert_ne!(second.tree, third.tree);
    assert_eq!(
        mirror.read_app(&third).expect("read").get("a.yaml"),
        Some(&b"a: 2\n"[..])
    );
}

#[test]
fn symlinks_inside_are_followed_and_outside_refused() {
    let origin = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = Repository::init(origin.path()).expect("init");
    commit(
        &repo,
        &[
            ("shared/base.yaml", "b: 1\n", false),
            ("app/base.yaml", "../shared/base.yaml", true),
        ],
        "inside",
    );
    let mirror = Mirror::open(cache.path(), source(origin.path(), "app")).expect("open");
    let rev = mirror.fetch().expect("fetch");
    assert_eq!(
        mirror.read_app(&rev).expect("read").get("base.yaml"),
        Some(&b"b: 1\n"[..])
    );

    commit(
        &repo,
        &[("app/evil.yaml", "../../../etc/passwd", true)],
        "outside",
    );
    let rev = mirror.fetch().expect("fetch");
    let err = mirror.read_app(&rev).expect_err("refused");
    assert!(matches!(err, Error::SymlinkOutside { .. }), "{err}");
}

#[test]
fn app_paths_that_climb_out_are_refused_before_any_io() {
    let cache = tempfile::tempdir().expect("tmp");
    let err = Mirror::open(cache.path(), source(Path::new("/nowhere"), "../etc"))
        .err()
        .expect("refused");
    assert!(matches!(err, Error::OutsideRepo { .. }));
}

#[test]
fn unknown_ref_is_named() {
    let origin = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = Repository::init(origin.path()).expect("init");
    commit(&repo, &[("a.yaml", "a: 1\n", false)], "one");
    let mut src = source(origin.path(), ".");
    src.reference = "nope".into();
    let err = Mirror::open(cache.path(), src)
        .expect("open")
        .fetch()
        .expect_err("unknown");
    assert!(err.to_string().contains("nope"), "{err}");
}
