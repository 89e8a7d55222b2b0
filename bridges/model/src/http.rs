//! HTTP endpoints a bridge serves on the daemon's one listener (Slack's
//! Events API request URL, Teams change notifications, the Matrix
//! application-service API). Plain types, so the model names no HTTP crate;
//! the daemon adapts them to its server.

use async_trait::async_trait;

/// The largest request body the daemon hands to an endpoint; larger ones are
/// refused with 413 before they reach it.
pub const MAX_BODY: usize = 1024 * 1024;

/// An HTTP request, body fully read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpRequest {
    /// `GET`, `POST`, `PUT`…
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string, without `?` (empty if none).
    pub query: String,
    /// Headers, names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The raw body bytes (signatures are computed over these).
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A request from its parts; header names are lower-cased.
    pub fn new(
        method: impl Into<String>,
        path: impl Into<String>,
        query: impl Into<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
            body,
        }
    }

    /// The first value of a header (name matched case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a status and a plain-text body.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
            body: body.into().into_bytes(),
        }
    }

    /// A response with a status and a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// An empty response.
    pub fn empty(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A handler for requests under one path prefix.
#[async_trait]
pub trait HttpEndpoint: Send + Sync + std::fmt::Debug {
    /// Answers one request. Must never panic on any input.
    async fn handle(&self, request: HttpRequest) -> HttpResponse;
}
