//! The validated, typed configuration. Built only by [`super::load`] and its
//! siblings ([`super::from_toml_str`]); everything here has passed validation.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use switchboard_model::{BridgeId, ChannelId, UserId};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `[store]`
    pub store: StoreConfig,
    /// `[http]`
    pub http: HttpConfig,
    /// `[log]`
    pub log: LogConfig,
    /// `[relay]`
    pub relay: RelayConfig,
    /// `[[bridge]]`, in file order.
    pub bridges: Vec<BridgeConfig>,
    /// `[[portal]]`, in file order.
    pub portals: Vec<PortalConfig>,
}

/// `[store]`: where the sled database lives.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreConfig {
    /// Directory of the database (created if missing).
    pub path: PathBuf,
    /// How long inbound event ids are remembered for deduplication.
    pub dedup_retention: Duration,
    /// Refuse new inbound events while the store's file system has less free
    /// space than this, in bytes.
    pub min_free_bytes: u64,
    /// The key that encrypts linked accounts' tokens (created on first login).
    /// Without it, and without the systemd credential `store-key`, nobody can
    /// link an account.
    pub key_file: Option<PathBuf>,
}

/// `[http]`: the daemon's one HTTP listener (health, readiness, metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Address to listen on; loopback unless the operator knows better.
    pub listen: SocketAddr,
    /// The token the admin API (`/admin/…`) demands; the admin API is off without it.
    pub admin_token: Option<Secret>,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A tracing filter directive (`info`, `switchboard=debug,info`).
    pub filter: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    #[default]
    Plain,
    /// One JSON object per line on stderr.
    Json,
    /// Straight to the systemd journal with structured fields.
    Journald,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "plain" => Ok(LogFormat::Plain),
            "json" => Ok(LogFormat::Json),
            "journald" => Ok(LogFormat::Journald),
            other => Err(format!(
                "unknown log format {other:?} (expected plain, json or journald)"
            )),
        }
    }
}

/// `[relay]`: delivery policy.
#[derive(Debug, Clone, PartialEq)]
pub struct RelayConfig {
    /// Failed attempts (transient errors) before an op is dead-lettered.
    pub max_attempts: u32,
    /// First retry delay; doubles each attempt, with ±20 % jitter.
    pub initial_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
    /// On SIGTERM, how long to keep delivering what is in the outbox.
    pub drain_grace: Duration,
    /// How long an edit, delete or reaction waits for a target message that
    /// the relay has never seen before giving up on it.
    pub dependency_wait: Duration,
    /// What a target without reactions gets for a reaction.
    pub reaction_fallback: ReactionFallback,
    /// Whether a dead letter posts a notice back in the origin channel.
    pub dead_letter_notices: bool,
    /// Where Jitsi meetings are created (`{jitsi_url}/{random room}`), for
    /// portals whose meetings are Jitsi or that have no other provider.
    pub jitsi_url: String,
    /// Who may administer Switchboard from a chat (`portal …`, `logins`,
    /// `calls` sent to the bot): people as `<bridge-id>/<user-id>`, e.g.
    /// `slack:acme/U0123ABCD`, `matrix:main/@ann:example.org`. Anyone may
    /// use `help`, `dm` and `call`.
    pub admins: Vec<(BridgeId, UserId)>,
}

/// What to do with a reaction for a target that has no reactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReactionFallback {
    /// Post a short notice ("Ann reacted 👍 to: …").
    #[default]
    Notice,
    /// Drop it.
    Skip,
}

/// One `[[bridge]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BridgeConfig {
    /// Its id, `platform:name`.
    pub id: BridgeId,
    /// Its platform and settings.
    pub kind: BridgeKind,
}

/// The platforms, one variant each (`type = "…"` in the file).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum BridgeKind {
    /// `type = "memory"`: a file-backed simulated platform for trials and tests.
    Memory(MemoryBridgeConfig),
    /// `type = "slack"`: one Slack workspace.
    Slack(SlackBridgeConfig),
    /// `type = "teams"`: one Microsoft 365 tenant, through Microsoft Graph.
    Teams(TeamsBridgeConfig),
    /// `type = "matrix"`: one homeserver, as an application service.
    Matrix(MatrixBridgeConfig),
}

