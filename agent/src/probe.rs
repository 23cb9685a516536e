//! The HTTP check a canary policy can gate its steps on (`health.url`): one GET, `Ok`
//! for a 2xx answer within the timeout, otherwise what went wrong. `http://` and
//! `https://` (the system's root certificates).

use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one check may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// GETs `url`; `Ok` when it answers 2xx within [`TIMEOUT`].
pub async fn check(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("{url} is not a valid URL: {e}"))?;
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()
        .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let request = hyper::Request::get(uri)
        .header(hyper::header::USER_AGENT, "gitsync-canary-check")
        .body(Empty::new())
        .map_err(|e| format!("GET {url}: {e}"))?;
    match tokio::time::timeout(TIMEOUT, client.request(request)).await {
        Err(_) => Err(format!(
            "GET {url}: no answer within {}s",
            TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(format!("GET {url}: {}", crate::error_chain(&e))),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(format!("GET {url}: {}", response.status())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// A one-shot HTTP server answering every request with `status`.
    async fn serve(status: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                let _ = socket.write_all(answer.as_bytes()).await;
            }
        });
        format!("http://{addr}/healthz")
    }

    #[tokio::test]
    async fn a_2xx_passes_and_anything_else_fails_with_the_reason() {
        assert_eq!(check(&serve("204 No Content").await).await, Ok(()));
        let failed = check(&serve("503 Service Unavailable").await)
            .await
            .expect_err("503");
        assert!(failed.ends_with("503 Service Unavailable"), "{failed}");
        let refused = check("http://127.0.0.1:1/").await.expect_err("refused");
        assert!(
            refused.starts_with("GET http://127.0.0.1:1/: "),
            "{refused}"
        );
        assert!(check("not a url").await.is_err());
    }
}
