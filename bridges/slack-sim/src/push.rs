//! Events API push mode: POSTing each `event_callback` body to the app's request URL, signed
//! the documented way (<https://docs.slack.dev/authentication/verifying-requests-from-slack>):
//! `X-Slack-Request-Timestamp: <unix seconds>` and
//! `X-Slack-Signature: v0=hex(HMAC-SHA256(signing_secret, "v0:{ts}:{body}"))`.
//!
//! A delivery that is not answered with 2xx within the timeout (3 s by default) is retried
//! with `X-Slack-Retry-Num` and `X-Slack-Retry-Reason` (`http_timeout`, `http_error`,
//! `connection_failed`) on a schedule (Slack: at once, after 1 minute, after 5 minutes;
//! shortened in tests). `X-Slack-No-Retry: 1` on an error answer stops retries.
//! Setting a URL first runs the `url_verification` handshake
//! (<https://docs.slack.dev/reference/events/url_verification>).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::events::{Hub, Payload};
use crate::lock;

/// `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}` keyed with the signing secret.
pub fn sign(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret.as_bytes())
        .expect("HMAC-SHA256 takes keys of any length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    format!("v0={}", hex::encode(mac.finalize().into_bytes()))
}

enum Outcome {
    Delivered,
    Failed {
        reason: &'static str,
        no_retry: bool,
    },
}

async fn post_once(
    hub: &Hub,
    url: &str,
    secret: &str,
    body: &str,
    retry: Option<(u32, &str)>,
) -> Outcome {
    let ts = crate::ids::now_secs().to_string();
    let timeout = lock(&hub.config).push_timeout;
    let mut req = hub
        .http()
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("X-Slack-Request-Timestamp", &ts)
        .header("X-Slack-Signature", sign(secret, &ts, body.as_bytes()))
        .header("User-Agent", "Slackbot 1.0 (+https://api.slack.com/robots)")
        .body(body.to_string());
    if let Some((n, reason)) = retry {
        req = req
            .header("X-Slack-Retry-Num", n.to_string())
            .header("X-Slack-Retry-Reason", reason);
    }
    hub.counters.push_attempts.fetch_add(1, Ordering::Relaxed);
    match req.send().await {
        Ok(r) if r.status().is_success() => Outcome::Delivered,
        Ok(r) => Outcome::Failed {
            reason: "http_error",
            no_retry: r
                .headers()
                .get("X-Slack-No-Retry")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.trim() == "1"),
        },
        Err(e) if e.is_timeout() => Outcome::Failed {
            reason: "http_timeout",
            no_retry: false,
        },
        Err(e) if e.is_connect() => Outcome::Failed {
            reason: "connection_failed",
            no_retry: false,
        },
        Err(_) => Outcome::Failed {
            reason: "unknown_error",
            no_retry: false,
        },
    }
}

/// Delivers one payload to `url` with retries, in the background.
pub fn spawn_delivery(hub: Arc<Hub>, url: String, secret: String, payload: Payload) {
    let h = hub.clone();
    hub.spawn(async move {
        let hub = h;
        let (max, delays) = {
            let c = lock(&hub.config);
            (c.max_retries, c.push_retry_delays.clone())
        };
        let mut retry: Option<(u32, &'static str)> = None;
        loop {
            match post_once(&hub, &url, &secret, &payload.body, retry).await {
                Outcome::Delivered => {
                    hub.counters.events_delivered.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Outcome::Failed { reason, no_retry } => {
                    let n = retry.map_or(1, |(n, _)| n + 1);
                    if no_retry || n > max {
                        hub.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(event_id = %payload.event_id, reason, "Request URL never acknowledged the event; dropped.");
                        return;
                    }
                    let delay = delays
                        .get(usize::try_from(n - 1).unwrap_or(usize::MAX))
                        .or(delays.last())
                        .copied()
                        .unwrap_or_default();
                    tokio::time::sleep(delay).await;
                    hub.counters.events_redelivered.fetch_add(1, Ordering::Relaxed);
                    retry = Some((n, reason));
                }
            }
        }
    });
}

/// Runs the `url_verification` handshake against `url`: a signed POST of
/// `{"token","challenge","type":"url_verification"}`, expecting the challenge back as
/// plain text, as `challenge=…`, or as `{"challenge": …}`.
pub async fn verify_url(
    hub: &Hub,
    url: &str,
    secret: &str,
    verification_token: &str,
) -> Result<(), String> {
    let challenge = crate::ids::random_lower(48);
    let body =
        json!({"token": verification_token, "challenge": challenge, "type": "url_verification"})
            .to_string();
    let ts = crate::ids::now_secs().to_string();
    let timeout = lock(&hub.config).push_timeout;
    let resp = hub
        .http()
        .post(url)
        .timeout(timeout)
        .header("Content-Type", "application/json")
        .header("X-Slack-Request-Timestamp", &ts)
        .header("X-Slack-Signature", sign(secret, &ts, body.as_bytes()))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("answered HTTP {}", resp.status().as_u16()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("unreadable answer: {e}"))?;
    let text = text.trim();
    let echoed = text == challenge
        || serde_urlencoded::from_str::<Vec<(String, String)>>(text)
            .ok()
            .is_some_and(|p| p.iter().any(|(k, v)| k == "challenge" && *v == challenge))
        || serde_json::from_str::<Value>(text)
            .ok()
            .and_then(|v| {
                v.get("challenge")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .is_some_and(|c| c == challenge);
    if echoed {
        Ok(())
    } else {
        Err("the answer did not contain the challenge".into())
    }
}
