//! How to reach a repository: the credentials and the time limit of every network
//! operation. Credentials are contents, not paths, because the agent reads them from a
//! Kubernetes Secret; `Debug` never prints them.

use std::fmt;
use std::time::Duration;

/// The default bound of a network operation's silence (see [`Access::timeout`]).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_mins(1);

/// Credentials and limits for talking to a remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub auth: Auth,
    /// Bounds connecting, and every stretch of silence on a connection: a server that
    /// sends nothing for this long is given up on (a large transfer that keeps moving
    /// is not cut short).
    pub timeout: Duration,
    /// PEM certificates trusted for an https remote on top of the platform's roots
    /// (`ca.crt` in the credentials Secret: a private CA's certificate).
    pub ca: Option<String>,
}

impl Default for Access {
    fn default() -> Self {
        Self {
            auth: Auth::None,
            timeout: DEFAULT_TIMEOUT,
            ca: None,
        }
    }
}

/// Who the agent is to the Git server.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous access (public HTTPS, local paths).
    #[default]
    None,
    /// HTTPS basic credentials: a personal access or deploy token as the password.
    Token { username: String, token: String },
    /// An SSH key, and the host keys the server may present.
    Ssh {
        /// The private key's content (PEM or OpenSSH format).
        private_key: String,
        passphrase: Option<String>,
        /// The content of a known_hosts file; empty refuses every host.
        known_hosts: String,
    },
}

impl Auth {
    /// A token credential; an empty `username` becomes `git`, which GitHub and GitLab
    /// accept with any token.
    pub fn token(username: &str, token: &str) -> Self {
        let username = if username.is_empty() { "git" } else { username };
        Self::Token {
            username: username.to_owned(),
            token: token.to_owned(),
        }
    }

    /// The known_hosts content SSH host keys are checked against.
    pub(crate) fn known_hosts(&self) -> &str {
        match self {
            Self::Ssh { known_hosts, .. } => known_hosts,
            Self::None | Self::Token { .. } => "",
        }
    }
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Token { username, .. } => f
                .debug_struct("Token")
                .field("username", username)
                .field("token", &"<redacted>")
                .finish(),
            Self::Ssh { known_hosts, .. } => f
                .debug_struct("Ssh")
                .field("private_key", &"<redacted>")
                .field("known_hosts_lines", &known_hosts.lines().count())
                .finish_non_exhaustive(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_secrets() {
        let token = format!("{:?}", Auth::token("", "s3cret"));
        assert!(
            !token.contains("s3cret") && token.contains("git"),
            "{token}"
        );
        let ssh = Auth::Ssh {
            private_key: "-----BEGIN KEY-----".into(),
            passphrase: Some("pass".into()),
            known_hosts: "h ssh-ed25519 AAAA\n".into(),
        };
        let ssh = format!("{ssh:?}");
        assert!(!ssh.contains("BEGIN") && !ssh.contains("pass\""), "{ssh}");
    }

    #[test]
    fn default_is_anonymous_with_a_minute() {
        assert_eq!(Access::default().auth, Auth::None);
        assert_eq!(Access::default().timeout, Duration::from_mins(1));
    }
}
