//! One network conversation with a remote: aims libgit2 at a [`Relay`] that enforces
//! the timeout (and is the TLS client of an https remote), hands out the configured credential once (a second request means the
//! server rejected it), pins SSH host keys to known_hosts, and sorts a failure into
//! transient (timeout, unreachable, network) or not (auth, host key, the rest).

use std::cell::RefCell;
use std::rc::Rc;

use git2::{
    CertificateCheckStatus, Cred, CredentialType, ErrorClass, ErrorCode, FetchOptions,
    ProxyOptions, RemoteCallbacks,
};

use super::endpoint::{Endpoint, Scheme};
use super::relay::{self, Relay};
use super::{Access, Auth, Error, known_hosts};

/// The relay, credentials and host-key pins for operations on one URL.
pub struct Session<'a> {
    original: &'a str,
    url: String,
    access: &'a Access,
    relay: Option<Relay>,
    ssh_host: Option<(String, u16)>,
    state: Rc<RefCell<State>>,
}

/// What the callbacks saw: how often the secret was handed out, and why the
/// conversation was refused, if it was.
#[derive(Debug, Default)]
struct State {
    offered: bool,
    usernames: u8,
    refused: Option<Refusal>,
}

#[derive(Debug)]
enum Refusal {
    Auth(String),
    HostKey(known_hosts::Error),
}

impl<'a> Session<'a> {
    /// Starts the relay for a network `url`; local paths need none.
    pub fn open(url: &'a str, access: &'a Access) -> Result<Self, Error> {
        let mut session = Self {
            original: url,
            url: url.to_owned(),
            access,
            relay: None,
            ssh_host: None,
            state: Rc::default(),
        };
        let Some(endpoint) = Endpoint::parse(url) else {
            return Ok(session);
        };
        let mode = match endpoint.scheme {
            Scheme::Https => {
                let config = relay::tls_config(access.ca.as_deref()).map_err(|reason| {
                    Error::Certificate {
                        url: url.to_owned(),
                        reason,
                    }
                })?;
                relay::Mode::Https(endpoint.host_header(), config)
            }
            Scheme::Http => relay::Mode::Http(endpoint.host_header()),
            Scheme::Ssh | Scheme::Git => relay::Mode::Raw,
        };
        let relay =
            Relay::start(&endpoint.host, endpoint.port, mode, access.timeout).map_err(|e| {
                Error::Unreachable {
                    url: url.to_owned(),
                    reason: format!("cannot start the local relay: {e}"),
                }
            })?;
        session.url = endpoint.relayed(relay.port());
        if endpoint.scheme == Scheme::Ssh {
            session.ssh_host = Some((endpoint.host.clone(), endpoint.port));
        }
        session.relay = Some(relay);
        Ok(session)
    }

