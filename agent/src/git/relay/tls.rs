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

use std::collections::HashSet;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};

use super::{Failure, lock};

/// The client configuration trusting the platform's roots and the PEM `extra` ones.
///
/// # Errors
/// A message when `extra` holds no certificate, or nothing at all is trusted.
pub fn config(extra: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(platform_certs().iter().cloned());
    let mut trusted: HashSet<Vec<u8>> = platform_certs().iter().map(|c| c.to_vec()).collect();
    if let Some(pem) = extra {
        let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca.crt is not PEM certificates: {e}"))?;
        if certs.is_empty() {
            return Err("ca.crt holds no PEM certificate".into());
        }
        let (_, unusable) = roots.add_parsable_certificates(certs.iter().cloned());
        if unusable > 0 {
            return Err(format!(
                "{unusable} certificate(s) in ca.crt cannot be used"
            ));
        }
        trusted.extend(certs.iter().map(|c| c.to_vec()));
    }
    if roots.is_empty() {
        return Err(
            "no trusted root certificates: install ca-certificates, set \
                    SSL_CERT_FILE, or add ca.crt to the app's credentials Secret"
                .into(),
        );
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verifier = Verifier { webpki, trusted };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The platform's trusted certificates, read once per process.
fn platform_certs() -> &'static [CertificateDer<'static>] {
    static CERTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    CERTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The Web PKI's verdict, with one exception git and OpenSSL make as well: a server
/// presenting exactly a certificate trusted as a root (a self-signed certificate,
/// which `openssl req -x509` marks as a CA) is accepted when it names the host.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    trusted: HashSet<Vec<u8>>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict =
            self.webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match verdict {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(ref other)))
                if self.trusted.contains(end_entity.as_ref())
                    && other.0.downcast_ref::<webpki::Error>()
                        == Some(&webpki::Error::CaUsedAsEndEntity) =>
            {
                verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            verdict => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
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
    use rustls::CertificateError as Cert;
    let inner = e.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(match inner {
        rustls::Error::InvalidCertificate(Cert::UnknownIssuer) => "it is signed by an \
            unknown authority (add that CA as ca.crt in the app's credentials Secret, or \
            set SSL_CERT_FILE)"
            .into(),
        rustls::Error::InvalidCertificate(Cert::NotValidForName) => {
            "it is not issued for this host name".into()
        }
        rustls::Error::InvalidCertificate(Cert::NotValidForNameContext { presented, .. }) => {
            format!(
                "it is not issued for this host name, but for {}",
                presented.join(", ")
            )
        }
        rustls::Error::InvalidCertificate(Cert::Expired | Cert::ExpiredContext { .. }) => {
            "it has expired".into()
        }
        rustls::Error::InvalidCertificate(Cert::Other(other))
            if other.0.downcast_ref::<webpki::Error>()
                == Some(&webpki::Error::CaUsedAsEndEntity) =>
        {
            "it is a self-signed CA certificate that is not trusted (add it as ca.crt in \
             the app's credentials Secret, or set SSL_CERT_FILE)"
                .into()
        }
        rustls::Error::InvalidCertificate(reason) => format!("{reason:?}"),
        rustls::Error::NoCertificatesPresented => "the server sent no certificate".into(),
        _ => return None,
    })
}
