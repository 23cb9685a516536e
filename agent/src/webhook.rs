//! Webhooks from Git hosts: authenticate a request, then say what it asks for.
//!
//! [`receive`] takes one request (provider, secret, headers, raw body) and returns a
//! [`Hint`]: a ping, a push (which repository, which ref, which commit), or an event we
//! do not act on. It authenticates before it reads the body:
//!
//! - GitHub: `X-Hub-Signature-256: sha256=<hex>`, HMAC-SHA256 of the raw body keyed by
//!   the secret; the event comes from `X-GitHub-Event` (`ping`, `push`, others ignored).
//! - GitLab: `X-Gitlab-Token` is the secret itself; `X-Gitlab-Event` `Push Hook`, `Tag
//!   Push Hook` and `System Hook` (its `push`, `tag_push` and `repository_update` events)
//!   are pushes, others ignored. GitLab has no ping: its "test" button sends a push.
//! - Generic (scripts, CI): `X-Gitsync-Signature: sha256=<hex>` like GitHub's, and a body
//!   `{"repo": "<url>", "ref": "refs/heads/main", "after": "<sha>"}` (`ref` and `after`
//!   optional). An optional `X-Gitsync-Event: ping` answers a ping.
//!
//! Every comparison with the secret is constant-time, the hex signature included (it is
//! compared as text against the expected hex, never decoded). A body may be JSON or, as
//! GitHub can send it, `application/x-www-form-urlencoded` with the JSON in `payload`;
//! the signature is always over the raw body.
//!
//! A hint is only a hint: the agent fetches the repository and trusts what Git says, not
//! the payload. [`same_repo`] and [`ref_matches`] decide which apps a push concerns.
//!
//! Pure: no I/O, no clock. Limiting the body's size (413 over 1 MiB) is the caller's job.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Which sender a webhook endpoint expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    GitHub,
    GitLab,
    Generic,
}

/// A push, as the payload describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// Every clone or web URL the payload names for the repository.
    pub repos: Vec<String>,
    /// The full ref pushed (`refs/heads/main`, `refs/tags/v1.2.0`); `None` means any ref
    /// (a push that moved several refs at once).
    pub reference: Option<String>,
    /// The commit the ref now points at, when the payload says and the ref still exists.
    pub after: Option<String>,
}

/// What an authenticated request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hint {
    Ping,
    Push(Push),
    /// A valid, authenticated event we do not act on (e.g. `issues`).
    Ignored(String),
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The request did not prove it knows the secret (401).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// Authenticated, but not a payload we can read (400).
    #[error("malformed webhook: {0}")]
    Malformed(String),
}

impl Rejection {
    /// The HTTP status to answer with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
        }
    }
}

type Result<T, E = Rejection> = std::result::Result<T, E>;

const GITHUB_SIGNATURE: &str = "x-hub-signature-256";
const GITHUB_EVENT: &str = "x-github-event";
const GITLAB_TOKEN: &str = "x-gitlab-token";
const GITLAB_EVENT: &str = "x-gitlab-event";
const GENERIC_SIGNATURE: &str = "x-gitsync-signature";
const GENERIC_EVENT: &str = "x-gitsync-event";

/// Authenticates one webhook request with `secret`, then reads what it asks for.
///
/// An empty secret rejects every request: a receiver without a secret must not exist.
pub fn receive(
    provider: Provider,
    secret: &[u8],
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Hint> {
    if secret.is_empty() {
        return Err(Rejection::Unauthorized(
            "no webhook secret is configured".into(),
        ));
    }
    match provider {
        Provider::GitHub => {
            verify_signature(secret, headers, GITHUB_SIGNATURE, body)?;
            github(headers, body)
        }
        Provider::GitLab => {
            verify_token(secret, headers)?;
            gitlab(headers, body)
        }
        Provider::Generic => {
            verify_signature(secret, headers, GENERIC_SIGNATURE, body)?;
            generic(headers, body)
        }
    }
}

// ---------------------------------------------------------------- authentication

/// Checks `<name>: sha256=<hex HMAC-SHA256 of body>` in constant time.
fn verify_signature(secret: &[u8], headers: &HeaderMap, name: &str, body: &[u8]) -> Result<()> {
    let value = headers
        .get(name)
        .ok_or_else(|| Rejection::Unauthorized(format!("missing {name} header")))?;
    let Some(given) = value.as_bytes().strip_prefix(b"sha256=") else {
        return Err(Rejection::Unauthorized(format!(
            "{name} is not sha256=<hex>"
        )));
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret)
        .map_err(|_| Rejection::Unauthorized("unusable webhook secret".into()))?;
    mac.update(body);
    let expected = hex_lower(&mac.finalize().into_bytes());
    // The length of a SHA-256 signature is public; only its content is compared
    // without branching. Upper-case hex is accepted by folding case byte by byte.
    let mut folded = [0u8; 64];
    if given.len() != folded.len() {
        return Err(Rejection::Unauthorized(format!("{name} does not match")));
    }
    for (to, from) in folded.iter_mut().zip(given) {
        *to = from.to_ascii_lowercase();
    }
    if bool::from(folded[..].ct_eq(&expected[..])) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(format!("{name} does not match")))
    }
}

