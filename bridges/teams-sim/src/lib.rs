//! A stateful, protocol-faithful Microsoft Graph (Teams) and identity-platform server for
//! tests and demos.
//!
//! [`TeamsSim::start`] binds a real HTTP server on loopback that behaves like the parts of
//! Microsoft Graph v1.0 a Teams bridge uses, as documented and as observed
//! (`conformance/teams/`):
//!
//! * the identity platform (`/{tenant}/oauth2/v2.0/token` and `/devicecode`): client
//!   credentials, the device-code flow and refresh tokens that rotate
//!   (<https://learn.microsoft.com/entra/identity-platform/v2-oauth2-device-code>);
//! * Graph: users, teams, channels, members, channel messages and replies, chat messages,
//!   edits, soft deletes, reactions, paging, delta, online meetings
//!   (<https://learn.microsoft.com/graph/api/resources/teams-api-overview>);
//! * change notifications: subscriptions with the validation handshake, delivery with
//!   retries, lifecycle notifications
//!   (<https://learn.microsoft.com/graph/teams-changenotifications-chatmessage>);
//! * throttling with 429 + `Retry-After`, and fault injection.
//!
//! The one rule that shapes a Teams bridge is enforced as Graph enforces it: posting,
//! editing, deleting or reacting as a person needs that person's **delegated** token; an
//! application token reads and subscribes, and its message POST is refused with Graph's
//! `401 Unauthorized` "Message POST is allowed in application-only context only for import
//! purposes…".
//!
//! A small admin API (`/_admin/…`, mirrored by methods on [`TeamsSim`]) does what only Teams
//! itself does: add people, teams and channels, run channel meetings, let a person finish a
//! device-code sign-in, inject faults. The simulator shares no code with the Switchboard
//! connector (`bridges/teams`), so connector bugs are not mirrored here.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use switchboard_teams_sim::{SimConfig, TeamsSim, seed::Seed};
//! let seed: Seed = serde_json::from_str(r#"{
//!   "users": [{"displayName": "Adele Vance", "userPrincipalName": "adele@contoso.test"}],
//!   "teams": [{"displayName": "Contoso", "members": ["adele@contoso.test"]}]}"#)?;
//! let sim = TeamsSim::start(SimConfig { seed: Some(seed), ..SimConfig::default() }).await?;
//! let adele = sim.delegated_token("adele@contoso.test")?;
//! // POST {graph_url}/teams/{team}/channels/{channel}/messages with adele's token…
//! # sim.shutdown().await; Ok(()) }
//! ```

pub mod admin;
pub mod auth;
pub mod directory;
pub mod graph;
pub mod limits;
pub mod notify;
pub mod rich;
pub mod seed;
pub mod state;
pub mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::limits::{Class, FaultConfig, Faults, Limiter, Mode};
use crate::seed::{ChannelSeed, ChatSeed, Seed, Seeded, TeamSeed, UserSeed};
use crate::state::{Principal, State, Token};
use crate::util::{GraphError, bearer, lock, now_ms};

/// How to start the simulator. `Default` gives Graph's documented timings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind; `127.0.0.1:0` when `None`.
    pub addr: Option<SocketAddr>,
    /// Tenant to load at start.
    pub seed: Option<Seed>,
    /// Throttling mode (off by default).
    pub rate_limit: Mode,
    /// Access-token lifetime (identity platform: 60–90 min; here 1 h).
    pub token_lifetime: Duration,
    /// How long a device code stays valid (15 min).
    pub device_code_lifetime: Duration,
    /// Minimum polling interval for device codes (5 s); faster polls get `slow_down`.
    pub device_code_interval: Duration,
    /// Time a notification endpoint has to answer the validation request (10 s).
    pub validation_timeout: Duration,
    /// Time a notification endpoint has to answer a notification (3 s).
    pub delivery_timeout: Duration,
    /// Delays before each redelivery of a failed notification; after the last, it is dropped.
    /// (Graph retries with backoff for up to 4 hours.)
    pub retry_delays: Vec<Duration>,
    /// Seed of the fault-injection random generator.
    pub fault_seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            addr: None,
            seed: None,
            rate_limit: Mode::Off,
            token_lifetime: Duration::from_secs(3600),
            device_code_lifetime: Duration::from_secs(900),
            device_code_interval: Duration::from_secs(5),
            validation_timeout: Duration::from_secs(10),
            delivery_timeout: Duration::from_secs(3),
            retry_delays: vec![
                Duration::from_secs(60),
                Duration::from_secs(300),
                Duration::from_secs(900),
                Duration::from_secs(3600),
            ],
            fault_seed: 0x5eed,
        }
    }
}

