use super::*;
use proptest::prelude::*;

const SECRET: &[u8] = b"It's a Secret to Everybody";

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(body);
    let hex = hex_lower(&mac.finalize().into_bytes());
    format!("sha256={}", String::from_utf8(hex.to_vec()).expect("ascii"))
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.insert(*name, HeaderValue::from_str(value).expect("header value"));
    }
    map
}

fn unauthorized(result: Result<Hint>) -> String {
    match result {
        Err(e @ Rejection::Unauthorized(_)) => {
            assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
            e.to_string()
        }
        other => panic!("expected 401, got {other:?}"),
    }
}

fn malformed(result: Result<Hint>) -> String {
    match result {
        Err(e @ Rejection::Malformed(_)) => {
            assert_eq!(e.status(), StatusCode::BAD_REQUEST);
            e.to_string()
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

fn github_push_body() -> String {
    serde_json::json!({
        "ref": "refs/heads/main",
        "before": "0000000000000000000000000000000000000000",
        "after": SHA,
        "repository": {
            "full_name": "gitsync-dev/gitsync",
            "clone_url": "https://github.com/gitsync-dev/gitsync.git",
            "ssh_url": "git@github.com:gitsync-dev/gitsync.git",
            "html_url": "https://github.com/gitsync-dev/gitsync",
            "git_url": "git://github.com/gitsync-dev/gitsync.git",
            "url": "https://github.com/gitsync-dev/gitsync"
        },
        "commits": []
    })
    .to_string()
}

fn github(event: &str, body: &str, signature: &str) -> Result<Hint> {
    receive(
        Provider::GitHub,
        SECRET,
        &headers(&[
            ("x-github-event", event),
            ("x-hub-signature-256", signature),
            ("content-type", "application/json"),
        ]),
        body.as_bytes(),
    )
}

#[test]
fn hmac_matches_github_documented_example() {
    assert_eq!(
        sign(SECRET, b"Hello, World!"),
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    );
}

#[test]
fn github_push_valid() {
    let body = github_push_body();
    let hint = github("push", &body, &sign(SECRET, body.as_bytes())).expect("accepted");
    assert_eq!(
        hint,
        Hint::Push(Push {
            repos: vec![
                "https://github.com/gitsync-dev/gitsync.git".into(),
                "git@github.com:gitsync-dev/gitsync.git".into(),
                "https://github.com/gitsync-dev/gitsync".into(),
                "git://github.com/gitsync-dev/gitsync.git".into(),
            ],
            reference: Some("refs/heads/main".into()),
            after: Some(SHA.into()),
        })
    );
}

#[test]
fn github_signature_in_upper_case_hex_is_accepted() {
    let body = github_push_body();
    let signature = sign(SECRET, body.as_bytes()).to_ascii_uppercase();
    let signature = signature.replacen("SHA256=", "sha256=", 1);
    assert!(github("push", &body, &signature).is_ok());
}

#[test]
fn github_wrong_secret_tampered_body_and_bad_headers_are_unauthorized() {
    let body = github_push_body();
    unauthorized(github("push", &body, &sign(b"other", body.as_bytes())));
    let tampered = body.replace("main", "evil");
    unauthorized(github("push", &tampered, &sign(SECRET, body.as_bytes())));
    for bad in [
        "",
        "sha256=",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
        "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    ] {
        unauthorized(github("push", &body, bad));
    }
    let missing = receive(
        Provider::GitHub,
        SECRET,
        &headers(&[("x-github-event", "push")]),
        body.as_bytes(),
    );
    assert!(unauthorized(missing).contains("missing x-hub-signature-256"));
}

#[test]
fn empty_secret_rejects_even_a_matching_signature() {
    let body = github_push_body();
    let signed = headers(&[
        ("x-github-event", "push"),
        ("x-hub-signature-256", &sign(b"", body.as_bytes())),
        ("x-gitsync-signature", &sign(b"", body.as_bytes())),
        ("x-gitlab-token", ""),
        ("x-gitlab-event", "Push Hook"),
    ]);
    for provider in [Provider::GitHub, Provider::GitLab, Provider::Generic] {
        unauthorized(receive(provider, b"", &signed, body.as_bytes()));
    }
}

#[test]
fn github_malformed_json_after_a_valid_signature_is_bad_request() {
    for body in [
        "{not json",
        "[]",
        r#"{"ref":"refs/heads/main"}"#,
        r#"{"repository":{"clone_url":"https://github.com/a/b.git"}}"#,
    ] {
        malformed(github("push", body, &sign(SECRET, body.as_bytes())));
    }
    let body = github_push_body().replace(SHA, "not-a-sha");
    malformed(github("push", &body, &sign(SECRET, body.as_bytes())));
}

#[test]
fn github_ping_and_other_events() {
    let body = r#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let sig = sign(SECRET, body.as_bytes());
    assert_eq!(github("ping", body, &sig), Ok(Hint::Ping));
    assert_eq!(
        github("issues", body, &sig),
        Ok(Hint::Ignored("issues".into()))
    );
    // An event header is required once authenticated.
    let no_event = receive(
        Provider::GitHub,
        SECRET,
        &headers(&[("x-hub-signature-256", &sig)]),
        body.as_bytes(),
    );
    malformed(no_event);
    // Never parsed before authentication: a bad signature on garbage is a 401.
    unauthorized(github("push", "{garbage", &sign(b"other", b"{garbage")));
}

#[test]
fn github_deleted_branch_has_no_after() {
    let body = github_push_body().replace(SHA, &"0".repeat(40));
    let Ok(Hint::Push(push)) = github("push", &body, &sign(SECRET, body.as_bytes())) else {
        panic!("a push");
    };
    assert_eq!(push.after, None);
}

#[test]
fn github_form_encoded_body() {
    let json = github_push_body();
    let body: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish();
    assert!(body.starts_with("payload=%7B"), "{body}");
    let hint = receive(
        Provider::GitHub,
        SECRET,
        &headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sign(SECRET, body.as_bytes())),
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
        ]),
        body.as_bytes(),
    );
    let Ok(Hint::Push(push)) = hint else {
        panic!("a push: {hint:?}");
    };
    assert_eq!(push.reference.as_deref(), Some("refs/heads/main"));
    // The signature is over the raw (encoded) body, not the JSON inside it.
    let over_json = receive(
        Provider::GitHub,
        SECRET,
        &headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sign(SECRET, json.as_bytes())),
            ("content-type", "application/x-www-form-urlencoded"),
        ]),
        body.as_bytes(),
    );
    unauthorized(over_json);
    let no_payload = "other=1";
    malformed(receive(
        Provider::GitHub,
        SECRET,
        &headers(&[
            ("x-github-event", "push"),
            ("x-hub-signature-256", &sign(SECRET, no_payload.as_bytes())),
            ("content-type", "application/x-www-form-urlencoded"),
        ]),
        no_payload.as_bytes(),
    ));
}

