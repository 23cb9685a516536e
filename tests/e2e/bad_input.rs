//! Bad input: a clear error naming the file and line, and nothing in the cluster
//! changes.

use std::path::Path;

use crate::support::{Cluster, bin, copy_dir, example_repo, gitsync, workspace};

/// An app of 20 ConfigMap files.
fn twenty_files(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir");
    for i in 0..20 {
        std::fs::write(
            dir.join(format!("cm-{i:02}.yaml")),
            format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: default\ndata:\n  k: \"{i}\"\n"),
        )
        .expect("write");
    }
}

#[test]
fn invalid_yaml_fails_render_diff_and_sync_naming_file_and_line() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let app = tmp.path().join("app");
    twenty_files(&app);
    std::fs::write(
        app.join("cm-13.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [broken\n",
    )
    .expect("write");
    let app_s = app.to_str().expect("utf-8");
    cluster.reset_stats();
    for run in [
        gitsync(&["render", app_s]),
        cluster.gitsync(&["diff", app_s]),
        cluster.gitsync(&["sync", app_s]),
    ] {
        assert_eq!(run.code, 2, "{run:?}");
        assert!(run.stderr.contains("cm-13.yaml:"), "file named: {run:?}");
        assert!(
            run.stderr.contains("cm-13.yaml:4") || run.stderr.contains("cm-13.yaml:5"),
            "line named: {run:?}"
        );
    }
    assert_eq!(cluster.writes(), 0, "nothing written");
    assert!(
        cluster
            .get("/api/v1/namespaces/default/configmaps/cm-0")
            .is_none()
    );
}

#[test]
fn duplicate_objects_name_both_files() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = tmp.path().join("app");
    twenty_files(&app);
    std::fs::write(
        app.join("zz-copy.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-3\n  namespace: default\n",
    )
    .expect("write");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("cm-03.yaml") && run.stderr.contains("zz-copy.yaml"),
        "{run:?}"
    );
}

#[test]
fn a_manifest_without_kind_is_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = tmp.path().join("app");
    twenty_files(&app);
    std::fs::write(
        app.join("nokind.yaml"),
        "apiVersion: v1\nmetadata:\n  name: x\n",
    )
    .expect("write");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("nokind.yaml:1") && run.stderr.contains("kind"),
        "{run:?}"
    );
}

#[test]
fn an_invalid_kubeconfig_is_a_clear_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let bad = tmp.path().join("kubeconfig");
    std::fs::write(&bad, "this: is: not a kubeconfig\n").expect("write");
    let run = gitsync(&[
        "diff",
        "example-repo",
        "--kubeconfig",
        bad.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("kubeconfig"), "{run:?}");

    let unreachable = tmp.path().join("unreachable");
    std::fs::write(
        &unreachable,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:9\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {}\n",
    )
    .expect("write");
    let run = gitsync(&[
        "diff",
        "example-repo",
        "--kubeconfig",
        unreachable.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("127.0.0.1:9"),
        "names the server: {run:?}"
    );
}

#[test]
fn symlinks_out_of_the_repository_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let app = repo.join("app");
    copy_dir(&example_repo(), &app);
    std::fs::create_dir_all(repo.join(".git")).expect("mark repo root");
    let secret = tmp.path().join("outside.yaml");
    std::fs::write(
        &secret,
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\n",
    )
    .expect("write");
    std::os::unix::fs::symlink(&secret, app.join("link.yaml")).expect("symlink");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(
        run.stderr.contains("link.yaml") && run.stderr.contains("outside"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("stolen"));
}

#[test]
fn hostile_yaml_is_bounded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let app = tmp.path().join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    // Billion laughs.
    let mut laughs = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (i, prev) in ('b'..='j').zip('a'..='i') {
        laughs.push_str(&format!(
            "{i}: &{i} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
        ));
    }
    std::fs::write(app.join("laughs.yaml"), laughs).expect("write");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("laughs.yaml"), "{run:?}");
    std::fs::remove_file(app.join("laughs.yaml")).expect("rm");

    // 10,000 levels of nesting: an error, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    std::fs::write(app.join("deep.yaml"), deep).expect("write");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("deep.yaml"), "{run:?}");
    std::fs::remove_file(app.join("deep.yaml")).expect("rm");

    // Over the 8 MiB cap: refused before parsing.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  k: \"{}\"\n",
        "x".repeat(9 * 1024 * 1024)
    );
    std::fs::write(app.join("big.yaml"), big).expect("write");
    let run = gitsync(&["render", app.to_str().expect("utf-8")]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("big.yaml"), "{run:?}");
}

/// A kubeconfig with two contexts: `broken` (current, nothing listens) and `local`.
fn two_contexts(cluster: &Cluster, current: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: broken\n  cluster:\n    server: http://127.0.0.1:9\n\
         - name: local\n  cluster:\n    server: {url}\ncontexts:\n- name: broken\n  context:\n    cluster: broken\n    user: u\n\
         - name: local\n  context:\n    cluster: local\n    user: u\ncurrent-context: {current}\nusers:\n- name: u\n  user: {{}}\n",
        url = cluster.url
    )
}

