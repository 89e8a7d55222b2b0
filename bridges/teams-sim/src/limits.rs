//! Throttling and fault injection.
//!
//! Throttling follows "Microsoft Graph service-specific throttling limits — Microsoft Teams
//! service limits" (<https://learn.microsoft.com/graph/throttling-limits#microsoft-teams-service-limits>):
//! limits are per app per tenant, and here also per signed-in user. `Relaxed` uses the current
//! table (POST channel message 50 rps, POST chat message 20 rps, GET message 20 rps, team
//! members/channels 60 rps, other 30 rps); `Strict` the older, far lower 2021 table (2, 2, 5,
//! 3 rps…), which tests can actually hit. The 429 answer is Graph's
//! (<https://learn.microsoft.com/graph/throttling#sample-response>): `Retry-After` in seconds
//! (fractional) and `{"error":{"code":"TooManyRequests","innerError":{"code":"429",…,
//! "status":"429"},"message":"Please retry again later."}}`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::util::{GraphError, lock};

/// How hard the simulator throttles.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// No throttling.
    #[default]
    Off,
    /// Today's Teams limits.
    Relaxed,
    /// The 2021 Teams limits (low enough for tests to reach).
    Strict,
}

/// Which row of the Teams throttling table a call falls in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Class {
    /// POST a channel message or reply.
    PostChannelMessage,
    /// POST a chat message.
    PostChatMessage,
    /// GET channel messages.
    GetChannelMessage,
    /// GET chat messages.
    GetChatMessage,
    /// GET team members / channels.
    GetTeamInfo,
    /// Any other GET.
    OtherGet,
    /// Any other call.
    Other,
}

impl Class {
    fn rps(self, mode: Mode) -> u32 {
        match (mode, self) {
            (Mode::Off, _) => u32::MAX,
            (Mode::Relaxed, Class::PostChannelMessage) => 50,
            (Mode::Relaxed, Class::GetTeamInfo) => 60,
            (Mode::Relaxed, Class::PostChatMessage | Class::GetChannelMessage) => 20,
            (Mode::Relaxed, Class::GetChatMessage) => 20,
            (Mode::Relaxed, Class::OtherGet | Class::Other) => 30,
            (Mode::Strict, Class::PostChannelMessage | Class::PostChatMessage) => 2,
            (Mode::Strict, Class::GetChannelMessage) => 5,
            (Mode::Strict, Class::GetChatMessage) => 3,
            (Mode::Strict, Class::GetTeamInfo | Class::OtherGet | Class::Other) => 15,
        }
    }
}

#[derive(Debug)]
struct Window {
    start: Instant,
    count: u32,
}

/// How long after a 429 a request counts as already in flight rather than
/// early.
const IN_FLIGHT: Duration = Duration::from_millis(100);

/// Fixed one-second windows per (key, class), and when each throttled key
/// may come back, to count clients that return before `Retry-After`.
#[derive(Debug, Default)]
pub struct Limiter {
    mode: Mutex<Mode>,
    windows: Mutex<HashMap<(String, Class), Window>>,
    /// Per key: when the last 429 was given and until when it holds.
    throttled_until: Mutex<HashMap<String, (Instant, Instant)>>,
    early: AtomicU64,
}

impl Limiter {
    /// A limiter in `mode`.
    pub fn new(mode: Mode) -> Limiter {
        Limiter {
            mode: Mutex::new(mode),
            windows: Mutex::new(HashMap::new()),
            throttled_until: Mutex::new(HashMap::new()),
            early: AtomicU64::new(0),
        }
    }

    /// Switches mode (and forgets the windows).
    pub fn set_mode(&self, mode: Mode) {
        *lock(&self.mode) = mode;
        lock(&self.windows).clear();
    }

    /// Requests that came before the `Retry-After` their key was given had
    /// passed (a well-behaved client makes none).
    pub fn early_retries(&self) -> u64 {
        self.early.load(Ordering::Relaxed)
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        *lock(&self.mode)
    }