/// Checks GitLab's `X-Gitlab-Token` against the secret: both are hashed first, so the
/// comparison takes the same time whatever their lengths and contents.
fn verify_token(secret: &[u8], headers: &HeaderMap) -> Result<()> {
    let token = headers
        .get(GITLAB_TOKEN)
        .ok_or_else(|| Rejection::Unauthorized(format!("missing {GITLAB_TOKEN} header")))?;
    let given = Sha256::digest(token.as_bytes());
    let expected = Sha256::digest(secret);
    if bool::from(given.as_slice().ct_eq(expected.as_slice())) {
        Ok(())
    } else {
        Err(Rejection::Unauthorized(format!(
            "{GITLAB_TOKEN} does not match"
        )))
    }
}

/// Lower-case hex of a 32-byte digest, without table lookups indexed by secret data.
fn hex_lower(bytes: &[u8]) -> [u8; 64] {
    fn digit(nibble: u8) -> u8 {
        // 0..=9 → '0'..='9'; 10..=15 → 'a'..='f' (39 = 'a' - '0' - 10), branch-free:
        // (9 - nibble) wraps to ≥ 128 exactly when nibble > 9.
        b'0' + nibble + ((9u8.wrapping_sub(nibble) >> 7) * 39)
    }
    let mut out = [0u8; 64];
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = digit(byte >> 4);
        pair[1] = digit(byte & 0x0f);
    }
    out
}

// ---------------------------------------------------------------- payloads

fn github(headers: &HeaderMap, body: &[u8]) -> Result<Hint> {
    let event = header_text(headers, GITHUB_EVENT)
        .ok_or_else(|| Rejection::Malformed(format!("missing {GITHUB_EVENT} header")))?;
    match event.as_str() {
        "ping" => Ok(Hint::Ping),
        "push" => {
            let payload = json_payload(headers, body)?;
            let repos = urls(
                payload.get("repository"),
                &["clone_url", "ssh_url", "html_url", "git_url", "url"],
            );
            push(repos, required_ref(&payload)?, commit(&payload)?)
        }
        _ => Ok(Hint::Ignored(event)),
    }
}

fn gitlab(headers: &HeaderMap, body: &[u8]) -> Result<Hint> {
    let event = header_text(headers, GITLAB_EVENT)
        .ok_or_else(|| Rejection::Malformed(format!("missing {GITLAB_EVENT} header")))?;
    match event.as_str() {
        "Push Hook" | "Tag Push Hook" => gitlab_push(&json_payload(headers, body)?),
        "System Hook" => {
            let payload = json_payload(headers, body)?;
            let kind = ["object_kind", "event_name"]
                .iter()
                .find_map(|k| payload.get(*k).and_then(Value::as_str))
                .unwrap_or_default()
                .to_owned();
            match kind.as_str() {
                "push" | "tag_push" => gitlab_push(&payload),
                "repository_update" => gitlab_repository_update(&payload),
                "" => Err(Rejection::Malformed(
                    "system hook without object_kind or event_name".into(),
                )),
                _ => Ok(Hint::Ignored(format!("System Hook: {kind}"))),
            }
        }
        _ => Ok(Hint::Ignored(event)),
    }
}

/// The project and (legacy) repository URLs of a GitLab payload.
fn gitlab_urls(payload: &Value) -> Vec<String> {
    let mut repos = urls(
        payload.get("project"),
        &[
            "git_http_url",
            "git_ssh_url",
            "web_url",
            "http_url",
            "ssh_url",
            "url",
        ],
    );
    for url in urls(
        payload.get("repository"),
        &["git_http_url", "git_ssh_url", "homepage", "url"],
    ) {
        if !repos.contains(&url) {
            repos.push(url);
        }
    }
    repos
}

fn gitlab_push(payload: &Value) -> Result<Hint> {
    push(
        gitlab_urls(payload),
        required_ref(payload)?,
        commit(payload)?,
    )
}

/// A system hook for a push that moved tags or several branches: `changes` lists them.
fn gitlab_repository_update(payload: &Value) -> Result<Hint> {
    let changes = payload
        .get("changes")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    let (reference, after) = match changes {
        [one] => (required_ref(one)?, commit(one)?),
        _ => (None, None),
    };
    push(gitlab_urls(payload), reference, after)
}

