//! The HTTP client: one HTTP/1.1 keep-alive connection per worker, driven directly with
//! hyper's connection API (no pool, no TLS, no redirects), so the load generator spends as
//! little of the shared machine's CPU as it can.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::LoadError;

/// Where the server listens: `http://host:port`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    authority: String,
    host: HeaderValue,
}

impl Endpoint {
    /// Parses `http://host[:port][/]` (port 80 when absent). HTTPS is not supported: the
    /// tool measures the server, not a TLS stack.
    pub fn parse(url: &str) -> Result<Self, LoadError> {
        let bad = |reason: &str| LoadError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| bad("must start with http://"))?;
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad("must be http://host:port, without a path"));
        }
        let authority = if authority.rsplit(':').next().is_some_and(is_port) {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        let host = HeaderValue::from_str(&authority).map_err(|_| bad("not a valid host"))?;
        Ok(Self {
            base: format!("http://{authority}"),
            authority,
            host,
        })
    }

    /// `http://host:port`.
    pub fn base(&self) -> &str {
        &self.base
    }
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {authority}: {source}")]
    Connect {
        authority: String,
        source: std::io::Error,
    },
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("cannot build the request: {0}")]
    Request(String),
}

impl TransportError {
    /// The answer name a run counts it under.
    pub fn answer(&self) -> &'static str {
        match self {
            Self::Timeout(_) => "timeout",
            _ => "transport_error",
        }
    }
}

/// One request.
#[derive(Debug, Clone)]
pub struct Req<'a> {
    pub method: Method,
    pub path: &'a str,
    /// The `Authorization` header (`Bearer ...`).
    pub auth: Option<&'a HeaderValue>,
    pub idempotency_key: Option<&'a str>,
    /// A JSON body.
    pub body: Option<Bytes>,
}

impl<'a> Req<'a> {
    pub fn get(path: &'a str, auth: &'a HeaderValue) -> Self {
        Self {
            method: Method::GET,
            path,
            auth: Some(auth),
            idempotency_key: None,
            body: None,
        }
    }

    pub fn post(path: &'a str, auth: &'a HeaderValue, body: Option<Bytes>) -> Self {
        Self {
            method: Method::POST,
            ..Self::get(path, auth)
        }
        .with_body(body)
    }

    fn with_body(mut self, body: Option<Bytes>) -> Self {
        self.body = body;
        self
    }
}

/// An answer: status and the whole body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// One keep-alive connection, opened on first use and again after any failure.
#[derive(Debug)]
pub struct Conn {
    endpoint: Arc<Endpoint>,
    timeout: Duration,
    sender: Option<Sender>,
}

impl Conn {
    /// A connection to `endpoint`; each request waits at most `timeout` for its answer.
    pub fn new(endpoint: Arc<Endpoint>, timeout: Duration) -> Self {
        Self {
            endpoint,
            timeout,
            sender: None,
        }
    }

    /// Opens the connection now (rather than on the first request), so opening it is not
    /// measured.
    pub async fn open(&mut self) -> Result<(), TransportError> {
        self.ready().await.map(|_| ())
    }

    /// Sends `req` and reads the whole answer. Any failure closes the connection; the next
    /// request opens a new one.
    pub async fn send(&mut self, req: Req<'_>) -> Result<Reply, TransportError> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.exchange(req)).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                Err(TransportError::Timeout(timeout))
            }
        }
    }

    async fn exchange(&mut self, req: Req<'_>) -> Result<Reply, TransportError> {
        let request = self.build(req)?;
        let sender = self.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    fn build(&self, req: Req<'_>) -> Result<Request<Full<Bytes>>, TransportError> {
        let mut builder = Request::builder()
            .method(req.method)
            .uri(req.path)
            .header(header::HOST, self.endpoint.host.clone());
        if let Some(auth) = req.auth {
            builder = builder.header(header::AUTHORIZATION, auth.clone());
        }
        if let Some(key) = req.idempotency_key {
            builder = builder.header("idempotency-key", key);
        }
        let body = match req.body {
            Some(body) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                body
            }
            None => Bytes::new(),
        };
        builder
            .body(Full::new(body))
            .map_err(|e| TransportError::Request(e.to_string()))
    }

    async fn ready(&mut self) -> Result<&mut Sender, TransportError> {
        let usable = match &mut self.sender {
            Some(sender) => sender.ready().await.is_ok(),
            None => false,
        };
        if !usable {
            self.sender = Some(connect(&self.endpoint.authority).await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| TransportError::Request("the connection is closed".into()))
    }
}

async fn connect(authority: &str) -> Result<Sender, TransportError> {
    let stream = TcpStream::connect(authority)
        .await
        .map_err(|source| TransportError::Connect {
            authority: authority.to_owned(),
            source,
        })?;
    // Small requests and answers: send each at once.
    let _ = stream.set_nodelay(true);
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Ends when the sender is dropped or the server closes; the next request reconnects.
        let _ = connection.await;
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_to_an_authority() {
        let e = Endpoint::parse("http://127.0.0.1:8080/").expect("valid");
        assert_eq!(e.base(), "http://127.0.0.1:8080");
        let e = Endpoint::parse("http://localhost").expect("valid");
        assert_eq!(e.base(), "http://localhost:80");
        assert!(Endpoint::parse("https://x:1").is_err());
        assert!(Endpoint::parse("http://x:1/api").is_err());
    }
}
