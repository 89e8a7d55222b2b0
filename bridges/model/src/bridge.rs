//! The [`Bridge`] trait and the context a bridge runs in.

use crate::call::Meeting;
use crate::error::BridgeError;
use crate::event::{Attachment, ChannelInfo, Inbound};
use crate::ids::{BridgeId, ChannelId, UserId};
use crate::outbound::{Delivered, OutboundOp};
use crate::person::{LinkedAccount, Person, PuppetRef};
use async_trait::async_trait;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

/// What a platform can do. One struct rather than many optional traits: the
/// relay reads it and degrades visibly where a target lacks something (an
/// edit becomes an "edited:" follow-up, a reaction a short notice).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Messages can be edited.
    pub edits: bool,
    /// Messages can be deleted.
    pub deletes: bool,
    /// Messages can be replies to other messages.
    pub replies: bool,
    /// Messages can live in threads.
    pub threads: bool,
    /// Messages can carry reactions.
    pub reactions: bool,
    /// Files can be uploaded.
    pub attachments: bool,
    /// The longest message, in characters, before the bridge must split it.
    pub max_message_len: usize,
    /// The largest upload, in bytes.
    pub max_upload: u64,
    /// Calls can be shown natively (a call card or widget), not only as text.
    pub native_calls: bool,
    /// Puppets are real accounts (so mentions of them work and their echoes
    /// carry their ids), rather than a name and avatar per message.
    pub puppet_accounts: bool,
    /// Its channels take their name, topic and avatar from the other members
    /// of their portal: the bridge owns its portal rooms (Matrix). Bridges
    /// whose channels belong to their users' organisation leave it unset,
    /// and are never asked to rename them.
    pub mirrors_channel_info: bool,
    /// It creates meetings on request ([`Bridge::create_meeting`]): a
    /// portal's meetings come from the first member that does, unless the
    /// portal says otherwise.
    pub creates_meetings: bool,
}

impl Capabilities {
    /// Everything supported, generous limits.
    pub fn full() -> Self {
        Capabilities {
            edits: true,
            deletes: true,
            replies: true,
            threads: true,
            reactions: true,
            attachments: true,
            max_message_len: 40_000,
            max_upload: 100 * 1024 * 1024,
            native_calls: true,
            puppet_accounts: true,
            mirrors_channel_info: true,
            creates_meetings: false,
        }
    }

    /// Plain messages only.
    pub fn minimal() -> Self {
        Capabilities {
            edits: false,
            deletes: false,
            replies: false,
            threads: false,
            reactions: false,
            attachments: false,
            max_message_len: 4_000,
            max_upload: 0,
            native_calls: false,
            puppet_accounts: false,
            mirrors_channel_info: false,
            creates_meetings: false,
        }
    }
}

/// How a bridge's connection stands. Shown in logs, systemd STATUS and `/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeState {
    /// Starting or reconnecting.
    Connecting,
    /// Connected and receiving.
    Connected,
    /// Lost its connection; reconnecting by itself.
    TransientDisconnect(String),
    /// Its credentials were refused; an operator must act.
    BadCredentials(String),
    /// Stopped (shutdown).
    Stopped,
}

impl BridgeState {
    /// A short, bounded name.
    pub fn label(&self) -> &'static str {
        match self {
            BridgeState::Connecting => "connecting",
            BridgeState::Connected => "connected",
            BridgeState::TransientDisconnect(_) => "transient_disconnect",
            BridgeState::BadCredentials(_) => "bad_credentials",
            BridgeState::Stopped => "stopped",
        }
    }
}

impl fmt::Display for BridgeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeState::TransientDisconnect(why) | BridgeState::BadCredentials(why) => {
                write!(f, "{} ({why})", self.label())
            }
            _ => f.write_str(self.label()),
        }
    }
}

/// Why the relay would not take an inbound event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The daemon is stopping; the platform should redeliver later.
    #[error("switchboard is shutting down")]
    ShuttingDown,
    /// The event could not be stored (e.g. the disk is full). Do not
    /// acknowledge it to the platform: it must be redelivered.
    #[error("event not stored: {0}")]
    NotStored(String),
}

/// One inbound event on its way into the relay, with the channel its
/// durable-acknowledgement comes back on.
pub type InboundEnvelope = (Inbound, oneshot::Sender<Result<(), IntakeError>>);