impl BridgeKind {
    /// The `type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            BridgeKind::Memory(_) => "memory",
            BridgeKind::Slack(_) => "slack",
            BridgeKind::Teams(_) => "teams",
            BridgeKind::Matrix(_) => "matrix",
        }
    }
}

/// `type = "memory"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryBridgeConfig {
    /// Directory holding the simulated platform's state.
    pub state_dir: PathBuf,
    /// `full` or `minimal` capabilities.
    pub capabilities: MemoryCapabilities,
    /// An access token the simulated platform demands (from `token_file` or `token_env`).
    pub token: Option<Secret>,
    /// How long each delivery takes (a slow platform); zero by default.
    pub latency: Duration,
}

/// `type = "slack"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackBridgeConfig {
    /// The Web API base URL.
    pub api_url: String,
    /// The bot token (`xoxb-…`).
    pub bot_token: Secret,
    /// How events arrive.
    pub mode: SlackMode,
    /// Client-side rate limiting.
    pub rate_limits: bool,
    /// The largest file relayed, in bytes.
    pub max_upload: u64,
    /// OAuth for `switchboard login slack`: the app's client id.
    pub client_id: Option<String>,
    /// OAuth: the app's client secret.
    pub client_secret: Option<Secret>,
    /// OAuth: the authorize page.
    pub oauth_url: String,
    /// Where browsers reach the daemon's listener, for `login slack` from a
    /// chat (with client_id and the client secret).
    pub public_url: Option<String>,
}

/// `type = "matrix"` settings: Switchboard as an application service.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixBridgeConfig {
    /// The homeserver's client-server API base URL.
    pub homeserver_url: String,
    /// The homeserver's server name (the part after `:` in user ids).
    pub server_name: String,
    /// The application service's id in the registration.
    pub appservice_id: String,
    /// Where the homeserver reaches the daemon's listener (the
    /// registration's `url`); `http://<http.listen>` when not set.
    pub appservice_url: Option<String>,
    /// The token the daemon sends to the homeserver.
    pub as_token: Secret,
    /// The token the homeserver sends to the daemon.
    pub hs_token: Secret,
    /// The bridge bot's localpart.
    pub sender_localpart: String,
    /// Ghost localpart templates by platform.
    pub ghost_templates: Vec<(String, String)>,
    /// Room alias localpart template for portal rooms created on demand.
    pub alias_template: String,
    /// Matrix users invited to every portal room the bridge creates.
    pub invite: Vec<String>,
    /// The largest file relayed, in bytes.
    pub max_upload: u64,
    /// The registration file the homeserver loads; when set, the daemon
    /// refuses to start if it disagrees with this configuration.
    pub registration_file: Option<PathBuf>,
    /// The `as_token` of the double-puppeting registration (see
    /// `switchboard matrix registration`): people who linked their Matrix
    /// account appear as it.
    pub double_puppet_token: Option<Secret>,
    /// The base URL at which Slack and Teams reach the daemon's listener
    /// (no trailing `/`); when set, Matrix users' avatars are served
    /// through the bridge's signed media endpoint there.
    pub public_url: Option<String>,
}

/// `type = "teams"` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamsBridgeConfig {
    /// The Microsoft Graph base URL (`https://graph.microsoft.com/v1.0`).
    pub graph_url: String,
    /// The identity platform's base URL (`https://login.microsoftonline.com`).
    pub login_url: String,
    /// The tenant id (a GUID, or a verified domain).
    pub tenant: String,
    /// The app registration's client id.
    pub client_id: String,
    /// The app's client secret (application tokens that read; device-code
    /// sign-ins of people and of the service account).
    pub client_secret: Secret,
    /// How often the watched channels are polled for changes (delta).
    pub poll_interval: Duration,
    /// Channels polled besides the portal channels (`team-id/channel-id`).
    pub watch: Vec<ChannelId>,
    /// Change notifications from Graph, when it can reach the listener.
    pub notifications: Option<TeamsNotificationsConfig>,
    /// With notifications on, how often delta reconciliation runs.
    pub reconcile_interval: Duration,
    /// Client-side rate limits; `None` when switched off.
    pub rate_limits: Option<TeamsRateLimits>,
}

