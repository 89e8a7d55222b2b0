//! A stateful, protocol-faithful Slack server for tests and demos.
//!
//! [`SlackSim::start`] binds a real HTTP + WebSocket server on loopback that behaves like
//! Slack as documented: the Web API at `{base}/api/{method}` (form, JSON and query
//! arguments, Slack's `ok`/`error` envelope, scopes, pagination, tier rate limits), Socket
//! Mode behind `apps.connections.open`, Events API push to a request URL with signatures and
//! retries, OAuth v2 installs, and the events Slack generates for every change (messages,
//! edits, tombstones, reactions, joins, huddles). A small admin API (`/_admin/…`, mirrored by
//! methods on [`SlackSim`]) does what only Slack itself does: create people and channels,
//! issue tokens, run huddles, set rate-limit modes and inject faults.
//!
//! The simulator is an independent reading of Slack's documentation and real payloads
//! (`conformance/slack/`); it shares no code with the Switchboard connector, so connector
//! bugs are not mirrored here.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use switchboard_slack_sim::{SimConfig, SlackSim, seed::Seed};
//! let seed: Seed = serde_json::from_str(r#"{"users":[{"name":"alice"}],
//!     "channels":[{"name":"general","members":["alice","@bot"]}]}"#)?;
//! let sim = SlackSim::start(SimConfig { seed: Some(seed), ..SimConfig::default() }).await?;
//! let alice_token = sim.seeded().user_tokens["alice"].clone();
//! // POST {base}/api/chat.postMessage with alice_token, connect Socket Mode with the xapp token…
//! # sim.shutdown().await; Ok(()) }
//! ```

pub mod admin;
pub mod commands;
pub mod events;
pub mod faults;
pub mod ids;
pub mod push;
pub mod ratelimit;
pub mod render;
pub mod richtext;
pub mod seed;
pub mod server;
pub mod socket;
pub mod state;
pub mod web;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::events::{Counters, DeliveryConfig, Emit, Hub, Outbound};
use crate::faults::{FaultConfig, Faults};
use crate::ids::{app_token, bot_token, now_secs, slack_id, user_token};
use crate::ratelimit::{Body429, Mode, RateLimiter};
use crate::seed::{
    ChannelSeed, DEFAULT_BOT_SCOPES, Seed, Seeded, UserSeed, UserTokensKeyword, UserTokensSeed,
};
use crate::state::{Channel, Kind, Principal, State, Token, Topic, User};

/// Locks a mutex, recovering the data if a previous holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How to start the simulator. `Default` gives Slack's documented timings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Address to bind; `127.0.0.1:0` when `None`.
    pub addr: Option<SocketAddr>,
    /// Workspace to load at start.
    pub seed: Option<Seed>,
    /// Rate-limit mode (off by default).
    pub rate_limit: Mode,
    /// Body of 429 answers.
    pub rate_limit_body: Body429,
    /// Socket Mode ack deadline before redelivery (Slack: 3 s).
    pub ack_timeout: Duration,
    /// Redeliveries before an unacknowledged event is dropped (Slack: 3).
    pub max_retries: u32,
    /// Time the request URL has to answer (Slack: 3 s).
    pub push_timeout: Duration,
    /// Delay before each push retry (Slack: at once, 1 min, 5 min).
    pub push_retry_delays: Vec<Duration>,
    /// Concurrent Socket Mode connections allowed (Slack: 10).
    pub max_socket_connections: usize,
    /// After a `warning` disconnect frame, how long until the socket is closed (Slack: ~10 s).
    pub warning_close_after: Duration,
    /// Events held while nothing is connected; beyond this they are dropped.
    pub offline_queue_cap: usize,
    /// Seed of the fault-injection random generator.
    pub fault_seed: u64,
    /// When set, `/_admin/…` requires `Authorization: Bearer <admin_token>`.
    pub admin_token: Option<String>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            addr: None,
            seed: None,
            rate_limit: Mode::Off,
            rate_limit_body: Body429::Json,
            ack_timeout: Duration::from_secs(3),
            max_retries: 3,
            push_timeout: Duration::from_secs(3),
            push_retry_delays: vec![
                Duration::ZERO,
                Duration::from_secs(60),
                Duration::from_secs(300),
            ],
            max_socket_connections: 10,
            warning_close_after: Duration::from_secs(10),
            offline_queue_cap: 10_000,
            fault_seed: 0x5eed,
            admin_token: None,
        }
    }
}

/// Runtime options outside the hub.
#[derive(Debug)]
pub(crate) struct Options {
    pub max_socket_connections: usize,
    pub warning_close_after: Duration,
    pub admin_token: Option<String>,
}

