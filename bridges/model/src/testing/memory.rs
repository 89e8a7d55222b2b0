//! A programmable chat platform that lives in memory or in a directory, and
//! the [`Bridge`] that connects Switchboard to it.
//!
//! [`MemoryPlatform`] is the platform itself: what people on it do
//! ([`MemoryPlatform::post`], [`MemoryPlatform::inject`]…), what the bridge
//! posted there ([`MemoryPlatform::deliveries`], [`MemoryPlatform::messages`]),
//! and how it misbehaves ([`MemoryPlatform::fail_next`], [`EchoMode`]…).
//! [`MemoryBridge`] is the connector: its `run` loop reads the platform's inbox
//! and pushes each event into the relay, acknowledging it only once the relay
//! has stored it; its `deliver` carries out operations, once per op id.
//!
//! # Files
//!
//! Opened with [`MemoryPlatform::open`], the platform keeps three append-only
//! JSON-lines files in its directory, shared by every process that opens it
//! (a daemon child process and the test driving it):
//!
//! | file | one line per | written by |
//! |---|---|---|
//! | `inbox.jsonl` | [`Inbound`] event, as serialised by the model | `inject`, `post`…, echoes |
//! | `acked.jsonl` | [`EventId`] (a JSON string) the relay durably stored | the bridge's `run` loop |
//! | `delivered.jsonl` | [`DeliveryRecord`] of a successful delivery | the bridge's `deliver` |
//!
//! Files of `put_media` go to `media/<hex of the id>`.
//!
//! Each line is appended with one `write_all` on a file opened in append mode,
//! so concurrent writers never interleave. A reader stops at the last `'\n'`:
//! a trailing line without one is still being written and is read once it is
//! complete. Nothing is fsynced: tests kill processes, not machines.
//!
//! Semantics follow Slack's Socket Mode: every inbox event not in the acked set
//! is delivered (again) whenever `run` starts, so an event the relay had not
//! stored when the daemon died comes back after the restart. Delivery is
//! idempotent per [`OpId`] across restarts: at open the platform loads every op
//! id from `delivered.jsonl`, and a repeated op returns the first result
//! without posting again.
//!
//! Failure programming, echo mode, removed channels, required tokens and the
//! attempt log are held in memory by the handle that set them, so they act on
//! deliveries made through that handle (or its clones) only.

use super::unique_id;
use crate::bridge::{Bridge, BridgeContext, BridgeState, Capabilities, IntakeError, MediaSource};
use crate::call::{CallProvider, Meeting};
use crate::error::BridgeError;
use crate::event::{Attachment, ChannelInfo, Inbound, InboundKind, Message, Origin};
use crate::ids::{BridgeId, ChannelId, EventId, MessageId, OpId, UserId};
use crate::outbound::{Delivered, OutboundKind, OutboundOp};
use crate::person::{Person, PuppetRef, Sender};
use crate::time::Timestamp;
use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::warn;

/// The inbox file: one [`Inbound`] per line.
pub const INBOX_FILE: &str = "inbox.jsonl";
/// The acknowledgement file: one [`EventId`] per line.
pub const ACKED_FILE: &str = "acked.jsonl";
/// The delivery file: one [`DeliveryRecord`] per line.
pub const DELIVERED_FILE: &str = "delivered.jsonl";
/// The directory holding files stored with [`MemoryPlatform::put_media`].
pub const MEDIA_DIR: &str = "media";
/// The user id and name of the platform's bot, the author of every delivery
/// that has no puppet.
pub const BOT_USER: &str = "memory-bot";

/// How many events the run loop keeps in flight before it waits for the
/// oldest to be stored.
const PIPELINE: usize = 256;
/// How often an idle run loop looks at a file-backed inbox.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// What a successful delivery did, as one line of `delivered.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryKind {
    /// Posted a message.
    Send,
    /// Replaced the text of `target`.
    Edit,
    /// Deleted `target`.
    Delete,
    /// Added reaction `key` to `target`.
    React,
    /// Removed reaction `key` from `target`.
    Unreact,
    /// Posted a call invite (no `target`) or edited the invite in `target`.
    Call,
    /// Set the channel's name, topic or avatar; `text` holds the
    /// [`ChannelInfo`] as JSON.
    ChannelInfo,
}

/// One meeting a memory bridge created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MeetingRecord {
    /// The idempotency key it was asked with.
    pub key: String,
    /// The channel it was asked for.
    pub channel: ChannelId,
    /// Its title.
    pub title: String,
    /// The organiser's name, when one was given.
    pub organiser: Option<String>,
}

/// One successful delivery, as the platform recorded it. A line of
/// `delivered.jsonl` looks like
///
/// ```json
/// {"op":"op1","channel":"general","ids":["m-…-7"],"kind":"send","author":"puppet-slack_acme-U1","author_name":"Ann","text":"hi","at_ms":1700000000000}
/// ```
///
/// Optional fields (`author_name`, `target`, `key`, `reply_to`,
/// `thread_root`, `files`) are left out when empty; `author` and `text` are
/// always present, `null` when absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryRecord {
    /// The op that was delivered.
    pub op: OpId,
    /// The channel it was delivered to.
    pub channel: ChannelId,
    /// The ids the delivery returned (exactly [`Delivered::ids`]): the new
    /// message for a send or a first call invite, the new reaction for a
    /// react, nothing otherwise.
    pub ids: Vec<MessageId>,
    /// What was done.
    pub kind: DeliveryKind,
    /// The puppet user it was done as; `None` for the bot.
    pub author: Option<UserId>,
    /// The name shown for the author; `None` for the bot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author_name: Option<String>,
    /// The plain text of the new body (send, edit, call); `None` otherwise.
    pub text: Option<String>,
    /// The messages acted on (edit, delete, react, unreact, later call states).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target: Vec<MessageId>,
    /// The reaction key (react, unreact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The message a sent message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// The thread a sent message belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread_root: Option<MessageId>,
    /// The names of the files a sent message carried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// When it was delivered, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl DeliveryRecord {
    /// A record of `op` with nothing but its identity, author and time filled in.
    fn of(op: &OutboundOp, kind: DeliveryKind) -> Self {
        DeliveryRecord {
            op: op.id.clone(),
            channel: op.channel.clone(),
            ids: Vec::new(),
            kind,
            author: op.author.as_ref().map(|a| a.user.clone()),
            author_name: op.author.as_ref().map(|a| a.display_name.clone()),
            text: None,
            target: Vec::new(),
            key: None,
            reply_to: None,
            thread_root: None,
            files: Vec::new(),
            at_ms: Timestamp::now().as_millis(),
        }
    }
}

/// A message as the platform shows it now: every event and delivery folded
/// together (see [`MemoryPlatform::messages`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PlatformMessage {
    /// Its id on the platform.
    pub id: MessageId,
    /// Who posted it: a person, a puppet, or [`BOT_USER`].
    pub author: UserId,
    /// The name shown for the author.
    pub author_name: String,
    /// Its current plain text.
    pub text: String,
    /// True when the bridge posted it, false when a person on the platform did.
    pub by_bridge: bool,
    /// True once it has been edited.
    pub edited: bool,
    /// True once it has been deleted.
    pub deleted: bool,
    /// Its reactions, as (key, who reacted), oldest first.
    pub reactions: Vec<(String, UserId)>,
    /// The message it answers.
    pub reply_to: Option<MessageId>,
    /// The thread it belongs to.
    pub thread_root: Option<MessageId>,
    /// When it was posted, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// One call of [`Bridge::deliver`] on a [`MemoryBridge`], successful or not.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Attempt {
    /// The op.
    pub op: OpId,
    /// Its target channel.
    pub channel: ChannelId,
    /// Its kind ([`OutboundKind::label`]).
    pub kind: &'static str,
    /// When the call was made (tokio's clock, so paused-time tests can
    /// measure gaps exactly).
    pub at: Instant,
    /// What it returned.
    pub result: Result<(), BridgeError>,
}

impl Attempt {
    /// True when the delivery succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// `ok`, or the error's label (`rate_limited`, `not_found`…).
    pub fn label(&self) -> &'static str {
        match &self.result {
            Ok(()) => "ok",
            Err(e) => e.label(),
        }
    }
}

/// Whether the platform reports the bridge's own messages back to it, as real
/// platforms do with a bot's posts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EchoMode {
    /// No echoes.
    #[default]
    Off,
    /// Every sent message comes back as an inbound message from its puppet
    /// with `is_ours = false`: the relay must recognise the puppet or the
    /// message id from its own records. (Posts by [`BOT_USER`] come back with
    /// `is_ours = true`, since every connector knows its own bot.)
    AsPuppet,
    /// As `AsPuppet`, but with `is_ours = true`, as a connector that can tell
    /// its own posts apart would report them.
    AsOurs,
}

/// A programmed failure: returns the error a delivery of the op should fail
/// with, or `None` to let it through.
pub type FailurePredicate = Box<dyn Fn(&OutboundOp) -> Option<BridgeError> + Send + Sync>;

/// Failure programming, consulted before every delivery.
#[derive(Default)]
struct Failures {
    /// The next `n` deliveries fail with the error.
    next: Option<(usize, BridgeError)>,
    /// Every delivery before the instant fails with the error.
    until: Option<(Instant, BridgeError)>,
    /// Every delivery to the channel fails with the error.
    channels: HashMap<ChannelId, BridgeError>,
    /// Arbitrary rules; the first that returns an error wins.
    when: Vec<SharedRule>,
}

/// A [`FailurePredicate`] that can be called outside the state lock.
type SharedRule = Arc<dyn Fn(&OutboundOp) -> Option<BridgeError> + Send + Sync>;

/// Which messages exist, per channel; the flag is true once deleted. Enough
/// for `deliver` to validate targets without reading any file.
type MessageIndex = HashMap<ChannelId, HashMap<MessageId, bool>>;

