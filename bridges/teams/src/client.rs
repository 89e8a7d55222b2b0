//! A Microsoft Graph v1.0 client (<https://learn.microsoft.com/en-us/graph/use-the-api>).
//!
//! - Errors are Graph's `{"error":{"code","message","innerError"}}`
//!   (<https://learn.microsoft.com/en-us/graph/errors>) and map onto
//!   [`BridgeError`]: 429/503 with `Retry-After` (seconds, possibly
//!   fractional: <https://learn.microsoft.com/en-us/graph/throttling>) →
//!   `RateLimited`; 401 `InvalidAuthenticationToken` → `Auth`; 403 →
//!   `Permanent` with Graph's message; 404 → `NotFound`; other 5xx and network
//!   failures → `Transient`.
//! - Lists are followed through `@odata.nextLink` (absolute URLs,
//!   <https://learn.microsoft.com/en-us/graph/paging>).
//! - A client-side token-bucket limiter per app and per signed-in user keeps
//!   us under the Teams throttling table (protocols/teams.md §4); it is
//!   configurable and can be switched off (tests).
//!
//! Tokens and bodies are never logged; requests are logged at debug level
//! with method, path and status only.

use crate::auth::Secret;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_model::BridgeError;
use tokio::time::Instant;

/// Who a request is made as: the app, or a signed-in person (keys the
/// per-user limit).
#[derive(Debug, Clone, Copy)]
pub enum Bearer<'a> {
    /// An application (client-credentials) token.
    App(&'a Secret),
    /// A delegated token and the person's user id.
    User(&'a Secret, &'a str),
}

impl Bearer<'_> {
    fn token(&self) -> &Secret {
        match self {
            Bearer::App(t) | Bearer::User(t, _) => t,
        }
    }
}

/// Client-side rate limits (requests per second with a burst allowance).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimitConfig {
    /// Requests per second for the whole app (per tenant).
    pub app_rps: f64,
    /// Requests per second per signed-in person.
    pub user_rps: f64,
    /// How many requests may go at once after a quiet period.
    pub burst: f64,
}

impl Default for LimitConfig {
    /// Today's "other calls" row: 30 rps per app; a person is kept to 4 rps
    /// (the per-team/channel limit).
    fn default() -> Self {
        LimitConfig {
            app_rps: 30.0,
            user_rps: 4.0,
            burst: 10.0,
        }
    }
}

/// Reads of channel and chat messages (a message, replies, delta, a chat's
/// messages) have a row of their own in the Teams table: 20 rps per app per
/// tenant (protocols/teams.md §4), below the 30 rps of "other" calls. With
/// limits on, they are kept to this rate with [`MESSAGE_READ_BURST`] at
/// once, so that no one-second window Graph counts holds more than 20.
pub const MESSAGE_READ_RPS: f64 = 15.0;
/// See [`MESSAGE_READ_RPS`].
pub const MESSAGE_READ_BURST: f64 = 5.0;

/// Is `GET path` a read of channel or chat messages?
fn reads_messages(method: &reqwest::Method, path: &str) -> bool {
    let path = path.split('?').next().unwrap_or(path);
    method == reqwest::Method::GET && path.contains("/messages")
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets per app and per user (`None` config = no budgets), and the
/// floor a 429 sets: every request counts against the app's tenant budget,
/// so after a 429 nothing at all is sent before its `Retry-After` has passed.
#[derive(Debug)]
pub struct Limiter {
    config: Option<LimitConfig>,
    buckets: Mutex<HashMap<String, Bucket>>,
    not_before: Mutex<Option<Instant>>,
}

impl Limiter {
    /// A limiter with these limits, or none at all.
    pub fn new(config: Option<LimitConfig>) -> Self {
        Limiter {
            config,
            buckets: Mutex::new(HashMap::new()),
            not_before: Mutex::new(None),
        }
    }

    /// Takes one token from `key`'s bucket; returns how long to wait first.
    fn reserve(&self, key: &str, rps: f64, burst: f64) -> Duration {
        if rps <= 0.0 {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let b = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rps).min(burst);
        b.last = now;
        b.tokens -= 1.0;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rps)
        }
    }

    /// Nothing is sent before `until` (after a 429).
    pub fn hold_until(&self, until: Instant) {
        let mut floor = self.not_before.lock().unwrap_or_else(|p| p.into_inner());
        if floor.is_none_or(|f| f < until) {
            *floor = Some(until);
        }
    }

    /// Waits until a request as `bearer` may go; `reads_messages` when it
    /// reads channel or chat messages (their own budget, see
    /// [`MESSAGE_READ_RPS`]).
    pub async fn acquire(&self, bearer: &Bearer<'_>, reads_messages: bool) {
        loop {
            let floor = *self.not_before.lock().unwrap_or_else(|p| p.into_inner());
            match floor {
                Some(f) if f > Instant::now() => tokio::time::sleep_until(f).await,
                _ => break,
            }
        }
        let Some(c) = self.config else { return };
        let mut wait = self.reserve("app", c.app_rps, c.burst);
        if let Bearer::User(_, user) = bearer {
            wait = wait.max(self.reserve(&format!("user:{user}"), c.user_rps, c.burst));
        }
        if reads_messages {
            let rps = MESSAGE_READ_RPS.min(c.app_rps);
            let burst = MESSAGE_READ_BURST.min(c.burst);
            wait = wait.max(self.reserve("read:messages", rps, burst));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// A Graph v1.0 client.
#[derive(Debug, Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    limiter: Arc<Limiter>,
}

/// Graph's error body, as far as we need it.
fn graph_error(body: &Value) -> (String, String) {
    let e = body.get("error");
    let s = |k: &str| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    (s("code"), s("message"))
}

/// `Retry-After` in seconds (fractional allowed); at least 1 ms.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get("retry-after")?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    Some(Duration::from_secs_f64(v.min(86_400.0)).max(Duration::from_millis(1)))
}

