//! Client-side rate limiting, so that Slack rarely has to answer 429.
//!
//! Slack limits every Web API method per app and workspace in one-minute
//! windows by tier, and `chat.postMessage` to about one message per second
//! per channel (https://docs.slack.dev/apis/web-api/rate-limits). Each limit
//! here is a GCRA cell: requests are spaced `interval` apart with a burst
//! allowance, and a 429's `Retry-After` pushes the cell back for everyone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// A method's rate-limit tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// 1+ per minute.
    T1,
    /// 20+ per minute.
    T2,
    /// 50+ per minute.
    T3,
    /// 100+ per minute.
    T4,
    /// Method-specific (chat.postMessage: per channel; auth.test: generous).
    Special,
}

impl Tier {
    /// Requests per minute we allow ourselves.
    pub fn per_minute(self) -> u32 {
        match self {
            Tier::T1 => 1,
            Tier::T2 => 20,
            Tier::T3 => 50,
            Tier::T4 => 100,
            Tier::Special => 600,
        }
    }
}

/// The tier of a Web API method (docs.slack.dev, as listed in protocols/slack.md §6).
pub fn tier(method: &str) -> Tier {
    match method {
        "chat.postMessage" | "chat.getPermalink" | "auth.test" => Tier::Special,
        "conversations.list" | "users.list" | "reactions.remove" => Tier::T2,
        "chat.update"
        | "chat.delete"
        | "reactions.add"
        | "conversations.info"
        | "conversations.history"
        | "conversations.replies"
        | "conversations.join"
        | "conversations.open"
        | "team.info"
        | "apps.connections.open"
        | "oauth.v2.access" => Tier::T3,
        m if m.starts_with("calls.") => Tier::T3,
        "conversations.members"
        | "users.info"
        | "users.profile.get"
        | "files.info"
        | "files.getUploadURLExternal"
        | "files.completeUploadExternal" => Tier::T4,
        _ => Tier::T3,
    }
}

/// One GCRA cell: the theoretical arrival time of the next request, and a
/// hard floor set by a 429's `Retry-After`.
#[derive(Debug, Clone, Copy)]
struct Cell {
    tat: Instant,
    not_before: Instant,
}

/// Rate limits per method and per channel.
#[derive(Debug)]
pub struct RateLimiter {
    cells: Mutex<HashMap<String, Cell>>,
    enabled: bool,
}

impl Default for RateLimiter {
    fn default() -> Self {
        RateLimiter::new(true)
    }
}

impl RateLimiter {
    /// A limiter; `enabled = false` lets everything through (tests against a
    /// simulator with limits off).
    pub fn new(enabled: bool) -> Self {
        RateLimiter {
            cells: Mutex::new(HashMap::new()),
            enabled,
        }
    }

    /// How long to wait before a request under `key` may go, reserving its
    /// slot. `interval` spaces requests; `burst` requests may go at once.
    fn reserve(&self, key: &str, interval: Duration, burst: u32) -> Duration {
        if !self.enabled {
            return Duration::ZERO;
        }
        let now = Instant::now();
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let cell = cells.entry(key.to_owned()).or_insert(Cell {
            tat: now,
            not_before: now,
        });
        let tat = cell.tat.max(now);
        let allowance = interval.saturating_mul(burst.saturating_sub(1));
        let start = tat
            .checked_sub(allowance)
            .unwrap_or(now)
            .max(now)
            .max(cell.not_before);
        cell.tat = tat.max(start) + interval;
        start.saturating_duration_since(now)
    }

    /// Waits until a call of `method` (in `channel`, for posting) may go.
    pub async fn acquire(&self, method: &str, channel: Option<&str>) {
        let per_minute = tier(method).per_minute();
        let interval = Duration::from_secs(60) / per_minute.max(1);
        let burst = (per_minute / 4).max(1);
        let mut wait = self.reserve(method, interval, burst);
        if let (Some(channel), "chat.postMessage") = (channel, method) {
            // About one message per second per channel, short bursts allowed.
            wait = wait.max(self.reserve(&format!("post:{channel}"), Duration::from_secs(1), 3));
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Slack answered 429: nothing under `method` before `retry_after`.
    pub fn backoff(&self, method: &str, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        let cell = cells.entry(method.to_owned()).or_insert(Cell {
            tat: until,
            not_before: until,
        });
        cell.not_before = cell.not_before.max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn posting_is_spaced_per_channel_after_a_burst() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            limiter.acquire("chat.postMessage", Some("C1")).await;
        }
        assert!(
            start.elapsed() < Duration::from_millis(10),
            "a burst of three goes at once"
        );
        limiter.acquire("chat.postMessage", Some("C1")).await;
        assert!(
            start.elapsed() >= Duration::from_millis(990),
            "the fourth waits ~1 s"
        );
        // Another channel is not held up.
        let t = Instant::now();
        limiter.acquire("chat.postMessage", Some("C2")).await;
        assert!(t.elapsed() < Duration::from_millis(10));
    }

    #[tokio::test(start_paused = true)]
    async fn tiers_space_requests_and_429_pushes_back() {
        let limiter = RateLimiter::default();
        let start = Instant::now();
        // Tier 2: 20/min → 3 s apart after a burst of 5.
        for _ in 0..6 {
            limiter.acquire("conversations.list", None).await;
        }
        assert!(start.elapsed() >= Duration::from_secs(3));
        limiter.backoff("users.info", Duration::from_secs(30));
        let t = Instant::now();
        limiter.acquire("users.info", None).await;
        assert!(t.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn disabled_lets_everything_through() {
        let limiter = RateLimiter::new(false);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire("chat.postMessage", Some("C1")).await;
        }
        assert!(start.elapsed() < Duration::from_millis(10));
    }

    #[test]
    fn tiers_of_the_methods_we_use() {
        assert_eq!(tier("chat.postMessage"), Tier::Special);
        assert_eq!(tier("reactions.remove"), Tier::T2);
        assert_eq!(tier("conversations.history"), Tier::T3);
        assert_eq!(tier("users.info"), Tier::T4);
        assert_eq!(tier("calls.add"), Tier::T3);
    }
}
