//! Retry policy: when to try a failed delivery again, and when to give up.
//! Pure functions, so the arithmetic is tested without a clock.

use crate::config::RelayConfig;
use std::time::Duration;
use switchboard_model::{BridgeError, RetryKind};

/// What to do after a failed delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Pause every delivery to the bridge for this long, then try again
    /// (rate limited: the attempt does not count).
    PauseBridge(Duration),
    /// Try this op again after this long (the attempt counts).
    RetryAfter(Duration),
    /// Give up: dead-letter the op.
    DeadLetter,
}

/// Decides what follows failure number `attempts` (1 for the first failure).
/// `jitter` is a factor in `[0.8, 1.2]`.
pub fn decide(config: &RelayConfig, error: &BridgeError, attempts: u32, jitter: f64) -> Decision {
    match error.retry_kind() {
        RetryKind::RateLimited { retry_after } => Decision::PauseBridge(retry_after),
        RetryKind::Permanent => Decision::DeadLetter,
        RetryKind::Transient { .. } | RetryKind::Reauthenticate
            if attempts >= config.max_attempts =>
        {
            Decision::DeadLetter
        }
        RetryKind::Transient { retry_after } => Decision::RetryAfter(
            backoff(config, attempts, jitter).max(retry_after.unwrap_or_default()),
        ),
        RetryKind::Reauthenticate => Decision::RetryAfter(backoff(config, attempts, jitter)),
    }
}

/// Exponential backoff: `initial * 2^(attempts-1)`, capped at `max`, times `jitter`.
pub fn backoff(config: &RelayConfig, attempts: u32, jitter: f64) -> Duration {
    let exp = attempts.saturating_sub(1).min(30);
    let base = config
        .initial_backoff
        .saturating_mul(1u32 << exp)
        .min(config.max_backoff);
    base.mul_f64(jitter.clamp(0.5, 1.5))
}

/// A random jitter factor in `[0.8, 1.2]`.
pub fn jitter() -> f64 {
    0.8 + fastrand::f64() * 0.4
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ReactionFallback;

    fn config() -> RelayConfig {
        RelayConfig {
            max_attempts: 4,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5),
            drain_grace: Duration::from_secs(10),
            dependency_wait: Duration::from_secs(60),
            reaction_fallback: ReactionFallback::Notice,
            dead_letter_notices: true,
            jitsi_url: "https://meet.jit.si".to_owned(),
            admins: Vec::new(),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let c = config();
        let secs: Vec<u64> = (1..=5).map(|a| backoff(&c, a, 1.0).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 5, 5]);
        assert_eq!(backoff(&c, 1, 1.2), Duration::from_millis(1200));
        assert_eq!(
            backoff(&c, u32::MAX, 1.0),
            Duration::from_secs(5),
            "no overflow"
        );
    }

    #[test]
    fn rate_limits_pause_without_counting() {
        let e = BridgeError::rate_limited(Duration::from_secs(2));
        // Even far past max_attempts, a rate limit never dead-letters.
        assert_eq!(
            decide(&config(), &e, 100, 1.0),
            Decision::PauseBridge(Duration::from_secs(2))
        );
    }

    #[test]
    fn transient_retries_then_dead_letters() {
        let e = BridgeError::transient("reset");
        assert_eq!(
            decide(&config(), &e, 1, 1.0),
            Decision::RetryAfter(Duration::from_secs(1))
        );
        assert_eq!(
            decide(&config(), &e, 3, 1.0),
            Decision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(decide(&config(), &e, 4, 1.0), Decision::DeadLetter);
        let hinted = BridgeError::Transient {
            reason: "503".into(),
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            decide(&config(), &hinted, 1, 1.0),
            Decision::RetryAfter(Duration::from_secs(30))
        );
    }

    #[test]
    fn permanent_and_not_found_dead_letter_at_once() {
        assert_eq!(
            decide(&config(), &BridgeError::permanent("too big"), 1, 1.0),
            Decision::DeadLetter
        );
        assert_eq!(
            decide(&config(), &BridgeError::not_found("channel"), 1, 1.0),
            Decision::DeadLetter
        );
    }

    #[test]
    fn auth_failures_retry_until_the_limit() {
        let e = BridgeError::auth("token revoked");
        assert_eq!(
            decide(&config(), &e, 2, 1.0),
            Decision::RetryAfter(Duration::from_secs(2))
        );
        assert_eq!(decide(&config(), &e, 4, 1.0), Decision::DeadLetter);
    }

    #[test]
    fn jitter_stays_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.8..=1.2).contains(&j), "{j}");
        }
    }
}
