//! A small homeserver client: the client-server API over reqwest with the
//! application service's `as_token`, acting as the bridge bot or, through
//! identity assertion (`?user_id=`), as any of our ghosts.
//!
//! Spec: client-server API <https://spec.matrix.org/v1.16/client-server-api/>;
//! identity assertion
//! <https://spec.matrix.org/v1.16/application-service-api/#identity-assertion>.
//!
//! Sends are idempotent: every `PUT …/send/{type}/{txnId}` and
//! `PUT …/redact/{eventId}/{txnId}` uses a transaction id derived from the
//! outbox op id ([`txn_id`]), so a retried op gets the homeserver's first
//! answer back instead of a second event.
//!
//! Errors map onto [`BridgeError`] by the homeserver's `errcode`
//! ([`map_error`]): `M_LIMIT_EXCEEDED` pauses the bridge, `M_FORBIDDEN` is
//! permanent, `M_UNKNOWN_TOKEN` and 401 are authentication failures, 404 is
//! not found, 5xx and network errors are transient.

use crate::config::Token;
use serde_json::Value;
use std::fmt;
use std::time::Duration;
use switchboard_model::{BridgeError, OpId};

/// How long one ordinary request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long an upload or download may take.
const MEDIA_TIMEOUT: Duration = Duration::from_secs(300);
/// How long to pause when the homeserver rate-limits without saying how long.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failed homeserver call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The homeserver answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The Matrix `errcode`, if the body had one.
        errcode: Option<String>,
        /// The homeserver's `error` text (shortened).
        message: String,
        /// `retry_after_ms` (or `Retry-After`), if given.
        retry_after: Option<Duration>,
    },
    /// The request did not get an answer.
    Network(String),
    /// The answer was not what the API promises.
    Decode(String),
}

impl ApiError {
    /// The Matrix `errcode`, if any.
    pub fn errcode(&self) -> Option<&str> {
        match self {
            ApiError::Status { errcode, .. } => errcode.as_deref(),
            _ => None,
        }
    }