fn generic(headers: &HeaderMap, body: &[u8]) -> Result<Hint> {
    match header_text(headers, GENERIC_EVENT).as_deref() {
        None | Some("push") => {}
        Some("ping") => return Ok(Hint::Ping),
        Some(other) => return Ok(Hint::Ignored(other.to_owned())),
    }
    let payload = json_payload(headers, body)?;
    let repo = match payload.get("repo") {
        Some(Value::String(repo)) if !repo.trim().is_empty() => repo.trim().to_owned(),
        _ => return Err(Rejection::Malformed("\"repo\" must be a URL".into())),
    };
    let reference = match payload.get("ref") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) if !r.trim().is_empty() => Some(r.trim().to_owned()),
        Some(_) => return Err(Rejection::Malformed("\"ref\" must be a ref name".into())),
    };
    push(vec![repo], reference, commit(&payload)?)
}

fn push(repos: Vec<String>, reference: Option<String>, after: Option<String>) -> Result<Hint> {
    if repos.is_empty() {
        return Err(Rejection::Malformed("push names no repository URL".into()));
    }
    Ok(Hint::Push(Push {
        repos,
        reference,
        after,
    }))
}

/// The JSON of the body, or of the `payload` field of a form-encoded body.
fn json_payload(headers: &HeaderMap, body: &[u8]) -> Result<Value> {
    let form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    let value: Value = if form {
        let payload = form_urlencoded::parse(body)
            .find(|(key, _)| key == "payload")
            .map(|(_, value)| value)
            .ok_or_else(|| Rejection::Malformed("form body without a payload field".into()))?;
        serde_json::from_str(&payload)
    } else {
        serde_json::from_slice(body)
    }
    .map_err(|e| Rejection::Malformed(format!("body is not JSON: {e}")))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err(Rejection::Malformed("body is not a JSON object".into()))
    }
}

fn required_ref(payload: &Value) -> Result<Option<String>> {
    match payload.get("ref").and_then(Value::as_str) {
        Some(r) if !r.is_empty() => Ok(Some(r.to_owned())),
        _ => Err(Rejection::Malformed("push without \"ref\"".into())),
    }
}

/// `after`, when present: a commit sha; the all-zero sha (a deleted ref) is `None`.
fn commit(payload: &Value) -> Result<Option<String>> {
    let sha = match payload.get("after") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(sha)) => sha,
        Some(_) => return Err(Rejection::Malformed("\"after\" must be a string".into())),
    };
    let hex = sha.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex || !matches!(sha.len(), 40 | 64) {
        return Err(Rejection::Malformed("\"after\" is not a commit sha".into()));
    }
    if sha.bytes().all(|b| b == b'0') {
        return Ok(None);
    }
    Ok(Some(sha.to_ascii_lowercase()))
}

/// The non-empty string fields `keys` of `object`, in order, without repeats.
fn urls(object: Option<&Value>, keys: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for key in keys {
        if let Some(url) = object.and_then(|o| o.get(*key)).and_then(Value::as_str) {
            let url = url.trim();
            if !url.is_empty() && !out.iter().any(|u| u == url) {
                out.push(url.to_owned());
            }
        }
    }
    out
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(HeaderValue::as_bytes)
        .map(|b| String::from_utf8_lossy(b).trim().to_owned())
}

// ---------------------------------------------------------------- matching

