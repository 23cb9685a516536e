//! A loopback TCP relay that bounds network operations libgit2 cannot bound by itself
//! (its socket timeouts are process-global settings behind `unsafe`): libgit2 talks to
//! `127.0.0.1:port`, the relay dials the real server with a connect timeout, and closes
//! both sides of a connection that stays silent for the timeout, which makes the blocked
//! libgit2 call fail at once. It records why, so a timeout or an unreachable server can
//! be told apart from a refusal.
//!
//! It moves bytes, and for `https` remotes it is the TLS client too (see [`tls`]):
//! libgit2 speaks plain HTTP to it on loopback. SSH runs end to end between libgit2
//! and the server.

use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use tls::Tls;

mod tls;

pub use tls::config as tls_config;

/// What libgit2 sends on a relayed connection, and how it goes on to the server.
#[derive(Debug, Clone)]
pub enum Mode {
    /// The protocol itself (SSH, git://), relayed as is.
    Raw,
    /// A plain HTTP request sent to the relay's address: its `Host` header is set back
    /// to this value and `Connection: close` added, so each connection carries one
    /// request whose head is the only part rewritten.
    Http(String),
    /// As `Http`, sent on to the server over TLS with this configuration.
    Https(String, Arc<rustls::ClientConfig>),
}

/// Why a relayed connection ended early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    TimedOut,
    Unreachable(String),
    /// The server's TLS certificate was refused, and why.
    Certificate(String),
}

/// A running relay to one server; stops (and closes its connections) when dropped.
pub struct Relay {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    host: String,
    port: u16,
    mode: Mode,
    timeout: Duration,
    stopping: AtomicBool,
    failure: Mutex<Option<Failure>>,
    open: Mutex<Vec<TcpStream>>,
}

impl Relay {
    /// Listens on a free loopback port and relays each connection to `host`:`port`.
    pub fn start(host: &str, port: u16, mode: Mode, timeout: Duration) -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            host: host.to_owned(),
            port,
            mode,
            timeout: timeout.max(Duration::from_millis(10)),
            stopping: AtomicBool::new(false),
            failure: Mutex::new(None),
            open: Mutex::new(Vec::new()),
        });
        let accepting = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("git-relay".into())
            .spawn(move || accept_loop(&listener, &accepting))?;
        Ok(Self {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The first reason a connection ended early, if one did.
    pub fn failure(&self) -> Option<Failure> {
        lock(&self.shared.failure).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocked accept; if this connect fails the thread is left behind.
        let woken = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        for stream in lock(&self.shared.open).drain(..) {
            stream.shutdown(Shutdown::Both).ok();
        }
        if let Some(accept) = self.accept.take().filter(|_| woken) {
            accept.join().ok();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        let shared = Arc::clone(shared);
        thread::Builder::new()
            .name("git-relay-conn".into())
            .spawn(move || Shared::serve(&shared, client))
            .ok();
    }
}

impl Shared {
    fn fail(&self, failure: Failure) {
        lock(&self.failure).get_or_insert(failure);
    }

    fn track(&self, stream: &TcpStream) -> io::Result<TcpStream> {
        let clone = stream.try_clone()?;
        lock(&self.open).push(stream.try_clone()?);
        Ok(clone)
    }

    fn serve(self: &Arc<Self>, mut client: TcpStream) {
        let head = match self.mode {
            Mode::Raw => Vec::new(),
            Mode::Http(_) | Mode::Https(..) => match read_head(&mut client, self.timeout) {
                Ok(head) => head,
                Err(_) => return,
            },
        };
        let upstream = dial(&self.host, self.port, self.timeout).and_then(|socket| {
            Ok(match &self.mode {
                Mode::Https(_, config) => End::Tls(Tls::connect(
                    socket,
                    &self.host,
                    Arc::clone(config),
                    self.timeout,
                )?),
                Mode::Raw | Mode::Http(_) => End::Plain(socket),
            })
        });
        let mut upstream = match upstream {
            Ok(upstream) => upstream,
            Err(failure) => {
                self.fail(failure);
                if !matches!(self.mode, Mode::Raw) {
                    client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").ok();
                }
                return;
            }
        };
        let opened = match &self.mode {
            Mode::Raw => Ok(()),
            Mode::Http(host) | Mode::Https(host, _) => {
                upstream.write_all(&rewrite_head(&head, host))
            }
        };
        if opened.is_err() {
            return;
        }
        let (Ok(client_in), Ok(upstream_in)) = (self.track(&client), self.track(upstream.socket()))
        else {
            return;
        };
        let (client, client_in) = (End::Plain(client), End::Plain(client_in));
        let upstream_in = match &upstream {
            End::Tls(tls) => End::Tls(tls.clone()),
            End::Plain(_) => End::Plain(upstream_in),
        };
        let link = Arc::new(Link {
            relay: Arc::clone(self),
            last: Mutex::new(Instant::now()),
            ended: AtomicBool::new(false),
        });
        let back = Arc::clone(&link);
        let down = thread::Builder::new()
            .name("git-relay-down".into())
            .spawn(move || back.pump(upstream_in, client));
        link.pump(client_in, upstream);
        if let Ok(down) = down {
            down.join().ok();
        }
    }
}

/// Reads an HTTP request head, up to and with the blank line.
fn read_head(client: &mut TcpStream, timeout: Duration) -> io::Result<Vec<u8>> {
    client.set_read_timeout(Some(timeout))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::InvalidData.into());
        }
        head.push(byte[0]);
    }
    Ok(head)
}

