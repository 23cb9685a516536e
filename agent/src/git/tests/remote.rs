//! Fetching over the network: round trips, tokens, timeouts, force pushes, semver.

use std::time::{Duration, Instant};

use super::*;
use gitsync_tests::git_http::{GitHttp, Silent};

/// A bare repository `name` under `root` with one commit on main.
fn bare(root: &Path, name: &str) -> Repository {
    let repo = Repository::init_bare(root.join(name)).expect("init");
    commit(
        &repo,
        &[
            ("app/a.yaml", "a: 1\n", false),
            ("other/x.yaml", "x: 1\n", false),
        ],
        "one",
    );
    repo
}

fn remote_source(url: String, reference: &str, access: Access) -> Source {
    Source {
        url,
        reference: reference.into(),
        path: PathBuf::from("app"),
        access,
    }
}

#[test]
fn a_fetch_with_nothing_new_makes_one_request() {
    let root = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = bare(root.path(), "repo.git");
    let server = GitHttp::serve(root.path(), None);
    let source = remote_source(server.url("repo.git"), "main", Access::default());
    let mirror = Mirror::open(cache.path(), source).expect("open");
    let first = mirror.fetch().expect("first fetch");
    assert!(
        server.requests().iter().any(|r| r.starts_with("POST")),
        "the first fetch downloads: {:?}",
        server.requests()
    );

    server.clear();
    assert_eq!(mirror.fetch().expect("second fetch"), first);
    assert_eq!(
        server.requests(),
        ["GET /repo.git/info/refs?service=git-upload-pack"],
        "nothing new: only the ref listing"
    );

    commit(&repo, &[("app/a.yaml", "a: 2\n", false)], "two");
    server.clear();
    let third = mirror.fetch().expect("third fetch");
    assert_ne!(third.commit, first.commit);
    assert_eq!(
        server.requests(),
        [
            "GET /repo.git/info/refs?service=git-upload-pack",
            "POST /repo.git/git-upload-pack"
        ],
        "something new: the listing and one download, no second listing"
    );
}

#[test]
fn tokens_go_as_basic_credentials_and_a_rejected_one_fails_once() {
    let root = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    bare(root.path(), "repo.git");
    let server = GitHttp::serve(root.path(), Some(("git", "s3cret")));
    let fetch = |auth: Auth| {
        let access = Access {
            auth,
            ..Access::default()
        };
        let source = remote_source(server.url("repo.git"), "main", access);
        Mirror::open(cache.path(), source).expect("open").fetch()
    };

    let err = fetch(Auth::token("git", "wrong")).expect_err("wrong token");
    assert!(matches!(err, Error::Auth { .. }), "{err}");
    assert!(err.to_string().contains("rejected the token"), "{err}");
    assert!(!err.is_transient());
    assert!(
        server.requests().len() <= 3,
        "no retry loop: {:?}",
        server.requests()
    );

    let err = fetch(Auth::None).expect_err("no token");
    assert!(err.to_string().contains("none are configured"), "{err}");

    let rev = fetch(Auth::token("", "s3cret")).expect("right token, default user");
    assert_eq!(rev.message, "one");
}