/// Everything a handle holds in memory.
#[derive(Default)]
struct State {
    index: MessageIndex,
    /// Results of every op delivered, by id (loaded from `delivered.jsonl`).
    delivered: HashMap<OpId, Delivered>,
    /// Events the relay stored (a cache of `acked.jsonl` when file-backed).
    acked: HashSet<EventId>,
    removed_channels: HashSet<ChannelId>,
    failures: Failures,
    attempts: Vec<Attempt>,
    echo: EchoMode,
    media: HashMap<String, Vec<u8>>,
    /// Every [`Bridge::create_meeting`] call that created one.
    meetings: Vec<MeetingRecord>,
    /// What [`Bridge::channel_info`] answers, by channel.
    channel_info: HashMap<ChannelId, ChannelInfo>,
    /// Who [`Bridge::find_people`] finds.
    people: Vec<Person>,
    /// Every [`Bridge::open_direct`] call: the user and who for.
    directs: Vec<(UserId, Person)>,
    puppet_calls: usize,
    required_token: Option<String>,
    /// The inbox of an ephemeral platform.
    inbox: Vec<Inbound>,
    /// The delivery log of an ephemeral platform.
    records: Vec<DeliveryRecord>,
}

impl State {
    fn index_inbound(&mut self, event: &Inbound) {
        let channel = &event.origin.channel;
        match &event.kind {
            InboundKind::Message { id, .. } => {
                self.index
                    .entry(channel.clone())
                    .or_default()
                    .entry(id.clone())
                    .or_insert(false);
            }
            InboundKind::Delete { target } => {
                self.index
                    .entry(channel.clone())
                    .or_default()
                    .insert(target.clone(), true);
            }
            _ => {}
        }
    }

    fn index_record(&mut self, record: &DeliveryRecord) {
        let messages = self.index.entry(record.channel.clone()).or_default();
        match record.kind {
            DeliveryKind::Send => {
                for id in &record.ids {
                    messages.entry(id.clone()).or_insert(false);
                }
            }
            DeliveryKind::Call if record.target.is_empty() => {
                for id in &record.ids {
                    messages.entry(id.clone()).or_insert(false);
                }
            }
            DeliveryKind::Delete => {
                for id in &record.target {
                    messages.insert(id.clone(), true);
                }
            }
            _ => {}
        }
        self.delivered
            .entry(record.op.clone())
            .or_insert_with(|| Delivered {
                ids: record.ids.clone(),
            });
    }

    /// `NotFound` unless `id` was posted in `channel` (and, with `live`, not
    /// deleted since).
    fn require(&self, channel: &ChannelId, id: &MessageId, live: bool) -> Result<(), BridgeError> {
        match self
            .index
            .get(channel)
            .and_then(|messages| messages.get(id))
        {
            Some(false) => Ok(()),
            Some(true) if !live => Ok(()),
            Some(true) => Err(BridgeError::not_found(format!("message {id} (deleted)"))),
            None => Err(BridgeError::not_found(format!(
                "message {id} in channel {channel}"
            ))),
        }
    }

    /// One of the `fail_next` failures, if any are left (for calls that are
    /// not deliveries).
    fn take_next_failure(&mut self) -> Option<BridgeError> {
        let (left, err) = self.failures.next.as_mut()?;
        let err = err.clone();
        *left -= 1;
        if *left == 0 {
            self.failures.next = None;
        }
        Some(err)
    }

    /// The first of `fail_next` (consuming one of its count), `fail_until` and
    /// `fail_channel` that applies to `op`. The `fail_when` rules are asked by
    /// the caller, outside the lock.
    fn programmed_failure(&mut self, op: &OutboundOp) -> Result<(), BridgeError> {
        if let Some((left, err)) = &mut self.failures.next {
            let err = err.clone();
            *left -= 1;
            if *left == 0 {
                self.failures.next = None;
            }
            return Err(err);
        }
        if let Some((deadline, err)) = &self.failures.until {
            if Instant::now() < *deadline {
                return Err(err.clone());
            }
            self.failures.until = None;
        }
        if let Some(err) = self.failures.channels.get(&op.channel) {
            return Err(err.clone());
        }
        Ok(())
    }
}

/// The append handles of a file-backed platform.
struct Files {
    dir: PathBuf,
    inbox: File,
    acked: File,
    delivered: File,
}

struct Inner {
    id: BridgeId,
    files: Option<Files>,
    state: Mutex<State>,
    /// Bumped on every inbox append by this handle, so a run loop in this
    /// process wakes at once instead of at its next poll.
    inbox_version: watch::Sender<u64>,
}

/// A simulated chat platform. Cheap to clone: clones share one state.
///
/// Build one with [`MemoryPlatform::new`] (ephemeral) or
/// [`MemoryPlatform::open`] (file-backed, shared between processes), then hand
/// a clone to [`MemoryBridge::new`].
#[derive(Clone)]
pub struct MemoryPlatform {
    inner: Arc<Inner>,
}

impl fmt::Debug for MemoryPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryPlatform")
            .field("id", &self.inner.id)
            .field("dir", &self.dir())
            .finish_non_exhaustive()
    }
}

impl MemoryPlatform {
    /// An ephemeral platform whose bridge will have id `id`.
    pub fn new(id: impl Into<BridgeId>) -> Self {
        Self::build(id.into(), None, State::default())
    }

