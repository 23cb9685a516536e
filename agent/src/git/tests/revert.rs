//! Rolling an app back by a pushed commit.

use super::*;
use gitsync_tests::git_http::GitHttp;

/// A bare origin with two commits on main; returns (repo, first, second).
fn history(dir: &Path) -> (Repository, Oid, Oid) {
    let repo = Repository::init_bare(dir).expect("init");
    let first = commit(
        &repo,
        &[
            ("app/a.yaml", "a: 1\n", false),
            ("app/sub/b.yaml", "b: 1\n", false),
            ("other/x.yaml", "x: 1\n", false),
        ],
        "one",
    );
    let second = commit(
        &repo,
        &[
            ("app/a.yaml", "a: 2\n", false),
            ("app/new.yaml", "n: 1\n", false),
            ("other/x.yaml", "x: 2\n", false),
        ],
        "two",
    );
    (repo, first, second)
}

fn rollback(url: String, to: &str) -> Rollback {
    Rollback {
        url,
        branch: "main".into(),
        path: PathBuf::from("app"),
        to: to.into(),
        access: Access::default(),
        author: Author {
            name: "gitsync".into(),
            email: "gitsync@example.com".into(),
        },
    }
}

fn tree_at(repo: &Repository, commit: Oid, path: &str) -> Oid {
    let tree = repo
        .find_commit(commit)
        .and_then(|c| c.tree())
        .expect("tree");
    tree.get_path(Path::new(path)).expect("path").id()
}

#[test]
fn a_rollback_commits_the_app_as_it_was_and_leaves_the_rest() {
    let origin = tempfile::tempdir().expect("tmp");
    let scratch = tempfile::tempdir().expect("tmp");
    let (repo, first, second) = history(origin.path());
    let url = origin.path().display().to_string();

    let sha = revert_to(&rollback(url.clone(), "HEAD~1"), scratch.path()).expect("rollback");
    let landed = repo.refname_to_id("refs/heads/main").expect("main");
    assert_eq!(sha, landed.to_string(), "pushed to the branch");
    let new = repo.find_commit(landed).expect("commit");
    assert_eq!(new.parent_id(0).expect("parent"), second);
    assert_eq!(tree_at(&repo, landed, "app"), tree_at(&repo, first, "app"));
    assert_eq!(
        tree_at(&repo, landed, "other/x.yaml"),
        tree_at(&repo, second, "other/x.yaml"),
        "other paths keep the tip's content"
    );
    let message = new.message().expect("message");
    let short = &first.to_string()[..7];
    assert!(
        message.starts_with(&format!("Roll back app to {short}\n\n{short} one\n")),
        "{message}"
    );
    assert_eq!(rollback_target(message), Some(first.to_string()));
    assert_eq!(new.author().name().ok(), Some("gitsync"));

    let err = revert_to(&rollback(url, &first.to_string()[..8]), scratch.path())
        .expect_err("already there");
    assert!(matches!(err, Error::AlreadyAt { .. }), "{err}");
}

#[test]
fn a_refused_push_hands_back_the_commands() {
    let root = tempfile::tempdir().expect("tmp");
    let scratch = tempfile::tempdir().expect("tmp");
    let (repo, first, second) = history(&root.path().join("repo.git"));
    let hook = root.path().join("repo.git/hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks")).expect("hooks");
    std::fs::write(&hook, "#!/bin/sh\necho no rollbacks today >&2\nexit 1\n").expect("hook");
    set_executable(&hook);
    let server = GitHttp::serve(root.path(), None);

    let url = server.url("repo.git");
    let err =
        revert_to(&rollback(url.clone(), &first.to_string()), scratch.path()).expect_err("refused");
    let Error::Push {
        commands, reason, ..
    } = &err
    else {
        panic!("not a push error: {err:?}");
    };
    assert!(reason.contains("declined"), "{reason}");
    let full = first.to_string();
    for expected in [
        format!("git clone {url} gitsync-rollback"),
        "git checkout main".to_owned(),
        "git rm -r -q --ignore-unmatch -- app".to_owned(),
        format!("git checkout {full} -- app"),
        format!(
            "git commit -m 'Roll back app to {}' -m '{} one\n\nGitsync-Rollback-To: {full}'",
            &full[..7],
            &full[..7]
        ),
        "git push origin HEAD:main".to_owned(),
    ] {
        assert!(
            commands.contains(&expected),
            "{expected}\nnot in\n{commands}"
        );
    }
    assert_eq!(
        repo.refname_to_id("refs/heads/main").expect("main"),
        second,
        "the branch did not move"
    );
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mut permissions = std::fs::metadata(path).expect("meta").permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).expect("chmod");
}

#[test]
fn the_commands_by_hand_make_the_same_rollback_with_git() {
    let origin = tempfile::tempdir().expect("tmp");
    let work = tempfile::tempdir().expect("tmp");
    let (repo, first, second) = history(origin.path());
    let url = origin.path().display().to_string();
    // A relative REV, resolved by git in the clone, on the branch's tip.
    let commands = commands_by_hand(&rollback(url, "HEAD~1"));
    let run = std::process::Command::new("sh")
        .args(["-ec", &commands])
        .current_dir(work.path())
        .env("GIT_AUTHOR_NAME", "a person")
        .env("GIT_AUTHOR_EMAIL", "person@example.com")
        .env("GIT_COMMITTER_NAME", "a person")
        .env("GIT_COMMITTER_EMAIL", "person@example.com")
        .output()
        .expect("sh");
    assert!(
        run.status.success(),
        "{commands}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let landed = repo.refname_to_id("refs/heads/main").expect("main");
    let commit = repo.find_commit(landed).expect("commit");
    assert_eq!(commit.parent_id(0).expect("parent"), second);
    assert_eq!(tree_at(&repo, landed, "app"), tree_at(&repo, first, "app"));
    assert_eq!(
        tree_at(&repo, landed, "other"),
        tree_at(&repo, second, "other")
    );
    // Recorded by the agent as a rollback to that commit, as its own would be.
    assert_eq!(
        rollback_target(commit.message().expect("message")),
        Some(first.to_string())
    );
}
