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
//! - **Exactly once** when both paths see a message: the gate is serialised
//!   per conversation;
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
//!   What is kept of a version is a [`Known`] (its time and etag, hashes of
//!   what a diff compares, its reactions), a few hundred bytes, not the
//!   message.
//! - **Rounds**: the versions of one reconciliation round (or one notified
//!   message) pass the gate as a [`Round`], their events handed to the relay
//!   without waiting for each to be stored; a delta link is stored only once
//!   all of them are, and a version whose events were refused is forgotten
//!   with those after it.
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
use crate::graph::{self, Known, ParseContext, Parsed, ResourceRef};
use serde_json::Value;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use switchboard_model::bridge::Stored;
use switchboard_model::{
    BridgeContext, BridgeError, ChannelId, Inbound, InboundKind, IntakeError, RetryKind,
};

/// How many message versions are remembered per bridge.
pub const SEEN_CAP: usize = 20_000;
/// Replies read per root during reconciliation (Graph's `$top` maximum).
const REPLIES_TOP: usize = 50;
/// Chat messages read per chat during reconciliation.
const CHAT_TOP: usize = 50;
/// Message versions whose events may be submitted to the relay and not yet
/// stored, in one [`Round`].
pub(super) const IN_FLIGHT: usize = 128;
/// Replies of roots read ahead of the gate in a delta round, and at most
/// this many reads of replies at once over all rounds.
const REPLIES_AHEAD: usize = 16;

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
    pub(super) covered: AtomicU64,
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
    /// Notifications of a channel change that a delta round begun after
    /// them had brought already (no read of their own).
    pub covered: u64,
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
            covered: g(&self.covered),
        }
    }
}

/// The last version seen of each message ([`Known`]: its version and what
/// a diff compares, not the message), bounded.
#[derive(Debug, Default)]
struct Seen {
    map: HashMap<(ChannelId, String), (Known, u64)>,
    tick: u64,
}

impl Seen {
    fn get(&self, key: &(ChannelId, String)) -> Option<&Known> {
        self.map.get(key).map(|(v, _)| v)
    }

    fn insert(&mut self, key: (ChannelId, String), known: Known) {
        self.tick += 1;
        self.map.insert(key, (known, self.tick));
        if self.map.len() > SEEN_CAP {
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            ticks.sort_unstable();
            let cut = ticks.get(ticks.len() / 2).copied().unwrap_or(0);
            self.map.retain(|_, (_, t)| *t > cut);
        }
    }

    /// Puts back what was there before a version that was not stored.
    fn restore(&mut self, key: (ChannelId, String), before: Option<Known>) {
        match before {
            Some(known) => self.insert(key, known),
            None => {
                self.map.remove(&key);
            }
        }
    }

