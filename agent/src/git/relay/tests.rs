use std::io::BufRead as _;

use super::*;

/// A server that runs `reply` on each connection.
fn server(reply: fn(TcpStream)) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || reply(stream));
        }
    });
    port
}

fn echo(mut stream: TcpStream) {
    let mut copy = stream.try_clone().expect("clone");
    io::copy(&mut stream, &mut copy).ok();
}

/// Sends the request head back as the body of a response.
fn head_echo(stream: TcpStream) {
    let mut reader = io::BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    while !head.ends_with("\r\n\r\n") {
        if reader.read_line(&mut head).unwrap_or(0) == 0 {
            return;
        }
    }
    let mut stream = stream;
    stream.write_all(head.as_bytes()).ok();
}

fn hold(stream: TcpStream) {
    let mut stream = stream;
    let mut buf = [0u8; 64];
    while stream.read(&mut buf).is_ok_and(|n| n > 0) {}
}

fn connect(relay: &Relay) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", relay.port())).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

fn read_all(stream: &mut TcpStream) -> String {
    let mut out = String::new();
    stream.read_to_string(&mut out).ok();
    out
}

#[test]
fn raw_mode_moves_bytes_both_ways() {
    let port = server(echo);
    let relay = Relay::start("127.0.0.1", port, Mode::Raw, Duration::from_secs(5)).expect("relay");
    let mut stream = connect(&relay);
    stream.write_all(b"ping").expect("write");
    stream.shutdown(Shutdown::Write).expect("half close");
    assert_eq!(read_all(&mut stream), "ping");
    assert_eq!(relay.failure(), None);
}

#[test]
fn connect_mode_answers_the_tunnel_request_then_relays() {
    let port = server(echo);
    let relay =
        Relay::start("127.0.0.1", port, Mode::Connect, Duration::from_secs(5)).expect("relay");
    let mut stream = connect(&relay);
    stream
        .write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .expect("connect");
    stream.write_all(b"tls bytes").expect("write");
    stream.shutdown(Shutdown::Write).expect("half close");
    assert_eq!(
        read_all(&mut stream),
        "HTTP/1.1 200 Connection established\r\n\r\ntls bytes"
    );
}

#[test]
fn http_mode_restores_the_host_and_closes_after_one_request() {
    let port = server(head_echo);
    let mode = Mode::Http("git.example.com:8080".into());
    let relay = Relay::start("127.0.0.1", port, mode, Duration::from_secs(5)).expect("relay");
    let mut stream = connect(&relay);
    stream
        .write_all(b"GET /r/info/refs HTTP/1.1\r\nHost: 127.0.0.1:1\r\nConnection: keep-alive\r\nAccept: */*\r\n\r\n")
        .expect("request");
    let head = read_all(&mut stream);
    assert_eq!(
        head,
        "GET /r/info/refs HTTP/1.1\r\nAccept: */*\r\nHost: git.example.com:8080\r\nConnection: close\r\n\r\n"
    );
}

#[test]
fn a_silent_server_is_cut_off_after_the_timeout() {
    let port = server(hold);
    let timeout = Duration::from_millis(300);
    let relay = Relay::start("127.0.0.1", port, Mode::Raw, timeout).expect("relay");
    let started = Instant::now();
    let mut stream = connect(&relay);
    stream.write_all(b"hello?").expect("write");
    assert_eq!(read_all(&mut stream), "", "closed without an answer");
    assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(relay.failure(), Some(Failure::TimedOut));
}

#[test]
fn a_closed_port_is_unreachable() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let relay = Relay::start("127.0.0.1", port, Mode::Raw, Duration::from_secs(5)).expect("relay");
    let mut stream = connect(&relay);
    assert_eq!(read_all(&mut stream), "");
    assert!(
        matches!(relay.failure(), Some(Failure::Unreachable(reason)) if reason.contains("cannot connect")),
        "{:?}",
        relay.failure()
    );
}