/// Whether two repository URLs name the same repository.
///
/// Remote URLs (`https://`, `http://`, `ssh://`, `git://`, scp-like `git@host:org/repo`)
/// compare by host and path: the scheme, user info, a default port (80, 443, 22, 9418),
/// a trailing `/` or `.git`, and letter case (GitHub and GitLab paths are
/// case-insensitive) do not matter; any other port does. Local paths and `file://` URLs
/// compare by their lexically normalized path text (`.`, `..`, repeated and trailing
/// `/` resolved), case-sensitively. A remote URL never equals a local path, and a URL
/// that names no host or path equals nothing.
pub fn same_repo(a: &str, b: &str) -> bool {
    match (repo_key(a), repo_key(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum RepoKey {
    Remote { host: String, path: String },
    Local(String),
}

fn repo_key(url: &str) -> Option<RepoKey> {
    let url = url.trim();
    if let Some(rest) = strip_prefix_ignore_case(url, "file://") {
        let path = rest.strip_prefix("localhost").unwrap_or(rest);
        return local_key(path);
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        return remote_key(authority, default_port(&scheme), path);
    }
    // scp-like `[user@]host:path` (no port in this syntax): a ':' before any '/'.
    if let Some((authority, path)) = scp_split(url) {
        return remote_key(authority, None, path);
    }
    local_key(url)
}

/// Splits `[user@]host:path` at the ':' that ends the host (after `]` for `[v6]`).
fn scp_split(url: &str) -> Option<(&str, &str)> {
    let host_end = url
        .find('[')
        .and_then(|open| url[open..].find(']').map(|close| open + close))
        .unwrap_or(0);
    let colon = host_end + url[host_end..].find(':')?;
    let authority = &url[..colon];
    (!authority.is_empty() && !authority.contains('/')).then(|| (authority, &url[colon + 1..]))
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn default_port(scheme: &str) -> Option<&'static str> {
    match scheme {
        "https" => Some("443"),
        "http" => Some("80"),
        "ssh" | "git+ssh" | "ssh+git" => Some("22"),
        "git" => Some("9418"),
        _ => None,
    }
}

fn remote_key(authority: &str, default: Option<&str>, path: &str) -> Option<RepoKey> {
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = split_port(host_port);
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.is_empty() {
        return None;
    }
    let host = match port {
        Some(port) if Some(port) != default && !port.is_empty() => format!("{host}:{port}"),
        _ => host,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut segments: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if let Some(last) = segments.last_mut() {
        *last = last.strip_suffix(".git").unwrap_or(last);
        if last.is_empty() {
            segments.pop();
        }
    }
    if segments.is_empty() {
        return None;
    }
    Some(RepoKey::Remote {
        host,
        path: segments.join("/").to_lowercase(),
    })
}

/// `host:port` → (host, Some(port)) when the part after the last ':' is a number;
/// `[v6]:port` likewise.
fn split_port(host_port: &str) -> (&str, Option<&str>) {
    if host_port.starts_with('[') {
        return match host_port.split_once(']') {
            Some((host, rest)) => (&host_port[..=host.len()], rest.strip_prefix(':')),
            None => (host_port, None),
        };
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => (host, Some(port)),
        _ => (host_port, None),
    }
}

fn local_key(path: &str) -> Option<RepoKey> {
    if path.is_empty() {
        return None;
    }
    let absolute = path.starts_with('/');
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if segments.last().is_some_and(|s| *s != "..") {
                    segments.pop();
                } else if !absolute {
                    segments.push("..");
                }
            }
            other => segments.push(other),
        }
    }
    let joined = segments.join("/");
    Some(RepoKey::Local(match (absolute, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }))
}

/// Whether a push of ref `pushed` concerns an app that follows `tracked`.
///
/// `tracked` is read, in this order, as:
/// - a pinned commit: exactly 40 or 64 hex digits; no push moves it, so never a match;
/// - a semver range over tags: starts with `semver:`, contains one of `^ ~ < > = * ,`
///   or whitespace, or has an `x`/`X` wildcard part (`1.x`, `v1.2.X`); any tag push
///   (`refs/tags/…`) may bring a new matching version, so every tag push matches;
/// - a full ref (`refs/…`): matches that exact ref;
/// - otherwise a branch or tag name: matches `refs/heads/<name>` and `refs/tags/<name>`
///   (and `<name>` itself, for senders that send short names).
pub fn ref_matches(pushed: &str, tracked: &str) -> bool {
    let tracked = tracked.trim();
    if tracked.is_empty() || pushed.is_empty() || is_commit(tracked) {
        return false;
    }
    if is_semver_range(tracked) {
        return pushed.starts_with("refs/tags/");
    }
    if tracked.starts_with("refs/") {
        return pushed == tracked;
    }
    pushed == tracked
        || pushed.strip_prefix("refs/heads/") == Some(tracked)
        || pushed.strip_prefix("refs/tags/") == Some(tracked)
}

fn is_commit(reference: &str) -> bool {
    matches!(reference.len(), 40 | 64) && reference.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_semver_range(reference: &str) -> bool {
    if reference.starts_with("semver:") {
        return true;
    }
    if reference
        .chars()
        .any(|c| matches!(c, '^' | '~' | '<' | '>' | '=' | '*' | ',') || c.is_whitespace())
    {
        return true;
    }
    // `1.x`, `v1.2.X`: a version whose parts after the first are numbers or a wildcard.
    let version = reference.strip_prefix('v').unwrap_or(reference);
    let mut parts = version.split('.');
    let first = parts.next().unwrap_or_default();
    let rest: Vec<&str> = parts.collect();
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    let wildcard = |p: &str| p.eq_ignore_ascii_case("x");
    (number(first) || wildcard(first))
        && !rest.is_empty()
        && rest.iter().all(|p| number(p) || wildcard(p))
        && (wildcard(first) || rest.iter().any(|p| wildcard(p)))
}

#[cfg(test)]
mod tests;