fn gitlab_push_body(kind: &str, reference: &str) -> String {
    serde_json::json!({
        "object_kind": kind,
        "event_name": kind,
        "ref": reference,
        "after": SHA,
        "project": {
            "path_with_namespace": "group/app",
            "web_url": "https://gitlab.example.com/group/app",
            "git_ssh_url": "ssh://git@gitlab.example.com:2222/group/app.git",
            "git_http_url": "https://gitlab.example.com/group/app.git",
            "http_url": "https://gitlab.example.com/group/app.git",
            "ssh_url": "ssh://git@gitlab.example.com:2222/group/app.git"
        },
        "repository": {
            "url": "git@gitlab.example.com:group/app.git",
            "homepage": "https://gitlab.example.com/group/app",
            "git_http_url": "https://gitlab.example.com/group/app.git"
        }
    })
    .to_string()
}

fn gitlab(event: &str, token: &str, body: &str) -> Result<Hint> {
    receive(
        Provider::GitLab,
        b"gl-token",
        &headers(&[("x-gitlab-event", event), ("x-gitlab-token", token)]),
        body.as_bytes(),
    )
}

#[test]
fn gitlab_push_and_tag_push() {
    let body = gitlab_push_body("push", "refs/heads/main");
    let Ok(Hint::Push(push)) = gitlab("Push Hook", "gl-token", &body) else {
        panic!("a push");
    };
    assert_eq!(
        push.repos,
        [
            "https://gitlab.example.com/group/app.git",
            "ssh://git@gitlab.example.com:2222/group/app.git",
            "https://gitlab.example.com/group/app",
            "git@gitlab.example.com:group/app.git",
        ]
    );
    assert_eq!(push.reference.as_deref(), Some("refs/heads/main"));
    assert_eq!(push.after.as_deref(), Some(SHA));
    let body = gitlab_push_body("tag_push", "refs/tags/v1.2.0");
    let Ok(Hint::Push(push)) = gitlab("Tag Push Hook", "gl-token", &body) else {
        panic!("a tag push");
    };
    assert_eq!(push.reference.as_deref(), Some("refs/tags/v1.2.0"));
}

