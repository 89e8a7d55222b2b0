//! Microsoft identity platform tokens for Microsoft Graph.
//!
//! - Application tokens: the OAuth 2.0 client-credentials grant with
//!   `scope=https://graph.microsoft.com/.default`; no refresh token is issued,
//!   so a new token is requested before the old one expires
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-client-creds-grant-flow>).
//! - Delegated (puppet) tokens: the device authorization grant — POST
//!   `/{tenant}/oauth2/v2.0/devicecode`, then poll `/token` every `interval`
//!   seconds, handling `authorization_pending`, `slow_down` (+5 s),
//!   `authorization_declined`, `expired_token`
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/v2-oauth2-device-code>).
//! - Refresh tokens (requested with `offline_access`) are redeemed with
//!   `grant_type=refresh_token`; the new refresh token replaces the old one,
//!   which the server may refuse afterwards with `invalid_grant`
//!   (<https://learn.microsoft.com/en-us/entra/identity-platform/refresh-tokens>).
//!
//! Identity-platform errors have the shape `{"error","error_description":
//! "AADSTSnnnn: …","error_codes":[n],…}` (protocols/teams.md §8). Secrets are
//! wrapped in [`Secret`], whose `Debug` never shows them.

use serde_json::Value;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_model::BridgeError;
use tokio::time::Instant;

/// The scope for application (client-credentials) tokens.
pub const GRAPH_DEFAULT_SCOPE: &str = "https://graph.microsoft.com/.default";

/// The delegated permissions a person's (or the service account's) sign-in
/// asks for: posting, editing, deleting and reacting in channels and chats,
/// online meetings for call invites, and `/me` for the account's id.
/// `offline_access` brings the refresh token that is stored.
pub const PERSON_SCOPES: &str = "offline_access ChannelMessage.Send ChatMessage.Send ChannelMessage.ReadWrite Chat.ReadWrite OnlineMeetings.ReadWrite User.Read";

/// How long before expiry a token is replaced at most (the rest of the rule
/// is "at 80 % of its lifetime", whichever comes first).
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// A token or client secret. `Debug` prints `Secret([redacted])`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Arc<str>);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(Arc::from(secret.into()))
    }

    /// The secret itself: only for sending it to Microsoft.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// An access token and when it stops working.
#[derive(Debug, Clone)]
pub struct AccessToken {
    /// The bearer token.
    pub token: Secret,
    /// When the identity platform says it expires.
    pub expires_at: Instant,
    /// When to replace it (5 minutes before expiry, or at 80 % of its
    /// lifetime, whichever is earlier).
    refresh_at: Instant,
}

impl AccessToken {
    /// A token valid for `lifetime` from now.
    pub fn new(token: Secret, lifetime: Duration) -> Self {
        let now = Instant::now();
        let margin = REFRESH_MARGIN.min(lifetime / 5);
        AccessToken {
            token,
            expires_at: now + lifetime,
            refresh_at: now + lifetime.saturating_sub(margin),
        }
    }

    /// A placeholder that is due for refresh at once.
    pub fn expired() -> Self {
        let now = Instant::now();
        AccessToken {
            token: Secret::new(""),
            expires_at: now,
            refresh_at: now,
        }
    }

    /// Whether it is time to get a new one.
    pub fn needs_refresh(&self) -> bool {
        Instant::now() >= self.refresh_at
    }
}

/// Why getting a token failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The refresh token (or device code) is no longer accepted
    /// (`invalid_grant`): the person must sign in again.
    #[error("re-authentication needed: {0}")]
    ReauthenticationRequired(String),
    /// The person declined the device-code sign-in.
    #[error("the sign-in was declined")]
    Declined,
    /// The device code expired before the person signed in.
    #[error("the device code expired before sign-in")]
    CodeExpired,
    /// Any other identity-platform error (`invalid_client`, `invalid_scope`…).
    #[error("identity platform answered HTTP {status} {error}: {description}")]
    Identity {
        /// HTTP status.
        status: u16,
        /// The `error` code.
        error: String,
        /// The `error_description` (AADSTS…).
        description: String,
    },
    /// The request did not complete, or the identity platform answered 5xx.
    #[error("identity platform unreachable: {0}")]
    Network(String),
    /// The answer could not be understood.
    #[error("identity platform answered something unexpected: {0}")]
    Decode(String),
}

