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

/// A TLS server presenting `cert` that answers each request with its head.
fn tls_server(cert: &str, key: &str) -> u16 {
    gitsync_tls::testing::serve(cert, key, |tls| {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if tls.read(&mut byte).unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        tls.write_all(&head).ok();
    })
}

/// A relay to `port` in HTTPS mode, restoring `Host: host`, trusting the PEM `trusted`.
fn https_relay(port: u16, host: &str, trusted: &str, timeout: Duration) -> Relay {
    let mode = Mode::Https(host.into(), tls_config(Some(trusted)).expect("config"));
    Relay::start("127.0.0.1", port, mode, timeout).expect("relay")
}

fn https_request(relay: &Relay) -> String {
    let mut stream = connect(relay);
    stream
        .write_all(b"GET /r/info/refs HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        .expect("request");
    read_all(&mut stream)
}

#[test]
fn https_mode_is_the_tls_client_trusting_exactly_what_it_is_told() {
    let (cert, key) = gitsync_tls::testing::self_signed("127.0.0.1");
    let port = tls_server(&cert, &key);
    let timeout = Duration::from_secs(5);

    // Trusted (ca.crt): the request goes over TLS with its Host restored.
    let relay = https_relay(port, "git.example.com", &cert, timeout);
    assert_eq!(
        https_request(&relay),
        "GET /r/info/refs HTTP/1.1\r\nHost: git.example.com\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(relay.failure(), None);

    // Not trusted: 502 to libgit2, and the reason recorded.
    let (other, _) = gitsync_tls::testing::self_signed("127.0.0.1");
    let relay = https_relay(port, "git.example.com", &other, timeout);
    assert_eq!(https_request(&relay), "HTTP/1.1 502 Bad Gateway\r\n\r\n");
    let Some(Failure::Certificate(reason)) = relay.failure() else {
        panic!("not a certificate failure: {:?}", relay.failure());
    };
    assert!(
        reason.contains("self-signed CA certificate that is not trusted"),
        "{reason}"
    );

    // Trusted, but for another name: refused all the same.
    let (elsewhere, elsewhere_key) = gitsync_tls::testing::self_signed("127.0.0.2");
    let port = tls_server(&elsewhere, &elsewhere_key);
    let relay = https_relay(port, "h", &elsewhere, timeout);
    assert_eq!(https_request(&relay), "HTTP/1.1 502 Bad Gateway\r\n\r\n");
    assert!(
        matches!(relay.failure(), Some(Failure::Certificate(r)) if r.contains("not issued for this host")),
        "{:?}",
        relay.failure()
    );
}

#[test]
fn https_mode_names_a_server_that_does_not_speak_tls() {
    let port = server(head_echo);
    let (cert, _) = gitsync_tls::testing::self_signed("127.0.0.1");
    let relay = https_relay(port, "h", &cert, Duration::from_secs(2));
    assert_eq!(https_request(&relay), "HTTP/1.1 502 Bad Gateway\r\n\r\n");
    assert!(
        matches!(relay.failure(), Some(Failure::Unreachable(r)) if r.starts_with("TLS with 127.0.0.1")),
        "{:?}",
        relay.failure()
    );
}

#[test]
fn ca_crt_without_a_certificate_is_refused() {
    let err = tls_config(Some("not a certificate")).expect_err("no PEM");
    assert_eq!(err, "ca.crt holds no PEM certificate");
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
