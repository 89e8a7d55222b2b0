//! Web API rate limits as Slack applies them (<https://docs.slack.dev/apis/web-api/rate-limits>):
//! per method, per app and workspace, in one-minute windows by tier (Tier 1 = 1+/min,
//! Tier 2 = 20+/min, Tier 3 = 50+/min, Tier 4 = 100+/min), plus `chat.postMessage`'s
//! special limit of about one message per second per channel with short bursts allowed.
//! Over the limit the answer is HTTP 429 with `Retry-After: <seconds>`.
//!
//! Modes: [`Mode::Off`] (default), [`Mode::Relaxed`] (ten times the budgets) and
//! [`Mode::Strict`] (the documented budgets). Time comes from `tokio::time`, so tests can
//! pause and advance it.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::lock;

/// How strictly limits are enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No limits.
    #[default]
    Off,
    /// Ten times the documented budgets: bursts in tests pass, runaway loops do not.
    Relaxed,
    /// The documented budgets.
    Strict,
}

/// What a 429 carries in its body.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Body429 {
    /// `{"ok":false,"error":"ratelimited"}` (the documented body).
    #[default]
    Json,
    /// An empty body (as the Node SDK's tests mock it).
    Empty,
}

/// A method's rate-limit tier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tier {
    /// 1+ per minute.
    T1,
    /// 20+ per minute.
    T2,
    /// 50+ per minute.
    T3,
    /// 100+ per minute.
    T4,
    /// chat.postMessage: ~1 per second per channel, bursts allowed.
    PostMessage,
    /// No limit (OAuth exchanges, which the docs leave unlisted).
    Unlimited,
}

impl Tier {
    /// Calls per minute in strict mode (the lower bound of the documented "N+").
    pub fn per_minute(self) -> Option<u32> {
        match self {
            Tier::T1 => Some(1),
            Tier::T2 => Some(20),
            Tier::T3 => Some(50),
            Tier::T4 => Some(100),
            Tier::PostMessage | Tier::Unlimited => None,
        }
    }
}

/// Per-channel token bucket settings for chat.postMessage in strict mode.
const POST_RATE_PER_SEC: f64 = 1.0;
const POST_BURST: f64 = 4.0;
/// Relaxed mode multiplies every budget by this.
const RELAXED_FACTOR: u32 = 10;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    mode: Mode,
    body: Body429,
    windows: HashMap<String, VecDeque<Instant>>,
    buckets: HashMap<String, Bucket>,
}

/// The limiter shared by every request.
#[derive(Debug, Default)]
pub struct RateLimiter {
    inner: Mutex<Inner>,
}

impl RateLimiter {
    /// A limiter in `mode`.
    pub fn new(mode: Mode, body: Body429) -> Self {
        RateLimiter {
            inner: Mutex::new(Inner {
                mode,
                body,
                ..Inner::default()
            }),
        }
    }

    /// Changes the mode and forgets past calls.
    pub fn set_mode(&self, mode: Mode) {
        let mut i = lock(&self.inner);
        i.mode = mode;
        i.windows.clear();
        i.buckets.clear();
    }

    /// Changes the 429 body.
    pub fn set_body(&self, body: Body429) {
        lock(&self.inner).body = body;
    }

    /// Current mode.
    pub fn mode(&self) -> Mode {
        lock(&self.inner).mode
    }

    /// Current 429 body style.
    pub fn body(&self) -> Body429 {
        lock(&self.inner).body
    }

    /// Counts one call of `method` for the app `key`; `Err(retry_after_secs)` when over.
    /// `channel` is the target of chat.postMessage.
    pub fn check(
        &self,
        key: &str,
        method: &str,
        tier: Tier,
        channel: Option<&str>,
    ) -> Result<(), u64> {
        let mut i = lock(&self.inner);
        let factor = match i.mode {
            Mode::Off => return Ok(()),
            Mode::Relaxed => RELAXED_FACTOR,
            Mode::Strict => 1,
        };
        let now = Instant::now();
        if tier == Tier::PostMessage {
            let Some(channel) = channel else {
                return Ok(());
            };
            let rate = POST_RATE_PER_SEC * f64::from(factor);
            let burst = POST_BURST * f64::from(factor);
            let b = i
                .buckets
                .entry(format!("{key}/{channel}"))
                .or_insert(Bucket {
                    tokens: burst,
                    last: now,
                });
            let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
            b.tokens = (b.tokens + elapsed * rate).min(burst);
            b.last = now;
            if b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Ok(());
            }
            let wait = ((1.0 - b.tokens) / rate).ceil();
            return Err((wait as u64).max(1));
        }
        let Some(per_min) = tier.per_minute() else {
            return Ok(());
        };
        let limit = usize::try_from(per_min * factor).unwrap_or(usize::MAX);
        let window = Duration::from_secs(60);
        let w = i.windows.entry(format!("{key}/{method}")).or_default();
        while w
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            w.pop_front();
        }
        if w.len() >= limit {
            let oldest = w.front().copied().unwrap_or(now);
            let left = window.saturating_sub(now.saturating_duration_since(oldest));
            return Err(left.as_secs_f64().ceil().max(1.0) as u64);
        }
        w.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn tier_windows_and_post_buckets() {
        let rl = RateLimiter::new(Mode::Strict, Body429::Json);
        for _ in 0..20 {
            rl.check("A", "users.list", Tier::T2, None)
                .expect("within budget");
        }
        let wait = rl
            .check("A", "users.list", Tier::T2, None)
            .expect_err("21st call");
        assert_eq!(wait, 60);
        // Another method and another app have their own budgets.
        rl.check("A", "conversations.list", Tier::T2, None)
            .expect("other method");
        rl.check("B", "users.list", Tier::T2, None)
            .expect("other app");
        tokio::time::advance(Duration::from_secs(61)).await;
        rl.check("A", "users.list", Tier::T2, None)
            .expect("window passed");

        for _ in 0..4 {
            rl.check("A", "chat.postMessage", Tier::PostMessage, Some("C1"))
                .expect("burst");
        }
        assert_eq!(
            rl.check("A", "chat.postMessage", Tier::PostMessage, Some("C1")),
            Err(1)
        );
        rl.check("A", "chat.postMessage", Tier::PostMessage, Some("C2"))
            .expect("other channel");
        tokio::time::advance(Duration::from_secs(1)).await;
        rl.check("A", "chat.postMessage", Tier::PostMessage, Some("C1"))
            .expect("refilled");

        rl.set_mode(Mode::Relaxed);
        for _ in 0..200 {
            rl.check("A", "users.list", Tier::T2, None)
                .expect("relaxed budget");
        }
        assert!(rl.check("A", "users.list", Tier::T2, None).is_err());
        rl.set_mode(Mode::Off);
        for _ in 0..1000 {
            rl.check("A", "users.list", Tier::T2, None).expect("off");
        }
    }
}
