//! Default values, in one place: the validation fills absent keys from
//! here, and `config.example.toml` shows the same values (a test checks).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use super::types::{HttpConfig, LogConfig, LogFormat, ReactionFallback, RelayConfig, StoreConfig};

/// `store.dedup_retention`: 7 days.
pub const DEFAULT_DEDUP_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// `store.min_free_bytes`: 64 MiB.
pub const DEFAULT_MIN_FREE_BYTES: u64 = 64 * 1024 * 1024;
/// `http.listen`: loopback, port 29340.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 29340));
/// `log.filter`.
pub const DEFAULT_LOG_FILTER: &str = "info";

impl StoreConfig {
    /// A store at `path` with default settings.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            dedup_retention: DEFAULT_DEDUP_RETENTION,
            min_free_bytes: DEFAULT_MIN_FREE_BYTES,
            key_file: None,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: DEFAULT_LISTEN,
            admin_token: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::default(),
            filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            max_attempts: 8,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(5 * 60),
            drain_grace: Duration::from_secs(20),
            dependency_wait: Duration::from_secs(10 * 60),
            reaction_fallback: ReactionFallback::default(),
            dead_letter_notices: true,
        }
    }
}
