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
            jitsi_url: DEFAULT_JITSI_URL.to_owned(),
            admins: Vec::new(),
        }
    }
}

/// `relay.jitsi_url`.
pub const DEFAULT_JITSI_URL: &str = "https://meet.jit.si";

/// `graph_url` of a Teams bridge.
pub const DEFAULT_TEAMS_GRAPH_URL: &str = "https://graph.microsoft.com/v1.0";
/// `login_url` of a Teams bridge.
pub const DEFAULT_TEAMS_LOGIN_URL: &str = "https://login.microsoftonline.com";
/// `poll_interval` of a Teams bridge: 10 s.
pub const DEFAULT_TEAMS_POLL_INTERVAL: Duration = Duration::from_secs(10);
/// `notifications.lifetime`, and its maximum: Graph's 4,320 minutes (three
/// days) for Teams messages.
pub const MAX_TEAMS_SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(4320 * 60);
/// `notifications.renew_before`: 12 h.
pub const DEFAULT_TEAMS_RENEW_BEFORE: Duration = Duration::from_secs(12 * 60 * 60);
/// `notifications.reconcile_interval`: 5 min.
pub const DEFAULT_TEAMS_RECONCILE_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Graph's limit on `clientState`, in characters.
pub const MAX_TEAMS_CLIENT_STATE_CHARS: usize = 128;
/// The connector's default client-side limits (today's Graph table: "other
/// calls" 30 rps per app; 4 rps per team or channel for one person).
pub const DEFAULT_TEAMS_RATE_LIMITS: super::types::TeamsRateLimits =
    super::types::TeamsRateLimits {
        app_rps: 30,
        user_rps: 4,
        burst: 10,
    };

/// A Matrix bridge's bot localpart and application-service id.
pub const DEFAULT_MATRIX_SENDER: &str = "switchboard";
/// The largest file a Matrix bridge relays: 50 MiB (Synapse's default
/// `max_upload_size`).
pub const DEFAULT_MATRIX_MAX_UPLOAD: u64 = 50 * 1024 * 1024;