/// `[bridge.notifications]` of a Teams bridge: Graph change notifications.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamsNotificationsConfig {
    /// The public base URL at which Graph reaches the daemon's listener.
    pub public_url: String,
    /// The secret Graph echoes as `clientState` (at most 128 characters).
    pub client_state: Secret,
    /// The lifetime asked for each subscription (at most 3 days).
    pub lifetime: Duration,
    /// Subscriptions are renewed this long before they expire.
    pub renew_before: Duration,
    /// Where the key that decrypts rich notifications lives (PKCS#8 key and
    /// certificate, PEM; created when missing). `None`: notifications carry
    /// no resource data and each changed message is read with a GET.
    pub encryption_key_file: Option<std::path::PathBuf>,
}

/// Client-side limits of a Teams bridge, in requests per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TeamsRateLimits {
    /// For the whole app (per tenant).
    pub app_rps: u32,
    /// Per signed-in person (the service account included).
    pub user_rps: u32,
    /// How many requests may go at once after a quiet period.
    pub burst: u32,
}

/// How Slack events reach the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum SlackMode {
    /// Socket Mode, with the app-level token (`xapp-…`).
    Socket {
        /// The app-level token.
        app_token: Secret,
    },
    /// The HTTP Events API on the daemon's listener.
    Events {
        /// The app's signing secret.
        signing_secret: Secret,
        /// The Request URL's path on the listener.
        path: String,
    },
}

/// Capability presets of the memory bridge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryCapabilities {
    /// Edits, threads, reactions, files, calls.
    #[default]
    Full,
    /// Plain messages only.
    Minimal,
}

/// One `[[portal]]`: channels on different bridges that form one conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalConfig {
    /// Its name, unique; also its stored id.
    pub name: String,
    /// Its members, each a channel on a configured bridge.
    pub members: Vec<PortalMember>,
    /// How it handles calls and meetings.
    pub calls: PortalCalls,
}

/// How a portal handles calls: `calls` and `meetings` of a `[[portal]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalCalls {
    /// Whether call invites are relayed and meetings can be asked for.
    pub relay: bool,
    /// Who creates a meeting asked for with `!call` / `/switchboard call`.
    pub meetings: MeetingProvider,
}

impl Default for PortalCalls {
    fn default() -> Self {
        PortalCalls {
            relay: true,
            meetings: MeetingProvider::Auto,
        }
    }
}

/// Who creates the meetings people ask for in a portal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MeetingProvider {
    /// The first member whose bridge creates meetings (a Teams online
    /// meeting), else a Jitsi room.
    #[default]
    Auto,
    /// A Jitsi room under `relay.jitsi_url`.
    Jitsi,
    /// This member bridge.
    Bridge(BridgeId),
}

impl MeetingProvider {
    /// As stored and written in the config: `None` for auto, `jitsi`, or a
    /// bridge id.
    pub fn stored(&self) -> Option<String> {
        match self {
            MeetingProvider::Auto => None,
            MeetingProvider::Jitsi => Some("jitsi".to_owned()),
            MeetingProvider::Bridge(id) => Some(id.to_string()),
        }
    }

    /// The inverse of [`MeetingProvider::stored`].
    pub fn from_stored(stored: Option<&str>) -> Self {
        match stored {
            None | Some("auto") => MeetingProvider::Auto,
            Some("jitsi") => MeetingProvider::Jitsi,
            Some(id) => MeetingProvider::Bridge(BridgeId::new(id)),
        }
    }
}

/// One member of a portal.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortalMember {
    /// The bridge.
    pub bridge: BridgeId,
    /// The channel on it.
    pub channel: ChannelId,
}

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call only where it is sent to the platform.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}