/// The wait after a 429 without `Retry-After`: 1 s plus up to 250 ms of
/// jitter, so that parallel callers do not come back in lockstep (the caller
/// backs off exponentially from there).
fn default_backoff() -> Duration {
    Duration::from_millis(1000 + fastrand::u64(0..250))
}

/// Maps a non-2xx Graph answer to a [`BridgeError`].
///
/// A 401 that is not `InvalidAuthenticationToken` is Graph refusing the
/// *kind* of token, not the token itself: notably an application token's
/// message POST ("Message POST is allowed in application-only context only
/// for import purposes…", protocols/teams.md §1). A fresh app token gets the
/// same answer, so it is `Permanent`, not `Auth` — `Auth` would make the
/// relay refresh credentials and retry forever. The fix is to post with the
/// person's delegated token.
fn map_error(
    method: &str,
    path: &str,
    status: u16,
    headers: &reqwest::header::HeaderMap,
    body: &Value,
) -> BridgeError {
    let (code, message) = graph_error(body);
    let text = format!("{method} {path}: HTTP {status} {code}: {message}");
    let after = retry_after(headers);
    match status {
        429 => BridgeError::rate_limited(after.unwrap_or_else(default_backoff)),
        503 | 504 if after.is_some() => {
            BridgeError::rate_limited(after.unwrap_or_else(default_backoff))
        }
        401 if code == "InvalidAuthenticationToken" || code.is_empty() => BridgeError::auth(text),
        401 | 403 => BridgeError::permanent(text),
        404 => BridgeError::not_found(format!("{path}: {message}")),
        408 => BridgeError::transient(text),
        s if s >= 500 => BridgeError::Transient {
            reason: text,
            retry_after: after,
        },
        _ => BridgeError::permanent(text),
    }
}

impl GraphClient {
    /// A client for `graph_base` (`https://graph.microsoft.com/v1.0`), with
    /// the default limits.
    pub fn new(graph_base: impl Into<String>) -> Result<Self, BridgeError> {
        Self::with_limits(graph_base, Some(LimitConfig::default()))
    }

    /// A client with these limits (`None`: no client-side limiting).
    pub fn with_limits(
        graph_base: impl Into<String>,
        limits: Option<LimitConfig>,
    ) -> Result<Self, BridgeError> {
        Ok(GraphClient {
            http: crate::auth::http_client()?,
            base: graph_base.into().trim_end_matches('/').to_owned(),
            limiter: Arc::new(Limiter::new(limits)),
        })
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The HTTP client (share it with [`crate::auth`]).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// A path (`/me`) under the base, or an absolute URL that must itself be
    /// under the base (so a token is never sent elsewhere).
    fn url(&self, path_or_url: &str) -> Result<String, BridgeError> {
        if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            if path_or_url.starts_with(&self.base) {
                Ok(path_or_url.to_owned())
            } else {
                Err(BridgeError::permanent(
                    "refusing to send a Graph token to a URL outside the Graph base",
                ))
            }
        } else {
            Ok(format!(
                "{}/{}",
                self.base,
                path_or_url.trim_start_matches('/')
            ))
        }
    }

