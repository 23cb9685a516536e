//! The webhook call itself: a blocking HTTP/1.1 POST over TLS (rustls, trusting the
//! webhook's `caBundle` by `gitsync-tls`'s rule, or the system's roots when it has
//! none) within the webhook's timeout, with the API server's words for what went wrong.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rustls::pki_types::ServerName;
use serde_json::Value;

use super::Hook;

/// Where a refused certificate's issuer goes.
const REMEDY: &str =
    "add the certificate of the CA that signed it to the webhook's clientConfig.caBundle";

/// The most of an answer read.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;

/// Posts `review` to the webhook: the `AdmissionReview` it answered, or the reason the
/// call failed as the API server words it (`could not get REST client: …`, `failed to
/// call webhook: Post "<url>?timeout=10s": …`).
pub(super) fn post_review(hook: &Hook, review: &Value) -> Result<Value, String> {
    let config = &hook.client_config;
    let Some(url) = config.get("url").and_then(Value::as_str) else {
        let service = config.get("service").unwrap_or(&Value::Null);
        let text = |f: &str| service.get(f).and_then(Value::as_str).unwrap_or_default();
        return Err(format!(
            "could not get REST client: the local cluster cannot reach the webhook's service {}/{} (it runs no Services' endpoints); give the webhook clientConfig.url instead",
            text("namespace"),
            text("name"),
        ));
    };
    let tls = tls_config(config.get("caBundle").and_then(Value::as_str))
        .map_err(|e| format!("could not get REST client: {e}"))?;
    let seconds = hook.timeout.as_secs().max(1);
    let separator = if url.contains('?') { '&' } else { '?' };
    let full = format!("{url}{separator}timeout={seconds}s");
    let body = serde_json::to_vec(review).map_err(|e| e.to_string())?;
    let (status, answer) = post(&full, tls, &body, Duration::from_secs(seconds))
        .map_err(|e| format!("failed to call webhook: Post {full:?}: {e}"))?;
    if !(200..300).contains(&status) {
        let text = String::from_utf8_lossy(&answer).trim().to_owned();
        let reason = if status == 500 {
            let shown = if text.is_empty() { "unknown" } else { &text };
            format!("an error on the server ({shown:?}) has prevented the request from succeeding")
        } else {
            format!(
                "the server responded with the status code {status} but did not return more information"
            )
        };
        return Err(format!("failed to call webhook: {reason}"));
    }
    serde_json::from_slice(&answer).map_err(|e| {
        format!("failed to call webhook: the answer is not an AdmissionReview in JSON: {e}")
    })
}

/// A client configuration trusting `ca_bundle` (base64 PEM), or the system's roots.
fn tls_config(ca_bundle: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    match ca_bundle.filter(|b| !b.is_empty()) {
        Some(bundle) => {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(bundle)
                .map_err(|e| {
                    format!("unable to load root certificates: caBundle is not base64: {e}")
                })?;
            let certs = gitsync_tls::pem_certificates(&pem, "clientConfig.caBundle")
                .map_err(|e| format!("unable to load root certificates: {e}"))?;
            gitsync_tls::client_config(&[], &certs)
        }
        None => gitsync_tls::client_config(gitsync_tls::platform_roots(), &[]),
    }
}

/// An `https://host[:port][/path][?query]` URL taken apart.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Url<'a> {
    /// The authority as written (the `Host` header).
    pub authority: &'a str,
    /// The host, without an IPv6 address's brackets.
    pub host: &'a str,
    pub port: u16,
    /// The request target: path and query.
    pub target: String,
}

pub(super) fn parse_url(url: &str) -> Result<Url<'_>, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("unsupported protocol scheme (only https)")?;
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let target = if target.starts_with('/') {
        target.to_owned()
    } else {
        format!("/{target}")
    };
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']').ok_or("missing ']' in host")?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| format!("invalid port {p:?}"))?,
        None => 443,
    };
    if host.is_empty() {
        return Err("no host in the URL".into());
    }
    Ok(Url {
        authority,
        host,
        port,
        target,
    })
}