impl From<AuthError> for BridgeError {
    fn from(e: AuthError) -> Self {
        let text = e.to_string();
        match e {
            AuthError::Network(_) => BridgeError::transient(text),
            AuthError::Identity { status, .. } if status >= 500 || status == 429 => {
                BridgeError::transient(text)
            }
            AuthError::Decode(_) => BridgeError::transient(text),
            AuthError::ReauthenticationRequired(_)
            | AuthError::Declined
            | AuthError::CodeExpired
            | AuthError::Identity { .. } => BridgeError::auth(text),
        }
    }
}

/// Where and as whom to ask for tokens.
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `https://login.microsoftonline.com` (or a simulator's login URL).
    pub login_base: String,
    /// The tenant id (or `organizations`).
    pub tenant: String,
    /// The app's client id.
    pub client_id: String,
    /// The app's client secret (needed for client credentials).
    pub client_secret: Option<Secret>,
}

impl IdentityConfig {
    fn endpoint(&self, what: &str) -> String {
        format!(
            "{}/{}/oauth2/v2.0/{what}",
            self.login_base.trim_end_matches('/'),
            self.tenant
        )
    }
}

/// The shared HTTP client for identity and Graph calls.
pub fn http_client() -> Result<reqwest::Client, BridgeError> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("switchboard/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| BridgeError::permanent(format!("cannot build the HTTP client: {e}")))
}

/// POSTs a form to an identity endpoint; returns the JSON body of a 2xx.
async fn post_form(
    http: &reqwest::Client,
    url: &str,
    fields: &[(&str, &str)],
) -> Result<Value, AuthError> {
    let response = http
        .post(url)
        .form(fields)
        .send()
        .await
        .map_err(|e| AuthError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .bytes()
        .await
        .map_err(|e| AuthError::Network(e.without_url().to_string()))?;
    let value: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        if value.is_object() {
            return Ok(value);
        }
        return Err(AuthError::Decode(
            "token answer is not a JSON object".into(),
        ));
    }
    let error = value
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let description = value
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if status >= 500 && error.is_empty() {
        return Err(AuthError::Network(format!("HTTP {status}")));
    }
    Err(AuthError::Identity {
        status,
        error,
        description,
    })
}

/// Reads `access_token` and `expires_in` from a token answer.
fn access_token(v: &Value) -> Result<AccessToken, AuthError> {
    let token = v
        .get("access_token")
        .and_then(Value::as_str)
        .ok_or_else(|| AuthError::Decode("no access_token".into()))?;
    let secs = v
        .get("expires_in")
        .and_then(|e| {
            e.as_u64()
                .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
        })
        .unwrap_or(3600);
    Ok(AccessToken::new(
        Secret::new(token),
        Duration::from_secs(secs),
    ))
}

/// Application (client-credentials) tokens for Graph, cached and replaced
/// before they expire. Concurrent callers share one request: the cache is
/// behind an async mutex held across the refresh.
#[derive(Debug)]
pub struct AppTokens {
    http: reqwest::Client,
    config: IdentityConfig,
    cache: tokio::sync::Mutex<Option<AccessToken>>,
    fetches: AtomicU64,
}

impl AppTokens {
    /// Tokens for the app described by `config` (which needs a client secret).
    pub fn new(http: reqwest::Client, config: IdentityConfig) -> Self {
        AppTokens {
            http,
            config,
            cache: tokio::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    /// A valid application token, from the cache unless it is due for
    /// replacement.
    pub async fn token(&self) -> Result<Secret, AuthError> {
        let mut cache = self.cache.lock().await;
        if let Some(t) = cache.as_ref().filter(|t| !t.needs_refresh()) {
            return Ok(t.token.clone());
        }
        let fresh = self.fetch().await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets the cached token (after Graph refused it).
    pub async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    /// How many times the token endpoint was asked.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    async fn fetch(&self) -> Result<AccessToken, AuthError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let secret = self
            .config
            .client_secret
            .as_ref()
            .map(Secret::expose)
            .unwrap_or("");
        let v = post_form(
            &self.http,
            &self.config.endpoint("token"),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &self.config.client_id),
                ("client_secret", secret),
                ("scope", GRAPH_DEFAULT_SCOPE),
            ],
        )
        .await?;
        tracing::debug!(tenant = %self.config.tenant, "Got an application token for Graph.");
        access_token(&v)
    }
}