    /// The URL to hand libgit2 (aimed at the relay for ssh and git://).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn fetch_options(&self) -> FetchOptions<'_> {
        let mut options = FetchOptions::new();
        options
            .remote_callbacks(self.callbacks())
            .proxy_options(Self::proxy_options());
        options
    }

    /// No proxy, said explicitly: every connection goes through the relay.
    pub fn proxy_options() -> ProxyOptions<'static> {
        ProxyOptions::new()
    }

    pub fn callbacks(&self) -> RemoteCallbacks<'_> {
        let mut callbacks = RemoteCallbacks::new();
        let state = Rc::clone(&self.state);
        let auth = &self.access.auth;
        callbacks.credentials(move |_url, user, allowed| credential(&state, auth, user, allowed));
        let state = Rc::clone(&self.state);
        let known_hosts = auth.known_hosts();
        let ssh_host = self.ssh_host.clone();
        callbacks.certificate_check(move |cert, _relay_host| {
            let Some(hostkey) = cert.as_hostkey() else {
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let (host, port) = ssh_host.clone().unwrap_or_default();
            let key = hostkey.hostkey().unwrap_or_default();
            known_hosts::check(known_hosts, &host, port, key)
                .map(|()| CertificateCheckStatus::CertificateOk)
                .map_err(|refused| {
                    let message = refused.to_string();
                    state.borrow_mut().refused = Some(Refusal::HostKey(refused));
                    git2::Error::from_str(&message)
                })
        });
        callbacks
    }

    /// Names why `error` happened: a refusal the callbacks saw, a relay timeout or an
    /// unreachable server, a network error, or `otherwise`.
    pub fn error(&self, error: git2::Error, otherwise: impl FnOnce(git2::Error) -> Error) -> Error {
        let url = self.original.to_owned();
        match self.state.borrow_mut().refused.take() {
            Some(Refusal::HostKey(refused)) => return Error::HostKey(refused),
            Some(Refusal::Auth(reason)) => return Error::Auth { url, reason },
            None => {}
        }
        match self.relay.as_ref().and_then(Relay::failure) {
            Some(relay::Failure::TimedOut) => {
                return Error::TimedOut {
                    url,
                    after: self.access.timeout,
                };
            }
            Some(relay::Failure::Unreachable(reason)) => return Error::Unreachable { url, reason },
            Some(relay::Failure::Certificate(reason)) => return Error::Certificate { url, reason },
            None => {}
        }
        match (error.code(), error.class()) {
            (ErrorCode::Auth, _) => Error::Auth {
                url,
                reason: error.message().to_owned(),
            },
            (_, ErrorClass::Net | ErrorClass::Os) => Error::Network { url, source: error },
            (_, ErrorClass::Http) if error.message().contains("status code: 5") => {
                Error::Network { url, source: error }
            }
            _ => otherwise(error),
        }
    }
}

/// Answers libgit2's request for credentials: the configured secret once, never again.
fn credential(
    state: &RefCell<State>,
    auth: &Auth,
    user: Option<&str>,
    allowed: CredentialType,
) -> Result<Cred, git2::Error> {
    let user = user.unwrap_or("git");
    match auth {
        Auth::Token { username, token }
            if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
        {
            once(
                state,
                &format!("the server rejected the token for user {username:?}"),
            )?;
            Cred::userpass_plaintext(username, token)
        }
        Auth::Ssh {
            private_key,
            passphrase,
            ..
        } if allowed.contains(CredentialType::SSH_KEY) => {
            once(
                state,
                &format!("the server rejected the ssh key for user {user:?}"),
            )?;
            Cred::ssh_key_from_memory(user, None, private_key, passphrase.as_deref())
                .map_err(|e| refuse(state, &format!("cannot use the ssh key: {}", e.message())))
        }
        Auth::Ssh { .. } if allowed.contains(CredentialType::USERNAME) => {
            let mut state_now = state.borrow_mut();
            state_now.usernames += 1;
            if state_now.usernames > 2 {
                drop(state_now);
                return Err(refuse(state, "the server keeps asking for a user name"));
            }
            Cred::username(user)
        }
        Auth::None => Err(refuse(
            state,
            "the server asks for credentials and none are configured",
        )),
        Auth::Token { .. } | Auth::Ssh { .. } => Err(refuse(
            state,
            &format!(
                "the server asks for credentials ({allowed:?}) the configured kind cannot give"
            ),
        )),
    }
}

/// Allows one hand-out of the secret; a second request is a rejection.
fn once(state: &RefCell<State>, rejected: &str) -> Result<(), git2::Error> {
    let offered = std::mem::replace(&mut state.borrow_mut().offered, true);
    if offered {
        return Err(refuse(state, rejected));
    }
    Ok(())
}

fn refuse(state: &RefCell<State>, reason: &str) -> git2::Error {
    state.borrow_mut().refused = Some(Refusal::Auth(reason.to_owned()));
    git2::Error::new(ErrorCode::Auth, ErrorClass::Callback, reason)
}
