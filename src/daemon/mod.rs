//! The daemon's infrastructure: what runs beside the relay so that operators
//! can see and steer it.
//!
//! - [`metrics`]: our own small Prometheus registry, rendered at `/metrics`.
//! - [`status`]: each bridge's connection state and the readiness latch.
//! - [`http`]: the `/health`, `/ready` and `/metrics` listener.
//! - [`notify`]: systemd notifications (READY, STATUS, WATCHDOG, STOPPING).
//! - [`logging`]: the tracing subscriber (plain, JSON or journald).

pub mod admin;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod status;
pub mod supervise;
