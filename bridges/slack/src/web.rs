//! The Slack Web API client (https://docs.slack.dev/apis/web-api/).
//!
//! Every call is a POST to `{base}/{method}` with the token in the
//! `Authorization: Bearer` header. Chat and call methods send JSON; the rest
//! send forms, as Slack's own SDKs do. Slack answers errors with HTTP 200 and
//! `{"ok":false,"error":"…"}`, and rate limits with HTTP 429 and
//! `Retry-After` (whose body may be empty); both become [`ApiError`], which
//! maps onto the relay's [`BridgeError`] kinds.

use crate::ratelimit::RateLimiter;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use switchboard_model::BridgeError;

/// A Slack token (`xoxb-…`, `xoxp-…`, `xapp-…`). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    /// Wraps a token.
    pub fn new(token: impl Into<String>) -> Self {
        Token(Arc::from(token.into()))
    }

    /// The token itself: only for sending it to Slack (or keying a signature).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.0.split('-').next().unwrap_or("");
        write!(f, "Token({kind}-[redacted])")
    }
}

/// What a failed call means.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// HTTP 429 (or the `ratelimited` / `rate_limited` error).
    #[error("rate limited by Slack on {method}, retry after {}s", retry_after.as_secs())]
    RateLimited {
        /// The method.
        method: String,
        /// How long Slack asked us to wait.
        retry_after: Duration,
    },
    /// `ok: false` with an error code.
    #[error("{method} failed: {code}{}", needed.as_ref().map(|n| format!(" (needs scope {n})")).unwrap_or_default())]
    Slack {
        /// The method.
        method: String,
        /// Slack's error code (`channel_not_found`, `invalid_auth`…).
        code: String,
        /// For `missing_scope`: the scope needed.
        needed: Option<String>,
    },
    /// A non-2xx, non-429 HTTP status.
    #[error("{method} answered HTTP {status}")]
    Http {
        /// The method.
        method: String,
        /// The status.
        status: u16,
    },
    /// The request did not complete (connect, reset, timeout).
    #[error("{method} did not complete: {reason}")]
    Network {
        /// The method.
        method: String,
        /// What happened.
        reason: String,
    },
    /// The answer was not Slack's JSON envelope.
    #[error("{method} answered something that is not Slack JSON: {reason}")]
    Decode {
        /// The method.
        method: String,
        /// What was wrong.
        reason: String,
    },
}

impl ApiError {
    /// Slack's error code, if the call got one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Slack { code, .. } => Some(code),
            _ => None,
        }
    }
}

impl From<ApiError> for BridgeError {
    fn from(e: ApiError) -> Self {
        let text = e.to_string();
        match &e {
            ApiError::RateLimited { retry_after, .. } => BridgeError::rate_limited(*retry_after),
            ApiError::Network { .. } | ApiError::Decode { .. } => BridgeError::transient(text),
            ApiError::Http { status, .. } if *status >= 500 || *status == 408 => {
                BridgeError::transient(text)
            }
            ApiError::Http { .. } => BridgeError::permanent(text),
            ApiError::Slack { code, .. } => match code.as_str() {
                "not_authed" | "invalid_auth" | "account_inactive" | "token_revoked"
                | "token_expired" | "no_permission" | "ekm_access_denied" => {
                    BridgeError::auth(text)
                }
                "channel_not_found" | "message_not_found" | "user_not_found" | "file_not_found"
                | "thread_not_found" | "is_archived" => BridgeError::not_found(text),
                "fatal_error"
                | "internal_error"
                | "service_unavailable"
                | "request_timeout"
                | "team_added_to_org" => BridgeError::transient(text),
                _ => BridgeError::permanent(text),
            },
        }
    }
}

/// How a call's arguments travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Json,
    Form,
}

fn encoding(method: &str) -> Encoding {
    if method.starts_with("chat.") || method.starts_with("calls.") {
        Encoding::Json
    } else {
        Encoding::Form
    }
}

/// A Web API client for one workspace.
#[derive(Debug, Clone)]
pub struct SlackApi {
    http: reqwest::Client,
    base: String,
    limiter: Arc<RateLimiter>,
}