    /// A platform kept in `dir` (created if missing), shared with every other
    /// handle, in this process or another, that opens the same directory.
    /// Loads what earlier handles delivered, acknowledged and injected.
    pub fn open(id: impl Into<BridgeId>, dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir.join(MEDIA_DIR))?;
        let append = |name: &str| {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(name))
        };
        let files = Files {
            dir: dir.to_path_buf(),
            inbox: append(INBOX_FILE)?,
            acked: append(ACKED_FILE)?,
            delivered: append(DELIVERED_FILE)?,
        };
        let mut state = State::default();
        for record in read_log::<DeliveryRecord>(&dir.join(DELIVERED_FILE))? {
            state.index_record(&record);
        }
        for event in read_log::<Inbound>(&dir.join(INBOX_FILE))? {
            state.index_inbound(&event);
        }
        state
            .acked
            .extend(read_log::<EventId>(&dir.join(ACKED_FILE))?);
        Ok(Self::build(id.into(), Some(files), state))
    }

    fn build(id: BridgeId, files: Option<Files>, state: State) -> Self {
        let (inbox_version, _) = watch::channel(0);
        MemoryPlatform {
            inner: Arc::new(Inner {
                id,
                files,
                state: Mutex::new(state),
                inbox_version,
            }),
        }
    }

    /// The id of the bridge that connects to this platform.
    pub fn id(&self) -> &BridgeId {
        &self.inner.id
    }

    /// The directory of a file-backed platform.
    pub fn dir(&self) -> Option<&Path> {
        self.inner.files.as_ref().map(|files| files.dir.as_path())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not wedge every other user of the
        // platform: the state stays consistent between statements.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    // ----- What people on the platform do -----

    /// Appends an event to the inbox, for the bridge's run loop to report.
    pub fn inject(&self, inbound: Inbound) -> io::Result<()> {
        {
            let mut state = self.lock();
            match &self.inner.files {
                Some(files) => append_line(&files.inbox, &inbound)?,
                None => state.inbox.push(inbound.clone()),
            }
            state.index_inbound(&inbound);
        }
        self.inner
            .inbox_version
            .send_modify(|version| *version += 1);
        Ok(())
    }

    /// A person posts `text` in `channel`. Returns the injected event, whose
    /// message and event ids are fresh and unique.
    pub fn post(
        &self,
        channel: &str,
        user: &str,
        display_name: &str,
        text: &str,
    ) -> io::Result<Inbound> {
        let kind = InboundKind::Message {
            id: MessageId::new(unique_id("m")),
            message: Message::text(text),
        };
        self.person_event(channel, user, display_name, kind)
    }

    /// A person replaces the text of their message `target`.
    pub fn edit(
        &self,
        channel: &str,
        user: &str,
        target: &MessageId,
        text: &str,
    ) -> io::Result<Inbound> {
        let kind = InboundKind::Edit {
            target: target.clone(),
            message: Message::text(text),
        };
        self.person_event(channel, user, user, kind)
    }

    /// A person deletes message `target`.
    pub fn delete(&self, channel: &str, user: &str, target: &MessageId) -> io::Result<Inbound> {
        let kind = InboundKind::Delete {
            target: target.clone(),
        };
        self.person_event(channel, user, user, kind)
    }

    /// A person adds (`added`) or removes reaction `key` on message `target`.
    pub fn react(
        &self,
        channel: &str,
        user: &str,
        target: &MessageId,
        key: &str,
        added: bool,
    ) -> io::Result<Inbound> {
        let kind = InboundKind::Reaction {
            target: target.clone(),
            key: key.to_owned(),
            added,
        };
        self.person_event(channel, user, user, kind)
    }

    fn person_event(
        &self,
        channel: &str,
        user: &str,
        display_name: &str,
        kind: InboundKind,
    ) -> io::Result<Inbound> {
        let person = Person::new(self.id().clone(), UserId::new(user), display_name);
        let event = Inbound::new(
            Origin::new(self.id().clone(), channel),
            EventId::new(unique_id("e")),
            Sender::new(person),
            kind,
        );
        self.inject(event.clone())?;
        Ok(event)
    }

    /// Stores a file the bridge serves from [`Bridge::fetch_media`] for an
    /// attachment with this `id` (on disk too when file-backed, so a daemon
    /// process can serve what a test put there).
    pub fn put_media(&self, id: &str, bytes: Vec<u8>) -> io::Result<()> {
        if let Some(files) = &self.inner.files {
            fs::write(files.dir.join(MEDIA_DIR).join(hex(id)), &bytes)?;
        }
        self.lock().media.insert(id.to_owned(), bytes);
        Ok(())
    }

    /// Every meeting created through [`Bridge::create_meeting`], in order
    /// (a retry with the same key is listed again).
    pub fn meetings(&self) -> Vec<MeetingRecord> {
        self.lock().meetings.clone()
    }

    /// Sets what [`Bridge::channel_info`] answers for `channel`.
    pub fn set_channel_info(&self, channel: &str, info: ChannelInfo) {
        self.lock()
            .channel_info
            .insert(ChannelId::new(channel), info);
    }

    /// Adds `user` (named `name`) to the directory [`Bridge::find_people`]
    /// searches.
    pub fn add_person(&self, user: &str, name: &str) {
        let person = Person::new(self.id().clone(), UserId::new(user), name);
        self.lock().people.push(person);
    }

    /// Every [`Bridge::open_direct`] call, in order: the user and who for.
    /// Each opens (or finds again) the channel `dm-{user}`.
    pub fn directs(&self) -> Vec<(UserId, Person)> {
        self.lock().directs.clone()
    }

    fn media(&self, id: &str) -> Option<Vec<u8>> {
        if let Some(bytes) = self.lock().media.get(id) {
            return Some(bytes.clone());
        }
        let files = self.inner.files.as_ref()?;
        fs::read(files.dir.join(MEDIA_DIR).join(hex(id))).ok()
    }

    // ----- What the platform shows -----

    /// Every event in the inbox, oldest first: injected ones and echoes.
    /// Re-reads the file when file-backed.
    ///
    /// # Panics
    /// When the inbox file cannot be read: the test cannot go on.
    pub fn inbox(&self) -> Vec<Inbound> {
        match &self.inner.files {
            Some(files) => read_log_or_panic(&files.dir.join(INBOX_FILE)),
            None => self.lock().inbox.clone(),
        }
    }

    /// Every successful delivery, oldest first, by any process using this
    /// platform. Re-reads the file when file-backed.
    ///
    /// # Panics
    /// When the delivery file cannot be read: the test cannot go on.
    pub fn deliveries(&self) -> Vec<DeliveryRecord> {
        match &self.inner.files {
            Some(files) => read_log_or_panic(&files.dir.join(DELIVERED_FILE)),
            None => self.lock().records.clone(),
        }
    }

    /// The events the relay durably accepted. Re-reads the file when file-backed.
    ///
    /// # Panics
    /// When the acknowledgement file cannot be read: the test cannot go on.
    pub fn acked(&self) -> HashSet<EventId> {
        match &self.inner.files {
            Some(files) => read_log_or_panic(&files.dir.join(ACKED_FILE))
                .into_iter()
                .collect(),
            None => self.lock().acked.clone(),
        }
    }

    /// The messages of `channel` as a person would see them, oldest first,
    /// deleted ones included (flagged): people's posts from the inbox and the
    /// bridge's deliveries, with every edit, delete and reaction applied.
    /// Echoes are not counted twice. The two logs share no clock finer than
    /// a millisecond: within one, people's posts come first.
    ///
    /// # Panics
    /// When a platform file cannot be read: the test cannot go on.
    pub fn messages(&self, channel: &str) -> Vec<PlatformMessage> {
        fold_messages(&ChannelId::new(channel), &self.inbox(), &self.deliveries())
    }

    /// Every call of `deliver` made through this handle, oldest first.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.lock().attempts.clone()
    }

    /// How often [`Bridge::ensure_puppet`] was called through this handle.
    pub fn puppet_calls(&self) -> usize {
        self.lock().puppet_calls
    }

    // ----- How the platform misbehaves -----

    /// The next `n` deliveries fail with `err` (replacing an earlier count).
    pub fn fail_next(&self, n: usize, err: BridgeError) {
        self.lock().failures.next = (n > 0).then_some((n, err));
    }

    /// Every delivery before `deadline` fails with `err`, e.g. a
    /// `RateLimited { retry_after: 2s }` storm for ten seconds.
    pub fn fail_until(&self, deadline: Instant, err: BridgeError) {
        self.lock().failures.until = Some((deadline, err));
    }

    /// Every delivery to `channel` fails with `err` until
    /// [`MemoryPlatform::clear_failures`].
    pub fn fail_channel(&self, channel: &str, err: BridgeError) {
        self.lock()
            .failures
            .channels
            .insert(ChannelId::new(channel), err);
    }

    /// Every delivery for which `rule` returns an error fails with it, until
    /// [`MemoryPlatform::clear_failures`]. Rules are asked in the order added.
    pub fn fail_when(&self, rule: FailurePredicate) {
        self.lock().failures.when.push(Arc::from(rule));
    }

    /// Forgets every programmed failure.
    pub fn clear_failures(&self) {
        self.lock().failures = Failures::default();
    }

    /// Makes `channel` vanish: deliveries to it fail with `NotFound`. Every
    /// other channel name exists.
    pub fn remove_channel(&self, channel: &str) {
        self.lock().removed_channels.insert(ChannelId::new(channel));
    }

    /// Brings back a channel removed with [`MemoryPlatform::remove_channel`].
    pub fn restore_channel(&self, channel: &str) {
        self.lock()
            .removed_channels
            .remove(&ChannelId::new(channel));
    }

    /// Sets whether sent messages are echoed back as inbound events.
    pub fn set_echo(&self, mode: EchoMode) {
        self.lock().echo = mode;
    }

    /// Makes the platform refuse bridges that do not present `token` (see
    /// [`MemoryBridge::with_token`]): `health_check`, `deliver` and
    /// `ensure_puppet` fail with `Auth`, and `run` reports bad credentials.
    pub fn require_token(&self, token: impl Into<String>) {
        self.lock().required_token = Some(token.into());
    }

    /// Accepts any token (or none) again.
    pub fn accept_any_token(&self) {
        self.lock().required_token = None;
    }

    // ----- What the bridge uses -----

    fn check_token(&self, presented: Option<&str>) -> Result<(), BridgeError> {
        match self.lock().required_token.as_deref() {
            Some(required) if presented != Some(required) => {
                Err(BridgeError::auth("the platform refused the access token"))
            }
            _ => Ok(()),
        }
    }

    fn programmed_failure(&self, op: &OutboundOp) -> Result<(), BridgeError> {
        let rules = {
            let mut state = self.lock();
            state.programmed_failure(op)?;
            state.failures.when.clone()
        };
        // Rules run outside the lock: they may look at the platform.
        match rules.iter().find_map(|rule| rule(op)) {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn record_attempt(&self, op: &OutboundOp, result: &Result<Delivered, BridgeError>) {
        let attempt = Attempt {
            op: op.id.clone(),
            channel: op.channel.clone(),
            kind: op.kind.label(),
            at: Instant::now(),
            result: result.as_ref().map(|_| ()).map_err(Clone::clone),
        };
        self.lock().attempts.push(attempt);
    }

    fn delivered_before(&self, op: &OpId) -> Option<Delivered> {
        self.lock().delivered.get(op).cloned()
    }

    /// Validates and records one delivery. Returns its result and, when the
    /// echo mode asks for one, the echo to inject.
    fn commit(
        &self,
        op: &OutboundOp,
        capabilities: &Capabilities,
        files: Vec<String>,
    ) -> Result<(Delivered, Option<Inbound>), BridgeError> {
        let mut state = self.lock();
        if let Some(done) = state.delivered.get(&op.id) {
            return Ok((done.clone(), None));
        }
        if state.removed_channels.contains(&op.channel) {
            return Err(BridgeError::not_found(format!("channel {}", op.channel)));
        }
        let channel = &op.channel;
        let unsupported = |what: &str| BridgeError::permanent(format!("{what} are not supported"));
        let record = match &op.kind {
            OutboundKind::Send { message } => {
                for parent in message.reply_to.iter().chain(&message.thread_root) {
                    state.require(channel, parent, false)?;
                }
                let mut record = DeliveryRecord::of(op, DeliveryKind::Send);
                record.ids = vec![MessageId::new(unique_id("m"))];
                record.text = Some(message.body.to_plain());
                record.reply_to.clone_from(&message.reply_to);
                record.thread_root.clone_from(&message.thread_root);
                record.files = files;
                record
            }
            OutboundKind::Edit { parts, message } => {
                if !capabilities.edits {
                    return Err(unsupported("edits"));
                }
                require_parts(&state, channel, parts)?;
                let mut record = DeliveryRecord::of(op, DeliveryKind::Edit);
                record.target.clone_from(parts);
                record.text = Some(message.body.to_plain());
                record
            }
            OutboundKind::Delete { parts } => {
                if !capabilities.deletes {
                    return Err(unsupported("deletes"));
                }
                require_parts(&state, channel, parts)?;
                let mut record = DeliveryRecord::of(op, DeliveryKind::Delete);
                record.target.clone_from(parts);
                record
            }
            OutboundKind::React { target, key } | OutboundKind::Unreact { target, key, .. } => {
                if !capabilities.reactions {
                    return Err(unsupported("reactions"));
                }
                state.require(channel, target, true)?;
                let adding = matches!(op.kind, OutboundKind::React { .. });
                let kind = if adding {
                    DeliveryKind::React
                } else {
                    DeliveryKind::Unreact
                };
                let mut record = DeliveryRecord::of(op, kind);
                if adding {
                    record.ids = vec![MessageId::new(unique_id("r"))];
                }
                record.target = vec![target.clone()];
                record.key = Some(key.clone());
                record
            }
            OutboundKind::Call { event, invite } => {
                // The first state posts the invite; later ones edit it.
                let mut record = DeliveryRecord::of(op, DeliveryKind::Call);
                if invite.is_empty() {
                    record.ids = vec![MessageId::new(unique_id("m"))];
                } else {
                    require_parts(&state, channel, invite)?;
                    record.target.clone_from(invite);
                }
                record.text = Some(event.describe());
                record
            }
            OutboundKind::ChannelInfo { info } => {
                if !capabilities.mirrors_channel_info {
                    return Err(unsupported("channel names and topics"));
                }
                let mut record = DeliveryRecord::of(op, DeliveryKind::ChannelInfo);
                record.text = Some(serde_json::to_string(info).unwrap_or_default());
                record
            }
        };

        match &self.inner.files {
            Some(files) => append_line(&files.delivered, &record)
                .map_err(|e| BridgeError::transient(format!("cannot record the delivery: {e}")))?,
            None => state.records.push(record.clone()),
        }
        state.index_record(&record);
        let delivered = Delivered {
            ids: record.ids.clone(),
        };

        let echo = match (&op.kind, state.echo) {
            (_, EchoMode::Off) => None,
            (OutboundKind::Send { message }, mode) => {
                Some(self.echo_of(op, &record, message, mode))
            }
            _ => None,
        };
        Ok((delivered, echo))
    }

    /// The inbound event a platform would report for a message the bridge sent.
    fn echo_of(
        &self,
        op: &OutboundOp,
        record: &DeliveryRecord,
        message: &Message,
        mode: EchoMode,
    ) -> Inbound {
        let person = match &op.author {
            Some(puppet) => {
                let mut person =
                    Person::new(self.id().clone(), puppet.user.clone(), &puppet.display_name);
                person.avatar.clone_from(&puppet.avatar);
                person
            }
            None => Person::new(self.id().clone(), UserId::new(BOT_USER), BOT_USER).bot(),
        };
        // Every connector recognises its own bot account; only puppets need
        // the relay's records in `AsPuppet` mode.
        let sender = match mode {
            EchoMode::AsOurs => Sender::ours(person),
            _ if op.author.is_none() => Sender::ours(person),
            EchoMode::AsPuppet | EchoMode::Off => Sender::new(person),
        };
        let id = record
            .ids
            .first()
            .cloned()
            .expect("a send record always holds the new id");
        Inbound::new(
            Origin::new(self.id().clone(), op.channel.clone()),
            EventId::new(unique_id("e")),
            sender,
            InboundKind::Message {
                id,
                message: message.clone(),
            },
        )
    }

    /// Starts reading the inbox from its beginning. A file-backed platform
    /// first reloads the acked set, which another process may have extended.
    fn inbox_cursor(&self) -> io::Result<InboxCursor> {
        let changes = self.inner.inbox_version.subscribe();
        let source = match &self.inner.files {
            Some(files) => {
                let acked = read_log::<EventId>(&files.dir.join(ACKED_FILE))?;
                self.lock().acked.extend(acked);
                let file = File::open(files.dir.join(INBOX_FILE))?;
                InboxSource::File { file, offset: 0 }
            }
            None => InboxSource::Memory { next: 0 },
        };
        Ok(InboxCursor { source, changes })
    }

    /// The inbox events after the cursor that were not acknowledged yet.
    fn read_inbox(&self, cursor: &mut InboxCursor) -> io::Result<Vec<Inbound>> {
        cursor.changes.borrow_and_update();
        let mut events = match &mut cursor.source {
            InboxSource::Memory { next } => {
                let state = self.lock();
                let new = state.inbox.get(*next..).unwrap_or_default().to_vec();
                *next = state.inbox.len();
                new
            }
            InboxSource::File { file, offset } => {
                let (events, end) = read_lines::<Inbound>(file, *offset, INBOX_FILE)?;
                *offset = end;
                let mut state = self.lock();
                for event in &events {
                    state.index_inbound(event);
                }
                events
            }
        };
        let state = self.lock();
        events.retain(|event| !state.acked.contains(&event.event));
        Ok(events)
    }

    /// Records that the relay stored event `id`.
    fn ack(&self, id: &EventId) -> io::Result<()> {
        let mut state = self.lock();
        if state.acked.insert(id.clone())
            && let Some(files) = &self.inner.files
        {
            append_line(&files.acked, id)?;
        }
        Ok(())
    }
}

/// Where a run loop stands in the inbox.
struct InboxCursor {
    source: InboxSource,
    changes: watch::Receiver<u64>,
}

impl InboxCursor {
    /// Waits until the inbox may hold something new: a change notice from this
    /// process, or (file-backed, where other processes append) the next poll.
    async fn changed(&mut self) {
        match self.source {
            InboxSource::Memory { .. } => {
                // The sender lives as long as the platform this cursor reads,
                // so an error cannot happen while anyone waits here.
                let _ = self.changes.changed().await;
            }
            InboxSource::File { .. } => {
                tokio::select! {
                    _ = self.changes.changed() => {}
                    () = tokio::time::sleep(POLL_INTERVAL) => {}
                }
            }
        }
    }
}

enum InboxSource {
    Memory { next: usize },
    File { file: File, offset: u64 },
}

fn require_parts(
    state: &State,
    channel: &ChannelId,
    parts: &[MessageId],
) -> Result<(), BridgeError> {
    if parts.is_empty() {
        return Err(BridgeError::permanent("an op without target messages"));
    }
    parts
        .iter()
        .try_for_each(|part| state.require(channel, part, true))
}

/// The connector to a [`MemoryPlatform`].
#[derive(Clone)]
pub struct MemoryBridge {
    platform: MemoryPlatform,
    capabilities: Capabilities,
    token: Option<String>,
    latency: Duration,
}

impl fmt::Debug for MemoryBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBridge")
            .field("platform", &self.platform)
            .field("capabilities", &self.capabilities)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("latency", &self.latency)
            .finish()
    }
}