#[test]
fn gitlab_wrong_or_missing_token_is_unauthorized() {
    let body = gitlab_push_body("push", "refs/heads/main");
    unauthorized(gitlab("Push Hook", "gl-token ", &body));
    unauthorized(gitlab("Push Hook", "gl-toke", &body));
    unauthorized(gitlab("Push Hook", "", &body));
    let missing = receive(
        Provider::GitLab,
        b"gl-token",
        &headers(&[("x-gitlab-event", "Push Hook")]),
        body.as_bytes(),
    );
    assert!(unauthorized(missing).contains("missing x-gitlab-token"));
    // A GitHub-style signature is no GitLab token.
    let signed = receive(
        Provider::GitLab,
        b"gl-token",
        &headers(&[
            ("x-gitlab-event", "Push Hook"),
            ("x-hub-signature-256", &sign(b"gl-token", body.as_bytes())),
        ]),
        body.as_bytes(),
    );
    unauthorized(signed);
}

#[test]
fn gitlab_malformed_other_events_and_system_hooks() {
    malformed(gitlab("Push Hook", "gl-token", "{oops"));
    malformed(gitlab(
        "Push Hook",
        "gl-token",
        r#"{"ref":"refs/heads/main"}"#,
    ));
    assert_eq!(
        gitlab("Issue Hook", "gl-token", "{oops"),
        Ok(Hint::Ignored("Issue Hook".into()))
    );
    let body = gitlab_push_body("push", "refs/heads/main");
    assert!(matches!(
        gitlab("System Hook", "gl-token", &body),
        Ok(Hint::Push(_))
    ));
    let created = r#"{"event_name":"project_create","name":"x"}"#;
    assert_eq!(
        gitlab("System Hook", "gl-token", created),
        Ok(Hint::Ignored("System Hook: project_create".into()))
    );
    let update = serde_json::json!({
        "event_name": "repository_update",
        "project": {"git_http_url": "https://gitlab.example.com/group/app.git"},
        "changes": [
            {"before": SHA, "after": SHA, "ref": "refs/heads/main"},
            {"before": SHA, "after": SHA, "ref": "refs/tags/v2"}
        ]
    })
    .to_string();
    let Ok(Hint::Push(push)) = gitlab("System Hook", "gl-token", &update) else {
        panic!("a push");
    };
    assert_eq!(push.reference, None, "several refs: any ref");
    malformed(gitlab("System Hook", "gl-token", "{}"));
}

fn generic(body: &str, signature: &str, event: Option<&str>) -> Result<Hint> {
    let mut map = headers(&[("x-gitsync-signature", signature)]);
    if let Some(event) = event {
        map.insert("x-gitsync-event", HeaderValue::from_str(event).expect("ok"));
    }
    receive(Provider::Generic, b"generic", &map, body.as_bytes())
}