/// Where a bridge pushes what it receives. [`InboundSink::push`] returns only
/// once the event is durably in the store: acknowledge to the platform after
/// that, never before.
#[derive(Clone, Debug)]
pub struct InboundSink {
    tx: mpsc::Sender<InboundEnvelope>,
}

impl InboundSink {
    /// A sink and the receiving end the relay reads.
    pub fn channel(capacity: usize) -> (InboundSink, mpsc::Receiver<InboundEnvelope>) {
        let (tx, rx) = mpsc::channel(capacity);
        (InboundSink { tx }, rx)
    }

    /// Pushes an event and waits until it is durably stored.
    pub async fn push(&self, event: Inbound) -> Result<(), IntakeError> {
        self.submit(event).await?.await
    }

    /// Pushes an event and returns a handle that resolves once it is durably
    /// stored, so a connector can keep several in flight.
    pub async fn submit(&self, event: Inbound) -> Result<Stored, IntakeError> {
        let (ack, rx) = oneshot::channel();
        self.tx
            .send((event, ack))
            .await
            .map_err(|_| IntakeError::ShuttingDown)?;
        Ok(Stored { rx })
    }
}

/// Resolves once the event handed to [`InboundSink::submit`] is durable.
#[derive(Debug)]
pub struct Stored {
    rx: oneshot::Receiver<Result<(), IntakeError>>,
}

impl Future for Stored {
    type Output = Result<(), IntakeError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(IntakeError::ShuttingDown)))
    }
}

/// Fetches the bytes of an attachment from the bridge it came from.
#[async_trait]
pub trait MediaSource: Send + Sync {
    /// Downloads `attachment`, which was reported by `origin`.
    async fn fetch(
        &self,
        origin: &BridgeId,
        attachment: &Attachment,
    ) -> Result<Vec<u8>, BridgeError>;
}

/// A sign-in started from a chat ([`Bridge::begin_login`]).
pub struct LoginFlow {
    /// What the person is told: where to go and what to enter there.
    pub prompt: String,
    /// Ends with their account once they signed in, or with why not.
    pub done: Pin<Box<dyn Future<Output = Result<LinkedAccount, BridgeError>> + Send>>,
}

impl fmt::Debug for LoginFlow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginFlow")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

/// What a bridge gets when it runs.
#[derive(Debug, Clone)]
pub struct BridgeContext {
    /// Where to push inbound events.
    pub inbound: InboundSink,
    /// Cancelled when the daemon stops (or the bridge is restarted).
    pub shutdown: CancellationToken,
    state: watch::Sender<BridgeState>,
    cursors: Arc<dyn CursorStore>,
    channels: watch::Receiver<Vec<ChannelId>>,
}

/// Where a connector keeps its per-channel catch-up positions (a Slack ts, a
/// Graph delta link) across restarts. Backed by the store's `cursor` tree.
pub trait CursorStore: Send + Sync + fmt::Debug {
    /// The position stored for `channel`, if any.
    fn get(&self, channel: &ChannelId) -> Option<String>;
    /// Stores the position for `channel`. Failures are logged by the store;
    /// a lost cursor only means a longer catch-up.
    fn put(&self, channel: &ChannelId, cursor: &str);
}

/// A [`CursorStore`] in memory (tests, and contexts without a store).
#[derive(Debug, Default)]
pub struct MemoryCursors(std::sync::Mutex<std::collections::HashMap<ChannelId, String>>);

impl CursorStore for MemoryCursors {
    fn get(&self, channel: &ChannelId) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .cloned()
    }

    fn put(&self, channel: &ChannelId, cursor: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(channel.clone(), cursor.to_owned());
    }
}

impl BridgeContext {
    /// A context from its parts.
    pub fn new(
        inbound: InboundSink,
        shutdown: CancellationToken,
        state: watch::Sender<BridgeState>,
    ) -> Self {
        let (_, channels) = watch::channel(Vec::new());
        BridgeContext {
            inbound,
            shutdown,
            state,
            cursors: Arc::new(MemoryCursors::default()),
            channels,
        }
    }

    /// Uses `cursors` for catch-up positions.
    pub fn with_cursors(mut self, cursors: Arc<dyn CursorStore>) -> Self {
        self.cursors = cursors;
        self
    }

    /// Tells the bridge which of its channels belong to portals (and when
    /// that changes), so it knows what to catch up.
    pub fn with_channels(mut self, channels: watch::Receiver<Vec<ChannelId>>) -> Self {
        self.channels = channels;
        self
    }

