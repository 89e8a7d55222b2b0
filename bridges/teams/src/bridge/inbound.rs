//! Inbound: every version of a Teams message the connector learns of, from
//! a change notification or from reconciliation, goes through one gate
//! ([`TeamsBridge::process`]) that compares it with the last version seen and
//! turns the difference into canonical events.
//!
//! - **Reconciliation** ([`TeamsBridge::reconcile_all`]) runs every
//!   `poll_interval` without notifications and every `reconcile_interval`
//!   with them. Channels: `GET …/messages/delta` from the stored delta link;
//!   Graph's delta reports root messages only, but a new reply reports its
//!   root again, so the replies of every root in the round are listed too.
//!   Chats (Graph has no per-chat delta): the newest page of
//!   `GET /chats/{id}/messages`.
//! - **Exactly once** when both paths see a message: the gate is serialised;
//!   a version older than or equal to the one seen is skipped; event ids are
//!   derived from (channel, message, version, kind), so a repeat that slips
//!   through (a restart, two processes) is dropped by the relay's dedup; and
//!   the relay drops a second `Message` for a message id it already knows.
//! - **History is not replayed**: the first round for a conversation stores
//!   a floor (`{channel}#since`); messages and replies created before it are
//!   remembered without events.
//! - After a restart the versions seen are gone: a message created before
//!   this process started and seen again is reported as a `Message` (which
//!   the relay drops when it knows it) plus an `Edit` when it was edited, so
//!   an edit made while the daemon was down still arrives. Reactions changed
//!   while down are not recovered.
//! - The versions seen are bounded ([`SEEN_CAP`]); the oldest half is
//!   forgotten when full, which at worst repeats the restart case above.
//! - **Direct chats**: a one-on-one chat of the service account that is not
//!   a portal passes the gate as a command chat (`direct`): a new message of
//!   someone else becomes one [`InboundKind::Command`], reconciled by
//!   [`TeamsBridge::reconcile_all`] after the portals.
//! - **`call` commands**: a new message that mentions the service account
//!   and says `call [title]` becomes one [`InboundKind::CallRequest`] (its
//!   event id depends on the message only, so both paths and a restart ask
//!   once) instead of a message. Later versions of it (edits, deletion,
//!   reactions) yield nothing: the message was never relayed, and an edit
//!   does not ask again.

use super::{Conversation, TeamsBridge};
use crate::auth::Secret;
use crate::client::Bearer;
use crate::graph::{self, ParseContext, Parsed, ResourceRef};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_model::{
    BridgeContext, BridgeError, ChannelId, Inbound, InboundKind, IntakeError, RetryKind,
};

/// How many message versions are remembered per bridge.
pub const SEEN_CAP: usize = 20_000;
/// Replies read per root during reconciliation (Graph's `$top` maximum).
const REPLIES_TOP: usize = 50;
/// Chat messages read per chat during reconciliation.
const CHAT_TOP: usize = 50;
/// Fields of a message kept in the version cache (what the diff reads).
const KEPT_FIELDS: &[&str] = &[
    "id",
    "replyToId",
    "etag",
    "messageType",
    "createdDateTime",
    "lastModifiedDateTime",
    "lastEditedDateTime",
    "deletedDateTime",
    "subject",
    "from",
    "body",
    "attachments",
    "reactions",
    "channelIdentity",
    "chatId",
];

/// Which gate a message version passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// A watched conversation (a portal channel): messages are relayed.
    Portal,
    /// A one-on-one chat of the service account without a portal: new
    /// messages are commands.
    Direct,
}

/// Which path brought a message version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A change notification.
    Notification,
    /// Delta or list reconciliation.
    Reconcile,
}