#[test]
fn generic_push() {
    let body =
        format!(r#"{{"repo":"https://github.com/org/repo","ref":"refs/tags/v1","after":"{SHA}"}}"#);
    let hint = generic(&body, &sign(b"generic", body.as_bytes()), None);
    assert_eq!(
        hint,
        Ok(Hint::Push(Push {
            repos: vec!["https://github.com/org/repo".into()],
            reference: Some("refs/tags/v1".into()),
            after: Some(SHA.into()),
        }))
    );
    let body = r#"{"repo":"/srv/git/app"}"#;
    let Ok(Hint::Push(push)) = generic(body, &sign(b"generic", body.as_bytes()), Some("push"))
    else {
        panic!("a push");
    };
    assert_eq!((push.reference, push.after), (None, None));
}

#[test]
fn generic_rejections_ping_and_other_events() {
    let body = r#"{"repo":"https://github.com/org/repo"}"#;
    unauthorized(generic(body, &sign(b"wrong", body.as_bytes()), None));
    unauthorized(receive(
        Provider::Generic,
        b"generic",
        &HeaderMap::new(),
        body.as_bytes(),
    ));
    // GitHub's header does not authenticate the generic receiver.
    unauthorized(receive(
        Provider::Generic,
        b"generic",
        &headers(&[("x-hub-signature-256", &sign(b"generic", body.as_bytes()))]),
        body.as_bytes(),
    ));
    for bad in [
        "{",
        "{}",
        r#"{"repo":""}"#,
        r#"{"repo":42}"#,
        r#"{"repo":"x","ref":1}"#,
        r#"{"repo":"x","after":"nope"}"#,
    ] {
        malformed(generic(bad, &sign(b"generic", bad.as_bytes()), None));
    }
    assert_eq!(
        generic("", &sign(b"generic", b""), Some("ping")),
        Ok(Hint::Ping)
    );
    assert_eq!(
        generic("", &sign(b"generic", b""), Some("build")),
        Ok(Hint::Ignored("build".into()))
    );
}

#[test]
fn same_repo_table() {
    let github = [
        "https://github.com/Org/Repo.git",
        "https://github.com/org/repo",
        "https://GitHub.com/org/repo/",
        "https://github.com:443/org/repo.git/",
        "http://user:tok@github.com/org/repo/",
        "git@github.com:org/repo.git",
        "git@github.com:/org/repo",
        "ssh://git@github.com/org/repo",
        "ssh://git@github.com:22/org/repo.git",
        "git://github.com/org/repo.git",
        "https://github.com/org/repo?x=1#readme",
    ];
    for a in github {
        for b in github {
            assert!(same_repo(a, b), "{a} = {b}");
        }
    }
    let different = [
        "https://gitlab.com/org/repo",
        "https://github.com/org/repo2",
        "https://github.com/other/repo",
        "https://github.com/org/repo/sub",
        "https://github.com:8443/org/repo",
        "ssh://git@github.com:2222/org/repo",
        "/org/repo",
        "file:///org/repo",
        "",
        "https://github.com/",
        "https://github.com",
    ];
    for a in github {
        for b in different {
            assert!(!same_repo(a, b), "{a} ≠ {b}");
        }
    }
    let equal_locals = [
        ("/srv/git/app", "file:///srv/git/app"),
        ("/srv/git/app/", "file://localhost/srv/git/app"),
        ("/srv/git/./x/../app", "/srv//git/app"),
        ("./repo", "repo/"),
        ("[::1]:org/repo", "ssh://git@[::1]:22/org/repo.git"),
    ];
    for (a, b) in equal_locals {
        assert!(same_repo(a, b), "{a} = {b}");
        assert!(same_repo(b, a), "{b} = {a}");
    }
    let different_locals = [
        ("/srv/git/app", "/srv/git/App"),
        ("/srv/git/app", "/srv/git/app.git"),
        ("/srv/git/app", "srv/git/app"),
        ("", ""),
        ("https://", "https://"),
    ];
    for (a, b) in different_locals {
        assert!(!same_repo(a, b), "{a} ≠ {b}");
    }
}

#[test]
fn ref_matches_table() {
    let cases = [
        // (pushed, tracked, matches)
        ("refs/heads/main", "main", true),
        ("refs/heads/main", "refs/heads/main", true),
        ("refs/heads/main", "refs/tags/main", false),
        ("refs/heads/main", "dev", false),
        ("refs/heads/feature/main", "main", false),
        ("refs/heads/release/1.x", "release/1.x", true),
        ("refs/tags/v1.2.0", "v1.2.0", true),
        ("refs/tags/v1.2.0", "v1.2.1", false),
        ("refs/tags/v1.2.0", "refs/tags/v1.2.0", true),
        ("main", "main", true),
        // pinned commits never move
        ("refs/heads/main", SHA, false),
        (SHA, SHA, false),
        ("refs/heads/main", "0123abc", false),
        ("refs/heads/0123abc", "0123abc", true),
        // semver ranges follow tags
        ("refs/tags/v1.3.0", "~1.2", true),
        ("refs/tags/v2.0.0", "^1.0", true),
        ("refs/tags/anything", ">=1.0, <2", true),
        ("refs/tags/v1.9.0", "1.x", true),
        ("refs/tags/v1.9.0", "v1.2.X", true),
        ("refs/tags/v1.9.0", "semver:1.2.3", true),
        ("refs/tags/v1.9.0", "1.2.*", true),
        ("refs/tags/v1.9.0", ">1 <3", true),
        ("refs/heads/main", "~1.2", false),
        ("refs/heads/1.x", "1.x", false),
        // names with an x are branch names, not ranges
        ("refs/heads/fix-login", "fix-login", true),
        ("refs/tags/v1.0.0", "fix-login", false),
        ("refs/heads/x", "x", true),
        ("refs/tags/v1.2", "1.2", false),
        ("", "main", false),
        ("refs/heads/main", "", false),
    ];
    for (pushed, tracked, expected) in cases {
        assert_eq!(
            ref_matches(pushed, tracked),
            expected,
            "ref_matches({pushed:?}, {tracked:?})"
        );
    }
}

fn header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..80),
        "sha256=[0-9a-fA-F]{0,70}".prop_map(String::into_bytes),
        Just(b"Push Hook".to_vec()),
        Just(b"push".to_vec()),
        Just(b"application/x-www-form-urlencoded".to_vec()),
    ]
}