    /// The HTTP status, if the homeserver answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether the homeserver said the thing does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404) || self.errcode() == Some("M_NOT_FOUND")
    }

    /// The [`BridgeError`] this failure means, with `what` naming the call.
    pub fn into_bridge(self, what: &str) -> BridgeError {
        match self {
            ApiError::Status {
                status,
                errcode,
                message,
                retry_after,
            } => map_error(what, status, errcode.as_deref(), &message, retry_after),
            ApiError::Network(e) => BridgeError::transient(format!("{what}: {e}")),
            ApiError::Decode(e) => BridgeError::transient(format!("{what}: {e}")),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Status {
                status,
                errcode,
                message,
                ..
            } => write!(
                f,
                "HTTP {status} {}: {message}",
                errcode.as_deref().unwrap_or("(no errcode)")
            ),
            ApiError::Network(e) => write!(f, "network error: {e}"),
            ApiError::Decode(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

impl From<ApiError> for BridgeError {
    fn from(e: ApiError) -> Self {
        e.into_bridge("homeserver")
    }
}

/// What a homeserver error means for the relay.
pub fn map_error(
    what: &str,
    status: u16,
    errcode: Option<&str>,
    message: &str,
    retry_after: Option<Duration>,
) -> BridgeError {
    let code = errcode.unwrap_or("");
    let reason = format!("{what}: HTTP {status} {code} {message}")
        .trim_end()
        .to_owned();
    if code == "M_LIMIT_EXCEEDED" || status == 429 {
        return BridgeError::rate_limited(retry_after.unwrap_or(DEFAULT_RETRY_AFTER));
    }
    if matches!(code, "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN") || status == 401 {
        return BridgeError::auth(reason);
    }
    if code == "M_FORBIDDEN" {
        return BridgeError::permanent(reason);
    }
    if status == 404 || code == "M_NOT_FOUND" {
        return BridgeError::not_found(reason);
    }
    if status >= 500 || status == 408 {
        return BridgeError::Transient {
            reason,
            retry_after,
        };
    }
    BridgeError::permanent(reason)
}

/// The transaction id of part `part` of op `op`: the op id with every byte
/// outside `[A-Za-z0-9_-]` escaped as `.xx`, so distinct ops never share
/// one and the same op always gets the same.
pub fn txn_id(op: &OpId, part: &str) -> String {
    let mut out = String::from("sb_");
    escape_into(&mut out, op.as_str());
    out.push('_');
    out.push('_');
    escape_into(&mut out, part);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' {
            out.push(char::from(b));
        } else if b == b'_' {
            // `_` is escaped too, so the `__` separator stays unambiguous.
            out.push_str(".5f");
        } else {
            out.push_str(&format!(".{b:02x}"));
        }
    }
}

/// Percent-encodes one path segment (room ids, aliases, event ids, user ids).
pub fn enc(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len() + 8);
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes a percent-encoded path segment (lossy for invalid UTF-8).
pub fn dec(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = segment
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP method the client uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// POST
    Post,
    /// PUT
    Put,
}

/// The homeserver, as the application service sees it.
#[derive(Clone)]
pub struct MatrixClient {
    http: reqwest::Client,
    base: String,
    as_token: Token,
    /// Double puppeting: the second registration's token, and the
    /// homeserver's own users it is used for (those who linked their
    /// account).
    puppets: std::sync::Arc<std::sync::RwLock<Option<DoublePuppets>>>,
}

#[derive(Debug)]
struct DoublePuppets {
    token: Token,
    users: std::collections::HashSet<String>,
}

impl fmt::Debug for MatrixClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatrixClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl MatrixClient {
    /// A client for the homeserver at `base` (e.g. `https://matrix.example.org`).
    pub fn new(base: &str, as_token: Token) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("switchboard-matrix/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only fails when the TLS backend cannot start; the default
            // client reports that itself.
            .unwrap_or_default();
        MatrixClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            as_token,
            puppets: std::sync::Arc::default(),
        }
    }

    /// The homeserver's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Acts as the homeserver's own users registered with
    /// [`add_double_puppet`](Self::add_double_puppet) with `token`, the
    /// double-puppeting registration's.
    pub fn enable_double_puppets(&self, token: Token) {
        *self.puppets.write().unwrap_or_else(|p| p.into_inner()) = Some(DoublePuppets {
            token,
            users: std::collections::HashSet::new(),
        });
    }

    /// Whether double puppeting is configured.
    pub fn double_puppets_enabled(&self) -> bool {
        self.puppets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// From now on, acts as `user` (one of the homeserver's own) with the
    /// double-puppeting token. False when double puppeting is off.
    pub fn add_double_puppet(&self, user: &str) -> bool {
        match self
            .puppets
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
        {
            Some(p) => {
                p.users.insert(user.to_owned());
                true
            }
            None => false,
        }
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let url = format!("{}{path}", self.base);
        let builder = match method {
            Method::Get => self.http.get(url),
            Method::Post => self.http.post(url),
            Method::Put => self.http.put(url),
        };
        let token = as_user
            .and_then(|user| {
                let puppets = self.puppets.read().unwrap_or_else(|p| p.into_inner());
                puppets
                    .as_ref()
                    .filter(|p| p.users.contains(user))
                    .map(|p| p.token.clone())
            })
            .unwrap_or_else(|| self.as_token.clone());
        let builder = builder.bearer_auth(token.expose()).timeout(REQUEST_TIMEOUT);
        match as_user {
            Some(user) => builder.query(&[("user_id", user)]),
            None => builder,
        }
    }

    /// One JSON call, as the bot (`as_user` None) or as `as_user`.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        as_user: Option<&str>,
        body: Option<&Value>,
    ) -> Result<Value, ApiError> {
        let mut builder = self.request(method, path, as_user);
        if let Some(body) = body {
            builder = builder.json(body);
        } else if method != Method::Get {
            builder = builder.json(&serde_json::json!({}));
        }
        let response = builder.send().await.map_err(network)?;
        let response = check(response).await?;
        let bytes = response.bytes().await.map_err(network)?;
        if bytes.is_empty() {
            return Ok(Value::Object(serde_json::Map::new()));
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(format!("{path}: {e}")))
    }

    /// `GET /_matrix/client/versions` (no token needed).
    pub async fn versions(&self) -> Result<Value, ApiError> {
        let response = self
            .http
            .get(format!("{}/_matrix/client/versions", self.base))
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(network)?;
        let response = check(response).await?;
        response
            .json()
            .await
            .map_err(|e| ApiError::Decode(format!("versions: {e}")))
    }

    /// Uploads a file to the content repository as `as_user`; returns its
    /// `mxc://` URI.
    /// [`POST /_matrix/media/v3/upload`](https://spec.matrix.org/v1.16/client-server-api/#post_matrixmediav3upload)
    pub async fn upload(
        &self,
        as_user: Option<&str>,
        name: &str,
        mime: &str,
        bytes: Vec<u8>,
    ) -> Result<String, ApiError> {
        let builder = self
            .request(Method::Post, "/_matrix/media/v3/upload", as_user)
            .query(&[("filename", name)])
            .header(reqwest::header::CONTENT_TYPE, mime)
            .timeout(MEDIA_TIMEOUT)
            .body(bytes);
        let response = builder.send().await.map_err(network)?;
        let response = check(response).await?;
        let value: Value = response
            .json()
            .await
            .map_err(|e| ApiError::Decode(format!("upload: {e}")))?;
        value
            .get("content_uri")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode("upload: no content_uri".into()))
    }

    /// Downloads `mxc://server/media` with the as_token, at most `cap` bytes:
    /// the authenticated media API, falling back to the legacy one when the
    /// homeserver does not know the former.
    /// [`GET /_matrix/client/v1/media/download`](https://spec.matrix.org/v1.16/client-server-api/#get_matrixclientv1mediadownloadservernamemediaid)
    pub async fn download(&self, mxc: &str, cap: u64) -> Result<Vec<u8>, ApiError> {
        let Some((server, media)) = mxc
            .strip_prefix("mxc://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(s, m)| !s.is_empty() && !m.is_empty() && !m.contains('/'))
        else {
            return Err(ApiError::Status {
                status: 404,
                errcode: Some("M_NOT_FOUND".into()),
                message: format!("not an mxc URI: {mxc}"),
                retry_after: None,
            });
        };
        let path = format!(
            "/_matrix/client/v1/media/download/{}/{}",
            enc(server),
            enc(media)
        );
        match self.download_from(&path, cap).await {
            Err(e) if e.errcode() == Some("M_UNRECOGNIZED") => {
                let legacy = format!("/_matrix/media/v3/download/{}/{}", enc(server), enc(media));
                self.download_from(&legacy, cap).await
            }
            other => other,
        }
    }

    async fn download_from(&self, path: &str, cap: u64) -> Result<Vec<u8>, ApiError> {
        let response = self
            .request(Method::Get, path, None)
            .timeout(MEDIA_TIMEOUT)
            .send()
            .await
            .map_err(network)?;
        let mut response = check(response).await?;
        let too_big = || ApiError::Status {
            status: 413,
            errcode: Some("M_TOO_LARGE".into()),
            message: format!("the file is larger than {cap} bytes"),
            retry_after: None,
        };
        if response.content_length().is_some_and(|n| n > cap) {
            return Err(too_big());
        }
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if (out.len() + chunk.len()) as u64 > cap {
                return Err(too_big());
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Fetches a public URL (an avatar from another platform), at most `cap`
    /// bytes; returns the bytes and their MIME type.
    pub async fn fetch_url(&self, url: &str, cap: u64) -> Result<(Vec<u8>, String), ApiError> {
        let mut response = self
            .http
            .get(url)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(network)?;
        if !response.status().is_success() {
            return Err(ApiError::Status {
                status: response.status().as_u16(),
                errcode: None,
                message: "fetching an avatar".into(),
                retry_after: None,
            });
        }
        let mime = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let mut out = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(network)? {
            if (out.len() + chunk.len()) as u64 > cap {
                return Err(ApiError::Decode(format!("larger than {cap} bytes")));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((out, mime))
    }
}

fn network(e: reqwest::Error) -> ApiError {
    // Without the URL: it may carry a user id, and is noise in logs.
    ApiError::Network(e.without_url().to_string())
}

/// Turns a non-success answer into an [`ApiError`].
async fn check(response: reqwest::Response) -> Result<reqwest::Response, ApiError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let header_retry = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body: Value = response.json().await.unwrap_or(Value::Null);
    Err(error_from_body(status.as_u16(), &body, header_retry))
}

/// An [`ApiError`] from a status and a Matrix error body.
pub fn error_from_body(status: u16, body: &Value, header_retry: Option<Duration>) -> ApiError {
    let errcode = body
        .get("errcode")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut message: String = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .take(200)
        .collect();
    if message.is_empty() {
        message = "(no message)".into();
    }
    let retry_after = body
        .get("retry_after_ms")
        .and_then(Value::as_u64)
        .map(Duration::from_millis)
        .or(header_retry);
    ApiError::Status {
        status,
        errcode,
        message,
        retry_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use switchboard_model::RetryKind;

    #[test]
    fn txn_ids_are_stable_and_distinct() {
        let a = OpId::new("portal-1/42/matrix:x/!r:s");
        assert_eq!(txn_id(&a, "p0"), txn_id(&a, "p0"));
        assert_ne!(txn_id(&a, "p0"), txn_id(&a, "p1"));
        assert_ne!(txn_id(&a, "p0"), txn_id(&OpId::new("portal-1/43"), "p0"));
        // Separators cannot be forged by the op id itself.
        assert_ne!(
            txn_id(&OpId::new("a__b"), "c"),
            txn_id(&OpId::new("a"), "b__c")
        );
        let t = txn_id(&a, "p0");
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{t}"
        );
    }

    #[test]
    fn segments_encode_and_decode() {
        assert_eq!(enc("!room:example.org"), "%21room%3Aexample.org");
        assert_eq!(enc("$ev/x+y"), "%24ev%2Fx%2By");
        assert_eq!(dec("%40ghost%3Aexample.org"), "@ghost:example.org");
        assert_eq!(dec("100%"), "100%");
        assert_eq!(dec("%zz%4"), "%zz%4");
    }

    #[test]
    fn errors_map_to_retry_kinds() {
        let limited = error_from_body(
            429,
            &json!({"errcode": "M_LIMIT_EXCEEDED", "error": "slow down", "retry_after_ms": 1500}),
            None,
        );
        assert_eq!(
            limited.clone().into_bridge("send"),
            BridgeError::rate_limited(Duration::from_millis(1500))
        );
        let limited_400 = error_from_body(400, &json!({"errcode": "M_LIMIT_EXCEEDED"}), None);
        assert_eq!(
            limited_400.into_bridge("send").retry_kind(),
            RetryKind::RateLimited {
                retry_after: DEFAULT_RETRY_AFTER
            }
        );
        let kind = |status, body: Value| error_from_body(status, &body, None).into_bridge("x");
        assert!(matches!(
            kind(403, json!({"errcode": "M_FORBIDDEN", "error": "no"})),
            BridgeError::Permanent { .. }
        ));
        assert!(matches!(
            kind(401, json!({"errcode": "M_UNKNOWN_TOKEN"})),
            BridgeError::Auth { .. }
        ));
        assert!(matches!(kind(401, json!({})), BridgeError::Auth { .. }));
        assert!(matches!(
            kind(404, json!({"errcode": "M_NOT_FOUND"})),
            BridgeError::NotFound { .. }
        ));
        assert!(matches!(
            kind(400, json!({"errcode": "M_NOT_FOUND"})),
            BridgeError::NotFound { .. }
        ));
        assert!(matches!(
            kind(502, Value::Null),
            BridgeError::Transient { .. }
        ));
        assert!(matches!(
            kind(400, json!({"errcode": "M_BAD_JSON"})),
            BridgeError::Permanent { .. }
        ));
        assert!(matches!(
            ApiError::Network("reset".into()).into_bridge("x"),
            BridgeError::Transient { .. }
        ));
        // The Retry-After header counts when the body has no hint.
        assert_eq!(
            error_from_body(429, &Value::Null, Some(Duration::from_secs(3))).into_bridge("x"),
            BridgeError::rate_limited(Duration::from_secs(3))
        );
    }
}