    /// Counts a call against every key; `Err` carries the 429 answer.
    pub fn check(&self, keys: &[String], class: Class) -> Result<(), GraphError> {
        let mode = self.mode();
        if mode == Mode::Off {
            return Ok(());
        }
        let limit = class.rps(mode);
        let now = Instant::now();
        {
            let until = lock(&self.throttled_until);
            // Requests that were already in flight when the 429 went out
            // (arriving within IN_FLIGHT of it) are not counted.
            if keys.iter().any(|k| {
                until
                    .get(k)
                    .is_some_and(|(at, u)| *u > now && now.duration_since(*at) > IN_FLIGHT)
            }) {
                self.early.fetch_add(1, Ordering::Relaxed);
            }
        }
        let mut w = lock(&self.windows);
        let mut wait: Option<Duration> = None;
        for k in keys {
            let win = w.entry((k.clone(), class)).or_insert(Window {
                start: now,
                count: 0,
            });
            if now.duration_since(win.start) >= Duration::from_secs(1) {
                win.start = now;
                win.count = 0;
            }
            if win.count >= limit {
                let left = Duration::from_secs(1).saturating_sub(now.duration_since(win.start));
                wait = Some(wait.map_or(left, |x| x.max(left)));
            }
        }
        if let Some(left) = wait {
            // Whole milliseconds, as advertised in Retry-After.
            let left = Duration::from_millis(
                u64::try_from(left.as_micros().div_ceil(1000))
                    .unwrap_or(1000)
                    .max(1),
            );
            let mut until = lock(&self.throttled_until);
            for k in keys {
                until.insert(k.clone(), (now, now + left));
            }
            return Err(too_many_requests(left));
        }
        for k in keys {
            if let Some(win) = w.get_mut(&(k.clone(), class)) {
                win.count += 1;
            }
        }
        Ok(())
    }
}

/// Graph's 429 answer with a fractional `Retry-After`.
pub fn too_many_requests(wait: Duration) -> GraphError {
    let secs = wait.as_secs_f64().max(0.001);
    let mut e = GraphError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "TooManyRequests",
        "Please retry again later.",
    )
    .with_header("retry-after", format!("{secs:.3}"));
    e.inner = Some(json!({"code": "429", "message": "Please retry after", "status": "429"}));
    e
}

/// Injected faults. Rates are probabilities in `0.0..=1.0`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, rename_all = "snake_case")]
pub struct FaultConfig {
    /// Added to every Graph and identity-platform answer.
    pub latency_ms: u64,
    /// Share of Graph calls answered 503 `ServiceUnavailable`.
    pub error_rate: f64,
    /// Share of notifications silently never sent.
    pub drop_rate: f64,
    /// Share of notifications sent twice.
    pub duplicate_rate: f64,
    /// Delay before each notification is first sent.
    pub notification_delay_ms: u64,
    /// Share of Graph answers lost on the way back: the request is carried
    /// out, then the connection breaks before the answer's body arrives (the
    /// client cannot tell whether a POST took effect).
    pub disconnect_rate: f64,
}

/// The fault switchboard with its own seeded random generator.
#[derive(Debug)]
pub struct Faults {
    cfg: Mutex<FaultConfig>,
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    /// No faults, random generator seeded with `seed`.
    pub fn new(seed: u64) -> Faults {
        Faults {
            cfg: Mutex::new(FaultConfig::default()),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// Replaces the configuration.
    pub fn set(&self, cfg: FaultConfig) {
        *lock(&self.cfg) = cfg;
    }

    /// The configuration.
    pub fn get(&self) -> FaultConfig {
        lock(&self.cfg).clone()
    }

    /// True with probability `p`.
    pub fn roll(&self, p: f64) -> bool {
        p > 0.0 && lock(&self.rng).f64() < p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_before_retry_after_are_counted_early() {
        let limiter = Limiter::new(Mode::Strict);
        let keys = vec!["app:c".to_owned()];
        assert!(limiter.check(&keys, Class::PostChannelMessage).is_ok());
        assert!(limiter.check(&keys, Class::PostChannelMessage).is_ok());
        assert!(
            limiter.check(&keys, Class::PostChannelMessage).is_err(),
            "third in a second"
        );
        // Still in flight when the 429 went out: not early.
        let _ = limiter.check(&keys, Class::PostChannelMessage);
        assert_eq!(limiter.early_retries(), 0);
        std::thread::sleep(IN_FLIGHT + Duration::from_millis(20));
        let _ = limiter.check(&keys, Class::PostChannelMessage);
        assert_eq!(limiter.early_retries(), 1, "came back before Retry-After");
    }
}
