use super::*;

/// Two ed25519 host keys generated with `ssh-keygen -t ed25519` for these tests.
const KEY_1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIEuLWUiIERE2bvrs+BXjVuPeXzMNfNVT5Uwe80GGa8mo";
const KEY_2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILyX6VQXg9NBYjhAMOC30tKR8meNeyOWAPdGBqz/9hlt";
/// `ssh-keygen -H` of `example.com` and `[git.example.com]:2222`, both with KEY_1.
const HASHED: &str = "\
|1|XdfVzBLZvq2/XVycKID2HIrMhGU=|yYV6sLu8/d0eqTMK7Nx+IRJoyzA= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEuLWUiIERE2bvrs+BXjVuPeXzMNfNVT5Uwe80GGa8mo
|1|eMpI7TxQ+PljLeGSWqus6UNfz0k=|l8dbcROeg/j1t+31AQ4RYLtAYgM= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEuLWUiIERE2bvrs+BXjVuPeXzMNfNVT5Uwe80GGa8mo
";

fn key(b64: &str) -> Vec<u8> {
    BASE64.decode(b64).expect("base64")
}

#[test]
fn a_listed_key_is_accepted_and_another_key_of_its_kind_is_a_change() {
    let known = format!("# comment\n\nexample.com,other.org ssh-ed25519 {KEY_1} me@host\n");
    assert_eq!(check(&known, "example.com", 22, &key(KEY_1)), Ok(()));
    assert_eq!(check(&known, "Other.ORG", 22, &key(KEY_1)), Ok(()));
    let err = check(&known, "example.com", 22, &key(KEY_2)).expect_err("changed");
    assert!(matches!(err, Error::Changed { .. }), "{err}");
    assert!(
        err.to_string()
            .starts_with("host key for example.com changed"),
        "{err}"
    );
}

#[test]
fn unknown_hosts_and_empty_files_are_refused() {
    let known = format!("example.com ssh-ed25519 {KEY_1}\n");
    let err = check(&known, "gitlab.com", 22, &key(KEY_1)).expect_err("unknown");
    assert!(
        err.to_string()
            .starts_with("gitlab.com is not in known_hosts"),
        "{err}"
    );
    let err = check("", "example.com", 22, &key(KEY_1)).expect_err("empty");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
}

#[test]
fn ports_other_than_22_use_the_bracket_form() {
    let known = format!("[example.com]:2222 ssh-ed25519 {KEY_1}\n");
    assert_eq!(check(&known, "example.com", 2222, &key(KEY_1)), Ok(()));
    let err = check(&known, "example.com", 22, &key(KEY_1)).expect_err("port 22");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
    let err = check(&known, "example.com", 2223, &key(KEY_1)).expect_err("other port");
    assert!(
        err.to_string().contains("ssh-keyscan -p 2223 example.com"),
        "{err}"
    );
}

#[test]
fn hashed_names_are_matched_by_hmac() {
    assert_eq!(check(HASHED, "example.com", 22, &key(KEY_1)), Ok(()));
    assert_eq!(check(HASHED, "git.example.com", 2222, &key(KEY_1)), Ok(()));
    let err = check(HASHED, "example.org", 22, &key(KEY_1)).expect_err("unknown");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
    let err = check(HASHED, "example.com", 22, &key(KEY_2)).expect_err("changed");
    assert!(matches!(err, Error::Changed { .. }), "{err}");
}

#[test]
fn wildcards_negations_and_markers() {
    let known = format!(
        "*.example.com,!evil.example.com ssh-ed25519 {KEY_1}\n\
         @revoked * ssh-ed25519 {KEY_2}\n\
         @cert-authority ca.example.org ssh-ed25519 {KEY_1}\n\
         git?.example.net ssh-ed25519 {KEY_1}\n"
    );
    assert_eq!(check(&known, "git.example.com", 22, &key(KEY_1)), Ok(()));
    assert_eq!(check(&known, "git1.example.net", 22, &key(KEY_1)), Ok(()));
    let err = check(&known, "git12.example.net", 22, &key(KEY_1)).expect_err("? is one");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
    let err = check(&known, "evil.example.com", 22, &key(KEY_1)).expect_err("negated");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
    let err = check(&known, "git.example.com", 22, &key(KEY_2)).expect_err("revoked");
    assert!(matches!(err, Error::Revoked { .. }), "{err}");
    let err = check(&known, "ca.example.org", 22, &key(KEY_1)).expect_err("ca only");
    assert!(matches!(err, Error::Unknown { .. }), "{err}");
}

#[test]
fn a_host_known_only_with_another_key_kind_says_so() {
    let rsa = BASE64.encode(b"\0\0\0\x07ssh-rsa\0\0\0\x01\x01");
    let known = format!("example.com ssh-rsa {rsa}\n");
    let err = check(&known, "example.com", 22, &key(KEY_1)).expect_err("other kind");
    assert_eq!(
        err,
        Error::OtherKind {
            host: "example.com".into(),
            kind: "ssh-ed25519".into()
        }
    );
}

#[test]
fn glob_matches_like_openssh() {
    assert!(glob("*", "anything"));
    assert!(glob("a*c", "abbbc"));
    assert!(glob("a*b*c", "aXbYc"));
    assert!(!glob("a*c", "abd"));
    assert!(glob("h?st", "host"));
    assert!(!glob("host", "hosts"));
}