/// Timings fixed at start.
#[derive(Clone, Debug)]
pub struct Timing {
    /// See [`SimConfig::token_lifetime`].
    pub token_lifetime: Duration,
    /// See [`SimConfig::device_code_lifetime`].
    pub device_code_lifetime: Duration,
    /// See [`SimConfig::device_code_interval`].
    pub device_code_interval: Duration,
    /// See [`SimConfig::validation_timeout`].
    pub validation_timeout: Duration,
    /// See [`SimConfig::delivery_timeout`].
    pub delivery_timeout: Duration,
    /// See [`SimConfig::retry_delays`].
    pub retry_delays: Vec<Duration>,
}

/// Counters of what the simulator did.
#[derive(Debug, Default)]
pub struct Counters {
    /// Graph and identity requests that passed the gate.
    pub requests: AtomicU64,
    /// 429 answers.
    pub throttled: AtomicU64,
    /// Injected 503 answers.
    pub injected_5xx: AtomicU64,
    /// Answers lost to an injected broken connection.
    pub injected_disconnects: AtomicU64,
    /// Notification POST attempts (including retries and duplicates).
    pub notification_attempts: AtomicU64,
    /// Notifications answered 2xx.
    pub notifications_delivered: AtomicU64,
    /// Redelivery attempts.
    pub notifications_retried: AtomicU64,
    /// Notifications given up after the last retry.
    pub notifications_dropped: AtomicU64,
    /// Notifications dropped by fault injection.
    pub notifications_fault_dropped: AtomicU64,
    /// Notifications duplicated by fault injection.
    pub notifications_duplicated: AtomicU64,
    /// Lifecycle notifications sent.
    pub lifecycle_sent: AtomicU64,
}

/// A snapshot of [`Counters`].
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// See [`Counters::requests`].
    pub requests: u64,
    /// See [`Counters::throttled`].
    pub throttled: u64,
    /// See [`Counters::injected_5xx`].
    pub injected_5xx: u64,
    /// See [`Counters::injected_disconnects`].
    pub injected_disconnects: u64,
    /// See [`Counters::notification_attempts`].
    pub notification_attempts: u64,
    /// See [`Counters::notifications_delivered`].
    pub notifications_delivered: u64,
    /// See [`Counters::notifications_retried`].
    pub notifications_retried: u64,
    /// See [`Counters::notifications_dropped`].
    pub notifications_dropped: u64,
    /// See [`Counters::notifications_fault_dropped`].
    pub notifications_fault_dropped: u64,
    /// See [`Counters::notifications_duplicated`].
    pub notifications_duplicated: u64,
    /// See [`Counters::lifecycle_sent`].
    pub lifecycle_sent: u64,
}

impl Counters {
    /// Adds one.
    pub fn inc(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> CounterSnapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: g(&self.requests),
            throttled: g(&self.throttled),
            injected_5xx: g(&self.injected_5xx),
            injected_disconnects: g(&self.injected_disconnects),
            notification_attempts: g(&self.notification_attempts),
            notifications_delivered: g(&self.notifications_delivered),
            notifications_retried: g(&self.notifications_retried),
            notifications_dropped: g(&self.notifications_dropped),
            notifications_fault_dropped: g(&self.notifications_fault_dropped),
            notifications_duplicated: g(&self.notifications_duplicated),
            lifecycle_sent: g(&self.lifecycle_sent),
        }
    }
}