    /// Catch-up positions.
    pub fn cursors(&self) -> &dyn CursorStore {
        self.cursors.as_ref()
    }

    /// The bridge's channels that belong to portals, now.
    pub fn channels(&self) -> Vec<ChannelId> {
        self.channels.borrow().clone()
    }

    /// A receiver that changes whenever the portal channels do.
    pub fn channels_watch(&self) -> watch::Receiver<Vec<ChannelId>> {
        self.channels.clone()
    }

    /// Reports the bridge's connection state.
    pub fn set_state(&self, state: BridgeState) {
        self.state.send_replace(state);
    }
}

/// One configured connection to a platform.
///
/// The relay calls [`Bridge::run`] once (again after it returns an error,
/// with backoff) and [`Bridge::deliver`] from many tasks at once.
#[async_trait]
pub trait Bridge: Send + Sync + fmt::Debug + 'static {
    /// The bridge's id, as configured.
    fn id(&self) -> &BridgeId;

    /// What the platform supports.
    fn capabilities(&self) -> Capabilities;

    /// Checks that the platform answers and the credentials are accepted.
    async fn health_check(&self) -> Result<(), BridgeError>;

    /// Receives from the platform and pushes into `ctx.inbound` until
    /// `ctx.shutdown` is cancelled, reconnecting by itself after transient
    /// failures. Returns `Ok` on shutdown; an error makes the relay restart it
    /// with backoff. On (re)connect, catches up whatever it missed.
    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError>;

    /// Carries out one operation. Must be idempotent per `op.id`: the relay
    /// may deliver an op again after a crash, and the platform must still see
    /// it once.
    async fn deliver(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError>;

    /// Makes sure `person` (from another bridge) can be shown here, creating
    /// or updating a puppet as needed. Called once per person and again when
    /// their name or avatar changes; the relay caches the answer.
    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError>;

    /// The name, topic and avatar of one of this bridge's channels, for the
    /// portal rooms of bridges that mirror them. `None` (the default) when
    /// the platform has nothing to say.
    async fn channel_info(&self, channel: &ChannelId) -> Result<Option<ChannelInfo>, BridgeError> {
        let _ = channel;
        Ok(None)
    }

    /// Creates a meeting anyone with the link can join, for a call requested
    /// in `channel`'s portal: organised by `organiser` where that person
    /// linked their own account on this platform, else by the bridge's own
    /// account. Idempotent per `key` (a retry returns the same meeting).
    /// `Ok(None)` (the default) when this platform cannot create meetings.
    async fn create_meeting(
        &self,
        key: &str,
        channel: &ChannelId,
        title: &str,
        organiser: Option<&Person>,
    ) -> Result<Option<Meeting>, BridgeError> {
        let _ = (key, channel, title, organiser);
        Ok(None)
    }

    /// Opens (or finds again) a direct conversation between this bridge's
    /// own account and `user`, for a person on another platform (`with`) to
    /// talk to them through a direct-message portal: Slack's IM of the bot
    /// with the user, a Teams one-on-one chat with the service account, a
    /// Matrix room created by `with`'s ghost. Idempotent where the platform
    /// allows (the same conversation again). `Ok(None)` (the default) when
    /// this platform has no direct conversations.
    async fn open_direct(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        let _ = (user, with);
        Ok(None)
    }

    /// People of this platform whose name or handle matches `query` (a
    /// case-insensitive substring), at most `limit`, for `dm <name>`. Empty
    /// (the default) where the platform has no directory to search.
    async fn find_people(&self, query: &str, limit: usize) -> Result<Vec<Person>, BridgeError> {
        let _ = (query, limit);
        Ok(Vec::new())
    }

    /// Starts linking a person's own account on this platform from a chat
    /// (`login <platform>` to the bot): what to tell them, and a future
    /// that ends when they have signed in (their account here, to post as
    /// them) or when the sign-in failed or expired. `Ok(None)` (the
    /// default) when this platform cannot be signed in to from a chat.
    async fn begin_login(&self) -> Result<Option<LoginFlow>, BridgeError> {
        Ok(None)
    }

    /// Downloads an attachment this bridge reported.
    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError>;

    /// HTTP endpoints this bridge serves on the daemon's listener, each under
    /// its path prefix (e.g. `/slack/acme/events`). None by default.
    fn http_endpoints(&self) -> Vec<(String, std::sync::Arc<dyn crate::http::HttpEndpoint>)> {
        Vec::new()
    }
}
