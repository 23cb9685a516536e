//! The relay's TLS client for `https` remotes: libgit2 speaks plain HTTP to the relay
//! on loopback and the relay speaks TLS to the server, so certificate checking, and
//! every failure of it, happens here and is reported by name.
//!
//! libgit2 is never given a TLS connection to fail: when its own handshake failed
//! inside a proxy tunnel it tore the TLS stream down after freeing the socket under it
//! and could block forever on a dead descriptor (libgit2 1.9, `http_client_connect`).
//!
//! Trust: the platform's roots (`SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured, as
//! by OpenSSL and git), plus any PEM certificates the app adds (`ca.crt` in its
//! credentials Secret).

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection};

use super::{Failure, lock};

/// Where a person puts a certificate to trust, said in a refusal.
const REMEDY: &str = "add that CA as ca.crt in the app's credentials Secret, or set SSL_CERT_FILE";

/// The client configuration trusting the platform's roots and the PEM `extra` ones.
///
/// # Errors
/// A message when `extra` holds no usable certificate, or nothing at all is trusted.
pub fn config(extra: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    // The platform's roots alone (most apps) are parsed once per process.
    static PLATFORM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    match extra {
        None => PLATFORM.get_or_init(|| build(&[])).clone(),
        Some(pem) => build(&gitsync_tls::pem_certificates(pem.as_bytes(), "ca.crt")?),
    }
}

fn build(extra: &[CertificateDer<'static>]) -> Result<Arc<ClientConfig>, String> {
    gitsync_tls::client_config(gitsync_tls::platform_roots(), extra).map_err(|e| {
        format!(
            "{e} (install ca-certificates, set SSL_CERT_FILE, or add ca.crt to the app's \
             credentials Secret)"
        )
    })
}

/// A TLS session to the server, shared by the two directions of one relayed link.
#[derive(Clone)]
pub struct Tls {
    socket: Arc<TcpStream>,
    session: Arc<Mutex<ClientConnection>>,
}

impl Tls {
    /// Completes a handshake with `host` over `socket` within `timeout`, the
    /// server's certificate checked against `config`.
    pub fn connect(
        socket: TcpStream,
        host: &str,
        config: Arc<ClientConfig>,
        timeout: Duration,
    ) -> Result<Self, Failure> {
        let unreachable =
            |e: &dyn std::fmt::Display| Failure::Unreachable(format!("TLS with {host}: {e}"));
        let name = ServerName::try_from(host.to_owned()).map_err(|e| unreachable(&e))?;
        let mut session = ClientConnection::new(config, name).map_err(|e| unreachable(&e))?;
        socket.set_read_timeout(Some(timeout)).ok();
        socket.set_write_timeout(Some(timeout)).ok();
        let mut io = &socket;
        while session.is_handshaking() {
            if let Err(e) = session.complete_io(&mut io) {
                return Err(match certificate_error(&e) {
                    Some(reason) => Failure::Certificate(format!(
                        "the certificate of {host} is refused: {reason}"
                    )),
                    None if super::is_timeout(&e) => Failure::TimedOut,
                    None => unreachable(&e),
                });
            }
        }
        Ok(Self {
            socket: Arc::new(socket),
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// The TCP connection under the session (for shutting it down).
    pub fn socket(&self) -> &TcpStream {
        &self.socket
    }

    /// Reads decrypted bytes; `Ok(0)` once the server closed. A silence of `timeout`
    /// is a timeout error.
    pub fn read(&self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        let mut raw = [0u8; 16 * 1024];
        loop {
            {
                let mut session = lock(&self.session);
                match session.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    // A server closing without close_notify: git's HTTP responses
                    // carry their own length, so a truncation is still caught.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                    Err(_) => {}
                }
            }
            self.socket.set_read_timeout(Some(timeout))?;
            let n = (&*self.socket).read(&mut raw)?;
            let mut session = lock(&self.session);
            // Fewer than 16 KiB of records: their plaintext fits rustls's buffer, which
            // was empty. No bytes at all tell rustls the server closed.
            let mut fed = &raw[..n];
            loop {
                session.read_tls(&mut fed)?;
                session
                    .process_new_packets()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                if fed.is_empty() {
                    break;
                }
            }
            self.flush(&mut session)?;
        }
    }

    /// Encrypts and sends all of `data` (bounded by the socket's write timeout).
    pub fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let mut session = lock(&self.session);
        session.writer().write_all(data)?;
        self.flush(&mut session)
    }

    /// Says the request is complete: a TLS close_notify, then the write side closed.
    pub fn close_write(&self) {
        let mut session = lock(&self.session);
        session.send_close_notify();
        self.flush(&mut session).ok();
        self.socket.shutdown(Shutdown::Write).ok();
    }

    fn flush(&self, session: &mut ClientConnection) -> io::Result<()> {
        let mut socket = &*self.socket;
        while session.wants_write() {
            session.write_tls(&mut socket)?;
        }
        socket.flush()
    }
}

/// The certificate problem behind a failed handshake, if that is what failed.
fn certificate_error(e: &io::Error) -> Option<String> {
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    gitsync_tls::certificate_problem(inner, REMEDY)
}
