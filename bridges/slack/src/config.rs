//! The connector's settings, built by the daemon from its validated
//! configuration (`[[bridge]] type = "slack"`).

use crate::web::Token;
use std::time::Duration;
use switchboard_model::BridgeId;

/// How events reach the connector.
#[derive(Debug, Clone)]
pub enum InboundMode {
    /// Socket Mode (https://docs.slack.dev/apis/events-api/using-socket-mode):
    /// the connector dials out; no public URL needed. Needs the app-level token.
    Socket {
        /// The `xapp-…` token with `connections:write`.
        app_token: Token,
    },
    /// The HTTP Events API: Slack POSTs signed requests to `path` on the
    /// daemon's listener (https://docs.slack.dev/apis/events-api/).
    Events {
        /// The app's signing secret.
        signing_secret: Token,
        /// Where the daemon serves the Request URL (`/slack/<name>/events`).
        path: String,
    },
}

/// Everything the Slack connector needs.
#[derive(Debug, Clone)]
pub struct SlackConfig {
    /// The bridge id (`slack:<name>`).
    pub id: BridgeId,
    /// The Web API base, `https://slack.com/api` (a simulator's in tests).
    pub api_base: String,
    /// The bot token (`xoxb-…`).
    pub bot_token: Token,
    /// Socket Mode or the Events API.
    pub mode: InboundMode,
    /// Client-side rate limiting (on, except against a simulator with limits off).
    pub rate_limits: bool,
    /// The largest file relayed, in bytes.
    pub max_upload: u64,
    /// The `metadata.event_type` marking our own posts.
    pub relay_marker: String,
    /// How long a Socket Mode connection may stay silent before it is
    /// considered dead (Slack pings; so do we).
    pub ping_interval: Duration,
    /// How long the workspace directory (`users.list`, searched by
    /// `find_people`) is reused before it is read again.
    pub directory_ttl: Duration,
    /// Linking people's own accounts from a chat (`login slack`): the app's
    /// OAuth settings and where Slack sends the browser back to.
    pub chat_login: Option<ChatLogin>,
}

/// What `login slack` from a chat needs: the app's OAuth client and the
/// daemon's public URL, under which the connector serves the redirect
/// (`{public_url}/slack/{name}/oauth`).
#[derive(Debug, Clone)]
pub struct ChatLogin {
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret.
    pub client_secret: Token,
    /// The authorize page, `https://slack.com/oauth/v2/authorize`.
    pub authorize_url: String,
    /// Where browsers reach the daemon's listener (no trailing `/`).
    pub public_url: String,
}

impl SlackConfig {
    /// Settings with the defaults for everything but the essentials.
    pub fn new(
        id: BridgeId,
        api_base: impl Into<String>,
        bot_token: Token,
        mode: InboundMode,
    ) -> Self {
        SlackConfig {
            id,
            api_base: api_base.into(),
            bot_token,
            mode,
            rate_limits: true,
            max_upload: 100 * 1024 * 1024,
            relay_marker: crate::events::DEFAULT_RELAY_MARKER.to_owned(),
            ping_interval: Duration::from_secs(10),
            directory_ttl: Duration::from_secs(300),
            chat_login: None,
        }
    }
}