/// Shared simulator internals (one per running server).
#[derive(Debug)]
pub struct Sim {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The tenant.
    pub state: Mutex<State>,
    /// Throttling.
    pub limiter: Limiter,
    /// Fault injection.
    pub faults: Faults,
    /// Counters.
    pub counters: Counters,
    /// Timings.
    pub timing: Timing,
    /// Client for validation requests and notifications.
    pub http: reqwest::Client,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Tracks background tasks.
    pub tracker: TaskTracker,
}

impl Sim {
    /// Applies faults, authenticates the bearer token and counts the call against the
    /// throttling budgets. Every Graph handler starts here.
    pub async fn gate(&self, headers: &HeaderMap, class: Class) -> Result<Principal, GraphError> {
        let f = self.faults.get();
        if f.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
        }
        if self.faults.roll(f.error_rate) {
            Counters::inc(&self.counters.injected_5xx);
            return Err(GraphError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "Service unavailable. Please try again later.",
            ));
        }
        let principal = self.authenticate(headers)?;
        let mut keys = Vec::with_capacity(2);
        match &principal {
            Principal::App { client_id, .. } => keys.push(format!("app:{client_id}")),
            Principal::Delegated {
                client_id, user, ..
            } => {
                keys.push(format!("app:{client_id}"));
                keys.push(format!("user:{user}"));
            }
        }
        if let Err(e) = self.limiter.check(&keys, class) {
            Counters::inc(&self.counters.throttled);
            return Err(e);
        }
        Counters::inc(&self.counters.requests);
        Ok(principal)
    }

    /// Looks the bearer token up: 401 `InvalidAuthenticationToken` when it is missing,
    /// unknown or expired (bodies as observed, `observed-error-responses.json`).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, GraphError> {
        let unauth = |msg: &str| {
            GraphError::new(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                msg,
            )
            .with_header(
                "www-authenticate",
                format!(
                    "Bearer realm=\"\", authorization_uri=\"{}/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
                    self.base
                ),
            )
        };
        let Some(tok) = bearer(headers) else {
            return Err(unauth("Access token is empty."));
        };
        let st = lock(&self.state);
        match st.tokens.get(tok) {
            None => Err(unauth(
                "CompactToken parsing failed with error code: 80049217",
            )),
            Some(Token { expires_ms, .. }) if *expires_ms <= now_ms() => {
                Err(unauth("Access token has expired or is not yet valid."))
            }
            Some(t) => Ok(t.principal.clone()),
        }
    }

    /// Mints an access token.
    pub fn issue_token(&self, st: &mut State, principal: Principal) -> (String, u64) {
        let tok = format!("eyJ0eXAi.sim.{}", util::opaque(48));
        let secs = self.timing.token_lifetime.as_secs();
        st.tokens.insert(
            tok.clone(),
            Token {
                principal,
                expires_ms: now_ms()
                    + u64::try_from(self.timing.token_lifetime.as_millis()).unwrap_or(u64::MAX / 2),
            },
        );
        (tok, secs)
    }
}

/// Errors from seeding and admin operations.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SimError {
    /// The seed or request is inconsistent (unknown member, duplicate name, bad id…).
    #[error("invalid: {0}")]
    Invalid(String),
    /// Something named does not exist.
    #[error("not found: {0}")]
    NotFound(String),
}

/// A running simulator. Clones are handles on the same server; dropping them does not stop
/// it — call [`TeamsSim::shutdown`].
#[derive(Clone, Debug)]
pub struct TeamsSim {
    inner: Arc<Sim>,
    addr: SocketAddr,
    seeded: Seeded,
}