/// A started device-code sign-in: show [`DeviceCode::message`] to the person.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    /// The code the person types.
    pub user_code: String,
    /// Where they type it.
    pub verification_uri: String,
    /// The ready-made instruction text.
    pub message: String,
    /// How often to poll.
    pub interval: Duration,
    /// How long the code stays valid.
    pub expires_in: Duration,
    device_code: Secret,
    started: Instant,
}

/// The result of one poll of the token endpoint.
#[derive(Debug)]
pub enum PollOutcome {
    /// `authorization_pending`: the person has not signed in yet.
    Pending,
    /// `slow_down`: poll less often (the interval grows by 5 s).
    SlowDown,
    /// Signed in.
    Done(DelegatedTokens),
}

/// A device-code sign-in for delegated (puppet) tokens.
#[derive(Debug, Clone)]
pub struct DeviceCodeLogin {
    http: reqwest::Client,
    config: IdentityConfig,
    graph_base: String,
    scopes: String,
}

impl DeviceCodeLogin {
    /// A sign-in asking for `scopes` (space-separated; `offline_access` is
    /// added so that a refresh token is issued). `graph_base` is
    /// `https://graph.microsoft.com/v1.0`, used for `GET /me`.
    pub fn new(
        http: reqwest::Client,
        config: IdentityConfig,
        graph_base: impl Into<String>,
        scopes: &str,
    ) -> Self {
        let mut scopes = scopes.trim().to_owned();
        if !scopes.split_whitespace().any(|s| s == "offline_access") {
            scopes.push_str(" offline_access");
        }
        DeviceCodeLogin {
            http,
            config,
            graph_base: graph_base.into().trim_end_matches('/').to_owned(),
            scopes: scopes.trim().to_owned(),
        }
    }

    /// POST `/devicecode`: starts a sign-in.
    pub async fn start(&self) -> Result<DeviceCode, AuthError> {
        let v = post_form(
            &self.http,
            &self.config.endpoint("devicecode"),
            &[
                ("client_id", &self.config.client_id),
                ("scope", &self.scopes),
            ],
        )
        .await?;
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| AuthError::Decode(format!("no {k} in the device-code answer")))
        };
        let n = |k: &str, default: u64| v.get(k).and_then(Value::as_u64).unwrap_or(default);
        Ok(DeviceCode {
            user_code: s("user_code")?,
            verification_uri: s("verification_uri")?,
            message: s("message")?,
            device_code: Secret::new(s("device_code")?),
            interval: Duration::from_secs(n("interval", 5).max(1)),
            expires_in: Duration::from_secs(n("expires_in", 900)),
            started: Instant::now(),
        })
    }

    /// Polls the token endpoint once.
    pub async fn poll_once(&self, code: &DeviceCode) -> Result<PollOutcome, AuthError> {
        let answer = post_form(
            &self.http,
            &self.config.endpoint("token"),
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("client_id", &self.config.client_id),
                ("device_code", code.device_code.expose()),
            ],
        )
        .await;
        let v = match answer {
            Ok(v) => v,
            Err(AuthError::Identity {
                error, description, ..
            }) => {
                return match error.as_str() {
                    "authorization_pending" => Ok(PollOutcome::Pending),
                    "slow_down" => Ok(PollOutcome::SlowDown),
                    "authorization_declined" => Err(AuthError::Declined),
                    "expired_token" => Err(AuthError::CodeExpired),
                    "bad_verification_code" | "invalid_grant" => {
                        Err(AuthError::ReauthenticationRequired(description))
                    }
                    _ => Err(AuthError::Identity {
                        status: 400,
                        error,
                        description,
                    }),
                };
            }
            Err(e) => return Err(e),
        };
        let tokens = self.tokens_from(&v).await?;
        Ok(PollOutcome::Done(tokens))
    }

    /// Polls every `interval` (growing by 5 s on `slow_down`) until the
    /// person signs in, declines, or the code expires.
    pub async fn poll(&self, code: &DeviceCode) -> Result<DelegatedTokens, AuthError> {
        let mut interval = code.interval;
        loop {
            if code.started.elapsed() >= code.expires_in {
                return Err(AuthError::CodeExpired);
            }
            tokio::time::sleep(interval).await;
            match self.poll_once(code).await? {
                PollOutcome::Pending => {}
                PollOutcome::SlowDown => interval += Duration::from_secs(5),
                PollOutcome::Done(tokens) => return Ok(tokens),
            }
        }
    }

    async fn tokens_from(&self, v: &Value) -> Result<DelegatedTokens, AuthError> {
        let access = access_token(v)?;
        let refresh_token = v
            .get("refresh_token")
            .and_then(Value::as_str)
            .map(Secret::new)
            .ok_or_else(|| AuthError::Decode("no refresh_token (offline_access)".into()))?;
        let user_id = me(&self.http, &self.graph_base, &access.token).await?;
        Ok(DelegatedTokens {
            access,
            refresh_token,
            user_id,
            http: self.http.clone(),
            config: self.config.clone(),
        })
    }
}