impl MemoryBridge {
    /// A bridge to `platform` that announces `capabilities` and refuses
    /// operations beyond them (edits, deletes, reactions, files) as permanent
    /// failures.
    pub fn new(platform: MemoryPlatform, capabilities: Capabilities) -> Self {
        MemoryBridge {
            platform,
            capabilities,
            token: None,
            latency: Duration::ZERO,
        }
    }

    /// Presents `token` to the platform (see [`MemoryPlatform::require_token`]).
    /// It never appears in `Debug` output or errors.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Makes every delivery take `latency` first, like a slow platform.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// The platform this bridge talks to.
    pub fn platform(&self) -> &MemoryPlatform {
        &self.platform
    }

    fn check_token(&self) -> Result<(), BridgeError> {
        self.platform.check_token(self.token.as_deref())
    }

    async fn deliver_once(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        self.check_token()?;
        self.platform.programmed_failure(op)?;
        if let Some(done) = self.platform.delivered_before(&op.id) {
            return Ok(done);
        }
        let files = match &op.kind {
            OutboundKind::Send { message } if !message.attachments.is_empty() => {
                self.upload(op, &message.attachments, media).await?
            }
            _ => Vec::new(),
        };
        let (delivered, echo) = self.platform.commit(op, &self.capabilities, files)?;
        if let Some(echo) = echo
            && let Err(e) = self.platform.inject(echo)
        {
            // The message is posted; only the platform's report of it is lost.
            warn!(bridge = %self.platform.id(), error = %e, "Could not write an echo.");
        }
        Ok(delivered)
    }

    /// Fetches each attachment from its origin and stores it on the platform.
    /// Returns the file names.
    async fn upload(
        &self,
        op: &OutboundOp,
        attachments: &[Attachment],
        media: &dyn MediaSource,
    ) -> Result<Vec<String>, BridgeError> {
        if !self.capabilities.attachments {
            return Err(BridgeError::permanent("files are not supported"));
        }
        let origin = op
            .origin
            .as_ref()
            .ok_or_else(|| BridgeError::permanent("an attachment without an origin"))?;
        let mut names = Vec::with_capacity(attachments.len());
        for attachment in attachments {
            let bytes = media.fetch(&origin.bridge, attachment).await?;
            if bytes.len() as u64 > self.capabilities.max_upload {
                return Err(BridgeError::permanent(format!(
                    "file {} is larger than {} bytes",
                    attachment.name, self.capabilities.max_upload
                )));
            }
            self.platform
                .put_media(&unique_id("f"), bytes)
                .map_err(|e| BridgeError::transient(format!("cannot store a file: {e}")))?;
            names.push(attachment.name.clone());
        }
        Ok(names)
    }

    /// The run loop proper; `run` wraps it with state reports.
    async fn pump(&self, ctx: &BridgeContext) -> Result<(), BridgeError> {
        let io_failure =
            |e: io::Error| BridgeError::transient(format!("cannot read the inbox: {e}"));
        let intake_failure = |e: IntakeError| {
            if ctx.shutdown.is_cancelled() {
                Ok(())
            } else {
                Err(BridgeError::transient(format!(
                    "the relay refused an event: {e}"
                )))
            }
        };
        let mut cursor = self.platform.inbox_cursor().map_err(io_failure)?;
        ctx.set_state(BridgeState::Connected);

        let mut queue: VecDeque<Inbound> = VecDeque::new();
        let mut in_flight = VecDeque::new();
        loop {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            if queue.is_empty() {
                queue.extend(self.platform.read_inbox(&mut cursor).map_err(io_failure)?);
            }
            // Keep up to PIPELINE events in flight, like a platform that does
            // not wait for one acknowledgement before sending the next event.
            if in_flight.len() < PIPELINE
                && let Some(event) = queue.pop_front()
            {
                let id = event.event.clone();
                let submitted = tokio::select! {
                    biased;
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    submitted = ctx.inbound.submit(event) => submitted,
                };
                match submitted {
                    Ok(stored) => in_flight.push_back((id, stored)),
                    Err(e) => return intake_failure(e),
                }
                continue;
            }
            // Acknowledge in order, each only once the relay stored it.
            if let Some((_, stored)) = in_flight.front_mut() {
                let outcome = tokio::select! {
                    biased;
                    () = ctx.shutdown.cancelled() => return Ok(()),
                    outcome = stored => outcome,
                };
                let (id, _) = in_flight
                    .pop_front()
                    .expect("the front entry was just awaited");
                match outcome {
                    Ok(()) => self.platform.ack(&id).map_err(|e| {
                        BridgeError::transient(format!("cannot record an acknowledgement: {e}"))
                    })?,
                    Err(e) => return intake_failure(e),
                }
                continue;
            }
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => return Ok(()),
                () = cursor.changed() => {}
            }
        }
    }
}

