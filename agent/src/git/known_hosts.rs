//! Pinned SSH host keys: checks the key a server presents against the content of an
//! OpenSSH known_hosts file (host patterns, `[host]:port`, comma lists, `!` negations,
//! `*`/`?` wildcards, hashed `|1|salt|hash` names, `@revoked`). Pure: no IO, no git2.
//!
//! `@cert-authority` lines are ignored: host certificates are not verified, so a host
//! listed only that way is unknown.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{KeyInit as _, Mac as _};

/// Why a host key is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{host} is not in known_hosts; add its keys (the output of `ssh-keyscan {scan}`)")]
    Unknown { host: String, scan: String },
    #[error(
        "host key for {host} changed: the server presented a {kind} key that known_hosts does not list; if the change is expected, replace the host's line in known_hosts"
    )]
    Changed { host: String, kind: String },
    #[error(
        "{host} is in known_hosts, but not with a {kind} key, which is the kind the server presented; add the host's {kind} key"
    )]
    OtherKind { host: String, kind: String },
    #[error("host key for {host} is marked @revoked in known_hosts")]
    Revoked { host: String },
}

/// Accepts `key` (the raw SSH public key blob) for `host`:`port` only when a known_hosts
/// line for that host lists exactly that key.
pub fn check(known_hosts: &str, host: &str, port: u16, key: &[u8]) -> Result<(), Error> {
    let name = lookup_name(host, port);
    let lines: Vec<Line> = known_hosts
        .lines()
        .filter_map(Line::parse)
        .filter(|l| l.marker != Marker::CertAuthority && l.matches(&name))
        .collect();
    if lines
        .iter()
        .any(|l| l.marker == Marker::Revoked && l.key == key)
    {
        return Err(Error::Revoked { host: name });
    }
    let known: Vec<&Line> = lines.iter().filter(|l| l.marker == Marker::None).collect();
    if known.is_empty() {
        let scan = if port == 22 {
            host.to_owned()
        } else {
            format!("-p {port} {host}")
        };
        return Err(Error::Unknown { host: name, scan });
    }
    if known.iter().any(|l| l.key == key) {
        return Ok(());
    }
    let kind = key_kind(key);
    if known.iter().any(|l| l.kind == kind) {
        Err(Error::Changed { host: name, kind })
    } else {
        Err(Error::OtherKind { host: name, kind })
    }
}

/// The name known_hosts records a host under: `host` on port 22, else `[host]:port`.
fn lookup_name(host: &str, port: u16) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The key type named inside an SSH public key blob (a length-prefixed string).
fn key_kind(key: &[u8]) -> String {
    let kind = key
        .get(..4)
        .and_then(|len| <[u8; 4]>::try_from(len).ok())
        .map(u32::from_be_bytes)
        .and_then(|len| key.get(4..4 + usize::try_from(len).ok()?))
        .map(String::from_utf8_lossy);
    kind.map_or_else(|| "unknown".to_owned(), std::borrow::Cow::into_owned)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    CertAuthority,
    Revoked,
}

/// One known_hosts line: `[@marker] patterns key-type base64-key [comment]`.
#[derive(Debug)]
struct Line<'a> {
    marker: Marker,
    patterns: &'a str,
    kind: String,
    key: Vec<u8>,
}

impl<'a> Line<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace().peekable();
        let marker = match fields.peek().copied() {
            Some("@cert-authority") => Marker::CertAuthority,
            Some("@revoked") => Marker::Revoked,
            Some(m) if m.starts_with('@') => return None,
            _ => Marker::None,
        };
        if marker != Marker::None {
            fields.next();
        }
        let patterns = fields.next()?;
        let kind = fields.next()?.to_owned();
        let key = BASE64.decode(fields.next()?).ok()?;
        Some(Self {
            marker,
            patterns,
            kind,
            key,
        })
    }

    fn matches(&self, name: &str) -> bool {
        if let Some(hashed) = self.patterns.strip_prefix("|1|") {
            return hashed_matches(hashed, name);
        }
        let mut hit = false;
        for pattern in self.patterns.split(',') {
            let (negated, pattern) = match pattern.strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, pattern),
            };
            if glob(&pattern.to_ascii_lowercase(), name) {
                if negated {
                    return false;
                }
                hit = true;
            }
        }
        hit
    }
}

/// `salt|hash`, both base64: the line is for `name` when HMAC-SHA1(salt, name) = hash.
fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (BASE64.decode(salt), BASE64.decode(hash)) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// OpenSSH wildcards: `*` matches any run of characters, `?` exactly one.
fn glob(pattern: &str, name: &str) -> bool {
    let (pattern, name) = (pattern.as_bytes(), name.as_bytes());
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, n));
                p += 1;
            }
            Some(&c) if c == b'?' || c == name[n] => {
                p += 1;
                n += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    p = sp + 1;
                    n = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests;