/// What the inbound side did, for tests, logs and benchmarks.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) notifications: AtomicU64,
    pub(super) refused: AtomicU64,
    pub(super) events_by_notification: AtomicU64,
    pub(super) events_by_reconcile: AtomicU64,
    pub(super) stale_skipped: AtomicU64,
    pub(super) created: AtomicU64,
    pub(super) renewed: AtomicU64,
    pub(super) recreated: AtomicU64,
    pub(super) resyncs: AtomicU64,
    pub(super) fetch_failures: AtomicU64,
    pub(super) rich: AtomicU64,
}

/// A snapshot of the inbound counters ([`TeamsBridge::inbound_counts`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboundCounts {
    /// Change-notification items accepted (right `clientState`).
    pub notifications: u64,
    /// Items refused for a wrong or missing `clientState`.
    pub refused: u64,
    /// Events stored first through a notification.
    pub events_by_notification: u64,
    /// Events stored first through reconciliation (what notifications missed).
    pub events_by_reconcile: u64,
    /// Versions skipped because a newer or equal one was already seen.
    pub stale_skipped: u64,
    /// Subscriptions created.
    pub subscriptions_created: u64,
    /// Subscriptions renewed.
    pub subscriptions_renewed: u64,
    /// Subscriptions recreated after Graph removed them.
    pub subscriptions_recreated: u64,
    /// Reconciliations asked for by a lifecycle notification.
    pub resyncs: u64,
    /// Notified messages that could not be fetched (left to reconciliation).
    pub fetch_failures: u64,
    /// Notifications whose message came decrypted, without a GET.
    pub rich: u64,
}

impl Counters {
    pub(super) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self) -> InboundCounts {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        InboundCounts {
            notifications: g(&self.notifications),
            refused: g(&self.refused),
            events_by_notification: g(&self.events_by_notification),
            events_by_reconcile: g(&self.events_by_reconcile),
            stale_skipped: g(&self.stale_skipped),
            subscriptions_created: g(&self.created),
            subscriptions_renewed: g(&self.renewed),
            subscriptions_recreated: g(&self.recreated),
            resyncs: g(&self.resyncs),
            fetch_failures: g(&self.fetch_failures),
            rich: g(&self.rich),
        }
    }
}

/// The last version seen of each message, bounded.
#[derive(Debug, Default)]
struct Seen {
    map: HashMap<(ChannelId, String), (Value, u64)>,
    tick: u64,
}

impl Seen {
    fn get(&self, key: &(ChannelId, String)) -> Option<&Value> {
        self.map.get(key).map(|(v, _)| v)
    }

    fn insert(&mut self, key: (ChannelId, String), message: &Value) {
        self.tick += 1;
        self.map.insert(key, (trim(message), self.tick));
        if self.map.len() > SEEN_CAP {
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.map.retain(|_, (_, t)| *t > cut);
        }
    }

    fn len(&self) -> usize {
        self.map.len()
    }
}

