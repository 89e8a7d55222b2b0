//! Events: wrapping an inner event in Slack's `event_callback` envelope, deciding whether the
//! app receives it, and the delivery hub that hands each payload to Socket Mode or to the
//! Events API request URL, counting acknowledgements, redeliveries and drops.
//!
//! Envelope fields follow <https://docs.slack.dev/reference/objects/event-object> and the real
//! captures in `conformance/slack/events/` (`authorizations`, `is_ext_shared_channel`,
//! `event_context`, and the newer `context_team_id` / `context_enterprise_id`). The payload is
//! serialised exactly once; Socket Mode splices those bytes into its envelope and push mode
//! POSTs them, so both transports carry byte-identical bodies.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ids::{now_secs, slack_id, uuid_v4};
use crate::lock;
use crate::state::State;

/// An event a state change produced, before the envelope is added.
#[derive(Clone, Debug)]
pub struct Emit {
    /// The subscription name the app must hold (`message.channels`, `reaction_added`, …).
    pub subscription: &'static str,
    /// The bot scope Slack requires to deliver it (`channels:history`, …), if any.
    pub scope: Option<&'static str>,
    /// The conversation it happened in: only apps whose bot is a member receive it.
    pub channel: Option<String>,
    /// The inner `event` object.
    pub event: Value,
    /// Whether the app receives it (decided when it is queued, see `State::emit`).
    pub visible: bool,
}

impl Emit {
    /// A workspace-wide event (`user_change`, `channel_created`, …).
    pub fn team(subscription: &'static str, scope: Option<&'static str>, event: Value) -> Self {
        Emit {
            subscription,
            scope,
            channel: None,
            event,
            visible: false,
        }
    }

    /// An event inside a conversation.
    pub fn channel(
        subscription: &'static str,
        scope: Option<&'static str>,
        channel: &str,
        event: Value,
    ) -> Self {
        Emit {
            subscription,
            scope,
            channel: Some(channel.to_string()),
            event,
            visible: false,
        }
    }
}

/// A serialised `event_callback` body ready for delivery.
#[derive(Clone, Debug)]
pub struct Payload {
    /// `event_id` (`Ev…`).
    pub event_id: String,
    /// The exact body bytes.
    pub body: Arc<str>,
}

/// Whether the app gets this event: it must subscribe to it, hold the scope Slack requires,
/// and (for conversation events) its bot user must be a member — as Slack does.
pub fn app_receives(st: &State, e: &Emit) -> bool {
    if let Some(subs) = &st.app.bot_events
        && !subs.iter().any(|s| s == e.subscription)
    {
        return false;
    }
    if let Some(scope) = e.scope {
        let has = st.tokens.values().any(|t| {
            t.principal == crate::state::Principal::Bot
                && !t.revoked
                && t.scopes.iter().any(|s| s == scope)
        });
        if !has {
            tracing::debug!(
                event = e.subscription,
                scope,
                "App lacks the scope for this event; not delivered."
            );
            return false;
        }
    }
    if let Some(ch) = &e.channel {
        match st.channel(ch) {
            Some(c) if c.is_member(&st.app.bot_user_id) => {}
            _ => return false,
        }
    }
    true
}

/// Wraps an inner event in the `event_callback` envelope and serialises it once.
pub fn wrap(st: &State, e: &Emit) -> Payload {
    let event_id = format!("Ev{}", &slack_id("")[..10]);
    let event_type = e
        .event
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("event");
    let mut env = json!({
        "token": st.app.verification_token,
        "team_id": st.team.id,
        "context_team_id": st.team.id,
        "context_enterprise_id": null,
        "api_app_id": st.app.id,
        "event": e.event,
        "type": "event_callback",
        "event_id": event_id,
        "event_time": now_secs(),
        "authorizations": [{
            "enterprise_id": null,
            "team_id": st.team.id,
            "user_id": st.app.bot_user_id,
            "is_bot": true,
            "is_enterprise_install": false,
        }],
        "is_ext_shared_channel": false,
    });
    if let Some(ch) = &e.channel {
        // Real contexts are "4-" + base64 of a small JSON object naming event, team, app, channel.
        let ctx = json!({"et": event_type, "tid": st.team.id, "aid": st.app.id, "cid": ch});
        let ctx = base64::engine::general_purpose::STANDARD.encode(ctx.to_string());
        env["event_context"] = json!(format!("4-{ctx}"));
    }
    Payload {
        event_id,
        body: Arc::from(env.to_string()),
    }
}

