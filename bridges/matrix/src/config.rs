//! How a Matrix bridge is configured: the homeserver, the application
//! service's tokens and namespaces, and the ghost and alias templates.

use std::fmt;
use switchboard_model::BridgeId;

/// A secret string (`as_token`, `hs_token`): never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Token(secret.into())
    }

    /// The secret itself, for the one place that sends or compares it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token([redacted])")
    }
}

/// A Matrix bridge's configuration.
#[derive(Debug, Clone)]
pub struct MatrixConfig {
    /// The bridge's id, e.g. `matrix:example`.
    pub id: BridgeId,
    /// The homeserver's client-server API base URL, e.g. `https://matrix.example.org`.
    pub homeserver_url: String,
    /// The homeserver's server name, e.g. `example.org`.
    pub server_name: String,
    /// The application service's id in the registration.
    pub appservice_id: String,
    /// The token the bridge sends to the homeserver.
    pub as_token: Token,
    /// The token the homeserver sends to the bridge (checked in constant time).
    pub hs_token: Token,
    /// The bridge bot's localpart (`sender_localpart`), e.g. `switchboard`.
    pub sender_localpart: String,
    /// Ghost localpart templates by platform (`slack` → `slack_{instance}_{user}`).
    /// `{instance}` is the part of the person's bridge id after `:`,
    /// `{user}` their user id there; both are lower-cased and reduced to the
    /// characters a Matrix localpart allows.
    pub ghost_templates: Vec<(String, String)>,
    /// Room alias localpart template for portals created on demand
    /// (`switchboard_{name}`).
    pub alias_template: String,
    /// Matrix users invited to every portal room the bridge creates.
    pub invite: Vec<String>,
    /// The largest file relayed, in bytes.
    pub max_upload: u64,
    /// The base URL at which the daemon's HTTP listener is reachable from
    /// Slack and Teams (e.g. `https://switchboard.example.org`), without a
    /// trailing `/`. When set, Matrix users' avatars are served through the
    /// bridge's signed media endpoint
    /// ([`MediaEndpoint`](crate::media_proxy::MediaEndpoint)), which fetches
    /// them with the `as_token`; when not set, avatars are the homeserver's
    /// thumbnail URLs, which load only where the homeserver serves media
    /// without authentication.
    pub public_url: Option<String>,
}

impl MatrixConfig {
    /// The bridge bot's full user id.
    pub fn bot_user_id(&self) -> String {
        format!("@{}:{}", self.sender_localpart, self.server_name)
    }
}

/// The default ghost templates: `slack_{instance}_{user}`,
/// `teams_{instance}_{user}`.
pub fn default_ghost_templates() -> Vec<(String, String)> {
    ["slack", "teams"]
        .iter()
        .map(|p| ((*p).to_owned(), format!("{p}_{{instance}}_{{user}}")))
        .collect()
}
