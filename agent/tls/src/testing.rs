//! Test helpers (feature `testing`): self-signed certificates made as people make them,
//! and a TLS server on loopback, for the tests of the Git relay, the local cluster's
//! admission webhooks and the end-to-end fixtures.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// One accepted TLS connection.
pub type Stream = rustls::StreamOwned<rustls::ServerConnection, TcpStream>;

/// A self-signed certificate for the IP address `ip` and its key, both PEM, made with
/// the openssl CLI (`req -x509`, so marked a CA, as most self-signed server
/// certificates are).
///
/// # Panics
/// When openssl is missing or fails.
#[must_use]
pub fn self_signed(ip: &str) -> (String, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let status = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "1"])
        .args(["-subj", &format!("/CN={ip}")])
        .args(["-addext", &format!("subjectAltName=IP:{ip}")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl req failed");
    let read = |p| std::fs::read_to_string(p).expect("pem");
    (read(&cert), read(&key))
}

/// A TLS server on a free loopback port presenting `cert`: each connection is handed
/// to `handle` on its own thread, then closed with a close_notify. Returns the port.
///
/// # Panics
/// When the certificate or key is not PEM, or no port is free.
pub fn serve(cert: &str, key: &str, handle: impl Fn(&mut Stream) + Send + Sync + 'static) -> u16 {
    let certs = vec![CertificateDer::from_pem_slice(cert.as_bytes()).expect("cert")];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).expect("key");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = Arc::new(handle);
    std::thread::spawn(move || {
        for socket in listener.incoming().flatten() {
            let (config, handle) = (Arc::clone(&config), Arc::clone(&handle));
            std::thread::spawn(move || {
                let session = rustls::ServerConnection::new(config).expect("session");
                let mut tls = rustls::StreamOwned::new(session, socket);
                handle(&mut tls);
                tls.conn.send_close_notify();
                std::io::Write::flush(&mut tls).ok();
            });
        }
    });
    port
}
