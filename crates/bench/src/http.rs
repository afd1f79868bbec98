//! One keep-alive HTTP/1.1 connection to the server, reopened on the next request after a failure.

use std::sync::Arc;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::BoxError;

/// Where requests go: the socket address, the `Host` header and any path prefix of `--url`.
#[derive(Debug)]
pub struct Target {
    addr: String,
    host: HeaderValue,
    prefix: String,
}

impl Target {
    /// Parses `http://HOST:PORT[/prefix]`; only plain HTTP, because the server speaks no TLS.
    pub fn parse(url: &str) -> Result<Self, BoxError> {
        let uri: Uri = url.parse()?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("--url must start with http:// (got {url})").into());
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("--url has no host: {url}"))?;
        let port = authority.port_u16().unwrap_or(80);
        Ok(Self {
            addr: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str())?,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// One request, built afresh for every send so that scenarios stay plain data.
#[derive(Debug, Clone)]
pub struct Req {
    /// GET, POST or DELETE.
    pub method: Method,
    /// The path below the target's prefix, starting with `/`.
    pub path: String,
    /// A session token sent as `Authorization: Bearer`.
    pub bearer: Option<String>,
    /// A JSON body.
    pub json: Option<Bytes>,
}

impl Req {
    /// A GET of `path`.
    pub fn get(path: impl Into<String>) -> Self {
        Self {
            method: Method::GET,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    /// A DELETE of `path`.
    pub fn delete(path: impl Into<String>) -> Self {
        Self {
            method: Method::DELETE,
            path: path.into(),
            bearer: None,
            json: None,
        }
    }

    /// A POST of `body` as JSON to `path`.
    pub fn post_json(path: impl Into<String>, body: &serde_json::Value) -> Self {
        Self {
            method: Method::POST,
            path: path.into(),
            bearer: None,
            json: Some(Bytes::from(body.to_string())),
        }
    }
}

/// A connection that is opened lazily and dropped after any failure.
#[derive(Debug)]
pub struct Conn {
    target: Arc<Target>,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Conn {
    /// A connection to `target`, not yet open.
    pub fn new(target: Arc<Target>) -> Self {
        Self {
            target,
            sender: None,
        }
    }

    async fn open(&self) -> Result<SendRequest<Full<Bytes>>, BoxError> {
        let stream = TcpStream::connect(&self.target.addr).await?;
        // Requests are small and sent whole; Nagle would only add delay to each one.
        stream.set_nodelay(true)?;
        let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            // A broken connection surfaces as an error on the next send, where it is counted.
            let _ = conn.await;
        });
        Ok(sender)
    }

    /// Sends `req` and reads the whole response body.
    pub async fn send(&mut self, req: &Req) -> Result<(StatusCode, Bytes), BoxError> {
        let result = self.try_send(req).await;
        if result.is_err() {
            self.sender = None;
        }
        result
    }

    async fn try_send(&mut self, req: &Req) -> Result<(StatusCode, Bytes), BoxError> {
        let mut sender = match self.sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => self.open().await?,
        };
        let mut builder = Request::builder()
            .method(req.method.clone())
            .uri(format!("{}{}", self.target.prefix, req.path))
            .header(HOST, self.target.host.clone());
        if let Some(token) = &req.bearer {
            builder = builder.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match &req.json {
            Some(json) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                json.clone()
            }
            None => Bytes::new(),
        };
        let request = builder.body(Full::new(body))?;
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        self.sender = Some(sender);
        Ok((status, bytes))
    }
}