/// Shared simulator internals (one per running server).
#[derive(Debug)]
pub struct Sim {
    /// The bound address.
    pub addr: SocketAddr,
    /// The workspace.
    pub state: Mutex<State>,
    /// Event delivery.
    pub hub: Arc<Hub>,
    /// Rate limits.
    pub limits: RateLimiter,
    /// Fault injection.
    pub faults: Faults,
    /// Counters.
    pub counters: Arc<Counters>,
    pub(crate) options: Mutex<Options>,
    /// Everything seeded so far.
    pub(crate) seeded: Mutex<Seeded>,
    /// Cancelled at shutdown.
    pub shutdown: CancellationToken,
    /// Tracks background tasks.
    pub tracker: TaskTracker,
}

impl Sim {
    /// Runs a state change and delivers the events it produced (in order) to the app.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut State, &mut Vec<Emit>) -> R) -> R {
        let mut st = lock(&self.state);
        let mut out = Vec::new();
        let r = f(&mut st, &mut out);
        for e in &out {
            if e.visible {
                let payload = events::wrap(&st, e);
                self.hub.emit(payload);
            }
        }
        r
    }

    /// Sends a `disconnect` frame to every open socket; sockets are closed after the grace
    /// period (`warning`) or at once (other reasons). Returns how many got the frame.
    pub fn disconnect_sockets(&self, reason: &str) -> usize {
        let app_id = lock(&self.state).app.id.clone();
        let frame = socket::disconnect_frame(reason, &app_id, None);
        let ids = self.hub.broadcast(|| Outbound::Text(frame.clone()));
        let delay = if reason == "warning" {
            lock(&self.options).warning_close_after
        } else {
            Duration::from_millis(50)
        };
        let hub = self.hub.clone();
        let close_ids = ids.clone();
        self.hub.spawn(async move {
            tokio::time::sleep(delay).await;
            hub.close(&close_ids);
        });
        ids.len()
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
/// it — call [`SlackSim::shutdown`].
#[derive(Clone, Debug)]
pub struct SlackSim {
    inner: Arc<Sim>,
    addr: SocketAddr,
    seeded: Seeded,
}

/// Counter values (see [`events::Counters`]).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Events wrapped and queued for delivery.
    pub events_emitted: u64,
    /// Events acknowledged.
    pub events_delivered: u64,
    /// Redelivery attempts.
    pub events_redelivered: u64,
    /// Events given up.
    pub events_dropped: u64,
    /// Socket Mode envelopes sent.
    pub envelopes_sent: u64,
    /// Request URL POSTs.
    pub push_attempts: u64,
    /// 429 answers.
    pub ratelimited: u64,
    /// Injected 5xx answers.
    pub injected_5xx: u64,
    /// Refused connections.
    pub connections_refused: u64,
    /// Connections dropped mid-request.
    pub connections_dropped: u64,
    /// Socket Mode connections opened.
    pub sockets_opened: u64,
    /// Sockets refused with `too_many_websockets`.
    pub sockets_refused: u64,
}