impl TeamsSim {
    /// Starts the server (on `127.0.0.1:0` unless `config.addr` says otherwise) and loads
    /// `config.seed`. A bad seed is an `InvalidInput` error.
    pub async fn start(config: SimConfig) -> std::io::Result<TeamsSim> {
        let addr = config
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base = format!("http://{addr}");
        let mut state = State::new(base.clone());
        let seeded = state
            .apply_seed(&config.seed.clone().unwrap_or_default())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(std::io::Error::other)?;
        let sim = Arc::new(Sim {
            base: base.clone(),
            state: Mutex::new(state),
            limiter: Limiter::new(config.rate_limit),
            faults: Faults::new(config.fault_seed),
            counters: Counters::default(),
            timing: Timing {
                token_lifetime: config.token_lifetime,
                device_code_lifetime: config.device_code_lifetime,
                device_code_interval: config.device_code_interval,
                validation_timeout: config.validation_timeout,
                delivery_timeout: config.delivery_timeout,
                retry_delays: config.retry_delays.clone(),
            },
            http,
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
        });
        let router = router(sim.clone());
        let stop = sim.shutdown.clone();
        sim.tracker.spawn(async move {
            let r = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
            if let Err(e) = r {
                tracing::warn!(error = %e, "Teams simulator server stopped with an error.");
            }
        });
        tracing::info!(base_url = %base, "Teams simulator listening.");
        Ok(TeamsSim {
            inner: sim,
            addr,
            seeded,
        })
    }