#[test]
fn a_server_that_accepts_and_hangs_times_out_as_transient() {
    let silent = Silent::start();
    let cache = tempfile::tempdir().expect("tmp");
    let access = Access {
        timeout: Duration::from_millis(700),
        ..Access::default()
    };
    for url in [
        format!("http://127.0.0.1:{}/repo.git", silent.port),
        format!("https://127.0.0.1:{}/repo.git", silent.port),
        format!("ssh://git@127.0.0.1:{}/repo.git", silent.port),
    ] {
        let started = Instant::now();
        let source = remote_source(url.clone(), "main", access.clone());
        let err = Mirror::open(cache.path(), source)
            .expect("open")
            .fetch()
            .expect_err("hangs");
        assert!(matches!(err, Error::TimedOut { .. }), "{url}: {err}");
        assert!(err.is_transient(), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{url}: {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_closed_port_is_unreachable_and_transient() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let cache = tempfile::tempdir().expect("tmp");
    let url = format!("http://127.0.0.1:{port}/repo.git");
    let source = remote_source(url, "main", Access::default());
    let err = Mirror::open(cache.path(), source)
        .expect("open")
        .fetch()
        .expect_err("closed");
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient(), "{err}");
}

#[test]
fn a_force_pushed_branch_yields_the_new_commit() {
    let origin = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = Repository::init(origin.path()).expect("init");
    commit(&repo, &[("app/a.yaml", "a: 1\n", false)], "one");
    commit(&repo, &[("app/a.yaml", "a: 2\n", false)], "two");
    let mirror = Mirror::open(cache.path(), source(origin.path(), "app")).expect("open");
    let before = mirror.fetch().expect("fetch");

    let rewritten = orphan(&repo, &[("app/a.yaml", "a: 3\n")], "rewritten");
    repo.reference("refs/heads/main", rewritten, true, "force push")
        .expect("force");
    let after = mirror.fetch().expect("fetch after force push");
    assert_eq!(after.commit, rewritten.to_string());
    assert_ne!(after.commit, before.commit);
    assert_eq!(
        mirror.read_app(&after).expect("read").get("a.yaml"),
        Some(&b"a: 3\n"[..])
    );
}

/// A root commit with only `files`, not on any branch.
fn orphan(repo: &Repository, files: &[(&str, &str)], message: &str) -> Oid {
    let mut index = git2::Index::new().expect("index");
    for (path, content) in files {
        let blob = repo.blob(content.as_bytes()).expect("blob");
        let mut entry = entry_for(path, blob);
        entry.file_size = u32::try_from(content.len()).expect("small");
        index.add(&entry).expect("add");
    }
    let tree = index.write_tree_to(repo).expect("tree");
    let tree = repo.find_tree(tree).expect("tree");
    let sig = git2::Signature::now("t", "t@example.com").expect("sig");
    repo.commit(None, &sig, &sig, message, &tree, &[])
        .expect("commit")
}

fn entry_for(path: &str, id: Oid) -> git2::IndexEntry {
    git2::IndexEntry {
        ctime: git2::IndexTime::new(0, 0),
        mtime: git2::IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: 0o100_644,
        uid: 0,
        gid: 0,
        file_size: 0,
        id,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

#[test]
fn a_semver_range_follows_the_highest_tag_and_fetches_only_it() {
    let origin = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = Repository::init(origin.path()).expect("init");
    let sig = git2::Signature::now("t", "t@example.com").expect("sig");
    let tag = |name: &str, content: &str, annotated: bool| {
        let id = commit(&repo, &[("app/a.yaml", content, false)], name);
        let object = repo.find_object(id, None).expect("object");
        if annotated {
            repo.tag(name, &object, &sig, name, false).expect("tag");
        } else {
            repo.tag_lightweight(name, &object, false).expect("tag");
        }
        id
    };
    tag("v1.0.0", "a: 100\n", false);
    let v125 = tag("v1.2.5", "a: 125\n", true);
    tag("v1.3.0", "a: 130\n", false);
    tag("v1.2.9-rc.1", "a: 129rc\n", false);
    let mut src = source(origin.path(), "app");
    src.reference = "~1.2".into();
    let mirror = Mirror::open(cache.path(), src).expect("open");

    let rev = mirror.fetch().expect("fetch");
    assert_eq!(rev.tag.as_deref(), Some("v1.2.5"));
    assert_eq!(rev.commit, v125.to_string());
    let cached = Repository::open_bare(
        cache
            .path()
            .join(cache_name(&origin.path().display().to_string())),
    )
    .expect("cache");
    let names: Vec<String> = cached
        .references()
        .expect("refs")
        .filter_map(|r| r.ok()?.name().ok().map(str::to_owned))
        .collect();
    assert_eq!(
        names,
        ["refs/tags/v1.2.5"],
        "only the chosen tag is fetched"
    );

    let v126 = tag("1.2.6", "a: 126\n", false);
    let rev = mirror.fetch().expect("fetch newer");
    assert_eq!(rev.tag.as_deref(), Some("1.2.6"));
    assert_eq!(rev.commit, v126.to_string());

    let mut exact = source(origin.path(), "app");
    exact.reference = "v1.0.0".into();
    let rev = Mirror::open(cache.path(), exact)
        .expect("open")
        .fetch()
        .expect("exact");
    assert_eq!(rev.tag.as_deref(), Some("v1.0.0"));

    let mut none = source(origin.path(), "app");
    none.reference = "^4".into();
    let err = Mirror::open(cache.path(), none)
        .expect("open")
        .fetch()
        .expect_err("no tag");
    assert!(matches!(err, Error::NoTagInRange { .. }), "{err}");
}

#[test]
fn a_commit_the_cache_holds_needs_no_request() {
    let root = tempfile::tempdir().expect("tmp");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = bare(root.path(), "repo.git");
    let head = repo.refname_to_id("refs/heads/main").expect("head");
    let server = GitHttp::serve(root.path(), None);
    let source = remote_source(server.url("repo.git"), &head.to_string(), Access::default());
    let mirror = Mirror::open(cache.path(), source).expect("open");
    assert_eq!(mirror.fetch().expect("fetch").commit, head.to_string());
    server.clear();
    assert_eq!(mirror.fetch().expect("again").commit, head.to_string());
    assert!(server.requests().is_empty(), "{:?}", server.requests());
}