/// Delivery counters (also served by `GET /_admin/counters`).
#[derive(Debug, Default)]
pub struct Counters {
    /// Events wrapped and queued for delivery.
    pub events_emitted: AtomicU64,
    /// Events acknowledged (Socket Mode ack or 2xx from the request URL).
    pub events_delivered: AtomicU64,
    /// Redelivery attempts (each retry counts once).
    pub events_redelivered: AtomicU64,
    /// Events given up after the last retry, or overflowing the offline queue.
    pub events_dropped: AtomicU64,
    /// Envelopes sent over Socket Mode (first attempts and retries).
    pub envelopes_sent: AtomicU64,
    /// HTTP POSTs made to the request URL.
    pub push_attempts: AtomicU64,
    /// 429 answers served.
    pub ratelimited: AtomicU64,
    /// 5xx answers injected.
    pub injected_5xx: AtomicU64,
    /// Connections refused while refusing.
    pub connections_refused: AtomicU64,
    /// Connections dropped mid-request.
    pub connections_dropped: AtomicU64,
    /// Socket Mode connections opened (hello sent).
    pub sockets_opened: AtomicU64,
    /// Sockets turned away with `too_many_websockets`.
    pub sockets_refused: AtomicU64,
}

impl Counters {
    /// A JSON snapshot.
    pub fn snapshot(&self) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "events_emitted": g(&self.events_emitted),
            "events_delivered": g(&self.events_delivered),
            "events_redelivered": g(&self.events_redelivered),
            "events_dropped": g(&self.events_dropped),
            "envelopes_sent": g(&self.envelopes_sent),
            "push_attempts": g(&self.push_attempts),
            "ratelimited": g(&self.ratelimited),
            "injected_5xx": g(&self.injected_5xx),
            "connections_refused": g(&self.connections_refused),
            "connections_dropped": g(&self.connections_dropped),
            "sockets_opened": g(&self.sockets_opened),
            "sockets_refused": g(&self.sockets_refused),
        })
    }
}

/// Frames the hub sends to a Socket Mode connection task.
#[derive(Debug)]
pub enum Outbound {
    /// A text frame.
    Text(String),
    /// Close the socket (normal closure).
    Close,
}

/// Delivery settings the hub needs (copied from [`crate::SimConfig`]).
#[derive(Clone, Debug)]
pub struct DeliveryConfig {
    /// Socket Mode ack deadline before redelivery.
    pub ack_timeout: Duration,
    /// Retries after the first attempt before an event is dropped.
    pub max_retries: u32,
    /// How long the request URL has to answer.
    pub push_timeout: Duration,
    /// Delay before each push retry (index 0 = before retry 1).
    pub push_retry_delays: Vec<Duration>,
    /// Events held while no socket is connected and no URL is set (beyond: dropped).
    pub offline_queue_cap: usize,
}

struct Socket {
    id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
}

struct Pending {
    payload: Payload,
    attempt: u32,
    reason: &'static str,
}

struct Inflight {
    payload: Payload,
    attempt: u32,
    acked: bool,
}

#[derive(Default)]
struct HubState {
    sockets: Vec<Socket>,
    next_socket: u64,
    rr: usize,
    waiting: VecDeque<Pending>,
    /// envelope_id → event_id.
    envelopes: HashMap<String, String>,
    /// event_id → delivery state, while an envelope awaits its ack.
    inflight: HashMap<String, Inflight>,
    push_url: Option<String>,
    signing_secret: String,
}