/// `GET /me` → the signed-in person's id.
async fn me(http: &reqwest::Client, graph_base: &str, token: &Secret) -> Result<String, AuthError> {
    let response = http
        .get(format!("{graph_base}/me"))
        .bearer_auth(token.expose())
        .send()
        .await
        .map_err(|e| AuthError::Network(e.without_url().to_string()))?;
    let status = response.status().as_u16();
    let v: Value = response
        .json()
        .await
        .map_err(|e| AuthError::Decode(e.without_url().to_string()))?;
    if !(200..300).contains(&status) {
        return Err(AuthError::Identity {
            status,
            error: "graph_me_failed".into(),
            description: format!("GET /me answered HTTP {status}"),
        });
    }
    v.get("id")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| AuthError::Decode("GET /me has no id".into()))
}

/// A person's delegated tokens: what puppeting needs to keep.
///
/// Keep exactly one live copy per person and persist [`Self::refresh_token`]
/// after every [`Self::refresh`]: refresh tokens rotate, so a stale clone's
/// refresh token is refused (`invalid_grant`).
#[derive(Debug, Clone)]
pub struct DelegatedTokens {
    /// The current access token.
    pub access: AccessToken,
    /// The current refresh token (rotated on every refresh).
    pub refresh_token: Secret,
    /// The person's Entra user id (from `GET /me`).
    pub user_id: String,
    http: reqwest::Client,
    config: IdentityConfig,
}

impl DelegatedTokens {
    /// Tokens resumed from a stored refresh token: the first
    /// [`Self::token`] redeems it (and rotates it).
    pub fn resume(
        http: reqwest::Client,
        config: IdentityConfig,
        user_id: impl Into<String>,
        refresh_token: Secret,
    ) -> Self {
        DelegatedTokens {
            access: AccessToken::expired(),
            refresh_token,
            user_id: user_id.into(),
            http,
            config,
        }
    }

    /// Redeems the refresh token for a new access token and stores the new
    /// refresh token (the old one is refused from now on). `invalid_grant`
    /// becomes [`AuthError::ReauthenticationRequired`].
    ///
    /// No client secret is sent: these tokens come from the device-code
    /// flow, a public-client flow, and Entra refuses a secret on their
    /// refresh (AADSTS700025).
    pub async fn refresh(&mut self) -> Result<(), AuthError> {
        let fields = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.config.client_id.as_str()),
            ("refresh_token", self.refresh_token.expose()),
        ];
        let v = match post_form(&self.http, &self.config.endpoint("token"), &fields).await {
            Ok(v) => v,
            Err(AuthError::Identity {
                error, description, ..
            }) if error == "invalid_grant" || error == "interaction_required" => {
                return Err(AuthError::ReauthenticationRequired(description));
            }
            Err(e) => return Err(e),
        };
        let access = access_token(&v)?;
        if let Some(rt) = v.get("refresh_token").and_then(Value::as_str) {
            self.refresh_token = Secret::new(rt);
        }
        self.access = access;
        tracing::debug!(user = %self.user_id, "Refreshed a delegated token.");
        Ok(())
    }

    /// A valid access token, refreshing first if it is due.
    pub async fn token(&mut self) -> Result<Secret, AuthError> {
        if self.access.needs_refresh() {
            self.refresh().await?;
        }
        Ok(self.access.token.clone())
    }
}
