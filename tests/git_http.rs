//! Git test servers: `git http-backend` behind a std `TcpListener` (one request per
//! connection, optional Basic auth, a log of requests), and a server that accepts
//! connections and never answers.

use std::collections::HashMap;
use std::io::{self, BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use base64::Engine as _;

/// Smart HTTP for every repository under a root directory.
pub struct GitHttp {
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

struct Config {
    root: PathBuf,
    /// The `Host` header every request must carry (the relay restores it).
    host: String,
    /// The `Authorization` header value required, if any.
    authorization: Option<String>,
}

impl GitHttp {
    /// Serves `root`; with `basic`, every request needs those Basic credentials.
    pub fn serve(root: &Path, basic: Option<(&str, &str)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = Arc::new(Config {
            root: root.to_path_buf(),
            host: addr.to_string(),
            authorization: basic.map(|(user, token)| {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{token}"));
                format!("Basic {pair}")
            }),
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (log2, stop2) = (Arc::clone(&log), Arc::clone(&stop));
        thread::spawn(move || {
            for stream in listener.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (config, log) = (Arc::clone(&config), Arc::clone(&log2));
                thread::spawn(move || handle(stream, &config, &log).ok());
            }
        });
        Self { addr, log, stop }
    }

    pub fn url(&self, repo: &str) -> String {
        format!("http://{}/{repo}", self.addr)
    }

    /// `METHOD /path?query` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }

    pub fn clear(&self) {
        self.log.lock().expect("log").clear();
    }
}

impl Drop for GitHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        TcpStream::connect(self.addr).ok();
    }
}

struct Request {
    method: String,
    target: String,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_owned();
    let mut target = parts.next().unwrap_or_default().to_owned();
    // A forward proxy's absolute form: http://host:port/path.
    if let Some(rest) = target.strip_prefix("http://") {
        target = rest.find('/').map_or("/".into(), |i| rest[i..].to_owned());
    }
    let mut headers = HashMap::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header)?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
        }
    }
    let body = if let Some(len) = headers.get("content-length") {
        let mut body = vec![0; len.parse().unwrap_or(0)];
        reader.read_exact(&mut body)?;
        body
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        read_chunked(&mut reader)?
    } else {
        Vec::new()
    };
    Ok(Request {
        method,
        target,
        headers,
        body,
    })
}

fn read_chunked(reader: &mut impl io::BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size)?;
        let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk)?;
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn handle(mut stream: TcpStream, config: &Config, log: &Mutex<Vec<String>>) -> io::Result<()> {
    let request = read_request(&stream)?;
    log.lock()
        .expect("log")
        .push(format!("{} {}", request.method, request.target));
    if request.headers.get("host") != Some(&config.host) {
        let reply = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        return stream.write_all(reply.as_bytes());
    }
    if let Some(expected) = &config.authorization
        && request.headers.get("authorization") != Some(expected)
    {
        let reply = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"git\"\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n";
        return stream.write_all(reply.as_bytes());
    }
    let (status, headers, body) = cgi(&request, &config.root)?;
    let mut reply = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        reply.push_str(&format!("{name}: {value}\r\n"));
    }
    reply.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(reply.as_bytes())?;
    stream.write_all(&body)
}

type Reply = (String, Vec<(String, String)>, Vec<u8>);

/// Runs `git http-backend` for one request and splits its CGI reply.
fn cgi(request: &Request, root: &Path) -> io::Result<Reply> {
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let header = |name: &str| request.headers.get(name).cloned().unwrap_or_default();
    let mut child = Command::new("git")
        .arg("http-backend")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("REQUEST_METHOD", &request.method)
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", request.body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_USER", "tester")
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut stdin = child.stdin.take().expect("stdin");
    let body = request.body.clone();
    let writer = thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    writer.join().expect("writer").ok();
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, i + 4))
        .or_else(|| {
            out.windows(2)
                .position(|w| w == b"\n\n")
                .map(|i| (i, i + 2))
        })
        .unwrap_or((out.len(), out.len()));
    let mut status = "200 OK".to_owned();
    let mut headers = Vec::new();
    for line in String::from_utf8_lossy(&out[..split.0]).lines() {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("status") {
                value.trim().clone_into(&mut status);
            } else {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    Ok((status, headers, out[split.1..].to_vec()))
}

/// Accepts TCP connections and never sends a byte.
pub struct Silent {
    pub port: u16,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Silent {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().expect("held").push(stream);
            }
        });
        Self { port, _held: held }
    }
}
