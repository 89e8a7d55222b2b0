//! Fault injection for reliability tests: added latency, a rate of 5xx answers, dropping
//! connections mid-request, and refusing connections for a while. Faults are the
//! simulator's, not Slack's documented behaviour; they stand for the network and Slack's
//! bad days (`service_unavailable`, resets) so clients can be tested against them.
//!
//! Random choices come from a seeded generator, so a given seed and request sequence give
//! the same faults.

use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::lock;

/// The faults in force. All default to "none".
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultConfig {
    /// Delay added before answering each Web API request, in milliseconds.
    pub latency_ms: u64,
    /// Fraction (0..=1) of Web API requests answered with `error_status`.
    pub error_rate: f64,
    /// Status for injected errors (500 when 0).
    pub error_status: u16,
    /// Fraction (0..=1) of Web API requests whose connection is closed without an answer.
    pub drop_rate: f64,
    /// Only these methods are affected (all when empty).
    pub methods: Vec<String>,
}

/// What to do with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Answer normally.
    Serve,
    /// Answer with this 5xx status.
    Error(u16),
    /// Close the connection without answering.
    Drop,
}

/// Fault state shared by the server.
#[derive(Debug)]
pub struct Faults {
    cfg: Mutex<FaultConfig>,
    refuse_until: Mutex<Option<Instant>>,
    rng: Mutex<fastrand::Rng>,
}

impl Faults {
    /// No faults; `seed` drives the random choices.
    pub fn new(seed: u64) -> Self {
        Faults {
            cfg: Mutex::new(FaultConfig::default()),
            refuse_until: Mutex::new(None),
            rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        }
    }

    /// Replaces the fault configuration.
    pub fn set(&self, cfg: FaultConfig) {
        *lock(&self.cfg) = cfg;
    }

    /// The fault configuration.
    pub fn get(&self) -> FaultConfig {
        lock(&self.cfg).clone()
    }

    /// Refuse (accept and immediately reset) every new connection for `d`.
    pub fn refuse_for(&self, d: Duration) {
        *lock(&self.refuse_until) = Some(Instant::now() + d);
    }

    /// Whether new connections are refused right now.
    pub fn refusing(&self) -> bool {
        lock(&self.refuse_until).is_some_and(|t| Instant::now() < t)
    }

    /// Decides the fate of one request to `method`: (added latency, action).
    pub fn plan(&self, method: &str) -> (Duration, Action) {
        let cfg = lock(&self.cfg);
        if !cfg.methods.is_empty() && !cfg.methods.iter().any(|m| m == method) {
            return (Duration::ZERO, Action::Serve);
        }
        let latency = Duration::from_millis(cfg.latency_ms);
        let mut rng = lock(&self.rng);
        if cfg.drop_rate > 0.0 && rng.f64() < cfg.drop_rate {
            return (latency, Action::Drop);
        }
        if cfg.error_rate > 0.0 && rng.f64() < cfg.error_rate {
            let status = if (500..600).contains(&cfg.error_status) {
                cfg.error_status
            } else {
                500
            };
            return (latency, Action::Error(status));
        }
        (latency, Action::Serve)
    }
}
