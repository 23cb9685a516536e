//! Where a clone URL points on the network (scheme, host, port), and the same URL
//! re-aimed at a local relay port. Pure string work; paths and `file://` URLs have no
//! endpoint.

/// The network protocol of a remote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
    Ssh,
    Git,
}

/// A remote's network address, parsed from a URL or an scp-like `user@host:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint<'a> {
    pub scheme: Scheme,
    /// Host name or address, without IPv6 brackets.
    pub host: String,
    pub port: u16,
    prefix: &'a str,
    user: Option<&'a str>,
    path: &'a str,
    scp: bool,
}

impl<'a> Endpoint<'a> {
    /// The network endpoint of `url`; `None` for local paths and unknown schemes.
    pub fn parse(url: &'a str) -> Option<Self> {
        match url.split_once("://") {
            Some((scheme, rest)) => Self::parse_url(url, scheme, rest),
            None => Self::parse_scp(url),
        }
    }

    fn parse_url(url: &'a str, scheme: &str, rest: &'a str) -> Option<Self> {
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Scheme::Http, 80),
            "https" => (Scheme::Https, 443),
            "ssh" | "ssh+git" | "git+ssh" => (Scheme::Ssh, 22),
            "git" => (Scheme::Git, 9418),
            _ => return None,
        };
        let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let (user, host_port) = match authority.rsplit_once('@') {
            Some((user, host_port)) => (Some(user), host_port),
            None => (None, authority),
        };
        let (host, port) = split_port(host_port)?;
        Some(Self {
            scheme,
            host: host.to_owned(),
            port: port.unwrap_or(default_port),
            prefix: &url[..url.len() - rest.len()],
            user,
            path,
            scp: false,
        })
    }

    /// `user@host:path`, or libgit2's `[user@host:port]:path`.
    fn parse_scp(url: &'a str) -> Option<Self> {
        let (address, path, bracketed) = if let Some(inner) = url.strip_prefix('[') {
            let (address, path) = inner.split_once("]:")?;
            (address, path, true)
        } else {
            let colon = url.find(':')?;
            if url[..colon].contains('/') {
                return None;
            }
            (&url[..colon], &url[colon + 1..], false)
        };
        let (user, host_port) = match address.rsplit_once('@') {
            Some((user, host_port)) => (Some(user), host_port),
            None => (None, address),
        };
        let (host, port) = if bracketed {
            split_port(host_port)?
        } else {
            (
                host_port.trim_start_matches('[').trim_end_matches(']'),
                None,
            )
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme: Scheme::Ssh,
            host: host.to_owned(),
            port: port.unwrap_or(22),
            prefix: "",
            user,
            path,
            scp: true,
        })
    }

    /// The HTTP `Host` header for this endpoint: the port only when not the scheme's
    /// default.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.scheme == Scheme::Https {
            443
        } else {
            80
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The same remote reached through `127.0.0.1:port` (user and path kept). An
    /// `https` remote becomes plain `http`: the relay is its TLS client.
    pub fn relayed(&self, port: u16) -> String {
        let user = self.user.map(|u| format!("{u}@")).unwrap_or_default();
        let prefix = if self.scheme == Scheme::Https {
            "http://"
        } else {
            self.prefix
        };
        if self.scp {
            format!("[{user}127.0.0.1:{port}]:{}", self.path)
        } else {
            format!("{prefix}{user}127.0.0.1:{port}{}", self.path)
        }
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`; `None` when the port is not a number.
fn split_port(host_port: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = host_port.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    let port = match port {
        Some("") | None => None,
        Some(p) => Some(p.parse().ok()?),
    };
    Some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(url: &str) -> (Scheme, String, u16, String) {
        let e = Endpoint::parse(url).expect(url);
        (e.scheme, e.host.clone(), e.port, e.relayed(4000))
    }

    #[test]
    fn urls_and_scp_forms_parse_and_relay() {
        let cases = [
            (
                "https://github.com/org/repo.git",
                (Scheme::Https, "github.com", 443),
                "http://127.0.0.1:4000/org/repo.git",
            ),
            (
                "http://user:pw@git.local:8080/r",
                (Scheme::Http, "git.local", 8080),
                "http://user:pw@127.0.0.1:4000/r",
            ),
            (
                "ssh://git@example.com:2222/abs/repo.git",
                (Scheme::Ssh, "example.com", 2222),
                "ssh://git@127.0.0.1:4000/abs/repo.git",
            ),
            (
                "git@github.com:org/repo.git",
                (Scheme::Ssh, "github.com", 22),
                "[git@127.0.0.1:4000]:org/repo.git",
            ),
            (
                "[git@example.com:2222]:org/repo.git",
                (Scheme::Ssh, "example.com", 2222),
                "[git@127.0.0.1:4000]:org/repo.git",
            ),
            (
                "ssh://[::1]:22/r",
                (Scheme::Ssh, "::1", 22),
                "ssh://127.0.0.1:4000/r",
            ),
            (
                "git://example.com/r.git",
                (Scheme::Git, "example.com", 9418),
                "git://127.0.0.1:4000/r.git",
            ),
        ];
        for (url, (scheme, host, port), relayed) in cases {
            assert_eq!(
                parsed(url),
                (scheme, host.to_owned(), port, relayed.to_owned()),
                "{url}"
            );
        }
    }

    #[test]
    fn host_headers_keep_non_default_ports() {
        let header = |url| Endpoint::parse(url).expect(url).host_header();
        assert_eq!(header("http://git.local/r"), "git.local");
        assert_eq!(header("http://git.local:8080/r"), "git.local:8080");
        assert_eq!(header("http://[::1]:3000/r"), "[::1]:3000");
        assert_eq!(header("https://git.local/r"), "git.local");
        assert_eq!(header("https://git.local:80/r"), "git.local:80");
        assert_eq!(header("https://git.local:8443/r"), "git.local:8443");
    }

    #[test]
    fn local_paths_have_no_endpoint() {
        for url in [
            "/srv/repo.git",
            "./repo",
            "repo",
            "file:///srv/r.git",
            "a/b:c",
        ] {
            assert_eq!(Endpoint::parse(url), None, "{url}");
        }
    }
}