/// The fields of `message` the diff needs.
fn trim(message: &Value) -> Value {
    match message.as_object() {
        Some(obj) => Value::Object(
            obj.iter()
                .filter(|(k, _)| KEPT_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => message.clone(),
    }
}

/// `(lastModifiedDateTime in ms, etag)` of a message version.
fn version(message: &Value) -> (u64, Option<u64>) {
    let modified = message
        .get("lastModifiedDateTime")
        .and_then(Value::as_str)
        .and_then(graph::parse_datetime)
        .unwrap_or(0);
    let etag = message
        .get("etag")
        .and_then(Value::as_str)
        .and_then(|e| e.trim_matches('"').parse().ok());
    (modified, etag)
}

/// Whether `current` is a later version than `previous`.
fn is_newer(previous: &Value, current: &Value) -> bool {
    let (pm, pe) = version(previous);
    let (cm, ce) = version(current);
    if cm != pm {
        return cm > pm;
    }
    match (pe, ce) {
        (Some(p), Some(c)) => c > p,
        _ => {
            // Same time and no comparable etag: newer only if it differs.
            trim(previous) != trim(current)
        }
    }
}

fn created_ms(message: &Value) -> Option<u64> {
    message
        .get("createdDateTime")
        .and_then(Value::as_str)
        .and_then(graph::parse_datetime)
}

pub(super) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The cursor key of a conversation's history floor.
fn floor_key(channel: &ChannelId) -> ChannelId {
    ChannelId::new(format!("{channel}#since"))
}

/// The inbound state of one bridge.
#[derive(Debug)]
pub(super) struct InboundState {
    seen: Mutex<Seen>,
    /// Messages that were `call` commands (bounded like `seen`).
    commands: Mutex<HashSet<(ChannelId, String)>>,
    gate: tokio::sync::Mutex<()>,
    pub(super) counters: Counters,
    started_ms: u64,
}

impl InboundState {
    pub(super) fn new() -> Self {
        InboundState {
            seen: Mutex::new(Seen::default()),
            commands: Mutex::new(HashSet::new()),
            gate: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            started_ms: now_ms(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps only the call requests and commands among `events` when message
    /// `key` is (or was) a `call` command or a command to the bridge, and
    /// remembers that it is one.
    fn filter_commands(&self, key: &(ChannelId, String), events: &mut Vec<Inbound>) {
        let is_request = |e: &Inbound| {
            matches!(
                e.kind,
                InboundKind::CallRequest { .. } | InboundKind::Command { .. }
            )
        };
        let mut commands = self.commands.lock().unwrap_or_else(|p| p.into_inner());
        if events.iter().any(is_request) {
            if commands.len() >= SEEN_CAP {
                // At worst a later edit of a forgotten command is relayed
                // as an edit of a message the relay never saw (and dropped).
                commands.clear();
            }
            commands.insert(key.clone());
        } else if !commands.contains(key) {
            return;
        }
        events.retain(is_request);
    }
}

impl TeamsBridge {
    /// What the inbound side has done so far.
    pub fn inbound_counts(&self) -> InboundCounts {
        self.inbound.counters.snapshot()
    }

    /// How many message versions are remembered now.
    pub fn versions_remembered(&self) -> usize {
        self.inbound.seen().len()
    }

    /// The conversations to watch now: the relay's portal channels and the
    /// configured ones.
    pub(super) fn watched(&self, ctx: &BridgeContext) -> Vec<ChannelId> {
        let mut all = ctx.channels();
        for c in &self.watch {
            if !all.contains(c) {
                all.push(c.clone());
            }
        }
        all
    }

    /// The floor of `channel`: messages created before it are history.
    /// Stored the first time it is asked for.
    pub(super) fn floor(&self, ctx: &BridgeContext, channel: &ChannelId) -> u64 {
        let key = floor_key(channel);
        if let Some(ms) = ctx.cursors().get(&key).and_then(|s| s.parse().ok()) {
            return ms;
        }
        let now = now_ms();
        ctx.cursors().put(&key, &now.to_string());
        now
    }

    /// The gate every message version of a watched conversation passes.
    /// `Ok(false)` when the relay is shutting down.
    pub(super) async fn process(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        message: &Value,
        source: Source,
    ) -> Result<bool, BridgeError> {
        self.process_as(ctx, channel, message, source, Gate::Portal)
            .await
    }

    /// The gate for a one-on-one chat of the service account that is not a
    /// portal: new messages become commands (`direct`).
    pub(super) async fn process_direct(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        message: &Value,
        source: Source,
    ) -> Result<bool, BridgeError> {
        self.process_as(ctx, channel, message, source, Gate::Direct)
            .await
    }

    async fn process_as(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        message: &Value,
        source: Source,
        gate: Gate,
    ) -> Result<bool, BridgeError> {
        let Some(mid) = message.get("id").and_then(Value::as_str) else {
            tracing::warn!(bridge = %self.id, %channel, "A Teams message without an id was skipped.");
            return Ok(true);
        };
        let key = (channel.clone(), mid.to_owned());
        let _gate = self.inbound.gate.lock().await;
        let previous = self.inbound.seen().get(&key).cloned();
        if let Some(prev) = &previous
            && !is_newer(prev, message)
        {
            Counters::bump(&self.inbound.counters.stale_skipped);
            return Ok(true);
        }
        let floor = match gate {
            Gate::Portal => self.floor(ctx, channel),
            Gate::Direct => self.direct_floor(ctx),
        };
        let created = created_ms(message).unwrap_or(u64::MAX);
        if previous.is_none() && created < floor {
            // History from before this channel was watched.
            self.inbound.seen().insert(key, message);
            return Ok(true);
        }
        let mut events = self.events_for(channel, previous.as_ref(), message, created, gate);
        if gate == Gate::Direct {
            let marked = events
                .into_iter()
                .map(|e| self.mark_ours(channel, e))
                .collect();
            events = self.commands_of(marked);
        }
        self.inbound.filter_commands(&key, &mut events);
        self.name_people(&mut events).await;
        let n = events.len() as u64;
        for event in events {
            let event = self.mark_ours(channel, event);
            match ctx.inbound.push(event).await {
                Ok(()) => {}
                Err(IntakeError::ShuttingDown) => return Ok(false),
                Err(IntakeError::NotStored(why)) => {
                    // Not remembered: the next round reads it again.
                    return Err(BridgeError::transient(format!("event not stored: {why}")));
                }
            }
        }
        let counter = match source {
            Source::Notification => &self.inbound.counters.events_by_notification,
            Source::Reconcile => &self.inbound.counters.events_by_reconcile,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        self.inbound.seen().insert(key, message);
        Ok(true)
    }

    /// The events between `previous` (if seen) and `message`.
    fn events_for(
        &self,
        channel: &ChannelId,
        previous: Option<&Value>,
        message: &Value,
        created: u64,
        gate: Gate,
    ) -> Vec<Inbound> {
        let service = self.service_user();
        let our_users: Vec<String> = service.iter().cloned().collect();
        let resource = Conversation::of(channel).ok().map(|c| c.resource());
        let pctx = ParseContext {
            bridge: &self.id,
            tenant: None,
            our_users: &our_users,
            relay_marker: &self.relay_marker,
            // In a chat with the service account alone, every message is a
            // command (`direct`), `call` included.
            call_to: service.as_deref().filter(|_| gate == Gate::Portal),
        };
        let mut parsed = Vec::new();
        match previous {
            Some(prev) => parsed.push(graph::diff(Some(prev), message, &pctx)),
            None => {
                let deleted = message.get("deletedDateTime").is_some_and(|d| !d.is_null());
                let edited = message
                    .get("lastEditedDateTime")
                    .is_some_and(|d| !d.is_null());
                if edited && !deleted {
                    // First sight of an edited message: the message itself
                    // (dropped by the relay if it knows it), then the edit.
                    let mut original = message.clone();
                    if let Some(obj) = original.as_object_mut() {
                        obj.remove("lastEditedDateTime");
                        obj.remove("reactions");
                    }
                    parsed.push(graph::parse_message_in(&original, resource.as_ref(), &pctx));
                }
                parsed.push(graph::parse_message_in(message, resource.as_ref(), &pctx));
                if created >= self.inbound.started_ms
                    && let Some(reactions) = message.get("reactions")
                    && reactions.as_array().is_some_and(|r| !r.is_empty())
                {
                    // Created while we run: its reactions are new too.
                    let mut bare = message.clone();
                    if let Some(obj) = bare.as_object_mut() {
                        obj.insert("reactions".into(), Value::Array(Vec::new()));
                    }
                    let only_reactions = graph::diff(Some(&bare), message, &pctx);
                    parsed.push(only_reactions.map(|p| {
                        match p {
                            Parsed::Events(events) => Parsed::Events(
                                events
                                    .into_iter()
                                    .filter(|e| matches!(e.kind, InboundKind::Reaction { .. }))
                                    .collect(),
                            ),
                            other => other,
                        }
                    }));
                }
            }
        }
        let mut events = Vec::new();
        for p in parsed {
            match p {
                Ok(Parsed::Events(list)) => events.extend(list),
                Ok(Parsed::Ignored(reason)) => {
                    tracing::debug!(bridge = %self.id, reason = reason.label(), "Ignored a Teams message.");
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, %channel, reason = e.label(), "Rejected a Teams message.");
                }
            }
        }
        events
    }

    /// Marks as ours the posts (and their edits and deletes) this process made.
    fn mark_ours(&self, channel: &ChannelId, mut event: Inbound) -> Inbound {
        let id = match &event.kind {
            InboundKind::Message { id, .. } => Some(id),
            InboundKind::Edit { target, .. } | InboundKind::Delete { target } => Some(target),
            _ => None,
        };
        if id.is_some_and(|id| self.is_ours(channel, id)) {
            event.sender.is_ours = true;
        }
        event
    }

    // ------------------------------------------------------------ reconciliation

    /// Reads every page of one delta round from `start`; returns the
    /// messages and the new delta link.
    async fn delta_round(
        &self,
        start: &str,
        app: &Secret,
    ) -> Result<(Vec<Value>, String), BridgeError> {
        let mut messages = Vec::new();
        let mut next = start.to_owned();
        loop {
            let page = patiently(|| self.graph.get_json(&next, Bearer::App(app))).await?;
            let bytes = serde_json::to_vec(&page)
                .map_err(|e| BridgeError::transient(format!("delta page: {e}")))?;
            let page = graph::parse_delta_page(&bytes)
                .map_err(|e| BridgeError::transient(format!("delta page: {e:?}")))?;
            messages.extend(page.messages);
            match (page.next_link, page.delta_link) {
                (Some(link), _) => next = link,
                (None, Some(link)) => return Ok((messages, link)),
                (None, None) => {
                    return Err(BridgeError::transient(
                        "delta page without a next or delta link",
                    ));
                }
            }
        }
    }

    /// Remembers `messages` without events (a new or renewed baseline).
    fn baseline(&self, channel: &ChannelId, messages: &[Value]) {
        let mut seen = self.inbound.seen();
        for m in messages {
            if let Some(id) = m.get("id").and_then(Value::as_str) {
                seen.insert((channel.clone(), id.to_owned()), m);
            }
        }
    }

    /// One reconciliation of one channel or chat. `Ok(false)` on shutdown.
    pub(super) async fn reconcile(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        app: &Secret,
    ) -> Result<bool, BridgeError> {
        self.reconcile_for(ctx, channel, app, Source::Reconcile)
            .await
    }

    /// One reconciliation of one channel or chat, counted as brought by
    /// `source`. `Ok(false)` on shutdown.
    async fn reconcile_for(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        app: &Secret,
        source: Source,
    ) -> Result<bool, BridgeError> {
        let conv = Conversation::of(channel)?;
        if !conv.is_channel() {
            return self.reconcile_chat(ctx, channel, &conv, app).await;
        }
        let stored = ctx.cursors().get(channel);
        let start = stored
            .clone()
            .unwrap_or_else(|| format!("{}/delta", conv.messages()));
        let (messages, link) = match self.delta_round(&start, app).await {
            Err(e) if stored.is_some() && e.retry_kind() == RetryKind::Permanent => {
                // The delta link was refused (expired): start over from now.
                tracing::warn!(bridge = %self.id, %channel, error = %e, "Delta link refused; establishing a new one.");
                let (messages, link) = self
                    .delta_round(&format!("{}/delta", conv.messages()), app)
                    .await?;
                self.baseline(channel, &messages);
                ctx.cursors().put(channel, &link);
                return Ok(true);
            }
            other => other?,
        };
        if stored.is_none() {
            // First run: remember where we are without replaying history.
            self.floor(ctx, channel);
            self.baseline(channel, &messages);
            ctx.cursors().put(channel, &link);
            return Ok(true);
        }
        for message in &messages {
            if !self.process(ctx, channel, message, source).await? {
                return Ok(false);
            }
            // A root in the round may have new or changed replies.
            if let Some(root) = message.get("id").and_then(Value::as_str)
                && !self
                    .reconcile_replies(ctx, channel, &conv, root, app, source)
                    .await?
            {
                return Ok(false);
            }
        }
        ctx.cursors().put(channel, &link);
        Ok(true)
    }

    /// The newest replies of `root`, through the gate.
    async fn reconcile_replies(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        conv: &Conversation<'_>,
        root: &str,
        app: &Secret,
        source: Source,
    ) -> Result<bool, BridgeError> {
        let path = format!("{}/{root}/replies?$top={REPLIES_TOP}", conv.messages());
        let replies =
            match patiently(|| self.graph.get_all(&path, Bearer::App(app), REPLIES_TOP)).await {
                Ok(r) => r,
                Err(BridgeError::NotFound { .. }) => return Ok(true),
                Err(e) => return Err(e),
            };
        // Graph lists newest first; relay oldest first.
        for reply in replies.iter().rev() {
            if !self.process(ctx, channel, reply, source).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The newest page of a chat, through the gate.
    async fn reconcile_chat(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        conv: &Conversation<'_>,
        app: &Secret,
    ) -> Result<bool, BridgeError> {
        self.floor(ctx, channel);
        let path = format!("{}?$top={CHAT_TOP}", conv.messages());
        let messages = self
            .graph
            .get_all(&path, Bearer::App(app), CHAT_TOP)
            .await?;
        for message in messages.iter().rev() {
            if !self
                .process(ctx, channel, message, Source::Reconcile)
                .await?
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// One reconciliation of every watched conversation. `Ok(false)` on
    /// shutdown.
    pub(super) async fn reconcile_all(&self, ctx: &BridgeContext) -> Result<bool, BridgeError> {
        let app = self.app.token().await?;
        for channel in self.watched(ctx) {
            match self.reconcile(ctx, &channel, &app).await {
                Ok(true) => {}
                Ok(false) => return Ok(false),
                Err(e) if e.retry_kind() == RetryKind::Reauthenticate => {
                    self.app.invalidate().await;
                    return Err(e);
                }
                Err(e) => {
                    tracing::warn!(bridge = %self.id, %channel, error = %e, "Reconciling a Teams conversation failed.");
                }
            }
        }
        match self.reconcile_direct(ctx).await {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => {
                // Commands wait for the next round; the portals go on.
                tracing::warn!(bridge = %self.id, error = %e, "Reconciling the service account's one-on-one chats failed.");
            }
        }
        Ok(true)
    }

    // ------------------------------------------------------------ notifications

    /// Passes a message a notification carried (decrypted) through the gate.
    pub(super) async fn process_notified(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        message: &Value,
    ) -> Result<bool, BridgeError> {
        let Some(channel) = resource.channel_id() else {
            return Ok(true);
        };
        let Some(gate) = self.gate_of(ctx, &channel).await? else {
            return Ok(true);
        };
        Counters::bump(&self.inbound.counters.rich);
        self.process_as(ctx, &channel, message, Source::Notification, gate)
            .await
    }

    /// The gate of a notified conversation: a watched one's, a direct chat's
    /// (a one-on-one chat of the service account without a portal), or none.
    async fn gate_of(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
    ) -> Result<Option<Gate>, BridgeError> {
        if self.watched(ctx).contains(channel) {
            return Ok(Some(Gate::Portal));
        }
        if self.is_direct_chat(channel).await? {
            return Ok(Some(Gate::Direct));
        }
        tracing::debug!(bridge = %self.id, %channel, "A notification for a conversation not bridged was ignored.");
        Ok(None)
    }

    /// Fetches the message a change notification names and passes it
    /// through the gate. A message Graph no longer returns after a
    /// `deleted` notification is reported deleted from its last version.
    ///
    /// In a channel, a new or changed message is read by a delta round from
    /// the stored link instead (it holds the notified message and whatever
    /// came before it), so that a message whose notification was lost or is
    /// late never reaches the relay after later ones.
    pub(super) async fn fetch_notified(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        deleted: bool,
    ) -> Result<bool, BridgeError> {
        let Some(channel) = resource.channel_id() else {
            return Ok(true);
        };
        if !self.watched(ctx).contains(&channel) {
            return self.fetch_direct_notified(ctx, resource, deleted).await;
        }
        if self.reads_by_delta(ctx, &channel, deleted) {
            let app = self.app.token().await?;
            return self
                .reconcile_for(ctx, &channel, &app, Source::Notification)
                .await;
        }
        let Some(read) = self.notified_read(ctx, resource, deleted)? else {
            return Ok(true);
        };
        let message = self.read_notified(&read.path).await;
        self.apply_notified(ctx, &read, deleted, message).await
    }

    /// In a channel, a new or changed message is read by a delta round from
    /// the stored link (it holds the notified message and whatever came
    /// before it), so that a message whose notification was lost or is late
    /// never reaches the relay after later ones.
    fn reads_by_delta(&self, ctx: &BridgeContext, channel: &ChannelId, deleted: bool) -> bool {
        !deleted
            && Conversation::of(channel).is_ok_and(|c| c.is_channel())
            && ctx.cursors().get(channel).is_some()
    }

    /// A notification for a conversation that is no portal: a one-on-one
    /// chat of the service account brings a command; anything else is
    /// ignored.
    async fn fetch_direct_notified(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        deleted: bool,
    ) -> Result<bool, BridgeError> {
        let Some(channel) = resource.channel_id() else {
            return Ok(true);
        };
        if !self.is_direct_chat(&channel).await? {
            tracing::debug!(bridge = %self.id, %channel, "A notification for a conversation not bridged was ignored.");
            return Ok(true);
        }
        if deleted {
            // A command that was deleted has been carried out already.
            return Ok(true);
        }
        let conv = Conversation::of(&channel)?;
        let path = match (&resource.message, &resource.reply) {
            (Some(root), Some(reply)) => format!("{}/{root}/replies/{reply}", conv.messages()),
            (Some(id), None) => format!("{}/{id}", conv.messages()),
            _ => return Ok(true),
        };
        let message = match self.read_notified(&path).await {
            Ok(m) => m,
            Err(BridgeError::NotFound { .. }) => return Ok(true),
            Err(e) => return Err(e),
        };
        self.process_as(ctx, &channel, &message, Source::Notification, Gate::Direct)
            .await
    }

    /// What reading a notified message of a portal conversation takes:
    /// `None` when the notification is for a conversation that is no
    /// portal, or names no message.
    pub(super) fn notified_read(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        deleted: bool,
    ) -> Result<Option<NotifiedRead>, BridgeError> {
        let Some(channel) = resource.channel_id() else {
            return Ok(None);
        };
        if !self.watched(ctx).contains(&channel) || self.reads_by_delta(ctx, &channel, deleted) {
            return Ok(None);
        }
        let conv = Conversation::of(&channel)?;
        let (path, graph_id) = match (&resource.message, &resource.reply) {
            (Some(root), Some(reply)) => (
                format!("{}/{root}/replies/{reply}", conv.messages()),
                reply.clone(),
            ),
            (Some(id), None) => (format!("{}/{id}", conv.messages()), id.clone()),
            _ => return Ok(None),
        };
        Ok(Some(NotifiedRead {
            channel,
            path,
            graph_id,
        }))
    }

    /// Reads a notified message with the app token
    /// ([GET chatMessage](https://learn.microsoft.com/graph/api/chatmessage-get)).
    pub(super) async fn read_notified(&self, path: &str) -> Result<Value, BridgeError> {
        let app = self.app.token().await?;
        self.graph.get_json(path, Bearer::App(&app)).await
    }

    /// Passes what [`TeamsBridge::read_notified`] returned through the gate.
    pub(super) async fn apply_notified(
        &self,
        ctx: &BridgeContext,
        read: &NotifiedRead,
        deleted: bool,
        message: Result<Value, BridgeError>,
    ) -> Result<bool, BridgeError> {
        let channel = &read.channel;
        let message = match message {
            Ok(m) => m,
            Err(BridgeError::NotFound { .. }) if deleted => {
                let previous = self
                    .inbound
                    .seen()
                    .get(&(channel.clone(), read.graph_id.clone()))
                    .cloned();
                let Some(mut gone) = previous else {
                    return Ok(true);
                };
                let now = iso_now();
                if let Some(obj) = gone.as_object_mut() {
                    obj.insert("deletedDateTime".into(), Value::String(now.clone()));
                    obj.insert("lastModifiedDateTime".into(), Value::String(now));
                    obj.remove("etag");
                }
                gone
            }
            Err(e) => return Err(e),
        };
        self.process(ctx, channel, &message, Source::Notification)
            .await
    }
}

/// Where a notified message is read, and which conversation it belongs to.
#[derive(Debug, Clone)]
pub(super) struct NotifiedRead {
    channel: ChannelId,
    /// The Graph path of the message (or reply).
    pub(super) path: String,
    /// The message's (or reply's) own id.
    graph_id: String,
}

/// How many 429s one read inside a reconciliation round waits out before
/// the round gives up (and the next one starts from the same position).
const PATIENCE: u32 = 8;

/// Runs `read`, waiting out `429 Retry-After` answers instead of failing the
/// round: a round that restarted on every 429 would never get past the
/// first few reads of a busy channel while the tenant is throttled.
async fn patiently<T, F, Fut>(read: F) -> Result<T, BridgeError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, BridgeError>>,
{
    let mut waited = 0;
    loop {
        match read().await {
            Err(BridgeError::RateLimited { retry_after }) if waited < PATIENCE => {
                waited += 1;
                tokio::time::sleep(retry_after).await;
            }
            other => return other,
        }
    }
}

/// Now as Graph writes it (`2026-11-22T10:00:00.000Z`).
fn iso_now() -> String {
    iso_ms(now_ms())
}

/// A time in ms since the epoch as Graph writes it.
pub(super) fn iso_ms(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn versions_compare_by_time_then_etag() {
        let a = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:00.000Z","etag":"5"});
        let b = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:01.000Z","etag":"6"});
        let c = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:01.000Z","etag":"7"});
        assert!(is_newer(&a, &b));
        assert!(!is_newer(&b, &a), "an older version is stale");
        assert!(!is_newer(&b, &b), "the same version is not newer");
        assert!(is_newer(&b, &c), "same time, later etag");
    }

    #[test]
    fn the_cache_keeps_only_what_the_diff_reads_and_stays_bounded() {
        let mut seen = Seen::default();
        let m = json!({"id":"1","body":{"content":"x"},"mentions":[1,2,3],"webUrl":"u"});
        seen.insert((ChannelId::new("c"), "1".into()), &m);
        let kept = seen
            .get(&(ChannelId::new("c"), "1".into()))
            .expect("kept")
            .clone();
        assert_eq!(kept, json!({"id":"1","body":{"content":"x"}}));
        for i in 0..(SEEN_CAP + 10) {
            seen.insert((ChannelId::new("c"), i.to_string()), &m);
        }
        assert!(seen.len() <= SEEN_CAP, "{} entries", seen.len());
        assert!(
            seen.get(&(ChannelId::new("c"), (SEEN_CAP + 9).to_string()))
                .is_some(),
            "the newest entries stay"
        );
    }

    #[test]
    fn iso_now_reads_back() {
        let s = iso_now();
        let ms = graph::parse_datetime(&s).expect("parses");
        assert!(ms.abs_diff(now_ms()) < 5_000, "{s}");
    }
}