impl SlackSim {
    /// Starts the server (on `127.0.0.1:0` unless `config.addr` says otherwise) and loads
    /// `config.seed` (or a default workspace with the app installed).
    pub async fn start(config: SimConfig) -> std::io::Result<SlackSim> {
        let addr = config
            .addr
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let counters = Arc::new(Counters::default());
        let hub = Arc::new(Hub::new(
            DeliveryConfig {
                ack_timeout: config.ack_timeout,
                max_retries: config.max_retries,
                push_timeout: config.push_timeout,
                push_retry_delays: config.push_retry_delays.clone(),
                offline_queue_cap: config.offline_queue_cap,
            },
            counters.clone(),
            tracker.clone(),
            shutdown.clone(),
        ));
        let sim = Arc::new(Sim {
            addr,
            state: Mutex::new(State::new(base_url)),
            hub,
            limits: RateLimiter::new(config.rate_limit, config.rate_limit_body),
            faults: Faults::new(config.fault_seed),
            counters,
            options: Mutex::new(Options {
                max_socket_connections: config.max_socket_connections,
                warning_close_after: config.warning_close_after,
                admin_token: config.admin_token.clone(),
            }),
            seeded: Mutex::new(Seeded::default()),
            shutdown,
            tracker,
        });
        let seed = config.seed.clone().unwrap_or_default();
        let seeded = apply_seed(&sim, &seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let router = server::router(sim.clone());
        let srv = sim.clone();
        sim.tracker.spawn(server::serve(listener, router, srv));
        tracing::info!(base_url = %format!("http://{addr}"), "Slack simulator listening.");
        Ok(SlackSim {
            inner: sim,
            addr,
            seeded,
        })
    }

    /// Another handle on a running simulator's internals.
    pub(crate) fn from_inner(inner: Arc<Sim>) -> SlackSim {
        let seeded = lock(&inner.seeded).clone();
        SlackSim {
            addr: inner.addr,
            inner,
            seeded,
        }
    }

    /// `http://127.0.0.1:PORT` — the Web API is at `{base_url}/api/{method}`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `{base_url}/api/{method}`.
    pub fn api_url(&self, method: &str) -> String {
        format!("http://{}/api/{method}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the start-up seed created (ids and tokens).
    pub fn seeded(&self) -> &Seeded {
        &self.seeded
    }

    /// Everything seeded so far, including later [`SlackSim::seed`] calls.
    pub fn all_seeded(&self) -> Seeded {
        lock(&self.inner.seeded).clone()
    }

    /// Internals, for in-crate tests and advanced use.
    pub fn inner(&self) -> &Arc<Sim> {
        &self.inner
    }

    /// Loads more of a workspace (people, channels, tokens) into the running simulator.
    /// Like the start-up seed, it sends no events: it describes how things already were.
    pub fn seed(&self, seed: &Seed) -> Result<Seeded, SimError> {
        apply_seed(&self.inner, seed)
    }

    /// Creates a person (or bot user) now; returns the id. No event is sent (Slack sends
    /// `team_join` only to apps subscribed to it, which this simulator does not model).
    pub fn add_user(&self, spec: UserSeed) -> Result<String, SimError> {
        let mut st = lock(&self.inner.state);
        let u = build_user(&st, &spec)?;
        let id = st.add_user(u);
        lock(&self.inner.seeded).users.insert(spec.name, id.clone());
        Ok(id)
    }

    /// Creates a channel now (`channel_created` for public channels, then the joins, each a
    /// `channel_join` message and `member_joined_channel`). Returns the id.
    pub fn add_channel(&self, spec: ChannelSeed) -> Result<String, SimError> {
        let name = spec.name.clone();
        let id = self.inner.mutate(|st, out| {
            let (ch, members) = build_channel(st, &spec)?;
            Ok::<_, SimError>(st.add_channel(ch, &members, out))
        })?;
        lock(&self.inner.seeded).channels.insert(name, id.clone());
        Ok(id)
    }

    /// Adds a member (as an admin or an invite would); `inviter` appears in the events.
    pub fn join_channel(
        &self,
        channel: &str,
        user: &str,
        inviter: Option<&str>,
    ) -> Result<bool, SimError> {
        self.inner.mutate(|st, out| {
            let user = resolve_user_id(st, user)?;
            let inviter = inviter.map(|i| resolve_user_id(st, i)).transpose()?;
            st.channel(channel)
                .ok_or_else(|| SimError::NotFound(channel.into()))?;
            Ok(st.join(channel, &user, inviter.as_deref(), out))
        })
    }

    /// Removes a member (`member_left_channel`).
    pub fn leave_channel(&self, channel: &str, user: &str) -> Result<bool, SimError> {
        self.inner.mutate(|st, out| {
            let user = resolve_user_id(st, user)?;
            st.channel(channel)
                .ok_or_else(|| SimError::NotFound(channel.into()))?;
            Ok(st.leave(channel, &user, out))
        })
    }

    /// Renames a channel (`channel_rename`).
    pub fn rename_channel(&self, channel: &str, name: &str) -> Result<(), SimError> {
        self.inner.mutate(|st, out| {
            if st.rename(channel, name, out) {
                Ok(())
            } else {
                Err(SimError::NotFound(channel.into()))
            }
        })
    }

    /// Archives or unarchives a channel.
    pub fn set_archived(&self, channel: &str, archived: bool) -> Result<(), SimError> {
        let mut st = lock(&self.inner.state);
        let ch = st
            .channel_mut(channel)
            .ok_or_else(|| SimError::NotFound(channel.into()))?;
        ch.archived = archived;
        Ok(())
    }

    /// Changes a person's profile (`user_change`).
    pub fn update_user(&self, user: &str, patch: UserPatch) -> Result<(), SimError> {
        self.inner.mutate(|st, out| {
            let id = resolve_user_id(st, user)?;
            let u = st
                .user_mut(&id)
                .ok_or_else(|| SimError::NotFound(user.into()))?;
            if let Some(v) = patch.real_name {
                u.real_name = v;
            }
            if let Some(v) = patch.display_name {
                u.display_name = v;
            }
            if let Some(v) = patch.avatar_url {
                u.avatar_url = Some(v);
            }
            if let Some(v) = patch.deleted {
                u.deleted = v;
            }
            u.updated = now_secs();
            st.emit_user_change(&id, false, out);
            Ok(())
        })
    }

    /// Issues a user token for a person, as installing the app with user scopes would.
    /// `scopes` defaults to the app's user scopes.
    pub fn issue_user_token(
        &self,
        user: &str,
        scopes: Option<&[&str]>,
    ) -> Result<String, SimError> {
        let mut st = lock(&self.inner.state);
        let id = resolve_user_id(&st, user)?;
        let scopes: Vec<String> = match scopes {
            Some(s) => s.iter().map(|s| s.to_string()).collect(),
            None => st.app.user_scopes.clone(),
        };
        let token = user_token();
        st.tokens.insert(
            token.clone(),
            Token {
                principal: Principal::User(id),
                scopes: sorted(scopes),
                revoked: false,
            },
        );
        Ok(token)
    }

    /// Revokes a token (`token_revoked` afterwards).
    pub fn revoke_token(&self, token: &str) -> Result<(), SimError> {
        let mut st = lock(&self.inner.state);
        let t = st
            .tokens
            .get_mut(token)
            .ok_or_else(|| SimError::NotFound("token".into()))?;
        t.revoked = true;
        Ok(())
    }

    /// Replaces the bot token's scopes (a reinstall with other scopes).
    pub fn set_bot_scopes(&self, scopes: &[&str]) {
        let mut st = lock(&self.inner.state);
        for t in st
            .tokens
            .values_mut()
            .filter(|t| t.principal == Principal::Bot)
        {
            t.scopes = sorted(scopes.iter().map(|s| s.to_string()).collect());
        }
    }

    /// Starts a huddle in `channel` by `user`: the `huddle_thread` message from Slackbot and
    /// `user_huddle_changed` + `user_change`. Returns (huddle id, message ts).
    pub fn start_huddle(&self, channel: &str, user: &str) -> Result<(String, String), SimError> {
        self.inner.mutate(|st, out| {
            let user = resolve_user_id(st, user)?;
            st.start_huddle(channel, &user, out)
                .map(|(id, ts)| (id, ts.to_string()))
                .ok_or_else(|| SimError::NotFound(channel.into()))
        })
    }

    /// Adds a person to a live huddle.
    pub fn join_huddle(&self, huddle: &str, user: &str) -> Result<(), SimError> {
        self.inner.mutate(|st, out| {
            let user = resolve_user_id(st, user)?;
            st.join_huddle(huddle, &user, out)
                .ok_or_else(|| SimError::NotFound(huddle.into()))
        })
    }

    /// Ends a huddle: the huddle_thread message is edited by Slackbot (`message_changed`)
    /// and participants' huddle state resets.
    pub fn end_huddle(&self, huddle: &str) -> Result<(), SimError> {
        self.inner.mutate(|st, out| {
            st.end_huddle(huddle, out)
                .ok_or_else(|| SimError::NotFound(huddle.into()))
        })
    }

    /// The IM between `user` (a name or id) and the app's bot user, opened as Slack opens it
    /// when the person first visits the app's Messages tab (no event), or the one they have.
    pub fn app_im(&self, user: &str) -> Result<String, SimError> {
        let mut st = lock(&self.inner.state);
        let user = resolve_user_id(&st, user)?;
        let bot = st.app.bot_user_id.clone();
        Ok(st.open_im(&user, &bot).0)
    }

    /// `user` writes `text` to the app in its Messages tab (what people do only in Slack's own
    /// clients): a message of theirs in their IM with the bot (with a `client_msg_id` and a
    /// `rich_text` block, as clients send), which the app receives as a `message` event with
    /// `channel_type: "im"` when it subscribes to `message.im` and holds `im:history`.
    /// Returns the IM's id and the message's `ts`. Deactivated people cannot write.
    pub fn message_app(&self, user: &str, text: &str) -> Result<(String, String), SimError> {
        self.inner.mutate(|st, out| {
            let user = resolve_user_id(st, user)?;
            if st.user(&user).is_some_and(|u| u.deleted) {
                return Err(SimError::Invalid(format!("user {user} is deactivated")));
            }
            let bot = st.app.bot_user_id.clone();
            let (im, _) = st.open_im(&user, &bot);
            let mut nm = state::NewMessage::text(state::Author::User(user), text);
            nm.client_msg_id = Some(crate::ids::uuid_v4());
            let ts = st
                .post(&im, nm, out)
                .ok_or_else(|| SimError::NotFound(im.clone()))?;
            Ok((im, ts.to_string()))
        })
    }

    /// What `user` sees in their IM with the app's bot, oldest first (as [`SlackSim::messages`]):
    /// what they wrote, the app's answers and what it relayed there with a `username` and
    /// icon. Empty when they have no such IM.
    pub fn app_im_messages(&self, user: &str) -> Result<Vec<Value>, SimError> {
        let im = {
            let st = lock(&self.inner.state);
            let user = resolve_user_id(&st, user)?;
            let bot = st.app.bot_user_id.clone();
            st.channels
                .iter()
                .find(|c| {
                    c.kind == Kind::Im
                        && c.members.len() == 2
                        && c.is_member(&user)
                        && c.is_member(&bot)
                })
                .map(|c| c.id.clone())
        };
        Ok(im.map(|im| self.messages(&im)).unwrap_or_default())
    }

    /// `user` types `/command text` in `channel` (what people do only in Slack's own
    /// clients); the app gets it over Socket Mode or at its request URL (see
    /// [`commands`]). Returns the invocation's `trigger_id`. Fails when the person is not in
    /// the channel or the app does not declare the command.
    pub fn run_slash_command(
        &self,
        channel: &str,
        user: &str,
        command: &str,
        text: &str,
    ) -> Result<String, SimError> {
        commands::run(&self.inner, channel, user, command, text)
    }

    /// Sends a Socket Mode command's envelope again with the same `envelope_id`, as after an
    /// ack Slack did not get.
    pub fn redeliver_slash_command(&self, trigger_id: &str) -> Result<(), SimError> {
        commands::redeliver(&self.inner, trigger_id)
    }

    /// Every slash command invocation so far, oldest first.
    pub fn slash_commands(&self) -> Vec<commands::SlashCommand> {
        lock(&self.inner.hub.commands).clone()
    }

    /// One invocation by its `trigger_id`.
    pub fn slash_command(&self, trigger_id: &str) -> Option<commands::SlashCommand> {
        lock(&self.inner.hub.commands)
            .iter()
            .find(|c| c.trigger_id == trigger_id)
            .cloned()
    }

    /// Waits until the invocation is acknowledged or failed, and returns it; None on
    /// timeout or for an unknown id.
    pub async fn wait_for_slash_command(
        &self,
        trigger_id: &str,
        timeout: Duration,
    ) -> Option<commands::SlashCommand> {
        let done = |s: &SlackSim| {
            s.slash_command(trigger_id)
                .is_some_and(|c| c.outcome != commands::CommandOutcome::Pending)
        };
        if self.wait_until(done, timeout).await {
            self.slash_command(trigger_id)
        } else {
            None
        }
    }

    /// Sets the rate-limit mode (and forgets past calls).
    pub fn set_rate_limit_mode(&self, mode: Mode) {
        self.inner.limits.set_mode(mode);
    }

    /// Sets what 429 answers carry.
    pub fn set_rate_limit_body(&self, body: Body429) {
        self.inner.limits.set_body(body);
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: FaultConfig) {
        self.inner.faults.set(faults);
    }

    /// Refuses every new connection for `d`.
    pub fn refuse_connections_for(&self, d: Duration) {
        self.inner.faults.refuse_for(d);
    }

    /// Sends a Socket Mode `disconnect` frame (`warning`, `refresh_requested`, …) to every
    /// open socket; returns how many.
    pub fn disconnect_sockets(&self, reason: &str) -> usize {
        self.inner.disconnect_sockets(reason)
    }

    /// Open Socket Mode connections.
    pub fn socket_count(&self) -> usize {
        self.inner.hub.socket_count()
    }

    /// Sets the Events API request URL after a successful `url_verification` handshake, or
    /// clears it (`None`, back to Socket Mode). Events held meanwhile are then delivered.
    pub async fn set_request_url(&self, url: Option<&str>) -> Result<(), String> {
        set_request_url(&self.inner, url).await
    }

    /// Changes delivery timings at run time.
    pub fn set_delivery(
        &self,
        ack_timeout: Duration,
        max_retries: u32,
        push_timeout: Duration,
        push_retry_delays: Vec<Duration>,
    ) {
        let mut c = lock(&self.inner.hub.config);
        c.ack_timeout = ack_timeout;
        c.max_retries = max_retries;
        c.push_timeout = push_timeout;
        c.push_retry_delays = push_retry_delays;
    }

    /// Reports every message stored from now on (people's and the app's, in
    /// every channel) with the instant it was stored: for benchmarks that
    /// time a relay from one platform's store to another's. A later call
    /// replaces the earlier listener.
    pub fn tap_posts(&self) -> tokio::sync::mpsc::UnboundedReceiver<state::Posted> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        lock(&self.inner.state).tap = Some(tx);
        rx
    }

    /// Current counters.
    pub fn counters(&self) -> CounterSnapshot {
        counters(&self.inner)
    }

    /// Waits until `n` Socket Mode connections are open (say, after starting a connector);
    /// false on timeout.
    pub async fn wait_for_sockets(&self, n: usize, timeout: Duration) -> bool {
        self.wait_until(|s| s.socket_count() >= n, timeout).await
    }

    /// Waits until the counters satisfy `pred` (say, every emitted event acknowledged);
    /// false on timeout.
    pub async fn wait_for_counters(
        &self,
        pred: impl Fn(&CounterSnapshot) -> bool,
        timeout: Duration,
    ) -> bool {
        self.wait_until(|s| pred(&s.counters()), timeout).await
    }

    async fn wait_until(&self, pred: impl Fn(&SlackSim) -> bool, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(self) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A channel's messages as `conversations.history` would render them, oldest first
    /// (thread replies included) — for assertions, not a Slack API.
    pub fn messages(&self, channel: &str) -> Vec<Value> {
        let st = lock(&self.inner.state);
        let Some(ch) = st.channel(channel) else {
            return Vec::new();
        };
        ch.messages
            .values()
            .map(|m| Value::Object(render::message(&st, ch, m, render::For::Api)))
            .collect()
    }

    /// Stops the server and every background task.
    pub async fn shutdown(self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.inner.tracker.wait()).await;
    }
}

/// A profile change for [`SlackSim::update_user`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserPatch {
    /// New full name.
    pub real_name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New avatar URL.
    pub avatar_url: Option<String>,
    /// Deactivate / reactivate.
    pub deleted: Option<bool>,
}

pub(crate) fn counters(sim: &Sim) -> CounterSnapshot {
    serde_json::from_value(sim.counters.snapshot()).unwrap_or_default()
}

pub(crate) async fn set_request_url(sim: &Arc<Sim>, url: Option<&str>) -> Result<(), String> {
    let (secret, vt) = {
        let st = lock(&sim.state);
        (
            st.app.signing_secret.clone(),
            st.app.verification_token.clone(),
        )
    };
    match url {
        None => {
            sim.hub.set_push_url(None, secret);
            Ok(())
        }
        Some(u) => {
            push::verify_url(&sim.hub, u, &secret, &vt).await?;
            sim.hub.set_push_url(Some(u.to_string()), secret);
            Ok(())
        }
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn resolve_user_id(st: &State, key: &str) -> Result<String, SimError> {
    st.resolve_user(key)
        .map(|u| u.id.clone())
        .ok_or_else(|| SimError::NotFound(format!("user {key}")))
}

fn check_id(id: &str, prefixes: &[char], what: &str) -> Result<(), SimError> {
    let ok = id.len() >= 3
        && id.starts_with(prefixes)
        && id[1..]
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(SimError::Invalid(format!(
            "{what} id {id:?} must start with one of {prefixes:?} followed by upper-case letters or digits"
        )))
    }
}

fn build_user(st: &State, spec: &UserSeed) -> Result<User, SimError> {
    if spec.name.trim().is_empty() {
        return Err(SimError::Invalid("user name is empty".into()));
    }
    if st.users.iter().any(|u| u.name == spec.name) {
        return Err(SimError::Invalid(format!(
            "user name {:?} is taken",
            spec.name
        )));
    }
    let id = match &spec.id {
        Some(id) => {
            check_id(id, &['U', 'W'], "user")?;
            if st.user_exists(id) {
                return Err(SimError::Invalid(format!("user id {id} is taken")));
            }
            id.clone()
        }
        None => slack_id("U"),
    };
    let colors = ["9f69e7", "4bbe2e", "e7392d", "3c989f", "674b1b", "e96699"];
    Ok(User {
        id,
        name: spec.name.clone(),
        real_name: spec.real_name.clone().unwrap_or_else(|| spec.name.clone()),
        display_name: spec.display_name.clone().unwrap_or_default(),
        avatar_url: spec.avatar_url.clone(),
        email: spec
            .email
            .clone()
            .unwrap_or_else(|| format!("{}@{}", spec.name, st.team.email_domain)),
        is_bot: spec.is_bot,
        deleted: spec.deleted,
        is_admin: spec.is_admin,
        tz: spec
            .tz
            .clone()
            .unwrap_or_else(|| "America/Los_Angeles".into()),
        color: colors[st.users.len() % colors.len()].into(),
        updated: now_secs(),
        bot_id: spec.is_bot.then(|| slack_id("B")),
        app_id: None,
        huddle: None,
    })
}

fn build_channel(st: &State, spec: &ChannelSeed) -> Result<(Channel, Vec<String>), SimError> {
    let name = spec.name.trim().trim_start_matches('#').to_string();
    if name.is_empty() {
        return Err(SimError::Invalid("channel name is empty".into()));
    }
    if st.channels.iter().any(|c| c.name == name) {
        return Err(SimError::Invalid(format!("channel name {name:?} is taken")));
    }
    let id = match &spec.id {
        Some(id) => {
            check_id(id, &['C', 'G'], "channel")?;
            if st.channel(id).is_some() {
                return Err(SimError::Invalid(format!("channel id {id} is taken")));
            }
            id.clone()
        }
        None => slack_id("C"),
    };
    let mut members = Vec::new();
    for m in &spec.members {
        let id = resolve_user_id(st, m)
            .map_err(|_| SimError::Invalid(format!("channel {name}: unknown member {m:?}")))?;
        if !members.contains(&id) {
            members.push(id);
        }
    }
    let creator = match &spec.creator {
        Some(c) => resolve_user_id(st, c)?,
        None => members
            .iter()
            .find(|m| **m != st.app.bot_user_id)
            .cloned()
            .or_else(|| members.first().cloned())
            .unwrap_or_else(|| st.app.bot_user_id.clone()),
    };
    let now = now_secs();
    let topic = |v: &Option<String>| Topic {
        value: v.clone().unwrap_or_default(),
        creator: if v.is_some() {
            creator.clone()
        } else {
            String::new()
        },
        last_set: if v.is_some() { now } else { 0 },
    };
    let ch = Channel {
        id,
        name,
        kind: if spec.private {
            Kind::Private
        } else {
            Kind::Public
        },
        created: now,
        creator: creator.clone(),
        members: Vec::new(),
        archived: spec.archived,
        is_general: spec.is_general,
        topic: topic(&spec.topic),
        purpose: topic(&spec.purpose),
        previous_names: Vec::new(),
        updated_ms: i64::try_from(crate::ids::now_micros() / 1000).unwrap_or(0),
        messages: BTreeMap::new(),
    };
    Ok((ch, members))
}

/// Applies a seed without sending events; returns what it created.
pub(crate) fn apply_seed(sim: &Sim, seed: &Seed) -> Result<Seeded, SimError> {
    let mut st = lock(&sim.state);
    // Team.
    if let Some(id) = &seed.team.id {
        check_id(id, &['T', 'E'], "team")?;
        st.team.id = id.clone();
    }
    if let Some(v) = &seed.team.name {
        st.team.name = v.clone();
    }
    if let Some(v) = &seed.team.domain {
        st.team.domain = v.clone();
        st.team.email_domain = format!("{v}.example.com");
    }
    if let Some(v) = &seed.team.email_domain {
        st.team.email_domain = v.clone();
    }
    // App.
    let a = &seed.app;
    if let Some(id) = &a.app_id {
        check_id(id, &['A'], "app")?;
        st.app.id = id.clone();
    }
    if let Some(v) = &a.name {
        st.app.name = v.clone();
    }
    if let Some(v) = &a.client_id {
        st.app.client_id = v.clone();
    }
    if let Some(v) = &a.client_secret {
        st.app.client_secret = v.clone();
    }
    if let Some(v) = &a.signing_secret {
        st.app.signing_secret = v.clone();
    }
    if let Some(v) = &a.verification_token {
        st.app.verification_token = v.clone();
    }
    if let Some(v) = &a.bot_id {
        check_id(v, &['B'], "bot")?;
        st.app.bot_id = v.clone();
    }
    if !a.redirect_urls.is_empty() {
        st.app.redirect_urls = a.redirect_urls.clone();
    }
    if a.bot_events.is_some() {
        st.app.bot_events = a.bot_events.clone();
    }
    if let Some(cmds) = &a.slash_commands {
        let mut list = Vec::with_capacity(cmds.len());
        for c in cmds {
            let c = c.trim().to_lowercase();
            if c.len() < 2 || !c.starts_with('/') || c.contains(char::is_whitespace) {
                return Err(SimError::Invalid(format!(
                    "slash command {c:?} must be a / followed by a word"
                )));
            }
            list.push(c);
        }
        st.app.slash_commands = sorted(list);
    }
    if let Some(s) = &a.user_scopes {
        st.app.user_scopes = sorted(s.clone());
    }
    // The bot user exists once; a seed may rename or re-id it before it is created.
    let bot_exists = st.user_exists(&st.app.bot_user_id);
    if !bot_exists {
        if let Some(id) = &a.bot_user_id {
            check_id(id, &['U', 'W'], "bot user")?;
            st.app.bot_user_id = id.clone();
        }
        let name = a
            .bot_name
            .clone()
            .unwrap_or_else(|| st.app.name.to_lowercase().replace(' ', "_"));
        let (bot_user_id, bot_id, app_id, app_name) = (
            st.app.bot_user_id.clone(),
            st.app.bot_id.clone(),
            st.app.id.clone(),
            st.app.name.clone(),
        );
        st.users.push(User {
            id: bot_user_id,
            name,
            real_name: app_name.clone(),
            display_name: app_name,
            avatar_url: None,
            email: String::new(),
            is_bot: true,
            deleted: false,
            is_admin: false,
            tz: "America/Los_Angeles".into(),
            color: "757575".into(),
            updated: now_secs(),
            bot_id: Some(bot_id),
            app_id: Some(app_id),
            huddle: None,
        });
    }
    // Bot and app tokens.
    let bot_scopes = a
        .bot_scopes
        .clone()
        .unwrap_or_else(|| DEFAULT_BOT_SCOPES.iter().map(|s| s.to_string()).collect());
    let existing_bot = st
        .tokens
        .iter()
        .find(|(_, t)| t.principal == Principal::Bot)
        .map(|(k, _)| k.clone());
    let bot_tok = match (&a.bot_token, existing_bot) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        (None, None) => bot_token(),
    };
    if !bot_tok.starts_with("xoxb-") {
        return Err(SimError::Invalid("bot_token must start with xoxb-".into()));
    }
    if a.bot_scopes.is_some() || !st.tokens.contains_key(&bot_tok) {
        st.tokens.insert(
            bot_tok.clone(),
            Token {
                principal: Principal::Bot,
                scopes: sorted(bot_scopes),
                revoked: false,
            },
        );
    }
    let existing_app = st
        .tokens
        .iter()
        .find(|(_, t)| t.principal == Principal::App)
        .map(|(k, _)| k.clone());
    let app_tok = match (&a.app_token, existing_app) {
        (Some(t), _) => t.clone(),
        (None, Some(t)) => t,
        (None, None) => app_token(&st.app.id),
    };
    if !app_tok.starts_with("xapp-") {
        return Err(SimError::Invalid("app_token must start with xapp-".into()));
    }
    st.tokens.entry(app_tok.clone()).or_insert(Token {
        principal: Principal::App,
        scopes: vec!["authorizations:read".into(), "connections:write".into()],
        revoked: false,
    });
    // People.
    let mut result = Seeded::default();
    for spec in &seed.users {
        let u = build_user(&st, spec)?;
        result.users.insert(u.name.clone(), u.id.clone());
        st.add_user(u);
    }
    // Channels (members set directly: seeding describes how things already were).
    for spec in &seed.channels {
        let (mut ch, members) = build_channel(&st, spec)?;
        ch.members = members;
        result.channels.insert(ch.name.clone(), ch.id.clone());
        st.channels.push(ch);
    }
    // User tokens.
    let humans: Vec<(String, String)> = st
        .users
        .iter()
        .filter(|u| !u.is_bot && !u.deleted && u.id != state::SLACKBOT)
        .map(|u| (u.name.clone(), u.id.clone()))
        .collect();
    let default_scopes = st.app.user_scopes.clone();
    let mut issue = |st: &mut State,
                     name: &str,
                     id: &str,
                     token: Option<String>,
                     scopes: Option<Vec<String>>| {
        let token = token.unwrap_or_else(user_token);
        st.tokens.insert(
            token.clone(),
            Token {
                principal: Principal::User(id.to_string()),
                scopes: sorted(scopes.unwrap_or_else(|| default_scopes.clone())),
                revoked: false,
            },
        );
        result.user_tokens.insert(name.to_string(), token);
    };
    match &seed.user_tokens {
        None | Some(UserTokensSeed::Keyword(UserTokensKeyword::All)) => {
            // Only people this seed created get fresh tokens; earlier ones keep theirs.
            for (name, id) in humans {
                if seed.users.iter().any(|s| s.name == name) {
                    issue(&mut st, &name, &id, None, None);
                }
            }
        }
        Some(UserTokensSeed::Keyword(UserTokensKeyword::None)) => {}
        Some(UserTokensSeed::List(list)) => {
            for t in list {
                let id = resolve_user_id(&st, &t.user)?;
                let name = st.user(&id).map(|u| u.name.clone()).unwrap_or_default();
                if t.token.as_ref().is_some_and(|t| !t.starts_with("xoxp-")) {
                    return Err(SimError::Invalid(
                        "user tokens must start with xoxp-".into(),
                    ));
                }
                issue(&mut st, &name, &id, t.token.clone(), t.scopes.clone());
            }
        }
    }
    result.team_id = st.team.id.clone();
    result.team_domain = st.team.domain.clone();
    result.app_id = st.app.id.clone();
    result.client_id = st.app.client_id.clone();
    result.client_secret = st.app.client_secret.clone();
    result.signing_secret = st.app.signing_secret.clone();
    result.verification_token = st.app.verification_token.clone();
    result.app_token = app_tok;
    result.bot_token = bot_tok;
    result.bot_user_id = st.app.bot_user_id.clone();
    result.bot_id = st.app.bot_id.clone();
    if let Some(bot) = st.user(&st.app.bot_user_id) {
        result.users.insert(bot.name.clone(), bot.id.clone());
    }
    drop(st);
    let mut all = lock(&sim.seeded);
    let merged = Seeded {
        users: all
            .users
            .clone()
            .into_iter()
            .chain(result.users.clone())
            .collect(),
        channels: all
            .channels
            .clone()
            .into_iter()
            .chain(result.channels.clone())
            .collect(),
        user_tokens: all
            .user_tokens
            .clone()
            .into_iter()
            .chain(result.user_tokens.clone())
            .collect(),
        ..result.clone()
    };
    *all = merged;
    Ok(result)
}

/// A JSON view of the counters (for the admin API and the binary).
pub fn counters_json(sim: &Sim) -> Value {
    json!(counters(sim))
}