/// The request head with `Host: host` and `Connection: close` in place of its own.
fn rewrite_head(head: &[u8], host: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n").filter(|line| !line.is_empty());
    let mut out = lines.next().unwrap_or_default().to_owned();
    out.push_str("\r\n");
    for line in lines {
        let name = line.split(':').next().unwrap_or_default().trim();
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("connection") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str(&format!("Host: {host}\r\nConnection: close\r\n\r\n"));
    out.into_bytes()
}

fn dial(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, Failure> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| Failure::Unreachable(format!("cannot resolve {host}: {e}")))?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) if e.kind() == io::ErrorKind::TimedOut => Failure::TimedOut,
        Some(e) => Failure::Unreachable(format!("cannot connect to {host}:{port}: {e}")),
        None => Failure::Unreachable(format!("{host} has no address")),
    })
}

/// One relayed connection: when it last moved a byte, and whether a side has closed.
struct Link {
    relay: Arc<Shared>,
    last: Mutex<Instant>,
    ended: AtomicBool,
}

impl Link {
    fn idle(&self) -> Duration {
        lock(&self.last).elapsed()
    }

    fn touch(&self) {
        *lock(&self.last) = Instant::now();
    }

    /// Copies `from` to `to` until a side closes or the link stays silent too long.
    fn pump(&self, mut from: End, mut to: End) {
        let timeout = self.relay.timeout;
        let mut buf = vec![0u8; 32 * 1024];
        to.socket().set_write_timeout(Some(timeout)).ok();
        loop {
            let left = timeout.saturating_sub(self.idle());
            if left.is_zero() {
                return self.cut(&from, &to);
            }
            match from.read(&mut buf, left) {
                Ok(0) => {
                    self.ended.store(true, Ordering::SeqCst);
                    to.close_write();
                    return;
                }
                Ok(n) => {
                    self.touch();
                    match to.write_all(&buf[..n]) {
                        Ok(()) => self.touch(),
                        Err(e) if is_timeout(&e) => return self.cut(&from, &to),
                        Err(_) => return self.close(&from, &to),
                    }
                }
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.close(&from, &to),
            }
        }
    }

    /// Ends a silent link, recording a timeout first (so it is known by the time
    /// libgit2 sees the connection close); silence after a side closed is not one.
    fn cut(&self, from: &End, to: &End) {
        if !self.ended.swap(true, Ordering::SeqCst) {
            self.relay.fail(Failure::TimedOut);
        }
        self.close(from, to);
    }

    fn close(&self, from: &End, to: &End) {
        self.ended.store(true, Ordering::SeqCst);
        from.socket().shutdown(Shutdown::Both).ok();
        to.socket().shutdown(Shutdown::Both).ok();
    }
}

/// One side of a relayed link: a plain connection, or the TLS session to the server.
enum End {
    Plain(TcpStream),
    Tls(Tls),
}

impl End {
    fn socket(&self) -> &TcpStream {
        match self {
            Self::Plain(socket) => socket,
            Self::Tls(tls) => tls.socket(),
        }
    }

    /// Reads what arrives within `timeout` (a timeout error when nothing does).
    fn read(&mut self, buf: &mut [u8], timeout: Duration) -> io::Result<usize> {
        match self {
            Self::Plain(socket) => {
                socket.set_read_timeout(Some(timeout))?;
                socket.read(buf)
            }
            Self::Tls(tls) => tls.read(buf, timeout),
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(socket) => socket.write_all(data),
            Self::Tls(tls) => tls.write_all(data),
        }
    }

    /// Tells the other side nothing more is coming.
    fn close_write(&self) {
        match self {
            Self::Plain(socket) => {
                socket.shutdown(Shutdown::Write).ok();
            }
            Self::Tls(tls) => tls.close_write(),
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

#[cfg(test)]
mod tests;