#[async_trait]
impl Bridge for MemoryBridge {
    fn id(&self) -> &BridgeId {
        self.platform.id()
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities.clone()
    }

    async fn health_check(&self) -> Result<(), BridgeError> {
        self.check_token()
    }

    async fn run(&self, ctx: BridgeContext) -> Result<(), BridgeError> {
        ctx.set_state(BridgeState::Connecting);
        if let Err(e) = self.check_token() {
            ctx.set_state(BridgeState::BadCredentials(e.to_string()));
            return Err(e);
        }
        let result = self.pump(&ctx).await;
        match &result {
            Ok(()) => ctx.set_state(BridgeState::Stopped),
            Err(e) => ctx.set_state(BridgeState::TransientDisconnect(e.to_string())),
        }
        result
    }

    async fn deliver(
        &self,
        op: &OutboundOp,
        media: &dyn MediaSource,
    ) -> Result<Delivered, BridgeError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let result = self.deliver_once(op, media).await;
        self.platform.record_attempt(op, &result);
        result
    }

    async fn ensure_puppet(&self, person: &Person) -> Result<PuppetRef, BridgeError> {
        self.check_token()?;
        self.platform.lock().puppet_calls += 1;
        let user = sanitise(&format!("puppet-{}-{}", person.bridge, person.user));
        Ok(PuppetRef::new(UserId::new(user), &person.display_name)
            .with_avatar(person.avatar.clone()))
    }

    /// With `creates_meetings` in its capabilities: a meeting at
    /// `https://meet.memory.test/{bridge}/{key}` (the same for the same key),
    /// counted in [`MemoryPlatform::meetings`].
    async fn create_meeting(
        &self,
        key: &str,
        channel: &ChannelId,
        title: &str,
        organiser: Option<&Person>,
    ) -> Result<Option<Meeting>, BridgeError> {
        self.check_token()?;
        if !self.capabilities.creates_meetings {
            return Ok(None);
        }
        let id = sanitise(key);
        let url = format!(
            "https://meet.memory.test/{}/{id}",
            sanitise(self.platform.id().as_str())
        );
        let organiser = organiser.map(|p| p.display_name.clone());
        self.platform.lock().meetings.push(MeetingRecord {
            key: key.to_owned(),
            channel: channel.clone(),
            title: title.to_owned(),
            organiser,
        });
        Ok(Some(Meeting::new(
            id,
            url,
            CallProvider::Other("memory".into()),
        )))
    }

    async fn channel_info(&self, channel: &ChannelId) -> Result<Option<ChannelInfo>, BridgeError> {
        self.check_token()?;
        let state = self.platform.lock();
        if state.removed_channels.contains(channel) {
            return Err(BridgeError::not_found(format!("channel {channel}")));
        }
        Ok(state.channel_info.get(channel).cloned())
    }

    async fn open_direct(
        &self,
        user: &UserId,
        with: &Person,
    ) -> Result<Option<ChannelId>, BridgeError> {
        self.check_token()?;
        let mut state = self.platform.lock();
        if let Some(err) = state.take_next_failure() {
            return Err(err);
        }
        state.directs.push((user.clone(), with.clone()));
        Ok(Some(ChannelId::new(format!("dm-{user}"))))
    }

    async fn find_people(&self, query: &str, limit: usize) -> Result<Vec<Person>, BridgeError> {
        self.check_token()?;
        let query = query.to_lowercase();
        let state = self.platform.lock();
        Ok(state
            .people
            .iter()
            .filter(|p| {
                p.display_name.to_lowercase().contains(&query)
                    || p.user.as_str().to_lowercase().contains(&query)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn fetch_media(&self, attachment: &Attachment) -> Result<Vec<u8>, BridgeError> {
        self.check_token()?;
        self.platform
            .media(&attachment.id)
            .ok_or_else(|| BridgeError::not_found(format!("file {}", attachment.id)))
    }
}

/// Letters, digits, `-`, `_` and `.` kept; everything else becomes `_`.
fn sanitise(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// A file name for any id.
fn hex(id: &str) -> String {
    id.bytes().map(|b| format!("{b:02x}")).collect()
}

// ----- JSON-lines files -----

/// Appends `value` and a newline with one `write_all` on an append-mode file,
/// so lines from concurrent writers never interleave.
fn append_line<T: Serialize + ?Sized>(mut file: &File, value: &T) -> io::Result<()> {
    let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
    line.push(b'\n');
    file.write_all(&line)
}

/// The complete lines of `file` from byte `offset` on, parsed, and the offset
/// just past the last complete line. A trailing partial line is left for the
/// next call; a malformed complete line is skipped with a warning.
fn read_lines<T: DeserializeOwned>(
    file: &mut File,
    offset: u64,
    name: &str,
) -> io::Result<(Vec<T>, u64)> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let Some(last_newline) = buf.iter().rposition(|&b| b == b'\n') else {
        return Ok((Vec::new(), offset));
    };
    let mut values = Vec::new();
    for line in buf[..last_newline].split(|&b| b == b'\n') {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice(line) {
            Ok(value) => values.push(value),
            Err(e) => warn!(file = name, error = %e, "Skipping a malformed line."),
        }
    }
    Ok((values, offset + last_newline as u64 + 1))
}

/// Every complete line of the file at `path`; nothing if it does not exist.
fn read_log<T: DeserializeOwned>(path: &Path) -> io::Result<Vec<T>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
    Ok(read_lines(&mut file, 0, name)?.0)
}

fn read_log_or_panic<T: DeserializeOwned>(path: &Path) -> Vec<T> {
    read_log(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Folds the inbox and the delivery log into the messages of `channel`.
///
/// Creations come first (people's posts, skipping echoes of deliveries, then
/// the deliveries), then changes in log order (people's, then the bridge's): a
/// message is changed either by its author or by reactions, which commute, so
/// the order between the two logs does not matter. Messages are ordered by
/// time; within one millisecond people's posts come before the bridge's.
fn fold_messages(
    channel: &ChannelId,
    inbox: &[Inbound],
    records: &[DeliveryRecord],
) -> Vec<PlatformMessage> {
    let records: Vec<&DeliveryRecord> = records.iter().filter(|r| &r.channel == channel).collect();
    let inbox: Vec<&Inbound> = inbox
        .iter()
        .filter(|e| &e.origin.channel == channel)
        .collect();
    let mut messages: Vec<PlatformMessage> = Vec::new();
    let mut at: HashMap<MessageId, usize> = HashMap::new();

    let creates = |record: &DeliveryRecord| {
        record.kind == DeliveryKind::Send
            || (record.kind == DeliveryKind::Call && record.target.is_empty())
    };
    // An echo reports a delivered message again: the delivery describes it.
    let delivered: HashSet<&MessageId> = records
        .iter()
        .filter(|r| creates(r))
        .flat_map(|r| &r.ids)
        .collect();
    for event in &inbox {
        if let InboundKind::Message { id, message } = &event.kind {
            if delivered.contains(id) || at.contains_key(id) {
                continue;
            }
            at.insert(id.clone(), messages.len());
            messages.push(PlatformMessage {
                id: id.clone(),
                author: event.sender.person.user.clone(),
                author_name: event.sender.person.display_name.clone(),
                text: message.body.to_plain(),
                by_bridge: false,
                edited: false,
                deleted: false,
                reactions: Vec::new(),
                reply_to: message.reply_to.clone(),
                thread_root: message.thread_root.clone(),
                at_ms: event.at.as_millis(),
            });
        }
    }
    for record in records.iter().filter(|r| creates(r)) {
        for id in &record.ids {
            if at.contains_key(id) {
                continue;
            }
            at.insert(id.clone(), messages.len());
            messages.push(PlatformMessage {
                id: id.clone(),
                author: record
                    .author
                    .clone()
                    .unwrap_or_else(|| UserId::new(BOT_USER)),
                author_name: record
                    .author_name
                    .clone()
                    .unwrap_or_else(|| BOT_USER.to_owned()),
                text: record.text.clone().unwrap_or_default(),
                by_bridge: true,
                edited: false,
                deleted: false,
                reactions: Vec::new(),
                reply_to: record.reply_to.clone(),
                thread_root: record.thread_root.clone(),
                at_ms: record.at_ms,
            });
        }
    }

    let mut change = |id: &MessageId, f: &mut dyn FnMut(&mut PlatformMessage)| {
        if let Some(&i) = at.get(id) {
            f(&mut messages[i]);
        }
    };
    for event in &inbox {
        let who = &event.sender.person.user;
        match &event.kind {
            InboundKind::Edit { target, message } => change(target, &mut |m| {
                m.text = message.body.to_plain();
                m.edited = true;
            }),
            InboundKind::Delete { target } => change(target, &mut |m| m.deleted = true),
            InboundKind::Reaction { target, key, added } => {
                change(target, &mut |m| toggle_reaction(m, key, who, *added));
            }
            _ => {}
        }
    }
    for record in &records {
        let who = record
            .author
            .clone()
            .unwrap_or_else(|| UserId::new(BOT_USER));
        let key = record.key.as_deref().unwrap_or_default();
        for target in &record.target {
            match record.kind {
                DeliveryKind::Edit | DeliveryKind::Call => change(target, &mut |m| {
                    m.text = record.text.clone().unwrap_or_default();
                    m.edited = true;
                }),
                DeliveryKind::Delete => change(target, &mut |m| m.deleted = true),
                DeliveryKind::React => change(target, &mut |m| toggle_reaction(m, key, &who, true)),
                DeliveryKind::Unreact => {
                    change(target, &mut |m| toggle_reaction(m, key, &who, false));
                }
                DeliveryKind::Send | DeliveryKind::ChannelInfo => {}
            }
        }
    }
    messages.sort_by_key(|m| m.at_ms);
    messages
}

fn toggle_reaction(message: &mut PlatformMessage, key: &str, who: &UserId, added: bool) {
    let pos = message
        .reactions
        .iter()
        .position(|(k, u)| k == key && u == who);
    match (pos, added) {
        (None, true) => message.reactions.push((key.to_owned(), who.clone())),
        (Some(i), false) => {
            message.reactions.remove(i);
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bridge::InboundEnvelope;
    use crate::call::{CallEvent, CallProvider, CallState};
    use crate::ids::CallId;
    use crate::testing::NoMedia;
    use tokio::sync::mpsc;
    use tokio::task::JoinHandle;
    use tokio_util::sync::CancellationToken;

    const WAIT: Duration = Duration::from_secs(10);

    fn bridge(platform: &MemoryPlatform) -> Arc<MemoryBridge> {
        Arc::new(MemoryBridge::new(platform.clone(), Capabilities::full()))
    }

    fn puppet() -> PuppetRef {
        PuppetRef::new(UserId::new("puppet-slack_acme-U1"), "Ann").with_avatar(Some("a.png".into()))
    }

    fn op(id: &str, channel: &str, kind: OutboundKind) -> OutboundOp {
        OutboundOp::on_behalf(
            OpId::new(id),
            ChannelId::new(channel),
            Origin::new("slack:acme", "C1"),
            Person::new(BridgeId::new("slack:acme"), UserId::new("U1"), "Ann"),
            Some(puppet()),
            kind,
        )
    }

    fn send(id: &str, channel: &str, text: &str) -> OutboundOp {
        op(
            id,
            channel,
            OutboundKind::Send {
                message: Message::text(text),
            },
        )
    }

    async fn deliver(bridge: &MemoryBridge, op: &OutboundOp) -> Result<Delivered, BridgeError> {
        bridge.deliver(op, &NoMedia).await
    }

    fn message_id(event: &Inbound) -> MessageId {
        match &event.kind {
            InboundKind::Message { id, .. } => id.clone(),
            other => panic!("not a message: {other:?}"),
        }
    }

    /// A bridge's run loop with the relay's end of its sink.
    struct Running {
        relay: mpsc::Receiver<InboundEnvelope>,
        shutdown: CancellationToken,
        state: watch::Receiver<BridgeState>,
        task: JoinHandle<Result<(), BridgeError>>,
    }

    impl Running {
        async fn start(bridge: &Arc<MemoryBridge>) -> Running {
            let (sink, relay) = crate::bridge::InboundSink::channel(64);
            let shutdown = CancellationToken::new();
            let (state_tx, mut state) = watch::channel(BridgeState::Connecting);
            let ctx = BridgeContext::new(sink, shutdown.clone(), state_tx);
            let bridge = Arc::clone(bridge);
            let task = tokio::spawn(async move { bridge.run(ctx).await });
            tokio::time::timeout(WAIT, state.wait_for(|s| *s == BridgeState::Connected))
                .await
                .expect("connects in time")
                .expect("run is alive");
            Running {
                relay,
                shutdown,
                state,
                task,
            }
        }

        async fn next(&mut self) -> InboundEnvelope {
            tokio::time::timeout(WAIT, self.relay.recv())
                .await
                .expect("an event in time")
                .expect("run is alive")
        }

        /// The next event, stored at once.
        async fn next_stored(&mut self) -> Inbound {
            let (event, stored) = self.next().await;
            stored.send(Ok(())).expect("run waits for the ack");
            event
        }

        async fn nothing_for(&mut self, wait: Duration) {
            if let Ok(Some((event, _))) = tokio::time::timeout(wait, self.relay.recv()).await {
                panic!("unexpected event {event:?}");
            }
        }

        async fn stop(self) -> Result<(), BridgeError> {
            self.shutdown.cancel();
            let result = tokio::time::timeout(WAIT, self.task)
                .await
                .expect("stops in time")
                .expect("does not panic");
            assert_eq!(*self.state.borrow(), BridgeState::Stopped);
            result
        }
    }

    async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[test]
    fn ids_are_unique_and_sanitised() {
        let a = unique_id("m");
        let b = unique_id("m");
        assert_ne!(a, b);
        assert!(a.starts_with("m-"));
        assert_eq!(
            sanitise("puppet-slack:acme-U 1/x"),
            "puppet-slack_acme-U_1_x"
        );
        assert_eq!(hex("a/b"), "612f62");
    }

    #[test]
    fn delivery_records_have_the_documented_shape() {
        let record = DeliveryRecord {
            op: OpId::new("op1"),
            channel: ChannelId::new("general"),
            ids: vec![MessageId::new("m1")],
            kind: DeliveryKind::Send,
            author: None,
            author_name: None,
            text: Some("hi".into()),
            target: Vec::new(),
            key: None,
            reply_to: None,
            thread_root: None,
            files: Vec::new(),
            at_ms: 5,
        };
        let json = serde_json::to_string(&record).expect("serialises");
        assert_eq!(
            json,
            r#"{"op":"op1","channel":"general","ids":["m1"],"kind":"send","author":null,"text":"hi","at_ms":5}"#
        );
        let back: DeliveryRecord = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, record);
    }

    #[tokio::test]
    async fn the_folded_view_applies_every_change() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        let post = platform
            .post("general", "U9", "Bo", "hello")
            .expect("posts");
        let posted = message_id(&post);

        // The bridge answers in a thread, reacts, edits its answer.
        let mut reply = Message::text("hi Bo");
        reply.thread_root = Some(posted.clone());
        let answer = op("op-1", "general", OutboundKind::Send { message: reply });
        let answer_id = deliver(&bridge, &answer).await.expect("sends").ids[0].clone();
        let react = op(
            "op-2",
            "general",
            OutboundKind::React {
                target: posted.clone(),
                key: "👍".into(),
            },
        );
        let reaction = deliver(&bridge, &react).await.expect("reacts");
        assert_eq!(reaction.ids.len(), 1, "reactions have ids here");
        let edit = op(
            "op-3",
            "general",
            OutboundKind::Edit {
                parts: vec![answer_id.clone()],
                message: Message::text("hi Bo!"),
            },
        );
        assert_eq!(
            deliver(&bridge, &edit).await.expect("edits"),
            Delivered::none()
        );

        // Bo reacts to the answer, edits and deletes their post.
        platform
            .react("general", "U9", &answer_id, "🎉", true)
            .expect("reacts");
        platform
            .react("general", "U9", &answer_id, "👀", true)
            .expect("reacts");
        platform
            .react("general", "U9", &answer_id, "👀", false)
            .expect("unreacts");
        platform
            .edit("general", "U9", &posted, "hello all")
            .expect("edits");
        platform.delete("general", "U9", &posted).expect("deletes");
        platform
            .post("elsewhere", "U9", "Bo", "not here")
            .expect("posts");

        let messages = platform.messages("general");
        assert_eq!(messages.len(), 2);
        let (first, second) = (&messages[0], &messages[1]);
        assert_eq!(first.id, posted);
        assert_eq!(first.author, UserId::new("U9"));
        assert_eq!(first.author_name, "Bo");
        assert_eq!(first.text, "hello all");
        assert!(first.edited && first.deleted && !first.by_bridge);
        assert_eq!(first.reactions, vec![("👍".to_owned(), puppet().user)]);

        assert_eq!(second.id, answer_id);
        assert_eq!(second.author, puppet().user);
        assert_eq!(second.author_name, "Ann");
        assert_eq!(second.text, "hi Bo!");
        assert!(second.edited && !second.deleted && second.by_bridge);
        assert_eq!(second.thread_root, Some(posted.clone()));
        assert_eq!(second.reactions, vec![("🎉".to_owned(), UserId::new("U9"))]);

        // The deleted post can no longer be reacted to.
        let late = op(
            "op-4",
            "general",
            OutboundKind::React {
                target: posted,
                key: "👍".into(),
            },
        );
        let err = deliver(&bridge, &late).await.expect_err("target deleted");
        assert_eq!(err.label(), "not_found");
    }

    #[tokio::test]
    async fn targets_and_capabilities_are_enforced() {
        let platform = MemoryPlatform::new("memory:a");
        let full = bridge(&platform);
        let minimal = MemoryBridge::new(platform.clone(), Capabilities::minimal());
        let sent = deliver(&full, &send("s", "general", "x"))
            .await
            .expect("sends")
            .ids;

        let unknown = op(
            "e1",
            "general",
            OutboundKind::Edit {
                parts: vec![MessageId::new("nope")],
                message: Message::text("y"),
            },
        );
        assert_eq!(
            deliver(&full, &unknown).await.expect_err("unknown").label(),
            "not_found"
        );
        // The message exists, but in another channel.
        let elsewhere = op(
            "e2",
            "random",
            OutboundKind::Delete {
                parts: sent.clone(),
            },
        );
        assert_eq!(
            deliver(&full, &elsewhere).await.expect_err("wrong").label(),
            "not_found"
        );
        let mut reply = Message::text("re");
        reply.reply_to = Some(MessageId::new("nope"));
        let orphan = op("e3", "general", OutboundKind::Send { message: reply });
        assert_eq!(
            deliver(&full, &orphan).await.expect_err("orphan").label(),
            "not_found"
        );

        for kind in [
            OutboundKind::React {
                target: sent[0].clone(),
                key: "👍".into(),
            },
            OutboundKind::Edit {
                parts: sent.clone(),
                message: Message::text("y"),
            },
            OutboundKind::Delete {
                parts: sent.clone(),
            },
        ] {
            let label = kind.label();
            let err = deliver(&minimal, &op(label, "general", kind))
                .await
                .expect_err(label);
            assert_eq!(err.label(), "permanent", "{label} on a minimal platform");
        }
        assert_eq!(
            platform.deliveries().len(),
            1,
            "failed deliveries leave no record"
        );
        let labels: Vec<_> = platform.attempts().iter().map(Attempt::label).collect();
        assert_eq!(
            labels,
            [
                "ok",
                "not_found",
                "not_found",
                "not_found",
                "permanent",
                "permanent",
                "permanent"
            ]
        );
    }

    #[tokio::test]
    async fn a_call_is_posted_once_then_edited() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        let mut call = CallEvent::new(CallId::new("c1"), CallProvider::Jitsi, CallState::Started)
            .with_join_url("https://meet.example/c1");
        let start = op(
            "call-1",
            "general",
            OutboundKind::Call {
                event: call.clone(),
                invite: Vec::new(),
            },
        );
        let invite = deliver(&bridge, &start).await.expect("posts").ids;
        assert_eq!(invite.len(), 1);
        call.state = CallState::Ended {
            duration: Some(Duration::from_secs(65)),
        };
        let end = op(
            "call-2",
            "general",
            OutboundKind::Call {
                event: call.clone(),
                invite: invite.clone(),
            },
        );
        assert_eq!(
            deliver(&bridge, &end).await.expect("edits"),
            Delivered::none()
        );

        let messages = platform.messages("general");
        assert_eq!(messages.len(), 1, "later states never post again");
        assert_eq!(messages[0].id, invite[0]);
        assert_eq!(messages[0].text, "📞 a call ended after 1m 05s");
        assert!(messages[0].edited);
    }

    #[tokio::test]
    async fn delivery_is_idempotent_per_op() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        let op = send("op-1", "general", "once");
        let first = deliver(&bridge, &op).await.expect("sends");
        let again = deliver(&bridge, &op).await.expect("sends again");
        assert_eq!(first, again);
        assert_eq!(platform.deliveries().len(), 1);
        assert_eq!(platform.messages("general").len(), 1);
        assert_eq!(platform.attempts().len(), 2, "both calls are attempts");
    }

    #[tokio::test]
    async fn file_backed_state_survives_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let op = send("op-1", "general", "kept");
        let (sent, event) = {
            let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
            let bridge = bridge(&platform);
            let sent = deliver(&bridge, &op).await.expect("sends");
            let event = platform
                .post("general", "U9", "Bo", "hello")
                .expect("posts");
            let mut running = Running::start(&bridge).await;
            assert_eq!(running.next_stored().await, event);
            wait_until("the event is acked", || {
                platform.acked().contains(&event.event)
            })
            .await;
            running.stop().await.expect("stops cleanly");
            (sent, event)
        };

        // "Restart": a new handle on the same directory.
        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("reopens");
        let bridge = bridge(&platform);
        assert_eq!(platform.deliveries().len(), 1);
        assert_eq!(platform.deliveries()[0].ids, sent.ids);
        assert!(platform.acked().contains(&event.event));
        assert_eq!(
            deliver(&bridge, &op).await.expect("same op"),
            sent,
            "same ids after restart"
        );
        assert_eq!(platform.deliveries().len(), 1, "nothing posted twice");

        // The indexes were rebuilt: both the bridge's and Bo's messages are targets.
        let edit = op_edit("op-2", &sent.ids[0]);
        deliver(&bridge, &edit)
            .await
            .expect("edits a message from before the restart");
        let react = self::op(
            "op-3",
            "general",
            OutboundKind::React {
                target: message_id(&event),
                key: "👍".into(),
            },
        );
        deliver(&bridge, &react)
            .await
            .expect("reacts to a message from before the restart");
        let messages = platform.messages("general");
        assert_eq!(messages.len(), 2);
        let kept = messages
            .iter()
            .find(|m| m.id == sent.ids[0])
            .expect("still there");
        assert_eq!(kept.text, "kept again");
        let bos = messages
            .iter()
            .find(|m| m.id == message_id(&event))
            .expect("still there");
        assert_eq!(bos.reactions.len(), 1);

        // The acked event is not delivered again.
        let mut running = Running::start(&bridge).await;
        running.nothing_for(Duration::from_millis(100)).await;
        running.stop().await.expect("stops cleanly");
    }

    fn op_edit(id: &str, target: &MessageId) -> OutboundOp {
        op(
            id,
            "general",
            OutboundKind::Edit {
                parts: vec![target.clone()],
                message: Message::text("kept again"),
            },
        )
    }

    #[tokio::test]
    async fn unacked_events_are_redelivered_after_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let events: Vec<Inbound> = {
            let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
            let events: Vec<Inbound> = (0..3)
                .map(|i| {
                    platform
                        .post("general", "U9", "Bo", &format!("m{i}"))
                        .expect("posts")
                })
                .collect();
            let bridge = bridge(&platform);
            let mut running = Running::start(&bridge).await;
            assert_eq!(running.next_stored().await, events[0]);
            // The next two reach the relay but are never stored: the daemon "dies".
            let (second, _held2) = running.next().await;
            let (third, _held3) = running.next().await;
            assert_eq!((second, third), (events[1].clone(), events[2].clone()));
            wait_until("the first is acked", || {
                platform.acked().contains(&events[0].event)
            })
            .await;
            running.stop().await.expect("stops cleanly");
            assert_eq!(platform.acked().len(), 1);
            events
        };

        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("reopens");
        let bridge = bridge(&platform);
        let mut running = Running::start(&bridge).await;
        assert_eq!(running.next_stored().await, events[1]);
        assert_eq!(running.next_stored().await, events[2]);
        running.nothing_for(Duration::from_millis(50)).await;
        wait_until("all are acked", || platform.acked().len() == 3).await;
        running.stop().await.expect("stops cleanly");
    }

    #[tokio::test]
    async fn ephemeral_restart_redelivers_unacked_events() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        let first = platform.post("general", "U9", "Bo", "one").expect("posts");
        let second = platform.post("general", "U9", "Bo", "two").expect("posts");
        let mut running = Running::start(&bridge).await;
        assert_eq!(running.next_stored().await, first);
        let (held, _ack) = running.next().await;
        assert_eq!(held, second);
        wait_until("the first is acked", || platform.acked().len() == 1).await;
        running.stop().await.expect("stops cleanly");

        let mut running = Running::start(&bridge).await;
        assert_eq!(running.next_stored().await, second);
        // New events wake the loop at once.
        let third = platform
            .post("general", "U9", "Bo", "three")
            .expect("posts");
        assert_eq!(running.next_stored().await, third);
        running.stop().await.expect("stops cleanly");
    }

    #[tokio::test]
    async fn a_partial_trailing_line_is_read_once_complete() {
        let dir = tempfile::tempdir().expect("temp dir");
        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
        let bridge = bridge(&platform);
        let mut running = Running::start(&bridge).await;

        let event = Inbound::new(
            Origin::new("memory:a", "general"),
            EventId::new("e-partial"),
            Sender::new(Person::new(
                BridgeId::new("memory:a"),
                UserId::new("U9"),
                "Bo",
            )),
            InboundKind::Message {
                id: MessageId::new("m-partial"),
                message: Message::text("hi"),
            },
        );
        let mut line = serde_json::to_vec(&event).expect("serialises");
        line.push(b'\n');
        let (head, tail) = line.split_at(line.len() / 2);
        let mut file = OpenOptions::new()
            .append(true)
            .open(dir.path().join(INBOX_FILE))
            .expect("inbox exists");
        file.write_all(head).expect("writes");

        running.nothing_for(Duration::from_millis(100)).await;
        assert!(
            platform.inbox().is_empty(),
            "a partial line is not an event yet"
        );
        file.write_all(tail).expect("writes");
        assert_eq!(platform.inbox(), vec![event.clone()]);
        assert_eq!(running.next_stored().await, event);
        running.nothing_for(Duration::from_millis(50)).await;
        running.stop().await.expect("stops cleanly");
    }

    #[tokio::test]
    async fn echoes_report_the_right_sender() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);

        deliver(&bridge, &send("off", "general", "quiet"))
            .await
            .expect("sends");
        assert!(platform.inbox().is_empty(), "no echo when off");

        platform.set_echo(EchoMode::AsPuppet);
        let sent = deliver(&bridge, &send("puppet", "general", "as puppet"))
            .await
            .expect("sends");
        let echo = platform.inbox().pop().expect("an echo");
        assert_eq!(echo.origin, Origin::new("memory:a", "general"));
        assert_eq!(message_id(&echo), sent.ids[0]);
        assert_eq!(echo.sender.person.user, puppet().user);
        assert_eq!(echo.sender.person.display_name, "Ann");
        assert_eq!(echo.sender.person.avatar.as_deref(), Some("a.png"));
        assert!(!echo.sender.is_ours);

        platform.set_echo(EchoMode::AsOurs);
        let bot = OutboundOp::from_bot(
            OpId::new("bot"),
            ChannelId::new("general"),
            OutboundKind::Send {
                message: Message::text("notice"),
            },
        );
        let sent = deliver(&bridge, &bot).await.expect("sends");
        let echo = platform.inbox().pop().expect("an echo");
        assert_eq!(message_id(&echo), sent.ids[0]);
        assert_eq!(echo.sender.person.user, UserId::new(BOT_USER));
        assert!(echo.sender.person.is_bot && echo.sender.is_ours);

        // Only sends echo, a repeated op echoes nothing, and echoes are not
        // counted as messages of their own.
        let react = op(
            "r",
            "general",
            OutboundKind::React {
                target: sent.ids[0].clone(),
                key: "x".into(),
            },
        );
        deliver(&bridge, &react).await.expect("reacts");
        deliver(&bridge, &bot).await.expect("repeats");
        assert_eq!(platform.inbox().len(), 2);
        assert_eq!(platform.messages("general").len(), 3);

        // The run loop reports echoes like any other event.
        let mut running = Running::start(&bridge).await;
        assert!(!running.next_stored().await.sender.is_ours);
        assert!(running.next_stored().await.sender.is_ours);
        running.stop().await.expect("stops cleanly");
    }

    #[tokio::test]
    async fn fail_next_fails_that_many_deliveries() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        platform.fail_next(2, BridgeError::transient("connection reset"));
        let op = send("op-1", "general", "retry me");
        assert_eq!(
            deliver(&bridge, &op).await,
            Err(BridgeError::transient("connection reset"))
        );
        assert!(deliver(&bridge, &op).await.is_err());
        let sent = deliver(&bridge, &op).await.expect("third try works");
        assert_eq!(deliver(&bridge, &op).await, Ok(sent));
        let labels: Vec<_> = platform.attempts().iter().map(Attempt::label).collect();
        assert_eq!(labels, ["transient", "transient", "ok", "ok"]);
        assert!(
            platform
                .attempts()
                .iter()
                .all(|a| a.op == OpId::new("op-1") && a.kind == "send")
        );
        assert_eq!(platform.deliveries().len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn fail_until_fails_everything_before_the_deadline() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        let start = Instant::now();
        let limited = BridgeError::rate_limited(Duration::from_secs(2));
        platform.fail_until(start + Duration::from_secs(10), limited.clone());

        let op = send("op-1", "general", "storm");
        assert_eq!(deliver(&bridge, &op).await, Err(limited.clone()));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(deliver(&bridge, &op).await, Err(limited));
        tokio::time::sleep(Duration::from_secs(8)).await;
        deliver(&bridge, &op).await.expect("the storm is over");

        let gaps: Vec<Duration> = platform
            .attempts()
            .iter()
            .map(|a| a.at.duration_since(start))
            .collect();
        assert_eq!(
            gaps,
            [
                Duration::ZERO,
                Duration::from_secs(2),
                Duration::from_secs(10)
            ]
        );
    }

    #[tokio::test]
    async fn channel_failures_rules_and_missing_channels() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        platform.fail_channel("locked", BridgeError::auth("token revoked"));
        platform.fail_when(Box::new(|op| {
            (op.kind.label() == "send" && op.channel.as_str() == "picky")
                .then(|| BridgeError::permanent("refused"))
        }));
        platform.remove_channel("gone");

        let err = |r: Result<Delivered, BridgeError>| r.expect_err("fails").label();
        assert_eq!(
            err(deliver(&bridge, &send("1", "locked", "x")).await),
            "auth"
        );
        assert_eq!(
            err(deliver(&bridge, &send("2", "picky", "x")).await),
            "permanent"
        );
        assert_eq!(
            err(deliver(&bridge, &send("3", "gone", "x")).await),
            "not_found"
        );
        deliver(&bridge, &send("4", "anything-at-all", "x"))
            .await
            .expect("any channel exists");

        platform.clear_failures();
        deliver(&bridge, &send("1", "locked", "x"))
            .await
            .expect("cleared");
        deliver(&bridge, &send("2", "picky", "x"))
            .await
            .expect("cleared");
        assert_eq!(
            err(deliver(&bridge, &send("3", "gone", "x")).await),
            "not_found"
        );
        platform.restore_channel("gone");
        deliver(&bridge, &send("3", "gone", "x"))
            .await
            .expect("restored");
    }

    #[tokio::test]
    async fn two_handles_share_one_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let daemon = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
        let test = MemoryPlatform::open("memory:a", dir.path()).expect("opens again");
        let bridge = bridge(&daemon);
        let mut running = Running::start(&bridge).await;

        // The test injects; the daemon's loop (which polls the file) receives.
        let event = test.post("general", "U9", "Bo", "across").expect("posts");
        assert_eq!(running.next_stored().await, event);
        wait_until("the test sees the ack", || {
            test.acked().contains(&event.event)
        })
        .await;

        // The daemon delivers; the test reads it back, and the daemon can
        // target the test's message because its loop indexed it.
        let react = op(
            "op-1",
            "general",
            OutboundKind::React {
                target: message_id(&event),
                key: "👍".into(),
            },
        );
        deliver(&bridge, &react).await.expect("reacts");
        assert_eq!(test.deliveries().len(), 1);
        assert_eq!(test.messages("general")[0].reactions.len(), 1);
        running.stop().await.expect("stops cleanly");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn five_thousand_events_flow_through_the_pipeline() {
        let dir = tempfile::tempdir().expect("temp dir");
        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
        let events: Vec<Inbound> = (0..5_000)
            .map(|i| {
                platform
                    .post("general", "U9", "Bo", &format!("m{i}"))
                    .expect("posts")
            })
            .collect();
        let bridge = bridge(&platform);
        let mut running = Running::start(&bridge).await;
        // A relay that stores in batches, answering out of order within each.
        let mut received = Vec::with_capacity(events.len());
        while received.len() < events.len() {
            let mut batch = vec![running.next().await];
            while let Ok(envelope) = running.relay.try_recv() {
                batch.push(envelope);
            }
            for (event, stored) in batch.into_iter().rev() {
                received.push(event.event.clone());
                stored.send(Ok(())).expect("run waits");
            }
        }
        received.sort();
        let mut expected: Vec<EventId> = events.iter().map(|e| e.event.clone()).collect();
        expected.sort();
        assert_eq!(received, expected);
        wait_until("all are acked", || platform.acked().len() == events.len()).await;
        running.stop().await.expect("stops cleanly");
    }

    #[test]
    fn concurrent_appenders_never_interleave() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
                std::thread::spawn(move || {
                    let long = "x".repeat(2_000);
                    for i in 0..250 {
                        platform
                            .post("general", "U9", "Bo", &format!("{w}-{i}-{long}"))
                            .expect("posts");
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().expect("writer finishes");
        }
        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
        let inbox = platform.inbox();
        assert_eq!(inbox.len(), 1_000);
        let ids: HashSet<_> = inbox.iter().map(|e| e.event.clone()).collect();
        assert_eq!(ids.len(), 1_000, "event ids are unique across handles");
    }

    #[tokio::test]
    async fn the_relay_refusing_an_event_stops_run_without_acking() {
        let platform = MemoryPlatform::new("memory:a");
        let bridge = bridge(&platform);
        platform
            .post("general", "U9", "Bo", "hello")
            .expect("posts");
        let mut running = Running::start(&bridge).await;
        let (_, stored) = running.next().await;
        stored
            .send(Err(IntakeError::NotStored("disk full".into())))
            .expect("run waits");
        let result = tokio::time::timeout(WAIT, running.task)
            .await
            .expect("stops")
            .expect("no panic");
        assert_eq!(result.expect_err("an error").label(), "transient");
        assert!(matches!(
            *running.state.borrow(),
            BridgeState::TransientDisconnect(_)
        ));
        assert!(platform.acked().is_empty());
    }

    #[tokio::test]
    async fn the_token_is_checked_and_never_shown() {
        let platform = MemoryPlatform::new("memory:a");
        platform.require_token("xoxb-secret");
        let wrong = MemoryBridge::new(platform.clone(), Capabilities::full()).with_token("guess");
        let right =
            MemoryBridge::new(platform.clone(), Capabilities::full()).with_token("xoxb-secret");
        assert!(!format!("{right:?}").contains("xoxb-secret"));
        assert!(format!("{right:?}").contains("[redacted]"));

        let err = wrong.health_check().await.expect_err("refused");
        assert_eq!(err.label(), "auth");
        assert!(!err.to_string().contains("guess"));
        assert_eq!(
            deliver(&wrong, &send("1", "g", "x"))
                .await
                .expect_err("refused")
                .label(),
            "auth"
        );
        right.health_check().await.expect("accepted");
        deliver(&right, &send("1", "g", "x"))
            .await
            .expect("accepted");

        let (sink, _relay) = crate::bridge::InboundSink::channel(1);
        let (state_tx, state) = watch::channel(BridgeState::Connecting);
        let ctx = BridgeContext::new(sink, CancellationToken::new(), state_tx);
        assert_eq!(wrong.run(ctx).await.expect_err("refused").label(), "auth");
        assert_eq!(state.borrow().label(), "bad_credentials");
    }

    #[tokio::test]
    async fn puppets_and_media() {
        let dir = tempfile::tempdir().expect("temp dir");
        let platform = MemoryPlatform::open("memory:a", dir.path()).expect("opens");
        let bridge = bridge(&platform);
        let ann = Person::new(BridgeId::new("slack:acme"), UserId::new("U 1"), "Ann")
            .with_avatar("https://a/ann.png");
        let puppet = bridge.ensure_puppet(&ann).await.expect("puppet");
        assert_eq!(puppet.user, UserId::new("puppet-slack_acme-U_1"));
        assert_eq!(puppet.display_name, "Ann");
        assert_eq!(puppet.avatar.as_deref(), Some("https://a/ann.png"));
        assert_eq!(platform.puppet_calls(), 1);

        // A file put by the test process is served by the daemon's handle.
        let test = MemoryPlatform::open("memory:a", dir.path()).expect("opens again");
        test.put_media("F1/x", b"bytes".to_vec()).expect("stores");
        let file = Attachment::new("F1/x", "x.txt", "text/plain", "memory://F1");
        assert_eq!(bridge.fetch_media(&file).await.expect("found"), b"bytes");
        let missing = Attachment::new("F2", "y.txt", "text/plain", "memory://F2");
        assert_eq!(
            bridge
                .fetch_media(&missing)
                .await
                .expect_err("absent")
                .label(),
            "not_found"
        );

        // Sending an attachment fetches it from its origin bridge.
        let with_file = op(
            "op-1",
            "general",
            OutboundKind::Send {
                message: Message::text("see file").with_attachment(file.clone()),
            },
        );
        assert_eq!(
            deliver(&bridge, &with_file)
                .await
                .expect_err("NoMedia has no files")
                .label(),
            "not_found"
        );
        bridge
            .deliver(&with_file, &*bridge)
            .await
            .expect("sends with the file");
        assert_eq!(platform.deliveries()[0].files, ["x.txt"]);
    }

    #[async_trait]
    impl MediaSource for MemoryBridge {
        async fn fetch(
            &self,
            _origin: &BridgeId,
            attachment: &Attachment,
        ) -> Result<Vec<u8>, BridgeError> {
            self.fetch_media(attachment).await
        }
    }
}