impl SlackApi {
    /// A client for the API under `base` (`https://slack.com/api`).
    pub fn new(base: impl Into<String>, limiter: Arc<RateLimiter>) -> Result<Self, BridgeError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BridgeError::permanent(format!("cannot build the HTTP client: {e}")))?;
        Ok(SlackApi {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            limiter,
        })
    }

    /// The HTTP client (for uploads and downloads).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Calls a method that authenticates by its arguments rather than a token
    /// (`oauth.v2.access`, with the app's client id and secret), as a form.
    pub async fn call_without_token(&self, method: &str, args: Value) -> Result<Value, ApiError> {
        self.limiter.acquire(method, None).await;
        let url = format!("{}/{}", self.base, method);
        let network = |e: reqwest::Error| ApiError::Network {
            method: method.to_owned(),
            reason: describe(&e),
        };
        let response = self
            .http
            .post(&url)
            .form(&form_fields(&args))
            .send()
            .await
            .map_err(network)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(network)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Http {
                method: method.to_owned(),
                status,
            });
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
            method: method.to_owned(),
            reason: e.to_string(),
        })?;
        match value.get("ok").and_then(Value::as_bool) {
            Some(true) => Ok(value),
            _ => Err(ApiError::Slack {
                method: method.to_owned(),
                code: value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error")
                    .to_owned(),
                needed: None,
            }),
        }
    }

    /// Calls `method` with `args` (a JSON object; non-string values are
    /// JSON-encoded in forms, as Slack expects). `channel` keys the
    /// per-channel posting limit.
    pub async fn call(
        &self,
        method: &str,
        token: &Token,
        args: Value,
        channel: Option<&str>,
    ) -> Result<Value, ApiError> {
        self.limiter.acquire(method, channel).await;
        let url = format!("{}/{}", self.base, method);
        let request = self.http.post(&url).bearer_auth(token.expose());
        let request = match encoding(method) {
            Encoding::Json => request
                .header("content-type", "application/json; charset=utf-8")
                .body(args.to_string()),
            Encoding::Form => request.form(&form_fields(&args)),
        };
        let network = |e: reqwest::Error| ApiError::Network {
            method: method.to_owned(),
            reason: describe(&e),
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status == 429 {
            let retry_after = retry_after.unwrap_or(Duration::from_secs(1));
            self.limiter.backoff(method, retry_after);
            return Err(ApiError::RateLimited {
                method: method.to_owned(),
                retry_after,
            });
        }
        let body = response.bytes().await.map_err(network)?;
        if !(200..300).contains(&status) {
            return Err(ApiError::Http {
                method: method.to_owned(),
                status,
            });
        }
        let value: Value = serde_json::from_slice(&body).map_err(|e| ApiError::Decode {
            method: method.to_owned(),
            reason: e.to_string(),
        })?;
        match value.get("ok").and_then(Value::as_bool) {
            Some(true) => {
                if let Some(w) = value.get("warning").and_then(Value::as_str) {
                    tracing::debug!(method, warning = w, "Slack returned a warning.");
                }
                Ok(value)
            }
            Some(false) => {
                let code = value
                    .get("error")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown_error");
                if code == "ratelimited" || code == "rate_limited" {
                    let retry_after = retry_after.unwrap_or(Duration::from_secs(1));
                    self.limiter.backoff(method, retry_after);
                    return Err(ApiError::RateLimited {
                        method: method.to_owned(),
                        retry_after,
                    });
                }
                Err(ApiError::Slack {
                    method: method.to_owned(),
                    code: code.to_owned(),
                    needed: value
                        .get("needed")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                })
            }
            None => Err(ApiError::Decode {
                method: method.to_owned(),
                reason: "no \"ok\" field".into(),
            }),
        }
    }

    /// Downloads a private file URL with the token.
    pub async fn download(
        &self,
        url: &str,
        token: &Token,
        max: u64,
    ) -> Result<Vec<u8>, BridgeError> {
        let network = |e: reqwest::Error| {
            BridgeError::transient(format!("file download failed: {}", describe(&e)))
        };
        let response = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(network)?;
        let status = response.status().as_u16();
        if status == 404 {
            return Err(BridgeError::not_found("file"));
        }
        if !(200..300).contains(&status) {
            return Err(ApiError::Http {
                method: "file download".into(),
                status,
            }
            .into());
        }
        if response.content_length().is_some_and(|n| n > max) {
            return Err(BridgeError::permanent(format!(
                "file larger than {max} bytes"
            )));
        }
        let bytes = response.bytes().await.map_err(network)?;
        if bytes.len() as u64 > max {
            return Err(BridgeError::permanent(format!(
                "file larger than {max} bytes"
            )));
        }
        Ok(bytes.to_vec())
    }

    /// POSTs raw bytes to an upload URL from `files.getUploadURLExternal` (no token).
    pub async fn upload(&self, url: &str, bytes: Vec<u8>) -> Result<(), BridgeError> {
        let response =
            self.http.post(url).body(bytes).send().await.map_err(|e| {
                BridgeError::transient(format!("file upload failed: {}", describe(&e)))
            })?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ApiError::Http {
                method: "file upload".into(),
                status,
            }
            .into())
        }
    }
}