    /// Another handle on running internals (seeded names are not known here).
    pub(crate) fn from_inner(inner: Arc<Sim>) -> TeamsSim {
        let seeded = {
            let st = lock(&inner.state);
            Seeded {
                tenant_id: st.tenant_id.clone(),
                client_id: st.client_id.clone(),
                client_secret: st.client_secret.clone(),
                ..Seeded::default()
            }
        };
        let addr = inner
            .base
            .trim_start_matches("http://")
            .parse()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
        TeamsSim {
            inner,
            addr,
            seeded,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{base}/v1.0` — use where `https://graph.microsoft.com/v1.0` would go.
    pub fn graph_url(&self) -> String {
        format!("http://{}/v1.0", self.addr)
    }

    /// `{base}` — use where `https://login.microsoftonline.com` would go; the token endpoint
    /// is `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub fn login_url(&self) -> String {
        self.base_url()
    }

    /// `{login_url}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self) -> String {
        format!(
            "http://{}/{}/oauth2/v2.0/token",
            self.addr, self.seeded.tenant_id
        )
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the start-up seed created (tenant, app credentials, ids by name).
    pub fn seeded(&self) -> &Seeded {
        &self.seeded
    }

    /// Internals, for advanced use.
    pub fn inner(&self) -> &Arc<Sim> {
        &self.inner
    }

    /// A valid delegated token for a user (id or UPN) with the default delegated scopes —
    /// what a completed device-code sign-in gives. Lets tests act as people through the
    /// ordinary Graph API.
    pub fn delegated_token(&self, user: &str) -> Result<String, SimError> {
        let mut st = lock(&self.inner.state);
        let id = st
            .resolve_user(user)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {user:?}")))?;
        let p = Principal::Delegated {
            client_id: st.client_id.clone(),
            user: id,
            scopes: seed::DEFAULT_DELEGATED_SCOPES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        };
        Ok(self.inner.issue_token(&mut st, p).0)
    }

    /// A delegated token with exactly these scopes (to test scope errors).
    pub fn delegated_token_with_scopes(
        &self,
        user: &str,
        scopes: &[&str],
    ) -> Result<String, SimError> {
        let mut st = lock(&self.inner.state);
        let id = st
            .resolve_user(user)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {user:?}")))?;
        let p = Principal::Delegated {
            client_id: st.client_id.clone(),
            user: id,
            scopes: scopes.iter().map(|s| (*s).to_string()).collect(),
        };
        Ok(self.inner.issue_token(&mut st, p).0)
    }

    /// An application token (what client credentials give).
    pub fn app_token(&self) -> String {
        let mut st = lock(&self.inner.state);
        let p = Principal::App {
            client_id: st.client_id.clone(),
            roles: st.app_roles.clone(),
        };
        self.inner.issue_token(&mut st, p).0
    }

    /// Makes a token expire now. Returns whether it existed.
    pub fn expire_token(&self, token: &str) -> bool {
        let mut st = lock(&self.inner.state);
        match st.tokens.get_mut(token) {
            Some(t) => {
                t.expires_ms = 0;
                true
            }
            None => false,
        }
    }

    /// Revokes a person's sign-in sessions (user id or UPN), as an administrator's
    /// "revoke sessions" does: every refresh token issued to them is refused from now on
    /// with `invalid_grant`; with `access_tokens`, their delegated access tokens expire now
    /// too. Returns how many refresh and access tokens were revoked.
    pub fn revoke_tokens(
        &self,
        user: &str,
        access_tokens: bool,
    ) -> Result<(usize, usize), SimError> {
        let mut st = lock(&self.inner.state);
        let id = st
            .resolve_user(user)
            .map(|u| u.id.clone())
            .ok_or_else(|| SimError::NotFound(format!("user {user:?}")))?;
        let before = st.refresh.len();
        st.refresh.retain(|_, r| r.user != id);
        let refresh = before - st.refresh.len();
        let mut access = 0;
        if access_tokens {
            for t in st.tokens.values_mut() {
                if matches!(&t.principal, Principal::Delegated { user, .. } if *user == id)
                    && t.expires_ms > 0
                {
                    t.expires_ms = 0;
                    access += 1;
                }
            }
        }
        Ok((refresh, access))
    }

    /// "The user signs in": completes the device-code sign-in showing `user_code` as
    /// `user` (id or UPN).
    pub fn complete_device_code(&self, user_code: &str, user: &str) -> Result<(), SimError> {
        auth::complete_device_code(&self.inner, user_code, user, false)
    }

    /// "The user declines" the device-code sign-in.
    pub fn decline_device_code(&self, user_code: &str) -> Result<(), SimError> {
        auth::complete_device_code(&self.inner, user_code, "", true)
    }

    /// Adds a person; returns the id.
    pub fn add_user(&self, u: &UserSeed) -> Result<String, SimError> {
        lock(&self.inner.state).add_user(u)
    }

    /// Adds a team (with channels); returns the id.
    pub fn add_team(&self, t: &TeamSeed) -> Result<String, SimError> {
        lock(&self.inner.state).add_team(t)
    }

    /// Adds a channel; returns the id.
    pub fn add_channel(&self, team: &str, c: &ChannelSeed) -> Result<String, SimError> {
        lock(&self.inner.state).add_channel(team, c)
    }

    /// Adds a person to a team; returns the user id.
    pub fn add_team_member(&self, team: &str, user: &str, owner: bool) -> Result<String, SimError> {
        lock(&self.inner.state).add_team_member(team, user, owner)
    }

    /// Adds a chat; returns the id.
    pub fn add_chat(&self, c: &ChatSeed) -> Result<String, SimError> {
        lock(&self.inner.state).add_chat(c)
    }

    /// The one-on-one chat of `a` and `b` (ids or UPNs), created when they have none yet
    /// (as `POST /chats` does). Returns the chat id.
    pub fn direct_chat(&self, a: &str, b: &str) -> Result<String, SimError> {
        admin::direct_chat(&self.inner, a, b)
    }

    /// Posts an HTML message as `user` into `chat` (e.g. their [`TeamsSim::direct_chat`]
    /// with a service account) and notifies subscribers, as the person's own
    /// `POST /chats/{id}/messages` would. Returns the message id.
    pub fn post_chat_message_as(
        &self,
        user: &str,
        chat: &str,
        html: &str,
    ) -> Result<String, SimError> {
        admin::post_chat_message_as(&self.inner, user, chat, html)
    }

    /// Starts a channel meeting: posts a `callStartedEventMessageDetail` system message and
    /// notifies subscribers. Returns the message id.
    pub fn start_meeting(
        &self,
        team: &str,
        channel: &str,
        organizer: &str,
    ) -> Result<String, SimError> {
        admin::start_meeting(&self.inner, team, channel, organizer)
    }

    /// Ends the channel meeting: posts a `callEndedEventMessageDetail` system message.
    pub fn end_meeting(&self, team: &str, channel: &str) -> Result<String, SimError> {
        admin::end_meeting(&self.inner, team, channel)
    }

    /// Sends a lifecycle notification (`reauthorizationRequired`, `subscriptionRemoved`,
    /// `missed`) for a subscription; `subscriptionRemoved` also deletes it.
    pub async fn trigger_lifecycle(&self, subscription: &str, event: &str) -> Result<(), SimError> {
        notify::trigger_lifecycle(&self.inner, subscription, event).await
    }

    /// The current subscriptions, rendered as Graph does.
    pub fn subscriptions(&self) -> Vec<Value> {
        let st = lock(&self.inner.state);
        st.subscriptions.values().map(notify::render).collect()
    }

    /// Every online meeting created through `/me/onlineMeetings` or
    /// `createOrGet`, rendered as Graph does (`participants.organizer` names
    /// who organises it), oldest first.
    pub fn online_meetings(&self) -> Vec<Value> {
        let st = lock(&self.inner.state);
        let mut meetings: Vec<&state::OnlineMeeting> = st.online_meetings.values().collect();
        meetings.sort_by(|a, b| {
            let created = |m: &state::OnlineMeeting| {
                m.resource["creationDateTime"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            created(a).cmp(&created(b))
        });
        meetings.into_iter().map(|m| m.resource.clone()).collect()
    }

    /// Replaces the fault configuration.
    pub fn set_faults(&self, f: FaultConfig) {
        self.inner.faults.set(f);
    }

    /// Switches throttling mode.
    pub fn set_rate_limit_mode(&self, m: Mode) {
        self.inner.limiter.set_mode(m);
    }

    /// Reports every message stored from now on (people's and the app's,
    /// in every channel and chat) with the instant it was stored: for
    /// benchmarks that time a relay from one platform's store to another's.
    /// A later call replaces the earlier listener.
    pub fn tap_posts(&self) -> tokio::sync::mpsc::UnboundedReceiver<state::Posted> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        lock(&self.inner.state).tap = Some(tx);
        rx
    }

    /// Counter values.
    pub fn counters(&self) -> CounterSnapshot {
        self.inner.counters.snapshot()
    }

    /// Stops the server and every background task.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.tracker.wait()).await;
    }
}

/// Every route the simulator serves.
pub fn router(sim: Arc<Sim>) -> axum::Router {
    axum::Router::new()
        .merge(auth::routes())
        .merge(graph::routes())
        .merge(notify::routes())
        .merge(admin::routes())
        .fallback(|| async {
            GraphError::new(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Resource not found for the segment.",
            )
        })
        .layer(axum::middleware::from_fn_with_state(
            sim.clone(),
            lose_answers,
        ))
        .with_state(sim)
}

/// Fault injection: after a Graph call was carried out, sometimes break the
/// connection instead of answering ([`FaultConfig::disconnect_rate`]).
async fn lose_answers(
    axum::extract::State(sim): axum::extract::State<Arc<Sim>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let graph_call = request.uri().path().starts_with("/v1.0/");
    let response = next.run(request).await;
    let rate = sim.faults.get().disconnect_rate;
    if !graph_call || !sim.faults.roll(rate) {
        return response;
    }
    Counters::inc(&sim.counters.injected_disconnects);
    let (parts, _) = response.into_parts();
    let broken = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
            "injected: connection dropped",
        ))
    });
    axum::response::Response::from_parts(parts, axum::body::Body::from_stream(broken))
}