    /// Sends one request; returns the JSON body (`Null` for 204 or empty).
    pub async fn request(
        &self,
        method: reqwest::Method,
        path_or_url: &str,
        bearer: Bearer<'_>,
        body: Option<&Value>,
    ) -> Result<Value, BridgeError> {
        let url = self.url(path_or_url)?;
        let path = url.strip_prefix(&self.base).unwrap_or(&url).to_owned();
        self.limiter
            .acquire(&bearer, reads_messages(&method, &path))
            .await;
        let mut rq = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(bearer.token().expose())
            .header("Prefer", "include-unknown-enum-members");
        if let Some(b) = body {
            rq = rq.json(b);
        }
        let response = rq
            .send()
            .await
            .map_err(|e| BridgeError::transient(format!("{method} {path}: {}", e.without_url())))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| BridgeError::transient(format!("{method} {path}: {}", e.without_url())))?;
        tracing::debug!(%method, %path, status, "Graph call.");
        let value: Option<Value> = if bytes.is_empty() {
            Some(Value::Null)
        } else {
            serde_json::from_slice(&bytes).ok()
        };
        if status == 429 {
            let after = retry_after(&headers).unwrap_or_else(default_backoff);
            self.limiter.hold_until(Instant::now() + after);
        }
        if (200..300).contains(&status) {
            return value.ok_or_else(|| {
                BridgeError::transient(format!("{method} {path}: answer is not JSON"))
            });
        }
        Err(map_error(
            method.as_str(),
            &path,
            status,
            &headers,
            &value.unwrap_or(Value::Null),
        ))
    }

    /// GET.
    pub async fn get_json(&self, path: &str, bearer: Bearer<'_>) -> Result<Value, BridgeError> {
        self.request(reqwest::Method::GET, path, bearer, None).await
    }

    /// POST a JSON body.
    pub async fn post_json(
        &self,
        path: &str,
        bearer: Bearer<'_>,
        body: &Value,
    ) -> Result<Value, BridgeError> {
        self.request(reqwest::Method::POST, path, bearer, Some(body))
            .await
    }

    /// PATCH a JSON body (Graph answers 204 for message edits: `Null`).
    pub async fn patch_json(
        &self,
        path: &str,
        bearer: Bearer<'_>,
        body: &Value,
    ) -> Result<Value, BridgeError> {
        self.request(reqwest::Method::PATCH, path, bearer, Some(body))
            .await
    }

    /// DELETE.
    pub async fn delete_json(&self, path: &str, bearer: Bearer<'_>) -> Result<Value, BridgeError> {
        self.request(reqwest::Method::DELETE, path, bearer, None)
            .await
    }

    /// GETs a collection and follows `@odata.nextLink` until the end or
    /// until `cap` items were collected.
    pub async fn get_all(
        &self,
        path: &str,
        bearer: Bearer<'_>,
        cap: usize,
    ) -> Result<Vec<Value>, BridgeError> {
        let mut out = Vec::new();
        let mut next = Some(path.to_owned());
        while let Some(url) = next.take() {
            let page = self.get_json(&url, bearer).await?;
            if let Some(items) = page.get("value").and_then(Value::as_array) {
                for item in items {
                    if out.len() >= cap {
                        return Ok(out);
                    }
                    out.push(item.clone());
                }
            }
            if out.len() >= cap {
                break;
            }
            next = page
                .get("@odata.nextLink")
                .and_then(Value::as_str)
                .map(str::to_owned);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_retry_after_is_parsed() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            "retry-after",
            reqwest::header::HeaderValue::from_static("2.128"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_secs_f64(2.128)));
        h.insert(
            "retry-after",
            reqwest::header::HeaderValue::from_static("0"),
        );
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1)));
    }

    #[test]
    fn secrets_are_not_printed() {
        let s = Secret::new("eyJhbGciOi.very.secret");
        assert!(!format!("{s:?}").contains("secret"));
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_spaces_requests_after_the_burst() {
        let l = Limiter::new(Some(LimitConfig {
            app_rps: 2.0,
            user_rps: 100.0,
            burst: 2.0,
        }));
        let t = Secret::new("t");
        let start = Instant::now();
        for _ in 0..4 {
            l.acquire(&Bearer::App(&t), false).await;
        }
        // Two at once, then one every 500 ms.
        assert!(start.elapsed() >= Duration::from_millis(900));
    }

    #[tokio::test(start_paused = true)]
    async fn message_reads_stay_under_their_row_in_any_second() {
        let l = Limiter::new(Some(LimitConfig::default()));
        let t = Secret::new("t");
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..60 {
            l.acquire(&Bearer::App(&t), true).await;
            at.push(start.elapsed());
        }
        // Graph counts 20 per app in one-second windows: no second holds more.
        for (i, first) in at.iter().enumerate() {
            let within = at[i..]
                .iter()
                .take_while(|t| **t < *first + Duration::from_secs(1))
                .count();
            assert!(within <= 20, "{within} reads within a second of {first:?}");
        }
        // Other calls keep the app's own (higher) rate.
        let start = Instant::now();
        for _ in 0..30 {
            l.acquire(&Bearer::App(&t), false).await;
        }
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn message_reads_are_told_apart() {
        let get = reqwest::Method::GET;
        assert!(reads_messages(&get, "/teams/t/channels/c/messages/1"));
        assert!(reads_messages(
            &get,
            "/teams/t/channels/c/messages/delta?$top=50"
        ));
        assert!(reads_messages(&get, "/chats/x/messages?$top=50"));
        assert!(!reads_messages(
            &reqwest::Method::POST,
            "/teams/t/channels/c/messages"
        ));
        assert!(!reads_messages(&get, "/users/u?$select=displayName"));
    }
}