/// Form fields from a JSON object: strings as they are, everything else as JSON.
fn form_fields(args: &Value) -> Vec<(String, String)> {
    let empty = Map::new();
    args.as_object()
        .unwrap_or(&empty)
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Bool(b) => {
                    if *b {
                        "true".into()
                    } else {
                        "false".into()
                    }
                }
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

/// A reqwest error without its URL (which may carry a token for file links).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body could not be read"
    } else if e.is_request() {
        "request failed"
    } else {
        "error"
    };
    match std::error::Error::source(e) {
        Some(source) => format!("{kind}: {source}"),
        None => kind.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_never_print() {
        let t = Token::new("xoxb-123-secret");
        assert_eq!(format!("{t:?}"), "Token(xoxb-[redacted])");
    }

    #[test]
    fn errors_map_to_bridge_error_kinds() {
        let slack = |code: &str| ApiError::Slack {
            method: "m".into(),
            code: code.into(),
            needed: None,
        };
        assert!(matches!(
            BridgeError::from(slack("invalid_auth")),
            BridgeError::Auth { .. }
        ));
        assert!(matches!(
            BridgeError::from(slack("channel_not_found")),
            BridgeError::NotFound { .. }
        ));
        assert!(matches!(
            BridgeError::from(slack("internal_error")),
            BridgeError::Transient { .. }
        ));
        assert!(matches!(
            BridgeError::from(slack("msg_too_long")),
            BridgeError::Permanent { .. }
        ));
        let limited = ApiError::RateLimited {
            method: "m".into(),
            retry_after: Duration::from_secs(7),
        };
        assert_eq!(
            BridgeError::from(limited),
            BridgeError::rate_limited(Duration::from_secs(7))
        );
        let http = |status| ApiError::Http {
            method: "m".into(),
            status,
        };
        assert!(matches!(
            BridgeError::from(http(503)),
            BridgeError::Transient { .. }
        ));
        assert!(matches!(
            BridgeError::from(http(404)),
            BridgeError::Permanent { .. }
        ));
        let scope = ApiError::Slack {
            method: "chat.postMessage".into(),
            code: "missing_scope".into(),
            needed: Some("chat:write.customize".into()),
        };
        assert_eq!(
            scope.to_string(),
            "chat.postMessage failed: missing_scope (needs scope chat:write.customize)"
        );
    }

    #[test]
    fn forms_encode_like_slack_expects() {
        let fields = form_fields(
            &serde_json::json!({"channel": "C1", "limit": 200, "inclusive": true, "files": [{"id": "F1"}], "skip": null}),
        );
        assert!(fields.contains(&("channel".into(), "C1".into())));
        assert!(fields.contains(&("limit".into(), "200".into())));
        assert!(fields.contains(&("inclusive".into(), "true".into())));
        assert!(fields.contains(&("files".into(), "[{\"id\":\"F1\"}]".into())));
        assert_eq!(fields.len(), 4);
    }
}