/// Routes payloads to Socket Mode connections (round robin) or to the request URL.
pub struct Hub {
    state: Mutex<HubState>,
    /// Delivery settings.
    pub config: Mutex<DeliveryConfig>,
    /// Counters.
    pub counters: Arc<Counters>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    http: reqwest::Client,
    /// Slash command invocations, oldest first (see [`crate::commands`]).
    pub(crate) commands: Mutex<Vec<crate::commands::SlashCommand>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub with no connections and no request URL.
    pub fn new(
        config: DeliveryConfig,
        counters: Arc<Counters>,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        Hub {
            state: Mutex::new(HubState::default()),
            config: Mutex::new(config),
            counters,
            tracker,
            shutdown,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            commands: Mutex::new(Vec::new()),
        }
    }

    /// Queues a payload for delivery.
    pub fn emit(self: &Arc<Self>, payload: Payload) {
        self.counters.events_emitted.fetch_add(1, Ordering::Relaxed);
        self.dispatch(Pending {
            payload,
            attempt: 0,
            reason: "",
        });
    }

    fn dispatch(self: &Arc<Self>, p: Pending) {
        let mut st = lock(&self.state);
        if let Some(url) = st.push_url.clone() {
            let secret = st.signing_secret.clone();
            drop(st);
            crate::push::spawn_delivery(self.clone(), url, secret, p.payload);
            return;
        }
        // A connection whose task ended (its receiver is gone) cannot take envelopes.
        st.sockets.retain(|s| !s.tx.is_closed());
        if st.sockets.is_empty() {
            let cap = lock(&self.config).offline_queue_cap;
            if st.waiting.len() >= cap {
                self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(event_id = %p.payload.event_id, "Offline queue full; event dropped.");
                return;
            }
            st.waiting.push_back(p);
            return;
        }
        let idx = st.rr % st.sockets.len();
        st.rr = st.rr.wrapping_add(1);
        let envelope_id = uuid_v4();
        let frame = format!(
            r#"{{"envelope_id":"{envelope_id}","payload":{},"type":"events_api","accepts_response_payload":false,"retry_attempt":{},"retry_reason":"{}"}}"#,
            p.payload.body, p.attempt, p.reason
        );
        let event_id = p.payload.event_id.clone();
        st.envelopes.insert(envelope_id, event_id.clone());
        st.inflight.insert(
            event_id.clone(),
            Inflight {
                payload: p.payload,
                attempt: p.attempt,
                acked: false,
            },
        );
        let sent = st.sockets[idx].tx.send(Outbound::Text(frame)).is_ok();
        drop(st);
        if sent {
            self.counters.envelopes_sent.fetch_add(1, Ordering::Relaxed);
        }
        // Whether or not the send worked, the ack timer decides what happens next.
        let hub = self.clone();
        let timeout = lock(&self.config).ack_timeout;
        let attempt = p.attempt;
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(timeout) => hub.ack_deadline(&event_id, attempt),
                () = shutdown.cancelled() => {}
            }
        });
    }

    fn ack_deadline(self: &Arc<Self>, event_id: &str, attempt: u32) {
        let mut st = lock(&self.state);
        let Some(inf) = st.inflight.get(event_id) else {
            return;
        };
        if inf.acked || inf.attempt != attempt {
            return;
        }
        let Some(inf) = st.inflight.remove(event_id) else {
            return;
        };
        st.envelopes.retain(|_, e| e != event_id);
        drop(st);
        let max = lock(&self.config).max_retries;
        if inf.attempt >= max {
            self.counters.events_dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                event_id,
                attempts = inf.attempt + 1,
                "Event never acknowledged; dropped as Slack does."
            );
            return;
        }
        self.counters
            .events_redelivered
            .fetch_add(1, Ordering::Relaxed);
        self.dispatch(Pending {
            payload: inf.payload,
            attempt: inf.attempt + 1,
            reason: "timeout",
        });
    }

    /// Records a Socket Mode ack (with the response `payload` it carried, if any). Returns
    /// false for an unknown envelope id.
    pub fn ack(&self, envelope_id: &str, payload: Option<&Value>) -> bool {
        if crate::commands::ack(self, envelope_id, payload) {
            return true;
        }
        let mut st = lock(&self.state);
        let Some(event_id) = st.envelopes.remove(envelope_id) else {
            return false;
        };
        if st.inflight.remove(&event_id).is_some() {
            self.counters
                .events_delivered
                .fetch_add(1, Ordering::Relaxed);
        }
        st.envelopes.retain(|_, e| *e != event_id);
        true
    }

    /// Registers a Socket Mode connection; returns its id and the number of open
    /// connections, or `None` when `max` are already open.
    pub fn add_socket(
        self: &Arc<Self>,
        tx: mpsc::UnboundedSender<Outbound>,
        max: usize,
    ) -> Option<(u64, usize)> {
        let mut st = lock(&self.state);
        st.sockets.retain(|s| !s.tx.is_closed());
        if st.sockets.len() >= max {
            return None;
        }
        st.next_socket += 1;
        let id = st.next_socket;
        st.sockets.push(Socket { id, tx });
        Some((id, st.sockets.len()))
    }

    /// Sends queued events now that a connection is up (call after `hello` went out).
    pub fn flush_waiting(self: &Arc<Self>) {
        let waiting: Vec<Pending> = lock(&self.state).waiting.drain(..).collect();
        for p in waiting {
            self.dispatch(p);
        }
    }

    /// Sends one frame to one open connection (round robin); false when none is open.
    pub(crate) fn send_one(&self, frame: Outbound) -> bool {
        let mut st = lock(&self.state);
        st.sockets.retain(|s| !s.tx.is_closed());
        if st.sockets.is_empty() {
            return false;
        }
        let idx = st.rr % st.sockets.len();
        st.rr = st.rr.wrapping_add(1);
        st.sockets[idx].tx.send(frame).is_ok()
    }

    /// The request URL and the secret to sign with, when one is set.
    pub(crate) fn push_target(&self) -> Option<(String, String)> {
        let st = lock(&self.state);
        st.push_url.clone().map(|u| (u, st.signing_secret.clone()))
    }

    /// Forgets a closed connection.
    pub fn remove_socket(&self, id: u64) {
        lock(&self.state).sockets.retain(|s| s.id != id);
    }

    /// Number of open Socket Mode connections.
    pub fn socket_count(&self) -> usize {
        let mut st = lock(&self.state);
        st.sockets.retain(|s| !s.tx.is_closed());
        st.sockets.len()
    }

    /// Sends a frame to every open connection; returns the ids of those that got it.
    pub fn broadcast(&self, make: impl Fn() -> Outbound) -> Vec<u64> {
        let st = lock(&self.state);
        st.sockets
            .iter()
            .filter(|s| s.tx.send(make()).is_ok())
            .map(|s| s.id)
            .collect()
    }

    /// Closes the given connections: they get a close frame after what was
    /// already sent to them, and no new event is routed to them.
    pub fn close(&self, ids: &[u64]) {
        let mut st = lock(&self.state);
        for s in st.sockets.iter().filter(|s| ids.contains(&s.id)) {
            let _ = s.tx.send(Outbound::Close);
        }
        st.sockets.retain(|s| !ids.contains(&s.id));
    }

    /// Sends a frame to the given connections (those still open).
    pub fn send_to(&self, ids: &[u64], make: impl Fn() -> Outbound) {
        let st = lock(&self.state);
        for s in st.sockets.iter().filter(|s| ids.contains(&s.id)) {
            let _ = s.tx.send(make());
        }
    }

    /// Sets (or clears) the request URL and the secret to sign with; flushes held events.
    pub fn set_push_url(self: &Arc<Self>, url: Option<String>, signing_secret: String) {
        {
            let mut st = lock(&self.state);
            st.push_url = url;
            st.signing_secret = signing_secret;
        }
        if lock(&self.state).push_url.is_some() {
            self.flush_waiting();
        }
    }

    /// The HTTP client used for push deliveries.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Spawns a task on the simulator's tracker, cancelled at shutdown.
    pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                () = fut => {}
                () = shutdown.cancelled() => {}
            }
        });
    }

    /// Events waiting for a connection.
    pub fn waiting_len(&self) -> usize {
        lock(&self.state).waiting.len()
    }
}