/// POSTs `body` (JSON) to `url`: the status code and the body of the answer.
fn post(
    url: &str,
    tls: Arc<rustls::ClientConfig>,
    body: &[u8],
    timeout: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let deadline = Instant::now() + timeout;
    let url = parse_url(url)?;
    let socket = connect(url.host, url.port, deadline)?;
    let name = ServerName::try_from(url.host.to_owned())
        .map_err(|e| format!("invalid server name {:?}: {e}", url.host))?;
    let session = rustls::ClientConnection::new(tls, name).map_err(|e| format!("tls: {e}"))?;
    let mut stream = rustls::StreamOwned::new(session, socket);
    let head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: gitsync-local-cluster\r\nContent-Type: application/json\r\nAccept: application/json, */*\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        url.target,
        url.authority,
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    set_timeouts(&stream.sock, deadline)?;
    stream
        .write_all(&request)
        .and_then(|()| stream.flush())
        .map_err(|e| io_error(&e))?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(done) = parse_response(&received)? {
            return Ok(done);
        }
        set_timeouts(&stream.sock, deadline)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
            // A server closing without close_notify ends the body all the same.
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(io_error(&e)),
        }
        if received.len() > MAX_RESPONSE {
            return Err(format!("the answer is larger than {MAX_RESPONSE} bytes"));
        }
    }
    match parse_response(&received)? {
        Some(done) => Ok(done),
        None => finish_at_eof(&received),
    }
}

/// The TCP connection to `host:port`, trying each address until the deadline.
fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, String> {
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("dial tcp: lookup {host}: {e}"))?
        .collect();
    let mut last = format!("dial tcp: lookup {host}: no such host");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("context deadline exceeded".into());
        }
        match TcpStream::connect_timeout(&addr, left) {
            Ok(socket) => return Ok(socket),
            Err(e) => {
                let why = match e.kind() {
                    ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                    ErrorKind::TimedOut | ErrorKind::WouldBlock => {
                        return Err("context deadline exceeded".into());
                    }
                    _ => e.to_string(),
                };
                last = format!("dial tcp {addr}: connect: {why}");
            }
        }
    }
    Err(last)
}

/// Bounds the next socket operations by what is left of the deadline.
fn set_timeouts(socket: &TcpStream, deadline: Instant) -> Result<(), String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err("context deadline exceeded".into());
    }
    socket
        .set_read_timeout(Some(left))
        .and_then(|()| socket.set_write_timeout(Some(left)))
        .map_err(|e| e.to_string())
}

/// An I/O error of the TLS stream in words: a refused certificate says why, a timeout
/// says the deadline passed.
fn io_error(e: &std::io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
        return match gitsync_tls::certificate_problem(tls, REMEDY) {
            Some(problem) => format!("tls: failed to verify certificate: {problem}"),
            None => format!("tls: {tls}"),
        };
    }
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => "context deadline exceeded".into(),
        ErrorKind::ConnectionReset => "connection reset by peer".into(),
        ErrorKind::UnexpectedEof => "EOF".into(),
        _ => e.to_string(),
    }
}

/// A complete answer in `data`: its status and body; `None` while more is to come.
pub(super) fn parse_response(data: &[u8]) -> Result<Option<(u16, Vec<u8>)>, String> {
    let Some(end) = find(data, b"\r\n\r\n") else {
        return Ok(None);
    };
    let (status, length, chunked) = parse_head(&data[..end])?;
    let body = &data[end + 4..];
    if chunked {
        return Ok(dechunk(body)?.map(|b| (status, b)));
    }
    Ok(match length {
        Some(n) if body.len() >= n => Some((status, body[..n].to_vec())),
        _ => None,
    })
}

/// What the connection's end makes of an incomplete answer: a body without a length
/// ends there; anything else was cut short.
fn finish_at_eof(data: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let Some(end) = find(data, b"\r\n\r\n") else {
        return Err(if data.is_empty() {
            "EOF".into()
        } else {
            "malformed HTTP response: the connection closed within the headers".into()
        });
    };
    let (status, length, chunked) = parse_head(&data[..end])?;
    if length.is_some() || chunked {
        return Err("unexpected EOF".into());
    }
    Ok((status, data[end + 4..].to_vec()))
}

/// Status code, Content-Length and whether the body is chunked.
fn parse_head(head: &[u8]) -> Result<(u16, Option<usize>, bool), String> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .filter(|_| status_line.starts_with("HTTP/"))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("malformed HTTP response {status_line:?}"))?;
    let mut length = None;
    let mut chunked = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| format!("malformed Content-Length {value:?}"))?,
            );
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        }
    }
    Ok((status, length, chunked))
}

/// A chunked body decoded, once its last chunk has come.
pub(super) fn dechunk(mut data: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = find(data, b"\r\n") else {
            return Ok(None);
        };
        let line = String::from_utf8_lossy(&data[..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("malformed chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(Some(out));
        }
        if data.len() < size + 2 {
            return Ok(None);
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

fn find(data: &[u8], needle: &[u8]) -> Option<usize> {
    data.windows(needle.len()).position(|w| w == needle)
}