    fn len(&self) -> usize {
        self.map.len()
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
    /// The gate of each conversation: versions of one conversation pass
    /// one round at a time; conversations do not wait for each other.
    gates: Mutex<HashMap<ChannelId, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// Reads of replies running at once, all rounds together.
    reply_reads: tokio::sync::Semaphore,
    /// Per channel, when the last delta round that stored everything it
    /// read began: a notification received before that is covered by it.
    covered: Mutex<HashMap<ChannelId, Instant>>,
    pub(super) counters: Counters,
    started_ms: u64,
}

impl InboundState {
    pub(super) fn new() -> Self {
        InboundState {
            seen: Mutex::new(Seen::default()),
            commands: Mutex::new(HashSet::new()),
            gates: Mutex::new(HashMap::new()),
            reply_reads: tokio::sync::Semaphore::new(REPLIES_AHEAD),
            covered: Mutex::new(HashMap::new()),
            counters: Counters::default(),
            started_ms: now_ms(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the gate of `channel` for a [`Round`].
    pub(super) async fn round(&self, channel: &ChannelId) -> Round<'_> {
        let gate = self
            .gates
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(channel.clone())
            .or_default()
            .clone();
        Round {
            state: self,
            _gate: gate.lock_owned().await,
            in_flight: VecDeque::new(),
        }
    }

    /// Whether a delta round of `channel` that began after `received` has
    /// stored everything it read.
    pub(super) fn covers(&self, channel: &ChannelId, received: Instant) -> bool {
        self.covered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(channel)
            .is_some_and(|began| *began > received)
    }

    fn cover(&self, channel: &ChannelId, began: Instant) {
        let mut covered = self.covered.lock().unwrap_or_else(|p| p.into_inner());
        let at = covered.entry(channel.clone()).or_insert(began);
        if *at < began {
            *at = began;
        }
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

/// Message versions passed through the gate together: a reconciliation
/// round, or one notified message, of one conversation. The round holds the
/// conversation's gate from start to [`Round::finish`], so no other path
/// compares a version with one whose events are not stored yet.
///
/// Each version's events are submitted to the relay in order without
/// waiting for them to be stored ([`InboundSink::submit`]), up to
/// [`IN_FLIGHT`] versions at once, and the version is remembered at once, so
/// that a later version of the same message in the round diffs against it.
/// The relay stores what it is handed in order. Versions are settled oldest
/// first: when one is not stored, it and every version after it are
/// forgotten again (the cache goes back to what it held before them), and
/// the round fails, so its caller does not move a delta link past them; the
/// next round reads them again, and what was stored meanwhile comes back
/// with the same event ids, which the relay drops. A round dropped before
/// it is finished (shutdown, an error on the way) forgets what it has not
/// settled the same way.
///
/// [`InboundSink::submit`]: switchboard_model::InboundSink::submit
#[must_use = "a round's versions are only kept once it is finished"]
pub(super) struct Round<'a> {
    state: &'a InboundState,
    _gate: tokio::sync::OwnedMutexGuard<()>,
    in_flight: VecDeque<Passed>,
}

/// A version in a [`Round`] whose events may not be stored yet.
struct Passed {
    key: (ChannelId, String),
    /// What the cache held before this version.
    before: Option<Known>,
    stored: Vec<Stored>,
    source: Source,
}

impl Round<'_> {
    /// Remembers `known` for `key` once `stored` resolve.
    fn pass(
        &mut self,
        key: (ChannelId, String),
        known: Known,
        stored: Vec<Stored>,
        source: Source,
    ) {
        let before = {
            let mut seen = self.state.seen();
            let before = seen.get(&key).cloned();
            seen.insert(key.clone(), known);
            before
        };
        self.in_flight.push_back(Passed {
            key,
            before,
            stored,
            source,
        });
    }

    /// Waits until the oldest version's events are stored. `Ok(false)` when
    /// the relay is shutting down.
    async fn settle_one(&mut self) -> Result<bool, BridgeError> {
        let Some(mut next) = self.in_flight.pop_front() else {
            return Ok(true);
        };
        let n = next.stored.len() as u64;
        while !next.stored.is_empty() {
            let stored = next.stored.remove(0);
            let refused = match stored.await {
                Ok(()) => continue,
                Err(IntakeError::ShuttingDown) => Ok(false),
                Err(IntakeError::NotStored(why)) => {
                    // Not remembered: the next round reads it again.
                    Err(BridgeError::transient(format!("event not stored: {why}")))
                }
            };
            self.in_flight.push_front(next);
            self.forget_unsettled();
            return refused;
        }
        let counter = match next.source {
            Source::Notification => &self.state.counters.events_by_notification,
            Source::Reconcile => &self.state.counters.events_by_reconcile,
        };
        counter.fetch_add(n, Ordering::Relaxed);
        Ok(true)
    }

    /// Settles versions until at most `limit` are in flight.
    async fn settle_to(&mut self, limit: usize) -> Result<bool, BridgeError> {
        while self.in_flight.len() > limit {
            if !self.settle_one().await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Waits until every version's events are stored. `Ok(false)` when the
    /// relay is shutting down; an error when one was not stored (that one
    /// and those after it are forgotten).
    pub(super) async fn finish(mut self) -> Result<bool, BridgeError> {
        self.settle_to(0).await
    }

    /// Forgets every version not settled, newest first.
    fn forget_unsettled(&mut self) {
        if self.in_flight.is_empty() {
            return;
        }
        let mut seen = self.state.seen();
        while let Some(p) = self.in_flight.pop_back() {
            seen.restore(p.key, p.before);
        }
    }
}

impl Drop for Round<'_> {
    fn drop(&mut self) {
        self.forget_unsettled();
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

    /// The gate every message version of a watched conversation passes, on
    /// its own (a round of one). `Ok(false)` when the relay is shutting down.
    pub(super) async fn process(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        message: &Value,
        source: Source,
    ) -> Result<bool, BridgeError> {
        let mut round = self.inbound.round(channel).await;
        if !self
            .pass(ctx, &mut round, channel, message, source, Gate::Portal)
            .await?
        {
            return Ok(false);
        }
        round.finish().await
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
        let mut round = self.inbound.round(channel).await;
        if !self
            .pass(ctx, &mut round, channel, message, source, Gate::Direct)
            .await?
        {
            return Ok(false);
        }
        round.finish().await
    }

    /// Passes one version through the gate in `round`: compares it with the
    /// last version seen, submits the events of the difference and
    /// remembers it (until the round finds its events not stored).
    /// `Ok(false)` when the relay is shutting down.
    async fn pass(
        &self,
        ctx: &BridgeContext,
        round: &mut Round<'_>,
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
        let previous = self.inbound.seen().get(&key).cloned();
        if let Some(prev) = &previous
            && !prev.is_older_than(message)
        {
            Counters::bump(&self.inbound.counters.stale_skipped);
            return Ok(true);
        }
        let floor = match gate {
            Gate::Portal => self.floor(ctx, channel),
            Gate::Direct => self.direct_floor(ctx),
        };
        let created = created_ms(message).unwrap_or(u64::MAX);
        let known = Known::of(message, &self.relay_marker);
        if previous.is_none() && created < floor {
            // History from before this channel was watched.
            round.pass(key, known, Vec::new(), source);
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
        let mut stored = Vec::with_capacity(events.len());
        for event in events {
            let event = self.mark_ours(channel, event);
            match ctx.inbound.submit(event).await {
                Ok(s) => stored.push(s),
                Err(_) => return Ok(false),
            }
        }
        round.pass(key, known, stored, source);
        round.settle_to(IN_FLIGHT).await
    }

    /// The events between `previous` (if seen) and `message`.
    fn events_for(
        &self,
        channel: &ChannelId,
        previous: Option<&Known>,
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
            Some(prev) => parsed.push(graph::diff_known(prev, message, &pctx)),
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
            let page = graph::delta_page_of(page)
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
                seen.insert(
                    (channel.clone(), id.to_owned()),
                    Known::of(m, &self.relay_marker),
                );
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
        let began = Instant::now();
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
        // A root in the round may have new or changed replies: they are
        // read a few roots ahead, and pass the gate after their root.
        let roots = messages
            .iter()
            .filter_map(|m| m.get("id").and_then(Value::as_str))
            .map(|root| format!("{}/{root}/replies?$top={REPLIES_TOP}", conv.messages()));
        let mut replies = RepliesAhead::new(self.this.upgrade(), app, roots);
        let mut round = self.inbound.round(channel).await;
        let passed = self
            .pass_delta(ctx, &mut round, channel, &messages, &mut replies, source)
            .await;
        // What was handed to the relay is settled even when the round
        // stopped on the way (a failed read of replies), so that it is not
        // reported again by the next round.
        let settled = round.finish().await;
        if !passed? || !settled? {
            return Ok(false);
        }
        ctx.cursors().put(channel, &link);
        self.inbound.cover(channel, began);
        Ok(true)
    }

    /// Passes a delta round's messages, each root followed by its replies,
    /// through the gate in `round`. `Ok(false)` on shutdown.
    async fn pass_delta<I: Iterator<Item = String>>(
        &self,
        ctx: &BridgeContext,
        round: &mut Round<'_>,
        channel: &ChannelId,
        messages: &[Value],
        replies: &mut RepliesAhead<I>,
        source: Source,
    ) -> Result<bool, BridgeError> {
        for message in messages {
            if !self
                .pass(ctx, round, channel, message, source, Gate::Portal)
                .await?
            {
                return Ok(false);
            }
            if message.get("id").and_then(Value::as_str).is_none() {
                continue;
            }
            // Graph lists newest first; relay oldest first.
            for reply in replies.next().await?.iter().rev() {
                if !self
                    .pass(ctx, round, channel, reply, source, Gate::Portal)
                    .await?
                {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// The newest replies at `path` (a root's replies), waiting out 429s;
    /// none when the root is gone.
    async fn read_replies(&self, path: &str, app: &Secret) -> Result<Vec<Value>, BridgeError> {
        match patiently(|| self.graph.get_all(path, Bearer::App(app), REPLIES_TOP)).await {
            Ok(r) => Ok(r),
            Err(BridgeError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
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
        let mut round = self.inbound.round(channel).await;
        for message in messages.iter().rev() {
            if !self
                .pass(
                    ctx,
                    &mut round,
                    channel,
                    message,
                    Source::Reconcile,
                    Gate::Portal,
                )
                .await?
            {
                return Ok(false);
            }
        }
        round.finish().await
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
        match gate {
            Gate::Portal => {
                self.process(ctx, &channel, message, Source::Notification)
                    .await
            }
            Gate::Direct => {
                self.process_direct(ctx, &channel, message, Source::Notification)
                    .await
            }
        }
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
    ///
    /// A delta round that began after the notification was `received` and
    /// stored everything it read has brought the change already: such a
    /// notification costs nothing more (a burst of notifications for one
    /// channel is one or two rounds, not one each).
    pub(super) async fn fetch_notified(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        deleted: bool,
        received: Instant,
    ) -> Result<bool, BridgeError> {
        let Some(channel) = resource.channel_id() else {
            return Ok(true);
        };
        if !self.watched(ctx).contains(&channel) {
            return self.fetch_direct_notified(ctx, resource, deleted).await;
        }
        if self.reads_by_delta(ctx, &channel, deleted) {
            return self.notified_round(ctx, &channel, received).await;
        }
        let Some(read) = self.notified_read(ctx, resource, deleted)? else {
            return Ok(true);
        };
        let message = self.read_notified(&read.path).await;
        self.apply_notified(ctx, &read, deleted, message).await
    }

    /// The channel whose delta round answers a change notification for
    /// `resource` (a new or changed message of a watched channel with a
    /// delta link), if any.
    pub(super) fn delta_channel(
        &self,
        ctx: &BridgeContext,
        resource: &ResourceRef,
        deleted: bool,
    ) -> Option<ChannelId> {
        resource
            .channel_id()
            .filter(|c| self.watched(ctx).contains(c) && self.reads_by_delta(ctx, c, deleted))
    }

    /// The delta round of `channel` for a notification received at
    /// `received`, unless a round that began later has covered it.
    /// `Ok(false)` on shutdown.
    pub(super) async fn notified_round(
        &self,
        ctx: &BridgeContext,
        channel: &ChannelId,
        received: Instant,
    ) -> Result<bool, BridgeError> {
        if self.inbound.covers(channel, received) {
            Counters::bump(&self.inbound.counters.covered);
            return Ok(true);
        }
        let app = self.app.token().await?;
        self.reconcile_for(ctx, channel, &app, Source::Notification)
            .await
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
        self.process_direct(ctx, &channel, &message, Source::Notification)
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
                let Some(known) = previous else {
                    return Ok(true);
                };
                known.gone(
                    &read.graph_id,
                    conversation_field(channel)?,
                    &iso_now(),
                    &self.relay_marker,
                )
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

/// The field by which a chatMessage names `channel`: `channelIdentity`
/// (`{teamId, channelId}`) or `chatId`.
fn conversation_field(channel: &ChannelId) -> Result<(&'static str, Value), BridgeError> {
    Ok(match Conversation::of(channel)? {
        Conversation::Channel { team, channel } => (
            "channelIdentity",
            serde_json::json!({ "teamId": team, "channelId": channel }),
        ),
        Conversation::Chat(chat) => ("chatId", Value::String(chat.to_owned())),
    })
}

/// The replies of a delta round's roots, read up to [`REPLIES_AHEAD`] roots
/// ahead of the gate and handed out in the roots' order. Reads still
/// running when it is dropped are stopped.
struct RepliesAhead<I> {
    bridge: Option<std::sync::Arc<TeamsBridge>>,
    app: Secret,
    paths: I,
    reading: VecDeque<tokio::task::JoinHandle<Result<Vec<Value>, BridgeError>>>,
}

impl<I: Iterator<Item = String>> RepliesAhead<I> {
    fn new(bridge: Option<std::sync::Arc<TeamsBridge>>, app: &Secret, paths: I) -> Self {
        let mut ahead = RepliesAhead {
            bridge,
            app: app.clone(),
            paths,
            reading: VecDeque::new(),
        };
        ahead.fill();
        ahead
    }

    fn fill(&mut self) {
        let Some(bridge) = &self.bridge else {
            return;
        };
        while self.reading.len() < REPLIES_AHEAD {
            let Some(path) = self.paths.next() else {
                return;
            };
            let (bridge, app) = (bridge.clone(), self.app.clone());
            self.reading.push_back(tokio::spawn(async move {
                // Rounds of several channels at once share the budget.
                let _permit = bridge.inbound.reply_reads.acquire().await;
                bridge.read_replies(&path, &app).await
            }));
        }
    }

    /// The replies of the next root.
    async fn next(&mut self) -> Result<Vec<Value>, BridgeError> {
        let Some(reading) = self.reading.pop_front() else {
            return Err(BridgeError::transient("the bridge is shutting down"));
        };
        let replies = reading
            .await
            .unwrap_or_else(|e| Err(BridgeError::transient(format!("reading replies: {e}"))));
        self.fill();
        replies
    }
}

impl<I> Drop for RepliesAhead<I> {
    fn drop(&mut self) {
        for reading in &self.reading {
            reading.abort();
        }
    }
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

    fn is_newer(previous: &Value, current: &Value) -> bool {
        Known::of(previous, "").is_older_than(current)
    }

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
    fn without_an_etag_a_version_at_the_same_time_is_newer_only_if_it_differs() {
        let a = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:00.000Z","body":{"content":"x"},"webUrl":"u"});
        let same = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:00.000Z","body":{"content":"x"},"webUrl":"v"});
        let other = json!({"id":"1","lastModifiedDateTime":"2026-01-01T00:00:00.000Z","body":{"content":"y"}});
        assert!(!is_newer(&a, &a));
        assert!(
            !is_newer(&a, &same),
            "a field the gate does not compare is no new version"
        );
        assert!(is_newer(&a, &other));
    }

    #[test]
    fn the_cache_keeps_a_small_record_and_stays_bounded() {
        let mut seen = Seen::default();
        let m =
            json!({"id":"1","body":{"content":"x".repeat(2000)},"mentions":[1,2,3],"webUrl":"u"});
        let known = Known::of(&m, "");
        assert!(
            std::mem::size_of::<Known>() < 160,
            "{} bytes",
            std::mem::size_of::<Known>()
        );
        seen.insert((ChannelId::new("c"), "1".into()), known.clone());
        assert_eq!(seen.get(&(ChannelId::new("c"), "1".into())), Some(&known));
        for i in 0..(SEEN_CAP + 10) {
            seen.insert((ChannelId::new("c"), i.to_string()), known.clone());
        }
        assert!(seen.len() <= SEEN_CAP, "{} entries", seen.len());
        assert!(
            seen.get(&(ChannelId::new("c"), (SEEN_CAP + 9).to_string()))
                .is_some(),
            "the newest entries stay"
        );
    }

    #[test]
    fn a_restored_entry_is_what_was_there_before() {
        let mut seen = Seen::default();
        let key = (ChannelId::new("c"), "1".to_owned());
        let v1 = Known::of(&json!({"id":"1","etag":"1"}), "");
        let v2 = Known::of(&json!({"id":"1","etag":"2"}), "");
        seen.insert(key.clone(), v1.clone());
        seen.insert(key.clone(), v2);
        seen.restore(key.clone(), Some(v1.clone()));
        assert_eq!(seen.get(&key), Some(&v1));
        seen.restore(key.clone(), None);
        assert_eq!(seen.get(&key), None);
    }

    #[test]
    fn iso_now_reads_back() {
        let s = iso_now();
        let ms = graph::parse_datetime(&s).expect("parses");
        assert!(ms.abs_diff(now_ms()) < 5_000, "{s}");
    }
}
