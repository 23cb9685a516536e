//! gitsync-tls: which server certificates gitsync's TLS clients accept, and why one was
//! refused, in words a person can act on. The agent's Git relay (HTTPS remotes) and the
//! local cluster (admission webhooks) share it, so both trust exactly alike.
//!
//! The rule is the Web PKI's (rustls/webpki), with one exception that Go's `crypto/x509`
//! and OpenSSL make as well: a server presenting exactly a certificate that is itself
//! trusted (a self-signed certificate, which `openssl req -x509` marks as a CA) is
//! accepted when it names the host.

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore};

#[cfg(feature = "testing")]
pub mod testing;

/// The platform's trusted certificates (`SSL_CERT_FILE` and `SSL_CERT_DIR` honoured, as
/// by OpenSSL), read once per process.
pub fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The PEM certificates in `pem` (`what` names the source in the error).
///
/// # Errors
/// When `pem` is not PEM, or holds no certificate.
pub fn pem_certificates(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} is not PEM certificates: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{what} holds no PEM certificate"));
    }
    Ok(certs)
}

/// A client configuration trusting `roots` (e.g. the platform's) and `extra` (e.g. a
/// private CA a person added), which must all be usable.
///
/// # Errors
/// When a certificate of `extra` cannot be used as a root, or nothing is trusted.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    extra: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, String> {
    let mut store = RootCertStore::empty();
    store.add_parsable_certificates(roots.iter().cloned());
    let (_, unusable) = store.add_parsable_certificates(extra.iter().cloned());
    if unusable > 0 {
        return Err(format!(
            "{unusable} of the added certificates cannot be used"
        ));
    }
    if store.is_empty() {
        return Err("no trusted root certificates".into());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let trusted = roots.iter().chain(extra).map(|c| c.to_vec()).collect();
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Verifier { webpki, trusted }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// Why the server's certificate was refused, when `error` says that is what failed;
/// `remedy` says how to trust it (where a CA certificate goes).
pub fn certificate_problem(error: &rustls::Error, remedy: &str) -> Option<String> {
    use rustls::CertificateError as Cert;
    let rustls::Error::InvalidCertificate(reason) = error else {
        return matches!(error, rustls::Error::NoCertificatesPresented)
            .then(|| "the server sent no certificate".into());
    };
    Some(match reason {
        Cert::UnknownIssuer => format!("it is signed by an unknown authority ({remedy})"),
        Cert::Other(other)
            if other.0.downcast_ref::<webpki::Error>()
                == Some(&webpki::Error::CaUsedAsEndEntity) =>
        {
            format!("it is a self-signed CA certificate that is not trusted ({remedy})")
        }
        Cert::NotValidForName => "it is not issued for this host name".into(),
        Cert::NotValidForNameContext { presented, .. } => format!(
            "it is not issued for this host name, but for {}",
            presented.join(", ")
        ),
        Cert::Expired | Cert::ExpiredContext { .. } => "it has expired".into(),
        Cert::NotValidYet | Cert::NotValidYetContext { .. } => "it is not valid yet".into(),
        Cert::Revoked => "it is revoked".into(),
        other => format!("{other:?}"),
    })
}

/// The Web PKI's verdict, but for a server presenting exactly a trusted certificate.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    /// The DER of every trusted certificate.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_without_certificates_is_refused_by_name() {
        let err = pem_certificates(b"not a certificate", "ca.crt").expect_err("no PEM");
        assert_eq!(err, "ca.crt holds no PEM certificate");
    }

    #[test]
    fn nothing_trusted_is_an_error() {
        let err = client_config(&[], &[]).expect_err("no roots");
        assert!(err.contains("no trusted root"), "{err}");
    }
}
