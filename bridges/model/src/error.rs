//! Errors a bridge reports, and what the relay does about each.

use std::time::Duration;
use thiserror::Error;

/// A failure reported by a bridge. The variant, not the message, decides what
/// happens next (see [`BridgeError::retry_kind`]). Messages must never carry a
/// secret: they end up in logs and in notices to users.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BridgeError {
    /// Something that may work if tried again: a network error, a 5xx.
    #[error("transient failure: {reason}")]
    Transient {
        /// What went wrong.
        reason: String,
        /// When to try again, if the platform said.
        retry_after: Option<Duration>,
    },
    /// The platform asked us to slow down (HTTP 429, `M_LIMIT_EXCEEDED`).
    #[error("rate limited, retry after {}ms", retry_after.as_millis())]
    RateLimited {
        /// How long to wait before the next request to this bridge.
        retry_after: Duration,
    },
    /// Credentials are missing, expired or revoked. Retrying only helps once
    /// an operator or a token refresh fixes them.
    #[error("authentication failed: {reason}")]
    Auth {
        /// What the platform said.
        reason: String,
    },
    /// The target (channel, message, user) does not exist.
    #[error("not found: {what}")]
    NotFound {
        /// What was missing.
        what: String,
    },
    /// A failure that will happen again however often it is tried: a refused
    /// permission, an invalid request, a message too large.
    #[error("{reason}")]
    Permanent {
        /// What went wrong.
        reason: String,
    },
}

impl BridgeError {
    /// A transient failure with no retry hint.
    pub fn transient(reason: impl Into<String>) -> Self {
        BridgeError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }

    /// A permanent failure.
    pub fn permanent(reason: impl Into<String>) -> Self {
        BridgeError::Permanent {
            reason: reason.into(),
        }
    }

    /// A rate limit.
    pub fn rate_limited(retry_after: Duration) -> Self {
        BridgeError::RateLimited { retry_after }
    }

    /// An authentication failure.
    pub fn auth(reason: impl Into<String>) -> Self {
        BridgeError::Auth {
            reason: reason.into(),
        }
    }

    /// A missing target.
    pub fn not_found(what: impl Into<String>) -> Self {
        BridgeError::NotFound { what: what.into() }
    }

    /// What the relay should do about this error.
    pub fn retry_kind(&self) -> RetryKind {
        match self {
            BridgeError::Transient { retry_after, .. } => RetryKind::Transient {
                retry_after: *retry_after,
            },
            BridgeError::RateLimited { retry_after } => RetryKind::RateLimited {
                retry_after: *retry_after,
            },
            BridgeError::Auth { .. } => RetryKind::Reauthenticate,
            BridgeError::NotFound { .. } | BridgeError::Permanent { .. } => RetryKind::Permanent,
        }
    }

    /// A short, bounded name for logs and metric labels.
    pub fn label(&self) -> &'static str {
        match self {
            BridgeError::Transient { .. } => "transient",
            BridgeError::RateLimited { .. } => "rate_limited",
            BridgeError::Auth { .. } => "auth",
            BridgeError::NotFound { .. } => "not_found",
            BridgeError::Permanent { .. } => "permanent",
        }
    }
}

/// The retry decision an error implies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryKind {
    /// Retry with exponential backoff, no sooner than `retry_after` if given.
    /// Counts towards the attempt limit.
    Transient {
        /// The platform's hint.
        retry_after: Option<Duration>,
    },
    /// Pause every request to this bridge for `retry_after`, then retry. Does
    /// not count towards the attempt limit: being told to wait is not failing.
    RateLimited {
        /// How long to pause.
        retry_after: Duration,
    },
    /// The bridge's credentials are bad: retry with backoff (a refresh or an
    /// operator may fix them) and report the bridge as having bad credentials.
    Reauthenticate,
    /// Do not retry: dead-letter now.
    Permanent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_drive_retries() {
        assert_eq!(
            BridgeError::rate_limited(Duration::from_secs(2)).retry_kind(),
            RetryKind::RateLimited {
                retry_after: Duration::from_secs(2)
            }
        );
        assert_eq!(
            BridgeError::transient("reset").retry_kind(),
            RetryKind::Transient { retry_after: None }
        );
        assert_eq!(
            BridgeError::auth("expired").retry_kind(),
            RetryKind::Reauthenticate
        );
        assert_eq!(
            BridgeError::not_found("channel").retry_kind(),
            RetryKind::Permanent
        );
        assert_eq!(
            BridgeError::permanent("too big").retry_kind(),
            RetryKind::Permanent
        );
    }
}