fn provider() -> impl Strategy<Value = Provider> {
    prop_oneof![
        Just(Provider::GitHub),
        Just(Provider::GitLab),
        Just(Provider::Generic)
    ]
}

fn header_map(values: &[Vec<u8>]) -> HeaderMap {
    let names = [
        "x-hub-signature-256",
        "x-github-event",
        "x-gitlab-token",
        "x-gitlab-event",
        "x-gitsync-signature",
        "x-gitsync-event",
        "content-type",
    ];
    let mut map = HeaderMap::new();
    for (name, value) in names.iter().zip(values) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.insert(*name, value);
        }
    }
    map
}

proptest! {
    /// Arbitrary headers and bodies never panic and, without the secret, never pass.
    #[test]
    fn arbitrary_requests_never_panic_nor_pass(
        provider in provider(),
        secret in proptest::collection::vec(any::<u8>(), 0..40),
        values in proptest::collection::vec(header_value(), 7),
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let map = header_map(&values);
        let result = receive(provider, &secret, &map, &body);
        let knows_secret = !secret.is_empty() && match provider {
            Provider::GitLab => values[2] == secret,
            Provider::GitHub => values[0] == sign(&secret, &body).into_bytes(),
            Provider::Generic => values[4] == sign(&secret, &body).into_bytes(),
        };
        if !knows_secret {
            prop_assert!(matches!(result, Err(Rejection::Unauthorized(_))), "{result:?}");
        }
    }

    /// Correctly signed arbitrary bodies reach the parsers, which never panic.
    #[test]
    fn signed_arbitrary_bodies_never_panic(
        provider in provider(),
        values in proptest::collection::vec(header_value(), 7),
        body in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            "\\{\"(ref|after|repo|repository|project|changes|object_kind)\":.{0,60}\\}"
                .prop_map(String::into_bytes),
        ],
    ) {
        let mut map = header_map(&values);
        let signature = HeaderValue::from_str(&sign(b"s", &body)).expect("ascii");
        map.insert("x-hub-signature-256", signature.clone());
        map.insert("x-gitsync-signature", signature);
        map.insert("x-gitlab-token", HeaderValue::from_static("s"));
        let result = receive(provider, b"s", &map, &body);
        prop_assert!(!matches!(result, Err(Rejection::Unauthorized(_))), "{result:?}");
    }

    #[test]
    fn same_repo_is_symmetric_and_never_panics(a in ".{0,60}", b in ".{0,60}") {
        prop_assert_eq!(same_repo(&a, &b), same_repo(&b, &a));
        let _ = ref_matches(&a, &b);
    }
}