#[test]
fn the_kubeconfig_its_context_and_kubeconfig_env_are_used_like_kubectl() {
    let cluster = Cluster::start();
    let tmp = tempfile::tempdir().expect("tmp");
    let file = tmp.path().join("config");
    std::fs::write(&file, two_contexts(&cluster, "broken")).expect("write");
    let path = file.to_str().expect("utf-8");
    let run = |args: &[&str], env: Option<&str>| {
        let mut cmd = std::process::Command::new(bin("gitsync"));
        cmd.args(args)
            .current_dir(workspace())
            .env("NO_COLOR", "1")
            .env("HOME", tmp.path());
        match env {
            Some(value) => cmd.env("KUBECONFIG", value),
            None => cmd.env_remove("KUBECONFIG"),
        };
        crate::support::Run::from(&cmd.output().expect("run gitsync"))
    };

    // The current context is used unless --context names another.
    let current = run(&["status", "--kubeconfig", path], None);
    assert_eq!(current.code, 2, "{current:?}");
    assert!(current.stderr.contains("127.0.0.1:9"), "{current:?}");
    let chosen = run(
        &["status", "--kubeconfig", path, "--context", "local"],
        None,
    );
    assert_eq!(chosen.code, 0, "{chosen:?}");
    let unknown = run(&["status", "--kubeconfig", path, "--context", "nope"], None);
    assert_eq!(unknown.code, 2, "{unknown:?}");
    assert!(unknown.stderr.contains("nope"), "{unknown:?}");

    // KUBECONFIG, as kubectl reads it: a list of files, merged (the first to set a
    // value wins), and a file missing from the list is skipped.
    let local = tmp.path().join("local");
    std::fs::write(&local, two_contexts(&cluster, "local")).expect("write");
    let list = format!(
        "{}:{}:{}",
        tmp.path().join("missing").display(),
        local.display(),
        path
    );
    let synced = run(&["sync", "example-repo", "--no-wait"], Some(&list));
    assert_eq!(synced.code, 0, "{synced:?}");
    assert!(cluster.get("/api/v1/namespaces/pgk").is_some());
    let repo = tmp.path().join("repo");
    copy_dir(&example_repo(), &repo);
    crate::support::commit_all(&repo, "example");
    let agent = std::process::Command::new(bin("gitsync-agent"))
        .args(["--repo", repo.to_str().expect("utf-8"), "--once"])
        .args(["--context", "local", "--cache-dir"])
        .arg(tmp.path().join("cache"))
        .env("KUBECONFIG", path)
        .env("HOME", tmp.path())
        .output()
        .expect("run gitsync-agent");
    assert!(
        agent.status.success(),
        "{}",
        String::from_utf8_lossy(&agent.stderr)
    );

    // Without any: ~/.kube/config.
    std::fs::create_dir_all(tmp.path().join(".kube")).expect("dir");
    std::fs::copy(&local, tmp.path().join(".kube/config")).expect("copy");
    let home = run(&["status"], None);
    assert_eq!(home.code, 0, "{home:?}");
    assert!(home.stdout.contains("pgk"), "{home:?}");
}

#[test]
fn output_cut_short_by_a_closed_pipe_is_not_a_crash() {
    use std::io::Read as _;
    let cluster = Cluster::start();
    // More diff than a pipe buffers (64 KiB), so writes after the reader left fail; one
    // object the server rejects keeps the agent from applying any of it.
    let mut files: Vec<(String, String)> = (0..400)
        .map(|i| {
            (
                format!("app/cm{i}.yaml"),
                format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\n  namespace: default\ndata:\n  text: \"{}\"\n",
                    "x".repeat(200)
                ),
            )
        })
        .collect();
    files.push((
        "app/bad.yaml".into(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Not_A_Name\n  namespace: default\n"
            .into(),
    ));
    let files: Vec<(&str, &str)> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_str()))
        .collect();
    let (repo, cache) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    crate::support::write_files(repo.path(), &files);
    crate::support::commit_all(repo.path(), "big");
    let listen = format!("127.0.0.1:{}", crate::support::free_port());
    let _agent = crate::support::Agent::for_app(
        &cluster,
        repo.path(),
        "app",
        cache.path(),
        &["--listen", &listen],
    );
    let base = format!("http://{listen}");
    crate::support::await_listen(&listen);
    crate::support::eventually(
        std::time::Duration::from_secs(30),
        "the first sync attempted",
        || (crate::support::http(&base, "GET", "/readyz").0 == 200).then_some(()),
    );
    for cut in [false, true] {
        let mut child = std::process::Command::new(bin("gitsync"))
            .args(["diff", "app", "--agent", &base])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("gitsync");
        let mut stdout = child.stdout.take().expect("stdout");
        let mut read = Vec::new();
        if cut {
            // `| head -c 1`: a byte read, then the pipe closed.
            let mut byte = [0u8; 1];
            stdout.read_exact(&mut byte).expect("a first byte");
            drop(stdout);
        } else {
            stdout.read_to_end(&mut read).expect("read");
        }
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            output.status.code(),
            Some(1),
            "diff's own exit code: {stderr}"
        );
        if !cut {
            assert!(read.len() > 64 * 1024, "{} bytes is no test", read.len());
        }
    }
}
