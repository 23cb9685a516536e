//! A client of the agent's HTTP API (`gitsync … --agent URL`): one JSON request, the
//! answer's status and body. Actions carry the bearer token.

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// How long an answer may take (a sync through the API waits for health).
pub const TIMEOUT: Duration = Duration::from_mins(15);

/// The agent at `base` (`http://gitsync-agent.gitsync-system`, `https://…`).
#[derive(Debug, Clone)]
pub struct Agent {
    base: String,
    token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Request(String),
    /// The agent answered with an error status.
    #[error("the agent answered {status}: {message}")]
    Refused { status: u16, message: String },
}

impl Agent {
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Result<Value, Error> {
        self.call("GET", path, None).await
    }

    /// `POST path` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, Error> {
        self.call("POST", path, Some(body)).await
    }

    async fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let url = format!("{}{path}", self.base);
        let fail = |e: &dyn std::fmt::Display| Error::Request(format!("{method} {url}: {e}"));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| fail(&e))?
            .https_or_http()
            .enable_http1()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = body.map(Value::to_string).unwrap_or_default();
        let request = request
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| fail(&e))?;
        let response = tokio::time::timeout(TIMEOUT, client.request(request))
            .await
            .map_err(|_| fail(&"no answer"))?
            .map_err(|e| fail(&crate::error_chain(&e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| fail(&e))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if status.is_success() {
            Ok(value)
        } else {
            let message = value["error"]
                .as_str()
                .map_or_else(|| value.to_string(), str::to_owned);
            Err(Error::Refused {
                status: status.as_u16(),
                message,
            })
        }
    }
}
